//! `PAR_EL1` (and the AArch32 `PAR` in its low bits) after an address translation (`AT`)
//! instruction that faulted: `F` = 1 and the fault. SPEC.md §2: Moat writes the stage-1 result
//! of an `AT` whose walk meets an address beyond the guest's PARange, rather than a data abort.
//! Source: `PAR_EL1` and `PAR` "when PAR.F == 1" (DDI 0487).

use crate::field::Field;
use crate::fsc::Fsc;
use crate::fsr32::{Fault32, Fsr32Format};

/// `F`: the translation aborted.
const F: Field = Field::bit(0);
/// `FST` (AArch64, and AArch32 LPAE): the fault status code.
const FST: Field = Field::new(1, 6);
/// `PTW` (AArch64) / `S2WLK` (AArch32 LPAE): a stage-2 fault on the stage-1 walk.
const PTW: Field = Field::bit(8);
/// `S` (AArch64) / `FSTAGE` (AArch32 LPAE): the fault was at stage 2.
const S: Field = Field::bit(9);
/// Bit 11: RES1 in `PAR_EL1` with `F` = 1; `LPAE` in the AArch32 `PAR`.
const RES1_OR_LPAE: Field = Field::bit(11);
/// `FS[4:0]` (AArch32 short format).
const FS: Field = Field::new(1, 5);
/// `FS[5]` (AArch32 short format): the external abort type, like `DFSR.ExT`.
const FS5_EXT: Field = Field::bit(6);

/// The `PAR_EL1` value for an AArch64 `AT` that faulted with `fst` at stage 1 (`S` = 0,
/// `PTW` = 0); the IMPLEMENTATION DEFINED bits \[63:48\] are 0.
#[must_use]
pub const fn par_el1_stage1_fault(fst: Fsc) -> u64 {
    let par = F.with_flag(0, true);
    let par = FST.insert(par, fst.code() as u64);
    let par = PTW.with_flag(par, false);
    let par = S.with_flag(par, false);
    RES1_OR_LPAE.with_flag(par, true)
}

/// The AArch32 `PAR` for an `ATS1*` that faulted with `fault` at stage 1, in the format the
/// guest's `TTBCR.EAE` selects; `None` when that format has no code for `fault`.
#[must_use]
pub fn par32_stage1_fault(fault: Fault32, format: Fsr32Format) -> Option<u64> {
    let code = u64::from(fault.code(format)?);
    let par = F.with_flag(0, true);
    Some(match format {
        Fsr32Format::Lpae => RES1_OR_LPAE.with_flag(FST.insert(par, code), true),
        Fsr32Format::Short => FS5_EXT.with_flag(FS.insert(par, code), false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsc::Level;

    #[test]
    fn aarch64_address_size_fault_level_1_is_0x803() {
        let par = par_el1_stage1_fault(Fsc::AddressSize { level: Level::L1 });
        assert_eq!(par, 0x803, "F=1, FST=0x01, RES1 bit 11");
    }

    #[test]
    fn aarch32_lpae_address_size_fault_level_2_sets_lpae_bit() {
        let fault = Fault32::AddressSize { level: Level::L2 };
        assert_eq!(par32_stage1_fault(fault, Fsr32Format::Lpae), Some(0x805));
    }

    #[test]
    fn aarch32_short_walk_abort_level_1_puts_fs_in_bits_5_1() {
        let fault = Fault32::SyncExternalOnWalk { level: Level::L1 };
        assert_eq!(
            par32_stage1_fault(fault, Fsr32Format::Short),
            Some(0b1100 << 1 | 1)
        );
    }

    #[test]
    fn aarch32_short_format_has_no_address_size_fault() {
        let fault = Fault32::AddressSize { level: Level::L1 };
        assert_eq!(par32_stage1_fault(fault, Fsr32Format::Short), None);
    }
}
