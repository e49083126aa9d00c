//! What Moat learns from the device tree its loader passed: memory, console, interrupt
//! controller, the firmware's PSCI conduit, and the initrd that carries the VM bundle.

use core::fmt;
use fdt::Fdt;

/// At most this many memory ranges are taken from the device tree.
pub const MAX_MEMORY_RANGES: usize = 8;

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
    /// `SMC #0` (QEMU `virt` with `virtualization=on`, TF-A boards).
    Smc,
    /// `HVC #0` (impossible at EL2 unless a higher hypervisor exists; kept for completeness).
    Hvc,
}

/// The machine as the device tree describes it.
#[derive(Clone, Debug)]
pub struct Platform {
    /// The device tree's own range, kept out of the allocator.
    pub dtb: PhysRange,
    /// RAM ranges (`/memory` nodes).
    pub memory: [PhysRange; MAX_MEMORY_RANGES],
    /// How many entries of `memory` are valid.
    pub memory_count: usize,
    /// Moat's console: the PL011 of `/chosen/stdout-path`, or the first `arm,pl011`.
    pub uart: Option<PhysRange>,
    /// GICv3 distributor and redistributor regions.
    pub gic: Option<(PhysRange, PhysRange)>,
    /// The initrd the loader placed (`/chosen/linux,initrd-start`/`-end`): Moat's VM bundle.
    pub initrd: Option<PhysRange>,
    /// The firmware's PSCI conduit.
    pub psci: Conduit,
    /// The CPUs' MPIDR affinity values (`/cpus/cpu@N/reg`), boot CPU first as the tree lists
    /// them.
    pub cpus: [u64; MAX_CPUS],
    /// How many entries of `cpus` are valid.
    pub cpu_count: usize,
}

/// At most this many CPUs are taken from the device tree.
pub const MAX_CPUS: usize = 8;

/// Why the device tree could not be used.
#[derive(Clone, Copy, Debug)]
pub enum PlatformError {
    /// No valid flattened device tree at the address in `x0`.
    BadDeviceTree(u64),
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadDeviceTree(at) => write!(f, "no valid device tree at {at:#x} (x0 at entry)"),
        }
    }
}

impl Platform {
    /// Reads the device tree at physical address `dtb`.
    ///
    /// # Safety
    ///
    /// `dtb` must be the address the loader passed in `x0`: readable memory holding a device
    /// tree (or nothing; the header is checked) that stays untouched for Moat's lifetime.
    pub unsafe fn from_device_tree(dtb: u64) -> Result<Self, PlatformError> {
        // SAFETY: the caller guarantees the address is readable and stable; `Fdt::from_ptr`
        // checks the header's magic and size before it builds the slice.
        let fdt = unsafe { Fdt::from_ptr(dtb as *const u8) }
            .map_err(|_| PlatformError::BadDeviceTree(dtb))?;
        let mut platform = Self {
            dtb: PhysRange {
                base: dtb,
                size: fdt.total_size() as u64,
            },
            memory: [PhysRange::default(); MAX_MEMORY_RANGES],
            memory_count: 0,
            uart: find_uart(&fdt),
            gic: find_gic(&fdt),
            initrd: find_initrd(&fdt),
            psci: find_psci_conduit(&fdt),
            cpus: [0; MAX_CPUS],
            cpu_count: 0,
        };
        for cpu in fdt.cpus().take(MAX_CPUS) {
            platform.cpus[platform.cpu_count] = cpu.ids().first() as u64;
            platform.cpu_count += 1;
        }
        for region in fdt.memory().regions().take(MAX_MEMORY_RANGES) {
            platform.memory[platform.memory_count] = PhysRange {
                base: region.starting_address as u64,
                size: region.size.unwrap_or(0) as u64,
            };
            platform.memory_count += 1;
        }
        Ok(platform)
    }

    /// The RAM ranges.
    pub fn memory(&self) -> &[PhysRange] {
        &self.memory[..self.memory_count]
    }
}

fn first_reg(node: fdt::node::FdtNode<'_, '_>, index: usize) -> Option<PhysRange> {
    let reg = node.reg()?.nth(index)?;
    Some(PhysRange {
        base: reg.starting_address as u64,
        size: reg.size.unwrap_or(0) as u64,
    })
}

fn find_uart(fdt: &Fdt<'_>) -> Option<PhysRange> {
    let stdout = fdt.chosen().stdout().filter(|n| {
        n.compatible()
            .is_some_and(|c| c.all().any(|s| s == "arm,pl011"))
    });
    let node = stdout.or_else(|| fdt.find_compatible(&["arm,pl011"]))?;
    first_reg(node, 0)
}

fn find_gic(fdt: &Fdt<'_>) -> Option<(PhysRange, PhysRange)> {
    let node = fdt.find_compatible(&["arm,gic-v3"])?;
    Some((first_reg(node, 0)?, first_reg(node, 1)?))
}

fn find_initrd(fdt: &Fdt<'_>) -> Option<PhysRange> {
    let chosen = fdt.find_node("/chosen")?;
    let start = chosen.property("linux,initrd-start")?.as_usize()? as u64;
    let end = chosen.property("linux,initrd-end")?.as_usize()? as u64;
    (end > start).then_some(PhysRange {
        base: start,
        size: end - start,
    })
}

fn find_psci_conduit(fdt: &Fdt<'_>) -> Conduit {
    let method = fdt
        .find_node("/psci")
        .and_then(|n| n.property("method"))
        .and_then(|p| p.as_str());
    match method {
        Some("hvc") => Conduit::Hvc,
        _ => Conduit::Smc,
    }
}
