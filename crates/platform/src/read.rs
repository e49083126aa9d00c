//! Small readers of device-tree property values: `reg` entries, GIC interrupt specifiers,
//! `status` and `compatible` (the cells themselves are decoded in `fdt.rs`).

use crate::PhysRange;
use crate::fdt::Node;

/// Entry `index` of the node's `reg`, in its parent's `#address-cells`/`#size-cells`.
pub fn nth_reg(node: Node<'_>, index: usize) -> Option<PhysRange> {
    let (base, size) = node.reg(index)?;
    Some(PhysRange { base, size })
}

/// The node's first `reg` entry.
pub fn first_reg(node: Node<'_>) -> Option<PhysRange> {
    nth_reg(node, 0)
}

/// The INTID of the next GIC interrupt specifier (`arm,gic` binding, 3 cells: type, number,
/// flags): an SPI (type 0) `n` is INTID 32 + n, a PPI (type 1) `n` is INTID 16 + n (GICv3
/// IHI 0069 "INTIDs"; the same numbering on GICv2).
pub fn gic_intid(cells: &mut impl Iterator<Item = u32>) -> Option<u32> {
    let kind = cells.next()?;
    let number = cells.next()?;
    let _flags = cells.next()?;
    match kind {
        0 => number.checked_add(32),
        1 => number.checked_add(16),
        _ => None,
    }
}

/// Whether the node is enabled: no `status`, or `okay`/`ok`.
pub fn is_enabled(node: Node<'_>) -> bool {
    node.property("status")
        .and_then(|p| p.as_str())
        .is_none_or(|s| s == "okay" || s == "ok")
}

/// Whether the node's `compatible` lists one of `with`.
pub fn is_compatible(node: Node<'_>, with: &[&str]) -> bool {
    node.property("compatible")
        .is_some_and(|c| c.strings().any(|s| with.contains(&s)))
}
