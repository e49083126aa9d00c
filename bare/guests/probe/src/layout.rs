//! The encoding of the probe's stage-1 translation for `probe.mmu=on` (Arm ARM "VMSAv8-64
//! translation table format descriptors", 4K granule, `TCR_EL1.T0SZ` = 16, so walks start at
//! level 0): the descriptors, `MAIR_EL1`/`TCR_EL1` values and the four mapping [`Shape`]s. Pure
//! values only; the binary's `mmu.rs` writes them into tables and turns the MMU on.
//!
//! Every case maps its target at one fixed *window* VA, [`WINDOW`] (plus the target's offset in
//! its 4K page for [`Shape::Page`]), so `FAR_EL1` (a VA) never equals the IPA of the target: a
//! report of the IPA where the VA belongs shows up as a difference.

/// The VA every case's target is mapped at: 1 GiB aligned, level-0 index 0xb4, so it shares no
/// table with the identity map of RAM and the UART (level-0 index 0).
pub const WINDOW: u64 = 0x0000_5a5a_4000_0000;

/// 4 KiB: a page, and the alignment of a table.
pub const KIB4: u64 = 1 << 12;
/// 2 MiB: a level-2 block.
pub const MIB2: u64 = 1 << 21;
/// 1 GiB: a level-1 block.
pub const GIB1: u64 = 1 << 30;
/// Descriptors hold output address bits \[47:12\] (4K granule without FEAT_LPA2).
pub const OA_MASK: u64 = 0x0000_ffff_ffff_f000;

/// Descriptor type bits \[1:0\]: table (levels 0-2) or page (level 3).
pub const VALID_TABLE: u64 = 0b11;
/// Descriptor type bits \[1:0\]: block (levels 1-2).
pub const VALID_BLOCK: u64 = 0b01;
const ATTR_NORMAL: u64 = 0 << 2; // AttrIndx = 0: MAIR_EL1.Attr0
const ATTR_DEVICE: u64 = 1 << 2; // AttrIndx = 1: MAIR_EL1.Attr1
const AP_EL0_RW: u64 = 1 << 6; // AP[2:1] = 0b01: read/write at EL1 and EL0
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

/// `MAIR_EL1`: Attr0 = Normal, Inner/Outer Write-Back RW-allocate; Attr1 = Device-nGnRnE.
pub const MAIR: u64 = 0xff;

/// Attributes of the identity-mapped RAM: Normal, EL1 read/write, EL0 no data access but
/// executable (UXN = 0), so EL0 cases can run the snippets (execute-only at EL0).
pub const RAM_ATTRIBUTES: u64 = ATTR_NORMAL | SH_INNER | AF;
/// Attributes of the identity-mapped UART: Device-nGnRnE, EL1 only, never executable.
pub const DEVICE_ATTRIBUTES: u64 = ATTR_DEVICE | AF | PXN | UXN;

/// `TCR_EL1` for `IPS` = `ips` (an encoding, see [`ips_encoding`]): T0SZ = 16, TG0 = 4K, EPD1 = 1
/// (no TTBR1 walks), TG1 = 4K (0b10), walks Non-cacheable (IRGN0 = ORGN0 = 0).
pub const fn tcr(ips: u64) -> u64 {
    16 | (1 << 23) | (0b10 << 30) | (ips << 32)
}

/// The `TCR_EL1.IPS` encoding for a PA size in bits (32, 36, 40, 42, 44, 48, 52).
pub const fn ips_encoding(bits: u32) -> Option<u64> {
    match bits {
        32 => Some(0),
        36 => Some(1),
        40 => Some(2),
        42 => Some(3),
        44 => Some(4),
        48 => Some(5),
        52 => Some(6),
        _ => None,
    }
}

/// The index of `va` in a table at `level` (4K granule: 9 bits per level from bit 39 down).
pub const fn index(va: u64, level: u32) -> u64 {
    (va >> (39 - 9 * level)) & 511
}

/// A table descriptor pointing at the next-level table at `address`.
pub const fn table(address: u64) -> u64 {
    (address & OA_MASK) | VALID_TABLE
}

/// A level-2 block descriptor mapping the 2 MiB at `address` with `attributes`.
pub const fn block_2m(address: u64, attributes: u64) -> u64 {
    (address & OA_MASK & !(MIB2 - 1)) | attributes | VALID_BLOCK
}

/// How a case maps its target (one kind per shape: `<kind>_page`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A level-3 page descriptor.
    Page,
    /// A level-2 block descriptor (the target must be 2 MiB aligned).
    Block2m,
    /// A level-1 block descriptor (the target must be 1 GiB aligned).
    Block1g,
    /// A level-1 *table* descriptor whose next-level (level-2) table is at the target, so the
    /// walk itself reads the target (must be 4K aligned).
    TableAt,
}

/// The window's descriptors for one case: the level-1 entry, and the level-2 and level-3 entries
/// (index 0 of the window's own tables) when the shape uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowEntries {
    /// The window's level-1 descriptor (index [`index`]`(WINDOW, 1)`).
    pub l1: u64,
    /// Entry 0 of the window's level-2 table, if the walk reaches it.
    pub l2: Option<u64>,
    /// Entry 0 of the window's level-3 table, if the walk reaches it.
    pub l3: Option<u64>,
}

impl Shape {
    /// All shapes, in output order.
    pub const ALL: [Self; 4] = [Self::Page, Self::Block2m, Self::Block1g, Self::TableAt];

    /// The kind-name suffix.
    pub const fn suffix(self) -> &'static str {
        match self {
            Self::Page => "_page",
            Self::Block2m => "_block2m",
            Self::Block1g => "_block1g",
            Self::TableAt => "_table_at",
        }
    }

    /// The alignment the target needs for this shape.
    const fn alignment(self) -> u64 {
        match self {
            Self::Page => 1,
            Self::Block2m => MIB2,
            Self::Block1g => GIB1,
            Self::TableAt => KIB4,
        }
    }

    /// The VA at which a case accesses `target` mapped in this shape.
    pub const fn va(self, target: u64) -> u64 {
        match self {
            Self::Page => WINDOW + (target & (KIB4 - 1)),
            _ => WINDOW,
        }
    }

    /// Whether `target` can be mapped in this shape: aligned, encodable in a descriptor (below
    /// 2^48), and its VA differs from it.
    pub const fn can_map(self, target: u64) -> bool {
        target & !OA_MASK & !(KIB4 - 1) == 0
            && target.is_multiple_of(self.alignment())
            && self.va(target) != target
    }

    /// The descriptors that map `target` at the window in this shape, for EL0 (read/write,
    /// executable at EL0 only) or EL1 (read/write, executable at EL1 only), given the addresses
    /// of the window's level-2 and level-3 tables.
    pub const fn window_entries(self, target: u64, el0: bool, l2: u64, l3: u64) -> WindowEntries {
        let permissions = if el0 { AP_EL0_RW | PXN } else { UXN };
        let leaf = (target & OA_MASK) | ATTR_NORMAL | SH_INNER | AF | permissions;
        match self {
            Self::Page => WindowEntries {
                l1: table(l2),
                l2: Some(table(l3)),
                l3: Some(leaf | VALID_TABLE),
            },
            Self::Block2m => WindowEntries {
                l1: table(l2),
                l2: Some(leaf | VALID_BLOCK),
                l3: None,
            },
            Self::Block1g => WindowEntries {
                l1: leaf | VALID_BLOCK,
                l2: None,
                l3: None,
            },
            Self::TableAt => WindowEntries {
                l1: table(target),
                l2: None,
                l3: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L2: u64 = 0x4010_0000;
    const L3: u64 = 0x4010_1000;

    #[test]
    fn window_uses_its_own_level0_entry_and_level1_index() {
        assert_eq!((index(WINDOW, 0), index(WINDOW, 1)), (0xb4, 0x169));
        assert_eq!((index(WINDOW, 2), index(WINDOW, 3)), (0, 0));
        assert_eq!(
            index(0x4000_0000, 0),
            0,
            "RAM shares level-0 entry 0 with the UART"
        );
    }

    #[test]
    fn table_at_points_the_level1_descriptor_at_the_target() {
        let entries = Shape::TableAt.window_entries(0x1000_0000_0000, false, L2, L3);
        assert_eq!(entries.l1, 0x1000_0000_0003);
        assert_eq!((entries.l2, entries.l3), (None, None));
    }

    #[test]
    fn el1_page_is_a_level3_page_descriptor_af_set_ap00_uxn() {
        let entries = Shape::Page.window_entries(0x5000_0123, false, L2, L3);
        assert_eq!(entries.l1, L2 | 0b11);
        assert_eq!(entries.l2, Some(L3 | 0b11));
        assert_eq!(entries.l3, Some(0x5000_0000 | UXN | AF | SH_INNER | 0b11));
        assert_eq!(Shape::Page.va(0x5000_0123), WINDOW + 0x123);
    }

    #[test]
    fn el0_mapping_is_ap01_and_privileged_execute_never() {
        let entries = Shape::Block2m.window_entries(0x5000_0000, true, L2, L3);
        assert_eq!(
            entries.l2,
            Some(0x5000_0000 | PXN | AF | SH_INNER | AP_EL0_RW | 0b01)
        );
    }

    #[test]
    fn block1g_is_a_level1_block_descriptor() {
        let entries = Shape::Block1g.window_entries(0x1_0000_0000, false, L2, L3);
        assert_eq!(entries.l1, 0x1_0000_0000 | UXN | AF | SH_INNER | 0b01);
    }

    #[test]
    fn blocks_need_their_alignment_and_nothing_maps_at_or_above_2_pow_48() {
        assert!(Shape::Page.can_map(0xffff_ffff_f000));
        assert!(!Shape::Page.can_map(1 << 48));
        assert!(!Shape::Block2m.can_map(0x5010_0000));
        assert!(Shape::Block2m.can_map(0x5020_0000));
        assert!(!Shape::Block1g.can_map(0x5000_0000));
        assert!(!Shape::TableAt.can_map(0x5000_0008));
        assert!(!Shape::Block1g.can_map(WINDOW), "VA = IPA is refused");
    }

    #[test]
    fn tcr_puts_ips_in_bits_34_32() {
        assert_eq!(tcr(ips_encoding(44).unwrap()), 0x4_8080_0010);
        assert_eq!(ips_encoding(41), None);
    }
}
