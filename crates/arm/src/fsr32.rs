//! The AArch32 fault status registers `DFSR` and `IFSR`, in both formats: the
//! short-descriptor format (`FS` split over bits \[10\] and \[3:0\], with `Domain`) used when
//! `TTBCR.EAE` = 0, and the long-descriptor (LPAE) format (`STATUS` in bits \[5:0\]) when
//! `TTBCR.EAE` = 1; `LPAE` (bit 9) says which. `DFSR` lives in `ESR_EL1[31:0]`, `IFSR` in
//! `IFSR32_EL2`. Source: `DFSR`, `IFSR` (DDI 0487, G8.2).
//!
//! The two formats share fault kinds but not codes, and some kinds exist in one format only
//! (address size faults: LPAE; domain faults and instruction cache maintenance faults:
//! short), so the encoders return `None` for a kind the format cannot express.

use crate::field::Field;
use crate::fsc::Level;
use core::fmt;

/// A fault kind reported by `DFSR`/`IFSR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault32 {
    /// Address size fault (LPAE only; level 0 means the `TTBRn` address).
    AddressSize {
        /// Lookup level 0..=3.
        level: Level,
    },
    /// Translation fault (short: level 1..=2, LPAE: 1..=3).
    Translation {
        /// Lookup level.
        level: Level,
    },
    /// Access flag fault (short: level 1..=2, LPAE: 1..=3).
    AccessFlag {
        /// Lookup level.
        level: Level,
    },
    /// Permission fault (short: level 1..=2, LPAE: 1..=3).
    Permission {
        /// Lookup level.
        level: Level,
    },
    /// Domain fault (short only, level 1..=2).
    Domain {
        /// Lookup level.
        level: Level,
    },
    /// Synchronous external abort, not on a walk.
    SyncExternal,
    /// Synchronous external abort on a walk (short: level 1..=2, LPAE: 1..=3).
    SyncExternalOnWalk {
        /// Lookup level.
        level: Level,
    },
    /// Synchronous parity or ECC error, not on a walk (no FEAT_RAS).
    SyncParity,
    /// Synchronous parity or ECC error on a walk (short: level 1..=2, LPAE: 1..=3).
    SyncParityOnWalk {
        /// Lookup level.
        level: Level,
    },
    /// Alignment fault.
    Alignment,
    /// Debug exception.
    Debug,
    /// Fault on instruction cache maintenance (short only).
    IcacheMaintenance,
    /// TLB conflict abort.
    TlbConflict,
    /// IMPLEMENTATION DEFINED fault (Lockdown).
    ImpdefLockdown,
    /// IMPLEMENTATION DEFINED fault (Unsupported Exclusive access).
    ImpdefUnsupportedExclusive,
    /// SError (asynchronous external abort; `DFSR` only).
    AsyncSError,
    /// SError from a parity or ECC error (no FEAT_RAS; `DFSR` only).
    AsyncParity,
    /// A code the format does not allocate, kept as read.
    Reserved(u8),
}

use Fault32 as F;
use Level as L;

/// Short-descriptor `FS` codes.
const SHORT: &[(u8, Fault32)] = &[
    (0b00001, F::Alignment),
    (0b00010, F::Debug),
    (0b00011, F::AccessFlag { level: L::L1 }),
    (0b00100, F::IcacheMaintenance),
    (0b00101, F::Translation { level: L::L1 }),
    (0b00110, F::AccessFlag { level: L::L2 }),
    (0b00111, F::Translation { level: L::L2 }),
    (0b01000, F::SyncExternal),
    (0b01001, F::Domain { level: L::L1 }),
    (0b01011, F::Domain { level: L::L2 }),
    (0b01100, F::SyncExternalOnWalk { level: L::L1 }),
    (0b01101, F::Permission { level: L::L1 }),
    (0b01110, F::SyncExternalOnWalk { level: L::L2 }),
    (0b01111, F::Permission { level: L::L2 }),
    (0b10000, F::TlbConflict),
    (0b10100, F::ImpdefLockdown),
    (0b10101, F::ImpdefUnsupportedExclusive),
    (0b10110, F::AsyncSError),
    (0b11000, F::AsyncParity),
    (0b11001, F::SyncParity),
    (0b11100, F::SyncParityOnWalk { level: L::L1 }),
    (0b11110, F::SyncParityOnWalk { level: L::L2 }),
];

/// Long-descriptor `STATUS` codes.
const LPAE: &[(u8, Fault32)] = &[
    (0x00, F::AddressSize { level: L::L0 }),
    (0x01, F::AddressSize { level: L::L1 }),
    (0x02, F::AddressSize { level: L::L2 }),
    (0x03, F::AddressSize { level: L::L3 }),
    (0x05, F::Translation { level: L::L1 }),
    (0x06, F::Translation { level: L::L2 }),
    (0x07, F::Translation { level: L::L3 }),
    (0x09, F::AccessFlag { level: L::L1 }),
    (0x0A, F::AccessFlag { level: L::L2 }),
    (0x0B, F::AccessFlag { level: L::L3 }),
    (0x0D, F::Permission { level: L::L1 }),
    (0x0E, F::Permission { level: L::L2 }),
    (0x0F, F::Permission { level: L::L3 }),
    (0x10, F::SyncExternal),
    (0x11, F::AsyncSError),
    (0x15, F::SyncExternalOnWalk { level: L::L1 }),
    (0x16, F::SyncExternalOnWalk { level: L::L2 }),
    (0x17, F::SyncExternalOnWalk { level: L::L3 }),
    (0x18, F::SyncParity),
    (0x19, F::AsyncParity),
    (0x1D, F::SyncParityOnWalk { level: L::L1 }),
    (0x1E, F::SyncParityOnWalk { level: L::L2 }),
    (0x1F, F::SyncParityOnWalk { level: L::L3 }),
    (0x21, F::Alignment),
    (0x22, F::Debug),
    (0x30, F::TlbConflict),
    (0x34, F::ImpdefLockdown),
    (0x35, F::ImpdefUnsupportedExclusive),
];

/// Which `DFSR`/`IFSR` layout a value uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fsr32Format {
    /// Short-descriptor (`TTBCR.EAE` = 0, `LPAE` = 0).
    Short,
    /// Long-descriptor (`TTBCR.EAE` = 1, `LPAE` = 1).
    Lpae,
}

impl Fsr32Format {
    /// The format selected by a `TTBCR` value (`TTBCR.EAE`).
    #[must_use]
    pub const fn from_ttbcr(ttbcr: u64) -> Self {
        if crate::sysreg::ttbcr::EAE.is_set(ttbcr) {
            Self::Lpae
        } else {
            Self::Short
        }
    }

    fn table(self) -> &'static [(u8, Fault32)] {
        match self {
            Self::Short => SHORT,
            Self::Lpae => LPAE,
        }
    }
}

impl Fault32 {
    /// The code of this fault in `format`, or `None` when the format has no such fault.
    #[must_use]
    pub fn code(self, format: Fsr32Format) -> Option<u8> {
        if let Self::Reserved(code) = self {
            return Some(code);
        }
        format.table().iter().find(|e| e.1 == self).map(|e| e.0)
    }

    /// The fault for `code` in `format` (never fails: unallocated codes are `Reserved`).
    #[must_use]
    pub fn from_code(code: u8, format: Fsr32Format) -> Self {
        format
            .table()
            .iter()
            .find(|e| e.0 == code)
            .map_or(Self::Reserved(code), |e| e.1)
    }
}

/// `FnV`: the fault address register is not valid.
const FNV: Field = Field::bit(16);
/// `AET`: asynchronous error type (`DFSR`, FEAT_RAS).
const AET: Field = Field::new(14, 2);
/// `CM`: caused by cache maintenance or address translation (`DFSR`).
const CM: Field = Field::bit(13);
/// `ExT`: IMPLEMENTATION DEFINED external abort type.
const EXT: Field = Field::bit(12);
/// `WnR`: caused by a write (`DFSR`).
const WNR: Field = Field::bit(11);
/// `FS[4]` (short format).
const FS_HIGH: Field = Field::bit(10);
/// `LPAE`: the register uses the long-descriptor format.
const LPAE_BIT: Field = Field::bit(9);
/// `Domain` (short-format `DFSR`).
const DOMAIN: Field = Field::new(4, 4);
/// `FS[3:0]` (short format).
const FS_LOW: Field = Field::new(0, 4);
/// `FS[3:0]` holds the low four bits of the five-bit `FS` code.
const FS_LOW_BITS: u32 = 4;
/// `STATUS` (long format).
const STATUS: Field = Field::new(0, 6);

/// A `DFSR` or `IFSR` value (an `IFSR` has `aet`, `cm`, `wnr` and `domain` zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fsr32 {
    /// The layout (`LPAE` bit).
    pub format: Fsr32Format,
    /// `FS` or `STATUS`.
    pub fault: Fault32,
    /// `FnV`.
    pub fnv: bool,
    /// `AET` (raw 2 bits).
    pub aet: u8,
    /// `CM`.
    pub cm: bool,
    /// `ExT`.
    pub ext: bool,
    /// `WnR`.
    pub wnr: bool,
    /// `Domain` (short format; deprecated by Arm, 0 in what Moat injects).
    pub domain: u8,
}

impl Fsr32 {
    /// A value with only `fault` set.
    #[must_use]
    pub const fn new(format: Fsr32Format, fault: Fault32) -> Self {
        Self {
            format,
            fault,
            fnv: false,
            aet: 0,
            cm: false,
            ext: false,
            wnr: false,
            domain: 0,
        }
    }

    /// Decodes a `DFSR`/`IFSR` value; the `LPAE` bit picks the layout.
    #[must_use]
    pub fn decode(bits: u32) -> Self {
        let bits = u64::from(bits);
        let format = if LPAE_BIT.is_set(bits) {
            Fsr32Format::Lpae
        } else {
            Fsr32Format::Short
        };
        let (code, domain) = match format {
            Fsr32Format::Lpae => (STATUS.get(bits) as u8, 0),
            Fsr32Format::Short => {
                let fs = (FS_HIGH.get(bits) << FS_LOW_BITS) | FS_LOW.get(bits);
                (fs as u8, DOMAIN.get(bits) as u8)
            }
        };
        Self {
            format,
            fault: Fault32::from_code(code, format),
            fnv: FNV.is_set(bits),
            aet: AET.get(bits) as u8,
            cm: CM.is_set(bits),
            ext: EXT.is_set(bits),
            wnr: WNR.is_set(bits),
            domain,
        }
    }

    /// Encodes the value, or `None` when `fault` has no code in `format`.
    #[must_use]
    pub fn encode(self) -> Option<u32> {
        let code = u64::from(self.fault.code(self.format)?);
        let mut bits = FNV.with_flag(0, self.fnv);
        bits = AET.insert(bits, u64::from(self.aet));
        bits = CM.with_flag(bits, self.cm);
        bits = EXT.with_flag(bits, self.ext);
        bits = WNR.with_flag(bits, self.wnr);
        bits = match self.format {
            Fsr32Format::Lpae => STATUS.insert(LPAE_BIT.with_flag(bits, true), code),
            Fsr32Format::Short => {
                let bits = FS_HIGH.insert(bits, code >> FS_LOW_BITS);
                DOMAIN.insert(FS_LOW.insert(bits, code), u64::from(self.domain))
            }
        };
        Some(bits as u32)
    }
}

impl Fault32 {
    /// A short English name, without the level.
    #[must_use]
    pub const fn kind_name(self) -> &'static str {
        match self {
            Self::AddressSize { .. } => "address size fault",
            Self::Translation { .. } => "translation fault",
            Self::AccessFlag { .. } => "access flag fault",
            Self::Permission { .. } => "permission fault",
            Self::Domain { .. } => "domain fault",
            Self::SyncExternal => "synchronous external abort",
            Self::SyncExternalOnWalk { .. } => "synchronous external abort on table walk",
            Self::SyncParity => "synchronous parity/ECC error",
            Self::SyncParityOnWalk { .. } => "synchronous parity/ECC error on table walk",
            Self::Alignment => "alignment fault",
            Self::Debug => "debug exception",
            Self::IcacheMaintenance => "fault on instruction cache maintenance",
            Self::TlbConflict => "TLB conflict abort",
            Self::ImpdefLockdown => "IMPLEMENTATION DEFINED fault (lockdown)",
            Self::ImpdefUnsupportedExclusive => {
                "IMPLEMENTATION DEFINED fault (unsupported exclusive)"
            }
            Self::AsyncSError => "SError",
            Self::AsyncParity => "SError from a parity/ECC error",
            Self::Reserved(_) => "reserved",
        }
    }

    /// The lookup level, for the kinds that have one.
    #[must_use]
    pub const fn level(self) -> Option<Level> {
        match self {
            Self::AddressSize { level }
            | Self::Translation { level }
            | Self::AccessFlag { level }
            | Self::Permission { level }
            | Self::Domain { level }
            | Self::SyncExternalOnWalk { level }
            | Self::SyncParityOnWalk { level } => Some(level),
            _ => None,
        }
    }
}

/// `LPAE=1 STATUS=0x10 (synchronous external abort) FnV=0 AET=0b00 CM=0 ExT=0 WnR=1`, or for
/// the short format `LPAE=0 FS=0b01000 (...) Domain=0 ...`.
impl fmt::Display for Fsr32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.fault.code(self.format).unwrap_or_default();
        match self.format {
            Fsr32Format::Lpae => write!(f, "LPAE=1 STATUS={code:#04x}")?,
            Fsr32Format::Short => write!(f, "LPAE=0 FS={code:#07b}")?,
        }
        write!(f, " ({}", self.fault.kind_name())?;
        if let Some(level) = self.fault.level() {
            write!(f, ", level {level}")?;
        }
        f.write_str(")")?;
        if self.format == Fsr32Format::Short {
            write!(f, " Domain={}", self.domain)?;
        }
        let flags = [
            ("FnV", self.fnv),
            ("CM", self.cm),
            ("ExT", self.ext),
            ("WnR", self.wnr),
        ];
        write!(f, " AET={:#04b}", self.aet)?;
        for (name, flag) in flags {
            write!(f, " {name}={}", u8::from(flag))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_external_abort_on_write_is_fs_0b01000_with_wnr() {
        let fsr = Fsr32 {
            wnr: true,
            ..Fsr32::new(Fsr32Format::Short, F::SyncExternal)
        };
        assert_eq!(fsr.encode(), Some(0x808));
    }

    #[test]
    fn short_walk_abort_level_2_sets_fs_0b01110() {
        let fsr = Fsr32::new(Fsr32Format::Short, F::SyncExternalOnWalk { level: L::L2 });
        assert_eq!(fsr.encode(), Some(0b1110));
    }

    #[test]
    fn short_format_splits_fs4_into_bit_10() {
        let fsr = Fsr32::new(Fsr32Format::Short, F::AsyncSError);
        assert_eq!(fsr.encode(), Some((1 << 10) | 0b0110));
        assert_eq!(Fsr32::decode(0x406).fault, F::AsyncSError);
    }

    #[test]
    fn lpae_external_abort_sets_lpae_bit_and_status_0x10() {
        let fsr = Fsr32::new(Fsr32Format::Lpae, F::SyncExternal);
        assert_eq!(fsr.encode(), Some(0x210));
    }

    #[test]
    fn lpae_address_size_fault_levels_are_0x00_to_0x03() {
        for (n, level) in [L::L0, L::L1, L::L2, L::L3].into_iter().enumerate() {
            let fsr = Fsr32::new(Fsr32Format::Lpae, F::AddressSize { level });
            assert_eq!(fsr.encode(), Some(0x200 | n as u32));
        }
    }

    #[test]
    fn short_format_cannot_express_an_address_size_fault() {
        let fsr = Fsr32::new(Fsr32Format::Short, F::AddressSize { level: L::L1 });
        assert_eq!(fsr.encode(), None);
    }

    #[test]
    fn lpae_has_no_level_0_walk_abort_or_level_3_short_fault() {
        let walk0 = F::SyncExternalOnWalk { level: L::L0 };
        assert_eq!(walk0.code(Fsr32Format::Lpae), None);
        let walk3 = F::SyncExternalOnWalk { level: L::L3 };
        assert_eq!(walk3.code(Fsr32Format::Short), None);
    }

    #[test]
    fn format_follows_ttbcr_eae_bit_31() {
        assert_eq!(Fsr32Format::from_ttbcr(1 << 31), Fsr32Format::Lpae);
        assert_eq!(Fsr32Format::from_ttbcr(0x7FFF_FFFF), Fsr32Format::Short);
    }

    #[test]
    fn linux_oops_805_is_a_section_translation_fault_on_a_write() {
        // "Internal error: Oops: 805": the DFSR of a NULL store under short descriptors.
        let fsr = Fsr32::decode(0x805);
        assert_eq!(fsr.format, Fsr32Format::Short);
        assert_eq!(fsr.fault, F::Translation { level: L::L1 });
        assert!(fsr.wnr);
    }

    #[test]
    fn linux_oops_817_is_a_page_translation_fault_in_domain_1() {
        let fsr = Fsr32::decode(0x817);
        assert_eq!(fsr.fault, F::Translation { level: L::L2 });
        assert_eq!(fsr.domain, 1);
        assert!(fsr.wnr);
    }

    #[test]
    fn linux_lpae_oops_a06_is_a_level_2_translation_fault_on_a_write() {
        let fsr = Fsr32::decode(0xA06);
        assert_eq!(fsr.format, Fsr32Format::Lpae);
        assert_eq!(fsr.fault, F::Translation { level: L::L2 });
        assert!(fsr.wnr);
    }

    #[test]
    fn display_names_format_code_fault_and_flags() {
        extern crate std;
        use std::string::ToString;
        let lpae = Fsr32 {
            wnr: true,
            ..Fsr32::new(Fsr32Format::Lpae, F::SyncExternal)
        };
        assert_eq!(
            lpae.to_string(),
            "LPAE=1 STATUS=0x10 (synchronous external abort) AET=0b00 FnV=0 CM=0 ExT=0 WnR=1"
        );
        let short = Fsr32::new(Fsr32Format::Short, F::SyncExternalOnWalk { level: L::L2 });
        assert_eq!(
            short.to_string(),
            "LPAE=0 FS=0b01110 (synchronous external abort on table walk, level 2) Domain=0 \
             AET=0b00 FnV=0 CM=0 ExT=0 WnR=0"
        );
    }

    proptest! {
        #[test]
        fn encode_of_decode_keeps_every_defined_bit(bits in any::<u32>()) {
            let lpae = LPAE_BIT.is_set(u64::from(bits));
            let defined: u32 = if lpae { 0x1_FA3F } else { 0x1_FCFF };
            prop_assert_eq!(Fsr32::decode(bits).encode(), Some(bits & defined));
        }
    }
}
