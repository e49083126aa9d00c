//! The faulting IPA of a stage-2 abort: `HPFAR_EL2.FIPA` gives the page (IPA\[55:12\]) and
//! `FAR_EL2[11:0]` the offset within it (SPEC.md §2). `FAR_EL2` itself is the faulting VA.

use crate::addr::{Ipa, Va};
use crate::field::Field;

/// `HPFAR_EL2.FIPA`: bits \[55:12\] of the faulting IPA (upper bits RES0 on smaller IPAs).
pub const HPFAR_FIPA: Field = Field::new(4, 44);
/// `HPFAR_EL2.NS`: the faulting IPA is in the Non-secure IPA space (Secure EL2 only).
pub const HPFAR_NS: Field = Field::bit(63);
/// The page offset bits of `FAR_EL2` that complete the IPA (4K granule of `HPFAR_EL2`).
pub const FAR_PAGE_OFFSET: Field = Field::new(0, 12);
/// The shift from `FIPA` to the IPA: `FIPA` counts 4K pages.
const FIPA_PAGE_SHIFT: u32 = 12;

/// The IPA of the faulting page (`HPFAR_EL2.FIPA` << 12), page offset 0.
#[must_use]
#[inline]
pub const fn hpfar_page(hpfar_el2: u64) -> Ipa {
    Ipa(HPFAR_FIPA.get(hpfar_el2) << FIPA_PAGE_SHIFT)
}

/// The faulting IPA: the page from `HPFAR_EL2` and the offset from `FAR_EL2`. Valid only when
/// `Fsc::hpfar_valid` says `HPFAR_EL2` is.
#[must_use]
#[inline]
pub const fn fault_ipa(hpfar_el2: u64, far_el2: u64) -> Ipa {
    Ipa(hpfar_page(hpfar_el2).0 | FAR_PAGE_OFFSET.get(far_el2))
}

/// The faulting virtual address (`FAR_EL2`).
#[must_use]
#[inline]
pub const fn fault_va(far_el2: u64) -> Va {
    Va(far_el2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipa_is_hpfar_page_plus_far_offset() {
        // IPA 0x0000_0100_0000_0abc: FIPA = 0x1000_0000 at bit 4.
        let hpfar = 0x1000_0000u64 << 4;
        let far = 0xffff_0000_1234_5abc;
        assert_eq!(fault_ipa(hpfar, far), Ipa(0x100_0000_0abc));
    }

    #[test]
    fn fipa_reaches_bit_55_and_ignores_ns_and_res0_bits() {
        let hpfar = HPFAR_NS.mask() | HPFAR_FIPA.mask() | 0xF;
        assert_eq!(hpfar_page(hpfar), Ipa(0x00FF_FFFF_FFFF_F000));
    }
}
