//! Exception entry into the guest: what `AArch64.TakeException()` (target EL1) and
//! `AArch32.EnterMode()` (an AArch32 EL1) do to the guest's registers, computed as plain values.
//!
//! SPEC.md §3: when Moat injects an exception, the guest's registers afterwards must be what
//! the Arm ARM pseudocode would have produced had the CPU taken it. The EL2 binary captures the
//! guest state into a [`GuestContext`], calls [`take_exception_aarch64`] or
//! [`enter_mode_aarch32`] (usually through `crate::inject`), and applies the returned
//! [`Entry`]: [`Entry::apply_to_frame`] for the PC, PSTATE and banked LR, and
//! [`Entry::sysreg_writes`] for the system registers. Nothing here touches hardware.
//!
//! Writing the entry's `elr_el2` *replaces* the guest's return address: an exception entry
//! cancels any pending "advance the PC past the trapped instruction" step.

mod aarch32;
mod aarch64;
mod writes;

pub use aarch32::{Aarch32Entry, Aarch32Exception, Aarch32Target, enter_mode_aarch32};
pub use aarch64::{Aarch64Entry, Aarch64Exception, take_exception_aarch64};
pub use writes::{Entry, SysregWrites};

/// The CPU features that change what exception entry does (`IsFeatureImplemented(...)` in the
/// pseudocode). These are the *hardware's* features: an injected exception must look like one
/// the same CPU takes itself (SPEC.md §3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CpuFeatures {
    /// FEAT_PAN: `PSTATE.PAN` exists and is set on entry when `SCTLR.SPAN` = 0.
    pub has_pan: bool,
    /// FEAT_SSBS: `PSTATE.SSBS` is set from `SCTLR.DSSBS` on entry.
    pub has_ssbs: bool,
    /// FEAT_MTE: `PSTATE.TCO` is set on entry (AArch64).
    pub has_mte: bool,
    /// FEAT_RAS: `VSESR_EL2` exists; `SET`/`AET` fields are defined.
    pub has_ras: bool,
    /// FEAT_UAO: `PSTATE.UAO` is cleared on entry.
    pub has_uao: bool,
    /// FEAT_BTI: `PSTATE.BTYPE` is cleared on entry.
    pub has_bti: bool,
    /// FEAT_NMI: `PSTATE.ALLINT` = NOT `SCTLR_EL1.SPINTMASK` on entry.
    pub has_nmi: bool,
    /// FEAT_EBEP: `PSTATE.PM` is set on entry.
    pub has_ebep: bool,
    /// The guest's EL1 is AArch32 (`HCR_EL2.RW` = 0): exceptions enter an AArch32 mode.
    pub el1_aarch32: bool,
}

/// The guest state exception entry depends on, as captured at the trap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GuestContext {
    /// `ELR_EL2` at the trap: the address of the instruction that trapped or faulted (the
    /// preferred exception return of a synchronous exception).
    pub pc: u64,
    /// `SPSR_EL2` at the trap: the guest's PSTATE (AArch64 or AArch32 layout, `M[4]`).
    pub spsr_el2: u64,
    /// `SCTLR_EL1` (for an AArch32 EL1: `SCTLR` in bits \[31:0\]).
    pub sctlr_el1: u64,
    /// `VBAR_EL1` (for an AArch32 EL1: `VBAR` in bits \[31:0\]).
    pub vbar_el1: u64,
    /// `TCR_EL1` (for an AArch32 EL1: `TTBCR` in bits \[31:0\], whose `EAE` picks the fault
    /// status format).
    pub tcr_el1: u64,
    /// `FAR_EL1` (for an AArch32 EL1, `DFAR` and `IFAR` share it; writing one keeps the other).
    pub far_el1: u64,
    /// The CPU's features.
    pub features: CpuFeatures,
}

#[cfg(test)]
mod tests_aarch32;
#[cfg(test)]
mod tests_aarch64;
#[cfg(test)]
mod tests_props;
