//! The virtual GICv3 that a guest sees: an emulated distributor and redistributors, and the
//! bookkeeping that moves interrupts into the hardware virtual CPU interface's list registers.
//!
//! Moat presents the GICv3 of QEMU `virt` (GIC architecture specification IHI 0069, pinned in
//! `docs/references.md`): a distributor window (`GICD_*`, 64 KiB), one redistributor per vCPU
//! (`GICR_*`: an `RD_base` frame and an `SGI_base` frame, 128 KiB each, no LPIs) and the
//! hardware's virtual CPU interface (`ICC_*_EL1` from the guest, backed by `ICH_LR<n>_EL2`).
//! The model has a single Security state (`GICD_CTLR.DS` = 1) and affinity routing always on
//! (`GICD_CTLR.ARE` = 1), which is what Linux's GICv3 driver expects of a virtual machine.
//!
//! Everything here is a pure state machine: the EL2 binary traps the guest's accesses to the two
//! windows and calls [`Gic::distributor_access`] and [`Gic::redistributor_access`], feeds device
//! lines in ([`Gic::set_spi_level`], [`Gic::set_ppi_level`]) and trapped `ICC_SGI1R_EL1` writes
//! ([`Gic::send_sgi`]), and around each entry to a vCPU calls
//! [`Gic::sync_from_list_registers`] (after the guest ran, with the
//! [`Gic::live_list_registers`] read back) and [`Gic::fill_list_registers`] (before it runs),
//! which writes nothing when nothing changed. Every input returns the set of vCPUs that must
//! look at their list registers again ([`VcpuSet`]): the hypervisor kicks those out of the
//! guest or out of WFI. [`Gic::wakes_from_wfi`] says whether a vCPU's WFI ends: an interrupt
//! [`Gic::has_deliverable`] counts that the guest's virtual CPU interface would signal.
//!
//! The protocol the hypervisor follows for a vCPU (in full in [`list_regs`]): on every exit,
//! read back the live list registers and `sync_from_list_registers` first; then handle the
//! exit; then `fill_list_registers`, and write the list registers and `ICH_HCR_EL2` only when
//! it says [`list_regs::LrFill::Write`]. A maintenance interrupt (`ICH_HCR_EL2.UIE` on an
//! underflow, `ICH_LR<n>_EL2.EOI` when the guest deactivates a level-sensitive interrupt,
//! whose line the hypervisor then samples again) is just another exit.
//!
//! The model keeps, per vCPU, the set of interrupts that want one of its list registers
//! (`summary`), up to date through every operation, so that choosing what to load walks only
//! those, and so that an exit on which nothing changed costs a comparison and a flag.
//! An interrupt made active by `ISACTIVER` that no vCPU acknowledged wants no list register: it
//! never starves a pending interrupt out of them.
//!
//! The same model is a GICv2 (IHI 0048B) for a VM on a GICv2 machine ([`Gic::new_v2`],
//! [`GicArch::V2`]): its distributor (`distributor_v2`, banked per vCPU) replaces the GICv3's
//! distributor and redistributors, SPIs are routed by `GICD_ITARGETSR<n>`, SGIs come from
//! `GICD_SGIR` and keep their source CPU (`GICD_SPENDSGIR<n>`, one source per list register,
//! in `GICH_LR<n>.CPUID`), and the hypervisor writes the list registers as `GICH_LR<n>`
//! (`list_regs::gich` translates). The interrupts' state machine, the per-vCPU summary and the
//! list-register scheduling are shared. An SGI active from one source keeps that source in its
//! list register while another source's waits pending in the distributor (`GICD_SPENDSGIR<n>`)
//! until the active one is deactivated; an SPI targeting several vCPUs is offered to one that
//! is not busy (`route_target`); the distributor implements the priority bits of the virtual
//! CPU interface (5, a GIC-400's, by default). Not modelled for GICv2: the Security
//! Extensions (so `GICD_SGIR.NSATT` and `GICD_IGROUPR<n>` as seen by a Secure guest).
//!
//! Hardware-backed interrupts: the timers' PPIs ([`Gic::raise_hw_ppi`]) and SPIs mapped to
//! physical ones ([`Gic::map_hw_spi`]: a PCI function's INTx line) are pended by the physical
//! interrupt the hypervisor acknowledged and left active, and loaded with `HW` = 1, so that the
//! guest's deactivation reaches the physical interrupt without an exit; the hypervisor asks
//! the model when it must deactivate one itself ([`Gic::settle_hw_ppi`], [`Gic::settle_hw_spi`]).
//!
//! Not modelled: LPIs and ITS, the extended SPI and PPI ranges, GICv4 direct injection,
//! more simultaneously active interrupts on one vCPU than it has list registers (the excess
//! waits in the model; `ICH_HCR_EL2.EOIcount`/`LRENPIE` are not used), and a sleeping
//! redistributor (`GICR_WAKER.ProcessorSleep` = 1) still receives its interrupts. A guest that
//! reads the pending or active bit of an interrupt held in a vCPU's list registers sees the
//! state it was loaded with, updated at that vCPU's next sync that finds it changed.

mod distributor;
mod distributor_v2;
mod irq;
mod irq_regs;
pub mod list_regs;
mod redistributor;
pub mod regs_v2;
pub mod sgi;
mod summary;
mod unsynced;

#[cfg(any(test, feature = "invariants"))]
mod invariants;
#[cfg(test)]
mod linux_tests;
#[cfg(test)]
mod proptests;

pub use distributor::irouter_for;
pub use distributor_v2::{DISTRIBUTOR_V2_SIZE, sgir_targets};
pub use redistributor::REDISTRIBUTOR_STRIDE;
pub use unsynced::GicWindow;

use crate::{Access, DeviceEffects, MmioDevice};
use irq::Irq;
use list_regs::{IchVtr, LrShadow, VirtualInterface};
use summary::IntidSet;

/// The size of the distributor's window (`GICD_*`): 64 KiB.
pub const DISTRIBUTOR_SIZE: u64 = 0x1_0000;

/// The largest number of vCPUs a VM's GIC serves (`GICD_TYPER.CPUNumber` can report 8).
pub const MAX_VCPUS: usize = 8;

/// The number of Software Generated Interrupts, INTIDs 0–15, banked per vCPU.
pub const SGI_COUNT: u32 = 16;

/// The number of private interrupts (SGIs and PPIs), INTIDs 0–31, banked per vCPU.
pub const PRIVATE_COUNT: u32 = 32;

/// The largest number of SPIs GICv3 defines: INTIDs 32–1019.
pub const MAX_SPIS: usize = 988;

/// The SPI count of the GIC Moat presents by default: INTIDs 32–127, enough for QEMU `virt`'s
/// devices (UART SPI 1, RTC, GPIO, PCIe INTx, the 32 virtio-mmio transports at SPIs 16–47).
pub const DEFAULT_SPIS: usize = 96;

/// The PPI of the EL1 virtual timer (Arm's Server Base System Architecture number, as QEMU
/// `virt`'s device tree gives it to the guest).
pub const VIRTUAL_TIMER_PPI: u32 = 27;

/// The priority bits of a GIC-400 (Arm CoreLink GIC-400 TRM: 32 priority levels), the
/// GICv2 a guest sees unless told otherwise.
pub const GIC_400_PRIORITY_BITS: u8 = 5;

/// The top `bits` of a priority byte.
const fn priority_mask(bits: u8) -> u8 {
    !(0xFFu8 >> bits)
}

/// The virtual GIC of QEMU `virt` with the default number of SPIs.
pub type VirtGic = Gic<DEFAULT_SPIS>;

/// What the hypervisor does with a physical PPI it watches for the model
/// ([`Gic::settle_hw_ppi`]).
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwIrq {
    /// Keep watching: the virtual PPI is still in a list register, active, or pending with
    /// its source asserted.
    Held,
    /// Stop watching; with `deactivate`, first deactivate the physical interrupt (`ICC_DIR_EL1`):
    /// no guest deactivation reached it.
    Released {
        /// The physical interrupt is still active.
        deactivate: bool,
    },
}

/// The most SPIs a VM's GIC backs by physical ones ([`Gic::map_hw_spi`]): a host bridge's
/// four INTx lines (a whole GIC must stay small enough to build on an EL2 stack).
pub const MAX_HW_SPIS: usize = 4;

/// The first INTID that is no SPI: 1020–1023 are special (IHI 0069, 2.2.1).
const SPECIAL_INTIDS: u32 = 1020;

/// Why [`Gic::map_hw_spi`] refused a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwMapError {
    /// The virtual INTID is no SPI this GIC implements.
    NoSuchSpi(u32),
    /// The physical INTID is no SPI (32–1019).
    PhysicalNotAnSpi(u32),
    /// The virtual or the physical SPI is mapped already, to another: the pair that holds it.
    Taken {
        /// The virtual SPI of the existing mapping.
        intid: u32,
        /// Its physical SPI.
        pintid: u32,
    },
    /// [`MAX_HW_SPIS`] SPIs are mapped already.
    Full,
}

impl core::fmt::Display for HwMapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoSuchSpi(intid) => write!(f, "INTID {intid} is no SPI of the VM's GIC"),
            Self::PhysicalNotAnSpi(p) => write!(f, "physical INTID {p} is no SPI"),
            Self::Taken { intid, pintid } => {
                write!(f, "SPI {intid} is backed by physical SPI {pintid} already")
            }
            Self::Full => write!(f, "more than {MAX_HW_SPIS} SPIs backed by physical ones"),
        }
    }
}

/// A set of vCPUs, by index (bit `n` is vCPU `n`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSet(u32);

impl VcpuSet {
    /// No vCPU.
    pub const EMPTY: Self = Self(0);

    /// The set holding only `vcpu` (empty when `vcpu` is not below [`MAX_VCPUS`]).
    #[must_use]
    pub const fn single(vcpu: usize) -> Self {
        if vcpu < MAX_VCPUS {
            Self(1 << vcpu)
        } else {
            Self::EMPTY
        }
    }

    /// The set whose bit `n` is vCPU `n`, without bits at or above [`MAX_VCPUS`].
    #[must_use]
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits & ((1 << MAX_VCPUS) - 1))
    }

    /// The first `count` vCPUs.
    #[must_use]
    pub const fn first(count: usize) -> Self {
        let count = if count > MAX_VCPUS { MAX_VCPUS } else { count };
        Self((1 << count) - 1)
    }

    /// Both sets together.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// This set without `vcpu`.
    #[must_use]
    pub const fn without(self, vcpu: usize) -> Self {
        Self(self.0 & !Self::single(vcpu).0)
    }

    /// Whether `vcpu` is in the set.
    #[must_use]
    pub const fn contains(self, vcpu: usize) -> bool {
        Self::single(vcpu).0 & self.0 != 0
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set as a bit mask, bit `n` for vCPU `n`.
    #[must_use]
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// The vCPUs in the set, lowest first: one step per member (an empty set, the common
    /// case on an exit, costs one test).
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        core::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let vcpu = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(vcpu)
        })
    }
}

impl core::ops::BitOrAssign for VcpuSet {
    fn bitor_assign(&mut self, other: Self) {
        *self = self.union(other);
    }
}

/// Where the affinity fields sit in `MPIDR_EL1` (and `GICD_IROUTER<n>`), and in the packed
/// `GICR_TYPER.Affinity_Value`.
mod mpidr {
    pub const AFF1_SHIFT: u32 = 8;
    pub const AFF2_SHIFT: u32 = 16;
    pub const AFF3_SHIFT: u32 = 32;
    /// `Aff3` in the packed 32-bit form: bits \[31:24\].
    pub const PACKED_AFF3_SHIFT: u32 = 24;
}

/// A PE's affinity (`MPIDR_EL1.Aff3..Aff0`), the address by which `GICR_TYPER`, `GICD_IROUTER`
/// and `ICC_SGI1R_EL1` name a PE under affinity routing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Affinity {
    /// Affinity level 0 (`Aff0`).
    pub aff0: u8,
    /// Affinity level 1 (`Aff1`).
    pub aff1: u8,
    /// Affinity level 2 (`Aff2`).
    pub aff2: u8,
    /// Affinity level 3 (`Aff3`).
    pub aff3: u8,
}

impl Affinity {
    /// The affinity of vCPU `vcpu`: QEMU `virt`'s GICv3 numbering, 16 PEs per level-1 cluster
    /// (`Aff0` = index mod 16, `Aff1` = index / 16). The hypervisor programs the same value into
    /// `VMPIDR_EL2` (see [`Affinity::mpidr`]).
    #[must_use]
    pub const fn of_vcpu(vcpu: usize) -> Self {
        // Truncation intended: `vcpu` is below MAX_VCPUS, far below 16 * 256.
        #[allow(clippy::cast_possible_truncation)]
        Self {
            aff0: (vcpu % 16) as u8,
            aff1: (vcpu / 16) as u8,
            aff2: 0,
            aff3: 0,
        }
    }

    /// The affinity fields as `MPIDR_EL1` holds them: `Aff0` \[7:0\], `Aff1` \[15:8\], `Aff2`
    /// \[23:16\], `Aff3` \[39:32\].
    #[must_use]
    pub const fn mpidr(self) -> u64 {
        self.low24() | ((self.aff3 as u64) << mpidr::AFF3_SHIFT)
    }

    /// `Aff2:Aff1:Aff0` in bits \[23:0\], the layout `MPIDR_EL1` and `GICD_IROUTER` share.
    const fn low24(self) -> u64 {
        (self.aff0 as u64)
            | ((self.aff1 as u64) << mpidr::AFF1_SHIFT)
            | ((self.aff2 as u64) << mpidr::AFF2_SHIFT)
    }

    /// The affinity in `MPIDR_EL1`/`GICD_IROUTER` layout (`Aff3` at \[39:32\]).
    #[must_use]
    pub const fn from_mpidr(value: u64) -> Self {
        // Truncation intended: each field is one byte of the register.
        #[allow(clippy::cast_possible_truncation)]
        Self {
            aff0: value as u8,
            aff1: (value >> mpidr::AFF1_SHIFT) as u8,
            aff2: (value >> mpidr::AFF2_SHIFT) as u8,
            aff3: (value >> mpidr::AFF3_SHIFT) as u8,
        }
    }

    /// The 32-bit `Affinity_Value` of `GICR_TYPER` \[63:32\]: `Aff3:Aff2:Aff1:Aff0`.
    #[must_use]
    pub const fn packed(self) -> u32 {
        // Truncation intended: low24 has 24 bits.
        #[allow(clippy::cast_possible_truncation)]
        let low = self.low24() as u32;
        low | ((self.aff3 as u32) << mpidr::PACKED_AFF3_SHIFT)
    }
}

/// The distributor window as an [`MmioDevice`], for a bus that treats every window alike.
pub struct DistributorWindow<'a, const SPIS: usize = DEFAULT_SPIS>(pub &'a mut Gic<SPIS>);

impl<const SPIS: usize> MmioDevice for DistributorWindow<'_, SPIS> {
    fn access(&mut self, access: Access) -> (u64, DeviceEffects) {
        self.0.distributor_access(access)
    }
}

/// The redistributor region as an [`MmioDevice`].
pub struct RedistributorWindow<'a, const SPIS: usize = DEFAULT_SPIS>(pub &'a mut Gic<SPIS>);

impl<const SPIS: usize> MmioDevice for RedistributorWindow<'_, SPIS> {
    fn access(&mut self, access: Access) -> (u64, DeviceEffects) {
        self.0.redistributor_access(access)
    }
}

/// The GIC architecture a VM's guest sees. Both share the interrupts' state machine, the
/// per-vCPU summary and the list-register scheduling; they differ in the register maps the
/// guest programs and in how an SPI names its target and an SGI its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicArch {
    /// GICv3 (IHI 0069): a distributor, one redistributor per vCPU, `GICD_IROUTER<n>` affinity
    /// routing, SGIs from `ICC_SGI1R_EL1` without a source.
    V3,
    /// GICv2 (IHI 0048B): one distributor whose SGI and PPI registers are banked per vCPU,
    /// `GICD_ITARGETSR<n>` CPU-mask targets, SGIs from `GICD_SGIR` that carry their source
    /// CPU (`GICD_SPENDSGIR<n>`), and a memory-mapped CPU interface (the hardware's `GICV`).
    V2,
}

/// Why a GIC could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicError {
    /// The VM has no vCPU, or more than [`MAX_VCPUS`].
    VcpuCount(usize),
}

/// Which interrupt an access or an input names: a private interrupt of one vCPU, or an SPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IrqRef {
    /// An SGI or PPI (INTID 0–31) in vCPU `vcpu`'s redistributor.
    Private { vcpu: usize, intid: u32 },
    /// An SPI, by its index from INTID 32.
    Spi(usize),
}

impl IrqRef {
    /// The interrupt's INTID.
    pub(crate) const fn intid(self) -> u32 {
        match self {
            Self::Private { intid, .. } => intid,
            // Truncation impossible: an SPI index is below MAX_SPIS.
            #[allow(clippy::cast_possible_truncation)]
            Self::Spi(index) => PRIVATE_COUNT + index as u32,
        }
    }
}

/// `GICD_CTLR` group enables (with `GICD_CTLR.DS` = 1: `EnableGrp0` bit 0, `EnableGrp1` bit 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GroupEnables {
    pub grp0: bool,
    pub grp1: bool,
}

/// Per-vCPU redistributor state outside the interrupts themselves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RedistState {
    /// `GICR_WAKER.ProcessorSleep`; `ChildrenAsleep` follows it at once.
    pub processor_sleep: bool,
}

/// The virtual GICv3 of one VM, with `SPIS` shared peripheral interrupts (INTIDs 32 to
/// 32 + `SPIS` - 1; at most [`MAX_SPIS`]).
// `repr(C)`, the scalars first: every field the exit path reads by a fixed offset stays within
// reach of a load's immediate offset, whatever fields are added after the arrays.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct Gic<const SPIS: usize = DEFAULT_SPIS> {
    arch: GicArch,
    /// The implemented bits of an `IPRIORITYR` byte (the unimplemented low ones read as zero):
    /// all 8 for a GICv3; for a GICv2, the GIC-400's 5 unless [`Gic::set_priority_bits`]
    /// says otherwise.
    priority_mask: u8,
    enables: GroupEnables,
    hw_spi_count: u8,
    vcpus: usize,
    /// The SPIs backed by physical ones, as (virtual INTID, physical INTID), the first
    /// `hw_spi_count` of them ([`Gic::map_hw_spi`]).
    hw_spis: [(u16, u16); MAX_HW_SPIS],
    /// A GICv2's SPIs whose `GICD_ITARGETSR<n>` names more than one of the VM's vCPUs (by
    /// INTID): those whose target follows which vCPUs are busy ([`Gic::route_target`]).
    multi_target: IntidSet,
    redists: [RedistState; MAX_VCPUS],
    /// Per vCPU, what its list registers were loaded with and whether they are stale.
    shadows: [LrShadow; MAX_VCPUS],
    /// Per vCPU, the interrupts that want one of its list registers (see `summary`).
    wanted: [IntidSet; MAX_VCPUS],
    /// `GICD_IROUTER<n>` of each SPI, as stored (reserved bits clear); for a GICv2, its
    /// `GICD_ITARGETSR<n>` byte (bit `n` targets vCPU `n`).
    routes: [u64; SPIS],
    spis: [Irq; SPIS],
    private: [[Irq; PRIVATE_COUNT as usize]; MAX_VCPUS],
}

impl<const SPIS: usize> Gic<SPIS> {
    const SPI_COUNT_IS_VALID: () = assert!(SPIS <= MAX_SPIS, "GICv3 has at most 988 SPIs");

    /// A GIC in its reset state for a VM of `vcpus` vCPUs: every interrupt disabled, inactive,
    /// not pending, group 0, priority 0, level-sensitive (SGIs edge), SPIs routed to vCPU 0, and
    /// every redistributor asleep (`GICR_WAKER.ProcessorSleep` = 1).
    ///
    /// # Errors
    ///
    /// [`GicError::VcpuCount`] when `vcpus` is 0 or above [`MAX_VCPUS`].
    pub fn new(vcpus: usize) -> Result<Self, GicError> {
        Self::of_arch(GicArch::V3, vcpus)
    }

    /// A GICv2 in its reset state for a VM of `vcpus` vCPUs: as [`Gic::new`], with every SPI
    /// targeting no vCPU (`GICD_ITARGETSR<n>` = 0) and no SGI pending from any source.
    ///
    /// # Errors
    ///
    /// [`GicError::VcpuCount`] when `vcpus` is 0 or above [`MAX_VCPUS`].
    pub fn new_v2(vcpus: usize) -> Result<Self, GicError> {
        Self::of_arch(GicArch::V2, vcpus)
    }

    fn of_arch(arch: GicArch, vcpus: usize) -> Result<Self, GicError> {
        let () = Self::SPI_COUNT_IS_VALID;
        if vcpus == 0 || vcpus > MAX_VCPUS {
            return Err(GicError::VcpuCount(vcpus));
        }
        Ok(Self {
            arch,
            vcpus,
            enables: GroupEnables::default(),
            private: [Irq::private_reset(); MAX_VCPUS],
            spis: [Irq::reset(); SPIS],
            routes: [0; SPIS],
            redists: [RedistState {
                processor_sleep: true,
            }; MAX_VCPUS],
            shadows: [LrShadow::UNKNOWN; MAX_VCPUS],
            wanted: [IntidSet::EMPTY; MAX_VCPUS],
            priority_mask: match arch {
                GicArch::V3 => 0xFF,
                GicArch::V2 => priority_mask(GIC_400_PRIORITY_BITS),
            },
            multi_target: IntidSet::EMPTY,
            hw_spis: [(0, 0); MAX_HW_SPIS],
            hw_spi_count: 0,
        })
    }

    /// For a GICv2: the number of priority bits the guest's distributor implements, that of
    /// the virtual CPU interface the guest gets (`GICH_VTR.PRIbits` + 1), so that
    /// `GICD_IPRIORITYR<n>` and the guest's `GICC_PMR` agree (IHI 0048B, 3.3 "Interrupt
    /// prioritization": the unimplemented low bits of a priority field are RAZ/WI). Between
    /// 4 (the fewest GICv2 allows without the Security Extensions) and 8; the GIC-400 has 5, the
    /// default. Priorities already written lose the bits no longer implemented. A GICv3
    /// keeps its 8.
    pub fn set_priority_bits(&mut self, bits: u8) {
        if self.arch != GicArch::V2 {
            return;
        }
        self.priority_mask = priority_mask(bits.clamp(4, 8));
        let mask = self.priority_mask;
        let private = self.private.iter_mut().flatten();
        for irq in private.chain(self.spis.iter_mut()) {
            irq.priority &= mask;
        }
        for vcpu in 0..self.vcpus {
            self.mark_stale(vcpu);
        }
    }

    /// The implemented bits of an `IPRIORITYR` byte.
    pub(crate) const fn priority_mask(&self) -> u8 {
        self.priority_mask
    }

    /// The number of vCPUs the GIC serves.
    #[must_use]
    pub const fn vcpus(&self) -> usize {
        self.vcpus
    }

    /// The architecture the guest sees.
    #[must_use]
    pub const fn arch(&self) -> GicArch {
        self.arch
    }

    /// One past the largest INTID the distributor implements.
    #[must_use]
    pub const fn intid_limit() -> u32 {
        // Truncation impossible: SPIS <= MAX_SPIS.
        #[allow(clippy::cast_possible_truncation)]
        let spis = SPIS as u32;
        PRIVATE_COUNT + spis
    }

    /// Sets the level of SPI `intid`'s input line (a device model's interrupt output). A rising
    /// edge pends an edge-triggered SPI; a level-sensitive SPI is pending while the line is
    /// high. An INTID that is not an implemented SPI is ignored.
    pub fn set_spi_level(&mut self, intid: u32, level: bool) -> VcpuSet {
        match self.spi_ref(intid) {
            Some(spi) => self.set_line(spi, level),
            None => VcpuSet::EMPTY,
        }
    }

    /// Sets the level of PPI `intid` (16–31) of vCPU `vcpu`, e.g. [`VIRTUAL_TIMER_PPI`] when the
    /// virtual timer's condition changes. Anything else is ignored.
    pub fn set_ppi_level(&mut self, vcpu: usize, intid: u32, level: bool) -> VcpuSet {
        if vcpu >= self.vcpus || !(SGI_COUNT..PRIVATE_COUNT).contains(&intid) {
            return VcpuSet::EMPTY;
        }
        self.set_line(IrqRef::Private { vcpu, intid }, level)
    }

    /// The physical PPI `intid` (16–31) of the CPU that runs vCPU `vcpu` fired and the
    /// hypervisor acknowledged it, leaving it active: the vCPU's virtual PPI of the same INTID
    /// becomes pending (as an `ISPENDR` write would make it) and is from now on loaded with
    /// `ICH_LR<n>_EL2.HW` = 1 and `pINTID` = `intid`, so that the guest's deactivation of the
    /// virtual interrupt deactivates the physical one (IHI 0069, "Virtual interrupts" and
    /// `ICH_LR<n>_EL2`). While the physical interrupt is active it cannot fire again; once the
    /// guest deactivates it, a source still asserted (a level-sensitive timer whose condition
    /// holds) fires again at once: the level is the hardware's, not the model's. The
    /// hypervisor asks [`Gic::settle_hw_ppi`] whether it must deactivate the physical
    /// interrupt itself. Returns the vCPUs to kick; anything else is ignored.
    pub fn raise_hw_ppi(&mut self, vcpu: usize, intid: u32) -> VcpuSet {
        if vcpu >= self.vcpus || !(SGI_COUNT..PRIVATE_COUNT).contains(&intid) {
            return VcpuSet::EMPTY;
        }
        self.update(IrqRef::Private { vcpu, intid }, |record| {
            record.hw_active = true;
            record.write_latch(true);
        })
    }

    /// For a physical PPI `intid` raised by [`Gic::raise_hw_ppi`] on vCPU `vcpu`'s CPU: what
    /// the hypervisor does now, with `asserted` the level of its source sampled now (the
    /// timer's condition). While a list register holds the virtual PPI, or it is active, or
    /// pending with its source still asserting it, the hypervisor keeps watching it
    /// ([`HwIrq::Held`]). Otherwise it stops ([`HwIrq::Released`]); a pending state whose
    /// source no longer asserts it is cleared first, as a level-sensitive interrupt's is when
    /// its line falls; and when the physical interrupt is still active because no guest
    /// deactivation reached it (the guest cleared the virtual one's pending or active state
    /// with `ICPENDR`/`ICACTIVER`, or it was never delivered), the hypervisor deactivates it
    /// (`deactivate`). Also returns the vCPUs to kick.
    pub fn settle_hw_ppi(&mut self, vcpu: usize, intid: u32, asserted: bool) -> (HwIrq, VcpuSet) {
        if vcpu >= self.vcpus || !(SGI_COUNT..PRIVATE_COUNT).contains(&intid) {
            // No virtual PPI took it (`raise_hw_ppi` ignored it): the hypervisor deactivates.
            return (HwIrq::Released { deactivate: true }, VcpuSet::EMPTY);
        }
        self.settle_hw(IrqRef::Private { vcpu, intid }, asserted)
    }

    /// Backs SPI `intid` by the physical SPI `pintid` (a PCI function's INTx line, say, which
    /// the hypervisor takes as a level-sensitive interrupt): from now on [`Gic::raise_hw_spi`]
    /// pends it and its list registers carry `HW` = 1 and `pINTID` = `pintid`, so that the
    /// guest's deactivation of the virtual SPI deactivates the physical one (IHI 0069,
    /// `ICH_LR<n>_EL2`; IHI 0048B, `GICH_LR<n>.HW`). Mapping an SPI again to the same
    /// physical INTID changes nothing.
    ///
    /// # Errors
    ///
    /// [`HwMapError`] when `intid` is no SPI this GIC implements, `pintid` is no SPI INTID,
    /// either is already mapped to another, or [`MAX_HW_SPIS`] are mapped.
    pub fn map_hw_spi(&mut self, intid: u32, pintid: u32) -> Result<(), HwMapError> {
        if self.spi_ref(intid).is_none() {
            return Err(HwMapError::NoSuchSpi(intid));
        }
        let physical = u16::try_from(pintid)
            .ok()
            .filter(|&p| (PRIVATE_COUNT..SPECIAL_INTIDS).contains(&u32::from(p)))
            .ok_or(HwMapError::PhysicalNotAnSpi(pintid))?;
        // Truncation impossible: an implemented SPI's INTID is below 1020.
        #[allow(clippy::cast_possible_truncation)]
        let virtual_ = intid as u16;
        let mapped = &self.hw_spis[..usize::from(self.hw_spi_count)];
        if let Some(&(v, p)) = mapped
            .iter()
            .find(|&&(v, p)| v == virtual_ || p == physical)
        {
            return if (v, p) == (virtual_, physical) {
                Ok(())
            } else {
                Err(HwMapError::Taken {
                    intid: u32::from(v),
                    pintid: u32::from(p),
                })
            };
        }
        let slot = self
            .hw_spis
            .get_mut(usize::from(self.hw_spi_count))
            .ok_or(HwMapError::Full)?;
        *slot = (virtual_, physical);
        self.hw_spi_count += 1;
        Ok(())
    }

    /// The physical INTID whose deactivation the virtual interrupt `intid` carries when it is
    /// loaded with `HW` = 1: a PPI's own INTID, a mapped SPI's [`Gic::map_hw_spi`] gave.
    #[inline]
    pub(crate) fn physical_intid(&self, intid: u32) -> u32 {
        if intid < PRIVATE_COUNT {
            return intid;
        }
        self.hw_spis[..usize::from(self.hw_spi_count)]
            .iter()
            .find(|&&(v, _)| u32::from(v) == intid)
            .map_or(intid, |&(_, p)| u32::from(p))
    }

    /// Whether SPI `intid` is backed by a physical SPI ([`Gic::map_hw_spi`]).
    fn hw_mapped(&self, intid: u32) -> bool {
        self.hw_spis[..usize::from(self.hw_spi_count)]
            .iter()
            .any(|&(v, _)| u32::from(v) == intid)
    }

    /// The physical SPI backing SPI `intid` ([`Gic::map_hw_spi`]) fired and the hypervisor
    /// acknowledged it, leaving it active: as [`Gic::raise_hw_ppi`] for a PPI, the virtual SPI
    /// becomes pending (as a `GICD_ISPENDR` write would make it) and is loaded with `HW` = 1
    /// until the guest's deactivation reaches the physical one; it goes where the guest routes
    /// it. Returns the vCPUs to kick; an SPI not mapped is ignored ([`Gic::settle_hw_spi`]
    /// then tells the hypervisor to deactivate).
    pub fn raise_hw_spi(&mut self, intid: u32) -> VcpuSet {
        match self.spi_ref(intid).filter(|_| self.hw_mapped(intid)) {
            Some(spi) => self.update(spi, |record| {
                record.hw_active = true;
                record.write_latch(true);
            }),
            None => VcpuSet::EMPTY,
        }
    }

    /// As [`Gic::settle_hw_ppi`], for the physical SPI backing SPI `intid`, `asserted` its
    /// line's level sampled now (a level-sensitive physical SPI that is active reads pending
    /// in `GICD_ISPENDR<n>` while its line is high). An SPI not mapped is released and owes
    /// its deactivation.
    pub fn settle_hw_spi(&mut self, intid: u32, asserted: bool) -> (HwIrq, VcpuSet) {
        match self.spi_ref(intid).filter(|_| self.hw_mapped(intid)) {
            Some(spi) => self.settle_hw(spi, asserted),
            None => (HwIrq::Released { deactivate: true }, VcpuSet::EMPTY),
        }
    }

    /// [`Gic::settle_hw_ppi`] and [`Gic::settle_hw_spi`] for the interrupt `irq`. Inlined: the
    /// timers' settling runs before every entry while one is held.
    #[inline(always)]
    fn settle_hw(&mut self, irq: IrqRef, asserted: bool) -> (HwIrq, VcpuSet) {
        let record = *self.irq(irq);
        if record.lr_of().is_some() || record.active || (record.pending() && asserted) {
            return (HwIrq::Held, VcpuSet::EMPTY);
        }
        if !record.hw_active {
            // The guest deactivated it through its list register: nothing to change. A pending
            // state set since is the guest's own (`GICR_ISPENDR0`), not the source's line: its
            // latch holds until the interrupt is activated or `GICR_ICPENDR0` clears it (IHI
            // 0069, `GICR_ISPENDR0`), whatever the timer does.
            return (HwIrq::Released { deactivate: false }, VcpuSet::EMPTY);
        }
        let kick = self.update(irq, |record| {
            record.write_latch(false);
            record.hw_active = false;
        });
        (
            HwIrq::Released {
                deactivate: record.hw_active,
            },
            kick,
        )
    }

    /// Whether vCPU `vcpu` has an interrupt that is pending, enabled and of an enabled group,
    /// and not active: what wakes a vCPU from WFI. An interrupt its list registers hold counts
    /// in the state they were loaded with (as if synced back unchanged). The cost is one step
    /// per interrupt wanting a list register of `vcpu` until a deliverable one, and one per
    /// loaded list register.
    #[must_use]
    pub fn has_deliverable(&self, vcpu: usize) -> bool {
        if vcpu >= self.vcpus {
            return false;
        }
        self.wanted_irqs(vcpu)
            .any(|irq| self.deliverable(self.irq(irq)))
            || self.holds_deliverable(vcpu)
    }

    /// Whether vCPU `vcpu`'s `WFI` ends: it has an interrupt [`Gic::has_deliverable`] counts
    /// that its virtual CPU interface, in the guest's state `interface` read from the
    /// hardware, signals once loaded in a list register (`vtr` gives the priority bits a list
    /// register keeps). A `WFI` completes when an interrupt is signalled to the PE, whatever
    /// `PSTATE.I` (Arm ARM, "Wait for Interrupt"); one that the guest's priority mask, group
    /// enables or running priority hold back does not end it (IHI 0069, "Preemption"), so the
    /// hypervisor waits instead of resuming a guest that would only execute its `WFI` again.
    /// Nothing but the hypervisor's loading of new interrupts changes what the interface
    /// signals while the vCPU waits: the guest's registers are its own, and it runs no
    /// instruction then.
    #[must_use]
    pub fn wakes_from_wfi(&self, vcpu: usize, interface: &VirtualInterface, vtr: IchVtr) -> bool {
        if vcpu >= self.vcpus {
            return false;
        }
        let mask = vtr.priority_mask();
        let signalled = |record: &Irq| {
            self.deliverable(record) && interface.signals(record.priority & mask, record.group1)
        };
        self.wanted_irqs(vcpu).any(|irq| signalled(self.irq(irq)))
            || self.holds_matching(vcpu, signalled)
    }

    /// Drives `irq`'s line; a vCPU is kicked only when the pending state changed. (The level
    /// alone is in no list register and decides no choice: only the pending state it makes.)
    fn set_line(&mut self, irq: IrqRef, level: bool) -> VcpuSet {
        let before = *self.irq(irq);
        self.irq_mut(irq).set_line(level);
        if self.irq(irq).pending() == before.pending() {
            return VcpuSet::EMPTY;
        }
        self.changed(irq, &before, false)
    }

    fn spi_ref(&self, intid: u32) -> Option<IrqRef> {
        let index = usize::try_from(intid.checked_sub(PRIVATE_COUNT)?).ok()?;
        (index < SPIS).then_some(IrqRef::Spi(index))
    }

    pub(crate) fn irq(&self, irq: IrqRef) -> &Irq {
        match irq {
            IrqRef::Private { vcpu, intid } => &self.private[vcpu][intid as usize],
            IrqRef::Spi(index) => &self.spis[index],
        }
    }

    pub(crate) fn irq_mut(&mut self, irq: IrqRef) -> &mut Irq {
        match irq {
            IrqRef::Private { vcpu, intid } => &mut self.private[vcpu][intid as usize],
            IrqRef::Spi(index) => &mut self.spis[index],
        }
    }

    /// The vCPU an SPI's `GICD_IROUTER` names: with `Interrupt_Routing_Mode` = 1 (1 of N), the
    /// first awake vCPU (`GICR_WAKER.ProcessorSleep` = 0), else vCPU 0; otherwise the vCPU
    /// whose affinity matches, or none.
    ///
    /// For a GICv2, a vCPU its `GICD_ITARGETSR<n>` names, or none. With one named, that one.
    /// With several, GICv2 uses the 1-of-N model (IHI 0048B, 3.1.2 and 4.3.12: the SPI is
    /// pending on every targeted CPU interface, and when one acknowledges it, it is no longer
    /// pending on the others). A list register cannot be offered to several vCPUs at once
    /// without two of them acknowledging it, so the model offers it to one: the first
    /// targeted vCPU that is not busy — that holds no interrupt it acknowledged and has not
    /// deactivated, so that its running priority is idle and it can take the SPI at once,
    /// as the first CPU interface to acknowledge on hardware would be an idle one — else, all
    /// being busy, the first targeted. A targeted vCPU busy with an interrupt never holds the
    /// SPI back while another targeted one is idle: when it becomes busy, the SPI moves
    /// (`replace_multi_target`). What the guest's CPU interface masks (`GICC_PMR`,
    /// `GICC_CTLR`) is the hardware's and not seen here.
    fn route_target(&self, index: usize) -> Option<usize> {
        let route = self.routes[index];
        if self.arch == GicArch::V2 {
            let targets =
                VcpuSet::from_bits((route & 0xFF) as u32 & VcpuSet::first(self.vcpus).bits());
            let mut named = targets.iter();
            let first = named.next()?;
            if named.next().is_none() {
                return Some(first);
            }
            return targets.iter().find(|&v| !self.busy(v)).or(Some(first));
        }
        if distributor::irouter_irm(route) {
            let awake = (0..self.vcpus).find(|&v| !self.redists[v].processor_sleep);
            return Some(awake.unwrap_or(0));
        }
        let affinity = Affinity::from_mpidr(route);
        (0..self.vcpus).find(|&v| Affinity::of_vcpu(v) == affinity)
    }

    /// Whether vCPU `vcpu` holds an interrupt it acknowledged and has not deactivated (as the
    /// model last saw its list registers): its running priority is not idle.
    fn busy(&self, vcpu: usize) -> bool {
        let acknowledged = |irq: &Irq| irq.active && irq.active_on() == Some(vcpu);
        self.private[vcpu].iter().any(acknowledged) || self.spis.iter().any(acknowledged)
    }

    /// The vCPU that deals with `irq` now: the one whose list registers hold it, else its
    /// [`Gic::home`].
    #[cfg(any(test, feature = "invariants"))]
    pub(crate) fn owner(&self, irq: IrqRef) -> Option<usize> {
        let state = self.irq(irq);
        state.lr_of().or_else(|| self.home(irq, state))
    }

    /// The vCPU an interrupt in state `record` belongs to outside the list registers: a private
    /// interrupt's own vCPU; for an SPI, the vCPU that acknowledged it while it is active, else
    /// the one it is routed to.
    pub(crate) fn home(&self, irq: IrqRef, record: &Irq) -> Option<usize> {
        match irq {
            IrqRef::Private { vcpu, .. } => Some(vcpu),
            IrqRef::Spi(_) if record.active && record.active_on().is_some() => record.active_on(),
            IrqRef::Spi(index) => self.route_target(index),
        }
    }

    pub(crate) fn deliverable(&self, irq: &Irq) -> bool {
        irq.deliverable_if(self.group_enabled(irq.group1))
    }

    pub(crate) const fn group_enabled(&self, group1: bool) -> bool {
        if group1 {
            self.enables.grp1
        } else {
            self.enables.grp0
        }
    }
}

#[cfg(test)]
mod tests;
