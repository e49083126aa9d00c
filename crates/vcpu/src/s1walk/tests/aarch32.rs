//! AArch32 walks: the long-descriptor format with its TTBR0/TTBR1 split, the short-descriptor
//! format's sections, supersections and pages, endianness, MMU off.

use super::{FakeMemory, at, block, chain, fault, ipa, mmu_on, page, reads, table};
use crate::s1walk::{
    FaultKind, LeafKind, Stage1Regs, WalkFault, WalkRead, WalkReport, level_reading, walk_aarch32,
};
use moat_arm::addr::{Ipa, Va};
use moat_arm::fsc::{Fsc, Level};
use moat_arm::fsr32::Fault32;
use moat_arm::parange::PaRange;

const EAE: u64 = 1 << 31;
const EPD0: u64 = 1 << 7;
const EPD1: u64 = 1 << 23;
const PD0: u64 = 1 << 4;
const PD1: u64 = 1 << 5;
const EE: u64 = 1 << 25;

/// A long-descriptor `TTBCR`.
const fn lpae(t0sz: u64, t1sz: u64) -> u64 {
    EAE | t0sz | t1sz << 16
}

fn walk(regs: &Stage1Regs, p: PaRange, va: u32, mem: &FakeMemory) -> WalkReport {
    walk_aarch32(regs, p, Va(u64::from(va)), mem)
}

const T0: u64 = 0x1000_0000;
const T1: u64 = 0x1001_0000;
const T2: u64 = 0x1002_0000;

#[test]
fn lpae_with_t0sz_0_walks_every_va_from_ttbr0_starting_at_level_1() {
    let mut mem = FakeMemory::new();
    mem.set(0x1000_0018, table(0x1000_1000))
        .set(0x1000_1010, table(0x1000_2000))
        .set(0x1000_2018, page(0x8000_0000));
    let report = walk(
        &mmu_on(lpae(0, 0), T0, 0xDEAD_0000),
        PaRange::Bits40,
        0xC040_3123,
        &mem,
    );
    assert_eq!(ipa(&report), 0x8000_0123);
    assert_eq!(
        reads(&report),
        [(1, 0x1000_0018), (2, 0x1000_1010), (3, 0x1000_2018)]
    );
}

#[test]
fn lpae_t0sz_and_t1sz_split_the_va_space_between_ttbr0_and_ttbr1() {
    // (T0SZ, T1SZ, VA, from TTBR1, first level)
    let rows = [
        (1, 1, 0x8000_1000_u32, true, 1),
        (1, 1, 0x7FFF_F000, false, 1),
        (2, 2, 0xC000_1000, true, 2),
        (2, 2, 0x3FFF_F000, false, 2),
        (0, 2, 0xC000_1000, true, 2),
        (0, 2, 0x8000_0000, false, 1),
    ];
    for (t0sz, t1sz, va, upper, start) in rows {
        let mut mem = FakeMemory::new();
        let root = if upper { T1 } else { T0 };
        let input_bits = 32 - if upper { t1sz } else { t0sz } as u32;
        let tables = [root, T2, 0x1003_0000];
        let depth = (4 - start) as usize;
        chain(
            &mut mem,
            12,
            input_bits,
            u64::from(va),
            start,
            &tables[..depth],
            page(0x5000_0000),
        );
        let report = walk(&mmu_on(lpae(t0sz, t1sz), T0, T1), PaRange::Bits40, va, &mem);
        assert_eq!(ipa(&report), 0x5000_0000 | u64::from(va & 0xFFF), "{va:#x}");
        assert_eq!(reads(&report)[0].0, start as i8, "{va:#x}");
    }
}

#[test]
fn lpae_va_in_the_gap_or_a_disabled_region_is_a_translation_fault_at_level_1() {
    let mem = FakeMemory::new();
    let rows = [
        (lpae(2, 2), 0x4000_0000_u32),
        (lpae(2, 2), 0xBFFF_FFFF),
        (lpae(0, 0) | EPD0, 0x1000),
        (lpae(1, 1) | EPD1, 0x8000_0000),
    ];
    for (ttbcr, va) in rows {
        let report = walk(&mmu_on(ttbcr, T0, T1), PaRange::Bits40, va, &mem);
        assert_eq!(fault(&report), at(FaultKind::Translation, 1), "{va:#x}");
        assert!(report.trace.reads().is_empty());
    }
}

#[test]
fn lpae_addresses_beyond_min_of_p_and_40_bits_are_address_size_faults() {
    let va = 0x4000_1000_u32;
    let regs = mmu_on(lpae(0, 0), T0, 0);
    // (P, tables from level 1, leaf descriptor, expected fault level or None)
    let rows: [(PaRange, &[u64], u64, Option<i8>); 6] = [
        (PaRange::Bits36, &[T0, T1], block(1 << 36), Some(2)),
        (PaRange::Bits36, &[T0], block(1 << 36), Some(1)),
        (PaRange::Bits36, &[T0], table(1 << 36), Some(1)),
        (PaRange::Bits44, &[T0, T1, T2], page(1 << 40), Some(3)),
        (PaRange::Bits48, &[T0, T1], table(1 << 41), Some(2)),
        (PaRange::Bits44, &[T0, T1, T2], page(1 << 39), None),
    ];
    for (p, tables, leaf, level) in rows {
        let mut mem = FakeMemory::new();
        chain(&mut mem, 12, 32, u64::from(va), 1, tables, leaf);
        let report = walk(&regs, p, va, &mem);
        match level {
            Some(n) => assert_eq!(fault(&report), at(FaultKind::AddressSize, n), "{p:?}"),
            None => assert_eq!(ipa(&report), 1 << 39),
        }
    }
}

#[test]
fn lpae_ttbr_beyond_the_pa_size_is_an_address_size_fault_at_level_0() {
    let mem = FakeMemory::new();
    for (p, ttbr) in [(PaRange::Bits36, 1 << 36), (PaRange::Bits48, 1 << 40)] {
        let report = walk(&mmu_on(lpae(0, 0), ttbr, 0), p, 0x1000, &mem);
        assert_eq!(fault(&report), at(FaultKind::AddressSize, 0));
    }
}

#[test]
fn lpae_big_endian_walks_read_descriptors_byte_reversed() {
    let va = 0x4000_1000_u32;
    let mut mem = FakeMemory::new();
    mem.big_endian = true;
    chain(
        &mut mem,
        12,
        32,
        u64::from(va),
        1,
        &[T0, T1, T2],
        page(0x6000_0000),
    );
    let regs = Stage1Regs {
        sctlr_el1: 1 | EE,
        ..mmu_on(lpae(0, 0), T0, 0)
    };
    assert_eq!(ipa(&walk(&regs, PaRange::Bits40, va, &mem)), 0x6000_0000);
}

/// A short-descriptor `TTBCR` with `N`.
const fn short(n: u64) -> u64 {
    n
}

const SECTION: u64 = 0b10;
const SUPERSECTION: u64 = 1 << 18 | 0b10;
const PAGE_TABLE: u64 = 0b01;
const SMALL_PAGE: u64 = 0b10;
const LARGE_PAGE: u64 = 0b01;

/// (leaf kind, level) of a translated report.
fn leaf_of(report: &WalkReport) -> (LeafKind, i8) {
    let leaf = report.translation().and_then(|t| t.leaf).expect("a leaf");
    (leaf.kind, leaf.level.number())
}

#[test]
fn short_sections_and_supersections_translate_at_level_1() {
    let va = 0x1234_5678_u32;
    let regs = mmu_on(short(0), 0x4000, 0);
    let slot = 0x4000 + 0x123 * 4;
    let mut mem = FakeMemory::new();
    mem.set(slot, 0x8760_0000 | SECTION);
    let report = walk(&regs, PaRange::Bits40, va, &mem);
    assert_eq!(ipa(&report), 0x8764_5678);
    assert_eq!(leaf_of(&report), (LeafKind::Section, 1));
    assert_eq!(reads(&report), [(1, slot)]);
    // PA[39:36] from bits [8:5], PA[35:32] from bits [23:20].
    mem.set(slot, 0x8700_0000 | 0xA << 20 | 0x5 << 5 | SUPERSECTION);
    let report = walk(&regs, PaRange::Bits40, va, &mem);
    assert_eq!(ipa(&report), 0x5A_8734_5678);
    assert_eq!(leaf_of(&report), (LeafKind::Supersection, 1));
}

#[test]
fn short_small_and_large_pages_translate_at_level_2() {
    let va = 0x1234_5678_u32;
    let regs = mmu_on(short(0), 0x4000, 0);
    let l2_slot = 0x0010_0400 + 0x45 * 4;
    let mut mem = FakeMemory::new();
    mem.set(0x4000 + 0x123 * 4, 0x0010_0400 | PAGE_TABLE)
        .set(l2_slot, 0x9000_0000 | SMALL_PAGE | 1);
    let report = walk(&regs, PaRange::Bits40, va, &mem);
    assert_eq!(ipa(&report), 0x9000_0678);
    assert_eq!(leaf_of(&report), (LeafKind::SmallPage, 2));
    assert_eq!(reads(&report), [(1, 0x4000 + 0x48C), (2, l2_slot)]);
    mem.set(l2_slot, 0x9001_0000 | LARGE_PAGE);
    let report = walk(&regs, PaRange::Bits40, va, &mem);
    assert_eq!(ipa(&report), 0x9001_5678);
    assert_eq!(leaf_of(&report), (LeafKind::LargePage, 2));
}

#[test]
fn short_fault_descriptors_are_translation_faults_at_their_level() {
    let va = 0x1234_5678_u32;
    let regs = mmu_on(short(0), 0x4000, 0);
    let mut mem = FakeMemory::new();
    assert_eq!(
        fault(&walk(&regs, PaRange::Bits40, va, &mem)),
        at(FaultKind::Translation, 1)
    );
    mem.set(0x4000 + 0x123 * 4, 0x0010_0400 | PAGE_TABLE);
    assert_eq!(
        fault(&walk(&regs, PaRange::Bits40, va, &mem)),
        at(FaultKind::Translation, 2)
    );
}

#[test]
fn short_ttbcr_n_splits_between_ttbr0_and_ttbr1_and_pd_disables_walks() {
    let mem = FakeMemory::new();
    let regs = mmu_on(short(2), 0x3000 | 0x7F, 0x8000);
    // N = 2: TTBR0 for VA[31:30] = 0, its table 4KB and indexed by VA[29:20].
    assert_eq!(
        reads(&walk(&regs, PaRange::Bits40, 0x2340_0000, &mem)),
        [(1, 0x38D0)]
    );
    assert_eq!(
        reads(&walk(&regs, PaRange::Bits40, 0x8000_0000, &mem)),
        [(1, 0xA000)]
    );
    for (pd, va) in [(PD0, 0x1000_u32), (PD1, 0xC000_0000)] {
        let regs = mmu_on(short(2) | pd, 0x3000, 0x8000);
        let report = walk(&regs, PaRange::Bits40, va, &mem);
        assert_eq!(fault(&report), at(FaultKind::Translation, 1));
        assert!(report.trace.reads().is_empty());
    }
}

#[test]
fn short_page_table_in_a_hole_is_a_walk_read_fault_at_level_2() {
    let va = 0x1234_5678_u32;
    let mut mem = FakeMemory::new();
    mem.hole(0x0010_0000, 0x0020_0000)
        .set(0x4000 + 0x123 * 4, 0x0010_0400 | PAGE_TABLE);
    let report = walk(&mmu_on(short(0), 0x4000, 0), PaRange::Bits40, va, &mem);
    let kind = FaultKind::WalkRead {
        ipa: Ipa(0x0010_0514),
        why: WalkRead::OutsideRam,
    };
    assert_eq!(fault(&report), at(kind, 2));
    assert_eq!(level_reading(&report, Ipa(0x0010_0000)), Some(Level::L2));
    assert_eq!(level_reading(&report, Ipa(0x4000)), Some(Level::L1));
}

#[test]
fn short_big_endian_walks_read_descriptors_byte_reversed() {
    let va = 0x1234_5678_u32;
    let mut mem = FakeMemory::new();
    mem.big_endian = true;
    mem.set(0x4000 + 0x123 * 4, 0x8760_0000 | SECTION);
    let be = Stage1Regs {
        sctlr_el1: 1 | EE,
        ..mmu_on(short(0), 0x4000, 0)
    };
    assert_eq!(ipa(&walk(&be, PaRange::Bits40, va, &mem)), 0x8764_5678);
}

#[test]
fn aarch32_mmu_off_outputs_the_va() {
    let mem = FakeMemory::new();
    for ttbcr in [short(0), lpae(0, 0)] {
        let off = Stage1Regs {
            tcr_el1: ttbcr,
            ..Stage1Regs::default()
        };
        let report = walk(&off, PaRange::Bits32, 0xFFFF_F000, &mem);
        assert_eq!(ipa(&report), 0xFFFF_F000);
        assert!(report.translation().and_then(|t| t.leaf).is_none());
    }
}

#[test]
fn walk_faults_map_to_the_fault_status_codes_of_both_states() {
    let read = FaultKind::WalkRead {
        ipa: Ipa(0),
        why: WalkRead::DeviceWindow,
    };
    let rows = [
        (
            FaultKind::Translation,
            Fsc::Translation { level: Level::L1 },
        ),
        (
            FaultKind::AddressSize,
            Fsc::AddressSize { level: Level::L1 },
        ),
        (read, Fsc::SyncExternalOnWalk { level: Level::L1 }),
    ];
    for (kind, fsc) in rows {
        let f = WalkFault {
            kind,
            level: Level::L1,
        };
        assert_eq!(f.fsc(), fsc);
    }
    let f = WalkFault {
        kind: read,
        level: Level::L2,
    };
    assert_eq!(
        f.fault32(),
        Fault32::SyncExternalOnWalk { level: Level::L2 }
    );
}

#[test]
fn short_level_1_type_0b11_is_a_section_with_pxn() {
    let va = 0x1234_5678_u32;
    let mut mem = FakeMemory::new();
    mem.set(0x4000 + 0x123 * 4, 0x8760_0000 | 0b11);
    let report = walk(&mmu_on(short(0), 0x4000, 0), PaRange::Bits40, va, &mem);
    assert_eq!(ipa(&report), 0x8764_5678);
    assert_eq!(leaf_of(&report), (LeafKind::Section, 1));
}
