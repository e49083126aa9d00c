//! VMSAv8-64 walks: granules and start levels, regions, TBI, EPD, address size faults, walk
//! reads, endianness, MMU off.

use super::{FakeMemory, at, block, chain, fault, ipa, mmu_on, page, reads, table};
use crate::s1walk::{Access, FaultKind, LeafKind, Stage1Regs, walk_aarch64};
use moat_arm::addr::Va;
use moat_arm::fsc::Level;
use moat_arm::parange::PaRange;

pub(super) const TG0_4K: u64 = 0b00;
pub(super) const TG0_64K: u64 = 0b01;
pub(super) const TG0_16K: u64 = 0b10;
pub(super) const TG1_16K: u64 = 0b01;
pub(super) const TG1_4K: u64 = 0b10;
pub(super) const TG1_64K: u64 = 0b11;
pub(super) const IPS_36: u64 = 0b001;
pub(super) const IPS_48: u64 = 0b101;
pub(super) const IPS_52: u64 = 0b110;
pub(super) const EPD0: u64 = 1 << 7;
pub(super) const EPD1: u64 = 1 << 23;
pub(super) const TBI0: u64 = 1 << 37;
pub(super) const TBI1: u64 = 1 << 38;
pub(super) const TBID0: u64 = 1 << 51;
pub(super) const EE: u64 = 1 << 25;

/// `TCR_EL1` from its fields.
pub(super) const fn tcr(t0sz: u64, tg0: u64, t1sz: u64, tg1: u64, ips: u64) -> u64 {
    t0sz | tg0 << 14 | t1sz << 16 | tg1 << 30 | ips << 32
}

/// 48-bit regions with 4KB granules on both halves, IPS 48.
pub(super) const TCR_4K_48: u64 = tcr(16, TG0_4K, 16, TG1_4K, IPS_48);

/// Table addresses for chains (each in its own 64KB-aligned page).
pub(super) const T0: u64 = 0x1000_0000;
pub(super) const T1: u64 = 0x1001_0000;
pub(super) const T2: u64 = 0x1002_0000;
pub(super) const T3: u64 = 0x1003_0000;

pub(super) fn walk(
    regs: &Stage1Regs,
    p: PaRange,
    va: u64,
    mem: &FakeMemory,
) -> crate::s1walk::WalkReport {
    walk_aarch64(regs, p, Va(va), Access::Data, mem)
}

#[test]
fn four_k_page_translates_through_four_levels_reading_one_descriptor_per_level() {
    let mut mem = FakeMemory::new();
    let va = 0x0000_0081_4060_3123;
    mem.set(0x1000_0008, table(0x1000_1000))
        .set(0x1000_1028, table(0x1000_2000))
        .set(0x1000_2018, table(0x1000_3000))
        .set(0x1000_3018, page(0x8000_0000));
    let report = walk(&mmu_on(TCR_4K_48, T0, 0), PaRange::Bits48, va, &mem);
    assert_eq!(ipa(&report), 0x8000_0123);
    assert_eq!(
        reads(&report),
        [
            (0, 0x1000_0008),
            (1, 0x1000_1028),
            (2, 0x1000_2018),
            (3, 0x1000_3018)
        ]
    );
    let leaf = report.translation().and_then(|t| t.leaf).expect("a leaf");
    assert_eq!(
        (leaf.level, leaf.kind, leaf.size_bits),
        (Level::L3, LeafKind::Page, 12)
    );
    assert_eq!(
        leaf.descriptor,
        page(0x8000_0000),
        "attributes reported raw"
    );
}

#[test]
fn ttbr1_translates_high_vas() {
    // (TCR, granule bits, input bits, start level, VA)
    let rows = [
        (TCR_4K_48, 12, 48, 0, 0xFFFF_8000_0000_1000_u64),
        (
            tcr(16, TG0_4K, 22, TG1_64K, IPS_48),
            16,
            42,
            2,
            0xFFFF_FC00_0001_0000,
        ),
        (
            tcr(16, TG0_4K, 17, TG1_16K, IPS_48),
            14,
            47,
            1,
            0xFFFF_C000_0000_4000,
        ),
    ];
    for (tcr, granule_bits, input_bits, start, va) in rows {
        let mut mem = FakeMemory::new();
        let tables = &[T0, T1, T2, T3][..(4 - start) as usize];
        let written = chain(
            &mut mem,
            granule_bits,
            input_bits,
            va,
            start,
            tables,
            page(0x7000_0000),
        );
        let report = walk(&mmu_on(tcr, 0xDEAD_0000, T0), PaRange::Bits48, va, &mem);
        assert_eq!(ipa(&report), 0x7000_0000 | (va & ((1 << granule_bits) - 1)));
        assert_eq!(report.trace.reads()[0].ipa.raw(), written[0], "{va:#x}");
        assert_eq!(report.trace.reads()[0].level.number(), start as i8);
    }
}

#[test]
fn top_byte_is_ignored_with_tbi_for_data_but_not_for_fetches_with_tbid() {
    let va = 0x8000_1000;
    let tagged = 0xAB00_0000_8000_1000;
    let mut mem = FakeMemory::new();
    chain(
        &mut mem,
        12,
        48,
        va,
        0,
        &[T0, T1, T2, T3],
        page(0x6000_0000),
    );
    let with = |bits: u64| mmu_on(TCR_4K_48 | bits, T0, 0);
    let fetch = |regs: &Stage1Regs| {
        walk_aarch64(
            regs,
            PaRange::Bits48,
            Va(tagged),
            Access::InstructionFetch,
            &mem,
        )
    };
    assert_eq!(
        ipa(&walk(&with(TBI0), PaRange::Bits48, tagged, &mem)),
        0x6000_0000
    );
    assert_eq!(ipa(&fetch(&with(TBI0))), 0x6000_0000);
    assert_eq!(
        ipa(&walk(&with(TBI0 | TBID0), PaRange::Bits48, tagged, &mem)),
        0x6000_0000
    );
    let untagged = at(FaultKind::Translation, 0);
    assert_eq!(
        fault(&walk(&with(0), PaRange::Bits48, tagged, &mem)),
        untagged
    );
    assert_eq!(fault(&fetch(&with(TBI0 | TBID0))), untagged);
}

#[test]
fn tbi1_ignores_the_top_byte_of_ttbr1_addresses() {
    let va = 0xFFFF_FF80_0000_1000;
    let tagged = 0x12FF_FF80_0000_1000;
    let mut mem = FakeMemory::new();
    chain(
        &mut mem,
        12,
        48,
        va,
        0,
        &[T0, T1, T2, T3],
        page(0x6000_0000),
    );
    let report = walk(
        &mmu_on(TCR_4K_48 | TBI1, 0, T0),
        PaRange::Bits48,
        tagged,
        &mem,
    );
    assert_eq!(ipa(&report), 0x6000_0000);
    let report = walk(
        &mmu_on(TCR_4K_48 | TBI0, 0, T0),
        PaRange::Bits48,
        tagged,
        &mem,
    );
    assert_eq!(
        fault(&report),
        at(FaultKind::Translation, 0),
        "TBI0 is not TBI1"
    );
}

#[test]
fn va_outside_the_region_is_a_translation_fault_at_level_0_even_when_the_walk_starts_lower() {
    let regs = mmu_on(tcr(25, TG0_4K, 25, TG1_4K, IPS_48), T0, T0);
    let mem = FakeMemory::new();
    for va in [
        1 << 39,
        0x0000_8000_0000_0000,
        0xFFFF_FF00_0000_0000,
        0x0080_0000_0000_0000,
    ] {
        let report = walk(&regs, PaRange::Bits48, va, &mem);
        assert_eq!(fault(&report), at(FaultKind::Translation, 0), "{va:#x}");
        assert!(report.trace.reads().is_empty());
    }
}

#[test]
fn epd_disables_the_walk_with_a_level_0_translation_fault() {
    let mem = FakeMemory::new();
    for (bits, va) in [(EPD0, 0x1000), (EPD1, 0xFFFF_0000_0000_1000)] {
        let report = walk(&mmu_on(TCR_4K_48 | bits, T0, T0), PaRange::Bits48, va, &mem);
        assert_eq!(fault(&report), at(FaultKind::Translation, 0));
        assert!(report.trace.reads().is_empty());
    }
}

#[test]
fn txsz_outside_16_to_39_is_a_translation_fault_at_level_0() {
    let mem = FakeMemory::new();
    for t0sz in [0, 15, 40, 63] {
        let regs = mmu_on(tcr(t0sz, TG0_4K, 16, TG1_4K, IPS_48), T0, 0);
        assert_eq!(
            fault(&walk(&regs, PaRange::Bits48, 0, &mem)),
            at(FaultKind::Translation, 0)
        );
    }
}

#[test]
fn sixty_four_k_start_levels_and_first_table_indices_follow_t0sz() {
    // (T0SZ, VA, first read (level, IPA), reads)
    let ttbr = 0x100_0000;
    let rows = [
        (16, 0x0000_8400_0003_0000_u64, (1, ttbr + 0x21 * 8), 3),
        (22, 0x0000_0200_2003_0000, (2, ttbr + 0x1001 * 8), 2),
        (25, 0x0000_0040_2003_0000, (2, ttbr + 0x201 * 8), 2),
    ];
    for (t0sz, va, first, count) in rows {
        let mut mem = FakeMemory::new();
        let tables = [ttbr, T1, T2, T3];
        let start = first.0 as u32;
        chain(
            &mut mem,
            16,
            64 - t0sz as u32,
            va,
            start,
            &tables[..count],
            page(0x9000_0000),
        );
        let regs = mmu_on(tcr(t0sz, TG0_64K, 16, TG1_4K, IPS_48), ttbr, 0);
        let report = walk(&regs, PaRange::Bits48, va, &mem);
        assert_eq!(reads(&report)[0], first, "T0SZ {t0sz}");
        assert_eq!(reads(&report).len(), count);
        assert_eq!(ipa(&report), 0x9000_0000 | (va & 0xFFFF));
    }
}

#[test]
fn sixteen_k_with_t0sz_16_starts_at_a_two_entry_level_0() {
    let ttbr = 0x40_0000;
    let va = 0x0000_8000_0000_4000;
    let mut mem = FakeMemory::new();
    chain(
        &mut mem,
        14,
        48,
        va,
        0,
        &[ttbr, T1, T2, T3],
        page(0x9000_0000),
    );
    let regs = mmu_on(tcr(16, TG0_16K, 16, TG1_4K, IPS_48), ttbr, 0);
    let report = walk(&regs, PaRange::Bits48, va, &mem);
    assert_eq!(
        reads(&report),
        [(0, ttbr + 8), (1, T1), (2, T2), (3, T3 + 8)]
    );
    assert_eq!(ipa(&report), 0x9000_0000);
    // T0SZ 17: the walk starts at level 1, whose table VA[46:36] indexes.
    let regs = mmu_on(tcr(17, TG0_16K, 16, TG1_4K, IPS_48), ttbr, 0);
    let report = walk(&regs, PaRange::Bits48, 0x0000_0010_0000_0000, &mem);
    assert_eq!(reads(&report)[0], (1, ttbr + 8));
}

#[test]
fn blocks_translate_only_at_the_levels_the_granule_allows() {
    // (T0SZ, TG0, granule bits, start, tables, leaf level or None for a translation fault)
    let rows: [(u64, u64, u32, u32, usize, Option<i8>); 6] = [
        (16, TG0_4K, 12, 0, 1, None),
        (16, TG0_4K, 12, 0, 2, Some(1)),
        (16, TG0_16K, 14, 0, 2, None),
        (16, TG0_16K, 14, 0, 3, Some(2)),
        (16, TG0_64K, 16, 1, 1, None),
        (16, TG0_64K, 16, 1, 2, Some(2)),
    ];
    for (t0sz, tg0, bits, start, depth, leaf_level) in rows {
        let mut mem = FakeMemory::new();
        let va = 0x4000_0000;
        chain(
            &mut mem,
            bits,
            48,
            va,
            start,
            &[T0, T1, T2][..depth],
            block(0x8000_0000),
        );
        let regs = mmu_on(tcr(t0sz, tg0, 16, TG1_4K, IPS_48), T0, 0);
        let report = walk(&regs, PaRange::Bits48, va, &mem);
        let level = start as i8 + depth as i8 - 1;
        match leaf_level {
            Some(n) => {
                assert_eq!(ipa(&report), 0x8000_0000, "granule {bits}");
                let leaf = report.translation().and_then(|t| t.leaf).expect("a leaf");
                assert_eq!((leaf.level.number(), leaf.kind), (n, LeafKind::Block));
            }
            None => assert_eq!(fault(&report), at(FaultKind::Translation, level), "{bits}"),
        }
    }
}

#[test]
fn invalid_descriptors_and_level_3_blocks_are_translation_faults_at_their_level() {
    let va = 0x4000_1000;
    let rows: [(&[u64], u64, i8); 3] = [
        (&[T0], 0, 0),
        (&[T0, T1, T2], 0x8000_0000 | AF_UNSET, 2),
        (&[T0, T1, T2, T3], block(0x8000_0000), 3),
    ];
    for (tables, leaf, level) in rows {
        let mut mem = FakeMemory::new();
        chain(&mut mem, 12, 48, va, 0, tables, leaf);
        let report = walk(&mmu_on(TCR_4K_48, T0, 0), PaRange::Bits48, va, &mem);
        assert_eq!(fault(&report), at(FaultKind::Translation, level));
    }
}

/// A descriptor with bit 0 clear: invalid whatever else it holds.
const AF_UNSET: u64 = 0b10;

#[test]
fn big_endian_walks_read_descriptors_byte_reversed() {
    let va = 0x4000_1000;
    let mut mem = FakeMemory::new();
    mem.big_endian = true;
    chain(
        &mut mem,
        12,
        48,
        va,
        0,
        &[T0, T1, T2, T3],
        page(0x6000_0000),
    );
    let be = Stage1Regs {
        sctlr_el1: 1 | EE,
        ..mmu_on(TCR_4K_48, T0, 0)
    };
    assert_eq!(ipa(&walk(&be, PaRange::Bits48, va, &mem)), 0x6000_0000);
    let le = mmu_on(TCR_4K_48, T0, 0);
    assert_eq!(
        fault(&walk(&le, PaRange::Bits48, va, &mem)),
        at(FaultKind::Translation, 0)
    );
}

#[test]
fn ttbr_bits_below_the_first_table_and_cnp_are_ignored() {
    let va = 0x4000_1000;
    let mut mem = FakeMemory::new();
    chain(
        &mut mem,
        12,
        48,
        va,
        0,
        &[T0, T1, T2, T3],
        page(0x6000_0000),
    );
    let regs = mmu_on(TCR_4K_48, T0 | 0xFF0 | 1, 0);
    let report = walk(&regs, PaRange::Bits48, va, &mem);
    assert_eq!(ipa(&report), 0x6000_0000);
    assert_eq!(reads(&report)[0], (0, T0));
}
