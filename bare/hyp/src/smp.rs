//! The physical CPUs: each runs one vCPU of one VM (its seat: vCPU `n` of a VM on the `n`-th
//! CPU its description lists), started through the firmware's PSCI `CPU_ON` at Moat's
//! secondary entry, with the boot CPU's EL2 translation and its own stack; a CPU no VM names
//! idles. Every CPU runs [`run_cpu`]: wait until its vCPU is started (the boot vCPU at once,
//! the others by the guest's PSCI `CPU_ON`), then enter the guest and handle its exits with its
//! VM locked — never across a guest run or a `WFI` — until the vCPU leaves: switched off, or
//! its VM's run over (`machine.rs` carries out what follows).
//!
//! What is the machine's stays with the physical CPU: its GIC CPU interface and list registers
//! ([`CpuInterface`], owned by the CPU's loop), the machine's GIC (`gic.rs`). What is the VM's
//! is in the [`Vm`]; the vCPU's own state is in the [`Vcpu`] the loop holds.

use crate::console::{self, log};
use crate::exits;
use crate::gic::{self, CpuInterface};
use crate::machine::{self, Left, Seat};
use crate::outcome::Next;
use crate::power;
use crate::vcpu::Vcpu;
use crate::vm::Vm;
use crate::{boot, mm, stacks, switch};
use alloc::vec::Vec;
use core::arch::global_asm;

global_asm!(
    ".section .text.secondary, \"ax\"",
    ".global moat_secondary_entry",
    // x0 = the CPU index (the CPU_ON context). MMU off, at EL2, like the boot CPU.
    "moat_secondary_entry:",
    "ldr x1, ={sctlr_el2_res1}",
    "msr sctlr_el2, x1",
    "isb",
    "adrp x1, {vectors}",
    "add x1, x1, :lo12:{vectors}",
    "msr vbar_el2, x1",
    // sp = __stacks + (index + 1) * SLOT: the top of the CPU's slot (`stacks.rs`).
    "adrp x1, __stacks",
    "add x1, x1, :lo12:__stacks",
    "add x2, x0, #1",
    "lsl x2, x2, #{slot_shift}",
    "add x1, x1, x2",
    "mov sp, x1",
    "bl {main}",
    "1:",
    "wfe",
    "b 1b",
    sctlr_el2_res1 = const boot::SCTLR_EL2_RES1,
    vectors = sym crate::switch::moat_el2_vectors,
    main = sym moat_secondary,
    slot_shift = const stacks::SLOT_SHIFT,
);

unsafe extern "C" {
    fn moat_secondary_entry();
}

/// The most CPUs [`moat_secondary_entry`] has stacks for (`link.ld`).
const STACKS: usize = stacks::CPUS;

/// A secondary CPU's Rust entry: the EL2 translation, its GIC CPU interface, then its vCPU.
extern "C" fn moat_secondary(index: usize) -> ! {
    mm::enable_el2_translation_secondary();
    let irq = gic::init_cpu(index);
    if irq.is_none() {
        log!("CPU {index}: no GIC CPU interface: its vCPU gets no interrupts");
    }
    run_cpu(index, irq)
}

/// Puts the VMs where every CPU finds them, starts the physical CPUs their vCPUs sit on
/// (`cpus`: the machine's CPUs' MPIDRs, CPU 0 being this one), and runs this CPU's vCPU, whose
/// GIC interface is `irq`.
pub fn run(vms: Vec<Vm>, cpus: &[u64], irq: Option<CpuInterface>) -> ! {
    machine::install(vms);
    let entry = moat_secondary_entry as *const () as u64;
    for (index, &mpidr) in cpus.iter().enumerate().take(STACKS).skip(1) {
        if machine::seat_of(index).is_none() {
            continue;
        }
        let status = power::firmware_cpu_on(mpidr, entry, index as u64);
        if status != 0 {
            log!("CPU {index} (MPIDR {mpidr:#x}) did not start: PSCI status {status}");
        }
    }
    run_cpu(0, irq)
}

/// Runs physical CPU `index`'s vCPU through every power cycle and restart its VM gives it; a
/// CPU without a vCPU idles.
fn run_cpu(index: usize, mut irq: Option<CpuInterface>) -> ! {
    let Some(seat) = machine::seat_of(index) else {
        machine::idle(irq)
    };
    let mut vcpu = Vcpu::new(seat.vcpu);
    loop {
        let generation = machine::wait_for_start(seat, &mut vcpu, irq.as_ref());
        let why = run_until_left(seat, generation, &mut vcpu, irq.as_mut());
        machine::left(seat, generation, why, irq.as_mut());
    }
}

/// Runs the vCPU until it leaves its guest. The VM is locked once per exit: the list registers
/// read back, the exit handled and, when the guest resumes at once, its interrupts loaded for
/// the next entry, in one critical section. A vCPU whose VM's run ended elsewhere (halted or
/// restarting) leaves at its next exit.
fn run_until_left(
    seat: Seat,
    generation: u32,
    vcpu: &mut Vcpu,
    mut irq: Option<&mut CpuInterface>,
) -> Left {
    let prepared = machine::with_run(seat.vm, generation, |vm| {
        exits::prepare_entry(vm, vcpu, irq.as_deref_mut());
        Next::Resume
    });
    if prepared.is_none() {
        return Left::Superseded;
    }
    loop {
        // The fast exits are served in place, inside the exit vector (`fastpath::in_place`):
        // what comes back here is for the general path.
        let mut resident = crate::fastpath::Resident {
            vcpu: &raw mut *vcpu,
            irq: irq
                .as_deref_mut()
                .map_or(core::ptr::null_mut(), |irq| &raw mut *irq),
            vm: seat.vm,
            generation,
        };
        let vector = switch::enter_guest(&mut resident);
        let next = machine::with_run(seat.vm, generation, |vm| {
            exits::with_interrupts(vm, vcpu, irq.as_deref_mut(), |vm, vcpu, irq| {
                exits::handle(vm, vcpu, irq, vector)
            })
        });
        if console::take_deferred_input() {
            machine::hand_over_input();
        }
        match next {
            None => return Left::Superseded,
            Some(Next::Resume) => {}
            Some(Next::Wait) => {
                console::idle(seat.vm);
                // SAFETY: waits for an interrupt with the VM unlocked; no memory is accessed.
                // PSTATE.I is set at EL2, so a pending IRQ wakes the CPU without being taken
                // here; the exit it causes after the next entry serves it.
                unsafe { core::arch::asm!("dsb sy", "wfi", options(nomem, nostack)) };
                let prepared = machine::with_run(seat.vm, generation, |vm| {
                    exits::prepare_entry(vm, vcpu, irq.as_deref_mut());
                    Next::Resume
                });
                if prepared.is_none() {
                    return Left::Superseded;
                }
            }
            Some(Next::Off) => return Left::Off,
            Some(Next::End(status)) => return Left::End(status),
        }
    }
}
