//! The few EL1 system registers the probe reads or writes beyond what `moat-guest-rt` offers:
//! `PAR_EL1` (the `AT` result), `ID_AA64MMFR0_EL1`
//! (PARange, for the diagnostic line), and the stage-1 translation controls (`SCTLR_EL1`,
//! `MAIR_EL1`, `TCR_EL1`, `TTBR0_EL1`) with the TLB maintenance that goes with them.

use core::arch::asm;

/// Reads one system register.
macro_rules! read {
    ($reg:literal) => {{
        let value: u64;
        // SAFETY: MRS writes only the output register; every register read here exists at EL1
        // on every Armv8.0-A CPU, and touches no memory, stack or flags.
        unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) value, options(nomem, nostack, preserves_flags)) };
        value
    }};
}

/// `PAR_EL1`: the result of the last `AT` instruction.
pub fn par_el1() -> u64 {
    read!("par_el1")
}

/// `ID_AA64MMFR0_EL1`: PARange in bits \[3:0\].
pub fn id_aa64mmfr0_el1() -> u64 {
    read!("id_aa64mmfr0_el1")
}

/// `MIDR_EL1`: the CPU's identity (diagnostic only).
pub fn midr_el1() -> u64 {
    read!("midr_el1")
}

/// `SCTLR_EL1`.
pub fn sctlr_el1() -> u64 {
    read!("sctlr_el1")
}

/// Writes `SCTLR_EL1` and synchronises the context (`ISB`).
///
/// # Safety
///
/// With `M` set, the code, stack, data and console in use must be mapped by the tables in
/// `TTBR0_EL1`/`TCR_EL1`/`MAIR_EL1` at their current addresses (an identity map).
pub unsafe fn set_sctlr_el1(value: u64) {
    // SAFETY: The caller guarantees that whatever translation regime `value` turns on maps the
    // running code and its data where they are; the write itself touches no memory.
    unsafe { asm!("msr sctlr_el1, {}", "isb", in(reg) value, options(nostack, preserves_flags)) };
}

/// Installs a stage-1 regime for TTBR0 (`MAIR_EL1`, `TCR_EL1`, `TTBR0_EL1`) and invalidates the
/// EL1&0 TLBs. Takes effect only when `SCTLR_EL1.M` is (or becomes) 1.
///
/// # Safety
///
/// If the MMU is on, the new tables must map the running code and its data as the old ones did.
pub unsafe fn set_translation(mair: u64, tcr: u64, ttbr0: u64) {
    // SAFETY: The registers describe a regime the caller vouches for; TLBI VMALLE1 only drops
    // cached translations; DSB/ISB order the table writes before the next walk. No memory of
    // ours is written.
    unsafe {
        asm!(
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {ttbr0}",
            "isb",
            mair = in(reg) mair, tcr = in(reg) tcr, ttbr0 = in(reg) ttbr0,
            options(nostack, preserves_flags)
        )
    };
    flush_tlb();
}

/// Makes table writes visible to the walker and drops every cached EL1&0 translation:
/// `DSB ISH`, `TLBI VMALLE1`, `DSB ISH`, `ISB` (Arm ARM "TLB maintenance requirements").
pub fn flush_tlb() {
    // SAFETY: Barriers and a TLB invalidation change no register or memory; after them, the next
    // walk reads the tables as last written (which the caller keeps consistent).
    unsafe {
        asm!(
            "dsb ish",
            "tlbi vmalle1",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}
