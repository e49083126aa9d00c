//! The PCIe host bridge (`pci-host-ecam-generic`) and the SMMUv3 (`arm,smmu-v3`) in front of
//! it, as the device tree describes them.
//!
//! Bindings (Linux `Documentation/devicetree/bindings`, facts only): `pci/host-generic-pci`
//! (`reg` = the ECAM region, `bus-range`, `ranges`, `interrupt-map`/`-mask`), the Open
//! Firmware PCI bus binding (IEEE 1275 PCI Bus Binding rev 2.1, 2.2.1.1 "Numerical
//! Representation": a PCI address is 3 cells, `phys.hi` = `npt000ss bbbbbbbb dddddfff
//! rrrrrrrr`, `ss` the space: 01 I/O, 10 32-bit memory, 11 64-bit memory; `p` prefetchable),
//! `pci/pci-iommu` (`iommu-map` = (rid-base, iommu, iommu-base, length) tuples), and
//! `iommu/arm,smmu-v3` (`interrupt-names` among `eventq`, `priq`, `cmdq-sync`, `gerror`).
//! Interrupt maps follow the Devicetree Specification v0.4, 2.4.3 "Interrupt Nexus
//! Properties": each entry is child unit address, child interrupt specifier, the parent's
//! phandle, parent unit address (its `#address-cells`), parent interrupt specifier (its
//! `#interrupt-cells`).
//!
//! QEMU `virt` (`testdata/qemu-virt-smmuv3*.dtb`): ECAM at 0x3f00_0000 (16 buses) with
//! `highmem=off`, at 0x40_1000_0000 (256 buses) without; I/O 64 KiB at 0x3eff_0000; 32-bit
//! memory 0x1000_0000..0x3eff_0000; with highmem a 64-bit window at 512 GiB; INTA..INTD of
//! slot `d` on SPIs 3..6 swizzled by `d mod 4`; every requester ID is its stream ID at the
//! SMMU.

use crate::PhysRange;
use crate::fdt::{Node, Tree, cells, take_cells};
use crate::read::{first_reg, gic_intid, is_compatible, is_enabled};

/// At most this many `ranges` windows are read.
pub const MAX_WINDOWS: usize = 4;
/// At most this many `interrupt-map` entries are read (QEMU `virt` has 16: 4 slots × 4 pins).
pub const MAX_INTX_ENTRIES: usize = 32;

/// The kind of a host-bridge window (`phys.hi` `ss`, and `p` for memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// I/O space (`ss` = 01).
    Io,
    /// 32-bit memory space (`ss` = 10).
    Mem32 {
        /// `p`: the region is prefetchable.
        prefetchable: bool,
    },
    /// 64-bit memory space (`ss` = 11).
    Mem64 {
        /// `p`: the region is prefetchable.
        prefetchable: bool,
    },
}

/// `I/O`, `32-bit memory`, `64-bit memory, prefetchable`.
impl core::fmt::Display for WindowKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (name, prefetchable) = match *self {
            Self::Io => ("I/O", false),
            Self::Mem32 { prefetchable } => ("32-bit memory", prefetchable),
            Self::Mem64 { prefetchable } => ("64-bit memory", prefetchable),
        };
        f.write_str(name)?;
        if prefetchable {
            f.write_str(", prefetchable")?;
        }
        Ok(())
    }
}

/// One `ranges` entry: bus addresses `[pci, pci + cpu.size)` appear at `cpu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The space.
    pub kind: WindowKind,
    /// The first bus address (what a BAR holds).
    pub pci: u64,
    /// Where the CPU reaches it.
    pub cpu: PhysRange,
}

/// One `interrupt-map` entry, its child address already reduced to the device number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntxRoute {
    /// `phys.hi` of the child unit address, as the map gives it (masked by the map's mask).
    pub child_hi: u32,
    /// The INTx pin, 1 (INTA) to 4 (INTD), as in `Interrupt Pin` (PCI Local Bus 3.0, 6.2.4).
    pub pin: u32,
    /// The GIC INTID it reaches.
    pub intid: u32,
}

/// One `iommu-map` entry: requester IDs `[rid_base, rid_base + length)` are stream IDs
/// from `sid_base` at the IOMMU whose phandle is `iommu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IommuMap {
    /// The first requester ID (bus << 8 | device << 3 | function).
    pub rid_base: u32,
    /// The IOMMU's phandle.
    pub iommu: u32,
    /// The stream ID of `rid_base`.
    pub sid_base: u32,
    /// How many requester IDs.
    pub length: u32,
}

/// The ECAM host bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciHost {
    /// The ECAM region (`reg`): 1 MiB per bus, 4 KiB per function (PCIe Base 4.0, 7.2.2
    /// "PCI Express Enhanced Configuration Access Mechanism (ECAM)").
    pub ecam: PhysRange,
    /// `bus-range`: the first and last bus numbers the ECAM region decodes.
    pub buses: (u8, u8),
    /// The `ranges` windows, in tree order.
    pub windows: [Option<Window>; MAX_WINDOWS],
    /// `interrupt-map-mask`'s `phys.hi` and pin cells.
    pub intx_mask: (u32, u32),
    /// The `interrupt-map` entries, in tree order.
    pub intx: [Option<IntxRoute>; MAX_INTX_ENTRIES],
    /// The first `iommu-map` entry.
    pub iommu_map: Option<IommuMap>,
}

impl PciHost {
    /// The buses the ECAM region really decodes: `bus-range`, cut to the region's size
    /// (1 MiB per bus), so that no scan reads beyond `reg`. `None` when not even the first
    /// bus fits.
    pub fn ecam_buses(&self) -> Option<(u8, u8)> {
        let (first, last) = self.buses;
        let fitting = (self.ecam.size >> 20).min(256) as u16;
        let end = (u16::from(first) + fitting).checked_sub(1)?;
        (end >= u16::from(first) && last >= first).then(|| (first, last.min(end.min(255) as u8)))
    }

    /// The windows the tree gave.
    pub fn windows(&self) -> impl Iterator<Item = Window> + '_ {
        self.windows.iter().flatten().copied()
    }

    /// The first window of `kind`.
    pub fn window(&self, kind: WindowKind) -> Option<Window> {
        self.windows().find(|w| w.kind == kind)
    }

    /// The INTID that pin `pin` (1 = INTA .. 4 = INTD) of `device` on `bus` reaches, through
    /// the map and its mask (Devicetree Specification v0.4, 2.4.3.2 `interrupt-map-mask`).
    pub fn intx_intid(&self, bus: u8, device: u8, pin: u32) -> Option<u32> {
        let hi = u32::from(bus) << 16 | u32::from(device) << 11;
        let (hi_mask, pin_mask) = self.intx_mask;
        self.intx
            .iter()
            .flatten()
            .find(|r| r.child_hi == hi & hi_mask && r.pin == pin & pin_mask)
            .map(|r| r.intid)
    }

    /// The stream ID of requester ID `rid` at the IOMMU, if the `iommu-map` covers it.
    pub fn stream_id(&self, rid: u16) -> Option<u32> {
        let map = self.iommu_map?;
        let offset = u32::from(rid).checked_sub(map.rid_base)?;
        (offset < map.length).then(|| map.sid_base.wrapping_add(offset))
    }
}

/// An SMMUv3 (`arm,smmu-v3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmmuV3 {
    /// Its register pages (`reg`: page 0 and page 1, 128 KiB).
    pub regs: PhysRange,
    /// Its phandle, which an `iommu-map` names.
    pub phandle: Option<u32>,
    /// The event queue's interrupt (`eventq`), as an INTID.
    pub eventq: Option<u32>,
    /// The PRI queue's interrupt (`priq`).
    pub priq: Option<u32>,
    /// The CMD_SYNC completion interrupt (`cmdq-sync`).
    pub cmdq_sync: Option<u32>,
    /// The global error interrupt (`gerror`).
    pub gerror: Option<u32>,
}

/// The first enabled `arm,smmu-v3`.
pub fn find_smmu(tree: &Tree<'_>) -> Option<SmmuV3> {
    let node = tree
        .nodes()
        .find(|n| is_compatible(*n, &["arm,smmu-v3"]) && is_enabled(*n))?;
    let names = node.property("interrupt-names");
    let interrupt = |name: &str| {
        let index = names?.strings().position(|s| s == name)?;
        let mut specs = cells(node.property("interrupts")?.value).skip(3 * index);
        gic_intid(&mut specs)
    };
    Some(SmmuV3 {
        regs: first_reg(node)?,
        phandle: phandle(node),
        eventq: interrupt("eventq"),
        priq: interrupt("priq"),
        cmdq_sync: interrupt("cmdq-sync"),
        gerror: interrupt("gerror"),
    })
}

/// The first enabled `pci-host-ecam-generic` whose child addresses are PCI's 3 cells.
pub fn find_host(tree: &Tree<'_>) -> Option<PciHost> {
    let node = tree
        .nodes()
        .find(|n| is_compatible(*n, &["pci-host-ecam-generic"]) && is_enabled(*n))?;
    if node.child_cells().0 != 3 {
        return None;
    }
    let buses = match node.property("bus-range") {
        Some(p) => {
            let mut c = cells(p.value);
            let first = u8::try_from(c.next()?).ok()?;
            let last = u8::try_from(c.next()?).ok()?;
            (first, last)
        }
        None => (0, 0xff),
    };
    let mut c = node.property("interrupt-map-mask").map(|p| cells(p.value));
    let intx_mask = c.as_mut().map_or((u32::MAX, u32::MAX), |c| {
        let hi = c.next().unwrap_or(u32::MAX);
        (hi, c.nth(2).unwrap_or(u32::MAX))
    });
    let mut host = PciHost {
        ecam: first_reg(node)?,
        buses,
        windows: [None; MAX_WINDOWS],
        intx_mask,
        intx: [None; MAX_INTX_ENTRIES],
        iommu_map: iommu_map(node),
    };
    for (slot, window) in host.windows.iter_mut().zip(windows(node)) {
        *slot = Some(window);
    }
    for (slot, route) in host.intx.iter_mut().zip(intx_routes(tree, node)) {
        *slot = Some(route);
    }
    Some(host)
}

fn phandle(node: Node<'_>) -> Option<u32> {
    let p = node.property("phandle")?.as_u64()?;
    u32::try_from(p).ok()
}

/// The kind `phys.hi` gives (IEEE 1275 PCI binding 2.2.1.1: `ss` in bits 25:24, `p` bit 30);
/// configuration space (`ss` = 00) is no window.
fn window_kind(hi: u32) -> Option<WindowKind> {
    let prefetchable = hi & 1 << 30 != 0;
    match hi >> 24 & 0b11 {
        0b01 => Some(WindowKind::Io),
        0b10 => Some(WindowKind::Mem32 { prefetchable }),
        0b11 => Some(WindowKind::Mem64 { prefetchable }),
        _ => None,
    }
}

/// The `ranges` entries: PCI address (3 cells), CPU address (the parent's `#address-cells`),
/// size (the bridge's `#size-cells`).
fn windows<'a>(node: Node<'a>) -> impl Iterator<Item = Window> + 'a {
    let parent_cells = node.reg_cells().0 as usize;
    let size_cells = node.child_cells().1 as usize;
    let mut c = node.property("ranges").map(|p| cells(p.value));
    core::iter::from_fn(move || {
        let c = c.as_mut()?;
        loop {
            let hi = c.next()?;
            let pci = take_cells(c, 2)?;
            let base = take_cells(c, parent_cells)?;
            let size = take_cells(c, size_cells)?;
            if let Some(kind) = window_kind(hi) {
                return Some(Window {
                    kind,
                    pci,
                    cpu: PhysRange { base, size },
                });
            }
        }
    })
    .take(MAX_WINDOWS)
}

/// The `interrupt-map` entries whose parent is a GIC (3-cell specifiers: type, number,
/// flags); the walk stops at the first entry it cannot read.
fn intx_routes<'a>(tree: &Tree<'a>, node: Node<'a>) -> impl Iterator<Item = IntxRoute> + 'a {
    let tree = *tree;
    let mut c = node.property("interrupt-map").map(|p| cells(p.value));
    core::iter::from_fn(move || {
        let c = c.as_mut()?;
        let child_hi = c.next()?;
        let _child_mid_lo = take_cells(c, 2)?;
        let pin = c.next()?;
        let parent = c.next()?;
        let controller = tree.nodes().find(|n| phandle(*n) == Some(parent))?;
        let count = |name: &str| {
            controller
                .property(name)
                .and_then(|p| p.as_u64())
                .unwrap_or(0) as usize
        };
        let (address_cells, interrupt_cells) = (count("#address-cells"), count("#interrupt-cells"));
        for _ in 0..address_cells {
            c.next()?;
        }
        if interrupt_cells != 3 {
            return None;
        }
        let intid = gic_intid(c)?;
        Some(IntxRoute {
            child_hi,
            pin,
            intid,
        })
    })
    .take(MAX_INTX_ENTRIES)
}

fn iommu_map(node: Node<'_>) -> Option<IommuMap> {
    let mut c = cells(node.property("iommu-map")?.value);
    Some(IommuMap {
        rid_base: c.next()?,
        iommu: c.next()?,
        sid_base: c.next()?,
        length: c.next()?,
    })
}
