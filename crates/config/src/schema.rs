//! The VM description: what a VM looks like from the guest's side of stage 2.
//!
//! One `VmConfig` describes one VM: its IPA size `S` (SPEC §1), how its PARange is shown, its
//! vCPUs, its RAM regions and the device windows Moat emulates in its IPA space, and the policy
//! for accesses that hit nothing. The host tool builds it from a TOML file
//! (`VmConfig::from_toml_str`, with the `host` feature), Moat receives it in the bundle; both
//! check it with [`VmConfig::validate`].

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use moat_arm::addr::Ipa;
use moat_pci::Bdf;

/// The IPA size a VM gets when its description does not say: QEMU virt's 40 bits.
pub const DEFAULT_IPA_BITS: u32 = 40;
/// The RAM size of the default VM: 128 MiB, QEMU virt's default `-m`.
pub const DEFAULT_RAM_SIZE: u64 = 128 << 20;
/// Where QEMU virt puts RAM, and so the default VM's single RAM region.
pub const VIRT_RAM_BASE: Ipa = Ipa(0x4000_0000);
/// QEMU virt's PL011 UART.
pub const VIRT_PL011_BASE: Ipa = Ipa(0x0900_0000);
/// The size of a PL011 register window (PL011 TRM, DDI 0183: 4 KiB).
pub const PL011_SIZE: u64 = 0x1000;
/// QEMU virt's GICv3 distributor.
pub const VIRT_GICD_BASE: Ipa = Ipa(0x0800_0000);
/// The size of a GICv3 distributor window (GICv3 IHI 0069: 64 KiB).
pub const GICD_SIZE: u64 = 0x1_0000;
/// QEMU virt's GICv3 redistributor region.
pub const VIRT_GICR_BASE: Ipa = Ipa(0x080A_0000);
/// QEMU virt's GICv2 CPU interface (`gic-version=2`), where a GICv2 VM's guest finds its GICC.
pub const VIRT_GICC_BASE: Ipa = Ipa(0x0801_0000);
/// The size of a GICv2 CPU interface (IHI 0048B, 4.4: `GICC_DIR` at 0x1000): 8 KiB, which the
/// hardware's virtual CPU interface (`GICV`) backs page for page.
pub const GICC_SIZE: u64 = 0x2000;
/// The most vCPUs a VM may have.
pub const MAX_CPUS: u32 = 8;
/// One redistributor per vCPU: its RD_base and SGI_base frames, 64 KiB each (GICv3 IHI 0069).
pub const GICR_SIZE_PER_CPU: u64 = 0x2_0000;

/// How the guest-visible `ID_AA64MMFR0_EL1.PARange` (`P` in SPEC §1) is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParangeMode {
    /// `P = L`, the IPA limit of the machine: the seed's "sanitised PARange".
    #[default]
    Max,
    /// The smallest PARange encoding that covers the VM's IPA size `S`.
    Tight,
}

impl ParangeMode {
    /// The name used in TOML files and in the bundle.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Max => "max",
            Self::Tight => "tight",
        }
    }

    /// The mode called `name` in TOML files and in the bundle.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Max, Self::Tight]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// The execution state of the VM's EL1 (`HCR_EL2.RW`): the guest kernel's instruction set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GuestArch {
    /// AArch64 at EL1 (and AArch64 or AArch32 at EL0).
    #[default]
    Aarch64,
    /// AArch32 at EL1 (PL1) and EL0: entered in SVC mode, ARM state, with the Linux 32-bit
    /// boot protocol's registers (r0 = 0, r1 = ~0, r2 = the device tree).
    Aarch32,
}

impl GuestArch {
    /// The name used in TOML files and in the bundle.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Aarch64 => "aarch64",
            Self::Aarch32 => "aarch32",
        }
    }

    /// The state called `name` in TOML files and in the bundle.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Aarch64, Self::Aarch32]
            .into_iter()
            .find(|a| a.name() == name)
    }
}

/// What a guest data access to an IPA below `2^S` with nothing behind it does (SPEC §2, last
/// row). Instruction fetches from a hole always abort.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HolePolicy {
    /// A synchronous external abort, like a bus decode error on a real machine.
    #[default]
    Abort,
    /// Reads return zero and writes are ignored.
    ReadAsZeroWriteIgnore,
}

impl HolePolicy {
    /// The name used in TOML files and in the bundle.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Abort => "abort",
            Self::ReadAsZeroWriteIgnore => "raz-wi",
        }
    }

    /// The policy called `name` in TOML files and in the bundle.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Abort, Self::ReadAsZeroWriteIgnore]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

/// What happens when a VM powers itself off (PSCI `SYSTEM_OFF`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnPowerOff {
    /// The VM stops; the machine runs on while another VM does, and powers off after the last.
    HaltVm,
    /// The whole machine powers off, ending every VM: what a single VM does today.
    #[default]
    PowerOffMachine,
}

impl OnPowerOff {
    /// Every value, in a fixed order.
    pub const ALL: [Self; 2] = [Self::HaltVm, Self::PowerOffMachine];

    /// The name used in TOML files (`on-poweroff`) and in the bundle.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::HaltVm => "halt-vm",
            Self::PowerOffMachine => "power-off-machine",
        }
    }

    /// The action called `name` in TOML files and in the bundle.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// What happens when a VM resets itself (PSCI `SYSTEM_RESET`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnReset {
    /// The VM alone restarts from its images: its devices reset, its RAM scrubbed.
    Restart,
    /// The VM stops, as [`OnPowerOff::HaltVm`].
    HaltVm,
    /// The whole machine powers off (Moat's `MOAT-EXIT: reset`): what a single VM does today,
    /// and so the default of a single-VM description.
    #[default]
    PowerOffMachine,
}

impl OnReset {
    /// Every value, in a fixed order.
    pub const ALL: [Self; 3] = [Self::Restart, Self::HaltVm, Self::PowerOffMachine];

    /// The name used in TOML files (`on-reset`) and in the bundle.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Restart => "restart",
            Self::HaltVm => "halt-vm",
            Self::PowerOffMachine => "power-off-machine",
        }
    }

    /// The action called `name` in TOML files and in the bundle.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// The kind of device behind a window. Deliberately not `#[non_exhaustive]`: a new kind must
/// make every `match` in Moat that places or emulates devices fail to build until it is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceKind {
    /// An Arm PL011 UART (DDI 0183).
    Pl011,
    /// A GICv3 distributor (`GICD_*`, IHI 0069).
    GicV3Distributor,
    /// The GICv3 redistributors of all vCPUs, one after another (`GICR_*`, IHI 0069).
    GicV3Redistributors,
    /// A GICv2 distributor (`GICD_*`, IHI 0048B), emulated.
    GicV2Distributor,
    /// A GICv2 CPU interface (`GICC_*`, IHI 0048B): the hardware's virtual CPU interface
    /// (`GICV_*`) mapped here at stage 2, so the guest's accesses never trap. Needs a machine
    /// with a GICv2 and its virtualization extension.
    GicV2CpuInterface,
    /// A virtio network device on the virtio-mmio transport (virtio 1.2 §4.2, §5.1), one end
    /// of a link to another VM ([`DeviceWindow::link`]).
    VirtioNet,
}

impl DeviceKind {
    /// Every kind, in a fixed order.
    pub const ALL: [Self; 6] = [
        Self::Pl011,
        Self::GicV3Distributor,
        Self::GicV3Redistributors,
        Self::GicV2Distributor,
        Self::GicV2CpuInterface,
        Self::VirtioNet,
    ];

    /// The name used in TOML files; the bundle's `compatible` is `"moat,"` + this name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Pl011 => "pl011",
            Self::GicV3Distributor => "gicv3-dist",
            Self::GicV3Redistributors => "gicv3-redist",
            Self::GicV2Distributor => "gicv2-dist",
            Self::GicV2CpuInterface => "gicv2-cpu",
            Self::VirtioNet => "virtio-net",
        }
    }

    /// The kind called `name` in TOML files.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether a VM may have at most one window of this kind: a guest has one interrupt
    /// controller, but may have several UARTs.
    #[must_use]
    pub const fn is_singleton(self) -> bool {
        matches!(
            self,
            Self::GicV3Distributor
                | Self::GicV3Redistributors
                | Self::GicV2Distributor
                | Self::GicV2CpuInterface
        )
    }

    /// Whether the window belongs to a GICv2 (whose VM needs a machine with a GICv2).
    #[must_use]
    pub const fn is_gic_v2(self) -> bool {
        matches!(self, Self::GicV2Distributor | Self::GicV2CpuInterface)
    }

    /// Whether the window belongs to a GICv3.
    #[must_use]
    pub const fn is_gic_v3(self) -> bool {
        matches!(self, Self::GicV3Distributor | Self::GicV3Redistributors)
    }
}

/// The INTID of a VM's first virtio-net device's interrupt: SPI 16, where QEMU virt wires its
/// first virtio-mmio transport. The n-th virtio-net window of a VM (in the order of
/// [`VmConfig::devices`]) has INTID `VIRTIO_NET_FIRST_INTID + n`.
pub const VIRTIO_NET_FIRST_INTID: u32 = 48;
/// The most virtio-net devices (links) a VM may have: INTIDs 48 to 55.
pub const MAX_NET_LINKS: usize = 8;
/// The default size of a virtio-net window: one 4 KiB page. The virtio-mmio registers and the
/// network configuration space take 0x108 bytes (QEMU virt spaces its transports 0x200 apart),
/// but every region of a VM must be whole pages (`REGION_ALIGN`): stage 2 decides per page
/// whether an access traps.
pub const VIRTIO_NET_SIZE: u64 = 0x1000;

/// The VM's PCIe host bridge, as its device tree shows it (a `pci-host-ecam-generic` node laid
/// out as QEMU `virt` lays out its own, so that a guest made for that board finds it where it
/// looks): the ECAM window of buses 0..=[`GUEST_LAST_BUS`] at IPA [`GUEST_ECAM_IPA`], trapped
/// by Moat, and one 32-bit memory window whose bus addresses equal its IPAs.
pub const GUEST_ECAM_IPA: u64 = 0x3f00_0000;
/// The last bus of the VM's bridge: 16 buses, 1 MiB of ECAM each.
pub const GUEST_LAST_BUS: u8 = 15;
/// The VM's memory window: IPAs (= bus addresses) `[0x1000_0000, 0x3eff_0000)`.
pub const GUEST_PCI_MEMORY_IPA: u64 = 0x1000_0000;
/// Its length.
pub const GUEST_PCI_MEMORY_SIZE: u64 = 0x2eff_0000;
/// The INTID of the VM's INTx line 0 (INTA of slot 0): SPI 3, as on QEMU `virt`; line `l`
/// is INTID `GUEST_INTX_INTID + l`.
pub const GUEST_INTX_INTID: u32 = 35;

/// The largest IPA size of a VM with PCI functions: the input address size of QEMU's SMMUv3
/// (its OAS, 44 bits; IHI 0070, 3.4 "Address sizes": `STE.S2T0SZ` ≥ 64 − IAS). Moat checks
/// the real SMMU's at boot.
pub const SMMU_IPA_BITS: u32 = 44;

/// A range of guest RAM: IPAs `[base, base + size)` backed by memory Moat owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamRegion {
    /// The first IPA of the region.
    pub base: Ipa,
    /// The region's length in bytes.
    pub size: u64,
}

/// A device's register window: IPAs `[base, base + size)` whose data accesses Moat emulates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceWindow {
    /// Which device model answers accesses to this window.
    pub kind: DeviceKind,
    /// The first IPA of the window.
    pub base: Ipa,
    /// The window's length in bytes.
    pub size: u64,
    /// For a [`DeviceKind::VirtioNet`], the name of the VM at the link's other end; `None`
    /// for every other kind.
    pub link: Option<String>,
}

/// The description of one VM. Build it with [`VmConfig::default_virt`] or from TOML, then
/// [`validate`](VmConfig::validate) it before use: the fields are public and unchecked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// A name for messages and logs.
    pub name: String,
    /// The VM's IPA size `S` in bits: every region lies below `2^S`.
    pub ipa_bits: u32,
    /// How the guest-visible PARange `P` is chosen.
    pub parange: ParangeMode,
    /// The execution state of the guest's EL1.
    pub arch: GuestArch,
    /// The number of vCPUs, with MPIDR affinities 0..cpus.
    pub cpus: u32,
    /// The machine's CPUs that run vCPU 0, 1, ... (`cpus` of them): each one's index in the
    /// machine device tree's `/cpus` order, which on QEMU virt is its `MPIDR_EL1.Aff0`.
    pub physical_cpus: Vec<u32>,
    /// What a data access to an unbacked IPA below `2^S` does.
    pub hole_policy: HolePolicy,
    /// The VM's RAM; the first region is where images and the guest's device tree go.
    pub ram: Vec<RamRegion>,
    /// The emulated devices' windows.
    pub devices: Vec<DeviceWindow>,
    /// The guest kernel's command line, given to it in `/chosen/bootargs`.
    pub bootargs: String,
    /// What the VM's PSCI `SYSTEM_OFF` does.
    pub on_poweroff: OnPowerOff,
    /// What the VM's PSCI `SYSTEM_RESET` does.
    pub on_reset: OnReset,
    /// The machine's PCI functions assigned to the VM (`pci = ["00:01.0"]`), in
    /// configuration order: the VM owns them, their DMA confined to its memory by the SMMU.
    pub pci: Vec<Bdf>,
}

impl VmConfig {
    /// QEMU virt's memory map with one vCPU (on the machine's CPU 0): 128 MiB of RAM at 1 GiB,
    /// the PL011 and a GICv3, a 40-bit IPA space; powering off or resetting ends the machine.
    /// Equal to `configs/default.toml`.
    #[must_use]
    pub fn default_virt() -> Self {
        Self {
            name: String::from("default"),
            ipa_bits: DEFAULT_IPA_BITS,
            parange: ParangeMode::Max,
            arch: GuestArch::Aarch64,
            cpus: 1,
            physical_cpus: vec![0],
            hole_policy: HolePolicy::Abort,
            ram: vec![RamRegion {
                base: VIRT_RAM_BASE,
                size: DEFAULT_RAM_SIZE,
            }],
            devices: vec![
                DeviceWindow {
                    kind: DeviceKind::Pl011,
                    base: VIRT_PL011_BASE,
                    size: PL011_SIZE,
                    link: None,
                },
                DeviceWindow {
                    kind: DeviceKind::GicV3Distributor,
                    base: VIRT_GICD_BASE,
                    size: GICD_SIZE,
                    link: None,
                },
                DeviceWindow {
                    kind: DeviceKind::GicV3Redistributors,
                    base: VIRT_GICR_BASE,
                    size: GICR_SIZE_PER_CPU,
                    link: None,
                },
            ],
            bootargs: String::from("console=ttyAMA0"),
            on_poweroff: OnPowerOff::PowerOffMachine,
            on_reset: OnReset::PowerOffMachine,
            pci: Vec::new(),
        }
    }

    /// Sets the vCPU count, as `--smp` does, on the machine's CPUs `0..cpus`, growing every
    /// redistributor window to one frame pair per vCPU where it is smaller (a window never
    /// shrinks, so a larger map is kept). The result still needs
    /// [`validate`](VmConfig::validate): a grown window may now overlap.
    pub fn set_cpus(&mut self, cpus: u32) {
        self.cpus = cpus;
        self.physical_cpus = first_cpus(cpus);
        let needed = GICR_SIZE_PER_CPU.saturating_mul(u64::from(cpus));
        for window in &mut self.devices {
            if window.kind == DeviceKind::GicV3Redistributors {
                window.size = window.size.max(needed);
            }
        }
    }

    /// Gives the VM a GICv2 instead of its GICv3, at QEMU virt's `gic-version=2` addresses: the
    /// distributor where the GICv3's was, the CPU interface at [`VIRT_GICC_BASE`]; the
    /// redistributors' window goes.
    pub fn use_gic_v2(&mut self) {
        self.devices.retain(|d| !d.kind.is_gic_v3());
        let window = |kind, base, size| DeviceWindow {
            kind,
            base,
            size,
            link: None,
        };
        self.devices.push(window(
            DeviceKind::GicV2Distributor,
            VIRT_GICD_BASE,
            GICD_SIZE,
        ));
        self.devices.push(window(
            DeviceKind::GicV2CpuInterface,
            VIRT_GICC_BASE,
            GICC_SIZE,
        ));
    }

    /// Whether the VM's GIC is a GICv2.
    #[must_use]
    pub fn has_gic_v2(&self) -> bool {
        self.devices.iter().any(|d| d.kind.is_gic_v2())
    }

    /// The names of the VMs this VM's virtio-net devices link to, in configuration order.
    pub fn links(&self) -> impl Iterator<Item = &str> {
        self.devices_of(DeviceKind::VirtioNet)
            .filter_map(|d| d.link.as_deref())
    }

    /// The INTID of the interrupt of device window `index`, when it is a virtio-net device
    /// (see [`VIRTIO_NET_FIRST_INTID`]).
    #[must_use]
    pub fn virtio_net_intid(&self, index: usize) -> Option<u32> {
        let window = self.devices.get(index)?;
        if window.kind != DeviceKind::VirtioNet {
            return None;
        }
        let earlier = self.devices[..index]
            .iter()
            .filter(|d| d.kind == DeviceKind::VirtioNet)
            .count();
        VIRTIO_NET_FIRST_INTID.checked_add(u32::try_from(earlier).ok()?)
    }

    /// The windows of `kind`, in configuration order.
    pub fn devices_of(&self, kind: DeviceKind) -> impl Iterator<Item = &DeviceWindow> {
        self.devices.iter().filter(move |d| d.kind == kind)
    }
}

/// The machine's CPUs `0..cpus`, the CPUs of a VM described without a list. A count above
/// [`MAX_CPUS`], which [`VmConfig::validate`] refuses before it
/// looks at the list, gets a list of `MAX_CPUS + 1` (a count from a file or the command line
/// never allocates more).
#[must_use]
pub fn first_cpus(cpus: u32) -> Vec<u32> {
    (0..cpus.min(MAX_CPUS + 1)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_for_every_enum_value() {
        for kind in DeviceKind::ALL {
            assert_eq!(DeviceKind::from_name(kind.name()), Some(kind));
        }
        for mode in [ParangeMode::Max, ParangeMode::Tight] {
            assert_eq!(ParangeMode::from_name(mode.name()), Some(mode));
        }
        for policy in [HolePolicy::Abort, HolePolicy::ReadAsZeroWriteIgnore] {
            assert_eq!(HolePolicy::from_name(policy.name()), Some(policy));
        }
        for action in OnPowerOff::ALL {
            assert_eq!(OnPowerOff::from_name(action.name()), Some(action));
        }
        for action in OnReset::ALL {
            assert_eq!(OnReset::from_name(action.name()), Some(action));
        }
        assert_eq!(DeviceKind::from_name("virtio"), None);
        assert_eq!(OnReset::from_name("reboot"), None);
    }

    #[test]
    fn set_cpus_grows_the_redistributors_but_never_shrinks_them() {
        let mut vm = VmConfig::default_virt();
        vm.set_cpus(4);
        let gicr = |vm: &VmConfig| {
            vm.devices_of(DeviceKind::GicV3Redistributors)
                .next()
                .unwrap()
                .size
        };
        assert_eq!((vm.cpus, gicr(&vm)), (4, 4 * GICR_SIZE_PER_CPU));
        assert_eq!(vm.physical_cpus, [0, 1, 2, 3]);
        vm.set_cpus(2);
        assert_eq!((vm.cpus, gicr(&vm)), (2, 4 * GICR_SIZE_PER_CPU));
        assert_eq!(vm.physical_cpus, [0, 1]);
    }

    #[test]
    fn default_virt_has_qemu_virt_map() {
        let vm = VmConfig::default_virt();
        assert_eq!(vm.ipa_bits, 40);
        assert_eq!(
            vm.ram,
            [RamRegion {
                base: Ipa(0x4000_0000),
                size: 128 << 20
            }]
        );
        let uart = vm.devices_of(DeviceKind::Pl011).next().unwrap();
        assert_eq!((uart.base, uart.size), (Ipa(0x0900_0000), 0x1000));
        assert_eq!(vm.physical_cpus, [0]);
        assert_eq!(
            (vm.on_poweroff, vm.on_reset),
            (OnPowerOff::PowerOffMachine, OnReset::PowerOffMachine)
        );
    }
}
