//! The encoding of the probe's stage-1 translation (`probe.mmu=lpae|short`): descriptor values,
//! register values and, per [`Shape`], the window VA a target is reached at. Pure values only;
//! `mmu.rs` writes them into tables.
//!
//! Long-descriptor format (Arm ARM, "Long-descriptor translation table format", `TTBCR.EAE` = 1,
//! `T0SZ` = 0 so walks start at level 1 with four entries): table/page descriptors `0b11`, blocks
//! `0b01`, output address bits \[39:12\] (bits \[47:40\] are should-be-zero: a descriptor with
//! them set is outside the 40-bit LPAE output range, see README), `AttrIndx` \[4:2\] into
//! `MAIR0`, `AP[2:1]` \[7:6\], `SH` \[9:8\], `AF` 10, `PXN` 53, `XN` 54.
//!
//! Short-descriptor format ("Short-descriptor translation table format", `TTBCR.EAE` = 0,
//! `N` = 0, all domains Client in `DACR`, `SCTLR.TRE` = `AFE` = 0): sections (1 MiB),
//! supersections (16 MiB, bit 18, PA \[35:32\] in bits \[23:20\] and \[39:36\] in \[8:5\]), level-1
//! page-table descriptors (`0b01`, L2 table address \[31:10\]) and small pages (`0b1x`, `XN` in
//! bit 0). Memory types by `TEX`/`C`/`B`: Normal write-back (`TEX` 0b001, C, B), Device (B only).

use crate::kinds::Shape;

/// The VA every case's target is reached at (plus the target's offset in its page, block or
/// section): 1 GiB aligned, level-1 index 2 (LPAE) / 0x800 (short), away from RAM and the UART.
pub const WINDOW: u32 = 0x8000_0000;
/// The high vectors' VA (`SCTLR.V` = 1).
pub const HIVECS: u32 = 0xffff_0000;

/// 4 KiB, 1 MiB, 2 MiB, 16 MiB, 1 GiB.
pub const KIB4: u64 = 1 << 12;
/// See [`KIB4`].
pub const MIB1: u64 = 1 << 20;
/// See [`KIB4`].
pub const MIB2: u64 = 1 << 21;
/// See [`KIB4`].
pub const MIB16: u64 = 1 << 24;
/// See [`KIB4`].
pub const GIB1: u64 = 1 << 30;

/// Long-descriptor output address field, bits \[47:12\] (\[39:12\] plus the should-be-zero
/// \[47:40\]).
const LD_OA_MASK: u64 = 0x0000_ffff_ffff_f000;
const LD_TABLE: u64 = 0b11;
const LD_BLOCK: u64 = 0b01;
const LD_PAGE: u64 = 0b11;
const LD_NORMAL: u64 = 0 << 2; // AttrIndx 0: MAIR0.Attr0
const LD_DEVICE: u64 = 1 << 2; // AttrIndx 1: MAIR0.Attr1
const LD_AP_PL0_RW: u64 = 0b01 << 6; // AP[2:1] = 0b01: read/write at PL1 and PL0
const LD_SH_INNER: u64 = 0b11 << 8;
const LD_AF: u64 = 1 << 10;
const LD_PXN: u64 = 1 << 53;
const LD_XN: u64 = 1 << 54;

/// `MAIR0`: Attr0 = Normal write-back (0xff), Attr1 = Device-nGnRnE (0x00).
pub const MAIR0: u32 = 0xff;
/// `TTBCR` for the long format: `EAE` (31), `EPD1` (23: no TTBR1 walks), `T0SZ` = 0, walks
/// Non-cacheable.
pub const TTBCR_LPAE: u32 = (1 << 31) | (1 << 23);
/// `TTBCR` for the long format's `ttbr_at` shape: `EAE`, `T1SZ` = 1 (bits \[18:16\]) and
/// `T0SZ` = 1: `TTBR0` below 2^31, `TTBR1` from 2^31 (level-1 tables of two entries).
pub const TTBCR_LPAE_SPLIT: u32 = (1 << 31) | (1 << 16) | 1;
/// `TTBCR` for the short format's `ttbr_at` shape: `N` = 1, `TTBR1` from 2^31 (its table is
/// still indexed by VA \[31:20\], so the window's entry is at `TTBR1` + 0x2000).
pub const TTBCR_SHORT_SPLIT: u32 = 1;
/// Where a `ttbr_at` walk reads: the level-1 table `TTBR1` gets for `address`, and the entry the
/// window's VA selects in it (long: index 0 of a 16-byte table; short: index 0x800 of a 16 KiB
/// table, 16 KiB aligned).
pub const fn ttbr_at(address: u64, long: bool) -> (u64, u64) {
    if long {
        let table = address & !0xfff;
        (table, table)
    } else {
        let table = address & !0x3fff;
        (table, table + 0x2000)
    }
}
/// `DACR`: all 16 domains Client (permissions are checked).
pub const DACR_CLIENT: u32 = 0x5555_5555;

/// Long-descriptor attributes: Normal memory, PL1-only (`AP` 0b00) or PL0 read/write.
pub const fn ld_normal(pl0: bool) -> u64 {
    let ap = if pl0 { LD_AP_PL0_RW } else { 0 };
    LD_NORMAL | ap | LD_SH_INNER | LD_AF
}

/// Long-descriptor attributes of the UART: Device, PL1 only, never executable.
pub const LD_DEVICE_ATTRS: u64 = LD_DEVICE | LD_AF | LD_PXN | LD_XN;

/// A long-format table descriptor for the next-level table at `address`.
pub const fn ld_table(address: u64) -> u64 {
    (address & LD_OA_MASK) | LD_TABLE
}

/// A long-format block descriptor (level 1: 1 GiB, level 2: 2 MiB) for `address`.
pub const fn ld_block(address: u64, attributes: u64) -> u64 {
    (address & LD_OA_MASK) | attributes | LD_BLOCK
}

/// A long-format level-3 page descriptor for `address`.
pub const fn ld_page(address: u64, attributes: u64) -> u64 {
    (address & LD_OA_MASK) | attributes | LD_PAGE
}

/// The long-format index of `va` at `level` (1: bits \[31:30\], 2: \[29:21\], 3: \[20:12\]).
pub const fn ld_index(va: u32, level: u32) -> usize {
    match level {
        1 => (va >> 30) as usize,
        2 => ((va >> 21) & 511) as usize,
        _ => ((va >> 12) & 511) as usize,
    }
}

const SD_SECTION: u32 = 0b10;
const SD_SUPERSECTION: u32 = (1 << 18) | 0b10;
const SD_PAGE_TABLE: u32 = 0b01;
const SD_SMALL_PAGE: u32 = 0b10;

/// Short-descriptor memory type and access of a section or supersection (`TEX` \[14:12\], `AP`
/// \[11:10\] and `AP[2]` 15, `C` 3, `B` 2; domain 0): Normal write-back, `AP` 0b001 (PL1 only) or
/// 0b011 (full access).
pub const fn sd_section_normal(pl0: bool) -> u32 {
    let ap = if pl0 { 0b11 } else { 0b01 };
    (0b001 << 12) | (ap << 10) | (1 << 3) | (1 << 2)
}

/// Short-descriptor section attributes of the UART: Device (B), PL1 only, `XN` (bit 4).
pub const SD_SECTION_DEVICE: u32 = (0b01 << 10) | (1 << 4) | (1 << 2);

/// Short-descriptor small-page attributes (`TEX` \[8:6\], `AP` \[5:4\], `AP[2]` 9, `C` 3, `B` 2):
/// Normal write-back, PL1 only or full access.
pub const fn sd_page_normal(pl0: bool) -> u32 {
    let ap = if pl0 { 0b11 } else { 0b01 };
    (0b001 << 6) | (ap << 4) | (1 << 3) | (1 << 2)
}

/// A short-format section descriptor for the 1 MiB at `address` (< 2^32).
pub const fn sd_section(address: u64, attributes: u32) -> u32 {
    (address as u32 & 0xfff0_0000) | attributes | SD_SECTION
}

/// A short-format supersection descriptor for the 16 MiB at `address` (< 2^40): PA \[31:24\] in
/// bits \[31:24\], \[35:32\] in \[23:20\], \[39:36\] in \[8:5\] (the section's domain field).
pub const fn sd_supersection(address: u64, attributes: u32) -> u32 {
    let low = address as u32 & 0xff00_0000;
    let pa_35_32 = ((address >> 32) & 0xf) as u32;
    let pa_39_36 = ((address >> 36) & 0xf) as u32;
    low | (pa_35_32 << 20) | (pa_39_36 << 5) | attributes | SD_SUPERSECTION
}

/// A short-format level-1 page-table descriptor for the level-2 table at `address` (1 KiB
/// aligned, < 2^32), domain 0.
pub const fn sd_page_table(address: u64) -> u32 {
    (address as u32 & 0xffff_fc00) | SD_PAGE_TABLE
}

/// A short-format small-page descriptor for the 4 KiB at `address` (< 2^32).
pub const fn sd_small_page(address: u64, attributes: u32) -> u32 {
    (address as u32 & 0xffff_f000) | attributes | SD_SMALL_PAGE
}

/// Whether `shape` can map a target at `address` in the long format (`long`) or the short one:
/// the descriptor must hold the address.
pub const fn can_map(shape: Shape, address: u64, long: bool) -> bool {
    let limit: u64 = match (long, shape) {
        // Long-format output address field [47:12] (bits [47:40] should be zero).
        (true, _) => 1 << 48,
        // Supersections carry PA [39:32]; the other short-format descriptors 32 bits.
        (false, Shape::Supersection) => 1 << 40,
        (false, _) => 1 << 32,
    };
    address < limit
}

/// The size of the region a shape maps (the VA keeps the target's offset in it).
pub const fn granule(shape: Shape) -> u64 {
    match shape {
        Shape::Page | Shape::TableAt | Shape::TableAtL2 | Shape::TtbrAt => KIB4,
        Shape::Block2m => MIB2,
        Shape::Block1g => GIB1,
        Shape::Section => MIB1,
        Shape::Supersection => MIB16,
    }
}

/// The window VA of `address` for `shape`: [`WINDOW`] plus its offset in the mapped region
/// (`table_at`: [`WINDOW`] itself, so the walk reads the first descriptor of the target).
pub const fn window_va(shape: Shape, address: u64) -> u32 {
    match shape {
        Shape::TableAt | Shape::TableAtL2 | Shape::TtbrAt => WINDOW,
        _ => WINDOW + (address & (granule(shape) - 1)) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_descriptors_keep_bits_47_to_12_so_2_pow_40_reaches_the_should_be_zero_field() {
        assert_eq!(ld_page(0x100_0000_0000, 0), 0x100_0000_0003);
        assert_eq!(ld_block(0x5000_0000, ld_normal(false)), 0x5000_0701);
        assert_eq!(ld_table(0x4010_c000), 0x4010_c003);
        assert_eq!(ld_normal(true) & (0b11 << 6), 0b01 << 6);
        assert_eq!(LD_DEVICE_ATTRS >> 53, 0b11);
    }

    #[test]
    fn long_indices_split_a_32_bit_va_two_nine_nine() {
        assert_eq!(ld_index(WINDOW, 1), 2);
        assert_eq!(ld_index(HIVECS, 1), 3);
        assert_eq!(ld_index(HIVECS, 2), 511);
        assert_eq!(ld_index(HIVECS, 3), 0x1f0);
    }

    #[test]
    fn supersections_carry_pa_39_to_32_in_bits_23_20_and_8_5() {
        let d = sd_supersection(0xab_cd00_0000, 0);
        assert_eq!(d & 0xff00_0000, 0xcd00_0000);
        assert_eq!((d >> 20) & 0xf, 0xb);
        assert_eq!((d >> 5) & 0xf, 0xa);
        assert_eq!(d & 0x4_0003, 0x4_0002);
    }

    #[test]
    fn short_descriptors_encode_type_access_and_memory_type() {
        assert_eq!(
            sd_section(0x5012_3456, sd_section_normal(false)),
            0x5010_140e
        );
        assert_eq!(sd_section_normal(true) & (0b11 << 10), 0b11 << 10);
        assert_eq!(sd_page_table(0x5000_0400), 0x5000_0401);
        assert_eq!(
            sd_small_page(0x5000_0000, sd_page_normal(true)),
            0x5000_007e
        );
    }

    #[test]
    fn shapes_map_what_their_descriptor_holds() {
        assert!(can_map(Shape::Page, 0xffff_ffff_f000, true));
        assert!(!can_map(Shape::Page, 1 << 48, true));
        assert!(can_map(Shape::Supersection, 0xff_ff00_0000, false));
        assert!(!can_map(Shape::Supersection, 1 << 40, false));
        assert!(!can_map(Shape::Page, 1 << 32, false));
        assert!(!can_map(Shape::TableAt, 1 << 32, false));
    }

    #[test]
    fn the_window_va_keeps_the_offset_in_the_mapped_region() {
        assert_eq!(window_va(Shape::Page, 0xff_ffff_f123), 0x8000_0123);
        assert_eq!(window_va(Shape::Block2m, 0xff_ffff_f000), 0x801f_f000);
        assert_eq!(window_va(Shape::Block1g, 0x5000_0000), 0x9000_0000);
        assert_eq!(window_va(Shape::Supersection, 0xff_ffff_f000), 0x80ff_f000);
        assert_eq!(window_va(Shape::TableAt, 0x5000_0800), WINDOW);
        assert_eq!(window_va(Shape::TtbrAt, 0x5000_0800), WINDOW);
    }

    #[test]
    fn ttbr_at_walks_read_the_target_page_or_its_16k_block_plus_0x2000() {
        assert_eq!(ttbr_at(0x5000_1000, true), (0x5000_1000, 0x5000_1000));
        assert_eq!(ttbr_at(0x5000_1000, false), (0x5000_0000, 0x5000_2000));
    }
}
