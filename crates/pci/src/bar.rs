//! Base Address Registers (PCI 3.0, 6.2.5.1 "Address Maps"): what a BAR's low bits say about
//! the space it claims, and its size, found by writing all-ones and reading back which
//! address bits the function lets software set.
//!
//! A memory BAR: bit 0 `Memory Space Indicator` = 0, bits 2:1 `Type` (00: 32-bit, 10:
//! 64-bit, the next BAR holding the upper half; 01 and 11 reserved), bit 3 `Prefetchable`,
//! bits 31:4 the address. An I/O BAR: bit 0 = 1, bit 1 reserved, bits 31:2 the address. A BAR
//! the function does not implement reads 0 and keeps no bit written to it.

use crate::ConfigSpace;
use crate::header::{BAR_COUNT, BAR0, COMMAND, Command};
use crate::{Bdf, header::lane_shift};

/// The space a BAR claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    /// I/O space.
    Io,
    /// Memory below 4 GiB.
    Mem32 {
        /// `Prefetchable`: reads have no side effects, writes may be merged.
        prefetchable: bool,
    },
    /// Memory anywhere in the 64-bit space; this BAR and the next one hold the address.
    Mem64 {
        /// `Prefetchable`.
        prefetchable: bool,
    },
}

impl BarKind {
    /// The kind the low bits of a BAR's value give, or `None` for a reserved memory `Type`.
    #[must_use]
    pub const fn of(value: u32) -> Option<Self> {
        if value & 1 == 1 {
            return Some(Self::Io);
        }
        let prefetchable = value & 1 << 3 != 0;
        match value >> 1 & 0b11 {
            0b00 => Some(Self::Mem32 { prefetchable }),
            0b10 => Some(Self::Mem64 { prefetchable }),
            _ => None,
        }
    }

    /// The read-only low bits that say the kind: 2 for I/O, 4 for memory.
    #[must_use]
    pub const fn flag_bits(self) -> u32 {
        match self {
            Self::Io => 2,
            Self::Mem32 { .. } | Self::Mem64 { .. } => 4,
        }
    }

    /// The low bits of the BAR's value that encode this kind.
    #[must_use]
    pub const fn flags(self) -> u32 {
        match self {
            Self::Io => 1,
            Self::Mem32 { prefetchable } => (prefetchable as u32) << 3,
            Self::Mem64 { prefetchable } => 0b100 | (prefetchable as u32) << 3,
        }
    }

    /// Whether it takes two BARs.
    #[must_use]
    pub const fn is_64bit(self) -> bool {
        matches!(self, Self::Mem64 { .. })
    }

    /// Whether memory reads through it may be prefetched.
    #[must_use]
    pub const fn is_prefetchable(self) -> bool {
        matches!(
            self,
            Self::Mem32 { prefetchable: true } | Self::Mem64 { prefetchable: true }
        )
    }
}

/// An implemented BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// Its index, 0..6 (the lower of the pair for a 64-bit BAR).
    pub index: u8,
    /// The space it claims.
    pub kind: BarKind,
    /// The bus address it holds.
    pub address: u64,
    /// Its size in bytes: a power of two.
    pub size: u64,
}

/// The size a BAR of `kind` declares, given what it read back after all-ones were written
/// (`readback`: the upper half in bits 63:32 for a 64-bit BAR, all-ones there otherwise):
/// the lowest address bit software can set. `None` when no address bit stuck: the BAR is
/// not implemented.
#[must_use]
pub fn size_from_readback(kind: BarKind, readback: u64) -> Option<u64> {
    let mut bits = readback & !((1u64 << kind.flag_bits()) - 1);
    if !kind.is_64bit() {
        bits &= 0xffff_ffff;
    }
    (bits != 0).then(|| 1u64 << bits.trailing_zeros())
}

/// The function's BARs, sized by writing all-ones to each and restoring it, with I/O and
/// memory decode off in `Command` meanwhile (PCI 3.0, 6.2.5.1, implementation note "Sizing a
/// 32-bit Base Address Register": decode is disabled via the Command register before
/// sizing), and `Command` restored after. Indexed by BAR; the upper half of a 64-bit BAR and
/// the BARs not implemented are `None`.
pub fn probe(cfg: &mut impl ConfigSpace, bdf: Bdf) -> [Option<Bar>; BAR_COUNT] {
    let command_dword = cfg.read32(bdf, COMMAND & !3);
    let shift = lane_shift(COMMAND);
    let decode = u32::from(Command::IO_SPACE | Command::MEMORY_SPACE) << shift;
    // Only the Command half is written back with its decode bits cleared; the Status half is
    // written as zeros, which leaves its RW1C bits as they are.
    let command_only = command_dword & 0xffff << shift;
    cfg.write32(bdf, COMMAND & !3, command_only & !decode);
    let mut bars = [None; BAR_COUNT];
    let mut index = 0;
    while index < BAR_COUNT {
        let at = BAR0 + 4 * index as u16;
        let low = cfg.read32(bdf, at);
        let Some(kind) = BarKind::of(low) else {
            index += 1;
            continue;
        };
        let wide = kind.is_64bit() && index + 1 < BAR_COUNT;
        let high = if wide { cfg.read32(bdf, at + 4) } else { 0 };
        let readback_low = size_dword(cfg, bdf, at, low);
        let readback_high = if wide {
            size_dword(cfg, bdf, at + 4, high)
        } else {
            0xffff_ffff
        };
        let readback = u64::from(readback_high) << 32 | u64::from(readback_low);
        let address = (u64::from(high) << 32 | u64::from(low)) & !((1 << kind.flag_bits()) - 1);
        bars[index] = size_from_readback(kind, readback).map(|size| Bar {
            index: index as u8,
            kind,
            address,
            size,
        });
        index += if wide { 2 } else { 1 };
    }
    cfg.write32(bdf, COMMAND & !3, command_only);
    bars
}

/// Writes all-ones to the BAR DWORD at `at`, reads it back, and restores `original`.
fn size_dword(cfg: &mut impl ConfigSpace, bdf: Bdf, at: u16, original: u32) -> u32 {
    cfg.write32(bdf, at, 0xffff_ffff);
    let readback = cfg.read32(bdf, at);
    cfg.write32(bdf, at, original);
    readback
}

#[cfg(test)]
mod tests;
