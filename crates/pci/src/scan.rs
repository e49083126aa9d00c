//! Finding the functions on the buses an ECAM region decodes: a function exists when its
//! `Vendor ID` is not 0xFFFF (PCI 3.0, 6.2.1: reads of a function that does not exist return
//! all-ones; PCIe 4.0, 7.2.2); functions 1..8 of a device are looked at only when function 0
//! exists and says `Multi-Function Device` (PCI 3.0, 6.2.1 `Header Type` bit 7).
//!
//! Every bus of the region's `bus-range` is scanned, not only those found behind bridges:
//! what firmware left unconfigured behind a bridge is not reachable, and QEMU `virt` puts its
//! devices on bus 0.

use crate::header::{CLASS_CODE, HEADER_TYPE, HeaderType, INTERRUPT_PIN, VENDOR_ID, lane_shift};
use crate::{Bdf, ConfigSpace};

/// A function the scan found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    /// Where it is.
    pub bdf: Bdf,
    /// `Vendor ID`.
    pub vendor: u16,
    /// `Device ID`.
    pub device: u16,
    /// `Class Code`: base class, sub-class, programming interface, in bits 23:0.
    pub class: u32,
    /// `Header Type`.
    pub header_type: HeaderType,
    /// `Interrupt Pin`: 0 none, 1..=4 INTA..INTD.
    pub interrupt_pin: u8,
}

/// The function at `bdf`, if one answers.
pub fn function(cfg: &impl ConfigSpace, bdf: Bdf) -> Option<Function> {
    let id = cfg.read32(bdf, VENDOR_ID);
    let vendor = id as u16;
    if vendor == 0xffff {
        return None;
    }
    let dword = |offset: u16| cfg.read32(bdf, offset & !3) >> lane_shift(offset);
    Some(Function {
        bdf,
        vendor,
        device: (id >> 16) as u16,
        class: dword(CLASS_CODE) & 0xff_ffff,
        header_type: HeaderType(dword(HEADER_TYPE) as u8),
        interrupt_pin: dword(INTERRUPT_PIN) as u8,
    })
}

/// Every function on buses `first..=last`, in address order.
pub fn scan<C: ConfigSpace>(cfg: &C, first: u8, last: u8) -> impl Iterator<Item = Function> + '_ {
    (first..=last)
        .flat_map(|bus| (0..32u8).map(move |device| (bus, device)))
        .flat_map(move |(bus, device)| {
            let zero = Bdf::new(bus, device, 0).and_then(|bdf| function(cfg, bdf));
            let others = zero
                .filter(|f| f.header_type.is_multi_function())
                .map_or(0..0, |_| 1..8u8);
            zero.into_iter().chain(
                others.filter_map(move |f| {
                    Bdf::new(bus, device, f).and_then(|bdf| function(cfg, bdf))
                }),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeBus, FakeFunction, bdf, virtio_blk};

    fn net() -> FakeFunction {
        FakeFunction::new(0x1af4, 0x1041, 0x02_0000, 0)
    }

    #[test]
    fn scan_finds_the_host_bridge_and_two_virtio_devices_in_address_order() {
        // QEMU virt: 00:00.0 the host bridge (1b36:0008, class 06:00:00), then the -devices.
        let bus = FakeBus::default()
            .with(bdf(0, 0), FakeFunction::new(0x1b36, 0x0008, 0x06_0000, 0))
            .with(bdf(2, 0), net())
            .with(bdf(1, 0), virtio_blk());
        let found: Vec<(Bdf, u16, u32, u8)> = scan(&bus, 0, 0)
            .map(|f| (f.bdf, f.device, f.class, f.interrupt_pin))
            .collect();
        assert_eq!(
            found,
            [
                (bdf(0, 0), 0x0008, 0x06_0000, 0),
                (bdf(1, 0), 0x1042, 0x01_0000, 1),
                (bdf(2, 0), 0x1041, 0x02_0000, 0),
            ]
        );
    }

    #[test]
    fn functions_beyond_0_are_found_only_when_function_0_is_multi_function() {
        let bus = FakeBus::default()
            .with(
                bdf(3, 0),
                FakeFunction::new(1, 1, 0, HeaderType::MULTI_FUNCTION),
            )
            .with(bdf(3, 5), FakeFunction::new(1, 2, 0, 0))
            .with(bdf(4, 0), FakeFunction::new(1, 3, 0, 0))
            .with(bdf(4, 1), FakeFunction::new(1, 4, 0, 0))
            .with(bdf(6, 1), FakeFunction::new(1, 5, 0, 0));
        let found: Vec<Bdf> = scan(&bus, 0, 0).map(|f| f.bdf).collect();
        // 00:04.1 is hidden (04.0 is single-function), 00:06.1 too (no function 0).
        assert_eq!(found, [bdf(3, 0), bdf(3, 5), bdf(4, 0)]);
    }

    #[test]
    fn every_bus_of_the_range_is_scanned_and_an_empty_bus_costs_32_reads() {
        let far = Bdf::new(15, 31, 0).unwrap();
        let bus = FakeBus::default().with(far, net());
        let found: Vec<Bdf> = scan(&bus, 0, 15).map(|f| f.bdf).collect();
        assert_eq!(found, [far]);
        let before = bus.reads.get();
        assert_eq!(scan(&bus, 1, 1).count(), 0);
        assert_eq!(bus.reads.get() - before, 32);
    }

    #[test]
    fn the_last_bus_255_ends_the_scan() {
        let bus = FakeBus::default().with(Bdf::new(255, 0, 0).unwrap(), net());
        assert_eq!(scan(&bus, 255, 255).count(), 1);
    }
}
