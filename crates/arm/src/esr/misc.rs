//! ISS encodings of the remaining trapped classes that carry fields: SIMD/FP access (EC 0x07),
//! 128-bit system instructions (0x14), ERET (0x1A), branch target (0x0D), PAC failure (0x1C),
//! SME (0x1D), memory copy/set (0x27), trapped floating-point exceptions (0x28/0x2C), GCS
//! (0x2D) and profiling (0x3D). Source: `ESR_EL2`, the corresponding "ISS encoding for ..."
//! sections (DDI 0487).

use super::layout::iss_struct;
use super::trap::Direction;

iss_struct!(
    /// ISS of a SIMD/floating-point access trap (EC 0x07): the AArch32 condition only.
    FpAccessIss {
        /// `CV`: `COND` is valid.
        cv: bool = "CV" @ 24, 1;
        /// `COND`: the condition code.
        cond: u8 = "COND" @ 20, 4;
    }
);

iss_struct!(
    /// ISS of a trapped MSRR, MRRS or 128-bit system instruction (EC 0x14).
    SysReg128Iss {
        /// `Op0`.
        op0: u8 = "Op0" @ 20, 2;
        /// `Op2`.
        op2: u8 = "Op2" @ 17, 3;
        /// `Op1`.
        op1: u8 = "Op1" @ 14, 3;
        /// `CRn`.
        crn: u8 = "CRn" @ 10, 4;
        /// `Rt[4:1]`: the even register of the pair.
        rt: u8 = "Rt" @ 6, 4;
        /// `CRm`.
        crm: u8 = "CRm" @ 1, 4;
        /// `Direction`: read (MRRS) or write (MSRR).
        direction: Direction = "Direction" @ 0, 1;
    }
);

iss_struct!(
    /// ISS of a trapped ERET, ERETAA or ERETAB (EC 0x1A).
    EretIss {
        /// `ERET`: 1 for ERETAA/ERETAB.
        eret: bool = "ERET" @ 1, 1;
        /// `ERETA`: 1 for ERETAB (key B), when `ERET` is 1.
        ereta: bool = "ERETA" @ 0, 1;
    }
);

iss_struct!(
    /// ISS of a Branch Target exception (EC 0x0D).
    BranchTargetIss {
        /// `BTYPE`: `PSTATE.BTYPE` at the failing instruction.
        btype: u8 = "BTYPE" @ 0, 2;
    }
);

iss_struct!(
    /// ISS of a PAC failure (EC 0x1C).
    PacFailIss {
        /// `DnI`: a data key (1) or an instruction key (0).
        dni: bool = "DnI" @ 1, 1;
        /// `BnA`: key B (1) or key A (0).
        bna: bool = "BnA" @ 0, 1;
    }
);

iss_struct!(
    /// ISS of an SME access trap (EC 0x1D).
    SmeIss {
        /// `SMTC`: why the SME instruction trapped.
        smtc: u8 = "SMTC" @ 0, 3;
    }
);

iss_struct!(
    /// ISS of a Memory Copy or Memory Set exception (EC 0x27, FEAT_MOPS).
    MopsIss {
        /// `MemInst`: a CPY* (0) or SET* (1) instruction.
        mem_inst: bool = "MemInst" @ 24, 1;
        /// `isSETG`: a SETG* instruction.
        is_setg: bool = "isSETG" @ 23, 1;
        /// `Options`: the instruction's options field.
        options: u8 = "Options" @ 19, 4;
        /// `FromEpilogue`: taken from an epilogue instruction.
        from_epilogue: bool = "FromEpilogue" @ 18, 1;
        /// `FormatOption`: the algorithm option (A/B).
        format_option: u8 = "FormatOption" @ 16, 2;
        /// `destreg`.
        destreg: u8 = "destreg" @ 10, 5;
        /// `srcreg`.
        srcreg: u8 = "srcreg" @ 5, 5;
        /// `sizereg`.
        sizereg: u8 = "sizereg" @ 0, 5;
    }
);

iss_struct!(
    /// ISS of a trapped floating-point exception (EC 0x28, 0x2C).
    FpExceptionIss {
        /// `TFV`: the flag bits below are valid.
        tfv: bool = "TFV" @ 23, 1;
        /// `VECITR`: the vector element iteration (AArch32).
        vecitr: u8 = "VECITR" @ 8, 3;
        /// `IDF`: input denormal.
        idf: bool = "IDF" @ 7, 1;
        /// `IXF`: inexact.
        ixf: bool = "IXF" @ 4, 1;
        /// `UFF`: underflow.
        uff: bool = "UFF" @ 3, 1;
        /// `OFF`: overflow.
        off: bool = "OFF" @ 2, 1;
        /// `DZF`: divide by zero.
        dzf: bool = "DZF" @ 1, 1;
        /// `IOF`: invalid operation.
        iof: bool = "IOF" @ 0, 1;
    }
);

iss_struct!(
    /// ISS of a GCS exception (EC 0x2D, FEAT_GCS).
    GcsIss {
        /// `ExType`: the kind of GCS exception.
        ex_type: u8 = "ExType" @ 20, 4;
        /// `Raddr`: the address register.
        raddr: u8 = "Raddr" @ 10, 5;
        /// `Rn` (or `Rvalue`, by `ExType`).
        rn: u8 = "Rn" @ 5, 5;
        /// `IT`: the instruction type.
        it: u8 = "IT" @ 0, 5;
    }
);

iss_struct!(
    /// ISS of a profiling exception (EC 0x3D).
    ProfilingIss {
        /// `FSC`: the profiling fault status.
        fsc: u8 = "FSC" @ 1, 5;
        /// `SYNC`: taken synchronously.
        sync: bool = "SYNC" @ 0, 1;
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eretab_sets_eret_and_ereta() {
        let iss = EretIss::decode(0b11);
        assert!(iss.eret && iss.ereta);
    }

    #[test]
    fn msrr_rt_is_the_even_register_bits_9_6() {
        let iss = SysReg128Iss::decode(0b1010 << 6);
        assert_eq!(iss.rt, 0b1010);
        assert_eq!(SysReg128Iss::DEFINED & (1 << 5), 0, "bit 5 is RES0");
    }

    #[test]
    fn fp_exception_flags_decode_by_position() {
        let iss = FpExceptionIss::decode((1 << 23) | 0b1_0010);
        assert!(iss.tfv && iss.ixf && iss.dzf && !iss.iof);
    }
}
