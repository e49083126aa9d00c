//! The guest's `CPACR_EL1`, trapped (`CPTR_EL2.TCPAC`) so that a CPU with SVE or SME looks
//! like one without: the guest reads `ZEN` and `SMEN` as zero (RES0 without the features),
//! while the hardware register has them set, so that an SVE or SME instruction passes the EL1
//! check and reaches Moat's EL2 trap (`CPTR_EL2.TZ`, `TSM`), which makes it UNDEFINED — what a
//! CPU without SVE does. Without this the guest would see an SVE access trap (`ESR_EL1.EC`
//! 0x19) that no SVE-less CPU raises.
//!
//! Where the guest's `FPEN` traps EL1, its FP check would come before that EL2 trap (EC 0x07
//! for `ZCR_EL1` or an SVE instruction, measured by `./x sweep` on `max`): the hardware's `FPEN`
//! is then opened and FP/SIMD trapped at EL2 instead (`CPTR_EL2.TFP`), and `exits.rs` reflects
//! those traps to the guest's EL1 (`moat_vcpu::idregs::fp_controls`).

use crate::vcpu::Vcpu;
use aarch64_cpu::registers::{CPACR_EL1, CPTR_EL2, Readable, Writeable};
use moat_arm::field::Field;
use moat_vcpu::idregs::fp_controls;

/// `CPACR_EL1.FPEN` (bits \[21:20\]).
const FPEN: Field = Field::new(20, 2);
/// `CPTR_EL2.TCPAC` (bit 31, E2H = 0): set for AArch64 guests, whose `CPACR_EL1` Moat keeps.
const TCPAC: Field = Field::new(31, 1);
/// `CPTR_EL2.TFP` (bit 10, E2H = 0).
const TFP: Field = Field::new(10, 1);

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

/// The guest writes `value`: kept without `ZEN`/`SMEN`; the hardware gets them set, and, for
/// an AArch64 guest (`CPTR_EL2.TCPAC` set, see `vm.rs`), the FP/SIMD controls of
/// [`fp_controls`]. Moat runs each vCPU on its own CPU, so `CPTR_EL2` is this vCPU's.
pub fn write_guest(vcpu: &mut Vcpu, value: u64) {
    vcpu.cpacr = value & !ZEN_SMEN;
    let mut hardware = vcpu.cpacr | ZEN_SMEN;
    let cptr = CPTR_EL2.get();
    if TCPAC.is_set(cptr) {
        let controls = fp_controls(vcpu.cpacr);
        hardware = FPEN.insert(hardware, controls.fpen);
        CPTR_EL2.set(TFP.with_flag(cptr, controls.trap_fp));
    }
    CPACR_EL1.set(hardware);
}
