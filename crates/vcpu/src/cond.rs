//! Condition codes of trapped AArch32 instructions.
//!
//! A conditional AArch32 instruction that traps to EL2 may do so even when its condition fails
//! (it is IMPLEMENTATION DEFINED whether the condition is checked first; `ESR_EL2.CV` and
//! `COND` say what the hardware saw). A failed condition means the instruction is a no-op:
//! Moat then only advances the PC. Rules: `ConditionHolds()` and the `ESR_ELx` "ISS encoding
//! for an exception from ... MCR or MRC" `CV`/`COND` description.

/// `PSTATE.{N, Z, C, V}` in `SPSR_EL2` bits \[31:28\].
const NZCV_SHIFT: u32 = 28;

/// Whether an instruction with condition `cond` (the `COND` field, 0b0000..=0b1111) executes
/// with the flags of `spsr_el2`, per `ConditionHolds()`. 0b1110 and 0b1111 always hold.
#[must_use]
pub const fn condition_holds(cond: u8, spsr_el2: u64) -> bool {
    let flags = (spsr_el2 >> NZCV_SHIFT) & 0xF;
    let (n, z, c, v) = (
        flags & 8 != 0,
        flags & 4 != 0,
        flags & 2 != 0,
        flags & 1 != 0,
    );
    let base = match cond >> 1 {
        0b000 => z,
        0b001 => c,
        0b010 => n,
        0b011 => v,
        0b100 => c && !z,
        0b101 => n == v,
        0b110 => n == v && !z,
        _ => true,
    };
    // cond<0> inverts the result, except for 0b1111 (AL).
    if cond & 1 == 1 && cond != 0b1111 {
        !base
    } else {
        base
    }
}

/// Whether a trapped AArch32 instruction must be performed: its condition is unknown to have
/// failed (`CV` = 0 means the hardware passed it or the encoding is unconditional), or known and
/// holding.
#[must_use]
pub const fn trapped_instruction_executes(cv: bool, cond: u8, spsr_el2: u64) -> bool {
    !cv || condition_holds(cond, spsr_el2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: u64 = 1 << 31;
    const Z: u64 = 1 << 30;
    const C: u64 = 1 << 29;
    const V: u64 = 1 << 28;

    #[test]
    fn each_condition_follows_conditionholds() {
        let cases: &[(u8, u64, bool)] = &[
            (0b0000, Z, true),      // EQ
            (0b0001, Z, false),     // NE
            (0b0010, C, true),      // CS
            (0b0011, C, false),     // CC
            (0b0100, N, true),      // MI
            (0b0101, 0, true),      // PL
            (0b0110, V, true),      // VS
            (0b0111, V, false),     // VC
            (0b1000, C, true),      // HI
            (0b1000, C | Z, false), // HI
            (0b1001, Z, true),      // LS
            (0b1010, N | V, true),  // GE
            (0b1011, N, true),      // LT
            (0b1100, 0, true),      // GT
            (0b1100, Z, false),     // GT
            (0b1101, Z, true),      // LE
            (0b1110, 0, true),      // AL
            (0b1111, 0, true),      // unconditional
        ];
        for &(cond, flags, holds) in cases {
            assert_eq!(
                condition_holds(cond, flags | 0x1d3),
                holds,
                "cond {cond:#06b} flags {flags:#x}"
            );
        }
    }

    #[test]
    fn unknown_condition_means_the_instruction_executes() {
        assert!(trapped_instruction_executes(false, 0b0000, 0));
        assert!(!trapped_instruction_executes(true, 0b0000, 0));
    }
}
