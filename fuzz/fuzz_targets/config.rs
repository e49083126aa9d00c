//! The VM description parser (TOML, the host tool's) and validation: any text parses or is
//! refused with an error, never a panic; a parsed description validates or is refused against
//! any IPA limit; and one that validates round-trips through the bundle writer and Moat's
//! reader — the same configuration, entry, guest device tree and images come back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_config::loader::{GuestImage, ImageFormat, Segment};
use moat_config::{Bundle, VmConfig, default_dtb_ipa, generate_guest_dtb, write_bundle};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(vm) = VmConfig::from_toml_str(text) else {
        return;
    };
    for limit in [32, 40, 44, 48, 52] {
        let _ = vm.validate(Some(limit));
    }
    if vm.validate(None).is_err() {
        return;
    }
    let _ = vm.regions().count();
    let Ok(dtb) = generate_guest_dtb(&vm, None) else {
        return;
    };
    let Ok(dtb_ipa) = default_dtb_ipa(&vm) else {
        return;
    };
    // A small image at the start of the first RAM region, entered at its first byte.
    let base = vm.ram[0].base;
    let image = GuestImage {
        segments: vec![Segment {
            ipa: base,
            data: (0..=255u8).collect(),
        }],
        entry: base,
        format: ImageFormat::Raw,
        arch: None,
    };
    let Ok(blob) = write_bundle(&vm, &image, &dtb, dtb_ipa) else {
        return;
    };
    let bundle = match Bundle::parse(&blob) {
        Ok(bundle) => bundle,
        Err(e) => panic!("a written bundle does not read back: {e}"),
    };
    assert_eq!(bundle.config(), &vm, "configuration after the round trip");
    assert_eq!(bundle.entry(), image.entry);
    assert_eq!((bundle.dtb_ipa(), bundle.dtb()), (dtb_ipa, &dtb[..]));
    let images: Vec<_> = bundle
        .images()
        .map(|i| (i.load_ipa, i.data.to_vec()))
        .collect();
    let expected: Vec<_> = image
        .segments
        .into_iter()
        .map(|s| (s.ipa, s.data))
        .collect();
    assert_eq!(images, expected);
});
