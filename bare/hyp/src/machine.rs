//! The machine's VMs: the table every physical CPU finds its VM in, which CPU runs which vCPU
//! (its seat), the console's input handed to the VM with the focus, and what follows the end of
//! a VM's run (`moat_config::lifecycle`): it halts alone, restarts alone, or the machine powers
//! off.
//!
//! Each VM has its own lock; a CPU holds at most one VM's lock at a time, and never while its
//! guest runs or waits, so a VM's exits never wait for another VM.

use crate::console::{self, log};
use crate::cpu;
use crate::gic::{self, CpuInterface};
use crate::lock::Lock;
use crate::platform::MAX_CPUS;
use crate::power::{self, EndStatus};
use crate::vm::{NetLink, Vm};
use alloc::vec::Vec;
use moat_config::lifecycle::{self, Action, Ledger, VmEnd};

/// The most VMs a machine runs: each needs a CPU of its own.
pub const MAX_VMS: usize = MAX_CPUS;

/// The VMs, by index; each shared by the physical CPUs that run its vCPUs and held only while
/// one of its exits is handled.
static VMS: [Lock<Option<Vm>>; MAX_VMS] = [const { Lock::new(None) }; MAX_VMS];

/// The VMs' ends so far.
static LEDGER: Lock<Ledger> = Lock::new(Ledger::new(0));

/// Where a physical CPU sits: the VM and the vCPU it runs.
#[derive(Clone, Copy, Debug)]
pub struct Seat {
    /// The VM's index.
    pub vm: usize,
    /// The vCPU's index in its VM.
    pub vcpu: usize,
}

/// Why a vCPU's run on its CPU is over.
pub enum Left {
    /// The guest switched the vCPU off (PSCI `CPU_OFF`).
    Off,
    /// The VM's run ended on this vCPU (its power-off, reset, or a stop).
    End(EndStatus),
    /// The VM's run ended on another vCPU, or the VM restarts: this one left at its next exit.
    Superseded,
}

/// Puts the VMs where every CPU finds them, shares the console among them and gives the
/// first VM the console's input.
pub fn install(mut vms: Vec<Vm>) {
    connect(&mut vms);
    let names: Vec<alloc::string::String> = vms.iter().map(|vm| vm.config.name.clone()).collect();
    console::share(names.iter().map(alloc::string::String::as_str));
    *LEDGER.lock() = Ledger::new(vms.len());
    for (slot, vm) in VMS.iter().zip(vms) {
        *slot.lock() = Some(vm);
    }
    hand_over_input();
}

/// Gives each VM's network windows their links' other ends. The system was validated (each
/// link names another VM, which names it back), so a missing end is a Moat bug.
fn connect(vms: &mut [Vm]) {
    let mut links = Vec::new();
    for (index, vm) in vms.iter().enumerate() {
        for (window, device) in vm.config.devices.iter().enumerate() {
            let Some(peer_name) = &device.link else {
                continue;
            };
            let peer = vms
                .iter()
                .position(|v| &v.config.name == peer_name)
                .expect("a validated link names a VM");
            let peer_window = vms[peer]
                .config
                .devices
                .iter()
                .position(|d| d.link.as_ref() == Some(&vm.config.name))
                .expect("a validated link is named back");
            let link = NetLink {
                window,
                peer,
                peer_window,
                peer_mpidr: vms[peer].cpu_mpidrs[0],
            };
            links.push((index, link));
        }
    }
    for (index, link) in links {
        vms[index].links.push(link);
    }
}

/// The seat of physical CPU `cpu`, if a VM runs a vCPU on it.
pub fn seat_of(cpu: usize) -> Option<Seat> {
    VMS.iter().enumerate().find_map(|(index, slot)| {
        let guard = slot.lock();
        let vm = guard.as_ref()?;
        let vcpu = vm
            .config
            .physical_cpus
            .iter()
            .position(|&p| p as usize == cpu)?;
        Some(Seat { vm: index, vcpu })
    })
}

/// Runs `f` with VM `vm` locked, if its run is still generation `generation`.
pub fn with_run<R>(vm: usize, generation: u32, f: impl FnOnce(&mut Vm) -> R) -> Option<R> {
    with_vm(vm, |vm| (vm.generation == generation).then(|| f(vm)))
}

/// Runs `f` with VM `vm` locked.
pub fn with_vm<R>(vm: usize, f: impl FnOnce(&mut Vm) -> R) -> R {
    let mut guard = VMS[vm].lock();
    let vm = guard.as_mut().expect("a seat names a VM that exists");
    f(vm)
}

/// Waits until the vCPU of `seat` is to start, then sets it up on this CPU; returns the
/// generation of the VM's run it joins. With a GIC interface the CPU waits in `WFI`, serving
/// the physical interrupts that reach it meanwhile (the console's receive interrupt among
/// them: the VMs still running keep their input when this CPU's VM has halted), and a
/// `CPU_ON` or a restart wakes it with the kick SGI (`Vm::wake_cpus`); without one, in `WFE`
/// (they also send an event). A CPU's pending interrupt ends `WFI` whatever `PSTATE.I`,
/// where `WFE` would wait on (Arm ARM, "Wait for Interrupt", "Wait for Event").
pub fn wait_for_start(seat: Seat, vcpu: &mut crate::vcpu::Vcpu, irq: Option<&CpuInterface>) -> u32 {
    loop {
        let started = with_vm(seat.vm, |vm| {
            let start = vm.power.take_start(seat.vcpu)?;
            if seat.vcpu == 0 {
                vm.take_intx_here();
            }
            vm.enter_at(vcpu, start);
            vm.configure_el2(vcpu);
            if vm.stop_at_next_exit && irq.is_some() {
                // The self-test stops the VM at its next exit that reaches the dispatcher, and
                // the exits a guest makes may all be served in place (`fastpath`): the CPU
                // kicks itself, so that the guest's first instruction is interrupted.
                if let Some(&mpidr) = vm.cpu_mpidrs.get(seat.vcpu) {
                    crate::gic::kick(mpidr);
                }
            }
            vm.in_guest = vm
                .in_guest
                .union(moat_devices::gic::VcpuSet::single(seat.vcpu));
            Some(vm.generation)
        });
        if let Some(generation) = started {
            return generation;
        }
        match irq {
            Some(irq) => {
                // SAFETY: waits for an interrupt; PSTATE.I is set at EL2, so a pending IRQ
                // wakes the CPU without being taken, and is served below. No memory.
                unsafe { core::arch::asm!("dsb sy", "wfi", options(nomem, nostack)) };
                serve(irq, Some(seat));
            }
            None => aarch64_cpu::asm::wfe(),
        }
    }
}

/// Acknowledges and ends the physical interrupts pending at this CPU while it runs no guest
/// (of `seat`'s VM, if it has a seat): the console's receive interrupt hands the input over; a
/// kick has done its work by waking; one of the seat's VM's INTx lines (its vCPU 0 is off,
/// the VM runs on) goes to the vCPUs its guest routes it to, left active for the guest to
/// deactivate.
fn serve(irq: &CpuInterface, seat: Option<Seat>) {
    while let Some(intid) = irq.acknowledge() {
        if intid == gic::console_intid() {
            hand_over_input();
        }
        let forwarded = seat
            .filter(|_| intid >= 32)
            .is_some_and(|seat| with_vm(seat.vm, |vm| vm.intx_fired(intid, seat.vcpu)));
        if forwarded {
            irq.end_leaving_active(intid);
            continue;
        }
        irq.end(intid);
    }
    if console::take_deferred_input() {
        hand_over_input();
    }
}

/// The vCPU of `seat` left its guest for `why` after a run of generation `generation`: its
/// CPU's interrupt state is cleared where the run is over for good, and the VM's end, if it
/// is one, is carried out. Returns when this CPU should wait for its vCPU's next start; does
/// not return when the machine powers off.
pub fn left(seat: Seat, generation: u32, why: Left, irq: Option<&mut CpuInterface>) {
    let switched_off = irq.is_some();
    if let Some(irq) = irq {
        if !matches!(why, Left::Off) {
            irq.release();
        }
        irq.switch_off_virtual();
    }
    with_vm(seat.vm, |vm| {
        vm.in_guest = vm.in_guest.without(seat.vcpu);
        // The model learns of the switch-off with it, so that the vCPU's next fill, on
        // whichever start, writes `En` again.
        if let (true, Some(gic)) = (switched_off, vm.bus.gic()) {
            gic.interface_switched_off(seat.vcpu);
        }
    });
    cpu::send_event();
    if let Left::End(status) = why {
        ended(seat, generation, status);
    }
}

/// Carries out the end of VM `seat.vm`'s run of generation `generation` with `status`.
fn ended(seat: Seat, generation: u32, status: EndStatus) {
    let end = match status {
        EndStatus::PowerOff => VmEnd::PowerOff,
        EndStatus::Reset => VmEnd::Reset,
        _ => VmEnd::Stopped,
    };
    let decided = with_run(seat.vm, generation, |vm| {
        let action = lifecycle::action(&vm.config, end);
        vm.halt();
        vm.running = action == Action::Restart;
        for other in vm.in_guest.iter() {
            gic::kick(vm.cpu_mpidrs[other]);
        }
        (action, vm.config.name.clone())
    });
    // Another vCPU ended this run first: its end is the VM's.
    let Some((action, name)) = decided else {
        return;
    };
    let machine_end = LEDGER.lock().record(end, action);
    if let Some(machine_end) = machine_end {
        console::status_line(format_args!("MOAT-VM: {name} {}", end.word()));
        for (index, slot) in VMS.iter().enumerate() {
            if index != seat.vm
                && let Some(other) = slot.lock().as_ref()
                && other.running
            {
                console::status_line(format_args!("MOAT-VM: {} machine-off", other.config.name));
            }
        }
        let vm_ram: alloc::vec::Vec<(u64, u64)> = VMS
            .iter()
            .filter_map(|slot| {
                let guard = slot.lock();
                let vm = guard.as_ref()?;
                Some(
                    vm.ram
                        .iter()
                        .map(|b| (b.pa.0, b.size))
                        .collect::<alloc::vec::Vec<_>>(),
                )
            })
            .flatten()
            .collect();
        crate::isolation::verify(&vm_ram);
        power::end(match machine_end {
            VmEnd::PowerOff => EndStatus::PowerOff,
            VmEnd::Reset => EndStatus::Reset,
            VmEnd::Stopped => EndStatus::VmStopped,
        });
    }
    match action {
        Action::Halt => {
            log!("VM '{name}' halted; the other VMs run on");
            console::status_line(format_args!("MOAT-VM: {name} {}", end.word()));
        }
        Action::Restart => {
            console::status_line(format_args!("MOAT-VM: {name} restart"));
            // Every vCPU of the run leaves its guest at its next exit (kicked above).
            while !with_vm(seat.vm, |vm| vm.in_guest.is_empty()) {
                aarch64_cpu::asm::wfe();
            }
            with_vm(seat.vm, |vm| {
                vm.restart();
                vm.wake_cpus();
            });
            log!("VM '{name}' restarts from its images");
        }
        Action::EndMachine => unreachable!("the ledger ends the machine for this action"),
    }
}

/// Hands the console's waiting input to the VM with the focus (the caller holds no VM).
pub fn hand_over_input() {
    let focus = console::focus();
    if let Some(slot) = VMS.get(focus)
        && let Some(vm) = slot.lock().as_mut()
    {
        vm.console_input(usize::MAX);
    }
}

/// A physical CPU no VM runs on: it serves the console's receive interrupt, which the GIC
/// routes to the boot CPU, and otherwise sleeps.
pub fn idle(irq: Option<CpuInterface>) -> ! {
    loop {
        // SAFETY: waits for an interrupt; PSTATE.I is set at EL2, so a pending IRQ wakes the
        // CPU without being taken, and is acknowledged below. No memory is accessed.
        unsafe { core::arch::asm!("dsb sy", "wfi", options(nomem, nostack)) };
        if let Some(irq) = irq.as_ref() {
            serve(irq, None);
        }
    }
}
