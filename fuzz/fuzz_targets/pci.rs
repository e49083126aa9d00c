//! The guest's configuration-space filter (a guest controls every access it makes to its ECAM
//! window) and the SMMU event decoder (a device controls what lands in the event queue).
//!
//! Filter: a VM owning 00:01.0 (a 4 KiB 32-bit BAR and a 16 KiB 64-bit one) and 00:02.0 (a
//! 256-byte BAR, shown as a page, and an I/O BAR, hidden) beside a function it does not own
//! (00:03.0); the guest's reads and writes at any function, offset, width and value. After
//! every access: a function the VM does not own read all-ones and produced no effect; reads
//! fit their width; no effect writes a BAR, the expansion ROM or another function; the
//! mappings replayed from the effects are those in force, each inside a window, mapping its
//! own BAR's physical address, none overlapping.
//!
//! Events: any 32 bytes decode and print.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use moat_pci::bar::BarKind;
use moat_pci::filter::{Assigned, Effect, GuestBridge, GuestWindow, HostBar, Mapping};
use moat_pci::smmu::Event;
use moat_pci::{Bdf, ConfigSpace, Width};

/// The host's functions: their registers read as a fixed pattern (the filter must not care).
struct Host;

impl ConfigSpace for Host {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        u32::from(bdf.requester_id()) << 16 | u32::from(offset)
    }

    fn write32(&mut self, _: Bdf, _: u16, _: u32) {}
}

fn bdf(device: u8) -> Bdf {
    Bdf::new(0, device, 0).unwrap()
}

const WINDOWS: [GuestWindow; 2] = [
    GuestWindow {
        pci: 0x1000_0000,
        ipa: 0x1000_0000,
        size: 0x10_0000,
        prefetchable: false,
    },
    GuestWindow {
        pci: 0x80_0000_0000,
        ipa: 0x80_0000_0000,
        size: 0x10_0000,
        prefetchable: true,
    },
];

fn assigned() -> Vec<Assigned> {
    let bar = |kind, size, pa| Some(HostBar { kind, size, pa });
    let mem32 = BarKind::Mem32 {
        prefetchable: false,
    };
    vec![
        Assigned {
            bdf: bdf(1),
            bars: [
                None,
                bar(mem32, 0x1000, 0x1000_1000),
                None,
                None,
                bar(
                    BarKind::Mem64 { prefetchable: true },
                    0x4000,
                    0x80_0001_0000,
                ),
                None,
            ],
        },
        Assigned {
            bdf: bdf(2),
            bars: [
                bar(BarKind::Io, 0x20, 0x3eff_0000),
                bar(mem32, 0x100, 0x1000_3000),
                None,
                None,
                None,
                None,
            ],
        },
    ]
}

fn filter(u: &mut Unstructured<'_>) -> Result<()> {
    let mut bridge = GuestBridge::new(WINDOWS.to_vec(), assigned());
    let host_bars = assigned();
    let mut replay: Vec<Mapping> = Vec::new();
    while !u.is_empty() {
        let device = *u.choose(&[1u8, 1, 1, 2, 2, 3])?;
        let offset = if u.ratio(7, 8)? {
            u.int_in_range(0..=0x43u16)?
        } else {
            u.arbitrary()?
        };
        let width = *u.choose(&[Width::Dword, Width::Dword, Width::Word, Width::Byte])?;
        if u.arbitrary()? {
            let data = bridge.read(bdf(device), offset, width, &Host);
            assert_eq!(data & !width.mask(), 0, "a read wider than its access");
            if device == 3 {
                assert_eq!(data, width.mask(), "a function not the VM's read");
            }
            continue;
        }
        let value = if u.ratio(1, 3)? {
            u32::MAX
        } else {
            u.arbitrary()?
        };
        for effect in bridge.write(bdf(device), offset, width, value) {
            assert_ne!(device, 3, "an effect of a write to a function not the VM's");
            match effect {
                Effect::HostWrite {
                    bdf: to, offset, ..
                } => {
                    assert_eq!(to, bdf(device));
                    assert!(
                        !(0x10..0x28).contains(&(offset & !3)) && offset & !3 != 0x30,
                        "a BAR or ROM write reached the device: {offset:#x}"
                    );
                }
                Effect::Map(m) => {
                    assert!(!replay.contains(&m));
                    replay.push(m);
                }
                Effect::Unmap(m) => {
                    let at = replay.iter().position(|r| *r == m);
                    replay.remove(at.expect("an unmap of a mapping not in force"));
                }
            }
        }
        let in_force = bridge.mappings();
        assert_eq!(replay.len(), in_force.len());
        for m in in_force {
            assert!(replay.contains(m), "{m:?} in force but never mapped");
            let owner = host_bars.iter().find(|a| a.bdf == m.bdf).unwrap();
            let host = owner.bars[usize::from(m.bar)].unwrap();
            assert_eq!(m.pa, host.pa);
            assert!(m.size >= host.size && m.size % 0x1000 == 0);
            assert!(
                WINDOWS
                    .iter()
                    .any(|w| m.ipa >= w.ipa && m.ipa + m.size <= w.ipa + w.size),
                "{m:?} outside the windows"
            );
            let overlapping = in_force
                .iter()
                .filter(|o| o.ipa < m.ipa + m.size && m.ipa < o.ipa + o.size)
                .count();
            assert_eq!(overlapping, 1, "{m:?} overlaps another mapping");
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    if let Some((first, rest)) = data.split_first()
        && first % 4 == 0
        && rest.len() >= 32
    {
        let mut words = [0u64; 4];
        for (w, chunk) in words.iter_mut().zip(rest.chunks_exact(8)) {
            *w = u64::from_le_bytes(chunk.try_into().unwrap());
        }
        let _ = Event::decode(&words).to_string();
        return;
    }
    let _ = filter(&mut Unstructured::new(data));
});
