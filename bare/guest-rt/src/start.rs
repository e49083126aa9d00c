//! The guest's first instructions: the `Image` header, the entry code, and the first Rust
//! function, which gathers the [`BootInfo`] and calls the guest's `main`.
//!
//! The image starts with an arm64 Linux `Image` header (Linux `Documentation/arch/arm64/
//! booting.rst`): `code0` branches to the entry code, `text_offset` = 0x80000, `image_size` covers
//! BSS and the stack, `flags` = 0b0010 (little-endian, 4K pages, placed near the start of RAM),
//! and the magic "ARM\x64" sits at offset 0x38. A loader (QEMU's `-kernel`, or Moat) enters it
//! at its first byte with X0 = the device tree's physical address, the MMU off, and (under Moat)
//! at EL1h.
//!
//! The entry code masks interrupts (`DAIF`), drops to EL1 if the loader entered it at EL2 (bare
//! QEMU with `virtualization=on`: `HCR_EL2.RW` = 1 and nothing else, so the guest still runs at
//! EL1 and never takes an exception to an EL2 with no vectors), selects SP_EL1 (`SPSel`), sets
//! up the stack, zeroes BSS and installs the EL1 vectors (`VBAR_EL1`) before any Rust code runs,
//! so even a fault while parsing the device tree ends in an orderly power-off. The MMU stays off,
//! so every data access is to Device-nGnRnE memory and must be aligned (the target is
//! `+strict-align`). Hardware faults a misaligned Device access; QEMU 7.2 does not unless
//! `SCTLR_EL1.A` is set, so the entry code sets it: a misaligned access is then an alignment
//! fault everywhere, not a bug that only real machines show. Nothing else in `SCTLR_EL1` changes.

use core::arch::global_asm;

use crate::boot::{self, BootInfo, Region};
use crate::psci::{self, Conduit};
use crate::{console, dt, exception};

global_asm!(
    r#"
    .pushsection .text.head, "ax"
    .global _start
_start:
    b       moat_rt_primary         // code0
    .long   0                       // code1
    .quad   0x80000                 // text_offset
    .quad   __image_size            // image_size, BSS and stack included
    .quad   0b0010                  // flags: LE, 4K pages, 2 MiB-aligned base near RAM start
    .quad   0, 0, 0                 // res2, res3, res4
    .byte   0x41, 0x52, 0x4d, 0x64  // magic "ARM\x64" at 0x38
    .long   0                       // res5: no PE/COFF header

moat_rt_primary:
    msr     daifset, #0xf           // PSTATE.DAIF = 0b1111: no asynchronous exceptions, ever
    mov     x19, x0                 // the DTB address, kept across the BSS loop
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)           // CurrentEL.EL == 2: loaded bare with virtualization=on
    b.ne    4f
    mov     x1, #(1 << 31)          // HCR_EL2.RW = 1 (EL1 is AArch64); no traps, no stage 2
    msr     hcr_el2, x1
    mov     x1, #3                  // CNTHCTL_EL2.EL1PCEN/EL1PCTEN: EL1 owns the counter
    msr     cnthctl_el2, x1
    msr     cntvoff_el2, xzr
    mov     x1, #0x3c5              // SPSR_EL2: EL1h with D, A, I, F masked
    msr     spsr_el2, x1
    adr     x1, 4f
    msr     elr_el2, x1
    eret                            // continue below at EL1; X0..X30 are unchanged
4:  msr     spsel, #1               // run on SP_EL1 (EL1h), as Moat enters guests
    mrs     x1, sctlr_el1
    orr     x1, x1, #(1 << 1)       // SCTLR_EL1.A: fault every misaligned access, as Device
    msr     sctlr_el1, x1           // memory does on hardware (QEMU lets them pass otherwise)
    isb
    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2                  // both ends are 16-byte aligned (guest.ld)
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:  adrp    x1, moat_rt_vectors
    add     x1, x1, :lo12:moat_rt_vectors
    msr     vbar_el1, x1
    isb                             // VBAR_EL1 in effect before the first possible fault
    mov     x0, x19
    mov     x29, xzr                // end of the frame-pointer chain
    mov     x30, xzr
    bl      moat_rt_start           // never returns
3:  wfe                             // unreachable: moat_rt_start is `-> !`
    b       3b
    .popsection
"#
);

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// The loaded image's extent, from the linker script's symbols.
fn image_region() -> Region {
    let start = &raw const __image_start as usize;
    let end = &raw const __image_end as usize;
    Region::new(start, end - start)
}

// SAFETY: The guest binary defines `moat_guest_main` with exactly this signature through
// `entry!`/`tests!`, the only supported way to declare it; without it the link fails.
unsafe extern "Rust" {
    safe fn moat_guest_main(boot: &BootInfo);
}

/// The first Rust code: reads the device tree, sets up the console and PSCI, runs the guest's
/// `main`, then powers off.
#[unsafe(no_mangle)]
extern "C" fn moat_rt_start(dtb: usize) -> ! {
    exception::init();
    let facts = dt::parse(dtb);
    let info = BootInfo {
        bootargs: facts.map_or("", |f| f.bootargs),
        dtb: facts.map(|f| f.dtb),
        ram: facts.and_then(|f| f.ram),
        image: image_region(),
        uart: facts.and_then(|f| f.uart),
        psci: facts.and_then(|f| f.psci).unwrap_or(Conduit::Hvc),
    };
    console::init(info.uart);
    psci::init(info.psci);
    boot::set_info(info);
    moat_guest_main(&info);
    psci::system_off()
}
