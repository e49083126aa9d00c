//! ISS of an SError exception (EC 0x2F), including the FEAT_RAS fields Moat writes to
//! `VSESR_EL2` when it pends a virtual SError. Source: `ESR_EL2`, "ISS encoding for an SError
//! exception" (DDI 0487).

use super::layout::{field_enum, iss_struct};

field_enum!(
    /// `AET`, the asynchronous error type (FEAT_RAS).
    AsyncErrorType, 3 {
        /// Uncontainable (UC).
        Uncontainable = 0b000, "UC";
        /// Unrecoverable state (UEU).
        Unrecoverable = 0b001, "UEU";
        /// Restartable state (UEO).
        Restartable = 0b010, "UEO";
        /// Recoverable state (UER).
        Recoverable = 0b011, "UER";
        /// Reserved encoding 0b100.
        Reserved4 = 0b100, "reserved";
        /// Reserved encoding 0b101.
        Reserved5 = 0b101, "reserved";
        /// Corrected (CE).
        Corrected = 0b110, "CE";
        /// Reserved encoding 0b111.
        Reserved7 = 0b111, "reserved";
    }
);

/// `DFSC` of an SError: uncategorized error.
pub const SERROR_DFSC_UNCATEGORIZED: u8 = 0b00_0000;
/// `DFSC` of an SError: asynchronous SError exception (the fields below are then valid).
pub const SERROR_DFSC_ASYNC: u8 = 0b01_0001;

iss_struct!(
    /// ISS of an SError (EC 0x2F). When `IDS` = 1, bits \[23:0\] are IMPLEMENTATION DEFINED and
    /// the named fields below are only their raw bits.
    SErrorIss {
        /// `IDS`: the syndrome is IMPLEMENTATION DEFINED.
        ids: bool = "IDS" @ 24, 1;
        /// `ELS`: triggered by the instruction at `ELR_ELx` (FEAT_RASv2).
        els: bool = "ELS" @ 18, 1;
        /// `WU`: write update (FEAT_RASv2).
        wu: u8 = "WU" @ 16, 2;
        /// `VFV`: `FAR` valid (FEAT_RASv2).
        vfv: bool = "VFV" @ 15, 1;
        /// `PFV`: `PFAR` valid (FEAT_PFAR).
        pfv: bool = "PFV" @ 14, 1;
        /// `IESB`: synchronized by an implicit error synchronization event (FEAT_IESB).
        iesb: bool = "IESB" @ 13, 1;
        /// `AET`: asynchronous error type (FEAT_RAS).
        aet: AsyncErrorType = "AET" @ 10, 3;
        /// `EA`: IMPLEMENTATION DEFINED external abort type.
        ea: bool = "EA" @ 9, 1;
        /// `WnRV`: `WnR` is valid (FEAT_RASv2).
        wnrv: bool = "WnRV" @ 7, 1;
        /// `WnR`: caused by a write (FEAT_RASv2).
        wnr: bool = "WnR" @ 6, 1;
        /// `DFSC`: `SERROR_DFSC_UNCATEGORIZED` or `SERROR_DFSC_ASYNC` (others reserved).
        dfsc: u8 = "DFSC" @ 0, 6;
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncontainable_async_serror_round_trips() {
        let iss = SErrorIss::decode(u32::from(SERROR_DFSC_ASYNC));
        assert_eq!(iss.aet, AsyncErrorType::Uncontainable);
        assert_eq!(iss.dfsc, SERROR_DFSC_ASYNC);
        assert_eq!(iss.encode(), 0x11);
    }

    #[test]
    fn bits_23_19_and_8_are_res0() {
        assert_eq!(SErrorIss::DEFINED & 0x00F8_0100, 0);
    }
}
