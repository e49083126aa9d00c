//! The AArch32 short-descriptor walk (`AArch32.TranslationTableWalkSD()`, `TTBCR.EAE` = 0):
//! a level-1 table of 4-byte descriptors (sections, supersections, or pointers to level-2
//! tables of small and large pages). No address size fault exists in this format.

use super::regs::{short_desc, ttbcr};
use super::{
    DescSize, FaultKind, GuestMemory, Leaf, LeafKind, Outcome, Stage1Regs, Trace, Translation,
    WalkReport, fetch,
};
use moat_arm::addr::Ipa;
use moat_arm::field::Field;
use moat_arm::fsc::Level;

/// The VA bits a level-1 lookup resolves, for `N` = 0: VA\[31:20\] (1MB sections).
const L1_SHIFT: u32 = 20;
/// The VA bits a level-2 lookup resolves: VA\[19:12\].
const L2_INDEX: Field = Field::new(12, 8);
/// log2 of the level-1 table size for `N` = 0 (16KB).
const L1_TABLE_BITS: u32 = 14;
/// The AArch32 VA size.
const VA_BITS: u32 = 32;

/// log2 of the sizes the leaves map.
mod size_bits {
    pub const SECTION: u32 = 20;
    pub const SUPERSECTION: u32 = 24;
    pub const LARGE_PAGE: u32 = 16;
    pub const SMALL_PAGE: u32 = 12;
}

/// Level-1 and level-2 descriptor types (`desc<1:0>`).
mod desc_type {
    /// Fault (both levels).
    pub const FAULT: u64 = 0b00;
    /// Level 1: a page table; level 2: a large page.
    pub const L1_TABLE_OR_L2_LARGE: u64 = 0b01;
}

/// Walks from `TTBR0` or `TTBR1` as `TTBCR.N` selects.
pub fn walk<M: GuestMemory + ?Sized>(
    regs: &Stage1Regs,
    va: u32,
    big_endian: bool,
    mem: &M,
) -> WalkReport {
    let Some(l1_ipa) = level1_address(regs, va) else {
        return WalkReport::fault(FaultKind::Translation, Level::L1, Trace::new());
    };
    let mut trace = Trace::new();
    let l1 = match fetch(
        mem,
        &mut trace,
        Level::L1,
        l1_ipa,
        DescSize::Four,
        big_endian,
    ) {
        Ok(desc) => desc,
        Err(fault) => return WalkReport::failed(fault, trace),
    };
    match short_desc::TYPE.get(l1) {
        desc_type::FAULT => WalkReport::fault(FaultKind::Translation, Level::L1, trace),
        desc_type::L1_TABLE_OR_L2_LARGE => level2(l1, va, big_endian, mem, trace),
        _ => section(l1, va, trace),
    }
}

/// The IPA of `va`'s level-1 descriptor: TTBR0 when `N` is 0 or `VA<31:32-N>` is zero (its
/// table `2^(14-N)` bytes, indexed by `VA<31-N:20>`), else TTBR1, which always walks as TTBR0
/// with `N` = 0. `None` when `TTBCR.PDn` disables walks from the selected register.
fn level1_address(regs: &Stage1Regs, va: u32) -> Option<u64> {
    let tcr = regs.tcr_el1;
    let n = ttbcr::N.get(tcr) as u32;
    let use_ttbr0 = n == 0 || Field::new(VA_BITS - n, n).get(u64::from(va)) == 0;
    let (ttbr, n, disabled) = if use_ttbr0 {
        (regs.ttbr0_el1, n, ttbcr::PD0.is_set(tcr))
    } else {
        (regs.ttbr1_el1, 0, ttbcr::PD1.is_set(tcr))
    };
    if disabled {
        return None;
    }
    let table_bits = L1_TABLE_BITS - n;
    let base = Field::new(table_bits, short_desc::TTBR_BASE_TOP + 1 - table_bits).mask() & ttbr;
    let index = Field::new(L1_SHIFT, VA_BITS - n - L1_SHIFT).get(u64::from(va));
    Some(base + index * DescSize::Four.bytes())
}

/// A level-1 section or supersection descriptor (`desc<1>` = 1; `desc<0>` is `PXN`).
fn section(l1: u64, va: u32, trace: Trace) -> WalkReport {
    let (kind, base, size_bits) = if short_desc::SUPERSECTION.is_set(l1) {
        (
            LeafKind::Supersection,
            supersection_base(l1),
            size_bits::SUPERSECTION,
        )
    } else {
        let base = short_desc::SECTION_BASE.mask() & l1;
        (LeafKind::Section, base, size_bits::SECTION)
    };
    translated(Level::L1, kind, l1, base, size_bits, va, trace)
}

/// A supersection's output base: PA\[39:36\] from `desc<8:5>`, PA\[35:32\] from `desc<23:20>`,
/// PA\[31:24\] from `desc<31:24>`.
fn supersection_base(l1: u64) -> u64 {
    let low = short_desc::SUPERSECTION_BASE.mask() & l1;
    let ext_35_32 = short_desc::SUPERSECTION_EXT_35_32.get(l1);
    let ext_39_36 = short_desc::SUPERSECTION_EXT_39_36.get(l1);
    low | ext_35_32 << 32 | ext_39_36 << 36
}

/// The level-2 lookup in the page table a level-1 descriptor points to.
fn level2<M: GuestMemory + ?Sized>(
    l1: u64,
    va: u32,
    big_endian: bool,
    mem: &M,
    mut trace: Trace,
) -> WalkReport {
    let table = short_desc::L2_TABLE_BASE.mask() & l1;
    let ipa = table + L2_INDEX.get(u64::from(va)) * DescSize::Four.bytes();
    let l2 = match fetch(mem, &mut trace, Level::L2, ipa, DescSize::Four, big_endian) {
        Ok(desc) => desc,
        Err(fault) => return WalkReport::failed(fault, trace),
    };
    let (kind, base, size_bits) = match short_desc::TYPE.get(l2) {
        desc_type::FAULT => return WalkReport::fault(FaultKind::Translation, Level::L2, trace),
        desc_type::L1_TABLE_OR_L2_LARGE => {
            let base = short_desc::LARGE_PAGE_BASE.mask() & l2;
            (LeafKind::LargePage, base, size_bits::LARGE_PAGE)
        }
        _ => {
            let base = short_desc::SMALL_PAGE_BASE.mask() & l2;
            (LeafKind::SmallPage, base, size_bits::SMALL_PAGE)
        }
    };
    translated(Level::L2, kind, l2, base, size_bits, va, trace)
}

/// The report of a leaf at `level` mapping `2^size_bits` bytes at `base`.
fn translated(
    level: Level,
    kind: LeafKind,
    descriptor: u64,
    base: u64,
    size_bits: u32,
    va: u32,
    trace: Trace,
) -> WalkReport {
    let offset = Field::new(0, size_bits).get(u64::from(va));
    let leaf = Leaf {
        level,
        kind,
        descriptor,
        size_bits,
    };
    let translation = Translation {
        ipa: Ipa(base | offset),
        leaf: Some(leaf),
    };
    WalkReport::new(Outcome::Translated(translation), trace)
}
