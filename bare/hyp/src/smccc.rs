//! A guest's `HVC` or trapped `SMC` (`HCR_EL2.TSC`): served by `moat_vcpu::smccc` against the
//! VM's power states, its results written back, and what follows carried out.

use crate::console::log;
use crate::outcome::Next;
use crate::power::EndStatus;
use crate::vcpu::Vcpu;
use crate::vm::Vm;
use moat_arm::pstate::is_aarch32;
use moat_vcpu::smccc::{After, Call, serve};

/// Serves the call in `vcpu`'s registers; `imm16` is the instruction's immediate.
pub fn call(vm: &mut Vm, vcpu: &mut Vcpu, imm16: u16) -> Next {
    let f = &mut vcpu.frame;
    let call = Call {
        args: [f.x[0], f.x[1], f.x[2], f.x[3]],
        imm16,
        aarch32: is_aarch32(f.pstate),
    };
    let served = serve(call, vcpu.index, &mut vm.power);
    if let Some(results) = served.results {
        f.x[..4].copy_from_slice(&results);
    }
    match served.after {
        After::Resume => Next::Resume,
        After::Wait => Next::Wait,
        After::Start(_) => {
            vm.wake_cpus();
            Next::Resume
        }
        After::Off => Next::Off,
        After::SystemOff => {
            log!("VM '{}' powered off (PSCI SYSTEM_OFF)", vm.config.name);
            Next::End(EndStatus::PowerOff)
        }
        After::SystemReset => {
            log!(
                "VM '{}' asked for a reset (PSCI SYSTEM_RESET)",
                vm.config.name
            );
            Next::End(EndStatus::Reset)
        }
    }
}
