//! The `MOAT-PROBE` result line, exactly as the host harness parses it (`README.md`,
//! "Output"), and the packing of PSTATE at handler entry into one number.

use core::fmt;

use moat_guest_rt::{ExceptionRecord, PstateAtEntry};

use crate::kinds::Kind;

/// PSTATE at handler entry in the `SPSR_EL1` layout: M\[3:0\] = `CurrentEL.EL` << 2 | `SPSel`,
/// D, A, I, F in bits \[9:6\], SSBS 12, PAN 22, UAO 23, DIT 24, TCO 25; and bit 32 + n set when
/// the CPU implements the field at bit n (so "absent" and "0" differ).
pub fn pack_pstate(pstate: &PstateAtEntry) -> u64 {
    let mut packed = (pstate.daif & 0x3c0) | (pstate.current_el & 0xc) | (pstate.spsel & 1);
    let optional = [
        (pstate.ssbs, 12),
        (pstate.pan, 22),
        (pstate.uao, 23),
        (pstate.dit, 24),
        (pstate.tco, 25),
    ];
    for (field, bit) in optional {
        if let Some(set) = field {
            packed |= (1 << (bit + 32)) | (u64::from(set) << bit);
        }
    }
    packed
}

/// The exception fields of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceptionFields {
    /// The vector offset.
    pub vector: u16,
    /// `ESR_EL1`.
    pub esr: u64,
    /// `FAR_EL1`.
    pub far: u64,
    /// `ELR_EL1` minus the address of the probed instruction.
    pub elr_offset: i64,
    /// `SPSR_EL1`.
    pub spsr: u64,
    /// PSTATE at handler entry, packed by [`pack_pstate`].
    pub pstate: u64,
}

impl ExceptionFields {
    /// The fields of `record`, with `ELR_EL1` taken relative to `probed`.
    pub fn new(record: &ExceptionRecord, probed: u64) -> Self {
        Self {
            vector: record.vector.0,
            esr: record.esr,
            far: record.far,
            elr_offset: record.elr.wrapping_sub(probed) as i64,
            spsr: record.spsr,
            pstate: pack_pstate(&record.pstate),
        }
    }
}

/// What a case gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not run (see `README.md` for when).
    Skipped,
    /// The access completed; a load's value.
    Completed {
        /// The loaded register, for loads.
        value: Option<u64>,
    },
    /// The exception the case took.
    Exception(ExceptionFields),
}

/// One `MOAT-PROBE` line (without the newline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// The case's kind.
    pub kind: Kind,
    /// The target address as given (`0` for `brk`).
    pub address: u64,
    /// What happened.
    pub outcome: Outcome,
    /// `PAR_EL1` after an `AT` case.
    pub par: Option<u64>,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MOAT-PROBE {} {:#x}", self.kind, self.address)?;
        match self.outcome {
            Outcome::Skipped => return write!(f, " skipped"),
            Outcome::Completed { value: None } => write!(f, " none")?,
            Outcome::Completed { value: Some(v) } => write!(f, " none value={v:#x}")?,
            Outcome::Exception(e) => write!(
                f,
                " vec={:#x} esr={:#x} far={:#x} elr={} spsr={:#x} pstate={:#x}",
                e.vector, e.esr, e.far, e.elr_offset, e.spsr, e.pstate
            )?,
        }
        match self.par {
            Some(par) => write!(f, " par={par:#x}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{Mode, Snippet};
    use crate::layout::Shape;

    const A72: PstateAtEntry = PstateAtEntry {
        daif: 0x3c0,
        current_el: 0x4,
        spsel: 1,
        pan: None,
        uao: None,
        dit: None,
        ssbs: None,
        tco: None,
    };

    fn kind(snippet: Snippet, mode: Mode, shape: Option<Shape>) -> Kind {
        Kind {
            snippet,
            mode,
            shape,
        }
    }

    #[test]
    fn pstate_of_a_core_without_optional_fields_is_the_spsr_of_el1h_masked() {
        assert_eq!(pack_pstate(&A72), 0x3c5);
    }

    #[test]
    fn implemented_fields_set_their_bit_plus_32_and_their_value_bit() {
        let n1_span0 = PstateAtEntry {
            pan: Some(true),
            uao: Some(false),
            ssbs: Some(false),
            ..A72
        };
        assert_eq!(pack_pstate(&n1_span0), 0x00c0_1000_0040_03c5);
        let max_mte = PstateAtEntry {
            dit: Some(false),
            tco: Some(true),
            ..n1_span0
        };
        assert_eq!(pack_pstate(&max_mte), 0x03c0_1000_0240_03c5);
    }

    #[test]
    fn exception_line_has_every_field_in_order() {
        let line = Line {
            kind: kind(Snippet::Ldr, Mode::El1h, Some(Shape::Page)),
            address: 0x1000_0000_0000,
            outcome: Outcome::Exception(ExceptionFields {
                vector: 0x200,
                esr: 0x9600_0003,
                far: 0x5a5a_4000_0000,
                elr_offset: 0,
                spsr: 0x3c5,
                pstate: 0x3c5,
            }),
            par: None,
        };
        assert_eq!(
            line.to_string(),
            "MOAT-PROBE ldr_page 0x100000000000 vec=0x200 esr=0x96000003 far=0x5a5a40000000 \
             elr=0 spsr=0x3c5 pstate=0x3c5"
        );
    }

    #[test]
    fn at_lines_end_in_par_with_or_without_an_exception() {
        let at = kind(Snippet::AtS1e1r, Mode::El1h, None);
        let done = Line {
            kind: at,
            address: 0x10_0000_0000,
            outcome: Outcome::Completed { value: None },
            par: Some(0x801),
        };
        assert_eq!(
            done.to_string(),
            "MOAT-PROBE at_s1e1r 0x1000000000 none par=0x801"
        );
    }

    #[test]
    fn loads_print_their_value_and_negative_elr_offsets_are_signed() {
        let load = Line {
            kind: kind(Snippet::Ldrb, Mode::El0, None),
            address: 0x4000_0000,
            outcome: Outcome::Completed { value: Some(0xc0) },
            par: None,
        };
        assert_eq!(
            load.to_string(),
            "MOAT-PROBE ldrb_el0 0x40000000 none value=0xc0"
        );
        let fields = ExceptionFields::new(
            &ExceptionRecord {
                vector: moat_guest_rt::VectorOffset(0x400),
                esr: 0,
                far: 0,
                elr: 0x1000,
                spsr: 0,
                pstate: A72,
            },
            0x1004,
        );
        assert_eq!(fields.elr_offset, -4);
    }

    #[test]
    fn skipped_lines_say_only_skipped() {
        let line = Line {
            kind: kind(Snippet::Ldr, Mode::El1h, Some(Shape::Block2m)),
            address: 0x5010_0000,
            outcome: Outcome::Skipped,
            par: None,
        };
        assert_eq!(
            line.to_string(),
            "MOAT-PROBE ldr_block2m 0x50100000 skipped"
        );
    }
}
