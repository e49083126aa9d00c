//! The arm64 Linux `Image` header (Linux `Documentation/arch/arm64/booting.rst`, "Call the
//! kernel image"): 64 bytes at the start of the file, all fields little-endian.

use moat_arm::addr::Ipa;

use super::{DEFAULT_TEXT_OFFSET, GuestImage, ImageFormat, LoadError, Ram, Segment};

/// `magic` at offset 0x38: "ARM\x64".
const MAGIC: [u8; 4] = *b"ARM\x64";
const MAGIC_OFFSET: usize = 0x38;
const TEXT_OFFSET_OFFSET: usize = 0x08;
const IMAGE_SIZE_OFFSET: usize = 0x10;
const HEADER_LEN: usize = 0x40;

/// The header fields the loader uses.
pub(super) struct Header {
    /// Where the image goes relative to a 2 MiB-aligned base.
    text_offset: u64,
    /// How much memory the kernel occupies from its load address, `.bss` included; 0 for
    /// kernels before v3.17.
    image_size: u64,
}

impl Header {
    /// The header, if the file has the arm64 `Image` magic.
    pub(super) fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.get(MAGIC_OFFSET..MAGIC_OFFSET + 4)? != MAGIC || bytes.len() < HEADER_LEN {
            return None;
        }
        let field = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let (text_offset, image_size) = (field(TEXT_OFFSET_OFFSET), field(IMAGE_SIZE_OFFSET));
        let text_offset = if image_size == 0 {
            DEFAULT_TEXT_OFFSET
        } else {
            text_offset
        };
        Some(Self {
            text_offset,
            image_size,
        })
    }
}

/// Loads the image at RAM base + `text_offset`, entered at its first byte. The segment is
/// padded with zeros up to `image_size`, so that the kernel's whole footprint is checked
/// against RAM and kept clear of the guest's device tree.
pub(super) fn load(bytes: &[u8], header: &Header, ram: Ram) -> Result<GuestImage, LoadError> {
    let ipa = ram.base.saturating_add(header.text_offset);
    let footprint = header.image_size.max(bytes.len() as u64);
    ram.check(0, ipa, footprint)?;
    let mut data = bytes.to_vec();
    data.resize(
        usize::try_from(footprint).expect("footprint fits in RAM"),
        0,
    );
    let segments = vec![Segment {
        ipa: Ipa(ipa),
        data,
    }];
    Ok(GuestImage {
        segments,
        entry: Ipa(ipa),
        format: ImageFormat::LinuxImage,
    })
}
