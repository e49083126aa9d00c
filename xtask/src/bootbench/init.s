// The `/init` of `./x bench boot`: its first instruction reads the virtual counter, so the
// value it prints is the virtual time from QEMU's start (the counter starts at 0 with the
// machine; Moat and bare QEMU leave CNTVOFF_EL2 at 0) to the first instruction of `/init`.
// It prints `MOAT-INIT cntvct=<hex> cntfrq=<hex>` on the console and powers the machine off
// (reboot(2), LINUX_REBOOT_CMD_POWER_OFF): no C library, no dynamic loader, nothing before the
// first read. Linux arm64 system calls: number in x8, `svc #0`; write = 64, reboot = 142.

    .text
    .global _start
_start:
    mrs     x19, cntvct_el0
    mrs     x20, cntfrq_el0
    ldr     x0, =vct
    mov     x1, x19
    bl      hex16
    ldr     x0, =frq
    mov     x1, x20
    bl      hex16
    mov     x0, #1
    ldr     x1, =line
    mov     x2, #(line_end - line)
    mov     x8, #64
    svc     #0
    // reboot(LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_POWER_OFF, NULL)
    movz    w0, #0xfee1, lsl #16
    movk    w0, #0xdead
    movz    w1, #0x2812, lsl #16
    movk    w1, #0x1969
    movz    w2, #0x4321, lsl #16
    movk    w2, #0xfedc
    mov     x3, #0
    mov     x8, #142
    svc     #0
1:  b       1b

// Writes x1 as 16 lower-case hex digits at x0.
hex16:
    mov     x2, #60
2:  lsr     x3, x1, x2
    and     x3, x3, #0xf
    add     x4, x3, #'0'
    add     x5, x3, #('a' - 10)
    cmp     x3, #10
    csel    x3, x4, x5, lo
    strb    w3, [x0], #1
    subs    x2, x2, #4
    b.ge    2b
    ret

    .data
line:
    .ascii  "MOAT-INIT cntvct="
vct:
    .ascii  "0000000000000000 cntfrq="
frq:
    .ascii  "0000000000000000\n"
line_end:
