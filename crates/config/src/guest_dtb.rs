//! The guest's device tree: what a Linux kernel or a test guest booted on QEMU `virt` expects
//! to find, generated from the VM description so that it shows exactly the VM Moat builds.
//!
//! The layout follows QEMU virt's own board tree (seen with `-M virt,dumpdtb=FILE`): a root
//! compatible with `linux,dummy-virt` and 2-cell addresses and sizes, `memory@...` per RAM
//! region, `/cpus`, `/psci` (reached by `hvc`: the guest's PSCI calls trap to Moat), the PL011
//! with its 24 MHz `apb-pclk` fixed clock, and `/chosen`.
//!
//! A device window gets a node only once Moat emulates its kind, so that a guest never probes a
//! device that is not there: see `device_node`, the place to add the GIC (and, with it,
//! `interrupt-parent`, the PL011's `interrupts` and the timer node).

use moat_arm::addr::Ipa;
use vm_fdt::{FdtWriter, FdtWriterNode};

use crate::schema::{DeviceKind, DeviceWindow, RamRegion, VmConfig};

/// The phandle of the `apb-pclk` fixed clock, as in QEMU virt's tree.
pub const APB_PCLK_PHANDLE: u32 = 0x8000;
/// The frequency of the PL011's clocks in QEMU virt: 24 MHz.
pub const APB_PCLK_HZ: u32 = 24_000_000;

/// Why the guest device tree could not be written.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GuestDtbError {
    /// The device-tree writer refused a node or property, e.g. a NUL byte in `bootargs`.
    #[error("cannot write the guest device tree: {0}")]
    Fdt(#[from] vm_fdt::Error),
}

/// The device tree blob the guest finds at boot (its address in `x0`). `initrd`, if any, is
/// the initrd's IPA and size in bytes, named in `/chosen` (see [`crate::initrd`]).
///
/// # Errors
///
/// [`GuestDtbError::Fdt`] if a string holds a NUL byte or the tree outgrows the format.
pub fn generate_guest_dtb(
    vm: &VmConfig,
    initrd: Option<(Ipa, u64)>,
) -> Result<Vec<u8>, GuestDtbError> {
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string_list("compatible", vec!["linux,dummy-virt".into()])?;
    fdt.property_string("model", "linux,dummy-virt")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    psci_node(&mut fdt)?;
    for ram in &vm.ram {
        memory_node(&mut fdt, ram)?;
    }
    cpus_node(&mut fdt, vm.cpus)?;
    if first_pl011(vm).is_some() {
        apb_pclk_node(&mut fdt)?;
    }
    for device in &vm.devices {
        device_node(&mut fdt, device)?;
    }
    chosen_node(&mut fdt, vm, initrd)?;
    fdt.end_node(root)?;
    Ok(fdt.finish()?)
}

/// The `reg` cells of a region with 2 address and 2 size cells.
fn reg(base: u64, size: u64) -> [u64; 2] {
    [base, size]
}

fn begin(fdt: &mut FdtWriter, name: &str, base: u64) -> Result<FdtWriterNode, GuestDtbError> {
    Ok(fdt.begin_node(&format!("{name}@{base:x}"))?)
}

fn psci_node(fdt: &mut FdtWriter) -> Result<(), GuestDtbError> {
    let node = fdt.begin_node("psci")?;
    let compatible = vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()];
    fdt.property_string_list("compatible", compatible)?;
    fdt.property_string("method", "hvc")?;
    Ok(fdt.end_node(node)?)
}

fn memory_node(fdt: &mut FdtWriter, ram: &RamRegion) -> Result<(), GuestDtbError> {
    let node = begin(fdt, "memory", ram.base.raw())?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u64("reg", &reg(ram.base.raw(), ram.size))?;
    Ok(fdt.end_node(node)?)
}

/// `/cpus` with one `cpu@N` per vCPU, `reg` = its MPIDR affinity (Aff0 = N). Secondary vCPUs
/// are started with PSCI `CPU_ON`, so `enable-method` is given when there are any.
fn cpus_node(fdt: &mut FdtWriter, cpus: u32) -> Result<(), GuestDtbError> {
    let node = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    for cpu in 0..cpus {
        let cpu_node = fdt.begin_node(&format!("cpu@{cpu:x}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_string_list("compatible", vec!["arm,armv8".into()])?;
        fdt.property_u32("reg", cpu)?;
        if cpus > 1 {
            fdt.property_string("enable-method", "psci")?;
        }
        fdt.end_node(cpu_node)?;
    }
    Ok(fdt.end_node(node)?)
}

fn apb_pclk_node(fdt: &mut FdtWriter) -> Result<(), GuestDtbError> {
    let node = fdt.begin_node("apb-pclk")?;
    fdt.property_string_list("compatible", vec!["fixed-clock".into()])?;
    fdt.property_u32("#clock-cells", 0)?;
    fdt.property_u32("clock-frequency", APB_PCLK_HZ)?;
    fdt.property_string_list("clock-output-names", vec!["clk24mhz".into()])?;
    fdt.property_phandle(APB_PCLK_PHANDLE)?;
    Ok(fdt.end_node(node)?)
}

/// The node for one device window, if Moat emulates its kind yet. Exhaustive on purpose: a new
/// [`DeviceKind`] must decide here what the guest sees.
fn device_node(fdt: &mut FdtWriter, device: &DeviceWindow) -> Result<(), GuestDtbError> {
    match device.kind {
        DeviceKind::Pl011 => pl011_node(fdt, device),
        // Not emulated yet: the guest must not find a GIC it cannot use. The GIC issue adds
        // `intc@...` here, `interrupt-parent` at the root and the timer node.
        DeviceKind::GicV3Distributor | DeviceKind::GicV3Redistributors => Ok(()),
    }
}

/// A PL011 as QEMU virt describes it (interrupts come with the GIC).
fn pl011_node(fdt: &mut FdtWriter, uart: &DeviceWindow) -> Result<(), GuestDtbError> {
    let node = begin(fdt, "pl011", uart.base.raw())?;
    let compatible = vec!["arm,pl011".into(), "arm,primecell".into()];
    fdt.property_string_list("compatible", compatible)?;
    fdt.property_array_u64("reg", &reg(uart.base.raw(), uart.size))?;
    fdt.property_array_u32("clocks", &[APB_PCLK_PHANDLE, APB_PCLK_PHANDLE])?;
    fdt.property_string_list("clock-names", vec!["uartclk".into(), "apb_pclk".into()])?;
    Ok(fdt.end_node(node)?)
}

/// `/chosen`: the command line, the console, and the initrd as `[start, end)` in u64 cells
/// (Linux `Documentation/devicetree/bindings/chosen.txt` allows 32- or 64-bit values).
fn chosen_node(
    fdt: &mut FdtWriter,
    vm: &VmConfig,
    initrd: Option<(Ipa, u64)>,
) -> Result<(), GuestDtbError> {
    let node = fdt.begin_node("chosen")?;
    fdt.property_string("bootargs", &vm.bootargs)?;
    if let Some((start, size)) = initrd {
        fdt.property_u64("linux,initrd-start", start.raw())?;
        fdt.property_u64("linux,initrd-end", start.raw().saturating_add(size))?;
    }
    if let Some(uart) = first_pl011(vm) {
        fdt.property_string("stdout-path", &format!("/pl011@{:x}", uart.base.raw()))?;
    }
    Ok(fdt.end_node(node)?)
}

/// The console: the first PL011 of the configuration.
fn first_pl011(vm: &VmConfig) -> Option<&DeviceWindow> {
    vm.devices_of(DeviceKind::Pl011).next()
}

#[cfg(test)]
#[path = "guest_dtb_tests.rs"]
mod tests;
