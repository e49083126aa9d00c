//! A32 load/store decoding: `LDR`/`STR`/`LDRB`/`STRB` (immediate, register, literal and their
//! unprivileged `T` forms), the "extra load/store" instructions `LDRH`/`STRH`/`LDRSB`/`LDRSH`/
//! `LDRD`/`STRD`, and `LDA`/`STL` (byte, halfword, word) become an [`Aarch32Access`];
//! everything else a [`NotEmulated`] reason.
//!
//! Source: DDI 0487, the A32 encoding index ("Load/Store Word, Unsigned Byte (immediate,
//! literal)", "(register)", "Extra load/store", "Load/Store Exclusive and Load-Acquire/
//! Store-Release", "Load/Store Multiple") and each instruction's decode pseudocode. The
//! condition field is not evaluated (see [`Aarch32Access`]).

use super::aarch32::{
    Aarch32Access, InstrSet, Offset32, Ordering32, PC, Shift, coprocessor_transfer,
    decode_imm_shift,
};
use super::{Direction, NotEmulated, field, flag};
use moat_arm::field::Field;

const COND: Field = Field::new(28, 4);
/// Bits [27:25]: the top-level class.
const OP0: Field = Field::new(25, 3);
const P: Field = Field::bit(24);
const U: Field = Field::bit(23);
/// `B` (byte) of word/byte loads; `I` (immediate) of the extra loads/stores.
const B_OR_I: Field = Field::bit(22);
const W: Field = Field::bit(21);
const L: Field = Field::bit(20);
const RN: Field = Field::new(16, 4);
const RT: Field = Field::new(12, 4);
const RM: Field = Field::new(0, 4);
const IMM12: Field = Field::new(0, 12);
const IMM5: Field = Field::new(7, 5);
const SHIFT_TYPE: Field = Field::new(5, 2);
const IMM4H: Field = Field::new(8, 4);
const IMM4L: Field = Field::new(0, 4);
const BIT4: Field = Field::bit(4);
const BIT7: Field = Field::bit(7);
/// `op2` of the extra load/store encodings (bits [6:5]).
const OP2: Field = Field::new(5, 2);
/// Bits [24:20] of the synchronization primitives: `SWP` is `10x00`.
const SYNC_OP: Field = Field::new(20, 5);
/// Bits [24:23] = 11: load/store exclusive and load-acquire/store-release.
const EXCL_CLASS: Field = Field::new(23, 2);
/// Bits [22:21]: the size of an exclusive/acquire-release access.
const EXCL_SIZE: Field = Field::new(21, 2);
/// Bits [9:8]: 00 `LDA`/`STL`, 10 `LDAEX`/`STLEX`, 11 `LDREX`/`STREX`.
const EXCL_KIND: Field = Field::new(8, 2);
/// Bits [24:21] of coprocessor encodings: 0010 is `MCRR`/`MRRC`.
const COPROC_OP: Field = Field::new(21, 4);
/// Bits [11:8] of coprocessor encodings: the coprocessor number.
const COPROC: Field = Field::new(8, 4);
/// Bits [27:26], bits [21:20] of the unconditional memory hints (`PLD`, `PLDW`, `PLI`).
const UNCOND_OP: Field = Field::new(26, 2);
const HINT_BITS: Field = Field::new(20, 2);
/// Bits [27:24] = 0100 with bit 20 = 0: Advanced SIMD element or structure load/store.
const UNCOND_SIMD: Field = Field::new(24, 4);

const COND_NEVER: u32 = 0b1111;

/// Decodes the A32 instruction `insn`.
///
/// # Errors
///
/// The [`NotEmulated`] reason for every word that is not an emulated load/store.
pub fn decode(insn: u32) -> Result<Aarch32Access, NotEmulated> {
    let cond = field(insn, COND);
    if cond == COND_NEVER {
        return Err(unconditional(insn));
    }
    match field(insn, OP0) {
        0b000 if flag(insn, BIT7) && flag(insn, BIT4) => sync_or_extra(insn),
        0b010 => word_byte(insn, immediate_offset(insn)),
        0b011 if !flag(insn, BIT4) => word_byte(insn, register_offset(insn)),
        0b100 => Err(NotEmulated::Multiple),
        0b110 => Err(coprocessor(insn)),
        _ => Err(NotEmulated::NotLoadStore),
    }
    .and_then(Aarch32Access::checked)
}

/// The unconditional space (`cond` = 1111): memory hints, SIMD structure loads, `SRS`/`RFE`
/// and `LDC2`/`STC2`; none is emulated.
fn unconditional(insn: u32) -> NotEmulated {
    if field(insn, UNCOND_SIMD) == 0b0100 && !flag(insn, L) {
        return NotEmulated::SimdFp;
    }
    match field(insn, OP0) {
        0b010 | 0b011 if field(insn, UNCOND_OP) == 0b01 && field(insn, HINT_BITS) == 0b01 => {
            NotEmulated::Prefetch
        }
        0b100 => NotEmulated::Multiple,
        0b110 => coprocessor(insn),
        _ => NotEmulated::NotLoadStore,
    }
}

/// `LDC`/`STC` (and `VLDR`/`VSTR`/`VLDM`/`VSTM` on coprocessors 10 and 11).
fn coprocessor(insn: u32) -> NotEmulated {
    if field(insn, COPROC_OP) == 0b0010 {
        NotEmulated::NotLoadStore // MCRR, MRRC, VMOV between two core registers
    } else {
        coprocessor_transfer(field(insn, COPROC))
    }
}

/// `LDR (immediate)`/`LDR (literal)`: `imm32 = ZeroExtend(imm12, 32)`.
fn immediate_offset(insn: u32) -> Offset32 {
    Offset32::Imm(field(insn, IMM12))
}

/// `LDR (register)`: `(shift_t, shift_n) = DecodeImmShift(type, imm5)`.
fn register_offset(insn: u32) -> Offset32 {
    let (shift, amount) = decode_imm_shift(field(insn, SHIFT_TYPE), field(insn, IMM5));
    Offset32::Reg {
        rm: field(insn, RM) as u8,
        shift,
        amount,
    }
}

/// "Load/Store Word, Unsigned Byte": `cond 01 I P U B W L Rn Rt ...`. `P` = 0 and `W` = 1 are
/// the unprivileged `LDRT`/`STRT`/`LDRBT`/`STRBT` (post-indexed).
fn word_byte(insn: u32, offset: Offset32) -> Result<Aarch32Access, NotEmulated> {
    let (index, w) = (flag(insn, P), flag(insn, W));
    Ok(access(
        insn,
        direction(flag(insn, L)),
        if flag(insn, B_OR_I) { 1 } else { 4 },
        false,
        offset,
        if !index && w {
            Ordering32::Unprivileged
        } else {
            Ordering32::Plain
        },
    ))
}

/// Bits [27:25] = 000 with bits 7 and 4 set: the synchronization primitives (`op2` = 00) or
/// the extra loads/stores.
fn sync_or_extra(insn: u32) -> Result<Aarch32Access, NotEmulated> {
    if field(insn, OP2) != 0b00 {
        return extra(insn);
    }
    if field(insn, SYNC_OP) & 0b11011 == 0b10000 {
        return Err(NotEmulated::Atomic); // SWP, SWPB
    }
    if field(insn, EXCL_CLASS) != 0b11 {
        return Err(NotEmulated::NotLoadStore); // multiplies
    }
    match field(insn, EXCL_KIND) {
        0b00 => acquire_release(insn),
        0b01 => Err(NotEmulated::Unallocated),
        _ => Err(NotEmulated::Exclusive),
    }
}

/// `LDA`/`LDAB`/`LDAH` (`cond 00011 sz 1 Rn Rt 11 00 1001 1111`) and `STL`/`STLB`/`STLH`
/// (`cond 00011 sz 0 Rn 1111 11 00 1001 Rt`): `address = R[n]`, no offset.
/// "if t == 15 || n == 15 then UNPREDICTABLE".
fn acquire_release(insn: u32) -> Result<Aarch32Access, NotEmulated> {
    let size = match field(insn, EXCL_SIZE) {
        0b00 => 4,
        0b10 => 1,
        0b11 => 2,
        _ => return Err(NotEmulated::Unallocated),
    };
    let load = flag(insn, L);
    let (rt, ordering) = if load {
        (field(insn, RT), Ordering32::Acquire)
    } else {
        (field(insn, RM), Ordering32::Release)
    };
    if rt == u32::from(PC) || field(insn, RN) == u32::from(PC) {
        return Err(NotEmulated::Unpredictable);
    }
    Ok(Aarch32Access {
        rt: rt as u8,
        index: true,
        wback: false,
        add: true,
        ..access(
            insn,
            direction(load),
            size,
            false,
            Offset32::Imm(0),
            ordering,
        )
    })
}

/// "Extra load/store": `cond 000 P U I W L Rn Rt imm4H 1 op2 1 imm4L/Rm` — `STRH`/`LDRH`
/// (`op2` 01), `LDRD`/`LDRSB` (10), `STRD`/`LDRSH` (11); `P` = 0 and `W` = 1 are the
/// unprivileged `T` forms (UNPREDICTABLE for the dual forms).
fn extra(insn: u32) -> Result<Aarch32Access, NotEmulated> {
    let offset = if flag(insn, B_OR_I) {
        // imm32 = ZeroExtend(imm4H:imm4L, 32)
        Offset32::Imm((field(insn, IMM4H) << IMM4L.width()) | field(insn, IMM4L))
    } else {
        // The register form's bits [11:8] are (0)(0)(0)(0): other values are CONSTRAINED
        // UNPREDICTABLE, and the CPU, which took a data abort, executed the access; so does
        // Moat (the same rule for every should-be field in this module).
        Offset32::Reg {
            rm: field(insn, RM) as u8,
            shift: Shift::Lsl,
            amount: 0,
        }
    };
    let unprivileged = !flag(insn, P) && flag(insn, W);
    let ordering = if unprivileged {
        Ordering32::Unprivileged
    } else {
        Ordering32::Plain
    };
    let (dir, size, signed, dual) = match (flag(insn, L), field(insn, OP2)) {
        (false, 0b01) => (Direction::Store, 2, false, false),
        (true, 0b01) => (Direction::Load, 2, false, false),
        (true, 0b10) => (Direction::Load, 1, true, false),
        (true, _) => (Direction::Load, 2, true, false),
        (false, 0b10) => (Direction::Load, 4, false, true),
        (false, _) => (Direction::Store, 4, false, true),
    };
    let single = access(insn, dir, size, signed, offset, ordering);
    if !dual {
        return Ok(single);
    }
    // LDRD/STRD: "if Rt<0> == '1' then UNPREDICTABLE; t2 = t + 1; if P == '0' && W == '1'
    // then UNPREDICTABLE".
    if single.rt % 2 == 1 || unprivileged {
        return Err(NotEmulated::Unpredictable);
    }
    Ok(Aarch32Access {
        rt2: Some(single.rt + 1),
        ..single
    })
}

/// An A32 single-register access with the `P`/`U`/`W` addressing of `insn`:
/// `index = (P == '1'); add = (U == '1'); wback = (P == '0') || (W == '1')`.
fn access(
    insn: u32,
    direction: Direction,
    size: u8,
    signed: bool,
    offset: Offset32,
    ordering: Ordering32,
) -> Aarch32Access {
    let index = flag(insn, P);
    Aarch32Access {
        direction,
        size,
        signed,
        rt: field(insn, RT) as u8,
        rt2: None,
        rn: field(insn, RN) as u8,
        offset,
        add: flag(insn, U),
        index,
        wback: !index || flag(insn, W),
        ordering,
        instr_set: InstrSet::A32,
        length: 4,
        cond: field(insn, COND) as u8,
    }
}

const fn direction(load: bool) -> Direction {
    if load {
        Direction::Load
    } else {
        Direction::Store
    }
}

#[cfg(test)]
mod tests;
