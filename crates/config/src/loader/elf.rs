//! ELF64 AArch64 executables (System V ABI, ELF for the Arm 64-bit Architecture): loaded, as
//! QEMU's `-kernel` does, segment by segment at each `PT_LOAD`'s physical address `p_paddr`,
//! with `p_memsz - p_filesz` bytes of zeros after the file bytes; entered at `e_entry`.

use moat_arm::addr::Ipa;

use super::{GuestImage, ImageFormat, LoadError, Ram, Segment, check_disjoint};

/// `e_ident[EI_MAG0..=EI_MAG3]`.
pub(super) const MAGIC: &[u8] = b"\x7fELF";
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EM_AARCH64: u16 = 183;
const PT_LOAD: u32 = 1;

/// `sizeof(Elf64_Ehdr)`.
const EHDR_LEN: u64 = 64;
/// `sizeof(Elf64_Phdr)`.
const PHDR_LEN: u16 = 56;

/// The fields of `Elf64_Ehdr` the loader uses.
struct FileHeader {
    e_entry: u64,
    e_phoff: u64,
    e_phnum: u16,
}

/// The fields of an `Elf64_Phdr` the loader uses.
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

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

impl FileHeader {
    fn parse(file: &File<'_>) -> Result<Self, LoadError> {
        let ehdr = file.range("ELF header", 0, EHDR_LEN)?;
        let (class, data, machine) = (ehdr[EI_CLASS], ehdr[EI_DATA], u16_at(ehdr, 18));
        if class != ELFCLASS64 || data != ELFDATA2LSB || machine != EM_AARCH64 {
            return Err(LoadError::ElfNotAarch64 {
                class,
                data,
                machine,
            });
        }
        let phentsize = u16_at(ehdr, 54);
        if phentsize != PHDR_LEN {
            return Err(LoadError::ElfBadPhentsize { phentsize });
        }
        Ok(Self {
            e_entry: u64_at(ehdr, 24),
            e_phoff: u64_at(ehdr, 32),
            e_phnum: u16_at(ehdr, 56),
        })
    }
}

impl ProgramHeader {
    fn parse(file: &File<'_>, header: &FileHeader, index: u16) -> Result<Self, LoadError> {
        let offset = header
            .e_phoff
            .saturating_add(u64::from(index) * u64::from(PHDR_LEN));
        let what = format!("program header {index}");
        let phdr = file.range(&what, offset, PHDR_LEN.into())?;
        Ok(Self {
            p_type: u32_at(phdr, 0),
            p_offset: u64_at(phdr, 8),
            p_paddr: u64_at(phdr, 24),
            p_filesz: u64_at(phdr, 32),
            p_memsz: u64_at(phdr, 40),
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
        let mut data = file.range(&what, self.p_offset, filesz)?.to_vec();
        data.resize(
            usize::try_from(memsz).expect("a segment inside RAM fits in memory"),
            0,
        );
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
    })
}
