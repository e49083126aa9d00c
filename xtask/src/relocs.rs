//! The check that Moat's EL2 image can relocate itself: its boot code (`bare/hyp/src/boot.rs`)
//! applies `R_AARCH64_RELATIVE` relocations from `.rela.dyn` and nothing else, so the linked
//! ELF must hold no other relocation kind, no relocation against a symbol, and no relocation
//! table the boot code does not read (REL, RELR). Every build checks the ELF before it makes
//! the flat image (ELF for the Arm 64-bit Architecture, "Dynamic relocations"; the ELF-64
//! object file format for the section headers and `Elf64_Rela`).

use std::fmt;

/// `R_AARCH64_RELATIVE`: the place gets the load address plus the addend.
pub const R_AARCH64_RELATIVE: u32 = 1027;

/// Section types (`sh_type`) that hold relocations.
const SHT_RELA: u32 = 4;
const SHT_REL: u32 = 9;
const SHT_RELR: u32 = 19;
/// `sh_flags`: the section occupies memory at run time.
const SHF_ALLOC: u64 = 0x2;
/// The size of one `Elf64_Rela`.
const RELA_SIZE: usize = 24;

/// How many relocations an image holds, all of them applicable by the boot code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relocations {
    /// The `R_AARCH64_RELATIVE` entries.
    pub relative: usize,
}

/// Why an image cannot relocate itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelocError {
    /// Not a little-endian ELF64 file, or a header points outside it.
    Malformed(&'static str),
    /// A relocation table of a kind the boot code does not read.
    UnreadTable { section: usize, sh_type: u32 },
    /// A relocation other than `R_AARCH64_RELATIVE` with symbol 0.
    Unsupported { offset: u64, kind: u32, symbol: u32 },
}

impl fmt::Display for RelocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "not a well-formed little-endian ELF64: {what}"),
            Self::UnreadTable { section, sh_type } => write!(
                f,
                "section {section} is a relocation table of type {sh_type} (only RELA is applied)"
            ),
            Self::Unsupported {
                offset,
                kind,
                symbol,
            } => write!(
                f,
                "relocation of type {kind} against symbol {symbol} at {offset:#x} (only \
                 R_AARCH64_RELATIVE is applied)"
            ),
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, RelocError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(RelocError::Malformed("header beyond the file"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, RelocError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
        .ok_or(RelocError::Malformed("header beyond the file"))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, RelocError> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
        .ok_or(RelocError::Malformed("header beyond the file"))
}

fn to_usize(v: u64) -> Result<usize, RelocError> {
    usize::try_from(v).map_err(|_| RelocError::Malformed("offset beyond usize"))
}

/// Checks every allocated relocation table of the ELF file `elf`.
///
/// # Errors
///
/// [`RelocError`] naming the first relocation the boot code could not apply.
pub fn check(elf: &[u8]) -> Result<Relocations, RelocError> {
    // e_ident: "\x7fELF", ELFCLASS64 (2), ELFDATA2LSB (1).
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err(RelocError::Malformed(
            "no ELF64 little-endian identification",
        ));
    }
    let shoff = to_usize(u64_at(elf, 0x28)?)?;
    let shentsize = usize::from(u16_at(elf, 0x3a)?);
    let shnum = usize::from(u16_at(elf, 0x3c)?);
    if shentsize < 64 {
        return Err(RelocError::Malformed("section header entries too small"));
    }
    let mut relative = 0;
    for section in 0..shnum {
        let sh = shoff + section * shentsize;
        let sh_type = u32_at(elf, sh + 4)?;
        let sh_flags = u64_at(elf, sh + 8)?;
        if sh_flags & SHF_ALLOC == 0 {
            continue;
        }
        match sh_type {
            SHT_RELA => {}
            SHT_REL | SHT_RELR => return Err(RelocError::UnreadTable { section, sh_type }),
            _ => continue,
        }
        let offset = to_usize(u64_at(elf, sh + 0x18)?)?;
        let size = to_usize(u64_at(elf, sh + 0x20)?)?;
        let table = elf
            .get(offset..offset + size)
            .ok_or(RelocError::Malformed("relocation table beyond the file"))?;
        for entry in table.chunks(RELA_SIZE) {
            if entry.len() != RELA_SIZE {
                return Err(RelocError::Malformed("relocation table not whole entries"));
            }
            let r_offset = u64_at(entry, 0)?;
            let r_info = u64_at(entry, 8)?;
            // ELF64_R_SYM is the high half of r_info, ELF64_R_TYPE the low half.
            let (symbol, kind) = ((r_info >> 32) as u32, r_info as u32);
            if kind != R_AARCH64_RELATIVE || symbol != 0 {
                return Err(RelocError::Unsupported {
                    offset: r_offset,
                    kind,
                    symbol,
                });
            }
            relative += 1;
        }
    }
    Ok(Relocations { relative })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 header and `sections` section headers, each (type, flags, table), the tables
    /// appended after the headers.
    fn elf(sections: &[(u32, u64, Vec<u8>)]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let shoff = 64usize;
        b[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        b[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        b[0x3c..0x3e].copy_from_slice(&(sections.len() as u16).to_le_bytes());
        let mut data_at = shoff + 64 * sections.len();
        let mut headers = Vec::new();
        for (sh_type, flags, table) in sections {
            let mut h = vec![0u8; 64];
            h[4..8].copy_from_slice(&sh_type.to_le_bytes());
            h[8..16].copy_from_slice(&flags.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(data_at as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(table.len() as u64).to_le_bytes());
            headers.extend(h);
            data_at += table.len();
        }
        b.extend(headers);
        for (_, _, table) in sections {
            b.extend(table);
        }
        b
    }

    fn rela(offset: u64, symbol: u32, kind: u32, addend: i64) -> Vec<u8> {
        let info = (u64::from(symbol) << 32) | u64::from(kind);
        [
            offset.to_le_bytes(),
            info.to_le_bytes(),
            addend.to_le_bytes(),
        ]
        .concat()
    }

    #[test]
    fn relative_relocations_are_counted() {
        let table = [rela(0x100, 0, 1027, 0x40), rela(0x108, 0, 1027, 0x80)].concat();
        let image = elf(&[(SHT_RELA, SHF_ALLOC, table)]);
        assert_eq!(check(&image), Ok(Relocations { relative: 2 }));
    }

    #[test]
    fn an_absolute_relocation_is_refused_with_its_place() {
        // R_AARCH64_ABS64 (257) against symbol 3.
        let table = [rela(0x100, 0, 1027, 0), rela(0x2000, 3, 257, 0)].concat();
        let image = elf(&[(SHT_RELA, SHF_ALLOC, table)]);
        assert_eq!(
            check(&image),
            Err(RelocError::Unsupported {
                offset: 0x2000,
                kind: 257,
                symbol: 3
            })
        );
    }

    #[test]
    fn a_relative_relocation_naming_a_symbol_is_refused() {
        let image = elf(&[(SHT_RELA, SHF_ALLOC, rela(0x8, 1, 1027, 0))]);
        assert!(matches!(
            check(&image),
            Err(RelocError::Unsupported { symbol: 1, .. })
        ));
    }

    #[test]
    fn relr_tables_are_refused() {
        let image = elf(&[(SHT_RELR, SHF_ALLOC, vec![0; 8])]);
        assert_eq!(
            check(&image),
            Err(RelocError::UnreadTable {
                section: 0,
                sh_type: SHT_RELR
            })
        );
    }

    #[test]
    fn link_time_relocation_sections_are_not_loaded_and_not_checked() {
        // A non-allocated .rela.debug_info of ABS64 entries stays in the ELF only.
        let image = elf(&[(SHT_RELA, 0, rela(0, 5, 257, 0))]);
        assert_eq!(check(&image), Ok(Relocations { relative: 0 }));
    }

    #[test]
    fn a_truncated_file_is_malformed() {
        let mut image = elf(&[(SHT_RELA, SHF_ALLOC, rela(0, 0, 1027, 0))]);
        image.truncate(image.len() - 4);
        assert!(matches!(check(&image), Err(RelocError::Malformed(_))));
    }
}
