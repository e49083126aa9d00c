//! What memory operation the instruction at a faulting PC performs, as the abort decision needs
//! it: whether it is an address translation (`AT`), cache maintenance by VA, `DC ZVA`, or a load
//! or store — and then the alignment rules its accesses follow.
//!
//! Why decode: `ESR_EL2` does not say enough. QEMU reports the stage-2 fault of `DC CVAP` and
//! `DC CVADP` with `CM` = 0 and `WnR` = 0, like a load (SPEC §2), and a data abort without an
//! instruction syndrome (`ISV` = 0: pairs, exclusives, atomics, SIMD&FP) carries no access size,
//! which the alignment rules need (`AArch64.UnalignedAccessFaults()`,
//! `AArch64.S1HasAlignmentFault()`; for AArch32 the Arm ARM's table of alignment requirements of
//! load/store instructions: `MemA[]` accesses always word- or size-aligned, `MemU[]` ones not).
//!
//! Encodings: the A64 "Loads and Stores" and "System instructions" encoding index (`SYS`:
//! `1101 0101 0000 1 op1 CRn CRm op2 Rt`), the A32/T32 load/store tables and `MCR p15`
//! (`cond 1110 opc1 0 CRn Rt 1111 opc2 1 CRm`).

use super::aarch32::{Aarch32Access, Ordering32};
use super::{NotEmulated, a32, field, t32};
use moat_arm::field::Field;

/// The instruction at the faulting PC, in the guest's instruction set. Instruction fetches are
/// little-endian whatever the data endianness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instruction {
    /// An A64 instruction.
    A64(u32),
    /// An A32 instruction.
    A32(u32),
    /// A T32 instruction: its first halfword, and the second for a 32-bit one (else 0).
    T32(u16, u16),
}

/// Which accesses of a load or store must be aligned, and to what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlignRule {
    /// Bytes of each single access: on Device memory an access not aligned to its size takes
    /// an Alignment fault (`AArch64.S1HasAlignmentFault()`). A pair, `LDM` or `LDRD` is checked
    /// per register.
    pub element: u8,
    /// What the access needs whatever the memory type (`AArch64.UnalignedAccessFaults()`,
    /// AArch32 `MemA[]`), before translation.
    pub always: Always,
}

/// The memory-type-independent alignment requirement of an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Always {
    /// None beyond `SCTLR.A` (`MemU[]`, plain loads and stores).
    Nothing,
    /// Exclusives and atomics: aligned to `bytes`; with FEAT_LSE2, only within a 16-byte
    /// quantity (`accdesc.exclusive || accdesc.atomicop`).
    Atomic {
        /// The size of the whole access (both registers of a pair).
        bytes: u8,
    },
    /// Load-acquire/store-release: aligned to `bytes`; with FEAT_LSE2, only within a 16-byte
    /// quantity, and not even that with `SCTLR_ELx.nAA` = 1 (`accdesc.acqsc`, `acqpc`, `relsc`).
    Ordered {
        /// The size of the access.
        bytes: u8,
    },
    /// Aligned to `bytes` in every case: `LD64B`/`ST64B` (`accdesc.ls64`), AArch32 `MemA[]`.
    Aligned {
        /// The alignment.
        bytes: u8,
    },
}

/// The memory operation of an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemOp {
    /// A load, store or atomic, with its alignment rule.
    Access(AlignRule),
    /// `DC ZVA` (`AccessType_DCZero`): an Alignment fault on any Device memory.
    ZeroBlock,
    /// Cache maintenance by VA that is not `DC ZVA`: `DC IVAC`, `CVAC`, `CVAU`, `CVAP`,
    /// `CVADP`, `CIVAC` (and their tag variants), `IC IVAU`; AArch32 `MCR p15` c7 by MVA.
    CacheMaintenance,
    /// An address translation instruction (`AT`, AArch32 `ATS1*`/`ATS12*`).
    AddressTranslation,
    /// Something else, or an encoding Moat does not classify: no rule applies.
    Unknown,
}

const fn plain(element: u8) -> MemOp {
    MemOp::Access(AlignRule {
        element,
        always: Always::Nothing,
    })
}

const fn with(element: u8, always: Always) -> MemOp {
    MemOp::Access(AlignRule { element, always })
}

/// Classifies `insn`.
#[must_use]
pub fn classify(insn: Instruction) -> MemOp {
    match insn {
        Instruction::A64(word) => a64(word),
        Instruction::A32(word) => a32_word(word),
        Instruction::T32(hw1, hw2) => t32_pair(hw1, hw2),
    }
}

// A64 fields, named as in the encoding diagrams.
const SIZE: Field = Field::new(30, 2);
const V: Field = Field::bit(26);
const OPC: Field = Field::new(22, 2);
const SYS_OP1: Field = Field::new(16, 3);
const SYS_CRN: Field = Field::new(12, 4);
const SYS_CRM: Field = Field::new(8, 4);
const SYS_OP2: Field = Field::new(5, 3);

/// `SYS #op1, C7, CRm, #op2, Xt` and the load/store group.
fn a64(word: u32) -> MemOp {
    const SYS_MASK: u32 = 0xFFF8_0000;
    const SYS: u32 = 0xD508_0000;
    if word & SYS_MASK == SYS {
        return a64_system(word);
    }
    // Loads and stores: op0 bit 27 = 1, bit 25 = 0.
    if word & (1 << 27) == 0 || word & (1 << 25) != 0 {
        return MemOp::Unknown;
    }
    let size = 1u8 << field(word, SIZE);
    match field(word, Field::new(27, 3)) {
        0b001 if word & (1 << 24) == 0 && field(word, V) == 0 => a64_exclusive_ordered(word, size),
        0b001 if field(word, V) == 1 => a64_simd_structure(word),
        0b011 if word & (1 << 24) == 0 => a64_literal(word),
        // LDAPUR/STLUR (RCpc, unscaled): an ordered access of `size` bytes.
        0b011 if word & (1 << 21) == 0 && field(word, Field::new(10, 2)) == 0 => {
            with(size, Always::Ordered { bytes: size })
        }
        0b101 => a64_pair(word),
        0b111 => a64_register(word, size),
        _ => MemOp::Unknown,
    }
}

/// `DC`, `IC` and `AT` by VA: `SYS` with `CRn` = 7.
fn a64_system(word: u32) -> MemOp {
    if field(word, SYS_CRN) != 7 {
        return MemOp::Unknown;
    }
    let (op1, crm, op2) = (
        field(word, SYS_OP1),
        field(word, SYS_CRM),
        field(word, SYS_OP2),
    );
    match (op1, crm, op2) {
        // AT S1E1R/W, S1E0R/W (op1 0, CRm 8), S1E1RP/WP (CRm 9), and the EL2/EL3 forms.
        (_, 8 | 9, _) => MemOp::AddressTranslation,
        // DC ZVA.
        (3, 4, 1) => MemOp::ZeroBlock,
        // DC IVAC, IGVAC, IGDVAC.
        (0, 6, 1 | 3 | 5) => MemOp::CacheMaintenance,
        // IC IVAU; DC CVAC, CVAU, CVAP, CVADP, CIVAC and their tag forms.
        (3, 5, 1) | (3, 10..=14, 1 | 3 | 5) => MemOp::CacheMaintenance,
        _ => MemOp::Unknown,
    }
}

/// "Load/store exclusive and ordered": `size 001000 o2 L o1 Rs o0 Rt2 Rn Rt`.
fn a64_exclusive_ordered(word: u32, size: u8) -> MemOp {
    let (o2, o1) = (word & (1 << 23) != 0, word & (1 << 21) != 0);
    let pair = size >= 4;
    match (o2, o1) {
        // CASP, CASPA, CASPL, CASPAL (size 0x): an atomic of two registers of 4 << sz bytes.
        (false, true) if !pair => {
            let reg = 4u8 << (field(word, SIZE) & 1);
            with(reg, Always::Atomic { bytes: 2 * reg })
        }
        // LDXP, STXP, LDAXP, STLXP: one single-copy atomic access of both registers.
        (false, true) => with(size, Always::Atomic { bytes: 2 * size }),
        // LDXR, STXR, LDAXR, STLXR.
        (false, false) => with(size, Always::Atomic { bytes: size }),
        // LDAR, STLR, LDLAR, STLLR.
        (true, false) => with(size, Always::Ordered { bytes: size }),
        // CAS, CASA, CASL, CASAL.
        (true, true) => with(size, Always::Atomic { bytes: size }),
    }
}

/// `LDR (literal)`: GPR `opc` 00 → 4, 01 → 8, 10 (`LDRSW`) → 4, 11 `PRFM` (no access);
/// SIMD&FP 00 → 4, 01 → 8, 10 → 16.
fn a64_literal(word: u32) -> MemOp {
    match (field(word, V), field(word, SIZE)) {
        (0, 0b00 | 0b10) | (1, 0b00) => plain(4),
        (_, 0b01) => plain(8),
        (1, 0b10) => plain(16),
        _ => MemOp::Unknown,
    }
}

/// Pairs (`LDP`, `STP`, `LDNP`, `LDPSW`; SIMD&FP): each register checked on its own.
fn a64_pair(word: u32) -> MemOp {
    let opc = field(word, SIZE);
    match (field(word, V), opc) {
        (0, 0b00) => plain(4),
        // LDPSW (L = 1); with L = 0 it is STGP, of the hidden MTE.
        (0, 0b01) if word & (1 << 22) != 0 => plain(4),
        (0, 0b10) => plain(8),
        (1, 0b00..=0b10) => plain(4 << opc),
        _ => MemOp::Unknown,
    }
}

/// Loads and stores of one register (immediate, register offset, unprivileged) and the
/// atomic memory operations.
fn a64_register(word: u32, size: u8) -> MemOp {
    let simd = field(word, V) == 1;
    let unsigned_offset = word & (1 << 24) != 0;
    let bit21 = word & (1 << 21) != 0;
    let op4 = field(word, Field::new(10, 2));
    if !unsigned_offset && bit21 && op4 == 0b00 && !simd {
        return a64_atomic(word, size);
    }
    if !unsigned_offset && bit21 && op4 & 1 == 1 {
        // LDRAA, LDRAB: 8 bytes.
        return plain(8);
    }
    let opc = field(word, OPC);
    match (simd, opc) {
        // PRFM, PRFUM: no access.
        (false, 0b10) if size == 8 => MemOp::Unknown,
        // A SIMD&FP register of 16 bytes: size 00 with opc 1x.
        (true, 0b10 | 0b11) if size == 1 => plain(16),
        _ => plain(size),
    }
}

/// Atomic memory operations: `size 111000 A R 1 Rs o3 opc 00 Rn Rt`.
fn a64_atomic(word: u32, size: u8) -> MemOp {
    let o3 = word & (1 << 15) != 0;
    let opc = field(word, Field::new(12, 3));
    match (o3, opc) {
        // LDAPR (RCpc): an ordered load.
        (true, 0b100) => with(size, Always::Ordered { bytes: size }),
        // LD64B, ST64B, ST64BV, ST64BV0: 64 bytes, always aligned.
        (true, 0b001 | 0b010 | 0b011 | 0b101) if size == 8 => {
            with(8, Always::Aligned { bytes: 64 })
        }
        // LDADD ... SWP.
        (false, _) | (true, 0b000) => with(size, Always::Atomic { bytes: size }),
        _ => MemOp::Unknown,
    }
}

/// Advanced SIMD load/store multiple (`0 Q 0011000 L ...`, bit 24 = 0) and single structures
/// (bit 24 = 1): the elements, each of its own size.
fn a64_simd_structure(word: u32) -> MemOp {
    let size = field(word, Field::new(10, 2));
    if word & (1 << 24) == 0 {
        return plain(1 << size);
    }
    // Single structure: opcode<2:1> is the scale; 3 is the replicating form (size gives it).
    match field(word, Field::new(14, 2)) {
        0 => plain(1),
        1 => plain(2),
        2 if size & 1 == 0 => plain(4),
        2 => plain(8),
        _ => plain(1 << size),
    }
}

/// A32: `MCR p15` cache maintenance and `ATS*`, then the load/store decoder.
fn a32_word(word: u32) -> MemOp {
    // MCR p15, 0, Rt, c7, CRm, opc2: `cond 1110 000 0 0111 Rt 1111 opc2 1 CRm`.
    const MCR_C7_MASK: u32 = 0x0FFF_0F10;
    const MCR_C7: u32 = 0x0E07_0F10;
    if word & MCR_C7_MASK == MCR_C7 {
        return cp15_c7(word & 0xF, (word >> 5) & 0b111);
    }
    // Advanced SIMD element or structure load/store: `1111 0100 x D L 0`.
    if word & 0xFF10_0000 == 0xF400_0000 {
        return aarch32_simd_structure(word & (1 << 23) != 0, (word >> 10) & 0b11, word >> 6);
    }
    aarch32(a32::decode(word), |reason| a32_declined(word, reason))
}

/// T32: the same classes in their 32-bit (and 16-bit) encodings.
fn t32_pair(hw1: u16, hw2: u16) -> MemOp {
    // MCR p15, 0, Rt, c7, CRm, opc2: `1110 1110 000 0 0111`, `Rt 1111 opc2 1 CRm`.
    if hw1 == 0xEE07 && hw2 & 0x0F10 == 0x0F10 {
        return cp15_c7(u32::from(hw2 & 0xF), u32::from(hw2 >> 5) & 0b111);
    }
    // Advanced SIMD element or structure load/store: `1111 1001 x D L 0`.
    if hw1 & 0xFF10 == 0xF900 {
        let single = hw1 & (1 << 7) != 0;
        return aarch32_simd_structure(single, u32::from(hw2 >> 10) & 0b11, u32::from(hw2) >> 6);
    }
    aarch32(t32::decode(hw1, hw2), |reason| {
        t32_declined(hw1, hw2, reason)
    })
}

/// `MCR p15, 0, Rt, c7, CRm, opc2`: `ATS*` (c8), or cache maintenance by MVA: `ICIMVAU`
/// (c5, 1), `DCIMVAC` (c6, 1), `DCCMVAC` (c10, 1), `DCCMVAU` (c11, 1), `DCCIMVAC` (c14, 1).
const fn cp15_c7(crm: u32, opc2: u32) -> MemOp {
    match (crm, opc2) {
        (8, _) => MemOp::AddressTranslation,
        (5 | 6 | 10 | 11 | 14, 1) => MemOp::CacheMaintenance,
        _ => MemOp::Unknown,
    }
}

/// `VLDn`/`VSTn`: multiple structures have their element size in bits \[7:6\]; single
/// structures in bits \[11:10\], or \[7:6\] for the replicating form (size 0b11).
fn aarch32_simd_structure(single: bool, size_11_10: u32, low: u32) -> MemOp {
    let size_7_6 = low & 0b11;
    let size = if single && size_11_10 != 0b11 {
        size_11_10
    } else {
        size_7_6
    };
    plain(1 << size)
}

/// The rule of an AArch32 load/store the emulation decoder decoded, or, for the classes it
/// declines, the rule `declined` gives for the reason.
fn aarch32(
    decoded: Result<Aarch32Access, NotEmulated>,
    declined: impl Fn(NotEmulated) -> MemOp,
) -> MemOp {
    match decoded {
        // LDRD/STRD: two `MemA[address, 4]`.
        Ok(a) if a.rt2.is_some() => with(4, Always::Aligned { bytes: 4 }),
        Ok(a) if matches!(a.ordering, Ordering32::Acquire | Ordering32::Release) => {
            with(a.size, Always::Ordered { bytes: a.size })
        }
        Ok(a) => plain(a.size),
        Err(reason) => declined(reason),
    }
}

/// A32 words the emulation decoder declines: `LDM`/`STM`, `LDC`, `VLDR`/`VLDM`, `SWP`,
/// exclusives: all `MemA[]`.
fn a32_declined(word: u32, reason: NotEmulated) -> MemOp {
    match reason {
        NotEmulated::Multiple | NotEmulated::Coprocessor => words(),
        NotEmulated::SimdFp => vfp(word >> 8 & 0xF),
        // SWP (4), SWPB (1): `cond 0001 0B00 ...`.
        NotEmulated::Atomic => {
            let bytes = if word & (1 << 22) != 0 { 1 } else { 4 };
            with(bytes, Always::Aligned { bytes })
        }
        // LDREX{,D,B,H}, STREX..., LDAEX...: size in bits [22:21]: word, doubleword, byte, half.
        NotEmulated::Exclusive => exclusive([4, 8, 1, 2][(word as usize >> 21) & 0b11]),
        _ => MemOp::Unknown,
    }
}

/// T32 words the emulation decoder declines.
fn t32_declined(hw1: u16, hw2: u16, reason: NotEmulated) -> MemOp {
    match reason {
        NotEmulated::Multiple | NotEmulated::Coprocessor => words(),
        NotEmulated::SimdFp => vfp(u32::from(hw2 >> 8) & 0xF),
        // LDREX/STREX (`1110 1000 010x`): a word; the `1110 1000 110x` class by op3 bits [5:4]:
        // byte, halfword, word, doubleword.
        NotEmulated::Exclusive if hw1 & 0xFFE0 == 0xE840 => exclusive(4),
        NotEmulated::Exclusive => exclusive([1, 2, 4, 8][usize::from(hw2 >> 4) & 0b11]),
        _ => MemOp::Unknown,
    }
}

/// `LDM`/`STM`/`PUSH`/`POP`/`LDC`/`STC`: words, always word-aligned.
const fn words() -> MemOp {
    with(4, Always::Aligned { bytes: 4 })
}

/// An exclusive of `bytes` (`MemA[]`): aligned to its size.
const fn exclusive(bytes: u8) -> MemOp {
    with(bytes, Always::Atomic { bytes })
}

/// `VLDR`/`VSTR`/`VLDM`/`VSTM`: words, always word-aligned; half-precision `VLDR.16`
/// (coprocessor field 0b1001) a halfword, halfword-aligned.
const fn vfp(coproc: u32) -> MemOp {
    if coproc == 0b1001 {
        with(2, Always::Aligned { bytes: 2 })
    } else {
        words()
    }
}

#[cfg(test)]
#[path = "memop_tests.rs"]
mod tests;
