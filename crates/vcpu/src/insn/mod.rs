//! Decoding and emulation of the loads and stores that reach an emulated device without an
//! instruction syndrome (`ESR_EL2.ISV` = 0: load/store pair, writeback addressing, ...).
//!
//! SPEC §4: when a data abort in a device window has no valid syndrome, Moat reads the
//! instruction from guest memory, decodes it here and performs its element accesses on the
//! device, including the base register writeback. Whatever the word holds, the outcome is
//! either a completed access (the caller then advances the PC by [`Completed::length`]) or an
//! [`Abort`] (the caller injects a synchronous external abort) — never a panic or a skip.
//!
//! * [`a64`] decodes AArch64 instructions into an [`a64::A64Access`];
//! * [`a32`] and [`t32`] decode A32 and T32 instructions into an [`aarch32::Aarch32Access`];
//! * [`emulate`] performs a decoded access against the guest's registers ([`GuestRegs`],
//!   [`GuestRegs32`]) and the device ([`DevicePort`]);
//! * [`frame_regs`] backs the register traits with the EL2 trap frame.
//!
//! The caller fetches the instruction at the faulting PC (instruction fetches are always
//! little-endian; a T32 instruction is 32-bit when [`t32::is_32bit`] says so of its first
//! halfword) and passes the trap state; the decoders are total functions of the word.
//!
//! Encodings and semantics follow the Arm ARM (DDI 0487): the "Loads and Stores" encoding
//! index for AArch64, the A32/T32 "Load/store word and unsigned byte", "Extra load/store" and
//! "Load/store single" tables for AArch32, and each instruction's pseudocode, cited by name.

pub mod a32;
pub mod a64;
pub mod aarch32;
pub mod emulate;
pub mod frame_regs;
pub mod memop;
#[cfg(test)]
mod props;
pub mod t32;
#[cfg(test)]
mod testutil;

pub use emulate::{
    A64Context, Aarch32Context, Abort, BusError, Completed, DevicePort, GuestRegs, GuestRegs32,
    emulate_a32, emulate_a64, emulate_t32,
};
pub use frame_regs::{A64FrameRegs, Aarch32FrameRegs};

use moat_arm::field::Field;

/// Whether an access reads from or writes to memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// A load: memory → registers.
    Load,
    /// A store: registers → memory.
    Store,
}

/// Why an instruction is not emulated. Every class ends the same way for the guest — a
/// synchronous external abort, which is what a device bus that cannot serve the request gives —
/// but the reason is kept for diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotEmulated {
    /// A load/store exclusive (`LDXR`, `STXR`, `LDAXP`, `LDREX`, `STREXD`, ...): a device
    /// window has no exclusive monitor to honour.
    Exclusive,
    /// An atomic read-modify-write (`LDADD`, `CAS`, `CASP`, `SWP`, `RCW*`, A32 `SWP`): a device
    /// bus offers no atomic operations.
    Atomic,
    /// A single-copy atomic 64-byte access (`LD64B`, `ST64B`, `ST64BV`, `ST64BV0`): only an
    /// accelerator interface accepts it.
    Atomic64Byte,
    /// A load or store of SIMD&FP registers (`LDR Qt`, `LD1`, `LDP Dt`, `VLDR`, `VLDM`, ...).
    SimdFp,
    /// A prefetch or memory hint (`PRFM`, `PRFUM`, `PLD`, `PLDW`, `PLI`): it makes no data
    /// access, so it cannot have taken a data abort.
    Prefetch,
    /// A memory-tagging instruction (`LDG`, `STG`, `STGP`, `ST2G`, `STZG`, ...).
    MemoryTags,
    /// A load with pointer authentication (`LDRAA`, `LDRAB`).
    PointerAuth,
    /// A memory copy or set (`CPY*`, `SET*`).
    MemoryCopy,
    /// A load/store multiple (`LDM`, `STM`, `PUSH`, `POP`, `SRS`, `RFE`).
    Multiple,
    /// A load into the PC (`LDR PC`, `TBB`, `TBH`): a branch whose target comes from a device.
    LoadsPc,
    /// An UNPREDICTABLE or CONSTRAINED UNPREDICTABLE encoding (writeback into a transfer
    /// register, a load pair into one register, `PC` where it is not allowed, ...); Moat
    /// chooses the abort.
    Unpredictable,
    /// A coprocessor load/store other than SIMD&FP (`LDC`, `STC`).
    Coprocessor,
    /// An unallocated encoding within the load/store space, or one of an extension Moat does
    /// not know.
    Unallocated,
    /// Not a load or store at all: the word in memory is not the instruction that faulted
    /// (the guest rewrote it, or its translation changed).
    NotLoadStore,
}

/// The value of field `f` of instruction word `insn`, right-aligned.
pub(crate) const fn field(insn: u32, f: Field) -> u32 {
    // Lossless: a field of a 32-bit word has at most 32 bits.
    f.get(insn as u64) as u32
}

/// Whether one-bit field `f` of `insn` is set.
pub(crate) const fn flag(insn: u32, f: Field) -> bool {
    f.is_set(insn as u64)
}

/// `SignExtend(value<bits-1:0>, 64)`.
pub(crate) const fn sign_extend(value: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    // Reinterpretation intended: the arithmetic shift replicates bit `bits - 1`.
    ((value << shift) as i64) >> shift
}

/// A mask of the low `size` bytes.
pub(crate) const fn bytes_mask(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * size as u32)) - 1
    }
}

/// The low `size` bytes of `value`, in reversed byte order (`BigEndianReverse()`).
pub(crate) const fn reverse_bytes(value: u64, size: u8) -> u64 {
    let shift = 8 * (8 - size as u32);
    if shift >= 64 {
        0
    } else {
        (value << shift).swap_bytes() & bytes_mask(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_bytes_swaps_within_the_element_size_only() {
        assert_eq!(
            reverse_bytes(0x1122_3344_5566_7788, 8),
            0x8877_6655_4433_2211
        );
        assert_eq!(reverse_bytes(0xffff_ffff_1122_3344, 4), 0x4433_2211);
        assert_eq!(reverse_bytes(0xffff_1122, 2), 0x2211);
        assert_eq!(reverse_bytes(0xff_ff12, 1), 0x12);
    }

    #[test]
    fn sign_extend_replicates_the_top_bit_of_the_field() {
        assert_eq!(sign_extend(0x40, 7), -64);
        assert_eq!(sign_extend(0x3f, 7), 63);
        assert_eq!(sign_extend(0x1ff, 9), -1);
    }
}
