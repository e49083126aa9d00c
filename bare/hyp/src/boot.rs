//! Moat's entry point: an arm64 Linux `Image` header, so that QEMU's `-kernel` and U-Boot's
//! `booti` load Moat and pass the device tree in `x0` (Linux `Documentation/arch/arm64/booting`).
//!
//! The loader enters at offset 0 at EL2 with the MMU and D-cache off. The assembly puts
//! `SCTLR_EL2` in a known state, installs the vectors, sets the boot stack, zeroes `.bss` and
//! calls [`crate::moat_main`] with the device tree's address. Everything before the MMU is on
//! uses PC-relative addressing only.

use core::arch::global_asm;

global_asm!(
    ".section .text.head, \"ax\"",
    ".global _start",
    "_start:",
    // code0: branch over the header; code1: reserved.
    "b 1f",
    ".long 0",
    // text_offset: Moat is linked at RAM base + 0x200000 on QEMU virt.
    ".quad 0x200000",
    // image_size, including .bss and the boot stack, so that a loader reserves it all.
    ".quad __image_end - _start",
    // flags: little-endian, 4K pages, placed 2 MiB-aligned as close to RAM base as possible.
    ".quad 0x2",
    ".quad 0",
    ".quad 0",
    ".quad 0",
    // magic "ARM\x64", then the (absent) PE header offset.
    ".ascii \"ARM\\x64\"",
    ".long 0",
    "1:",
    "mov x19, x0",
    // SCTLR_EL2: the RES1 bits of the non-VHE layout; MMU, caches and alignment checks off
    // until `mm::enable_el2_translation` turns them on.
    "ldr x1, ={sctlr_el2_res1}",
    "msr sctlr_el2, x1",
    "isb",
    "adrp x1, {vectors}",
    "add x1, x1, :lo12:{vectors}",
    "msr vbar_el2, x1",
    "adrp x1, __stack_top",
    "add x1, x1, :lo12:__stack_top",
    "mov sp, x1",
    "adrp x1, __bss_start",
    "add x1, x1, :lo12:__bss_start",
    "adrp x2, __bss_end",
    "add x2, x2, :lo12:__bss_end",
    "2:",
    "cmp x1, x2",
    "b.hs 3f",
    "stp xzr, xzr, [x1], #16",
    "b 2b",
    "3:",
    "mov x0, x19",
    "bl {main}",
    // `moat_main` never returns; should it ever, stop here rather than run into the vectors.
    "4:",
    "wfe",
    "b 4b",
    sctlr_el2_res1 = const SCTLR_EL2_RES1,
    vectors = sym crate::switch::moat_el2_vectors,
    main = sym crate::moat_main,
);

/// `SCTLR_EL2` bits that are RES1 when `HCR_EL2.E2H` is 0: bits 4, 5, 11, 16, 18, 22, 23, 28
/// and 29.
pub const SCTLR_EL2_RES1: u64 = 0x30C5_0830;
