//! Stage-2 VMSAv8-64 descriptors for the 4K granule with 48-bit output addresses (Arm ARM
//! "Translation table descriptor formats", stage 2 block/page attributes; `AArch64.S2Walk()`
//! and `S2AttrDecode()`), and the attributes Moat gives a mapping ([`S2Attrs`]).
//!
//! Memory attributes use the `HCR_EL2.FWB` = 0 encoding of `MemAttr[3:0]`. Moat sets the access
//! flag in every descriptor it writes (SPEC §2), so access-flag faults never come from stage 2.

use moat_arm::addr::Pa;

use crate::geometry::LAST_LEVEL;

/// Bit 0: the descriptor is valid. With bit 0 clear the Arm ARM ignores bits [63:1], which Moat
/// uses to park a leaf while it is being changed (see [`Descriptor::parked`]).
const VALID: u64 = 1 << 0;
/// Bit 1: table descriptor (levels 0–2) or page descriptor (level 3); 0 = block (levels 1–2).
const TABLE_OR_PAGE: u64 = 1 << 1;
/// `MemAttr[3:0]`, bits [5:2].
const MEMATTR_SHIFT: u32 = 2;
const MEMATTR_MASK: u64 = 0b1111 << MEMATTR_SHIFT;
/// `MemAttr` (FWB = 0): Device-nGnRE (`MemAttr[3:2]` = 0b00 Device, `[1:0]` = 0b01 nGnRE).
const MEMATTR_DEVICE_NGNRE: u64 = 0b0001;
/// `MemAttr` (FWB = 0): Normal, Outer (`[3:2]`) and Inner (`[1:0]`) Write-Back Cacheable.
const MEMATTR_NORMAL_WB: u64 = 0b1111;
/// `S2AP[1:0]`, bits [7:6].
const S2AP_SHIFT: u32 = 6;
const S2AP_MASK: u64 = 0b11 << S2AP_SHIFT;
/// `SH[1:0]`, bits [9:8]; 0b11 = Inner Shareable.
const SH_SHIFT: u32 = 8;
const SH_MASK: u64 = 0b11 << SH_SHIFT;
const SH_INNER: u64 = 0b11 << SH_SHIFT;
/// `AF`, bit 10.
const AF: u64 = 1 << 10;
/// `XN[1:0]`, bits [54:53] (bit 53 is RES0 without FEAT_XNX); 0b10 = execute-never at EL1 and
/// EL0, which is also the FEAT_XNX-less meaning of bit 54.
const XN_MASK: u64 = 0b11 << 53;
const XN_NEVER: u64 = 0b10 << 53;
/// Output address bits [47:12] of a table or page descriptor (a block's low bits are zero).
const OA_MASK: u64 = 0x0000_ffff_ffff_f000;
/// Every attribute bit [`S2Attrs`] controls.
const ATTR_MASK: u64 = MEMATTR_MASK | S2AP_MASK | SH_MASK | XN_MASK;

/// Memory type of a stage-2 mapping (combined with the guest's stage-1 type by the hardware).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemType {
    /// Normal memory, Inner and Outer Write-Back Cacheable, Inner Shareable: guest RAM.
    NormalWriteBack,
    /// Device-nGnRE: device windows passed through to a guest.
    DeviceNgnre,
}

/// Stage-2 data access permission, `S2AP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum S2Access {
    /// 0b00: no data access (a permission fault on any read or write).
    None,
    /// 0b01: read-only.
    ReadOnly,
    /// 0b10: write-only.
    WriteOnly,
    /// 0b11: read/write.
    ReadWrite,
}

/// The attributes of one stage-2 mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct S2Attrs {
    /// Memory type (`MemAttr`).
    pub mem: MemType,
    /// Data access permission (`S2AP`).
    pub access: S2Access,
    /// Execute-never at EL1 and EL0 (`XN`).
    pub execute_never: bool,
}

impl S2Attrs {
    /// Guest RAM: Normal Write-Back, read/write, executable.
    pub const RAM: Self = Self {
        mem: MemType::NormalWriteBack,
        access: S2Access::ReadWrite,
        execute_never: false,
    };
    /// A passed-through device: Device-nGnRE, read/write, execute-never.
    pub const DEVICE: Self = Self {
        mem: MemType::DeviceNgnre,
        access: S2Access::ReadWrite,
        execute_never: true,
    };

    /// The attribute bits of a block or page descriptor: `MemAttr`, `S2AP`, `SH`, `XN`.
    const fn bits(self) -> u64 {
        let memattr = match self.mem {
            MemType::NormalWriteBack => MEMATTR_NORMAL_WB,
            MemType::DeviceNgnre => MEMATTR_DEVICE_NGNRE,
        };
        let s2ap: u64 = match self.access {
            S2Access::None => 0b00,
            S2Access::ReadOnly => 0b01,
            S2Access::WriteOnly => 0b10,
            S2Access::ReadWrite => 0b11,
        };
        let xn = if self.execute_never { XN_NEVER } else { 0 };
        // Device memory is treated as Outer Shareable whatever SH says; Inner for both keeps one
        // encoding.
        memattr << MEMATTR_SHIFT | s2ap << S2AP_SHIFT | SH_INNER | xn
    }

    /// The attributes encoded in a leaf Moat wrote. Panics on an encoding Moat never writes: a
    /// broken table invariant, not a guest mistake.
    fn from_bits(desc: u64) -> Self {
        let mem = match (desc & MEMATTR_MASK) >> MEMATTR_SHIFT {
            MEMATTR_NORMAL_WB => MemType::NormalWriteBack,
            MEMATTR_DEVICE_NGNRE => MemType::DeviceNgnre,
            other => panic!("stage-2 leaf {desc:#x} has MemAttr {other:#b} Moat never writes"),
        };
        let access = match (desc & S2AP_MASK) >> S2AP_SHIFT {
            0b00 => S2Access::None,
            0b01 => S2Access::ReadOnly,
            0b10 => S2Access::WriteOnly,
            _ => S2Access::ReadWrite,
        };
        Self {
            mem,
            access,
            execute_never: desc & XN_MASK != 0,
        }
    }
}

/// What a descriptor at a given level is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Invalid (bit 0 clear): a translation fault at this level.
    Invalid,
    /// A table descriptor: the next level's table.
    Table(Pa),
    /// A block (levels 1–2) or page (level 3) descriptor.
    Leaf,
}

/// One 64-bit stage-2 descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor(pub u64);

impl Descriptor {
    /// The invalid descriptor Moat writes for "nothing mapped": all zero.
    pub const INVALID: Self = Self(0);

    /// A table descriptor pointing at the next level's table.
    #[must_use]
    pub const fn table(next: Pa) -> Self {
        Self(next.0 & OA_MASK | TABLE_OR_PAGE | VALID)
    }

    /// A block (level 1–2) or page (level 3) descriptor mapping `pa` with `attrs`, access flag
    /// set. `pa` must be aligned to the level's size.
    #[must_use]
    pub const fn leaf(pa: Pa, attrs: S2Attrs, level: u8) -> Self {
        let kind = if level == LAST_LEVEL {
            TABLE_OR_PAGE
        } else {
            0
        };
        Self(pa.0 & OA_MASK | attrs.bits() | AF | kind | VALID)
    }

    /// Whether bit 0 is set.
    #[must_use]
    pub const fn is_valid(self) -> bool {
        self.0 & VALID != 0
    }

    /// The descriptor's kind when read at `level` (`AArch64.S2Walk()`: bit 1 selects table or
    /// page versus block).
    #[must_use]
    pub const fn kind(self, level: u8) -> Kind {
        if !self.is_valid() {
            Kind::Invalid
        } else if level < LAST_LEVEL && self.0 & TABLE_OR_PAGE != 0 {
            Kind::Table(Pa(self.0 & OA_MASK))
        } else {
            Kind::Leaf
        }
    }

    /// The output address of a leaf, or the next table of a table descriptor.
    #[must_use]
    pub const fn output(self) -> Pa {
        Pa(self.0 & OA_MASK)
    }

    /// The attributes of a leaf Moat wrote.
    ///
    /// # Panics
    ///
    /// On a `MemAttr` encoding Moat never writes (a corrupted table).
    #[must_use]
    pub fn attrs(self) -> S2Attrs {
        S2Attrs::from_bits(self.0)
    }

    /// This leaf with its attributes replaced by `attrs`; output address, kind and AF kept.
    #[must_use]
    pub const fn with_attrs(self, attrs: S2Attrs) -> Self {
        Self(self.0 & !ATTR_MASK | attrs.bits())
    }

    /// This leaf moved to `pa`, attributes kept (used to split a block).
    #[must_use]
    pub const fn with_output(self, pa: Pa) -> Self {
        Self(self.0 & !OA_MASK | pa.0 & OA_MASK)
    }

    /// The leaf at the next level down with the same attributes, as a block splits into.
    #[must_use]
    pub const fn as_level(self, level: u8) -> Self {
        let kind = if level == LAST_LEVEL {
            TABLE_OR_PAGE
        } else {
            0
        };
        Self(self.0 & !TABLE_OR_PAGE | kind)
    }

    /// This valid leaf made invalid but kept in the entry while it is being changed: the
    /// hardware ignores bits [63:1] of an invalid descriptor.
    #[must_use]
    pub const fn parked(self) -> Self {
        Self(self.0 & !VALID)
    }

    /// Whether this is a leaf parked by [`Descriptor::parked`].
    #[must_use]
    pub const fn is_parked(self) -> bool {
        !self.is_valid() && self.0 != 0
    }

    /// A parked leaf made valid again.
    #[must_use]
    pub const fn unparked(self) -> Self {
        Self(self.0 | VALID)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_page_sets_normal_wb_rw_inner_shareable_af_and_page_bits() {
        let d = Descriptor::leaf(Pa(0x8000_1000), S2Attrs::RAM, 3);
        // MemAttr 0b1111, S2AP 0b11, SH 0b11, AF, page, valid.
        assert_eq!(
            d.0,
            0x8000_1000 | 0b1111 << 2 | 0b11 << 6 | 0b11 << 8 | 1 << 10 | 0b11
        );
    }

    #[test]
    fn device_block_is_ngnre_execute_never_and_a_block() {
        let d = Descriptor::leaf(Pa(0x4020_0000), S2Attrs::DEVICE, 2);
        assert_eq!((d.0 >> 2) & 0b1111, 0b0001, "MemAttr Device-nGnRE");
        assert_eq!((d.0 >> 53) & 0b11, 0b10, "XN");
        assert_eq!(d.0 & 0b11, 0b01, "block");
        assert_eq!(d.kind(2), Kind::Leaf);
    }

    #[test]
    fn table_descriptor_points_at_next_level() {
        let d = Descriptor::table(Pa(0x1234_5000));
        assert_eq!(d.kind(1), Kind::Table(Pa(0x1234_5000)));
        assert_eq!(d.kind(3), Kind::Leaf, "bits 0b11 at level 3 are a page");
    }

    #[test]
    fn every_access_permission_round_trips_through_s2ap() {
        for access in [
            S2Access::None,
            S2Access::ReadOnly,
            S2Access::WriteOnly,
            S2Access::ReadWrite,
        ] {
            for execute_never in [false, true] {
                let attrs = S2Attrs {
                    mem: MemType::NormalWriteBack,
                    access,
                    execute_never,
                };
                assert_eq!(Descriptor::leaf(Pa(0x1000), attrs, 3).attrs(), attrs);
            }
        }
    }

    #[test]
    fn with_attrs_keeps_output_address_and_access_flag() {
        let d = Descriptor::leaf(Pa(0x4000_0000), S2Attrs::RAM, 1).with_attrs(S2Attrs::DEVICE);
        assert_eq!(d, Descriptor::leaf(Pa(0x4000_0000), S2Attrs::DEVICE, 1));
    }

    #[test]
    fn parked_leaf_is_invalid_and_unparks_to_itself() {
        let d = Descriptor::leaf(Pa(0x2000), S2Attrs::RAM, 3);
        assert_eq!(d.parked().kind(3), Kind::Invalid);
        assert!(d.parked().is_parked() && !Descriptor::INVALID.is_parked());
        assert_eq!(d.parked().unparked(), d);
    }
}
