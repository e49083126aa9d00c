//! Writing a bundle, in the host tool: for each VM the validated configuration, the loaded
//! guest image and the guest device tree, in the format of [`super`].

use moat_arm::addr::Ipa;
use vm_fdt::FdtWriter;

use super::{
    BUNDLE_COMPATIBLE, BUNDLE_VERSION, GUEST_DTB_ALIGN, MAX_GUEST_DTB_SIZE, Part, Placed,
    PlacementError, check_placement, device_compatible,
};
use crate::hex::Hex;
use crate::loader::GuestImage;
use crate::schema::VmConfig;
use crate::system::{SystemConfig, SystemError};
use crate::validate::ConfigError;

/// One VM of a bundle, as the writer takes it.
#[derive(Clone, Copy, Debug)]
pub struct BundleVm<'a> {
    /// The VM's description.
    pub config: &'a VmConfig,
    /// Its loaded guest image (the initrd, if any, is one more segment).
    pub image: &'a GuestImage,
    /// Its guest device tree.
    pub dtb: &'a [u8],
    /// Where the guest device tree goes.
    pub dtb_ipa: Ipa,
}

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
    /// The VMs break a rule, their own or one between them (checked without the machine).
    #[error("{0}")]
    System(#[from] SystemError),
    /// One VM of several cannot be written.
    #[error("VM '{vm}': {error}")]
    Vm {
        /// The VM.
        vm: String,
        /// Why.
        error: Box<BundleWriteError>,
    },
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

/// The bundle of the single VM `vm` booting `image`, with `guest_dtb` placed at `dtb_ipa`.
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
    let only = BundleVm {
        config: vm,
        image,
        dtb: guest_dtb,
        dtb_ipa,
    };
    check_parts(&only)?;
    write_vms(&[only])
}

/// The bundle of the VMs `vms`, numbered `vm@0`, `vm@1`, ... in this order.
///
/// # Errors
///
/// [`BundleWriteError::System`] if [`SystemConfig::validate`] refuses the VMs (without a
/// machine or an IPA limit); [`BundleWriteError::Vm`] naming the VM whose device tree is too
/// large or unaligned, or whose segments or device tree lie outside its RAM or overlap; or a
/// part that does not fit the device-tree format (4 GiB).
pub fn write_system_bundle(vms: &[BundleVm<'_>]) -> Result<Vec<u8>, BundleWriteError> {
    let system = SystemConfig {
        vms: vms.iter().map(|vm| vm.config.clone()).collect(),
    };
    system.validate(None, None)?;
    for vm in vms {
        check_parts(vm).map_err(|error| BundleWriteError::Vm {
            vm: vm.config.name.clone(),
            error: Box::new(error),
        })?;
    }
    write_vms(vms)
}

fn check_parts(vm: &BundleVm<'_>) -> Result<(), BundleWriteError> {
    check_dtb(vm.dtb, vm.dtb_ipa)?;
    check_placement(vm.config, &placed(vm.image, vm.dtb, vm.dtb_ipa))?;
    Ok(())
}

/// Writes checked VMs.
fn write_vms(vms: &[BundleVm<'_>]) -> Result<Vec<u8>, BundleWriteError> {
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string("compatible", BUNDLE_COMPATIBLE)?;
    fdt.property_u32("moat,bundle-version", BUNDLE_VERSION)?;
    for (index, vm) in vms.iter().enumerate() {
        let vm_node = fdt.begin_node(&format!("vm@{index}"))?;
        write_config(&mut fdt, vm.config)?;
        let boot = fdt.begin_node("boot")?;
        fdt.property_u64("entry", vm.image.entry.raw())?;
        fdt.property_u64("dtb-ipa", vm.dtb_ipa.raw())?;
        fdt.end_node(boot)?;
        for segment in &vm.image.segments {
            let node = fdt.begin_node(&format!("image@{:x}", segment.ipa.raw()))?;
            fdt.property_u64("load-ipa", segment.ipa.raw())?;
            fdt.property("data", &segment.data)?;
            fdt.end_node(node)?;
        }
        let dtb_node = fdt.begin_node("guest-dtb")?;
        fdt.property("data", vm.dtb)?;
        fdt.end_node(dtb_node)?;
        fdt.end_node(vm_node)?;
    }
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

/// A VM node's own properties, its RAM regions and its device windows.
fn write_config(fdt: &mut FdtWriter, vm: &VmConfig) -> Result<(), BundleWriteError> {
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_string("vm-name", &vm.name)?;
    fdt.property_u32("ipa-bits", vm.ipa_bits)?;
    fdt.property_string("parange", vm.parange.name())?;
    fdt.property_string("arch", vm.arch.name())?;
    fdt.property_string("hole-policy", vm.hole_policy.name())?;
    fdt.property_u32("cpus", vm.cpus)?;
    fdt.property_array_u32("physical-cpus", &vm.physical_cpus)?;
    fdt.property_string("bootargs", &vm.bootargs)?;
    fdt.property_string("on-poweroff", vm.on_poweroff.name())?;
    fdt.property_string("on-reset", vm.on_reset.name())?;
    let rids: Vec<u32> = vm.pci.iter().map(|f| u32::from(f.requester_id())).collect();
    fdt.property_array_u32("pci-functions", &rids)?;
    for ram in &vm.ram {
        let node = fdt.begin_node(&format!("ram@{:x}", ram.base.raw()))?;
        fdt.property_array_u64("reg", &[ram.base.raw(), ram.size])?;
        fdt.end_node(node)?;
    }
    for device in &vm.devices {
        let node = fdt.begin_node(&format!("device@{:x}", device.base.raw()))?;
        fdt.property_string("compatible", &device_compatible(device.kind))?;
        fdt.property_array_u64("reg", &[device.base.raw(), device.size])?;
        if let Some(link) = &device.link {
            fdt.property_string("link", link)?;
        }
        fdt.end_node(node)?;
    }
    Ok(())
}
