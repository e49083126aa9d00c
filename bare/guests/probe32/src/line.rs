//! The `MOAT-PROBE` result line, exactly as the host harness parses it (`README.md`, "Output"):
//! the exception fields of AArch32 (`vec`, `fsr`, `far`, `lr`, `spsr`, `cpsr`, `mode`), or
//! `none` / `skipped`.

use core::fmt;

use crate::kinds::Kind;

/// What the vector stub saw (stored by `enter.rs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Record {
    /// The vector offset (0x04 undefined, 0x08 SVC, 0x0c prefetch abort, 0x10 data abort).
    pub vector: u32,
    /// `CPSR` at handler entry.
    pub cpsr: u32,
    /// `LR_<mode>`.
    pub lr: u32,
    /// `SPSR_<mode>`.
    pub spsr: u32,
    /// `DFSR` as the handler found it.
    pub dfsr: u32,
    /// `DFAR`.
    pub dfar: u32,
    /// `IFSR`.
    pub ifsr: u32,
    /// `IFAR`.
    pub ifar: u32,
    /// The interrupted r0 (a completed load's value).
    pub r0: u32,
}

/// The name of the AArch32 mode `CPSR.M` (bits \[4:0\]) encodes.
pub const fn mode_name(cpsr: u32) -> &'static str {
    match cpsr & 0x1f {
        0x10 => "usr",
        0x11 => "fiq",
        0x12 => "irq",
        0x13 => "svc",
        0x16 => "mon",
        0x17 => "abt",
        0x1a => "hyp",
        0x1b => "und",
        0x1f => "sys",
        _ => "invalid",
    }
}

/// What a case gave.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// Not run (see `README.md` for when).
    Skipped,
    /// The access completed; a load's value.
    Completed(Option<u32>),
    /// The exception the case took, with `LR` taken relative to the probed instruction.
    Exception {
        /// The record.
        record: Record,
        /// The address of the probed instruction.
        probed: u32,
    },
}

/// One `MOAT-PROBE` line (without the newline).
#[derive(Debug, Clone, Copy)]
pub struct Line {
    /// The case's kind.
    pub kind: Kind,
    /// The target address as given (`0` for the reference kinds).
    pub address: u64,
    /// What happened.
    pub outcome: Outcome,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MOAT-PROBE {} {:#x}", self.kind, self.address)?;
        match self.outcome {
            Outcome::Skipped => write!(f, " skipped"),
            Outcome::Completed(None) => write!(f, " none"),
            Outcome::Completed(Some(value)) => write!(f, " none value={value:#x}"),
            Outcome::Exception { record: r, probed } => {
                // A data abort reports in DFSR/DFAR; every other exception in IFSR/IFAR (which
                // only a prefetch abort writes: the probe zeroes both pairs before each case).
                let (fsr, far) = if r.vector == 0x10 {
                    (r.dfsr, r.dfar)
                } else {
                    (r.ifsr, r.ifar)
                };
                let lr = r.lr.wrapping_sub(probed) as i32;
                write!(
                    f,
                    " vec={:#x} fsr={fsr:#x} far={far:#x} lr={lr} spsr={:#x} cpsr={:#x} mode={}",
                    r.vector,
                    r.spsr,
                    r.cpsr,
                    mode_name(r.cpsr)
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::*;
    use crate::kinds::{Mode, Shape, Snippet};

    fn kind(snippet: Snippet, mode: Mode, shape: Option<Shape>) -> Kind {
        Kind {
            snippet,
            mode,
            shape,
        }
    }

    const DATA_ABORT: Record = Record {
        vector: 0x10,
        cpsr: 0x197,
        lr: 0x4010_0408,
        spsr: 0x13,
        dfsr: 0x210,
        dfar: 0x8000_0000,
        ifsr: 0x5,
        ifar: 0x6,
        r0: 0,
    };

    #[test]
    fn data_aborts_report_dfsr_dfar_and_lr_from_the_probed_instruction() {
        let line = Line {
            kind: kind(Snippet::Ldr, Mode::Svc, Some(Shape::Page)),
            address: 0x50000000,
            outcome: Outcome::Exception {
                record: DATA_ABORT,
                probed: 0x4010_0400,
            },
        };
        assert_eq!(
            line.to_string(),
            "MOAT-PROBE ldr_page 0x50000000 vec=0x10 fsr=0x210 far=0x80000000 lr=8 spsr=0x13 \
             cpsr=0x197 mode=abt"
        );
    }

    #[test]
    fn other_vectors_report_ifsr_ifar_and_negative_offsets_are_signed() {
        let record = Record {
            vector: 0x4,
            cpsr: 0x9b,
            ..DATA_ABORT
        };
        let line = Line {
            kind: kind(Snippet::UdfT16, Mode::Usr, None),
            address: 0,
            outcome: Outcome::Exception {
                record,
                probed: 0x4010_040c,
            },
        };
        assert_eq!(
            line.to_string(),
            "MOAT-PROBE udf_t16_usr 0x0 vec=0x4 fsr=0x5 far=0x6 lr=-4 spsr=0x13 cpsr=0x9b mode=und"
        );
    }

    #[test]
    fn completed_and_skipped_cases_say_so() {
        let load = Line {
            kind: kind(Snippet::Ldrh, Mode::Usr, None),
            address: 0x4000_0000,
            outcome: Outcome::Completed(Some(0xc0)),
        };
        assert_eq!(
            load.to_string(),
            "MOAT-PROBE ldrh_usr 0x40000000 none value=0xc0"
        );
        let skipped = Line {
            kind: kind(Snippet::Str, Mode::Svc, Some(Shape::Section)),
            address: 0x1_0000_0000,
            outcome: Outcome::Skipped,
        };
        assert_eq!(
            skipped.to_string(),
            "MOAT-PROBE str_section 0x100000000 skipped"
        );
    }

    #[test]
    fn modes_are_named_from_cpsr_m() {
        assert_eq!(mode_name(0x197), "abt");
        assert_eq!(mode_name(0x9b), "und");
        assert_eq!(mode_name(0x1d3), "svc");
        assert_eq!(mode_name(0x10), "usr");
        assert_eq!(mode_name(0x15), "invalid");
    }
}
