//! Where the guest's RAM, image and device tree go: QEMU virt's map as Moat builds its VMs
//! (`moat_config`), so that one guest image and one device tree run under both.
//!
//! RAM starts at `0x4000_0000`; a raw image goes at RAM base + `0x80000` (the arm64 `Image`
//! `text_offset` QEMU and Moat use) and is entered there; the device tree goes by default at the
//! start of the last 2 MiB block of RAM, as `moat_config::default_dtb_ipa` places it.

use std::fmt;

/// The guest's RAM base (QEMU virt's `VIRT_MEM`).
pub const RAM_BASE: u64 = 0x4000_0000;
/// Where a raw image is loaded and entered, from the RAM base.
pub const IMAGE_OFFSET: u64 = 0x8_0000;
/// The device tree's block: it starts on this alignment and may not outgrow it.
pub const DTB_BLOCK: u64 = 2 << 20;
/// RAM sizes are whole multiples of this (the largest page size a host kernel may use, so
/// that the memslot is page-aligned on every host).
pub const RAM_GRANULE: u64 = 64 << 10;

/// The QEMU virt devices the runner's VM has.
pub mod devices {
    /// The PL011 the runner emulates in its own process.
    pub const PL011_BASE: u64 = 0x0900_0000;
    /// The PL011's window (4 KiB).
    pub const PL011_SIZE: u64 = 0x1000;
    /// The PL011's interrupt: SPI 1, INTID 33 (QEMU virt's `VIRT_UART`).
    pub const PL011_INTID: u32 = 33;
    /// The virtual PMU's overflow interrupt: PPI 7, INTID 23 (QEMU virt's `VIRTUAL_PMU_IRQ`).
    pub const PMU_INTID: u32 = 23;
    /// The in-kernel vGICv3's distributor (`GICD_*`, 64 KiB).
    pub const GICD_BASE: u64 = 0x0800_0000;
    /// The first redistributor; each vCPU's frame pair (`RD_base`, `SGI_base`) is 128 KiB.
    pub const GICR_BASE: u64 = 0x080A_0000;
    /// Interrupts the vGIC implements, the 32 private ones included (`GICD_TYPER.ITLinesNumber`
    /// = 3, as Moat's GIC model has).
    pub const GIC_NR_IRQS: u32 = 128;
}

/// A checked memory layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The RAM's size in bytes.
    pub ram_size: u64,
    /// Where the image is loaded, and the entry point.
    pub image_addr: u64,
    /// Where the device tree is loaded (`x0` at entry).
    pub dtb_addr: u64,
}

/// Why the images do not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The RAM size is 0 or not a multiple of [`RAM_GRANULE`].
    RamSize(u64),
    /// The RAM reaches past the IPA space.
    BeyondIpa {
        /// The VM's IPA size.
        ipa_bits: u32,
    },
    /// The image does not fit between its load address and the RAM's end.
    ImageTooLarge(u64),
    /// The device tree is larger than its 2 MiB block, or outside RAM.
    DtbOutside {
        /// Where it was to go.
        addr: u64,
        /// Its size.
        len: u64,
    },
    /// The image and the device tree overlap.
    Overlap,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RamSize(size) => write!(
                f,
                "RAM size {size:#x} is not a non-zero multiple of {RAM_GRANULE:#x}"
            ),
            Self::BeyondIpa { ipa_bits } => {
                write!(f, "the RAM reaches past the {ipa_bits}-bit IPA space")
            }
            Self::ImageTooLarge(len) => write!(
                f,
                "a {len}-byte image does not fit the RAM from RAM base + {IMAGE_OFFSET:#x}"
            ),
            Self::DtbOutside { addr, len } => write!(
                f,
                "a {len}-byte device tree at {addr:#x} is not inside RAM and its 2 MiB block"
            ),
            Self::Overlap => f.write_str("the image and the device tree overlap"),
        }
    }
}

/// The last 2 MiB-aligned address inside RAM: where Moat puts a guest's device tree.
#[must_use]
pub fn default_dtb_addr(ram_size: u64) -> u64 {
    (RAM_BASE + ram_size.saturating_sub(1)) & !(DTB_BLOCK - 1)
}

impl Layout {
    /// The layout of RAM of `ram_size` bytes in a `ipa_bits` IPA space holding an image of
    /// `image_len` bytes and a device tree of `dtb_len` bytes at `dtb_addr` (default: Moat's).
    ///
    /// # Errors
    ///
    /// [`LayoutError`] saying what does not fit.
    pub fn new(
        ram_size: u64,
        ipa_bits: u32,
        image_len: u64,
        dtb_addr: Option<u64>,
        dtb_len: u64,
    ) -> Result<Self, LayoutError> {
        if ram_size == 0 || !ram_size.is_multiple_of(RAM_GRANULE) {
            return Err(LayoutError::RamSize(ram_size));
        }
        let ram_end = RAM_BASE
            .checked_add(ram_size)
            .filter(|&end| end <= 1u64 << ipa_bits)
            .ok_or(LayoutError::BeyondIpa { ipa_bits })?;
        let image_addr = RAM_BASE + IMAGE_OFFSET;
        let image_end = image_addr
            .checked_add(image_len)
            .filter(|&end| end <= ram_end)
            .ok_or(LayoutError::ImageTooLarge(image_len))?;
        let dtb_addr = dtb_addr.unwrap_or_else(|| default_dtb_addr(ram_size));
        let outside = LayoutError::DtbOutside {
            addr: dtb_addr,
            len: dtb_len,
        };
        let dtb_end = dtb_addr.checked_add(dtb_len).ok_or(outside)?;
        if dtb_addr < RAM_BASE || dtb_end > ram_end || dtb_len > DTB_BLOCK || dtb_len == 0 {
            return Err(outside);
        }
        if dtb_addr < image_end && image_addr < dtb_end {
            return Err(LayoutError::Overlap);
        }
        Ok(Self {
            ram_size,
            image_addr,
            dtb_addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_device_tree_goes_in_the_last_2_mib_block_as_moat_puts_it() {
        assert_eq!(default_dtb_addr(128 * MIB), 0x47e0_0000);
        assert_eq!(default_dtb_addr(128 * MIB + 64 * 1024), 0x4800_0000);
    }

    #[test]
    fn an_image_is_loaded_and_entered_at_ram_base_plus_0x80000() {
        let layout = Layout::new(128 * MIB, 40, 4096, None, 2048).unwrap();
        assert_eq!(layout.image_addr, 0x4008_0000);
        assert_eq!(layout.dtb_addr, 0x47e0_0000);
    }

    #[test]
    fn ram_must_be_a_whole_number_of_64_kib_and_inside_the_ipa_space() {
        assert_eq!(
            Layout::new(MIB + 1, 40, 16, None, 16),
            Err(LayoutError::RamSize(MIB + 1))
        );
        assert_eq!(
            Layout::new(4096 * MIB, 32, 16, None, 16),
            Err(LayoutError::BeyondIpa { ipa_bits: 32 })
        );
        assert!(Layout::new(3072 * MIB, 32, 16, None, 16).is_ok());
    }

    #[test]
    fn an_image_overlapping_the_device_tree_or_past_ram_is_refused() {
        assert_eq!(
            Layout::new(4 * MIB, 40, 2 * MIB, None, 16),
            Err(LayoutError::Overlap)
        );
        assert_eq!(
            Layout::new(4 * MIB, 40, 4 * MIB, None, 16),
            Err(LayoutError::ImageTooLarge(4 * MIB))
        );
    }

    #[test]
    fn a_device_tree_outside_ram_or_larger_than_its_block_is_refused() {
        for (addr, len) in [
            (Some(0x3fff_f000), 16),
            (Some(0x47ff_fff0), 32),
            (None, 2 * MIB + 1),
            (None, 0),
        ] {
            assert!(
                matches!(
                    Layout::new(128 * MIB, 40, 16, addr, len),
                    Err(LayoutError::DtbOutside { .. })
                ),
                "{addr:?} {len}"
            );
        }
    }
}
