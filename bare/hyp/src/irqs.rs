//! The interrupt side of exits: physical interrupts taken while the guest ran, the guest's
//! WFI, its SGIs (`ICC_SGI1R_EL1` writes, trapped because `HCR_EL2.IMO` is set), and the
//! console's received bytes flowing into the guest's UART.

use crate::console;
use crate::devices::Devices;
use crate::exits::Next;
use crate::gic::{MAINTENANCE_INTID, PHYSICAL_TIMER_INTID, UART_INTID, VIRTUAL_TIMER_INTID};
use crate::vcpu::Vcpu;
use crate::vm::Vm;
use moat_arm::esr::{Direction, Esr, SysRegIss};

/// The most physical interrupts served in one exit: every source Moat enables is silenced by
/// serving it, except the maintenance interrupt, which stays asserted until the list registers
/// are refilled before the next entry; the bound keeps a misbehaving source from holding the
/// CPU at EL2.
const MAX_PER_EXIT: usize = 8;

/// A physical IRQ routed to EL2: acknowledge and serve the pending ones, then resume (the
/// model's new pending interrupts reach the list registers before the next entry).
pub fn irq_exit(vm: &mut Vm, vcpu: &mut Vcpu) -> Next {
    let Some(irq) = vm.irq.as_mut() else {
        return Next::Resume;
    };
    for _ in 0..MAX_PER_EXIT {
        let Some(intid) = irq.acknowledge() else {
            break;
        };
        match (intid, vm.devices.gic.as_mut()) {
            (VIRTUAL_TIMER_INTID | PHYSICAL_TIMER_INTID, Some(gic)) => {
                irq.timer_fired(intid, gic, vcpu.index)
            }
            (UART_INTID, _) => pull_console_input(&mut vm.devices),
            _ => {}
        }
        irq.end(intid);
        // The maintenance interrupt (an EOI or underflow in the list registers) is level: it
        // stays asserted until the registers are read back and refilled around the next entry.
        if intid == MAINTENANCE_INTID {
            break;
        }
    }
    Next::Resume
}

/// Moves bytes received on the console into the guest's UART while it has room, and keeps the
/// console's receive interrupt on only while there is room.
pub fn pull_console_input(devices: &mut Devices) {
    let Some(uart) = devices.uart() else {
        return;
    };
    let mut level = None;
    while uart.rx_has_room() {
        let Some(byte) = console::receive() else {
            break;
        };
        level = uart.push_rx(byte).then(|| uart.interrupt_level());
    }
    console::set_receive_interrupt(uart.rx_has_room());
    if let (Some(level), Some(gic)) = (level, devices.gic.as_mut()) {
        gic.set_spi_level(UART_INTID, level);
    }
}

/// Whether the guest's WFI must wait: it has no interrupt to take. It then waits at EL2 for a
/// physical interrupt (its timer, the console, a kick from another vCPU), which the next entry
/// turns into the exit that delivers it. A guest that waits with nothing armed waits, as on
/// hardware.
pub fn must_wait(vm: &Vm, vcpu: &Vcpu) -> bool {
    let deliverable = vm
        .devices
        .gic
        .as_ref()
        .is_none_or(|gic| gic.has_deliverable(vcpu.index));
    !deliverable && vm.irq.is_some()
}

/// Makes the physical CPUs of `targets` exit their guests (or leave their `WFI`) so that they
/// load their new virtual interrupts.
pub fn kick(vm: &Vm, targets: moat_devices::gic::VcpuSet) {
    for target in targets.iter() {
        if let Some(&mpidr) = vm.cpu_mpidrs.get(target) {
            crate::gic::kick(mpidr);
        }
    }
}

/// `ICC_SGI1R_EL1`, `ICC_ASGI1R_EL1`, `ICC_SGI0R_EL1` (`op0` 3, `op1` 0, `CRn` 12, `CRm` 11,
/// `op2` 5, 6, 7): the guest sends an SGI. `None` for another register.
pub fn sgi_register(vm: &mut Vm, vcpu: &mut Vcpu, esr: Esr, iss: &SysRegIss) -> Option<Next> {
    let is_sgi_space = iss.op0 == 3 && iss.op1 == 0 && iss.crn == 12 && iss.crm == 11;
    if !is_sgi_space || iss.direction != Direction::Write || !(5..=7).contains(&iss.op2) {
        return None;
    }
    let value = vcpu.frame.reg(iss.rt);
    if let Some(gic) = vm.devices.gic.as_mut() {
        let targets = match iss.op2 {
            5 => gic.send_sgi(vcpu.index, value),
            7 => gic.send_sgi0(vcpu.index, value),
            // ICC_ASGI1R_EL1 names the other Security state's Group 1: none exists for a guest.
            _ => moat_devices::gic::VcpuSet::EMPTY,
        };
        kick(vm, targets.without(vcpu.index));
    }
    vcpu.frame.advance_pc(esr.il());
    Some(Next::Resume)
}
