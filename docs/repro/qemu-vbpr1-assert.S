// QEMU bug reproducer (docs/qemu-departures.md, "ICC_BPR1_EL1 = 8 kills QEMU"): a guest of a
// hypervisor that sets HCR_EL2.IMO = 1 (Moat does) writes 8 to ICC_BPR1_EL1 — which is then
// ICV_BPR1_EL1 — makes SGI 1 pending to itself and reads ICC_IAR1_EL1 with IRQs masked.
// QEMU (7.2 and 10.0.2) leaves the virtual VBPR1 at 0 and its icv_gprio_mask() asserts
// "bpr > 0", which ends QEMU, Moat and every VM (bare, without a hypervisor, the same happens
// in icc_gprio_mask()). Where the write sets the minimum binary point (GICv3, ICC_BPR1_EL1),
// the IAR read returns 1 and the guest prints "IAR=1 OK" and powers off.
// Raw binary for `./x run --guest` (loaded at RAM base + 0x80000, MMU off, GICv3 of QEMU virt).
    movz x10, #0x0800, lsl #16          // GICD
    mov w1, #0x12                       // GICD_CTLR: ARE_NS | EnableGrp1NS
    str w1, [x10]
    movz x11, #0x080a, lsl #16          // GICR of CPU 0 (RD_base)
    ldr w1, [x11, #0x14]                // GICR_WAKER: clear ProcessorSleep
    bic w1, w1, #2
    str w1, [x11, #0x14]
1:  ldr w1, [x11, #0x14]                // wait for ChildrenAsleep = 0
    tbnz w1, #2, 1b
    add x12, x11, #0x10000              // SGI_base
    mov w1, #2
    str w1, [x12, #0x80]                // GICR_IGROUPR0: SGI 1 in Group 1
    mov w1, #0x8000
    str w1, [x12, #0x400]               // GICR_IPRIORITYR0: SGI 1 priority 0x80
    mov w1, #2
    str w1, [x12, #0x100]               // GICR_ISENABLER0: enable SGI 1
    mov x0, #1
    msr s3_0_c12_c12_5, x0              // ICC_SRE_EL1.SRE
    isb
    mov x0, #0xff
    msr s3_0_c4_c6_0, x0                // ICC_PMR_EL1
    mov x0, #1
    msr s3_0_c12_c12_7, x0              // ICC_IGRPEN1_EL1
    mov x0, #8
    msr s3_0_c12_c12_3, x0              // ICC_BPR1_EL1 = 8 (BinaryPoint is bits [2:0])
    isb
    movz x0, #0x0100, lsl #16           // ICC_SGI1R_EL1: INTID 1, TargetList = CPU 0
    orr x0, x0, #1
    msr s3_0_c12_c11_5, x0
    isb
2:  mrs x0, s3_0_c12_c12_2              // ICC_HPPIR1_EL1: wait until SGI 1 is pending
    cmp x0, #1
    b.ne 2b
    mrs x0, s3_0_c12_c12_0              // ICC_IAR1_EL1: QEMU asserts here
    movz x9, #0x0900, lsl #16           // PL011
    adr x1, msg
3:  ldrb w2, [x1], #1
    cbz w2, 4f
    str w2, [x9]
    b 3b
4:  add x0, x0, #'0'
    str w0, [x9]
    adr x1, ok
5:  ldrb w2, [x1], #1
    cbz w2, 6f
    str w2, [x9]
    b 5b
6:  movz x0, #0x8400, lsl #16           // PSCI SYSTEM_OFF
    movk x0, #0x0008
    hvc #0
    b .
msg: .asciz "IAR="
ok:  .asciz " OK\n"
