//! Addresses in messages, written as a reader of the Arm ARM writes them: hexadecimal with an
//! underscore every four digits (`0x1_0000_0000`), so that a bit position can be read off.

use core::fmt;

/// Displays the number in grouped hexadecimal. Holds a `u128` so that the exclusive end of a
/// range reaching the top of the 64-bit space (`2^64`) can be shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hex(pub u128);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = if self.0 == 0 {
            1
        } else {
            (128 - self.0.leading_zeros()).div_ceil(4)
        };
        f.write_str("0x")?;
        for i in (0..digits).rev() {
            let nibble = (self.0 >> (i * 4)) & 0xf;
            write!(f, "{nibble:x}")?;
            if i != 0 && i % 4 == 0 {
                f.write_str("_")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn groups_every_four_digits_from_the_right() {
        assert_eq!(Hex(0).to_string(), "0x0");
        assert_eq!(Hex(0x1000).to_string(), "0x1000");
        assert_eq!(Hex(0x900_0000).to_string(), "0x900_0000");
        assert_eq!(Hex(0x1_0000_0000).to_string(), "0x1_0000_0000");
        assert_eq!(Hex(1 << 64).to_string(), "0x1_0000_0000_0000_0000");
    }
}
