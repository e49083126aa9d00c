//! Writing a bundle, in the host tool: the validated configuration, the loaded guest image and
//! the guest device tree, in the format of [`super`].

use moat_arm::addr::Ipa;
use vm_fdt::FdtWriter;

use super::{
    BUNDLE_COMPATIBLE, BUNDLE_VERSION, GUEST_DTB_ALIGN, MAX_GUEST_DTB_SIZE, Part, Placed,
    PlacementError, check_placement, device_compatible,
};
use crate::hex::Hex;
use crate::loader::GuestImage;
use crate::schema::VmConfig;
use crate::validate::ConfigError;

/// The alignment, and the size of the window at the end of the first RAM region, of the
/// default guest device-tree address: Linux maps the tree with blocks of up to 2 MiB
/// (`booting.rst`), so a tree in its own 2 MiB block shares no mapping with the kernel.
const DTB_BLOCK: u64 = 2 << 20;

/// Why a bundle could not be written.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BundleWriteError {
    /// The configuration breaks a rule (checked without knowing the machine's IPA limit).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The first RAM region has no 2 MiB-aligned address for the guest device tree.
    #[error("RAM region 0 [{}, {}) has no 2 MiB-aligned address for the guest device tree: give the first RAM region a 2 MiB-aligned base or end", Hex((*base).into()), Hex(*base as u128 + *size as u128))]
    NoRoomForDtb {
        /// The region's base.
        base: u64,
        /// Its size.
        size: u64,
    },
    /// A guest device tree above Linux's limit.
    #[error("the guest device tree is {size} bytes, above the 2 MiB a Linux guest accepts")]
    DtbTooLarge {
        /// Its size.
        size: usize,
    },
    /// A guest device tree address that is not 8-byte aligned.
    #[error("the guest device tree's IPA {} is not 8-byte aligned", Hex((*ipa).into()))]
    DtbUnaligned {
        /// The address given.
        ipa: u64,
    },
    /// An image segment or the guest device tree outside RAM or overlapping.
    #[error("{0}")]
    Placement(#[from] PlacementError),
    /// The device-tree writer refused the bundle, e.g. a part above 4 GiB.
    #[error("cannot write the bundle: {0}")]
    Fdt(#[from] vm_fdt::Error),
}

/// Where the guest device tree goes by default: the 2 MiB-aligned address in the last 2 MiB of
/// the first RAM region, so that it stays clear of a kernel loaded near the start of RAM.
///
/// # Errors
///
/// [`BundleWriteError::Config`] with [`ConfigError::NoRam`] for a VM without RAM, or
/// [`BundleWriteError::NoRoomForDtb`] if no such address lies inside the region.
pub fn default_dtb_ipa(vm: &VmConfig) -> Result<Ipa, BundleWriteError> {
    let ram = vm.ram.first().ok_or(ConfigError::NoRam)?;
    let base = ram.base.raw();
    let last = base
        .checked_add(ram.size)
        .and_then(|end| end.checked_sub(1));
    let ipa = last
        .map(|last| last & !(DTB_BLOCK - 1))
        .filter(|&ipa| ipa >= base);
    let no_room = || BundleWriteError::NoRoomForDtb {
        base,
        size: ram.size,
    };
    ipa.map(Ipa).ok_or_else(no_room)
}

/// The bundle for `vm` booting `image`, with `guest_dtb` placed at `dtb_ipa`.
///
/// # Errors
///
/// [`BundleWriteError`] if the configuration is invalid, the device tree is too large or
/// unaligned, a segment or the device tree is outside RAM or overlaps another, or a part does
/// not fit the device-tree format (4 GiB).
pub fn write_bundle(
    vm: &VmConfig,
    image: &GuestImage,
    guest_dtb: &[u8],
    dtb_ipa: Ipa,
) -> Result<Vec<u8>, BundleWriteError> {
    vm.validate(None)?;
    check_dtb(guest_dtb, dtb_ipa)?;
    check_placement(vm, &placed(image, guest_dtb, dtb_ipa))?;
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string("compatible", BUNDLE_COMPATIBLE)?;
    fdt.property_u32("moat,bundle-version", BUNDLE_VERSION)?;
    let vm_node = fdt.begin_node("vm")?;
    write_config(&mut fdt, vm)?;
    let boot = fdt.begin_node("boot")?;
    fdt.property_u64("entry", image.entry.raw())?;
    fdt.property_u64("dtb-ipa", dtb_ipa.raw())?;
    fdt.end_node(boot)?;
    for segment in &image.segments {
        let node = fdt.begin_node(&format!("image@{:x}", segment.ipa.raw()))?;
        fdt.property_u64("load-ipa", segment.ipa.raw())?;
        fdt.property("data", &segment.data)?;
        fdt.end_node(node)?;
    }
    let dtb_node = fdt.begin_node("guest-dtb")?;
    fdt.property("data", guest_dtb)?;
    fdt.end_node(dtb_node)?;
    fdt.end_node(vm_node)?;
    fdt.end_node(root)?;
    Ok(fdt.finish()?)
}

fn check_dtb(guest_dtb: &[u8], dtb_ipa: Ipa) -> Result<(), BundleWriteError> {
    if guest_dtb.len() > MAX_GUEST_DTB_SIZE {
        return Err(BundleWriteError::DtbTooLarge {
            size: guest_dtb.len(),
        });
    }
    if !dtb_ipa.raw().is_multiple_of(GUEST_DTB_ALIGN) {
        return Err(BundleWriteError::DtbUnaligned { ipa: dtb_ipa.raw() });
    }
    Ok(())
}

fn placed(image: &GuestImage, guest_dtb: &[u8], dtb_ipa: Ipa) -> Vec<Placed> {
    let segments = image.segments.iter().enumerate().map(|(i, s)| Placed {
        part: Part::Image(i),
        ipa: s.ipa,
        size: s.data.len() as u64,
    });
    let dtb = Placed {
        part: Part::GuestDtb,
        ipa: dtb_ipa,
        size: guest_dtb.len() as u64,
    };
    segments.chain(core::iter::once(dtb)).collect()
}

/// `/vm`'s own properties, its RAM regions and its device windows.
fn write_config(fdt: &mut FdtWriter, vm: &VmConfig) -> Result<(), BundleWriteError> {
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_string("vm-name", &vm.name)?;
    fdt.property_u32("ipa-bits", vm.ipa_bits)?;
    fdt.property_string("parange", vm.parange.name())?;
    fdt.property_string("arch", vm.arch.name())?;
    fdt.property_string("hole-policy", vm.hole_policy.name())?;
    fdt.property_u32("cpus", vm.cpus)?;
    fdt.property_string("bootargs", &vm.bootargs)?;
    for ram in &vm.ram {
        let node = fdt.begin_node(&format!("ram@{:x}", ram.base.raw()))?;
        fdt.property_array_u64("reg", &[ram.base.raw(), ram.size])?;
        fdt.end_node(node)?;
    }
    for device in &vm.devices {
        let node = fdt.begin_node(&format!("device@{:x}", device.base.raw()))?;
        fdt.property_string("compatible", &device_compatible(device.kind))?;
        fdt.property_array_u64("reg", &[device.base.raw(), device.size])?;
        fdt.end_node(node)?;
    }
    Ok(())
}
