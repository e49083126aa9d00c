use super::*;
use crate::fake::{FakeBus, FakeFunction, bdf, virtio_blk};

const MEM32: BarKind = BarKind::Mem32 {
    prefetchable: false,
};
const MEM64_PF: BarKind = BarKind::Mem64 { prefetchable: true };

#[test]
fn low_bits_give_io_mem32_mem64_and_prefetchable() {
    assert_eq!(BarKind::of(0x0000_c001), Some(BarKind::Io));
    assert_eq!(BarKind::of(0x1000_0000), Some(MEM32));
    assert_eq!(
        BarKind::of(0x1000_0008),
        Some(BarKind::Mem32 { prefetchable: true })
    );
    assert_eq!(BarKind::of(0x0000_000c), Some(MEM64_PF));
    assert_eq!(
        BarKind::of(0x0000_0004),
        Some(BarKind::Mem64 {
            prefetchable: false
        })
    );
    // Type 01 (below 1 MiB in PCI 2.x) and 11 are reserved in PCI 3.0.
    assert_eq!(BarKind::of(0x0000_0002), None);
    assert_eq!(BarKind::of(0x0000_0006), None);
}

#[test]
fn flags_encode_back_to_the_same_kind() {
    for kind in [
        BarKind::Io,
        MEM32,
        MEM64_PF,
        BarKind::Mem64 {
            prefetchable: false,
        },
    ] {
        assert_eq!(BarKind::of(kind.flags()), Some(kind));
    }
}

#[test]
fn size_is_the_lowest_address_bit_that_stuck() {
    // PCI 3.0 6.2.5.1: a 4 KiB 32-bit BAR reads back 0xFFFFF000 after all-ones.
    assert_eq!(
        size_from_readback(MEM32, 0xffff_ffff_ffff_f000),
        Some(0x1000)
    );
    // A 16 KiB 64-bit prefetchable BAR: 0xFFFFC00C low, 0xFFFFFFFF high.
    assert_eq!(
        size_from_readback(MEM64_PF, 0xffff_ffff_ffff_c00c),
        Some(0x4000)
    );
    // An 8 GiB 64-bit BAR: no low address bit sticks, the upper half says it.
    assert_eq!(
        size_from_readback(MEM64_PF, 0xffff_fffe_0000_000c),
        Some(1 << 33)
    );
    // A 32-byte I/O BAR decoding 16 bits: 0x0000FFE1.
    assert_eq!(
        size_from_readback(BarKind::Io, 0xffff_ffff_0000_ffe1),
        Some(32)
    );
    // Not implemented: nothing stuck.
    assert_eq!(size_from_readback(MEM32, 0xffff_ffff_0000_0000), None);
}

#[test]
fn probe_finds_virtio_blk_bar1_4k_mem32_and_bar4_16k_mem64_prefetchable() {
    let mut bus = FakeBus::default().with(bdf(1, 0), virtio_blk());
    let bars = probe(&mut bus, bdf(1, 0));
    assert_eq!(
        bars,
        [
            None,
            Some(Bar {
                index: 1,
                kind: MEM32,
                address: 0x1000_1000,
                size: 0x1000
            }),
            None,
            None,
            Some(Bar {
                index: 4,
                kind: MEM64_PF,
                address: 0x80_0000_0000,
                size: 0x4000
            }),
            None,
        ]
    );
}

#[test]
fn probe_restores_every_bar_and_command_and_sizes_with_decode_off() {
    let original = virtio_blk().with_dword(COMMAND, 0x0010_0007);
    let mut bus = FakeBus::default().with(bdf(1, 0), original.clone());
    let _ = probe(&mut bus, bdf(1, 0));
    let after = &bus.functions[&bdf(1, 0)];
    assert_eq!(after.regs[..16], original.regs[..16]);
    assert!(!after.bar_written_while_decoding);
}

#[test]
fn probe_of_a_64_bit_bar_in_the_last_slot_takes_its_low_half_only() {
    // A malformed function: a 64-bit type in BAR5 has no upper half to size.
    let f = FakeFunction::new(0x1234, 0x5678, 0, 0).with_bar(5, MEM32, 0x1000, 0x2000_0000);
    let mut f = f;
    f.regs[usize::from(BAR0 / 4) + 5] |= 0b100;
    f.bars[5] = Some((
        BarKind::Mem64 {
            prefetchable: false,
        },
        0x1000,
    ));
    let mut bus = FakeBus::default().with(bdf(2, 0), f);
    let bars = probe(&mut bus, bdf(2, 0));
    assert_eq!(bars[5].map(|b| b.size), Some(0x1000));
}
