//! ISS encodings of instruction aborts (EC 0x20/0x21) and data aborts (EC 0x24/0x25): the
//! syndromes Moat reads for every stage-2 fault and writes into `ESR_EL1` when it injects an
//! abort. Field names and positions: `ESR_EL2`, "ISS encoding for an exception from a Data
//! Abort" / "... from an Instruction Abort" (DDI 0487).

use super::layout::{field_enum, iss_struct};
use crate::fsc::Fsc;

field_enum!(
    /// `SAS`, the size of the access that faulted (valid when `ISV` = 1).
    AccessSize, 2 {
        /// One byte.
        Byte = 0b00, "byte";
        /// Two bytes.
        Halfword = 0b01, "halfword";
        /// Four bytes.
        Word = 0b10, "word";
        /// Eight bytes.
        Doubleword = 0b11, "doubleword";
    }
);

impl AccessSize {
    /// The access size in bytes.
    #[must_use]
    #[inline]
    pub const fn bytes(self) -> u8 {
        match self {
            Self::Byte => 1,
            Self::Halfword => 2,
            Self::Word => 4,
            Self::Doubleword => 8,
        }
    }
}

field_enum!(
    /// `SET`, the synchronous error type (FEAT_RAS, for synchronous external aborts). With
    /// FEAT_LS64 the same bits are `LST` for other fault codes; the raw value is kept either
    /// way.
    SyncErrorType, 2 {
        /// Recoverable state (UER).
        Recoverable = 0b00, "UER";
        /// Reserved encoding.
        Reserved = 0b01, "reserved";
        /// Uncontainable (UC).
        Uncontainable = 0b10, "UC";
        /// Restartable state (UEO).
        Restartable = 0b11, "UEO";
    }
);

iss_struct!(
    /// ISS of a data abort (EC 0x24, 0x25). With `ISV` = 0, `SAS`, `SSE`, `SRT`, `SF` and `AR`
    /// are RES0 (bit 15 is then `FnP` with SVE/SME).
    DataAbortIss {
        /// `ISV`: `SAS`..`AR` hold a valid instruction syndrome.
        isv: bool = "ISV" @ 24, 1;
        /// `SAS`: access size.
        sas: AccessSize = "SAS" @ 22, 2;
        /// `SSE`: the loaded value must be sign-extended (with `ISV` = 0 the same bit is
        /// `TopLevel`, FEAT_THE).
        sse: bool = "SSE" @ 21, 1;
        /// `SRT`: the transfer register (AArch64 view of the register number).
        srt: u8 = "SRT" @ 16, 5;
        /// `SF`: the register is 64-bit (`X<n>`), else 32-bit (`W<n>`).
        sf: bool = "SF" @ 15, 1;
        /// `AR`: acquire/release semantics.
        ar: bool = "AR" @ 14, 1;
        /// `VNCR`: the fault came from a `VNCR_EL2` access (FEAT_NV2).
        vncr: bool = "VNCR" @ 13, 1;
        /// `SET` (or `LST`): synchronous error type.
        set: SyncErrorType = "SET" @ 11, 2;
        /// `FnV`: `FAR` is not valid.
        fnv: bool = "FnV" @ 10, 1;
        /// `EA`: IMPLEMENTATION DEFINED external abort type.
        ea: bool = "EA" @ 9, 1;
        /// `CM`: caused by a cache maintenance or address translation (`AT`) instruction.
        cm: bool = "CM" @ 8, 1;
        /// `S1PTW`: a stage-2 fault on the stage-1 table walk.
        s1ptw: bool = "S1PTW" @ 7, 1;
        /// `WnR`: a write (also set for cache maintenance and `AT` faults).
        wnr: bool = "WnR" @ 6, 1;
        /// `DFSC`: data fault status code.
        dfsc: Fsc = "DFSC" @ 0, 6;
    }
);

iss_struct!(
    /// ISS of an instruction abort (EC 0x20, 0x21).
    InstrAbortIss {
        /// `TopLevel`: a fault on a top-level descriptor with `nT` (FEAT_THE).
        toplevel: bool = "TopLevel" @ 21, 1;
        /// `PFV`: `PFAR_ELx` is valid (FEAT_PFAR).
        pfv: bool = "PFV" @ 14, 1;
        /// `SET`: synchronous error type (FEAT_RAS).
        set: SyncErrorType = "SET" @ 11, 2;
        /// `FnV`: `FAR` is not valid.
        fnv: bool = "FnV" @ 10, 1;
        /// `EA`: IMPLEMENTATION DEFINED external abort type.
        ea: bool = "EA" @ 9, 1;
        /// `S1PTW`: a stage-2 fault on the stage-1 table walk.
        s1ptw: bool = "S1PTW" @ 7, 1;
        /// `IFSC`: instruction fault status code.
        ifsc: Fsc = "IFSC" @ 0, 6;
    }
);

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::fsc::{LeafLevel, Level};
    use std::string::ToString;

    #[test]
    fn store_translation_fault_syndrome_0x46_decodes_as_wnr_level_2() {
        // ISS of the real ESR_EL1 = 0x96000046: a stage-1 level-2 translation fault on a store.
        let iss = DataAbortIss::decode(0x46);
        assert!(iss.wnr && !iss.isv && !iss.cm && !iss.s1ptw);
        assert_eq!(iss.dfsc, Fsc::Translation { level: Level::L2 });
    }

    #[test]
    fn valid_instruction_syndrome_fields_decode_by_position() {
        // ISV=1 SAS=word SSE=0 SRT=3 SF=0 AR=0 WnR=1 DFSC=translation level 3.
        let iss = DataAbortIss::decode(0x0183_0047);
        assert!(iss.isv);
        assert_eq!(iss.sas, AccessSize::Word);
        assert_eq!(iss.srt, 3);
        assert!(iss.wnr && !iss.sf && !iss.sse);
        assert_eq!(iss.encode(), 0x0183_0047);
    }

    #[test]
    fn data_abort_layout_defines_all_25_iss_bits() {
        assert_eq!(DataAbortIss::DEFINED, 0x01FF_FFFF);
    }

    #[test]
    fn instruction_abort_layout_leaves_bits_24_22_20_15_13_8_and_6_res0() {
        assert_eq!(InstrAbortIss::DEFINED, 0x0020_5EBF);
    }

    #[test]
    fn data_abort_display_names_every_field() {
        let iss = DataAbortIss::decode(0x0183_0047);
        assert_eq!(
            iss.to_string(),
            "ISV=1 SAS=0b10 (word) SSE=0 SRT=3 SF=0 AR=0 VNCR=0 SET=0b00 (UER) FnV=0 EA=0 CM=0 \
             S1PTW=0 WnR=1 DFSC=0x07 (translation fault, level 3)"
        );
    }

    #[test]
    fn instruction_abort_permission_fault_decodes_level() {
        let iss = InstrAbortIss::decode(0x8F);
        assert!(iss.s1ptw);
        assert_eq!(
            iss.ifsc,
            Fsc::Permission {
                level: LeafLevel::L3
            }
        );
    }

    #[test]
    fn access_size_bytes_are_powers_of_two() {
        let sizes = [
            AccessSize::Byte,
            AccessSize::Halfword,
            AccessSize::Word,
            AccessSize::Doubleword,
        ];
        let bytes: std::vec::Vec<u8> = sizes.iter().map(|s| s.bytes()).collect();
        assert_eq!(bytes, [1, 2, 4, 8]);
    }
}
