//! Distinct address types, so that an IPA can never be passed where a PA or a VA is meant.
//!
//! The Arm ARM's three address spaces seen by a hypervisor: the guest's virtual addresses
//! (`Va`), its intermediate physical addresses (`Ipa`, the output of stage 1 and the input of
//! stage 2) and the machine's physical addresses (`Pa`, the output of stage 2).

use core::fmt;

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The address as a plain number.
            #[must_use]
            pub const fn raw(self) -> u64 {
                self.0
            }

            /// The offset of this address within a page of `1 << page_shift` bytes.
            #[must_use]
            pub const fn page_offset(self, page_shift: u32) -> u64 {
                self.0 & ((1u64 << page_shift) - 1)
            }

            /// This address plus `bytes`, or `None` where the sum would leave the 64-bit space.
            #[must_use]
            pub const fn checked_add(self, bytes: u64) -> Option<Self> {
                match self.0.checked_add(bytes) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

address_type!(
    /// A guest virtual address: the input of the guest's stage-1 translation (`FAR_ELx`).
    Va
);
address_type!(
    /// An intermediate physical address: what the guest believes is physical, translated by
    /// Moat's stage 2 (`HPFAR_EL2.FIPA`, `VTTBR_EL2` tables).
    Ipa
);
address_type!(
    /// A physical address of the machine Moat runs on.
    Pa
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_offset_keeps_only_the_low_bits() {
        assert_eq!(Ipa(0x4000_1234).page_offset(12), 0x234);
        assert_eq!(Va(0xffff_0000_0001_ffff).page_offset(16), 0xffff);
    }

    #[test]
    fn checked_add_refuses_to_wrap() {
        assert_eq!(Pa(u64::MAX).checked_add(1), None);
        assert_eq!(Pa(0x1000).checked_add(0x1000), Some(Pa(0x2000)));
    }

    #[test]
    fn debug_names_the_address_space() {
        extern crate std;
        assert_eq!(std::format!("{:?}", Ipa(0x1000)), "Ipa(0x1000)");
    }
}
