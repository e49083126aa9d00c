//! VMSAv8-64 walks: granules and start levels, regions, TBI, EPD, address size faults, walk
//! reads, endianness, MMU off.

use super::{FakeMemory, at, block, chain, fault, ipa, mmu_on, page, reads, table};
use crate::s1walk::{
    Access, FaultKind, LeafKind, Stage1Regs, WalkRead, level_reading, walk_aarch64,
};
use moat_arm::addr::{Ipa, Va};
use moat_arm::fsc::Level;
use moat_arm::parange::PaRange;

const TG0_4K: u64 = 0b00;
const TG0_64K: u64 = 0b01;
const TG0_16K: u64 = 0b10;
const TG1_16K: u64 = 0b01;
const TG1_4K: u64 = 0b10;
const TG1_64K: u64 = 0b11;
const IPS_36: u64 = 0b001;
const IPS_48: u64 = 0b101;
const IPS_52: u64 = 0b110;
const EPD0: u64 = 1 << 7;
const EPD1: u64 = 1 << 23;
const TBI0: u64 = 1 << 37;
const TBI1: u64 = 1 << 38;
const TBID0: u64 = 1 << 51;
const EE: u64 = 1 << 25;

/// `TCR_EL1` from its fields.
const fn tcr(t0sz: u64, tg0: u64, t1sz: u64, tg1: u64, ips: u64) -> u64 {
    t0sz | tg0 << 14 | t1sz << 16 | tg1 << 30 | ips << 32
}

/// 48-bit regions with 4KB granules on both halves, IPS 48.
const TCR_4K_48: u64 = tcr(16, TG0_4K, 16, TG1_4K, IPS_48);

/// Table addresses for chains (each in its own 64KB-aligned page).
const T0: u64 = 0x1000_0000;
const T1: u64 = 0x1001_0000;
const T2: u64 = 0x1002_0000;
const T3: u64 = 0x1003_0000;

fn walk(regs: &Stage1Regs, p: PaRange, va: u64, mem: &FakeMemory) -> crate::s1walk::WalkReport {
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
fn leaf_output_at_or_above_the_pa_size_is_an_address_size_fault_at_the_leaf_level() {
    // Tight mode: P = 44, the guest's IPS = 48 (SPEC.md §2).
    let regs = mmu_on(TCR_4K_48, T0, 0);
    let va = 0x4000_1000;
    // (tables from level 0, leaf descriptor, expected level)
    let rows: [(&[u64], u64, i8); 3] = [
        (&[T0, T1, T2, T3], page(1 << 44), 3),
        (&[T0, T1, T2], block(1 << 44), 2),
        (&[T0, T1], block(1 << 44), 1),
    ];
    for (tables, leaf, level) in rows {
        let mut mem = FakeMemory::new();
        chain(&mut mem, 12, 48, va, 0, tables, leaf);
        let report = walk(&regs, PaRange::Bits44, va, &mem);
        assert_eq!(
            fault(&report),
            at(FaultKind::AddressSize, level),
            "{tables:?}"
        );
        assert_eq!(report.trace.reads().len(), tables.len());
    }
}

#[test]
fn leaf_output_just_below_the_pa_size_translates() {
    let mut mem = FakeMemory::new();
    let va = 0x4000_1000;
    chain(
        &mut mem,
        12,
        48,
        va,
        0,
        &[T0, T1, T2, T3],
        page((1 << 44) - 0x1000),
    );
    let report = walk(&mmu_on(TCR_4K_48, T0, 0), PaRange::Bits44, va, &mem);
    assert_eq!(ipa(&report), (1 << 44) - 0x1000);
}

#[test]
fn table_address_at_or_above_the_pa_size_faults_at_the_table_descriptor_level() {
    let regs = mmu_on(TCR_4K_48, T0, 0);
    let va = 0x4000_1000;
    for (depth, level) in [(1, 0), (2, 1), (3, 2)] {
        let mut mem = FakeMemory::new();
        let tables = &[T0, T1, T2][..depth];
        chain(&mut mem, 12, 48, va, 0, tables, table(1 << 44));
        let report = walk(&regs, PaRange::Bits44, va, &mem);
        assert_eq!(fault(&report), at(FaultKind::AddressSize, level));
        let last = report.trace.reads().last().expect("a read");
        assert_eq!(
            last.level.number(),
            level,
            "the descriptor that held the address"
        );
    }
}

#[test]
fn ttbr_beyond_the_pa_size_is_an_address_size_fault_at_level_0_whatever_the_start_level() {
    // (TCR, start level of the walk)
    let rows = [
        (TCR_4K_48, 0),
        (tcr(25, TG0_4K, 16, TG1_4K, IPS_48), 1),
        (tcr(22, TG0_64K, 16, TG1_4K, IPS_48), 2),
    ];
    let mem = FakeMemory::new();
    for (tcr, _start) in rows {
        let report = walk(&mmu_on(tcr, 1 << 44, 0), PaRange::Bits44, 0x1000, &mem);
        assert_eq!(fault(&report), at(FaultKind::AddressSize, 0), "{tcr:#x}");
        assert!(report.trace.reads().is_empty(), "no descriptor is read");
    }
}

#[test]
fn ips_above_p_is_capped_at_p() {
    let va = 0x4000_1000;
    let mut mem = FakeMemory::new();
    chain(&mut mem, 12, 48, va, 0, &[T0, T1, T2, T3], page(1 << 40));
    let ips52 = mmu_on(tcr(16, TG0_4K, 16, TG1_4K, IPS_52), T0, 0);
    assert_eq!(
        fault(&walk(&ips52, PaRange::Bits40, va, &mem)),
        at(FaultKind::AddressSize, 3)
    );
    assert_eq!(ipa(&walk(&ips52, PaRange::Bits44, va, &mem)), 1 << 40);
}

#[test]
fn ips_below_p_sets_the_pa_size() {
    let va = 0x4000_1000;
    let mut mem = FakeMemory::new();
    chain(&mut mem, 12, 48, va, 0, &[T0, T1, T2], block(1 << 36));
    let regs = mmu_on(tcr(16, TG0_4K, 16, TG1_4K, IPS_36), T0, 0);
    assert_eq!(
        fault(&walk(&regs, PaRange::Bits44, va, &mem)),
        at(FaultKind::AddressSize, 2)
    );
}

#[test]
fn table_in_a_hole_is_a_walk_read_fault_at_the_next_level() {
    let va = 0x4000_1000;
    let hole = 0x2000_0000;
    let mut mem = FakeMemory::new();
    mem.hole(hole, hole + 0x10_0000);
    chain(&mut mem, 12, 48, va, 0, &[T0, T1, hole], page(0x5000_0000));
    let report = walk(&mmu_on(TCR_4K_48, T0, 0), PaRange::Bits48, va, &mem);
    let read_ipa = Ipa(hole);
    let expected = FaultKind::WalkRead {
        ipa: read_ipa,
        why: WalkRead::OutsideRam,
    };
    assert_eq!(fault(&report), at(expected, 2));
    assert_eq!(level_reading(&report, Ipa(hole + 0xABC)), Some(Level::L2));
    assert_eq!(
        report.trace.reads().last().map(|r| r.descriptor),
        Some(None)
    );
}

#[test]
fn table_between_the_ipa_size_and_the_pa_size_is_a_walk_read_fault_at_the_next_level() {
    // S = 36: RAM ends at 2^36, P = 44; a level-0 table descriptor points to 2^40.
    let va = 0x4000_1000;
    let mut mem = FakeMemory::new();
    mem.ram_end = 1 << 36;
    chain(&mut mem, 12, 48, va, 0, &[T0, 1 << 40], page(0x5000_0000));
    let report = walk(&mmu_on(TCR_4K_48, T0, 0), PaRange::Bits44, va, &mem);
    let kind = FaultKind::WalkRead {
        ipa: Ipa((1 << 40) + 8),
        why: WalkRead::OutsideRam,
    };
    assert_eq!(fault(&report), at(kind, 1));
}

#[test]
fn level_reading_names_the_level_of_each_descriptor_page_and_none_elsewhere() {
    let va = 0x4000_1000;
    let mut mem = FakeMemory::new();
    chain(
        &mut mem,
        12,
        48,
        va,
        0,
        &[T0, T1, T2, T3],
        page(0x5000_0000),
    );
    let report = walk(&mmu_on(TCR_4K_48, T0, 0), PaRange::Bits48, va, &mem);
    for (n, t) in [T0, T1, T2, T3].into_iter().enumerate() {
        let level = level_reading(&report, Ipa(t + 0xFFF)).map(Level::number);
        assert_eq!(level, Some(n as i8));
    }
    assert_eq!(level_reading(&report, Ipa(0x5000_0000)), None);
}

#[test]
fn level_reading_picks_the_first_level_when_two_levels_read_the_same_page() {
    // 16KB granule, 48-bit: a 2-entry level-0 table placed inside the level-1 table's page.
    let regs = mmu_on(tcr(16, TG0_16K, 16, TG1_4K, IPS_48), 0x10_0FF0, 0);
    let mut mem = FakeMemory::new();
    let tables = [0x10_0FF0, 0x10_0000, 0x20_0000, 0x30_0000];
    chain(&mut mem, 14, 48, 0x4000, 0, &tables, page(0x5000_0000));
    let report = walk(&regs, PaRange::Bits48, 0x4000, &mem);
    assert_eq!(reads(&report)[..2], [(0, 0x10_0FF0), (1, 0x10_0000)]);
    assert_eq!(level_reading(&report, Ipa(0x10_0000)), Some(Level::L0));
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

#[test]
fn mmu_off_outputs_the_va_below_the_pa_size_and_an_address_size_fault_at_level_0_above() {
    let off = |tcr: u64| Stage1Regs {
        tcr_el1: tcr,
        ..Stage1Regs::default()
    };
    let mem = FakeMemory::new();
    let p = PaRange::Bits40;
    assert_eq!(ipa(&walk(&off(0), p, 0xFF_FFFF_F000, &mem)), 0xFF_FFFF_F000);
    assert_eq!(
        fault(&walk(&off(0), p, 1 << 40, &mem)),
        at(FaultKind::AddressSize, 0)
    );
    let tagged = 0x5A00_0000_0000_1000;
    assert_eq!(
        ipa(&walk(&off(TBI0), p, tagged, &mem)),
        0x1000,
        "TBI drops the top byte"
    );
    assert_eq!(
        fault(&walk(&off(0), p, tagged, &mem)),
        at(FaultKind::AddressSize, 0)
    );
    let fetch = walk_aarch64(
        &off(TBI0 | TBID0),
        p,
        Va(tagged),
        Access::InstructionFetch,
        &mem,
    );
    assert_eq!(fault(&fetch), at(FaultKind::AddressSize, 0));
    // IPS plays no part with the MMU off: PAMax (here P) decides.
    let ips36 = off(tcr(16, TG0_4K, 16, TG1_4K, IPS_36));
    assert_eq!(ipa(&walk(&ips36, p, 1 << 38, &mem)), 1 << 38);
}
