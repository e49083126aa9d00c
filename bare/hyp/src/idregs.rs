//! Reading the hardware's ID registers for a trapped guest `MRS` (`HCR_EL2.TID3`); the value
//! the guest gets is `moat_vcpu::idregs::guest_value` of this.

use moat_vcpu::idregs::IdRegister;

/// `MRS Xt, S3_0_C0_C<crm>_<op2>` at EL2.
macro_rules! read_id {
    ($crm:literal, $op2:literal) => {{
        let value: u64;
        // SAFETY: reads an ID register that the Arm ARM defines in the ID space (the caller's
        // table lists only those); ID registers have no side effects.
        unsafe {
            core::arch::asm!(
                concat!("mrs {}, s3_0_c0_c", $crm, "_", $op2),
                out(reg) value,
                options(nomem, nostack, preserves_flags)
            )
        };
        value
    }};
}

/// The hardware value of `reg`. Encodings of the ID space that the architecture reserves
/// read as zero (RAZ) and are not read at all.
pub fn hardware_value(reg: IdRegister) -> u64 {
    match (reg.crm, reg.op2) {
        // AArch32 ID registers in their AArch64 encodings.
        (1, 0) => read_id!(1, 0),
        (1, 1) => read_id!(1, 1),
        (1, 2) => read_id!(1, 2),
        (1, 3) => read_id!(1, 3),
        (1, 4) => read_id!(1, 4),
        (1, 5) => read_id!(1, 5),
        (1, 6) => read_id!(1, 6),
        (1, 7) => read_id!(1, 7),
        (2, 0) => read_id!(2, 0),
        (2, 1) => read_id!(2, 1),
        (2, 2) => read_id!(2, 2),
        (2, 3) => read_id!(2, 3),
        (2, 4) => read_id!(2, 4),
        (2, 5) => read_id!(2, 5),
        (2, 6) => read_id!(2, 6),
        (2, 7) => read_id!(2, 7),
        (3, 0) => read_id!(3, 0),
        (3, 1) => read_id!(3, 1),
        (3, 2) => read_id!(3, 2),
        (3, 4) => read_id!(3, 4),
        (3, 5) => read_id!(3, 5),
        (3, 6) => read_id!(3, 6),
        // ID_AA64PFR0/1, ZFR0, SMFR0.
        (4, 0) => read_id!(4, 0),
        (4, 1) => read_id!(4, 1),
        (4, 4) => read_id!(4, 4),
        (4, 5) => read_id!(4, 5),
        // ID_AA64DFR0/1, AFR0/1.
        (5, 0) => read_id!(5, 0),
        (5, 1) => read_id!(5, 1),
        (5, 4) => read_id!(5, 4),
        (5, 5) => read_id!(5, 5),
        // ID_AA64ISAR0/1/2.
        (6, 0) => read_id!(6, 0),
        (6, 1) => read_id!(6, 1),
        (6, 2) => read_id!(6, 2),
        // ID_AA64MMFR0/1/2.
        (7, 0) => read_id!(7, 0),
        (7, 1) => read_id!(7, 1),
        (7, 2) => read_id!(7, 2),
        _ => 0,
    }
}
