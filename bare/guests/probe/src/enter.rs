//! Runs one probing instruction in a chosen PSTATE and comes back to a fixed recovery point,
//! whatever happens.
//!
//! Every case enters its *snippet* (the probing instruction, then `SVC #MARK`) with `ERET`, from
//! `ELR_EL1` = the snippet and `SPSR_EL1` = the case's mode with every other PSTATE bit 0 (NZCV,
//! BTYPE, PAN, SSBS, DIT, UAO, TCO) and D, A, I, F masked: so the interrupted PSTATE that lands in
//! `SPSR_EL1` is the same in every run, and no earlier case's state can leak in. The snippet runs
//! at EL1h, EL1t (SP_EL0) or EL0t. Whatever exception then comes (the probe's abort, the
//! completion `SVC`, a BRK), the runtime records it and [`recover`] sends `ERET` to
//! `moat_probe_resume` at EL1h with D, A, I, F masked, which restores the callee-saved registers
//! and returns from [`run`]. Before entering, the trampoline zeroes `FAR_EL1`, `ESR_EL1` and
//! `PAR_EL1` (so a field an exception does not write reads 0, not a previous case's value) and
//! `SP_EL0` (no snippet uses a stack).
//!
//! Exceptions are taken to EL1 on SP_EL1, which still holds the trampoline's stack pointer: the
//! snippets never touch SP, so the recovery point finds its saved registers where it left them.

use core::arch::global_asm;

use moat_guest_probe::kinds::{BRK_IMM, MARK, SPSR_EL1H, Snippet};
use moat_guest_rt::exception::with_exception_hook;
use moat_guest_rt::{ExceptionFrame, ExceptionLog, ExceptionRecord, Resume};

global_asm!(
    r#"
    .pushsection .text.moat_probe, "ax"
    .balign 4
    // x0 = target, x1 = value to store, x2 = snippet, x3 = SPSR for it; returns the snippet's x0.
    .global moat_probe_enter
moat_probe_enter:
    stp     x29, x30, [sp, #-96]!
    stp     x19, x20, [sp, #16]
    stp     x21, x22, [sp, #32]
    stp     x23, x24, [sp, #48]
    stp     x25, x26, [sp, #64]
    stp     x27, x28, [sp, #80]
    msr     far_el1, xzr            // fields no exception writes read 0, never a stale value
    msr     esr_el1, xzr
    msr     par_el1, xzr
    msr     sp_el0, xzr
    msr     elr_el1, x2
    msr     spsr_el1, x3
    mov     x2, xzr
    mov     x3, xzr
    eret                            // into the snippet, in the case's PSTATE

    .balign 4
    .global moat_probe_resume
moat_probe_resume:                  // every case ends here, at EL1h, on the stack saved above
    ldp     x27, x28, [sp, #80]
    ldp     x25, x26, [sp, #64]
    ldp     x23, x24, [sp, #48]
    ldp     x21, x22, [sp, #32]
    ldp     x19, x20, [sp, #16]
    ldp     x29, x30, [sp], #96
    ret

    // The snippets: the probing instruction comes first, at the snippet's own address.
    .macro moat_probe_snippet name
    .balign 4
    .global moat_probe_\name
moat_probe_\name:
    .endm
    .macro moat_probe_done
    svc     #{MARK}
    .endm

    moat_probe_snippet ldr
    ldr     x0, [x0]
    moat_probe_done
    moat_probe_snippet ldrb
    ldrb    w0, [x0]
    moat_probe_done
    moat_probe_snippet ldrsh_w
    ldrsh   w0, [x0]
    moat_probe_done
    moat_probe_snippet str
    str     w1, [x0]
    moat_probe_done
    moat_probe_snippet ldp
    ldp     x2, x3, [x0]
    mov     x0, x2
    moat_probe_done
    moat_probe_snippet ldr_post
    ldr     x2, [x0], #8
    mov     x0, x2
    moat_probe_done
    moat_probe_snippet stp
    stp     x1, x1, [x0]
    moat_probe_done
    moat_probe_snippet ldr_misaligned
    ldur    w0, [x0, #2]
    moat_probe_done
    moat_probe_snippet str_misaligned
    stur    x1, [x0, #4]
    moat_probe_done
    moat_probe_snippet fetch
    ret     x0                      // the probed instruction is the one at x0; BTYPE stays 0
    moat_probe_snippet fetch_br
    br      x0                      // the same, with BTYPE = 0b01 where FEAT_BTI is implemented
    moat_probe_snippet dc_zva
    dc      zva, x0
    moat_probe_done
    moat_probe_snippet dc_civac
    dc      civac, x0
    moat_probe_done
    moat_probe_snippet at_s1e1r
    at      s1e1r, x0
    isb                             // PAR_EL1 is read after the recovery point
    moat_probe_done
    moat_probe_snippet brk
    brk     #{BRK}
    .popsection
"#,
    MARK = const MARK,
    BRK = const BRK_IMM,
);

unsafe extern "C" {
    fn moat_probe_enter(target: u64, value: u64, snippet: u64, spsr: u64) -> u64;
    fn moat_probe_resume();
}

/// The snippet's address (that of its probing instruction).
pub fn address(snippet: Snippet) -> u64 {
    unsafe extern "C" {
        fn moat_probe_ldr();
        fn moat_probe_ldrb();
        fn moat_probe_ldrsh_w();
        fn moat_probe_str();
        fn moat_probe_ldp();
        fn moat_probe_ldr_post();
        fn moat_probe_stp();
        fn moat_probe_ldr_misaligned();
        fn moat_probe_str_misaligned();
        fn moat_probe_fetch();
        fn moat_probe_fetch_br();
        fn moat_probe_dc_zva();
        fn moat_probe_dc_civac();
        fn moat_probe_at_s1e1r();
        fn moat_probe_brk();
    }
    let entry: unsafe extern "C" fn() = match snippet {
        Snippet::Ldr => moat_probe_ldr,
        Snippet::Ldrb => moat_probe_ldrb,
        Snippet::LdrshW => moat_probe_ldrsh_w,
        Snippet::Str => moat_probe_str,
        Snippet::Ldp => moat_probe_ldp,
        Snippet::LdrPost => moat_probe_ldr_post,
        Snippet::Stp => moat_probe_stp,
        Snippet::LdrMisaligned => moat_probe_ldr_misaligned,
        Snippet::StrMisaligned => moat_probe_str_misaligned,
        Snippet::Fetch => moat_probe_fetch,
        Snippet::FetchBr => moat_probe_fetch_br,
        Snippet::DcZva => moat_probe_dc_zva,
        Snippet::DcCivac => moat_probe_dc_civac,
        Snippet::AtS1e1r => moat_probe_at_s1e1r,
        Snippet::Brk => moat_probe_brk,
    };
    entry as usize as u64
}

/// What one run of a snippet gave.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// The exception it took, unless the access completed (only the completion `SVC` came).
    pub exception: Option<ExceptionRecord>,
    /// The snippet's X0 at its end (the loaded value; meaningless after an exception).
    pub x0: u64,
}

/// Every exception during a case ends the case: resume at `moat_probe_resume`, at EL1h.
fn recover(_record: &ExceptionRecord, frame: &mut ExceptionFrame) -> Resume {
    frame.elr = moat_probe_resume as *const () as u64;
    frame.spsr = SPSR_EL1H;
    Resume::Yes
}

/// Whether `record` is the `SVC #MARK` that ends a snippet whose access completed.
fn is_completion(record: &ExceptionRecord) -> bool {
    const EC_SVC64: u8 = 0x15;
    record.ec() == EC_SVC64 && record.iss() == u32::from(MARK)
}

/// Runs `snippet` with X0 = `target`, X1 = `value`, in the PSTATE `spsr`.
pub fn run(snippet: Snippet, target: u64, value: u64, spsr: u64) -> Outcome {
    let (x0, log) = with_exception_hook(recover, || {
        // SAFETY: The trampoline saves the callee-saved registers and LR on the current stack and
        // ERETs into one of the snippets above, which touch only X0..X3 and never SP or memory of
        // ours (their one access goes to `target`, which the caller has checked is not the
        // image, its stack or the device tree). Every way out of a snippet is an exception, which
        // the hook `recover` (installed for exactly this call) turns into an ERET to
        // `moat_probe_resume` at EL1h on SP_EL1, unchanged since the trampoline stored to it;
        // that restores the saved registers and returns X0 like an ordinary call.
        unsafe { moat_probe_enter(target, value, address(snippet), spsr) }
    });
    Outcome {
        exception: first_real_exception(log),
        x0,
    }
}

/// The exception the case took, if any; the completion `SVC` alone means none.
fn first_real_exception(log: ExceptionLog) -> Option<ExceptionRecord> {
    log.first.filter(|record| !is_completion(record))
}
