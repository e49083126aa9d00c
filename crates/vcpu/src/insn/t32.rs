//! T32 load/store decoding, 16-bit and 32-bit: `LDR`/`STR`/`LDRB`/`STRB`/`LDRH`/`STRH`/
//! `LDRSB`/`LDRSH` (immediate, register, literal, SP-relative, unprivileged `T` forms),
//! `LDRD`/`STRD` (immediate, literal) and `LDA`/`STL` (byte, halfword, word) become an
//! [`Aarch32Access`]; everything else a [`NotEmulated`] reason.
//!
//! Source: DDI 0487, the T32 encoding index ("16-bit": "Load/store word/byte (immediate)",
//! "(register offset)", "halfword", "SP-relative", "LDR (literal)"; "32-bit": "Load/store
//! single", "Load/store dual, exclusive, load-acquire/store-release, and table branch",
//! "Load/store multiple") and each instruction's decode pseudocode. The PC reads as the
//! instruction's address + 4, `Align(PC, 4)` as a literal base. An instruction inside an IT
//! block executed (its condition passed) if it took a data abort (see [`Aarch32Access`]).

use super::aarch32::{
    Aarch32Access, COND_AL, InstrSet, Offset32, Ordering32, PC, Shift, coprocessor_transfer,
};
use super::{Direction, NotEmulated, field, flag};
use moat_arm::field::Field;

/// Bits [15:11] of the first halfword that start a 32-bit instruction: 11101, 11110, 11111.
const HW1_PREFIX: Field = Field::new(11, 5);
const PREFIX_32BIT_MIN: u32 = 0b11101;

/// The stack pointer `R13`.
const SP: u8 = 13;

// 16-bit fields.
const T16_RT: Field = Field::new(0, 3);
const T16_RN: Field = Field::new(3, 3);
const T16_RM: Field = Field::new(6, 3);
const T16_IMM5: Field = Field::new(6, 5);
const T16_RT_HIGH: Field = Field::new(8, 3);
const T16_IMM8: Field = Field::new(0, 8);
const T16_OPB: Field = Field::new(9, 3);
const T16_B: Field = Field::bit(12);
const T16_L: Field = Field::bit(11);
const T16_OP4: Field = Field::new(12, 4);
const T16_OP5: Field = Field::new(11, 5);
const T16_OP3: Field = Field::new(13, 3);
/// Bits [10:9] of `1011 xxxx`: 10 is `PUSH`/`POP`.
const T16_MISC_PUSHPOP: Field = Field::new(9, 2);

// 32-bit fields: hw1 in bits [31:16], hw2 in bits [15:0] of the combined word.
const HW1_OP7: Field = Field::new(25, 7);
const HW1_S: Field = Field::bit(24);
const HW1_P: Field = Field::bit(24);
const HW1_A: Field = Field::bit(23);
const HW1_U: Field = Field::bit(23);
const HW1_SIZE: Field = Field::new(21, 2);
const HW1_BIT22: Field = Field::bit(22);
const HW1_W: Field = Field::bit(21);
const HW1_L: Field = Field::bit(20);
const HW1_RN: Field = Field::new(16, 4);
const HW1_COPROC: Field = Field::new(25, 3);
const HW1_COPROC_TOP: Field = Field::new(29, 3);
const HW1_MCRR: Field = Field::new(20, 5);
const HW2_RT: Field = Field::new(12, 4);
const HW2_RT2: Field = Field::new(8, 4);
const HW2_IMM12: Field = Field::new(0, 12);
const HW2_IMM8: Field = Field::new(0, 8);
const HW2_PUW: Field = Field::new(8, 3);
const HW2_IMM8_FORM: Field = Field::bit(11);
const HW2_REG_FORM_ZERO: Field = Field::new(6, 6);
const HW2_IMM2: Field = Field::new(4, 2);
const HW2_RM: Field = Field::new(0, 4);
const HW2_OP3: Field = Field::new(4, 4);
const HW2_COPROC: Field = Field::new(8, 4);

/// Whether `hw1` is the first halfword of a 32-bit T32 instruction (the caller then reads the
/// second halfword at address + 2).
#[must_use]
pub const fn is_32bit(hw1: u16) -> bool {
    field(hw1 as u32, HW1_PREFIX) >= PREFIX_32BIT_MIN
}

/// Decodes the T32 instruction starting with halfword `hw1`; `hw2` is its second halfword
/// when [`is_32bit`]`(hw1)`, and ignored otherwise.
///
/// # Errors
///
/// The [`NotEmulated`] reason for every instruction that is not an emulated load/store.
pub fn decode(hw1: u16, hw2: u16) -> Result<Aarch32Access, NotEmulated> {
    if is_32bit(hw1) {
        decode32((u32::from(hw1) << 16) | u32::from(hw2))
    } else {
        decode16(u32::from(hw1))
    }
    .and_then(Aarch32Access::checked)
}

/// The 16-bit loads and stores; none writes back and all add their offset.
fn decode16(insn: u32) -> Result<Aarch32Access, NotEmulated> {
    let (rt, rn) = (field(insn, T16_RT) as u8, field(insn, T16_RN) as u8);
    let imm5 = field(insn, T16_IMM5);
    let load = flag(insn, T16_L);
    match (
        field(insn, T16_OP5),
        field(insn, T16_OP4),
        field(insn, T16_OP3),
    ) {
        // LDR (literal) T1: `01001 Rt imm8`; imm32 = ZeroExtend(imm8:'00', 32).
        (0b01001, ..) => Ok(narrow(Direction::Load, 4, false, high_rt(insn), PC)
            .with_offset(Offset32::Imm(field(insn, T16_IMM8) << 2))),
        // Register offset: `0101 opB Rm Rn Rt`.
        (_, 0b0101, _) => {
            let (dir, size, signed) = match field(insn, T16_OPB) {
                0b000 => (Direction::Store, 4, false),
                0b001 => (Direction::Store, 2, false),
                0b010 => (Direction::Store, 1, false),
                0b011 => (Direction::Load, 1, true),
                0b100 => (Direction::Load, 4, false),
                0b101 => (Direction::Load, 2, false),
                0b110 => (Direction::Load, 1, false),
                _ => (Direction::Load, 2, true),
            };
            let rm = field(insn, T16_RM) as u8;
            Ok(narrow(dir, size, signed, rt, rn).with_offset(lsl(rm, 0)))
        }
        // Word/byte (immediate): `011 B L imm5 Rn Rt`; word offsets are imm5:'00'.
        (_, _, 0b011) => {
            let (size, imm) = if flag(insn, T16_B) {
                (1, imm5)
            } else {
                (4, imm5 << 2)
            };
            Ok(narrow(direction(load), size, false, rt, rn).with_offset(Offset32::Imm(imm)))
        }
        // Halfword (immediate): `1000 L imm5 Rn Rt`; imm32 = imm5:'0'.
        (_, 0b1000, _) => {
            Ok(narrow(direction(load), 2, false, rt, rn).with_offset(Offset32::Imm(imm5 << 1)))
        }
        // SP-relative: `1001 L Rt imm8`; imm32 = imm8:'00'.
        (_, 0b1001, _) => Ok(narrow(direction(load), 4, false, high_rt(insn), SP)
            .with_offset(Offset32::Imm(field(insn, T16_IMM8) << 2))),
        // PUSH/POP (`1011 x10x`) and LDM/STM (`1100`).
        (_, 0b1011, _) if field(insn, T16_MISC_PUSHPOP) == 0b10 => Err(NotEmulated::Multiple),
        (_, 0b1100, _) => Err(NotEmulated::Multiple),
        _ => Err(NotEmulated::NotLoadStore),
    }
}

/// The 32-bit instructions; `insn` is `hw1:hw2`.
fn decode32(insn: u32) -> Result<Aarch32Access, NotEmulated> {
    match field(insn, HW1_OP7) {
        0b111_1100 => single(insn),
        0b111_0100 if flag(insn, HW1_BIT22) => dual_or_exclusive(insn),
        0b111_0100 => Err(NotEmulated::Multiple), // LDM, STM, SRS, RFE
        _ if field(insn, HW1_COPROC_TOP) == 0b111 && field(insn, HW1_COPROC) == 0b110 => {
            Err(coprocessor(insn))
        }
        _ => Err(NotEmulated::NotLoadStore),
    }
}

/// `LDC`/`STC`/`VLDR`/`VSTR`/`VLDM`/`VSTM`: `111x 110x ...`; `111x 1100 010x` is
/// `MCRR`/`MRRC`.
fn coprocessor(insn: u32) -> NotEmulated {
    if field(insn, HW1_MCRR) & 0b11110 == 0b00100 {
        NotEmulated::NotLoadStore
    } else {
        coprocessor_transfer(field(insn, HW2_COPROC))
    }
}

/// "Load/store single": `1111 100 S A size L Rn | Rt ...` (`A` is `U` for the literal forms).
fn single(insn: u32) -> Result<Aarch32Access, NotEmulated> {
    let (signed, load) = (flag(insn, HW1_S), flag(insn, HW1_L));
    if signed && !load {
        return Err(NotEmulated::SimdFp); // `1111 1001 xxx0`: Advanced SIMD element/structure
    }
    // There is no signed word load: `1111 1001 x10x` is UNDEFINED, as is size 11.
    let size = match field(insn, HW1_SIZE) {
        0b00 => 1,
        0b01 => 2,
        0b10 if !signed => 4,
        _ => return Err(NotEmulated::Unallocated),
    };
    let (rt, rn) = (field(insn, HW2_RT) as u8, field(insn, HW1_RN) as u8);
    if rn == PC && !load {
        return Err(NotEmulated::Unallocated); // STR* with Rn == '1111': UNDEFINED
    }
    let wide = Aarch32Access {
        length: 4,
        ..narrow(direction(load), size, signed, rt, rn)
    };
    let access = if rn == PC || flag(insn, HW1_A) {
        // imm12 forms and the literal forms: LDR (literal) T2 has add = (U == '1').
        Aarch32Access {
            add: rn != PC || flag(insn, HW1_U),
            ..wide.with_offset(Offset32::Imm(field(insn, HW2_IMM12)))
        }
    } else if flag(insn, HW2_IMM8_FORM) {
        imm8_form(insn, wide)?
    } else if field(insn, HW2_REG_FORM_ZERO) == 0 {
        // LDR (register) T2: "if m IN {13,15} then UNPREDICTABLE"; LSL #imm2.
        let rm = field(insn, HW2_RM) as u8;
        if rm == SP {
            return Err(NotEmulated::Unpredictable);
        }
        wide.with_offset(lsl(rm, field(insn, HW2_IMM2) as u8))
    } else {
        return Err(NotEmulated::Unallocated);
    };
    if rt == PC && load && size < 4 {
        // PLD, PLDW, PLI and the unallocated memory hints; with writeback UNPREDICTABLE.
        return Err(if access.wback {
            NotEmulated::Unpredictable
        } else {
            NotEmulated::Prefetch
        });
    }
    Ok(access)
}

/// The imm8 forms of "load/store single": `Rt 1 P U W imm8`; `P U W` = 110 is the
/// unprivileged `T` form, `P` = 0 with `W` = 0 is UNDEFINED.
fn imm8_form(insn: u32, wide: Aarch32Access) -> Result<Aarch32Access, NotEmulated> {
    let puw = field(insn, HW2_PUW);
    let (index, add, wback) = (puw & 0b100 != 0, puw & 0b010 != 0, puw & 0b001 != 0);
    if !index && !wback {
        return Err(NotEmulated::Unallocated);
    }
    let ordering = if puw == 0b110 {
        Ordering32::Unprivileged
    } else {
        Ordering32::Plain
    };
    Ok(Aarch32Access {
        index,
        add,
        wback,
        ordering,
        ..wide.with_offset(Offset32::Imm(field(insn, HW2_IMM8)))
    })
}

/// `1110 100 P U 1 W L Rn | ...`: `LDRD`/`STRD` (immediate, literal) when `P` or `W` is set;
/// otherwise the exclusives, `TBB`/`TBH` and `LDA`/`STL`.
fn dual_or_exclusive(insn: u32) -> Result<Aarch32Access, NotEmulated> {
    let (index, wback) = (flag(insn, HW1_P), flag(insn, HW1_W));
    let load = flag(insn, HW1_L);
    let rn = field(insn, HW1_RN) as u8;
    if !index && !wback {
        return exclusive_class(insn);
    }
    // STRD (immediate) T1: "if n == 15 then UNPREDICTABLE"; imm32 = ZeroExtend(imm8:'00').
    if rn == PC && !load {
        return Err(NotEmulated::Unpredictable);
    }
    let base = narrow(direction(load), 4, false, field(insn, HW2_RT) as u8, rn);
    Ok(Aarch32Access {
        rt2: Some(field(insn, HW2_RT2) as u8),
        add: flag(insn, HW1_U),
        index,
        wback,
        length: 4,
        ..base.with_offset(Offset32::Imm(field(insn, HW2_IMM8) << 2))
    })
}

/// `1110 1000 x10x` with `op3` (hw2 bits [7:4]): `TBB`/`TBH` (000x), exclusives (01xx,
/// 11xx), `LDA`/`STL` byte/halfword/word (1000, 1001, 1010).
fn exclusive_class(insn: u32) -> Result<Aarch32Access, NotEmulated> {
    if !flag(insn, HW1_U) {
        return Err(NotEmulated::Exclusive); // LDREX, STREX
    }
    let load = flag(insn, HW1_L);
    let size = match field(insn, HW2_OP3) {
        0b0000 | 0b0001 if load => return Err(NotEmulated::LoadsPc), // TBB, TBH
        0b1000 => 1,
        0b1001 => 2,
        0b1010 => 4,
        0b0100 | 0b0101 | 0b0111 | 0b1100..=0b1111 => return Err(NotEmulated::Exclusive),
        _ => return Err(NotEmulated::Unallocated),
    };
    // LDA T1: "if t == 15 || n == 15 then UNPREDICTABLE".
    let (rt, rn) = (field(insn, HW2_RT) as u8, field(insn, HW1_RN) as u8);
    if rt == PC || rn == PC {
        return Err(NotEmulated::Unpredictable);
    }
    let ordering = if load {
        Ordering32::Acquire
    } else {
        Ordering32::Release
    };
    Ok(Aarch32Access {
        ordering,
        length: 4,
        ..narrow(direction(load), size, false, rt, rn).with_offset(Offset32::Imm(0))
    })
}

/// A 16-bit access `[Rn, #0]` (offset addressing, add, no writeback) to refine.
const fn narrow(direction: Direction, size: u8, signed: bool, rt: u8, rn: u8) -> Aarch32Access {
    Aarch32Access {
        direction,
        size,
        signed,
        rt,
        rt2: None,
        rn,
        offset: Offset32::Imm(0),
        add: true,
        index: true,
        wback: false,
        ordering: Ordering32::Plain,
        instr_set: InstrSet::T32,
        length: 2,
        cond: COND_AL,
    }
}

impl Aarch32Access {
    /// The same access with another offset.
    const fn with_offset(self, offset: Offset32) -> Self {
        Self { offset, ..self }
    }
}

/// `Rm, LSL #amount`.
const fn lsl(rm: u8, amount: u8) -> Offset32 {
    Offset32::Reg {
        rm,
        shift: Shift::Lsl,
        amount,
    }
}

/// The `Rt` of `01001 Rt imm8` and `1001 L Rt imm8` (bits [10:8]).
fn high_rt(insn: u32) -> u8 {
    field(insn, T16_RT_HIGH) as u8
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
