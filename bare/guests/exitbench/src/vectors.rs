//! The benchmark's own EL1 vector table (`VBAR_EL1`, Arm ARM "Exception vectors"), installed
//! only inside a timed asm block and replaced by the runtime's (`moat_rt_vectors`) before the
//! block ends.
//!
//! Why not the runtime's vectors: they save all 31 registers, call Rust, read PSTATE, `ESR_EL1`
//! and `FAR_EL1` and consult a hook — well over a hundred instructions that would be counted in
//! every bare figure and hide what the hypervisor adds. Here an exception costs what a lean
//! kernel's fast path costs, so `brk` (the guest's own exception round trip) is the floor:
//!
//! - synchronous, current EL with SP_EL1 (BRK, the injected or real external abort, an
//!   UNDEFINED `SMC`): step over the instruction (`ELR_EL1` + 4), count it in X27, keep
//!   `ESR_EL1` in X28;
//! - IRQ, current EL with SP_EL1: acknowledge (`ICC_IAR1_EL1`), keep the INTID in X25, silence
//!   the virtual timer (`CNTV_CTL_EL0` = 0) if it was its PPI, end it (`ICC_EOIR1_EL1`), count
//!   it in X26;
//! - every other entry branches to the runtime's entry at the same offset, which reports it as
//!   an unexpected exception and powers off.
//!
//! The handlers use X17 as scratch and X25..X28 as results: every timed block declares them
//! clobbered. No handler touches memory or the stack.

use core::arch::global_asm;

/// The EL1 virtual timer's PPI (the device tree's `/timer` node, and GICv3's INTID 27).
pub const VIRTUAL_TIMER_INTID: u32 = 27;

global_asm!(
    r#"
    .macro exitbench_forward offset
    .balign 0x80
    b       moat_rt_vectors + \offset
    .endm

    .pushsection .text.exitbench_vectors, "ax"
    .balign 0x800
    .global exitbench_vectors
exitbench_vectors:
    exitbench_forward 0x000
    exitbench_forward 0x080
    exitbench_forward 0x100
    exitbench_forward 0x180

    .balign 0x80                    // 0x200: synchronous, current EL, SP_EL1
    mrs     x17, elr_el1
    add     x17, x17, #4            // step over the A64 instruction that trapped
    msr     elr_el1, x17
    mrs     x28, esr_el1
    add     x27, x27, #1
    eret

    .balign 0x80                    // 0x280: IRQ, current EL, SP_EL1
    mrs     x17, S3_0_C12_C12_0     // ICC_IAR1_EL1: acknowledge
    and     x25, x17, #0xffffff     // INTID, bits [23:0]
    cmp     x25, #{TIMER}
    b.ne    1f
    msr     cntv_ctl_el0, xzr       // the timer's level drops before the interrupt ends
1:  msr     S3_0_C12_C12_1, x17     // ICC_EOIR1_EL1: priority drop and deactivation
    add     x26, x26, #1
    eret

    exitbench_forward 0x300
    exitbench_forward 0x380
    exitbench_forward 0x400
    exitbench_forward 0x480
    exitbench_forward 0x500
    exitbench_forward 0x580
    exitbench_forward 0x600
    exitbench_forward 0x680
    exitbench_forward 0x700
    exitbench_forward 0x780
    .popsection
"#,
    TIMER = const VIRTUAL_TIMER_INTID,
);
