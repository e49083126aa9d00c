//! Address size faults (leaf, table and `TTBRn` addresses; IPS capped at P), walk reads from
//! holes and `level_reading`, and the MMU-off translation of `AArch64.TranslateAddressS1Off()`.

use super::aarch64::{
    IPS_36, IPS_48, IPS_52, T0, T1, T2, T3, TBI0, TBID0, TCR_4K_48, TG0_4K, TG0_16K, TG0_64K,
    TG1_4K, tcr, walk,
};
use super::{FakeMemory, at, block, chain, fault, ipa, mmu_on, page, reads, table};
use crate::s1walk::{Access, FaultKind, Stage1Regs, WalkRead, level_reading, walk_aarch64};
use moat_arm::addr::{Ipa, Va};
use moat_arm::fsc::Level;
use moat_arm::parange::PaRange;

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

#[test]
fn sixteen_and_sixty_four_k_leaves_beyond_the_pa_size_fault_at_the_leaf_level() {
    // (TG0, tables from the start level, leaf, level); 48-bit regions.
    let rows: [(u64, &[u64], u64, i8); 4] = [
        (TG0_64K, &[T0, T1, T2], page(1 << 44), 3),
        (TG0_64K, &[T0, T1], block(1 << 44), 2),
        (TG0_16K, &[T0, T1, T2, T3], page(1 << 44), 3),
        (TG0_16K, &[T0, T1, T2], block(1 << 44), 2),
    ];
    let va = 0x4000_0000;
    for (tg0, tables, leaf, level) in rows {
        // (granule bits, start level) for a 48-bit region.
        let (bits, start) = if tg0 == TG0_64K { (16, 1) } else { (14, 0) };
        let mut mem = FakeMemory::new();
        chain(&mut mem, bits, 48, va, start, tables, leaf);
        let regs = mmu_on(tcr(16, tg0, 16, TG1_4K, IPS_48), T0, 0);
        let report = walk(&regs, PaRange::Bits44, va, &mem);
        assert_eq!(
            fault(&report),
            at(FaultKind::AddressSize, level),
            "granule {bits}"
        );
    }
}

#[test]
fn ttbr_in_a_hole_is_a_walk_read_fault_at_the_start_level() {
    // (TCR, start level)
    let rows = [
        (TCR_4K_48, 0),
        (tcr(25, TG0_4K, 16, TG1_4K, IPS_48), 1),
        (tcr(22, TG0_64K, 16, TG1_4K, IPS_48), 2),
    ];
    let hole = 0x2000_0000;
    let mut mem = FakeMemory::new();
    mem.hole(hole, hole + 0x10_0000);
    for (tcr, start) in rows {
        let report = walk(&mmu_on(tcr, hole, 0), PaRange::Bits48, 0x1000, &mem);
        let kind = FaultKind::WalkRead {
            ipa: Ipa(hole),
            why: WalkRead::OutsideRam,
        };
        assert_eq!(fault(&report), at(kind, start));
        assert_eq!(
            level_reading(&report, Ipa(hole)).map(Level::number),
            Some(start)
        );
    }
}
