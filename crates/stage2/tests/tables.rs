//! Scenario tests of stage-2 map / unmap / protect on fake hardware: block choice, splitting,
//! freeing, TLB maintenance order, errors, and agreement with a hardware-style walker.

mod common;

use common::{Event, FRAME, Fake, check_break_before_make, hw_walk, reachable_frames};
use moat_arm::addr::{Ipa, Pa};
use moat_stage2::{Geometry, Leaf, MemType, S2Access, S2Attrs, Stage2, Stage2Error};

const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;
const VMID: u16 = 7;

fn setup(ipa_bits: u32) -> (Fake, Stage2) {
    let mut fake = Fake::new();
    let s2 = Stage2::new(Geometry::new(ipa_bits, 48).unwrap(), VMID, &mut fake).unwrap();
    (fake, s2)
}

fn map(fake: &mut Fake, s2: &mut Stage2, ipa: u64, pa: u64, size: u64, attrs: S2Attrs) {
    let (mut m, mut a, mut t) = (fake.clone(), fake.clone(), fake.clone());
    s2.map(&mut m, &mut a, &mut t, Ipa(ipa), Pa(pa), size, attrs)
        .unwrap();
}

fn unmap(fake: &mut Fake, s2: &mut Stage2, ipa: u64, size: u64) {
    let (mut m, mut a, mut t) = (fake.clone(), fake.clone(), fake.clone());
    s2.unmap(&mut m, &mut a, &mut t, Ipa(ipa), size).unwrap();
}

fn protect(fake: &mut Fake, s2: &mut Stage2, ipa: u64, size: u64, attrs: S2Attrs) {
    let (mut m, mut a, mut t) = (fake.clone(), fake.clone(), fake.clone());
    s2.protect(&mut m, &mut a, &mut t, Ipa(ipa), size, attrs)
        .unwrap();
}

fn leaves(fake: &Fake, s2: &Stage2, ipa: u64, size: u64) -> Vec<Leaf> {
    let mut found = Vec::new();
    s2.walk(fake, Ipa(ipa), size, |leaf| found.push(leaf))
        .unwrap();
    found
}

fn level_at(fake: &Fake, s2: &Stage2, ipa: u64) -> Option<u8> {
    s2.translate(fake, Ipa(ipa)).map(|t| t.level)
}

fn roots(s2: &Stage2) -> Vec<(u64, u64)> {
    let g = s2.geometry();
    let per_table = 1u64 << (12 + 9 * u32::from(3 - g.start_level()) + 9);
    (0..u64::from(g.root_tables()))
        .map(|i| (s2.root().0 + i * FRAME, i * per_table))
        .collect()
}

const RO: S2Attrs = S2Attrs {
    mem: MemType::NormalWriteBack,
    access: S2Access::ReadOnly,
    execute_never: true,
};

#[test]
fn aligned_2m_range_is_mapped_with_one_level_2_block() {
    let (mut fake, mut s2) = setup(40);
    map(
        &mut fake,
        &mut s2,
        0x4020_0000,
        0x8_0020_0000,
        MIB2,
        S2Attrs::RAM,
    );
    let t = s2.translate(&fake, Ipa(0x4020_1234)).unwrap();
    assert_eq!(
        (t.pa, t.level, t.attrs),
        (Pa(0x8_0020_1234), 2, S2Attrs::RAM)
    );
    assert_eq!(leaves(&fake, &s2, 0x4000_0000, GIB).len(), 1);
}

#[test]
fn aligned_1g_range_is_mapped_with_one_level_1_block() {
    let (mut fake, mut s2) = setup(40);
    map(&mut fake, &mut s2, GIB, 0x40_0000_0000, GIB, S2Attrs::RAM);
    assert_eq!(level_at(&fake, &s2, GIB + 0x1234_5000), Some(1));
    assert_eq!(
        fake.live_frames(),
        2,
        "only the two concatenated root tables"
    );
}

#[test]
fn range_with_pa_not_2m_aligned_is_mapped_with_pages() {
    let (mut fake, mut s2) = setup(40);
    map(
        &mut fake,
        &mut s2,
        0x4000_0000,
        0x8000_1000,
        MIB2,
        S2Attrs::RAM,
    );
    assert_eq!(leaves(&fake, &s2, 0x4000_0000, MIB2).len(), 512);
    assert_eq!(
        s2.translate(&fake, Ipa(0x401f_f008)).unwrap().pa,
        Pa(0x8020_0008)
    );
}

#[test]
fn unaligned_range_uses_pages_then_blocks_then_pages() {
    let (mut fake, mut s2) = setup(40);
    let (ipa, size) = (0x401f_f000, MIB2 + 2 * FRAME);
    map(&mut fake, &mut s2, ipa, ipa, size, S2Attrs::RAM);
    let levels: Vec<u8> = leaves(&fake, &s2, ipa, size)
        .iter()
        .map(|l| l.level)
        .collect();
    assert_eq!(levels, [3, 2, 3]);
}

#[test]
fn first_mapping_of_an_empty_range_needs_no_tlb_invalidation() {
    let (mut fake, mut s2) = setup(40);
    fake.clear_log();
    map(
        &mut fake,
        &mut s2,
        0x4000_0000,
        0x8000_0000,
        16 * FRAME,
        S2Attrs::RAM,
    );
    let log = fake.log();
    assert!(!log.iter().any(|e| matches!(
        e,
        Event::InvalidateIpa { .. } | Event::InvalidateVmid { .. }
    )));
    assert_eq!(
        log.last(),
        Some(&Event::Barrier),
        "DSB publishes the new descriptors"
    );
}

#[test]
fn unmapping_a_page_inside_a_2m_block_splits_it_and_keeps_the_rest() {
    let (mut fake, mut s2) = setup(40);
    map(
        &mut fake,
        &mut s2,
        0x4000_0000,
        0x8000_0000,
        MIB2,
        S2Attrs::RAM,
    );
    unmap(&mut fake, &mut s2, 0x4000_5000, FRAME);
    assert_eq!(s2.translate(&fake, Ipa(0x4000_5000)), None);
    assert_eq!(
        s2.translate(&fake, Ipa(0x4000_4fff)).unwrap().pa,
        Pa(0x8000_4fff)
    );
    assert_eq!(
        s2.translate(&fake, Ipa(0x4000_6000)).unwrap().pa,
        Pa(0x8000_6000)
    );
    assert_eq!(leaves(&fake, &s2, 0x4000_0000, MIB2).len(), 511);
}

#[test]
fn unmapping_a_page_inside_a_1g_block_splits_into_2m_blocks_and_one_page_table() {
    let (mut fake, mut s2) = setup(40);
    map(&mut fake, &mut s2, GIB, GIB, GIB, S2Attrs::RAM);
    fake.clear_log();
    unmap(&mut fake, &mut s2, GIB + 0x30_0000, FRAME);
    let found = leaves(&fake, &s2, GIB, GIB);
    assert_eq!(found.iter().filter(|l| l.level == 2).count(), 511);
    assert_eq!(found.iter().filter(|l| l.level == 3).count(), 511);
    assert!(
        found
            .iter()
            .all(|l| l.pa.0 == l.ipa.0 && l.attrs == S2Attrs::RAM)
    );
    check_break_before_make(&fake.history(), &roots(&s2), 1);
}

#[test]
fn protecting_part_of_a_block_changes_only_that_part() {
    let (mut fake, mut s2) = setup(40);
    map(
        &mut fake,
        &mut s2,
        0x4000_0000,
        0x8000_0000,
        MIB2,
        S2Attrs::RAM,
    );
    protect(&mut fake, &mut s2, 0x4010_0000, 4 * FRAME, RO);
    assert_eq!(s2.translate(&fake, Ipa(0x4010_3000)).unwrap().attrs, RO);
    assert_eq!(
        s2.translate(&fake, Ipa(0x4010_4000)).unwrap().attrs,
        S2Attrs::RAM
    );
    assert_eq!(
        s2.translate(&fake, Ipa(0x4010_3000)).unwrap().pa,
        Pa(0x8010_3000)
    );
}

#[test]
fn protecting_a_whole_block_keeps_it_a_block() {
    let (mut fake, mut s2) = setup(40);
    map(
        &mut fake,
        &mut s2,
        0x4000_0000,
        0x8000_0000,
        MIB2,
        S2Attrs::RAM,
    );
    fake.clear_log();
    protect(&mut fake, &mut s2, 0x4000_0000, MIB2, RO);
    let t = s2.translate(&fake, Ipa(0x4000_0000)).unwrap();
    assert_eq!((t.level, t.attrs), (2, RO));
    check_break_before_make(&fake.history(), &roots(&s2), 1);
}

#[test]
fn protecting_unmapped_ipa_leaves_it_unmapped() {
    let (mut fake, mut s2) = setup(40);
    protect(&mut fake, &mut s2, 0x4000_0000, MIB2, RO);
    assert_eq!(s2.translate(&fake, Ipa(0x4000_0000)), None);
}

#[test]
fn remapping_a_page_breaks_invalidates_and_then_makes() {
    let (mut fake, mut s2) = setup(40);
    map(
        &mut fake,
        &mut s2,
        0x4000_0000,
        0x8000_0000,
        FRAME,
        S2Attrs::RAM,
    );
    fake.clear_log();
    map(
        &mut fake,
        &mut s2,
        0x4000_0000,
        0x9000_0000,
        FRAME,
        S2Attrs::RAM,
    );
    let log = fake.log();
    let kinds: Vec<&Event> = log.iter().collect();
    assert!(matches!(kinds[0], Event::Write { new: 0, .. }));
    assert_eq!(kinds[1], &Event::Barrier);
    assert_eq!(
        kinds[2],
        &Event::InvalidateIpa {
            vmid: VMID,
            ipa: 0x4000_0000,
            level: Some(3)
        }
    );
    assert_eq!(kinds[3], &Event::Barrier);
    assert_eq!(kinds[4], &Event::InvalidateCombined { vmid: VMID });
    assert_eq!(kinds[5], &Event::Barrier);
    assert!(
        matches!(kinds[6], Event::Write { new, .. } if new & 0x0000_ffff_ffff_f000 == 0x9000_0000)
    );
    assert_eq!(
        s2.translate(&fake, Ipa(0x4000_0010)).unwrap().pa,
        Pa(0x9000_0010)
    );
}

#[test]
fn mapping_a_block_over_pages_frees_their_table() {
    let (mut fake, mut s2) = setup(40);
    map(
        &mut fake,
        &mut s2,
        0x4000_0000,
        0x8000_1000,
        MIB2,
        S2Attrs::RAM,
    );
    let frames = fake.live_frames();
    fake.clear_log();
    map(
        &mut fake,
        &mut s2,
        0x4000_0000,
        0x8000_0000,
        MIB2,
        S2Attrs::RAM,
    );
    assert_eq!(level_at(&fake, &s2, 0x4000_0000), Some(2));
    assert_eq!(fake.live_frames(), frames - 1);
    check_break_before_make(&fake.history(), &roots(&s2), 1);
}

#[test]
fn unmapping_everything_frees_every_table_but_the_root() {
    let (mut fake, mut s2) = setup(40);
    map(
        &mut fake,
        &mut s2,
        0x4000_0000,
        0x8000_1000,
        3 * MIB2,
        S2Attrs::RAM,
    );
    map(
        &mut fake,
        &mut s2,
        0x7f_ffff_f000,
        0x1000,
        FRAME,
        S2Attrs::DEVICE,
    );
    fake.clear_log();
    unmap(&mut fake, &mut s2, 0x4010_0000, 2 * MIB2);
    unmap(&mut fake, &mut s2, 0, 1 << 40);
    assert_eq!(fake.live_frames(), 2);
    check_break_before_make(&fake.history(), &roots(&s2), 1);
}

#[test]
fn unmapping_many_pages_invalidates_the_vmid_once() {
    let (mut fake, mut s2) = setup(40);
    map(
        &mut fake,
        &mut s2,
        0x4000_0000,
        0x8000_1000,
        MIB2,
        S2Attrs::RAM,
    );
    fake.clear_log();
    unmap(&mut fake, &mut s2, 0x4000_0000, MIB2);
    let log = fake.log();
    assert_eq!(
        log.iter()
            .filter(|e| matches!(e, Event::InvalidateVmid { vmid: VMID }))
            .count(),
        1
    );
    assert!(!log.iter().any(|e| matches!(e, Event::InvalidateIpa { .. })));
    check_break_before_make(&fake.history(), &roots(&s2), 1);
}

#[test]
fn unmapping_a_few_pages_invalidates_each_ipa_with_its_level() {
    let (mut fake, mut s2) = setup(40);
    map(
        &mut fake,
        &mut s2,
        0x4000_0000,
        0x8000_1000,
        MIB2,
        S2Attrs::RAM,
    );
    fake.clear_log();
    unmap(&mut fake, &mut s2, 0x4000_2000, 3 * FRAME);
    let ipas: Vec<Event> = fake
        .log()
        .into_iter()
        .filter(|e| matches!(e, Event::InvalidateIpa { .. }))
        .collect();
    let expected: Vec<Event> = (2..5)
        .map(|p| Event::InvalidateIpa {
            vmid: VMID,
            ipa: 0x4000_0000 + p * FRAME,
            level: Some(3),
        })
        .collect();
    assert_eq!(ipas, expected);
}

#[test]
fn every_ipa_size_maps_its_first_and_last_page_where_the_hardware_walk_finds_them() {
    for s in 32..=48 {
        let (mut fake, mut s2) = setup(s);
        let last = (1u64 << s) - FRAME;
        map(&mut fake, &mut s2, 0, 0x5000, FRAME, S2Attrs::RAM);
        map(&mut fake, &mut s2, last, 0x7000, FRAME, S2Attrs::DEVICE);
        let (vtcr, vttbr) = (s2.vtcr_el2(), s2.vttbr_el2());
        assert_eq!(
            hw_walk(&fake, vtcr, vttbr, 0x10).unwrap().pa,
            0x5010,
            "S={s}"
        );
        assert_eq!(
            hw_walk(&fake, vtcr, vttbr, last + 0x20).unwrap().pa,
            0x7020,
            "S={s}"
        );
        assert_eq!(
            s2.translate(&fake, Ipa(last)).unwrap().attrs,
            S2Attrs::DEVICE
        );
        assert!(hw_walk(&fake, vtcr, vttbr, 1 << s).is_err());
        assert_eq!(s2.translate(&fake, Ipa(1 << s)), None);
    }
}

#[test]
fn destroy_invalidates_the_vmid_and_frees_every_frame() {
    let (mut fake, mut s2) = setup(43);
    map(
        &mut fake,
        &mut s2,
        0x4000_1000,
        0x8000_0000,
        5 * MIB2,
        S2Attrs::RAM,
    );
    let (mut m, mut a, mut t) = (fake.clone(), fake.clone(), fake.clone());
    s2.destroy(&mut m, &mut a, &mut t);
    assert_eq!(fake.live_frames(), 0);
    assert!(fake.log().contains(&Event::InvalidateVmid { vmid: VMID }));
}

#[test]
fn misaligned_and_out_of_range_requests_are_refused_before_any_change() {
    let (mut fake, mut s2) = setup(36);
    let (mut m, mut a, mut t) = (fake.clone(), fake.clone(), fake.clone());
    let ram = S2Attrs::RAM;
    assert_eq!(
        s2.map(&mut m, &mut a, &mut t, Ipa(0x1800), Pa(0), FRAME, ram),
        Err(Stage2Error::MisalignedRange {
            ipa: Ipa(0x1800),
            size: FRAME
        })
    );
    assert_eq!(
        s2.map(&mut m, &mut a, &mut t, Ipa(0x1000), Pa(0x10), FRAME, ram),
        Err(Stage2Error::MisalignedPa { pa: Pa(0x10) })
    );
    assert_eq!(
        s2.map(
            &mut m,
            &mut a,
            &mut t,
            Ipa((1 << 36) - FRAME),
            Pa(0),
            2 * FRAME,
            ram
        ),
        Err(Stage2Error::IpaRangeOutsideVm {
            ipa: Ipa((1 << 36) - FRAME),
            size: 2 * FRAME,
            ipa_bits: 36
        })
    );
    assert_eq!(
        s2.map(&mut m, &mut a, &mut t, Ipa(0), Pa(1 << 48), FRAME, ram),
        Err(Stage2Error::PaRangeAboveLimit {
            pa: Pa(1 << 48),
            size: FRAME,
            pa_limit_bits: 48
        })
    );
    assert!(
        s2.unmap(&mut m, &mut a, &mut t, Ipa(u64::MAX - 0xfff), FRAME)
            .is_err()
    );
    assert_eq!(fake.live_frames(), 1);
    map(&mut fake, &mut s2, 0, 0, 0, ram);
}

#[test]
fn vmid_above_8_bits_is_refused_unless_vmids_are_16_bits() {
    let mut fake = Fake::new();
    let g = Geometry::new(40, 48).unwrap();
    assert_eq!(
        Stage2::new(g, 256, &mut fake).unwrap_err(),
        Stage2Error::VmidTooLarge {
            vmid: 256,
            max: 255
        }
    );
    let wide = g.with_vmid_bits(moat_stage2::VmidBits::Sixteen);
    let s2 = Stage2::new(wide, 0x1234, &mut fake).unwrap();
    assert_eq!(s2.vttbr_el2() >> 48, 0x1234);
    assert_eq!(s2.vtcr_el2() & 1 << 19, 1 << 19, "VTCR_EL2.VS");
}

#[test]
fn running_out_of_table_frames_names_the_ipa_and_leaves_tables_consistent() {
    let (mut fake, mut s2) = setup(40);
    map(
        &mut fake,
        &mut s2,
        0x4000_0000,
        0x8000_0000,
        MIB2,
        S2Attrs::RAM,
    );
    fake.set_budget(Some(0));
    let (mut m, mut a, mut t) = (fake.clone(), fake.clone(), fake.clone());
    let err = s2
        .unmap(&mut m, &mut a, &mut t, Ipa(0x4000_3000), FRAME)
        .unwrap_err();
    assert_eq!(
        err,
        Stage2Error::OutOfTableMemory {
            ipa: Ipa(0x4000_3000)
        }
    );
    assert_eq!(
        level_at(&fake, &s2, 0x4000_3000),
        Some(2),
        "the block is intact"
    );
    let err = s2
        .map(&mut m, &mut a, &mut t, Ipa(0x8000_0000), Pa(0), FRAME, RO)
        .unwrap_err();
    assert_eq!(
        err,
        Stage2Error::OutOfTableMemory {
            ipa: Ipa(0x8000_0000)
        }
    );
}

#[test]
fn concatenated_root_tables_are_indexed_as_one() {
    let (mut fake, mut s2) = setup(43);
    assert_eq!(s2.geometry().root_tables(), 16);
    let ipa = 0x17f_4000_0000; // root entry 1533: table 2, index 509
    map(&mut fake, &mut s2, ipa, 0x1_0000_0000, GIB, S2Attrs::RAM);
    let hw = hw_walk(&fake, s2.vtcr_el2(), s2.vttbr_el2(), ipa + 0x1234).unwrap();
    assert_eq!((hw.pa, hw.level), (0x1_0000_1234, 1));
    assert_ne!(fake.read_phys(s2.root().0 + 2 * FRAME + 509 * 8), 0);
}

#[test]
fn unmapping_page_by_page_frees_each_table_when_it_empties() {
    let (mut fake, mut s2) = setup(40);
    map(
        &mut fake,
        &mut s2,
        0x4000_0000,
        0x8000_1000,
        MIB2,
        S2Attrs::RAM,
    );
    assert_eq!(fake.live_frames(), 4, "root (2), level 2, level 3");
    for page in (0..512).rev() {
        if page == 0 {
            assert_eq!(fake.live_frames(), 4, "tables stay while a page is mapped");
        }
        unmap(&mut fake, &mut s2, 0x4000_0000 + page * FRAME, FRAME);
    }
    assert_eq!(fake.live_frames(), 2);
    check_break_before_make(&fake.history(), &roots(&s2), 1);
}

#[test]
fn mapping_one_page_inside_a_block_splits_it() {
    let (mut fake, mut s2) = setup(40);
    map(
        &mut fake,
        &mut s2,
        0x4000_0000,
        0x8000_0000,
        MIB2,
        S2Attrs::RAM,
    );
    map(&mut fake, &mut s2, 0x4000_7000, 0x9000_0000, FRAME, RO);
    assert_eq!(
        s2.translate(&fake, Ipa(0x4000_7000)).unwrap().pa,
        Pa(0x9000_0000)
    );
    assert_eq!(
        s2.translate(&fake, Ipa(0x4000_8000)).unwrap().pa,
        Pa(0x8000_8000)
    );
    assert_eq!(leaves(&fake, &s2, 0x4000_0000, MIB2).len(), 512);
    check_break_before_make(&fake.history(), &roots(&s2), 1);
}

#[test]
fn unmapping_one_page_inside_a_block_splits_it() {
    let (mut fake, mut s2) = setup(40);
    map(&mut fake, &mut s2, GIB, GIB, GIB, S2Attrs::RAM);
    unmap(&mut fake, &mut s2, GIB + 0x1234_5000, FRAME);
    assert_eq!(s2.translate(&fake, Ipa(GIB + 0x1234_5000)), None);
    assert_eq!(level_at(&fake, &s2, GIB + 0x1234_6000), Some(3));
    assert_eq!(level_at(&fake, &s2, GIB), Some(2));
    check_break_before_make(&fake.history(), &roots(&s2), 1);
}

#[test]
fn failing_inside_a_nested_split_frees_the_half_built_tables() {
    let (mut fake, mut s2) = setup(40);
    map(&mut fake, &mut s2, GIB, GIB, GIB, S2Attrs::RAM);
    fake.set_budget(Some(1)); // the level-2 table of the 1 GiB block, not the level-3 one
    let (mut m, mut a, mut t) = (fake.clone(), fake.clone(), fake.clone());
    let err = s2.unmap(&mut m, &mut a, &mut t, Ipa(GIB + 0x20_1000), FRAME);
    assert_eq!(
        err,
        Err(Stage2Error::OutOfTableMemory {
            ipa: Ipa(GIB + 0x20_1000)
        })
    );
    assert_eq!(
        level_at(&fake, &s2, GIB + 0x20_1000),
        Some(1),
        "the block is intact"
    );
    assert_eq!(
        fake.live_frames(),
        reachable_frames(&fake, s2.vtcr_el2(), s2.vttbr_el2())
    );
    assert_eq!(fake.live_frames(), 2);
}

/// Two VMs' tables built from one frame allocator, as Moat builds them at boot: each maps only
/// the RAM it was given, and the check names the leaf that strays.
#[test]
fn each_vms_stage2_is_confined_to_its_own_ram_and_a_stray_leaf_is_named() {
    let mut fake = Fake::new();
    let mut a = Stage2::new(Geometry::new(40, 48).unwrap(), 1, &mut fake).unwrap();
    let mut b = Stage2::new(Geometry::new(36, 48).unwrap(), 2, &mut fake).unwrap();
    let (ram_a, ram_b) = ((0x5000_0000, 64 << 20), (0x6000_0000, 16 << 20));
    map(
        &mut fake,
        &mut a,
        0x4000_0000,
        ram_a.0,
        ram_a.1,
        S2Attrs::RAM,
    );
    map(
        &mut fake,
        &mut b,
        0x4000_0000,
        ram_b.0,
        8 << 20,
        S2Attrs::RAM,
    );
    // Pages as well as blocks: the second part of b's RAM at a page-aligned, not 2 MiB-aligned IPA.
    map(
        &mut fake,
        &mut b,
        0x8000_1000,
        ram_b.0 + (8 << 20),
        8 << 20,
        S2Attrs::RAM,
    );
    let owned = |(base, size): (u64, u64)| [(Pa(base), size)];
    assert_eq!(a.confined_to(&fake, &owned(ram_a)), Ok(ram_a.1));
    assert_eq!(b.confined_to(&fake, &owned(ram_b)), Ok(ram_b.1));
    // Neither VM reaches the other's RAM.
    assert!(a.confined_to(&fake, &owned(ram_b)).is_err());
    assert!(b.confined_to(&fake, &owned(ram_a)).is_err());
    // One page of a's RAM mapped into b is caught, whatever its neighbours.
    map(
        &mut fake,
        &mut b,
        0xC000_0000,
        ram_a.0 + 0x3000,
        FRAME,
        S2Attrs::RAM,
    );
    let stray = b.confined_to(&fake, &owned(ram_b)).unwrap_err().0;
    assert_eq!(
        (stray.ipa, stray.pa, stray.size),
        (Ipa(0xC000_0000), Pa(ram_a.0 + 0x3000), FRAME)
    );
    // A leaf straddling the end of what is owned is not confined either.
    let short = [(Pa(ram_a.0), ram_a.1 - FRAME)];
    assert!(a.confined_to(&fake, &short).is_err());
}
