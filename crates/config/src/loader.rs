//! Guest image loading, as QEMU's `-kernel` does it for an AArch64 `virt` board: an ELF file by
//! its program headers, an arm64 Linux `Image` by its header (Linux
//! `Documentation/arch/arm64/booting.rst`), anything else as a raw binary. The result is a list
//! of byte runs to copy into guest RAM and the IPA to start the boot vCPU at; the host tool puts
//! them in the bundle and Moat copies them.

use moat_arm::addr::Ipa;

use crate::hex::Hex;

/// Where a raw binary goes, relative to the start of RAM, and where an `Image` with
/// `image_size` 0 goes (booting.rst: such a kernel predates v3.17 and assumes 0x80000).
pub const DEFAULT_TEXT_OFFSET: u64 = 0x8_0000;

/// Which kind of file the image was recognised as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// An ELF64 AArch64 executable, loaded by its `PT_LOAD` program headers.
    Elf,
    /// An arm64 Linux `Image`, loaded at RAM base + `text_offset`.
    LinuxImage,
    /// Anything else, loaded at RAM base + 0x80000.
    Raw,
}

/// A run of bytes to copy into guest RAM at `ipa`; zero-filled parts (ELF `.bss`) are included
/// as zeros, so the run covers all the memory the image claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Where the first byte goes.
    pub ipa: Ipa,
    /// The bytes.
    pub data: Vec<u8>,
}

impl Segment {
    /// The exclusive end IPA.
    #[must_use]
    pub fn end(&self) -> u128 {
        u128::from(self.ipa.raw()) + self.data.len() as u128
    }
}

/// A loaded guest image: what to copy where, and where the boot vCPU starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestImage {
    /// The runs to copy, in file order; they do not overlap and lie inside RAM.
    pub segments: Vec<Segment>,
    /// The boot vCPU's first instruction (`ELR_EL2` of the first entry).
    pub entry: Ipa,
    /// What the file was recognised as.
    pub format: ImageFormat,
    /// The guest architecture the file says it is for (`e_machine` of an ELF file; AArch64 for
    /// a Linux `Image`), or `None` for a raw binary, which says nothing.
    pub arch: Option<crate::schema::GuestArch>,
}

/// Why an image could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// A file of length 0.
    #[error("the guest image is empty")]
    Empty,
    /// An ELF file too short for a structure its headers point to.
    #[error("the ELF file is truncated: its {what} at offset {} ({} bytes) lies beyond the file's {} bytes", Hex((*offset).into()), Hex((*len).into()), Hex((*file_len).into()))]
    ElfTruncated {
        /// The structure, e.g. "program header 2".
        what: String,
        /// Its file offset.
        offset: u64,
        /// Its length.
        len: u64,
        /// The file's length.
        file_len: u64,
    },
    /// An ELF file for another class, byte order or machine.
    #[error(
        "the ELF file is neither a 64-bit little-endian AArch64 nor a 32-bit little-endian Arm image (EI_CLASS {class}, EI_DATA {data}, e_machine {machine}; expected 2, 1, 183 or 1, 1, 40)"
    )]
    ElfNotAarch64 {
        /// `EI_CLASS`.
        class: u8,
        /// `EI_DATA`.
        data: u8,
        /// `e_machine`.
        machine: u16,
    },
    /// Program headers of an unexpected size.
    #[error("the ELF file's program headers are {phentsize} bytes each, not 56")]
    ElfBadPhentsize {
        /// `e_phentsize`.
        phentsize: u16,
    },
    /// A `PT_LOAD` with more file bytes than memory.
    #[error("ELF program header {index} has p_filesz {} above p_memsz {}", Hex((*filesz).into()), Hex((*memsz).into()))]
    ElfFileSizeAboveMemSize {
        /// The program header's index.
        index: usize,
        /// `p_filesz`.
        filesz: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// Nothing to load.
    #[error("the ELF file has no PT_LOAD segment with memory")]
    ElfNothingToLoad,
    /// A segment not entirely inside the VM's RAM.
    #[error("guest image segment {index} [{}, {}) is not inside the VM's RAM [{}, {})", Hex((*ipa).into()), Hex(*ipa as u128 + *size as u128), Hex((*ram_base).into()), Hex(*ram_base as u128 + *ram_size as u128))]
    OutsideRam {
        /// The segment's index (the program header's for an ELF file, else 0).
        index: usize,
        /// Its first IPA.
        ipa: u64,
        /// Its length, zero fill included.
        size: u64,
        /// The RAM's base.
        ram_base: u64,
        /// The RAM's size.
        ram_size: u64,
    },
    /// An arm64 `Image` whose header says it is big-endian (`flags` bit 0).
    #[error(
        "the arm64 Image is a big-endian kernel (header flags bit 0): Moat boots little-endian guests only"
    )]
    BigEndianImage,
    /// An arm64 `Image` for a VM whose first RAM region cannot be its 2 MiB-aligned base.
    #[error("an arm64 Image is placed text_offset above a 2 MiB-aligned base, but the first RAM region starts at {}: give it a 2 MiB-aligned base", Hex((*ram_base).into()))]
    ImageBaseUnaligned {
        /// The first RAM region's base.
        ram_base: u64,
    },
    /// A file given as a Linux kernel that is not an arm64 `Image`.
    #[error(
        "not an arm64 Image: no \"ARM\\x64\" magic at offset 0x38 of its {} bytes (an arm64 kernel's Image header, booting.rst)", Hex((*len).into())
    )]
    NotArm64Image {
        /// The file's length.
        len: u64,
    },
    /// A segment whose zero fill the host cannot allocate (it may still fit the VM's RAM).
    #[error("guest image segment {index} needs {} bytes of memory, more than the host tool can allocate", Hex((*size).into()))]
    HostMemory {
        /// The segment's index.
        index: usize,
        /// Its length, zero fill included.
        size: u64,
    },
    /// Two segments claiming the same IPA.
    #[error("guest image segments {first} and {second} overlap")]
    Overlap {
        /// The earlier segment's index.
        first: usize,
        /// The later segment's index.
        second: usize,
    },
}

/// The RAM an image must fit in.
#[derive(Clone, Copy)]
struct Ram {
    base: u64,
    size: u64,
}

impl Ram {
    /// Checks that `[ipa, ipa + size)` lies inside this RAM.
    fn check(self, index: usize, ipa: u64, size: u64) -> Result<(), LoadError> {
        let inside = ipa >= self.base
            && u128::from(ipa) + u128::from(size) <= u128::from(self.base) + u128::from(self.size);
        let err = LoadError::OutsideRam {
            index,
            ipa,
            size,
            ram_base: self.base,
            ram_size: self.size,
        };
        if inside { Ok(()) } else { Err(err) }
    }
}

/// Recognises and loads a guest image into a VM whose (first) RAM region is
/// `[ram_base, ram_base + ram_size)`.
///
/// # Errors
///
/// [`LoadError`] for an empty file, a malformed or non-AArch64 ELF file, a segment outside RAM
/// or two overlapping segments.
pub fn load_guest_image(
    bytes: &[u8],
    ram_base: Ipa,
    ram_size: u64,
) -> Result<GuestImage, LoadError> {
    let ram = Ram {
        base: ram_base.raw(),
        size: ram_size,
    };
    if bytes.is_empty() {
        return Err(LoadError::Empty);
    }
    if bytes.starts_with(elf::MAGIC) {
        return elf::load(bytes, ram);
    }
    if let Some(header) = linux_image::Header::parse(bytes) {
        return linux_image::load(bytes, &header, ram);
    }
    load_raw(bytes, ram)
}

/// Loads a Linux kernel: as [`load_guest_image`], but the file must be an arm64 `Image`.
///
/// # Errors
///
/// [`LoadError::NotArm64Image`] for any other file, else as [`load_guest_image`].
pub fn load_linux_kernel(
    bytes: &[u8],
    ram_base: Ipa,
    ram_size: u64,
) -> Result<GuestImage, LoadError> {
    if bytes.is_empty() {
        return Err(LoadError::Empty);
    }
    let header = linux_image::Header::parse(bytes).ok_or(LoadError::NotArm64Image {
        len: bytes.len() as u64,
    })?;
    let ram = Ram {
        base: ram_base.raw(),
        size: ram_size,
    };
    linux_image::load(bytes, &header, ram)
}

/// `bytes` followed by zeros up to `size` bytes, for segment `index`: a refusal, not an abort,
/// when the host cannot allocate it (`size` is at most the VM's RAM, which the user chose).
fn zero_filled(bytes: &[u8], size: u64, index: usize) -> Result<Vec<u8>, LoadError> {
    let too_big = LoadError::HostMemory { index, size };
    let len = usize::try_from(size).map_err(|_| too_big.clone())?;
    let mut data = Vec::new();
    data.try_reserve_exact(len.max(bytes.len()))
        .map_err(|_| too_big)?;
    data.extend_from_slice(bytes);
    data.resize(len.max(bytes.len()), 0);
    Ok(data)
}

/// A raw binary: copied to RAM base + 0x80000 and entered at its first byte.
fn load_raw(bytes: &[u8], ram: Ram) -> Result<GuestImage, LoadError> {
    let ipa = ram.base.saturating_add(DEFAULT_TEXT_OFFSET);
    ram.check(0, ipa, bytes.len() as u64)?;
    let segments = vec![Segment {
        ipa: Ipa(ipa),
        data: bytes.to_vec(),
    }];
    Ok(GuestImage {
        segments,
        entry: Ipa(ipa),
        format: ImageFormat::Raw,
        arch: None,
    })
}

/// Checks that no two segments share an IPA.
fn check_disjoint(segments: &[(usize, Segment)]) -> Result<(), LoadError> {
    for (i, (first, a)) in segments.iter().enumerate() {
        let later = &segments[i + 1..];
        if let Some((second, _)) = later.iter().find(|(_, b)| overlap(a, b)) {
            return Err(LoadError::Overlap {
                first: *first,
                second: *second,
            });
        }
    }
    Ok(())
}

fn overlap(a: &Segment, b: &Segment) -> bool {
    u128::from(a.ipa.raw()) < b.end() && u128::from(b.ipa.raw()) < a.end()
}

mod linux_image;

mod elf;

#[cfg(test)]
#[path = "loader_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "loader_robustness_tests.rs"]
mod robustness_tests;
