//! Interrupts through the GICv3 as a guest driver uses it (GICv3 IHI 0069): the distributor and
//! redistributor brought up by MMIO, the CPU interface by `ICC_*` system registers, the EL1
//! virtual timer's PPI 27 (`CNTV_*`, Arm ARM "The Generic Timer") and an SGI to itself
//! (`ICC_SGI1R_EL1`). Under Moat this exercises the virtual GIC model, the list registers, the
//! timer forwarding and the SGI trap; bare, the same test runs against QEMU's GIC. On a CPU
//! without the GICv3 system registers the same tests drive a GICv2 (`gicv2.rs`): its
//! distributor by MMIO, its CPU interface by MMIO (under Moat, the hardware's GICV), the SGI
//! through `GICD_SGIR`.

use core::arch::asm;
use core::sync::atomic::{AtomicU32, Ordering};

use moat_guest_rt::exception::with_exception_hook;
use moat_guest_rt::{ExceptionFrame, ExceptionRecord, Resume, TestResult, check_eq, println};

use crate::gicv2;

const GICD: usize = 0x0800_0000;
const GICR: usize = 0x080A_0000;
/// `GICD_CTLR`: ARE (bit 4), EnableGrp1 (bit 1), as a single Security state sees it.
const GICD_CTLR_ARE_GRP1: u32 = (1 << 4) | (1 << 1);
const GICR_WAKER: usize = 0x14;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// The SGI_base frame of the first redistributor.
const GICR_SGI: usize = GICR + 0x1_0000;
const GICR_IGROUPR0: usize = 0x80;
const GICR_ISENABLER0: usize = 0x100;
const GICR_IPRIORITYR: usize = 0x400;
/// The vector offset of an IRQ taken from EL1 with SP_EL1.
const IRQ_CURRENT_EL_SPX: u16 = 0x280;
/// The EL1 virtual timer's PPI.
const VIRTUAL_TIMER_INTID: u32 = 27;
/// The SGI the test sends itself.
const TEST_SGI: u32 = 5;
/// `ICC_IAR1_EL1` when nothing is pending.
const SPURIOUS: u32 = 1023;

static TAKEN: AtomicU32 = AtomicU32::new(SPURIOUS);

fn write32(addr: usize, value: u32) {
    // SAFETY: a GIC register of QEMU virt's map (the guest's device tree names the same ones);
    // MMIO with a volatile access, no Rust object lives there.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

fn read32(addr: usize) -> u32 {
    // SAFETY: as for `write32`.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Brings up the distributor, this CPU's redistributor and CPU interface, and enables `intid`
/// (an SGI or PPI) in Group 1.
fn enable_private_interrupt(intid: u32) -> TestResult {
    if gicv2::is_gicv2() {
        gicv2::enable_private_interrupt(intid);
        return Ok(());
    }
    write32(GICD, GICD_CTLR_ARE_GRP1);
    write32(
        GICR + GICR_WAKER,
        read32(GICR + GICR_WAKER) & !WAKER_PROCESSOR_SLEEP,
    );
    let awake = (0..100_000).any(|_| read32(GICR + GICR_WAKER) & WAKER_CHILDREN_ASLEEP == 0);
    if !awake {
        return Err("GICR_WAKER.ChildrenAsleep did not clear");
    }
    write32(
        GICR_SGI + GICR_IGROUPR0,
        read32(GICR_SGI + GICR_IGROUPR0) | (1 << intid),
    );
    let prio = GICR_SGI + GICR_IPRIORITYR + (intid as usize & !3);
    let shift = 8 * (intid % 4);
    write32(prio, (read32(prio) & !(0xFF << shift)) | (0x80 << shift));
    write32(GICR_SGI + GICR_ISENABLER0, 1 << intid);
    // SAFETY: the GIC CPU interface's system registers at EL1: enable the system register
    // interface, accept every priority, enable Group 1. No memory is accessed.
    unsafe {
        asm!(
            "msr S3_0_C12_C12_5, {one}", // ICC_SRE_EL1.SRE
            "isb",
            "msr S3_0_C4_C6_0, {pmr}",   // ICC_PMR_EL1
            "msr S3_0_C12_C12_7, {one}", // ICC_IGRPEN1_EL1
            "isb",
            one = in(reg) 1u64,
            pmr = in(reg) 0xFFu64,
            options(nomem, nostack)
        )
    };
    Ok(())
}

/// Takes the IRQ: acknowledges it (`ICC_IAR1_EL1`), records its INTID, silences the timer
/// (`CNTV_CTL_EL0.IMASK`) so its level drops, and ends it (`ICC_EOIR1_EL1`).
fn take_irq(record: &ExceptionRecord, _frame: &mut ExceptionFrame) -> Resume {
    if record.vector.0 != IRQ_CURRENT_EL_SPX {
        return Resume::No;
    }
    let mask_timer = || {
        // SAFETY: masks the virtual timer (ENABLE | IMASK); a system register write.
        unsafe { asm!("msr cntv_ctl_el0, {}", in(reg) 0b11u64, options(nomem, nostack)) };
    };
    if gicv2::is_gicv2() {
        // GICC_IAR's InterruptID and CPUID (the source of an SGI).
        let iar = gicv2::acknowledge();
        mask_timer();
        gicv2::end(iar);
        TAKEN.store(iar & 0x1FFF, Ordering::SeqCst);
        return Resume::Yes;
    }
    let iar: u64;
    // SAFETY: acknowledges the pending interrupt, then ends it; system registers only.
    unsafe { asm!("mrs {}, S3_0_C12_C12_0", out(reg) iar, options(nomem, nostack)) }; // ICC_IAR1_EL1
    mask_timer();
    // SAFETY: as above.
    unsafe { asm!("msr S3_0_C12_C12_1, {}", in(reg) iar, options(nomem, nostack)) }; // ICC_EOIR1_EL1
    TAKEN.store((iar & 0xFF_FFFF) as u32, Ordering::SeqCst);
    Resume::Yes
}

/// Waits until the hook took an IRQ (bounded: a lost interrupt fails the test).
fn wait_for_irq() -> u32 {
    TAKEN.store(SPURIOUS, Ordering::SeqCst);
    wait_for_irq_pending()
}

/// The virtual timer, armed 1 ms ahead, interrupts the guest with PPI 27 at the IRQ vector.
pub fn virtual_timer_interrupt_arrives_through_the_gic() -> TestResult {
    enable_private_interrupt(VIRTUAL_TIMER_INTID)?;
    let frequency: u64;
    // SAFETY: reads the counter frequency and arms the EL1 virtual timer; system registers only.
    unsafe {
        asm!("mrs {}, cntfrq_el0", out(reg) frequency, options(nomem, nostack));
        asm!("msr cntv_tval_el0, {}", in(reg) frequency / 1000, options(nomem, nostack));
        asm!("msr cntv_ctl_el0, {}", in(reg) 1u64, options(nomem, nostack));
    }
    let (intid, log) = with_exception_hook(take_irq, wait_for_irq);
    println!("timer interrupt: INTID {intid}, {} exception(s)", log.count);
    check_eq!(
        intid,
        VIRTUAL_TIMER_INTID,
        "the virtual timer's interrupt did not arrive"
    )
}

/// An SGI the guest sends itself (`ICC_SGI1R_EL1`: INTID in bits \[27:24\], TargetList bit 0 =
/// Aff0 0; on a GICv2 `GICD_SGIR` with `TargetListFilter` = 2) arrives as that INTID (on a
/// GICv2 with `GICC_IAR.CPUID` 0, its own).
pub fn sgi_to_self_arrives_through_the_gic() -> TestResult {
    enable_private_interrupt(TEST_SGI)?;
    let sgi1r = (u64::from(TEST_SGI) << 24) | 1;
    let (intid, _) = with_exception_hook(take_irq, || {
        TAKEN.store(SPURIOUS, Ordering::SeqCst);
        if gicv2::is_gicv2() {
            gicv2::send_sgi_to_self(TEST_SGI);
        } else {
            // SAFETY: generates an SGI to this CPU; a system register write. Not `nomem`: the
            // interrupt's handler writes `TAKEN`, which the compiler must not move past it.
            unsafe { asm!("msr S3_0_C12_C11_5, {}", "isb", in(reg) sgi1r, options(nostack)) };
        }
        wait_for_irq_pending()
    });
    check_eq!(intid, TEST_SGI, "the SGI did not arrive")
}

/// Like [`wait_for_irq`], without clearing what the hook may already have recorded. IRQs stay
/// masked while waiting (`WFI` wakes on a pending interrupt regardless) and are unmasked only
/// for the instant in which one is taken, so an interrupt taken early is never followed by a
/// `WFI` with nothing left to wake it.
fn wait_for_irq_pending() -> u32 {
    for _ in 0..10_000 {
        if TAKEN.load(Ordering::SeqCst) != SPURIOUS {
            break;
        }
        // SAFETY: waits for an interrupt with IRQs masked, then opens the mask for an instant so
        // the hook takes it. The asm itself accesses no memory, but it is not `nomem`: the
        // interrupt's handler writes `TAKEN`, read just after.
        unsafe {
            asm!(
                "wfi",
                "msr daifclr, #2",
                "isb",
                "msr daifset, #2",
                options(nostack)
            )
        };
    }
    TAKEN.load(Ordering::SeqCst)
}
