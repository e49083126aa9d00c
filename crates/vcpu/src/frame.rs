//! The trap frame: what the EL2 vector code captures when a guest exits, and what the world
//! switch loads when it enters the guest again.
//!
//! "Capture once, decode purely": the vector code stores the guest's general-purpose registers
//! and the trap state (`ELR_EL2`, `SPSR_EL2`, `ESR_EL2`, `FAR_EL2`, `HPFAR_EL2`) here, and every
//! decision after that is a function of this frame. The layout is `repr(C)` because the EL2
//! binary's assembly addresses its fields by the offsets below.

/// The guest state saved and restored around every exit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TrapFrame {
    /// `X0`..`X30` (for an AArch32 guest, `R0`..`R14` and the banked copies in their AArch64
    /// homes).
    pub x: [u64; 31],
    /// The guest's PC: `ELR_EL2` at the exit, the return address of the `ERET` on entry.
    pub pc: u64,
    /// The guest's PSTATE: `SPSR_EL2` at the exit, restored by the `ERET` on entry.
    pub pstate: u64,
    /// `ESR_EL2` at the exit (syndrome of a synchronous exception; 0 for an interrupt).
    pub esr: u64,
    /// `FAR_EL2` at the exit: the faulting virtual address of an abort.
    pub far: u64,
    /// `HPFAR_EL2` at the exit: the faulting IPA's page for a stage-2 or stage-1-walk fault.
    pub hpfar: u64,
}

/// Byte offset of [`TrapFrame::pc`], used by the world-switch assembly.
pub const OFFSET_PC: usize = core::mem::offset_of!(TrapFrame, pc);
/// Byte offset of [`TrapFrame::esr`], used by the world-switch assembly.
pub const OFFSET_ESR: usize = core::mem::offset_of!(TrapFrame, esr);
/// Byte offset of [`TrapFrame::hpfar`], used by the world-switch assembly.
pub const OFFSET_HPFAR: usize = core::mem::offset_of!(TrapFrame, hpfar);

// The assembly stores `pc`/`pstate` and `esr`/`far` as pairs with `stp`.
const _: () = assert!(core::mem::offset_of!(TrapFrame, pstate) == OFFSET_PC + 8);
const _: () = assert!(core::mem::offset_of!(TrapFrame, far) == OFFSET_ESR + 8);

impl TrapFrame {
    /// General-purpose register `n` as an instruction's register field names it, where 31 is
    /// the zero register (`XZR`) for the data-transfer instructions Moat emulates.
    #[must_use]
    pub fn reg(&self, n: u8) -> u64 {
        self.x.get(usize::from(n)).copied().unwrap_or(0)
    }

    /// Moves the guest past the instruction that trapped: 4 bytes, or 2 for a 16-bit T32
    /// instruction (`ESR_ELx.IL` = 0), as an emulated instruction completes.
    pub fn advance_pc(&mut self, il: bool) {
        self.pc = self.pc.wrapping_add(if il { 4 } else { 2 });
    }

    /// Writes register `n`; a write to 31 (`XZR`) is discarded, as the hardware does.
    pub fn set_reg(&mut self, n: u8, value: u64) {
        if let Some(slot) = self.x.get_mut(usize::from(n)) {
            *slot = value;
        }
    }
}

/// Why the guest stopped running, as told by the EL2 vector it came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum ExitVector {
    /// A synchronous exception from the guest (EL1 or EL0, AArch64 or AArch32).
    Synchronous = 0,
    /// A physical IRQ routed to EL2 (`HCR_EL2.IMO`).
    Irq = 1,
    /// A physical FIQ routed to EL2 (`HCR_EL2.FMO`).
    Fiq = 2,
    /// A physical SError routed to EL2 (`HCR_EL2.AMO`).
    SError = 3,
}

impl ExitVector {
    /// The vector kind the assembly returned, or `None` for a value it never returns.
    #[must_use]
    pub const fn from_raw(raw: u64) -> Option<Self> {
        match raw {
            0 => Some(Self::Synchronous),
            1 => Some(Self::Irq),
            2 => Some(Self::Fiq),
            3 => Some(Self::SError),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_match_the_assembly_layout() {
        assert_eq!(OFFSET_PC, 248);
        assert_eq!(OFFSET_ESR, 264);
        assert_eq!(OFFSET_HPFAR, 280);
    }

    #[test]
    fn register_31_reads_as_zero_and_ignores_writes() {
        let mut frame = TrapFrame::default();
        frame.set_reg(31, 0xdead);
        assert_eq!(frame.reg(31), 0);
        frame.set_reg(30, 0xbeef);
        assert_eq!(frame.reg(30), 0xbeef);
    }

    #[test]
    fn advance_pc_skips_a_32_bit_or_a_16_bit_instruction() {
        let mut frame = TrapFrame {
            pc: 0x1000,
            ..TrapFrame::default()
        };
        frame.advance_pc(true);
        assert_eq!(frame.pc, 0x1004);
        frame.advance_pc(false);
        assert_eq!(frame.pc, 0x1006);
    }

    #[test]
    fn exit_vector_round_trips_and_refuses_unknown_values() {
        for v in [
            ExitVector::Synchronous,
            ExitVector::Irq,
            ExitVector::Fiq,
            ExitVector::SError,
        ] {
            assert_eq!(ExitVector::from_raw(v as u64), Some(v));
        }
        assert_eq!(ExitVector::from_raw(4), None);
    }
}
