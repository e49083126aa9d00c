//! The two halves of applying an exception entry: the trap-frame part (PC, PSTATE, an AArch32
//! mode's banked LR) and the system-register writes the EL2 binary performs. Both are plain
//! values; the EL2 binary only copies them into registers.

use super::{Aarch32Entry, Aarch32Target, Aarch64Entry};
use crate::frame::TrapFrame;

/// The register writes of an exception entry, for either execution state of EL1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Entry {
    /// The guest's EL1 is AArch64.
    Aarch64(Aarch64Entry),
    /// The guest's EL1 is AArch32.
    Aarch32(Aarch32Entry),
}

impl Entry {
    /// The guest's new PC (for `ELR_EL2`): the exception vector.
    #[must_use]
    pub const fn new_pc(&self) -> u64 {
        match self {
            Self::Aarch64(e) => e.elr_el2,
            Self::Aarch32(e) => e.elr_el2,
        }
    }

    /// The guest's new PSTATE (for `SPSR_EL2`).
    #[must_use]
    pub const fn new_pstate(&self) -> u64 {
        match self {
            Self::Aarch64(e) => e.spsr_el2,
            Self::Aarch32(e) => e.spsr_el2,
        }
    }

    /// Writes the part of the entry that lives in the trap frame: the PC and PSTATE the guest
    /// resumes with and, for an AArch32 EL1, the new mode's banked LR (`X20` or `X22`). This
    /// replaces any PC advance already applied to the frame.
    pub fn apply_to_frame(&self, frame: &mut TrapFrame) {
        frame.pc = self.new_pc();
        frame.pstate = self.new_pstate();
        if let Self::Aarch32(e) = self {
            frame.x[e.target.lr_x()] = e.lr;
        }
    }

    /// The system-register writes the EL2 binary performs before resuming the guest.
    #[must_use]
    pub fn sysreg_writes(&self) -> SysregWrites {
        match *self {
            Self::Aarch64(e) => SysregWrites {
                esr_el1: Some(e.esr_el1),
                far_el1: e.far_el1,
                elr_el1: Some(e.elr_el1),
                spsr_el1: Some(e.spsr_el1),
                ..SysregWrites::default()
            },
            Self::Aarch32(e) => {
                let spsr = Some(u64::from(e.spsr));
                let (spsr_abt, spsr_und) = match e.target {
                    Aarch32Target::Abort => (spsr, None),
                    Aarch32Target::Undefined => (None, spsr),
                };
                SysregWrites {
                    // DFSR is ESR_EL1[31:0]; IFSR is IFSR32_EL2.
                    esr_el1: e.dfsr.map(u64::from),
                    ifsr32_el2: e.ifsr.map(u64::from),
                    far_el1: e.far_el1,
                    spsr_abt,
                    spsr_und,
                    ..SysregWrites::default()
                }
            }
        }
    }
}

/// EL1 system registers (and their EL2 homes for an AArch32 EL1) an entry writes; `None`
/// leaves a register unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SysregWrites {
    /// `ESR_EL1` (an AArch32 EL1's `DFSR` in bits \[31:0\]).
    pub esr_el1: Option<u64>,
    /// `FAR_EL1` (an AArch32 EL1's `DFAR` and `IFAR`).
    pub far_el1: Option<u64>,
    /// `ELR_EL1`.
    pub elr_el1: Option<u64>,
    /// `SPSR_EL1`.
    pub spsr_el1: Option<u64>,
    /// `SPSR_abt` (AArch32 EL1).
    pub spsr_abt: Option<u64>,
    /// `SPSR_und` (AArch32 EL1).
    pub spsr_und: Option<u64>,
    /// `IFSR32_EL2`: an AArch32 EL1's `IFSR`.
    pub ifsr32_el2: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{
        Aarch32Exception, Aarch64Exception, CpuFeatures, GuestContext, enter_mode_aarch32,
        take_exception_aarch64,
    };
    use moat_arm::esr::Esr;
    use moat_arm::vector::VectorKind;

    const PC: u64 = 0x4008_0000;
    const VBAR: u64 = 0x4010_0000;

    fn ctx(spsr_el2: u64, el1_aarch32: bool) -> GuestContext {
        let features = CpuFeatures {
            el1_aarch32,
            ..Default::default()
        };
        GuestContext {
            pc: PC,
            spsr_el2,
            vbar_el1: VBAR,
            features,
            ..Default::default()
        }
    }

    #[test]
    fn aarch64_entry_writes_frame_pc_and_pstate_and_the_four_el1_registers() {
        let exception = Aarch64Exception {
            kind: VectorKind::Synchronous,
            esr: Esr::new(0x9600_0050),
            far: Some(0xDEAD_B000),
        };
        let entry = Entry::Aarch64(take_exception_aarch64(&ctx(0x3C5, false), &exception));
        let mut frame = TrapFrame {
            pc: PC + 4,
            ..Default::default()
        };
        entry.apply_to_frame(&mut frame);
        assert_eq!(
            (frame.pc, frame.pstate),
            (VBAR + 0x200, 0x3C5),
            "PC advance replaced"
        );
        let writes = entry.sysreg_writes();
        assert_eq!(writes.esr_el1, Some(0x9600_0050));
        assert_eq!(writes.far_el1, Some(0xDEAD_B000));
        assert_eq!((writes.elr_el1, writes.spsr_el1), (Some(PC), Some(0x3C5)));
        assert_eq!(
            (writes.spsr_abt, writes.spsr_und, writes.ifsr32_el2),
            (None, None, None)
        );
    }

    #[test]
    fn aarch32_prefetch_abort_writes_lr_abt_to_x20_and_ifsr_to_ifsr32_el2() {
        let exception = Aarch32Exception::PrefetchAbort {
            ifsr: 0x201,
            ifar: PC as u32,
        };
        let entry = Entry::Aarch32(enter_mode_aarch32(&ctx(0x10, true), &exception));
        let mut frame = TrapFrame::default();
        entry.apply_to_frame(&mut frame);
        assert_eq!(frame.x[20], PC + 4);
        let writes = entry.sysreg_writes();
        assert_eq!(writes.ifsr32_el2, Some(0x201));
        assert_eq!(writes.esr_el1, None, "DFSR untouched");
        assert_eq!(writes.spsr_abt, Some(0x10));
        assert_eq!((writes.elr_el1, writes.spsr_el1), (None, None));
    }

    #[test]
    fn aarch32_data_abort_writes_dfsr_to_esr_el1() {
        let exception = Aarch32Exception::DataAbort {
            dfsr: 0x808,
            dfar: 0x1000,
        };
        let entry = Entry::Aarch32(enter_mode_aarch32(&ctx(0x13, true), &exception));
        assert_eq!(entry.sysreg_writes().esr_el1, Some(0x808));
        assert_eq!(entry.sysreg_writes().far_el1, Some(0x1000));
    }

    #[test]
    fn aarch32_undefined_writes_lr_und_to_x22_and_spsr_und() {
        let entry = Entry::Aarch32(enter_mode_aarch32(
            &ctx(0x10, true),
            &Aarch32Exception::Undefined,
        ));
        let mut frame = TrapFrame::default();
        entry.apply_to_frame(&mut frame);
        assert_eq!(frame.x[22], PC + 4);
        assert_eq!(entry.sysreg_writes().spsr_und, Some(0x10));
        assert_eq!(entry.sysreg_writes().spsr_abt, None);
    }
}
