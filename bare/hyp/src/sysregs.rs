//! Trapped system-register accesses: the ID registers (`HCR_EL2.TID3`, and their AArch32
//! `MRC p15`/`VMRS` forms) read as the sanitised hardware value, the guest's `CPACR_EL1`
//! (`CPTR_EL2.TCPAC`, see `cpacr.rs`), and the SGI registers (`ICC_SGI1R_EL1` and kin, trapped
//! because `HCR_EL2.IMO` is set) sent through the GIC model.

use crate::cpacr;
use crate::outcome::{Next, stop};
use crate::vcpu::Vcpu;
use crate::vm::Vm;
use moat_arm::esr::{CopRegIss, CopRegPairIss, Direction, Esr, SysRegIss};
use moat_arm::pstate::Spsr32;
use moat_devices::gic::VcpuSet;
use moat_vcpu::cond::trapped_instruction_executes;
use moat_vcpu::idregs::IdRegister;
use moat_vcpu::insn::{Aarch32FrameRegs, GuestRegs32};

/// A trapped `MRS`/`MSR`.
pub fn system_register(vm: &mut Vm, vcpu: &mut Vcpu, esr: Esr, iss: &SysRegIss) -> Next {
    if is_sgi_register(iss) {
        let which = match iss.op2 {
            5 => SgiRegister::Group1,
            6 => SgiRegister::AlternateGroup1,
            _ => SgiRegister::Group0,
        };
        let value = vcpu.frame.reg(iss.rt);
        return send_sgi(vm, vcpu, esr, which, value);
    }
    if cpacr::is_cpacr(iss.op0, iss.op1, iss.crn, iss.crm, iss.op2) {
        match iss.direction {
            Direction::Read => {
                let value = cpacr::read_guest(vcpu);
                vcpu.frame.set_reg(iss.rt, value);
            }
            Direction::Write => {
                let value = vcpu.frame.reg(iss.rt);
                cpacr::write_guest(vcpu, value);
            }
        }
        vcpu.frame.advance_pc(esr.il());
        return Next::Resume;
    }
    if read_id_register(vcpu, esr, iss) {
        return Next::Resume;
    }
    stop(
        &vm.config.name,
        &vcpu.frame,
        format_args!("unhandled system register access"),
    )
}

/// Completes the trapped `MRS` (`iss`) if it reads a register of the ID space
/// (`HCR_EL2.TID3`): `Rt` gets the vCPU's value of it, the PC moves on. `false`, with nothing
/// done, for every other access. Both the exit vector's in-place service (`fastpath`) and
/// [`system_register`] use it.
#[inline(always)]
pub fn read_id_register(vcpu: &mut Vcpu, esr: Esr, iss: &SysRegIss) -> bool {
    let id = IdRegister::from_encoding(iss.op0, iss.op1, iss.crn, iss.crm, iss.op2);
    let (Some(reg), Direction::Read) = (id, iss.direction) else {
        return false;
    };
    vcpu.frame.set_reg(iss.rt, vcpu.id_values.get(reg));
    vcpu.frame.advance_pc(esr.il());
    true
}

/// `ICC_SGI1R_EL1`, `ICC_ASGI1R_EL1`, `ICC_SGI0R_EL1` (`op0` 3, `op1` 0, `CRn` 12, `CRm` 11,
/// `op2` 5, 6, 7), written.
fn is_sgi_register(iss: &SysRegIss) -> bool {
    iss.op0 == 3
        && iss.op1 == 0
        && iss.crn == 12
        && iss.crm == 11
        && iss.direction == Direction::Write
        && (5..=7).contains(&iss.op2)
}

/// The SGI registers of the GICv3 CPU interface, by the AArch64 `op2` / AArch32 `Opc1` that
/// names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SgiRegister {
    /// `ICC_SGI1R_EL1` (`op2` 5; AArch32 `ICC_SGI1R`, `MCRR p15, 0, Rt, Rt2, c12`).
    Group1,
    /// `ICC_ASGI1R_EL1` (`op2` 6; `MCRR p15, 1, .., c12`): the other Security state's Group 1.
    AlternateGroup1,
    /// `ICC_SGI0R_EL1` (`op2` 7; `MCRR p15, 2, .., c12`).
    Group0,
}

/// The guest sends an SGI: the GIC model pends it, and the targets' CPUs are kicked.
fn send_sgi(vm: &mut Vm, vcpu: &mut Vcpu, esr: Esr, which: SgiRegister, value: u64) -> Next {
    if let Some(gic) = vm.bus.gic() {
        let targets = match which {
            SgiRegister::Group1 => gic.send_sgi(vcpu.index, value),
            SgiRegister::Group0 => gic.send_sgi0(vcpu.index, value),
            // The other Security state's Group 1: none exists for a guest.
            SgiRegister::AlternateGroup1 => VcpuSet::EMPTY,
        };
        vm.kick(targets, vcpu.index);
    }
    vcpu.frame.advance_pc(esr.il());
    Next::Resume
}

/// A trapped AArch32 `MCRR`/`MRRC` of CP15 (EC 0x04): the 64-bit SGI registers
/// (`MCRR p15, <opc1>, Rt, Rt2, c12`, trapped because `HCR_EL2.IMO` is set), written as
/// `Rt2:Rt`.
pub fn cp15_pair(vm: &mut Vm, vcpu: &mut Vcpu, esr: Esr, iss: &CopRegPairIss) -> Next {
    if !trapped_instruction_executes(iss.cv, iss.cond, vcpu.frame.pstate) {
        vcpu.frame.advance_pc(esr.il());
        return Next::Resume;
    }
    let which = match (iss.crm, iss.opc1, iss.direction) {
        (12, 0, Direction::Write) => SgiRegister::Group1,
        (12, 1, Direction::Write) => SgiRegister::AlternateGroup1,
        (12, 2, Direction::Write) => SgiRegister::Group0,
        _ => {
            return stop(
                &vm.config.name,
                &vcpu.frame,
                format_args!("unhandled AArch32 CP15 MCRR/MRRC access"),
            );
        }
    };
    // Truncation intended: AArch32 CPSR is 32 bits.
    let mode = Spsr32::new(vcpu.frame.pstate as u32).mode();
    let regs = Aarch32FrameRegs {
        frame: &mut vcpu.frame,
        mode,
    };
    let value = (u64::from(regs.read(iss.rt2)) << 32) | u64::from(regs.read(iss.rt));
    send_sgi(vm, vcpu, esr, which, value)
}

/// A trapped AArch32 `MRC p15, 0, Rt, c0, c<m>, <opc2>` of an ID register (`HCR_EL2.TID3`):
/// the same registers as the AArch64 ID space, sanitised alike.
pub fn cp15_id_register(vm: &mut Vm, vcpu: &mut Vcpu, esr: Esr, iss: &CopRegIss) -> Next {
    if !trapped_instruction_executes(iss.cv, iss.cond, vcpu.frame.pstate) {
        vcpu.frame.advance_pc(esr.il());
        return Next::Resume;
    }
    let id = if iss.opc1 == 0 && iss.crn == 0 {
        IdRegister::from_encoding(3, 0, 0, iss.crm, iss.opc2)
    } else {
        None
    };
    match (id, iss.direction) {
        (Some(reg), Direction::Read) => read_id_into_aarch32(vcpu, esr, reg, iss.rt),
        _ => stop(
            &vm.config.name,
            &vcpu.frame,
            format_args!("unhandled AArch32 CP15 access"),
        ),
    }
}

/// A trapped AArch32 `VMRS Rt, MVFR<n>` (`HCR_EL2.TID3`): `CRn` holds the register number
/// (7 `MVFR0`, 6 `MVFR1`, 5 `MVFR2`), which are `ID space` `CRm` = 3, `op2` = 0, 1, 2.
pub fn vmrs_id_register(vm: &mut Vm, vcpu: &mut Vcpu, esr: Esr, iss: &CopRegIss) -> Next {
    if !trapped_instruction_executes(iss.cv, iss.cond, vcpu.frame.pstate) {
        vcpu.frame.advance_pc(esr.il());
        return Next::Resume;
    }
    let op2 = match iss.crn {
        7 => 0,
        6 => 1,
        5 => 2,
        _ => return stop(&vm.config.name, &vcpu.frame, format_args!("unhandled VMRS")),
    };
    read_id_into_aarch32(vcpu, esr, IdRegister { crm: 3, op2 }, iss.rt)
}

/// Writes the sanitised value of `reg` to the AArch32 register `rt` of the guest's mode.
fn read_id_into_aarch32(vcpu: &mut Vcpu, esr: Esr, reg: IdRegister, rt: u8) -> Next {
    let value = vcpu.id_values.get(reg);
    // Truncations intended: AArch32 registers and CPSR are 32 bits.
    let mode = Spsr32::new(vcpu.frame.pstate as u32).mode();
    Aarch32FrameRegs {
        frame: &mut vcpu.frame,
        mode,
    }
    .write(rt, value as u32);
    vcpu.frame.advance_pc(esr.il());
    Next::Resume
}
