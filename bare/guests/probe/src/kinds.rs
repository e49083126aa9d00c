//! The probe's kinds: which instruction ([`Snippet`]), from which PSTATE ([`Mode`]), and (with
//! `probe.mmu=on`) through which stage-1 mapping shape ([`Shape`]). A kind's name is the
//! instruction, then `_el1t` or `_el0` unless it runs at EL1h, then the shape's suffix: `ldr`,
//! `fetch_el0`, `ldr_el0_page`, `at_s1e1r_table_at`. The three `brk_<mode>` kinds are
//! address-independent and name their mode always.

use core::fmt;

use crate::layout::Shape;

/// The immediate of the `SVC` that ends a snippet whose access completed (ISS of EC 0x15).
pub const MARK: u16 = 0x50b3;
/// The immediate of the probe's own `BRK` (ISS of EC 0x3C).
pub const BRK_IMM: u16 = 0x0b;

/// `SPSR_EL1` for the recovery point and for EL1h cases: M = EL1h (0b0101), D, A, I, F set.
pub const SPSR_EL1H: u64 = 0x3c5;
/// `SPSR_EL1` for EL1t cases: M = EL1t (0b0100), D, A, I, F set.
pub const SPSR_EL1T: u64 = 0x3c4;
/// `SPSR_EL1` for EL0 cases: M = EL0t (0b0000), D, A, I, F set.
pub const SPSR_EL0T: u64 = 0x3c0;

/// The snippets: the instruction each case probes (the first of its snippet in `enter.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snippet {
    /// `LDR Xt, [Xn]`.
    Ldr,
    /// `LDRB Wt, [Xn]`.
    Ldrb,
    /// `LDRSH Wt, [Xn]`.
    LdrshW,
    /// `STR Wt, [Xn]`.
    Str,
    /// `LDP Xt1, Xt2, [Xn]`.
    Ldp,
    /// `LDR Xt, [Xn], #8`.
    LdrPost,
    /// `STP Xt1, Xt2, [Xn]`.
    Stp,
    /// `LDUR Wt, [Xn, #2]`: a word load misaligned by 2 (an Alignment fault on Device memory).
    LdrMisaligned,
    /// `STUR Xt, [Xn, #4]`: a doubleword store misaligned by 4.
    StrMisaligned,
    /// `RET Xn` to the target: an indirect branch that leaves PSTATE.BTYPE 0b00 (FEAT_BTI), so
    /// the fetch's `SPSR_EL1` is the same on cores with and without BTI.
    Fetch,
    /// `BR Xn` to the target: PSTATE.BTYPE becomes 0b01 on a core with FEAT_BTI (the target is
    /// not in a guarded page), so the fetch's `SPSR_EL1.BTYPE` shows whether it is preserved.
    FetchBr,
    /// `DC ZVA, Xt`.
    DcZva,
    /// `DC CIVAC, Xt`.
    DcCivac,
    /// `AT S1E1R, Xt` (then `ISB`).
    AtS1e1r,
    /// `BRK #BRK_IMM`.
    Brk,
}

/// The PSTATE a case's snippet runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// EL1 with SP_EL1 (exceptions at vector +0x200).
    El1h,
    /// EL1 with SP_EL0 (exceptions at vector +0x000).
    El1t,
    /// EL0, AArch64 (exceptions at vector +0x400).
    El0,
}

impl Mode {
    /// `SPSR_EL1` to enter the snippet with.
    pub const fn spsr(self) -> u64 {
        match self {
            Self::El1h => SPSR_EL1H,
            Self::El1t => SPSR_EL1T,
            Self::El0 => SPSR_EL0T,
        }
    }

    const fn suffix(self) -> &'static str {
        match self {
            Self::El1h => "",
            Self::El1t => "_el1t",
            Self::El0 => "_el0",
        }
    }
}

impl Snippet {
    /// The instruction's part of the kind name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ldr => "ldr",
            Self::Ldrb => "ldrb",
            Self::LdrshW => "ldrsh_w",
            Self::Str => "str",
            Self::Ldp => "ldp",
            Self::LdrPost => "ldr_post",
            Self::Stp => "stp",
            Self::LdrMisaligned => "ldr_misaligned",
            Self::StrMisaligned => "str_misaligned",
            Self::Fetch => "fetch",
            Self::FetchBr => "fetch_br",
            Self::DcZva => "dc_zva",
            Self::DcCivac => "dc_civac",
            Self::AtS1e1r => "at_s1e1r",
            Self::Brk => "brk",
        }
    }

    /// Whether a completed run loaded a value (printed as `value=`).
    pub const fn loads(self) -> bool {
        matches!(
            self,
            Self::Ldr | Self::Ldrb | Self::LdrshW | Self::Ldp | Self::LdrPost | Self::LdrMisaligned
        )
    }

    /// Whether the instruction writes memory or executes from it: such a case must not target
    /// the probe's own image or the device tree.
    pub const fn writes_or_executes(self) -> bool {
        matches!(
            self,
            Self::Str | Self::Stp | Self::StrMisaligned | Self::DcZva | Self::Fetch | Self::FetchBr
        )
    }

    /// Whether the instruction writes memory.
    pub const fn writes(self) -> bool {
        matches!(
            self,
            Self::Str | Self::Stp | Self::StrMisaligned | Self::DcZva
        )
    }

    /// How many bytes the access covers from the target (`DC ZVA`: up to 2 KiB, `DCZID_EL0`).
    pub const fn extent(self) -> u64 {
        match self {
            Self::Ldp | Self::Stp | Self::StrMisaligned => 16,
            Self::DcZva => 2048,
            _ => 8,
        }
    }
}

/// One kind of case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// The instruction.
    pub snippet: Snippet,
    /// The PSTATE it runs in.
    pub mode: Mode,
    /// The mapping shape (`None` with the MMU off, and for `brk`).
    pub shape: Option<Shape>,
}

/// The address-dependent kinds, in output order (one shape is added per kind with the MMU on).
pub const ACCESSES: [(Snippet, Mode); 19] = [
    (Snippet::Ldr, Mode::El1h),
    (Snippet::Ldrb, Mode::El1h),
    (Snippet::LdrshW, Mode::El1h),
    (Snippet::Str, Mode::El1h),
    (Snippet::Ldp, Mode::El1h),
    (Snippet::LdrPost, Mode::El1h),
    (Snippet::Stp, Mode::El1h),
    (Snippet::LdrMisaligned, Mode::El1h),
    (Snippet::StrMisaligned, Mode::El1h),
    (Snippet::Fetch, Mode::El1h),
    (Snippet::FetchBr, Mode::El1h),
    (Snippet::DcZva, Mode::El1h),
    (Snippet::DcCivac, Mode::El1h),
    (Snippet::AtS1e1r, Mode::El1h),
    (Snippet::Ldr, Mode::El1t),
    (Snippet::Fetch, Mode::El1t),
    (Snippet::Ldr, Mode::El0),
    (Snippet::Str, Mode::El0),
    (Snippet::Fetch, Mode::El0),
];

/// The address-independent kinds: `BRK` from each mode.
pub const BRKS: [Mode; 3] = [Mode::El1h, Mode::El1t, Mode::El0];

impl Kind {
    /// The `brk_<mode>` kind.
    pub const fn brk(mode: Mode) -> Self {
        Self {
            snippet: Snippet::Brk,
            mode,
            shape: None,
        }
    }

    /// Every kind the probe knows, with or without the MMU, in output order: the three `brk_*`,
    /// then the [`ACCESSES`] without a shape, then with each [`Shape`].
    pub fn all() -> impl Iterator<Item = Self> {
        let shapes = [None].into_iter().chain(Shape::ALL.map(Some));
        BRKS.into_iter()
            .map(Self::brk)
            .chain(shapes.flat_map(|shape| {
                ACCESSES.into_iter().map(move |(snippet, mode)| Self {
                    snippet,
                    mode,
                    shape,
                })
            }))
    }

    /// Whether this kind's name is `name`.
    pub fn is_named(&self, name: &str) -> bool {
        let mut rest = name;
        self.pieces()
            .iter()
            .all(|piece| match rest.strip_prefix(piece) {
                Some(tail) => {
                    rest = tail;
                    true
                }
                None => false,
            })
            && rest.is_empty()
    }

    /// The name, as the pieces it is printed from.
    fn pieces(&self) -> [&'static str; 3] {
        let mode = match (self.snippet, self.mode) {
            (Snippet::Brk, Mode::El1h) => "_el1h",
            (_, mode) => mode.suffix(),
        };
        let shape = self.shape.map_or("", Shape::suffix);
        [self.snippet.name(), mode, shape]
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [snippet, mode, shape] = self.pieces();
        write!(f, "{snippet}{mode}{shape}")
    }
}

#[cfg(test)]
mod tests {
    use std::string::{String, ToString};
    use std::vec::Vec;

    use super::*;

    fn names(shape: Option<Shape>) -> Vec<String> {
        ACCESSES
            .iter()
            .map(|&(snippet, mode)| {
                Kind {
                    snippet,
                    mode,
                    shape,
                }
                .to_string()
            })
            .collect()
    }

    #[test]
    fn mmu_off_kinds_are_the_protocol_list_in_order() {
        assert_eq!(
            names(None),
            [
                "ldr",
                "ldrb",
                "ldrsh_w",
                "str",
                "ldp",
                "ldr_post",
                "stp",
                "ldr_misaligned",
                "str_misaligned",
                "fetch",
                "fetch_br",
                "dc_zva",
                "dc_civac",
                "at_s1e1r",
                "ldr_el1t",
                "fetch_el1t",
                "ldr_el0",
                "str_el0",
                "fetch_el0"
            ]
        );
        let brks: Vec<String> = BRKS.iter().map(|&m| Kind::brk(m).to_string()).collect();
        assert_eq!(brks, ["brk_el1h", "brk_el1t", "brk_el0"]);
    }

    #[test]
    fn shaped_names_append_the_shape_after_the_mode() {
        let page = names(Some(Shape::Page));
        assert!(page.contains(&"ldr_el0_page".to_string()));
        assert!(names(Some(Shape::TableAt)).contains(&"at_s1e1r_table_at".to_string()));
    }

    #[test]
    fn every_name_is_unique_and_matches_only_its_own_kind() {
        let kinds: Vec<Kind> = Kind::all().collect();
        for kind in &kinds {
            let name = kind.to_string();
            let matching = kinds.iter().filter(|other| other.is_named(&name)).count();
            assert_eq!(matching, 1, "{name}");
        }
        assert_eq!(kinds.len(), 3 + 19 * 5);
    }

    #[test]
    fn modes_enter_with_daif_masked_and_the_right_stack() {
        assert_eq!(Mode::El1h.spsr(), 0x3c5);
        assert_eq!(Mode::El1t.spsr(), 0x3c4);
        assert_eq!(Mode::El0.spsr(), 0x3c0);
    }
}
