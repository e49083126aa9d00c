//! Where a Linux guest's initrd goes in guest RAM, and how it travels: the host tool places it
//! as one more image segment of the bundle (Moat copies every segment, so it needs nothing
//! new) and names it in the guest device tree's `/chosen` (`linux,initrd-start`/`-end`).
//!
//! The rule mirrors QEMU's `arm_load_kernel` for an arm64 `Image`: RAM base + min(RAM / 2,
//! 128 MiB), which leaves the kernel room to grow and relocate; if the kernel's footprint
//! (`image_size`, `.bss` included) reaches past that, or the initrd does not fit between there
//! and the guest device tree, the first 2 MiB boundary after the kernel is used instead. The
//! initrd never overlaps the kernel's footprint or the device tree, and it lies in the first RAM
//! region, which also holds the kernel: `booting.rst` asks for "a 1 GB aligned physical memory
//! window of up to 32 GB in size that fully covers the kernel Image as well", checked here too.

use moat_arm::addr::Ipa;

use crate::hex::Hex;
use crate::loader::{GuestImage, Segment};
use crate::schema::VmConfig;

/// QEMU's cap on the initrd's offset from the start of RAM.
pub const INITRD_OFFSET_CAP: u64 = 128 << 20;
/// The initrd's alignment.
pub const INITRD_ALIGN: u64 = 2 << 20;
/// `booting.rst`: the window that must hold both the kernel and the initrd.
const WINDOW_ALIGN: u64 = 1 << 30;
const WINDOW_MAX: u64 = 32 << 30;

/// Why an initrd cannot be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InitrdError {
    /// The VM has no RAM region.
    #[error("the VM has no RAM for the initrd")]
    NoRam,
    /// Not enough room between the kernel and the device tree (or the end of RAM).
    #[error("initrd of {size} bytes does not fit in RAM after the kernel: [{}, {}) has {} bytes free before {what}", Hex((*start).into()), Hex((*limit).into()), limit.saturating_sub(*start))]
    DoesNotFit {
        /// The initrd's size.
        size: u64,
        /// The first 2 MiB boundary after the kernel.
        start: u64,
        /// Where the free room ends.
        limit: u64,
        /// What is at `limit`.
        what: &'static str,
    },
    /// The kernel and the initrd span more than a 1 GiB-aligned 32 GiB window.
    #[error("the initrd at {} is not in the 1 GiB-aligned 32 GiB window that holds the kernel at {} (booting.rst)", Hex((*ipa).into()), Hex((*kernel).into()))]
    OutsideKernelWindow {
        /// The initrd's IPA.
        ipa: u64,
        /// The kernel's load IPA.
        kernel: u64,
    },
}

/// The IPA for an initrd of `size` bytes in `vm` booting `image`, with the guest device tree
/// at `dtb_ipa`: see the module doc for the rule.
///
/// # Errors
///
/// [`InitrdError`] if the VM has no RAM or no room, or the window rule is broken.
pub fn place_initrd(
    vm: &VmConfig,
    image: &GuestImage,
    dtb_ipa: Ipa,
    size: u64,
) -> Result<Ipa, InitrdError> {
    let ram = vm.ram.first().ok_or(InitrdError::NoRam)?;
    let (base, ram_end) = (ram.base.raw(), ram.base.raw().saturating_add(ram.size));
    let kernel_end = image.segments.iter().map(Segment::end).max();
    let kernel_end = kernel_end.map_or(base, |end| u64::try_from(end).unwrap_or(u64::MAX));
    let after_kernel = align_up(kernel_end.max(base), INITRD_ALIGN);
    let (limit, what) = if (after_kernel..ram_end).contains(&dtb_ipa.raw()) {
        (dtb_ipa.raw(), "the guest device tree")
    } else {
        (ram_end, "the end of RAM")
    };
    let fits = |start: u64| start.checked_add(size).is_some_and(|end| end <= limit);
    let qemu = base
        .saturating_add((ram.size / 2).min(INITRD_OFFSET_CAP))
        .max(after_kernel);
    let ipa = [qemu, after_kernel].into_iter().find(|&s| fits(s));
    let ipa = ipa.ok_or(InitrdError::DoesNotFit {
        size,
        start: after_kernel,
        limit,
        what,
    })?;
    check_window(image, ipa, size)?;
    Ok(Ipa(ipa))
}

/// `booting.rst`: the kernel and the initrd inside one 1 GiB-aligned window of at most 32 GiB.
fn check_window(image: &GuestImage, ipa: u64, size: u64) -> Result<(), InitrdError> {
    let kernel = image.entry.raw();
    let window = kernel & !(WINDOW_ALIGN - 1);
    if ipa < window
        || u128::from(ipa) + u128::from(size) > u128::from(window) + u128::from(WINDOW_MAX)
    {
        return Err(InitrdError::OutsideKernelWindow { ipa, kernel });
    }
    Ok(())
}

/// Adds the initrd to `image` as one more segment at `ipa`, and returns what the guest device
/// tree's `/chosen` names: its IPA and size.
pub fn add_initrd(image: &mut GuestImage, ipa: Ipa, data: Vec<u8>) -> (Ipa, u64) {
    let size = data.len() as u64;
    image.segments.push(Segment { ipa, data });
    (ipa, size)
}

fn align_up(value: u64, align: u64) -> u64 {
    value
        .checked_next_multiple_of(align)
        .unwrap_or(!(align - 1))
}

#[cfg(test)]
#[path = "initrd_tests.rs"]
mod tests;
