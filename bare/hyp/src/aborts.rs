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
use moat_vcpu::abort::{Decision, GuestAbort, decide, plain_device_access};
use moat_vcpu::frame::TrapFrame;
use moat_vcpu::inject::{self, Abort, AbortAccess, AbortCause};
use moat_vcpu::insn::emulate::{A64Context, Aarch32Context};
use moat_vcpu::insn::{self, A64FrameRegs, Aarch32FrameRegs};
use moat_vcpu::mmio::{complete_load, decode_syndrome_access, size_mask};

/// Handles an instruction or data abort the guest took to EL2.
pub fn handle(vm: &mut Vm, vcpu: &mut Vcpu, esr: Esr) -> Next {
    let f = &vcpu.frame;
    let Some(abort) = GuestAbort::from_trap(f.esr, f.far, f.hpfar, f.pstate) else {
        return stop(
            &vm.config.name,
            &vcpu.frame,
            format_args!("abort without an abort syndrome"),
        );
    };
    let el1 = El1Regs::read();
    // The most frequent abort, an aligned one-register access to a device window, needs
    // nothing of the guest's memory (`plain_device_access` is held to `decide` by its tests).
    let view = vm.view(&el1);
    let decision = match plain_device_access(&abort, &view) {
        Some((device, offset)) => Decision::Emulate { device, offset },
        None => decide(&abort, &view, &trapped(vm, vcpu, &el1, &abort)),
    };
    match decision {
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
    entry.apply_to_frame(&mut vcpu.frame);
    guest::write_el1(&entry.sysreg_writes());
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

/// Data endianness of the trapped access: `SCTLR_EL1.EE` at EL1, `E0E` at EL0.
fn big_endian(frame: &TrapFrame, el1: &El1Regs) -> bool {
    const PSTATE_E: u64 = 1 << 9;
    if is_aarch32(frame.pstate) {
        return frame.pstate & PSTATE_E != 0;
    }
    let at_el0 = (frame.pstate >> 2) & 0b11 == 0;
    let bit = if at_el0 { 24 } else { 25 };
    el1.sctlr & (1 << bit) != 0
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
    let swap = big_endian(&vcpu.frame, el1);
    if let Some(access) = decode_syndrome_access(&iss, &vcpu.frame) {
        let write = access.write.map(|v| order(v, access.size, swap));
        let request = Access {
            offset,
            size: access.size,
            write,
        };
        let data = vm.device_access(device, request, vcpu.index);
        if access.write.is_none() {
            complete_load(&mut vcpu.frame, &access, order(data, access.size, swap));
        }
        vcpu.frame.advance_pc(esr.il());
        return Next::Resume;
    }
    emulate_instruction(vm, vcpu, abort, el1, Some(device), swap)
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
        if access.write.is_none() {
            complete_load(&mut vcpu.frame, &access, 0);
        }
        vcpu.frame.advance_pc(esr.il());
        return Next::Resume;
    }
    emulate_instruction(vm, vcpu, abort, el1, None, false)
}
