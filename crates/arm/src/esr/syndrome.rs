//! [`Syndrome`]: `ESR_ELx.EC` + `ISS` decoded into one variant per exception class, each
//! holding its ISS struct. The variants are declared once, in a table naming the class and the
//! ISS type; decode, encode, class and `Display` are generated from it so they cannot
//! disagree.

use super::ExceptionClass;
use super::ISS;
use super::abort::{DataAbortIss, InstrAbortIss};
use super::debug::{BreakpointIss, SoftwareStepIss, WatchpointIss};
use super::misc::{
    BranchTargetIss, EretIss, FpAccessIss, FpExceptionIss, GcsIss, MopsIss, PacFailIss,
    ProfilingIss, SmeIss, SysReg128Iss,
};
use super::serror::SErrorIss;
use super::trap::{
    CallIss, CommentIss, CopRegIss, CopRegPairIss, LdcIss, Smc32Iss, SysRegIss, WfxIss,
};
use core::fmt;

macro_rules! syndromes {
    (
        without_fields { $($(#[$udoc:meta])* $unit:ident,)* }
        with_fields { $($(#[$doc:meta])* $variant:ident($iss:ty),)* }
    ) => {
        /// A decoded `ESR_ELx.EC` + `ISS`: one variant per class, named as
        /// [`ExceptionClass`] names it, holding the class's ISS fields.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Syndrome {
            $($(#[$udoc])* $unit,)*
            $($(#[$doc])* $variant($iss),)*
            /// Any other class (no ISS fields defined, or not decoded), with its raw ISS.
            Other {
                /// The class.
                ec: ExceptionClass,
                /// `ISS`, bits \[24:0\].
                iss: u32,
            },
        }

        impl Syndrome {
            /// Decodes the ISS of class `ec`. Never fails.
            #[must_use]
            pub fn decode(ec: ExceptionClass, iss: u32) -> Self {
                match ec {
                    $(ExceptionClass::$unit => Self::$unit,)*
                    $(ExceptionClass::$variant => Self::$variant(<$iss>::decode(iss)),)*
                    ec => Self::Other { ec, iss: ISS.get(u64::from(iss)) as u32 },
                }
            }

            /// The exception class of this syndrome.
            #[must_use]
            #[inline]
            pub const fn class(&self) -> ExceptionClass {
                match self {
                    $(Self::$unit => ExceptionClass::$unit,)*
                    $(Self::$variant(_) => ExceptionClass::$variant,)*
                    Self::Other { ec, .. } => *ec,
                }
            }

            /// The ISS bits of this syndrome (RES0 bits zero).
            #[must_use]
            #[inline]
            pub fn iss(&self) -> u32 {
                match self {
                    $(Self::$unit => 0,)*
                    $(Self::$variant(iss) => iss.encode(),)*
                    Self::Other { iss, .. } => ISS.get(u64::from(*iss)) as u32,
                }
            }

            /// The ISS bits the class defines (the others are RES0, dropped by `decode`).
            #[must_use]
            pub const fn defined_iss_bits(&self) -> u32 {
                match self {
                    $(Self::$unit => 0,)*
                    $(Self::$variant(_) => <$iss>::DEFINED,)*
                    Self::Other { .. } => ISS.mask() as u32,
                }
            }

            /// Writes ` FIELD=value ...` for the ISS (nothing for a class without fields).
            pub(super) fn fmt_iss(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Self::$unit => Ok(()),)*
                    $(Self::$variant(iss) => write!(f, " {iss}"),)*
                    Self::Other { iss, .. } => write!(f, " ISS={iss:#x}"),
                }
            }
        }
    };
}

syndromes! {
    without_fields {
        /// EC 0x00: unknown reason.
        Unknown,
        /// EC 0x09: trapped pointer authentication instruction.
        PauthTrap,
        /// EC 0x0E: illegal execution state.
        IllegalState,
        /// EC 0x19: SVE access trap.
        SveAccess,
        /// EC 0x22: PC alignment fault.
        PcAlignment,
        /// EC 0x26: SP alignment fault.
        SpAlignment,
    }
    with_fields {
        /// EC 0x01: trapped WFI/WFE/WFIT/WFET.
        Wfx(WfxIss),
        /// EC 0x03: AArch32 MCR/MRC to CP15.
        Mcr15(CopRegIss),
        /// EC 0x04: AArch32 MCRR/MRRC to CP15.
        Mcrr15(CopRegPairIss),
        /// EC 0x05: AArch32 MCR/MRC to CP14.
        Mcr14(CopRegIss),
        /// EC 0x06: AArch32 LDC/STC to CP14.
        Ldc14(LdcIss),
        /// EC 0x07: SIMD/FP access trap.
        FpAccess(FpAccessIss),
        /// EC 0x08: AArch32 VMRS (ID group trap).
        Vmrs(CopRegIss),
        /// EC 0x0C: AArch32 MRRC to CP14.
        Mrrc14(CopRegPairIss),
        /// EC 0x0D: branch target exception.
        BranchTarget(BranchTargetIss),
        /// EC 0x11: AArch32 SVC.
        Svc32(CallIss),
        /// EC 0x12: AArch32 HVC.
        Hvc32(CallIss),
        /// EC 0x13: AArch32 SMC.
        Smc32(Smc32Iss),
        /// EC 0x14: MSRR/MRRS/128-bit system instruction.
        SysReg128(SysReg128Iss),
        /// EC 0x15: AArch64 SVC.
        Svc64(CallIss),
        /// EC 0x16: AArch64 HVC.
        Hvc64(CallIss),
        /// EC 0x17: AArch64 SMC.
        Smc64(CallIss),
        /// EC 0x18: AArch64 MSR/MRS/system instruction.
        SysReg(SysRegIss),
        /// EC 0x1A: trapped ERET/ERETAA/ERETAB.
        Eret(EretIss),
        /// EC 0x1C: PAC failure.
        PacFail(PacFailIss),
        /// EC 0x1D: SME access trap.
        SmeAccess(SmeIss),
        /// EC 0x20: instruction abort from a lower EL.
        InstrAbortLower(InstrAbortIss),
        /// EC 0x21: instruction abort from the same EL.
        InstrAbortSame(InstrAbortIss),
        /// EC 0x24: data abort from a lower EL.
        DataAbortLower(DataAbortIss),
        /// EC 0x25: data abort from the same EL.
        DataAbortSame(DataAbortIss),
        /// EC 0x27: memory copy/set exception.
        MemoryOperation(MopsIss),
        /// EC 0x28: trapped floating-point exception from AArch32.
        FpException32(FpExceptionIss),
        /// EC 0x2C: trapped floating-point exception from AArch64.
        FpException64(FpExceptionIss),
        /// EC 0x2D: GCS exception.
        Gcs(GcsIss),
        /// EC 0x2F: SError.
        SError(SErrorIss),
        /// EC 0x30: breakpoint from a lower EL.
        BreakpointLower(BreakpointIss),
        /// EC 0x31: breakpoint from the same EL.
        BreakpointSame(BreakpointIss),
        /// EC 0x32: software step from a lower EL.
        SoftwareStepLower(SoftwareStepIss),
        /// EC 0x33: software step from the same EL.
        SoftwareStepSame(SoftwareStepIss),
        /// EC 0x34: watchpoint from a lower EL.
        WatchpointLower(WatchpointIss),
        /// EC 0x35: watchpoint from the same EL.
        WatchpointSame(WatchpointIss),
        /// EC 0x38: AArch32 BKPT.
        Bkpt32(CommentIss),
        /// EC 0x3A: AArch32 vector catch.
        VectorCatch32(BreakpointIss),
        /// EC 0x3C: AArch64 BRK.
        Brk64(CommentIss),
        /// EC 0x3D: profiling exception.
        Profiling(ProfilingIss),
    }
}

impl Syndrome {
    /// The `ESR_ELx` value for this syndrome with the given `IL` (`ISS2` = 0).
    #[must_use]
    #[inline]
    pub fn to_esr(&self, il: bool) -> super::Esr {
        super::Esr::from_parts(self.class(), il, self.iss())
    }
}

/// `EC=0x24 (data abort from a lower EL) ISV=0 ...`: the class and every ISS field (no `IL`,
/// which is not part of the syndrome; `Display` of [`super::Esr`] prints it).
impl fmt::Display for Syndrome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EC={}", self.class())?;
        self.fmt_iss(f)
    }
}
