//! Sizes and addresses as people write them: `"128M"`, `"1G"`, `"0x1000"`, `"4096"`. Used for
//! TOML values given as strings and for the host tool's `--mem SIZE`.

/// Why a size string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// Nothing to parse.
    #[error(
        "empty size: write a number such as 4096 or 0x1000, optionally followed by K, M, G or T"
    )]
    Empty,
    /// Not a number with an optional binary-multiple suffix.
    #[error(
        "{text:?} is not a size: write a number such as 4096 or 0x1000, optionally followed by K, M, G or T (binary multiples)"
    )]
    Malformed {
        /// The text given.
        text: alloc::string::String,
    },
    /// More than 64 bits.
    #[error("{text:?} does not fit in 64 bits")]
    TooLarge {
        /// The text given.
        text: alloc::string::String,
    },
}

/// Parses a decimal or `0x` hexadecimal number, `_` allowed between digits, with an optional
/// suffix `K`, `M`, `G` or `T` (powers of 1024, either case, optionally followed by `iB` or `B`).
///
/// # Errors
///
/// [`SizeError`] when the text is empty, is not of that form, or overflows 64 bits.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(SizeError::Empty);
    }
    let (number, shift) = split_suffix(trimmed);
    let too_large = || SizeError::TooLarge { text: text.into() };
    let value = parse_number(number).map_err(|e| match e {
        NumberError::Malformed => SizeError::Malformed { text: text.into() },
        NumberError::TooLarge => too_large(),
    })?;
    value.checked_mul(1u64 << shift).ok_or_else(too_large)
}

/// Splits `"128MiB"` into `("128", 20)`; a text without a suffix has shift 0. A `B` or `iB`
/// counts as a unit only after a multiple letter, so `0xb` stays a hexadecimal number.
fn split_suffix(text: &str) -> (&str, u32) {
    let upper = text.to_ascii_uppercase();
    for unit in ["IB", "B", ""] {
        let Some(stem) = upper.strip_suffix(unit) else {
            continue;
        };
        let shift = match stem.chars().last() {
            Some('K') => 10,
            Some('M') => 20,
            Some('G') => 30,
            Some('T') => 40,
            _ => continue,
        };
        return (&text[..stem.len() - 1], shift);
    }
    (text, 0)
}

/// A decimal or `0x` hexadecimal number with optional `_` separators.
fn parse_number(text: &str) -> Result<u64, NumberError> {
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    let well_formed = digits.starts_with(|c: char| c.is_digit(radix))
        && !digits.ends_with('_')
        && digits.chars().all(|c| c == '_' || c.is_digit(radix));
    if !well_formed {
        return Err(NumberError::Malformed);
    }
    let digits: alloc::string::String = digits.chars().filter(|&c| c != '_').collect();
    u64::from_str_radix(&digits, radix).map_err(|_| NumberError::TooLarge)
}

/// Why [`parse_number`] failed; turned into a [`SizeError`] that quotes the whole text.
enum NumberError {
    Malformed,
    TooLarge,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers_are_bytes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0x1000"), Ok(0x1000));
        assert_eq!(parse_size("0x4000_0000"), Ok(0x4000_0000));
    }

    #[test]
    fn suffixes_are_binary_multiples() {
        assert_eq!(parse_size("128M"), Ok(128 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("1TB"), Ok(1 << 40));
        assert_eq!(parse_size("0x10M"), Ok(16 << 20));
    }

    #[test]
    fn hex_digits_b_and_f_are_not_suffixes() {
        assert_eq!(parse_size("0xb"), Ok(0xb));
        assert_eq!(parse_size("0x1b"), Ok(0x1b));
    }

    #[test]
    fn malformed_sizes_are_refused() {
        for text in ["M", "12Q", "-1", "0x", "1__", "_1", "1.5G", "ten"] {
            assert!(
                matches!(parse_size(text), Err(SizeError::Malformed { .. })),
                "{text}"
            );
        }
        assert_eq!(parse_size(" "), Err(SizeError::Empty));
    }

    #[test]
    fn overflowing_sizes_are_refused() {
        assert!(matches!(
            parse_size("16777216T"),
            Err(SizeError::TooLarge { .. })
        ));
        let too_wide = parse_size("0x1_0000_0000_0000_0000");
        assert!(matches!(too_wide, Err(SizeError::TooLarge { .. })));
    }
}
