//! What the guest learns at boot ([`BootInfo`]) and the memory facts tests need ([`Region`],
//! [`BootInfo::free_ram`]). The entry code that gathers it is in `start.rs`.

use crate::global::Global;
use crate::psci::Conduit;

/// A range of physical memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub base: usize,
    /// Length in bytes.
    pub size: usize,
}

impl Region {
    /// The region of `size` bytes from `base`.
    pub const fn new(base: usize, size: usize) -> Self {
        Self { base, size }
    }

    /// One past the last byte.
    pub const fn end(&self) -> usize {
        self.base + self.size
    }

    /// Whether the two regions share a byte.
    pub const fn overlaps(&self, other: &Region) -> bool {
        self.base < other.end() && other.base < self.end()
    }

    /// Whether `other` lies wholly inside this region.
    pub const fn contains(&self, other: &Region) -> bool {
        self.base <= other.base && other.end() <= self.end()
    }
}

/// What the guest learnt at boot.
#[derive(Debug, Clone, Copy)]
pub struct BootInfo {
    /// `/chosen/bootargs` (the `-append` string on QEMU), or `""`.
    pub bootargs: &'static str,
    /// The device tree blob, if X0 pointed at a valid one.
    pub dtb: Option<Region>,
    /// The first RAM region of the device tree's `/memory` node.
    pub ram: Option<Region>,
    /// The loaded image, BSS and stack included (`__image_start..__image_end`).
    pub image: Region,
    /// The PL011's MMIO base, if the device tree has one.
    pub uart: Option<usize>,
    /// The PSCI conduit in use (HVC when the device tree names none).
    pub psci: Conduit,
}

impl BootInfo {
    /// A 1 MiB-aligned region of `size` bytes of RAM that holds neither the image nor the device
    /// tree: free for a test to overwrite. `None` if RAM is unknown or too small.
    pub fn free_ram(&self, size: usize) -> Option<Region> {
        const ALIGN: usize = 1 << 20;
        let ram = self.ram?;
        let after_image = Region::new(self.image.end().next_multiple_of(ALIGN), size);
        let candidate = match self.dtb {
            Some(dtb) if after_image.overlaps(&dtb) => {
                Region::new(dtb.end().next_multiple_of(ALIGN), size)
            }
            _ => after_image,
        };
        (ram.contains(&candidate) && !candidate.overlaps(&self.image)).then_some(candidate)
    }
}

static BOOT_INFO: Global<Option<BootInfo>> = Global::new(None);

/// Records what the entry code learnt, for [`info`].
pub(crate) fn set_info(info: BootInfo) {
    BOOT_INFO.set(Some(info));
}

/// What the guest learnt at boot (the same value its `main` received).
///
/// # Panics
///
/// If called before the runtime has read the device tree, which it does before any guest code.
pub fn info() -> BootInfo {
    BOOT_INFO
        .get()
        .expect("the runtime sets BootInfo before the guest runs")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    /// QEMU virt with 512 MiB: the image at 0x4008_0000, the DTB where `dtb_base` says.
    fn qemu_boot(dtb_base: usize) -> BootInfo {
        BootInfo {
            bootargs: "",
            dtb: Some(Region::new(dtb_base, 0x2000)),
            ram: Some(Region::new(0x4000_0000, 512 * MIB)),
            image: Region::new(0x4008_0000, 0x16000),
            uart: Some(0x0900_0000),
            psci: Conduit::Hvc,
        }
    }

    #[test]
    fn regions_that_only_touch_do_not_overlap() {
        let a = Region::new(0x1000, 0x1000);
        assert!(!a.overlaps(&Region::new(0x2000, 0x10)));
        assert!(!Region::new(0x2000, 0x10).overlaps(&a));
        assert!(a.overlaps(&Region::new(0x1fff, 1)));
    }

    #[test]
    fn region_contains_itself_but_not_one_byte_more() {
        let a = Region::new(0x1000, 0x1000);
        assert!(a.contains(&a));
        assert!(!a.contains(&Region::new(0x1000, 0x1001)));
        assert!(!a.contains(&Region::new(0xfff, 2)));
    }

    #[test]
    fn free_ram_starts_at_the_first_mib_after_the_image() {
        let free = qemu_boot(0x4800_0000).free_ram(4 * MIB);
        assert_eq!(free, Some(Region::new(0x4010_0000, 4 * MIB)));
    }

    #[test]
    fn free_ram_skips_a_device_tree_just_after_the_image() {
        let free = qemu_boot(0x4020_0000).free_ram(4 * MIB);
        assert_eq!(free, Some(Region::new(0x4030_0000, 4 * MIB)));
    }

    #[test]
    fn free_ram_is_none_when_ram_ends_first() {
        assert_eq!(qemu_boot(0x4800_0000).free_ram(512 * MIB), None);
    }

    #[test]
    fn free_ram_is_none_without_a_memory_node() {
        let boot = BootInfo {
            ram: None,
            ..qemu_boot(0x4800_0000)
        };
        assert_eq!(boot.free_ram(MIB), None);
    }
}
