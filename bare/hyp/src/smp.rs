//! Several vCPUs: each runs on its own physical CPU (vCPU `n` on physical CPU `n`), started
//! through the firmware's PSCI `CPU_ON` at Moat's secondary entry, with the boot CPU's EL2
//! translation and its own stack. Every CPU runs [`run_cpu`]: wait until its vCPU is powered on
//! (the boot vCPU at once, the others by the guest's PSCI `CPU_ON`), then enter the guest and
//! handle its exits with the shared [`VM`] locked — never across a guest run or a `WFI`.
//!
//! What is the machine's stays with the physical CPU: its GIC CPU interface and list registers
//! ([`CpuInterface`], owned by the CPU's loop), the machine's GIC (`gic.rs`). What is the VM's
//! is in the [`Vm`]; the vCPU's own state is in the [`Vcpu`] the loop holds.

use crate::console::log;
use crate::gic::{self, CpuInterface};
use crate::outcome::Next;
use crate::power::{self, EndStatus};
use crate::vcpu::Vcpu;
use crate::vm::{VM, Vm};
use crate::{boot, mm, switch};
use crate::{exits, fastpath};
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
    // sp = __secondary_stacks + (index + 1) * 64 KiB.
    "adrp x1, __secondary_stacks",
    "add x1, x1, :lo12:__secondary_stacks",
    "add x2, x0, #1",
    "lsl x2, x2, #16",
    "add x1, x1, x2",
    "mov sp, x1",
    "bl {main}",
    "1:",
    "wfe",
    "b 1b",
    sctlr_el2_res1 = const boot::SCTLR_EL2_RES1,
    vectors = sym crate::switch::moat_el2_vectors,
    main = sym moat_secondary,
);

unsafe extern "C" {
    fn moat_secondary_entry();
}

/// The most CPUs [`moat_secondary_entry`] has stacks for (`link.ld`).
const STACKS: usize = 8;

/// A secondary CPU's Rust entry: the EL2 translation, its GIC CPU interface, then its vCPU.
extern "C" fn moat_secondary(index: usize) -> ! {
    mm::enable_el2_translation_secondary();
    let irq = gic::init_cpu(index);
    if irq.is_none() {
        log!("CPU {index}: no GIC CPU interface: its vCPU gets no interrupts");
    }
    run_cpu(index, irq)
}

/// Puts `vm` where every CPU finds it, starts the physical CPUs its vCPUs need, and runs the
/// boot vCPU on this CPU, whose GIC interface is `irq`.
pub fn run(mut vm: Vm, irq: Option<CpuInterface>) -> ! {
    // The console's receive interrupt goes on once the guest's UART can take input.
    vm.console_input(0);
    let cpus = vm.config.cpus as usize;
    let mpidrs = vm.cpu_mpidrs;
    *VM.lock() = Some(vm);
    let entry = moat_secondary_entry as *const () as u64;
    for (index, &mpidr) in mpidrs.iter().enumerate().take(cpus.min(STACKS)).skip(1) {
        let status = power::firmware_cpu_on(mpidr, entry, index as u64);
        if status != 0 {
            log!("CPU {index} (MPIDR {mpidr:#x}) did not start: PSCI status {status}");
        }
    }
    run_cpu(0, irq)
}

/// Runs vCPU `index` on this CPU, through every power cycle the guest gives it.
fn run_cpu(index: usize, mut irq: Option<CpuInterface>) -> ! {
    let mut vcpu = Vcpu::new(index);
    loop {
        wait_for_power_on(&mut vcpu);
        if let Some(status) = run_until_off(&mut vcpu, irq.as_mut()) {
            power::end(status);
        }
    }
}

/// Waits (in `WFE`: a `CPU_ON` sends an event) until the vCPU is powered on, then sets it up.
fn wait_for_power_on(vcpu: &mut Vcpu) {
    loop {
        if let Some(vm) = VM.lock().as_mut()
            && let Some(start) = vm.power.take_start(vcpu.index)
        {
            vm.enter_at(vcpu, start);
            vm.configure_el2(vcpu);
            return;
        }
        aarch64_cpu::asm::wfe();
    }
}

/// Runs the vCPU until it is switched off (`None`) or the VM ends (`Some`). The VM is locked
/// once per exit: the list registers read back, the exit handled and, when the guest resumes
/// at once, its interrupts loaded for the next entry, in one critical section.
fn run_until_off(vcpu: &mut Vcpu, mut irq: Option<&mut CpuInterface>) -> Option<EndStatus> {
    with_vm(|vm| prepare_entry(vm, vcpu, irq.as_deref_mut()));
    loop {
        let vector = switch::enter_guest(&mut vcpu.frame);
        if fastpath::serve(vcpu, vector) {
            continue;
        }
        let next = with_vm(|vm| {
            if let Some(irq) = irq.as_deref() {
                vm.after_exit(vcpu, irq);
            }
            let next = exits::handle(vm, vcpu, irq.as_deref_mut(), vector);
            if matches!(next, Next::Resume) {
                prepare_entry(vm, vcpu, irq.as_deref_mut());
            }
            next
        });
        match next {
            Next::Resume => {}
            Next::Wait => {
                // SAFETY: waits for an interrupt with the VM unlocked; no memory is accessed.
                // PSTATE.I is set at EL2, so a pending IRQ wakes the CPU without being taken
                // here; the exit it causes after the next entry serves it.
                unsafe { core::arch::asm!("dsb sy", "wfi", options(nomem, nostack)) };
                with_vm(|vm| prepare_entry(vm, vcpu, irq.as_deref_mut()));
            }
            Next::Off => return None,
            Next::End(status) => return Some(status),
        }
    }
}

/// Loads what the vCPU must see on entry, when this CPU has a GIC interface to load it into.
fn prepare_entry(vm: &mut Vm, vcpu: &Vcpu, irq: Option<&mut CpuInterface>) {
    if let Some(irq) = irq {
        vm.before_entry(vcpu, irq);
    }
}

/// Runs `f` with the VM locked.
fn with_vm<R>(f: impl FnOnce(&mut Vm) -> R) -> R {
    let mut guard = VM.lock();
    let vm = guard.as_mut().expect("a vCPU runs only once its VM exists");
    f(vm)
}
