//! The EL1 vector table (`VBAR_EL1`, Arm ARM "Exception vectors"): 16 entries of 0x80 bytes in
//! a 2 KiB-aligned table. Every entry saves X0/X1, passes its own offset, and branches to one
//! common path that saves the rest of the [`ExceptionFrame`] (X0..X30, `ELR_EL1`, `SPSR_EL1`) on
//! SP_EL1, calls `moat_rt_handle_exception(vector, &mut frame)`, restores the frame (a handler may
//! have changed it, e.g. advanced ELR) and returns with `ERET`. `moat_rt_handle_exception`
//! captures the [`ExceptionRecord`], logs it and offers it to the hook.
//!
//! An exception to EL1 always runs on SP_EL1 (`PSTATE.SP` = 1 on entry), whichever group of
//! entries it arrives at, so one stack serves all of them.

use core::arch::global_asm;
use core::mem::{offset_of, size_of};

use super::{DEPTH, ExceptionFrame, ExceptionRecord, HOOK, PstateAtEntry, Resume, VectorOffset};
use crate::{println, psci, running, sysreg};

const _: () = assert!(
    size_of::<ExceptionFrame>().is_multiple_of(16),
    "SP stays 16-byte aligned"
);
const _: () = assert!(offset_of!(ExceptionFrame, x) == 0);

global_asm!(
    r#"
    .macro moat_rt_vector offset
    .balign 0x80
    sub     sp, sp, #{FRAME_SIZE}
    stp     x0, x1, [sp, #0]
    mov     x0, #\offset
    b       moat_rt_exception_common
    .endm

    .pushsection .text.vectors, "ax"
    .balign 0x800
    .global moat_rt_vectors
moat_rt_vectors:
    moat_rt_vector 0x000            // current EL, SP_EL0: synchronous
    moat_rt_vector 0x080            //                     IRQ
    moat_rt_vector 0x100            //                     FIQ
    moat_rt_vector 0x180            //                     SError
    moat_rt_vector 0x200            // current EL, SP_ELx: synchronous
    moat_rt_vector 0x280            //                     IRQ
    moat_rt_vector 0x300            //                     FIQ
    moat_rt_vector 0x380            //                     SError
    moat_rt_vector 0x400            // lower EL, AArch64:  synchronous
    moat_rt_vector 0x480            //                     IRQ
    moat_rt_vector 0x500            //                     FIQ
    moat_rt_vector 0x580            //                     SError
    moat_rt_vector 0x600            // lower EL, AArch32:  synchronous
    moat_rt_vector 0x680            //                     IRQ
    moat_rt_vector 0x700            //                     FIQ
    moat_rt_vector 0x780            //                     SError

    .balign 0x80
moat_rt_exception_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x2, elr_el1
    mrs     x3, spsr_el1
    str     x30, [sp, #240]
    stp     x2, x3, [sp, #{ELR}]
    mov     x1, sp
    bl      moat_rt_handle_exception
    ldp     x2, x3, [sp, #{ELR}]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    ldr     x30, [sp, #240]
    ldp     x28, x29, [sp, #224]
    ldp     x26, x27, [sp, #208]
    ldp     x24, x25, [sp, #192]
    ldp     x22, x23, [sp, #176]
    ldp     x20, x21, [sp, #160]
    ldp     x18, x19, [sp, #144]
    ldp     x16, x17, [sp, #128]
    ldp     x14, x15, [sp, #112]
    ldp     x12, x13, [sp, #96]
    ldp     x10, x11, [sp, #80]
    ldp     x8, x9, [sp, #64]
    ldp     x6, x7, [sp, #48]
    ldp     x4, x5, [sp, #32]
    ldp     x2, x3, [sp, #16]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #{FRAME_SIZE}
    eret
    .popsection
"#,
    FRAME_SIZE = const size_of::<ExceptionFrame>(),
    ELR = const offset_of!(ExceptionFrame, elr),
);

const _: () = assert!(offset_of!(ExceptionFrame, spsr) == offset_of!(ExceptionFrame, elr) + 8);
const _: () = assert!(offset_of!(ExceptionFrame, elr) == 248, "X0..X30 come first");

/// Called by the vector code with the entry's offset and the saved registers; returns only if
/// the exception was claimed (the vector code then restores `frame` and `ERET`s).
#[unsafe(no_mangle)]
extern "C" fn moat_rt_handle_exception(vector: u64, frame: &mut ExceptionFrame) {
    let pstate = PstateAtEntry::capture();
    let record = ExceptionRecord {
        vector: VectorOffset(vector as u16),
        esr: sysreg::esr_el1(),
        far: sysreg::far_el1(),
        elr: frame.elr,
        spsr: frame.spsr,
        pstate,
    };
    let depth = DEPTH.get() + 1;
    DEPTH.set(depth);
    super::log(record);
    let resume = match HOOK.get() {
        Some(hook) if depth == 1 => hook(&record, frame),
        _ => Resume::No,
    };
    if resume == Resume::No {
        unexpected(&record, depth);
    }
    DEPTH.set(depth - 1);
}

/// Reports an exception nobody claimed and powers off. An exception inside a handler is not
/// offered to the hook, and a third level (the report itself faulting) powers off silently.
fn unexpected(record: &ExceptionRecord, depth: u32) -> ! {
    if depth <= 2 {
        println!(
            "MOAT-TEST fail {}: unexpected exception vector={:#05x} ESR={:#x} FAR={:#x} ELR={:#x} \
             SPSR={:#x}",
            running::current(),
            record.vector.0,
            record.esr,
            record.far,
            record.elr,
            record.spsr
        );
    }
    psci::system_off()
}
