//! The arm64 Linux `Image` header (Linux `Documentation/arch/arm64/booting.rst`, "Call the
//! kernel image"): 64 bytes at the start of the file, all fields little-endian.
//!
//! What the loader takes from it: `text_offset` and `image_size` (where the kernel goes and how
//! much memory it claims, `.bss` included) and `flags`: bit 0, the kernel's endianness (Moat's
//! guests are little-endian: a big-endian kernel is refused), bits 1-2, its page size
//! (informative), bit 3, its placement (0: the 2 MiB-aligned base must be as close as possible
//! to the start of DRAM; 1: anywhere). Moat uses the first RAM region's base as that base, which
//! satisfies both placements, provided the base is 2 MiB-aligned.
//!
//! The rest of the boot protocol is met elsewhere: the device tree is 8-byte aligned, at most
//! 2 MiB and in a 2 MiB block of its own (`bundle::default_dtb_ipa`; kernels since v4.2 no longer
//! need it within 512 MiB of the kernel, only inside memory the DT declares); `x0` holds its
//! address and `x1..x3` are 0 because Moat's boot vCPU starts from a zeroed register frame and
//! sets `x0` only; the initrd is placed by `crate::initrd`.

use moat_arm::addr::Ipa;

use super::{DEFAULT_TEXT_OFFSET, GuestImage, ImageFormat, LoadError, Ram, Segment, zero_filled};

/// `magic` at offset 0x38: "ARM\x64".
const MAGIC: [u8; 4] = *b"ARM\x64";
const MAGIC_OFFSET: usize = 0x38;
const TEXT_OFFSET_OFFSET: usize = 0x08;
const IMAGE_SIZE_OFFSET: usize = 0x10;
const FLAGS_OFFSET: usize = 0x18;
const HEADER_LEN: usize = 0x40;
/// `flags` bit 0: 1 for a big-endian kernel.
const FLAG_BE: u64 = 1 << 0;
/// The alignment of the base the kernel is placed `text_offset` above.
const IMAGE_BASE_ALIGN: u64 = 2 << 20;

/// The header fields the loader uses.
pub(super) struct Header {
    /// Where the image goes relative to a 2 MiB-aligned base.
    text_offset: u64,
    /// How much memory the kernel occupies from its load address, `.bss` included; 0 for
    /// kernels before v3.17.
    image_size: u64,
    /// `flags` (0 for kernels before v3.17, which are little-endian).
    flags: u64,
}

impl Header {
    /// The header, if the file has the arm64 `Image` magic.
    pub(super) fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.get(MAGIC_OFFSET..MAGIC_OFFSET + 4)? != MAGIC || bytes.len() < HEADER_LEN {
            return None;
        }
        let field = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let (text_offset, image_size) = (field(TEXT_OFFSET_OFFSET), field(IMAGE_SIZE_OFFSET));
        // booting.rst: with image_size 0 the other fields are not valid either.
        let (text_offset, flags) = if image_size == 0 {
            (DEFAULT_TEXT_OFFSET, 0)
        } else {
            (text_offset, field(FLAGS_OFFSET))
        };
        Some(Self {
            text_offset,
            image_size,
            flags,
        })
    }
}

/// Loads the image at RAM base + `text_offset`, entered at its first byte. The segment is
/// padded with zeros up to `image_size`, so that the kernel's whole footprint is checked
/// against RAM and kept clear of the guest's device tree and initrd.
pub(super) fn load(bytes: &[u8], header: &Header, ram: Ram) -> Result<GuestImage, LoadError> {
    if header.flags & FLAG_BE != 0 {
        return Err(LoadError::BigEndianImage);
    }
    if !ram.base.is_multiple_of(IMAGE_BASE_ALIGN) {
        return Err(LoadError::ImageBaseUnaligned { ram_base: ram.base });
    }
    let ipa = ram.base.saturating_add(header.text_offset);
    let footprint = header.image_size.max(bytes.len() as u64);
    ram.check(0, ipa, footprint)?;
    let data = zero_filled(bytes, footprint, 0)?;
    let segments = vec![Segment {
        ipa: Ipa(ipa),
        data,
    }];
    Ok(GuestImage {
        segments,
        entry: Ipa(ipa),
        format: ImageFormat::LinuxImage,
        arch: Some(crate::schema::GuestArch::Aarch64),
    })
}
