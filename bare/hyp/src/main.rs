//! Moat's EL2 binary.
#![no_std]
#![no_main]

use core::arch::global_asm;

global_asm!(
    ".section .text.head, \"ax\"",
    ".global _start",
    "_start:",
    "b 2f",
    ".long 0",
    ".quad 0x200000",
    ".quad __image_end - _start",
    ".quad 2",
    ".quad 0", ".quad 0", ".quad 0",
    ".ascii \"ARM\\x64\"",
    ".long 0",
    "2:",
    "adrp x1, __stack_top",
    "add x1, x1, :lo12:__stack_top",
    "mov sp, x1",
    "bl moat_main",
);

#[unsafe(no_mangle)]
extern "C" fn moat_main(_dtb: usize) -> ! {
    for b in b"Moat\n" {
        // SAFETY: test
        unsafe { core::ptr::write_volatile(0x0900_0000 as *mut u32, *b as u32) };
    }
    // SAFETY: test
    unsafe { core::arch::asm!("smc #0", in("x0") 0x8400_0008u64, options(noreturn)) };
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
