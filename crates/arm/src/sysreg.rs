//! The fields of the EL1 and EL2 system registers that exception entry and injection read or
//! write, named as in the Arm ARM. AArch32 registers are the low 32 bits of their AArch64
//! homes (`SCTLR` in `SCTLR_EL1[31:0]`, `TTBCR` in `TCR_EL1[31:0]`, `VBAR` in
//! `VBAR_EL1[31:0]`).

/// `SCTLR_EL1` (AArch64).
pub mod sctlr_el1 {
    use crate::field::Field;
    /// `SPINTMASK`: on entry, `PSTATE.ALLINT` = NOT `SPINTMASK` (FEAT_NMI).
    pub const SPINTMASK: Field = Field::bit(62);
    /// `DSSBS`: `PSTATE.SSBS` on exception entry (FEAT_SSBS).
    pub const DSSBS: Field = Field::bit(44);
    /// `EE`: data endianness at EL1.
    pub const EE: Field = Field::bit(25);
    /// `SPAN`: 0 sets `PSTATE.PAN` on exception entry to EL1 (FEAT_PAN).
    pub const SPAN: Field = Field::bit(23);
    /// `M`: stage-1 MMU enable.
    pub const M: Field = Field::bit(0);
}

/// `SCTLR` (AArch32).
pub mod sctlr {
    use crate::field::Field;
    /// `DSSBS`: `PSTATE.SSBS` on exception entry (FEAT_SSBS).
    pub const DSSBS: Field = Field::bit(31);
    /// `TE`: exceptions are taken in T32 state.
    pub const TE: Field = Field::bit(30);
    /// `EE`: `PSTATE.E` on exception entry.
    pub const EE: Field = Field::bit(25);
    /// `SPAN`: 0 sets `PSTATE.PAN` on exception entry (FEAT_PAN).
    pub const SPAN: Field = Field::bit(23);
    /// `V`: high exception vectors (`0xFFFF0000`).
    pub const V: Field = Field::bit(13);
    /// `M`: stage-1 MMU enable.
    pub const M: Field = Field::bit(0);
}

/// `TTBCR` (AArch32).
pub mod ttbcr {
    use crate::field::Field;
    /// `EAE`: the long-descriptor (LPAE) translation table format; selects the `DFSR`/`IFSR`
    /// and `PAR` formats.
    pub const EAE: Field = Field::bit(31);
}

/// `HCR_EL2`.
pub mod hcr_el2 {
    use crate::field::Field;
    /// `VSE`: a virtual SError is pending.
    pub const VSE: Field = Field::bit(8);
    /// `RW`: EL1 is AArch64.
    pub const RW: Field = Field::bit(31);
}

/// `VSESR_EL2` (FEAT_RAS): the syndrome of a virtual SError.
pub mod vsesr_el2 {
    use crate::field::Field;
    /// `IDS`: for an AArch64 EL1, `ESR_EL1.IDS` of the virtual SError.
    pub const IDS: Field = Field::bit(24);
    /// `ISS`: for an AArch64 EL1, `ESR_EL1.ISS[23:0]` of the virtual SError.
    pub const ISS: Field = Field::new(0, 24);
    /// `AET`: for an AArch32 EL1, `DFSR.AET` of the virtual SError.
    pub const AET: Field = Field::new(14, 2);
    /// `ExT`: for an AArch32 EL1, `DFSR.ExT` of the virtual SError.
    pub const EXT: Field = Field::bit(12);
}

/// `FAR_EL1`: for an AArch32 EL1 it holds `DFAR` and `IFAR`.
pub mod far_el1 {
    use crate::field::Field;
    /// `DFAR` lives in `FAR_EL1[31:0]`.
    pub const DFAR: Field = Field::new(0, 32);
    /// `IFAR` lives in `FAR_EL1[63:32]`.
    pub const IFAR: Field = Field::new(32, 32);
}

/// `ID_AA64PFR0_EL1`.
pub mod id_aa64pfr0_el1 {
    use crate::field::Field;
    /// `RAS`: non-zero with FEAT_RAS.
    pub const RAS: Field = Field::new(28, 4);
}

/// `ID_AA64PFR1_EL1`.
pub mod id_aa64pfr1_el1 {
    use crate::field::Field;
    /// `GCS`: non-zero with FEAT_GCS.
    pub const GCS: Field = Field::new(44, 4);
    /// `NMI`: non-zero with FEAT_NMI.
    pub const NMI: Field = Field::new(36, 4);
    /// `MTE`: non-zero with FEAT_MTE (`PSTATE.TCO` exists).
    pub const MTE: Field = Field::new(8, 4);
    /// `SSBS`: non-zero with FEAT_SSBS (`PSTATE.SSBS` exists).
    pub const SSBS: Field = Field::new(4, 4);
    /// `BT`: non-zero with FEAT_BTI.
    pub const BT: Field = Field::new(0, 4);
}

/// `ID_AA64MMFR1_EL1`.
pub mod id_aa64mmfr1_el1 {
    use crate::field::Field;
    /// `PAN`: non-zero with FEAT_PAN.
    pub const PAN: Field = Field::new(20, 4);
}

/// `ID_AA64MMFR2_EL1`.
pub mod id_aa64mmfr2_el1 {
    use crate::field::Field;
    /// `UAO`: non-zero with FEAT_UAO.
    pub const UAO: Field = Field::new(4, 4);
}

/// `ID_AA64DFR1_EL1`.
pub mod id_aa64dfr1_el1 {
    use crate::field::Field;
    /// `EBEP`: non-zero with FEAT_EBEP.
    pub const EBEP: Field = Field::new(48, 4);
}
