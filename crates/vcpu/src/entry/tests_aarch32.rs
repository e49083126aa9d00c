//! `enter_mode_aarch32`, table by table: every PL0/PL1 source mode × ARM/Thumb × exception,
//! and each CPSR rule against the SCTLR bit it depends on.

use super::*;
use moat_arm::pstate::{Aarch32Mode, Spsr32};
use moat_arm::sysreg::sctlr;

const PC: u64 = 0x8000_1000;
const VBAR: u64 = 0x6000_0000;
const FAR_EL1: u64 = 0x1111_1111_2222_2222;

const SOURCE_MODES: [Aarch32Mode; 7] = [
    Aarch32Mode::User,
    Aarch32Mode::Fiq,
    Aarch32Mode::Irq,
    Aarch32Mode::Supervisor,
    Aarch32Mode::Abort,
    Aarch32Mode::Undefined,
    Aarch32Mode::System,
];

const DATA: Aarch32Exception = Aarch32Exception::DataAbort {
    dfsr: 0x808,
    dfar: 0xC000_0000,
};
const PREFETCH: Aarch32Exception = Aarch32Exception::PrefetchAbort {
    ifsr: 0x8,
    ifar: PC as u32,
};
const UNDEF: Aarch32Exception = Aarch32Exception::Undefined;

fn cpsr(mode: Aarch32Mode, thumb: bool) -> Spsr32 {
    Spsr32::new(0).with_mode(mode).with_flag(Spsr32::T, thumb)
}

fn ctx(old: Spsr32, sctlr_el1: u64, features: CpuFeatures) -> GuestContext {
    let features = CpuFeatures {
        el1_aarch32: true,
        ..features
    };
    GuestContext {
        pc: PC,
        spsr_el2: u64::from(old.bits()),
        sctlr_el1,
        vbar_el1: VBAR,
        far_el1: FAR_EL1,
        features,
        ..Default::default()
    }
}

fn enter(old: Spsr32, sctlr: u64, exception: Aarch32Exception) -> Aarch32Entry {
    enter_mode_aarch32(&ctx(old, sctlr, CpuFeatures::default()), &exception)
}

fn new_cpsr(entry: &Aarch32Entry) -> Spsr32 {
    Spsr32::new(entry.spsr_el2 as u32)
}

#[test]
fn mode_vector_and_lr_follow_the_exception_from_every_mode_and_instruction_set() {
    // (exception, thumb, mode, vector offset, LR offset)
    let table = [
        (DATA, false, Aarch32Mode::Abort, 0x10, 8),
        (DATA, true, Aarch32Mode::Abort, 0x10, 8),
        (PREFETCH, false, Aarch32Mode::Abort, 0x0C, 4),
        (PREFETCH, true, Aarch32Mode::Abort, 0x0C, 4),
        (UNDEF, false, Aarch32Mode::Undefined, 0x04, 4),
        (UNDEF, true, Aarch32Mode::Undefined, 0x04, 2),
    ];
    for source in SOURCE_MODES {
        for (exception, thumb, mode, vector, lr) in table {
            let entry = enter(cpsr(source, thumb), 0, exception);
            let what = format!("{exception:?} from {source:?} thumb {thumb}");
            assert_eq!(new_cpsr(&entry).mode(), mode, "{what}");
            assert_eq!(entry.elr_el2, VBAR + vector, "{what}");
            assert_eq!(entry.lr, PC + lr, "{what}");
        }
    }
}

#[test]
fn banked_lr_homes_are_x20_for_abort_and_x22_for_undefined() {
    assert_eq!(
        enter(cpsr(Aarch32Mode::User, false), 0, DATA).target.lr_x(),
        20
    );
    assert_eq!(
        enter(cpsr(Aarch32Mode::User, false), 0, UNDEF)
            .target
            .lr_x(),
        22
    );
    assert_eq!(Aarch32Target::Abort.sp_x(), 21);
    assert_eq!(Aarch32Target::Undefined.sp_x(), 23);
}

#[test]
fn abort_masks_a_and_i_undefined_masks_only_i_and_f_is_unchanged() {
    // (exception, F before, A after)
    for (exception, a_after) in [(DATA, true), (PREFETCH, true), (UNDEF, false)] {
        for f in [false, true] {
            let old = cpsr(Aarch32Mode::Supervisor, false).with_flag(Spsr32::F, f);
            let p = new_cpsr(&enter(old, 0, exception));
            assert!(p.flag(Spsr32::I), "{exception:?}");
            assert_eq!(p.flag(Spsr32::A), a_after, "{exception:?}");
            assert_eq!(p.flag(Spsr32::F), f, "{exception:?} F={f}");
        }
    }
}

#[test]
fn t_follows_sctlr_te_and_e_follows_sctlr_ee() {
    // (SCTLR.TE, SCTLR.EE) for a source in the opposite state.
    for (te, ee) in [(false, false), (false, true), (true, false), (true, true)] {
        let sctlr = sctlr::TE.with_flag(sctlr::EE.with_flag(0, ee), te);
        let old = cpsr(Aarch32Mode::User, !te).with_flag(Spsr32::E, !ee);
        let p = new_cpsr(&enter(old, sctlr, DATA));
        assert_eq!(p.thumb(), te, "TE={te}");
        assert_eq!(p.flag(Spsr32::E), ee, "EE={ee}");
    }
}

#[test]
fn vector_base_is_0xffff0000_with_sctlr_v_else_vbar() {
    let hivecs = enter(cpsr(Aarch32Mode::User, false), sctlr::V.mask(), DATA);
    assert_eq!(hivecs.elr_el2, 0xFFFF_0010);
    let mut c = ctx(cpsr(Aarch32Mode::User, false), 0, CpuFeatures::default());
    c.vbar_el1 = VBAR | 0x1F;
    assert_eq!(
        enter_mode_aarch32(&c, &UNDEF).elr_el2,
        VBAR + 0x04,
        "VBAR[4:0] ignored"
    );
}

#[test]
fn it_ss_and_il_are_cleared() {
    let old = cpsr(Aarch32Mode::User, true)
        .with(Spsr32::IT_LOW, 0b11)
        .with(Spsr32::IT_HIGH, 0b10_1010)
        .with_flag(Spsr32::SS, true)
        .with_flag(Spsr32::IL, true);
    let p = new_cpsr(&enter(old, 0, PREFETCH));
    assert_eq!(Spsr32::IT_LOW.get(u64::from(p.bits())), 0);
    assert_eq!(Spsr32::IT_HIGH.get(u64::from(p.bits())), 0);
    assert!(!p.flag(Spsr32::SS) && !p.flag(Spsr32::IL));
}

#[test]
fn pan_is_set_when_span_is_0_and_feat_pan_is_present() {
    // (has_pan, SCTLR.SPAN, PAN after) with PAN clear before.
    let table = [
        (true, false, true),
        (true, true, false),
        (false, false, false),
    ];
    for (has_pan, span, after) in table {
        let features = CpuFeatures {
            has_pan,
            ..Default::default()
        };
        let sctlr = sctlr::SPAN.with_flag(0, span);
        let c = ctx(cpsr(Aarch32Mode::User, false), sctlr, features);
        let p = new_cpsr(&enter_mode_aarch32(&c, &DATA));
        assert_eq!(p.flag(Spsr32::PAN), after, "has_pan {has_pan} SPAN {span}");
    }
}

#[test]
fn ssbs_follows_sctlr_dssbs_when_feat_ssbs_is_present() {
    let features = CpuFeatures {
        has_ssbs: true,
        ..Default::default()
    };
    for dssbs in [false, true] {
        let c = ctx(
            cpsr(Aarch32Mode::User, false),
            sctlr::DSSBS.with_flag(0, dssbs),
            features,
        );
        assert_eq!(
            new_cpsr(&enter_mode_aarch32(&c, &UNDEF)).flag(Spsr32::SSBS),
            dssbs
        );
    }
}

#[test]
fn nzcv_q_ge_and_dit_survive_the_entry() {
    let old = cpsr(Aarch32Mode::User, false)
        .with(Spsr32::NZCV, 0b0110)
        .with_flag(Spsr32::Q, true)
        .with(Spsr32::GE, 0b1001)
        .with_flag(Spsr32::DIT, true);
    let p = new_cpsr(&enter(old, 0, DATA));
    let keep = Spsr32::NZCV.mask() | Spsr32::Q.mask() | Spsr32::GE.mask() | Spsr32::DIT.mask();
    assert_eq!(u64::from(p.bits()) & keep, u64::from(old.bits()) & keep);
}

#[test]
fn spsr_of_the_new_mode_is_the_old_cpsr_in_banked_layout() {
    let old = cpsr(Aarch32Mode::Supervisor, true).with(Spsr32::NZCV, 0b1000);
    let entry = enter(old, 0, DATA);
    assert_eq!(entry.spsr, old.bits());
    let stepping = old.with_flag(Spsr32::SS, true).with_flag(Spsr32::DIT, true);
    assert_eq!(
        enter(stepping, 0, DATA).spsr,
        old.bits() | (1 << 21),
        "DIT at 21, no SS"
    );
}

#[test]
fn data_abort_writes_dfsr_and_dfar_keeping_ifar() {
    let entry = enter(cpsr(Aarch32Mode::User, false), 0, DATA);
    assert_eq!(entry.dfsr, Some(0x808));
    assert_eq!(entry.ifsr, None);
    assert_eq!(entry.far_el1, Some(0x1111_1111_C000_0000));
}

#[test]
fn prefetch_abort_writes_ifsr_and_ifar_keeping_dfar() {
    let entry = enter(cpsr(Aarch32Mode::User, false), 0, PREFETCH);
    assert_eq!(entry.ifsr, Some(0x8));
    assert_eq!(entry.dfsr, None);
    assert_eq!(entry.far_el1, Some(0x8000_1000_2222_2222));
}

#[test]
fn undefined_writes_no_fault_registers() {
    let entry = enter(cpsr(Aarch32Mode::User, false), 0, UNDEF);
    assert_eq!((entry.dfsr, entry.ifsr, entry.far_el1), (None, None, None));
}

#[test]
fn lr_wraps_at_32_bits() {
    let mut c = ctx(cpsr(Aarch32Mode::User, false), 0, CpuFeatures::default());
    c.pc = 0xFFFF_FFFC;
    assert_eq!(enter_mode_aarch32(&c, &DATA).lr, 4);
}

/// The SCTLR bits `AArch32.EnterMode()` reads, as one combination.
#[derive(Clone, Copy, Debug)]
struct SctlrBits {
    te: bool,
    ee: bool,
    v: bool,
    span: bool,
    dssbs: bool,
}

fn all_sctlr_combinations() -> impl Iterator<Item = SctlrBits> {
    (0..32u32).map(|n| SctlrBits {
        te: n & 1 != 0,
        ee: n & 2 != 0,
        v: n & 4 != 0,
        span: n & 8 != 0,
        dssbs: n & 16 != 0,
    })
}

impl SctlrBits {
    fn value(self) -> u64 {
        let bits = sctlr::TE.with_flag(0, self.te);
        let bits = sctlr::EE.with_flag(bits, self.ee);
        let bits = sctlr::V.with_flag(bits, self.v);
        let bits = sctlr::SPAN.with_flag(bits, self.span);
        sctlr::DSSBS.with_flag(bits, self.dssbs)
    }
}

#[test]
fn every_mode_instruction_set_exception_and_sctlr_combination_follows_enter_mode() {
    let exceptions = [(DATA, 0x10, 8), (PREFETCH, 0x0C, 4), (UNDEF, 0x04, 4)];
    for source in SOURCE_MODES {
        for thumb in [false, true] {
            for (exception, vector, lr) in exceptions {
                for bits in all_sctlr_combinations() {
                    for has_feats in [false, true] {
                        let features = CpuFeatures {
                            has_pan: has_feats,
                            has_ssbs: has_feats,
                            ..Default::default()
                        };
                        let old = cpsr(source, thumb).with_flag(Spsr32::F, thumb);
                        let c = ctx(old, bits.value(), features);
                        let entry = enter_mode_aarch32(&c, &exception);
                        let p = new_cpsr(&entry);
                        let what =
                            format!("{exception:?} {source:?} T={thumb} {bits:?} {has_feats}");
                        let is_undef = exception == UNDEF;
                        let base = if bits.v { 0xFFFF_0000 } else { VBAR };
                        assert_eq!(entry.elr_el2, base + vector, "{what}");
                        let lr = if is_undef && thumb { 2 } else { lr };
                        assert_eq!(entry.lr, PC + lr, "{what}");
                        assert_eq!(p.thumb(), bits.te, "{what}");
                        assert_eq!(p.flag(Spsr32::E), bits.ee, "{what}");
                        assert_eq!(p.flag(Spsr32::A), !is_undef, "{what}");
                        assert!(p.flag(Spsr32::I), "{what}");
                        assert_eq!(p.flag(Spsr32::F), thumb, "F unchanged: {what}");
                        assert_eq!(p.flag(Spsr32::PAN), has_feats && !bits.span, "{what}");
                        assert_eq!(p.flag(Spsr32::SSBS), has_feats && bits.dssbs, "{what}");
                        assert_eq!(entry.spsr, old.bits(), "{what}");
                    }
                }
            }
        }
    }
}

#[test]
fn svc_mode_data_abort_gives_the_cpsr_linux_reports_in_abort_mode() {
    // From SVC mode with Z and C set and A, I, F masked (CPSR 0x600001d3): Abort mode 0x17.
    let old = Spsr32::new(0x6000_01D3);
    let entry = enter(old, 0, DATA);
    assert_eq!(entry.spsr_el2, 0x6000_01D7);
    assert_eq!(entry.spsr, 0x6000_01D3);
}

#[test]
fn user_mode_thumb_undefined_gives_undefined_mode_in_arm_state_without_te() {
    // CPSR 0x80000030: N set, T32, User. SCTLR.TE = 0 so the handler runs in A32.
    let entry = enter(Spsr32::new(0x8000_0030), 0, UNDEF);
    assert_eq!(
        entry.spsr_el2, 0x8000_009B,
        "Undefined mode, I set, T clear, A unchanged"
    );
    assert_eq!(entry.lr, PC + 2);
}

#[test]
fn target_lr_and_sp_homes_agree_with_the_arm_register_mapping() {
    use moat_arm::banked::aarch64_home;
    for target in [Aarch32Target::Abort, Aarch32Target::Undefined] {
        assert_eq!(aarch64_home(target.mode(), 14), Some(target.lr_x()));
        assert_eq!(aarch64_home(target.mode(), 13), Some(target.sp_x()));
    }
}
