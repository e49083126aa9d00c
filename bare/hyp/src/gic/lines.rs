//! Physical SPIs Moat forwards to a guest with `HW` = 1 in its list registers: a VM's PCI
//! functions' INTx lines (`vmpci::IntxLines`). The CPU of the VM's vCPU 0 takes them
//! (level-sensitive, routed to itself) and leaves each active when it fires; the guest's
//! deactivation of the virtual SPI deactivates the physical one (IHI 0069, `ICH_LR<n>_EL2.HW`;
//! IHI 0048B, `GICH_LR<n>.HW`). An SPI's active state lives in the distributor, not in the CPU
//! that acknowledged it, so a guest on another vCPU, or Moat on any CPU
//! (`GICD_ICACTIVER<n>`, [`deactivate_spi`]), can end it.
//!
//! The distributor's one-bit-per-interrupt registers sit at the same offsets on both GICs
//! (IHI 0069, 12.9; IHI 0048B, 4.1.2), so these accesses need no version.

use super::{DISTRIBUTOR, PRIORITY, v2, v3};
use core::sync::atomic::Ordering;
use moat_devices::gic::regs_v2::gicd;

/// Takes the physical SPI `intid` on the calling CPU for a guest: level-sensitive, at Moat's
/// priority, routed to this CPU (`GICD_IROUTER<n>`, or its bit in `GICD_ITARGETSR<n>`),
/// enabled. False when Moat drives no GIC or the GIC refused it.
pub fn take_spi_here(intid: u32) -> bool {
    if !super::driven() || intid < 32 {
        return false;
    }
    v2::enable_spi(intid, false, PRIORITY) || v3::enable_spi_here(intid, false, PRIORITY)
}

/// Stops the physical SPI `intid` from being signalled (`GICD_ICENABLER<n>`): its VM halted.
pub fn disable_spi(intid: u32) {
    write_bit(gicd::ICENABLER, intid);
}

/// Deactivates the physical SPI `intid`, whichever CPU acknowledged it (`GICD_ICACTIVER<n>`):
/// no guest deactivation will reach it.
pub fn deactivate_spi(intid: u32) {
    write_bit(gicd::ICACTIVER, intid);
}

/// Whether the physical SPI `intid` is pending (`GICD_ISPENDR<n>`): for a level-sensitive SPI
/// that Moat holds active, whether its line is still asserted (it is then active and pending,
/// IHI 0069, 4.1 "Interrupt lifecycle").
pub fn spi_pending(intid: u32) -> bool {
    register(gicd::ISPENDR, intid).is_some_and(|at| {
        // SAFETY: `at` is a word of the machine distributor's `GICD_ISPENDR<n>`, which Moat
        // maps as device memory for itself (`ranges`); a read has no side effect.
        let word = unsafe { core::ptr::read_volatile(at as *const u32) };
        word & 1 << (intid % 32) != 0
    })
}

/// Writes the bit of `intid` to the set/clear register at `offset`.
fn write_bit(offset: u64, intid: u32) {
    if let Some(at) = register(offset, intid) {
        // SAFETY: as in `spi_pending`; a write of one bit to a write-1-to-act register acts
        // on `intid` alone, an SPI Moat forwards to a guest.
        unsafe { core::ptr::write_volatile(at as *mut u32, 1 << (intid % 32)) };
    }
}

/// The address of the word of the register at `offset` that holds `intid`'s bit; `None` before
/// Moat took the GIC, or for an INTID that is no SPI.
fn register(offset: u64, intid: u32) -> Option<usize> {
    let dist = DISTRIBUTOR.load(Ordering::Acquire);
    (dist != 0 && (32..1020).contains(&intid))
        .then(|| dist + usize::try_from(offset).unwrap_or(0) + 4 * (intid / 32) as usize)
}
