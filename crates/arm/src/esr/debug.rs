//! ISS encodings of debug exceptions: breakpoints and vector catch (EC 0x30/0x31/0x3A),
//! software step (0x32/0x33) and watchpoints (0x34/0x35). Their fault status is the debug
//! code (`0b100010`), which in other classes means something else, so it stays a raw `u8`.
//! Source: `ESR_EL2`, "ISS encoding for an exception from a Breakpoint or Vector Catch debug
//! exception" and the following sections (DDI 0487).

use super::layout::iss_struct;

/// The fault status code debug exceptions report: "Debug exception".
pub const DEBUG_FSC: u8 = 0b10_0010;

iss_struct!(
    /// ISS of a breakpoint (EC 0x30, 0x31) or AArch32 vector catch (EC 0x3A).
    BreakpointIss {
        /// `IFSC`: [`DEBUG_FSC`].
        ifsc: u8 = "IFSC" @ 0, 6;
    }
);

iss_struct!(
    /// ISS of a software step exception (EC 0x32, 0x33).
    SoftwareStepIss {
        /// `ISV`: `EX` is valid.
        isv: bool = "ISV" @ 24, 1;
        /// `EX`: the stepped instruction was a load-exclusive.
        ex: bool = "EX" @ 6, 1;
        /// `IFSC`: [`DEBUG_FSC`].
        ifsc: u8 = "IFSC" @ 0, 6;
    }
);

iss_struct!(
    /// ISS of a watchpoint exception (EC 0x34, 0x35).
    WatchpointIss {
        /// `WPT`: the watchpoint number (FEAT_Debugv8p9).
        wpt: u8 = "WPT" @ 18, 6;
        /// `WPTV`: `WPT` is valid.
        wptv: bool = "WPTV" @ 17, 1;
        /// `WPF`: the address may be outside the watchpoint.
        wpf: bool = "WPF" @ 16, 1;
        /// `FnP`: `FAR` is not precise.
        fnp: bool = "FnP" @ 15, 1;
        /// `VNCR`: from a `VNCR_EL2` access (FEAT_NV2).
        vncr: bool = "VNCR" @ 13, 1;
        /// `FnV`: `FAR` is not valid.
        fnv: bool = "FnV" @ 10, 1;
        /// `CM`: by a cache maintenance instruction.
        cm: bool = "CM" @ 8, 1;
        /// `WnR`: a write.
        wnr: bool = "WnR" @ 6, 1;
        /// `DFSC`: [`DEBUG_FSC`].
        dfsc: u8 = "DFSC" @ 0, 6;
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakpoint_reports_the_debug_fault_code() {
        assert_eq!(BreakpointIss::decode(0x22).ifsc, DEBUG_FSC);
    }

    #[test]
    fn software_step_of_a_load_exclusive_sets_isv_and_ex() {
        let iss = SoftwareStepIss::decode((1 << 24) | (1 << 6) | 0x22);
        assert!(iss.isv && iss.ex);
    }

    #[test]
    fn watchpoint_layout_leaves_bits_24_14_12_11_9_and_7_res0() {
        assert_eq!(WatchpointIss::DEFINED & 0x0100_5A80, 0);
    }
}
