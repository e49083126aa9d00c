//! The two-vCPU operations: an SGI from one vCPU to another until its handler has run, with the
//! target running (spinning with `YIELD`, IRQs open) or waiting in `WFI` with nothing pending.
//!
//! vCPU 1 is started with PSCI `CPU_ON` and answers every SGI with the same SGI back to vCPU 0
//! (a ping-pong); the SGI's INTID tells it how to wait for the next one: [`SGI_SPIN`] spins,
//! [`SGI_WFI`] waits in `WFI`, [`SGI_STOP`] ends the ping-pong and powers vCPU 1 off. vCPU 0
//! waits for each answer the same way, so a round trip is two one-way deliveries; the figure is
//! per one-way delivery (a batch of `n` round trips counts `2n`).
//!
//! `YIELD` in the spin loops matters under QEMU: its single-threaded round-robin (`-icount`)
//! runs one CPU until it halts, yields or exhausts its time slice, so a spin loop without
//! `YIELD` would run (and count) until the slice ends. Every guest waiting loop should yield so
//! (Linux's `cpu_relax()` is a `YIELD`). The vCPUs share only one word in memory, written with
//! plain stores (no exclusives: with the MMU off, memory is Device-nGnRnE).

use core::arch::asm;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::ops::Sample;
use moat_guest_rt::gic;
use moat_guest_rt::{psci, secondary};

/// The ping-pong SGI whose target waits by spinning.
pub const SGI_SPIN: u32 = 1;
/// The ping-pong SGI whose target waits in `WFI`.
pub const SGI_WFI: u32 = 2;
/// The SGI that ends the ping-pong.
pub const SGI_STOP: u32 = 3;

/// PSCI `CPU_OFF` (0x8400_0002).
const CPU_OFF: u32 = 0x8400_0002;
/// vCPU 1's `MPIDR_EL1` affinity: Aff0 = 1 on QEMU `virt` (CPU `n` has Aff0 `n` up to 16) and
/// under Moat (`VMPIDR_EL2` = the vCPU's index).
const PARTNER_AFF0: u32 = 1;

/// vCPU 1's progress: [`OFFLINE`], [`READY`] (its GIC is up and it waits for SGIs), [`DONE`].
static PARTNER: AtomicU32 = AtomicU32::new(OFFLINE);
const OFFLINE: u32 = 0;
const READY: u32 = 1;
const DONE: u32 = 2;
/// vCPU 1 could not bring its GIC up.
const FAILED: u32 = 3;

/// Starts vCPU 1 and waits until it is ready for SGIs.
///
/// # Errors
///
/// When `CPU_ON` fails or vCPU 1 does not come up.
pub fn start_partner() -> Result<(), &'static str> {
    PARTNER.store(OFFLINE, Ordering::SeqCst);
    if secondary::cpu_on(u64::from(PARTNER_AFF0), exitbench_secondary_main) != 0 {
        return Err("PSCI CPU_ON of vCPU 1 failed");
    }
    match wait_partner(|s| s != OFFLINE) {
        READY => Ok(()),
        FAILED => Err("vCPU 1 could not bring up its GIC redistributor"),
        _ => Err("vCPU 1 did not come up"),
    }
}

/// Ends the ping-pong: vCPU 1 powers itself off.
///
/// # Errors
///
/// When vCPU 1 does not confirm.
pub fn stop_partner() -> Result<(), &'static str> {
    send(gic::sgi1r(SGI_STOP, PARTNER_AFF0));
    if wait_partner(|s| s == DONE) == DONE {
        Ok(())
    } else {
        Err("vCPU 1 did not stop")
    }
}

/// Polls vCPU 1's state with `YIELD` until `until` holds (bounded).
fn wait_partner(until: impl Fn(u32) -> bool) -> u32 {
    for _ in 0..1_000_000 {
        let state = PARTNER.load(Ordering::SeqCst);
        if until(state) {
            return state;
        }
        // SAFETY: a hint to the emulator or the CPU; no memory, no flags.
        unsafe { asm!("yield", options(nomem, nostack, preserves_flags)) };
    }
    PARTNER.load(Ordering::SeqCst)
}

fn send(sgi1r: u64) {
    // SAFETY: ICC_SGI1R_EL1 write: generates an SGI; no memory.
    unsafe { asm!("msr S3_0_C12_C11_5, {}", "isb", in(reg) sgi1r, options(nomem, nostack)) };
}

/// vCPU 1: its GIC, then the answering loop, then `CPU_OFF`.
extern "C" fn exitbench_secondary_main() -> ! {
    if gic::init_cpu(PARTNER_AFF0 as usize, &[SGI_SPIN, SGI_WFI, SGI_STOP]).is_err() {
        PARTNER.store(FAILED, Ordering::SeqCst);
        psci::park();
    }
    PARTNER.store(READY, Ordering::SeqCst);
    answer();
    PARTNER.store(DONE, Ordering::SeqCst);
    psci::smccc_call(CPU_OFF, &[]);
    psci::park()
}

/// Answers SGIs until [`SGI_STOP`]: each SGI goes back to vCPU 0 with its INTID, and its INTID
/// says how to wait for the next.
fn answer() {
    // SAFETY: the benchmark's vectors for the loop (handlers touch X17, X25..X28, declared),
    // the runtime's after it; PSTATE.I is set again on every way out. Registers only.
    unsafe {
        asm!(
            "adrp x10, exitbench_vectors",
            "add x10, x10, :lo12:exitbench_vectors",
            "msr vbar_el1, x10",
            "isb",
            "mov x26, #0",
            "mov x24, #0",
            "mov x25, #{wfi}",
            "2:",
            "cmp x25, #{spin}",
            "b.eq 4f",
            "3:",
            "wfi",
            "msr daifclr, #2",
            "isb",
            "msr daifset, #2",
            "cmp x26, x24",
            "b.eq 3b",
            "b 6f",
            "4:",
            "msr daifclr, #2",
            "5:",
            "yield",
            "cmp x26, x24",
            "b.eq 5b",
            "msr daifset, #2",
            "6:",
            "mov x24, x26",
            "cmp x25, #{stop}",
            "b.eq 7f",
            "lsl x23, x25, #24",
            "orr x23, x23, #1", // TargetList bit 0: vCPU 0
            "msr S3_0_C12_C11_5, x23",
            "b 2b",
            "7:",
            "adrp x11, moat_rt_vectors",
            "add x11, x11, :lo12:moat_rt_vectors",
            "msr vbar_el1, x11",
            "isb",
            spin = const SGI_SPIN,
            wfi = const SGI_WFI,
            stop = const SGI_STOP,
            out("x10") _, out("x11") _, out("x17") _, out("x23") _, out("x24") _,
            out("x25") _, out("x26") _, out("x27") _, out("x28") _,
            options(nomem, nostack),
        );
    }
}

/// `n` round trips of SGI `intid` (the target spins for [`SGI_SPIN`], waits in `WFI` for
/// [`SGI_WFI`]), after one untimed round trip that puts vCPU 1 in the same way of waiting.
pub fn ping_pong(intid: u32, n: u64) -> Sample {
    round_trips(intid, 1);
    round_trips(intid, n)
}

fn round_trips(intid: u32, n: u64) -> Sample {
    let sgi1r = gic::sgi1r(intid, PARTNER_AFF0);
    let spin = u64::from(intid == SGI_SPIN);
    let (start, end, syncs, irqs): (u64, u64, u64, u64);
    // SAFETY: the benchmark's vectors for the block (handlers touch X17, X25..X28, declared),
    // the runtime's after it; PSTATE.I is set again before the block ends. Registers only.
    unsafe {
        asm!(
            "adrp x10, exitbench_vectors",
            "add x10, x10, :lo12:exitbench_vectors",
            "msr vbar_el1, x10",
            "isb",
            "mov x26, #0",
            "mov x27, #0",
            "mov x21, #0", // answers expected so far
            "isb",
            "mrs x24, cntvct_el0",
            "2:",
            "msr S3_0_C12_C11_5, x22",
            "add x21, x21, #1",
            "cbz x23, 4f",
            "msr daifclr, #2", // spin: IRQs open while waiting
            "3:",
            "yield",
            "cmp x26, x21",
            "b.lo 3b",
            "msr daifset, #2",
            "b 5f",
            "4:",
            "wfi", // WFI: IRQs masked, opened after the wake-up
            "msr daifclr, #2",
            "isb",
            "msr daifset, #2",
            "cmp x26, x21",
            "b.lo 4b",
            "5:",
            "subs x20, x20, #1",
            "b.ne 2b",
            "isb",
            "mrs x10, cntvct_el0",
            "adrp x11, moat_rt_vectors",
            "add x11, x11, :lo12:moat_rt_vectors",
            "msr vbar_el1, x11",
            "isb",
            inout("x20") n => _,
            out("x21") _,
            in("x22") sgi1r,
            in("x23") spin,
            out("x24") start,
            out("x10") end,
            out("x11") _,
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
