//! The loaders against hostile files: every truncation of a valid file, fields at the edges of
//! their range (offsets and sizes whose sums overflow 64 bits, addresses at the top of the
//! address space), and proptest-driven corruption. The loaders must refuse with a
//! [`LoadError`] (never panic, never allocate what RAM cannot hold), and whatever they accept
//! must honour their contract: every segment inside RAM, no two overlapping.

use super::*;
use proptest::prelude::*;

const RAM_BASE: Ipa = Ipa(0x4000_0000);
const RAM_SIZE: u64 = 128 << 20;

/// Offsets of the ELF64 header fields the loader reads.
const E_ENTRY: usize = 24;
const E_PHOFF: usize = 32;
const E_PHENTSIZE: usize = 54;
const E_PHNUM: usize = 56;
/// Offsets inside an ELF64 program header.
const P_OFFSET: usize = 8;
const P_PADDR: usize = 24;
const P_FILESZ: usize = 32;
const P_MEMSZ: usize = 40;
const PHDR: usize = 56;

/// A valid ELF64 AArch64 file: two `PT_LOAD`s (the second with `.bss`), program headers at 64.
fn elf64() -> Vec<u8> {
    let mut file = vec![0u8; 64 + 2 * PHDR];
    file[..4].copy_from_slice(b"\x7fELF");
    file[4] = 2; // ELFCLASS64
    file[5] = 1; // ELFDATA2LSB
    file[6] = 1; // EI_VERSION
    put16(&mut file, 18, 183); // EM_AARCH64
    put64(&mut file, E_ENTRY, 0x4008_0000);
    put64(&mut file, E_PHOFF, 64);
    put16(&mut file, E_PHENTSIZE, PHDR as u16);
    put16(&mut file, E_PHNUM, 2);
    let data_at = file.len() as u64;
    for (i, (paddr, filesz, memsz)) in [(0x4008_0000u64, 32u64, 32u64), (0x4010_0000, 16, 0x2000)]
        .into_iter()
        .enumerate()
    {
        let ph = 64 + i * PHDR;
        put32(&mut file, ph, 1); // PT_LOAD
        put64(&mut file, ph + P_OFFSET, data_at + 32 * i as u64);
        put64(&mut file, ph + P_PADDR, paddr);
        put64(&mut file, ph + P_FILESZ, filesz);
        put64(&mut file, ph + P_MEMSZ, memsz);
    }
    file.extend_from_slice(&[0xd5; 48]);
    file
}

/// A valid ELF32 Arm file with one `PT_LOAD`.
fn elf32() -> Vec<u8> {
    let mut file = vec![0u8; 52 + 32];
    file[..4].copy_from_slice(b"\x7fELF");
    file[4] = 1; // ELFCLASS32
    file[5] = 1;
    file[6] = 1;
    put16(&mut file, 18, 40); // EM_ARM
    put32(&mut file, 24, 0x4008_0000); // e_entry
    put32(&mut file, 28, 52); // e_phoff
    put16(&mut file, 42, 32); // e_phentsize
    put16(&mut file, 44, 1); // e_phnum
    put32(&mut file, 52, 1); // PT_LOAD
    put32(&mut file, 52 + 4, 84); // p_offset
    put32(&mut file, 52 + 12, 0x4008_0000); // p_paddr
    put32(&mut file, 52 + 16, 8); // p_filesz
    put32(&mut file, 52 + 20, 8); // p_memsz
    file.extend_from_slice(&[0xe3; 8]);
    file
}

/// A valid arm64 `Image` of 128 bytes claiming 1 MiB.
fn image() -> Vec<u8> {
    let mut file = vec![0u8; 128];
    put64(&mut file, 0x08, 0x20_0000); // text_offset
    put64(&mut file, 0x10, 0x10_0000); // image_size
    put64(&mut file, 0x18, 0b1010); // flags: LE, 4K pages, anywhere
    file[0x38..0x3c].copy_from_slice(b"ARM\x64");
    file
}

fn put16(file: &mut [u8], at: usize, v: u16) {
    file[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(file: &mut [u8], at: usize, v: u32) {
    file[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(file: &mut [u8], at: usize, v: u64) {
    file[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn load(bytes: &[u8]) -> Result<GuestImage, LoadError> {
    load_guest_image(bytes, RAM_BASE, RAM_SIZE)
}

/// The loader's contract for an accepted image: segments inside RAM and pairwise disjoint.
fn assert_contract(image: &GuestImage, ram_base: u64, ram_size: u64) {
    let ram_end = u128::from(ram_base) + u128::from(ram_size);
    for s in &image.segments {
        assert!(s.ipa.raw() >= ram_base && s.end() <= ram_end, "{s:x?}");
    }
    for (i, a) in image.segments.iter().enumerate() {
        for b in &image.segments[i + 1..] {
            assert!(a.end() <= u128::from(b.ipa.raw()) || b.end() <= u128::from(a.ipa.raw()));
        }
    }
}

#[test]
fn the_valid_files_load() {
    assert_eq!(load(&elf64()).unwrap().segments.len(), 2);
    assert_eq!(load(&elf32()).unwrap().format, ImageFormat::Elf);
    assert_eq!(load(&image()).unwrap().format, ImageFormat::LinuxImage);
}

#[test]
fn every_strict_prefix_of_an_elf_file_is_refused_as_truncated() {
    for file in [elf64(), elf32()] {
        for len in 4..file.len() {
            match load(&file[..len]) {
                Err(LoadError::ElfTruncated { file_len, .. }) => assert_eq!(file_len, len as u64),
                other => panic!("prefix of {len} bytes: {other:?}"),
            }
        }
    }
}

#[test]
fn a_prefix_without_the_image_magic_is_no_kernel_and_one_with_it_loads() {
    let file = image();
    for len in 1..file.len() {
        let kernel = load_linux_kernel(&file[..len], RAM_BASE, RAM_SIZE);
        if len < 0x40 {
            assert_eq!(
                kernel,
                Err(LoadError::NotArm64Image { len: len as u64 }),
                "{len}"
            );
            assert_eq!(load(&file[..len]).unwrap().format, ImageFormat::Raw);
        } else {
            assert_eq!(kernel.unwrap().format, ImageFormat::LinuxImage, "{len}");
        }
    }
}

#[test]
fn a_kernel_that_is_an_elf_or_a_raw_binary_is_not_an_arm64_image() {
    let elf = elf64();
    assert_eq!(
        load_linux_kernel(&elf, RAM_BASE, RAM_SIZE),
        Err(LoadError::NotArm64Image {
            len: elf.len() as u64
        })
    );
    assert_eq!(
        load_linux_kernel(&[], RAM_BASE, RAM_SIZE),
        Err(LoadError::Empty)
    );
    let err = load_linux_kernel(b"#!/bin/sh\n", RAM_BASE, RAM_SIZE).unwrap_err();
    assert_eq!(
        err.to_string(),
        "not an arm64 Image: no \"ARM\\x64\" magic at offset 0x38 of its 0xa bytes (an arm64 kernel's Image header, booting.rst)"
    );
}

#[test]
fn program_headers_at_an_offset_that_overflows_are_truncation_not_a_panic() {
    for phoff in [u64::MAX, u64::MAX - 55, u64::MAX - 56 * 3, 1 << 63] {
        let mut file = elf64();
        put64(&mut file, E_PHOFF, phoff);
        assert!(
            matches!(load(&file), Err(LoadError::ElfTruncated { ref what, .. }) if what == "program header 0"),
            "e_phoff {phoff:#x}"
        );
    }
}

#[test]
fn sixty_five_thousand_program_headers_in_a_small_file_are_truncation() {
    let mut file = elf64();
    put16(&mut file, E_PHNUM, u16::MAX);
    assert!(matches!(
        load(&file),
        Err(LoadError::ElfTruncated { ref what, .. }) if what == "program header 2"
    ));
}

#[test]
fn segment_bytes_outside_the_file_or_whose_end_overflows_are_truncation() {
    for (offset, filesz) in [
        (u64::MAX, 16),
        (u64::MAX - 8, 16),
        (16, u64::MAX - 8),
        (1 << 63, 1 << 63),
        (0x1000, 16),
    ] {
        let mut file = elf64();
        put64(&mut file, 64 + P_OFFSET, offset);
        put64(&mut file, 64 + P_FILESZ, filesz.min(RAM_SIZE / 2));
        put64(&mut file, 64 + P_MEMSZ, filesz.min(RAM_SIZE / 2));
        assert!(
            matches!(load(&file), Err(LoadError::ElfTruncated { ref what, .. }) if what == "segment 0"),
            "p_offset {offset:#x} p_filesz {filesz:#x}: {:?}",
            load(&file)
        );
    }
}

#[test]
fn segments_whose_address_plus_size_overflows_are_outside_ram() {
    for (paddr, memsz) in [
        (u64::MAX, 1),
        (u64::MAX - 4, 16),
        (0x4008_0000, u64::MAX),
        (1 << 63, 1 << 63),
    ] {
        let mut file = elf64();
        put64(&mut file, 64 + P_PADDR, paddr);
        put64(&mut file, 64 + P_FILESZ, 0);
        put64(&mut file, 64 + P_MEMSZ, memsz);
        assert!(
            matches!(load(&file), Err(LoadError::OutsideRam { index: 0, .. })),
            "p_paddr {paddr:#x} p_memsz {memsz:#x}"
        );
    }
    let mut file = elf64();
    put64(&mut file, 64 + P_FILESZ, u64::MAX);
    put64(&mut file, 64 + P_MEMSZ, u64::MAX);
    assert!(matches!(load(&file), Err(LoadError::OutsideRam { .. })));
}

#[test]
fn an_image_whose_offset_or_size_overflows_is_outside_ram() {
    for (text_offset, image_size) in [(u64::MAX, 1), (u64::MAX - 0x3f, 0x100), (0, u64::MAX)] {
        let mut file = image();
        put64(&mut file, 0x08, text_offset);
        put64(&mut file, 0x10, image_size);
        assert!(
            matches!(load(&file), Err(LoadError::OutsideRam { .. })),
            "text_offset {text_offset:#x} image_size {image_size:#x}"
        );
    }
}

#[test]
fn ram_at_the_top_of_the_address_space_refuses_instead_of_wrapping() {
    let base = Ipa(u64::MAX - 0xfff);
    for file in [vec![1u8; 16], elf64(), image()] {
        let loaded = load_guest_image(&file, base, 0x1000);
        assert!(
            matches!(
                loaded,
                Err(LoadError::OutsideRam { .. } | LoadError::ImageBaseUnaligned { .. })
            ),
            "{loaded:?}"
        );
    }
    // A 2 MiB-aligned last block: the Image's text_offset would wrap past the top.
    let top = Ipa(!((2 << 20) - 1));
    assert!(matches!(
        load_guest_image(&image(), top, 2 << 20),
        Err(LoadError::OutsideRam { .. })
    ));
}

#[test]
fn zero_fill_the_host_cannot_allocate_is_refused_not_aborted() {
    // RAM the size of the 64-bit space: the segment fits it, but no host has 4 EiB.
    let mut file = elf64();
    put64(&mut file, 64 + P_PADDR, 0);
    put64(&mut file, 64 + P_MEMSZ, 1 << 62);
    assert_eq!(
        load_guest_image(&file, Ipa(0), u64::MAX),
        Err(LoadError::HostMemory {
            index: 0,
            size: 1 << 62
        })
    );
    let mut file = image();
    put64(&mut file, 0x08, 0);
    put64(&mut file, 0x10, 1 << 62);
    assert!(matches!(
        load_guest_image(&file, Ipa(0), u64::MAX),
        Err(LoadError::HostMemory { .. })
    ));
}

/// Values at the edges of a field's range, and values near RAM.
fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        (0u64..64).prop_map(|k| u64::MAX - k),
        (0u32..64).prop_map(|s| 1u64 << s),
        (0u64..RAM_SIZE).prop_map(|o| RAM_BASE.raw() + o),
        any::<u64>(),
    ]
}

/// A field offset of the ELF64 header or of either program header.
fn elf64_field() -> impl Strategy<Value = usize> {
    let header = [E_ENTRY, E_PHOFF];
    let phdr = [P_OFFSET, P_PADDR, P_FILESZ, P_MEMSZ];
    prop_oneof![
        proptest::sample::select(header.to_vec()),
        (0usize..2, proptest::sample::select(phdr.to_vec())).prop_map(|(i, f)| 64 + i * PHDR + f),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn elf64_with_edge_values_in_its_fields_never_panics_and_keeps_the_contract(
        writes in proptest::collection::vec((elf64_field(), edge_u64()), 1..6),
        phnum in prop_oneof![Just(2u16), any::<u16>()],
        cut in prop_oneof![Just(usize::MAX), 0usize..220],
    ) {
        let mut file = elf64();
        for (at, value) in writes {
            put64(&mut file, at, value);
        }
        put16(&mut file, E_PHNUM, phnum);
        file.truncate(cut);
        if let Ok(image) = load(&file) {
            assert_contract(&image, RAM_BASE.raw(), RAM_SIZE);
        }
    }

    #[test]
    fn any_bytes_after_an_elf_or_image_prefix_never_panic(
        kind in 0u8..3,
        keep in 0usize..128,
        tail in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let valid = match kind {
            0 => elf64(),
            1 => elf32(),
            _ => image(),
        };
        let mut file = valid[..keep.min(valid.len())].to_vec();
        file.extend_from_slice(&tail);
        if let Ok(image) = load(&file) {
            assert_contract(&image, RAM_BASE.raw(), RAM_SIZE);
        }
        if let Ok(image) = load_linux_kernel(&file, RAM_BASE, RAM_SIZE) {
            prop_assert_eq!(image.format, ImageFormat::LinuxImage);
        }
    }
}
