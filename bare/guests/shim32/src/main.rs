//! `moat-guest-shim32`: the bare reference for AArch32 guests (SPEC §6). QEMU TCG refuses
//! `-cpu X,aarch64=off`, so an AArch32 EL1 without a hypervisor exists only below a few lines of
//! EL2 code: this `Image` is entered by QEMU's `-kernel` at EL2 (with
//! `-M virt,virtualization=on`) with X0 = the device tree, sets `HCR_EL2` = 0 (`RW` = 0: EL1 is
//! AArch32; no traps, no stage 2), puts `SCTLR_EL1` in an AArch32 reset state and `ERET`s into
//! AArch32 SVC mode at [`PROBE_ENTRY`] with the Linux 32-bit boot registers (r0 = 0, r1 = ~0,
//! r2 = the device tree). From then on every exception of the AArch32 code is the CPU's own.
//!
//! The AArch32 program (`moat-guest-probe32`) is put at [`PROBE_ENTRY`] by QEMU's generic loader
//! (`-device loader,file=probe32.bin,addr=0x40100000`). EL2 then handles exactly one thing: the
//! program's `HVC #0` PSCI calls, forwarded to QEMU's firmware with `SMC #0` (the device tree of
//! `virtualization=on` says `method = "smc"`). It writes one AArch32 SPSR, a marker in
//! `SPSR_svc` before the `ERET` ([`SPSR_SVC_MARKER`]), and no other. Any other exception taken to EL2 prints one line
//! and powers off. Commands and results: `bare/guests/probe32/README.md`.
#![no_std]
#![no_main]

use core::arch::global_asm;
use core::fmt::{self, Write};

/// Where the AArch32 program is loaded and entered (ARM state, SVC mode, MMU off).
const PROBE_ENTRY: u64 = 0x4010_0000;
/// Offset of the zImage magic in the program's header (Linux `arch/arm/boot/compressed`), and
/// its value: the shim refuses to jump into memory that holds no program.
const ZIMAGE_MAGIC_OFFSET: u64 = 0x24;
const ZIMAGE_MAGIC: u32 = 0x016f_2818;
/// QEMU virt's PL011 (the shim prints only when it refuses to run or something goes wrong).
const UART_BASE: usize = 0x0900_0000;
/// What the shim writes to `SPSR_EL1` (the AArch32 `SPSR_svc`) before entering SVC mode: N set,
/// User mode, A, I, F masked. The probe prints the `SPSR_svc` it finds at entry
/// (`entry_spsr=` on its `probe32:` line), which shows whether the CPU model keeps the two
/// views of that register coherent across the `ERET` (QEMU does not: TOOLCHAIN.md).
const SPSR_SVC_MARKER: u64 = 0x8000_01d0;
/// PSCI `SYSTEM_OFF` (SMC32 function id).
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;

global_asm!(
    r#"
    .pushsection .text.head, "ax"
    .global _start
_start:
    b       shim_primary            // code0
    .long   0                       // code1
    .quad   0x80000                 // text_offset
    .quad   __image_size            // image_size
    .quad   0b0010                  // flags: LE, 4K pages, base near the start of RAM
    .quad   0, 0, 0                 // res2..res4
    .byte   0x41, 0x52, 0x4d, 0x64  // magic "ARM\x64"
    .long   0                       // res5

shim_primary:
    msr     daifset, #0xf
    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    adrp    x1, shim_vectors
    add     x1, x1, :lo12:shim_vectors
    msr     vbar_el2, x1
    isb
    bl      shim_main               // x0 = DTB; returns only to enter the program
    // x0 = DTB. HCR_EL2 and the EL1 registers are set; enter AArch32 SVC at the program.
    mov     x2, x0                  // r2 = DTB
    mov     x0, xzr                 // r0 = 0
    mov     x1, #0xffffffff         // r1 = ~0 (no machine type: the DTB describes the board)
    mov     x3, xzr
    ldr     x4, ={ENTRY}
    msr     elr_el2, x4
    mov     x4, #0x1d3              // SPSR_EL2: M[4] = 1 (AArch32), M = SVC (0x13), A, I, F set
    msr     spsr_el2, x4
    mov     x4, xzr
    eret

    // EL2 vectors: only a synchronous exception from a lower EL in AArch32 (+0x600) is expected.
    .macro shim_vector offset
    .balign 0x80
    mov     x0, #\offset
    b       shim_fatal
    .endm
    .balign 0x800
shim_vectors:
    shim_vector 0x000
    shim_vector 0x080
    shim_vector 0x100
    shim_vector 0x180
    shim_vector 0x200
    shim_vector 0x280
    shim_vector 0x300
    shim_vector 0x380
    shim_vector 0x400
    shim_vector 0x480
    shim_vector 0x500
    shim_vector 0x580
    .balign 0x80
    // +0x600: synchronous, lower EL, AArch32. X0..X14 are the program's r0..r14 and X15..X30
    // its banked registers: save what is used here and restore it before ERET.
    stp     x4, x5, [sp, #-16]!
    mrs     x4, esr_el2
    lsr     x5, x4, #26             // ESR_EL2.EC
    cmp     x5, #0x12               // HVC executed in AArch32 state
    b.ne    1f
    tst     x4, #0xffff             // ISS.imm16: only HVC #0 is a PSCI call
    b.ne    1f
    mov     w0, w0                  // SMCCC SMC32: arguments are 32 bits wide
    mov     w1, w1
    mov     w2, w2
    mov     w3, w3
    smc     #0                      // QEMU's PSCI; results in x0..x3 become r0..r3
    ldp     x4, x5, [sp], #16
    eret                            // ELR_EL2: the instruction after the HVC
1:  ldp     x4, x5, [sp], #16
    mov     x0, #0x600
    b       shim_fatal
    shim_vector 0x680
    shim_vector 0x700
    shim_vector 0x780

shim_fatal:                         // x0 = vector offset; never returns
    mrs     x1, esr_el2
    mrs     x2, elr_el2
    mrs     x3, far_el2
    mrs     x4, spsr_el2
    adrp    x5, __stack_top
    add     x5, x5, :lo12:__stack_top
    mov     sp, x5
    bl      shim_unexpected
    .popsection
"#,
    ENTRY = const PROBE_ENTRY,
);

/// The PL011 data register, written with the FIFO-full flag checked (PL011 TRM, `UARTDR`,
/// `UARTFR.TXFF`).
struct Uart;

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        const UARTFR: usize = 0x18;
        const TXFF: u32 = 1 << 5;
        for byte in s.bytes() {
            // SAFETY: QEMU virt has its PL011 at UART_BASE (device memory, identity-accessed with
            // the MMU off); UARTFR and UARTDR are its flag and data registers, 32 bits wide.
            unsafe {
                while core::ptr::read_volatile((UART_BASE + UARTFR) as *const u32) & TXFF != 0 {}
                core::ptr::write_volatile(UART_BASE as *mut u32, u32::from(byte));
            }
        }
        Ok(())
    }
}

macro_rules! println {
    ($($arg:tt)*) => {{
        let _ = writeln!(Uart, $($arg)*);
    }};
}

/// Reads a system register.
macro_rules! mrs {
    ($reg:literal) => {{
        let value: u64;
        // SAFETY: reading an EL2/EL1 system register at EL2 has no side effect.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $reg), out(reg) value, options(nomem, nostack)) };
        value
    }};
}

/// PSCI `SYSTEM_OFF` through QEMU's firmware; parks the CPU if it returns.
fn system_off() -> ! {
    // SAFETY: SMC #0 at EL2 is QEMU's PSCI (no EL3); SYSTEM_OFF does not return on success, and
    // on failure clobbers only x0..x3, declared here.
    unsafe {
        core::arch::asm!("smc #0", inout("x0") PSCI_SYSTEM_OFF => _, out("x1") _, out("x2") _,
            out("x3") _, options(nostack));
    }
    println!("shim32: PSCI SYSTEM_OFF returned");
    loop {
        // SAFETY: WFE only waits; nothing is left to do once power-off failed.
        unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
    }
}

/// Checks that EL1 can be AArch32 and that a program is loaded, then programs EL2 and the EL1
/// registers the program relies on. Returns the DTB for the entry code's `ERET`.
#[unsafe(no_mangle)]
extern "C" fn shim_main(dtb: u64) -> u64 {
    let midr = mrs!("midr_el1");
    let pfr0 = mrs!("id_aa64pfr0_el1");
    // ID_AA64PFR0_EL1.EL1 (bits [7:4]): 0b0001 AArch64 only, 0b0010 AArch64 and AArch32.
    // QEMU 7.2 lets HCR_EL2.RW = 0 stick on AArch64-only cores (cortex-a76, neoverse-n1, a64fx),
    // where the Arm ARM makes RW RAO/WI: trust the ID register, never the write.
    let el1 = (pfr0 >> 4) & 0xf;
    if el1 != 2 {
        println!(
            "shim32: refused: ID_AA64PFR0_EL1.EL1 = {el1} (midr {midr:#x}): EL1 is AArch64-only \
             on this CPU; use cortex-a53, cortex-a57, cortex-a72 or max"
        );
        system_off();
    }
    // SAFETY: the generic loader put the program at PROBE_ENTRY, in RAM; reading a word of RAM
    // with the MMU off has no side effect.
    let magic =
        unsafe { core::ptr::read_volatile((PROBE_ENTRY + ZIMAGE_MAGIC_OFFSET) as *const u32) };
    if magic != ZIMAGE_MAGIC {
        println!(
            "shim32: refused: no AArch32 program at {PROBE_ENTRY:#x} (zImage magic {magic:#x}); \
             add -device loader,file=probe32.bin,addr={PROBE_ENTRY:#x}"
        );
        system_off();
    }
    // HCR_EL2 = 0: RW = 0 (EL1 is AArch32), VM = 0 (no stage 2), no trap or routing bit.
    // CPTR_EL2: TFP = 0 and the RES1 bits [13:12], [9:0]. HSTR_EL2 = 0: no CP15 traps.
    // MDCR_EL2: TDE, TDA, TDOSA, TDRA, TPM, TPMCR cleared, so BKPT and debug stay at EL1.
    // CNTHCTL_EL2.EL1PCEN/EL1PCTEN: EL1 owns the counter. SCTLR_EL1: the AArch32 reset value
    // of these cores (0x00c50838: nTLSMD, LSMAOE, CP15BEN, RES1 bit 11, nTWI, nTWE, RES1 bit
    // 22, SPAN; M, A, C, I, V, EE, TE all 0).
    let mdcr = mrs!("mdcr_el2") & !0xfe0;
    // SAFETY: these EL2 writes change only how the lower ELs run: nothing at EL1 runs until the
    // ERET of the entry code, and EL2 keeps its own vectors and stack.
    unsafe {
        core::arch::asm!(
            "msr hcr_el2, xzr",
            "msr cptr_el2, {cptr}",
            "msr hstr_el2, xzr",
            "msr mdcr_el2, {mdcr}",
            "msr cnthctl_el2, {cnthctl}",
            "msr cntvoff_el2, xzr",
            "msr sctlr_el1, {sctlr}",
            "msr spsr_el1, {marker}",
            "isb",
            cptr = in(reg) 0x33ffu64,
            mdcr = in(reg) mdcr,
            cnthctl = in(reg) 3u64,
            sctlr = in(reg) 0x00c5_0838u64,
            marker = in(reg) SPSR_SVC_MARKER,
            options(nostack),
        );
    }
    let pfr0_el0 = pfr0 & 0xf;
    println!(
        "shim32: midr={midr:#x} id_aa64pfr0.el0={pfr0_el0} el1={el1} hcr_el2={:#x}: \
         entering AArch32 SVC at {PROBE_ENTRY:#x}",
        mrs!("hcr_el2")
    );
    dtb
}

/// An exception the shim does not handle: print it and power off.
#[unsafe(no_mangle)]
extern "C" fn shim_unexpected(vector: u64, esr: u64, elr: u64, far: u64, spsr: u64) -> ! {
    println!(
        "shim32: unexpected exception at EL2: vector={vector:#x} ESR_EL2={esr:#x} \
         ELR_EL2={elr:#x} FAR_EL2={far:#x} SPSR_EL2={spsr:#x}"
    );
    system_off()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("shim32: panic: {info}");
    system_off()
}
