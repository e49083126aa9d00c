//! The CP15 registers the probe reads and writes (Arm ARM, AArch32 System registers), one
//! function each.

use core::arch::asm;

/// Defines a reader of a 32-bit CP15 register.
macro_rules! cp15_read {
    ($(#[$doc:meta])* $name:ident, $op1:literal, $crn:ident, $crm:ident, $op2:literal) => {
        $(#[$doc])*
        pub fn $name() -> u32 {
            let value: u32;
            // SAFETY: an MRC of this register at PL1 reads it without side effects.
            unsafe {
                asm!(concat!("mrc p15, ", $op1, ", {}, ", stringify!($crn), ", ", stringify!($crm), ", ", $op2),
                    out(reg) value, options(nomem, nostack, preserves_flags));
            }
            value
        }
    };
}

/// Defines a writer of a 32-bit CP15 register (followed by `ISB`).
macro_rules! cp15_write {
    ($(#[$doc:meta])* $name:ident, $op1:literal, $crn:ident, $crm:ident, $op2:literal) => {
        $(#[$doc])*
        ///
        /// # Safety
        ///
        /// The new value must keep the probe's code, data and stacks reachable.
        pub unsafe fn $name(value: u32) {
            // SAFETY: the caller keeps the probe's own memory reachable; ISB makes the write
            // visible to what follows.
            unsafe {
                asm!(concat!("mcr p15, ", $op1, ", {}, ", stringify!($crn), ", ", stringify!($crm), ", ", $op2), "isb",
                    in(reg) value, options(nostack, preserves_flags));
            }
        }
    };
}

cp15_read!(/// `MIDR`.
    midr, 0, c0, c0, 0);
cp15_read!(/// `ID_MMFR0` (VMSA support, `ID_MMFR0.VMSA` 0b0101: LPAE).
    id_mmfr0, 0, c0, c1, 4);
cp15_read!(/// `SCTLR`.
    sctlr, 0, c1, c0, 0);
cp15_read!(/// `DFSR`.
    dfsr, 0, c5, c0, 0);
cp15_read!(/// `IFSR`.
    ifsr, 0, c5, c0, 1);
cp15_read!(/// `DFAR`.
    dfar, 0, c6, c0, 0);
cp15_read!(/// `IFAR`.
    ifar, 0, c6, c0, 2);
cp15_write!(/// `SCTLR`.
    set_sctlr, 0, c1, c0, 0);
cp15_write!(/// `VBAR`.
    set_vbar, 0, c12, c0, 0);
cp15_write!(/// `TTBCR`.
    set_ttbcr, 0, c2, c0, 2);
cp15_write!(/// `DACR`.
    set_dacr, 0, c3, c0, 0);
cp15_write!(/// `MAIR0` (LPAE; `PRRR` with the short format).
    set_mair0, 0, c10, c2, 0);
cp15_write!(/// `MAIR1` (LPAE; `NMRR` with the short format).
    set_mair1, 0, c10, c2, 1);

/// Sets the 64-bit `TTBR0` (`MCRR p15, 0, <lo>, <hi>, c2`; the short format uses the low word).
///
/// # Safety
///
/// The tables it points at must map the probe's own memory the way the caller relies on.
pub unsafe fn set_ttbr0(value: u64) {
    // SAFETY: the caller guarantees the tables; ISB makes the write visible.
    unsafe {
        asm!("mcrr p15, 0, {}, {}, c2", "isb", in(reg) value as u32, in(reg) (value >> 32) as u32,
            options(nostack, preserves_flags));
    }
}

/// Sets the 64-bit `TTBR1` (`MCRR p15, 1, <lo>, <hi>, c2`).
///
/// # Safety
///
/// Only addresses in `TTBR1`'s half of the VA space (per `TTBCR`) may translate through it, and
/// the probe's own memory must not be among them.
pub unsafe fn set_ttbr1(value: u64) {
    // SAFETY: the caller guarantees nothing of the probe's translates through TTBR1.
    unsafe {
        asm!("mcrr p15, 1, {}, {}, c2", "isb", in(reg) value as u32, in(reg) (value >> 32) as u32,
            options(nostack, preserves_flags));
    }
}

/// Invalidates the whole TLB after table writes: `DSB`, `TLBIALL`, `DSB`, `ISB`.
pub fn tlb_invalidate_all() {
    // SAFETY: TLB maintenance only drops cached translations; the barriers order it after the
    // table writes and before the next access.
    unsafe {
        asm!("dsb", "mcr p15, 0, {0}, c8, c7, 0", "dsb", "isb", in(reg) 0u32,
            options(nostack, preserves_flags));
    }
}
