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
mod debug;
pub(crate) mod layout;
mod misc;
mod serror;
mod syndrome;
mod trap;

use core::fmt;

pub use abort::{AccessSize, DataAbortIss, InstrAbortIss, SyncErrorType};
pub use class::ExceptionClass;
pub use debug::{BreakpointIss, DEBUG_FSC, SoftwareStepIss, WatchpointIss};
pub use misc::{
    BranchTargetIss, EretIss, FpAccessIss, FpExceptionIss, GcsIss, MopsIss, PacFailIss,
    ProfilingIss, SmeIss, SysReg128Iss,
};
pub use serror::{AsyncErrorType, SERROR_DFSC_ASYNC, SERROR_DFSC_UNCATEGORIZED, SErrorIss};
pub use trap::{
    CallIss, CommentIss, CopRegIss, CopRegPairIss, Direction, LdcIss, Smc32Iss, SysRegIss, WfxIss,
    WfxKind,
};

pub use syndrome::Syndrome;

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
    #[inline]
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
    #[inline]
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// `EC`, the exception class.
    #[must_use]
    #[inline]
    pub const fn ec(self) -> ExceptionClass {
        ExceptionClass::from_code(EC.get(self.0) as u8)
    }

    /// `IL`: the trapped instruction was 32 bits long (see the Arm ARM for the classes that
    /// always report 1).
    #[must_use]
    #[inline]
    pub const fn il(self) -> bool {
        IL.is_set(self.0)
    }

    /// `ISS`, bits \[24:0\].
    #[must_use]
    #[inline]
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

#[cfg(test)]
mod tests;
