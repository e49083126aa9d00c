//! Exception vector offsets: AArch64 (`VBAR_ELx` + source + type, `AArch64.TakeException()`)
//! and AArch32 (`VBAR` or the high vectors + a per-exception offset, `AArch32.EnterMode()`).

/// Where an AArch64 exception comes from, relative to the target EL: selects the 0x200-byte
/// group of the vector table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VectorSource {
    /// Same EL, `PSTATE.SP` = 0 (SP_EL0).
    CurrentElSp0,
    /// Same EL, `PSTATE.SP` = 1 (SP_ELx).
    CurrentElSpx,
    /// A lower EL in AArch64 state.
    LowerAarch64,
    /// A lower EL in AArch32 state.
    LowerAarch32,
}

impl VectorSource {
    /// The group's offset from `VBAR_ELx`: 0x000, 0x200, 0x400, 0x600.
    #[must_use]
    pub const fn offset(self) -> u64 {
        match self {
            Self::CurrentElSp0 => 0x000,
            Self::CurrentElSpx => 0x200,
            Self::LowerAarch64 => 0x400,
            Self::LowerAarch32 => 0x600,
        }
    }
}

/// The type of an AArch64 exception: selects the entry within a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VectorKind {
    /// Synchronous exception (+0x000).
    Synchronous,
    /// IRQ (+0x080).
    Irq,
    /// FIQ (+0x100).
    Fiq,
    /// SError (+0x180).
    SError,
}

impl VectorKind {
    /// The entry's offset within its group.
    #[must_use]
    pub const fn offset(self) -> u64 {
        match self {
            Self::Synchronous => 0x000,
            Self::Irq => 0x080,
            Self::Fiq => 0x100,
            Self::SError => 0x180,
        }
    }
}

/// The offset from `VBAR_ELx` of the vector for `kind` taken from `source`.
#[must_use]
pub const fn vector_offset(source: VectorSource, kind: VectorKind) -> u64 {
    source.offset() + kind.offset()
}

/// `VBAR_ELx[63:11]`: the vector base keeps only these bits (`AArch64.TakeException()`:
/// `BranchTo(VBAR_ELx[]<63:11>:vect_offset<10:0>)`).
pub const VBAR_BASE_MASK: u64 = !0x7FF;

/// `ExcVectorBase()` with `SCTLR.V` = 1: the high vectors.
pub const HIGH_VECTORS_BASE: u32 = 0xFFFF_0000;

/// `VBAR[31:5]`: the low five bits of an AArch32 vector base are ignored.
pub const VBAR32_BASE_MASK: u32 = !0x1F;

/// The AArch32 exception vectors, as offsets from `ExcVectorBase()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aarch32Vector {
    /// Reset (0x00).
    Reset,
    /// Undefined instruction (0x04).
    Undefined,
    /// Supervisor call (0x08).
    SupervisorCall,
    /// Prefetch abort (0x0C).
    PrefetchAbort,
    /// Data abort (0x10).
    DataAbort,
    /// Hyp trap, Hyp mode only (0x14).
    HypTrap,
    /// IRQ (0x18).
    Irq,
    /// FIQ (0x1C).
    Fiq,
}

impl Aarch32Vector {
    /// The vector's offset.
    #[must_use]
    pub const fn offset(self) -> u32 {
        match self {
            Self::Reset => 0x00,
            Self::Undefined => 0x04,
            Self::SupervisorCall => 0x08,
            Self::PrefetchAbort => 0x0C,
            Self::DataAbort => 0x10,
            Self::HypTrap => 0x14,
            Self::Irq => 0x18,
            Self::Fiq => 0x1C,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aarch64_vector_table_has_sixteen_entries_0x80_apart() {
        let sources = [
            VectorSource::CurrentElSp0,
            VectorSource::CurrentElSpx,
            VectorSource::LowerAarch64,
            VectorSource::LowerAarch32,
        ];
        let kinds = [
            VectorKind::Synchronous,
            VectorKind::Irq,
            VectorKind::Fiq,
            VectorKind::SError,
        ];
        let mut expected = 0;
        for source in sources {
            for kind in kinds {
                assert_eq!(vector_offset(source, kind), expected);
                expected += 0x80;
            }
        }
    }

    #[test]
    fn serror_from_lower_aarch64_is_0x580() {
        assert_eq!(
            vector_offset(VectorSource::LowerAarch64, VectorKind::SError),
            0x580
        );
    }

    #[test]
    fn aarch32_abort_vectors_are_0x0c_and_0x10() {
        assert_eq!(Aarch32Vector::PrefetchAbort.offset(), 0x0C);
        assert_eq!(Aarch32Vector::DataAbort.offset(), 0x10);
        assert_eq!(Aarch32Vector::Undefined.offset(), 0x04);
    }
}
