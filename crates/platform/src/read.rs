//! Small readers of device-tree property values: big-endian 32-bit cells, `reg` entries, GIC
//! interrupt specifiers, `status` and `compatible`.

use crate::PhysRange;
use crate::fdt::Node;

/// The big-endian 32-bit cells of a property value (a trailing partial cell is ignored).
pub fn cells(value: &[u8]) -> impl Iterator<Item = u32> + '_ {
    value
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

/// A number of `n` cells (0 to 2), most significant first; `None` past the end or for more
/// than 2 cells.
pub fn take_cells(cells: &mut impl Iterator<Item = u32>, n: usize) -> Option<u64> {
    if n > 2 {
        return None;
    }
    (0..n).try_fold(0u64, |acc, _| Some(acc << 32 | u64::from(cells.next()?)))
}

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
