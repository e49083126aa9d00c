//! AArch64 load/store decoding: every load or store of general-purpose registers that can
//! address memory with a plain address becomes an [`A64Access`]; everything else in the
//! load/store space becomes a [`NotEmulated`] reason.
//!
//! Source: DDI 0487, "Loads and Stores" in the A64 encoding index, and the
//! instruction pages named below. Emulated: `LDR`/`STR` (immediate unsigned offset, unscaled
//! `LDUR`/`STUR`, pre-index, post-index, register offset, literal), all sizes and signed
//! variants, the unprivileged `LDTR`/`STTR` family, `LDP`/`STP`/`LDPSW`/`LDNP`/`STNP`, and the
//! ordered `LDAR`/`STLR`/`LDLAR`/`STLLR`/`LDAPR`/`LDAPUR`/`STLUR` (whose acquire/release
//! semantics only order the access; the access itself is the same).

mod access;

pub use access::{A64Access, Addressing, Extend, Offset, Ordering, Reg, RegWidth};

use super::{Direction, NotEmulated, field, flag, sign_extend};
use moat_arm::field::Field;

// Fields of the load/store encodings, named as in the Arm ARM's encoding diagrams.
const RT: Field = Field::new(0, 5);
const RN: Field = Field::new(5, 5);
const RT2: Field = Field::new(10, 5);
const RM: Field = Field::new(16, 5);
const SIZE: Field = Field::new(30, 2);
const OPC: Field = Field::new(22, 2);
const IMM12: Field = Field::new(10, 12);
const IMM9: Field = Field::new(12, 9);
const IMM7: Field = Field::new(15, 7);
const IMM19: Field = Field::new(5, 19);
const OPTION: Field = Field::new(13, 3);
const S: Field = Field::new(12, 1);
/// `op4` of the "load/store register" classes: unscaled, post, unprivileged, pre / offset kind.
const OP4: Field = Field::new(10, 2);
/// Bit 21, set in the register-offset, atomic and pointer-authentication classes.
const BIT21: Field = Field::bit(21);
/// Bits [29:24]: the class within "Loads and Stores" (bits 27 = 1 and 25 = 0 for the group).
const CLASS: Field = Field::new(24, 6);
const GROUP_OP1: Field = Field::bit(27);
const GROUP_OP1_ZERO: Field = Field::bit(25);
/// `V`: SIMD&FP registers.
const V: Field = Field::bit(26);
/// Pair encodings: the addressing mode in bits [24:23] and `L`.
const PAIR_MODE: Field = Field::new(23, 2);
const L: Field = Field::bit(22);
// Exclusive/ordered class: `o2`, `o1`, `o0`.
const O2: Field = Field::bit(23);
const O1: Field = Field::bit(21);
const O0: Field = Field::bit(15);
// Atomic class: `A`, `R`, `o3`, `opc`.
const ATOMIC_A: Field = Field::bit(23);
const ATOMIC_R: Field = Field::bit(22);
const O3: Field = Field::bit(15);
const ATOMIC_OPC: Field = Field::new(12, 3);

/// Register number 31.
const R31: u32 = 31;
/// The `size` value of 64-bit accesses.
const SIZE_X: u32 = 0b11;

/// Decodes `insn` as an AArch64 load or store of general-purpose registers.
///
/// # Errors
///
/// The [`NotEmulated`] reason for every other word: other load/store classes, UNPREDICTABLE
/// encodings, and words outside the load/store group.
pub fn decode(insn: u32) -> Result<A64Access, NotEmulated> {
    if !flag(insn, GROUP_OP1) || flag(insn, GROUP_OP1_ZERO) {
        return Err(NotEmulated::NotLoadStore);
    }
    match field(insn, CLASS) {
        0b00_1000 => exclusive_or_ordered(insn),
        0b01_1000 => literal(insn),
        0b01_1001 => rcpc_unscaled_or_tags(insn),
        0b01_1101 if is_memory_copy(insn) => Err(NotEmulated::MemoryCopy),
        0b10_1000 | 0b10_1001 => pair(insn),
        0b11_1000 => register_imm9_or_offset(insn),
        0b11_1001 => unsigned_offset(insn),
        _ if flag(insn, V) => Err(NotEmulated::SimdFp),
        _ => Err(NotEmulated::Unallocated),
    }
}

/// `CPY*`/`SET*` (FEAT_MOPS): class `011x01`, bit 21 = 0, `op4` = 01.
fn is_memory_copy(insn: u32) -> bool {
    !flag(insn, BIT21) && field(insn, OP4) == 0b01
}

/// "Load/store exclusive and ordered": `size 001000 o2 L o1 Rs o0 Rt2 Rn Rt`.
fn exclusive_or_ordered(insn: u32) -> Result<A64Access, NotEmulated> {
    let (o2, o1) = (flag(insn, O2), flag(insn, O1));
    let size = field(insn, SIZE);
    match (o2, o1) {
        // CASP (size 0x) is an atomic; LDXP/STXP/LDAXP/STLXP are exclusives.
        (false, true) if size & 0b10 == 0 => return Err(NotEmulated::Atomic),
        (false, _) => return Err(NotEmulated::Exclusive),
        // CAS, CASA, CASL, CASAL (all sizes).
        (true, true) => return Err(NotEmulated::Atomic),
        (true, false) => {}
    }
    // LDAR/STLR/LDLAR/STLLR: Rs and Rt2 are (1)(1)(1)(1)(1). Other values are CONSTRAINED
    // UNPREDICTABLE; the CPU took a data abort, so it executed the word as this access, and
    // Moat does the same (the field is treated as its should-be value).
    let load = flag(insn, L);
    let ordering = match (load, flag(insn, O0)) {
        (true, true) => Ordering::Acquire,
        (true, false) => Ordering::LoAcquire,
        (false, true) => Ordering::Release,
        (false, false) => Ordering::LoRelease,
    };
    // LDAR: address = X[n] (or SP); data = Mem[address, dbytes]; X[t, regsize] =
    // ZeroExtend(data, regsize), regsize = 64 only for size = 11.
    Ok(single(
        insn,
        direction(load),
        false,
        width_of(size),
        Addressing::Offset {
            base: Reg::base(field(insn, RN)),
            offset: Offset::Imm(0),
        },
        ordering,
    ))
}

/// "Load register (literal)": `opc 011 0 00 imm19 Rt`.
fn literal(insn: u32) -> Result<A64Access, NotEmulated> {
    // LDR (literal): offset = SignExtend(imm19:'00', 64); address = PC[] + offset.
    let offset = sign_extend(u64::from(field(insn, IMM19)), IMM19.width()) * 4;
    let addressing = Addressing::Literal { offset };
    let (size, signed, width) = match field(insn, SIZE) {
        0b00 => (4, false, RegWidth::W),
        0b01 => (8, false, RegWidth::X),
        0b10 => (4, true, RegWidth::X),         // LDRSW (literal)
        _ => return Err(NotEmulated::Prefetch), // PRFM (literal)
    };
    Ok(A64Access {
        direction: Direction::Load,
        size,
        signed,
        width,
        rt: Reg::data(field(insn, RT)),
        rt2: None,
        addressing,
        ordering: Ordering::Plain,
    })
}

/// Class `011001`: "LDAPR/STLR (unscaled immediate)" (FEAT_LRCPC2) when bit 21 = 0 and
/// `op4` = 00; memory tagging (`LDG`, `STG`, ...) when size = 11 and bit 21 = 1; `CPY*`.
fn rcpc_unscaled_or_tags(insn: u32) -> Result<A64Access, NotEmulated> {
    if flag(insn, BIT21) {
        return Err(if field(insn, SIZE) == SIZE_X {
            NotEmulated::MemoryTags
        } else {
            NotEmulated::Unallocated
        });
    }
    match field(insn, OP4) {
        0b00 => {}
        0b01 => return Err(NotEmulated::MemoryCopy),
        _ => return Err(NotEmulated::Unallocated),
    }
    let kind = size_opc_kind(insn, false)?;
    let ordering = match kind.0 {
        Direction::Load => Ordering::AcquirePc,
        Direction::Store => Ordering::Release,
    };
    // LDAPUR: offset = SignExtend(imm9, 64); address = X[n] + offset (no writeback).
    let addressing = Addressing::Offset {
        base: Reg::base(field(insn, RN)),
        offset: Offset::Imm(imm9(insn)),
    };
    Ok(single(insn, kind.0, kind.1, kind.2, addressing, ordering))
}

/// "Load/store register pair" (offset, pre-index, post-index) and "no-allocate pair":
/// `opc 101 0 mode L imm7 Rt2 Rn Rt`.
fn pair(insn: u32) -> Result<A64Access, NotEmulated> {
    let load = flag(insn, L);
    let mode = field(insn, PAIR_MODE);
    let no_allocate = mode == 0b00;
    // LDP: scale = 2 + UInt(opc<1>); LDPSW: scale = 2, signed.
    let (scale, signed, width) = match field(insn, SIZE) {
        0b00 => (2, false, RegWidth::W),
        0b10 => (3, false, RegWidth::X),
        0b01 if no_allocate => return Err(NotEmulated::Unallocated),
        0b01 if load => (2, true, RegWidth::X),
        0b01 => return Err(NotEmulated::MemoryTags), // STGP
        _ => return Err(NotEmulated::Unallocated),
    };
    let (t, t2, n) = (field(insn, RT), field(insn, RT2), field(insn, RN));
    let wback = matches!(mode, 0b01 | 0b11);
    // LDP: "if l && t == t2 then CONSTRAINED UNPREDICTABLE" (Unpredictable_LDPOVERLAP).
    if load && t == t2 {
        return Err(NotEmulated::Unpredictable);
    }
    // LDP/STP: "if wback && (t == n || t2 == n) && n != 31 then CONSTRAINED UNPREDICTABLE".
    if wback && (t == n || t2 == n) && n != R31 {
        return Err(NotEmulated::Unpredictable);
    }
    let imm = sign_extend(u64::from(field(insn, IMM7)), IMM7.width()) << scale;
    let base = Reg::base(n);
    let addressing = match mode {
        0b01 => Addressing::PostIndex { base, imm },
        0b11 => Addressing::PreIndex { base, imm },
        _ => Addressing::Offset {
            base,
            offset: Offset::Imm(imm),
        },
    };
    Ok(A64Access {
        direction: direction(load),
        size: 1 << scale,
        signed,
        width,
        rt: Reg::data(t),
        rt2: Some(Reg::data(t2)),
        addressing,
        ordering: if no_allocate {
            Ordering::NonTemporal
        } else {
            Ordering::Plain
        },
    })
}

/// Class `111000`: unscaled (`LDUR`), post-index, unprivileged (`LDTR`), pre-index (bit 21 =
/// 0); atomics and `LDAPR`, register offset, `LDRAA`/`LDRAB` (bit 21 = 1).
fn register_imm9_or_offset(insn: u32) -> Result<A64Access, NotEmulated> {
    let n = field(insn, RN);
    let base = Reg::base(n);
    if flag(insn, BIT21) {
        return match field(insn, OP4) {
            0b00 => atomic_class(insn),
            0b10 => register_offset(insn),
            _ if field(insn, SIZE) == SIZE_X => Err(NotEmulated::PointerAuth),
            _ => Err(NotEmulated::Unallocated),
        };
    }
    let imm = imm9(insn);
    let (addressing, ordering, prefetch_allowed) = match field(insn, OP4) {
        0b00 => (
            Addressing::Offset {
                base,
                offset: Offset::Imm(imm),
            },
            Ordering::Plain,
            true, // PRFUM
        ),
        0b01 => (Addressing::PostIndex { base, imm }, Ordering::Plain, false),
        0b10 => (
            Addressing::Offset {
                base,
                offset: Offset::Imm(imm),
            },
            Ordering::Unprivileged,
            false,
        ),
        _ => (Addressing::PreIndex { base, imm }, Ordering::Plain, false),
    };
    let (dir, signed, width) = size_opc_kind(insn, prefetch_allowed)?;
    let access = single(insn, dir, signed, width, addressing, ordering);
    check_single_writeback(&access, n)?;
    Ok(access)
}

/// "Load/store register (unsigned immediate)": `size 111 0 01 opc imm12 Rn Rt`.
fn unsigned_offset(insn: u32) -> Result<A64Access, NotEmulated> {
    let (dir, signed, width) = size_opc_kind(insn, true)?;
    // LDR (immediate, unsigned offset): offset = LSL(ZeroExtend(imm12, 64), scale).
    let offset = i64::from(field(insn, IMM12)) << field(insn, SIZE);
    let addressing = Addressing::Offset {
        base: Reg::base(field(insn, RN)),
        offset: Offset::Imm(offset),
    };
    Ok(single(
        insn,
        dir,
        signed,
        width,
        addressing,
        Ordering::Plain,
    ))
}

/// "Load/store register (register offset)": `size 111 0 00 opc 1 Rm option S 10 Rn Rt`.
fn register_offset(insn: u32) -> Result<A64Access, NotEmulated> {
    // "if option<1> == '0' then UNDEFINED"; extend_type = DecodeRegExtend(option).
    let extend = match field(insn, OPTION) {
        0b010 => Extend::Uxtw,
        0b011 => Extend::Uxtx,
        0b110 => Extend::Sxtw,
        0b111 => Extend::Sxtx,
        _ => return Err(NotEmulated::Unallocated),
    };
    let (dir, signed, width) = size_opc_kind(insn, true)?;
    // shift = if S == '1' then scale else 0.
    let shift = if flag(insn, S) {
        field(insn, SIZE) as u8
    } else {
        0
    };
    let addressing = Addressing::Offset {
        base: Reg::base(field(insn, RN)),
        offset: Offset::Reg {
            rm: Reg::data(field(insn, RM)),
            extend,
            shift,
        },
    };
    Ok(single(
        insn,
        dir,
        signed,
        width,
        addressing,
        Ordering::Plain,
    ))
}

/// "Atomic memory operations": `size 111 0 00 A R 1 Rs o3 opc 00 Rn Rt`, which also holds
/// `LDAPR` (FEAT_LRCPC) and the 64-byte accesses (FEAT_LS64).
fn atomic_class(insn: u32) -> Result<A64Access, NotEmulated> {
    let o3 = flag(insn, O3);
    let opc = field(insn, ATOMIC_OPC);
    let size = field(insn, SIZE);
    match (o3, opc) {
        (true, 0b100) if flag(insn, ATOMIC_A) && !flag(insn, ATOMIC_R) => {
            // LDAPR: Rs is (1)(1)(1)(1)(1), treated as such whatever it holds (see LDAR).
            let addressing = Addressing::Offset {
                base: Reg::base(field(insn, RN)),
                offset: Offset::Imm(0),
            };
            let width = width_of(size);
            Ok(single(
                insn,
                Direction::Load,
                false,
                width,
                addressing,
                Ordering::AcquirePc,
            ))
        }
        (true, 0b001 | 0b010 | 0b011 | 0b101) if size == SIZE_X => Err(NotEmulated::Atomic64Byte),
        (true, 0b100 | 0b110 | 0b111) => Err(NotEmulated::Unallocated),
        // LDADD, LDCLR, LDEOR, LDSET, LD{S,U}{MAX,MIN}, SWP, and FEAT_THE's RCW*.
        _ => Err(NotEmulated::Atomic),
    }
}

/// The direction, signedness and register width of "load/store register" encodings from
/// `size` and `opc` (the shared table of `LDR`/`STR`, `LDUR`, `LDTR`, `LDAPUR`):
/// opc 00 store, 01 zero-extending load, 10 sign-extending load to X (`PRFM` for size 11),
/// 11 sign-extending load to W (sizes 00 and 01 only).
fn size_opc_kind(
    insn: u32,
    prefetch_allowed: bool,
) -> Result<(Direction, bool, RegWidth), NotEmulated> {
    let size = field(insn, SIZE);
    match (field(insn, OPC), size) {
        (0b00, _) => Ok((Direction::Store, false, width_of(size))),
        (0b01, _) => Ok((Direction::Load, false, width_of(size))),
        (0b10, SIZE_X) if prefetch_allowed => Err(NotEmulated::Prefetch),
        (0b10, SIZE_X) => Err(NotEmulated::Unallocated),
        (0b10, _) => Ok((Direction::Load, true, RegWidth::X)),
        (_, 0b00 | 0b01) => Ok((Direction::Load, true, RegWidth::W)),
        _ => Err(NotEmulated::Unallocated),
    }
}

/// `LDR`/`STR` (immediate): "if wback && n == t && n != 31 then CONSTRAINED UNPREDICTABLE"
/// (`Unpredictable_WBOVERLAPLD`/`WBOVERLAPST`); Moat takes the abort rather than a choice.
fn check_single_writeback(access: &A64Access, n: u32) -> Result<(), NotEmulated> {
    let wback = matches!(
        access.addressing,
        Addressing::PreIndex { .. } | Addressing::PostIndex { .. }
    );
    if wback && n != R31 && access.rt == Reg::X(n as u8) {
        return Err(NotEmulated::Unpredictable);
    }
    Ok(())
}

/// A one-element access of size `1 << size` to register `Rt`.
fn single(
    insn: u32,
    direction: Direction,
    signed: bool,
    width: RegWidth,
    addressing: Addressing,
    ordering: Ordering,
) -> A64Access {
    A64Access {
        direction,
        size: 1 << field(insn, SIZE),
        signed,
        width,
        rt: Reg::data(field(insn, RT)),
        rt2: None,
        addressing,
        ordering,
    }
}

/// `SignExtend(imm9, 64)`.
fn imm9(insn: u32) -> i64 {
    sign_extend(u64::from(field(insn, IMM9)), IMM9.width())
}

/// `regsize = if size == '11' then 64 else 32` for zero-extending loads and stores.
const fn width_of(size: u32) -> RegWidth {
    if size == SIZE_X {
        RegWidth::X
    } else {
        RegWidth::W
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
