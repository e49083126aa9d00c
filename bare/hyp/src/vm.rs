//! A VM as Moat runs it: its configuration, its RAM and stage-2 tables, its emulated devices
//! and the boot vCPU's entry; created from the bundle the host tool passed, and run until
//! the guest ends it or Moat stops it.

use crate::console::{self, log};
use crate::cpu;
use crate::gic::{self, CpuInterface};
use crate::guest::El1Regs;
use crate::mm::{OutOfMemory, PAGE_SIZE, PhysAllocator};
use crate::mmio::Port;
use crate::net;
use crate::pci::VmFunctions;
use crate::platform::MAX_CPUS;
use crate::platform::{Gic, PhysRange};
use crate::ram::{Backing, VmRam};
use crate::s2hw::{Frames, IdentityTables, Tlb};
use crate::vcpu::Vcpu;
use crate::vmpci::VmPci;
use aarch64_cpu::registers::{
    CNTHCTL_EL2, CNTVOFF_EL2, CPTR_EL2, HCR_EL2, MDCR_EL2, MIDR_EL1, Readable, VMPIDR_EL2,
    VTCR_EL2, VTTBR_EL2, Writeable,
};
use alloc::vec::Vec;
use core::fmt;
use moat_arm::addr::{Ipa, Pa};
use moat_arm::parange::PaRange;
use moat_config::guest_parange_bits;
use moat_config::{ConfigError, DeviceKind, GuestArch, VmBundle, VmConfig};
use moat_devices::Access;
use moat_devices::bus::{Bus, BusEffects, BusError, ModelKind};
use moat_devices::gic::{HwMapError, VcpuSet};
use moat_pci::smmu::{SmmuFeatures, SteError};
use moat_stage2::{Geometry, S2Attrs, Stage2, Stage2Error};
use moat_vcpu::abort::{GuestFormat, HolePolicy, IpaLayout, IpaRange, VmView, effective_pa_bits};
use moat_vcpu::entry::CpuFeatures;
use moat_vcpu::flat_entry::FlatAbortEntry;
use moat_vcpu::idregs::{IdPolicy, IdValues};
use moat_vcpu::power::{PowerStates, Start};

/// `DCZID_EL0` (Arm ARM D19.2 "DCZID_EL0, Data Cache Zero ID register"): `BS`, bits \[3:0\], is
/// log2 of the `DC ZVA` block size in 4-byte words; `DZP`, bit 4, set means `DC ZVA` is
/// prohibited. (`aarch64-cpu` 11 has no definition of this register, hence the hand-written
/// fields.)
mod dczid {
    /// `DCZID_EL0.BS`.
    pub const BS_MASK: u64 = 0xF;
    /// `DCZID_EL0.DZP`.
    pub const DZP: u64 = 1 << 4;
    /// The size of the word `BS` counts in.
    pub const WORD_BYTES: u64 = 4;
}

/// Zeroes `len` bytes of RAM at `pa` with `DC ZVA`, one cache-line-sized block per instruction
/// (Arm ARM C6.2 "DC ZVA"), where the CPU permits it (`DCZID_EL0.DZP` = 0); the unaligned head
/// and tail, or everything where `DC ZVA` is prohibited, with ordinary stores. 512 MiB of guest
/// RAM took 268 M instructions as a byte-store loop; with 64-byte blocks it takes 8 M `DC ZVA`s.
///
/// # Safety
///
/// `pa..pa + len` must be identity-mapped Normal Write-Back RAM (Moat's own map at EL2, caches
/// on: `DC ZVA` to Device memory would fault) that nothing else uses while it is zeroed.
unsafe fn scrub(pa: u64, len: u64) {
    let dczid: u64;
    // SAFETY: reading DCZID_EL0 has no side effect; it is readable at every EL.
    unsafe { core::arch::asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack)) };
    let end = pa + len;
    let block = dczid::WORD_BYTES << (dczid & dczid::BS_MASK);
    let first = pa.next_multiple_of(block).min(end);
    let last = (end / block * block).max(first);
    if dczid & dczid::DZP != 0 || first == last {
        // SAFETY: the caller's range, as this function's contract says.
        unsafe { core::ptr::write_bytes(pa as *mut u8, 0, len as usize) };
        return;
    }
    // SAFETY: `pa..first` and `last..end` lie inside the caller's range.
    unsafe {
        core::ptr::write_bytes(pa as *mut u8, 0, (first - pa) as usize);
        core::ptr::write_bytes(last as *mut u8, 0, (end - last) as usize);
    }
    let mut at = first;
    // Sixteen blocks per iteration: under -icount the loop's own instructions cost as much as
    // the `DC ZVA`s (512 MiB: 8 M blocks; one per iteration took 4 instructions a block).
    const UNROLL: u64 = 16;
    while last - at >= UNROLL * block {
        // SAFETY: `at` is a block-aligned address inside the caller's range of Normal WB RAM
        // (the contract) with sixteen blocks before `last`, so the blocks `DC ZVA` zeroes are
        // the caller's; DZP is 0, so the instruction is permitted at EL2. It writes memory,
        // hence no `nomem`.
        unsafe {
            core::arch::asm!(
                ".rept 16",
                "dc zva, {at}",
                "add {at}, {at}, {block}",
                ".endr",
                at = inout(reg) at,
                block = in(reg) block,
                options(nostack, preserves_flags)
            )
        };
    }
    while at < last {
        // SAFETY: as above, one block.
        unsafe { core::arch::asm!("dc zva, {}", in(reg) at, options(nostack, preserves_flags)) };
        at += block;
    }
    // SAFETY: a barrier only: the zeroing completes before the caller goes on (as the store
    // loop's stores, the zeroes are in the data cache, as is everything Moat copies in).
    unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
}

/// The VMID of VM `id` (its index in the machine's table): `id + 1`. VMID 0 is left unused, so
/// a stray stage-2 walk with a reset `VTTBR_EL2` never hits a VM's TLB entries. Every VM has
/// its own, so no VM's stage-2 translations are ever used for another's accesses (Arm ARM
/// D8.14 "Translation Lookaside Buffers": entries are tagged with the VMID). The VMIDs are 16
/// bits wide where the CPU has FEAT_VMID16 (`cpu::vmid_bits`), else 8; either is enough for the
/// at most `MAX_CPUS` VMs a machine runs.
fn vmid(id: usize) -> u16 {
    u16::try_from(id + 1).expect("a VM index fits a VMID")
}

/// The guest's PSTATE at its first instruction: EL1h, AArch64, D, A, I and F masked — the
/// state a CPU leaves reset in (`SPSR_EL2.M` = 0b0101, DAIF = 0b1111).
const PSTATE_EL1H_MASKED: u64 = 0x3C5;

/// `SCTLR_EL1` at the guest's start: MMU and caches off, the RES1 bits of Armv8.0 set (bits
/// 11, 20, 22, 23, 28, 29), as firmware hands a CPU to an OS.
const SCTLR_EL1_RESET: u64 = 0x30D0_0800;

/// An AArch32 guest's first PSTATE: SVC mode, ARM state, A, I and F masked (`CPSR` 0x1D3), as
/// the Linux 32-bit boot protocol asks.
const PSTATE_SVC_MASKED: u64 = 0x1D3;
/// `SPSR_EL2.T` for an AArch32 PSTATE: Thumb state (an ELF entry with bit 0 set).
const PSTATE_T: u64 = 1 << 5;

/// An AArch32 `SCTLR` at the guest's start: MMU, caches and alignment checks off, exceptions in
/// ARM state, little-endian; the RES1 bits (3, 4, 11, 22, 23), `CP15BEN` (5) and `nTWI`/`nTWE`
/// (16, 18) set.
const SCTLR_AARCH32_RESET: u64 = 0x00C5_0838;

/// A VM.
pub struct Vm {
    /// Its index in the machine's table of VMs.
    pub id: usize,
    /// How often it was halted or restarted: a vCPU that began its run in an earlier
    /// generation is over, and leaves its guest at its next exit.
    pub generation: u32,
    /// The vCPUs whose physical CPUs are between taking their start and leaving the guest.
    pub in_guest: VcpuSet,
    /// The VM runs (or restarts); false once it halted.
    pub running: bool,
    /// What the VM was built from, kept to restart it from its images.
    source: VmBundle<'static>,
    /// The validated configuration.
    pub config: VmConfig,
    /// The stage-2 tables.
    pub stage2: Stage2,
    /// RAM regions and their backing memory.
    pub ram: Vec<Backing>,
    /// The RAM regions as IPA ranges (for the abort decision).
    pub ram_windows: Vec<IpaRange>,
    /// The emulated devices' windows, in the order of the bus's.
    pub device_windows: Vec<IpaRange>,
    /// The emulated devices.
    pub bus: Bus,
    /// The CPU features exception entry follows (the hardware's).
    pub features: CpuFeatures,
    /// The plain abort's external data abort entry, flattened for `features` (`None` for an
    /// AArch32 EL1).
    pub flat_abort: Option<FlatAbortEntry>,
    /// What the guest's ID registers show.
    pub id_policy: IdPolicy,
    /// The PA size its accesses are checked against (`moat_vcpu::abort::effective_pa_bits`
    /// of the PARange `id_policy` shows).
    pa_bits: u32,
    /// The guest's ID registers show `SCXTNUM_EL0`/`SCXTNUM_EL1` (FEAT_CSV2_2 or
    /// FEAT_CSV2_1p2): its accesses go to the hardware registers, reset at each vCPU start.
    pub scxtnum: bool,
    /// Where the boot vCPU starts, and the guest device tree's IPA.
    pub boot: (u64, u64),
    /// Each vCPU's PSCI power state.
    pub power: PowerStates,
    /// The MPIDR of the physical CPU that runs each vCPU (vCPU `n` on the `n`-th CPU of the
    /// configuration's `physical_cpus`).
    pub cpu_mpidrs: [u64; MAX_CPUS],
    /// Where each of its network windows' frames go (set by `machine::install`, which knows
    /// every VM).
    pub links: Vec<NetLink>,
    /// The self-test `moat.self-test=stop-vm:N` names this VM: its next exit that reaches the
    /// trap dispatcher stops it (`exits::handle`); the CPU of a vCPU that starts kicks itself
    /// (`machine::wait_for_start`), so that one comes at once.
    pub stop_at_next_exit: bool,
    /// A GICv2 VM's CPU interface window and the machine's virtual CPU interface (`GICV`)
    /// mapped there at stage 2.
    pub gicv: Option<(Ipa, PhysRange)>,
    /// Its PCI functions, their ECAM window the last of `device_windows`.
    pub pci: Option<VmPci>,
    /// Moat holds one of its INTx lines active for the guest (`IntxLines::holds_any`, kept
    /// here as one flag that the entry path tests).
    intx_held: bool,
}

/// What a VM is built for: the machine's IPA limit (bits), its CPUs' MPIDRs in the device
/// tree's order, its GIC, and its SMMU's features.
#[derive(Clone, Copy, Debug)]
pub struct MachineShape<'a> {
    /// The largest IPA size stage 2 takes on these CPUs.
    pub ipa_limit: u32,
    /// Each physical CPU's MPIDR.
    pub cpus: &'a [u64],
    /// The machine's GIC, if Moat found one.
    pub gic: Option<Gic>,
    /// The SMMUv3's features, if the machine has one.
    pub smmu: Option<SmmuFeatures>,
}

/// The other end of a virtio-net link, as the sending VM finds it without taking the
/// receiver's lock.
#[derive(Clone, Copy, Debug)]
pub struct NetLink {
    /// The sending window's index in this VM's bus.
    pub window: usize,
    /// The receiving VM's index.
    pub peer: usize,
    /// The receiving window's index in the receiver's bus.
    pub peer_window: usize,
    /// The MPIDR of the CPU of the receiver's vCPU 0, which takes the frames in.
    pub peer_mpidr: u64,
}

/// Why a VM could not be created: a refused configuration or a lack of memory.
#[derive(Debug)]
pub enum VmError {
    /// The configuration breaks a rule of the IPA space on this machine.
    Config(ConfigError),
    /// The stage-2 geometry or tables refused the VM.
    Stage2(Stage2Error),
    /// The devices cannot be built as described.
    Devices(BusError),
    /// Not enough machine memory.
    Memory(OutOfMemory),
    /// The VM asks for something Moat does not offer yet.
    Unsupported(&'static str),
    /// The SMMU cannot translate the VM's DMA through its stage 2.
    Smmu(SteError),
    /// The VM's GIC cannot forward its INTx lines.
    Intx(HwMapError),
    /// The VM names a physical CPU the machine does not have.
    AbsentCpu {
        /// The CPU it names.
        physical: u32,
        /// How many CPUs the machine has.
        machine: usize,
    },
    /// A part of the image does not lie inside the VM's RAM.
    OutsideRam {
        /// What was being loaded.
        what: &'static str,
        /// Its first IPA.
        ipa: Ipa,
        /// Its length.
        len: u64,
    },
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "{e}"),
            Self::Stage2(e) => write!(f, "stage 2: {e}"),
            Self::Devices(e) => write!(f, "devices: {e}"),
            Self::Memory(e) => write!(f, "{e}"),
            Self::Unsupported(what) => write!(f, "{what} is not supported yet"),
            Self::Smmu(e) => write!(f, "the SMMU cannot confine its PCI functions: {e:?}"),
            Self::Intx(e) => write!(f, "its PCI functions' INTx lines: {e}"),
            Self::AbsentCpu { physical, machine } => write!(
                f,
                "it names CPU {physical}, but the machine has {machine} CPUs (0-{})",
                machine.saturating_sub(1)
            ),
            Self::OutsideRam { what, ipa, len } => {
                write!(
                    f,
                    "{what} at IPA {ipa} ({len:#x} bytes) is not inside the VM's RAM"
                )
            }
        }
    }
}

impl Vm {
    /// Builds the VM of `bundle` on `machine`, with its PCI functions `functions`.
    ///
    /// # Errors
    ///
    /// [`VmError`] when the configuration does not fit this machine or memory runs out.
    pub fn create(
        id: usize,
        bundle: VmBundle<'static>,
        phys: &mut PhysAllocator,
        machine: &MachineShape<'_>,
        functions: VmFunctions,
    ) -> Result<Self, VmError> {
        let MachineShape {
            ipa_limit,
            cpus,
            gic: machine_gic,
            smmu,
        } = *machine;
        let config = bundle.config().clone();
        let (entry, dtb_ipa) = (bundle.entry().0, bundle.dtb_ipa().0);
        config.validate(Some(ipa_limit)).map_err(VmError::Config)?;
        let mut cpu_mpidrs = [0; MAX_CPUS];
        for (vcpu, &physical) in config.physical_cpus.iter().enumerate() {
            let mpidr = cpus.get(physical as usize).ok_or(VmError::AbsentCpu {
                physical,
                machine: cpus.len(),
            })?;
            *cpu_mpidrs
                .get_mut(vcpu)
                .ok_or(VmError::Unsupported("more vCPUs than Moat has CPU stacks"))? = *mpidr;
        }
        let aarch32 = config.arch == GuestArch::Aarch32;
        if aarch32 && !cpu::el1_supports_aarch32() {
            return Err(VmError::Unsupported(
                "an AArch32 EL1 on this CPU (ID_AA64PFR0_EL1.EL1 says AArch64 only)",
            ));
        }
        let geometry = Geometry::new(config.ipa_bits, ipa_limit)
            .map_err(VmError::Stage2)?
            .with_vmid_bits(cpu::vmid_bits());
        let stage2 = Stage2::new(geometry, vmid(id), &mut Frames(phys)).map_err(VmError::Stage2)?;
        let gicv = guest_cpu_interface(&config, machine_gic)?;
        let bus = new_bus(&config, id)?;
        let mut device_windows = ranges(config.devices.iter().map(|w| (w.base, w.size)));
        let pci = if functions.functions.is_empty() {
            None
        } else {
            let (ecam, size) = moat_config::assign::guest_ecam();
            device_windows.push(IpaRange {
                base: Ipa(ecam),
                size,
            });
            let pci =
                VmPci::new(functions, device_windows.len() - 1, phys).map_err(VmError::Memory)?;
            let smmu = smmu.expect("functions pass the boot check only with an SMMU");
            pci.attach(&stage2, vmid(id), &smmu)
                .map_err(VmError::Smmu)?;
            Some(pci)
        };
        let ram_windows = ranges(config.ram.iter().map(|r| (r.base, r.size)));
        let guest_pa_bits = guest_parange_bits(config.parange, config.ipa_bits, ipa_limit);
        let parange = u8::try_from(guest_pa_bits)
            .ok()
            .and_then(PaRange::covering)
            .unwrap_or_else(|| panic!("no PARange encoding covers {guest_pa_bits} bits"));
        let config_cpus = config.cpus as usize;
        let features = CpuFeatures {
            el1_aarch32: aarch32,
            ..cpu::features()
        };
        let mut vm = Self {
            id,
            generation: 0,
            in_guest: VcpuSet::EMPTY,
            running: true,
            source: bundle,
            config,
            stage2,
            ram: Vec::new(),
            ram_windows,
            device_windows,
            bus,
            features,
            flat_abort: FlatAbortEntry::new(features),
            id_policy: IdPolicy { parange },
            pa_bits: effective_pa_bits(u32::from(parange.bits().unwrap_or(48)), aarch32),
            scxtnum: !aarch32 && guest_shows_scxtnum(&IdPolicy { parange }),
            boot: (entry, dtb_ipa),
            power: PowerStates::power_on(config_cpus),
            cpu_mpidrs,
            links: Vec::new(),
            stop_at_next_exit: false,
            gicv,
            pci,
            intx_held: false,
        };
        vm.map_intx()?;
        vm.back_ram(phys)?;
        vm.map_gicv(phys)?;
        vm.load_images()?;
        Ok(vm)
    }

    /// Copies the images and the guest device tree of the bundle into the VM's RAM.
    fn load_images(&mut self) -> Result<(), VmError> {
        let source = self.source.clone();
        for image in source.images() {
            self.copy_in("image", image.load_ipa, image.data)?;
        }
        self.copy_in("device tree", source.dtb_ipa(), source.dtb())
    }

    /// Ends the VM's current run: a new generation, every vCPU off, nothing to start. Its
    /// vCPUs leave their guests at their next exit; the caller kicks them.
    pub fn halt(&mut self) {
        self.quiesce_pci();
        self.generation = self.generation.wrapping_add(1);
        self.power = PowerStates::all_off(self.config.cpus as usize);
    }

    /// Starts the halted VM again as at power-on (PSCI `SYSTEM_RESET` with
    /// `on-reset = "restart"`), once every vCPU has left its guest: its devices reset (new
    /// models), its RAM scrubbed, its images and device tree copied in again, vCPU 0 about
    /// to boot.
    pub fn restart(&mut self) {
        debug_assert!(self.in_guest.is_empty());
        self.bus = match new_bus(&self.config, self.id) {
            Ok(bus) => bus,
            Err(e) => panic!(
                "VM '{}': its devices were built once: {e}",
                self.config.name
            ),
        };
        // No DMA of its functions into the RAM about to be scrubbed and reloaded.
        self.quiesce_pci();
        if let Err(e) = self.map_intx() {
            panic!(
                "VM '{}': its INTx lines were mapped once: {e:?}",
                self.config.name
            );
        }
        for backing in &self.ram {
            // SAFETY: the VM's own backing memory, identity-mapped Normal RAM; none of its
            // vCPUs runs (`in_guest` is empty), so nothing else uses it while it is zeroed.
            unsafe { scrub(backing.pa.0, backing.size) };
        }
        if let Err(e) = self.load_images() {
            panic!(
                "VM '{}': its images fitted at creation: {e}",
                self.config.name
            );
        }
        self.power = PowerStates::power_on(self.config.cpus as usize);
    }

    /// Stops the VM's PCI functions (`VmPci::quiesce`), if it has any, and switches their
    /// INTx lines off (`IntxLines::release`).
    fn quiesce_pci(&mut self) {
        if let Some(pci) = &mut self.pci {
            pci.quiesce(&mut self.stage2, &self.config.name);
            pci.intx.release();
        }
        self.intx_held = false;
    }

    /// Backs the guest SPIs of the VM's INTx lines by their physical SPIs in its GIC model
    /// (`IntxLines::map`); a VM whose functions interrupt needs a GIC.
    fn map_intx(&mut self) -> Result<(), VmError> {
        let Some(pci) = &self.pci else {
            return Ok(());
        };
        match self.bus.gic() {
            Some(gic) => pci.intx.map(gic).map_err(VmError::Intx),
            None if pci.intx.is_empty() => Ok(()),
            None => Err(VmError::Unsupported(
                "PCI functions with INTx lines in a VM without a GIC",
            )),
        }
    }

    /// Takes the VM's INTx lines on the calling CPU, that of its vCPU 0, as it starts.
    pub fn take_intx_here(&self) {
        if let Some(pci) = &self.pci {
            pci.intx.take_here(&self.config.name);
        }
    }

    /// The physical SPI `intid` fired at vCPU `me`'s CPU (acknowledged): when it is one of the
    /// VM's INTx lines, its guest SPI is pended and the vCPUs it goes to kicked, and true is
    /// returned: the caller leaves it active for the guest to deactivate.
    pub fn intx_fired(&mut self, intid: u32, me: usize) -> bool {
        let (Some(pci), Some(gic)) = (self.pci.as_mut(), self.bus.gic()) else {
            return false;
        };
        if !self.running {
            return false;
        }
        match pci.intx.fired(intid, gic) {
            Some(kick) => {
                self.intx_held = true;
                self.kick(kick, me);
                true
            }
            None => false,
        }
    }

    /// Gives every RAM region zeroed machine memory and maps it at stage 2.
    fn back_ram(&mut self, phys: &mut PhysAllocator) -> Result<(), VmError> {
        let regions = self.config.ram.clone();
        for region in regions {
            // 2 MiB alignment lets stage 2 use block mappings wherever the IPA allows.
            let align = if region.size % (2 << 20) == 0 {
                2 << 20
            } else {
                PAGE_SIZE
            };
            let pa = phys.alloc(region.size, align).map_err(VmError::Memory)?;
            // SAFETY: the block was just taken from the allocator; it is identity-mapped RAM
            // that only this VM will use. Zeroing it keeps Moat's and earlier data from the
            // guest (QEMU's zeroed RAM is not relied on).
            unsafe { scrub(pa, region.size) };
            self.map_stage2(phys, region.base, Pa(pa), region.size, S2Attrs::RAM)?;
            self.ram.push(Backing {
                ipa: region.base,
                pa: Pa(pa),
                size: region.size,
            });
        }
        Ok(())
    }

    /// Maps the machine's virtual CPU interface (`GICV`, 8 KiB) at a GICv2 VM's CPU
    /// interface window: the guest's `GICC_*` accesses go to the hardware, which presents the
    /// list registers' interrupts (IHI 0048B, 5.5 "GIC virtual CPU interface registers").
    fn map_gicv(&mut self, phys: &mut PhysAllocator) -> Result<(), VmError> {
        let Some((ipa, frame)) = self.gicv else {
            return Ok(());
        };
        self.map_stage2(phys, ipa, Pa(frame.base), frame.size, S2Attrs::DEVICE)
    }

    /// Maps `size` bytes at `ipa` to `pa` at stage 2 with `attrs`.
    fn map_stage2(
        &mut self,
        phys: &mut PhysAllocator,
        ipa: Ipa,
        pa: Pa,
        size: u64,
        attrs: S2Attrs,
    ) -> Result<(), VmError> {
        let mut tlb = Tlb {
            vttbr: self.stage2.vttbr_el2(),
        };
        self.stage2
            .map(
                &mut IdentityTables,
                &mut Frames(phys),
                &mut tlb,
                ipa,
                pa,
                size,
                attrs,
            )
            .map_err(VmError::Stage2)
    }

    /// Copies `data` into guest RAM at `ipa`.
    fn copy_in(&mut self, what: &'static str, ipa: Ipa, data: &[u8]) -> Result<(), VmError> {
        let len = data.len() as u64;
        let pa = self
            .ram
            .iter()
            .find_map(|b| b.pa_of(ipa, len))
            .ok_or(VmError::OutsideRam { what, ipa, len })?;
        // SAFETY: `pa_of` checked that the whole range lies in this VM's backing memory,
        // which Moat owns and has identity-mapped; `data` is the bundle, which lies elsewhere
        // (reserved at boot), so the ranges do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), pa as *mut u8, data.len()) };
        Ok(())
    }

    /// Proves, by walking its stage-2 tables leaf by leaf over the whole IPA space, that the VM
    /// maps nothing but the RAM it was given: no other VM's memory, none of Moat's (its image,
    /// heap, stacks, tables) and no free memory. A leaf that strays is a Moat bug.
    pub fn check_confinement(&self) {
        let mut owned: Vec<(Pa, u64)> = self.ram.iter().map(|b| (b.pa, b.size)).collect();
        // A GICv2 VM's own window on the machine's virtual CPU interface.
        owned.extend(self.gicv.map(|(_, frame)| (Pa(frame.base), frame.size)));
        // Its PCI functions' BARs (mapped only while the guest enables them).
        owned.extend(self.pci.iter().flat_map(VmPci::owned));
        match self.stage2.confined_to(&IdentityTables, &owned) {
            Ok(mapped) => log!(
                "VM '{}': stage 2 maps {} MiB, all of it its own RAM{} (every leaf checked)",
                self.config.name,
                mapped >> 20,
                if self.gicv.is_some() {
                    " and its window on the GICV"
                } else {
                    ""
                }
            ),
            Err(escape) => panic!(
                "VM '{}': stage 2 maps IPA {} to PA {} ({:#x} bytes), outside its RAM",
                self.config.name, escape.0.ipa, escape.0.pa, escape.0.size
            ),
        }
    }

    /// Says what the VM is.
    pub fn report(&self) {
        let c = &self.config;
        log!(
            "VM '{}': IPA size S = {} bits, guest PARange P = {} bits ({}), VTCR_EL2 {:#x}, {} vCPU",
            c.name,
            c.ipa_bits,
            self.id_policy.parange.bits().unwrap_or(0),
            c.parange.name(),
            self.stage2.vtcr_el2(),
            c.cpus
        );
        for b in &self.ram {
            log!(
                "VM '{}': RAM IPA [{}, {:#x}) at PA {}",
                c.name,
                b.ipa,
                b.ipa.0 + b.size,
                b.pa
            );
        }
        for (index, window) in self.device_windows.iter().enumerate() {
            let name = match self.bus.kind(index) {
                Some(ModelKind::Pl011) => "PL011",
                Some(ModelKind::GicDistributor) => "GICv3 distributor",
                Some(ModelKind::GicRedistributors) => "GICv3 redistributors",
                Some(ModelKind::GicV2Distributor) => "GICv2 distributor",
                Some(ModelKind::GicV2CpuInterface) => {
                    let frame = self.gicv.map_or(0, |(_, frame)| frame.base);
                    log!(
                        "VM '{}': GICv2 CPU interface at IPA {} (the machine's GICV at {frame:#x})",
                        c.name,
                        window.base
                    );
                    continue;
                }
                Some(ModelKind::VirtioNet { .. }) => "virtio-net",
                None if self.pci.as_ref().is_some_and(|p| p.ecam_index == index) => {
                    log!(
                        "VM '{}': PCIe ECAM at IPA {} (trapped, filtered)",
                        c.name,
                        window.base
                    );
                    continue;
                }
                None => "no device",
            };
            log!("VM '{}': {name} at IPA {} (emulated)", c.name, window.base);
        }
        for f in self.pci.iter().flat_map(VmPci::functions) {
            log!(
                "VM '{}': PCI {} (stream {:#x}) translated by the SMMU through its stage 2",
                c.name,
                f.assigned.bdf,
                f.stream
            );
        }
        let state = match c.arch {
            GuestArch::Aarch64 => "AArch64 EL1h",
            GuestArch::Aarch32 => "AArch32 SVC",
        };
        let (entry, dtb) = self.boot;
        log!(
            "VM '{}': entry {entry:#x} in {state}, device tree at {dtb:#x}",
            c.name
        );
    }

    /// Sets a starting vCPU's first instruction and registers. The boot vCPU follows the Linux
    /// boot protocols — AArch64: EL1h, x0 = the device tree; AArch32: SVC mode, r0 = 0, r1 = ~0
    /// (no machine number), r2 = the device tree. A vCPU started by PSCI `CPU_ON` gets the
    /// caller's context in x0 (r0), at EL1h (SVC). Thumb state where an AArch32 entry address
    /// has bit 0 set.
    pub fn enter_at(&self, vcpu: &mut Vcpu, start: Start) {
        vcpu.frame = moat_vcpu::frame::TrapFrame::default();
        let f = &mut vcpu.frame;
        let (entry, first, second) = match start {
            Start::Boot => (self.boot.0, self.boot.1, true),
            Start::CpuOn { entry, context } => (entry, context, false),
        };
        match self.config.arch {
            GuestArch::Aarch64 => {
                f.pc = entry;
                f.pstate = PSTATE_EL1H_MASKED;
                f.x[0] = first;
            }
            GuestArch::Aarch32 => {
                f.pc = entry & !1;
                f.pstate = PSTATE_SVC_MASKED | if entry & 1 != 0 { PSTATE_T } else { 0 };
                if second {
                    f.x[1] = 0xFFFF_FFFF;
                    f.x[2] = first;
                } else {
                    f.x[0] = first;
                }
            }
        }
    }

    /// The VM's IPA space, as the plain-abort decision sees it.
    pub fn layout(&self) -> IpaLayout<'_> {
        IpaLayout {
            ipa_bits: self.config.ipa_bits,
            pa_bits: self.pa_bits,
            ram: &self.ram_windows,
            devices: &self.device_windows,
            hole_policy: self.hole_policy(),
        }
    }

    /// `P`: the PA size the guest reads in `ID_AA64MMFR0_EL1.PARange`.
    fn guest_pa_bits(&self) -> u32 {
        u32::from(self.id_policy.parange.bits().unwrap_or(48))
    }

    fn hole_policy(&self) -> HolePolicy {
        match self.config.hole_policy {
            moat_config::HolePolicy::Abort => HolePolicy::Abort,
            moat_config::HolePolicy::ReadAsZeroWriteIgnore => HolePolicy::ReadAsZeroWriteIgnore,
        }
    }

    /// The VM as the abort decision sees it.
    pub fn view(&self, el1: &El1Regs) -> VmView<'_> {
        // TTBCR.EAE (bit 31) selects the long-descriptor format of an AArch32 guest.
        const TTBCR_EAE: u64 = 1 << 31;
        let format = match self.config.arch {
            GuestArch::Aarch64 => GuestFormat::Aarch64,
            GuestArch::Aarch32 if el1.tcr & TTBCR_EAE != 0 => GuestFormat::Aarch32Long,
            GuestArch::Aarch32 => GuestFormat::Aarch32Short,
        };
        let mmu_on = el1.mmu_on();
        VmView {
            ipa_bits: self.config.ipa_bits,
            pa_bits: self.guest_pa_bits(),
            ram: &self.ram_windows,
            devices: &self.device_windows,
            hole_policy: self.hole_policy(),
            format,
            mmu_on,
        }
    }

    /// One access to device window `index`, its effects carried out; returns the read data.
    pub fn device_access(&mut self, index: usize, request: Access, me: usize) -> u64 {
        if let Some(pci) = self.pci.as_mut().filter(|p| p.ecam_index == index) {
            return pci.access(
                &mut self.stage2,
                request.offset,
                request.size,
                request.write,
            );
        }
        let (data, effects) = self
            .bus
            .access_by(me, index, request, &mut VmRam(&self.ram));
        self.carry_out(effects, me);
        if matches!(self.bus.kind(index), Some(ModelKind::VirtioNet { .. })) {
            // The guest may have posted receive buffers: take in what waits for it.
            self.receive_frames(me);
        }
        if console::receive_paused() && self.bus.kind(index) == Some(ModelKind::Pl011) {
            // The guest may have made room in its receive FIFO: take what the console holds.
            self.console_input(me);
        }
        data
    }

    /// A port to device window `index` (read-as-zero/write-ignore for `None`) for vCPU `me`'s
    /// access that faulted at `fault_ipa` / `far`; the caller carries out its kicks.
    pub fn device_port(
        &mut self,
        index: Option<usize>,
        me: usize,
        fault_ipa: u64,
        far: u64,
    ) -> Port<'_> {
        // The ECAM window takes one-register accesses (`device_access`); one without a
        // syndrome (a pair, a writeback form) is read-as-zero/write-ignore there.
        let ecam = self.pci.as_ref().map(|p| p.ecam_index);
        let index = index.filter(|&i| Some(i) != ecam);
        let window = index
            .and_then(|i| self.device_windows.get(i))
            .map_or((0, 0), |w| (w.base.0, w.size));
        Port {
            vm: self.id,
            vcpu: me,
            device: index.map(|i| (&mut self.bus, i)),
            ram: &self.ram,
            fault_ipa,
            far,
            window,
            kick: VcpuSet::EMPTY,
        }
    }

    /// Carries out what the bus asked for on behalf of vCPU `me`: the console byte, and a kick
    /// of every other vCPU whose virtual interrupts changed (`me` loads its own before it
    /// enters the guest again).
    pub fn carry_out(&mut self, effects: BusEffects, me: usize) {
        if let Some(byte) = effects.console_out {
            console::guest_byte(self.id, byte);
        }
        self.kick(effects.kick, me);
        if effects.frames_sent {
            self.send_frames();
        }
    }

    /// Carries the frames the VM's network devices transmitted to their links' other ends:
    /// each is copied into the receiver's inbox, and the receiver's vCPU 0's CPU is kicked to
    /// take it in. Only this VM's lock is held (`net`'s inboxes have their own).
    pub fn send_frames(&mut self) {
        // The VMs already kicked, by index (fewer than 32: one per CPU).
        let mut kicked = 0u32;
        for (window, frame) in self.bus.take_sent() {
            let Some(link) = self.links.iter().find(|l| l.window == window) else {
                panic!(
                    "VM '{}': network window {window} has no link",
                    self.config.name
                );
            };
            // A full inbox drops the frame, as a switch does.
            let bit = 1 << link.peer;
            if net::post(link.peer, link.peer_window, frame) && kicked & bit == 0 {
                kicked |= bit;
                gic::kick(link.peer_mpidr);
            }
        }
    }

    /// Puts the frames waiting in this VM's inbox into its network devices' receive queues
    /// (a frame without a posted buffer is dropped, as a NIC drops it), on behalf of vCPU `me`.
    pub fn receive_frames(&mut self, me: usize) {
        for delivery in net::take(self.id) {
            let (_, effects) =
                self.bus
                    .deliver(delivery.window, &delivery.frame, &mut VmRam(&self.ram));
            self.carry_out(effects, me);
        }
    }

    /// Makes the physical CPUs of `targets` other than `me`'s exit their guests (or leave
    /// their `WFI`) so that they load their new virtual interrupts.
    pub fn kick(&self, targets: VcpuSet, me: usize) {
        // Most exits kick nobody: no set arithmetic or iterator for them.
        if targets.is_empty() {
            return;
        }
        for target in targets.without(me).iter() {
            if let Some(&mpidr) = self.cpu_mpidrs.get(target) {
                gic::kick(mpidr);
            }
        }
    }

    /// Moves bytes received on the console into the guest's UART while it has room (when this
    /// VM has the console's focus; otherwise the input is left for the VM that has), keeps
    /// the console's receive interrupt on only while there is room, and kicks the vCPU the
    /// UART's interrupt goes to.
    pub fn console_input(&mut self, me: usize) {
        if console::focus() != self.id {
            // Not this VM's input: the CPU hands it to the VM with the focus once it holds
            // no VM (`machine::hand_over_input`).
            console::defer_input();
            return;
        }
        let input = self.bus.console_input(console::receive);
        console::set_receive_interrupt(input.room);
        self.carry_out(input.effects, me);
    }

    /// Interrupt state vCPU `vcpu` must see on entry: its held timers sampled, the model's
    /// pending interrupts in the list registers of this CPU's interface `cpu`.
    pub fn before_entry(&mut self, vcpu: &Vcpu, cpu: &mut CpuInterface) {
        let intx_kick = if self.intx_held {
            self.settle_intx()
        } else {
            VcpuSet::EMPTY
        };
        let Some(gic) = self.bus.gic() else {
            return;
        };
        let kick = if cpu.timer_held() {
            cpu.resample_timers(gic, vcpu.index)
        } else {
            VcpuSet::EMPTY
        };
        let kick = kick.union(intx_kick).union(cpu.fill(gic, vcpu.index));
        self.kick(kick, vcpu.index);
    }

    /// Lets the model settle the INTx lines Moat holds for the guest (`IntxLines::settle`);
    /// out of the entry path's line, which tests only [`Vm::intx_held`].
    #[cold]
    #[inline(never)]
    fn settle_intx(&mut self) -> VcpuSet {
        let kick = match (self.pci.as_mut(), self.bus.gic()) {
            (Some(pci), Some(gic)) => pci.intx.settle(gic),
            _ => VcpuSet::EMPTY,
        };
        self.intx_held = self.pci.as_ref().is_some_and(|p| p.intx.holds_any());
        kick
    }

    /// Reads back what vCPU `vcpu` did with its virtual interrupts.
    pub fn after_exit(&mut self, vcpu: &Vcpu, cpu: &CpuInterface) {
        if let Some(gic) = self.bus.gic() {
            let kick = cpu.sync(gic, vcpu.index);
            self.kick(kick, vcpu.index);
        }
    }

    /// Wakes the physical CPUs of this VM waiting for their vCPUs to be started (PSCI
    /// `CPU_ON`, a restart): an event for those waiting in `WFE`, the kick SGI for those
    /// waiting in `WFI` (`machine::wait_for_start`). A CPU kicked while it runs its vCPU
    /// takes an exit that resumes at once.
    pub fn wake_cpus(&self) {
        cpu::send_event();
        if gic::driven() {
            for &mpidr in &self.cpu_mpidrs[..self.config.cpus as usize] {
                gic::kick(mpidr);
            }
        }
    }

    /// The EL2 controls that confine the guest, set before its first instruction.
    pub fn configure_el2(&mut self, vcpu: &mut Vcpu) {
        VTCR_EL2.set(self.stage2.vtcr_el2());
        VTTBR_EL2.set(self.stage2.vttbr_el2());
        // The guest sees this CPU's identity; its vCPU is affinity 0.0.0.0 (MPIDR_EL1.U = 0,
        // bit 31 RES1).
        let midr = MIDR_EL1.get();
        // SAFETY: sets the MIDR_EL1 value the guest reads; no memory is accessed.
        unsafe { core::arch::asm!("msr vpidr_el2, {}", in(reg) midr, options(nostack)) };
        // MPIDR_EL1 as the guest sees it: bit 31 RES1, the vCPU's affinity as the GIC model
        // numbers it (its redistributor's GICR_TYPER must match).
        VMPIDR_EL2.set((1 << 31) | moat_devices::gic::Affinity::of_vcpu(vcpu.index).mpidr());
        // CPTR_EL2 (E2H = 0): FP/SIMD not trapped here (TFP = 0: `cpacr` sets it while the
        // guest's FPEN traps EL1; Moat is soft-float); SVE and SME trapped (TZ, TSM = 1):
        // Moat neither switches their state nor shows them to the guest; the rest RES1. An
        // AArch64 guest's CPACR_EL1 is trapped too (TCPAC): see `cpacr`.
        let aarch32 = self.config.arch == GuestArch::Aarch32;
        let tcpac = if aarch32 { 0 } else { 1 << 31 };
        CPTR_EL2.set(0x33FF | tcpac);
        crate::cpacr::write_guest(vcpu, 0);
        vcpu.id_values = IdValues::new(crate::idregs::hardware_value, &self.id_policy);
        // MDCR_EL2: no debug or PMU traps; HPMN = all counters to the guest.
        let pmcr_n = pmu_counters();
        MDCR_EL2.set(pmcr_n);
        // CNTHCTL_EL2: EL1 may use the physical counter and timer; no virtual offset.
        CNTHCTL_EL2.set(0b11);
        CNTVOFF_EL2.set(0);
        // SAFETY: writes an EL1 system register of the guest before it first runs; Moat does
        // not use EL1 state.
        let sctlr = if aarch32 {
            SCTLR_AARCH32_RESET
        } else {
            SCTLR_EL1_RESET
        };
        // SAFETY: writes an EL1 system register of the guest before it first runs; Moat does
        // not use EL1 state.
        unsafe { core::arch::asm!("msr sctlr_el1, {}", in(reg) sctlr, options(nostack)) };
        if self.scxtnum {
            // SAFETY: resets the guest's software context numbers (`SCXTNUM_EL1`,
            // `SCXTNUM_EL0`) before the vCPU's first instruction, so that nothing of an earlier
            // run of this CPU reaches it; Moat does not use them. No memory is accessed.
            unsafe {
                core::arch::asm!(
                    "msr s3_0_c13_c0_7, xzr",
                    "msr s3_3_c13_c0_7, xzr",
                    options(nomem, nostack)
                )
            };
        }
        HCR_EL2.set(hcr_el2(aarch32, self.scxtnum));
        // SAFETY: a context synchronization event and a stage-2 TLB flush for this VMID
        // before its first entry; no memory is accessed.
        unsafe {
            core::arch::asm!(
                "isb",
                "tlbi vmalls12e1is",
                "dsb ish",
                "isb",
                options(nostack)
            )
        };
    }
}

/// `HCR_EL2` for a guest: stage 2 on (VM), set/way invalidation upgraded to clean+invalidate
/// (SWIO), physical interrupts and SErrors to EL2 (IMO, FMO, AMO), broadcast TLB and cache
/// maintenance inner shareable (FB, BSU = 0b01), WFI/WFE, ID-register reads and SMC trapped
/// (TWI, TWE, TID3, TSC), EL1 in AArch64 (RW) or AArch32, and the software context numbers
/// left to the guest (EnSCXT) where its ID registers show them.
fn hcr_el2(aarch32: bool, scxtnum: bool) -> u64 {
    const TID3: u64 = 1 << 18;
    const VM: u64 = 1 << 0;
    const SWIO: u64 = 1 << 1;
    const FMO: u64 = 1 << 3;
    const IMO: u64 = 1 << 4;
    const AMO: u64 = 1 << 5;
    const FB: u64 = 1 << 9;
    const BSU_INNER: u64 = 0b01 << 10;
    const TWI: u64 = 1 << 13;
    const TWE: u64 = 1 << 14;
    const TSC: u64 = 1 << 19;
    let rw = if aarch32 { 0 } else { 1 << 31 };
    // API, APK: pointer authentication instructions and keys are not trapped where
    // implemented (the keys are EL1 registers, which Moat does not switch).
    const APK: u64 = 1 << 40;
    const API: u64 = 1 << 41;
    let pauth = if cpu::has_pointer_auth() {
        API | APK
    } else {
        0
    };
    const ENSCXT: u64 = 1 << 53;
    let scxt = if scxtnum { ENSCXT } else { 0 };
    VM | SWIO | FMO | IMO | AMO | FB | BSU_INNER | TWI | TWE | TID3 | TSC | rw | pauth | scxt
}

/// The INTID of the guest's PL011 interrupt: SPI 1, as on QEMU virt, whatever the machine's
/// own console uses (the guest's device tree says so, `moat_config::guest_dtb`).
const GUEST_UART_INTID: u32 = 33;

/// A virtio-net device's MAC address: locally administered (`02`), "MOAT", and the VM's index
/// plus one, so that every VM's address differs.
fn net_mac(vm: usize) -> [u8; 6] {
    [0x02, b'M', b'O', b'A', b'T', (vm as u8).wrapping_add(1)]
}

/// The device models of `config`'s windows, in their order, at their reset state.
fn new_bus(config: &VmConfig, id: usize) -> Result<Bus, VmError> {
    let kinds = config
        .devices
        .iter()
        .enumerate()
        .map(|(i, w)| match w.kind {
            DeviceKind::Pl011 => ModelKind::Pl011,
            DeviceKind::GicV3Distributor => ModelKind::GicDistributor,
            DeviceKind::GicV3Redistributors => ModelKind::GicRedistributors,
            DeviceKind::GicV2Distributor => ModelKind::GicV2Distributor,
            DeviceKind::GicV2CpuInterface => ModelKind::GicV2CpuInterface,
            DeviceKind::VirtioNet => ModelKind::VirtioNet {
                intid: config
                    .virtio_net_intid(i)
                    .expect("a virtio-net window has an INTID"),
                mac: net_mac(id),
            },
        });
    let mut bus =
        Bus::new(kinds, config.cpus as usize, GUEST_UART_INTID).map_err(VmError::Devices)?;
    // A GICv2 guest's distributor has the priority bits of the GICV it gets (a GIC-400's 5).
    if let (Some(gic), Some(bits)) = (bus.gic(), gic::virtual_priority_bits()) {
        gic.set_priority_bits(bits);
    }
    Ok(bus)
}

/// Where a VM's GIC meets the machine's: a GICv3 VM needs a GICv3 machine (or one without a
/// GIC, where it runs without interrupts), a GICv2 VM a GICv2 with the virtualization
/// extension, whose virtual CPU interface it gets at its CPU interface window (returned).
fn guest_cpu_interface(
    config: &VmConfig,
    machine_gic: Option<Gic>,
) -> Result<Option<(Ipa, PhysRange)>, VmError> {
    let window = config.devices_of(DeviceKind::GicV2CpuInterface).next();
    let v3 = config.devices.iter().any(|d| d.kind.is_gic_v3());
    match (machine_gic, window) {
        (Some(Gic::V2(machine)), Some(window)) => {
            let frame = machine.vcpu_interface().ok_or(VmError::Unsupported(
                "a GICv2 VM on a GICv2 without the virtualization extension (no GICV frame)",
            ))?;
            Ok(Some((window.base, frame)))
        }
        (_, Some(_)) => Err(VmError::Unsupported(
            "a GICv2 VM (gicv2-dist, gicv2-cpu) on a machine whose GIC is not a GICv2",
        )),
        (Some(Gic::V2(_)), None) if v3 => Err(VmError::Unsupported(
            "a GICv3 VM (gicv3-dist, gicv3-redist) on a machine with a GICv2: give it gicv2-dist and gicv2-cpu windows",
        )),
        _ => Ok(None),
    }
}

/// IPA ranges from (base, size) pairs.
fn ranges(regions: impl Iterator<Item = (Ipa, u64)>) -> Vec<IpaRange> {
    regions
        .map(|(base, size)| IpaRange { base, size })
        .collect()
}

/// Whether the ID registers a guest of `policy` reads show `SCXTNUM_ELx`.
fn guest_shows_scxtnum(policy: &IdPolicy) -> bool {
    use crate::idregs::hardware_value;
    use moat_vcpu::idregs::{ID_AA64PFR0_EL1, ID_AA64PFR1_EL1, guest_value, shows_scxtnum};
    let read = |reg| guest_value(reg, hardware_value(reg), policy);
    shows_scxtnum(read(ID_AA64PFR0_EL1), read(ID_AA64PFR1_EL1))
}

/// `PMCR_EL0.N`: the number of event counters, all of which the guest may use.
fn pmu_counters() -> u64 {
    let pmcr: u64;
    // SAFETY: reads an ID-like field of the PMU control register; no side effects.
    unsafe { core::arch::asm!("mrs {}, pmcr_el0", out(reg) pmcr, options(nostack, readonly)) };
    (pmcr >> 11) & 0x1F
}
