//! Exits answered without the VM: the guest's SMCCC calls whose answer depends on no VM state
//! (`PSCI_VERSION`, `PSCI_FEATURES`, `SMCCC_VERSION`, `MIGRATE_INFO_TYPE`, an unimplemented
//! function's `NOT_SUPPORTED`; `moat_vcpu::smccc::answer_without_vm` decides which), served
//! before the VM is locked, and without reading back or loading the list registers.
//!
//! Skipping the list registers keeps every rule of the general path: such a call changes
//! nothing the GIC model holds, and whatever changes this vCPU's interrupts meanwhile (another
//! vCPU's SGI or register write, a device line, its timer, the guest consuming a list register
//! with a maintenance interrupt requested) makes this CPU take a physical interrupt, whose exit
//! takes the general path and syncs. Every other exit, and every call that touches power
//! states, goes the general path (`exits.rs`) unchanged.

use crate::vcpu::Vcpu;
use moat_arm::esr::{CallIss, Esr, ExceptionClass};
use moat_arm::pstate::is_aarch32;
use moat_vcpu::frame::ExitVector;
use moat_vcpu::smccc::answer_without_vm;

/// Serves the exit in `vcpu`'s frame if it is a call answered without the VM; `true` when it
/// was (the guest resumes at once).
pub fn serve(vcpu: &mut Vcpu, vector: ExitVector) -> bool {
    if vector != ExitVector::Synchronous {
        return false;
    }
    let esr = Esr::new(vcpu.frame.esr);
    // HVC: ELR_EL2 points after the instruction; a trapped SMC64 (HCR_EL2.TSC): at the SMC.
    // An AArch32 SMC may carry a failed condition (`CCKNOWNPASS`): the general path has it.
    let is_smc = match esr.ec() {
        ExceptionClass::Hvc64 | ExceptionClass::Hvc32 => false,
        ExceptionClass::Smc64 => true,
        _ => return false,
    };
    let f = &mut vcpu.frame;
    let aarch32 = is_aarch32(f.pstate);
    let Some(x) = f.x.first_chunk_mut::<4>() else {
        return false;
    };
    if !answer_without_vm(x, CallIss::decode(esr.iss()).imm16, aarch32) {
        return false;
    }
    if is_smc {
        f.advance_pc(true);
    }
    true
}
