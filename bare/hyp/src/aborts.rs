//! Guest instruction and data aborts: the decision of SPEC §2 (`moat_vcpu::abort::decide`)
//! carried out — MMIO emulated (from the syndrome, or by decoding the instruction when
//! `ESR_EL2.ISV` = 0), exceptions injected exactly (`moat_vcpu::inject`), `AT` results written
//! to `PAR_EL1`, no-op cache maintenance skipped.

use crate::guest::{self, El1Regs, GuestRam, Instruction, TrappedGuest};
use crate::outcome::{Next, stop};
use crate::vcpu::Vcpu;
use crate::vm::Vm;
use moat_arm::esr::{DataAbortIss, Esr, ExceptionClass};
use moat_arm::pstate::{Spsr32, is_aarch32};
use moat_devices::Access;
use moat_vcpu::abort::{Decision, GuestAbort, decide};
use moat_vcpu::frame::TrapFrame;
use moat_vcpu::inject::{self, Abort, AbortAccess, AbortCause};
use moat_vcpu::insn::emulate::{A64Context, Aarch32Context};
use moat_vcpu::insn::{self, A64FrameRegs, Aarch32FrameRegs};
use moat_vcpu::mmio::{SyndromeAccess, complete_load, decode_syndrome_access, size_mask};
use moat_vcpu::plain_abort::{PlainAbort, PlainOutcome, decide_plain};

/// Handles an instruction or data abort the guest took to EL2.
pub fn handle(vm: &mut Vm, vcpu: &mut Vcpu, esr: Esr) -> Next {
    // The most frequent aborts, an aligned one-register access to a device window or to
    // nothing, need nothing of the guest's EL1 registers or memory (`decide_plain` is held to
    // `decide` by its tests).
    if let Some(plain) = decide_plain(&vcpu.frame, &vm.layout()) {
        return carry_out_plain(vm, vcpu, esr, &plain);
    }
    let f = &vcpu.frame;
    let Some(abort) = GuestAbort::from_trap(f.esr, f.far, f.hpfar, f.pstate) else {
        return stop(
            &vm.config.name,
            &vcpu.frame,
            format_args!("abort without an abort syndrome"),
        );
    };
    let el1 = El1Regs::read();
    let view = vm.view(&el1);
    match decide(&abort, &view, &trapped(vm, vcpu, &el1, &abort)) {
        Decision::Emulate { device, offset } => {
            emulate(vm, vcpu, esr, &abort, &el1, device, offset)
        }
        Decision::Inject(fault) => inject_abort(vm, vcpu, &el1, &fault),
        Decision::ReadAsZeroWriteIgnore => read_as_zero(vm, vcpu, esr, &abort, &el1),
        Decision::SkipInstruction => {
            vcpu.frame.advance_pc(esr.il());
            Next::Resume
        }
        Decision::AddressTranslationFault(cause) => {
            guest::write_par(inject::at_fault_par(
                &el1.context(&vcpu.frame, vm.features),
                cause,
            ));
            vcpu.frame.advance_pc(true);
            Next::Resume
        }
        Decision::Retry => Next::Resume,
        Decision::MapRam => stop(
            &vm.config.name,
            &vcpu.frame,
            format_args!("stage-2 translation fault inside RAM: Moat lost a mapping"),
        ),
        Decision::Unexpected(why) => stop(&vm.config.name, &vcpu.frame, format_args!("{why}")),
    }
}

/// Carries out a plain abort's outcome: the device access (the PC advanced past it), the
/// read-as-zero/write-ignore completion, or the injected external abort.
pub fn carry_out_plain(vm: &mut Vm, vcpu: &mut Vcpu, esr: Esr, plain: &PlainAbort) -> Next {
    match plain.outcome {
        PlainOutcome::Device { device, offset } => {
            let swap = big_endian(&vcpu.frame, guest::sctlr_el1());
            device_access(vm, vcpu, esr, device, offset, &plain.access, swap)
        }
        PlainOutcome::ReadAsZero => nothing_there(vcpu, esr, &plain.access),
        PlainOutcome::Inject => inject_plain(vm, vcpu, &plain.external_abort()),
    }
}

fn trapped<'a>(
    vm: &'a Vm,
    vcpu: &'a Vcpu,
    el1: &'a El1Regs,
    abort: &GuestAbort,
) -> TrappedGuest<'a> {
    TrappedGuest {
        mem: GuestRam {
            ram: &vm.ram,
            devices: &vm.device_windows,
        },
        el1,
        parange: vm.id_policy.parange,
        pc: vcpu.frame.pc,
        pstate: vcpu.frame.pstate,
        fetch: matches!(abort.access, AbortAccess::Instruction),
        arch: vm.config.arch,
    }
}

/// Injects `fault` as `AArch64.TakeException()` would take it.
fn inject_abort(vm: &mut Vm, vcpu: &mut Vcpu, el1: &El1Regs, fault: &Abort) -> Next {
    let entry = inject::inject_abort(&el1.context(&vcpu.frame, vm.features), fault);
    guest::enter(&mut vcpu.frame, &entry);
    Next::Resume
}

/// Injects `fault` (of a plain abort), reading only the EL1 registers exception entry needs:
/// the external data abort of an AArch64 guest through the VM's flattened entry
/// (`moat_vcpu::flat_entry`, held to the general injection by its tests), any other through
/// the general one.
#[inline(always)]
pub fn inject_plain(vm: &Vm, vcpu: &mut Vcpu, fault: &Abort) -> Next {
    if let Some(flat) = &vm.flat_abort
        && let (AbortAccess::Data { wnr, cm: false }, AbortCause::External) =
            (fault.access, fault.cause)
        && let Some(e) = flat.external_data_abort(
            vcpu.frame.pc,
            vcpu.frame.pstate,
            guest::sctlr_el1(),
            guest::vbar_el1(),
            fault.va.0,
            wnr,
        )
    {
        guest::enter_aarch64(&mut vcpu.frame, &e);
        return Next::Resume;
    }
    let entry = inject::inject_abort(&guest::entry_context(&vcpu.frame, vm.features), fault);
    guest::enter(&mut vcpu.frame, &entry);
    Next::Resume
}

/// The synchronous external abort a device access that cannot complete gets.
fn external_abort(vm: &mut Vm, vcpu: &mut Vcpu, el1: &El1Regs, abort: &GuestAbort) -> Next {
    let fault = Abort {
        access: abort.access,
        cause: AbortCause::External,
        va: abort.va,
    };
    inject_abort(vm, vcpu, el1, &fault)
}

/// The ISS of a data abort from a lower EL, decoded alone (not the whole `Syndrome`).
fn lower_data_abort(esr: Esr) -> Option<DataAbortIss> {
    (esr.ec() == ExceptionClass::DataAbortLower).then(|| DataAbortIss::decode(esr.iss()))
}

/// Data endianness of the trapped access: `SCTLR_EL1.EE` at EL1, `E0E` at EL0 (`sctlr` is
/// `SCTLR_EL1`); `PSTATE.E` for an AArch32 guest.
pub fn big_endian(frame: &TrapFrame, sctlr: u64) -> bool {
    const PSTATE_E: u64 = 1 << 9;
    if is_aarch32(frame.pstate) {
        return frame.pstate & PSTATE_E != 0;
    }
    let at_el0 = (frame.pstate >> 2) & 0b11 == 0;
    let bit = if at_el0 { 24 } else { 25 };
    sctlr & (1 << bit) != 0
}

/// Emulates a data access to device window `device`.
fn emulate(
    vm: &mut Vm,
    vcpu: &mut Vcpu,
    esr: Esr,
    abort: &GuestAbort,
    el1: &El1Regs,
    device: usize,
    offset: u64,
) -> Next {
    let Some(iss) = lower_data_abort(esr) else {
        return stop(
            &vm.config.name,
            &vcpu.frame,
            format_args!("device access from EL2's point of view not a lower-EL data abort"),
        );
    };
    let swap = big_endian(&vcpu.frame, el1.sctlr);
    if let Some(access) = decode_syndrome_access(&iss, &vcpu.frame) {
        return device_access(vm, vcpu, esr, device, offset, &access, swap);
    }
    emulate_instruction(vm, vcpu, abort, el1, Some(device), swap)
}

/// Performs the one-register `access` at `offset` in device window `device` (big-endian when
/// `swap`), writes a load's data to its register and advances the PC.
fn device_access(
    vm: &mut Vm,
    vcpu: &mut Vcpu,
    esr: Esr,
    device: usize,
    offset: u64,
    access: &SyndromeAccess,
    swap: bool,
) -> Next {
    let data = vm.device_access(device, request(offset, access, swap), vcpu.index);
    complete(vcpu, esr, access, data, swap)
}

/// The bus request of the one-register `access` at `offset` (big-endian when `swap`).
pub fn request(offset: u64, access: &SyndromeAccess, swap: bool) -> Access {
    Access {
        offset,
        size: access.size,
        write: access.write.map(|v| order(v, access.size, swap)),
    }
}

/// Completes the one-register `access` the device answered with `data` (big-endian when
/// `swap`): a load's register written, the PC advanced.
pub fn complete(vcpu: &mut Vcpu, esr: Esr, access: &SyndromeAccess, data: u64, swap: bool) -> Next {
    if access.write.is_none() {
        complete_load(&mut vcpu.frame, access, order(data, access.size, swap));
    }
    vcpu.frame.advance_pc(esr.il());
    Next::Resume
}

/// Byte order on the bus: a big-endian access reverses the bytes of the element.
fn order(value: u64, size: u8, big_endian: bool) -> u64 {
    if big_endian {
        (value.swap_bytes() >> (64 - 8 * u32::from(size))) & size_mask(size)
    } else {
        value
    }
}

/// An access without an instruction syndrome: decode the instruction and perform it against
/// `device` (or as read-as-zero/write-ignore when `None`).
fn emulate_instruction(
    vm: &mut Vm,
    vcpu: &mut Vcpu,
    abort: &GuestAbort,
    el1: &El1Regs,
    device: Option<usize>,
    swap: bool,
) -> Next {
    let Some(insn) = trapped(vm, vcpu, el1, abort).instruction() else {
        return external_abort(vm, vcpu, el1, abort);
    };
    let Some(fault_ipa) = abort.ipa else {
        return external_abort(vm, vcpu, el1, abort);
    };
    let (pc, far, pstate) = (vcpu.frame.pc, abort.va.0, vcpu.frame.pstate);
    let mut port = vm.device_port(device, vcpu.index, fault_ipa.0, far);
    let frame = &mut vcpu.frame;
    let result = match insn {
        Instruction::A64(word) => {
            let ctx = A64Context {
                pc,
                far,
                big_endian: swap,
            };
            let sp = guest::current_sp(pstate);
            let mut regs = A64FrameRegs { frame, sp };
            let result = insn::emulate_a64(word, &ctx, &mut regs, &mut port);
            if regs.sp != sp {
                guest::set_current_sp(pstate, regs.sp);
            }
            result
        }
        Instruction::A32(word) => {
            let (ctx, mut regs) = aarch32(frame, pc, far, pstate, swap);
            insn::emulate_a32(word, &ctx, &mut regs, &mut port)
        }
        Instruction::T32(hw1, hw2) => {
            let (ctx, mut regs) = aarch32(frame, pc, far, pstate, swap);
            insn::emulate_t32(hw1, hw2, &ctx, &mut regs, &mut port)
        }
    };
    let kick = port.kick;
    vm.kick(kick, vcpu.index);
    // A notification written by an emulated instruction may have transmitted frames.
    vm.send_frames();
    match result {
        Ok(done) => {
            vcpu.frame.pc = vcpu.frame.pc.wrapping_add(u64::from(done.length));
            Next::Resume
        }
        Err(_) => external_abort(vm, vcpu, el1, abort),
    }
}

/// The AArch32 emulation context and register view of the trapped guest.
fn aarch32(
    frame: &mut TrapFrame,
    pc: u64,
    far: u64,
    pstate: u64,
    big_endian: bool,
) -> (Aarch32Context, Aarch32FrameRegs<'_>) {
    const PSTATE_C: u64 = 1 << 29;
    // Truncations intended: an AArch32 guest's PC, FAR and CPSR are 32 bits.
    let ctx = Aarch32Context {
        pc: pc as u32,
        far: far as u32,
        big_endian,
        carry: pstate & PSTATE_C != 0,
    };
    let mode = Spsr32::new(pstate as u32).mode();
    (ctx, Aarch32FrameRegs { frame, mode })
}

/// A hole with the read-as-zero/write-ignore policy: loads return 0, stores vanish.
fn read_as_zero(vm: &mut Vm, vcpu: &mut Vcpu, esr: Esr, abort: &GuestAbort, el1: &El1Regs) -> Next {
    let Some(iss) = lower_data_abort(esr) else {
        return external_abort(vm, vcpu, el1, abort);
    };
    if let Some(access) = decode_syndrome_access(&iss, &vcpu.frame) {
        return nothing_there(vcpu, esr, &access);
    }
    emulate_instruction(vm, vcpu, abort, el1, None, false)
}

/// Completes a one-register `access` to read-as-zero/write-ignore: a load gets 0.
pub fn nothing_there(vcpu: &mut Vcpu, esr: Esr, access: &SyndromeAccess) -> Next {
    if access.write.is_none() {
        complete_load(&mut vcpu.frame, access, 0);
    }
    vcpu.frame.advance_pc(esr.il());
    Next::Resume
}
