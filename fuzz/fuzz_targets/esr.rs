//! The syndrome decoders: any `ESR_ELx` decodes, prints and re-encodes to its defined bits; the
//! decode of an encode is the identity; every fault status code round-trips; any `DFSR`/`IFSR`
//! (short and long format) decodes, prints and re-encodes to its defined bits; any SPSR
//! decodes into a mode that round-trips and prints.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_arm::esr::Esr;
use moat_arm::fsc::Fsc;
use moat_arm::fsr32::{Fault32, Fsr32, Fsr32Format};
use moat_arm::pstate::{Aarch32Mode, Aarch64Mode, SavedPsr, Spsr32, Spsr64};

/// `DFSR`/`IFSR` bits each format defines: `LPAE` = 1 has `STATUS` \[5:0\], `LPAE` \[9\],
/// `WnR`, `ExT`, `CM`, `AET`, `FnV` (0x1_FA3F); the short format `FS` \[10\]\[3:0\], `Domain`
/// \[7:4\] and the same flags (0x1_FCFF).
const FSR32_LPAE_DEFINED: u32 = 0x1_FA3F;
const FSR32_SHORT_DEFINED: u32 = 0x1_FCFF;
/// `ESR_ELx.EC` and `IL`, kept verbatim by a re-encode.
const EC_AND_IL: u64 = 0xFE00_0000;

fuzz_target!(|data: &[u8]| {
    let mut word = [0u8; 8];
    let n = data.len().min(8);
    word[..n].copy_from_slice(&data[..n]);
    let bits = u64::from_le_bytes(word);

    // ESR: decode, print, re-encode keeps EC, IL and the ISS bits the class defines.
    let esr = Esr::new(bits);
    let syndrome = esr.decode();
    let _ = esr.to_string();
    let _ = syndrome.to_string();
    let expected = (bits & EC_AND_IL) | u64::from(esr.iss() & syndrome.defined_iss_bits());
    let encoded = syndrome.to_esr(esr.il());
    assert_eq!(encoded.bits(), expected, "re-encode of {esr:?}");
    assert_eq!(
        encoded.decode(),
        syndrome,
        "decode of the encode of {esr:?}"
    );

    // Fault status codes: every 6-bit code (and any byte) round-trips and prints.
    let code = (bits & 0xFF) as u8;
    let fsc = Fsc::from_code(code);
    assert_eq!(fsc.code(), code);
    let _ = fsc.to_string();

    // AArch32 fault status, both formats (the LPAE bit picks the layout).
    let fsr_bits = bits as u32;
    let fsr = Fsr32::decode(fsr_bits);
    let _ = fsr.to_string();
    let defined = match fsr.format {
        Fsr32Format::Lpae => FSR32_LPAE_DEFINED,
        Fsr32Format::Short => FSR32_SHORT_DEFINED,
    };
    assert_eq!(fsr.encode(), Some(fsr_bits & defined), "FSR {fsr_bits:#x}");
    assert_eq!(Fsr32::decode(fsr.encode().unwrap_or(0)), fsr);
    for format in [Fsr32Format::Short, Fsr32Format::Lpae] {
        let fault = Fault32::from_code(code & 0x3F, format);
        if let Some(c) = fault.code(format) {
            assert_eq!(Fault32::from_code(c, format), fault);
        }
    }

    // SPSR in either state: the mode round-trips through M, printing never panics.
    let spsr = SavedPsr::from_spsr(bits);
    let _ = spsr.to_string();
    match spsr {
        SavedPsr::Aarch64(p) => {
            let mode = p.mode();
            assert_eq!(Aarch64Mode::from_m(mode.m()), mode);
            assert_eq!(Spsr64::new(bits).with_mode(mode).bits(), bits);
            let _ = (mode.el(), mode.sp_elx(), p.to_string());
        }
        SavedPsr::Aarch32(p) => {
            let mode = p.mode();
            assert_eq!(Aarch32Mode::from_m(mode.m()), mode);
            let _ = (mode.el(), p.thumb(), p.to_banked());
            assert_eq!(Spsr32::new(bits as u32).with_mode(mode).bits(), bits as u32);
        }
    }
});
