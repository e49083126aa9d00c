//! `memcpy` and `memset` for Moat, replacing `compiler_builtins`' portable ones (which it
//! defines weak, so that a platform can do this): these move 64 bytes per loop iteration with
//! general-purpose `LDP`/`STP` pairs, whatever the pointers' alignment, where the portable code
//! goes a word or a byte at a time. Under `-icount` every instruction counts: copying a 28 MiB
//! kernel image into guest RAM took about 80 M instructions with the portable `memcpy` (the
//! bundle's images are not word-aligned against their destination) and takes about 5 M here;
//! the GIC model's and exception entry's small copies gain alike.
//!
//! Unaligned accesses are permitted only to Normal memory, so the wide loops run only while
//! Moat's EL2 translation is on (`SCTLR_EL2.M` = 1, `A` = 0: everything Moat copies or sets
//! is RAM mapped Normal; MMIO is never accessed through these functions). Before that (with
//! the MMU off all data accesses are Device-nGnRnE, where an unaligned access faults) they go
//! a word at a time when the pointers are aligned, else a byte at a time. Moat is soft-float: the FP/SIMD registers are the guest's, so only `x`
//! registers are used.

use core::arch::global_asm;

global_asm!(
    ".section .text.mem, \"ax\"",
    // void *memcpy(void *dst = x0, const void *src = x1, size_t n = x2): returns dst.
    ".global memcpy",
    ".type memcpy, %function",
    "memcpy:",
    "mov x3, x0",
    "mrs x4, sctlr_el2",
    "tbnz x4, #0, 8f",
    // SCTLR_EL2.M (bit 0) clear: Device memory everywhere: words when both are aligned,
    // else bytes.
    "orr x4, x0, x1",
    "tst x4, #7",
    "b.ne 3f",
    "sub x2, x2, #64",
    "b 2f",
    "8:",
    "subs x2, x2, #64",
    "b.lo 2f",
    "1:",
    "ldp x6, x7, [x1, #16]",
    "ldp x8, x9, [x1, #32]",
    "ldp x10, x11, [x1, #48]",
    "ldp x4, x5, [x1], #64",
    "stp x6, x7, [x3, #16]",
    "stp x8, x9, [x3, #32]",
    "stp x10, x11, [x3, #48]",
    "stp x4, x5, [x3], #64",
    "subs x2, x2, #64",
    "b.hs 1b",
    "2:",
    // 0..63 bytes left (x2 + 64): words, then bytes.
    "adds x2, x2, #56",
    "b.lo 4f",
    "5:",
    "ldr x4, [x1], #8",
    "str x4, [x3], #8",
    "subs x2, x2, #8",
    "b.hs 5b",
    "4:",
    "add x2, x2, #8",
    "3:",
    "cbz x2, 6f",
    "7:",
    "ldrb w4, [x1], #1",
    "strb w4, [x3], #1",
    "subs x2, x2, #1",
    "b.ne 7b",
    "6:",
    "ret",
    ".size memcpy, . - memcpy",
    // void *memset(void *dst = x0, int c = w1, size_t n = x2): returns dst.
    ".global memset",
    ".type memset, %function",
    "memset:",
    "mov x3, x0",
    "and x1, x1, #0xff",
    "orr x1, x1, x1, lsl #8",
    "orr x1, x1, x1, lsl #16",
    "orr x1, x1, x1, lsl #32",
    "mrs x4, sctlr_el2",
    "tbnz x4, #0, 8f",
    // MMU off: words when aligned, else bytes (as `memcpy`).
    "tst x0, #7",
    "b.ne 3f",
    "sub x2, x2, #64",
    "b 2f",
    "8:",
    "subs x2, x2, #64",
    "b.lo 2f",
    "1:",
    "stp x1, x1, [x3, #16]",
    "stp x1, x1, [x3, #32]",
    "stp x1, x1, [x3, #48]",
    "stp x1, x1, [x3], #64",
    "subs x2, x2, #64",
    "b.hs 1b",
    "2:",
    "adds x2, x2, #56",
    "b.lo 4f",
    "5:",
    "str x1, [x3], #8",
    "subs x2, x2, #8",
    "b.hs 5b",
    "4:",
    "add x2, x2, #8",
    "3:",
    "cbz x2, 6f",
    "7:",
    "strb w1, [x3], #1",
    "subs x2, x2, #1",
    "b.ne 7b",
    "6:",
    "ret",
    ".size memset, . - memset",
);
