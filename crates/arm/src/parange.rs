//! `ID_AA64MMFR0_EL1.PARange` (and `VTCR_EL2.PS`, `TCR_ELx.IPS`, same encoding) ↔ physical
//! address bits. SPEC.md §1 shows the guest a PARange `P` that Moat chooses.

/// A `PARange` encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaRange {
    /// 0b0000: 32 bits, 4 GB.
    Bits32,
    /// 0b0001: 36 bits, 64 GB.
    Bits36,
    /// 0b0010: 40 bits, 1 TB.
    Bits40,
    /// 0b0011: 42 bits, 4 TB.
    Bits42,
    /// 0b0100: 44 bits, 16 TB.
    Bits44,
    /// 0b0101: 48 bits, 256 TB.
    Bits48,
    /// 0b0110: 52 bits, 4 PB (FEAT_LPA).
    Bits52,
    /// 0b0111: 56 bits (FEAT_D128).
    Bits56,
    /// Any other (4-bit) value.
    Reserved(u8),
}

/// (encoding, bits), smallest first.
const TABLE: [(PaRange, u8, u8); 8] = [
    (PaRange::Bits32, 0b0000, 32),
    (PaRange::Bits36, 0b0001, 36),
    (PaRange::Bits40, 0b0010, 40),
    (PaRange::Bits42, 0b0011, 42),
    (PaRange::Bits44, 0b0100, 44),
    (PaRange::Bits48, 0b0101, 48),
    (PaRange::Bits52, 0b0110, 52),
    (PaRange::Bits56, 0b0111, 56),
];

impl PaRange {
    /// Every allocated encoding, smallest first.
    pub const ALL: [Self; 8] = [
        Self::Bits32,
        Self::Bits36,
        Self::Bits40,
        Self::Bits42,
        Self::Bits44,
        Self::Bits48,
        Self::Bits52,
        Self::Bits56,
    ];

    /// The range for the field value `field`.
    #[must_use]
    pub fn from_field(field: u8) -> Self {
        TABLE
            .iter()
            .find(|e| e.1 == field)
            .map_or(Self::Reserved(field), |e| e.0)
    }

    /// The field value (a `match`, not a search: the ID-register answer and the abort
    /// decision ask for it on every trap).
    #[must_use]
    pub const fn field(self) -> u8 {
        match self {
            Self::Bits32 => 0b0000,
            Self::Bits36 => 0b0001,
            Self::Bits40 => 0b0010,
            Self::Bits42 => 0b0011,
            Self::Bits44 => 0b0100,
            Self::Bits48 => 0b0101,
            Self::Bits52 => 0b0110,
            Self::Bits56 => 0b0111,
            Self::Reserved(f) => f,
        }
    }

    /// The number of physical address bits, or `None` for a reserved encoding.
    #[must_use]
    pub const fn bits(self) -> Option<u8> {
        Some(match self {
            Self::Bits32 => 32,
            Self::Bits36 => 36,
            Self::Bits40 => 40,
            Self::Bits42 => 42,
            Self::Bits44 => 44,
            Self::Bits48 => 48,
            Self::Bits52 => 52,
            Self::Bits56 => 56,
            Self::Reserved(_) => return None,
        })
    }

    /// The encoding of exactly `bits` address bits.
    #[must_use]
    pub fn from_bits(bits: u8) -> Option<Self> {
        TABLE.iter().find(|e| e.2 == bits).map(|e| e.0)
    }

    /// The smallest encoding that covers `bits` address bits (SPEC.md §1, `--parange tight`).
    #[must_use]
    pub fn covering(bits: u8) -> Option<Self> {
        TABLE.iter().find(|e| e.2 >= bits).map(|e| e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_and_bits_agree_with_the_encoding_table() {
        for (range, field, bits) in TABLE {
            assert_eq!((range.field(), range.bits()), (field, Some(bits)));
            assert_eq!(PaRange::from_field(field), range);
        }
        assert_eq!(PaRange::Reserved(0b1111).bits(), None);
    }

    #[test]
    fn encodings_map_to_the_arm_arm_sizes() {
        let bits: [Option<u8>; 8] = PaRange::ALL.map(PaRange::bits);
        let expected = [32, 36, 40, 42, 44, 48, 52, 56].map(Some);
        assert_eq!(bits, expected);
        assert_eq!(PaRange::from_field(0b0101), PaRange::Bits48);
    }

    #[test]
    fn every_field_value_round_trips_and_unallocated_ones_are_reserved() {
        for field in 0..16u8 {
            assert_eq!(PaRange::from_field(field).field(), field);
        }
        assert_eq!(PaRange::from_field(0b1000), PaRange::Reserved(0b1000));
        assert_eq!(PaRange::Reserved(0b1000).bits(), None);
    }

    #[test]
    fn covering_picks_the_smallest_encoding_at_least_as_large() {
        assert_eq!(PaRange::covering(32), Some(PaRange::Bits32));
        assert_eq!(PaRange::covering(33), Some(PaRange::Bits36));
        assert_eq!(PaRange::covering(41), Some(PaRange::Bits42));
        assert_eq!(PaRange::covering(57), None);
    }
}
