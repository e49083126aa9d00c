//! The GICv2's memory-mapped registers (GICv2 IHI 0048B, 4.1.2 Table 4-1 "Distributor register
//! map", 4.1.3 Table 4-2 "CPU interface register map", 5.3 Table 5-1 "GIC virtual interface
//! control register map"): the offsets and fields that the model of a guest's distributor and
//! the hypervisor's driver of the machine's GIC both use.

/// Distributor (`GICD_*`) offsets and fields.
pub mod gicd {
    /// `GICD_CTLR`.
    pub const CTLR: u64 = 0x000;
    /// `GICD_TYPER`.
    pub const TYPER: u64 = 0x004;
    /// `GICD_IIDR`.
    pub const IIDR: u64 = 0x008;
    /// `GICD_ISENABLER`.
    pub const ISENABLER: u64 = 0x100;
    /// `GICD_ICENABLER`. This and the other one-bit-per-interrupt registers sit at the same
    /// offsets in a GICv3's distributor (IHI 0069, 12.9 "The GIC Distributor register map").
    pub const ICENABLER: u64 = 0x180;
    /// `GICD_ISPENDR`.
    pub const ISPENDR: u64 = 0x200;
    /// `GICD_ICACTIVER`.
    pub const ICACTIVER: u64 = 0x380;
    /// `GICD_IPRIORITYR`.
    pub const IPRIORITYR: u64 = 0x400;
    /// `GICD_ITARGETSRn`, one byte per INTID 0–1019; bytes 0–31 read-only and banked.
    pub const ITARGETSR: u64 = 0x800;
    /// The end of `GICD_ITARGETSRn`.
    pub const ITARGETSR_END: u64 = 0x800 + 1020;
    /// `GICD_ICFGR`.
    pub const ICFGR: u64 = 0xC00;
    /// `GICD_SGIR`.
    pub const SGIR: u64 = 0xF00;
    /// `GICD_CPENDSGIRn` and `GICD_SPENDSGIRn`: one byte per SGI, one bit per source CPU.
    pub const CPENDSGIR: u64 = 0xF10;
    /// `GICD_SPENDSGIRn`.
    pub const SPENDSGIR: u64 = 0xF20;
    /// The length of each of them.
    pub const PENDSGIR_LEN: u64 = 0x10;
    /// `GICD_PIDR4` .. `GICD_CIDR3`, one byte per word.
    pub const ID_START: u64 = 0xFD0;
    /// The end of the identification registers.
    pub const ID_END: u64 = 0x1000;
    /// `GICD_CTLR.EnableGrp0` (bit 0) without the Security Extensions; in the Non-secure
    /// view of a GIC with them, bit 0 is `EnableGrp1`.
    pub const CTLR_ENABLE_GRP0: u32 = 1 << 0;
    /// `GICD_CTLR.EnableGrp1` (bit 1) without the Security Extensions.
    pub const CTLR_ENABLE_GRP1: u32 = 1 << 1;
    /// `GICD_TYPER.ITLinesNumber`, bits \[4:0\]: 32 * (N + 1) INTIDs.
    pub const TYPER_IT_LINES_NUMBER_MASK: u32 = 0x1F;
    /// `GICD_TYPER.CPUNumber`, bits \[7:5\]: CPU interfaces minus 1.
    pub const TYPER_CPU_NUMBER_SHIFT: u32 = 5;
    /// `GICD_SGIR.SGIINTID`, bits \[3:0\].
    pub const SGIR_INTID_MASK: u32 = 0xF;
    /// `GICD_SGIR.CPUTargetList`, bits \[23:16\].
    pub const SGIR_TARGET_LIST_SHIFT: u32 = 16;
    /// `GICD_SGIR.TargetListFilter`, bits \[25:24\]: 0 the list, 1 all but the sender, 2 the
    /// sender, 3 reserved.
    pub const SGIR_FILTER_SHIFT: u32 = 24;
    /// The width of `GICD_SGIR.TargetListFilter`.
    pub const SGIR_FILTER_MASK: u32 = 0b11;
}

/// CPU interface (`GICC_*`, and the virtual CPU interface `GICV_*` at the same offsets).
pub mod gicc {
    /// `GICC_CTLR`.
    pub const CTLR: u64 = 0x000;
    /// `GICC_PMR`.
    pub const PMR: u64 = 0x004;
    /// `GICC_IAR`.
    pub const IAR: u64 = 0x00C;
    /// `GICC_EOIR`.
    pub const EOIR: u64 = 0x010;
    /// `GICC_DIR`.
    pub const DIR: u64 = 0x1000;
    /// `GICC_CTLR.EnableGrp0` and `EnableGrp1` (bit 0 is `EnableGrp1` in the Non-secure view).
    pub const CTLR_ENABLE_GRPS: u32 = 0b11;
    /// `GICC_CTLR.EOImode`, bit 9 (`EOImodeNS` in the Non-secure view): `GICC_EOIR` only
    /// drops the running priority, `GICC_DIR` deactivates.
    pub const CTLR_EOIMODE: u32 = 1 << 9;
    /// `GICC_IAR.InterruptID`, bits \[9:0\]; with `CPUID` \[12:10\] the value `GICC_EOIR` and
    /// `GICC_DIR` take back.
    pub const IAR_INTERRUPT_ID_MASK: u32 = 0x3FF;
    /// The first special INTID (1020–1023: 1023 when nothing is pending).
    pub const FIRST_SPECIAL: u32 = 1020;
}

/// Virtual interface control (`GICH_*`): the list registers and their control.
pub mod gich {
    /// `GICH_HCR`.
    pub const HCR: u64 = 0x000;
    /// `GICH_VTR`.
    pub const VTR: u64 = 0x004;
    /// `GICH_VMCR`.
    pub const VMCR: u64 = 0x008;
    /// `GICH_APR`.
    pub const APR: u64 = 0x0F0;
    /// `GICH_LR0`; `GICH_LR<n>` at 4 * `n` from it.
    pub const LR: u64 = 0x100;
}
