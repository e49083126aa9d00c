//! The guest's device tree: what a Linux kernel or a test guest booted on QEMU `virt` expects
//! to find, generated from the VM description so that it shows exactly the VM Moat builds.
//!
//! The layout follows QEMU virt's own board tree (seen with `-M virt,dumpdtb=FILE`): a root
//! compatible with `linux,dummy-virt` and 2-cell addresses and sizes, `memory@...` per RAM
//! region, `/cpus`, `/psci` (reached by `hvc`: the guest's PSCI calls trap to Moat), the PL011
//! with its 24 MHz `apb-pclk` fixed clock, and `/chosen`.
//!
//! A device window gets a node only once Moat emulates its kind, so that a guest never probes a
//! device that is not there. With the GIC ([`GUEST_SEES_GIC`]) the tree has, as QEMU virt has
//! them for GICv3, `intc@...` (`arm,gic-v3`: the
//! distributor and the redistributors of the VM's vCPUs, 128 KiB each) — or, for a GICv2, as
//! QEMU virt has it with `gic-version=2`, `arm,cortex-a15-gic` with the distributor and the
//! 8 KiB CPU interface, and the timer's PPIs naming the vCPUs in their CPU mask — the root's
//! `interrupt-parent`, the architected timer (PPIs 13, 14, 11, 10: secure and non-secure
//! physical, virtual, hypervisor; level-high) and the PL011's SPI 1. No maintenance interrupt is
//! given: the guest has no EL2.

use moat_arm::addr::Ipa;
use vm_fdt::{FdtWriter, FdtWriterNode};

use crate::schema::{DeviceKind, DeviceWindow, GICR_SIZE_PER_CPU, RamRegion, VmConfig};

/// The phandle of the `apb-pclk` fixed clock, as in QEMU virt's tree.
pub const APB_PCLK_PHANDLE: u32 = 0x8000;
/// The frequency of the PL011's clocks in QEMU virt: 24 MHz.
pub const APB_PCLK_HZ: u32 = 24_000_000;
/// The phandle of the GIC, as in QEMU virt's tree.
pub const GIC_PHANDLE: u32 = 0x8001;
/// Whether the guest's tree describes the GIC, the timer and the PL011's interrupt: on, now
/// that Moat emulates the GICv3 and forwards the timers' interrupts.
pub const GUEST_SEES_GIC: bool = true;

/// GIC binding (`arm,gic-v3`) interrupt specifier cells: the type, SPI or PPI.
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
/// The trigger cell: level-sensitive, active high.
const IRQ_LEVEL_HIGH: u32 = 4;
/// The PL011's SPI in QEMU virt (`VIRT_UART`).
const PL011_SPI: u32 = 1;
/// The architected timer's PPIs, in the binding's order: secure physical, non-secure physical,
/// virtual, hypervisor (INTIDs 29, 30, 27, 26).
const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];

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
    generate(vm, initrd, GUEST_SEES_GIC)
}

/// [`generate_guest_dtb`] with the GIC's nodes on or off.
fn generate(
    vm: &VmConfig,
    initrd: Option<(Ipa, u64)>,
    sees_gic: bool,
) -> Result<Vec<u8>, GuestDtbError> {
    let gic = if sees_gic { Gic::of(vm) } else { None };
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string_list("compatible", vec!["linux,dummy-virt".into()])?;
    fdt.property_string("model", "linux,dummy-virt")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    if let Some(gic) = &gic {
        fdt.property_u32("interrupt-parent", GIC_PHANDLE)?;
        gic.intc_node(&mut fdt, vm.cpus)?;
        timer_node(&mut fdt, gic.ppi_cpu_mask(vm.cpus))?;
    }
    psci_node(&mut fdt)?;
    for ram in &vm.ram {
        memory_node(&mut fdt, ram)?;
    }
    cpus_node(&mut fdt, vm.cpus)?;
    if first_pl011(vm).is_some() {
        apb_pclk_node(&mut fdt)?;
    }
    for (index, device) in vm.devices.iter().enumerate() {
        device_node(&mut fdt, device, vm.virtio_net_intid(index), gic.is_some())?;
    }
    if !vm.pci.is_empty() {
        pci_node(&mut fdt, gic.is_some())?;
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

/// The node for one device window, if it gets one of its own. Exhaustive on purpose: a new
/// [`DeviceKind`] must decide here what the guest sees.
fn device_node(
    fdt: &mut FdtWriter,
    device: &DeviceWindow,
    net_intid: Option<u32>,
    with_irq: bool,
) -> Result<(), GuestDtbError> {
    match (device.kind, net_intid) {
        (DeviceKind::Pl011, _) => pl011_node(fdt, device, with_irq),
        (DeviceKind::VirtioNet, Some(intid)) => virtio_mmio_node(fdt, device, intid, with_irq),
        (DeviceKind::VirtioNet, None) => unreachable!("a virtio-net window without its INTID"),
        // Both windows are in the one `intc@...` node (`Gic::intc_node`), if the guest sees it.
        (
            DeviceKind::GicV3Distributor
            | DeviceKind::GicV3Redistributors
            | DeviceKind::GicV2Distributor
            | DeviceKind::GicV2CpuInterface,
            _,
        ) => Ok(()),
    }
}

/// A virtio-mmio transport as QEMU virt describes one (`virtio,mmio`, Linux
/// `Documentation/devicetree/bindings/virtio/mmio.yaml`), with its SPI `intid - 32`
/// (level-sensitive, active high: the line follows `InterruptStatus`) when the guest sees the
/// GIC. `dma-coherent`: the device's accesses are Moat's, through the caches.
fn virtio_mmio_node(
    fdt: &mut FdtWriter,
    device: &DeviceWindow,
    intid: u32,
    with_irq: bool,
) -> Result<(), GuestDtbError> {
    let node = begin(fdt, "virtio_mmio", device.base.raw())?;
    fdt.property_string("compatible", "virtio,mmio")?;
    fdt.property_array_u64("reg", &reg(device.base.raw(), device.size))?;
    if with_irq {
        fdt.property_array_u32("interrupts", &[GIC_SPI, intid - 32, IRQ_LEVEL_HIGH])?;
    }
    fdt.property_null("dma-coherent")?;
    Ok(fdt.end_node(node)?)
}

/// A PL011 as QEMU virt describes it, with its SPI when the guest sees the GIC.
fn pl011_node(
    fdt: &mut FdtWriter,
    uart: &DeviceWindow,
    with_irq: bool,
) -> Result<(), GuestDtbError> {
    let node = begin(fdt, "pl011", uart.base.raw())?;
    let compatible = vec!["arm,pl011".into(), "arm,primecell".into()];
    fdt.property_string_list("compatible", compatible)?;
    fdt.property_array_u64("reg", &reg(uart.base.raw(), uart.size))?;
    if with_irq {
        fdt.property_array_u32("interrupts", &[GIC_SPI, PL011_SPI, IRQ_LEVEL_HIGH])?;
    }
    fdt.property_array_u32("clocks", &[APB_PCLK_PHANDLE, APB_PCLK_PHANDLE])?;
    fdt.property_string_list("clock-names", vec!["uartclk".into(), "apb_pclk".into()])?;
    Ok(fdt.end_node(node)?)
}

/// The VM's GIC: a GICv3's distributor and redistributor windows, or a GICv2's distributor
/// and CPU interface.
enum Gic<'a> {
    V3 {
        dist: &'a DeviceWindow,
        redist: &'a DeviceWindow,
    },
    V2 {
        dist: &'a DeviceWindow,
        cpu: &'a DeviceWindow,
    },
}

impl<'a> Gic<'a> {
    /// The GIC of `vm`, if it has both windows of one.
    fn of(vm: &'a VmConfig) -> Option<Self> {
        let first = |kind| vm.devices_of(kind).next();
        if let (Some(dist), Some(redist)) = (
            first(DeviceKind::GicV3Distributor),
            first(DeviceKind::GicV3Redistributors),
        ) {
            return Some(Self::V3 { dist, redist });
        }
        Some(Self::V2 {
            dist: first(DeviceKind::GicV2Distributor)?,
            cpu: first(DeviceKind::GicV2CpuInterface)?,
        })
    }

    /// `intc@...`: for a GICv3, `reg` is the distributor and the redistributors of `cpus`
    /// vCPUs (at most the window), so that the guest's redistributor walk covers exactly its
    /// vCPUs; for a GICv2, the distributor and the CPU interface (`arm,gic` binding).
    fn intc_node(&self, fdt: &mut FdtWriter, cpus: u32) -> Result<(), GuestDtbError> {
        let (dist, second, compatible) = match *self {
            Self::V3 { dist, redist } => {
                let size = (u64::from(cpus) * GICR_SIZE_PER_CPU).min(redist.size);
                (dist, reg(redist.base.raw(), size), "arm,gic-v3")
            }
            Self::V2 { dist, cpu } => (dist, reg(cpu.base.raw(), cpu.size), "arm,cortex-a15-gic"),
        };
        let node = begin(fdt, "intc", dist.base.raw())?;
        fdt.property_string_list("compatible", vec![compatible.into()])?;
        fdt.property_u32("#interrupt-cells", 3)?;
        fdt.property_null("interrupt-controller")?;
        fdt.property_u32("#address-cells", 2)?;
        fdt.property_u32("#size-cells", 2)?;
        fdt.property_null("ranges")?;
        let dist = reg(dist.base.raw(), dist.size);
        fdt.property_array_u64("reg", &[dist, second].concat())?;
        fdt.property_phandle(GIC_PHANDLE)?;
        Ok(fdt.end_node(node)?)
    }

    /// The CPU-mask part of a PPI's flags cell: for a GICv2, bits \[15:8\] name the CPU
    /// interfaces the PPI is wired to (`arm,gic` binding), here every vCPU's; a GICv3's is 0.
    fn ppi_cpu_mask(&self, cpus: u32) -> u32 {
        match self {
            Self::V3 { .. } => 0,
            Self::V2 { .. } => ((1 << cpus.min(8)) - 1) << 8,
        }
    }
}

/// The VM's PCIe host bridge (`pci-host-ecam-generic`; Linux
/// `Documentation/devicetree/bindings/pci/host-generic-pci.yaml`), laid out as QEMU `virt`'s:
/// `reg` its ECAM window ([`crate::assign::guest_ecam`]), `bus-range` 0..=15, one `ranges`
/// entry of 32-bit non-prefetchable memory whose bus addresses are its IPAs, and, with the
/// GIC, an `interrupt-map` of the standard swizzle: pin p (1..=4) of slot d drives INTx line
/// (d + p − 1) mod 4, SPI 3 + line, level-high (`interrupt-map-mask` keeps the slot's low two
/// bits and the pin).
fn pci_node(fdt: &mut FdtWriter, with_irq: bool) -> Result<(), GuestDtbError> {
    use crate::assign::{GUEST_INTX_INTID, GUEST_LAST_BUS, guest_ecam, guest_pci_memory};
    /// `phys.hi` of a `ranges` entry: space code 0b10, 32-bit memory.
    const MEM32: u32 = 0x0200_0000;
    let (ecam, ecam_size) = guest_ecam();
    let (memory, memory_size) = guest_pci_memory();
    let node = begin(fdt, "pcie", ecam)?;
    fdt.property_string("compatible", "pci-host-ecam-generic")?;
    fdt.property_string("device_type", "pci")?;
    fdt.property_u32("#address-cells", 3)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("linux,pci-domain", 0)?;
    fdt.property_array_u32("bus-range", &[0, u32::from(GUEST_LAST_BUS)])?;
    fdt.property_null("dma-coherent")?;
    fdt.property_array_u64("reg", &reg(ecam, ecam_size))?;
    let hi = |v: u64| (v >> 32) as u32;
    let lo = |v: u64| v as u32;
    let ranges = [
        MEM32,
        hi(memory),
        lo(memory),
        hi(memory),
        lo(memory),
        hi(memory_size),
        lo(memory_size),
    ];
    fdt.property_array_u32("ranges", &ranges)?;
    if with_irq {
        fdt.property_u32("#interrupt-cells", 1)?;
        fdt.property_array_u32("interrupt-map-mask", &[0x1800, 0, 0, 7])?;
        let mut map = Vec::new();
        for slot in 0..4u32 {
            for pin in 1..=4u32 {
                let spi = GUEST_INTX_INTID - 32 + (slot + pin - 1) % 4;
                map.extend([slot << 11, 0, 0, pin, GIC_PHANDLE, 0, 0]);
                map.extend([GIC_SPI, spi, IRQ_LEVEL_HIGH]);
            }
        }
        fdt.property_array_u32("interrupt-map", &map)?;
    }
    Ok(fdt.end_node(node)?)
}

/// The architected timer, `always-on` as in QEMU virt (its comparators keep running); its
/// PPIs' flags carry `cpu_mask` (see `Gic::ppi_cpu_mask`).
fn timer_node(fdt: &mut FdtWriter, cpu_mask: u32) -> Result<(), GuestDtbError> {
    let node = fdt.begin_node("timer")?;
    let compatible = vec!["arm,armv8-timer".into(), "arm,armv7-timer".into()];
    fdt.property_string_list("compatible", compatible)?;
    let interrupts: Vec<u32> = TIMER_PPIS
        .iter()
        .flat_map(|&ppi| [GIC_PPI, ppi, IRQ_LEVEL_HIGH | cpu_mask])
        .collect();
    fdt.property_array_u32("interrupts", &interrupts)?;
    fdt.property_null("always-on")?;
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
