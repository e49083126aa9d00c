//! The probe's kinds: which instruction ([`Snippet`]), from which mode ([`Mode`]) and, with the
//! MMU on, through which mapping shape ([`Shape`]). A kind's name is the instruction, then `_usr`
//! for User mode, then the shape: `ldr`, `ldrd_usr`, `str_t16_usr_section`, `fetch_t_table_at`.
//! The reference kinds (`bkpt`, `udf` and their T32 forms) name their mode always: `bkpt_svc`,
//! `udf_t16_usr`.

use core::fmt;

/// The immediate of the `SVC` that ends a snippet whose access completed (fits A32 imm24 and
/// T32 imm8).
pub const MARK: u32 = 0xb3;
/// The immediate of the reference `BKPT` and `UDF`.
pub const REF_IMM: u32 = 0x0b;

/// `CPSR.T`: T32 state.
pub const CPSR_T: u32 = 1 << 5;

/// The instruction a case probes (the first of its snippet in `enter.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snippet {
    /// A32 `LDR r0, [r0]`.
    Ldr,
    /// A32 `LDRB r0, [r0]`.
    Ldrb,
    /// A32 `LDRH r0, [r0]`.
    Ldrh,
    /// A32 `LDRD r2, r3, [r0]`.
    Ldrd,
    /// A32 `STR r1, [r0]`.
    Str,
    /// A32 `STRD r2, r3, [r0]` (r2 = r3 = the store value).
    Strd,
    /// A32 `LDM r0, {r2, r3}`.
    Ldm,
    /// A32 `BX r0` to the target in ARM state: the probed instruction is the one there.
    Fetch,
    /// T32 16-bit `LDR r0, [r0]`.
    LdrT16,
    /// T32 32-bit `LDR.W r0, [r0]`.
    LdrT32,
    /// T32 16-bit `STR r1, [r0]`.
    StrT16,
    /// T32 `BX r0` to the target in T32 state (r0 = target | 1).
    FetchT,
    /// A32 `BKPT #REF_IMM`: a prefetch abort (debug event) taken to Abort mode.
    Bkpt,
    /// T32 `BKPT #REF_IMM`.
    BkptT16,
    /// A32 `UDF #REF_IMM`: an Undefined instruction exception.
    Udf,
    /// T32 16-bit `UDF #REF_IMM`.
    UdfT16,
}

/// The mode a case's snippet runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Supervisor mode (PL1).
    Svc,
    /// User mode (PL0).
    Usr,
}

impl Mode {
    /// `CPSR.M` of the mode.
    pub const fn bits(self) -> u32 {
        match self {
            Self::Svc => 0x13,
            Self::Usr => 0x10,
        }
    }
}

/// How a case maps its target with the MMU on (`probe.mmu=lpae` or `short`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// LPAE level-3 page (L1 table → L2 table → L3 page), or short-descriptor small page
    /// (L1 page table → L2 small page).
    Page,
    /// LPAE level-2 block (2 MiB).
    Block2m,
    /// LPAE level-1 block (1 GiB).
    Block1g,
    /// Short-descriptor section (1 MiB).
    Section,
    /// Short-descriptor supersection (16 MiB, output address bits \[39:32\] in the descriptor).
    Supersection,
    /// The level-1 table descriptor points at the target as the next-level table.
    TableAt,
    /// LPAE: the level-2 table descriptor points at the target as the level-3 table.
    TableAtL2,
    /// `TTBR1` points at the target as the level-1 table (`TTBCR` splits the VA space at 2^31:
    /// LPAE `T0SZ` = `T1SZ` = 1, short `N` = 1; the window lies in `TTBR1`'s half).
    TtbrAt,
}

impl Shape {
    /// The LPAE shapes, in output order.
    pub const LPAE: [Shape; 6] = [
        Self::Page,
        Self::Block2m,
        Self::Block1g,
        Self::TableAt,
        Self::TableAtL2,
        Self::TtbrAt,
    ];
    /// The short-descriptor shapes, in output order.
    pub const SHORT: [Shape; 5] = [
        Self::Section,
        Self::Supersection,
        Self::Page,
        Self::TableAt,
        Self::TtbrAt,
    ];

    /// The name's suffix.
    pub const fn suffix(self) -> &'static str {
        match self {
            Self::Page => "_page",
            Self::Block2m => "_block2m",
            Self::Block1g => "_block1g",
            Self::Section => "_section",
            Self::Supersection => "_supersection",
            Self::TableAt => "_table_at",
            Self::TableAtL2 => "_table_at_l2",
            Self::TtbrAt => "_ttbr_at",
        }
    }
}

impl Snippet {
    /// The instruction's part of the kind name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ldr => "ldr",
            Self::Ldrb => "ldrb",
            Self::Ldrh => "ldrh",
            Self::Ldrd => "ldrd",
            Self::Str => "str",
            Self::Strd => "strd",
            Self::Ldm => "ldm",
            Self::Fetch => "fetch",
            Self::LdrT16 => "ldr_t16",
            Self::LdrT32 => "ldr_t32",
            Self::StrT16 => "str_t16",
            Self::FetchT => "fetch_t",
            Self::Bkpt => "bkpt",
            Self::BkptT16 => "bkpt_t16",
            Self::Udf => "udf",
            Self::UdfT16 => "udf_t16",
        }
    }

    /// Whether the snippet is T32 code (entered with `CPSR.T` = 1).
    pub const fn thumb(self) -> bool {
        matches!(
            self,
            Self::LdrT16
                | Self::LdrT32
                | Self::StrT16
                | Self::FetchT
                | Self::BkptT16
                | Self::UdfT16
        )
    }

    /// Whether a completed run loaded a value (printed as `value=`).
    pub const fn loads(self) -> bool {
        matches!(
            self,
            Self::Ldr
                | Self::Ldrb
                | Self::Ldrh
                | Self::Ldrd
                | Self::Ldm
                | Self::LdrT16
                | Self::LdrT32
        )
    }

    /// Whether the instruction writes memory.
    pub const fn writes(self) -> bool {
        matches!(self, Self::Str | Self::Strd | Self::StrT16)
    }

    /// Whether the instruction branches to the target and executes there.
    pub const fn fetches(self) -> bool {
        matches!(self, Self::Fetch | Self::FetchT)
    }

    /// Whether it is a reference case (address-independent).
    pub const fn reference(self) -> bool {
        matches!(self, Self::Bkpt | Self::BkptT16 | Self::Udf | Self::UdfT16)
    }

    /// Bytes the access covers from the target.
    pub const fn extent(self) -> u64 {
        match self {
            Self::Ldrd | Self::Strd | Self::Ldm | Self::Fetch | Self::FetchT => 8,
            _ => 4,
        }
    }
}

/// One kind of case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// The instruction.
    pub snippet: Snippet,
    /// The mode it runs in.
    pub mode: Mode,
    /// The mapping shape (`None` with the MMU off, and for the reference kinds).
    pub shape: Option<Shape>,
}

/// The address-dependent instructions, in output order; each runs from SVC, then from USR.
pub const ACCESSES: [Snippet; 12] = [
    Snippet::Ldr,
    Snippet::Ldrb,
    Snippet::Ldrh,
    Snippet::Ldrd,
    Snippet::Str,
    Snippet::Strd,
    Snippet::Ldm,
    Snippet::Fetch,
    Snippet::LdrT16,
    Snippet::LdrT32,
    Snippet::StrT16,
    Snippet::FetchT,
];

/// The reference instructions, run once per mode before everything else.
pub const REFERENCES: [Snippet; 4] = [
    Snippet::Bkpt,
    Snippet::BkptT16,
    Snippet::Udf,
    Snippet::UdfT16,
];

/// The modes, in output order.
pub const MODES: [Mode; 2] = [Mode::Svc, Mode::Usr];

impl Kind {
    /// `CPSR` to enter the snippet with: the mode, `T` for T32, every other bit 0. A, I and F
    /// are clear (no interrupt source is enabled), so the handler's `CPSR` shows which masks
    /// the exception entry set: A and I for Abort mode, only I for Undefined mode, F unchanged
    /// (`AArch32.EnterMode()`).
    pub const fn spsr(&self) -> u32 {
        let t = if self.snippet.thumb() { CPSR_T } else { 0 };
        self.mode.bits() | t
    }

    /// Every kind, in output order: the references per mode, then the accesses without a shape,
    /// then with each shape of both formats.
    pub fn all() -> impl Iterator<Item = Self> {
        let references = REFERENCES.into_iter().flat_map(|snippet| {
            MODES.into_iter().map(move |mode| Self {
                snippet,
                mode,
                shape: None,
            })
        });
        let shapes = [None]
            .into_iter()
            .chain(Shape::LPAE.map(Some))
            .chain(Shape::SHORT.map(Some));
        references.chain(shapes.flat_map(Self::accesses))
    }

    /// The address-dependent kinds of one shape, in output order.
    pub fn accesses(shape: Option<Shape>) -> impl Iterator<Item = Self> {
        ACCESSES.into_iter().flat_map(move |snippet| {
            MODES.into_iter().map(move |mode| Self {
                snippet,
                mode,
                shape,
            })
        })
    }

    /// Whether this kind's name is `name`.
    pub fn is_named(&self, name: &str) -> bool {
        let mut rest = name;
        for piece in self.pieces() {
            match rest.strip_prefix(piece) {
                Some(tail) => rest = tail,
                None => return false,
            }
        }
        rest.is_empty()
    }

    /// The name, as the pieces it is printed from.
    fn pieces(&self) -> [&'static str; 3] {
        let mode = match (self.snippet.reference(), self.mode) {
            (true, Mode::Svc) => "_svc",
            (_, Mode::Usr) => "_usr",
            (false, Mode::Svc) => "",
        };
        [
            self.snippet.name(),
            mode,
            self.shape.map_or("", Shape::suffix),
        ]
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
        Kind::accesses(shape).map(|kind| kind.to_string()).collect()
    }

    #[test]
    fn mmu_off_kinds_are_the_protocol_list_in_order_svc_then_usr() {
        let names = names(None);
        assert_eq!(names.len(), 24);
        assert_eq!(names[..4], ["ldr", "ldr_usr", "ldrb", "ldrb_usr"]);
        assert_eq!(names[22..], ["fetch_t", "fetch_t_usr"]);
    }

    #[test]
    fn references_name_their_mode_always() {
        let names: Vec<String> = Kind::all().take(8).map(|k| k.to_string()).collect();
        assert_eq!(
            names,
            [
                "bkpt_svc",
                "bkpt_usr",
                "bkpt_t16_svc",
                "bkpt_t16_usr",
                "udf_svc",
                "udf_usr",
                "udf_t16_svc",
                "udf_t16_usr"
            ]
        );
    }

    #[test]
    fn shaped_names_append_the_shape_after_the_mode() {
        assert!(names(Some(Shape::Supersection)).contains(&"str_t16_usr_supersection".into()));
        assert!(names(Some(Shape::TableAt)).contains(&"fetch_t_table_at".into()));
    }

    #[test]
    fn every_name_matches_only_its_own_kind_except_shared_shape_names() {
        // `page` and `table_at` exist in both formats: the same name, the same kind value.
        let kinds: Vec<Kind> = Kind::all().collect();
        for kind in &kinds {
            let name = kind.to_string();
            assert!(
                kinds
                    .iter()
                    .filter(|o| o.is_named(&name))
                    .all(|o| o == kind),
                "{name}"
            );
        }
        assert!(!Kind::all().any(|k| k.is_named("ldr_t")));
        assert_eq!(kinds.len(), 8 + 24 * 12);
    }

    #[test]
    fn cases_enter_with_a_i_f_clear_and_t_for_t32() {
        let kind = |snippet, mode| Kind {
            snippet,
            mode,
            shape: None,
        };
        assert_eq!(kind(Snippet::Ldr, Mode::Svc).spsr(), 0x13);
        assert_eq!(kind(Snippet::Ldr, Mode::Usr).spsr(), 0x10);
        assert_eq!(kind(Snippet::LdrT32, Mode::Svc).spsr(), 0x33);
        assert_eq!(kind(Snippet::FetchT, Mode::Usr).spsr(), 0x30);
    }
}
