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

use moat_arm::sysreg::{
    id_aa64dfr1_el1, id_aa64mmfr1_el1, id_aa64mmfr2_el1, id_aa64pfr0_el1, id_aa64pfr1_el1,
};

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

/// The hardware ID registers [`CpuFeatures`] is read from (the minimum over the CPUs the VM
/// runs on, as the EL2 binary reads them at boot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IdRegisters {
    /// `ID_AA64PFR0_EL1`.
    pub id_aa64pfr0_el1: u64,
    /// `ID_AA64PFR1_EL1`.
    pub id_aa64pfr1_el1: u64,
    /// `ID_AA64MMFR1_EL1`.
    pub id_aa64mmfr1_el1: u64,
    /// `ID_AA64MMFR2_EL1`.
    pub id_aa64mmfr2_el1: u64,
    /// `ID_AA64DFR1_EL1`.
    pub id_aa64dfr1_el1: u64,
}

impl CpuFeatures {
    /// The features of a CPU with ID registers `id`, for a guest whose EL1 is AArch32 or not.
    #[must_use]
    pub const fn from_id_registers(id: &IdRegisters, el1_aarch32: bool) -> Self {
        Self {
            has_pan: id_aa64mmfr1_el1::PAN.is_set(id.id_aa64mmfr1_el1),
            has_ssbs: id_aa64pfr1_el1::SSBS.is_set(id.id_aa64pfr1_el1),
            has_mte: id_aa64pfr1_el1::MTE.is_set(id.id_aa64pfr1_el1),
            has_ras: id_aa64pfr0_el1::RAS.is_set(id.id_aa64pfr0_el1),
            has_uao: id_aa64mmfr2_el1::UAO.is_set(id.id_aa64mmfr2_el1),
            has_bti: id_aa64pfr1_el1::BT.is_set(id.id_aa64pfr1_el1),
            has_nmi: id_aa64pfr1_el1::NMI.is_set(id.id_aa64pfr1_el1),
            has_ebep: id_aa64dfr1_el1::EBEP.is_set(id.id_aa64dfr1_el1),
            el1_aarch32,
        }
    }
}

/// The guest state exception entry depends on, as captured at the trap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GuestContext {
    /// The address of the instruction the injected exception is taken on (its preferred
    /// exception return): `ELR_EL2` after an abort or a trapped instruction, but for an `HVC`
    /// (or `SVC`), whose `ELR_EL2` already points past it, `ELR_EL2` minus its length.
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
mod tests {
    use super::*;

    #[test]
    fn features_follow_the_id_register_fields() {
        let none = CpuFeatures::from_id_registers(&IdRegisters::default(), false);
        assert_eq!(none, CpuFeatures::default());
        // ID_AA64PFR1_EL1 of a core with BTI, SSBS2, MTE2 and NMI; PAN3; UAO; RAS; EBEP.
        let id = IdRegisters {
            id_aa64pfr0_el1: 1 << 28,
            id_aa64pfr1_el1: (1 << 36) | (2 << 8) | (2 << 4) | 1,
            id_aa64mmfr1_el1: 3 << 20,
            id_aa64mmfr2_el1: 1 << 4,
            id_aa64dfr1_el1: 1 << 48,
        };
        let all = CpuFeatures::from_id_registers(&id, true);
        let expected = CpuFeatures {
            has_pan: true,
            has_ssbs: true,
            has_mte: true,
            has_ras: true,
            has_uao: true,
            has_bti: true,
            has_nmi: true,
            has_ebep: true,
            el1_aarch32: true,
        };
        assert_eq!(all, expected);
    }
}

#[cfg(test)]
mod tests_aarch32;
#[cfg(test)]
mod tests_aarch64;
#[cfg(test)]
pub(crate) mod tests_props;
