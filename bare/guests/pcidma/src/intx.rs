//! `pcidma.target=intx`: the function's INTx line delivered through the VM's GICv3 as Linux's
//! `virtio_pci` takes it without MSI. The guest routes the line's SPI to itself, submits a read,
//! waits in `WFI` (with `PSTATE.I` set: a pending interrupt ends `WFI` all the same, Arm ARM
//! "Wait for Interrupt") until its CPU interface presents the SPI, acknowledges it
//! (`ICC_IAR1_EL1`), reads the device's ISR (which lowers the line, virtio 1.2 §4.1.4.5),
//! completes the request and ends the interrupt (`ICC_EOIR1_EL1`, `EOImode` = 0: priority drop
//! and deactivation). Two rounds: the second interrupt arrives only if the first one's
//! deactivation reached the physical line Moat forwards.

use crate::hal;
use crate::platform::AccessPlatform;
use core::arch::asm;
use core::ptr;
use moat_guest_rt::println;
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};
use virtio_drivers::transport::pci::PciTransport;

/// The distributor and vCPU 0's redistributor, as Moat's default VM (and QEMU `virt`) place
/// them; the guest runs alone on vCPU 0.
const GICD: usize = 0x0800_0000;
const GICR: usize = 0x080A_0000;
/// `GICD_CTLR`: `ARE` (bit 4) and `EnableGrp1` (bit 1) in a single Security state.
const GICD_CTLR_ARE_GRP1: u32 = (1 << 4) | (1 << 1);
const GICD_IGROUPR: usize = 0x80;
const GICD_ISENABLER: usize = 0x100;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_IROUTER: usize = 0x6000;
const GICR_WAKER: usize = 0x14;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// The INTID of the guest's INTx line 0: SPI 3 (the guest's `interrupt-map`).
const INTX_BASE: u32 = 35;
/// No pending interrupt: the spurious INTID.
const SPURIOUS: u32 = 1023;
/// How many `WFI`s the guest waits for each interrupt before it says none came.
const WAITS: u32 = 10_000;

fn write32(addr: usize, value: u32) {
    // SAFETY: a GIC register of the VM's map (MMU off: the address is the IPA Moat emulates);
    // a volatile access where no Rust object lives.
    unsafe { ptr::write_volatile(addr as *mut u32, value) }
}

fn read32(addr: usize) -> u32 {
    // SAFETY: as for `write32`.
    unsafe { ptr::read_volatile(addr as *const u32) }
}

/// The INTID the function's `Interrupt Pin` drives in the guest's `interrupt-map`: line
/// `(device + pin − 1) mod 4` (the standard swizzle), SPI 3 + line.
pub fn intid(ecam: usize, device: u8, function: u8) -> Option<u32> {
    let header = ecam + (usize::from(device) << 15) + (usize::from(function) << 12);
    // `Interrupt Pin`, byte 1 of the DWORD at 0x3C (PCI 3.0, 6.2.4).
    let pin = (read32(header + 0x3C) >> 8) & 0xFF;
    (1..=4)
        .contains(&pin)
        .then(|| INTX_BASE + (u32::from(device) + pin - 1) % 4)
}

/// Enables SPI `intid` in Group 1 at priority 0x80, routed to this vCPU (affinity 0.0.0.0), and
/// this CPU's interface for Group 1 at every priority.
fn enable(intid: u32) -> Result<(), &'static str> {
    write32(GICD, GICD_CTLR_ARE_GRP1);
    write32(
        GICR + GICR_WAKER,
        read32(GICR + GICR_WAKER) & !WAKER_PROCESSOR_SLEEP,
    );
    if !(0..100_000).any(|_| read32(GICR + GICR_WAKER) & WAKER_CHILDREN_ASLEEP == 0) {
        return Err("GICR_WAKER.ChildrenAsleep did not clear");
    }
    let (word, bit) = (4 * (intid as usize / 32), 1 << (intid % 32));
    write32(
        GICD + GICD_IGROUPR + word,
        read32(GICD + GICD_IGROUPR + word) | bit,
    );
    let priority = GICD + GICD_IPRIORITYR + (intid as usize & !3);
    let shift = 8 * (intid % 4);
    write32(
        priority,
        (read32(priority) & !(0xFF << shift)) | (0x80 << shift),
    );
    let router = GICD + GICD_IROUTER + 8 * intid as usize;
    write32(router, 0);
    write32(router + 4, 0);
    write32(GICD + GICD_ISENABLER + word, bit);
    // SAFETY: the CPU interface's system registers at EL1: IRQs masked at the PE (the guest
    // polls its interface after `WFI`), the system register interface on, every priority
    // accepted, Group 1 enabled. No memory is accessed.
    unsafe {
        asm!(
            "msr daifset, #2",
            "msr S3_0_C12_C12_5, {one}", // ICC_SRE_EL1.SRE
            "isb",
            "msr S3_0_C4_C6_0, {pmr}",   // ICC_PMR_EL1
            "msr S3_0_C12_C12_7, {one}", // ICC_IGRPEN1_EL1.Enable
            "isb",
            one = in(reg) 1u64,
            pmr = in(reg) 0xFFu64,
            options(nomem, nostack)
        );
    }
    Ok(())
}

/// `ICC_HPPIR1_EL1`: the highest-priority pending Group 1 interrupt.
fn hppir1() -> u32 {
    let value: u64;
    // SAFETY: a read of the CPU interface; no side effect.
    unsafe { asm!("mrs {}, S3_0_C12_C12_2", out(reg) value, options(nomem, nostack)) };
    (value & 0xFF_FFFF) as u32
}

/// `ICC_IAR1_EL1`: acknowledges the highest-priority pending Group 1 interrupt.
fn iar1() -> u32 {
    let value: u64;
    // SAFETY: acknowledges an interrupt, which this guest then ends (`eoir1`); no memory.
    unsafe { asm!("mrs {}, S3_0_C12_C12_0", out(reg) value, options(nomem, nostack)) };
    (value & 0xFF_FFFF) as u32
}

/// `ICC_EOIR1_EL1`: ends interrupt `intid` (priority drop and deactivation, `EOImode` = 0).
fn eoir1(intid: u32) {
    // SAFETY: ends the interrupt `iar1` acknowledged; no memory is accessed.
    unsafe {
        asm!("msr S3_0_C12_C12_1, {}", "isb", in(reg) u64::from(intid), options(nomem, nostack))
    };
}

/// Two reads of sector 0, each completed by the function's INTx interrupt `intid`; prints
/// what each round saw.
pub fn read_by_interrupt(
    blk: &mut VirtIOBlk<hal::GuestHal, AccessPlatform<PciTransport>>,
    sector: &mut [u8],
    intid: u32,
) {
    if let Err(e) = enable(intid) {
        println!("pcidma: INTx: {e}");
        return;
    }
    println!("pcidma: INTx: waiting for INTID {intid}");
    for round in 1..=2 {
        let mut request = BlkReq::default();
        let mut response = BlkResp::default();
        // SAFETY: `request`, `sector` and `response` live until the request completes below.
        let token = match unsafe { blk.read_blocks_nb(0, &mut request, sector, &mut response) } {
            Ok(token) => token,
            Err(e) => {
                println!("pcidma: INTx round {round}: the request was not queued: {e}");
                return;
            }
        };
        let mut waits = 0;
        while hppir1() != intid && waits < WAITS {
            // SAFETY: waits for an interrupt; no memory is accessed.
            unsafe { asm!("wfi", options(nomem, nostack)) };
            waits += 1;
        }
        let pending = hppir1();
        if pending != intid {
            println!(
                "pcidma: INTx round {round}: no interrupt after {waits} WFIs (ICC_HPPIR1_EL1 = {pending})"
            );
            return;
        }
        let acknowledged = iar1();
        let isr = blk.ack_interrupt();
        let used = blk.peek_used() == Some(token);
        // SAFETY: as above: the same buffers, the request the device completed.
        let done = unsafe { blk.complete_read_blocks(token, &request, sector, &mut response) };
        eoir1(acknowledged);
        println!(
            "pcidma: INTx round {round}: INTID {acknowledged} acknowledged, ISR {:#x}, used {used}, read {done:?}, then ICC_HPPIR1_EL1 = {}",
            isr.bits(),
            hppir1()
        );
        if hppir1() != SPURIOUS {
            return;
        }
    }
}
