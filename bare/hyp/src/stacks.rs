//! Moat's EL2 stacks: one per CPU, each above a guard page that Moat's stage 1 leaves unmapped,
//! and a small emergency stack per CPU for the report of an exception taken at EL2.
//!
//! `link.ld` reserves [`CPUS`] slots of [`SLOT`] bytes at `__stacks`: slot `n` (CPU index `n`,
//! the boot CPU being 0) is its guard page, then its stack up to the slot's end. A stack that
//! overflows writes into its guard page and takes a translation fault at EL2 (Arm ARM D8,
//! `AArch64.TranslationFault`) instead of overwriting what lies below. The fault's own vector
//! cannot push onto that stack either, so the vectors of exceptions taken with `SP_EL2`
//! (`switch.rs`) first move to the CPU's emergency stack, found from the faulting `SP` by
//! arithmetic alone: `(SP - __stacks) >> SLOT_SHIFT` is the slot. A slot size that is a power
//! of two is what makes that possible without touching memory.

use crate::platform::PhysRange;

/// log2 of a slot's size.
pub const SLOT_SHIFT: u32 = 17;
/// Bytes per CPU: the guard page and the stack.
pub const SLOT: u64 = 1 << SLOT_SHIFT;
/// The guard page at the bottom of each slot.
pub const GUARD: u64 = 4096;
/// The CPUs Moat has stacks for (`link.ld`).
pub const CPUS: usize = 8;
/// Each CPU's emergency stack (`__emergency_stacks`, `link.ld`).
pub const EMERGENCY: u64 = 4096;

unsafe extern "C" {
    static __stacks: u8;
}

fn base() -> u64 {
    // Only the symbol's address is taken; nothing is read through it.
    &raw const __stacks as u64
}

/// The guard page of CPU `cpu`'s stack.
pub fn guard(cpu: usize) -> PhysRange {
    PhysRange {
        base: base() + cpu as u64 * SLOT,
        size: GUARD,
    }
}

/// The CPU whose guard page holds `address`, if one does.
pub fn guard_holding(address: u64) -> Option<usize> {
    (0..CPUS).find(|&cpu| (guard(cpu).base..guard(cpu).end()).contains(&address))
}
