//! The ID registers a guest reads: trapped by `HCR_EL2.TID3` and answered with the hardware's
//! value, sanitised so that the guest sees the machine Moat presents (SPEC §1).
//!
//! - `ID_AA64MMFR0_EL1.PARange` is the guest-visible PARange `P`, so that an Address Size
//!   Fault arrives exactly at `2^P`, as on a real machine of that PARange.
//! - Features Moat does not virtualise are reported absent: EL2 and nested virtualisation, VHE,
//!   Secure EL2, SVE and SME (their state is not switched; `CPTR_EL2` traps them), MTE
//!   (no tagged stage 2), MPAM, AMU, RME, SPE, the trace unit and buffer, BRBE, fine-grained
//!   traps, and the 52-bit translation formats (FEAT_LPA2 granule encodings), which Moat's
//!   walker does not read yet.
//! - Everything else is the hardware's value. Reserved encodings of the ID space read as zero,
//!   as the Arm ARM defines them (RAZ).

use moat_arm::field::Field;
use moat_arm::parange::PaRange;

/// A register in the ID space trapped by `HCR_EL2.TID3`: `op0` = 3, `op1` = 0, `CRn` = 0,
/// `CRm` = 1..=7, `op2` = 0..=7 (`MRS Xt, S3_0_C0_C<crm>_<op2>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRegister {
    /// `CRm`, 1..=7.
    pub crm: u8,
    /// `op2`, 0..=7.
    pub op2: u8,
}

impl IdRegister {
    /// The ID register a trapped `MRS` names, or `None` outside the ID space.
    #[must_use]
    pub const fn from_encoding(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Option<Self> {
        if op0 == 3 && op1 == 0 && crn == 0 && crm >= 1 && crm <= 7 && op2 <= 7 {
            Some(Self { crm, op2 })
        } else {
            None
        }
    }

    /// Its place in [`IdValues`].
    const fn index(self) -> usize {
        (self.crm as usize - 1) * 8 + self.op2 as usize
    }

    /// The register at `index` of [`IdValues`].
    const fn at(index: usize) -> Self {
        // Truncations impossible: `index` < 56.
        #[allow(clippy::cast_possible_truncation)]
        Self {
            crm: (index / 8) as u8 + 1,
            op2: (index % 8) as u8,
        }
    }

    const fn is(self, crm: u8, op2: u8) -> bool {
        self.crm == crm && self.op2 == op2
    }
}

/// `ID_PFR1_EL1` (AArch32 `ID_PFR1`, `CRm` 1, `op2` 1).
pub const ID_PFR1_EL1: IdRegister = IdRegister { crm: 1, op2: 1 };
/// `ID_AA64PFR0_EL1` (`CRm` 4, `op2` 0).
pub const ID_AA64PFR0_EL1: IdRegister = IdRegister { crm: 4, op2: 0 };
/// `ID_AA64PFR1_EL1`.
pub const ID_AA64PFR1_EL1: IdRegister = IdRegister { crm: 4, op2: 1 };
/// `ID_AA64ZFR0_EL1` (SVE).
pub const ID_AA64ZFR0_EL1: IdRegister = IdRegister { crm: 4, op2: 4 };
/// `ID_AA64SMFR0_EL1` (SME).
pub const ID_AA64SMFR0_EL1: IdRegister = IdRegister { crm: 4, op2: 5 };
/// `ID_AA64DFR0_EL1`.
pub const ID_AA64DFR0_EL1: IdRegister = IdRegister { crm: 5, op2: 0 };
/// `ID_AA64MMFR0_EL1`.
pub const ID_AA64MMFR0_EL1: IdRegister = IdRegister { crm: 7, op2: 0 };
/// `ID_AA64MMFR1_EL1`.
pub const ID_AA64MMFR1_EL1: IdRegister = IdRegister { crm: 7, op2: 1 };
/// `ID_AA64MMFR2_EL1`.
pub const ID_AA64MMFR2_EL1: IdRegister = IdRegister { crm: 7, op2: 2 };

/// The fields Moat changes, by register (Arm ARM field names).
mod field {
    use moat_arm::field::Field;
    pub const PFR1_32_VIRTUALIZATION: Field = Field::new(12, 4);
    pub const PFR1_32_VIRT_FRAC: Field = Field::new(20, 4);
    pub const PFR0_EL2: Field = Field::new(8, 4);
    pub const PFR0_SVE: Field = Field::new(32, 4);
    pub const PFR0_SEL2: Field = Field::new(36, 4);
    pub const PFR0_MPAM: Field = Field::new(40, 4);
    pub const PFR0_AMU: Field = Field::new(44, 4);
    pub const PFR0_RME: Field = Field::new(52, 4);
    pub const PFR0_CSV2: Field = Field::new(56, 4);
    pub const PFR1_MTE: Field = Field::new(8, 4);
    pub const PFR1_MPAM_FRAC: Field = Field::new(16, 4);
    pub const PFR1_SME: Field = Field::new(24, 4);
    pub const PFR1_MTEX: Field = Field::new(52, 4);
    pub const PFR1_CSV2_FRAC: Field = Field::new(32, 4);
    pub const DFR0_TRACEVER: Field = Field::new(4, 4);
    pub const DFR0_PMSVER: Field = Field::new(32, 4);
    pub const DFR0_TRACEFILT: Field = Field::new(40, 4);
    pub const DFR0_TRACEBUFFER: Field = Field::new(44, 4);
    pub const DFR0_BRBE: Field = Field::new(52, 4);
    pub const MMFR0_PARANGE: Field = Field::new(0, 4);
    pub const MMFR0_TGRAN16: Field = Field::new(20, 4);
    pub const MMFR0_TGRAN4: Field = Field::new(28, 4);
    pub const MMFR0_FGT: Field = Field::new(56, 4);
    pub const MMFR1_VH: Field = Field::new(8, 4);
    pub const MMFR1_TWED: Field = Field::new(32, 4);
    pub const MMFR2_NV: Field = Field::new(24, 4);
}

/// `ID_AA64MMFR0_EL1.TGran4` = 0b0001: 4K granule with 52-bit addresses (FEAT_LPA2).
const TGRAN4_LPA2: u64 = 0b0001;
/// `TGran4` = 0b0000: 4K granule, 48-bit addresses.
const TGRAN4_48: u64 = 0b0000;
/// `ID_AA64MMFR0_EL1.TGran16` = 0b0010: 16K granule with 52-bit addresses (FEAT_LPA2).
const TGRAN16_LPA2: u64 = 0b0010;
/// `TGran16` = 0b0001: 16K granule, 48-bit addresses.
const TGRAN16_48: u64 = 0b0001;

/// What the guest is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdPolicy {
    /// The guest-visible PARange `P` (SPEC §1).
    pub parange: PaRange,
}

/// The value the guest reads from `reg`, given the hardware's value `hw`.
#[must_use]
pub fn guest_value(reg: IdRegister, hw: u64, policy: &IdPolicy) -> u64 {
    let hide = |value: u64, fields: &[Field]| fields.iter().fold(value, |v, f| f.insert(v, 0));
    use field::*;
    match reg {
        r if r.is(1, 1) => hide(hw, &[PFR1_32_VIRTUALIZATION, PFR1_32_VIRT_FRAC]),
        r if r.is(4, 0) => hide(
            hw,
            &[PFR0_EL2, PFR0_SVE, PFR0_SEL2, PFR0_MPAM, PFR0_AMU, PFR0_RME],
        ),
        r if r.is(4, 1) => hide(hw, &[PFR1_MTE, PFR1_MPAM_FRAC, PFR1_SME, PFR1_MTEX]),
        r if r.is(4, 4) || r.is(4, 5) => 0,
        r if r.is(5, 0) => hide(
            hw,
            &[
                DFR0_TRACEVER,
                DFR0_PMSVER,
                DFR0_TRACEFILT,
                DFR0_TRACEBUFFER,
                DFR0_BRBE,
            ],
        ),
        r if r.is(7, 0) => mmfr0(hw, policy),
        r if r.is(7, 1) => hide(hw, &[MMFR1_VH, MMFR1_TWED]),
        r if r.is(7, 2) => hide(hw, &[MMFR2_NV]),
        _ => hw,
    }
}

/// The number of registers in the ID space `HCR_EL2.TID3` traps: `CRm` 1..=7 × `op2` 0..=7.
const ID_SPACE: usize = 7 * 8;

/// What the guest reads from every register of the ID space on one CPU: [`guest_value`] of
/// each, computed once when a vCPU starts, so that a trapped `MRS` (or its AArch32 forms) is a
/// lookup. The hardware's ID registers and the VM's policy do not change while it runs; the
/// hardware's are read on the physical CPU the vCPU runs on, which keeps a machine whose cores
/// differ showing each vCPU its own core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdValues([u64; ID_SPACE]);

impl IdValues {
    /// The guest's values, reading the hardware's through `hardware`.
    pub fn new(hardware: impl Fn(IdRegister) -> u64, policy: &IdPolicy) -> Self {
        let mut values = [0; ID_SPACE];
        for (index, value) in values.iter_mut().enumerate() {
            let reg = IdRegister::at(index);
            *value = guest_value(reg, hardware(reg), policy);
        }
        Self(values)
    }

    /// The value the guest reads from `reg`.
    #[must_use]
    #[inline]
    pub fn get(&self, reg: IdRegister) -> u64 {
        // `from_encoding` makes `crm` 1..=7 and `op2` 0..=7: always in the table.
        self.0[reg.index()]
    }
}

impl Default for IdValues {
    /// Every register reads as zero (a vCPU not started yet).
    fn default() -> Self {
        Self([0; ID_SPACE])
    }
}

/// Whether ID registers reading `pfr0` (`ID_AA64PFR0_EL1`) and `pfr1` (`ID_AA64PFR1_EL1`)
/// say that `SCXTNUM_EL0` and `SCXTNUM_EL1` exist: FEAT_CSV2_2 (`CSV2` >= 0b0010) or
/// FEAT_CSV2_1p2 (`CSV2` = 0b0001 and `CSV2_frac` >= 0b0010), the features the Arm ARM makes
/// them depend on. Given the values the guest reads, it says whether the guest may use them:
/// the hypervisor must then let its accesses through (`HCR_EL2.EnSCXT` = 1) and switch and
/// reset them as vCPU state, or the ID registers and the behaviour disagree.
#[must_use]
pub fn shows_scxtnum(pfr0: u64, pfr1: u64) -> bool {
    use field::*;
    let csv2 = PFR0_CSV2.get(pfr0);
    csv2 >= 0b0010 || (csv2 == 0b0001 && PFR1_CSV2_FRAC.get(pfr1) >= 0b0010)
}

/// `ID_AA64MMFR0_EL1`: PARange = `P`; the LPA2 granule encodings lowered to their 48-bit
/// equivalents; fine-grained traps (an EL2 feature) absent.
fn mmfr0(hw: u64, policy: &IdPolicy) -> u64 {
    use field::*;
    let mut v = MMFR0_PARANGE.insert(hw, u64::from(policy.parange.field()));
    if MMFR0_TGRAN4.get(v) == TGRAN4_LPA2 {
        v = MMFR0_TGRAN4.insert(v, TGRAN4_48);
    }
    if MMFR0_TGRAN16.get(v) == TGRAN16_LPA2 {
        v = MMFR0_TGRAN16.insert(v, TGRAN16_48);
    }
    MMFR0_FGT.insert(v, 0)
}

/// `CPACR_EL1.FPEN` (bits \[21:20\]).
const FPEN: Field = Field::new(20, 2);

/// How the hardware's FP/SIMD controls are set for an AArch64 guest whose `CPACR_EL1` (as it
/// wrote it) is `guest_cpacr`, while SVE and SME are hidden (`CPTR_EL2.TZ`/`TSM` set, the
/// hardware's `CPACR_EL1.ZEN`/`SMEN` open so that SVE/SME accesses reach that EL2 trap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpControls {
    /// `CPACR_EL1.FPEN` for the hardware.
    pub fpen: u64,
    /// `CPTR_EL2.TFP`: trap FP/SIMD to EL2, where Moat reflects it to the guest's EL1.
    pub trap_fp: bool,
}

/// The FP/SIMD controls for `guest_cpacr`. Where the guest's `FPEN` traps EL1 (0b00, 0b10), an
/// EL1 FP check would fire before the EL2 SVE check (`CheckSVEEnabled()`: `CPACR_EL1.FPEN` is
/// checked before `CPTR_EL2.TZ`; QEMU does the same for `ZCR_EL1`), so an SVE instruction or
/// `ZCR_EL1` access would take an FP access trap (EC 0x07) where a core without SVE makes it
/// UNDEFINED. So the hardware's `FPEN` is opened and FP/SIMD trapped at EL2 instead (`TZ` is
/// checked before `TFP` there): Moat reflects the FP trap to EL1 and makes SVE UNDEFINED. With
/// `FPEN` = 0b01 (EL0 trapped) or 0b11 the guest's value is the hardware's.
pub fn fp_controls(guest_cpacr: u64) -> FpControls {
    match FPEN.get(guest_cpacr) {
        0b00 | 0b10 => FpControls {
            fpen: 0b11,
            trap_fp: true,
        },
        fpen => FpControls {
            fpen,
            trap_fp: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(bits: u8) -> IdPolicy {
        IdPolicy {
            parange: PaRange::from_bits(bits).unwrap(),
        }
    }

    /// An `ID_AA64MMFR0_EL1` with PARange 52 bits (0b0110) and 16-bit ASIDs, as on `-cpu max`.
    const MAX_MMFR0: u64 = 0x0000_0000_0010_1126;

    #[test]
    fn the_table_holds_each_registers_guest_value() {
        // A hardware value that names its own encoding, and every hidden field set.
        let hardware =
            |reg: IdRegister| u64::MAX << 8 | u64::from(reg.crm) << 4 | u64::from(reg.op2);
        let policy = policy(40);
        let values = IdValues::new(hardware, &policy);
        let mut seen = 0;
        for crm in 0..=15 {
            for op2 in 0..=7 {
                let Some(reg) = IdRegister::from_encoding(3, 0, 0, crm, op2) else {
                    continue;
                };
                assert_eq!(
                    values.get(reg),
                    guest_value(reg, hardware(reg), &policy),
                    "{reg:?}"
                );
                seen += 1;
            }
        }
        assert_eq!(seen, 56, "CRm 1..=7 × op2 0..=7");
        assert_eq!(
            field::PFR0_SVE.get(values.get(ID_AA64PFR0_EL1)),
            0,
            "SVE hidden"
        );
        assert_eq!(values.get(ID_AA64MMFR0_EL1) & 0xF, 0b0010, "PARange 40");
    }

    #[test]
    fn parange_field_shows_p_not_the_hardware_parange() {
        let v = guest_value(ID_AA64MMFR0_EL1, MAX_MMFR0, &policy(48));
        assert_eq!(v & 0xF, 0b0101);
        let v = guest_value(ID_AA64MMFR0_EL1, MAX_MMFR0, &policy(44));
        assert_eq!(v & 0xF, 0b0100);
    }

    #[test]
    fn lpa2_granule_encodings_are_lowered_to_48_bit_ones() {
        let hw = (TGRAN4_LPA2 << 28) | (TGRAN16_LPA2 << 20) | 0b0110;
        let v = guest_value(ID_AA64MMFR0_EL1, hw, &policy(48));
        assert_eq!(field::MMFR0_TGRAN4.get(v), TGRAN4_48);
        assert_eq!(field::MMFR0_TGRAN16.get(v), TGRAN16_48);
    }

    #[test]
    fn unsupported_granule_stays_unsupported() {
        let hw = (0b1111 << 28) | 0b0101;
        assert_eq!(
            field::MMFR0_TGRAN4.get(guest_value(ID_AA64MMFR0_EL1, hw, &policy(48))),
            0b1111
        );
    }

    #[test]
    fn scxtnum_exists_with_csv2_2_or_csv2_1p2_only() {
        let csv2 = |v: u64| v << 56;
        let frac = |v: u64| v << 32;
        assert!(shows_scxtnum(csv2(0b0010), 0), "FEAT_CSV2_2");
        assert!(
            shows_scxtnum(csv2(0b0011), 0),
            "FEAT_CSV2_3 includes CSV2_2"
        );
        assert!(shows_scxtnum(csv2(0b0001), frac(0b0010)), "FEAT_CSV2_1p2");
        assert!(!shows_scxtnum(csv2(0b0001), frac(0b0001)), "FEAT_CSV2_1p1");
        assert!(!shows_scxtnum(csv2(0b0001), 0), "FEAT_CSV2 alone");
        assert!(
            !shows_scxtnum(0, frac(0b0010)),
            "CSV2_frac means nothing without CSV2"
        );
    }

    #[test]
    fn csv2_is_shown_as_the_hardware_has_it() {
        let hw = 0b0010 << 56;
        let pfr0 = guest_value(ID_AA64PFR0_EL1, hw, &policy(48));
        assert_eq!(field::PFR0_CSV2.get(pfr0), 0b0010);
    }

    #[test]
    fn sve_sme_el2_and_mte_are_reported_absent() {
        let pfr0 = guest_value(ID_AA64PFR0_EL1, u64::MAX, &policy(48));
        assert_eq!(field::PFR0_SVE.get(pfr0), 0);
        assert_eq!(field::PFR0_EL2.get(pfr0), 0);
        let pfr1 = guest_value(ID_AA64PFR1_EL1, u64::MAX, &policy(48));
        assert_eq!(field::PFR1_MTE.get(pfr1), 0);
        assert_eq!(field::PFR1_SME.get(pfr1), 0);
        assert_eq!(guest_value(ID_AA64ZFR0_EL1, u64::MAX, &policy(48)), 0);
        assert_eq!(guest_value(ID_AA64SMFR0_EL1, u64::MAX, &policy(48)), 0);
    }

    #[test]
    fn fields_moat_does_not_touch_keep_the_hardware_value() {
        // ID_AA64PFR0_EL1: EL0/EL1 AArch64+AArch32 (0x22), FP/AdvSIMD (bits 16..23) kept.
        let hw = 0x0000_0000_0100_2222;
        assert_eq!(
            guest_value(ID_AA64PFR0_EL1, hw, &policy(48)),
            0x0000_0000_0100_2022
        );
        let isar0 = IdRegister { crm: 6, op2: 0 };
        assert_eq!(guest_value(isar0, 0x1234_5678, &policy(48)), 0x1234_5678);
    }

    #[test]
    fn aarch32_view_hides_the_virtualization_extensions_too() {
        let v = guest_value(ID_PFR1_EL1, 0x1011_1131, &policy(40));
        assert_eq!(field::PFR1_32_VIRTUALIZATION.get(v), 0);
        assert_eq!(
            v & 0xFFF,
            0x131,
            "programmers' model and security fields kept"
        );
    }

    #[test]
    fn vhe_and_nested_virtualisation_are_hidden() {
        assert_eq!(
            field::MMFR1_VH.get(guest_value(ID_AA64MMFR1_EL1, u64::MAX, &policy(48))),
            0
        );
        assert_eq!(
            field::MMFR2_NV.get(guest_value(ID_AA64MMFR2_EL1, u64::MAX, &policy(48))),
            0
        );
    }

    #[test]
    fn only_the_tid3_space_is_an_id_register() {
        assert_eq!(
            IdRegister::from_encoding(3, 0, 0, 7, 0),
            Some(ID_AA64MMFR0_EL1)
        );
        assert_eq!(
            IdRegister::from_encoding(3, 0, 0, 0, 0),
            None,
            "MIDR_EL1 is not trapped by TID3"
        );
        assert_eq!(IdRegister::from_encoding(3, 0, 1, 0, 0), None, "SCTLR_EL1");
        assert_eq!(IdRegister::from_encoding(3, 1, 0, 7, 0), None);
        assert_eq!(IdRegister::from_encoding(3, 0, 0, 8, 0), None);
    }

    #[test]
    fn fp_trapping_at_el1_is_moved_to_el2_so_sve_stays_undefined() {
        for fpen in [0b00u64, 0b10] {
            let controls = fp_controls(fpen << 20);
            assert_eq!(
                controls,
                FpControls {
                    fpen: 0b11,
                    trap_fp: true
                }
            );
        }
        for fpen in [0b01u64, 0b11] {
            let controls = fp_controls(fpen << 20 | 0b11 << 16);
            assert_eq!(
                controls,
                FpControls {
                    fpen,
                    trap_fp: false
                }
            );
        }
    }
}
