//! The decoded form of an AArch32 load or store, shared by the A32 ([`super::a32`]) and T32
//! ([`super::t32`]) decoders, and the UNPREDICTABLE rules both instruction sets share.
//!
//! Every single-register and dual load/store of AArch32 computes its address the same way
//! (DDI 0487, e.g. `LDR (immediate)`): `offset_addr = if add then R[n] + offset else R[n] -
//! offset; address = if index then offset_addr else R[n]; ... if wback then R[n] =
//! offset_addr`. The decoders only differ in where the fields sit.

use super::{Direction, NotEmulated};

/// The PC (`R15`).
pub const PC: u8 = 15;

/// The instruction set an access was decoded from; it sets the value the PC reads as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstrSet {
    /// A32: the PC reads as the instruction's address + 8.
    A32,
    /// T32: the PC reads as the instruction's address + 4.
    T32,
}

impl InstrSet {
    /// How far ahead of the instruction the PC reads (`PC` in the pseudocode).
    #[must_use]
    pub const fn pc_offset(self) -> u32 {
        match self {
            Self::A32 => 8,
            Self::T32 => 4,
        }
    }
}

/// The shift applied to a register offset (`DecodeImmShift()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shift {
    /// Logical shift left.
    Lsl,
    /// Logical shift right (amount 1..=32).
    Lsr,
    /// Arithmetic shift right (amount 1..=32).
    Asr,
    /// Rotate right (amount 1..=31).
    Ror,
    /// Rotate right by one through `PSTATE.C`.
    Rrx,
}

/// The offset of an AArch32 load/store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offset32 {
    /// An unsigned immediate, already scaled; [`Aarch32Access::add`] gives its sign.
    Imm(u32),
    /// `Shift(R[m], shift_t, shift_n, PSTATE.C)`.
    Reg {
        /// The offset register, `R0`..`R14`.
        rm: u8,
        /// The shift type.
        shift: Shift,
        /// The shift amount (`shift_n`).
        amount: u8,
    },
}

/// The access-kind attribute of an AArch32 access (it does not change the emulation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ordering32 {
    /// A normal access.
    Plain,
    /// `LDRT`/`STRT` and friends: checked with PL0 permissions (already done by stage 1).
    Unprivileged,
    /// `LDA`/`LDAB`/`LDAH`: load-acquire.
    Acquire,
    /// `STL`/`STLB`/`STLH`: store-release.
    Release,
}

/// A decoded AArch32 load or store.
///
/// Conditional execution: the decoders do not evaluate the condition. A data abort is only
/// taken by an instruction that executed — the pseudocode of every load/store runs its
/// operation under `if ConditionPassed()`, and a failing instruction makes no access — and a
/// data abort's ISS carries no `CV`/`COND` field (those exist only for the trapped-instruction
/// classes, EC 0x01–0x0E). So an instruction that faulted had its condition pass; `cond` is
/// kept for diagnostics only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aarch32Access {
    /// Load or store.
    pub direction: Direction,
    /// Bytes per register: 1, 2 or 4 (4 for `LDRD`/`STRD`).
    pub size: u8,
    /// For loads: sign-extend to 32 bits (`LDRSB`, `LDRSH`).
    pub signed: bool,
    /// The transfer register, `R0`..`R15` (15 only for an A32 `STR` of the PC).
    pub rt: u8,
    /// The second register of `LDRD`/`STRD`, at address + 4.
    pub rt2: Option<u8>,
    /// The base register; 15 is the PC (`Align(PC, 4)` as the base).
    pub rn: u8,
    /// The offset.
    pub offset: Offset32,
    /// Add (`U` = 1) or subtract the offset.
    pub add: bool,
    /// Pre-indexed or offset (`P` = 1): the access uses the offset address.
    pub index: bool,
    /// Write the offset address back to `Rn`.
    pub wback: bool,
    /// Access-kind attribute.
    pub ordering: Ordering32,
    /// The instruction set the word came from.
    pub instr_set: InstrSet,
    /// The instruction's length in bytes: 4, or 2 for a 16-bit T32 instruction.
    pub length: u8,
    /// The A32 condition field (`0b1110`, always, for T32 and unconditional encodings).
    pub cond: u8,
}

/// The always condition `AL`.
pub const COND_AL: u8 = 0b1110;

impl Aarch32Access {
    /// The UNPREDICTABLE rules common to the single and dual loads and stores of both
    /// instruction sets (each instruction's pseudocode lists them in its decode):
    /// `if wback && (n == 15 || n == t || n == t2) then UNPREDICTABLE`, `if m == 15 then
    /// UNPREDICTABLE`, `LDRD`/`STRD`: `if t2 == 15 then UNPREDICTABLE`, `LDRD (register)`:
    /// `if m == t || m == t2 then UNPREDICTABLE`, and a load into the PC (`LDR PC`, a branch
    /// Moat does not emulate from a device).
    ///
    /// # Errors
    ///
    /// The reason the access is not emulated.
    pub(crate) fn checked(self) -> Result<Self, NotEmulated> {
        let (n, t) = (self.rn, self.rt);
        let t2 = self.rt2;
        if self.wback && (n == PC || n == t || t2 == Some(n)) {
            return Err(NotEmulated::Unpredictable);
        }
        let load = self.direction == Direction::Load;
        // LDRD (T32): "if t == t2 then UNPREDICTABLE" (A32 has t2 = t + 1).
        if t2 == Some(PC) || (load && t2 == Some(t)) {
            return Err(NotEmulated::Unpredictable);
        }
        if let Offset32::Reg { rm, .. } = self.offset {
            let dual_load = t2.is_some() && load;
            if rm == PC || (dual_load && (rm == t || t2 == Some(rm))) {
                return Err(NotEmulated::Unpredictable);
            }
        }
        if t == PC {
            // LDR (literal/immediate/register) with t == 15 is a branch (LoadWritePC); a store
            // of the PC is defined for A32 STR only ("PCStoreValue()").
            let store_pc_ok = self.direction == Direction::Store
                && self.instr_set == InstrSet::A32
                && self.size == 4
                && self.rt2.is_none();
            return match (self.direction, self.size) {
                _ if store_pc_ok => Ok(self),
                (Direction::Load, 4) if self.rt2.is_none() => Err(NotEmulated::LoadsPc),
                _ => Err(NotEmulated::Unpredictable),
            };
        }
        Ok(self)
    }
}

/// The reason for a coprocessor load/store (`LDC`/`STC` encodings) on coprocessor `coproc`
/// (bits `[11:8]`): coprocessors 8 to 11 are the SIMD&FP registers (`VLDR`/`VSTR`/`VLDM`/`VSTM`,
/// half-precision `VLDR.16` on 9), 14 is the debug `LDC`/`STC`; the rest have no load/store.
#[must_use]
pub const fn coprocessor_transfer(coproc: u32) -> NotEmulated {
    match coproc {
        8..=11 => NotEmulated::SimdFp,
        14 => NotEmulated::Coprocessor,
        _ => NotEmulated::Unallocated,
    }
}

/// `DecodeImmShift(type, imm5)`.
#[must_use]
pub const fn decode_imm_shift(shift_type: u32, imm5: u32) -> (Shift, u8) {
    // imm5 < 32, so every amount fits a u8.
    let amount = if imm5 == 0 { 32 } else { imm5 as u8 };
    match shift_type {
        0b00 => (Shift::Lsl, imm5 as u8),
        0b01 => (Shift::Lsr, amount),
        0b10 => (Shift::Asr, amount),
        _ if imm5 == 0 => (Shift::Rrx, 1),
        _ => (Shift::Ror, imm5 as u8),
    }
}

/// `Shift(value, shift_t, amount, carry_in)` of the pseudocode (result only).
#[must_use]
pub fn shift(value: u32, shift: Shift, amount: u8, carry: bool) -> u32 {
    let n = amount as u32;
    match shift {
        Shift::Lsl => value.checked_shl(n).unwrap_or(0),
        Shift::Lsr => value.checked_shr(n).unwrap_or(0),
        // Reinterpretation intended: an arithmetic shift; by 32 every bit is the sign.
        Shift::Asr => ((value as i32) >> if n > 31 { 31 } else { n }) as u32,
        Shift::Ror => value.rotate_right(n),
        Shift::Rrx => (value >> 1) | ((carry as u32) << 31),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_imm_shift_turns_zero_amounts_into_32_or_rrx() {
        assert_eq!(decode_imm_shift(0b00, 0), (Shift::Lsl, 0));
        assert_eq!(decode_imm_shift(0b01, 0), (Shift::Lsr, 32));
        assert_eq!(decode_imm_shift(0b10, 0), (Shift::Asr, 32));
        assert_eq!(decode_imm_shift(0b11, 0), (Shift::Rrx, 1));
        assert_eq!(decode_imm_shift(0b11, 4), (Shift::Ror, 4));
    }

    #[test]
    fn shifts_by_32_give_zero_or_the_sign() {
        assert_eq!(shift(0x8000_0000, Shift::Lsr, 32, false), 0);
        assert_eq!(shift(0x8000_0000, Shift::Asr, 32, false), u32::MAX);
        assert_eq!(shift(0x8000_0001, Shift::Rrx, 1, true), 0xC000_0000);
        assert_eq!(shift(0x0000_0011, Shift::Ror, 4, false), 0x1000_0001);
        assert_eq!(shift(3, Shift::Lsl, 2, false), 12);
    }
}
