//! Loading synthetic ELF, `Image` and raw files built here byte by byte.

use super::*;

const RAM_BASE: Ipa = Ipa(0x4000_0000);
const RAM_SIZE: u64 = 128 << 20;

/// One `PT_LOAD` (or other) program header to put in a synthetic ELF file.
struct Phdr {
    p_type: u32,
    paddr: u64,
    data: Vec<u8>,
    memsz: u64,
}

fn load_phdr(paddr: u64, data: &[u8], memsz: u64) -> Phdr {
    Phdr {
        p_type: 1,
        paddr,
        data: data.to_vec(),
        memsz,
    }
}

/// An ELF64 little-endian AArch64 executable: header, program headers, then each segment's
/// file bytes.
fn elf(entry: u64, phdrs: &[Phdr]) -> Vec<u8> {
    let mut file = vec![0u8; 64];
    file[..4].copy_from_slice(b"\x7fELF");
    file[4] = 2; // EI_CLASS: ELFCLASS64
    file[5] = 1; // EI_DATA: ELFDATA2LSB
    file[6] = 1; // EI_VERSION
    file[16..18].copy_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    file[18..20].copy_from_slice(&183u16.to_le_bytes()); // e_machine: EM_AARCH64
    file[24..32].copy_from_slice(&entry.to_le_bytes()); // e_entry
    file[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    file[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    file[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    file[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes()); // e_phnum
    let mut offset = 64 + 56 * phdrs.len() as u64;
    for phdr in phdrs {
        let mut raw = [0u8; 56];
        raw[0..4].copy_from_slice(&phdr.p_type.to_le_bytes());
        raw[8..16].copy_from_slice(&offset.to_le_bytes()); // p_offset
        raw[16..24].copy_from_slice(&(phdr.paddr | 0xffff_0000_0000_0000).to_le_bytes()); // p_vaddr
        raw[24..32].copy_from_slice(&phdr.paddr.to_le_bytes()); // p_paddr
        raw[32..40].copy_from_slice(&(phdr.data.len() as u64).to_le_bytes()); // p_filesz
        raw[40..48].copy_from_slice(&phdr.memsz.to_le_bytes()); // p_memsz
        file.extend_from_slice(&raw);
        offset += phdr.data.len() as u64;
    }
    for phdr in phdrs {
        file.extend_from_slice(&phdr.data);
    }
    file
}

/// An arm64 `Image` header followed by `body`.
fn linux_image(text_offset: u64, image_size: u64, body: &[u8]) -> Vec<u8> {
    let mut file = vec![0u8; 64];
    file[8..16].copy_from_slice(&text_offset.to_le_bytes());
    file[16..24].copy_from_slice(&image_size.to_le_bytes());
    file[0x38..0x3c].copy_from_slice(b"ARM\x64");
    file.extend_from_slice(body);
    file
}

fn load(bytes: &[u8]) -> Result<GuestImage, LoadError> {
    load_guest_image(bytes, RAM_BASE, RAM_SIZE)
}

#[test]
fn elf_segments_load_at_their_physical_address_with_entry_from_the_header() {
    let file = elf(0x4020_0000, &[load_phdr(0x4020_0000, &[1, 2, 3, 4], 4)]);
    let image = load(&file).unwrap();
    assert_eq!(image.format, ImageFormat::Elf);
    assert_eq!(image.entry, Ipa(0x4020_0000));
    assert_eq!(
        image.segments,
        [Segment {
            ipa: Ipa(0x4020_0000),
            data: vec![1, 2, 3, 4]
        }]
    );
}

#[test]
fn elf_memsz_beyond_filesz_is_zero_filled_in_the_segment() {
    let file = elf(0x4020_0000, &[load_phdr(0x4020_0000, &[0xaa; 3], 0x10)]);
    let data = &load(&file).unwrap().segments[0].data;
    assert_eq!(data.len(), 0x10);
    assert_eq!(&data[..3], &[0xaa; 3]);
    assert!(data[3..].iter().all(|&b| b == 0));
}

#[test]
fn elf_headers_other_than_pt_load_and_empty_loads_are_skipped() {
    let note = Phdr {
        p_type: 4,
        paddr: 0,
        data: vec![9; 8],
        memsz: 8,
    };
    let empty = load_phdr(0, &[], 0);
    let text = load_phdr(0x4020_0000, &[7; 8], 8);
    let data = load_phdr(0x4030_0000, &[8; 8], 0x1000);
    let image = load(&elf(0x4020_0000, &[note, empty, text, data])).unwrap();
    let ipas: Vec<Ipa> = image.segments.iter().map(|s| s.ipa).collect();
    assert_eq!(ipas, [Ipa(0x4020_0000), Ipa(0x4030_0000)]);
}

#[test]
fn elf_segment_outside_ram_is_refused_naming_segment_and_ram() {
    let file = elf(0x4020_0000, &[load_phdr(0x47ff_f000, &[1; 4], 0x2000)]);
    let err = load(&file).unwrap_err();
    assert_eq!(
        err.to_string(),
        "guest image segment 0 [0x47ff_f000, 0x4800_1000) is not inside the VM's RAM \
         [0x4000_0000, 0x4800_0000)"
    );
}

#[test]
fn elf_segment_below_ram_is_refused() {
    let file = elf(0x0, &[load_phdr(0x3fff_f000, &[1; 4], 4)]);
    assert!(matches!(
        load(&file),
        Err(LoadError::OutsideRam { index: 0, .. })
    ));
}

#[test]
fn elf_overlapping_segments_are_refused() {
    let a = load_phdr(0x4020_0000, &[1; 4], 0x2000);
    let b = load_phdr(0x4020_1000, &[2; 4], 4);
    assert_eq!(
        load(&elf(0, &[a, b])),
        Err(LoadError::Overlap {
            first: 0,
            second: 1
        })
    );
}

#[test]
fn elf_for_another_machine_is_refused() {
    let mut file = elf(0, &[load_phdr(0x4020_0000, &[1], 1)]);
    file[18..20].copy_from_slice(&40u16.to_le_bytes()); // EM_ARM
    let err = load(&file).unwrap_err();
    assert_eq!(
        err,
        LoadError::ElfNotAarch64 {
            class: 2,
            data: 1,
            machine: 40
        }
    );
}

#[test]
fn elf32_is_refused() {
    let mut file = elf(0, &[load_phdr(0x4020_0000, &[1], 1)]);
    file[4] = 1; // ELFCLASS32
    assert!(matches!(
        load(&file),
        Err(LoadError::ElfNotAarch64 { class: 1, .. })
    ));
}

#[test]
fn truncated_elf_is_refused_naming_what_is_missing() {
    let file = elf(0, &[load_phdr(0x4020_0000, &[1; 64], 64)]);
    let err = load(&file[..file.len() - 1]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the ELF file is truncated: its segment 0"),
        "{err}"
    );
    let err = load(&file[..100]).unwrap_err();
    assert!(err.to_string().contains("its program header 0"), "{err}");
    assert!(matches!(
        load(&file[..10]),
        Err(LoadError::ElfTruncated { .. })
    ));
}

#[test]
fn elf_filesz_above_memsz_is_refused() {
    let file = elf(0, &[load_phdr(0x4020_0000, &[1; 8], 4)]);
    let err = LoadError::ElfFileSizeAboveMemSize {
        index: 0,
        filesz: 8,
        memsz: 4,
    };
    assert_eq!(load(&file), Err(err));
}

#[test]
fn elf_without_loadable_segments_is_refused() {
    assert_eq!(load(&elf(0, &[])), Err(LoadError::ElfNothingToLoad));
}

#[test]
fn elf_with_a_huge_memsz_is_refused_before_allocating() {
    let file = elf(0, &[load_phdr(0x4020_0000, &[1], u64::MAX)]);
    assert!(matches!(load(&file), Err(LoadError::OutsideRam { .. })));
}

#[test]
fn linux_image_loads_at_text_offset_and_is_entered_there() {
    let file = linux_image(0x20_0000, 0x100, &[0x55; 16]);
    let image = load(&file).unwrap();
    assert_eq!(image.format, ImageFormat::LinuxImage);
    assert_eq!(image.entry, Ipa(0x4020_0000));
    assert_eq!(image.segments[0].ipa, Ipa(0x4020_0000));
    assert_eq!(&image.segments[0].data[..file.len()], &file[..]);
}

#[test]
fn linux_image_segment_covers_image_size_with_zeros() {
    let file = linux_image(0, 0x1000, &[0x55; 16]);
    let data = &load(&file).unwrap().segments[0].data;
    assert_eq!(data.len(), 0x1000);
    assert!(data[file.len()..].iter().all(|&b| b == 0));
}

#[test]
fn linux_image_with_zero_image_size_is_taken_to_have_text_offset_0x80000() {
    let file = linux_image(0x1234_0000, 0, &[]);
    assert_eq!(load(&file).unwrap().entry, Ipa(0x4008_0000));
}

#[test]
fn linux_image_larger_than_ram_is_refused() {
    let file = linux_image(0x8_0000, RAM_SIZE, &[]);
    assert!(matches!(load(&file), Err(LoadError::OutsideRam { .. })));
}

#[test]
fn anything_else_is_a_raw_binary_at_ram_base_plus_0x80000() {
    let image = load(&[0x1f, 0x20, 0x03, 0xd5]).unwrap();
    assert_eq!(image.format, ImageFormat::Raw);
    assert_eq!(image.entry, Ipa(0x4008_0000));
    assert_eq!(
        image.segments,
        [Segment {
            ipa: Ipa(0x4008_0000),
            data: vec![0x1f, 0x20, 0x03, 0xd5]
        }]
    );
}

#[test]
fn a_short_file_with_a_partial_image_magic_is_raw() {
    let mut file = vec![0u8; 0x3c];
    file.extend_from_slice(b"ARM");
    assert_eq!(load(&file).unwrap().format, ImageFormat::Raw);
}

#[test]
fn raw_binary_too_large_for_ram_is_refused() {
    let file = vec![1u8; 0x2000];
    let err = load_guest_image(&file, RAM_BASE, 0x8_1000).unwrap_err();
    assert!(matches!(
        err,
        LoadError::OutsideRam {
            ipa: 0x4008_0000,
            size: 0x2000,
            ..
        }
    ));
}

#[test]
fn an_empty_file_is_refused() {
    assert_eq!(load(&[]), Err(LoadError::Empty));
}

/// An `Image` header with `flags` set (and a non-zero `image_size`, without which the flags
/// are not valid).
fn linux_image_with_flags(flags: u64) -> Vec<u8> {
    let mut file = linux_image(0, 0x1000, &[]);
    file[0x18..0x20].copy_from_slice(&flags.to_le_bytes());
    file
}

#[test]
fn big_endian_linux_image_is_refused_by_flags_bit_0() {
    let err = load(&linux_image_with_flags(0b1)).unwrap_err();
    assert_eq!(err, LoadError::BigEndianImage);
    assert!(err.to_string().contains("big-endian"));
}

#[test]
fn linux_image_with_page_size_and_placement_flags_loads_at_ram_base() {
    // Debian's arm64 kernels: 4K pages (bits 1-2 = 1), placement anywhere (bit 3).
    let image = load(&linux_image_with_flags(0b1010)).unwrap();
    assert_eq!(image.entry, RAM_BASE);
}

#[test]
fn flags_of_an_image_with_zero_image_size_are_ignored() {
    let mut file = linux_image(0, 0, &[]);
    file[0x18] = 1;
    assert_eq!(load(&file).unwrap().entry, Ipa(0x4008_0000));
}

#[test]
fn linux_image_needs_a_2mib_aligned_ram_base() {
    let file = linux_image(0, 0x1000, &[]);
    let err = load_guest_image(&file, Ipa(0x4010_0000), RAM_SIZE).unwrap_err();
    assert_eq!(
        err,
        LoadError::ImageBaseUnaligned {
            ram_base: 0x4010_0000
        }
    );
}

/// An ELF32 Arm executable with one `PT_LOAD` segment (System V ABI `Elf32_Ehdr`/`Elf32_Phdr`).
fn elf32(entry: u32, paddr: u32, data: &[u8], memsz: u32) -> Vec<u8> {
    let mut file = vec![0u8; 52];
    file[..4].copy_from_slice(b"\x7fELF");
    file[4] = 1; // EI_CLASS: ELFCLASS32
    file[5] = 1; // EI_DATA: ELFDATA2LSB
    file[6] = 1; // EI_VERSION
    file[16..18].copy_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    file[18..20].copy_from_slice(&40u16.to_le_bytes()); // e_machine: EM_ARM
    file[24..28].copy_from_slice(&entry.to_le_bytes()); // e_entry
    file[28..32].copy_from_slice(&52u32.to_le_bytes()); // e_phoff
    file[40..42].copy_from_slice(&52u16.to_le_bytes()); // e_ehsize
    file[42..44].copy_from_slice(&32u16.to_le_bytes()); // e_phentsize
    file[44..46].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    let mut raw = [0u8; 32];
    raw[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    raw[4..8].copy_from_slice(&84u32.to_le_bytes()); // p_offset
    raw[8..12].copy_from_slice(&paddr.to_le_bytes()); // p_vaddr
    raw[12..16].copy_from_slice(&paddr.to_le_bytes()); // p_paddr
    raw[16..20].copy_from_slice(&(data.len() as u32).to_le_bytes()); // p_filesz
    raw[20..24].copy_from_slice(&memsz.to_le_bytes()); // p_memsz
    file.extend_from_slice(&raw);
    file.extend_from_slice(data);
    file
}

#[test]
fn elf32_arm_image_loads_by_its_program_headers_and_says_aarch32() {
    let image = load(&elf32(0x4010_0000, 0x4010_0000, &[1, 2, 3, 4], 8)).unwrap();
    assert_eq!(image.entry, Ipa(0x4010_0000));
    assert_eq!(image.segments.len(), 1);
    assert_eq!(image.segments[0].ipa, Ipa(0x4010_0000));
    assert_eq!(image.segments[0].data, vec![1, 2, 3, 4, 0, 0, 0, 0]);
    assert_eq!(image.arch, Some(crate::GuestArch::Aarch32));
}

#[test]
fn elf64_image_says_aarch64_and_a_raw_binary_says_nothing() {
    let file = elf(0x4020_0000, &[load_phdr(0x4020_0000, &[1, 2, 3, 4], 4)]);
    assert_eq!(load(&file).unwrap().arch, Some(crate::GuestArch::Aarch64));
    assert_eq!(load(&[0x1f, 0x20, 0x03, 0xd5]).unwrap().arch, None);
}

#[test]
fn elf32_for_another_machine_is_refused() {
    let mut file = elf32(0x4010_0000, 0x4010_0000, &[1], 1);
    file[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64 in an ELF32 file
    assert!(matches!(
        load(&file),
        Err(LoadError::ElfNotAarch64 { class: 1, .. })
    ));
}
