//! The guest's registers as the emulator sees them, backed by the EL2 trap frame.
//!
//! The frame holds `X0`..`X30`; the guest's stack pointer of the trapped context (`SP_EL0` or
//! `SP_EL1`, by `PSTATE.SP` and the EL) is a system register the EL2 binary reads before and
//! writes back after the emulation. An AArch32 guest's `R<n>` lives in its AArch64 home for the
//! current mode ("Mapping of the general-purpose registers between the Execution states").

use super::a64::Reg;
use super::emulate::{GuestRegs, GuestRegs32};
use crate::frame::TrapFrame;
use moat_arm::banked::aarch64_home;
use moat_arm::pstate::Aarch32Mode;

/// An AArch64 guest's registers: the frame's `X0`..`X30` and the current stack pointer.
#[derive(Debug)]
pub struct A64FrameRegs<'a> {
    /// The trap frame.
    pub frame: &'a mut TrapFrame,
    /// The stack pointer the trapped context was using; the caller writes it back.
    pub sp: u64,
}

impl GuestRegs for A64FrameRegs<'_> {
    fn read(&self, r: Reg) -> u64 {
        match r {
            Reg::X(n) => self.frame.reg(n),
            Reg::Sp => self.sp,
            Reg::Zr => 0,
        }
    }

    fn write(&mut self, r: Reg, value: u64) {
        match r {
            Reg::X(n) => self.frame.set_reg(n, value),
            Reg::Sp => self.sp = value,
            Reg::Zr => {}
        }
    }
}

/// An AArch32 guest's `R0`..`R14` in `mode`, in their AArch64 homes in the frame.
///
/// A register without a home (`LR_hyp`, Monitor or reserved modes — none of which an EL1/EL0
/// guest can be in when it traps) reads as 0 and ignores writes.
#[derive(Debug)]
pub struct Aarch32FrameRegs<'a> {
    /// The trap frame.
    pub frame: &'a mut TrapFrame,
    /// The guest's mode (`SPSR_EL2.M`).
    pub mode: Aarch32Mode,
}

impl GuestRegs32 for Aarch32FrameRegs<'_> {
    fn read(&self, r: u8) -> u32 {
        // Truncation intended: `R<n>` is the low half of its AArch64 home.
        aarch64_home(self.mode, r).map_or(0, |x| self.frame.x[x] as u32)
    }

    fn write(&mut self, r: u8, value: u32) {
        // Writing `R<n>` from AArch32 leaves the upper half of its home UNKNOWN; zero is a
        // permitted value and the least surprising one.
        if let Some(x) = aarch64_home(self.mode, r) {
            self.frame.x[x] = u64::from(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::emulate::{A64Context, Aarch32Context, emulate_a32, emulate_a64};
    use crate::insn::testutil::Port;

    #[test]
    fn a64_emulation_through_the_frame_writes_back_sp_and_loads_into_x_registers() {
        let mut frame = TrapFrame::default();
        let mut regs = A64FrameRegs {
            frame: &mut frame,
            sp: 0x4_0000,
        };
        let ctx = A64Context {
            pc: 0,
            far: 0x4_0000,
            big_endian: false,
        };
        let mut port = Port::with_values(&[(0x4_0000, 0x29), (0x4_0008, 0x30)]);
        emulate_a64(0xa8c1_7bfd, &ctx, &mut regs, &mut port).unwrap(); // ldp x29, x30, [sp], #16
        assert_eq!(regs.sp, 0x4_0010);
        assert_eq!((frame.x[29], frame.x[30]), (0x29, 0x30));
    }

    #[test]
    fn aarch32_emulation_through_the_frame_uses_the_banked_sp_of_the_mode() {
        let mut frame = TrapFrame::default();
        frame.x[21] = 0x2000; // SP_abt
        frame.x[13] = 0x9999; // SP_usr, not used in Abort mode
        let mut regs = Aarch32FrameRegs {
            frame: &mut frame,
            mode: Aarch32Mode::Abort,
        };
        let ctx = Aarch32Context {
            pc: 0x8000,
            far: 0x1ffc,
            big_endian: false,
            carry: false,
        };
        let mut port = Port::with_value(0x1ffc, 0xdead_beef);
        emulate_a32(0xe53d_1004, &ctx, &mut regs, &mut port).unwrap(); // ldr r1, [sp, #-4]!
        assert_eq!(frame.x[21], 0x1ffc);
        assert_eq!(frame.x[1], 0xdead_beef);
        assert_eq!(frame.x[13], 0x9999);
    }
}
