//! The exits served without reading back or loading the list registers, in place: the exit
//! vector (`switch.rs`) calls [`in_place_call`], [`in_place_mrs`] or [`in_place_abort`] for
//! their exception classes and enters the guest again without returning to the run loop.
//!
//! - [`call`]: the guest's SMCCC calls whose answer depends on no VM state (`PSCI_VERSION`,
//!   `PSCI_FEATURES`, `SMCCC_VERSION`, `MIGRATE_INFO_TYPE`, an unimplemented function's
//!   `NOT_SUPPORTED`; `moat_vcpu::smccc::answer_without_vm` decides which), before the VM is
//!   locked;
//! - a trapped `MRS` of an ID register (`HCR_EL2.TID3`), answered from the vCPU's table
//!   (`sysregs::read_id_register`) before the VM is locked;
//! - [`abort`]: the plain aborts (`moat_vcpu::plain_abort`: an aligned one-register access with
//!   a valid syndrome) with the VM locked — the external abort injected for an access to
//!   nothing, read-as-zero/write-ignore, a UART access whose interrupt line did not change, and
//!   a read of a GIC register that reads the same before and after the list registers are read
//!   back (`moat_devices::gic::GicWindow`: all but the pending and active registers).
//!
//! Skipping the list registers keeps every rule of the general path: such an exit changes
//! nothing the GIC model holds, and whatever changes this vCPU's interrupts meanwhile (another
//! vCPU's SGI or register write, a device line, its timer, the guest consuming a list register
//! with a maintenance interrupt requested) makes this CPU take a physical interrupt, whose exit
//! takes the general path and syncs. A UART access that changes its line, or finds console
//! input waiting for room, syncs before the GIC model is told; a GIC register read changes
//! nothing; a write to the GIC, a read of its pending or active state, an access to any other
//! device (virtio-net), and every other exit, go the general path (`exits.rs`), whose
//! decisions are the same.

use crate::aborts;
use crate::console;
use crate::exits::with_interrupts;
use crate::gic::CpuInterface;
use crate::guest;
use crate::machine;
use crate::outcome::Next;
use crate::sysregs;
use crate::vcpu::Vcpu;
use crate::vm::Vm;
use moat_arm::esr::{CallIss, Esr, ExceptionClass, SysRegIss};
use moat_arm::pstate::is_aarch32;
use moat_devices::bus::InPlace;
use moat_devices::gic::VcpuSet;
use moat_devices::{Access, MmioDevice};
use moat_vcpu::frame::TrapFrame;
use moat_vcpu::plain_abort::{PlainOutcome, decide_plain};
use moat_vcpu::smccc::answer_without_vm;

/// The vCPU a physical CPU runs, as the exit vector finds it to serve a synchronous exit in
/// place (this module) without returning to the run loop. Raw pointers: the run loop
/// builds one from its own exclusive borrows for each `switch::enter_guest`, and nothing else uses
/// those borrows until it returns.
#[repr(C)]
pub struct Resident {
    /// The vCPU, its frame the one the guest runs from.
    pub vcpu: *mut Vcpu,
    /// This CPU's GIC interface, or null without one.
    pub irq: *mut CpuInterface,
    /// The VM's index (`machine::with_run`).
    pub vm: usize,
    /// The generation of the VM's run the vCPU belongs to.
    pub generation: u32,
}

/// Serves the SMCCC call (`HVC`, `SMC64`) in `resident`'s vCPU frame in place, called by the
/// exit vector (`switch.rs`) for those exception classes before it returns to the run loop, if
/// [`call`] answers it without the VM. Returns the frame the guest resumes from, or null when
/// the exit is the run loop's (nothing was done then: the general path, which makes every
/// check, takes it from the start).
pub extern "C" fn in_place_call(resident: &mut Resident) -> *mut TrapFrame {
    // SAFETY: the run loop made `resident` from its exclusive borrow of the vCPU for the
    // guest's run (`switch::enter_guest`), and nothing else touches it until the vector
    // returns to the run loop.
    let frame = unsafe { &mut (*resident.vcpu).frame };
    let esr = Esr::new(frame.esr);
    // HVC: ELR_EL2 points after the instruction; a trapped SMC64 (HCR_EL2.TSC): at the SMC.
    // An AArch32 SMC may carry a failed condition (`CCKNOWNPASS`): the general path has it.
    let served = match esr.ec() {
        ExceptionClass::Hvc64 | ExceptionClass::Hvc32 => call(frame, esr, false),
        ExceptionClass::Smc64 => call(frame, esr, true),
        _ => false,
    };
    if served { frame } else { core::ptr::null_mut() }
}

/// Serves the trapped `MRS` in `resident`'s vCPU frame in place, called by the exit vector
/// for that exception class and direction, if it reads an ID register
/// ([`sysregs::read_id_register`]: from the vCPU's table, without the VM). It writes no
/// general-purpose register of the frame but `Rt` (the exit vector relies on it); returns the
/// frame the guest resumes from, or null when the exit is the run loop's (nothing was done
/// then).
pub extern "C" fn in_place_mrs(resident: &mut Resident) -> *mut TrapFrame {
    // SAFETY: the run loop made `resident` from its exclusive borrow of the vCPU for the
    // guest's run (`switch::enter_guest`), and nothing else touches it until the vector
    // returns to the run loop.
    let vcpu = unsafe { &mut *resident.vcpu };
    let esr = Esr::new(vcpu.frame.esr);
    if sysregs::read_id_register(vcpu, esr, &SysRegIss::decode(esr.iss())) {
        &raw mut vcpu.frame
    } else {
        core::ptr::null_mut()
    }
}

/// Serves the lower-EL data abort in `resident`'s vCPU frame in place, called by the exit
/// vector for that exception class, if it is a plain abort ([`abort`]) and the VM's run is
/// still the vCPU's generation, with the VM locked. It reads and writes no general-purpose
/// register of the frame but the syndrome's `SRT` (the exit vector relies on it); returns the
/// frame the guest resumes from, or null when the exit is the run loop's (nothing was done
/// then). Console input deferred by a focus switch is handed over after the exit, as the run
/// loop does.
pub extern "C" fn in_place_abort(resident: &mut Resident) -> *mut TrapFrame {
    // SAFETY: the run loop made `resident` from its exclusive borrows of the vCPU and of this
    // CPU's GIC interface for the guest's run (`switch::enter_guest`), and nothing else
    // touches them until the vector returns to the run loop.
    let (vcpu, irq) = unsafe { (&mut *resident.vcpu, resident.irq.as_mut()) };
    let served = machine::with_run(resident.vm, resident.generation, |vm| abort(vm, vcpu, irq));
    if served != Some(true) {
        return core::ptr::null_mut();
    }
    if console::take_deferred_input() {
        machine::hand_over_input();
    }
    &raw mut vcpu.frame
}

/// Answers the SMCCC call (an `SMC` when `is_smc`) in `frame` if no VM state is needed;
/// `true` when it was (the guest resumes at once).
#[inline(always)]
fn call(frame: &mut TrapFrame, esr: Esr, is_smc: bool) -> bool {
    let aarch32 = is_aarch32(frame.pstate);
    let Some(x) = frame.x.first_chunk_mut::<4>() else {
        return false;
    };
    if !answer_without_vm(x, CallIss::decode(esr.iss()).imm16, aarch32) {
        return false;
    }
    if is_smc {
        frame.advance_pc(true);
    }
    true
}

/// Serves the exit in `vcpu`'s frame if it is a plain abort (`vm` locked by the caller; `irq`
/// this CPU's GIC interface); `true` when it was (the guest resumes at once),
/// `false`, with nothing done, for every other exit, which the general path takes.
fn abort(vm: &mut Vm, vcpu: &mut Vcpu, irq: Option<&mut CpuInterface>) -> bool {
    let esr = Esr::new(vcpu.frame.esr);
    let Some(plain) = decide_plain(&vcpu.frame, &vm.layout()) else {
        return false;
    };
    let next = match plain.outcome {
        PlainOutcome::Device { device, offset } => {
            let swap = aborts::big_endian(&vcpu.frame, guest::sctlr_el1());
            let request = aborts::request(offset, &plain.access, swap);
            match serve_device(vm, vcpu, irq, device, request) {
                Ok(data) => aborts::complete(vcpu, esr, &plain.access, data, swap),
                Err(irq) => with_interrupts(vm, vcpu, irq, |vm, vcpu, _| {
                    aborts::carry_out_plain(vm, vcpu, esr, &plain)
                }),
            }
        }
        PlainOutcome::ReadAsZero => aborts::nothing_there(vcpu, esr, &plain.access),
        // An AArch32 EL1's exception entry writes the new mode's banked LR into the frame
        // (`R14_abt` is `X20`), which the exit vector does not reload after an in-place exit:
        // the general path, with the whole frame, injects it. Nothing was done yet.
        PlainOutcome::Inject if vm.features.el1_aarch32 => return false,
        PlainOutcome::Inject => aborts::inject_plain(vm, vcpu, &plain.external_abort()),
    };
    // Every plain outcome completes or injects: the guest resumes.
    assert!(
        matches!(next, Next::Resume),
        "a plain abort's outcome is not to resume"
    );
    true
}

/// The one-register `request` to device window `device`, when it is served here: any access
/// to a UART, or a read of a GIC register that reads the same whether or not the list
/// registers are read back first (`VirtGic::read_unsynced`). Otherwise nothing is accessed
/// and `irq` is handed back for the general path. Returns the data a read gives. The list
/// registers are read back and loaded only when a UART access changed the UART's line or
/// console input waits for room.
fn serve_device<'a>(
    vm: &mut Vm,
    vcpu: &mut Vcpu,
    irq: Option<&'a mut CpuInterface>,
    device: usize,
    request: Access,
) -> Result<u64, Option<&'a mut CpuInterface>> {
    let (data, effects) = match vm.bus.in_place(device) {
        Some(InPlace::Uart(model)) => model.access(request),
        Some(InPlace::Gic(gic, window)) => {
            return gic.read_unsynced(window, vcpu.index, request).ok_or(irq);
        }
        None => return Err(irq),
    };
    if let Some(byte) = effects.console_out {
        console::guest_byte(vm.id, byte);
    }
    if effects.irq_level.is_some() || !effects.kick.is_empty() || console::receive_paused() {
        // The GIC model learns what the guest did with its list registers before the line.
        let _ = with_interrupts(vm, vcpu, irq, |vm, vcpu, _| {
            let line = effects
                .irq_level
                .map_or(VcpuSet::EMPTY, |l| vm.bus.uart_line(l));
            vm.kick(line.union(effects.kick), vcpu.index);
            if console::receive_paused() {
                // The guest may have made room in its receive FIFO: take what the console holds.
                vm.console_input(vcpu.index);
            }
            Next::Resume
        });
    }
    Ok(data)
}
