//! Saved program status: `SPSR_ELx` for an exception taken from AArch64 state
//! ([`Spsr64`]), and from AArch32 state ([`Spsr32`]), plus the AArch32 `SPSR_<mode>` layout
//! ([`Spsr32::to_banked`]) and the AArch32 processor modes ([`Aarch32Mode`]).
//!
//! The two AArch32 layouts differ: `SPSR_ELx` holds `DIT` at bit 24 and `SS` at bit 21, the
//! AArch32 `SPSR_abt`/`SPSR_und`... hold `DIT` at bit 21 and have no `SS`
//! (`GetPSRFromPSTATE()`, `AArch32_NonDebugState`). Source: `SPSR_EL2` (both forms) and
//! `SPSR_abt`, DDI 0487.

use crate::field::Field;
use core::fmt;

/// `SPSR_ELx.M[4]`: 1 when the exception was taken from AArch32 state.
pub const M4_NRW: Field = Field::bit(4);

/// Whether a saved `SPSR_ELx` value describes AArch32 state (`M[4]` = 1).
#[must_use]
pub const fn is_aarch32(spsr: u64) -> bool {
    M4_NRW.is_set(spsr)
}

/// PSTATE as saved in `SPSR_ELx` when taken from AArch64 state.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Spsr64(u64);

impl Spsr64 {
    /// `UINJ` (FEAT_UINJ).
    pub const UINJ: Field = Field::bit(36);
    /// `PACM` (FEAT_PAuth_LR).
    pub const PACM: Field = Field::bit(35);
    /// `EXLOCK` (FEAT_GCS).
    pub const EXLOCK: Field = Field::bit(34);
    /// `PPEND` (FEAT_SEBEP).
    pub const PPEND: Field = Field::bit(33);
    /// `PM` (FEAT_EBEP).
    pub const PM: Field = Field::bit(32);
    /// `N` condition flag.
    pub const N: Field = Field::bit(31);
    /// `Z` condition flag.
    pub const Z: Field = Field::bit(30);
    /// `C` condition flag.
    pub const C: Field = Field::bit(29);
    /// `V` condition flag.
    pub const V: Field = Field::bit(28);
    /// `N`, `Z`, `C`, `V` together.
    pub const NZCV: Field = Field::new(28, 4);
    /// `TCO`, tag check override (FEAT_MTE).
    pub const TCO: Field = Field::bit(25);
    /// `DIT`, data independent timing (FEAT_DIT).
    pub const DIT: Field = Field::bit(24);
    /// `UAO`, user access override (FEAT_UAO).
    pub const UAO: Field = Field::bit(23);
    /// `PAN`, privileged access never (FEAT_PAN).
    pub const PAN: Field = Field::bit(22);
    /// `SS`, software step.
    pub const SS: Field = Field::bit(21);
    /// `IL`, illegal execution state.
    pub const IL: Field = Field::bit(20);
    /// `ALLINT` (FEAT_NMI).
    pub const ALLINT: Field = Field::bit(13);
    /// `SSBS`, speculative store bypass safe (FEAT_SSBS).
    pub const SSBS: Field = Field::bit(12);
    /// `BTYPE`, branch type (FEAT_BTI).
    pub const BTYPE: Field = Field::new(10, 2);
    /// `D`, debug exception mask.
    pub const D: Field = Field::bit(9);
    /// `A`, SError mask.
    pub const A: Field = Field::bit(8);
    /// `I`, IRQ mask.
    pub const I: Field = Field::bit(7);
    /// `F`, FIQ mask.
    pub const F: Field = Field::bit(6);
    /// `M[3:0]`: exception level and stack pointer.
    pub const M: Field = Field::new(0, 4);
    /// `M[3:2]`: the exception level.
    pub const M_EL: Field = Field::new(2, 2);
    /// `M[0]`: the stack pointer, `SP_ELx` when set.
    pub const M_SP: Field = Field::bit(0);

    /// The saved value `bits`.
    #[must_use]
    #[inline]
    pub const fn new(bits: u64) -> Self {
        Self(bits)
    }

    /// The register value.
    #[must_use]
    #[inline]
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether the one-bit field `field` is set.
    #[must_use]
    #[inline]
    pub const fn flag(self, field: Field) -> bool {
        field.is_set(self.0)
    }

    /// This value with `field` set to `value`.
    #[must_use]
    #[inline]
    pub const fn with(self, field: Field, value: u64) -> Self {
        Self(field.insert(self.0, value))
    }

    /// This value with the one-bit `field` set to `flag`.
    #[must_use]
    #[inline]
    pub const fn with_flag(self, field: Field, flag: bool) -> Self {
        Self(field.with_flag(self.0, flag))
    }

    /// `M[3:0]` as a mode.
    #[must_use]
    #[inline]
    pub const fn mode(self) -> Aarch64Mode {
        Aarch64Mode::from_m(Self::M.get(self.0) as u8)
    }

    /// The exception level of the saved mode, `M[3:2]` (what `self.mode().el()` gives, read
    /// straight from the field: every exception entry asks).
    #[must_use]
    #[inline]
    pub const fn el(self) -> u8 {
        Self::M_EL.get(self.0) as u8
    }

    /// Whether the saved mode uses `SP_ELx`, `M[0]` (`self.mode().sp_elx()`).
    #[must_use]
    #[inline]
    pub const fn sp_elx(self) -> bool {
        Self::M_SP.is_set(self.0)
    }

    /// This value with mode `mode` (`M[4]` = 0: AArch64).
    #[must_use]
    #[inline]
    pub const fn with_mode(self, mode: Aarch64Mode) -> Self {
        let bits = M4_NRW.with_flag(self.0, false);
        Self(Self::M.insert(bits, mode.m() as u64))
    }
}

impl fmt::Debug for Spsr64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Spsr64({:#x}, {:?})", self.0, self.mode())
    }
}

/// An AArch64 exception level and stack pointer selection (`SPSR_ELx.M[3:0]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aarch64Mode {
    /// EL0 (always SP_EL0).
    El0t,
    /// EL1 using SP_EL0.
    El1t,
    /// EL1 using SP_EL1.
    El1h,
    /// EL2 using SP_EL0.
    El2t,
    /// EL2 using SP_EL2.
    El2h,
    /// EL3 using SP_EL0.
    El3t,
    /// EL3 using SP_EL3.
    El3h,
    /// An `M[3:0]` value with no mode (an illegal return).
    Reserved(u8),
}

impl Aarch64Mode {
    /// The mode of `M[3:0]` = `m`: `EL` in `M[3:2]`, `SP` in `M[0]`.
    #[must_use]
    #[inline]
    pub const fn from_m(m: u8) -> Self {
        match m {
            0b0000 => Self::El0t,
            0b0100 => Self::El1t,
            0b0101 => Self::El1h,
            0b1000 => Self::El2t,
            0b1001 => Self::El2h,
            0b1100 => Self::El3t,
            0b1101 => Self::El3h,
            other => Self::Reserved(other),
        }
    }

    /// The `M[3:0]` encoding.
    #[must_use]
    #[inline]
    pub const fn m(self) -> u8 {
        match self {
            Self::El0t => 0b0000,
            Self::El1t => 0b0100,
            Self::El1h => 0b0101,
            Self::El2t => 0b1000,
            Self::El2h => 0b1001,
            Self::El3t => 0b1100,
            Self::El3h => 0b1101,
            Self::Reserved(m) => m,
        }
    }

    /// The exception level (`M[3:2]`).
    #[must_use]
    #[inline]
    pub const fn el(self) -> u8 {
        self.m() >> 2
    }

    /// Whether the mode uses `SP_ELx` rather than `SP_EL0` (`M[0]`, `PSTATE.SP`).
    #[must_use]
    #[inline]
    pub const fn sp_elx(self) -> bool {
        self.m() & 1 == 1
    }
}

/// An AArch32 processor mode (`M[4:0]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aarch32Mode {
    /// User (PL0).
    User,
    /// FIQ.
    Fiq,
    /// IRQ.
    Irq,
    /// Supervisor.
    Supervisor,
    /// Monitor (EL3).
    Monitor,
    /// Abort.
    Abort,
    /// Hyp (EL2).
    Hyp,
    /// Undefined.
    Undefined,
    /// System.
    System,
    /// An `M[4:0]` value with no mode.
    Reserved(u8),
}

impl Aarch32Mode {
    /// The mode of `M[4:0]` = `m`.
    #[must_use]
    #[inline]
    pub const fn from_m(m: u8) -> Self {
        match m {
            0b10000 => Self::User,
            0b10001 => Self::Fiq,
            0b10010 => Self::Irq,
            0b10011 => Self::Supervisor,
            0b10110 => Self::Monitor,
            0b10111 => Self::Abort,
            0b11010 => Self::Hyp,
            0b11011 => Self::Undefined,
            0b11111 => Self::System,
            other => Self::Reserved(other),
        }
    }

    /// The `M[4:0]` encoding.
    #[must_use]
    #[inline]
    pub const fn m(self) -> u8 {
        match self {
            Self::User => 0b10000,
            Self::Fiq => 0b10001,
            Self::Irq => 0b10010,
            Self::Supervisor => 0b10011,
            Self::Monitor => 0b10110,
            Self::Abort => 0b10111,
            Self::Hyp => 0b11010,
            Self::Undefined => 0b11011,
            Self::System => 0b11111,
            Self::Reserved(m) => m,
        }
    }

    /// The exception level the mode runs at (User 0, Hyp 2, Monitor 3, the others 1).
    #[must_use]
    #[inline]
    pub const fn el(self) -> u8 {
        match self {
            Self::User => 0,
            Self::Hyp => 2,
            Self::Monitor => 3,
            _ => 1,
        }
    }
}

/// PSTATE as saved in `SPSR_ELx` when taken from AArch32 state (the `SPSR_EL2` AArch32
/// layout; only bits \[31:0\] are defined).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Spsr32(u32);

impl Spsr32 {
    /// `N`, `Z`, `C`, `V`.
    pub const NZCV: Field = Field::new(28, 4);
    /// `Q`, cumulative saturation.
    pub const Q: Field = Field::bit(27);
    /// `IT[1:0]`.
    pub const IT_LOW: Field = Field::new(25, 2);
    /// `DIT` in the `SPSR_ELx` layout.
    pub const DIT: Field = Field::bit(24);
    /// `SSBS`.
    pub const SSBS: Field = Field::bit(23);
    /// `PAN`.
    pub const PAN: Field = Field::bit(22);
    /// `SS`, software step (`SPSR_ELx` layout only).
    pub const SS: Field = Field::bit(21);
    /// `IL`, illegal execution state.
    pub const IL: Field = Field::bit(20);
    /// `GE`, greater than or equal flags.
    pub const GE: Field = Field::new(16, 4);
    /// `IT[7:2]`.
    pub const IT_HIGH: Field = Field::new(10, 6);
    /// `E`, big-endian data.
    pub const E: Field = Field::bit(9);
    /// `A`, SError mask.
    pub const A: Field = Field::bit(8);
    /// `I`, IRQ mask.
    pub const I: Field = Field::bit(7);
    /// `F`, FIQ mask.
    pub const F: Field = Field::bit(6);
    /// `T`, T32 (Thumb) state.
    pub const T: Field = Field::bit(5);
    /// `M[4:0]`, the mode.
    pub const M: Field = Field::new(0, 5);
    /// `DIT` in the AArch32 `SPSR_<mode>` layout.
    pub const BANKED_DIT: Field = Field::bit(21);

    /// The saved value `bits`.
    #[must_use]
    #[inline]
    pub const fn new(bits: u32) -> Self {
        Self(bits)
    }

    /// The register value.
    #[must_use]
    #[inline]
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether the one-bit field `field` is set.
    #[must_use]
    #[inline]
    pub const fn flag(self, field: Field) -> bool {
        field.is_set(self.0 as u64)
    }

    /// This value with `field` set to `value`.
    #[must_use]
    #[inline]
    pub const fn with(self, field: Field, value: u64) -> Self {
        Self(field.insert(self.0 as u64, value) as u32)
    }

    /// This value with the one-bit `field` set to `flag`.
    #[must_use]
    #[inline]
    pub const fn with_flag(self, field: Field, flag: bool) -> Self {
        Self(field.with_flag(self.0 as u64, flag) as u32)
    }

    /// The mode in `M[4:0]`.
    #[must_use]
    #[inline]
    pub const fn mode(self) -> Aarch32Mode {
        Aarch32Mode::from_m(Self::M.get(self.0 as u64) as u8)
    }

    /// This value with mode `mode`.
    #[must_use]
    #[inline]
    pub const fn with_mode(self, mode: Aarch32Mode) -> Self {
        self.with(Self::M, mode.m() as u64)
    }

    /// Whether the state is T32 (`T`).
    #[must_use]
    pub const fn thumb(self) -> bool {
        self.flag(Self::T)
    }

    /// The same PSTATE in the AArch32 `SPSR_<mode>` layout, as `GetPSRFromPSTATE
    /// (AArch32_NonDebugState)` builds it: `DIT` moves from bit 24 to bit 21 and `SS` is not
    /// saved.
    #[must_use]
    pub const fn to_banked(self) -> u32 {
        let dit = self.flag(Self::DIT);
        let bits = self
            .with_flag(Self::DIT, false)
            .with_flag(Self::SS, false)
            .0;
        Self::BANKED_DIT.with_flag(bits as u64, dit) as u32
    }
}

impl fmt::Debug for Spsr32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Spsr32({:#x}, {:?})", self.0, self.mode())
    }
}

/// A saved `SPSR_ELx` of either execution state, chosen by `M[4]`; for diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SavedPsr {
    /// Taken from AArch64 state.
    Aarch64(Spsr64),
    /// Taken from AArch32 state.
    Aarch32(Spsr32),
}

impl SavedPsr {
    /// The saved state of `spsr` (an `SPSR_ELx` value).
    #[must_use]
    pub const fn from_spsr(spsr: u64) -> Self {
        if is_aarch32(spsr) {
            Self::Aarch32(Spsr32::new(spsr as u32))
        } else {
            Self::Aarch64(Spsr64::new(spsr))
        }
    }
}

/// `EL1h NZCV=0b0110 D=1 A=1 I=1 F=1 ...`: the mode and every PSTATE field by its Arm name.
impl fmt::Display for Spsr64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = self.0;
        write!(f, "{:?} NZCV={:#06b}", self.mode(), Self::NZCV.get(bits))?;
        let flags = [
            ("D", Self::D),
            ("A", Self::A),
            ("I", Self::I),
            ("F", Self::F),
            ("SS", Self::SS),
            ("IL", Self::IL),
            ("PAN", Self::PAN),
            ("UAO", Self::UAO),
            ("DIT", Self::DIT),
            ("TCO", Self::TCO),
            ("SSBS", Self::SSBS),
            ("ALLINT", Self::ALLINT),
            ("PM", Self::PM),
            ("EXLOCK", Self::EXLOCK),
        ];
        for (name, field) in flags {
            write!(f, " {name}={}", field.get(bits))?;
        }
        write!(f, " BTYPE={:#04b}", Self::BTYPE.get(bits))
    }
}

/// `Abort T32 NZCV=0b0110 Q=0 GE=0b0000 IT=0x00 E=0 A=1 I=1 F=0 ...` (`SPSR_ELx` layout).
impl fmt::Display for Spsr32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = u64::from(self.0);
        let state = if self.thumb() { "T32" } else { "A32" };
        let it = (Self::IT_HIGH.get(bits) << Self::IT_LOW.width()) | Self::IT_LOW.get(bits);
        write!(
            f,
            "{:?} {state} NZCV={:#06b} GE={:#06b} IT={it:#04x}",
            self.mode(),
            Self::NZCV.get(bits),
            Self::GE.get(bits)
        )?;
        let flags = [
            ("Q", Self::Q),
            ("E", Self::E),
            ("A", Self::A),
            ("I", Self::I),
            ("F", Self::F),
            ("SS", Self::SS),
            ("IL", Self::IL),
            ("PAN", Self::PAN),
            ("DIT", Self::DIT),
            ("SSBS", Self::SSBS),
        ];
        for (name, field) in flags {
            write!(f, " {name}={}", field.get(bits))?;
        }
        Ok(())
    }
}

/// The state's own `Display`.
impl fmt::Display for SavedPsr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Aarch64(p) => p.fmt(f),
            Self::Aarch32(p) => p.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_saved_el_and_stack_pointer_are_those_of_the_saved_mode_for_every_m() {
        for m in 0..16u64 {
            let spsr = Spsr64::new(0x3C0 | m);
            assert_eq!(spsr.el(), spsr.mode().el(), "M = {m:#06b}");
            assert_eq!(spsr.sp_elx(), spsr.mode().sp_elx(), "M = {m:#06b}");
        }
    }

    #[test]
    fn el1h_with_daif_masked_is_0x3c5() {
        let spsr = Spsr64::default()
            .with_mode(Aarch64Mode::El1h)
            .with_flag(Spsr64::D, true)
            .with_flag(Spsr64::A, true)
            .with_flag(Spsr64::I, true)
            .with_flag(Spsr64::F, true);
        assert_eq!(spsr.bits(), 0x3C5);
    }

    #[test]
    fn aarch64_modes_round_trip_and_report_el_and_sp() {
        for m in 0..16u8 {
            assert_eq!(Aarch64Mode::from_m(m).m(), m);
        }
        assert_eq!(Aarch64Mode::El1t.el(), 1);
        assert!(!Aarch64Mode::El1t.sp_elx());
        assert!(Aarch64Mode::El1h.sp_elx());
        assert_eq!(Aarch64Mode::from_m(0b0001), Aarch64Mode::Reserved(1));
    }

    #[test]
    fn aarch32_modes_round_trip_and_report_el() {
        for m in 0..32u8 {
            assert_eq!(Aarch32Mode::from_m(m).m(), m);
        }
        assert_eq!(Aarch32Mode::from_m(0x17), Aarch32Mode::Abort);
        assert_eq!(Aarch32Mode::from_m(0x1B), Aarch32Mode::Undefined);
        assert_eq!(Aarch32Mode::User.el(), 0);
        assert_eq!(Aarch32Mode::Supervisor.el(), 1);
        assert_eq!(Aarch32Mode::Hyp.el(), 2);
    }

    #[test]
    fn m4_tells_aarch32_state() {
        assert!(is_aarch32(0x1D3));
        assert!(!is_aarch32(0x3C5));
    }

    #[test]
    fn banked_spsr_moves_dit_to_bit_21_and_drops_ss() {
        let elx = Spsr32::new(0x1D3).with_flag(Spsr32::DIT, true);
        assert_eq!(elx.to_banked(), 0x1D3 | (1 << 21));
        let stepping = Spsr32::new(0x1D3).with_flag(Spsr32::SS, true);
        assert_eq!(stepping.to_banked(), 0x1D3);
    }

    #[test]
    fn display_names_mode_and_fields() {
        extern crate std;
        use std::string::ToString;
        let el1h = SavedPsr::from_spsr(0x6040_03C5).to_string();
        assert!(
            el1h.starts_with("El1h NZCV=0b0110 D=1 A=1 I=1 F=1 SS=0 IL=0 PAN=1"),
            "{el1h}"
        );
        let abt = SavedPsr::from_spsr(0x6000_01F7).to_string();
        assert!(
            abt.starts_with("Abort T32 NZCV=0b0110 GE=0b0000 IT=0x00 Q=0 E=0 A=1 I=1 F=1"),
            "{abt}"
        );
    }
}
