//! The executor: every operation is a few instruction words written to the vCPU's own scratch
//! page (or, for a fetch, a branch target) and called with `BLR`, X0..X7 loaded from the vCPU's
//! [`Ctx`] — or, for an operation at EL0, entered by `ERET` to EL0t, returning by a branch to
//! `chaos_el0_return`, whose `SVC` the vectors recognise as the words' return. The chaos
//! vectors ([`chaos_vectors`]) record any exception the words take into the same [`Ctx`]
//! (vector offset, `ESR_EL1`, `FAR_EL1`, `ELR_EL1`, `SPSR_EL1`), count it by exception class,
//! and return to the executor's resume point, which restores the stack and the callee-saved
//! registers whatever the words did.
//!
//! The per-vCPU state is found from `MPIDR_EL1.Aff0` (QEMU `virt` numbers CPUs 0.. in Aff0, and
//! Moat gives vCPU `n` `VMPIDR_EL2.Aff0` = `n`), so the vectors need no memory shared between
//! vCPUs and no atomics (with the MMU off every access is Device-nGnRnE). An exception outside
//! an operation (no resume point) is a stray: it is recorded and the vCPU is sent to
//! [`chaos_stray`], which reports it and powers the machine off.

use core::arch::global_asm;
use core::cell::UnsafeCell;
use core::mem::{offset_of, size_of};

/// The most vCPUs the guest drives.
pub const MAX_CPUS: usize = 4;

/// One vCPU's executor state (shared with the vector code by offset).
#[repr(C, align(64))]
pub struct Ctx {
    /// X0..X7 at the call.
    pub input: [u64; 8],
    /// X0..X3 after the words returned.
    pub output: [u64; 4],
    /// Where an exception returns to; 0 outside an operation.
    pub resume: u64,
    /// The stack pointer at the call.
    pub saved_sp: u64,
    /// 1 when the operation took an exception.
    pub taken: u64,
    /// The exception's vector offset.
    pub vector: u64,
    /// Its `ESR_EL1`.
    pub esr: u64,
    /// Its `FAR_EL1`.
    pub far: u64,
    /// Its `ELR_EL1`.
    pub elr: u64,
    /// Its `SPSR_EL1`.
    pub spsr: u64,
    /// `PSTATE.{D,A,I,F}` (`DAIF`) on entry to the vector: the exception masked them.
    pub daif: u64,
    /// Exceptions taken, by `ESR_EL1.EC` (interrupts in [`INTERRUPT_EC`]).
    pub ec_counts: [u64; 64],
    /// A stray exception: vector offset, `ESR_EL1`, `FAR_EL1`, `ELR_EL1`.
    pub stray: [u64; 4],
    /// The address the last operation called.
    pub entry: u64,
}

const CTX_SIZE: usize = size_of::<Ctx>();

/// Every vCPU's [`Ctx`], by `MPIDR_EL1.Aff0`.
pub struct Ctxs(UnsafeCell<[Ctx; MAX_CPUS]>);
// SAFETY: each vCPU touches only its own element (by `MPIDR_EL1.Aff0`), from its own code and
// its own exception handler, which never run at once.
unsafe impl Sync for Ctxs {}

const EMPTY: Ctx = Ctx {
    input: [0; 8],
    output: [0; 4],
    resume: 0,
    saved_sp: 0,
    taken: 0,
    vector: 0,
    esr: 0,
    far: 0,
    elr: 0,
    spsr: 0,
    daif: 0,
    ec_counts: [0; 64],
    stray: [0; 4],
    entry: 0,
};

/// The vCPUs' executor state.
#[unsafe(no_mangle)]
pub static CHAOS_CTX: Ctxs = Ctxs(UnsafeCell::new([EMPTY; MAX_CPUS]));

/// This vCPU's [`Ctx`].
pub fn ctx(cpu: usize) -> *mut Ctx {
    // Only the element's address is formed; the caller is that vCPU.
    (CHAOS_CTX.0.get() as *mut Ctx).wrapping_add(cpu)
}

global_asm!(
    r#"
    .macro this_ctx dst, tmp              // \dst = this vCPU's Ctx, by MPIDR_EL1.Aff0
    mrs     \dst, mpidr_el1
    and     \dst, \dst, #0xff
    mov     \tmp, #{CTX_SIZE}
    mul     \dst, \dst, \tmp
    adrp    \tmp, CHAOS_CTX
    add     \tmp, \tmp, :lo12:CHAOS_CTX
    add     \dst, \dst, \tmp
    .endm

    .macro chaos_vector offset
    .balign 0x80
    sub     sp, sp, #32
    stp     x0, x1, [sp]
    stp     x2, x3, [sp, #16]
    mov     x2, #\offset
    b       chaos_exception_common
    .endm

    .pushsection .text.chaos_vectors, "ax"
    .balign 0x800
    .global chaos_vectors
chaos_vectors:
    chaos_vector 0x000
    chaos_vector 0x080
    chaos_vector 0x100
    chaos_vector 0x180
    chaos_vector 0x200
    chaos_vector 0x280
    chaos_vector 0x300
    chaos_vector 0x380
    chaos_vector 0x400
    chaos_vector 0x480
    chaos_vector 0x500
    chaos_vector 0x580
    chaos_vector 0x600
    chaos_vector 0x680
    chaos_vector 0x700
    chaos_vector 0x780

    .balign 0x80
chaos_exception_common:
    this_ctx x0, x1
    cmp     x2, #0x400                    // synchronous, from EL0 (AArch64)?
    b.ne    4f
    mrs     x3, esr_el1
    mov     x1, #{GATE_ESR_LO}
    movk    x1, #{GATE_ESR_HI}, lsl #16
    cmp     x3, x1
    b.ne    4f
    mrs     x3, elr_el1
    adr     x1, chaos_el0_return + 4
    cmp     x3, x1
    b.ne    4f
    ldr     x3, [x0, #{RESUME}]           // the EL0 words returned: resume at EL1, as ops run,
    msr     elr_el1, x3                   // with X0..X3 as they left them; nothing is counted
    mov     x1, #{EL1_RESUME}
    msr     spsr_el1, x1
    b       3f
4:  mrs     x3, esr_el1
    ubfx    x3, x3, #26, #6               // ESR_EL1.EC
    and     x1, x2, #0x180                // IRQ (0x080) or FIQ (0x100) of its group?
    sub     x1, x1, #0x080                // 0 or 0x80 for those; SError 0x100, sync wraps
    cmp     x1, #0x080
    b.hi    1f
    mov     x3, #{INTERRUPT_EC}           // an interrupt has no syndrome (ESR_EL1 is stale)
1:  add     x3, x0, x3, lsl #3
    ldr     x1, [x3, #{ECS}]
    add     x1, x1, #1
    str     x1, [x3, #{ECS}]
    ldr     x3, [x0, #{RESUME}]
    cbz     x3, 2f
    str     x2, [x0, #{VECTOR}]
    mrs     x1, esr_el1
    str     x1, [x0, #{ESR}]
    mrs     x1, far_el1
    str     x1, [x0, #{FAR}]
    mrs     x1, elr_el1
    str     x1, [x0, #{ELR}]
    mrs     x1, spsr_el1
    str     x1, [x0, #{SPSR}]
    mrs     x2, daif
    str     x2, [x0, #{DAIF}]
    orr     x1, x1, #0xc0                 // resume with IRQ and FIQ masked, as ops run
    tst     x1, #0xc                      // SPSR_EL1.M[3:2]: taken from EL0?
    b.ne    5f
    mov     x1, #{EL1_RESUME}             // then resume at EL1h, as ops run
5:  msr     spsr_el1, x1
    mov     x1, #1
    str     x1, [x0, #{TAKEN}]
    str     xzr, [x0, #{RESUME}]          // a second exception before the resume is a stray
    msr     elr_el1, x3
    b       3f
2:  str     x2, [x0, #{STRAY}]
    mrs     x1, esr_el1
    str     x1, [x0, #{STRAY} + 8]
    mrs     x1, far_el1
    str     x1, [x0, #{STRAY} + 16]
    mrs     x1, elr_el1
    str     x1, [x0, #{STRAY} + 24]
    adrp    x1, chaos_stray
    add     x1, x1, :lo12:chaos_stray
    msr     elr_el1, x1
    mov     x1, #0x3c5                    // EL1h, D, A, I, F masked
    msr     spsr_el1, x1
3:  ldp     x2, x3, [sp, #16]
    ldp     x0, x1, [sp]
    add     sp, sp, #32
    eret

    .global chaos_exec
chaos_exec:                               // X0 = Ctx, X1 = the words' address, X2 = 1: at EL0
    stp     x29, x30, [sp, #-96]!
    stp     x19, x20, [sp, #16]
    stp     x21, x22, [sp, #32]
    stp     x23, x24, [sp, #48]
    stp     x25, x26, [sp, #64]
    stp     x27, x28, [sp, #80]
    mov     x19, x0
    mov     x3, sp
    str     x3, [x19, #{SAVED_SP}]
    str     xzr, [x19, #{TAKEN}]
    adr     x3, 9f
    str     x3, [x19, #{RESUME}]
    mov     x16, x1
    cbnz    x2, 8f
    ldp     x0, x1, [x19, #0]
    ldp     x2, x3, [x19, #16]
    ldp     x4, x5, [x19, #32]
    ldp     x6, x7, [x19, #48]
    blr     x16
9:  this_ctx x19, x16                     // again: EL0 words with FP/SIMD open can write any
                                          // general register (FMOV, FCVTZS, ...)
    str     xzr, [x19, #{RESUME}]
    stp     x0, x1, [x19, #{OUTPUT}]
    stp     x2, x3, [x19, #{OUTPUT} + 16]
    ldr     x2, [x19, #{SAVED_SP}]
    mov     sp, x2
    ldp     x19, x20, [sp, #16]
    ldp     x21, x22, [sp, #32]
    ldp     x23, x24, [sp, #48]
    ldp     x25, x26, [sp, #64]
    ldp     x27, x28, [sp, #80]
    ldp     x29, x30, [sp], #96
    ret
8:  msr     elr_el1, x16                  // at EL0: enter the words by ERET
    mov     x3, #{EL0_ENTRY}
    msr     spsr_el1, x3
    adr     x30, chaos_el0_return         // for a branch target's RET (the words branch there)
    ldp     x0, x1, [x19, #0]
    ldp     x2, x3, [x19, #16]
    ldp     x4, x5, [x19, #32]
    ldp     x6, x7, [x19, #48]
    eret

    .global chaos_el0_return
chaos_el0_return:                         // where the EL0 words' RET lands, still at EL0
    svc     #{GATE_IMM}
    .popsection
"#,
    CTX_SIZE = const CTX_SIZE,
    ECS = const offset_of!(Ctx, ec_counts),
    RESUME = const offset_of!(Ctx, resume),
    VECTOR = const offset_of!(Ctx, vector),
    ESR = const offset_of!(Ctx, esr),
    FAR = const offset_of!(Ctx, far),
    ELR = const offset_of!(Ctx, elr),
    SPSR = const offset_of!(Ctx, spsr),
    DAIF = const offset_of!(Ctx, daif),
    TAKEN = const offset_of!(Ctx, taken),
    STRAY = const offset_of!(Ctx, stray),
    SAVED_SP = const offset_of!(Ctx, saved_sp),
    OUTPUT = const offset_of!(Ctx, output),
    INTERRUPT_EC = const INTERRUPT_EC,
    GATE_IMM = const GATE_IMM,
    GATE_ESR_LO = const GATE_ESR & 0xffff,
    GATE_ESR_HI = const GATE_ESR >> 16,
    EL0_ENTRY = const EL0_ENTRY,
    EL1_RESUME = const EL1_RESUME,
);

/// The immediate of `chaos_el0_return`'s `SVC`.
const GATE_IMM: u64 = 0xc4a0;
/// `ESR_EL1` of that `SVC` taken from AArch64 EL0: EC 0x15, IL = 1, ISS = the immediate. A
/// random `SVC` word of the same immediate is told apart by its `ELR_EL1`.
const GATE_ESR: u64 = 0x15 << 26 | 1 << 25 | GATE_IMM;
/// `SPSR_EL1` that enters an EL0 operation: `M` = EL0t, `D`, `A`, `I`, `F` set (interrupts stay
/// masked, as at EL1).
const EL0_ENTRY: u64 = 0x3c0;
/// `SPSR_EL1` that resumes the executor after an EL0 operation: `M` = EL1h (the runtime runs
/// on `SP_EL1`), `D`, `A`, `I`, `F` set, as ops run.
const EL1_RESUME: u64 = 0x3c5;

/// The `ec_counts` slot interrupts are counted in: EC 0x3F is unallocated (Arm ARM,
/// `ESR_EL1.EC`), and an IRQ or FIQ has no syndrome of its own.
pub const INTERRUPT_EC: usize = 0x3f;

unsafe extern "C" {
    fn chaos_exec(ctx: *mut Ctx, words: u64, el0: u64);
    /// Where EL0 words return to (an `SVC` the vectors recognise).
    static chaos_el0_return: u32;
    /// The chaos vector table.
    pub static chaos_vectors: u8;
}

/// Calls the words at `entry` with X0..X7 = `input` (at EL0 when `el0`: entered by `ERET`,
/// returning through `chaos_el0_return`); the outcome is in the vCPU's [`Ctx`].
pub fn exec(cpu: usize, entry: u64, input: [u64; 8], el0: bool) -> &'static Ctx {
    let ctx = ctx(cpu);
    // SAFETY: `ctx` is this vCPU's own element; no reference to it is alive across the call.
    unsafe {
        (*ctx).input = input;
        (*ctx).entry = entry;
    }
    // SAFETY: `chaos_exec` saves and restores every callee-saved register and the stack
    // pointer itself, whatever the words do; the words are those the generator writes (no
    // store but to the addresses the module docs of `ops` allow). An exception returns to
    // its resume point through the chaos vectors; words at EL0 run with interrupts masked and
    // return through `chaos_el0_return`'s `SVC`, which the vectors turn into that same resume
    // at EL1h.
    unsafe { chaos_exec(ctx, entry, u64::from(el0)) };
    // SAFETY: the call is over; only this vCPU reads its element.
    unsafe { &*ctx }
}

/// The address EL0 words return to: their `RET`s become branches there ([`crate::ops`]), as
/// an FP/SIMD word opened to EL0 may have written X30.
pub fn el0_return() -> u64 {
    &raw const chaos_el0_return as u64
}

/// Installs the chaos vectors on this vCPU.
pub fn install_vectors() {
    let table = &raw const chaos_vectors as u64;
    // SAFETY: VBAR_EL1 = a 2 KiB-aligned table whose every entry ends in an ERET or the stray
    // report; ISB so that it is in effect before the first operation.
    unsafe { core::arch::asm!("msr vbar_el1, {}", "isb", in(reg) table, options(nostack)) };
}

/// Where a stray exception (one outside any operation) ends: reported, then power-off.
#[unsafe(no_mangle)]
extern "C" fn chaos_stray() -> ! {
    let cpu = crate::cpu_index();
    // SAFETY: this vCPU's own element, written by its vector code just before.
    let stray = unsafe { (*ctx(cpu)).stray };
    moat_guest_rt::println!(
        "CHAOS-STRAY {cpu} vector={:#x} esr={:#x} far={:#x} elr={:#x}",
        stray[0],
        stray[1],
        stray[2],
        stray[3]
    );
    moat_guest_rt::psci::system_off()
}
