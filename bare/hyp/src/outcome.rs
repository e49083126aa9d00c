//! What follows an exit, and the VM's end with a decoded diagnostic when Moat has no outcome
//! for a trap: the vocabulary every exit handler answers in.

use crate::console::log;
use crate::power::EndStatus;
use core::fmt;
use moat_arm::esr::Esr;
use moat_vcpu::frame::TrapFrame;

/// What follows an exit.
#[must_use]
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

/// Stops VM `vm` with a decoded diagnostic of the trap in `frame`.
pub fn stop(vm: &str, frame: &TrapFrame, why: fmt::Arguments<'_>) -> Next {
    let f = frame;
    log!("VM '{vm}' stopped: {why}");
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
