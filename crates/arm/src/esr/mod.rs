//! `ESR_ELx`, the exception syndrome: the typed view Moat decodes every trap through and
//! encodes every injected exception with.
//!
//! Layout (`ESR_EL2`, DDI 0487): `ISS2` \[55:32\], `EC` \[31:26\], `IL` \[25\], `ISS` \[24:0\].
//! [`Esr::decode`] turns the class and ISS into a [`Syndrome`], one variant per class with an
//! ISS struct naming every field; [`Syndrome::to_esr`] is its inverse. Classes whose ISS Moat
//! has no use for keep the raw ISS in [`Syndrome::Other`]. Decoding never fails: unallocated
//! classes and fault codes are values too.
//!
//! ```
//! use moat_arm::esr::{Esr, Syndrome};
//! use moat_arm::fsc::{Fsc, Level};
//!
//! let esr = Esr::new(0x9383_0047); // a guest's 32-bit store of W3 to an unmapped IPA
//! let Syndrome::DataAbortLower(iss) = esr.decode() else { unreachable!() };
//! assert!(iss.isv && iss.wnr && iss.srt == 3);
//! assert_eq!(iss.dfsc, Fsc::Translation { level: Level::L3 });
//! assert_eq!(
//!     esr.to_string(),
//!     "EC=0x24 (data abort from a lower EL) IL=1 ISV=1 SAS=0b10 (word) SSE=0 SRT=3 SF=0 AR=0 \
//!      VNCR=0 SET=0b00 (UER) FnV=0 EA=0 CM=0 S1PTW=0 WnR=1 DFSC=0x07 (translation fault, level 3)"
//! );
//! ```

mod abort;
mod class;
pub(crate) mod layout;
mod serror;
mod trap;

use core::fmt;

pub use abort::{AccessSize, DataAbortIss, InstrAbortIss, SyncErrorType};
pub use class::ExceptionClass;
pub use serror::{AsyncErrorType, SERROR_DFSC_ASYNC, SERROR_DFSC_UNCATEGORIZED, SErrorIss};
pub use trap::{
    CallIss, CommentIss, CopRegIss, CopRegPairIss, Direction, LdcIss, Smc32Iss, SysRegIss, WfxIss,
    WfxKind,
};

use crate::field::Field;

/// `ESR_ELx.ISS2`.
const ISS2: Field = Field::new(32, 24);
/// `ESR_ELx.EC`.
const EC: Field = Field::new(26, 6);
/// `ESR_ELx.IL`: the trapped instruction is 32-bit (also 1 for aborts, SErrors, EC 0x00 ...).
const IL: Field = Field::bit(25);
/// `ESR_ELx.ISS`.
const ISS: Field = Field::new(0, 25);

/// An `ESR_ELx` value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Esr(u64);

impl Esr {
    /// The syndrome register value `bits`, as read.
    #[must_use]
    pub const fn new(bits: u64) -> Self {
        Self(bits)
    }

    /// An ESR from its fields; `ISS2` and bits \[63:56\] are 0 (as in every syndrome Moat
    /// injects: `ESR_EL1[63:32]` is RES0 for them).
    #[must_use]
    pub const fn from_parts(ec: ExceptionClass, il: bool, iss: u32) -> Self {
        let bits = EC.insert(0, ec.code() as u64);
        let bits = IL.with_flag(bits, il);
        Self(ISS.insert(bits, iss as u64))
    }

    /// The register value.
    #[must_use]
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// `EC`, the exception class.
    #[must_use]
    pub const fn ec(self) -> ExceptionClass {
        ExceptionClass::from_code(EC.get(self.0) as u8)
    }

    /// `IL`: the trapped instruction was 32 bits long (see the Arm ARM for the classes that
    /// always report 1).
    #[must_use]
    pub const fn il(self) -> bool {
        IL.is_set(self.0)
    }

    /// `ISS`, bits \[24:0\].
    #[must_use]
    pub const fn iss(self) -> u32 {
        ISS.get(self.0) as u32
    }

    /// `ISS2`, bits \[55:32\] (FEAT_LS64, FEAT_S1PIE, FEAT_GCS ... fields; 0 without them).
    #[must_use]
    pub const fn iss2(self) -> u32 {
        ISS2.get(self.0) as u32
    }

    /// The typed syndrome of this class.
    #[must_use]
    pub fn decode(&self) -> Syndrome {
        Syndrome::decode(self.ec(), self.iss())
    }
}

impl fmt::Debug for Esr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Esr({:#x})", self.0)
    }
}

/// The whole syndrome: `EC=0x24 (data abort from a lower EL) IL=1 ISV=0 ... DFSC=0x10 (...)`,
/// followed by ` ISS2=0x..` when `ISS2` is non-zero.
impl fmt::Display for Esr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let syndrome = self.decode();
        write!(f, "EC={} IL={}", syndrome.class(), u8::from(self.il()))?;
        syndrome.fmt_iss(f)?;
        match self.iss2() {
            0 => Ok(()),
            iss2 => write!(f, " ISS2={iss2:#x}"),
        }
    }
}

/// A decoded `ESR_ELx.EC` + `ISS`: one variant per class Moat traps or injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Syndrome {
    /// EC 0x00: unknown reason (the ISS is RES0).
    Unknown,
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
    /// EC 0x08: AArch32 VMRS (ID group trap).
    Vmrs(CopRegIss),
    /// EC 0x0C: AArch32 MRRC to CP14.
    Mrrc14(CopRegPairIss),
    /// EC 0x11: AArch32 SVC.
    Svc32(CallIss),
    /// EC 0x12: AArch32 HVC.
    Hvc32(CallIss),
    /// EC 0x13: AArch32 SMC.
    Smc32(Smc32Iss),
    /// EC 0x15: AArch64 SVC.
    Svc64(CallIss),
    /// EC 0x16: AArch64 HVC.
    Hvc64(CallIss),
    /// EC 0x17: AArch64 SMC.
    Smc64(CallIss),
    /// EC 0x18: AArch64 MSR/MRS/system instruction.
    SysReg(SysRegIss),
    /// EC 0x20: instruction abort from a lower EL.
    InstrAbortLower(InstrAbortIss),
    /// EC 0x21: instruction abort from the same EL.
    InstrAbortSame(InstrAbortIss),
    /// EC 0x24: data abort from a lower EL.
    DataAbortLower(DataAbortIss),
    /// EC 0x25: data abort from the same EL.
    DataAbortSame(DataAbortIss),
    /// EC 0x2F: SError.
    SError(SErrorIss),
    /// EC 0x38: AArch32 BKPT.
    Bkpt32(CommentIss),
    /// EC 0x3C: AArch64 BRK.
    Brk64(CommentIss),
    /// Any other class, with its raw ISS.
    Other {
        /// The class.
        ec: ExceptionClass,
        /// `ISS`, bits \[24:0\].
        iss: u32,
    },
}

impl Syndrome {
    /// Decodes the ISS of class `ec`.
    #[must_use]
    pub fn decode(ec: ExceptionClass, iss: u32) -> Self {
        use ExceptionClass as C;
        match ec {
            C::Unknown => Self::Unknown,
            C::Wfx => Self::Wfx(WfxIss::decode(iss)),
            C::Mcr15 => Self::Mcr15(CopRegIss::decode(iss)),
            C::Mcrr15 => Self::Mcrr15(CopRegPairIss::decode(iss)),
            C::Mcr14 => Self::Mcr14(CopRegIss::decode(iss)),
            C::Ldc14 => Self::Ldc14(LdcIss::decode(iss)),
            C::Vmrs => Self::Vmrs(CopRegIss::decode(iss)),
            C::Mrrc14 => Self::Mrrc14(CopRegPairIss::decode(iss)),
            C::Svc32 => Self::Svc32(CallIss::decode(iss)),
            C::Hvc32 => Self::Hvc32(CallIss::decode(iss)),
            C::Smc32 => Self::Smc32(Smc32Iss::decode(iss)),
            C::Svc64 => Self::Svc64(CallIss::decode(iss)),
            C::Hvc64 => Self::Hvc64(CallIss::decode(iss)),
            C::Smc64 => Self::Smc64(CallIss::decode(iss)),
            C::SysReg => Self::SysReg(SysRegIss::decode(iss)),
            C::InstrAbortLower => Self::InstrAbortLower(InstrAbortIss::decode(iss)),
            C::InstrAbortSame => Self::InstrAbortSame(InstrAbortIss::decode(iss)),
            C::DataAbortLower => Self::DataAbortLower(DataAbortIss::decode(iss)),
            C::DataAbortSame => Self::DataAbortSame(DataAbortIss::decode(iss)),
            C::SError => Self::SError(SErrorIss::decode(iss)),
            C::Bkpt32 => Self::Bkpt32(CommentIss::decode(iss)),
            C::Brk64 => Self::Brk64(CommentIss::decode(iss)),
            ec => Self::Other {
                ec,
                iss: ISS.get(u64::from(iss)) as u32,
            },
        }
    }

    /// The exception class of this syndrome.
    #[must_use]
    pub const fn class(&self) -> ExceptionClass {
        use ExceptionClass as C;
        match self {
            Self::Unknown => C::Unknown,
            Self::Wfx(_) => C::Wfx,
            Self::Mcr15(_) => C::Mcr15,
            Self::Mcrr15(_) => C::Mcrr15,
            Self::Mcr14(_) => C::Mcr14,
            Self::Ldc14(_) => C::Ldc14,
            Self::Vmrs(_) => C::Vmrs,
            Self::Mrrc14(_) => C::Mrrc14,
            Self::Svc32(_) => C::Svc32,
            Self::Hvc32(_) => C::Hvc32,
            Self::Smc32(_) => C::Smc32,
            Self::Svc64(_) => C::Svc64,
            Self::Hvc64(_) => C::Hvc64,
            Self::Smc64(_) => C::Smc64,
            Self::SysReg(_) => C::SysReg,
            Self::InstrAbortLower(_) => C::InstrAbortLower,
            Self::InstrAbortSame(_) => C::InstrAbortSame,
            Self::DataAbortLower(_) => C::DataAbortLower,
            Self::DataAbortSame(_) => C::DataAbortSame,
            Self::SError(_) => C::SError,
            Self::Bkpt32(_) => C::Bkpt32,
            Self::Brk64(_) => C::Brk64,
            Self::Other { ec, .. } => *ec,
        }
    }

    /// The ISS bits of this syndrome.
    #[must_use]
    pub fn iss(&self) -> u32 {
        match *self {
            Self::Unknown => 0,
            Self::Wfx(iss) => iss.encode(),
            Self::Mcr15(iss) | Self::Mcr14(iss) | Self::Vmrs(iss) => iss.encode(),
            Self::Mcrr15(iss) | Self::Mrrc14(iss) => iss.encode(),
            Self::Ldc14(iss) => iss.encode(),
            Self::Svc32(iss) | Self::Hvc32(iss) | Self::Svc64(iss) => iss.encode(),
            Self::Hvc64(iss) | Self::Smc64(iss) => iss.encode(),
            Self::Smc32(iss) => iss.encode(),
            Self::SysReg(iss) => iss.encode(),
            Self::InstrAbortLower(iss) | Self::InstrAbortSame(iss) => iss.encode(),
            Self::DataAbortLower(iss) | Self::DataAbortSame(iss) => iss.encode(),
            Self::SError(iss) => iss.encode(),
            Self::Bkpt32(iss) | Self::Brk64(iss) => iss.encode(),
            Self::Other { iss, .. } => ISS.get(u64::from(iss)) as u32,
        }
    }

    /// The `ESR_ELx` value for this syndrome with the given `IL` (`ISS2` = 0).
    #[must_use]
    pub fn to_esr(&self, il: bool) -> Esr {
        Esr::from_parts(self.class(), il, self.iss())
    }

    /// Writes ` FIELD=value ...` for the ISS (nothing for an ISS without fields).
    fn fmt_iss(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown => Ok(()),
            Self::Wfx(iss) => write!(f, " {iss}"),
            Self::Mcr15(iss) | Self::Mcr14(iss) | Self::Vmrs(iss) => write!(f, " {iss}"),
            Self::Mcrr15(iss) | Self::Mrrc14(iss) => write!(f, " {iss}"),
            Self::Ldc14(iss) => write!(f, " {iss}"),
            Self::Svc32(iss) | Self::Hvc32(iss) | Self::Svc64(iss) => write!(f, " {iss}"),
            Self::Hvc64(iss) | Self::Smc64(iss) => write!(f, " {iss}"),
            Self::Smc32(iss) => write!(f, " {iss}"),
            Self::SysReg(iss) => write!(f, " {iss}"),
            Self::InstrAbortLower(iss) | Self::InstrAbortSame(iss) => write!(f, " {iss}"),
            Self::DataAbortLower(iss) | Self::DataAbortSame(iss) => write!(f, " {iss}"),
            Self::SError(iss) => write!(f, " {iss}"),
            Self::Bkpt32(iss) | Self::Brk64(iss) => write!(f, " {iss}"),
            Self::Other { iss, .. } => write!(f, " ISS={iss:#x}"),
        }
    }
}

/// `EC=0x24 (data abort from a lower EL) ISV=0 ...`: the class and every ISS field (no `IL`,
/// which is not part of the syndrome; `Display` of [`Esr`] prints it).
impl fmt::Display for Syndrome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EC={}", self.class())?;
        self.fmt_iss(f)
    }
}

#[cfg(test)]
mod tests;
