//! ELF64 AArch64 and ELF32 Arm executables (System V ABI, ELF for the Arm 64-bit and 32-bit
//! Architectures): loaded, as
//! QEMU's `-kernel` does, segment by segment at each `PT_LOAD`'s physical address `p_paddr`,
//! with `p_memsz - p_filesz` bytes of zeros after the file bytes; entered at `e_entry`.

use moat_arm::addr::Ipa;

use crate::schema::GuestArch;

use super::{GuestImage, ImageFormat, LoadError, Ram, Segment, check_disjoint, zero_filled};

/// `e_ident[EI_MAG0..=EI_MAG3]`.
pub(super) const MAGIC: &[u8] = b"\x7fELF";
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EM_ARM: u16 = 40;
const EM_AARCH64: u16 = 183;
const PT_LOAD: u32 = 1;
/// `e_machine`, at the same offset in both classes.
const E_MACHINE: usize = 18;

/// A field of a header: its offset and whether it is 8 bytes (ELF64) or 4 (ELF32).
#[derive(Clone, Copy)]
struct Word {
    at: usize,
    wide: bool,
}

/// Where the fields the loader reads sit in one ELF class (System V ABI, "ELF Header" and
/// "Program Header").
struct Layout {
    /// `sizeof(ElfN_Ehdr)`.
    ehdr_len: u64,
    /// `sizeof(ElfN_Phdr)`.
    phdr_len: u16,
    /// The `e_machine` this class must have: AArch64 for ELF64, Arm for ELF32.
    machine: u16,
    /// The guest architecture the file is for.
    arch: GuestArch,
    e_entry: Word,
    e_phoff: Word,
    e_phentsize: usize,
    e_phnum: usize,
    p_offset: Word,
    p_paddr: Word,
    p_filesz: Word,
    p_memsz: Word,
}

const fn wide(at: usize) -> Word {
    Word { at, wide: true }
}

const fn narrow(at: usize) -> Word {
    Word { at, wide: false }
}

/// ELF64 for the Arm 64-bit Architecture.
const ELF64: Layout = Layout {
    ehdr_len: 64,
    phdr_len: 56,
    machine: EM_AARCH64,
    arch: GuestArch::Aarch64,
    e_entry: wide(24),
    e_phoff: wide(32),
    e_phentsize: 54,
    e_phnum: 56,
    p_offset: wide(8),
    p_paddr: wide(24),
    p_filesz: wide(32),
    p_memsz: wide(40),
};

/// ELF32 for the Arm Architecture (an AArch32 guest).
const ELF32: Layout = Layout {
    ehdr_len: 52,
    phdr_len: 32,
    machine: EM_ARM,
    arch: GuestArch::Aarch32,
    e_entry: narrow(24),
    e_phoff: narrow(28),
    e_phentsize: 42,
    e_phnum: 44,
    p_offset: narrow(4),
    p_paddr: narrow(12),
    p_filesz: narrow(16),
    p_memsz: narrow(20),
};

/// The fields of `ElfN_Ehdr` the loader uses.
struct FileHeader {
    layout: &'static Layout,
    e_entry: u64,
    e_phoff: u64,
    e_phnum: u16,
}

/// The fields of an `ElfN_Phdr` the loader uses.
struct ProgramHeader {
    p_type: u32,
    p_offset: u64,
    p_paddr: u64,
    p_filesz: u64,
    p_memsz: u64,
}

/// Little-endian reads from the file, each bounds-checked against its length.
struct File<'a>(&'a [u8]);

impl File<'_> {
    /// The bytes `[offset, offset + len)`, naming `what` if they are beyond the end.
    fn range(&self, what: &str, offset: u64, len: u64) -> Result<&[u8], LoadError> {
        let file_len = self.0.len() as u64;
        let truncated = || LoadError::ElfTruncated {
            what: what.into(),
            offset,
            len,
            file_len,
        };
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= file_len)
            .ok_or_else(truncated)?;
        Ok(&self.0[offset as usize..end as usize])
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn word(bytes: &[u8], w: Word) -> u64 {
    if w.wide {
        u64::from_le_bytes(bytes[w.at..w.at + 8].try_into().unwrap())
    } else {
        u64::from(u32_at(bytes, w.at))
    }
}

impl FileHeader {
    fn parse(file: &File<'_>) -> Result<Self, LoadError> {
        let ident = file.range("ELF identification", 0, 20)?;
        let (class, data, machine) = (ident[EI_CLASS], ident[EI_DATA], u16_at(ident, E_MACHINE));
        let layout = match class {
            ELFCLASS64 => &ELF64,
            ELFCLASS32 => &ELF32,
            _ => {
                return Err(LoadError::ElfNotAarch64 {
                    class,
                    data,
                    machine,
                });
            }
        };
        if data != ELFDATA2LSB || machine != layout.machine {
            return Err(LoadError::ElfNotAarch64 {
                class,
                data,
                machine,
            });
        }
        let ehdr = file.range("ELF header", 0, layout.ehdr_len)?;
        let phentsize = u16_at(ehdr, layout.e_phentsize);
        if phentsize != layout.phdr_len {
            return Err(LoadError::ElfBadPhentsize { phentsize });
        }
        Ok(Self {
            layout,
            e_entry: word(ehdr, layout.e_entry),
            e_phoff: word(ehdr, layout.e_phoff),
            e_phnum: u16_at(ehdr, layout.e_phnum),
        })
    }
}

impl ProgramHeader {
    fn parse(file: &File<'_>, header: &FileHeader, index: u16) -> Result<Self, LoadError> {
        let layout = header.layout;
        let offset = header
            .e_phoff
            .saturating_add(u64::from(index) * u64::from(layout.phdr_len));
        let what = format!("program header {index}");
        let phdr = file.range(&what, offset, layout.phdr_len.into())?;
        Ok(Self {
            p_type: u32_at(phdr, 0),
            p_offset: word(phdr, layout.p_offset),
            p_paddr: word(phdr, layout.p_paddr),
            p_filesz: word(phdr, layout.p_filesz),
            p_memsz: word(phdr, layout.p_memsz),
        })
    }

    /// The segment's bytes with its zero fill, after checking it lies in RAM.
    fn load(&self, file: &File<'_>, index: usize, ram: Ram) -> Result<Segment, LoadError> {
        let (filesz, memsz) = (self.p_filesz, self.p_memsz);
        if filesz > memsz {
            return Err(LoadError::ElfFileSizeAboveMemSize {
                index,
                filesz,
                memsz,
            });
        }
        ram.check(index, self.p_paddr, memsz)?;
        let what = format!("segment {index}");
        let data = zero_filled(file.range(&what, self.p_offset, filesz)?, memsz, index)?;
        Ok(Segment {
            ipa: Ipa(self.p_paddr),
            data,
        })
    }
}

/// Loads every `PT_LOAD` program header with a non-zero `p_memsz`.
pub(super) fn load(bytes: &[u8], ram: Ram) -> Result<GuestImage, LoadError> {
    let file = File(bytes);
    let header = FileHeader::parse(&file)?;
    let mut segments = Vec::new();
    for index in 0..header.e_phnum {
        let phdr = ProgramHeader::parse(&file, &header, index)?;
        if phdr.p_type == PT_LOAD && phdr.p_memsz != 0 {
            segments.push((usize::from(index), phdr.load(&file, index.into(), ram)?));
        }
    }
    if segments.is_empty() {
        return Err(LoadError::ElfNothingToLoad);
    }
    check_disjoint(&segments)?;
    let segments = segments.into_iter().map(|(_, segment)| segment).collect();
    Ok(GuestImage {
        segments,
        entry: Ipa(header.e_entry),
        format: ImageFormat::Elf,
        arch: Some(header.layout.arch),
    })
}
