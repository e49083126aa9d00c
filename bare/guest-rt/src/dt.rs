//! Reads the few facts the runtime needs from the device tree the loader passed in X0: the
//! bootargs (`/chosen/bootargs`), the PL011 (`compatible = "arm,pl011"`, its `reg`), the PSCI
//! conduit (`/psci`, `method`) and RAM (the first `/memory` region).
//!
//! Nothing here panics on a malformed tree: a missing fact is `None`, and the runtime carries on
//! without it (no console, HVC for PSCI).

use fdt::Fdt;

use crate::boot::Region;
use crate::psci::Conduit;

/// What the runtime learnt from the device tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DtFacts {
    /// Where the blob lies (header `totalsize`).
    pub dtb: Region,
    /// `/chosen/bootargs`, or `""`.
    pub bootargs: &'static str,
    /// The first PL011's MMIO base.
    pub uart: Option<usize>,
    /// `/psci`'s `method`.
    pub psci: Option<Conduit>,
    /// The first region of the `/memory` node.
    pub ram: Option<Region>,
}

/// Parses the device tree at physical address `dtb`; `None` if there is no valid one.
#[cfg(target_os = "none")]
pub(crate) fn parse(dtb: usize) -> Option<DtFacts> {
    // The boot protocol places the blob on an 8-byte boundary; anything else is not a DTB.
    if dtb == 0 || !dtb.is_multiple_of(8) {
        return None;
    }
    // SAFETY: By the arm64 boot protocol X0 held the physical address of a device tree in RAM,
    // and with the MMU off that address is directly usable. `from_ptr` reads the header first
    // and then only `totalsize` bytes. Nothing writes to the blob afterwards: the runtime and its
    // tests never store there (see `BootInfo::free_ram`), so the `'static` borrow stays valid.
    let fdt = unsafe { Fdt::from_ptr(dtb as *const u8) }.ok()?;
    Some(facts(&fdt, dtb))
}

/// The facts in `fdt`, a blob at address `dtb`.
fn facts(fdt: &Fdt<'static>, dtb: usize) -> DtFacts {
    DtFacts {
        dtb: Region::new(dtb, fdt.total_size()),
        bootargs: bootargs(fdt),
        uart: uart(fdt),
        psci: psci(fdt),
        ram: ram(fdt),
    }
}

fn bootargs(fdt: &Fdt<'static>) -> &'static str {
    fdt.find_node("/chosen")
        .and_then(|chosen| chosen.property("bootargs"))
        .and_then(|prop| prop.as_str())
        .unwrap_or("")
}

fn uart(fdt: &Fdt<'static>) -> Option<usize> {
    let node = fdt.find_compatible(&["arm,pl011"])?;
    let first = node.reg()?.next()?;
    Some(first.starting_address as usize)
}

fn psci(fdt: &Fdt<'static>) -> Option<Conduit> {
    let method = fdt.find_node("/psci")?.property("method")?.as_str()?;
    Conduit::from_method(method)
}

fn ram(fdt: &Fdt<'static>) -> Option<Region> {
    let first = fdt.find_node("/memory")?.reg()?.next()?;
    Some(Region::new(first.starting_address as usize, first.size?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU 7.2's board description for `-M virt,gic-version=3 -cpu cortex-a72 -m 512M -append
    /// "console=ttyAMA0 moat.test=ram_load_store"` (`-M virt,...,dumpdtb=FILE`, then packed with
    /// `dtc -I dtb -O dtb`).
    static QEMU_VIRT: &[u8] = include_bytes!("../testdata/qemu-7.2-virt-gicv3-512m.dtb");

    fn qemu_virt_facts() -> DtFacts {
        let fdt = Fdt::new(QEMU_VIRT).expect("the test blob is a valid DTB");
        facts(&fdt, 0x4800_0000)
    }

    #[test]
    fn qemu_virt_bootargs_are_the_append_string() {
        assert_eq!(
            qemu_virt_facts().bootargs,
            "console=ttyAMA0 moat.test=ram_load_store"
        );
    }

    #[test]
    fn qemu_virt_pl011_is_at_0x0900_0000() {
        assert_eq!(qemu_virt_facts().uart, Some(0x0900_0000));
    }

    #[test]
    fn qemu_virt_without_el2_has_psci_over_hvc() {
        assert_eq!(qemu_virt_facts().psci, Some(Conduit::Hvc));
    }

    #[test]
    fn qemu_virt_ram_is_512_mib_at_0x4000_0000() {
        assert_eq!(
            qemu_virt_facts().ram,
            Some(Region::new(0x4000_0000, 512 << 20))
        );
    }

    #[test]
    fn dtb_region_is_the_header_totalsize() {
        assert_eq!(
            qemu_virt_facts().dtb,
            Region::new(0x4800_0000, QEMU_VIRT.len())
        );
    }
}
