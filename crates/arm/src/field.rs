//! Named bit fields of system registers.
//!
//! Every register layout in this crate is written as a list of `Field`s named after the Arm ARM
//! field they describe (`ESR_ELx.EC` is `Field::new(26, 6)`), so that no logic shifts or masks a
//! register with bare numbers. The helpers are `const` so layouts can be constants.

/// A field of `width` bits starting at bit `lsb` of a 64-bit register value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    lsb: u32,
    width: u32,
}

impl Field {
    /// The field `[lsb + width - 1 : lsb]`.
    ///
    /// # Panics
    ///
    /// When the field is empty or does not fit in 64 bits (a mistake in a layout table, caught
    /// at compile time when the field is a constant).
    #[must_use]
    #[inline]
    pub const fn new(lsb: u32, width: u32) -> Self {
        assert!(
            width > 0 && lsb + width <= 64,
            "field outside a 64-bit register"
        );
        Self { lsb, width }
    }

    /// The one-bit field `[n]`.
    #[must_use]
    #[inline]
    pub const fn bit(n: u32) -> Self {
        Self::new(n, 1)
    }

    /// The lowest bit of the field.
    #[must_use]
    #[inline]
    pub const fn lsb(self) -> u32 {
        self.lsb
    }

    /// The number of bits in the field.
    #[must_use]
    #[inline]
    pub const fn width(self) -> u32 {
        self.width
    }

    /// The largest value the field can hold, right-aligned.
    #[must_use]
    #[inline]
    pub const fn max(self) -> u64 {
        u64::MAX >> (64 - self.width)
    }

    /// The field's bits in place within the register.
    #[must_use]
    #[inline]
    pub const fn mask(self) -> u64 {
        self.max() << self.lsb
    }

    /// The field's value in `reg`, right-aligned.
    #[must_use]
    #[inline]
    pub const fn get(self, reg: u64) -> u64 {
        (reg >> self.lsb) & self.max()
    }

    /// Whether the field is non-zero in `reg` (for one-bit fields: whether the bit is set).
    #[must_use]
    #[inline]
    pub const fn is_set(self, reg: u64) -> bool {
        self.get(reg) != 0
    }

    /// `reg` with the field replaced by `value` (bits of `value` beyond the field are dropped).
    #[must_use]
    #[inline]
    pub const fn insert(self, reg: u64, value: u64) -> u64 {
        (reg & !self.mask()) | ((value & self.max()) << self.lsb)
    }

    /// `reg` with a one-bit field set to `flag` (a wider field gets 0 or 1).
    #[must_use]
    #[inline]
    pub const fn with_flag(self, reg: u64, flag: bool) -> u64 {
        self.insert(reg, flag as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_extracts_the_named_bits_right_aligned() {
        let ec = Field::new(26, 6);
        assert_eq!(ec.get(0x9600_0046), 0x25);
        assert_eq!(Field::bit(25).get(0x9600_0046), 1);
    }

    #[test]
    fn insert_replaces_only_the_field() {
        let sas = Field::new(22, 2);
        assert_eq!(sas.insert(u64::MAX, 0), !(0b11 << 22));
        assert_eq!(
            sas.insert(0, 0b111),
            0b11 << 22,
            "excess value bits are dropped"
        );
    }

    #[test]
    fn a_full_width_field_covers_the_register() {
        let all = Field::new(0, 64);
        assert_eq!(all.mask(), u64::MAX);
        assert_eq!(all.get(0x1234), 0x1234);
    }
}
