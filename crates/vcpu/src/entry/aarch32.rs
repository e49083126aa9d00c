//! `AArch32.EnterMode()` for a guest whose EL1 is AArch32: the undefined instruction, prefetch
//! abort and data abort entries (`AArch32.TakeUndefInstrException()`,
//! `AArch32.TakePrefetchAbortException()`, `AArch32.TakeDataAbortException()`), from any PL0
//! or PL1 mode, A32 or T32. Each step names the pseudocode line it implements (DDI 0487).
//!
//! The AArch32 registers live in AArch64 homes: `LR_abt`/`SP_abt` are `X20`/`X21`,
//! `LR_und`/`SP_und` are `X22`/`X23`, `SPSR_abt`/`SPSR_und` are the EL2 system registers of
//! those names, `DFSR` is `ESR_EL1[31:0]`, `IFSR` is `IFSR32_EL2`, and `DFAR`/`IFAR` are
//! `FAR_EL1[31:0]`/`FAR_EL1[63:32]`.

use super::GuestContext;
use moat_arm::pstate::{Aarch32Mode, Spsr32};
use moat_arm::sysreg::{far_el1, sctlr};
use moat_arm::vector::{Aarch32Vector, HIGH_VECTORS_BASE, VBAR32_BASE_MASK};

/// The three exceptions Moat enters an AArch32 EL1 with, and what they report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aarch32Exception {
    /// Undefined instruction: Undefined mode, vector 0x04, `LR_und` = PC + 4 (A32) or + 2
    /// (T32).
    Undefined,
    /// Prefetch abort: Abort mode, vector 0x0C, `LR_abt` = PC + 4; `IFSR` and `IFAR` written.
    PrefetchAbort {
        /// The `IFSR` value.
        ifsr: u32,
        /// The faulting virtual address, for `IFAR`.
        ifar: u32,
    },
    /// Data abort: Abort mode, vector 0x10, `LR_abt` = PC + 8; `DFSR` and `DFAR` written.
    DataAbort {
        /// The `DFSR` value.
        dfsr: u32,
        /// The faulting virtual address, for `DFAR`.
        dfar: u32,
    },
}

/// The mode an exception enters, with the AArch64 homes of its banked registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aarch32Target {
    /// Abort mode: `LR_abt` = `X20`, `SP_abt` = `X21`, `SPSR_abt`.
    Abort,
    /// Undefined mode: `LR_und` = `X22`, `SP_und` = `X23`, `SPSR_und`.
    Undefined,
}

impl Aarch32Target {
    /// The mode.
    #[must_use]
    pub const fn mode(self) -> Aarch32Mode {
        match self {
            Self::Abort => Aarch32Mode::Abort,
            Self::Undefined => Aarch32Mode::Undefined,
        }
    }

    /// The index of the AArch64 register that holds the mode's banked LR (`X20`, `X22`).
    #[must_use]
    pub const fn lr_x(self) -> usize {
        match self {
            Self::Abort => 20,
            Self::Undefined => 22,
        }
    }

    /// The index of the AArch64 register that holds the mode's banked SP (`X21`, `X23`).
    #[must_use]
    pub const fn sp_x(self) -> usize {
        self.lr_x() + 1
    }
}

/// The register values after the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Aarch32Entry {
    /// The new PC, for `ELR_EL2`: `ExcVectorBase()` + the vector offset.
    pub elr_el2: u64,
    /// The new CPSR, for `SPSR_EL2` (AArch32 layout).
    pub spsr_el2: u64,
    /// The mode entered; names the banked LR (`X20`/`X22`) and `SPSR_abt`/`SPSR_und`.
    pub target: Aarch32Target,
    /// The value for the banked LR (`R[14]` of the new mode): PC + the LR offset.
    pub lr: u64,
    /// The value for `SPSR_abt` or `SPSR_und`: the old CPSR in the `SPSR_<mode>` layout.
    pub spsr: u32,
    /// `DFSR`, for `ESR_EL1` (data abort only).
    pub dfsr: Option<u32>,
    /// `IFSR`, for `IFSR32_EL2` (prefetch abort only).
    pub ifsr: Option<u32>,
    /// The new `FAR_EL1` with `DFAR` or `IFAR` replaced (the other half kept), or `None`.
    pub far_el1: Option<u64>,
}

/// Enters the mode for `exception` in an AArch32 EL1 whose state at the trap is `ctx`.
#[must_use]
pub fn enter_mode_aarch32(ctx: &GuestContext, exception: &Aarch32Exception) -> Aarch32Entry {
    let old = Spsr32::new(ctx.spsr_el2 as u32);
    let (target, vector) = target_and_vector(exception);
    // R[14] = preferred_exception_return + lr_offset (preferred = ThisInstrAddr()).
    let lr = (ctx.pc as u32).wrapping_add(lr_offset(exception, old));
    let (dfsr, ifsr, far_el1) = report(ctx.far_el1, exception);
    Aarch32Entry {
        // BranchTo(ExcVectorBase()<31:5>:vect_offset<4:0>).
        elr_el2: u64::from(exc_vector_base(ctx) | vector.offset()),
        spsr_el2: u64::from(new_cpsr(ctx, old, target).bits()),
        target,
        lr: u64::from(lr),
        // SPSR_curr[] = GetPSRFromPSTATE(AArch32_NonDebugState, 32).
        spsr: old.to_banked(),
        dfsr,
        ifsr,
        far_el1,
    }
}

/// The mode and vector of each exception.
const fn target_and_vector(exception: &Aarch32Exception) -> (Aarch32Target, Aarch32Vector) {
    match exception {
        Aarch32Exception::Undefined => (Aarch32Target::Undefined, Aarch32Vector::Undefined),
        Aarch32Exception::PrefetchAbort { .. } => {
            (Aarch32Target::Abort, Aarch32Vector::PrefetchAbort)
        }
        Aarch32Exception::DataAbort { .. } => (Aarch32Target::Abort, Aarch32Vector::DataAbort),
    }
}

/// `lr_offset`: 8 for a data abort, 4 for a prefetch abort; for an undefined instruction
/// `if CurrentInstrSet() == InstrSet_A32 then 4 else 2`.
const fn lr_offset(exception: &Aarch32Exception, old: Spsr32) -> u32 {
    match exception {
        Aarch32Exception::DataAbort { .. } => 8,
        Aarch32Exception::PrefetchAbort { .. } => 4,
        Aarch32Exception::Undefined if old.thumb() => 2,
        Aarch32Exception::Undefined => 4,
    }
}

/// `ExcVectorBase()`: `0xFFFF0000` when `SCTLR.V` = 1, else `VBAR[31:5]`.
fn exc_vector_base(ctx: &GuestContext) -> u32 {
    if sctlr::V.is_set(ctx.sctlr_el1) {
        HIGH_VECTORS_BASE
    } else {
        (ctx.vbar_el1 as u32) & VBAR32_BASE_MASK
    }
}

/// `AArch32.ReportDataAbort()`/`ReportPrefetchAbort()`: `DFSR`+`DFAR` or `IFSR`+`IFAR`.
fn report(far_el1: u64, exception: &Aarch32Exception) -> (Option<u32>, Option<u32>, Option<u64>) {
    match *exception {
        Aarch32Exception::Undefined => (None, None, None),
        Aarch32Exception::DataAbort { dfsr, dfar } => (
            Some(dfsr),
            None,
            Some(far_el1::DFAR.insert(far_el1, u64::from(dfar))),
        ),
        Aarch32Exception::PrefetchAbort { ifsr, ifar } => (
            None,
            Some(ifsr),
            Some(far_el1::IFAR.insert(far_el1, u64::from(ifar))),
        ),
    }
}

/// The CPSR after the entry, step by step as in `AArch32.EnterMode()`.
fn new_cpsr(ctx: &GuestContext, old: Spsr32, target: Aarch32Target) -> Spsr32 {
    let sctlr = ctx.sctlr_el1;
    // AArch32.WriteMode(target_mode).
    let mut p = old.with_mode(target.mode());
    // PSTATE.T = SCTLR.TE (PSTATE.J is RES0).
    p = p.with_flag(Spsr32::T, sctlr::TE.is_set(sctlr));
    // PSTATE.SS = '0'.
    p = p.with_flag(Spsr32::SS, false);
    // M32_Abort: PSTATE.<A,I> = '11'; otherwise (not FIQ) PSTATE.I = '1'. F is unchanged.
    p = p.with_flag(Spsr32::I, true);
    if target == Aarch32Target::Abort {
        p = p.with_flag(Spsr32::A, true);
    }
    // PSTATE.E = SCTLR.EE.
    p = p.with_flag(Spsr32::E, sctlr::EE.is_set(sctlr));
    // PSTATE.IL = '0'; PSTATE.IT = '00000000'.
    p = p.with_flag(Spsr32::IL, false);
    p = p.with(Spsr32::IT_LOW, 0).with(Spsr32::IT_HIGH, 0);
    // if FEAT_PAN && SCTLR.SPAN == '0' then PSTATE.PAN = '1'.
    if ctx.features.has_pan && !sctlr::SPAN.is_set(sctlr) {
        p = p.with_flag(Spsr32::PAN, true);
    }
    // if FEAT_SSBS then PSTATE.SSBS = SCTLR.DSSBS.
    if ctx.features.has_ssbs {
        p = p.with_flag(Spsr32::SSBS, sctlr::DSSBS.is_set(sctlr));
    }
    p
}
