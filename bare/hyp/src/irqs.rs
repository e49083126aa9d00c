//! The interrupt side of exits: physical interrupts taken while the guest ran, and the guest's
//! `WFI`.

use crate::gic::{
    CpuInterface, KICK_SGI, PHYSICAL_TIMER_INTID, VIRTUAL_TIMER_INTID, console_intid,
    maintenance_intid,
};
use crate::outcome::Next;
use crate::vcpu::Vcpu;
use crate::vm::Vm;

/// The most physical interrupts served in one exit: every source Moat enables is silenced by
/// serving it, except the maintenance interrupt, which stays asserted until the list registers
/// are refilled before the next entry; the bound keeps a misbehaving source from holding the
/// CPU at EL2.
const MAX_PER_EXIT: usize = 8;

/// A physical IRQ routed to EL2: acknowledge and serve the pending ones, then resume (the
/// model's new pending interrupts reach the list registers before the next entry).
pub fn irq_exit(vm: &mut Vm, vcpu: &Vcpu, cpu: &mut CpuInterface) -> Next {
    let console = console_intid();
    let maintenance = maintenance_intid();
    for _ in 0..MAX_PER_EXIT {
        let Some(intid) = cpu.acknowledge() else {
            break;
        };
        match intid {
            VIRTUAL_TIMER_INTID | PHYSICAL_TIMER_INTID => {
                if let Some(gic) = vm.bus.gic() {
                    let kick = cpu.timer_fired(intid, gic, vcpu.index);
                    vm.kick(kick, vcpu.index);
                }
            }
            _ if intid == console => vm.console_input(vcpu.index),
            // A kick may also say that frames wait for this VM (`net`).
            KICK_SGI => vm.receive_frames(vcpu.index),
            // One of the VM's INTx lines (`vmpci::IntxLines`): left active for the guest, whose
            // deactivation of the virtual SPI (`HW` = 1) deactivates it.
            spi if spi >= 32 && vm.intx_fired(spi, vcpu.index) => {
                cpu.end_leaving_active(spi);
                continue;
            }
            // The SMMU's event queue or global errors: reported on Moat's console.
            spi if spi >= 32 && crate::smmu::serve(spi) => {}
            // The kick SGI has done its work by making this CPU exit; the maintenance
            // interrupt is answered by the sync and fill around the next entry.
            _ => {}
        }
        cpu.end(intid);
        // The maintenance interrupt (an EOI or underflow in the list registers) is level: it
        // stays asserted until the registers are read back and refilled around the next entry.
        if intid == maintenance {
            break;
        }
    }
    Next::Resume
}

/// The guest's `WFI` (`HCR_EL2.TWI`): it waits unless it has an interrupt its virtual CPU
/// interface would signal (`CpuInterface::wfi_ends`: one its priority mask, group enables or
/// running priority hold back does not end a `WFI` on hardware either, and resuming the guest
/// would only have it execute its `WFI` again, for ever). It then waits at EL2 for a physical
/// interrupt (its timer, the console, a kick from another vCPU), which the next entry turns
/// into the exit that delivers it. A guest that waits with nothing armed waits, as on
/// hardware. Without a GIC model, or without the machine's GIC to wake this CPU, there is
/// nothing to wait for: it completes at once.
pub fn wfi(vm: &Vm, vcpu: &Vcpu, cpu: Option<&CpuInterface>) -> Next {
    match (vm.bus.gic_ref(), cpu) {
        (Some(gic), Some(cpu)) if !cpu.wfi_ends(gic, vcpu.index) => Next::Wait,
        _ => Next::Resume,
    }
}
