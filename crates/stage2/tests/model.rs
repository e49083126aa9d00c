//! Model-based property test: random map / unmap / protect sequences over a small IPA window
//! (so that ranges collide, and 2 MiB blocks get split and rebuilt), compared after every step
//! with a `BTreeMap` of pages, with the crate's own `translate` and `walk`, and with an
//! independent hardware-style walk of the raw descriptors; the whole TLB/write log is then
//! checked for break-before-make, and unmapping everything must free every table.

mod common;

use std::collections::BTreeMap;

use common::{FRAME, Fake, check_break_before_make, hw_walk, reachable_frames};
use moat_arm::addr::{Ipa, Pa};
use moat_stage2::{Geometry, MemType, S2Access, S2Attrs, Stage2, Stage2Error};
use proptest::prelude::*;

/// Pages in the window: four 2 MiB blocks.
const WINDOW_PAGES: u64 = 4 * 512;
const PA_BASE: u64 = 0x1_0000_0000;
const VMID: u16 = 3;

const ATTRS: [S2Attrs; 4] = [
    S2Attrs::RAM,
    S2Attrs::DEVICE,
    S2Attrs {
        mem: MemType::NormalWriteBack,
        access: S2Access::ReadOnly,
        execute_never: true,
    },
    S2Attrs {
        mem: MemType::NormalWriteBack,
        access: S2Access::None,
        execute_never: false,
    },
];

#[derive(Clone, Copy, Debug)]
enum Op {
    Map {
        page: u64,
        pages: u64,
        pa_page: u64,
        attrs: usize,
    },
    Unmap {
        page: u64,
        pages: u64,
    },
    Protect {
        page: u64,
        pages: u64,
        attrs: usize,
    },
}

/// A page range of the window: whole 2 MiB blocks, any run of pages, or one page.
fn range() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        (0..4u64, 1..=4u64).prop_map(|(b, n)| (b * 512, n.min(4 - b) * 512)),
        (0..WINDOW_PAGES, 1..=700u64).prop_map(|(p, n)| (p, n.min(WINDOW_PAGES - p))),
        // Single pages take the fault-path descent of `map`/`unmap`.
        (0..WINDOW_PAGES).prop_map(|p| (p, 1)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (range(), any::<bool>(), 0..64u64, 0..512u64, 0..ATTRS.len()).prop_map(
            |((page, pages), congruent, block, offset, attrs)| {
                // A PA congruent to the IPA modulo 2 MiB lets blocks be used.
                let offset = if congruent { page % 512 } else { offset };
                Op::Map {
                    page,
                    pages,
                    pa_page: block * 512 + offset,
                    attrs,
                }
            }
        ),
        range().prop_map(|(page, pages)| Op::Unmap { page, pages }),
        (range(), 0..ATTRS.len()).prop_map(|((page, pages), attrs)| Op::Protect {
            page,
            pages,
            attrs
        }),
    ]
}

type Model = BTreeMap<u64, (u64, S2Attrs)>;

fn apply_model(model: &mut Model, op: Op) {
    match op {
        Op::Map {
            page,
            pages,
            pa_page,
            attrs,
        } => {
            for i in 0..pages {
                model.insert(page + i, (pa_page + i, ATTRS[attrs]));
            }
        }
        Op::Unmap { page, pages } => {
            for i in 0..pages {
                model.remove(&(page + i));
            }
        }
        Op::Protect { page, pages, attrs } => {
            for i in 0..pages {
                if let Some(entry) = model.get_mut(&(page + i)) {
                    entry.1 = ATTRS[attrs];
                }
            }
        }
    }
}

fn apply_stage2(fake: &Fake, s2: &mut Stage2, base: u64, op: Op) -> Result<(), Stage2Error> {
    let (mut m, mut a, mut t) = (fake.clone(), fake.clone(), fake.clone());
    let ipa = |page: u64| Ipa(base + page * FRAME);
    match op {
        Op::Map {
            page,
            pages,
            pa_page,
            attrs,
        } => {
            let pa = Pa(PA_BASE + pa_page * FRAME);
            s2.map(
                &mut m,
                &mut a,
                &mut t,
                ipa(page),
                pa,
                pages * FRAME,
                ATTRS[attrs],
            )
        }
        Op::Unmap { page, pages } => s2.unmap(&mut m, &mut a, &mut t, ipa(page), pages * FRAME),
        Op::Protect { page, pages, attrs } => s2.protect(
            &mut m,
            &mut a,
            &mut t,
            ipa(page),
            pages * FRAME,
            ATTRS[attrs],
        ),
    }
}

/// The descriptor bits the Arm ARM gives `attrs` (`MemAttr` with FWB = 0, `S2AP`, `SH`, `XN`,
/// `AF`), written independently of the crate's encoder.
fn expected_attr_bits(attrs: S2Attrs) -> u64 {
    let memattr = match attrs.mem {
        MemType::NormalWriteBack => 0b1111,
        MemType::DeviceNgnre => 0b0001,
    };
    let s2ap = match attrs.access {
        S2Access::None => 0,
        S2Access::ReadOnly => 1,
        S2Access::WriteOnly => 2,
        S2Access::ReadWrite => 3,
    };
    memattr << 2 | s2ap << 6 | 0b11 << 8 | 1 << 10 | u64::from(attrs.execute_never) << 54
}

const ATTR_FIELDS: u64 = 0b1111 << 2 | 0b11 << 6 | 0b11 << 8 | 1 << 10 | 0b11 << 53;

fn check_against_model(fake: &Fake, s2: &Stage2, base: u64, model: &Model) {
    let (vtcr, vttbr) = (s2.vtcr_el2(), s2.vttbr_el2());
    for page in 0..WINDOW_PAGES {
        let ipa = base + page * FRAME + 0x18;
        let expected = model
            .get(&page)
            .map(|&(pa_page, attrs)| (PA_BASE + pa_page * FRAME + 0x18, attrs));
        let hw = hw_walk(fake, vtcr, vttbr, ipa).ok();
        let hw = hw.map(|t| (t.pa, t.desc & ATTR_FIELDS));
        let want = expected.map(|(pa, attrs)| (pa, expected_attr_bits(attrs)));
        assert_eq!(hw, want, "hardware walk of IPA {ipa:#x}");
        let own = s2.translate(fake, Ipa(ipa)).map(|t| (t.pa.0, t.attrs));
        assert_eq!(own, expected, "translate of IPA {ipa:#x}");
    }
    let mut walked = Model::new();
    s2.walk(fake, Ipa(base), WINDOW_PAGES * FRAME, |leaf| {
        for i in 0..leaf.size / FRAME {
            let page = (leaf.ipa.0 - base) / FRAME + i;
            walked.insert(page, ((leaf.pa.0 - PA_BASE) / FRAME + i, leaf.attrs));
        }
    })
    .unwrap();
    assert_eq!(&walked, model, "walk");
    assert_no_leaks(fake, s2);
}

/// Every allocated frame is a reachable table, and the tables hold no parked descriptor.
fn assert_no_leaks(fake: &Fake, s2: &Stage2) {
    let reachable = reachable_frames(fake, s2.vtcr_el2(), s2.vttbr_el2());
    assert_eq!(
        fake.live_frames(),
        reachable,
        "allocated frames that no table reaches"
    );
}

fn run(ipa_bits: u32, at_top: bool, ops: &[Op]) {
    let mut fake = Fake::new();
    let geometry = Geometry::new(ipa_bits, 48).unwrap();
    let mut s2 = Stage2::new(geometry, VMID, &mut fake).unwrap();
    let base = if at_top {
        (1u64 << ipa_bits) - WINDOW_PAGES * FRAME
    } else {
        0x4000_0000
    };
    let mut model = Model::new();
    for &op in ops {
        apply_model(&mut model, op);
        apply_stage2(&fake, &mut s2, base, op).unwrap();
        check_against_model(&fake, &s2, base, &model);
    }
    unmap_all_and_check_log(&fake, &mut s2, base);
}

/// The window's pages as the tables map them, after checking that `translate` and the
/// hardware-style walk agree on every page.
fn observed(fake: &Fake, s2: &Stage2, base: u64) -> Model {
    let (vtcr, vttbr) = (s2.vtcr_el2(), s2.vttbr_el2());
    let mut pages = Model::new();
    for page in 0..WINDOW_PAGES {
        let ipa = base + page * FRAME;
        let own = s2.translate(fake, Ipa(ipa));
        let hw = hw_walk(fake, vtcr, vttbr, ipa).ok();
        assert_eq!(own.map(|t| t.pa.0), hw.map(|t| t.pa), "IPA {ipa:#x}");
        if let (Some(t), Some(hw)) = (own, hw) {
            assert_eq!(hw.desc & ATTR_FIELDS, expected_attr_bits(t.attrs));
            pages.insert(page, ((t.pa.0 - PA_BASE) / FRAME, t.attrs));
        }
    }
    pages
}

/// Runs `ops`, each with a frame budget (`None`: unlimited). An operation that runs out of
/// frames must leave every page as it was before or as the operation would have made it.
fn run_with_budgets(ipa_bits: u32, ops: &[(Op, Option<usize>)]) {
    let mut fake = Fake::new();
    let geometry = Geometry::new(ipa_bits, 48).unwrap();
    let mut s2 = Stage2::new(geometry, VMID, &mut fake).unwrap();
    let base = 0x4000_0000;
    let mut model = Model::new();
    for &(op, budget) in ops {
        let mut after = model.clone();
        apply_model(&mut after, op);
        fake.set_budget(budget);
        let result = apply_stage2(&fake, &mut s2, base, op);
        fake.set_budget(None);
        let actual = observed(&fake, &s2, base);
        assert_no_leaks(&fake, &s2);
        match result {
            Ok(()) => assert_eq!(actual, after),
            Err(Stage2Error::OutOfTableMemory { .. }) => {
                for page in 0..WINDOW_PAGES {
                    let got = actual.get(&page);
                    assert!(
                        got == model.get(&page) || got == after.get(&page),
                        "page {page}"
                    );
                }
            }
            Err(e) => panic!("unexpected {e}"),
        }
        model = actual;
    }
    unmap_all_and_check_log(&fake, &mut s2, base);
}

/// Unmaps the window, then checks that only the root is left and that the whole history kept
/// break-before-make.
fn unmap_all_and_check_log(fake: &Fake, s2: &mut Stage2, base: u64) {
    let geometry = *s2.geometry();
    apply_stage2(
        fake,
        s2,
        base,
        Op::Unmap {
            page: 0,
            pages: WINDOW_PAGES,
        },
    )
    .unwrap();
    assert_eq!(
        fake.live_frames(),
        geometry.root_tables() as usize,
        "tables left after unmap"
    );
    let per_root = 1u64 << (12 + 9 * u32::from(3 - geometry.start_level()) + 9);
    let roots: Vec<(u64, u64)> = (0..u64::from(geometry.root_tables()))
        .map(|i| (s2.root().0 + i * FRAME, i * per_root))
        .collect();
    check_break_before_make(&fake.history(), &roots, geometry.start_level());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_map_unmap_protect_sequences_match_the_page_model(
        ipa_bits in prop::sample::select(vec![32u32, 34, 37, 40, 43, 44, 48]),
        at_top in any::<bool>(),
        ops in prop::collection::vec(op(), 1..32),
    ) {
        run(ipa_bits, at_top, &ops);
    }

    #[test]
    fn running_out_of_frames_leaves_each_page_old_or_new_and_leaks_nothing(
        ipa_bits in prop::sample::select(vec![32u32, 40, 48]),
        ops in prop::collection::vec((op(), prop::option::weighted(0.6, 0..3usize)), 1..16),
    ) {
        run_with_budgets(ipa_bits, &ops);
    }
}
