//! The probe's first instructions and its exception vectors (ARM state, PL1).
//!
//! The image starts like a Linux zImage (`b` to the entry code, the magic 0x016f2818 at 0x24,
//! start and end at 0x28/0x2c, the endianness word at 0x30), so a loader can check what it
//! loads. The entry code runs in SVC mode, ARM state, MMU off, with r2 = the device tree (the
//! Linux 32-bit boot protocol): it masks A, I, F (`CPSID`), gives SVC, ABT, UND and SYS/USR their
//! own stacks, installs the vectors (`VBAR`, `SCTLR.V` = 0), sets `SCTLR.A` (misaligned accesses
//! fault, as Device memory does on hardware), zeroes BSS and calls `moat32_main`.
//!
//! The vectors, their stubs and the common path share one 4 KiB page (`.text.vectors`) and reach
//! each other only by relative branches, so the same page works at `VBAR` and mapped at
//! `0xffff0000` (`SCTLR.V`, `probe.hivecs=1`). A stub first parks the interrupted r0 (a
//! completed load's value) in its mode's banked SP, reads `CPSR` as the exception left it, and
//! only then `SETEND LE`s (with `SCTLR.EE` the entry set `CPSR.E`) and clears `CPSR.PAN` (with
//! `SCTLR.SPAN` = 0 the entry set it, and RAM is PL0-accessible): no memory access happens
//! before that. `MRS` reads `CPSR.T` as 0; the T32 stubs set it in the record, since only a
//! T32 entry can run them. The common path switches to SVC mode, reloads the stack the case's trampoline
//! saved (`moat32_saved_sp`, an absolute address), calls `moat32_record` and returns from the
//! trampoline (`enter.rs`) by popping what it pushed. An exception while no case runs is fatal:
//! `moat32_record` prints it and powers off. A second page holds the same in T32
//! (`.text.vectors_t32`), used with `SCTLR.TE` = 1 (`probe.te=1`).

use core::arch::global_asm;

global_asm!(
    r#"
    .pushsection .text.head, "ax"
    .arm
    .global _start
_start:
    b       moat32_entry
    .rept 8
    nop
    .endr
    .word   0x016f2818              // 0x24: zImage magic
    .word   __image_start           // 0x28: start
    .word   __load_end              // 0x2c: end of the loaded part
    .word   0x04030201              // 0x30: little-endian image

moat32_entry:
    cpsid   aif
    mov     r4, r2                  // the device tree
    mrs     r5, spsr                // SPSR_svc as the loader left it (before any mode switch)
    cps     #0x17                   // Abort mode
    ldr     sp, =__stack_abt_top
    cps     #0x1b                   // Undefined mode
    ldr     sp, =__stack_und_top
    cps     #0x1f                   // System mode: SP_usr
    ldr     sp, =__stack_usr_top
    cps     #0x13                   // back to Supervisor mode
    ldr     sp, =__stack_svc_top
    ldr     r0, =__vectors_page
    mcr     p15, 0, r0, c12, c0, 0  // VBAR
    mrc     p15, 0, r0, c1, c0, 0   // SCTLR
    bic     r0, r0, #(1 << 13)      // V = 0: vectors at VBAR
    bic     r0, r0, #(1 << 25)      // EE = 0 (the probe sets it per probe.ee later)
    bic     r0, r0, #(1 << 30)      // TE = 0: exception handlers in ARM state
    orr     r0, r0, #(1 << 1)       // A = 1: alignment checks
    mcr     p15, 0, r0, c1, c0, 0
    isb
    ldr     r0, =__bss_start
    ldr     r1, =__bss_end
    mov     r2, #0
1:  cmp     r0, r1
    strlo   r2, [r0], #4
    blo     1b
    mov     r0, r4
    mov     r1, r5
    bl      moat32_main             // never returns
2:  wfe                             // unreachable: moat32_main is `-> !`
    b       2b
    .ltorg
    .popsection

    .pushsection .text.vectors, "ax"
    .arm
    .global moat32_vectors
moat32_vectors:
    b       moat32_vec_reset        // 0x00
    b       moat32_vec_und          // 0x04 Undefined instruction
    b       moat32_vec_svc          // 0x08 Supervisor call
    b       moat32_vec_pabt         // 0x0c Prefetch abort
    b       moat32_vec_dabt         // 0x10 Data abort
    b       moat32_vec_hyp          // 0x14 (not used at PL1)
    b       moat32_vec_irq          // 0x18 IRQ
    b       moat32_vec_fiq          // 0x1c FIQ

    .macro moat32_stub name, offset
moat32_vec_\name:
    mov     sp, r0                  // the interrupted r0, kept in this mode's banked SP
    mrs     r0, cpsr                // CPSR at handler entry (MRS reads T, J, IT as 0)
    setend  le
    bic     r1, r0, #(1 << 22)
    msr     cpsr_s, r1              // PAN = 0: the handler may touch PL0-accessible RAM
    mov     r1, #\offset
    b       moat32_common
    .endm
    moat32_stub reset, 0x00
    moat32_stub und, 0x04
    moat32_stub svc, 0x08
    moat32_stub pabt, 0x0c
    moat32_stub dabt, 0x10
    moat32_stub hyp, 0x14
    moat32_stub irq, 0x18
    moat32_stub fiq, 0x1c

moat32_common:                      // r0 = CPSR, r1 = vector offset, in the exception's mode
    mov     r2, lr
    mrs     r3, spsr
    mov     r12, sp                 // the interrupted r0
    cps     #0x13                   // Supervisor mode, A and I stay masked
    ldr     sp, 1f
    ldr     sp, [sp]                // the trampoline's stack (0 outside a case)
    cmp     sp, #0
    ldreq   sp, 2f                  // outside a case: a fresh stack; moat32_record powers off
    sub     sp, sp, #8
    str     r12, [sp]               // fifth argument
    ldr     r12, 3f
    blx     r12                     // moat32_record(cpsr, vector, lr, spsr, r0)
    add     sp, sp, #8
    pop     {{r4-r11, pc}}          // return from moat32_enter
1:  .word   moat32_saved_sp
2:  .word   __stack_svc_top
3:  .word   moat32_record
    .popsection

    // The same in T32, for SCTLR.TE = 1 (exception entry sets CPSR.T): its own page, reached
    // only by relative branches too.
    .pushsection .text.vectors_t32, "ax"
    .thumb
    .syntax unified
    .global moat32_vectors_t32
moat32_vectors_t32:
    b.w     moat32_t_vec_reset      // 0x00: 32-bit branches, one per 4-byte vector
    b.w     moat32_t_vec_und
    b.w     moat32_t_vec_svc
    b.w     moat32_t_vec_pabt
    b.w     moat32_t_vec_dabt
    b.w     moat32_t_vec_hyp
    b.w     moat32_t_vec_irq
    b.w     moat32_t_vec_fiq

    .macro moat32_t_stub name, offset
moat32_t_vec_\name:
    mov     sp, r0
    mrs     r0, cpsr
    setend  le
    bic     r1, r0, #(1 << 22)
    msr     cpsr_s, r1
    orr     r0, r0, #(1 << 5)       // CPSR.T: MRS reads it as 0, and this page runs only in T32
    mov.w   r1, #\offset
    b.w     moat32_t_common
    .endm
    moat32_t_stub reset, 0x00
    moat32_t_stub und, 0x04
    moat32_t_stub svc, 0x08
    moat32_t_stub pabt, 0x0c
    moat32_t_stub dabt, 0x10
    moat32_t_stub hyp, 0x14
    moat32_t_stub irq, 0x18
    moat32_t_stub fiq, 0x1c

moat32_t_common:                    // as moat32_common, in T32
    mov     r2, lr
    mrs     r3, spsr
    mov     r12, sp
    cps     #0x13
    ldr     r4, 1f
    ldr     r4, [r4]
    cmp     r4, #0
    it      eq
    ldreq   r4, 2f
    mov     sp, r4
    sub     sp, sp, #8
    str     r12, [sp]
    ldr     r4, 3f
    blx     r4
    add     sp, sp, #8
    pop     {{r4-r11, pc}}          // interworking return into moat32_enter's ARM caller
    .balign 4
1:  .word   moat32_saved_sp
2:  .word   __stack_svc_top
3:  .word   moat32_record
    .arm
    .popsection
"#
);
