use super::*;
use crate::fake::{FakeBus, FakeFunction, bdf, virtio_blk};
use proptest::prelude::*;

const MEM32: BarKind = BarKind::Mem32 {
    prefetchable: false,
};
const MEM64_PF: BarKind = BarKind::Mem64 { prefetchable: true };

/// The VM's windows: 16 MiB of 32-bit memory and 1 GiB of 64-bit memory, bus address =
/// IPA, as Moat's guest tree will give them.
fn windows() -> Vec<GuestWindow> {
    vec![
        GuestWindow {
            pci: 0x1000_0000,
            ipa: 0x1000_0000,
            size: 0x100_0000,
            prefetchable: false,
        },
        GuestWindow {
            pci: 0x80_0000_0000,
            ipa: 0x80_0000_0000,
            size: 0x4000_0000,
            prefetchable: false,
        },
    ]
}

/// 00:01.0, virtio-blk, placed by Moat at host PAs unlike the guest's addresses.
fn blk() -> Assigned {
    let mut bars = [None; BAR_COUNT];
    bars[1] = Some(HostBar {
        kind: MEM32,
        size: 0x1000,
        pa: 0x1000_1000,
    });
    bars[4] = Some(HostBar {
        kind: MEM64_PF,
        size: 0x4000,
        pa: 0x80_0001_0000,
    });
    Assigned {
        bdf: bdf(1, 0),
        bars,
    }
}

/// The host bus: virtio-blk at 00:01.0 (the VM's) and another device at 00:02.0 (not).
fn host() -> FakeBus {
    FakeBus::default()
        .with(bdf(1, 0), virtio_blk())
        .with(bdf(2, 0), FakeFunction::new(0x1af4, 0x1041, 0x02_0000, 0))
}

fn bridge() -> GuestBridge {
    GuestBridge::new(windows(), vec![blk()])
}

fn map(bar: u8, ipa: u64, pa: u64, size: u64) -> Mapping {
    Mapping {
        bdf: bdf(1, 0),
        bar,
        ipa,
        pa,
        size,
    }
}

fn dword(b: &GuestBridge, host: &FakeBus, offset: u16) -> u32 {
    b.read(bdf(1, 0), offset, Width::Dword, host)
}

fn write(b: &mut GuestBridge, offset: u16, value: u32) -> Vec<Effect> {
    b.write(bdf(1, 0), offset, Width::Dword, value)
}

/// The guest programs BAR1 at `bar1` and BAR4 at `bar4` and turns memory decode on.
fn program(b: &mut GuestBridge, bar1: u32, bar4: u64) -> Vec<Effect> {
    let mut effects = write(b, 0x14, bar1);
    effects.extend(write(b, 0x20, bar4 as u32));
    effects.extend(write(b, 0x24, (bar4 >> 32) as u32));
    effects.extend(write(b, COMMAND, u32::from(Command::MEMORY_SPACE)));
    effects
}

#[test]
fn a_function_not_assigned_reads_all_ones_at_every_width_and_ignores_writes() {
    let mut b = bridge();
    let host = host();
    for (width, ones) in [
        (Width::Byte, 0xff),
        (Width::Word, 0xffff),
        (Width::Dword, 0xffff_ffff),
    ] {
        assert_eq!(b.read(bdf(2, 0), 0, width, &host), ones);
        assert_eq!(b.read(bdf(3, 0), 0, width, &host), ones);
    }
    assert_eq!(b.write(bdf(2, 0), COMMAND, Width::Word, 0x7), []);
    assert_eq!(b.write(bdf(2, 0), 0x10, Width::Dword, 0x2000_0000), []);
}

#[test]
fn identification_class_and_pin_are_the_devices() {
    let b = bridge();
    let host = host();
    assert_eq!(dword(&b, &host, 0), 0x1042_1af4);
    assert_eq!(b.read(bdf(1, 0), 0x02, Width::Word, &host), 0x1042);
    assert_eq!(b.read(bdf(1, 0), 0x0b, Width::Byte, &host), 0x01);
    assert_eq!(b.read(bdf(1, 0), 0x3d, Width::Byte, &host), 1, "INTA");
}

#[test]
fn sizing_reads_the_size_mask_and_flags_of_each_bar_and_0_where_none() {
    let mut b = bridge();
    let host = host();
    for bar in 0..6 {
        let _ = write(&mut b, 0x10 + 4 * bar, 0xffff_ffff);
    }
    let sized: Vec<u32> = (0..6).map(|i| dword(&b, &host, 0x10 + 4 * i)).collect();
    // BAR1: 4 KiB, 32-bit; BAR4/5: 16 KiB, 64-bit prefetchable (0xc); the rest absent.
    assert_eq!(sized, [0, 0xffff_f000, 0, 0, 0xffff_c00c, 0xffff_ffff]);
}

#[test]
fn a_bar_smaller_than_a_page_sizes_as_a_page_and_an_io_bar_as_absent() {
    let mut a = blk();
    a.bars[1] = Some(HostBar {
        kind: MEM32,
        size: 0x100,
        pa: 0x1000_1000,
    });
    a.bars[0] = Some(HostBar {
        kind: BarKind::Io,
        size: 0x20,
        pa: 0x3eff_0000,
    });
    let mut b = GuestBridge::new(windows(), vec![a]);
    let host = host();
    let _ = write(&mut b, 0x10, 0xffff_ffff);
    let _ = write(&mut b, 0x14, 0xffff_ffff);
    assert_eq!(dword(&b, &host, 0x10), 0);
    assert_eq!(dword(&b, &host, 0x14), 0xffff_f000);
}

#[test]
fn programming_bars_then_memory_space_maps_each_guest_address_to_its_physical_bar() {
    let mut b = bridge();
    let effects = program(&mut b, 0x1000_2000, 0x80_0000_4000);
    assert_eq!(
        effects,
        [
            Effect::HostWrite {
                bdf: bdf(1, 0),
                offset: COMMAND,
                width: Width::Dword,
                value: u32::from(Command::MEMORY_SPACE),
            },
            Effect::Map(map(1, 0x1000_2000, 0x1000_1000, 0x1000)),
            Effect::Map(map(4, 0x80_0000_4000, 0x80_0001_0000, 0x4000)),
        ]
    );
    let host = host();
    assert_eq!(dword(&b, &host, 0x14), 0x1000_2000);
    assert_eq!(dword(&b, &host, 0x20), 0x0000_400c);
    assert_eq!(dword(&b, &host, 0x24), 0x80);
}

#[test]
fn bar_writes_never_reach_the_device() {
    let mut b = bridge();
    let effects = program(&mut b, 0x1000_2000, 0x80_0000_4000);
    assert!(
        effects
            .iter()
            .all(|e| !matches!(e, Effect::HostWrite { offset, .. } if is_bar(*offset)))
    );
}

#[test]
fn a_bar_moved_outside_the_windows_is_unmapped_and_mapped_again_when_moved_back() {
    let mut b = bridge();
    let _ = program(&mut b, 0x1000_2000, 0x80_0000_4000);
    // 0x4000_0000: RAM of the VM, not a window.
    assert_eq!(
        write(&mut b, 0x14, 0x4000_0000),
        [Effect::Unmap(map(1, 0x1000_2000, 0x1000_1000, 0x1000))]
    );
    assert_eq!(
        dword(&b, &host(), 0x14),
        0x4000_0000,
        "the register keeps it"
    );
    assert_eq!(
        write(&mut b, 0x14, 0x1000_3000),
        [Effect::Map(map(1, 0x1000_3000, 0x1000_1000, 0x1000))]
    );
}

#[test]
fn a_bar_straddling_the_end_of_a_window_is_not_mapped() {
    let mut w = windows();
    w[1].size = 0x6000;
    let mut b = GuestBridge::new(w, vec![blk()]);
    // BAR4's 16 KiB at 0x80_0000_4000 end 8 KiB beyond the window's end.
    let _ = program(&mut b, 0x1000_2000, 0x80_0000_4000);
    assert_eq!(b.mappings(), [map(1, 0x1000_2000, 0x1000_1000, 0x1000)]);
}

#[test]
fn a_64_bit_bar_is_remapped_once_both_halves_are_written() {
    let mut b = bridge();
    let _ = program(&mut b, 0x1000_2000, 0x80_0000_4000);
    // Low half first: 0x80_0000_8000 is in the window too, so it moves there at once.
    assert_eq!(
        write(&mut b, 0x20, 0x0000_8000),
        [
            Effect::Unmap(map(4, 0x80_0000_4000, 0x80_0001_0000, 0x4000)),
            Effect::Map(map(4, 0x80_0000_8000, 0x80_0001_0000, 0x4000)),
        ]
    );
    // Into the 32-bit window (a 64-bit BAR may live below 4 GiB): the low half moves it
    // within the 64-bit window, the high half then to 0x1080_0000.
    let _ = write(&mut b, 0x20, 0x1080_0000);
    assert_eq!(
        write(&mut b, 0x24, 0),
        [
            Effect::Unmap(map(4, 0x80_1080_0000, 0x80_0001_0000, 0x4000)),
            Effect::Map(map(4, 0x1080_0000, 0x80_0001_0000, 0x4000)),
        ]
    );
}

#[test]
fn two_bars_at_one_address_map_the_first_only() {
    let mut b = bridge();
    let _ = program(&mut b, 0x1000_4000, 0x1000_4000);
    assert_eq!(b.mappings(), [map(1, 0x1000_4000, 0x1000_1000, 0x1000)]);
}

#[test]
fn a_non_prefetchable_bar_is_not_mapped_in_a_prefetchable_window() {
    let mut w = windows();
    w[0].prefetchable = true;
    let mut b = GuestBridge::new(w, vec![blk()]);
    let _ = program(&mut b, 0x1000_2000, 0x1000_8000);
    // BAR1 (non-prefetchable) refused; BAR4 (prefetchable) fits.
    assert_eq!(b.mappings(), [map(4, 0x1000_8000, 0x80_0001_0000, 0x4000)]);
}

#[test]
fn memory_space_off_unmaps_every_bar() {
    let mut b = bridge();
    let _ = program(&mut b, 0x1000_2000, 0x80_0000_4000);
    let effects = b.write(
        bdf(1, 0),
        COMMAND,
        Width::Word,
        u32::from(Command::BUS_MASTER),
    );
    assert_eq!(
        effects,
        [
            Effect::HostWrite {
                bdf: bdf(1, 0),
                offset: COMMAND,
                width: Width::Word,
                value: u32::from(Command::BUS_MASTER),
            },
            Effect::Unmap(map(1, 0x1000_2000, 0x1000_1000, 0x1000)),
            Effect::Unmap(map(4, 0x80_0000_4000, 0x80_0001_0000, 0x4000)),
        ]
    );
    assert!(b.mappings().is_empty());
}

#[test]
fn command_keeps_only_the_pcie_bits_io_space_stays_off() {
    let mut b = bridge();
    let effects = b.write(bdf(1, 0), COMMAND, Width::Word, 0xffff);
    assert_eq!(
        effects[0],
        Effect::HostWrite {
            bdf: bdf(1, 0),
            offset: COMMAND,
            width: Width::Word,
            value: 0x0546,
        }
    );
    assert_eq!(u32::from(GUEST_COMMAND), 0x0546);
}

#[test]
fn status_rw1c_writes_reach_the_device_unchanged_command_half_filtered() {
    let mut b = bridge();
    // A DWORD write: Command 0x0001 (I/O Space: dropped), Status 0xf900 (clear every error).
    let effects = write(&mut b, COMMAND, 0xf900_0001);
    assert_eq!(
        effects,
        [Effect::HostWrite {
            bdf: bdf(1, 0),
            offset: COMMAND,
            width: Width::Dword,
            value: 0xf900_0000,
        }]
    );
    // A byte write to Status' upper byte is not Command at all.
    let effects = b.write(bdf(1, 0), STATUS_HIGH, Width::Byte, 0x20);
    assert_eq!(
        effects,
        [Effect::HostWrite {
            bdf: bdf(1, 0),
            offset: STATUS_HIGH,
            width: Width::Byte,
            value: 0x20,
        }]
    );
}

const STATUS_HIGH: u16 = 0x07;

#[test]
fn interrupt_line_is_the_vms_scratch_register_and_pin_stays_the_devices() {
    let mut b = bridge();
    let host = host();
    assert_eq!(b.write(bdf(1, 0), INTERRUPT_LINE, Width::Byte, 0x2a), []);
    assert_eq!(b.read(bdf(1, 0), INTERRUPT_LINE, Width::Byte, &host), 0x2a);
    // A DWORD write changes the line only; the pin is read-only.
    assert_eq!(write(&mut b, INTERRUPT_LINE, 0xffff_ff05), []);
    assert_eq!(dword(&b, &host, INTERRUPT_LINE), 0x0000_0105);
}

#[test]
fn expansion_rom_reads_0_whatever_is_written() {
    let mut b = bridge();
    assert_eq!(write(&mut b, EXPANSION_ROM_BASE, 0xffff_f801), []);
    assert_eq!(dword(&b, &host(), EXPANSION_ROM_BASE), 0);
}

#[test]
fn a_misaligned_access_reads_all_ones_and_writes_nothing() {
    let mut b = bridge();
    let host = host();
    assert_eq!(b.read(bdf(1, 0), 0x02, Width::Dword, &host), 0xffff_ffff);
    assert_eq!(b.read(bdf(1, 0), 0x01, Width::Word, &host), 0xffff);
    assert_eq!(b.write(bdf(1, 0), 0x05, Width::Word, 0x6), []);
    assert_eq!(b.read(bdf(1, 0), 0x1000, Width::Byte, &host), 0xff);
}

#[test]
fn capabilities_and_extended_space_are_written_through() {
    let mut b = bridge();
    assert_eq!(
        b.write(bdf(1, 0), 0x106, Width::Word, 0x1234),
        [Effect::HostWrite {
            bdf: bdf(1, 0),
            offset: 0x106,
            width: Width::Word,
            value: 0x1234,
        }]
    );
}

/// A guest write the property test draws: a register of the header, a width, a value.
fn guest_write() -> impl Strategy<Value = (u16, Width, u32)> {
    let offsets = prop_oneof![Just(COMMAND), (0u16..6).prop_map(|i| 0x10 + 4 * i)];
    let values = prop_oneof![
        Just(u32::from(Command::MEMORY_SPACE)),
        Just(0),
        Just(0xffff_ffff),
        Just(0x80),
        (0x1000u32..0x1100).prop_map(|p| p << 16 | 0x000c),
        any::<u32>(),
    ];
    let widths = prop_oneof![Just(Width::Dword), Just(Width::Word), Just(Width::Byte)];
    (offsets, widths, values).prop_map(|(offset, width, value)| (offset, width, value))
}

proptest! {
    /// Whatever the guest writes: the mappings replayed from the effects are those in force;
    /// each lies in a window, maps its own BAR's physical address, and none overlap.
    #[test]
    fn mappings_follow_the_effects_stay_in_windows_and_never_overlap(
        writes in proptest::collection::vec(guest_write(), 1..40)
    ) {
        let mut b = bridge();
        let mut replay: Vec<Mapping> = Vec::new();
        for (offset, width, value) in writes {
            let offset = offset & !(width.bytes() - 1);
            for effect in b.write(bdf(1, 0), offset, width, value) {
                match effect {
                    Effect::Map(m) => {
                        prop_assert!(!replay.contains(&m));
                        replay.push(m);
                    }
                    Effect::Unmap(m) => {
                        let at = replay.iter().position(|r| *r == m);
                        prop_assert!(at.is_some(), "unmap of {:?} never mapped", m);
                        replay.remove(at.unwrap());
                    }
                    Effect::HostWrite { offset, .. } => prop_assert!(!is_bar(offset & !3)),
                }
            }
            let mut in_force = b.mappings().to_vec();
            in_force.sort_by_key(|m| m.bar);
            replay.sort_by_key(|m| m.bar);
            prop_assert_eq!(&replay, &in_force);
            for m in &in_force {
                let host_bar = blk().bars[usize::from(m.bar)].unwrap();
                prop_assert_eq!(m.pa, host_bar.pa);
                prop_assert!(windows().iter().any(|w| m.ipa >= w.ipa && m.ipa + m.size <= w.ipa + w.size));
                prop_assert!(in_force.iter().filter(|o| o.ipa < m.ipa + m.size && m.ipa < o.ipa + o.size).count() == 1);
            }
        }
    }
}
