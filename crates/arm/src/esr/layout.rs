//! The machinery behind the per-class ISS structs: each struct is declared once as a table of
//! (field, Arm name, lsb, width) rows, from which `decode`, `encode`, `DEFINED` and `Display`
//! are generated, so that the layout reads like the Arm ARM's field list and no function
//! repeats a shift.

use core::fmt;

/// A type that can sit in an ISS field: converts from and to the field's raw bits and prints
/// itself in the Arm ARM's terms.
pub(crate) trait IssField: Sized {
    /// The value of the field's raw (right-aligned, already masked) bits.
    fn from_raw(raw: u64) -> Self;
    /// The raw bits of the value.
    fn to_raw(self) -> u64;
    /// The value as printed after `NAME=`.
    fn fmt_value(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl IssField for bool {
    #[inline]
    fn from_raw(raw: u64) -> Self {
        raw != 0
    }
    #[inline]
    fn to_raw(self) -> u64 {
        u64::from(self)
    }
    fn fmt_value(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", u8::from(*self))
    }
}

impl IssField for u8 {
    #[inline]
    fn from_raw(raw: u64) -> Self {
        raw as u8
    }
    #[inline]
    fn to_raw(self) -> u64 {
        u64::from(self)
    }
    fn fmt_value(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl IssField for u16 {
    #[inline]
    fn from_raw(raw: u64) -> Self {
        raw as u16
    }
    #[inline]
    fn to_raw(self) -> u64 {
        u64::from(self)
    }
    fn fmt_value(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:#x}")
    }
}

impl IssField for u32 {
    #[inline]
    fn from_raw(raw: u64) -> Self {
        raw as u32
    }
    #[inline]
    fn to_raw(self) -> u64 {
        u64::from(self)
    }
    fn fmt_value(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:#x}")
    }
}

impl IssField for crate::fsc::Fsc {
    #[inline]
    fn from_raw(raw: u64) -> Self {
        Self::from_code(raw as u8)
    }
    #[inline]
    fn to_raw(self) -> u64 {
        u64::from(self.code())
    }
    fn fmt_value(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Declares a field enum whose variants cover every value of an `n`-bit field, with
/// `IssField` printing it as `0b..` followed by its name.
macro_rules! field_enum {
    (
        $(#[$doc:meta])* $name:ident, $bits:literal {
            $($(#[$vdoc:meta])* $variant:ident = $value:literal, $text:literal;)*
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// The short name of the value.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }

        impl $crate::esr::layout::IssField for $name {
            #[inline]
            fn from_raw(raw: u64) -> Self {
                match raw {
                    $($value => Self::$variant,)*
                    _ => unreachable!("field_enum covers every value of its field"),
                }
            }
            #[inline]
            fn to_raw(self) -> u64 {
                match self {
                    $(Self::$variant => $value,)*
                }
            }
            fn fmt_value(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                let width: usize = $bits + 2;
                write!(f, "{:#0width$b} ({})", self.to_raw(), self.name())
            }
        }
    };
}
pub(crate) use field_enum;

/// Declares an ISS struct from its layout table: one row per Arm ARM field, most significant
/// first, `name: Type = "ArmName" @ lsb, width;`.
macro_rules! iss_struct {
    (
        $(#[$doc:meta])* $name:ident {
            $($(#[$fdoc:meta])* $field:ident : $ty:ty = $arm:literal @ $lsb:literal, $width:literal;)*
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: $ty,)*
        }

        impl $name {
            /// The ISS bits this encoding defines; the others are RES0.
            pub const DEFINED: u32 =
                0 $(| $crate::field::Field::new($lsb, $width).mask() as u32)*;

            /// Decodes `ESR_ELx.ISS` (bits \[24:0\]); RES0 bits are ignored.
            #[must_use]
            #[inline]
            pub fn decode(iss: u32) -> Self {
                use $crate::esr::layout::IssField;
                let iss = u64::from(iss);
                Self {
                    $($field: <$ty>::from_raw($crate::field::Field::new($lsb, $width).get(iss)),)*
                }
            }

            /// Encodes the fields as `ESR_ELx.ISS` bits (RES0 bits zero).
            #[must_use]
            pub fn encode(self) -> u32 {
                use $crate::esr::layout::IssField;
                let mut iss = 0u64;
                $(iss = $crate::field::Field::new($lsb, $width).insert(iss, self.$field.to_raw());)*
                iss as u32
            }
        }

        /// Every field by its Arm ARM name, e.g. `ISV=1 SAS=0b10 (word) ...`.
        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                use $crate::esr::layout::IssField;
                let mut sep = "";
                $(
                    write!(f, concat!("{}", $arm, "="), sep)?;
                    self.$field.fmt_value(f)?;
                    sep = " ";
                )*
                let _ = sep;
                Ok(())
            }
        }
    };
}
pub(crate) use iss_struct;
