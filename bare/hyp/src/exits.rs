//! The trap dispatcher: what Moat does with each exit of the guest. One short arm per kind of
//! exit; every exit ends in emulation and resumption, or in the VM's end with a diagnostic.

use crate::gic::CpuInterface;
use crate::outcome::{Next, stop};
use crate::vcpu::Vcpu;
use crate::vm::Vm;
use crate::{aborts, guest, irqs, smccc, sysregs};
use moat_arm::esr::{Esr, Syndrome, WfxKind};
use moat_vcpu::cond::condition_holds;
use moat_vcpu::frame::ExitVector;

/// Handles one exit of `vm`'s vCPU `vcpu`, on the physical CPU whose GIC interface is `cpu`.
pub fn handle(
    vm: &mut Vm,
    vcpu: &mut Vcpu,
    cpu: Option<&mut CpuInterface>,
    vector: ExitVector,
) -> Next {
    match (vector, cpu) {
        (ExitVector::Synchronous, cpu) => synchronous(vm, vcpu, cpu.as_deref()),
        (ExitVector::Irq, Some(cpu)) => irqs::irq_exit(vm, vcpu, cpu),
        // Without the machine's GIC Moat enables no interrupt source.
        (ExitVector::Irq, None) => Next::Resume,
        (other, _) => stop(
            &vm.config.name,
            &vcpu.frame,
            format_args!(
                "{other:?} exception routed to EL2 (Moat enables no FIQ or SError source)"
            ),
        ),
    }
}

fn synchronous(vm: &mut Vm, vcpu: &mut Vcpu, cpu: Option<&CpuInterface>) -> Next {
    let esr = Esr::new(vcpu.frame.esr);
    match esr.decode() {
        // HVC: ELR_EL2 already points after the instruction.
        Syndrome::Hvc64(call) | Syndrome::Hvc32(call) => smccc::call(vm, vcpu, call.imm16),
        // A trapped SMC (HCR_EL2.TSC): ELR_EL2 points at the SMC itself.
        Syndrome::Smc64(call) => {
            vcpu.frame.advance_pc(true);
            smccc::call(vm, vcpu, call.imm16)
        }
        // An AArch32 SMC may trap although its condition failed (`CCKNOWNPASS`): then it is a
        // no-op.
        Syndrome::Smc32(iss)
            if iss.ccknownpass && !condition_holds(iss.cond, vcpu.frame.pstate) =>
        {
            vcpu.frame.advance_pc(esr.il());
            Next::Resume
        }
        Syndrome::Smc32(_) => {
            vcpu.frame.advance_pc(esr.il());
            smccc::call(vm, vcpu, 0)
        }
        Syndrome::Mcr15(iss) => sysregs::cp15_id_register(vm, vcpu, esr, &iss),
        Syndrome::Vmrs(iss) => sysregs::vmrs_id_register(vm, vcpu, esr, &iss),
        // WFI (HCR_EL2.TWI): wait for an interrupt unless one is deliverable. WFE (TWE): an
        // event may end it at any time; it completes at once.
        Syndrome::Wfx(iss) => {
            vcpu.frame.advance_pc(esr.il());
            if iss.ti == WfxKind::Wfi {
                irqs::wfi(vm, vcpu, cpu)
            } else {
                Next::Resume
            }
        }
        Syndrome::DataAbortLower(_) | Syndrome::InstrAbortLower(_) => aborts::handle(vm, vcpu, esr),
        Syndrome::SysReg(iss) => sysregs::system_register(vm, vcpu, esr, &iss),
        // SVE and SME are trapped (`CPTR_EL2.TZ`, `TSM`) and reported absent in the ID
        // registers: on a CPU without them the instruction is UNDEFINED.
        Syndrome::SveAccess | Syndrome::SmeAccess(_) => undefined(vm, vcpu),
        _ => stop(&vm.config.name, &vcpu.frame, format_args!("unhandled trap")),
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
