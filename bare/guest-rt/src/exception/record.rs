//! What the runtime records about an exception: the [`ExceptionRecord`] (vector offset,
//! `ESR_EL1`, `FAR_EL1`, `ELR_EL1`, `SPSR_EL1`, and PSTATE as the handler found it) and the saved
//! registers ([`ExceptionFrame`]).
//!
//! The record is the unit the differential test suite compares between Moat and real hardware
//! (or bare QEMU), so it holds raw register values, captured once; the accessors only name
//! fields (Arm ARM `ESR_EL1`, "Exception vectors").

use crate::global::Global;
#[cfg(target_os = "none")]
use crate::sysreg;
use crate::sysreg::{bit, field};

/// An offset into the EL1 vector table: which of the 16 entries an exception arrived at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorOffset(pub u16);

impl VectorOffset {
    /// Synchronous exception from the current EL while using SP_EL0.
    pub const CURRENT_SP0_SYNC: Self = Self(0x000);
    /// Synchronous exception from the current EL while using SP_ELx.
    pub const CURRENT_SPX_SYNC: Self = Self(0x200);
    /// Synchronous exception from a lower EL in AArch64.
    pub const LOWER_A64_SYNC: Self = Self(0x400);
    /// Synchronous exception from a lower EL in AArch32.
    pub const LOWER_A32_SYNC: Self = Self(0x600);

    /// The exception's kind: 0 synchronous, 1 IRQ, 2 FIQ, 3 SError (bits \[8:7\] of the offset).
    pub const fn kind(self) -> u16 {
        (self.0 >> 7) & 0b11
    }

    /// Where it came from: 0 current EL with SP_EL0, 1 current EL with SP_ELx, 2 lower EL in
    /// AArch64, 3 lower EL in AArch32 (bits \[10:9\] of the offset).
    pub const fn source(self) -> u16 {
        (self.0 >> 9) & 0b11
    }
}

/// `ESR_EL1.EC` values the tests use (Arm ARM, `ESR_EL1`, "EC, bits \[31:26\]").
pub mod ec {
    /// Unknown reason (e.g. an UNDEFINED instruction).
    pub const UNKNOWN: u8 = 0x00;
    /// SVC instruction execution in AArch64 state.
    pub const SVC64: u8 = 0x15;
    /// HVC instruction execution in AArch64 state.
    pub const HVC64: u8 = 0x16;
    /// SMC instruction execution in AArch64 state.
    pub const SMC64: u8 = 0x17;
    /// Instruction Abort taken without a change in Exception level.
    pub const IABT_CUR: u8 = 0x21;
    /// Data Abort taken without a change in Exception level.
    pub const DABT_CUR: u8 = 0x25;
    /// BRK instruction execution in AArch64 state.
    pub const BRK64: u8 = 0x3C;
}

/// PSTATE as the exception handler found it, i.e. as exception entry set it (Arm ARM
/// `AArch64.TakeException()`). Fields of extensions the CPU lacks are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PstateAtEntry {
    /// `DAIF` as read (PSTATE.{D,A,I,F} in bits \[9:6\]).
    pub daif: u64,
    /// `CurrentEL` as read (the EL in bits \[3:2\]).
    pub current_el: u64,
    /// `SPSel` as read (PSTATE.SP in bit 0).
    pub spsel: u64,
    /// PSTATE.PAN, with FEAT_PAN.
    pub pan: Option<bool>,
    /// PSTATE.UAO, with FEAT_UAO.
    pub uao: Option<bool>,
    /// PSTATE.DIT, with FEAT_DIT.
    pub dit: Option<bool>,
    /// PSTATE.SSBS, with FEAT_SSBS2 (the first version with `MRS SSBS`).
    pub ssbs: Option<bool>,
    /// PSTATE.TCO, with FEAT_MTE.
    pub tco: Option<bool>,
}

/// Which optional PSTATE fields this CPU has, from its ID registers (read once at boot).
#[derive(Debug, Clone, Copy)]
struct PstateFeatures {
    pan: bool,
    uao: bool,
    dit: bool,
    ssbs2: bool,
    mte: bool,
}

static FEATURES: Global<Option<PstateFeatures>> = Global::new(None);

/// Reads the ID registers that say which PSTATE fields exist.
#[cfg(target_os = "none")]
pub(crate) fn detect_features() {
    let pfr0 = sysreg::id_aa64pfr0_el1();
    let pfr1 = sysreg::id_aa64pfr1_el1();
    FEATURES.set(Some(PstateFeatures {
        pan: field(sysreg::id_aa64mmfr1_el1(), 20, 4) != 0, // ID_AA64MMFR1_EL1.PAN
        uao: field(sysreg::id_aa64mmfr2_el1(), 4, 4) != 0,  // ID_AA64MMFR2_EL1.UAO
        dit: field(pfr0, 48, 4) != 0,                       // ID_AA64PFR0_EL1.DIT
        ssbs2: field(pfr1, 4, 4) >= 2,                      // ID_AA64PFR1_EL1.SSBS
        mte: field(pfr1, 8, 4) != 0,                        // ID_AA64PFR1_EL1.MTE
    }));
}

impl PstateAtEntry {
    /// Reads PSTATE now. Called first thing in the handler, before anything can change it.
    #[cfg(target_os = "none")]
    pub fn capture() -> Self {
        let has = FEATURES.get();
        let read = |present: fn(&PstateFeatures) -> bool, reg: fn() -> u64, at: u32| {
            has.filter(present).map(|_| bit(reg(), at))
        };
        Self {
            daif: sysreg::daif(),
            current_el: sysreg::current_el_raw(),
            spsel: sysreg::spsel(),
            pan: read(|f| f.pan, sysreg::pan, 22),
            uao: read(|f| f.uao, sysreg::uao, 23),
            dit: read(|f| f.dit, sysreg::dit, 24),
            ssbs: read(|f| f.ssbs2, sysreg::ssbs, 12),
            tco: read(|f| f.mte, sysreg::tco, 25),
        }
    }
}

/// One exception as the guest saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceptionRecord {
    /// Which vector entry it arrived at.
    pub vector: VectorOffset,
    /// `ESR_EL1`: the syndrome.
    pub esr: u64,
    /// `FAR_EL1`: the faulting address (meaningful for aborts and some debug exceptions only).
    pub far: u64,
    /// `ELR_EL1`: the preferred return address.
    pub elr: u64,
    /// `SPSR_EL1`: PSTATE before the exception.
    pub spsr: u64,
    /// PSTATE on entry to the handler.
    pub pstate: PstateAtEntry,
}

impl ExceptionRecord {
    /// `ESR_EL1.EC`, bits \[31:26\]: the exception class (see [`ec`]).
    pub const fn ec(&self) -> u8 {
        field(self.esr, 26, 6) as u8
    }

    /// `ESR_EL1.IL`, bit 25: the trapped instruction was 32 bits long.
    pub const fn il(&self) -> bool {
        bit(self.esr, 25)
    }

    /// `ESR_EL1.ISS`, bits \[24:0\]: the class-specific syndrome.
    pub const fn iss(&self) -> u32 {
        field(self.esr, 0, 25) as u32
    }

    /// `ESR_EL1.ISS2`, bits \[36:32\] (FEAT_LS64 and later; 0 otherwise).
    pub const fn iss2(&self) -> u32 {
        field(self.esr, 32, 5) as u32
    }

    /// `SPSR_EL1.M[3:0]`: the interrupted mode (0b0101 = EL1h, 0b0100 = EL1t, 0b0000 = EL0t).
    pub const fn spsr_mode(&self) -> u8 {
        field(self.spsr, 0, 4) as u8
    }
}

/// The interrupted context's registers as the vector code saved them; the handler may change
/// them, and the vector code restores them before `ERET`.
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionFrame {
    /// X0..X30.
    pub x: [u64; 31],
    /// `ELR_EL1`: where `ERET` resumes.
    pub elr: u64,
    /// `SPSR_EL1`: the PSTATE `ERET` restores.
    pub spsr: u64,
    /// Keeps the frame a multiple of 16 bytes (SP alignment).
    _reserved: u64,
}

impl ExceptionFrame {
    /// Resumes after the A64 instruction at `ELR_EL1` (for exceptions whose preferred return
    /// address is the instruction itself, e.g. BRK or an abort).
    pub fn skip_instruction(&mut self) {
        self.elr += 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(esr: u64, spsr: u64) -> ExceptionRecord {
        let pstate = PstateAtEntry {
            daif: 0x3c0,
            current_el: 1 << 2,
            spsel: 1,
            pan: None,
            uao: None,
            dit: None,
            ssbs: None,
            tco: None,
        };
        ExceptionRecord {
            vector: VectorOffset(0x200),
            esr,
            far: 0,
            elr: 0,
            spsr,
            pstate,
        }
    }

    #[test]
    fn brk_0x42_syndrome_decodes_to_ec_0x3c_il_iss_0x42() {
        let brk = record(0xf200_0042, 0x3c5);
        assert_eq!(
            (brk.ec(), brk.il(), brk.iss(), brk.iss2()),
            (ec::BRK64, true, 0x42, 0)
        );
    }

    #[test]
    fn spsr_mode_is_the_low_four_bits() {
        assert_eq!(record(0, 0x6000_03c5).spsr_mode(), 0b0101);
        assert_eq!(record(0, 0x3c4).spsr_mode(), 0b0100);
    }

    #[test]
    fn vector_offset_splits_into_source_and_kind() {
        assert_eq!(
            (VectorOffset(0x200).source(), VectorOffset(0x200).kind()),
            (1, 0)
        );
        assert_eq!(
            (VectorOffset(0x480).source(), VectorOffset(0x480).kind()),
            (2, 1)
        );
        assert_eq!(
            (VectorOffset(0x780).source(), VectorOffset(0x780).kind()),
            (3, 3)
        );
        assert_eq!(
            (VectorOffset(0x100).source(), VectorOffset(0x100).kind()),
            (0, 2)
        );
    }
}
