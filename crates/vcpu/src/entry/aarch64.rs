//! `AArch64.TakeException()` for a target of EL1, from EL0 (AArch64 or AArch32 state), EL1t or
//! EL1h. Each step names the pseudocode line it implements (DDI 0487, J1 "AArch64.TakeException").

use super::GuestContext;
use moat_arm::esr::Esr;
use moat_arm::pstate::{Aarch64Mode, Spsr32, Spsr64, is_aarch32};
use moat_arm::sysreg::sctlr_el1;
use moat_arm::vector::{VBAR_BASE_MASK, VectorKind, VectorSource, vector_offset};

/// A synchronous exception or SError to take to an AArch64 EL1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Aarch64Exception {
    /// The vector entry: `Synchronous` for aborts and undefined instructions.
    pub kind: VectorKind,
    /// The syndrome for `ESR_EL1` (its `EC` already says lower or same EL).
    pub esr: Esr,
    /// The value for `FAR_EL1`, or `None` where the exception leaves it UNKNOWN (Moat leaves it
    /// unchanged).
    pub far: Option<u64>,
}

/// The register values after the exception entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Aarch64Entry {
    /// The new PC, for `ELR_EL2`: `VBAR_EL1[63:11]` + the vector offset.
    pub elr_el2: u64,
    /// The new PSTATE, for `SPSR_EL2` (EL1h).
    pub spsr_el2: u64,
    /// `ESR_EL1`.
    pub esr_el1: u64,
    /// `FAR_EL1`, or `None` to leave it unchanged.
    pub far_el1: Option<u64>,
    /// `ELR_EL1`: the preferred exception return (the trapped instruction).
    pub elr_el1: u64,
    /// `SPSR_EL1`: the interrupted PSTATE.
    pub spsr_el1: u64,
}

/// Takes `exception` to EL1 of an AArch64 guest whose state at the trap is `ctx`.
#[must_use]
pub fn take_exception_aarch64(ctx: &GuestContext, exception: &Aarch64Exception) -> Aarch64Entry {
    // vect_offset += 0x400/0x600 (lower EL, AArch64/AArch32) or 0x200 (PSTATE.SP == '1').
    let offset = vector_offset(vector_source(ctx.spsr_el2), exception.kind);
    Aarch64Entry {
        // BranchTo(VBAR_ELx[]<63:11>:vect_offset<10:0>).
        elr_el2: (ctx.vbar_el1 & VBAR_BASE_MASK) | offset,
        spsr_el2: new_pstate(ctx).bits(),
        // AArch64.ReportException(): ESR_ELx = syndrome, FAR_ELx = vaddress.
        esr_el1: exception.esr.bits(),
        far_el1: exception.far,
        // ELR_ELx[] = preferred_exception_return.
        elr_el1: ctx.pc,
        // SPSR_ELx[] = GetPSRFromPSTATE(AArch64_NonDebugState): SPSR_EL2 has that layout.
        // (For a data abort or an undefined instruction the pseudocode may zero SPSR.BTYPE,
        // CONSTRAINED UNPREDICTABLE `Unpredictable_ZEROBTYPE`; Moat keeps it.)
        spsr_el1: ctx.spsr_el2,
    }
}

/// Where the exception comes from, relative to EL1.
fn vector_source(spsr_el2: u64) -> VectorSource {
    if is_aarch32(spsr_el2) {
        // A guest with an AArch64 EL1 runs AArch32 only at EL0.
        return VectorSource::LowerAarch32;
    }
    let spsr = Spsr64::new(spsr_el2);
    match (spsr.el(), spsr.sp_elx()) {
        (0, _) => VectorSource::LowerAarch64,
        (_, false) => VectorSource::CurrentElSp0,
        (_, true) => VectorSource::CurrentElSpx,
    }
}

/// The PSTATE bits `AArch64.TakeException()` leaves alone, in the AArch64 layout.
fn kept_pstate(spsr_el2: u64) -> Spsr64 {
    if !is_aarch32(spsr_el2) {
        return Spsr64::new(spsr_el2);
    }
    // From AArch32 only NZCV, DIT and PAN carry over (the rest has no AArch64 PSTATE field, or
    // is rewritten below: if from_32 then PSTATE.IT = '00000000'; PSTATE.T = '0').
    let old = Spsr32::new(spsr_el2 as u32);
    Spsr64::default()
        .with(Spsr64::NZCV, Spsr32::NZCV.get(u64::from(old.bits())))
        .with_flag(Spsr64::DIT, old.flag(Spsr32::DIT))
        .with_flag(Spsr64::PAN, old.flag(Spsr32::PAN))
}

/// The PSTATE after the entry, step by step as in `AArch64.TakeException()`.
fn new_pstate(ctx: &GuestContext) -> Spsr64 {
    // if FEAT_GCS then PSTATE.EXLOCK = (same EL: GetCurrentEXLOCKEN(); lower EL: '0'). Moat
    // hides FEAT_GCS from guests, so GCSCR_EL1.EXLOCKEN is 0 and EXLOCK is 0 from any source.
    let mut p = kept_pstate(ctx.spsr_el2).with_flag(Spsr64::EXLOCK, false);
    // PSTATE.EL = target_el; PSTATE.nRW = '0'; PSTATE.SP = '1'.
    p = p.with_mode(Aarch64Mode::El1h);
    // PSTATE.SS = '0'.
    p = p.with_flag(Spsr64::SS, false);
    p = feature_controlled_bits(p, ctx);
    // PSTATE.<D,A,I,F> = '1111'.
    for mask in [Spsr64::D, Spsr64::A, Spsr64::I, Spsr64::F] {
        p = p.with_flag(mask, true);
    }
    // PSTATE.IL = '0'.
    p = p.with_flag(Spsr64::IL, false);
    // if FEAT_UINJ then PSTATE.UINJ = '0'; if FEAT_PAuth_LR then PSTATE.PACM = '0';
    // if FEAT_SEBEP then PSTATE.PPEND = '0' (RES0 without the feature: cleared either way).
    for cleared in [Spsr64::UINJ, Spsr64::PACM, Spsr64::PPEND] {
        p = p.with_flag(cleared, false);
    }
    // if FEAT_PAN && PSTATE.EL == EL1 && SCTLR_ELx[].SPAN == '0' then PSTATE.PAN = '1'.
    if ctx.features.has_pan && !sctlr_el1::SPAN.is_set(ctx.sctlr_el1) {
        p = p.with_flag(Spsr64::PAN, true);
    }
    // (if from_32 then PSTATE.IT = '00000000'; PSTATE.T = '0': kept_pstate keeps neither.)
    // if FEAT_BTI then PSTATE.BTYPE = '00'.
    if ctx.features.has_bti {
        p = p.with(Spsr64::BTYPE, 0);
    }
    p
}

/// The PSTATE bits set from `SCTLR_EL1` or forced by a feature's presence.
fn feature_controlled_bits(mut p: Spsr64, ctx: &GuestContext) -> Spsr64 {
    let (features, sctlr) = (&ctx.features, ctx.sctlr_el1);
    // if FEAT_SSBS then PSTATE.SSBS = SCTLR_ELx[].DSSBS.
    if features.has_ssbs {
        p = p.with_flag(Spsr64::SSBS, sctlr_el1::DSSBS.is_set(sctlr));
    }
    // if FEAT_EBEP then PSTATE.PM = '1'.
    if features.has_ebep {
        p = p.with_flag(Spsr64::PM, true);
    }
    // if FEAT_NMI then PSTATE.ALLINT = NOT SCTLR_ELx[].SPINTMASK.
    if features.has_nmi {
        p = p.with_flag(Spsr64::ALLINT, !sctlr_el1::SPINTMASK.is_set(sctlr));
    }
    // if FEAT_MTE then PSTATE.TCO = '1'.
    if features.has_mte {
        p = p.with_flag(Spsr64::TCO, true);
    }
    // if FEAT_UAO then PSTATE.UAO = '0'.
    if features.has_uao {
        p = p.with_flag(Spsr64::UAO, false);
    }
    p
}
