//! `ESR_ELx.EC`, the exception class: every class the Arm ARM allocates (DDI 0487, the EC table
//! of `ESR_EL2`), by name, with [`ExceptionClass::Unallocated`] for the rest.

use core::fmt;

macro_rules! exception_classes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $name:literal;)*) => {
        /// An exception class (`ESR_ELx.EC`, 6 bits).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ExceptionClass {
            $($(#[$doc])* $variant,)*
            /// A value the Arm ARM does not allocate (or one wider than 6 bits), kept as read.
            Unallocated(u8),
        }

        /// Every 6-bit `EC` decoded once, at compile time: decoding a syndrome on a trap is
        /// one index.
        const DECODED: [ExceptionClass; 64] = {
            let mut table = [ExceptionClass::Unallocated(0); 64];
            let mut code = 0;
            while code < 64 {
                // Truncation impossible: code < 64.
                table[code] = ExceptionClass::decode(code as u8);
                code += 1;
            }
            table
        };

        impl ExceptionClass {
            /// The class for `ESR_ELx.EC` = `code`. Never fails.
            #[must_use]
            #[inline]
            pub const fn from_code(code: u8) -> Self {
                if (code as usize) < DECODED.len() {
                    DECODED[code as usize]
                } else {
                    Self::Unallocated(code)
                }
            }

            /// The decoding `DECODED` is built from.
            const fn decode(code: u8) -> Self {
                match code {
                    $($code => Self::$variant,)*
                    other => Self::Unallocated(other),
                }
            }

            /// The 6-bit `EC` value.
            #[must_use]
            #[inline]
            pub const fn code(self) -> u8 {
                match self {
                    $(Self::$variant => $code,)*
                    Self::Unallocated(code) => code,
                }
            }

            /// A short human name, e.g. "data abort from a lower EL".
            #[must_use]
            pub const fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                    Self::Unallocated(_) => "unallocated exception class",
                }
            }
        }
    };
}

exception_classes! {
    /// Unknown reason (also: UNDEFINED instructions).
    Unknown = 0x00, "unknown reason";
    /// Trapped WFI, WFE, WFIT or WFET.
    Wfx = 0x01, "trapped WFI/WFE/WFIT/WFET";
    /// Trapped AArch32 MCR or MRC with coproc 0b1111 (CP15).
    Mcr15 = 0x03, "trapped AArch32 MCR/MRC (CP15)";
    /// Trapped AArch32 MCRR or MRRC with coproc 0b1111 (CP15).
    Mcrr15 = 0x04, "trapped AArch32 MCRR/MRRC (CP15)";
    /// Trapped AArch32 MCR or MRC with coproc 0b1110 (CP14).
    Mcr14 = 0x05, "trapped AArch32 MCR/MRC (CP14)";
    /// Trapped AArch32 LDC or STC (CP14 debug transfers).
    Ldc14 = 0x06, "trapped AArch32 LDC/STC (CP14)";
    /// SME, SVE, Advanced SIMD or floating-point access trapped by `CPACR`/`CPTR`.
    FpAccess = 0x07, "trapped SIMD/FP access";
    /// Trapped AArch32 VMRS from the ID group trap (`HCR_EL2.TID0`).
    Vmrs = 0x08, "trapped AArch32 VMRS (ID group)";
    /// Trapped pointer authentication instruction.
    PauthTrap = 0x09, "trapped pointer authentication instruction";
    /// Trapped instruction not covered by another class (FEAT_LS64: LD64B, ST64B, ...).
    OtherTrap = 0x0A, "trapped instruction (other)";
    /// Trapped AArch32 MRRC with coproc 0b1110 (CP14).
    Mrrc14 = 0x0C, "trapped AArch32 MRRC (CP14)";
    /// Branch Target Exception (FEAT_BTI).
    BranchTarget = 0x0D, "branch target exception";
    /// Illegal Execution state.
    IllegalState = 0x0E, "illegal execution state";
    /// SVC in AArch32 state.
    Svc32 = 0x11, "SVC from AArch32";
    /// HVC in AArch32 state.
    Hvc32 = 0x12, "HVC from AArch32";
    /// SMC in AArch32 state.
    Smc32 = 0x13, "SMC from AArch32";
    /// Trapped MSRR, MRRS or 128-bit system instruction (FEAT_SYSREG128).
    SysReg128 = 0x14, "trapped MSRR/MRRS/128-bit system instruction";
    /// SVC in AArch64 state.
    Svc64 = 0x15, "SVC from AArch64";
    /// HVC in AArch64 state.
    Hvc64 = 0x16, "HVC from AArch64";
    /// SMC in AArch64 state.
    Smc64 = 0x17, "SMC from AArch64";
    /// Trapped MSR, MRS or system instruction in AArch64 state.
    SysReg = 0x18, "trapped MSR/MRS/system instruction";
    /// SVE access trapped by `CPACR_EL1.ZEN`, `CPTR_EL2.ZEN`/`TZ`, `CPTR_EL3.EZ`.
    SveAccess = 0x19, "trapped SVE access";
    /// Trapped ERET, ERETAA or ERETAB (FEAT_FGT, FEAT_NV).
    Eret = 0x1A, "trapped ERET/ERETAA/ERETAB";
    /// TSTART access trap (FEAT_TME, since withdrawn from the architecture).
    Tstart = 0x1B, "trapped TSTART";
    /// PAC failure (FEAT_FPAC).
    PacFail = 0x1C, "PAC failure";
    /// SME access trap.
    SmeAccess = 0x1D, "trapped SME access";
    /// Granule protection check (FEAT_RME, taken to EL3).
    GranuleProtectionCheck = 0x1E, "granule protection check";
    /// IMPLEMENTATION DEFINED exception to EL3.
    ImpdefEl3 = 0x1F, "IMPLEMENTATION DEFINED exception to EL3";
    /// Instruction abort from a lower Exception level.
    InstrAbortLower = 0x20, "instruction abort from a lower EL";
    /// Instruction abort taken without a change in Exception level.
    InstrAbortSame = 0x21, "instruction abort from the same EL";
    /// PC alignment fault.
    PcAlignment = 0x22, "PC alignment fault";
    /// Data abort from a lower Exception level.
    DataAbortLower = 0x24, "data abort from a lower EL";
    /// Data abort taken without a change in Exception level.
    DataAbortSame = 0x25, "data abort from the same EL";
    /// SP alignment fault.
    SpAlignment = 0x26, "SP alignment fault";
    /// Memory Copy and Memory Set exception (FEAT_MOPS).
    MemoryOperation = 0x27, "memory copy/set exception";
    /// Trapped floating-point exception from AArch32 state.
    FpException32 = 0x28, "trapped floating-point exception from AArch32";
    /// Trapped floating-point exception from AArch64 state.
    FpException64 = 0x2C, "trapped floating-point exception from AArch64";
    /// Guarded Control Stack exception (FEAT_GCS).
    Gcs = 0x2D, "GCS exception";
    /// SError exception.
    SError = 0x2F, "SError";
    /// Breakpoint from a lower Exception level.
    BreakpointLower = 0x30, "breakpoint from a lower EL";
    /// Breakpoint taken without a change in Exception level.
    BreakpointSame = 0x31, "breakpoint from the same EL";
    /// Software Step from a lower Exception level.
    SoftwareStepLower = 0x32, "software step from a lower EL";
    /// Software Step taken without a change in Exception level.
    SoftwareStepSame = 0x33, "software step from the same EL";
    /// Watchpoint from a lower Exception level.
    WatchpointLower = 0x34, "watchpoint from a lower EL";
    /// Watchpoint taken without a change in Exception level.
    WatchpointSame = 0x35, "watchpoint from the same EL";
    /// BKPT in AArch32 state.
    Bkpt32 = 0x38, "BKPT from AArch32";
    /// Vector Catch in AArch32 state.
    VectorCatch32 = 0x3A, "vector catch from AArch32";
    /// BRK in AArch64 state.
    Brk64 = 0x3C, "BRK from AArch64";
    /// Profiling exception (FEAT_EBEP, FEAT_SPE_EXC, FEAT_TRBE_EXC).
    Profiling = 0x3D, "profiling exception";
}

/// `0x24 (data abort from a lower EL)`.
impl fmt::Display for ExceptionClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x} ({})", self.code(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_six_bit_code_round_trips() {
        for code in 0..64u8 {
            assert_eq!(ExceptionClass::from_code(code).code(), code);
        }
    }

    #[test]
    fn unallocated_codes_are_kept_and_named_as_such() {
        for code in [0x02, 0x0B, 0x0F, 0x10, 0x23, 0x29, 0x2E, 0x36, 0x3B, 0x3F] {
            let ec = ExceptionClass::from_code(code);
            assert_eq!(ec, ExceptionClass::Unallocated(code));
            assert_eq!(ec.name(), "unallocated exception class");
        }
    }

    #[test]
    fn the_arm_arm_allocates_forty_nine_classes() {
        let allocated = (0..64u8)
            .filter(|&c| !matches!(ExceptionClass::from_code(c), ExceptionClass::Unallocated(_)))
            .count();
        assert_eq!(allocated, 49);
    }

    #[test]
    fn known_classes_have_their_arm_arm_codes() {
        assert_eq!(ExceptionClass::DataAbortLower.code(), 0x24);
        assert_eq!(ExceptionClass::InstrAbortSame.code(), 0x21);
        assert_eq!(ExceptionClass::SysReg.code(), 0x18);
        assert_eq!(ExceptionClass::Hvc64.code(), 0x16);
        assert_eq!(ExceptionClass::SError.code(), 0x2F);
        assert_eq!(ExceptionClass::Brk64.code(), 0x3C);
    }
}
