//! The interrupt controller: a GICv3 (distributor and redistributor regions), or a GICv2 with
//! the frames of its virtualization extension (`arm,gic` binding: `reg` = GICD, GICC, GICH,
//! GICV; `interrupts` = the maintenance interrupt).

use crate::PhysRange;
use crate::fdt::{Node, Tree, cells};
use crate::read::{gic_intid, is_compatible, is_enabled, nth_reg};

/// The machine's GIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gic {
    /// GICv3 (`arm,gic-v3`).
    V3(GicV3),
    /// GICv2 (`arm,gic-400`, `arm,cortex-a15-gic`, `arm,cortex-a7-gic`).
    V2(GicV2),
}

/// A GICv3's regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicV3 {
    /// The distributor (GICD).
    pub dist: PhysRange,
    /// The first redistributor region (GICR).
    pub redist: PhysRange,
    /// The virtual CPU interface's maintenance interrupt (a PPI), as an INTID.
    pub maintenance: Option<u32>,
}

/// A GICv2's frames. The virtualization extension's two are absent on a GIC without it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicV2 {
    /// The distributor (GICD).
    pub dist: PhysRange,
    /// The CPU interface (GICC).
    pub cpu: PhysRange,
    /// The virtual interface control (GICH: list registers, `GICH_HCR`).
    pub hyp: Option<PhysRange>,
    /// The virtual CPU interface (GICV), which a guest sees as its GICC.
    pub vcpu: Option<PhysRange>,
    /// The virtual CPU interface's maintenance interrupt (a PPI), as an INTID.
    pub maintenance: Option<u32>,
}

/// The 8 KiB a GICv2 CPU interface (GICC, GICV) spans: `GICC_DIR` is at 0x1000.
pub const CPU_INTERFACE_SIZE: u64 = 0x2000;
/// A GIC frame 64 KiB-aligned for 64 KiB pages.
const FRAME_64K: u64 = 0x1_0000;

impl GicV2 {
    /// The CPU interface as 8 contiguous KiB (see [`contiguous_cpu_interface`]).
    pub fn cpu_interface(&self) -> PhysRange {
        contiguous_cpu_interface(self.cpu)
    }

    /// The virtual CPU interface as 8 contiguous KiB (see [`contiguous_cpu_interface`]).
    pub fn vcpu_interface(&self) -> Option<PhysRange> {
        self.vcpu.map(contiguous_cpu_interface)
    }
}

/// Where the 8 KiB of a GICv2 CPU interface (or virtual CPU interface) frame are contiguous.
///
/// A `reg` of 8 KiB (QEMU `virt`) is the interface itself. A `reg` of 128 KiB is the GIC-400
/// placed for 64 KiB pages, as on the ZynqMP: each 4 KiB page of the interface is repeated
/// over a 64 KiB frame, two frames in all, so the interface's first page is followed by its
/// second only at frame base + 0xF000 (the last alias of page 0, then the first of page 1).
/// Linux's GIC driver (`gic_check_eoimode`) and Xen use the interface at that address.
pub fn contiguous_cpu_interface(frame: PhysRange) -> PhysRange {
    let base = if frame.size >= 2 * FRAME_64K {
        frame.base + FRAME_64K - 0x1000
    } else {
        frame.base
    };
    PhysRange {
        base,
        size: CPU_INTERFACE_SIZE,
    }
}

/// The first enabled GIC of the tree, v3 before v2.
pub fn find(tree: &Tree<'_>) -> Option<Gic> {
    let gic = |with: &[&str]| {
        tree.nodes()
            .find(|n| is_compatible(*n, with) && is_enabled(*n))
    };
    if let Some(node) = gic(&["arm,gic-v3"]) {
        return Some(Gic::V3(GicV3 {
            dist: nth_reg(node, 0)?,
            redist: nth_reg(node, 1)?,
            maintenance: maintenance(node),
        }));
    }
    let node = gic(&["arm,gic-400", "arm,cortex-a15-gic", "arm,cortex-a7-gic"])?;
    Some(Gic::V2(GicV2 {
        dist: nth_reg(node, 0)?,
        cpu: nth_reg(node, 1)?,
        hyp: nth_reg(node, 2),
        vcpu: nth_reg(node, 3),
        maintenance: maintenance(node),
    }))
}

/// The maintenance interrupt of a GIC node: the first specifier of its `interrupts`, which
/// must name a PPI (INTID 16–31: the virtual CPU interface signals it to its own PE, IHI 0048B
/// 5.3.1 and IHI 0069 "Maintenance interrupts"); anything else gives none.
fn maintenance(node: Node<'_>) -> Option<u32> {
    gic_intid(&mut cells(node.property("interrupts")?.value))
        .filter(|intid| (16..32).contains(intid))
}

impl Gic {
    /// The virtual CPU interface's maintenance interrupt (a PPI's INTID), as the GIC node's
    /// `interrupts` gives it.
    pub fn maintenance(&self) -> Option<u32> {
        match self {
            Self::V3(v3) => v3.maintenance,
            Self::V2(v2) => v2.maintenance,
        }
    }
}
