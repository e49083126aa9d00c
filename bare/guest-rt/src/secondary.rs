//! A second CPU for a test: started with PSCI `CPU_ON` at EL1 with the MMU off, on a stack of
//! its own and the runtime's vectors, running a function that never returns (it ends with
//! PSCI `CPU_OFF` or parks). One stack, so one secondary CPU at a time; the tests that need
//! one (an SGI between two vCPUs) need no more.

use core::arch::global_asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::psci;

/// PSCI `CPU_ON` (SMC64 function ID 0xC400_0003).
const CPU_ON: u32 = 0xC400_0003;

/// The secondary CPU's stack.
#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; 16 * 1024]>);
// SAFETY: only the secondary CPU uses it, as its stack, through the stack pointer alone.
unsafe impl Sync for Stack {}
static STACK: Stack = Stack(UnsafeCell::new([0; 16 * 1024]));

/// The function the secondary CPU runs, read by its entry code.
#[unsafe(no_mangle)]
static MOAT_RT_SECONDARY_MAIN: AtomicUsize = AtomicUsize::new(0);

global_asm!(
    r#"
    .pushsection .text.moat_rt_secondary, "ax"
    .global moat_rt_secondary_entry
moat_rt_secondary_entry:            // PSCI CPU_ON: EL1, MMU off, X0 = context_id = stack top
    msr     daifset, #0xf
    msr     spsel, #1
    mov     sp, x0
    adrp    x1, moat_rt_vectors
    add     x1, x1, :lo12:moat_rt_vectors
    msr     vbar_el1, x1
    isb
    mov     x29, xzr
    mov     x30, xzr
    adrp    x1, MOAT_RT_SECONDARY_MAIN
    ldr     x1, [x1, :lo12:MOAT_RT_SECONDARY_MAIN]
    blr     x1
1:  wfe
    b       1b
    .popsection
"#
);

unsafe extern "C" {
    fn moat_rt_secondary_entry();
}

/// Starts the CPU whose `MPIDR_EL1` affinity is `mpidr` in `main`, with IRQ, FIQ and SError
/// masked; returns PSCI `CPU_ON`'s status (0 on success).
pub fn cpu_on(mpidr: u64, main: extern "C" fn() -> !) -> i64 {
    MOAT_RT_SECONDARY_MAIN.store(main as usize, Ordering::SeqCst);
    let entry = moat_rt_secondary_entry as *const () as u64;
    let stack_top = STACK.0.get() as u64 + size_of::<Stack>() as u64;
    // The status is a signed 32-bit value in X0 (SMCCC).
    #[allow(clippy::cast_possible_wrap)]
    let status = psci::smccc_call(CPU_ON, &[mpidr, entry, stack_top])[0] as i32;
    i64::from(status)
}
