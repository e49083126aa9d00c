//! The bundle reader (Moat parses the bundle from its loader at boot): any bytes parse or are
//! refused, never a panic. A bundle that parses keeps the reader's promise — its images and
//! guest device tree lie inside the configuration's RAM without overlapping — and, when its
//! configuration validates, written again with the same parts it reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_config::loader::{GuestImage, ImageFormat, Segment};
use moat_config::{Bundle, write_bundle};

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::parse(data) else {
        return;
    };
    let vm = bundle.config();
    let _ = vm.validate(Some(48));
    let mut parts: Vec<(u128, u128)> = bundle
        .images()
        .map(|i| (u128::from(i.load_ipa.raw()), i.data.len() as u128))
        .collect();
    parts.push((
        u128::from(bundle.dtb_ipa().raw()),
        bundle.dtb().len() as u128,
    ));
    for &(start, len) in &parts {
        let inside = vm.ram.iter().any(|r| {
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
    if vm.validate(None).is_err() {
        return;
    }
    let image = GuestImage {
        segments: bundle
            .images()
            .map(|i| Segment {
                ipa: i.load_ipa,
                data: i.data.to_vec(),
            })
            .collect(),
        entry: bundle.entry(),
        format: ImageFormat::Raw,
        arch: None,
    };
    let Ok(blob) = write_bundle(vm, &image, bundle.dtb(), bundle.dtb_ipa()) else {
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
