//! The guest's `CPACR_EL1`, trapped (`CPTR_EL2.TCPAC`) so that a CPU with SVE or SME looks
//! like one without: the guest reads `ZEN` and `SMEN` as zero (RES0 without the features),
//! while the hardware register has them set, so that an SVE or SME instruction passes the EL1
//! check and reaches Moat's EL2 trap (`CPTR_EL2.TZ`, `TSM`), which makes it UNDEFINED — what a
//! CPU without SVE does. Without this the guest would see an SVE access trap (`ESR_EL1.EC`
//! 0x19) that no SVE-less CPU raises.

use crate::vcpu::Vcpu;
use aarch64_cpu::registers::{CPACR_EL1, Writeable};

/// `CPACR_EL1.ZEN` (bits \[17:16\]) and `SMEN` (\[25:24\]).
const ZEN_SMEN: u64 = (0b11 << 16) | (0b11 << 24);

/// `CPACR_EL1` in the system-register encoding space (`op0` 3, `op1` 0, `CRn` 1, `CRm` 0,
/// `op2` 2).
pub const fn is_cpacr(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> bool {
    op0 == 3 && op1 == 0 && crn == 1 && crm == 0 && op2 == 2
}

/// The value the guest reads.
pub fn read_guest(vcpu: &Vcpu) -> u64 {
    vcpu.cpacr
}

/// The guest writes `value`: kept without `ZEN`/`SMEN`; the hardware gets them set.
pub fn write_guest(vcpu: &mut Vcpu, value: u64) {
    vcpu.cpacr = value & !ZEN_SMEN;
    CPACR_EL1.set(vcpu.cpacr | ZEN_SMEN);
}
