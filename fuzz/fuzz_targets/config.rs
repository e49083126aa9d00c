//! The description parser (TOML, the host tool's; both the single-VM form and `[[vm]]` tables)
//! and validation: any text parses or is refused with an error, never a panic; a parsed
//! description validates or is refused against any IPA limit and machine; and one that
//! validates round-trips through the bundle writer and Moat's reader — the same
//! configurations, entries, guest device trees and images come back.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use moat_config::loader::{GuestImage, ImageFormat, Segment};
use moat_config::{
    Bundle, BundleVm, Machine, SystemFile, VmConfig, default_dtb_ipa, generate_guest_dtb,
    write_system_bundle,
};

/// A small image at the start of the VM's first RAM region, entered at its first byte.
fn image(vm: &VmConfig) -> GuestImage {
    let base = vm.ram[0].base;
    GuestImage {
        segments: vec![Segment {
            ipa: base,
            data: (0..=255u8).collect(),
        }],
        entry: base,
        format: ImageFormat::Raw,
        arch: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let single = VmConfig::from_toml_str(text);
    let Ok(file) = SystemFile::from_toml_str(text, Path::new("/configs")) else {
        assert!(
            single.is_err(),
            "a single-VM file the system reader refuses"
        );
        return;
    };
    if let Ok(vm) = single {
        assert_eq!(file.system.vms, [vm], "the single-VM form read two ways");
        assert!(file.images.is_none());
    }
    let system = file.system;
    for limit in [32, 40, 44, 48, 52] {
        let _ = system.validate(None, Some(limit));
    }
    for cpus in [0, 1, 4, 8] {
        for ram_bytes in [0, 1 << 30, u64::MAX] {
            let _ = system.validate(Some(Machine { cpus, ram_bytes }), Some(48));
        }
    }
    if system.validate(None, None).is_err() {
        return;
    }
    let _ = system
        .vms
        .iter()
        .map(|vm| vm.regions().count())
        .sum::<usize>();
    let mut parts = Vec::new();
    for vm in &system.vms {
        let (Ok(dtb), Ok(dtb_ipa)) = (generate_guest_dtb(vm, None), default_dtb_ipa(vm)) else {
            return;
        };
        parts.push((vm, image(vm), dtb, dtb_ipa));
    }
    let vms: Vec<BundleVm<'_>> = parts
        .iter()
        .map(|(config, image, dtb, dtb_ipa)| BundleVm {
            config,
            image,
            dtb,
            dtb_ipa: *dtb_ipa,
        })
        .collect();
    let Ok(blob) = write_system_bundle(&vms) else {
        return;
    };
    let bundle = match Bundle::parse(&blob) {
        Ok(bundle) => bundle,
        Err(e) => panic!("a written bundle does not read back: {e}"),
    };
    assert_eq!(
        bundle.system(),
        system,
        "configuration after the round trip"
    );
    for (read, (_, image, dtb, dtb_ipa)) in bundle.vms().iter().zip(&parts) {
        assert_eq!(read.entry(), image.entry);
        assert_eq!((read.dtb_ipa(), read.dtb()), (*dtb_ipa, &dtb[..]));
        let images: Vec<_> = read
            .images()
            .map(|i| (i.load_ipa, i.data.to_vec()))
            .collect();
        let expected: Vec<_> = image
            .segments
            .iter()
            .map(|s| (s.ipa, s.data.clone()))
            .collect();
        assert_eq!(images, expected);
    }
});
