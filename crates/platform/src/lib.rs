//! The machine Moat runs on, as the device tree its loader passed describes it: RAM, the
//! console UART and its kind, the interrupt controller (GICv3, or GICv2 with its
//! virtualization extension's frames), the generic timer's interrupts, the firmware's PSCI
//! conduit, the CPUs, the initrd that carries the VM bundle, and the PCIe host bridge with the
//! SMMUv3 in front of it (`pci.rs`).
//!
//! The bindings read are Linux's (`Documentation/devicetree/bindings`): `memory` nodes,
//! `/chosen` (`stdout-path`, `linux,initrd-start`/`-end`, `bootargs` for a [`SelfTest`]), `arm,gic-v3` and
//! `arm,gic-400`/`arm,cortex-a15-gic` (`reg` in the order distributor, CPU interface, virtual
//! interface control, virtual CPU interface; `interrupts` the maintenance interrupt),
//! `arm,armv8-timer`, `arm,psci*` (`method`), `/cpus/cpu@N` (`reg` = MPIDR affinity),
//! `arm,pl011` and `cdns,uart-r1p12`/`xlnx,xuartps`.
//!
//! Pure: [`Platform::parse`] takes the tree's bytes. The EL2 binary makes the slice from the
//! address in `x0`; the host tests parse trees of QEMU `virt` (GICv2 and GICv3) and of the
//! Xilinx ZCU102 board (`testdata/`), also as QEMU edits it. The tree is the firmware's, but a
//! malformed one still never makes the reader panic: what cannot be read is absent.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod fdt;
mod free;
mod gic;
pub mod pci;
mod read;

#[cfg(test)]
mod tests;

use core::fmt;
use fdt::{Node, Tree, cells};

pub use free::{MAX_FREE_RANGES, OutOfMemory, PhysAllocator};
pub use gic::{Gic, GicV2, GicV3};
pub use pci::{PciHost, SmmuV3};
use read::{first_reg, gic_intid, is_compatible, is_enabled, nth_reg};

/// At most this many memory ranges are taken from the device tree.
pub const MAX_MEMORY_RANGES: usize = 8;
/// At most this many CPUs are taken from the device tree.
pub const MAX_CPUS: usize = 8;
/// At most this many reserved ranges are taken from the device tree.
pub const MAX_RESERVED: usize = 16;

/// A physical address range `[base, base + size)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl PhysRange {
    /// One past the last byte (saturating: a range never wraps).
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }
}

impl fmt::Display for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.base, self.end())
    }
}

/// How Moat calls its own firmware's PSCI (the DT's `/psci` `method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `SMC #0` (QEMU `virt` with `virtualization=on`, TF-A boards such as the ZCU102).
    Smc,
    /// `HVC #0` (impossible at EL2 unless a higher hypervisor exists; kept for completeness).
    Hvc,
}

/// The UART models Moat has a console driver for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartKind {
    /// Arm PrimeCell PL011 (`arm,pl011`): QEMU `virt`.
    Pl011,
    /// Cadence UART (`cdns,uart-r1p12`, `cdns,uart-r1p8`, `xlnx,xuartps`): Xilinx Zynq and
    /// ZynqMP (ZCU102).
    Cadence,
}

impl UartKind {
    /// The kind a `compatible` string names.
    pub fn from_compatible(compatible: &str) -> Option<Self> {
        match compatible {
            "arm,pl011" => Some(Self::Pl011),
            "cdns,uart-r1p12" | "cdns,uart-r1p8" | "xlnx,xuartps" => Some(Self::Cadence),
            _ => None,
        }
    }
}

impl fmt::Display for UartKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pl011 => "PL011",
            Self::Cadence => "Cadence UART",
        })
    }
}

/// The console: the UART of `/chosen/stdout-path`, or else the first enabled one Moat drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    /// Its registers.
    pub regs: PhysRange,
    /// Its model.
    pub kind: UartKind,
    /// Its interrupt's INTID at the GIC, if the tree gives one.
    pub intid: Option<u32>,
}

/// The generic timer's interrupts (`arm,armv8-timer`'s `interrupts`, in the binding's order),
/// as INTIDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timer {
    /// The secure EL1 physical timer.
    pub secure_phys: u32,
    /// The non-secure EL1 physical timer (`CNTP_*`).
    pub phys: u32,
    /// The virtual timer (`CNTV_*`).
    pub virt: u32,
    /// The EL2 physical timer (`CNTHP_*`).
    pub hyp_phys: u32,
}

/// The machine as the device tree describes it.
#[derive(Clone, Debug)]
pub struct Platform {
    /// The device tree's own range, kept out of the allocator.
    pub dtb: PhysRange,
    /// RAM ranges (every enabled `device_type = "memory"` node's `reg`, in tree order).
    pub memory: [PhysRange; MAX_MEMORY_RANGES],
    /// How many entries of `memory` are valid.
    pub memory_count: usize,
    /// RAM that is the firmware's (the memory reservation block and every `/reserved-memory`
    /// child's `reg`): never Moat's to hand out, whether `no-map` or reusable.
    pub reserved: [PhysRange; MAX_RESERVED],
    /// How many entries of `reserved` are valid.
    pub reserved_count: usize,
    /// Moat's console.
    pub console: Option<Uart>,
    /// The interrupt controller.
    pub gic: Option<Gic>,
    /// The generic timer's interrupts.
    pub timer: Option<Timer>,
    /// The initrd the loader placed (`/chosen/linux,initrd-start`/`-end`): Moat's VM bundle.
    pub initrd: Option<PhysRange>,
    /// The firmware's PSCI conduit (SMC when the tree has no `/psci`).
    pub psci: Conduit,
    /// The CPUs' MPIDR affinity values (`/cpus/cpu@N/reg`), boot CPU first as the tree lists
    /// them.
    pub cpus: [u64; MAX_CPUS],
    /// How many entries of `cpus` are valid.
    pub cpu_count: usize,
    /// The fault Moat is asked to inject into itself (`/chosen/bootargs`), if any.
    pub self_test: Option<SelfTest>,
    /// The PCIe host bridge (`pci-host-ecam-generic`), if the machine has one.
    pub pci: Option<PciHost>,
    /// The SMMUv3 (`arm,smmu-v3`), if the machine has one.
    pub smmu: Option<SmmuV3>,
}

/// A fault Moat injects into itself at boot, for the tests of what follows a Moat bug: named
/// by `moat.self-test=<name>` in the loader's command line (`/chosen/bootargs`, QEMU's
/// `-append`). Nothing a guest does reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfTest {
    /// `el2-stack-overflow`: the boot CPU recurses until its EL2 stack overflows into its
    /// guard page.
    El2StackOverflow,
    /// `stop-vm:N`: Moat stops VM `N` (its index in the description) at its next exit that
    /// reaches the trap dispatcher, as it stops a VM whose trap it has no outcome for.
    StopVm(u8),
}

impl SelfTest {
    /// The self-test `bootargs` names, if it names one it knows (the first wins).
    pub fn from_bootargs(bootargs: &str) -> Option<Self> {
        bootargs
            .split_whitespace()
            .find_map(|word| word.strip_prefix("moat.self-test="))
            .and_then(|name| match name.split_once(':') {
                None if name == "el2-stack-overflow" => Some(Self::El2StackOverflow),
                Some(("stop-vm", vm)) => vm.parse().ok().map(Self::StopVm),
                _ => None,
            })
    }
}

/// Why the device tree could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformError {
    /// No valid flattened device tree at this address (the loader's `x0`).
    BadDeviceTree(u64),
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadDeviceTree(at) => write!(f, "no valid device tree at {at:#x} (x0 at entry)"),
        }
    }
}

/// The size the header of the device tree starting with `header` claims (`totalsize`, big
/// endian at offset 4), if `header` starts with the FDT magic 0xd00dfeed. The EL2 binary reads
/// this many bytes from the loader's address.
pub fn device_tree_size(header: &[u8; 8]) -> Option<usize> {
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    (magic == 0xd00d_feed).then_some(size as usize)
}

impl Platform {
    /// Reads the device tree `dtb`, which the loader placed at physical address `base`.
    ///
    /// # Errors
    ///
    /// [`PlatformError::BadDeviceTree`] when `dtb` is not a flattened device tree.
    pub fn parse(dtb: &[u8], base: u64) -> Result<Self, PlatformError> {
        let fdt = Tree::new(dtb).ok_or(PlatformError::BadDeviceTree(base))?;
        let mut platform = Self {
            dtb: PhysRange {
                base,
                size: fdt.total_size() as u64,
            },
            memory: [PhysRange::default(); MAX_MEMORY_RANGES],
            memory_count: 0,
            reserved: [PhysRange::default(); MAX_RESERVED],
            reserved_count: 0,
            console: find_console(&fdt),
            gic: gic::find(&fdt),
            timer: find_timer(&fdt),
            initrd: find_initrd(&fdt),
            psci: find_psci_conduit(&fdt),
            cpus: [0; MAX_CPUS],
            cpu_count: 0,
            self_test: find_self_test(&fdt),
            pci: pci::find_host(&fdt),
            smmu: pci::find_smmu(&fdt),
        };
        for mpidr in cpu_ids(&fdt).take(MAX_CPUS) {
            platform.cpus[platform.cpu_count] = mpidr;
            platform.cpu_count += 1;
        }
        for range in memory_ranges(&fdt).take(MAX_MEMORY_RANGES) {
            platform.memory[platform.memory_count] = range;
            platform.memory_count += 1;
        }
        for range in reserved_ranges(&fdt).take(MAX_RESERVED) {
            platform.reserved[platform.reserved_count] = range;
            platform.reserved_count += 1;
        }
        Ok(platform)
    }

    /// The RAM ranges.
    pub fn memory(&self) -> &[PhysRange] {
        &self.memory[..self.memory_count]
    }

    /// The firmware's RAM.
    pub fn reserved(&self) -> &[PhysRange] {
        &self.reserved[..self.reserved_count]
    }

    /// The CPUs' MPIDR affinity values.
    pub fn cpus(&self) -> &[u64] {
        &self.cpus[..self.cpu_count]
    }

    /// The GICv3's distributor and redistributor regions, when the machine has a GICv3.
    pub fn gic_v3(&self) -> Option<(PhysRange, PhysRange)> {
        match self.gic? {
            Gic::V3(v3) => Some((v3.dist, v3.redist)),
            Gic::V2(_) => None,
        }
    }
}

/// Every enabled `device_type = "memory"` node's ranges, empty ones left out.
fn memory_ranges<'a>(fdt: &Tree<'a>) -> impl Iterator<Item = PhysRange> + 'a {
    fdt.nodes()
        .filter(|n| {
            n.property("device_type").and_then(|p| p.as_str()) == Some("memory") && is_enabled(*n)
        })
        .flat_map(|n| (0..).map_while(move |i| nth_reg(n, i)))
        .filter(|r| r.size != 0)
}

/// The memory reservation block's ranges, then the `reg` of every `/reserved-memory` child
/// (Devicetree Specification v0.4, 5.3 and 3.5), empty ones left out. A child without `reg`
/// (a pool placed by the OS with `size`/`alloc-ranges`) reserves nothing yet.
fn reserved_ranges<'a>(fdt: &Tree<'a>) -> impl Iterator<Item = PhysRange> + 'a {
    let block = fdt
        .reservations()
        .map(|(base, size)| PhysRange { base, size });
    let nodes = fdt
        .nodes()
        .filter(|n| n.is_child_of("/reserved-memory") && is_enabled(*n))
        .flat_map(|n| (0..).map_while(move |i| nth_reg(n, i)));
    block.chain(nodes).filter(|r| r.size != 0)
}

/// The `reg` of every `/cpus` child whose `device_type` is `cpu`: its MPIDR affinity fields
/// in `#address-cells` (1 or 2) cells.
fn cpu_ids<'a>(fdt: &Tree<'a>) -> impl Iterator<Item = u64> + 'a {
    fdt.nodes()
        .filter(|n| n.is_child_of("/cpus") && is_enabled(*n))
        .filter(|n| n.property("device_type").and_then(|p| p.as_str()) == Some("cpu"))
        .filter_map(|n| {
            let mut reg = cells(n.property("reg")?.value);
            fdt::take_cells(&mut reg, n.reg_cells().0 as usize)
        })
}

/// The node `stdout-path` names: a path, or an alias (`serial0`), either perhaps followed by
/// `:` and the line settings (`serial0:115200n8`), which are not part of the name.
fn stdout_node<'a>(fdt: &Tree<'a>) -> Option<Node<'a>> {
    let chosen = fdt.find("/chosen")?;
    let path = chosen.property("stdout-path")?.as_str()?;
    let name = path.split(':').next()?;
    if name.starts_with('/') {
        fdt.find(name)
    } else {
        let alias = fdt.find("/aliases")?.property(name)?.as_str()?;
        fdt.find(alias)
    }
}

fn uart_of(node: Node<'_>) -> Option<Uart> {
    let kind = node
        .property("compatible")?
        .strings()
        .find_map(UartKind::from_compatible)?;
    Some(Uart {
        regs: first_reg(node)?,
        kind,
        intid: node
            .property("interrupts")
            .and_then(|p| gic_intid(&mut cells(p.value))),
    })
}

fn find_console(fdt: &Tree<'_>) -> Option<Uart> {
    stdout_node(fdt)
        .and_then(uart_of)
        .or_else(|| fdt.nodes().filter(|n| is_enabled(*n)).find_map(uart_of))
}

fn find_timer(fdt: &Tree<'_>) -> Option<Timer> {
    let node = fdt
        .nodes()
        .find(|n| is_compatible(*n, &["arm,armv8-timer"]))?;
    let mut interrupts = cells(node.property("interrupts")?.value);
    Some(Timer {
        secure_phys: gic_intid(&mut interrupts)?,
        phys: gic_intid(&mut interrupts)?,
        virt: gic_intid(&mut interrupts)?,
        hyp_phys: gic_intid(&mut interrupts)?,
    })
}

fn find_self_test(fdt: &Tree<'_>) -> Option<SelfTest> {
    let bootargs = fdt.find("/chosen")?.property("bootargs")?.as_str()?;
    SelfTest::from_bootargs(bootargs)
}

fn find_initrd(fdt: &Tree<'_>) -> Option<PhysRange> {
    let chosen = fdt.find("/chosen")?;
    let start = chosen.property("linux,initrd-start")?.as_u64()?;
    let end = chosen.property("linux,initrd-end")?.as_u64()?;
    // `then`, not `then_some`: the size is computed only for a range that has one (a tree
    // whose initrd ends before it starts has none; found by the `platform` fuzz target).
    (end > start).then(|| PhysRange {
        base: start,
        size: end - start,
    })
}

fn find_psci_conduit(fdt: &Tree<'_>) -> Conduit {
    let method = fdt
        .nodes()
        .find(|n| is_compatible(*n, &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]))
        .or_else(|| fdt.find("/psci"))
        .and_then(|n| n.property("method"))
        .and_then(|p| p.as_str());
    match method {
        Some("hvc") => Conduit::Hvc,
        _ => Conduit::Smc,
    }
}
