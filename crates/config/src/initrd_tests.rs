//! Initrd placement against the QEMU rule, the kernel's footprint and the device tree, and the
//! `/chosen` properties that describe it, read back with the `fdt` crate.

use fdt::Fdt;

use super::*;
use crate::bundle::{default_dtb_ipa, write_bundle};
use crate::guest_dtb::generate_guest_dtb;
use crate::loader::ImageFormat;
use crate::schema::RamRegion;

const MIB: u64 = 1 << 20;

/// A VM with `mib` MiB of RAM at 0x4000_0000.
fn vm(mib: u64) -> VmConfig {
    let mut vm = VmConfig::default_virt();
    vm.ram = vec![RamRegion {
        base: Ipa(0x4000_0000),
        size: mib * MIB,
    }];
    vm
}

/// A kernel loaded at RAM base with a footprint of `footprint` bytes.
fn kernel(footprint: u64) -> GuestImage {
    GuestImage {
        segments: vec![Segment {
            ipa: Ipa(0x4000_0000),
            data: vec![0; usize::try_from(footprint).unwrap()],
        }],
        entry: Ipa(0x4000_0000),
        format: ImageFormat::LinuxImage,
        arch: None,
    }
}

fn place(vm: &VmConfig, image: &GuestImage, size: u64) -> Result<Ipa, InitrdError> {
    place_initrd(vm, image, default_dtb_ipa(vm).unwrap(), size)
}

#[test]
fn initrd_goes_at_ram_base_plus_half_the_ram_when_that_is_below_128mib() {
    let vm = vm(128);
    assert_eq!(place(&vm, &kernel(MIB), MIB), Ok(Ipa(0x4400_0000)));
}

#[test]
fn initrd_offset_is_capped_at_128mib_as_in_qemu() {
    let vm = vm(1024);
    assert_eq!(place(&vm, &kernel(MIB), MIB), Ok(Ipa(0x4800_0000)));
}

#[test]
fn initrd_goes_after_a_kernel_reaching_past_the_qemu_address_2mib_aligned() {
    let vm = vm(128);
    let ipa = place(&vm, &kernel(70 * MIB + 1), MIB).unwrap();
    assert_eq!(ipa, Ipa(0x4000_0000 + 72 * MIB));
}

#[test]
fn initrd_too_large_for_the_qemu_address_falls_back_to_just_after_the_kernel() {
    // 128 MiB: QEMU's address 0x4400_0000 leaves 62 MiB before the device tree at 0x47e0_0000.
    let vm = vm(128);
    let ipa = place(&vm, &kernel(28 * MIB), 90 * MIB).unwrap();
    assert_eq!(ipa, Ipa(0x4000_0000 + 28 * MIB));
}

#[test]
fn initrd_never_overlaps_the_kernel_footprint_or_the_device_tree() {
    let vm = vm(128);
    let dtb = default_dtb_ipa(&vm).unwrap().raw();
    for (footprint, size) in [(MIB, MIB), (28 * MIB, 60 * MIB), (100 * MIB, 24 * MIB)] {
        let ipa = place(&vm, &kernel(footprint), size).unwrap().raw();
        assert!(ipa >= 0x4000_0000 + footprint && ipa + size <= dtb);
        assert!(ipa.is_multiple_of(INITRD_ALIGN));
    }
}

#[test]
fn initrd_that_does_not_fit_is_refused_naming_its_size_and_the_room() {
    let vm = vm(128);
    let err = place(&vm, &kernel(100 * MIB), 30 * MIB).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("initrd of 31457280 bytes does not fit in RAM after the kernel"),
        "{message}"
    );
    assert!(
        message.contains("[0x4640_0000, 0x47e0_0000)") && message.contains("guest device tree"),
        "{message}"
    );
}

#[test]
fn initrd_outside_the_kernel_window_of_32gib_is_refused() {
    let mut vm = vm(128);
    vm.ram[0].size = 40 << 30;
    let image = kernel(MIB);
    let err = place_initrd(
        &vm,
        &image,
        Ipa(0x4000_0000 + (40 << 30) - 2 * MIB),
        33 << 30,
    );
    assert!(matches!(err, Err(InitrdError::OutsideKernelWindow { .. })));
}

#[test]
fn a_vm_without_ram_has_no_place_for_an_initrd() {
    let mut vm = vm(128);
    vm.ram.clear();
    let err = place_initrd(&vm, &kernel(MIB), Ipa(0x4000_0000), 1);
    assert_eq!(err, Err(InitrdError::NoRam));
}

#[test]
fn the_initrd_becomes_one_more_image_segment_and_the_bundle_accepts_it() {
    let vm = vm(128);
    let mut image = kernel(MIB);
    let dtb_ipa = default_dtb_ipa(&vm).unwrap();
    let ipa = place_initrd(&vm, &image, dtb_ipa, 4).unwrap();
    let initrd = add_initrd(&mut image, ipa, vec![1, 2, 3, 4]);
    assert_eq!(initrd, (Ipa(0x4400_0000), 4));
    assert_eq!(image.segments.len(), 2);
    let dtb = generate_guest_dtb(&vm, Some(initrd)).unwrap();
    assert!(write_bundle(&vm, &image, &dtb, dtb_ipa).is_ok());
}

/// A `/chosen` property as one big-endian u64.
fn chosen_u64(blob: &[u8], name: &str) -> Option<u64> {
    let fdt = Fdt::new(blob).unwrap();
    let chosen = fdt.find_node("/chosen").unwrap();
    let value = chosen.property(name)?.value;
    Some(u64::from_be_bytes(
        value.try_into().expect("a u64 cell pair"),
    ))
}

#[test]
fn chosen_names_the_initrd_start_and_end_in_u64_cells() {
    let blob = generate_guest_dtb(&vm(128), Some((Ipa(0x4400_0000), 0x1234))).unwrap();
    assert_eq!(chosen_u64(&blob, "linux,initrd-start"), Some(0x4400_0000));
    assert_eq!(chosen_u64(&blob, "linux,initrd-end"), Some(0x4400_1234));
    let fdt = Fdt::new(&blob).unwrap();
    assert_eq!(fdt.chosen().bootargs(), Some("console=ttyAMA0"));
}

#[test]
fn without_an_initrd_chosen_has_no_initrd_properties() {
    let blob = generate_guest_dtb(&vm(128), None).unwrap();
    assert_eq!(chosen_u64(&blob, "linux,initrd-start"), None);
    assert_eq!(chosen_u64(&blob, "linux,initrd-end"), None);
}

#[test]
fn initrd_sizes_whose_end_overflows_do_not_fit_and_do_not_panic() {
    let vm = vm(128);
    for size in [u64::MAX, u64::MAX - 0x3fff_ffff, 1 << 63, 129 * MIB] {
        assert!(
            matches!(
                place(&vm, &kernel(0x1000), size),
                Err(InitrdError::DoesNotFit { .. })
            ),
            "{size:#x}"
        );
    }
}

#[test]
fn ram_ending_at_the_top_of_the_address_space_places_without_wrapping() {
    // The last 1 GiB of the 64-bit space: base + size is 2^64 exactly.
    let mut vm = vm(128);
    vm.ram[0] = RamRegion {
        base: Ipa(!((1 << 30) - 1)),
        size: 1 << 30,
    };
    let mut image = kernel(0x1000);
    image.segments[0].ipa = vm.ram[0].base;
    image.entry = vm.ram[0].base;
    let dtb = Ipa(u64::MAX - (2 * MIB - 1));
    let ipa = place_initrd(&vm, &image, dtb, MIB).unwrap();
    assert_eq!(ipa.raw(), vm.ram[0].base.raw() + 128 * MIB);
    assert!(matches!(
        place_initrd(&vm, &image, dtb, u64::MAX),
        Err(InitrdError::DoesNotFit { .. })
    ));
}
