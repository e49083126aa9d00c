//! Moat's entry point: an arm64 Linux `Image` header, so that QEMU's `-kernel` and U-Boot's
//! `booti` load Moat and pass the device tree in `x0` (Linux `Documentation/arch/arm64/booting`).
//!
//! The loader enters at offset 0 at EL2 with the MMU and D-cache off. The assembly puts
//! `SCTLR_EL2` in a known state, applies Moat's relocations, installs the vectors, sets the boot
//! stack, zeroes `.bss` and calls [`crate::moat_main`] with the device tree's address.
//!
//! # Relocation
//!
//! Moat runs wherever the loader put it (the `Image` rules: any 2 MiB-aligned address plus
//! `text_offset`; RAM starts at 0 on the ZCU102 and at 0x4000_0000 on QEMU `virt`). It is a
//! position-independent executable linked at 0 (`link.ld`, `build.rs`): code reaches code and
//! data PC-relatively (`adrp`/`add`), and the only absolute addresses are the pointers stored in
//! data (vtables, `&'static` references in statics, the `fdt` crate's tables), each with an
//! `R_AARCH64_RELATIVE` relocation in `.rela.dyn` (ELF for the Arm 64-bit Architecture,
//! "Dynamic relocations": the place gets `Delta(S) + A`, here load address + addend). The loop
//! below applies them before anything reads such a pointer; the host tool refuses an image with
//! any other relocation kind (`xtask`'s build), so the loop's check never fails on a built image.
//!
//! The other way, an EL2 stage 1 that maps the image at its link address wherever it was
//! loaded, was not taken: Moat uses physical addresses as pointers everywhere (its identity
//! map, `mm.rs`), and the Rust code that runs before translation is on (device-tree parsing,
//! the console, the heap) would still run at the load address with absolute pointers from the
//! link. A relocated PIE needs neither a second mapping nor any change to that code.
//!
//! Until the relocations are applied, the assembly uses PC-relative addressing (`adr`, `adrp`)
//! and literal constants only; afterwards everything may.

use core::arch::global_asm;

global_asm!(
    ".section .text.head, \"ax\"",
    ".global _start",
    "_start:",
    // code0: branch over the header; code1: reserved.
    "b 1f",
    ".long 0",
    // text_offset: the image goes 0x200000 past a 2 MiB boundary (any: see bit 3 of flags).
    ".quad 0x200000",
    // image_size, including .bss and the boot stack, so that a loader reserves it all.
    ".quad __image_end - _start",
    // flags: little-endian (bit 0 clear), 4K pages (bits 1-2 = 1), and bit 3: the 2 MiB-aligned
    // base may be anywhere in physical memory (U-Boot's `booti` then leaves the image where it
    // was loaded instead of moving it to RAM base + text_offset).
    ".quad 0xa",
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
    // Relocation (see the module doc): x20 = where the image is; for every Elf64_Rela
    // {r_offset, r_info, r_addend} in [__rela_start, __rela_end), *(x20 + r_offset) =
    // x20 + r_addend. r_info must be R_AARCH64_RELATIVE with symbol index 0.
    "adr x20, _start",
    "adrp x1, __rela_start",
    "add x1, x1, :lo12:__rela_start",
    "adrp x2, __rela_end",
    "add x2, x2, :lo12:__rela_end",
    "5:",
    "cmp x1, x2",
    "b.hs 6f",
    "ldp x3, x4, [x1], #16",
    "ldr x5, [x1], #8",
    "cmp x4, #{r_aarch64_relative}",
    // Another relocation kind cannot be applied here, and without relocations there is no
    // console to say so: stop (the host tool refuses such an image before it boots).
    "b.ne 4f",
    "add x5, x5, x20",
    "str x5, [x20, x3]",
    "b 5b",
    "6:",
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
    // The relocations and the zeroed .bss went to memory (the MMU is off: Device accesses),
    // but the data cache may still hold lines of the image from before (the loader only had to
    // clean it to the PoC, not invalidate it; .bss and the stacks not even that). Invalidate
    // the whole image by VA to the PoC (`DC IVAC`, line size 4 << CTR_EL0.DminLine bytes), so
    // that nothing stale is read once `mm.rs` turns the caches on.
    "mrs x3, ctr_el0",
    "ubfx x3, x3, #16, #4",
    "mov x4, #4",
    "lsl x4, x4, x3",
    "sub x5, x4, #1",
    "bic x1, x20, x5",
    "adrp x2, __image_end",
    "add x2, x2, :lo12:__image_end",
    "7:",
    "dc ivac, x1",
    "add x1, x1, x4",
    "cmp x1, x2",
    "b.lo 7b",
    "dsb sy",
    "mov x0, x19",
    "bl {main}",
    // `moat_main` never returns; should it ever, stop here rather than run into the vectors.
    "4:",
    "wfe",
    "b 4b",
    sctlr_el2_res1 = const SCTLR_EL2_RES1,
    r_aarch64_relative = const R_AARCH64_RELATIVE,
    vectors = sym crate::switch::moat_el2_vectors,
    main = sym crate::moat_main,
);

/// The `r_info` of the only relocation Moat's image holds: type `R_AARCH64_RELATIVE` (1027),
/// symbol index 0.
const R_AARCH64_RELATIVE: u64 = 1027;

/// `SCTLR_EL2` bits that are RES1 when `HCR_EL2.E2H` is 0: bits 4, 5, 11, 16, 18, 22, 23, 28
/// and 29.
pub const SCTLR_EL2_RES1: u64 = 0x30C5_0830;
