//! The trap dispatcher: what Moat does with each exit of the guest. One short arm per kind of
//! exit; every exit ends in emulation and resumption, or in the VM's end with a diagnostic.

use crate::log;
use crate::power::EndStatus;
use crate::vcpu::Vcpu;
use crate::vm::Vm;
use crate::vm::{Power, Start};
use crate::{aborts, cpacr, guest, irqs, smp};
use core::fmt;
use moat_arm::esr::{CopRegIss, Direction, Esr, Syndrome, SysRegIss};
use moat_arm::pstate::{Spsr32, is_aarch32};
use moat_vcpu::cond::{condition_holds, trapped_instruction_executes};
use moat_vcpu::frame::ExitVector;
use moat_vcpu::idregs::{self, IdRegister};
use moat_vcpu::insn::{Aarch32FrameRegs, GuestRegs32};
use moat_vcpu::psci::{self, CallOutcome};

/// What follows an exit.
pub enum Next {
    /// Enter the guest again.
    Resume,
    /// Wait for an interrupt (with the VM unlocked), then enter the guest again.
    Wait,
    /// The vCPU is switched off (PSCI `CPU_OFF`): its physical CPU waits to be started again.
    Off,
    /// The VM is over.
    End(EndStatus),
}

/// Handles one exit of `vm`'s vCPU.
pub fn handle(vm: &mut Vm, vcpu: &mut Vcpu, vector: ExitVector) -> Next {
    match vector {
        ExitVector::Synchronous => synchronous(vm, vcpu),
        ExitVector::Irq => irqs::irq_exit(vm, vcpu),
        other => stop(
            vm,
            vcpu,
            format_args!(
                "{other:?} exception routed to EL2 (Moat enables no FIQ or SError source)"
            ),
        ),
    }
}

fn synchronous(vm: &mut Vm, vcpu: &mut Vcpu) -> Next {
    let esr = Esr::new(vcpu.frame.esr);
    match esr.decode() {
        // HVC: ELR_EL2 already points after the instruction.
        Syndrome::Hvc64(call) | Syndrome::Hvc32(call) => smccc(vm, vcpu, call.imm16, false),
        // A trapped SMC (HCR_EL2.TSC): ELR_EL2 points at the SMC itself.
        Syndrome::Smc64(call) => smccc(vm, vcpu, call.imm16, true),
        // An AArch32 SMC may trap although its condition failed (`CCKNOWNPASS`): then it is a
        // no-op.
        Syndrome::Smc32(iss)
            if iss.ccknownpass && !condition_holds(iss.cond, vcpu.frame.pstate) =>
        {
            vcpu.frame.advance_pc(esr.il());
            Next::Resume
        }
        Syndrome::Smc32(_) => smccc(vm, vcpu, 0, true),
        Syndrome::Mcr15(iss) => cp15_id_register(vm, vcpu, esr, &iss),
        Syndrome::Vmrs(iss) => vmrs_id_register(vm, vcpu, esr, &iss),
        // WFI (HCR_EL2.TWI): wait for an interrupt unless one is deliverable. WFE (TWE): an
        // event may end it at any time; it completes at once.
        Syndrome::Wfx(iss) => {
            vcpu.frame.advance_pc(esr.il());
            if iss.ti == moat_arm::esr::WfxKind::Wfi && irqs::must_wait(vm, vcpu) {
                Next::Wait
            } else {
                Next::Resume
            }
        }
        Syndrome::DataAbortLower(_) | Syndrome::InstrAbortLower(_) => aborts::handle(vm, vcpu, esr),
        Syndrome::SysReg(iss) => system_register(vm, vcpu, esr, &iss),
        // SVE and SME are trapped (`CPTR_EL2.TZ`, `TSM`) and reported absent in the ID
        // registers: on a CPU without them the instruction is UNDEFINED.
        Syndrome::SveAccess | Syndrome::SmeAccess(_) => undefined(vm, vcpu),
        _ => stop(vm, vcpu, format_args!("unhandled trap")),
    }
}

/// Injects an undefined instruction exception at the trapped instruction.
fn undefined(vm: &mut Vm, vcpu: &mut Vcpu) -> Next {
    let el1 = guest::El1Regs::read();
    let entry = moat_vcpu::inject::inject_undefined(&el1.context(&vcpu.frame, vm.features));
    entry.apply_to_frame(&mut vcpu.frame);
    guest::write_el1(&entry.sysreg_writes());
    Next::Resume
}

/// A trapped AArch32 `MRC p15, 0, Rt, c0, c<m>, <opc2>` of an ID register (`HCR_EL2.TID3`):
/// the same registers as the AArch64 ID space, sanitised alike.
fn cp15_id_register(vm: &mut Vm, vcpu: &mut Vcpu, esr: Esr, iss: &CopRegIss) -> Next {
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
        (Some(reg), Direction::Read) => read_id_into_aarch32(vm, vcpu, esr, reg, iss.rt),
        _ => stop(vm, vcpu, format_args!("unhandled AArch32 CP15 access")),
    }
}

/// A trapped AArch32 `VMRS Rt, MVFR<n>` (`HCR_EL2.TID3`): `CRn` holds the register number
/// (7 `MVFR0`, 6 `MVFR1`, 5 `MVFR2`), which are `ID space` `CRm` = 3, `op2` = 0, 1, 2.
fn vmrs_id_register(vm: &mut Vm, vcpu: &mut Vcpu, esr: Esr, iss: &CopRegIss) -> Next {
    if !trapped_instruction_executes(iss.cv, iss.cond, vcpu.frame.pstate) {
        vcpu.frame.advance_pc(esr.il());
        return Next::Resume;
    }
    let op2 = match iss.crn {
        7 => 0,
        6 => 1,
        5 => 2,
        _ => return stop(vm, vcpu, format_args!("unhandled VMRS")),
    };
    read_id_into_aarch32(vm, vcpu, esr, IdRegister { crm: 3, op2 }, iss.rt)
}

/// Writes the sanitised value of `reg` to the AArch32 register `rt` of the guest's mode.
fn read_id_into_aarch32(vm: &mut Vm, vcpu: &mut Vcpu, esr: Esr, reg: IdRegister, rt: u8) -> Next {
    let value = idregs::guest_value(reg, crate::idregs::hardware_value(reg), &vm.id_policy);
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

/// A trapped system-register access: reads of the ID registers (`HCR_EL2.TID3`) get the
/// sanitised hardware value.
fn system_register(vm: &mut Vm, vcpu: &mut Vcpu, esr: Esr, iss: &SysRegIss) -> Next {
    if let Some(next) = irqs::sgi_register(vm, vcpu, esr, iss) {
        return next;
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
    let id = IdRegister::from_encoding(iss.op0, iss.op1, iss.crn, iss.crm, iss.op2);
    match (id, iss.direction) {
        (Some(reg), Direction::Read) => {
            let value = idregs::guest_value(reg, crate::idregs::hardware_value(reg), &vm.id_policy);
            vcpu.frame.set_reg(iss.rt, value);
            vcpu.frame.advance_pc(esr.il());
            Next::Resume
        }
        _ => stop(vm, vcpu, format_args!("unhandled system register access")),
    }
}

/// An SMCCC call. A non-zero immediate is not an SMCCC call: it returns `NOT_SUPPORTED`.
fn smccc(vm: &mut Vm, vcpu: &mut Vcpu, imm16: u16, is_smc: bool) -> Next {
    if is_smc {
        vcpu.frame.advance_pc(true);
    }
    let f = &mut vcpu.frame;
    let outcome = if imm16 == 0 {
        psci::handle_call([f.x[0], f.x[1], f.x[2], f.x[3]])
    } else {
        CallOutcome::Return([u64::MAX, f.x[1], f.x[2], f.x[3]])
    };
    match outcome {
        CallOutcome::Return(regs) => {
            set_results(f, regs);
            Next::Resume
        }
        CallOutcome::CpuOn {
            target,
            entry,
            context,
        } => {
            let status = match vcpu_of(vm, target) {
                Some(index) => smp::cpu_on(vm, index, Start::CpuOn { entry, context }),
                None => INVALID_PARAMETERS,
            };
            set_status(f, status);
            Next::Resume
        }
        CallOutcome::CpuOff => {
            vm.power[vcpu.index] = Power::Off;
            Next::Off
        }
        CallOutcome::AffinityInfo { target, level } => {
            let status = match (vcpu_of(vm, target), level) {
                (Some(index), 0) => match vm.power[index] {
                    Power::On => 0,
                    Power::Off => 1,
                    Power::Pending(_) => 2,
                },
                _ => INVALID_PARAMETERS,
            };
            set_status(f, status);
            Next::Resume
        }
        CallOutcome::Suspend => {
            // Every power state is a standby here: resume after an interrupt, SUCCESS.
            set_status(f, 0);
            Next::Wait
        }
        CallOutcome::SystemOff => {
            log!("VM '{}' powered off (PSCI SYSTEM_OFF)", vm.config.name);
            Next::End(EndStatus::PowerOff)
        }
        CallOutcome::SystemReset => {
            log!(
                "VM '{}' asked for a reset (PSCI SYSTEM_RESET)",
                vm.config.name
            );
            Next::End(EndStatus::Reset)
        }
    }
}

/// PSCI `INVALID_PARAMETERS`.
const INVALID_PARAMETERS: i64 = -2;

/// The vCPU whose MPIDR affinity is `mpidr` (Aff0 = its index, the other levels 0), if the VM
/// has it.
fn vcpu_of(vm: &Vm, mpidr: u64) -> Option<usize> {
    const AFFINITY: u64 = 0xFF_00FF_FFFF;
    let index = usize::try_from(mpidr & AFFINITY).ok()?;
    (index < vm.config.cpus as usize).then_some(index)
}

/// Writes an SMCCC call's results: `X0`..`X3`, or for an AArch32 caller `R0`..`R3` (the low
/// halves).
fn set_results(f: &mut moat_vcpu::frame::TrapFrame, regs: [u64; 4]) {
    let mask = if is_aarch32(f.pstate) {
        0xFFFF_FFFF
    } else {
        u64::MAX
    };
    for (x, value) in f.x[..4].iter_mut().zip(regs) {
        *x = value & mask;
    }
}

/// Writes a PSCI status to `X0` (sign-extended, as a 64-bit read of a negative `W0` shows it).
fn set_status(f: &mut moat_vcpu::frame::TrapFrame, status: i64) {
    let regs = [status as u64, f.x[1], f.x[2], f.x[3]];
    set_results(f, regs);
}

/// Stops the VM with a decoded diagnostic of its last trap.
pub fn stop(vm: &Vm, vcpu: &Vcpu, why: fmt::Arguments<'_>) -> Next {
    let f = &vcpu.frame;
    log!("VM '{}' stopped: {why}", vm.config.name);
    log!("  {}", Esr::new(f.esr));
    log!(
        "  ESR_EL2={:#x} FAR_EL2={:#x} HPFAR_EL2={:#x} ELR_EL2={:#x} SPSR_EL2={:#x}",
        f.esr,
        f.far,
        f.hpfar,
        f.pc,
        f.pstate
    );
    log!(
        "  guest PC={:#x} x0={:#x} x1={:#x} x2={:#x} x30={:#x}",
        f.pc,
        f.x[0],
        f.x[1],
        f.x[2],
        f.x[30]
    );
    Next::End(EndStatus::VmStopped)
}
