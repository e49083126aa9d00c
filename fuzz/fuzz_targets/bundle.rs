//! The bundle reader (Moat parses the bundle from its loader at boot): any bytes parse or are
//! refused, never a panic. A bundle that parses keeps the reader's promises — its VMs pass the
//! system rules (their own, and no name or CPU shared), and each VM's images and guest device
//! tree lie inside its RAM without overlapping — and, written again with the same parts, it
//! reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_config::loader::{GuestImage, ImageFormat, Segment};
use moat_config::{Bundle, BundleVm, VmBundle, write_system_bundle};

/// Checks that `vm`'s parts lie inside its RAM without overlapping.
fn check_parts(vm: &VmBundle<'_>) {
    let config = vm.config();
    let _ = config.validate(Some(48));
    let mut parts: Vec<(u128, u128)> = vm
        .images()
        .map(|i| (u128::from(i.load_ipa.raw()), i.data.len() as u128))
        .collect();
    parts.push((u128::from(vm.dtb_ipa().raw()), vm.dtb().len() as u128));
    for &(start, len) in &parts {
        let inside = config.ram.iter().any(|r| {
            let (base, size) = (u128::from(r.base.raw()), u128::from(r.size));
            start >= base && start + len <= base + size
        });
        assert!(inside, "a part at {start:#x} (+{len:#x}) outside RAM");
    }
    let mut sorted: Vec<_> = parts.iter().filter(|p| p.1 > 0).copied().collect();
    sorted.sort_unstable();
    for pair in sorted.windows(2) {
        assert!(
            pair[0].0 + pair[0].1 <= pair[1].0,
            "parts overlap: {pair:x?}"
        );
    }
}

fn image_of(vm: &VmBundle<'_>) -> GuestImage {
    GuestImage {
        segments: vm
            .images()
            .map(|i| Segment {
                ipa: i.load_ipa,
                data: i.data.to_vec(),
            })
            .collect(),
        entry: vm.entry(),
        format: ImageFormat::Raw,
        arch: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::parse(data) else {
        return;
    };
    assert!(!bundle.vms().is_empty(), "a bundle without VMs parsed");
    if let Err(e) = bundle.system().validate(None, None) {
        panic!("a parsed bundle breaks the system rules: {e}");
    }
    bundle.vms().iter().for_each(check_parts);
    let images: Vec<GuestImage> = bundle.vms().iter().map(image_of).collect();
    let parts: Vec<BundleVm<'_>> = bundle
        .vms()
        .iter()
        .zip(&images)
        .map(|(vm, image)| BundleVm {
            config: vm.config(),
            image,
            dtb: vm.dtb(),
            dtb_ipa: vm.dtb_ipa(),
        })
        .collect();
    let Ok(blob) = write_system_bundle(&parts) else {
        return;
    };
    match Bundle::parse(&blob) {
        Ok(again) => assert_eq!(
            again, bundle,
            "a bundle written again reads back differently"
        ),
        Err(e) => panic!("a bundle written again does not read back: {e}"),
    }
});
