//! Fault status codes: `ESR_ELx.DFSC`/`IFSC` and the AArch32 long-descriptor (LPAE)
//! `DFSR`/`IFSR.STATUS`, which share one 6-bit encoding.
//!
//! Levels are numbered as the Arm ARM numbers them (−2 and −1 exist with FEAT_D128 and
//! FEAT_LPA2), and each fault kind carries a level type holding exactly the levels the Arm ARM
//! gives it an encoding for, so that every `Fsc` value has an encoding. Codes the Arm ARM does
//! not allocate decode to [`Fsc::Reserved`]. Source: the DFSC table of `ESR_EL1`/`ESR_EL2`
//! ("ISS encoding for an exception from a Data Abort", DDI 0487).
//!
//! The AArch32 short-descriptor format (`FS`, 5 bits split over two fields) is in
//! [`crate::fsr32`].

use core::fmt;

macro_rules! level_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $n:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(missing_docs, reason = "each variant is the level in its name")]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            /// Every level of this kind, lowest first.
            pub const ALL: &[Self] = &[$(Self::$variant),*];

            /// The level as the Arm ARM numbers it.
            #[must_use]
            pub const fn number(self) -> i8 {
                match self {
                    $(Self::$variant => $n,)*
                }
            }

            /// The level numbered `n`, or `None` when this kind of fault has no level `n`.
            #[must_use]
            pub const fn from_number(n: i8) -> Option<Self> {
                match n {
                    $($n => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.number())
            }
        }
    };
}

level_enum!(
    /// A translation lookup level for faults the Arm ARM encodes at levels −2..=3: address
    /// size, translation, synchronous external abort on a walk, granule protection on a walk.
    /// (−2 needs FEAT_D128, −1 FEAT_LPA2.)
    Level { Minus2 = -2, Minus1 = -1, L0 = 0, L1 = 1, L2 = 2, L3 = 3 }
);

level_enum!(
    /// The level of the leaf (block or page) descriptor, for access flag and permission faults:
    /// 0..=3 (level 0 needs FEAT_LPA2).
    LeafLevel { L0 = 0, L1 = 1, L2 = 2, L3 = 3 }
);

level_enum!(
    /// The level of a synchronous parity or ECC error on a walk (no FEAT_RAS): −1..=3 (−1 needs
    /// FEAT_LPA2).
    ParityLevel { Minus1 = -1, L0 = 0, L1 = 1, L2 = 2, L3 = 3 }
);

/// A fault status code (`DFSC`/`IFSC`, LPAE `STATUS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fsc {
    /// Address size fault (0x00..=0x03, −1: 0x29, −2: 0x2C); level 0 also covers a table base
    /// register (`TTBRn`) out of range.
    AddressSize {
        /// The lookup level.
        level: Level,
    },
    /// Translation fault (0x04..=0x07, −1: 0x2B, −2: 0x2A).
    Translation {
        /// The lookup level.
        level: Level,
    },
    /// Access flag fault (0x08..=0x0B).
    AccessFlag {
        /// The leaf level.
        level: LeafLevel,
    },
    /// Permission fault (0x0C..=0x0F).
    Permission {
        /// The leaf level.
        level: LeafLevel,
    },
    /// Synchronous external abort, not on a translation table walk (0x10).
    SyncExternal,
    /// Synchronous Tag Check Fault (0x11, FEAT_MTE2; data aborts only).
    TagCheck,
    /// Synchronous external abort on a translation table walk or hardware table update
    /// (0x14..=0x17, −1: 0x13, −2: 0x12).
    SyncExternalOnWalk {
        /// The lookup level.
        level: Level,
    },
    /// Synchronous parity or ECC error, not on a walk (0x18; only without FEAT_RAS).
    SyncParity,
    /// Synchronous parity or ECC error on a walk (0x1C..=0x1F, −1: 0x1B; only without FEAT_RAS).
    SyncParityOnWalk {
        /// The lookup level.
        level: ParityLevel,
    },
    /// Alignment fault (0x21).
    Alignment,
    /// Granule protection fault on a walk (0x24..=0x27, −1: 0x23, −2: 0x22; FEAT_RME).
    GranuleProtectionOnWalk {
        /// The lookup level.
        level: Level,
    },
    /// Granule protection fault, not on a walk (0x28; FEAT_RME).
    GranuleProtection,
    /// TLB conflict abort (0x30).
    TlbConflict,
    /// Unsupported atomic hardware update fault (0x31; FEAT_HAFDBS).
    UnsupportedAtomicUpdate,
    /// IMPLEMENTATION DEFINED fault, Lockdown (0x34).
    ImpdefLockdown,
    /// IMPLEMENTATION DEFINED fault, unsupported exclusive or atomic access (0x35).
    ImpdefUnsupportedExclusive,
    /// A code the Arm ARM does not allocate (or a value wider than 6 bits); kept as read.
    Reserved(u8),
}

/// Base codes of the level-indexed families: the code for level 0. Levels below 0 have codes of
/// their own, listed in `negative_level_code`.
mod base {
    pub const ADDRESS_SIZE: u8 = 0x00;
    pub const TRANSLATION: u8 = 0x04;
    pub const ACCESS_FLAG: u8 = 0x08;
    pub const PERMISSION: u8 = 0x0C;
    pub const SEA_WALK: u8 = 0x14;
    pub const PARITY_WALK: u8 = 0x1C;
    pub const GPF_WALK: u8 = 0x24;
}

/// Codes of the fault kinds without a level.
mod code {
    pub const SYNC_EXTERNAL: u8 = 0x10;
    pub const TAG_CHECK: u8 = 0x11;
    pub const SYNC_PARITY: u8 = 0x18;
    pub const ALIGNMENT: u8 = 0x21;
    pub const GRANULE_PROTECTION: u8 = 0x28;
    pub const TLB_CONFLICT: u8 = 0x30;
    pub const UNSUPPORTED_ATOMIC_UPDATE: u8 = 0x31;
    pub const IMPDEF_LOCKDOWN: u8 = 0x34;
    pub const IMPDEF_UNSUPPORTED_EXCLUSIVE: u8 = 0x35;
}

/// The codes for levels −1 and −2: (family base, level, code).
const NEGATIVE_LEVEL_CODES: &[(u8, i8, u8)] = &[
    (base::ADDRESS_SIZE, -1, 0x29),
    (base::ADDRESS_SIZE, -2, 0x2C),
    (base::TRANSLATION, -1, 0x2B),
    (base::TRANSLATION, -2, 0x2A),
    (base::SEA_WALK, -1, 0x13),
    (base::SEA_WALK, -2, 0x12),
    (base::PARITY_WALK, -1, 0x1B),
    (base::GPF_WALK, -1, 0x23),
    (base::GPF_WALK, -2, 0x22),
];

/// The code of family `base` at `level`.
const fn level_code(base: u8, level: i8) -> u8 {
    if level >= 0 {
        return base + level as u8;
    }
    let mut i = 0;
    while i < NEGATIVE_LEVEL_CODES.len() {
        let (b, l, c) = NEGATIVE_LEVEL_CODES[i];
        if b == base && l == level {
            return c;
        }
        i += 1;
    }
    panic!("a level type allowed a level its family has no code for")
}

/// The (family base, level) a code stands for, if it is one of the level-indexed codes.
const fn family_of(code: u8) -> Option<(u8, i8)> {
    let mut i = 0;
    while i < NEGATIVE_LEVEL_CODES.len() {
        let (b, l, c) = NEGATIVE_LEVEL_CODES[i];
        if c == code {
            return Some((b, l));
        }
        i += 1;
    }
    let families = [
        base::ADDRESS_SIZE,
        base::TRANSLATION,
        base::ACCESS_FLAG,
        base::PERMISSION,
        base::SEA_WALK,
        base::PARITY_WALK,
        base::GPF_WALK,
    ];
    let mut f = 0;
    while f < families.len() {
        let b = families[f];
        if code >= b && code < b + 4 {
            // Truncation impossible: the difference is below 4.
            return Some((b, (code - b) as i8));
        }
        f += 1;
    }
    None
}

/// Every 6-bit code decoded once, at compile time: `Fsc::from_code` is one index, on the path
/// of every guest abort (the search it replaces cost about 350 instructions per abort).
const DECODED: [Fsc; 64] = {
    let mut table = [Fsc::Reserved(0); 64];
    let mut code = 0;
    while code < 64 {
        // Truncation impossible: code < 64.
        table[code] = Fsc::decode(code as u8);
        code += 1;
    }
    table
};

impl Fsc {
    /// Decodes a 6-bit fault status code. Never fails: unallocated codes become `Reserved`.
    #[must_use]
    #[inline]
    pub const fn from_code(code: u8) -> Self {
        if (code as usize) < DECODED.len() {
            DECODED[code as usize]
        } else {
            Self::Reserved(code)
        }
    }

    /// The decoding `DECODED` is built from.
    const fn decode(code: u8) -> Self {
        if let Some((family, n)) = family_of(code) {
            return Self::from_family(family, n);
        }
        match code {
            code::SYNC_EXTERNAL => Self::SyncExternal,
            code::TAG_CHECK => Self::TagCheck,
            code::SYNC_PARITY => Self::SyncParity,
            code::ALIGNMENT => Self::Alignment,
            code::GRANULE_PROTECTION => Self::GranuleProtection,
            code::TLB_CONFLICT => Self::TlbConflict,
            code::UNSUPPORTED_ATOMIC_UPDATE => Self::UnsupportedAtomicUpdate,
            code::IMPDEF_LOCKDOWN => Self::ImpdefLockdown,
            code::IMPDEF_UNSUPPORTED_EXCLUSIVE => Self::ImpdefUnsupportedExclusive,
            other => Self::Reserved(other),
        }
    }

    /// The fault of family `family` at level `n` (both from the tables above, so valid).
    const fn from_family(family: u8, n: i8) -> Self {
        const MSG: &str = "level from the code tables";
        match family {
            base::ADDRESS_SIZE => Self::AddressSize {
                level: Level::from_number(n).expect(MSG),
            },
            base::TRANSLATION => Self::Translation {
                level: Level::from_number(n).expect(MSG),
            },
            base::ACCESS_FLAG => Self::AccessFlag {
                level: LeafLevel::from_number(n).expect(MSG),
            },
            base::PERMISSION => Self::Permission {
                level: LeafLevel::from_number(n).expect(MSG),
            },
            base::SEA_WALK => Self::SyncExternalOnWalk {
                level: Level::from_number(n).expect(MSG),
            },
            base::GPF_WALK => Self::GranuleProtectionOnWalk {
                level: Level::from_number(n).expect(MSG),
            },
            _ => Self::SyncParityOnWalk {
                level: ParityLevel::from_number(n).expect(MSG),
            },
        }
    }

    /// The 6-bit code. `Reserved(c)` gives `c` back unchanged.
    #[must_use]
    #[inline]
    pub const fn code(self) -> u8 {
        match self {
            Self::AddressSize { level } => level_code(base::ADDRESS_SIZE, level.number()),
            Self::Translation { level } => level_code(base::TRANSLATION, level.number()),
            Self::AccessFlag { level } => level_code(base::ACCESS_FLAG, level.number()),
            Self::Permission { level } => level_code(base::PERMISSION, level.number()),
            Self::SyncExternal => code::SYNC_EXTERNAL,
            Self::TagCheck => code::TAG_CHECK,
            Self::SyncExternalOnWalk { level } => level_code(base::SEA_WALK, level.number()),
            Self::SyncParity => code::SYNC_PARITY,
            Self::SyncParityOnWalk { level } => level_code(base::PARITY_WALK, level.number()),
            Self::Alignment => code::ALIGNMENT,
            Self::GranuleProtectionOnWalk { level } => level_code(base::GPF_WALK, level.number()),
            Self::GranuleProtection => code::GRANULE_PROTECTION,
            Self::TlbConflict => code::TLB_CONFLICT,
            Self::UnsupportedAtomicUpdate => code::UNSUPPORTED_ATOMIC_UPDATE,
            Self::ImpdefLockdown => code::IMPDEF_LOCKDOWN,
            Self::ImpdefUnsupportedExclusive => code::IMPDEF_UNSUPPORTED_EXCLUSIVE,
            Self::Reserved(c) => c,
        }
    }

    /// The lookup level the fault reports, for the kinds that have one.
    #[must_use]
    pub const fn level(self) -> Option<i8> {
        match self {
            Self::AddressSize { level }
            | Self::Translation { level }
            | Self::SyncExternalOnWalk { level }
            | Self::GranuleProtectionOnWalk { level } => Some(level.number()),
            Self::AccessFlag { level } | Self::Permission { level } => Some(level.number()),
            Self::SyncParityOnWalk { level } => Some(level.number()),
            _ => None,
        }
    }

    /// Whether this is a synchronous external abort (on a walk or not); these are the codes for
    /// which `ESR_ELx.SET` (FEAT_RAS), `FnV` and `EA` carry meaning.
    #[must_use]
    pub const fn is_external_abort(self) -> bool {
        matches!(self, Self::SyncExternal | Self::SyncExternalOnWalk { .. })
    }

    /// Whether `HPFAR_EL2` holds the faulting IPA for a stage-2 fault with this code (the
    /// `HPFAR_EL2` "is written for" list): translation, access flag and address size faults,
    /// and with `S1PTW` = 1 also permission faults. An external abort, even on a walk, leaves
    /// it UNKNOWN.
    #[must_use]
    #[inline]
    pub const fn hpfar_valid(self, s1ptw: bool) -> bool {
        match self {
            Self::Translation { .. } | Self::AccessFlag { .. } | Self::AddressSize { .. } => true,
            Self::Permission { .. } => s1ptw,
            _ => false,
        }
    }

    /// A short English name, without the level.
    #[must_use]
    pub const fn kind_name(self) -> &'static str {
        match self {
            Self::AddressSize { .. } => "address size fault",
            Self::Translation { .. } => "translation fault",
            Self::AccessFlag { .. } => "access flag fault",
            Self::Permission { .. } => "permission fault",
            Self::SyncExternal => "synchronous external abort",
            Self::TagCheck => "synchronous tag check fault",
            Self::SyncExternalOnWalk { .. } => "synchronous external abort on table walk",
            Self::SyncParity => "synchronous parity/ECC error",
            Self::SyncParityOnWalk { .. } => "synchronous parity/ECC error on table walk",
            Self::Alignment => "alignment fault",
            Self::GranuleProtectionOnWalk { .. } => "granule protection fault on table walk",
            Self::GranuleProtection => "granule protection fault",
            Self::TlbConflict => "TLB conflict abort",
            Self::UnsupportedAtomicUpdate => "unsupported atomic hardware update fault",
            Self::ImpdefLockdown => "IMPLEMENTATION DEFINED fault (lockdown)",
            Self::ImpdefUnsupportedExclusive => {
                "IMPLEMENTATION DEFINED fault (unsupported exclusive or atomic)"
            }
            Self::Reserved(_) => "reserved",
        }
    }
}

/// `0x07 (translation fault, level 3)`.
impl fmt::Display for Fsc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x} ({}", self.code(), self.kind_name())?;
        if let Some(level) = self.level() {
            write!(f, ", level {level}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    /// (code, meaning) rows transcribed from the `ESR_EL1` DFSC table.
    const TABLE: &[(u8, Fsc)] = &[
        (0x00, Fsc::AddressSize { level: Level::L0 }),
        (0x03, Fsc::AddressSize { level: Level::L3 }),
        (
            0x29,
            Fsc::AddressSize {
                level: Level::Minus1,
            },
        ),
        (
            0x2C,
            Fsc::AddressSize {
                level: Level::Minus2,
            },
        ),
        (0x04, Fsc::Translation { level: Level::L0 }),
        (0x07, Fsc::Translation { level: Level::L3 }),
        (
            0x2B,
            Fsc::Translation {
                level: Level::Minus1,
            },
        ),
        (
            0x2A,
            Fsc::Translation {
                level: Level::Minus2,
            },
        ),
        (
            0x08,
            Fsc::AccessFlag {
                level: LeafLevel::L0,
            },
        ),
        (
            0x0B,
            Fsc::AccessFlag {
                level: LeafLevel::L3,
            },
        ),
        (
            0x0C,
            Fsc::Permission {
                level: LeafLevel::L0,
            },
        ),
        (
            0x0F,
            Fsc::Permission {
                level: LeafLevel::L3,
            },
        ),
        (0x10, Fsc::SyncExternal),
        (0x11, Fsc::TagCheck),
        (
            0x12,
            Fsc::SyncExternalOnWalk {
                level: Level::Minus2,
            },
        ),
        (
            0x13,
            Fsc::SyncExternalOnWalk {
                level: Level::Minus1,
            },
        ),
        (0x14, Fsc::SyncExternalOnWalk { level: Level::L0 }),
        (0x17, Fsc::SyncExternalOnWalk { level: Level::L3 }),
        (0x18, Fsc::SyncParity),
        (
            0x1B,
            Fsc::SyncParityOnWalk {
                level: ParityLevel::Minus1,
            },
        ),
        (
            0x1C,
            Fsc::SyncParityOnWalk {
                level: ParityLevel::L0,
            },
        ),
        (
            0x1F,
            Fsc::SyncParityOnWalk {
                level: ParityLevel::L3,
            },
        ),
        (0x21, Fsc::Alignment),
        (
            0x22,
            Fsc::GranuleProtectionOnWalk {
                level: Level::Minus2,
            },
        ),
        (
            0x23,
            Fsc::GranuleProtectionOnWalk {
                level: Level::Minus1,
            },
        ),
        (0x27, Fsc::GranuleProtectionOnWalk { level: Level::L3 }),
        (0x28, Fsc::GranuleProtection),
        (0x30, Fsc::TlbConflict),
        (0x31, Fsc::UnsupportedAtomicUpdate),
        (0x34, Fsc::ImpdefLockdown),
        (0x35, Fsc::ImpdefUnsupportedExclusive),
    ];

    #[test]
    fn codes_decode_to_the_arm_arm_meaning() {
        for &(code, fsc) in TABLE {
            assert_eq!(Fsc::from_code(code), fsc, "code {code:#04x}");
            assert_eq!(fsc.code(), code, "{fsc:?}");
        }
    }

    #[test]
    fn unallocated_codes_decode_to_reserved() {
        for code in [
            0x19, 0x1A, 0x20, 0x2D, 0x2E, 0x2F, 0x32, 0x33, 0x36, 0x3F, 0x40, 0xFF,
        ] {
            assert_eq!(
                Fsc::from_code(code),
                Fsc::Reserved(code),
                "code {code:#04x}"
            );
        }
    }

    #[test]
    fn every_code_round_trips() {
        for code in 0..=u8::MAX {
            assert_eq!(Fsc::from_code(code).code(), code);
        }
    }

    #[test]
    fn every_level_of_every_family_has_a_distinct_code() {
        let mut seen = [false; 64];
        let all = Level::ALL.iter().flat_map(|&level| {
            [
                Fsc::AddressSize { level },
                Fsc::Translation { level },
                Fsc::SyncExternalOnWalk { level },
                Fsc::GranuleProtectionOnWalk { level },
            ]
        });
        let leaf = LeafLevel::ALL
            .iter()
            .flat_map(|&level| [Fsc::AccessFlag { level }, Fsc::Permission { level }]);
        let parity = ParityLevel::ALL
            .iter()
            .map(|&level| Fsc::SyncParityOnWalk { level });
        for fsc in all.chain(leaf).chain(parity) {
            let code = usize::from(fsc.code());
            assert!(!seen[code], "{fsc:?} shares code {code:#x}");
            seen[code] = true;
            assert_eq!(Fsc::from_code(fsc.code()), fsc);
        }
    }

    #[test]
    fn display_names_kind_and_level() {
        let fsc = Fsc::Translation { level: Level::L3 };
        assert_eq!(fsc.to_string(), "0x07 (translation fault, level 3)");
        assert_eq!(
            Fsc::SyncExternal.to_string(),
            "0x10 (synchronous external abort)"
        );
        assert_eq!(
            Fsc::AddressSize {
                level: Level::Minus1
            }
            .to_string(),
            "0x29 (address size fault, level -1)"
        );
    }

    #[test]
    fn hpfar_is_valid_for_translation_access_flag_address_size_and_walk_permission_faults() {
        let permission = Fsc::Permission {
            level: LeafLevel::L3,
        };
        let access_flag = Fsc::AccessFlag {
            level: LeafLevel::L2,
        };
        assert!(Fsc::Translation { level: Level::L1 }.hpfar_valid(false));
        assert!(access_flag.hpfar_valid(false));
        assert!(Fsc::AddressSize { level: Level::L0 }.hpfar_valid(false));
        assert!(!permission.hpfar_valid(false));
        assert!(permission.hpfar_valid(true));
        assert!(!Fsc::SyncExternal.hpfar_valid(true));
        assert!(!Fsc::SyncExternalOnWalk { level: Level::L1 }.hpfar_valid(true));
    }
}
