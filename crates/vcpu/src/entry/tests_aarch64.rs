//! `take_exception_aarch64`, table by table: source mode × vector kind, and each PSTATE rule
//! against the SCTLR_EL1 bit and feature it depends on.

use super::*;
use moat_arm::esr::Esr;
use moat_arm::pstate::{Aarch64Mode, Spsr64};
use moat_arm::sysreg::sctlr_el1;
use moat_arm::vector::VectorKind;

const VBAR: u64 = 0xFFFF_8000_1000_0800;
const PC: u64 = 0x4008_1234;

/// `SPSR_EL2` of each source state Moat can take an exception from.
const EL0_A64: u64 = 0x0000_0000;
const EL0_A32: u64 = 0x0000_0010;
const EL1T: u64 = 0x0000_03C4;
const EL1H: u64 = 0x0000_03C5;

fn ctx(spsr_el2: u64, sctlr_el1: u64, features: CpuFeatures) -> GuestContext {
    GuestContext {
        pc: PC,
        spsr_el2,
        sctlr_el1,
        vbar_el1: VBAR,
        features,
        ..Default::default()
    }
}

fn sync(esr: u64, far: Option<u64>) -> Aarch64Exception {
    Aarch64Exception {
        kind: VectorKind::Synchronous,
        esr: Esr::new(esr),
        far,
    }
}

fn take(spsr_el2: u64, sctlr: u64, features: CpuFeatures) -> Aarch64Entry {
    take_exception_aarch64(
        &ctx(spsr_el2, sctlr, features),
        &sync(0x9200_0010, Some(0x1000)),
    )
}

fn pstate(entry: &Aarch64Entry) -> Spsr64 {
    Spsr64::new(entry.spsr_el2)
}

#[test]
fn vector_offset_follows_source_mode_and_exception_kind() {
    let table = [
        (EL1T, VectorKind::Synchronous, 0x000),
        (EL1H, VectorKind::Synchronous, 0x200),
        (EL0_A64, VectorKind::Synchronous, 0x400),
        (EL0_A32, VectorKind::Synchronous, 0x600),
        (EL1T, VectorKind::SError, 0x180),
        (EL1H, VectorKind::SError, 0x380),
        (EL0_A64, VectorKind::SError, 0x580),
        (EL0_A32, VectorKind::SError, 0x780),
    ];
    for (spsr, kind, offset) in table {
        let exception = Aarch64Exception {
            kind,
            esr: Esr::new(0xBE00_0000),
            far: None,
        };
        let entry = take_exception_aarch64(&ctx(spsr, 0, CpuFeatures::default()), &exception);
        assert_eq!(entry.elr_el2, VBAR + offset, "SPSR {spsr:#x} {kind:?}");
    }
}

#[test]
fn data_abort_from_el0_targets_lower_el_vector_0x400() {
    let entry = take(EL0_A64, 0, CpuFeatures::default());
    assert_eq!(entry.elr_el2 - VBAR, 0x400);
}

#[test]
fn vbar_bits_10_to_0_are_ignored() {
    let mut c = ctx(EL1H, 0, CpuFeatures::default());
    c.vbar_el1 = VBAR | 0x7FF;
    let entry = take_exception_aarch64(&c, &sync(0, None));
    assert_eq!(entry.elr_el2, VBAR + 0x200);
}

#[test]
fn entry_is_el1h_with_daif_masked_from_every_source() {
    for spsr in [EL0_A64, EL0_A32, EL1T, EL1H] {
        let p = pstate(&take(spsr, 0, CpuFeatures::default()));
        assert_eq!(p.mode(), Aarch64Mode::El1h, "from {spsr:#x}");
        for mask in [Spsr64::D, Spsr64::A, Spsr64::I, Spsr64::F] {
            assert!(p.flag(mask), "from {spsr:#x}");
        }
    }
}

#[test]
fn elr_el1_is_the_faulting_pc_and_spsr_el1_the_interrupted_pstate() {
    for spsr in [
        EL0_A64 | 0x6000_0000,
        EL0_A32 | 0x20,
        EL1T,
        EL1H | 0x20_0000,
    ] {
        let entry = take(spsr, 0, CpuFeatures::default());
        assert_eq!(entry.elr_el1, PC);
        assert_eq!(entry.spsr_el1, spsr);
    }
}

#[test]
fn esr_and_far_are_reported_as_given() {
    let entry = take_exception_aarch64(
        &ctx(EL1H, 0, CpuFeatures::default()),
        &sync(0x9600_0046, Some(0xFFFF_0000_DEAD_B000)),
    );
    assert_eq!(entry.esr_el1, 0x9600_0046);
    assert_eq!(entry.far_el1, Some(0xFFFF_0000_DEAD_B000));
}

#[test]
fn pan_is_set_when_span_is_0_and_feat_pan_is_present() {
    // (has_pan, SCTLR_EL1.SPAN, PSTATE.PAN before, PSTATE.PAN after)
    let table = [
        (true, false, false, true),
        (true, true, false, false),
        (true, true, true, true),
        (false, false, false, false),
    ];
    let span = sctlr_el1::SPAN.mask();
    for (has_pan, span_set, before, after) in table {
        let features = CpuFeatures {
            has_pan,
            ..Default::default()
        };
        let spsr = Spsr64::new(EL1H).with_flag(Spsr64::PAN, before).bits();
        let p = pstate(&take(spsr, if span_set { span } else { 0 }, features));
        assert_eq!(
            p.flag(Spsr64::PAN),
            after,
            "pan {has_pan} span {span_set} {before}"
        );
    }
}

#[test]
fn ssbs_is_taken_from_sctlr_dssbs_when_feat_ssbs_is_present() {
    let dssbs = sctlr_el1::DSSBS.mask();
    let with = CpuFeatures {
        has_ssbs: true,
        ..Default::default()
    };
    let ssbs_set = Spsr64::new(EL0_A64).with_flag(Spsr64::SSBS, true).bits();
    assert!(pstate(&take(EL0_A64, dssbs, with)).flag(Spsr64::SSBS));
    assert!(!pstate(&take(ssbs_set, 0, with)).flag(Spsr64::SSBS));
    assert!(!pstate(&take(EL0_A64, dssbs, CpuFeatures::default())).flag(Spsr64::SSBS));
}

#[test]
fn tco_is_set_only_when_mte_is_present() {
    let mte = CpuFeatures {
        has_mte: true,
        ..Default::default()
    };
    assert!(pstate(&take(EL1H, 0, mte)).flag(Spsr64::TCO));
    assert!(!pstate(&take(EL1H, 0, CpuFeatures::default())).flag(Spsr64::TCO));
}

#[test]
fn uao_ss_il_and_btype_are_cleared() {
    let all = CpuFeatures {
        has_uao: true,
        has_bti: true,
        ..Default::default()
    };
    let dirty = Spsr64::new(EL1H)
        .with_flag(Spsr64::UAO, true)
        .with_flag(Spsr64::SS, true)
        .with_flag(Spsr64::IL, true)
        .with(Spsr64::BTYPE, 0b11);
    let p = pstate(&take(dirty.bits(), 0, all));
    assert!(!p.flag(Spsr64::UAO) && !p.flag(Spsr64::SS) && !p.flag(Spsr64::IL));
    assert_eq!(Spsr64::BTYPE.get(p.bits()), 0);
}

#[test]
fn allint_is_not_spintmask_with_feat_nmi() {
    let nmi = CpuFeatures {
        has_nmi: true,
        ..Default::default()
    };
    assert!(pstate(&take(EL1H, 0, nmi)).flag(Spsr64::ALLINT));
    let masked = sctlr_el1::SPINTMASK.mask();
    assert!(!pstate(&take(EL1H, masked, nmi)).flag(Spsr64::ALLINT));
}

#[test]
fn nzcv_and_dit_survive_the_entry() {
    let spsr = Spsr64::new(EL0_A64)
        .with(Spsr64::NZCV, 0b1010)
        .with_flag(Spsr64::DIT, true);
    let p = pstate(&take(spsr.bits(), 0, CpuFeatures::default()));
    assert_eq!(Spsr64::NZCV.get(p.bits()), 0b1010);
    assert!(p.flag(Spsr64::DIT));
}

#[test]
fn from_aarch32_el0_it_t_ge_and_q_do_not_leak_into_aarch64_pstate() {
    // User mode, T32, IT[1:0] = 0b11 (bits 26:25, where AArch64 has TCO), GE = 0xF, Q, NZCV.
    let a32 = 0xF800_0000u64 | (0b11 << 25) | (0xF << 16) | (0x3F << 10) | 0x30;
    let p = pstate(&take(a32, 0, CpuFeatures::default()));
    assert_eq!(
        p.bits(),
        0xF000_03C5,
        "only NZCV carries over; EL1h with DAIF"
    );
}

#[test]
fn every_source_kind_sctlr_and_feature_combination_follows_take_exception() {
    let sources = [
        (EL1T, 0x000),
        (EL1H, 0x200),
        (EL0_A64, 0x400),
        (EL0_A32, 0x600),
    ];
    let kinds = [
        (VectorKind::Synchronous, 0x000),
        (VectorKind::SError, 0x180),
    ];
    for (spsr, group) in sources {
        for (kind, entry_offset) in kinds {
            for sctlr_bits in 0..8u32 {
                let (span, dssbs, spintmask) = (
                    sctlr_bits & 1 != 0,
                    sctlr_bits & 2 != 0,
                    sctlr_bits & 4 != 0,
                );
                let sctlr = sctlr_el1::SPAN.with_flag(0, span);
                let sctlr = sctlr_el1::DSSBS.with_flag(sctlr, dssbs);
                let sctlr = sctlr_el1::SPINTMASK.with_flag(sctlr, spintmask);
                for on in [false, true] {
                    let features = CpuFeatures {
                        has_pan: on,
                        has_ssbs: on,
                        has_mte: on,
                        has_nmi: on,
                        has_uao: on,
                        has_bti: on,
                        ..Default::default()
                    };
                    let exception = Aarch64Exception {
                        kind,
                        esr: Esr::new(0),
                        far: None,
                    };
                    let entry = take_exception_aarch64(&ctx(spsr, sctlr, features), &exception);
                    let p = pstate(&entry);
                    let what = format!("{spsr:#x} {kind:?} sctlr {sctlr_bits:#b} features {on}");
                    assert_eq!(entry.elr_el2, VBAR + group + entry_offset, "{what}");
                    assert_eq!(p.mode(), Aarch64Mode::El1h, "{what}");
                    assert_eq!(p.flag(Spsr64::PAN), on && !span, "{what}");
                    assert_eq!(p.flag(Spsr64::SSBS), on && dssbs, "{what}");
                    assert_eq!(p.flag(Spsr64::TCO), on, "{what}");
                    assert_eq!(p.flag(Spsr64::ALLINT), on && !spintmask, "{what}");
                    assert_eq!(entry.spsr_el1, spsr, "{what}");
                }
            }
        }
    }
}

#[test]
fn el0_fault_with_pan_enabled_enters_with_pstate_0x4003c5_plus_nzcv() {
    // Linux runs with SCTLR_EL1.SPAN = 0 on a PAN CPU: its handlers see PAN set (0x4003c5).
    let pan = CpuFeatures {
        has_pan: true,
        ..Default::default()
    };
    let entry = take(0x8000_0000, 0, pan);
    assert_eq!(entry.spsr_el2, 0x8040_03C5);
}

#[test]
fn pm_is_set_with_feat_ebep() {
    let ebep = CpuFeatures {
        has_ebep: true,
        ..Default::default()
    };
    assert!(pstate(&take(EL0_A64, 0, ebep)).flag(Spsr64::PM));
    assert!(!pstate(&take(EL0_A64, 0, CpuFeatures::default())).flag(Spsr64::PM));
}

#[test]
fn uinj_pacm_and_ppend_are_cleared() {
    let dirty = Spsr64::new(EL1H)
        .with_flag(Spsr64::UINJ, true)
        .with_flag(Spsr64::PACM, true)
        .with_flag(Spsr64::PPEND, true);
    let p = pstate(&take(dirty.bits(), 0, CpuFeatures::default()));
    assert!(!p.flag(Spsr64::UINJ) && !p.flag(Spsr64::PACM) && !p.flag(Spsr64::PPEND));
}

#[test]
fn exlock_is_cleared_from_every_source_while_gcs_is_hidden() {
    for source in [EL0_A64, EL1T, EL1H] {
        let spsr = Spsr64::new(source).with_flag(Spsr64::EXLOCK, true);
        let p = pstate(&take(spsr.bits(), 0, CpuFeatures::default()));
        assert!(!p.flag(Spsr64::EXLOCK), "from {source:#x}");
    }
}
