//! ISS encodings of trapped instructions: WFx (EC 0x01), HVC/SVC/SMC (0x11..0x17), AArch64
//! MSR/MRS/system instructions (0x18), AArch32 coprocessor accesses (MCR/MRC 0x03/0x05/0x08,
//! MCRR/MRRC 0x04/0x0C, LDC/STC 0x06) and BRK/BKPT (0x3C/0x38). Source: `ESR_EL2`, the
//! corresponding "ISS encoding for an exception from ..." sections (DDI 0487).

use super::layout::{field_enum, iss_struct};

field_enum!(
    /// `TI`: which wait instruction trapped.
    WfxKind, 2 {
        /// WFI.
        Wfi = 0b00, "WFI";
        /// WFE.
        Wfe = 0b01, "WFE";
        /// WFIT (FEAT_WFxT).
        Wfit = 0b10, "WFIT";
        /// WFET (FEAT_WFxT).
        Wfet = 0b11, "WFET";
    }
);

field_enum!(
    /// `Direction` of a register transfer.
    Direction, 1 {
        /// To the system register or memory: MSR, MCR, MCRR, STC.
        Write = 0b0, "write";
        /// From the system register or memory: MRS, MRC, MRRC, LDC.
        Read = 0b1, "read";
    }
);

iss_struct!(
    /// ISS of a trapped WFI/WFE/WFIT/WFET (EC 0x01).
    WfxIss {
        /// `CV`: `COND` is valid (AArch32 only).
        cv: bool = "CV" @ 24, 1;
        /// `COND`: the condition code of the trapped AArch32 instruction.
        cond: u8 = "COND" @ 20, 4;
        /// `RN`: the timeout register of WFIT/WFET (FEAT_WFxT).
        rn: u8 = "RN" @ 5, 5;
        /// `RV`: `RN` is valid (FEAT_WFxT).
        rv: bool = "RV" @ 2, 1;
        /// `TI`: the trapped instruction.
        ti: WfxKind = "TI" @ 0, 2;
    }
);

iss_struct!(
    /// ISS of an HVC or SVC (EC 0x11, 0x12, 0x15, 0x16) or an AArch64 SMC (EC 0x17).
    CallIss {
        /// `imm16`: the instruction's immediate.
        imm16: u16 = "imm16" @ 0, 16;
    }
);

iss_struct!(
    /// ISS of an AArch32 SMC (EC 0x13).
    Smc32Iss {
        /// `CV`: `COND` is valid.
        cv: bool = "CV" @ 24, 1;
        /// `COND`: the condition code.
        cond: u8 = "COND" @ 20, 4;
        /// `CCKNOWNPASS`: the instruction is known to have passed its condition check.
        ccknownpass: bool = "CCKNOWNPASS" @ 19, 1;
    }
);

iss_struct!(
    /// ISS of a trapped AArch64 MSR, MRS or system instruction (EC 0x18).
    SysRegIss {
        /// `Op0`.
        op0: u8 = "Op0" @ 20, 2;
        /// `Op2`.
        op2: u8 = "Op2" @ 17, 3;
        /// `Op1`.
        op1: u8 = "Op1" @ 14, 3;
        /// `CRn`.
        crn: u8 = "CRn" @ 10, 4;
        /// `Rt`: the transfer register.
        rt: u8 = "Rt" @ 5, 5;
        /// `CRm`.
        crm: u8 = "CRm" @ 1, 4;
        /// `Direction`: read (MRS) or write (MSR).
        direction: Direction = "Direction" @ 0, 1;
    }
);

iss_struct!(
    /// ISS of a trapped AArch32 MCR or MRC (EC 0x03, 0x05) or VMRS (EC 0x08).
    CopRegIss {
        /// `CV`: `COND` is valid.
        cv: bool = "CV" @ 24, 1;
        /// `COND`: the condition code.
        cond: u8 = "COND" @ 20, 4;
        /// `Opc2`.
        opc2: u8 = "Opc2" @ 17, 3;
        /// `Opc1`.
        opc1: u8 = "Opc1" @ 14, 3;
        /// `CRn`.
        crn: u8 = "CRn" @ 10, 4;
        /// `Rt`: the transfer register (AArch64 view).
        rt: u8 = "Rt" @ 5, 5;
        /// `CRm`.
        crm: u8 = "CRm" @ 1, 4;
        /// `Direction`: read (MRC) or write (MCR).
        direction: Direction = "Direction" @ 0, 1;
    }
);

iss_struct!(
    /// ISS of a trapped AArch32 MCRR or MRRC (EC 0x04, 0x0C).
    CopRegPairIss {
        /// `CV`: `COND` is valid.
        cv: bool = "CV" @ 24, 1;
        /// `COND`: the condition code.
        cond: u8 = "COND" @ 20, 4;
        /// `Opc1`.
        opc1: u8 = "Opc1" @ 16, 4;
        /// `Rt2`: the second transfer register.
        rt2: u8 = "Rt2" @ 10, 5;
        /// `Rt`: the first transfer register.
        rt: u8 = "Rt" @ 5, 5;
        /// `CRm`.
        crm: u8 = "CRm" @ 1, 4;
        /// `Direction`: read (MRRC) or write (MCRR).
        direction: Direction = "Direction" @ 0, 1;
    }
);

iss_struct!(
    /// ISS of a trapped AArch32 LDC or STC (EC 0x06).
    LdcIss {
        /// `CV`: `COND` is valid.
        cv: bool = "CV" @ 24, 1;
        /// `COND`: the condition code.
        cond: u8 = "COND" @ 20, 4;
        /// `imm8`: the immediate offset.
        imm8: u8 = "imm8" @ 12, 8;
        /// `Rn`: the base register.
        rn: u8 = "Rn" @ 5, 5;
        /// `Offset`: the offset is added (1) or subtracted (0).
        offset: bool = "Offset" @ 4, 1;
        /// `AM`: addressing mode.
        am: u8 = "AM" @ 1, 3;
        /// `Direction`: read from memory (LDC) or write to memory (STC).
        direction: Direction = "Direction" @ 0, 1;
    }
);

iss_struct!(
    /// ISS of a BRK (EC 0x3C) or BKPT (EC 0x38).
    CommentIss {
        /// `Comment`: the instruction's immediate.
        comment: u16 = "Comment" @ 0, 16;
    }
);

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn mrs_of_ctr_el0_decodes_to_its_encoding() {
        // MRS X2, CTR_EL0 = op0 3, op1 3, CRn 0, CRm 0, op2 1; read.
        let iss = SysRegIss::decode(0x0032_C041);
        let expected = SysRegIss {
            op0: 3,
            op2: 1,
            op1: 3,
            crn: 0,
            rt: 2,
            crm: 0,
            direction: Direction::Read,
        };
        assert_eq!(iss, expected);
        assert_eq!(iss.encode(), 0x0032_C041);
    }

    #[test]
    fn sysreg_display_uses_arm_field_names() {
        let iss = SysRegIss::decode(0x0032_C041);
        assert_eq!(
            iss.to_string(),
            "Op0=3 Op2=1 Op1=3 CRn=0 Rt=2 CRm=0 Direction=0b1 (read)"
        );
    }

    #[test]
    fn wfx_ti_distinguishes_the_four_wait_instructions() {
        let kinds: std::vec::Vec<WfxKind> = (0..4).map(|ti| WfxIss::decode(ti).ti).collect();
        assert_eq!(
            kinds,
            [WfxKind::Wfi, WfxKind::Wfe, WfxKind::Wfit, WfxKind::Wfet]
        );
    }

    #[test]
    fn hvc_immediate_is_the_low_16_bits() {
        assert_eq!(
            CallIss::decode(0x1_ABCD).imm16,
            0xABCD,
            "bits [24:16] are RES0"
        );
    }

    #[test]
    fn mcrr_layout_keeps_bit_15_res0() {
        assert_eq!(CopRegPairIss::DEFINED & (1 << 15), 0);
        assert_eq!(CopRegPairIss::DEFINED, 0x01FF_7FFF);
    }
}
