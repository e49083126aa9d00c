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
use moat_guest_rt::gic::{self, SPURIOUS};
use moat_guest_rt::println;
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};
use virtio_drivers::transport::pci::PciTransport;

/// The INTID of the guest's INTx line 0: SPI 3 (the guest's `interrupt-map`).
const INTX_BASE: u32 = 35;
/// How many `WFI`s the guest waits for each interrupt before it says none came.
const WAITS: u32 = 10_000;

/// The INTID the function's `Interrupt Pin` drives in the guest's `interrupt-map`: line
/// `(device + pin − 1) mod 4` (the standard swizzle), SPI 3 + line.
pub fn intid(ecam: usize, device: u8, function: u8) -> Option<u32> {
    let header = ecam + (usize::from(device) << 15) + (usize::from(function) << 12);
    // `Interrupt Pin`, byte 1 of the DWORD at 0x3C (PCI 3.0, 6.2.4).
    // SAFETY: the function's configuration header in the VM's ECAM window (trapped and
    // filtered by Moat); a read has no effect.
    let dword = unsafe { ptr::read_volatile((header + 0x3C) as *const u32) };
    let pin = (dword >> 8) & 0xFF;
    (1..=4)
        .contains(&pin)
        .then(|| INTX_BASE + (u32::from(device) + pin - 1) % 4)
}

/// Two reads of sector 0, each completed by the function's INTx interrupt `intid`; prints
/// what each round saw.
pub fn read_by_interrupt(
    blk: &mut VirtIOBlk<hal::GuestHal, AccessPlatform<PciTransport>>,
    sector: &mut [u8],
    intid: u32,
) {
    if let Err(e) = gic::init_cpu(0, &[]) {
        println!("pcidma: INTx: {e}");
        return;
    }
    gic::enable_spi(intid, 0);
    // SAFETY: masks IRQs at the PE (the guest polls its CPU interface after `WFI`; the runtime
    // keeps them masked anyway). No memory is accessed.
    unsafe { asm!("msr daifset, #2", options(nomem, nostack)) };
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
        while gic::hppir1() != intid && waits < WAITS {
            // SAFETY: waits for an interrupt; no memory is accessed.
            unsafe { asm!("wfi", options(nomem, nostack)) };
            waits += 1;
        }
        let pending = gic::hppir1();
        if pending != intid {
            println!(
                "pcidma: INTx round {round}: no interrupt after {waits} WFIs (ICC_HPPIR1_EL1 = {pending})"
            );
            return;
        }
        let acknowledged = gic::iar1();
        let isr = blk.ack_interrupt();
        let used = blk.peek_used() == Some(token);
        // SAFETY: as above: the same buffers, the request the device completed.
        let done = unsafe { blk.complete_read_blocks(token, &request, sector, &mut response) };
        gic::eoir1(acknowledged);
        println!(
            "pcidma: INTx round {round}: INTID {acknowledged} acknowledged, ISR {:#x}, used {used}, read {done:?}, then ICC_HPPIR1_EL1 = {}",
            isr.bits(),
            gic::hppir1()
        );
        if gic::hppir1() != SPURIOUS {
            return;
        }
    }
}
