//! Known syndromes from real exceptions and the Arm ARM, and properties over arbitrary values.

extern crate std;

use super::*;
use crate::fsc::{Fsc, Level};
use proptest::prelude::*;
use std::string::ToString;

#[test]
fn real_store_translation_fault_from_el1_0x96000046() {
    // A stage-1 translation fault at level 2 on a store at EL1, as Linux reports it.
    let esr = Esr::new(0x9600_0046);
    assert_eq!(esr.ec(), ExceptionClass::DataAbortSame);
    assert!(esr.il());
    let Syndrome::DataAbortSame(iss) = esr.decode() else {
        panic!("not a data abort: {esr}")
    };
    assert!(iss.wnr && !iss.isv);
    assert_eq!(iss.dfsc, Fsc::Translation { level: Level::L2 });
}

#[test]
fn hvc_0_from_aarch64_is_0x5a000000() {
    let esr = Esr::new(0x5A00_0000);
    assert_eq!(esr.decode(), Syndrome::Hvc64(CallIss { imm16: 0 }));
    assert_eq!(Syndrome::Hvc64(CallIss { imm16: 0 }).to_esr(true), esr);
}

#[test]
fn brk_1000_from_aarch64_is_0xf20003e8() {
    let esr = Esr::new(0xF200_03E8);
    assert_eq!(esr.decode(), Syndrome::Brk64(CommentIss { comment: 1000 }));
}

#[test]
fn trapped_wfi_and_wfe_are_ec_1_with_ti() {
    let wfi = Esr::new(0x0600_0000).decode();
    let wfe = Esr::new(0x0600_0001).decode();
    assert!(matches!(
        wfi,
        Syndrome::Wfx(WfxIss {
            ti: WfxKind::Wfi,
            ..
        })
    ));
    assert!(matches!(
        wfe,
        Syndrome::Wfx(WfxIss {
            ti: WfxKind::Wfe,
            ..
        })
    ));
}

#[test]
fn mrs_ctr_el0_trap_is_0x6232c041() {
    let Syndrome::SysReg(iss) = Esr::new(0x6232_C041).decode() else {
        panic!("not EC 0x18")
    };
    assert_eq!(
        (iss.op0, iss.op1, iss.crn, iss.crm, iss.op2),
        (3, 3, 0, 0, 1)
    );
    assert_eq!(iss.rt, 2);
    assert_eq!(iss.direction, Direction::Read);
}

#[test]
fn instruction_abort_from_el0_translation_level_3_is_0x82000007() {
    let Syndrome::InstrAbortLower(iss) = Esr::new(0x8200_0007).decode() else {
        panic!("not EC 0x20")
    };
    assert_eq!(iss.ifsc, Fsc::Translation { level: Level::L3 });
}

#[test]
fn uncategorized_serror_is_0xbe000000() {
    let Syndrome::SError(iss) = Esr::new(0xBE00_0000).decode() else {
        panic!("not EC 0x2F")
    };
    assert!(!iss.ids);
    assert_eq!(iss.dfsc, SERROR_DFSC_UNCATEGORIZED);
}

#[test]
fn unallocated_class_decodes_to_other_with_raw_iss() {
    let esr = Esr::new((0x3F << 26) | 0x1234);
    assert_eq!(
        esr.decode(),
        Syndrome::Other {
            ec: ExceptionClass::Unallocated(0x3F),
            iss: 0x1234
        }
    );
}

#[test]
fn display_prints_class_il_and_every_iss_field_by_arm_name() {
    let esr = Esr::new(0x9383_0047);
    assert_eq!(
        esr.to_string(),
        "EC=0x24 (data abort from a lower EL) IL=1 ISV=1 SAS=0b10 (word) SSE=0 SRT=3 SF=0 AR=0 \
         VNCR=0 SET=0b00 (UER) FnV=0 EA=0 CM=0 S1PTW=0 WnR=1 \
         DFSC=0x07 (translation fault, level 3)"
    );
}

#[test]
fn display_of_syndrome_without_fields_is_the_class() {
    assert_eq!(
        Esr::new(0x0200_0000).to_string(),
        "EC=0x00 (unknown reason) IL=1"
    );
    assert_eq!(Syndrome::Unknown.to_string(), "EC=0x00 (unknown reason)");
}

#[test]
fn display_appends_nonzero_iss2() {
    let esr = Esr::new((0x1F << 32) | 0x9200_0046);
    assert!(esr.to_string().ends_with(" ISS2=0x1f"), "{esr}");
}

#[test]
fn every_allocated_class_with_fields_decodes_to_its_own_variant() {
    for code in 0..64u8 {
        let ec = ExceptionClass::from_code(code);
        let syndrome = Esr::from_parts(ec, true, 0).decode();
        assert_eq!(syndrome.class(), ec, "EC {code:#04x}");
    }
}

#[test]
fn classes_without_typed_iss_keep_their_raw_iss() {
    let tstart = Esr::from_parts(ExceptionClass::Tstart, true, 0x1234).decode();
    assert_eq!(
        tstart,
        Syndrome::Other {
            ec: ExceptionClass::Tstart,
            iss: 0x1234
        }
    );
}

#[test]
fn software_step_from_el0_decodes_isv_ex_and_debug_code() {
    let Syndrome::SoftwareStepLower(iss) = Esr::new(0xCA00_0062).decode() else {
        panic!("not EC 0x32")
    };
    assert!(!iss.isv && iss.ex);
    assert_eq!(iss.ifsc, DEBUG_FSC);
}

#[test]
fn fp_access_trap_from_aarch64_is_ec_7_with_no_condition() {
    let syndrome = Esr::new(0x1E00_0000).decode();
    assert_eq!(
        syndrome,
        Syndrome::FpAccess(FpAccessIss { cv: false, cond: 0 })
    );
}

#[test]
fn from_parts_leaves_iss2_and_top_bits_zero() {
    let esr = Esr::from_parts(ExceptionClass::DataAbortLower, true, 0x10);
    assert_eq!(esr.bits(), 0x9200_0010);
    assert_eq!(esr.bits() >> 32, 0);
}

fn fsc() -> impl Strategy<Value = Fsc> {
    (0u8..64).prop_map(Fsc::from_code)
}

fn data_abort_iss() -> impl Strategy<Value = DataAbortIss> {
    let syndrome = (
        any::<bool>(),
        0u32..4,
        any::<bool>(),
        0u8..32,
        any::<bool>(),
        any::<bool>(),
    );
    let fault = (
        any::<bool>(),
        0u32..4,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    );
    let access = (any::<bool>(), any::<bool>(), fsc());
    (syndrome, fault, access).prop_map(|((isv, sas, sse, srt, sf, ar), f, (s1ptw, wnr, dfsc))| {
        let (vncr, set, fnv, ea, cm) = f;
        // Enum fields are built through decode so that every raw value is reachable.
        let probe = DataAbortIss::decode((sas << 22) | (set << 11));
        DataAbortIss {
            isv,
            sas: probe.sas,
            sse,
            srt,
            sf,
            ar,
            vncr,
            set: probe.set,
            fnv,
            ea,
            cm,
            s1ptw,
            wnr,
            dfsc,
        }
    })
}

proptest! {
    #[test]
    fn decoding_and_printing_any_esr_never_panics(bits in any::<u64>()) {
        let esr = Esr::new(bits);
        let _ = esr.decode();
        let _ = esr.to_string();
        let _ = esr.decode().to_string();
    }

    #[test]
    fn encode_of_decode_restores_every_defined_bit(bits in any::<u64>()) {
        let esr = Esr::new(bits);
        let syndrome = esr.decode();
        let expected = (bits & 0xFE00_0000) | u64::from(esr.iss() & syndrome.defined_iss_bits());
        prop_assert_eq!(syndrome.to_esr(esr.il()).bits(), expected);
    }

    #[test]
    fn decode_of_encode_is_identity_for_data_aborts(iss in data_abort_iss(), lower in any::<bool>()) {
        let syndrome =
            if lower { Syndrome::DataAbortLower(iss) } else { Syndrome::DataAbortSame(iss) };
        prop_assert_eq!(syndrome.to_esr(true).decode(), syndrome);
    }

    #[test]
    fn decode_of_encode_is_identity_for_sysreg_traps(
        op0 in 0u8..4, op1 in 0u8..8, crn in 0u8..16, crm in 0u8..16, op2 in 0u8..8,
        rt in 0u8..32, read in any::<bool>(),
    ) {
        let direction = if read { Direction::Read } else { Direction::Write };
        let iss = SysRegIss { op0, op2, op1, crn, rt, crm, direction };
        prop_assert_eq!(Syndrome::SysReg(iss).to_esr(true).decode(), Syndrome::SysReg(iss));
    }
}
