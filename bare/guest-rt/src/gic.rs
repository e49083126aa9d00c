//! GICv3 bring-up as a guest driver does it (GICv3 IHI 0069): the distributor (`GICD_CTLR`, an
//! SPI's group, priority, route and enable), one CPU's redistributor (`GICR_WAKER`, its SGI/PPI
//! group, priority and enable registers) and its CPU interface (`ICC_SRE_EL1`, `ICC_PMR_EL1`,
//! `ICC_IGRPEN1_EL1`; acknowledging and ending a Group 1 interrupt). Both QEMU `virt` and
//! Moat's default VM put the distributor at 0x0800_0000 and the redistributors from
//! 0x080A_0000, one 128 KiB pair of frames (RD_base, SGI_base) per CPU in CPU order. The test
//! guests poll their CPU interface (`PSTATE.I` stays set: the runtime takes no IRQ).

use core::arch::asm;
use core::ptr;

/// The distributor's base.
pub const GICD: usize = 0x0800_0000;
/// The first redistributor's RD_base.
const GICR: usize = 0x080A_0000;
/// One redistributor's size: RD_base and SGI_base, 64 KiB each.
const GICR_STRIDE: usize = 0x2_0000;
/// `GICD_CTLR` with ARE (bit 4) and EnableGrp1 (bit 1), as a single Security state sees it.
const GICD_CTLR_ARE_GRP1: u32 = (1 << 4) | (1 << 1);
/// `GICR_TYPER` bits \[63:32\]: Affinity_Value, the upper word at offset 0xC.
const GICR_TYPER_AFFINITY: usize = 0xC;
const GICR_WAKER: usize = 0x14;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// SGI_base, the second frame of a redistributor.
const SGI_BASE: usize = 0x1_0000;
const GICR_IGROUPR0: usize = 0x80;
const GICR_ISENABLER0: usize = 0x100;
const GICR_IPRIORITYR: usize = 0x400;
/// The distributor's SPI registers: `GICD_IGROUPR<n>`, `GICD_ISENABLER<n>` (and
/// `GICD_IPRIORITYR<n>`, [`set_priority`]) at the offsets of SGI_base's, and `GICD_IROUTER<n>`.
const GICD_IGROUPR: usize = GICR_IGROUPR0;
const GICD_ISENABLER: usize = GICR_ISENABLER0;
const GICD_IROUTER: usize = 0x6000;
/// The priority every interrupt enabled here gets.
const PRIORITY: u32 = 0x80;
/// No pending interrupt: the spurious INTID.
pub const SPURIOUS: u32 = 1023;

fn write32(addr: usize, value: u32) {
    // SAFETY: a GIC register of the map above (MMU off, so the address is the device's); a
    // volatile access to MMIO where no Rust object lives.
    unsafe { ptr::write_volatile(addr as *mut u32, value) }
}

fn read32(addr: usize) -> u32 {
    // SAFETY: as for `write32`.
    unsafe { ptr::read_volatile(addr as *const u32) }
}

/// Brings up the GIC for the CPU whose `MPIDR_EL1.Aff0` is `cpu` (Aff1..3 zero) and enables
/// the private interrupts `intids` (SGIs and PPIs, < 32) in Group 1 at priority 0x80. CPU 0 also
/// enables the distributor.
///
/// # Errors
///
/// When the redistributor at `cpu`'s place belongs to another CPU or does not wake.
pub fn init_cpu(cpu: usize, intids: &[u32]) -> Result<(), &'static str> {
    if cpu == 0 {
        write32(GICD, GICD_CTLR_ARE_GRP1);
    }
    let rd = GICR + cpu * GICR_STRIDE;
    if read32(rd + GICR_TYPER_AFFINITY) & 0xff != cpu as u32 {
        return Err("the redistributor frame does not belong to this CPU (GICR_TYPER)");
    }
    write32(
        rd + GICR_WAKER,
        read32(rd + GICR_WAKER) & !WAKER_PROCESSOR_SLEEP,
    );
    if !(0..100_000).any(|_| read32(rd + GICR_WAKER) & WAKER_CHILDREN_ASLEEP == 0) {
        return Err("GICR_WAKER.ChildrenAsleep did not clear");
    }
    let sgi = rd + SGI_BASE;
    let mask = intids.iter().fold(0u32, |m, &id| m | (1 << id));
    write32(sgi + GICR_IGROUPR0, read32(sgi + GICR_IGROUPR0) | mask);
    for &id in intids {
        set_priority(sgi, id);
    }
    write32(sgi + GICR_ISENABLER0, mask);
    // SAFETY: the CPU interface's system registers at EL1: the system register interface on,
    // every priority accepted, Group 1 enabled. No memory is accessed.
    unsafe {
        asm!(
            "msr S3_0_C12_C12_5, {one}", // ICC_SRE_EL1.SRE
            "isb",
            "msr S3_0_C4_C6_0, {pmr}",   // ICC_PMR_EL1
            "msr S3_0_C12_C12_7, {one}", // ICC_IGRPEN1_EL1.Enable
            "isb",
            one = in(reg) 1u64,
            pmr = in(reg) 0xFFu64,
            options(nomem, nostack)
        )
    };
    Ok(())
}

/// Sets interrupt `intid`'s byte of the `IPRIORITYR` registers at `base` (a redistributor's
/// SGI_base, or the distributor: the same offset) to [`PRIORITY`].
fn set_priority(base: usize, intid: u32) {
    let at = base + GICR_IPRIORITYR + (intid as usize & !3);
    let shift = 8 * (intid % 4);
    write32(at, (read32(at) & !(0xFF << shift)) | (PRIORITY << shift));
}

/// Enables SPI `intid` in Group 1 at priority 0x80, routed to the CPU whose `MPIDR_EL1.Aff0`
/// is `aff0` (`GICD_IROUTER<n>`, `Interrupt_Routing_Mode` = 0). The distributor and the CPU
/// come up with [`init_cpu`] first.
pub fn enable_spi(intid: u32, aff0: u8) {
    let (word, bit) = (4 * (intid as usize / 32), 1 << (intid % 32));
    write32(
        GICD + GICD_IGROUPR + word,
        read32(GICD + GICD_IGROUPR + word) | bit,
    );
    set_priority(GICD, intid);
    let router = GICD + GICD_IROUTER + 8 * intid as usize;
    write32(router, u32::from(aff0));
    write32(router + 4, 0);
    write32(GICD + GICD_ISENABLER + word, bit);
}

/// `ICC_HPPIR1_EL1`: the highest-priority pending Group 1 interrupt ([`SPURIOUS`] for none).
pub fn hppir1() -> u32 {
    let value: u64;
    // SAFETY: a read of the CPU interface; no side effect.
    unsafe { asm!("mrs {}, S3_0_C12_C12_2", out(reg) value, options(nomem, nostack)) };
    (value & 0xFF_FFFF) as u32
}

/// `ICC_IAR1_EL1`: acknowledges the highest-priority pending Group 1 interrupt.
pub fn iar1() -> u32 {
    let value: u64;
    // SAFETY: acknowledges an interrupt, which the caller ends (`eoir1`); no memory.
    unsafe { asm!("mrs {}, S3_0_C12_C12_0", out(reg) value, options(nomem, nostack)) };
    (value & 0xFF_FFFF) as u32
}

/// `ICC_EOIR1_EL1`: ends interrupt `intid` (priority drop and deactivation, `EOImode` = 0).
pub fn eoir1(intid: u32) {
    // SAFETY: ends the interrupt `iar1` acknowledged; no memory is accessed.
    unsafe {
        asm!("msr S3_0_C12_C12_1, {}", "isb", in(reg) u64::from(intid), options(nomem, nostack))
    };
}

/// `ICC_SGI1R_EL1` for SGI `intid` to the CPU with `MPIDR_EL1.Aff0` = `aff0` (< 16; Aff1..3 = 0):
/// INTID in bits \[27:24\], TargetList bit `aff0` (GICv3 IHI 0069, `ICC_SGI1R_EL1`).
pub const fn sgi1r(intid: u32, aff0: u32) -> u64 {
    ((intid as u64) << 24) | (1 << aff0)
}
