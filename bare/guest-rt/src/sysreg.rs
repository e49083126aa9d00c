//! Reads of the EL1 system registers and PSTATE fields the runtime and the tests use.
//!
//! Registers added by an extension are spelled by their encoding (`S<op0>_<op1>_C<n>_C<m>_<op2>`,
//! Arm ARM "System register encoding"), so the assembler accepts them without the extension
//! enabled; the caller checks the ID register first (see [`crate::exception::PstateAtEntry`]).

#[cfg(target_os = "none")]
use core::arch::asm;

/// Encodings (`op0`, `op1`, `CRn`, `CRm`, `op2`) that a guest writing system registers back
/// (`sysregsweep`, `chaos`) never writes, even with the value just read, because a write could break the guest between the read and the write or change
/// how it runs: the translation regime and the vectors (the guest relies on them staying as
/// the runtime set them), its stack pointers and interrupt masks, the FP/SIMD trap control
/// (the compiler may use SIMD registers), and `ICC_BPR0/1_EL1` (issue 10 item 6: QEMU's
/// virtual `VBPR1` write path can kill QEMU under a hypervisor).
pub const NEVER_WRITTEN: [(u8, u8, u8, u8, u8, &str); 14] = [
    (3, 0, 1, 0, 0, "SCTLR_EL1"),
    (3, 0, 1, 0, 2, "CPACR_EL1"),
    (3, 0, 2, 0, 0, "TTBR0_EL1"),
    (3, 0, 2, 0, 1, "TTBR1_EL1"),
    (3, 0, 2, 0, 2, "TCR_EL1"),
    (3, 0, 10, 2, 0, "MAIR_EL1"),
    (3, 0, 12, 0, 0, "VBAR_EL1"),
    (3, 0, 4, 1, 0, "SP_EL0"),
    (3, 4, 4, 1, 0, "SP_EL1"),
    (3, 6, 4, 1, 0, "SP_EL2"),
    (3, 0, 4, 2, 0, "SPSel"),
    (3, 3, 4, 2, 1, "DAIF"),
    (3, 0, 12, 8, 3, "ICC_BPR0_EL1"),
    (3, 0, 12, 12, 3, "ICC_BPR1_EL1"),
];

/// Defines a function that reads one system register with `MRS`.
macro_rules! reader {
    ($(#[$doc:meta])* $name:ident, $reg:literal) => {
        $(#[$doc])*
        #[cfg(target_os = "none")]
        #[inline]
        pub fn $name() -> u64 {
            let value: u64;
            // SAFETY: MRS writes only the output register: no memory, stack or flags are touched.
            // Every register read here exists at EL1 on every Armv8-A CPU, or is read only after
            // its ID register field said it exists; even a wrong read would be an UNDEFINED
            // exception taken to the runtime's vectors, not undefined behaviour.
            unsafe {
                asm!(concat!("mrs {}, ", $reg), out(reg) value,
                     options(nomem, nostack, preserves_flags));
            }
            value
        }
    };
}

reader!(
    /// `CurrentEL` (bits \[3:2\] = the EL); see [`current_el`].
    current_el_raw, "CurrentEL"
);
reader!(
    /// `DAIF`: PSTATE.{D,A,I,F} in bits \[9:6\].
    daif, "DAIF"
);
reader!(
    /// `SPSel`: PSTATE.SP in bit 0 (1 = SP_ELx).
    spsel, "SPSel"
);
reader!(
    /// `ESR_EL1`, the syndrome of the last exception taken to EL1.
    esr_el1, "ESR_EL1"
);
reader!(
    /// `FAR_EL1`, the faulting virtual address of the last abort taken to EL1.
    far_el1, "FAR_EL1"
);
reader!(
    /// `SCTLR_EL1`, EL1's system control register.
    sctlr_el1, "SCTLR_EL1"
);
reader!(
    /// `MIDR_EL1`, the CPU's main ID register.
    midr_el1, "MIDR_EL1"
);
reader!(
    /// `ID_AA64PFR0_EL1` (S3_0_C0_C4_0): DIT in bits \[51:48\].
    id_aa64pfr0_el1, "S3_0_C0_C4_0"
);
reader!(
    /// `ID_AA64PFR1_EL1` (S3_0_C0_C4_1): SSBS in bits \[7:4\], MTE in bits \[11:8\].
    id_aa64pfr1_el1, "S3_0_C0_C4_1"
);
reader!(
    /// `ID_AA64MMFR1_EL1` (S3_0_C0_C7_1): PAN in bits \[23:20\].
    id_aa64mmfr1_el1, "S3_0_C0_C7_1"
);
reader!(
    /// `ID_AA64MMFR2_EL1` (S3_0_C0_C7_2): UAO in bits \[7:4\].
    id_aa64mmfr2_el1, "S3_0_C0_C7_2"
);
reader!(
    /// `PAN` (S3_0_C4_C2_3, FEAT_PAN): PSTATE.PAN in bit 22.
    pan, "S3_0_C4_C2_3"
);
reader!(
    /// `UAO` (S3_0_C4_C2_4, FEAT_UAO): PSTATE.UAO in bit 23.
    uao, "S3_0_C4_C2_4"
);
reader!(
    /// `DIT` (S3_3_C4_C2_5, FEAT_DIT): PSTATE.DIT in bit 24.
    dit, "S3_3_C4_C2_5"
);
reader!(
    /// `SSBS` (S3_3_C4_C2_6, readable with FEAT_SSBS2): PSTATE.SSBS in bit 12.
    ssbs, "S3_3_C4_C2_6"
);
reader!(
    /// `TCO` (S3_3_C4_C2_7, FEAT_MTE): PSTATE.TCO in bit 25.
    tco, "S3_3_C4_C2_7"
);

/// The Exception level the guest runs at (`CurrentEL.EL`, bits \[3:2\]).
#[cfg(target_os = "none")]
pub fn current_el() -> u8 {
    field(current_el_raw(), 2, 2) as u8
}

/// Bits `[lsb + width - 1 : lsb]` of `value`.
pub const fn field(value: u64, lsb: u32, width: u32) -> u64 {
    (value >> lsb) & ((1 << width) - 1)
}

/// Whether bit `bit` of `value` is set.
pub const fn bit(value: u64, bit: u32) -> bool {
    field(value, bit, 1) == 1
}
