//! Reading a bundle, in Moat at boot. `no_std`: the images and the guest device trees are
//! borrowed from the blob, the configurations are rebuilt on the heap.
//!
//! A parsed [`Bundle`] guarantees that its VMs pass [`SystemConfig::validate`]`(None, None)`
//! (each VM's own rules without the IPA limit, and no name or CPU shared between VMs), and
//! that each VM's images and guest device tree lie inside its RAM without overlapping; the
//! system still has to be checked against the machine (its CPUs, its RAM, its IPA limit `L`)
//! before the VMs are built.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use moat_arm::addr::Ipa;
use moat_pci::Bdf;

use super::fdt::{self, FdtError, Node};
use super::{BUNDLE_COMPATIBLE, BUNDLE_VERSION, Part, Placed, PlacementError, check_placement};
use crate::schema::{
    DeviceKind, DeviceWindow, GuestArch, HolePolicy, OnPowerOff, OnReset, ParangeMode, RamRegion,
    VmConfig,
};
use crate::system::{SystemConfig, SystemError};

/// A segment of the guest image: bytes to copy to guest RAM at `load_ipa`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleImage<'a> {
    /// Where the first byte goes.
    pub load_ipa: Ipa,
    /// The bytes, borrowed from the bundle.
    pub data: &'a [u8],
}

/// One VM of a bundle: its description, where to start it, and what to copy into its RAM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmBundle<'a> {
    config: VmConfig,
    entry: Ipa,
    dtb_ipa: Ipa,
    dtb: &'a [u8],
    images: Vec<BundleImage<'a>>,
}

/// A parsed bundle: one or more VMs, in the order of their nodes `vm@0`, `vm@1`, ...
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle<'a> {
    vms: Vec<VmBundle<'a>>,
}

/// Why a blob is not a bundle this Moat can boot. Node paths are device-tree paths
/// (`/vm@0/ram@40000000`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Not a well-formed device tree.
    #[error("the bundle is not a well-formed device tree: {0}")]
    Fdt(#[from] FdtError),
    /// A device tree, but not a bundle.
    #[error(
        "the device tree is not a Moat bundle: its root is not compatible with \"moat,bundle\""
    )]
    NotABundle,
    /// A bundle of another format version.
    #[error(
        "bundle version {found} is not supported: this Moat reads version {BUNDLE_VERSION}; rebuild the bundle with the matching host tool"
    )]
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// A required node is absent.
    #[error("the bundle has no {node} node under {parent}")]
    MissingNode {
        /// The parent's path.
        parent: String,
        /// The node's name.
        node: &'static str,
    },
    /// A node that must be unique appears twice.
    #[error("the bundle has more than one {node} node")]
    DuplicateNode {
        /// The node's path.
        node: String,
    },
    /// A node this version does not define.
    #[error("the bundle has an unknown node {node}")]
    UnknownNode {
        /// The node's path.
        node: String,
    },
    /// A required property is absent.
    #[error("{node} has no {property} property")]
    MissingProperty {
        /// The node's path.
        node: String,
        /// The property.
        property: &'static str,
    },
    /// A property given twice.
    #[error("{node} has its {property} property twice")]
    DuplicateProperty {
        /// The node's path.
        node: String,
        /// The property.
        property: String,
    },
    /// A property this version does not define.
    #[error("{node} has an unknown property {property}")]
    UnknownProperty {
        /// The node's path.
        node: String,
        /// The property.
        property: String,
    },
    /// A property whose value has the wrong size or form.
    #[error("{node}: property {property} is not {expected}")]
    BadValue {
        /// The node's path.
        node: String,
        /// The property.
        property: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// A VM node out of the sequence `vm@0`, `vm@1`, ...
    #[error(
        "the bundle's VM nodes are not numbered vm@0, vm@1, ... in order: node {index} is {node}"
    )]
    VmOrder {
        /// The node's position among the root's children.
        index: usize,
        /// Its name.
        node: String,
    },
    /// VMs breaking their own rules or sharing a name or a CPU.
    #[error("{0}")]
    System(#[from] SystemError),
    /// A VM's images or guest device tree outside its RAM or overlapping.
    #[error("VM '{vm}' cannot be loaded: {error}")]
    Placement {
        /// The VM.
        vm: String,
        /// What lies where it cannot.
        error: PlacementError,
    },
}

impl<'a> Bundle<'a> {
    /// Parses and checks a bundle. Never panics, whatever the blob.
    ///
    /// # Errors
    ///
    /// [`BundleError`] for a malformed device tree, a tree that is not a bundle of
    /// [`BUNDLE_VERSION`], a missing, unknown or malformed node or property, VM nodes out of
    /// sequence, VMs that [`SystemConfig::validate`] refuses (without a machine or an IPA
    /// limit), or a VM's images and guest device tree not fitting in its RAM.
    pub fn parse(blob: &'a [u8]) -> Result<Self, BundleError> {
        let root = fdt::parse(blob)?;
        check_root(&root)?;
        if root.children.is_empty() {
            return Err(BundleError::MissingNode {
                parent: "/".into(),
                node: "vm@0",
            });
        }
        let mut vms = Vec::with_capacity(root.children.len());
        for (index, node) in root.children.iter().enumerate() {
            if node.base_name() != "vm" {
                return Err(BundleError::UnknownNode {
                    node: format!("/{}", node.name),
                });
            }
            if node.name.strip_prefix("vm@") != Some(index.to_string().as_str()) {
                return Err(BundleError::VmOrder {
                    index,
                    node: node.name.into(),
                });
            }
            vms.push(parse_vm(node, format!("/{}", node.name))?);
        }
        let bundle = Self { vms };
        bundle.system().validate(None, None)?;
        for vm in &bundle.vms {
            check_placement(&vm.config, &vm.placed()).map_err(|error| BundleError::Placement {
                vm: vm.config.name.clone(),
                error,
            })?;
        }
        Ok(bundle)
    }

    /// The VMs, in the order written (at least one).
    #[must_use]
    pub fn vms(&self) -> &[VmBundle<'a>] {
        &self.vms
    }

    /// The VMs, owned.
    #[must_use]
    pub fn into_vms(self) -> Vec<VmBundle<'a>> {
        self.vms
    }

    /// The VMs' descriptions as a system, to validate against the machine.
    #[must_use]
    pub fn system(&self) -> SystemConfig {
        SystemConfig {
            vms: self.vms.iter().map(|vm| vm.config.clone()).collect(),
        }
    }
}

impl<'a> VmBundle<'a> {
    /// The VM description.
    #[must_use]
    pub fn config(&self) -> &VmConfig {
        &self.config
    }

    /// The boot vCPU's first instruction.
    #[must_use]
    pub fn entry(&self) -> Ipa {
        self.entry
    }

    /// Where the guest device tree goes (passed to the guest in `x0`).
    #[must_use]
    pub fn dtb_ipa(&self) -> Ipa {
        self.dtb_ipa
    }

    /// The guest device tree's bytes.
    #[must_use]
    pub fn dtb(&self) -> &'a [u8] {
        self.dtb
    }

    /// The image segments, in the order written.
    pub fn images(&self) -> impl ExactSizeIterator<Item = BundleImage<'a>> + '_ {
        self.images.iter().copied()
    }

    fn placed(&self) -> Vec<Placed> {
        let images = self.images.iter().enumerate().map(|(i, image)| Placed {
            part: Part::Image(i),
            ipa: image.load_ipa,
            size: image.data.len() as u64,
        });
        let dtb = Placed {
            part: Part::GuestDtb,
            ipa: self.dtb_ipa,
            size: self.dtb.len() as u64,
        };
        images.chain(core::iter::once(dtb)).collect()
    }
}

fn check_root(root: &Node<'_>) -> Result<(), BundleError> {
    let compatible = root
        .property("compatible")
        .and_then(|v| v.strip_suffix(b"\0"));
    if compatible != Some(BUNDLE_COMPATIBLE.as_bytes()) {
        return Err(BundleError::NotABundle);
    }
    let props = Props::new(root, "/".into(), &["compatible", "moat,bundle-version"])?;
    let found = props.u32("moat,bundle-version")?;
    if found != BUNDLE_VERSION {
        return Err(BundleError::UnsupportedVersion { found });
    }
    Ok(())
}

const VM_PROPERTIES: &[&str] = &[
    "#address-cells",
    "#size-cells",
    "vm-name",
    "ipa-bits",
    "parange",
    "arch",
    "hole-policy",
    "cpus",
    "physical-cpus",
    "bootargs",
    "on-poweroff",
    "on-reset",
    "pci-functions",
];

/// The parts of a VM node other than the configuration's own properties.
struct VmParts<'a> {
    ram: Vec<RamRegion>,
    devices: Vec<DeviceWindow>,
    images: Vec<BundleImage<'a>>,
    boot: Option<(Ipa, Ipa)>,
    dtb: Option<&'a [u8]>,
}

fn parse_vm<'a>(vm: &Node<'a>, path: String) -> Result<VmBundle<'a>, BundleError> {
    let props = Props::new(vm, path.clone(), VM_PROPERTIES)?;
    for cells in ["#address-cells", "#size-cells"] {
        if props.u32(cells)? != 2 {
            return Err(props.bad(cells, "2"));
        }
    }
    let parts = parse_vm_children(vm, &path)?;
    let missing = |node| BundleError::MissingNode {
        parent: path.clone(),
        node,
    };
    let (entry, dtb_ipa) = parts.boot.ok_or_else(|| missing("boot"))?;
    let config = VmConfig {
        name: props.string("vm-name")?.into(),
        ipa_bits: props.u32("ipa-bits")?,
        parange: props.named("parange", ParangeMode::from_name, "\"max\" or \"tight\"")?,
        arch: props.named("arch", GuestArch::from_name, "\"aarch64\" or \"aarch32\"")?,
        cpus: props.u32("cpus")?,
        physical_cpus: props.u32_list("physical-cpus")?,
        hole_policy: props.named(
            "hole-policy",
            HolePolicy::from_name,
            "\"abort\" or \"raz-wi\"",
        )?,
        ram: parts.ram,
        devices: parts.devices,
        bootargs: props.string("bootargs")?.into(),
        on_poweroff: props.named(
            "on-poweroff",
            OnPowerOff::from_name,
            "\"halt-vm\" or \"power-off-machine\"",
        )?,
        on_reset: props.named(
            "on-reset",
            OnReset::from_name,
            "\"restart\", \"halt-vm\" or \"power-off-machine\"",
        )?,
        pci: props.requester_ids("pci-functions")?,
    };
    let dtb = parts.dtb.ok_or_else(|| missing("guest-dtb"))?;
    Ok(VmBundle {
        config,
        entry,
        dtb_ipa,
        dtb,
        images: parts.images,
    })
}

fn parse_vm_children<'a>(vm: &Node<'a>, vm_path: &str) -> Result<VmParts<'a>, BundleError> {
    let mut parts = VmParts {
        ram: Vec::new(),
        devices: Vec::new(),
        images: Vec::new(),
        boot: None,
        dtb: None,
    };
    for child in &vm.children {
        let path = format!("{vm_path}/{}", child.name);
        let duplicate = || BundleError::DuplicateNode { node: path.clone() };
        match child.base_name() {
            "ram" => parts.ram.push(parse_ram(child, path)?),
            "device" => parts.devices.push(parse_device(child, path)?),
            "image" => parts.images.push(parse_image(child, path)?),
            "boot" if parts.boot.is_some() => return Err(duplicate()),
            "boot" => parts.boot = Some(parse_boot(child, path)?),
            "guest-dtb" if parts.dtb.is_some() => return Err(duplicate()),
            "guest-dtb" => parts.dtb = Some(Props::new(child, path, &["data"])?.bytes("data")?),
            _ => return Err(BundleError::UnknownNode { node: path }),
        }
    }
    Ok(parts)
}

fn parse_ram(node: &Node<'_>, path: String) -> Result<RamRegion, BundleError> {
    let (base, size) = Props::new(node, path, &["reg"])?.reg()?;
    Ok(RamRegion { base, size })
}

fn parse_device(node: &Node<'_>, path: String) -> Result<DeviceWindow, BundleError> {
    let props = Props::new(node, path, &["compatible", "reg", "link"])?;
    let from_compatible = |c: &str| c.strip_prefix("moat,").and_then(DeviceKind::from_name);
    let kind = props.named("compatible", from_compatible, "a moat device compatible")?;
    let (base, size) = props.reg()?;
    let link = props.optional_string("link")?;
    Ok(DeviceWindow {
        kind,
        base,
        size,
        link,
    })
}

fn parse_image<'a>(node: &Node<'a>, path: String) -> Result<BundleImage<'a>, BundleError> {
    let props = Props::new(node, path, &["load-ipa", "data"])?;
    Ok(BundleImage {
        load_ipa: Ipa(props.u64("load-ipa")?),
        data: props.bytes("data")?,
    })
}

fn parse_boot(node: &Node<'_>, path: String) -> Result<(Ipa, Ipa), BundleError> {
    let props = Props::new(node, path, &["entry", "dtb-ipa"])?;
    Ok((Ipa(props.u64("entry")?), Ipa(props.u64("dtb-ipa")?)))
}

/// The properties of one node, checked to be known and unique, with typed getters.
struct Props<'n, 'a> {
    node: &'n Node<'a>,
    path: String,
}

impl<'n, 'a> Props<'n, 'a> {
    fn new(node: &'n Node<'a>, path: String, allowed: &[&str]) -> Result<Self, BundleError> {
        for (i, prop) in node.properties.iter().enumerate() {
            let property = || prop.name.to_string();
            if !allowed.contains(&prop.name) {
                return Err(BundleError::UnknownProperty {
                    node: path,
                    property: property(),
                });
            }
            if node.properties[..i].iter().any(|p| p.name == prop.name) {
                return Err(BundleError::DuplicateProperty {
                    node: path,
                    property: property(),
                });
            }
        }
        Ok(Self { node, path })
    }

    fn bad(&self, property: &'static str, expected: &'static str) -> BundleError {
        BundleError::BadValue {
            node: self.path.clone(),
            property,
            expected,
        }
    }

    fn bytes(&self, property: &'static str) -> Result<&'a [u8], BundleError> {
        let missing = || BundleError::MissingProperty {
            node: self.path.clone(),
            property,
        };
        self.node.property(property).ok_or_else(missing)
    }

    fn cells<const N: usize>(&self, property: &'static str) -> Result<[u8; N], BundleError> {
        let expected = if N == 4 {
            "one 32-bit cell"
        } else {
            "two 32-bit cells"
        };
        let value = self.bytes(property)?;
        value.try_into().map_err(|_| self.bad(property, expected))
    }

    fn u32(&self, property: &'static str) -> Result<u32, BundleError> {
        Ok(u32::from_be_bytes(self.cells(property)?))
    }

    fn u64(&self, property: &'static str) -> Result<u64, BundleError> {
        Ok(u64::from_be_bytes(self.cells(property)?))
    }

    /// A list of 32-bit cells (possibly empty).
    fn u32_list(&self, property: &'static str) -> Result<Vec<u32>, BundleError> {
        let value = self.bytes(property)?;
        if !value.len().is_multiple_of(4) {
            return Err(self.bad(property, "a list of 32-bit cells"));
        }
        let cells = value.chunks_exact(4);
        Ok(cells
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// PCI functions as a list of requester IDs (bus << 8 | device << 3 | function), one
    /// cell each.
    fn requester_ids(&self, property: &'static str) -> Result<Vec<Bdf>, BundleError> {
        let cells = self.u32_list(property)?;
        cells
            .into_iter()
            .map(|rid| u16::try_from(rid).map(Bdf::from_requester_id))
            .collect::<Result<_, _>>()
            .map_err(|_| self.bad(property, "requester IDs of 16 bits, one cell each"))
    }

    /// A `reg` of one (base, size) pair of two cells each.
    fn reg(&self) -> Result<(Ipa, u64), BundleError> {
        let value = self.bytes("reg")?;
        let (base, size) = match value.len() {
            16 => value.split_at(8),
            _ => return Err(self.bad("reg", "one <base size> pair of two cells each")),
        };
        let word = |bytes: &[u8]| u64::from_be_bytes(bytes.try_into().unwrap_or_default());
        Ok((Ipa(word(base)), word(size)))
    }

    /// A single NUL-terminated UTF-8 string.
    fn string(&self, property: &'static str) -> Result<&'a str, BundleError> {
        let value = self.bytes(property)?;
        let text = value.strip_suffix(b"\0").filter(|t| !t.contains(&0));
        let text = text.and_then(|t| core::str::from_utf8(t).ok());
        text.ok_or_else(|| self.bad(property, "a NUL-terminated UTF-8 string"))
    }

    /// A string property that may be absent.
    fn optional_string(&self, property: &'static str) -> Result<Option<String>, BundleError> {
        match self.node.property(property) {
            None => Ok(None),
            Some(_) => Ok(Some(self.string(property)?.into())),
        }
    }

    /// A string naming one value of an enum.
    fn named<T>(
        &self,
        property: &'static str,
        from_name: impl Fn(&str) -> Option<T>,
        expected: &'static str,
    ) -> Result<T, BundleError> {
        from_name(self.string(property)?).ok_or_else(|| self.bad(property, expected))
    }
}
