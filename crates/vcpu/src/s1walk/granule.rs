//! Translation granules and the table geometry they imply: how many VA bits each level
//! consumes, the start level for an input size (`AArch64.S1StartLevel()`), and which levels
//! may hold block descriptors (`AArch64.BlockDescSupported()`), for the 48-bit output formats.

/// The last lookup level (`FINAL_LEVEL` in the pseudocode).
pub const FINAL_LEVEL: u32 = 3;

/// A translation granule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granule {
    /// 4KB.
    K4,
    /// 16KB.
    K16,
    /// 64KB.
    K64,
}

impl Granule {
    /// `TCR_EL1.TG0`: 0b00 4KB, 0b01 64KB, 0b10 16KB. The reserved 0b11 is treated as 4KB
    /// (the Arm ARM lets the implementation pick a supported size; this is QEMU's pick).
    #[must_use]
    pub const fn from_tg0(tg0: u64) -> Self {
        match tg0 {
            0b01 => Self::K64,
            0b10 => Self::K16,
            _ => Self::K4,
        }
    }

    /// `TCR_EL1.TG1`: 0b01 16KB, 0b10 4KB, 0b11 64KB. The reserved 0b00 is treated as 4KB
    /// (as for TG0).
    #[must_use]
    pub const fn from_tg1(tg1: u64) -> Self {
        match tg1 {
            0b01 => Self::K16,
            0b11 => Self::K64,
            _ => Self::K4,
        }
    }

    /// `TGxGranuleBits()`: log2 of the granule in bytes.
    #[must_use]
    pub const fn bits(self) -> u32 {
        match self {
            Self::K4 => 12,
            Self::K16 => 14,
            Self::K64 => 16,
        }
    }

    /// VA bits resolved per level: log2 of the number of 8-byte descriptors in a table.
    #[must_use]
    pub const fn stride(self) -> u32 {
        self.bits() - 3
    }

    /// The lowest VA bit a lookup at `level` resolves; also log2 of the size a leaf at that
    /// level maps.
    #[must_use]
    pub const fn level_shift(self, level: u32) -> u32 {
        self.bits() + self.stride() * (FINAL_LEVEL - level)
    }

    /// `AArch64.S1StartLevel()`: the level whose table resolves the top input address bit,
    /// `FINAL_LEVEL - ((iasize - 1 - granulebits) DIV stride)`. `input_bits` must exceed the
    /// granule's bits (every `TxSZ` the walkers accept does).
    #[must_use]
    pub const fn start_level(self, input_bits: u32) -> u32 {
        FINAL_LEVEL - (input_bits - 1 - self.bits()) / self.stride()
    }

    /// `AArch64.BlockDescSupported()` without FEAT_LPA, FEAT_LPA2 and FEAT_D128: 4KB granule
    /// blocks at levels 1 and 2, 16KB and 64KB blocks at level 2 only.
    #[must_use]
    pub const fn block_allowed(self, level: u32) -> bool {
        match self {
            Self::K4 => level == 1 || level == 2,
            Self::K16 | Self::K64 => level == 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tg0_and_tg1_encode_the_granules_differently() {
        let tg0 = [0b00, 0b01, 0b10].map(Granule::from_tg0);
        let tg1 = [0b10, 0b11, 0b01].map(Granule::from_tg1);
        let expected = [Granule::K4, Granule::K64, Granule::K16];
        assert_eq!(tg0, expected);
        assert_eq!(tg1, expected);
    }

    #[test]
    fn start_level_follows_s1startlevel_for_each_granule() {
        // (granule, input bits, start level)
        let table = [
            (Granule::K4, 48, 0),
            (Granule::K4, 39, 1),
            (Granule::K4, 31, 1),
            (Granule::K4, 30, 2),
            (Granule::K4, 25, 2),
            (Granule::K16, 48, 0),
            (Granule::K16, 47, 1),
            (Granule::K16, 37, 1),
            (Granule::K16, 36, 2),
            (Granule::K16, 25, 3),
            (Granule::K64, 48, 1),
            (Granule::K64, 42, 2),
            (Granule::K64, 39, 2),
            (Granule::K64, 29, 3),
        ];
        for (granule, bits, start) in table {
            assert_eq!(granule.start_level(bits), start, "{granule:?} {bits}");
        }
    }

    #[test]
    fn leaves_map_the_architectural_block_and_page_sizes() {
        assert_eq!(Granule::K4.level_shift(1), 30);
        assert_eq!(Granule::K4.level_shift(2), 21);
        assert_eq!(Granule::K16.level_shift(2), 25);
        assert_eq!(Granule::K64.level_shift(2), 29);
        assert_eq!(Granule::K64.level_shift(3), 16);
    }
}
