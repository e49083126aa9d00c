//! The world switch and Moat's EL2 exception vectors.
//!
//! [`enter_guest`] saves Moat's callee-saved registers on its stack, loads the guest's
//! registers from a [`TrapFrame`] and `ERET`s. When the guest traps, the lower-EL vector saves
//! the guest's registers and the trap state (`ELR_EL2`, `SPSR_EL2`, `ESR_EL2`, `FAR_EL2`,
//! `HPFAR_EL2`) into the same frame, restores Moat's registers and returns from `enter_guest`
//! with the kind of vector taken. The frame's address lives in `TPIDR_EL2` while the guest runs.
//!
//! Exceptions taken from EL2 itself are Moat bugs: their vectors save Moat's registers and call
//! [`el2_fault`], which prints a diagnostic and powers the machine off.

use crate::fastpath::Resident;
use crate::power::{self, EndStatus};
use crate::stacks;
use aarch64_cpu::registers::{ELR_EL2, ESR_EL2, FAR_EL2, Readable, SP_EL0, SPSR_EL2};
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, Ordering};
use moat_arm::esr::ExceptionClass;
use moat_vcpu::frame::{ExitVector, OFFSET_ESR, OFFSET_HPFAR, OFFSET_PC, TrapFrame};

unsafe extern "C" {
    /// The vector table (`VBAR_EL2`), 2 KiB aligned.
    pub fn moat_el2_vectors();
    fn moat_guest_enter(frame: *mut TrapFrame, resident: *mut core::ffi::c_void) -> u64;
}

/// Runs the guest of `resident`'s vCPU until it takes an exit that is not served in place
/// (`fastpath`); its frame then holds the guest's state and the trap's syndrome.
pub fn enter_guest(resident: &mut Resident) -> ExitVector {
    // SAFETY: `moat_guest_enter` saves and restores every callee-saved register and the stack
    // pointer around the guest's run, and writes only through the frame, derived from the
    // `Resident`'s vCPU pointer, which the run loop made from its exclusive borrow of the vCPU
    // for this call; the in-place service it calls uses the `Resident`'s pointers in turn and
    // returns the same frame. The stage-2 and trap configuration that confines the guest is in
    // place before the first entry (`vm::Vm::run`).
    let raw = unsafe {
        let frame = core::ptr::addr_of_mut!((*resident.vcpu).frame);
        moat_guest_enter(frame, core::ptr::from_mut(resident).cast())
    };
    ExitVector::from_raw(raw).unwrap_or_else(|| panic!("world switch returned vector kind {raw}"))
}

global_asm!(
    // `serve_in_place handler`: x3 = the register the exit writes (19 for any). Calls
    // `handler` (an in-place service of `fastpath`) with the `Resident`, after saving x19..x29
    // to the frame where x3 is one of them, and enters the guest again if it served the exit
    // (reloading only what the frame holds when they stayed in the CPU); else goes to the run
    // loop.
    ".macro serve_in_place handler",
    "sub x3, x3, #19",
    "cmp x3, #11",
    "b.lo 9f",
    "ldr x0, [sp, #96]",
    "bl \\handler",
    "cbnz x0, moat_guest_resume_partial",
    "mov x30, xzr",
    "b 4f",
    "9:",
    "bl 6f",
    "ldr x0, [sp, #96]",
    "bl \\handler",
    "cbnz x0, moat_guest_resume",
    "mov x30, xzr",
    "b 4f",
    ".endm",
    // x0 = the frame, x1 = the `Resident`. Save Moat's callee-saved registers (AAPCS64:
    // x19..x29, x30 = return) and the `Resident` (at sp + 96) where the exit finds them.
    ".section .text.switch, \"ax\"",
    ".global moat_guest_enter",
    "moat_guest_enter:",
    "stp x19, x20, [sp, #-{saved}]!",
    "stp x21, x22, [sp, #16]",
    "stp x23, x24, [sp, #32]",
    "stp x25, x26, [sp, #48]",
    "stp x27, x28, [sp, #64]",
    "stp x29, x30, [sp, #80]",
    "str x1, [sp, #96]",
    "msr tpidr_el2, x0",
    // x0 = the frame: load the guest's registers and enter it (also the in-place return).
    "moat_guest_resume:",
    "ldp x19, x20, [x0, #152]",
    "ldp x21, x22, [x0, #168]",
    "ldp x23, x24, [x0, #184]",
    "ldp x25, x26, [x0, #200]",
    "ldp x27, x28, [x0, #216]",
    "ldr x29, [x0, #232]",
    // x0 = the frame of a guest whose x19..x29 are in the CPU: reload the rest and enter it.
    "moat_guest_resume_partial:",
    "ldp x1, x2, [x0, #{pc}]",
    "msr elr_el2, x1",
    "msr spsr_el2, x2",
    "ldp x2, x3, [x0, #16]",
    "ldp x4, x5, [x0, #32]",
    "ldp x6, x7, [x0, #48]",
    "ldp x8, x9, [x0, #64]",
    "ldp x10, x11, [x0, #80]",
    "ldp x12, x13, [x0, #96]",
    "ldp x14, x15, [x0, #112]",
    "ldp x16, x17, [x0, #128]",
    "ldr x18, [x0, #144]",
    "ldr x30, [x0, #240]",
    "ldp x0, x1, [x0, #0]",
    "eret",
    // No speculation past the ERET.
    "dsb nsh",
    "isb",
    // The common exit: the vector pushed the guest's x0/x1 and put the vector kind in x1.
    "moat_guest_exit:",
    "mrs x0, tpidr_el2",
    "stp x2, x3, [x0, #16]",
    "stp x4, x5, [x0, #32]",
    "stp x6, x7, [x0, #48]",
    "stp x8, x9, [x0, #64]",
    "stp x10, x11, [x0, #80]",
    "stp x12, x13, [x0, #96]",
    "stp x14, x15, [x0, #112]",
    "stp x16, x17, [x0, #128]",
    "str x18, [x0, #144]",
    "str x30, [x0, #240]",
    "mov x30, x1",
    "ldp x2, x3, [sp], #16",
    "stp x2, x3, [x0, #0]",
    "mrs x2, elr_el2",
    "mrs x3, spsr_el2",
    "stp x2, x3, [x0, #{pc}]",
    "mrs x2, esr_el2",
    "mrs x3, far_el2",
    "stp x2, x3, [x0, #{esr}]",
    "mrs x3, hpfar_el2",
    "str x3, [x0, #{hpfar}]",
    // The frame holds all but x19..x29, which still hold the guest's values. A synchronous
    // exit of the classes `fastpath` serves in place (`ESR_EL2.EC`: HVC, SMC64, a lower-EL
    // data abort, a trapped MRS) goes to its AAPCS64 function on Moat's stack below the
    // saved registers, which preserves x19..x29 and returns the frame to enter again, or 0 for
    // the run loop. `in_place_call` reads and writes no register but x0..x3; `in_place_abort`
    // and `in_place_mrs` none but the one the syndrome names (a data abort's SRT, with
    // `ESR_EL2.ISV` = 1, in bits [20:16], the abort refusing the injections that write an
    // AArch32 EL1's banked LR; an MRS's `Rt`, bits [9:5]), so where that is not one of x19..x29
    // they stay in the CPU, otherwise (or without a syndrome) they go to the frame first. A
    // served exit then reloads only what the frame holds (`moat_guest_resume_partial`) or
    // everything.
    "cbnz x30, 4f",
    "ubfx x3, x2, #26, #6",
    "cmp x3, #{ec_dabt}",
    "b.eq 2f",
    "cmp x3, #{ec_hvc64}",
    "ccmp x3, #{ec_smc64}, #4, ne",
    "ccmp x3, #{ec_hvc32}, #4, ne",
    "b.eq 8f",
    // A trapped MRS (`Direction` = 1, ISS bit 0) goes to `in_place_mrs`; an MSR or system
    // instruction to the run loop.
    "cmp x3, #{ec_sysreg}",
    "b.ne 4f",
    "tbz x2, #0, 4f",
    "ubfx x3, x2, #5, #5",
    "serve_in_place {in_place_mrs}",
    "8:",
    "ldr x0, [sp, #96]",
    "bl {in_place_call}",
    "cbnz x0, moat_guest_resume_partial",
    "mov x30, xzr",
    "b 4f",
    "2:",
    "tbz x2, #24, 1f",
    "ubfx x3, x2, #16, #5",
    "serve_in_place {in_place_abort}",
    // Without a syndrome the function may write any register: x19..x29 go to the frame.
    "1:",
    "mov x3, #19",
    "serve_in_place {in_place_abort}",
    // For the run loop (x30 = the vector kind): the frame gets x19..x29 (again, after a
    // refusal that saved them: the same values), Moat's registers come back.
    "4:",
    "mov x1, x30",
    "mrs x0, tpidr_el2",
    "bl 6f",
    "mov x0, x1",
    "ldp x21, x22, [sp, #16]",
    "ldp x23, x24, [sp, #32]",
    "ldp x25, x26, [sp, #48]",
    "ldp x27, x28, [sp, #64]",
    "ldp x29, x30, [sp, #80]",
    "ldp x19, x20, [sp], #{saved}",
    "ret",
    // x0 = the frame: the guest's x19..x29 into it (x0 and x1 kept).
    "6:",
    "stp x19, x20, [x0, #152]",
    "stp x21, x22, [x0, #168]",
    "stp x23, x24, [x0, #184]",
    "stp x25, x26, [x0, #200]",
    "stp x27, x28, [x0, #216]",
    "str x29, [x0, #232]",
    "ret",
    // An exception from EL2 itself: save x0..x30 and call `el2_fault(kind, regs)`.
    "moat_el2_fault_entry:",
    "sub sp, sp, #256",
    "stp x2, x3, [sp, #16]",
    "stp x4, x5, [sp, #32]",
    "stp x6, x7, [sp, #48]",
    "stp x8, x9, [sp, #64]",
    "stp x10, x11, [sp, #80]",
    "stp x12, x13, [sp, #96]",
    "stp x14, x15, [sp, #112]",
    "stp x16, x17, [sp, #128]",
    "stp x18, x19, [sp, #144]",
    "stp x20, x21, [sp, #160]",
    "stp x22, x23, [sp, #176]",
    "stp x24, x25, [sp, #192]",
    "stp x26, x27, [sp, #208]",
    "stp x28, x29, [sp, #224]",
    "str x30, [sp, #240]",
    "ldp x2, x3, [sp, #256]",
    "stp x2, x3, [sp, #0]",
    "mov x0, x1",
    "mov x1, sp",
    "bl {fault}",
    "b .",
    // The vector table: 16 entries of 0x80 bytes (Arm ARM D1.3.1, "Exception vectors").
    ".balign 0x800",
    ".global moat_el2_vectors",
    "moat_el2_vectors:",
    // Current EL with SP_EL0: never taken (Moat runs with `SPSel` = 1), a Moat bug if it is.
    ".irp kind, 0, 1, 2, 3",
    ".balign 0x80",
    "stp x0, x1, [sp, #-16]!",
    "mov x1, #\\kind",
    "b moat_el2_fault_entry",
    ".endr",
    // Current EL with SP_ELx: Moat's own faults. The stack may be the one that overflowed
    // into its guard page, so nothing is pushed on it: the faulting SP goes to SP_EL0 (the
    // guest's, lost: Moat powers off after a fault at EL2), x0 and x1 to the EL0 thread ID
    // registers (the same), and SP becomes the CPU's emergency stack, its slot found from the
    // faulting SP (`stacks.rs`; an SP outside every slot is clamped into one). `SPSel` stays
    // 1, so a fault while reporting comes back here and lands on the same emergency stack.
    ".irp kind, 4, 5, 6, 7",
    ".balign 0x80",
    "msr tpidr_el0, x0",
    "msr tpidrro_el0, x1",
    "mov x0, sp",
    "msr sp_el0, x0",
    "adrp x1, __stacks",
    "add x1, x1, :lo12:__stacks",
    "sub x0, x0, x1",
    "lsr x0, x0, #{slot_shift}",
    "and x0, x0, #{cpu_mask}",
    "add x0, x0, #1",
    "lsl x0, x0, #{emergency_shift}",
    "adrp x1, __emergency_stacks",
    "add x1, x1, :lo12:__emergency_stacks",
    "add x0, x0, x1",
    "mov sp, x0",
    "mrs x0, tpidr_el0",
    "mrs x1, tpidrro_el0",
    "stp x0, x1, [sp, #-16]!",
    "mov x1, #\\kind",
    "b moat_el2_fault_entry",
    ".endr",
    // Lower EL using AArch64, then lower EL using AArch32: the guest.
    ".irp kind, 0, 1, 2, 3, 0, 1, 2, 3",
    ".balign 0x80",
    "stp x0, x1, [sp, #-16]!",
    "mov x1, #\\kind",
    "b moat_guest_exit",
    ".endr",
    pc = const OFFSET_PC,
    esr = const OFFSET_ESR,
    hpfar = const OFFSET_HPFAR,
    saved = const 112,
    in_place_call = sym crate::fastpath::in_place_call,
    in_place_abort = sym crate::fastpath::in_place_abort,
    in_place_mrs = sym crate::fastpath::in_place_mrs,
    ec_dabt = const ExceptionClass::DataAbortLower.code(),
    ec_sysreg = const ExceptionClass::SysReg.code(),
    ec_hvc64 = const ExceptionClass::Hvc64.code(),
    ec_hvc32 = const ExceptionClass::Hvc32.code(),
    ec_smc64 = const ExceptionClass::Smc64.code(),
    fault = sym el2_fault,
    slot_shift = const stacks::SLOT_SHIFT,
    cpu_mask = const stacks::CPUS - 1,
    emergency_shift = const stacks::EMERGENCY.trailing_zeros(),
);

/// Whether an exception at EL2 is being reported.
static REPORTING: AtomicBool = AtomicBool::new(false);

/// An exception Moat took from EL2 itself: always a Moat bug. Reports and powers off; a data
/// abort in a stack's guard page is reported as that CPU's stack overflow.
extern "C" fn el2_fault(kind: u64, regs: &[u64; 31]) -> ! {
    let names = ["synchronous", "IRQ", "FIQ", "SError"];
    let name = names.get((kind % 4) as usize).copied().unwrap_or("?");
    // A fault while reporting one (on this CPU or another) goes straight to the power-off.
    if REPORTING.swap(true, Ordering::AcqRel) {
        power::end(EndStatus::Panic)
    }
    let esr = ESR_EL2.get();
    let far = FAR_EL2.get();
    let syndrome = moat_arm::esr::Esr::new(esr);
    if kind == 4
        && syndrome.ec() == ExceptionClass::DataAbortSame
        && let Some(cpu) = stacks::guard_holding(far)
    {
        crate::console::emergency_write(format_args!(
            "moat: BUG: EL2 stack overflow on CPU {cpu}: FAR_EL2={far:#x} is in its guard page; ELR_EL2={:#x} SP={:#x} x30={:#x}",
            ELR_EL2.get(),
            SP_EL0.get(),
            regs[30],
        ));
        power::end(EndStatus::Panic)
    }
    // The vectors of SP_EL2 exceptions leave the faulting SP in SP_EL0 (above).
    let stack = if kind < 4 {
        "on the emergency stack"
    } else {
        "SP_EL2"
    };
    crate::console::emergency_write(format_args!(
        "moat: BUG: {name} exception at EL2 ({stack}): ESR_EL2={esr:#x} ({}) FAR_EL2={far:#x} ELR_EL2={:#x} SPSR_EL2={:#x} x30={:#x} SP={:#x}",
        syndrome.decode(),
        ELR_EL2.get(),
        SPSR_EL2.get(),
        regs[30],
        if kind < 4 {
            regs as *const _ as u64
        } else {
            SP_EL0.get()
        },
    ));
    power::end(EndStatus::Panic)
}
