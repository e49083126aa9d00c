//! The trap dispatcher: what Moat does with each exit of the guest. One short arm per kind of
//! exit; every exit ends in emulation and resumption, or in the VM's end with a diagnostic.

use crate::gic::CpuInterface;
use crate::outcome::{Next, stop};
use crate::vcpu::Vcpu;
use crate::vm::Vm;
use crate::{aborts, guest, irqs, smccc, sysregs};
use moat_arm::esr::{
    CallIss, CopRegIss, CopRegPairIss, Esr, ExceptionClass, Smc32Iss, SysRegIss, WfxIss, WfxKind,
};
use moat_vcpu::cond::condition_holds;
use moat_vcpu::frame::ExitVector;

/// Runs `handle` between the read-back of the list registers after the exit and, when the guest
/// resumes at once, their loading for the next entry: the general path every exit takes but the
/// fast paths' (`fastpath.rs`), which touch no interrupt state.
pub fn with_interrupts(
    vm: &mut Vm,
    vcpu: &mut Vcpu,
    mut irq: Option<&mut CpuInterface>,
    handle: impl FnOnce(&mut Vm, &mut Vcpu, Option<&mut CpuInterface>) -> Next,
) -> Next {
    if let Some(irq) = irq.as_deref() {
        vm.after_exit(vcpu, irq);
    }
    let next = handle(vm, vcpu, irq.as_deref_mut());
    if matches!(next, Next::Resume) {
        prepare_entry(vm, vcpu, irq);
    }
    next
}

/// Loads what the vCPU must see on entry, when this CPU has a GIC interface to load it into.
pub fn prepare_entry(vm: &mut Vm, vcpu: &Vcpu, irq: Option<&mut CpuInterface>) {
    if let Some(irq) = irq {
        vm.before_entry(vcpu, irq);
    }
}

/// Handles one exit of `vm`'s vCPU `vcpu`, on the physical CPU whose GIC interface is `cpu`.
pub fn handle(
    vm: &mut Vm,
    vcpu: &mut Vcpu,
    cpu: Option<&mut CpuInterface>,
    vector: ExitVector,
) -> Next {
    if vm.stop_at_next_exit {
        vm.stop_at_next_exit = false;
        return stop(
            &vm.config.name,
            &vcpu.frame,
            format_args!("self-test (moat.self-test=stop-vm:{})", vm.id),
        );
    }
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

/// A synchronous exit, dispatched on `ESR_EL2.EC`; each arm decodes only its own class's ISS
/// (building the whole `Syndrome` copies its largest variant on every exit).
fn synchronous(vm: &mut Vm, vcpu: &mut Vcpu, cpu: Option<&CpuInterface>) -> Next {
    let esr = Esr::new(vcpu.frame.esr);
    let iss = esr.iss();
    match esr.ec() {
        // HVC: ELR_EL2 already points after the instruction.
        ExceptionClass::Hvc64 | ExceptionClass::Hvc32 => {
            smccc::call(vm, vcpu, CallIss::decode(iss).imm16)
        }
        // A trapped SMC (HCR_EL2.TSC): ELR_EL2 points at the SMC itself.
        ExceptionClass::Smc64 => {
            vcpu.frame.advance_pc(true);
            smccc::call(vm, vcpu, CallIss::decode(iss).imm16)
        }
        ExceptionClass::Smc32 => {
            // An AArch32 SMC may trap although its condition failed (`CCKNOWNPASS`): then it
            // is a no-op.
            let smc = Smc32Iss::decode(iss);
            vcpu.frame.advance_pc(esr.il());
            if smc.ccknownpass && !condition_holds(smc.cond, vcpu.frame.pstate) {
                Next::Resume
            } else {
                smccc::call(vm, vcpu, 0)
            }
        }
        ExceptionClass::Mcrr15 => sysregs::cp15_pair(vm, vcpu, esr, &CopRegPairIss::decode(iss)),
        ExceptionClass::Mcr15 => sysregs::cp15_id_register(vm, vcpu, esr, &CopRegIss::decode(iss)),
        ExceptionClass::Vmrs => sysregs::vmrs_id_register(vm, vcpu, esr, &CopRegIss::decode(iss)),
        // WFI (HCR_EL2.TWI): wait for an interrupt unless one is deliverable. WFE (TWE): an
        // event may end it at any time; it completes at once.
        ExceptionClass::Wfx => {
            vcpu.frame.advance_pc(esr.il());
            if WfxIss::decode(iss).ti == WfxKind::Wfi {
                irqs::wfi(vm, vcpu, cpu)
            } else {
                Next::Resume
            }
        }
        ExceptionClass::DataAbortLower | ExceptionClass::InstrAbortLower => {
            aborts::handle(vm, vcpu, esr)
        }
        ExceptionClass::SysReg => sysregs::system_register(vm, vcpu, esr, &SysRegIss::decode(iss)),
        // SVE and SME are trapped (`CPTR_EL2.TZ`, `TSM`) and reported absent in the ID
        // registers: on a CPU without them the instruction is UNDEFINED.
        ExceptionClass::SveAccess | ExceptionClass::SmeAccess => undefined(vm, vcpu),
        // FP/SIMD trapped at EL2 only while the guest's own CPACR_EL1.FPEN traps (`cpacr.rs`):
        // the guest's EL1 takes it, as its FPEN says.
        ExceptionClass::FpAccess => fp_access(vm, vcpu, esr),
        _ => stop(&vm.config.name, &vcpu.frame, format_args!("unhandled trap")),
    }
}

/// Reflects a SIMD/FP access trap to the guest's EL1 at the trapped instruction.
fn fp_access(vm: &mut Vm, vcpu: &mut Vcpu, esr: Esr) -> Next {
    let el1 = guest::El1Regs::read();
    let iss = moat_arm::esr::FpAccessIss::decode(esr.iss());
    let ctx = el1.context(&vcpu.frame, vm.features);
    let entry = moat_vcpu::inject::inject_fp_access(&ctx, iss, esr.il());
    guest::enter(&mut vcpu.frame, &entry);
    Next::Resume
}

/// Injects an undefined instruction exception at the trapped instruction.
fn undefined(vm: &mut Vm, vcpu: &mut Vcpu) -> Next {
    let el1 = guest::El1Regs::read();
    let entry = moat_vcpu::inject::inject_undefined(&el1.context(&vcpu.frame, vm.features));
    guest::enter(&mut vcpu.frame, &entry);
    Next::Resume
}
