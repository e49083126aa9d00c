//! The wake-up of a vCPU in `WFI` with nothing pending, by its virtual timer, until the guest's
//! handler has run and returned (Arm ARM "The Generic Timer": `CNTV_CVAL_EL0`, `CNTV_CTL_EL0`).
//!
//! Each iteration reads the counter (`t`), arms the timer for `t + D`, waits in `WFI` with IRQs
//! masked (a pending IRQ ends `WFI` whatever PSTATE.I says), then opens the mask so the handler
//! runs. `D` is long enough for everything before the `WFI` (under a hypervisor: the trap and
//! its decision to wait) to finish first, so the waiting is idle time that `-icount
//! sleep=off` skips and the deadline starts each wake-up on a tick boundary.
//!
//! The next iteration's counter read is what the wake-up is measured by: `floor((W + k) / P)`
//! ticks after the deadline, for `W` instructions from the deadline to the read and `k` extra
//! `NOP`s. `k` runs through `0..P` (`P` = the calibrated instructions per tick), so over `P`
//! iterations the floors add up to exactly `W` (Hermite's identity, `sum floor(x + k/P) =
//! floor(P x)`): the batch's ticks minus `n * D` give `n * W / P` ticks, `W` instructions per
//! wake-up once converted at `P` instructions per tick — sub-tick resolution without a
//! finer clock. `n` must be a multiple of `P`, and `P` at most [`MAX_PHASES`].

use core::arch::asm;

use crate::ops::Sample;

/// The deadline's distance from the counter read, in ticks.
pub const DELAY_TICKS: u64 = 4096;
/// The longest `NOP` sled, so the most ticks-per-instruction phases supported.
pub const MAX_PHASES: u64 = 64;

/// `n` timer wake-ups, dithered over `phases` `NOP` counts.
pub fn wake(n: u64, phases: u64) -> Sample {
    let (start, end, syncs, irqs): (u64, u64, u64, u64);
    // SAFETY: installs the benchmark's vectors for the block (handlers touch X17, X25..X28 only,
    // all declared) and puts the runtime's back; PSTATE.I is set again before the block ends;
    // the timer is left disabled by the handler. Registers only: no memory, no stack.
    unsafe {
        asm!(
            "adrp x10, exitbench_vectors",
            "add x10, x10, :lo12:exitbench_vectors",
            "msr vbar_el1, x10",
            "isb",
            "msr daifset, #2",
            "mov x26, #0",
            "mov x27, #0",
            "isb",
            "mrs x24, cntvct_el0",
            "mov x21, x24",
            "2:",
            "add x22, x21, {delay}",
            "msr cntv_cval_el0, x22",
            "mov x22, #1", // CNTV_CTL_EL0.ENABLE, IMASK clear
            "msr cntv_ctl_el0, x22",
            "isb",
            "wfi",
            "msr daifclr, #2",
            "isb", // the handler runs here
            "msr daifset, #2",
            "udiv x22, x20, {phases}",
            "msub x22, x22, {phases}, x20", // k = n mod P
            "adr x16, 3f",
            "sub x16, x16, x22, lsl #2",
            "br x16", // into the sled, k NOPs before its end
            ".rept {sled}",
            "nop",
            ".endr",
            "3:",
            "subs x20, x20, #1",
            "isb",
            "mrs x21, cntvct_el0",
            "b.ne 2b",
            "adrp x11, moat_rt_vectors",
            "add x11, x11, :lo12:moat_rt_vectors",
            "msr vbar_el1, x11",
            "isb",
            delay = in(reg) DELAY_TICKS,
            phases = in(reg) phases,
            sled = const MAX_PHASES,
            inout("x20") n => _,
            out("x21") end,
            out("x22") _,
            out("x24") start,
            out("x10") _,
            out("x11") _,
            out("x16") _,
            out("x17") _,
            out("x25") _,
            out("x26") irqs,
            out("x27") syncs,
            out("x28") _,
            options(nomem, nostack),
        );
    }
    Sample {
        ticks: end.wrapping_sub(start),
        syncs,
        esr: 0,
        irqs,
        x0: 0,
    }
}
