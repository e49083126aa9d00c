// kvmcheck: the KVM runner's check guest. A raw AArch64 image entered at EL1h with the MMU off
// (x0 = the device tree, unused), loaded at 0x4008_0000; position-independent (ADR only).
//
// It proves what the runner must do and measures one exit, printing `KVMCHECK` lines on the
// PL011 at 0x0900_0000 (data register writes only: the emulated transmit FIFO is never full):
//   KVMCHECK hello CurrentEL <hex>    the exception level it runs at (2 = EL1 in bits [3:2])
//   KVMCHECK cntfrq <hex>             CNTFRQ_EL0
//   KVMCHECK cpu_on <hex>             PSCI CPU_ON of MPIDR 1 (0: started; -2: no such vCPU)
//   KVMCHECK cpu1 up                  from vCPU 1, which then turns itself off (PSCI CPU_OFF)
//   KVMCHECK psci_version <hex>       PSCI_VERSION's answer
//   KVMCHECK batch <cal> <base> <op>  per batch: CNTVCT ticks of CAL iterations of a 2-instruction
//                                     loop (to calibrate instructions per tick), of N iterations
//                                     of the empty benchmark loop, and of N iterations of the same
//                                     loop with `hvc #0` (PSCI_VERSION) added
//   KVMCHECK done
// then PSCI SYSTEM_OFF. PSCI is reached by HVC (SMCCC; function ids from PSCI DEN 0022).
// The loop counters live in x19..x28: an SMCCC call may overwrite x0..x17.

        .equ UART_DR, 0x09000000
        .equ BATCHES, 21
        .equ CAL, 65536
        .equ N, 256

        .text
        .global _start
_start:
        adr     x1, m_hello
        bl      puts
        mrs     x0, CurrentEL
        bl      put_hex
        bl      put_nl
        adr     x1, m_cntfrq
        bl      puts
        mrs     x0, cntfrq_el0
        bl      put_hex
        bl      put_nl

        // PSCI CPU_ON (0xC4000003): MPIDR 1, entry `secondary`, context 0.
        movz    x0, #0xC400, lsl #16
        movk    x0, #3
        mov     x1, #1
        adr     x2, secondary
        mov     x3, #0
        hvc     #0
        mov     x20, x0
        adr     x1, m_cpu_on
        bl      puts
        mov     x0, x20
        bl      put_hex
        bl      put_nl
        cbnz    x20, measure
        adr     x2, cpu1_flag
1:      wfe                                     // vCPU 1 raises the flag, then SEV
        ldr     w3, [x2]
        cbz     w3, 1b

measure:
        movz    w0, #0x8400, lsl #16            // PSCI_VERSION (0x84000000)
        hvc     #0
        mov     x20, x0
        adr     x1, m_version
        bl      puts
        mov     x0, x20
        bl      put_hex
        bl      put_nl

        mov     x24, #BATCHES
batch:
        isb
        mrs     x21, cntvct_el0
        mov     x19, #CAL
1:      subs    x19, x19, #1
        b.ne    1b
        isb
        mrs     x22, cntvct_el0
        sub     x21, x22, x21                   // x21: calibration ticks

        isb
        mrs     x22, cntvct_el0
        mov     x19, #N
2:      movz    w0, #0x8400, lsl #16
        subs    x19, x19, #1
        b.ne    2b
        isb
        mrs     x23, cntvct_el0
        sub     x22, x23, x22                   // x22: empty loop ticks

        isb
        mrs     x23, cntvct_el0
        mov     x19, #N
3:      movz    w0, #0x8400, lsl #16
        hvc     #0
        subs    x19, x19, #1
        b.ne    3b
        isb
        mrs     x25, cntvct_el0
        sub     x23, x25, x23                   // x23: HVC loop ticks

        adr     x1, m_batch
        bl      puts
        mov     x0, x21
        bl      put_hex
        mov     x0, x22
        bl      put_hex
        mov     x0, x23
        bl      put_hex
        bl      put_nl
        subs    x24, x24, #1
        b.ne    batch

        adr     x1, m_done
        bl      puts
        movz    w0, #0x8400, lsl #16
        add     w0, w0, #8                      // SYSTEM_OFF (0x84000008)
        hvc     #0
        adr     x1, m_off_failed
        bl      puts
halt:   wfi
        b       halt

// vCPU 1: say so, raise the flag vCPU 0 waits for (in WFE: a spinning vCPU 0 could keep an
// emulator that runs its CPUs in turn from ever running vCPU 1), and turn off (CPU_OFF, 0x84000002).
secondary:
        adr     x1, m_cpu1
        bl      puts
        adr     x2, cpu1_flag
        mov     w3, #1
        str     w3, [x2]
        dsb     sy
        sev
        movz    w0, #0x8400, lsl #16
        add     w0, w0, #2
        hvc     #0
        b       halt

// puts: writes the NUL-terminated string at x1. Clobbers x1, x9, x10.
puts:
        movz    x9, #(UART_DR >> 16), lsl #16
1:      ldrb    w10, [x1], #1
        cbz     w10, 2f
        str     w10, [x9]
        b       1b
2:      ret

// put_hex: writes " 0x" and x0 as 16 hexadecimal digits. Clobbers x9..x13.
put_hex:
        movz    x9, #(UART_DR >> 16), lsl #16
        mov     w10, #' '
        str     w10, [x9]
        mov     w10, #'0'
        str     w10, [x9]
        mov     w10, #'x'
        str     w10, [x9]
        mov     x11, #60
1:      lsr     x10, x0, x11
        and     x10, x10, #0xf
        add     x12, x10, #'0'
        add     x13, x10, #('a' - 10)
        cmp     x10, #10
        csel    x10, x12, x13, lo
        str     w10, [x9]
        subs    x11, x11, #4
        b.ge    1b
        ret

// put_nl: writes a newline. Clobbers x9, x10.
put_nl:
        movz    x9, #(UART_DR >> 16), lsl #16
        mov     w10, #'\n'
        str     w10, [x9]
        ret

m_hello:        .asciz "KVMCHECK hello CurrentEL"
m_cntfrq:       .asciz "KVMCHECK cntfrq"
m_cpu_on:       .asciz "KVMCHECK cpu_on"
m_cpu1:         .asciz "KVMCHECK cpu1 up\n"
m_version:      .asciz "KVMCHECK psci_version"
m_batch:        .asciz "KVMCHECK batch"
m_done:         .asciz "KVMCHECK done\n"
m_off_failed:   .asciz "KVMCHECK SYSTEM_OFF returned\n"
        .balign 8
cpu1_flag:      .word 0
