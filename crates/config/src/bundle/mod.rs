//! The bundle: how the host tool hands the VMs to Moat. QEMU loads it as Moat's initrd; it is
//! a flattened device tree of Moat's own schema, so that it is versioned, self-describing and
//! readable with `dtc -I dtb` when something goes wrong.
//!
//! ```text
//! / {
//!     compatible = "moat,bundle";
//!     moat,bundle-version = <3>;
//!     vm@0 {                                   // one node per VM: vm@0, vm@1, ... in order
//!         #address-cells = <2>; #size-cells = <2>;
//!         vm-name = "default"; ipa-bits = <40>; parange = "max" | "tight";
//!         arch = "aarch64" | "aarch32"; hole-policy = "abort" | "raz-wi";
//!         cpus = <1>; physical-cpus = <0>;     // the machine CPU of vCPU 0, 1, ...
//!         bootargs = "...";
//!         on-poweroff = "halt-vm" | "power-off-machine";
//!         on-reset = "restart" | "halt-vm" | "power-off-machine";
//!         pci-functions = <0x8>;               // assigned PCI functions' requester IDs
//!         ram@40000000 { reg = <base-hi base-lo size-hi size-lo>; };          // per RAM region
//!         device@9000000 { compatible = "moat,pl011" | "moat,gicv3-dist"
//!                                      | "moat,gicv3-redist" | "moat,virtio-net";
//!                      reg = <...>; link = "peer-vm"; };  // per window; `link` on virtio-net only
//!         boot { entry = <hi lo>; dtb-ipa = <hi lo>; };
//!         image@40080000 { load-ipa = <hi lo>; data = [bytes]; };            // per segment
//!         guest-dtb { data = [bytes]; };
//!     };
//! };
//! ```
//!
//! VMs, regions and segments keep their configuration order. The reader is strict: an unknown
//! node or property, a duplicate, a missing one or a value of the wrong size is an error, so
//! that a writer and a reader that disagree are caught at boot rather than half-understood; a
//! change of the format bumps [`BUNDLE_VERSION`] (version 1 had a single `vm` node and no
//! physical CPUs or lifecycle, version 2 no `pci-functions`; the host tool and Moat are built together, so a version-1 blob
//! is refused, not converted). The reader also refuses VMs that share a name or a CPU. The
//! VM's name is `vm-name`, not `name`, which the device-tree tools reserve for a node's own
//! name (`dtc` refuses the tree otherwise).

mod fdt;
mod reader;
#[cfg(feature = "host")]
mod writer;

#[cfg(all(test, feature = "host"))]
mod tests;

use core::fmt;

use moat_arm::addr::Ipa;

use crate::hex::Hex;
use crate::schema::VmConfig;

pub use fdt::FdtError;
pub use reader::{Bundle, BundleError, BundleImage, VmBundle};
#[cfg(feature = "host")]
pub use writer::{BundleVm, BundleWriteError, default_dtb_ipa, write_bundle, write_system_bundle};

/// The format version this crate writes and reads.
pub const BUNDLE_VERSION: u32 = 3;
/// The root's `compatible`.
pub const BUNDLE_COMPATIBLE: &str = "moat,bundle";
/// The largest guest device tree Linux accepts (`booting.rst`: "must not exceed 2 megabytes").
pub const MAX_GUEST_DTB_SIZE: usize = 2 << 20;
/// The alignment of the guest device tree's IPA (`booting.rst`: "an 8-byte boundary").
pub const GUEST_DTB_ALIGN: u64 = 8;

/// A piece of guest memory content carried by the bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The image segment at this index.
    Image(usize),
    /// The guest's device tree.
    GuestDtb,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Image(index) => write!(f, "image segment {index}"),
            Self::GuestDtb => f.write_str("the guest device tree"),
        }
    }
}

/// A part with where it goes; displays as `image segment 0 [base, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Which part.
    pub part: Part,
    /// Its first IPA.
    pub ipa: Ipa,
    /// Its length in bytes.
    pub size: u64,
}

impl Placed {
    fn end(&self) -> u128 {
        u128::from(self.ipa.raw()) + u128::from(self.size)
    }
}

impl fmt::Display for Placed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}, {})",
            self.part,
            Hex(self.ipa.raw().into()),
            Hex(self.end())
        )
    }
}

/// Why the images and the guest device tree cannot be copied into the VM's RAM as placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// A part not entirely inside one RAM region.
    #[error("{0} is not inside one of the VM's RAM regions")]
    OutsideRam(Placed),
    /// Two parts sharing guest memory.
    #[error("{0} overlaps {1}")]
    Overlap(Placed, Placed),
}

/// Checks that every part lies inside one RAM region of `vm` and that no two overlap: then
/// copying them all into guest RAM is safe and order-independent.
///
/// # Errors
///
/// The first part outside RAM, else the first overlapping pair.
pub fn check_placement(vm: &VmConfig, parts: &[Placed]) -> Result<(), PlacementError> {
    for part in parts {
        let inside = vm.ram.iter().any(|ram| {
            let end = u128::from(ram.base.raw()) + u128::from(ram.size);
            part.ipa >= ram.base && part.end() <= end
        });
        if !inside {
            return Err(PlacementError::OutsideRam(*part));
        }
    }
    for (i, first) in parts.iter().enumerate() {
        let overlapping = |other: &&Placed| {
            u128::from(first.ipa.raw()) < other.end() && u128::from(other.ipa.raw()) < first.end()
        };
        if let Some(second) = parts[i + 1..].iter().find(overlapping) {
            return Err(PlacementError::Overlap(*first, *second));
        }
    }
    Ok(())
}

#[cfg(feature = "host")]
/// The bundle `compatible` of a device kind: `"moat,"` + its name.
fn device_compatible(kind: crate::schema::DeviceKind) -> alloc::string::String {
    alloc::format!("moat,{}", kind.name())
}
