//! Runs one probing instruction in a chosen mode and comes back to a fixed recovery point,
//! whatever happens.
//!
//! The trampoline `moat32_enter` (SVC mode) pushes the callee-saved registers, stores its stack
//! pointer in `moat32_saved_sp`, zeroes `DFSR`, `IFSR`, `DFAR` and `IFAR` (so a field no exception
//! writes reads 0, not a previous case's value), and enters the snippet by an exception return
//! from Undefined mode (`MOVS PC, LR` with `SPSR_und` = the case's `CPSR`: its mode, `T` for
//! T32, every other bit 0): the interrupted `CPSR` that lands in `SPSR_<mode>` is the same in
//! every run. `SPSR_svc` holds [`SPSR_SVC_SENTINEL`] meanwhile: QEMU leaves the current mode's
//! SPSR stale across an exception a hypervisor injects (TOOLCHAIN.md), and entering from SVC
//! mode with `SPSR_svc` = the case's `CPSR` would make that stale value right by accident for
//! SVC cases; this way the departure shows as what it is. A snippet is the probing instruction, then `SVC #MARK`. Whatever exception comes, the
//! vector stub (`start.rs`) calls [`moat32_record`] and returns from the trampoline; the
//! `SVC #MARK` alone means the access completed.

use core::arch::global_asm;
use core::cell::UnsafeCell;

use crate::{psci, regs};
use moat_guest_probe32::kinds::{CPSR_T, MARK, REF_IMM, Snippet};
use moat_guest_probe32::line::Record;

global_asm!(
    r#"
    .pushsection .text.moat32_probe, "ax"
    .arm
    .balign 4
    // r0 = target, r1 = value to store, r2 = snippet, r3 = CPSR for it.
    .global moat32_enter
moat32_enter:
    push    {{r4-r11, lr}}
    ldr     r4, =moat32_saved_sp
    str     sp, [r4]
    mov     r4, #0
    mcr     p15, 0, r4, c5, c0, 0   // DFSR
    mcr     p15, 0, r4, c5, c0, 1   // IFSR
    mcr     p15, 0, r4, c6, c0, 0   // DFAR
    mcr     p15, 0, r4, c6, c0, 2   // IFAR
    isb
    movw    r4, #{SENTINEL}
    msr     spsr_fsxc, r4           // SPSR_svc = a value no case's CPSR has (see the module doc)
    cps     #0x1b                   // Undefined mode: enter the snippet from there
    msr     spsr_fsxc, r3           // SPSR_und = the case's CPSR
    mov     lr, r2
    mov     r2, r1                  // LDRD/STRD/LDM pair: r2 = r3 = the store value
    mov     r3, r1
    movs    pc, lr                  // into the snippet, CPSR = SPSR_und
    .ltorg

    .macro moat32_snippet name
    .balign 4
    .global moat32_\name
moat32_\name:
    .endm

    .arm
    moat32_snippet ldr
    ldr     r0, [r0]
    svc     #{MARK}
    moat32_snippet ldrb
    ldrb    r0, [r0]
    svc     #{MARK}
    moat32_snippet ldrh
    ldrh    r0, [r0]
    svc     #{MARK}
    moat32_snippet ldrd
    ldrd    r2, r3, [r0]
    mov     r0, r2
    svc     #{MARK}
    moat32_snippet str
    str     r1, [r0]
    svc     #{MARK}
    moat32_snippet strd
    strd    r2, r3, [r0]
    svc     #{MARK}
    moat32_snippet ldm
    ldm     r0, {{r2, r3}}
    mov     r0, r2
    svc     #{MARK}
    moat32_snippet fetch
    bx      r0                      // the probed instruction is the one at r0 (ARM state)
    moat32_snippet bkpt
    bkpt    #{REF}
    moat32_snippet udf
    udf     #{REF}

    .thumb
    moat32_snippet ldr_t16
    ldr     r0, [r0]
    svc     #{MARK}
    moat32_snippet ldr_t32
    ldr.w   r0, [r0]
    svc     #{MARK}
    moat32_snippet str_t16
    str     r1, [r0]
    svc     #{MARK}
    moat32_snippet fetch_t
    bx      r0                      // r0 = target | 1: T32 state at the target
    moat32_snippet bkpt_t16
    bkpt    #{REF}
    moat32_snippet udf_t16
    udf     #{REF}
    .arm
    .popsection
"#,
    MARK = const MARK,
    REF = const REF_IMM,
    SENTINEL = const SPSR_SVC_SENTINEL,
);

/// What `SPSR_svc` holds while a snippet runs: System mode with A, I, F masked, a state no case
/// runs in. The snippet is entered from Undefined mode, so `SPSR_svc` cannot equal the case's
/// `CPSR` by construction.
pub const SPSR_SVC_SENTINEL: u32 = 0x1df;

unsafe extern "C" {
    fn moat32_enter(target: u32, value: u32, snippet: u32, cpsr: u32);
}

/// The snippet's address (that of its probing instruction; bit 0 clear also for T32).
pub fn address(snippet: Snippet) -> u32 {
    unsafe extern "C" {
        fn moat32_ldr();
        fn moat32_ldrb();
        fn moat32_ldrh();
        fn moat32_ldrd();
        fn moat32_str();
        fn moat32_strd();
        fn moat32_ldm();
        fn moat32_fetch();
        fn moat32_bkpt();
        fn moat32_udf();
        fn moat32_ldr_t16();
        fn moat32_ldr_t32();
        fn moat32_str_t16();
        fn moat32_fetch_t();
        fn moat32_bkpt_t16();
        fn moat32_udf_t16();
    }
    let entry: unsafe extern "C" fn() = match snippet {
        Snippet::Ldr => moat32_ldr,
        Snippet::Ldrb => moat32_ldrb,
        Snippet::Ldrh => moat32_ldrh,
        Snippet::Ldrd => moat32_ldrd,
        Snippet::Str => moat32_str,
        Snippet::Strd => moat32_strd,
        Snippet::Ldm => moat32_ldm,
        Snippet::Fetch => moat32_fetch,
        Snippet::Bkpt => moat32_bkpt,
        Snippet::Udf => moat32_udf,
        Snippet::LdrT16 => moat32_ldr_t16,
        Snippet::LdrT32 => moat32_ldr_t32,
        Snippet::StrT16 => moat32_str_t16,
        Snippet::FetchT => moat32_fetch_t,
        Snippet::BkptT16 => moat32_bkpt_t16,
        Snippet::UdfT16 => moat32_udf_t16,
    };
    (entry as usize as u32) & !1
}

/// The one record of the running case (single CPU; written by the vector path, read after
/// `moat32_enter` returns).
struct Slot(UnsafeCell<Option<Record>>);

// SAFETY: the probe runs on one CPU with interrupts masked; the slot is written only by the
// vector path of the running case and read only after the trampoline returned.
unsafe impl Sync for Slot {}

static RECORD: Slot = Slot(UnsafeCell::new(None));

/// The trampoline's stack pointer while a case runs, 0 otherwise (read by the vector path).
#[unsafe(no_mangle)]
static mut moat32_saved_sp: u32 = 0;

/// Called by the vector path in SVC mode on the trampoline's stack: stores the exception. Outside
/// a case, prints it and powers off.
#[unsafe(no_mangle)]
extern "C" fn moat32_record(cpsr: u32, vector: u32, lr: u32, spsr: u32, r0: u32) {
    let record = Record {
        vector,
        cpsr,
        lr,
        spsr,
        dfsr: regs::dfsr(),
        dfar: regs::dfar(),
        ifsr: regs::ifsr(),
        ifar: regs::ifar(),
        r0,
    };
    // SAFETY: single CPU, interrupts masked: nothing else accesses the static now.
    let in_case = unsafe { core::ptr::read_volatile(&raw const moat32_saved_sp) } != 0;
    if !in_case {
        crate::println!("MOAT-PROBE-ERROR unexpected exception outside a case: {record:x?}");
        psci::system_off();
    }
    // SAFETY: see `Slot`: the running case's trampoline reads it only after this returns.
    unsafe { *RECORD.0.get() = Some(record) };
}

/// Whether `record` is the `SVC #MARK` that ends a snippet whose access completed.
fn is_completion(record: &Record) -> bool {
    if record.vector != 0x08 {
        return false;
    }
    // The SVC's encoding, just before LR_svc: T32 `SVC #imm8` (0xdfxx), A32 `SVC #imm24`.
    // SAFETY: LR_svc follows an SVC the CPU just executed from identity-mapped RAM (snippets
    // run from the probe's own image), so the bytes before it are readable code.
    unsafe {
        if record.spsr & CPSR_T != 0 {
            let insn = core::ptr::read_volatile((record.lr - 2) as *const u16);
            u32::from(insn) == 0xdf00 | MARK
        } else {
            let insn = core::ptr::read_volatile((record.lr - 4) as *const u32);
            insn == 0xef00_0000 | MARK
        }
    }
}

/// What one run of a snippet gave.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// Only the completion `SVC` came: the access completed; r0 at its end.
    Completed(u32),
    /// The exception the case took.
    Exception(Record),
}

/// Runs `snippet` with r0 = `target`, r1 = `value`, entered with `CPSR` = `cpsr`.
pub fn run(snippet: Snippet, target: u32, value: u32, cpsr: u32) -> Outcome {
    // SAFETY: single CPU: no record is pending between cases.
    unsafe { *RECORD.0.get() = None };
    // SAFETY: the trampoline saves the callee-saved registers and LR on the SVC stack and enters
    // a snippet above, which touches only r0..r3 and never SP or memory of ours (its one access
    // goes to `target`, which the caller checked is not the image, its stacks or the device
    // tree). Every way out of a snippet is an exception, whose vector path stores the record and
    // returns from the trampoline on the saved stack, restoring the registers it pushed.
    unsafe { moat32_enter(target, value, address(snippet), cpsr) };
    // SAFETY: single CPU; the vector path has returned.
    unsafe { core::ptr::write_volatile(&raw mut moat32_saved_sp, 0) };
    // SAFETY: as above.
    let record = unsafe { *RECORD.0.get() };
    match record {
        Some(record) if is_completion(&record) => Outcome::Completed(record.r0),
        Some(record) => Outcome::Exception(record),
        None => unreachable!("every snippet ends in an exception"),
    }
}
