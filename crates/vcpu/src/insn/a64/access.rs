//! The decoded form of an AArch64 load or store of general-purpose registers: the transfer
//! registers, the element size and extension, and the addressing mode with its writeback,
//! every field named as in the instruction's pseudocode.

use super::super::Direction;

/// A general-purpose register as an A64 load/store names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    /// `X0`..`X30` (or their `W` halves).
    X(u8),
    /// The zero register: register number 31 as a transfer or offset register.
    Zr,
    /// The current stack pointer: register number 31 as a base register.
    Sp,
}

impl Reg {
    /// Register number `n` in a transfer (`Rt`) or offset (`Rm`) field: 31 is `XZR`.
    #[must_use]
    pub const fn data(n: u32) -> Self {
        if n == 31 { Self::Zr } else { Self::X(n as u8) }
    }

    /// Register number `n` in a base (`Rn`) field: 31 is `SP`.
    #[must_use]
    pub const fn base(n: u32) -> Self {
        if n == 31 { Self::Sp } else { Self::X(n as u8) }
    }
}

/// The width of the register a load writes or a store reads (`regsize`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegWidth {
    /// A `W` register; a load clears the upper 32 bits of the `X` register.
    W,
    /// An `X` register.
    X,
}

/// The `extend_type` of a register offset (`DecodeRegExtend(option)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extend {
    /// `UXTW`: the low 32 bits of `Xm`, zero-extended.
    Uxtw,
    /// `LSL`/`UXTX`: all of `Xm`.
    Uxtx,
    /// `SXTW`: the low 32 bits of `Xm`, sign-extended.
    Sxtw,
    /// `SXTX`: all of `Xm`.
    Sxtx,
}

/// The offset added to the base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offset {
    /// A signed immediate, already scaled.
    Imm(i64),
    /// `ExtendReg(m, extend_type, shift)`: `Rm` extended, then shifted left by `shift`.
    Reg {
        /// The offset register (`X0`..`X30` or `XZR`).
        rm: Reg,
        /// How `Rm` is extended to 64 bits.
        extend: Extend,
        /// The left shift applied after extension (0 or `log2(size)`).
        shift: u8,
    },
}

/// How the address of the first element is formed, and whether the base is written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// `[base, offset]`: address = base + offset; no writeback.
    Offset {
        /// `Xn` or `SP`.
        base: Reg,
        /// The offset.
        offset: Offset,
    },
    /// `[base, #imm]!`: address = base + imm; then base = address.
    PreIndex {
        /// `Xn` or `SP`.
        base: Reg,
        /// The signed, scaled immediate.
        imm: i64,
    },
    /// `[base], #imm`: address = base; then base = address + imm.
    PostIndex {
        /// `Xn` or `SP`.
        base: Reg,
        /// The signed, scaled immediate.
        imm: i64,
    },
    /// `label`: address = PC + offset (`LDR (literal)`, `LDRSW (literal)`).
    Literal {
        /// The signed byte offset from the instruction's address.
        offset: i64,
    },
}

/// The ordering or access-kind attribute of an access. It does not change the access's
/// emulation (a trapped access is complete before the guest runs again), but it is decoded so
/// that diagnostics can name the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ordering {
    /// A normal access.
    Plain,
    /// `LDNP`/`STNP`: a non-temporal hint.
    NonTemporal,
    /// `LDTR*`/`STTR*`: checked with EL0 permissions (already done by the stage-1 walk).
    Unprivileged,
    /// `LDAR*`: load-acquire (RCsc).
    Acquire,
    /// `LDAPR*`/`LDAPUR*`: load-acquire (RCpc).
    AcquirePc,
    /// `STLR*`/`STLUR*`: store-release.
    Release,
    /// `LDLAR*`: load LOAcquire.
    LoAcquire,
    /// `STLLR*`: store LORelease.
    LoRelease,
}

/// A decoded AArch64 load or store of general-purpose registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct A64Access {
    /// Load or store.
    pub direction: Direction,
    /// Bytes per element (`dbytes`): 1, 2, 4 or 8.
    pub size: u8,
    /// For loads: sign-extend the element to the register width (`LDRS*`, `LDPSW`).
    pub signed: bool,
    /// The width of `rt` (and `rt2`).
    pub width: RegWidth,
    /// The (first) transfer register, `X0`..`X30` or `XZR`.
    pub rt: Reg,
    /// The second transfer register of a pair, at address + `size`.
    pub rt2: Option<Reg>,
    /// The address of the first element and the base writeback.
    pub addressing: Addressing,
    /// Ordering or access-kind attribute.
    pub ordering: Ordering,
}

impl A64Access {
    /// The number of elements accessed: 2 for a pair, else 1.
    #[must_use]
    pub const fn elements(&self) -> u8 {
        if self.rt2.is_some() { 2 } else { 1 }
    }
}
