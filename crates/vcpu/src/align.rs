//! Alignment faults, which the architecture checks at stage 1, before any stage-2 fault: the
//! abort decision (`crate::abort`) asks these rules before it looks at what lies behind an IPA.
//!
//! Two checks, in the order the Arm ARM makes them:
//!
//! 1. Before translation, whatever the memory type (`AArch64.UnalignedAccessFaults()`; AArch32
//!    `MemA[]` and `AArch32.CheckAlignment()`): `SCTLR.A` = 1 faults every misaligned access;
//!    exclusives and atomics must be aligned to their whole size, load-acquire/store-release to
//!    theirs — with FEAT_LSE2 only when they cross a 16-byte quantity (and ordered accesses not
//!    at all with `SCTLR_EL1.nAA` = 1); `LD64B`/`ST64B` and AArch32 `LDM`/`LDRD`/`LDREX`/`VLDR`
//!    always.
//! 2. After the stage-1 walk, by memory type (`AArch64.S1HasAlignmentFault()`,
//!    `AArch32.S1HasAlignmentFault()`): an access to Device memory not aligned to the size of
//!    each single access faults. With stage 1 off every data access is Device-nGnRnE
//!    (`AArch64.S1DisabledOutput()`); with it on, the leaf descriptor's `AttrIndx` selects a
//!    `MAIR_EL1` attribute (Device when `Attr<7:4>` = 0b0000), or, for an AArch32
//!    short-descriptor guest, `TEX`/`C`/`B` give it (remapped through `PRRR` when `SCTLR.TRE`).
//!
//! Not modelled: the AArch32 `LDM`/`STM` rule of FEAT_LSMAOC (`SCTLR.nTLSMD` = 0 faults even an
//! aligned `LDM` to Device-nGnRnE/nGnRE/nGRE memory): Moat treats `nTLSMD` as 1, its value on a
//! CPU without the feature.

use crate::insn::memop::{AlignRule, Always};
use crate::s1walk::{Leaf, LeafKind};
use moat_arm::field::Field;

/// `SCTLR_EL1.A` (AArch32 `SCTLR.A`): alignment checking of every access.
const SCTLR_A: Field = Field::bit(1);
/// `SCTLR_EL1.nAA` (FEAT_LSE2): ordered accesses need not be aligned.
const SCTLR_NAA: Field = Field::bit(6);
/// AArch32 `SCTLR.TRE`: TEX remap.
const SCTLR_TRE: Field = Field::bit(28);
/// `AttrIndx` of a long-descriptor leaf (VMSAv8-64 and AArch32 LPAE).
const ATTR_INDX: Field = Field::new(2, 3);
/// Short-descriptor `B` and `C`.
const SHORT_B: Field = Field::bit(2);
const SHORT_C: Field = Field::bit(3);
/// Short-descriptor `TEX` of a section, supersection or large page, and of a small page.
const TEX_SECTION: Field = Field::new(12, 3);
const TEX_SMALL: Field = Field::new(6, 3);

/// The guest's EL1 state the alignment rules read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct El1Controls {
    /// `SCTLR_EL1` (AArch32: `SCTLR` in bits \[31:0\]).
    pub sctlr: u64,
    /// `MAIR_EL1` (AArch32: `MAIR0`/`PRRR` in bits \[31:0\], `MAIR1`/`NMRR` in \[63:32\]).
    pub mair: u64,
    /// The CPU implements FEAT_LSE2 (`ID_AA64MMFR2_EL1.AT` = 1).
    pub lse2: bool,
}

/// The memory type stage 1 gives an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemType {
    /// Any Device type (and AArch32 Strongly-ordered).
    Device,
    /// Normal memory.
    Normal,
}

/// Whether `address` is a multiple of `bytes` (`IsAligned()`).
const fn is_aligned(address: u64, bytes: u8) -> bool {
    bytes == 0 || address.is_multiple_of(bytes as u64)
}

/// Whether the `bytes` at `address` lie in one aligned 16-byte quantity
/// (`AllInAlignedQuantity(address, size, 16)`).
const fn within_16(address: u64, bytes: u8) -> bool {
    (address % 16) + bytes as u64 <= 16
}

/// Whether `rule`'s access at `address` is misaligned for any of the rules: the cheap test
/// that lets an aligned access skip both checks.
#[must_use]
pub fn misaligned(rule: AlignRule, address: u64) -> bool {
    let checked = match rule.always {
        Always::Nothing => rule.element,
        Always::Atomic { bytes } | Always::Ordered { bytes } | Always::Aligned { bytes } => bytes,
    };
    !is_aligned(address, checked.max(rule.element))
}

/// Check 1: whether `rule`'s access at `address` faults whatever the memory type.
#[must_use]
pub fn faults_before_translation(rule: AlignRule, address: u64, el1: &El1Controls) -> bool {
    if !misaligned(rule, address) {
        return false;
    }
    if SCTLR_A.is_set(el1.sctlr) {
        return true;
    }
    match rule.always {
        Always::Nothing => false,
        Always::Aligned { bytes } => !is_aligned(address, bytes),
        Always::Atomic { bytes } => {
            !is_aligned(address, bytes) && (!el1.lse2 || !within_16(address, bytes))
        }
        Always::Ordered { bytes } => {
            !is_aligned(address, bytes)
                && (!el1.lse2 || (!SCTLR_NAA.is_set(el1.sctlr) && !within_16(address, bytes)))
        }
    }
}

/// Check 2: whether `rule`'s access at `address` faults on memory of type `memory`.
#[must_use]
pub fn faults_on(memory: MemType, rule: AlignRule, address: u64) -> bool {
    memory == MemType::Device && !is_aligned(address, rule.element)
}

/// The memory type of a long-descriptor leaf (VMSAv8-64, AArch32 LPAE): `MAIR` attribute
/// `AttrIndx`, Device when its upper nibble is 0.
#[must_use]
pub fn long_descriptor_type(leaf: &Leaf, mair: u64) -> MemType {
    let index = ATTR_INDX.get(leaf.descriptor);
    let attr = (mair >> (8 * index)) & 0xFF;
    if attr >> 4 == 0 {
        MemType::Device
    } else {
        MemType::Normal
    }
}

/// The memory type of an AArch32 short-descriptor leaf (`AArch32.S1AttrDecode()` with
/// `SCTLR.TRE`; `AArch32.DefaultTEXDecode()` without): remapped, region `n` = `TEX[0]:C:B` is
/// `PRRR.TRn` (0b00 Strongly-ordered, 0b01 Device, 0b10 Normal); not remapped, `TEX` = 0b000
/// with `C` = 0, and `TEX` = 0b010 with `C:B` = 0b00, are Strongly-ordered or Device.
#[must_use]
pub fn short_descriptor_type(leaf: &Leaf, el1: &El1Controls) -> MemType {
    let d = leaf.descriptor;
    let tex = match leaf.kind {
        LeafKind::SmallPage => TEX_SMALL.get(d),
        _ => TEX_SECTION.get(d),
    };
    let (c, b) = (SHORT_C.get(d), SHORT_B.get(d));
    let device = if SCTLR_TRE.is_set(el1.sctlr) {
        let n = ((tex & 1) << 2) | (c << 1) | b;
        let prrr = el1.mair & 0xFFFF_FFFF;
        (prrr >> (2 * n)) & 0b11 < 0b10
    } else {
        matches!((tex, c, b), (0b000, 0, _) | (0b010, 0, 0))
    };
    if device {
        MemType::Device
    } else {
        MemType::Normal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moat_arm::fsc::Level;

    const fn rule(element: u8, always: Always) -> AlignRule {
        AlignRule { element, always }
    }

    const PLAIN4: AlignRule = rule(4, Always::Nothing);

    fn controls(sctlr: u64, lse2: bool) -> El1Controls {
        El1Controls {
            sctlr,
            mair: 0,
            lse2,
        }
    }

    #[test]
    fn plain_misaligned_access_faults_before_translation_only_with_sctlr_a() {
        assert!(!faults_before_translation(
            PLAIN4,
            0x1002,
            &controls(0, false)
        ));
        assert!(faults_before_translation(
            PLAIN4,
            0x1002,
            &controls(0b10, false)
        ));
        assert!(!faults_before_translation(
            PLAIN4,
            0x1004,
            &controls(0b10, false)
        ));
    }

    #[test]
    fn exclusive_must_be_aligned_without_lse2_and_within_16_bytes_with_it() {
        let ldxr = rule(8, Always::Atomic { bytes: 8 });
        assert!(faults_before_translation(ldxr, 0x1004, &controls(0, false)));
        assert!(!faults_before_translation(ldxr, 0x1004, &controls(0, true)));
        assert!(faults_before_translation(ldxr, 0x100C, &controls(0, true)));
    }

    #[test]
    fn ordered_access_with_lse2_and_naa_need_not_be_aligned() {
        let ldar = rule(8, Always::Ordered { bytes: 8 });
        let naa = 1 << 6;
        assert!(faults_before_translation(ldar, 0x100C, &controls(0, true)));
        assert!(!faults_before_translation(
            ldar,
            0x100C,
            &controls(naa, true)
        ));
        assert!(faults_before_translation(
            ldar,
            0x1004,
            &controls(naa, false)
        ));
    }

    #[test]
    fn aarch32_mema_and_ld64b_always_need_their_alignment() {
        let ldm = rule(4, Always::Aligned { bytes: 4 });
        assert!(faults_before_translation(ldm, 0x1002, &controls(0, true)));
        let ld64b = rule(8, Always::Aligned { bytes: 64 });
        assert!(faults_before_translation(ld64b, 0x1008, &controls(0, true)));
        assert!(!faults_before_translation(
            ld64b,
            0x1040,
            &controls(0, false)
        ));
    }

    #[test]
    fn device_memory_faults_an_access_misaligned_to_its_element_normal_memory_does_not() {
        let ldp = rule(8, Always::Nothing);
        assert!(faults_on(MemType::Device, ldp, 0x1004));
        assert!(!faults_on(MemType::Device, ldp, 0x1008));
        assert!(!faults_on(MemType::Normal, ldp, 0x1004));
    }

    fn leaf(kind: LeafKind, descriptor: u64) -> Leaf {
        Leaf {
            level: Level::L3,
            kind,
            descriptor,
            size_bits: 12,
        }
    }

    #[test]
    fn long_descriptor_type_is_the_mair_attribute_of_attrindx() {
        // Attr0 = Device-nGnRE (0x04), Attr1 = Normal WB (0xFF).
        let mair = 0xFF04;
        let page = |index: u64| leaf(LeafKind::Page, 0b11 | (index << 2));
        assert_eq!(long_descriptor_type(&page(0), mair), MemType::Device);
        assert_eq!(long_descriptor_type(&page(1), mair), MemType::Normal);
    }

    #[test]
    fn short_descriptor_tex_c_b_decode_without_and_with_remap() {
        let section = |tex: u64, c: u64, b: u64| {
            leaf(LeafKind::Section, 0b10 | (tex << 12) | (c << 3) | (b << 2))
        };
        let plain = controls(0, false);
        assert_eq!(
            short_descriptor_type(&section(0, 0, 0), &plain),
            MemType::Device
        );
        assert_eq!(
            short_descriptor_type(&section(0, 0, 1), &plain),
            MemType::Device
        );
        assert_eq!(
            short_descriptor_type(&section(0b010, 0, 0), &plain),
            MemType::Device
        );
        assert_eq!(
            short_descriptor_type(&section(0b001, 1, 1), &plain),
            MemType::Normal
        );
        assert_eq!(
            short_descriptor_type(&section(0b101, 0, 1), &plain),
            MemType::Normal
        );
        // TRE = 1, PRRR: TR0 = Device (0b01), TR1 = Normal (0b10).
        let remap = El1Controls {
            sctlr: 1 << 28,
            mair: 0b10_01,
            lse2: false,
        };
        assert_eq!(
            short_descriptor_type(&section(0, 0, 0), &remap),
            MemType::Device
        );
        assert_eq!(
            short_descriptor_type(&section(0, 0, 1), &remap),
            MemType::Normal
        );
        let small = leaf(LeafKind::SmallPage, 0b10 | (0b001 << 6) | (1 << 3));
        assert_eq!(short_descriptor_type(&small, &plain), MemType::Normal);
    }
}
