//! The locks the physical CPUs share (the VM, the console): spin locks whose waiters say so.
//!
//! A waiting CPU executes `YIELD` (Arm ARM C6.2 "YIELD": a hint that the thread is spinning)
//! rather than what `core::hint::spin_loop` gives on AArch64, `ISB`, which neither a
//! multithreaded core nor an emulator can tell from work. It matters under QEMU's round-robin
//! scheduler (`-icount`): a `YIELD` ends the CPU's time slice, so the lock's holder runs
//! instead of the waiter spinning through its slice. With `ISB`, Linux on 2 vCPUs took 3.96 s
//! of virtual time (`-icount shift=0`) to reach `/init`; with `YIELD`, 0.96 s.

use spin::mutex::SpinMutex;

/// A spin lock whose waiters execute `YIELD`.
pub type Lock<T> = SpinMutex<T, YieldHint>;

/// The relax strategy of [`Lock`]: one `YIELD` per failed look at the lock.
pub struct YieldHint;

impl spin::RelaxStrategy for YieldHint {
    fn relax() {
        // SAFETY: a hint; it accesses no memory and changes no state.
        unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) };
    }
}
