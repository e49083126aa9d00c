//! The single-vCPU operations: each one instruction sequence repeated `n` times in a counted
//! loop between two reads of the virtual counter, and the empty loop that is their baseline.
//!
//! The loop is `<operation>; subs x20, x20, #1; b.ne`, so "operation minus empty loop" counts the
//! operation's own instructions (its argument set-up included: one to three `mov`s) and
//! everything it makes the machine execute elsewhere — Moat's EL2 code, the guest's exception
//! handler (`vectors.rs`). The loop state lives in X20..X24, which an SMCCC call preserves
//! (SMCCC, "Register use in AArch64 SMC and HVC calls"); X0..X17 are declared clobbered.

use core::arch::asm;

/// What one timed block measured and what the handlers saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Virtual counter ticks from the first read to the last.
    pub ticks: u64,
    /// Synchronous exceptions the guest took (X27).
    pub syncs: u64,
    /// The last synchronous exception's `ESR_EL1` (X28).
    pub esr: u64,
    /// IRQs the guest took (X26).
    pub irqs: u64,
    /// X0 after the last operation (an SMCCC call's result).
    pub x0: u64,
}

impl Sample {
    /// `ESR_EL1.EC` of the last synchronous exception (Arm ARM `ESR_EL1`, bits \[31:26\]).
    pub const fn ec(&self) -> u64 {
        (self.esr >> 26) & 0x3f
    }
}

/// The addresses the operations use, in X21..X23 during the loop.
#[derive(Debug, Clone, Copy)]
pub struct Targets {
    /// The PL011's base.
    pub uart: usize,
    /// The GIC distributor's base.
    pub gicd: usize,
    /// An address with nothing behind it: `2^S` under Moat, unassigned bare.
    pub abort_at: usize,
}

/// Defines `fn $name(targets, n) -> Sample`: the timed loop around `$op`.
macro_rules! timed_loop {
    ($(#[$doc:meta])* $name:ident, [$($op:literal),*]) => {
        $(#[$doc])*
        pub fn $name(targets: &Targets, n: u64) -> Sample {
            let (start, end, syncs, esr, irqs, x0): (u64, u64, u64, u64, u64, u64);
            // SAFETY: The block installs the benchmark's vectors (their handlers touch only
            // X17 and X25..X28, declared here) and puts the runtime's back before it ends; IRQs
            // stay masked. The operation reads or writes only device registers (PL011, GIC
            // distributor) or an address with no memory behind it, whose abort the vectors step
            // over; an SMCCC call changes at most X0..X17, all declared clobbered. No Rust
            // object is touched and the stack is unused.
            unsafe {
                asm!(
                    "adrp x10, exitbench_vectors",
                    "add x10, x10, :lo12:exitbench_vectors",
                    "msr vbar_el1, x10",
                    "isb",
                    "mov x26, #0",
                    "mov x27, #0",
                    "mov x28, #0",
                    "isb",
                    "mrs x24, cntvct_el0",
                    "2:",
                    $($op,)*
                    "subs x20, x20, #1",
                    "b.ne 2b",
                    "isb",
                    "mrs x10, cntvct_el0",
                    "adrp x11, moat_rt_vectors",
                    "add x11, x11, :lo12:moat_rt_vectors",
                    "msr vbar_el1, x11",
                    "isb",
                    inout("x20") n => _,
                    in("x21") targets.uart,
                    in("x22") targets.gicd,
                    in("x23") targets.abort_at,
                    out("x24") start,
                    out("x10") end,
                    out("x26") irqs,
                    out("x27") syncs,
                    out("x28") esr,
                    out("x0") x0,
                    out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _,
                    out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x11") _,
                    out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _,
                    out("x17") _, out("x25") _,
                    options(nostack),
                );
            }
            Sample { ticks: end.wrapping_sub(start), syncs, esr, irqs, x0 }
        }
    };
}

timed_loop!(
    /// The empty loop: the baseline every operation's batch is paired with.
    empty, []
);
timed_loop!(
    /// `BRK #0`: the guest's own exception round trip, never seen by a hypervisor.
    brk, ["brk #0"]
);
timed_loop!(
    /// HVC `PSCI_VERSION` (PSCI DEN 0022, function ID 0x8400_0000).
    hvc_psci_version, ["movz w0, #0x8400, lsl #16", "hvc #0"]
);
timed_loop!(
    /// HVC `PSCI_FEATURES` (0x8400_000A) asking about `PSCI_VERSION`.
    hvc_psci_features,
    ["movz w0, #0x8400, lsl #16", "movk w0, #0x000a", "movz w1, #0x8400, lsl #16", "hvc #0"]
);
timed_loop!(
    /// SMC `PSCI_VERSION`: trapped by `HCR_EL2.TSC` under a hypervisor.
    smc_psci_version, ["movz w0, #0x8400, lsl #16", "smc #0"]
);
timed_loop!(
    /// A 32-bit read of the PL011's `UARTFR` (flag register, offset 0x18).
    uart_read_fr, ["ldr w0, [x21, #0x18]"]
);
timed_loop!(
    /// A 32-bit write of 0 (a NUL byte, sent to the console) to the PL011's `UARTDR`.
    uart_write_dr, ["str wzr, [x21]"]
);
timed_loop!(
    /// A 32-bit read of `GICD_TYPER` (distributor offset 0x4).
    gicd_typer, ["ldr w0, [x22, #4]"]
);
timed_loop!(
    /// A 64-bit load from the address with nothing behind it: a synchronous external abort
    /// that the guest's handler steps over.
    abort, ["ldr x0, [x23]"]
);
timed_loop!(
    /// `MRS ID_AA64MMFR0_EL1`: trapped by `HCR_EL2.TID3` under a hypervisor.
    idreg, ["mrs x0, id_aa64mmfr0_el1"]
);

/// Counted-loop instructions for the calibration: `subs` and `b.ne` per iteration, so
/// `2 * iterations` instructions, plus a constant that a difference of two runs cancels.
pub fn spin_ticks(iterations: u64) -> u64 {
    let (start, end): (u64, u64);
    // SAFETY: reads the virtual counter around a register-only loop; no memory, no stack.
    unsafe {
        asm!(
            "isb",
            "mrs {start}, cntvct_el0",
            "2:",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "isb",
            "mrs {end}, cntvct_el0",
            n = inout(reg) iterations => _,
            start = out(reg) start,
            end = out(reg) end,
            options(nomem, nostack),
        );
    }
    end.wrapping_sub(start)
}
