//! The rules every VM description must satisfy before a VM is built (SPEC §1): checked by the
//! host tool before it writes a bundle (IPA limit unknown) and again by Moat at boot, against
//! the real IPA limit `L` of the machine.
//!
//! Each rule has its own [`ConfigError`] variant, whose message names the region, its range and
//! the limit it breaks.

use core::fmt;

use moat_arm::addr::Ipa;
use moat_pci::Bdf;

use crate::hex::Hex;
pub use crate::schema::MAX_CPUS;
use crate::schema::{
    DeviceKind, GICC_SIZE, GICR_SIZE_PER_CPU, GUEST_LAST_BUS, MAX_NET_LINKS, SMMU_IPA_BITS,
    VIRTIO_NET_FIRST_INTID, VmConfig,
};

/// The smallest IPA size Moat gives a VM: the smallest PARange encoding (32 bits).
pub const MIN_IPA_BITS: u32 = 32;
/// The largest IPA size Moat's stage 2 translates: 48 bits with a 4K granule and no
/// `VTCR_EL2.DS` (SPEC §1). The IPA limit `L` never exceeds it.
pub const MAX_IPA_BITS: u32 = 48;
/// The granule every region's base and size must be a multiple of: stage 2 maps 4 KiB pages.
pub const REGION_ALIGN: u64 = 0x1000;

/// Which region of a configuration a message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionId {
    /// The RAM region at this index of [`VmConfig::ram`].
    Ram(usize),
    /// The device window at this index of [`VmConfig::devices`].
    Device {
        /// Its index in [`VmConfig::devices`].
        index: usize,
        /// Its kind, named in messages.
        kind: DeviceKind,
    },
    /// The configuration window of the VM's PCIe host bridge (ECAM), which Moat traps
    /// ([`crate::assign::guest_ecam`]).
    PciEcam,
    /// The memory window of the VM's PCIe host bridge, where the guest places its functions'
    /// BARs ([`crate::assign::guest_pci_memory`]).
    PciMemory,
}

impl fmt::Display for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ram(index) => write!(f, "RAM region {index}"),
            Self::Device { index, kind } => write!(f, "device {index} ({})", kind.name()),
            Self::PciEcam => f.write_str("the PCIe host bridge's ECAM window"),
            Self::PciMemory => f.write_str("the PCIe host bridge's memory window"),
        }
    }
}

/// A region with its place in the configuration; displays as `RAM region 1 [base, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Which region this is.
    pub id: RegionId,
    /// Its first IPA.
    pub base: Ipa,
    /// Its length in bytes.
    pub size: u64,
}

impl Region {
    /// The exclusive end, which may be `2^64` for a region reaching the top of the space.
    #[must_use]
    pub fn end(&self) -> u128 {
        u128::from(self.base.raw()) + u128::from(self.size)
    }

    fn overlaps(&self, other: &Region) -> bool {
        u128::from(self.base.raw()) < other.end() && u128::from(other.base.raw()) < self.end()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = Hex(self.base.raw().into());
        write!(f, "{} [{base}, {})", self.id, Hex(self.end()))
    }
}

/// Shows `2^bits = 0x...`.
struct PowerOfTwo(u32);

impl fmt::Display for PowerOfTwo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "2^{} = {}", self.0, Hex(1u128 << self.0))
    }
}

/// Why a VM description was refused; the message is the one shown to the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `S` below the smallest PARange encoding.
    #[error(
        "ipa-bits = {ipa_bits} is below {MIN_IPA_BITS}: the smallest IPA space a VM can have is the smallest physical address size an Arm CPU can report (PARange 32 bits)"
    )]
    IpaBitsTooSmall {
        /// The requested `S`.
        ipa_bits: u32,
    },
    /// `S` above what Moat's stage 2 can translate, whatever the hardware.
    #[error(
        "ipa-bits = {ipa_bits} is above {MAX_IPA_BITS}: Moat's stage 2 (4K granule, no FEAT_LPA2) translates IPAs of at most 48 bits"
    )]
    IpaBitsAboveStage2 {
        /// The requested `S`.
        ipa_bits: u32,
    },
    /// `S` above this machine's IPA limit `L`.
    #[error(
        "ipa-bits = {ipa_bits} is above this machine's IPA limit L = {ipa_limit} (the smaller of the CPUs' PARange and Moat's stage-2 limit of 48 bits)"
    )]
    IpaBitsAboveLimit {
        /// The requested `S`.
        ipa_bits: u32,
        /// The machine's `L`.
        ipa_limit: u32,
    },
    /// No vCPU, or more than Moat supports.
    #[error("cpus = {cpus} is out of range: a VM has 1 to {MAX_CPUS} vCPUs")]
    CpuCount {
        /// The requested number of vCPUs.
        cpus: u32,
    },
    /// A physical-CPU list whose length is not the vCPU count.
    #[error(
        "cpus = {cpus} but {listed} machine CPUs are listed for the VM: vCPU n runs on the n-th listed CPU, so the list has one CPU per vCPU"
    )]
    PhysicalCpuCount {
        /// The vCPU count.
        cpus: u32,
        /// The length of the physical-CPU list.
        listed: usize,
    },
    /// A physical CPU listed twice for one VM.
    #[error("CPU {cpu} is listed twice for the VM: a machine CPU runs one vCPU")]
    PhysicalCpuTwice {
        /// The CPU.
        cpu: u32,
    },
    /// A VM needs somewhere to put its image.
    #[error("the VM has no RAM region: a guest needs RAM to be loaded into")]
    NoRam,
    /// A region of size 0.
    #[error("{id} at {base} has size 0: every region must cover at least one 4 KiB page", base = Hex(base.raw().into()))]
    EmptyRegion {
        /// Which region.
        id: RegionId,
        /// Its base.
        base: Ipa,
    },
    /// A base or size not a multiple of 4 KiB.
    #[error(
        "{region} is not 4 KiB-aligned: stage 2 maps 4 KiB pages, so a region's base and size must be multiples of 0x1000"
    )]
    Unaligned {
        /// The region.
        region: Region,
    },
    /// A region reaching `2^S` or beyond.
    #[error("{region} ends beyond the VM's IPA space {}: anything reachable by a memory transaction has to fit in the IPA space", PowerOfTwo(*ipa_bits))]
    BeyondIpaSpace {
        /// The region.
        region: Region,
        /// The VM's `S`.
        ipa_bits: u32,
    },
    /// Two regions sharing an address.
    #[error("{first} overlaps {second}: an IPA can be backed by one region only")]
    Overlap {
        /// The region listed first in the configuration.
        first: Region,
        /// The region listed later.
        second: Region,
    },
    /// A second window of a kind a VM has one of.
    #[error("{second} is a second {} window (the first is {first}): a VM has one interrupt controller", kind.name())]
    DuplicateDevice {
        /// The kind.
        kind: DeviceKind,
        /// The first window of that kind.
        first: Region,
        /// The second one.
        second: Region,
    },
    /// One of a GIC's two windows without the other.
    #[error("{present} has no {} window beside it: a GICv3 is its distributor and its redistributors, a GICv2 its distributor and its CPU interface, and a VM has both or neither", missing.name())]
    IncompleteGic {
        /// The window the VM has.
        present: Region,
        /// The kind it lacks.
        missing: DeviceKind,
    },
    /// Windows of a GICv3 and of a GICv2 in one VM.
    #[error(
        "{v2} is a GICv2 window beside the GICv3 window {v3}: a VM has one interrupt controller"
    )]
    MixedGic {
        /// A GICv3 window.
        v3: Region,
        /// A GICv2 window.
        v2: Region,
    },
    /// A GICv2 CPU interface window that is not the 8 KiB the hardware's virtual CPU
    /// interface backs.
    #[error(
        "{region} is not 8 KiB (0x2000): a GICv2 CPU interface is the hardware's 8 KiB virtual CPU interface, GICC_DIR at 0x1000"
    )]
    GicV2CpuInterfaceSize {
        /// The window.
        region: Region,
    },
    /// A virtio-net device that names no peer.
    #[error(
        "{region} has no `link`: a virtio-net device is one end of a link and names the VM at the other"
    )]
    NetWithoutLink {
        /// The window.
        region: Region,
    },
    /// A `link` on a device that is not a network device.
    #[error("{region} has a `link`, but only a virtio-net device is the end of a link")]
    LinkOnOtherDevice {
        /// The window.
        region: Region,
    },
    /// More virtio-net devices than there are INTIDs for them.
    #[error("the VM has {count} virtio-net devices: at most {MAX_NET_LINKS} (their interrupts are INTIDs {VIRTIO_NET_FIRST_INTID} to {})", VIRTIO_NET_FIRST_INTID + MAX_NET_LINKS as u32 - 1)]
    TooManyLinks {
        /// The number of virtio-net windows.
        count: usize,
    },
    /// A PCI function listed twice for one VM.
    #[error("PCI function {bdf} is listed twice for the VM")]
    PciFunctionTwice {
        /// The function.
        bdf: Bdf,
    },
    /// A PCI function on a bus the VM's host bridge does not have.
    #[error(
        "PCI function {bdf} is on a bus above {GUEST_LAST_BUS:#04x}: the VM's host bridge has buses 00-0f"
    )]
    PciBusBeyondBridge {
        /// The function.
        bdf: Bdf,
    },
    /// A VM with PCI functions whose IPA space the SMMU cannot translate.
    #[error(
        "ipa-bits = {ipa_bits} is above {SMMU_IPA_BITS} for a VM with PCI functions: the SMMU translates their DMA through the VM's stage 2 and takes input addresses of at most {SMMU_IPA_BITS} bits (QEMU's SMMUv3)"
    )]
    PciIpaBits {
        /// The VM's `S`.
        ipa_bits: u32,
    },
    /// A redistributor region without a frame pair for every vCPU.
    #[error("{region} is too small for {cpus} vCPUs: GICv3 needs {} bytes (0x2_0000 per vCPU) of redistributors", Hex((*needed).into()))]
    RedistributorsTooSmall {
        /// The redistributor region.
        region: Region,
        /// The VM's vCPU count.
        cpus: u32,
        /// The size it needs.
        needed: u64,
    },
}

impl VmConfig {
    /// Every region of the VM, RAM first, then devices, each in configuration order.
    pub fn regions(&self) -> impl Iterator<Item = Region> + '_ {
        let ram = self.ram.iter().enumerate().map(|(i, r)| Region {
            id: RegionId::Ram(i),
            base: r.base,
            size: r.size,
        });
        let devices = self.devices.iter().enumerate().map(|(index, d)| Region {
            id: RegionId::Device {
                index,
                kind: d.kind,
            },
            base: d.base,
            size: d.size,
        });
        ram.chain(devices).chain(self.pci_regions())
    }

    /// Checks every rule of SPEC §1 and of Moat's limits. `ipa_limit` is the machine's `L`
    /// where it is known (in Moat at boot); `None` on the host, where only Moat's own limit of
    /// 48 bits applies.
    ///
    /// # Errors
    ///
    /// The first rule broken, in this order: the IPA size, the vCPU count, the physical CPUs
    /// (one per vCPU, none twice), no RAM, each region
    /// on its own (empty, unaligned, beyond `2^S`), overlaps, the links (a virtio-net device
    /// without one, one on another device, too many), duplicate interrupt controllers, the
    /// redistributor size.
    pub fn validate(&self, ipa_limit: Option<u32>) -> Result<(), ConfigError> {
        self.check_ipa_bits(ipa_limit)?;
        if self.cpus == 0 || self.cpus > MAX_CPUS {
            return Err(ConfigError::CpuCount { cpus: self.cpus });
        }
        self.check_physical_cpus()?;
        if self.ram.is_empty() {
            return Err(ConfigError::NoRam);
        }
        for region in self.regions() {
            self.check_region(region)?;
        }
        self.check_overlaps()?;
        self.check_devices()?;
        self.check_pci()
    }

    fn check_ipa_bits(&self, ipa_limit: Option<u32>) -> Result<(), ConfigError> {
        let ipa_bits = self.ipa_bits;
        if ipa_bits < MIN_IPA_BITS {
            return Err(ConfigError::IpaBitsTooSmall { ipa_bits });
        }
        if ipa_bits > MAX_IPA_BITS {
            return Err(ConfigError::IpaBitsAboveStage2 { ipa_bits });
        }
        match ipa_limit {
            Some(ipa_limit) if ipa_bits > ipa_limit => Err(ConfigError::IpaBitsAboveLimit {
                ipa_bits,
                ipa_limit,
            }),
            _ => Ok(()),
        }
    }

    fn check_physical_cpus(&self) -> Result<(), ConfigError> {
        let listed = self.physical_cpus.len();
        if listed != self.cpus as usize {
            return Err(ConfigError::PhysicalCpuCount {
                cpus: self.cpus,
                listed,
            });
        }
        for (i, &cpu) in self.physical_cpus.iter().enumerate() {
            if self.physical_cpus[..i].contains(&cpu) {
                return Err(ConfigError::PhysicalCpuTwice { cpu });
            }
        }
        Ok(())
    }

    fn check_region(&self, region: Region) -> Result<(), ConfigError> {
        if region.size == 0 {
            return Err(ConfigError::EmptyRegion {
                id: region.id,
                base: region.base,
            });
        }
        if !region.base.raw().is_multiple_of(REGION_ALIGN)
            || !region.size.is_multiple_of(REGION_ALIGN)
        {
            return Err(ConfigError::Unaligned { region });
        }
        if region.end() > 1u128 << self.ipa_bits {
            return Err(ConfigError::BeyondIpaSpace {
                region,
                ipa_bits: self.ipa_bits,
            });
        }
        Ok(())
    }

    fn check_overlaps(&self) -> Result<(), ConfigError> {
        let regions: alloc::vec::Vec<Region> = self.regions().collect();
        for (i, first) in regions.iter().enumerate() {
            if let Some(second) = regions[i + 1..].iter().find(|r| first.overlaps(r)) {
                return Err(ConfigError::Overlap {
                    first: *first,
                    second: *second,
                });
            }
        }
        Ok(())
    }

    fn check_links(&self) -> Result<(), ConfigError> {
        for region in self.regions() {
            let RegionId::Device { index, kind } = region.id else {
                continue;
            };
            match (kind, &self.devices[index].link) {
                (DeviceKind::VirtioNet, None) => {
                    return Err(ConfigError::NetWithoutLink { region });
                }
                (DeviceKind::VirtioNet, Some(_)) | (_, None) => {}
                (_, Some(_)) => return Err(ConfigError::LinkOnOtherDevice { region }),
            }
        }
        let count = self.devices_of(DeviceKind::VirtioNet).count();
        if count > MAX_NET_LINKS {
            return Err(ConfigError::TooManyLinks { count });
        }
        Ok(())
    }

    /// Both windows of a GIC, `first` and `second`, or neither.
    fn check_gic_pair(&self, first: DeviceKind, second: DeviceKind) -> Result<(), ConfigError> {
        let find = |kind| self.regions().find(|r| is_device_of(r, kind));
        match (find(first), find(second)) {
            (Some(present), None) => Err(ConfigError::IncompleteGic {
                present,
                missing: second,
            }),
            (None, Some(present)) => Err(ConfigError::IncompleteGic {
                present,
                missing: first,
            }),
            _ => Ok(()),
        }
    }

    fn check_devices(&self) -> Result<(), ConfigError> {
        self.check_links()?;
        for kind in DeviceKind::ALL.into_iter().filter(|k| k.is_singleton()) {
            let mut windows = self.regions().filter(|r| is_device_of(r, kind));
            if let (Some(first), Some(second)) = (windows.next(), windows.next()) {
                return Err(ConfigError::DuplicateDevice {
                    kind,
                    first,
                    second,
                });
            }
        }
        self.check_gic_pair(
            DeviceKind::GicV3Distributor,
            DeviceKind::GicV3Redistributors,
        )?;
        self.check_gic_pair(DeviceKind::GicV2Distributor, DeviceKind::GicV2CpuInterface)?;
        let v3 = self.regions().find(|r| is_gic(r, DeviceKind::is_gic_v3));
        let v2 = self.regions().find(|r| is_gic(r, DeviceKind::is_gic_v2));
        if let (Some(v3), Some(v2)) = (v3, v2) {
            return Err(ConfigError::MixedGic { v3, v2 });
        }
        let cpu_v2 = self
            .regions()
            .find(|r| is_device_of(r, DeviceKind::GicV2CpuInterface));
        if let Some(region) = cpu_v2.filter(|r| r.size != GICC_SIZE) {
            return Err(ConfigError::GicV2CpuInterfaceSize { region });
        }
        let needed = u64::from(self.cpus) * GICR_SIZE_PER_CPU;
        let redists = self
            .regions()
            .filter(|r| is_device_of(r, DeviceKind::GicV3Redistributors));
        match redists.into_iter().find(|r| r.size < needed) {
            Some(region) => Err(ConfigError::RedistributorsTooSmall {
                region,
                cpus: self.cpus,
                needed,
            }),
            None => Ok(()),
        }
    }
}

fn is_gic(region: &Region, of: fn(DeviceKind) -> bool) -> bool {
    matches!(region.id, RegionId::Device { kind, .. } if of(kind))
}

fn is_device_of(region: &Region, kind: DeviceKind) -> bool {
    matches!(region.id, RegionId::Device { kind: k, .. } if k == kind)
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
