//! The machine's GICv2 (GICv2 IHI 0048B; QEMU `virt` with `gic-version=2`, the GIC-400 of the
//! ZCU102) as Moat drives it at EL2: the distributor (`GICD_*`) and this CPU's interface
//! (`GICC_*`, memory-mapped), and the virtualization extension's virtual interface control
//! (`GICH_*`: `GICH_HCR`, `GICH_VMCR`, `GICH_APR`, the list registers `GICH_LR<n>`), whose
//! frame at its base is the accessing CPU's own. The guest's CPU interface is the extension's
//! `GICV_*` frame, mapped at stage 2 (`vm.rs`); Moat never touches it.
//!
//! The CPU interface runs with `GICC_CTLR.EOImode` = 1 (bit 9; `EOImodeNS` in the Non-secure
//! view of a GIC with the Security Extensions): a `GICC_EOIR` write only drops the running
//! priority, `GICC_DIR` deactivates, as on the GICv3 side. Moat leaves the interrupts' groups
//! as it finds them: Group 0 on a GIC without the Security Extensions (signalled as IRQ:
//! `GICC_CTLR.FIQEn` = 0), Group 1 as the firmware set it for a Non-secure EL2 on one with them.

use crate::platform::{GicV2, PhysRange};
use aarch64_cpu::registers::{MPIDR_EL1, Readable};
use core::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use moat_devices::gic::list_regs::gich::{from_gich_lr, gich_vtr, to_gich_lr};
use moat_devices::gic::list_regs::{IchVtr, VirtualInterface};
use moat_devices::gic::regs_v2::{gicc, gicd, gich};

/// The machine GICv2's frames Moat drives, as identity-mapped addresses.
#[derive(Clone, Copy, Debug)]
pub struct Frames {
    dist: usize,
    cpu: usize,
    hyp: usize,
}

/// `MPIDR_EL1`'s affinity fields, `Aff3` \[39:32\] and `Aff2:Aff1:Aff0` \[23:0\], as the device
/// tree's `/cpus` names the CPUs.
const MPIDR_AFFINITY: u64 = 0xFF_00FF_FFFF;

/// The distributor's address once CPU 0 took the GIC (0 before, or on a GICv3 machine).
static DIST: AtomicUsize = AtomicUsize::new(0);
/// Each physical CPU's MPIDR and its CPU interface's bit in `GICD_ITARGETSR<n>`/`GICD_SGIR`
/// (which IHI 0048B leaves to the implementation), recorded by the CPU itself.
static CPU_MPIDRS: [AtomicU64; crate::platform::MAX_CPUS] =
    [const { AtomicU64::new(u64::MAX) }; crate::platform::MAX_CPUS];
static CPU_TARGETS: [AtomicU8; crate::platform::MAX_CPUS] =
    [const { AtomicU8::new(0) }; crate::platform::MAX_CPUS];
/// The frames, for the secondary CPUs.
static CPU_FRAME: AtomicUsize = AtomicUsize::new(0);
static HYP_FRAME: AtomicUsize = AtomicUsize::new(0);

/// The ranges Moat maps for itself to drive `gic`: the distributor, the CPU interface's
/// contiguous 8 KiB, the virtual interface control.
pub fn ranges(gic: &GicV2) -> [PhysRange; 3] {
    [gic.dist, gic.cpu_interface(), gic.hyp.unwrap_or_default()]
}

impl Frames {
    /// The frames of `gic`, when it has the virtualization extension.
    pub fn of(gic: &GicV2) -> Option<Self> {
        Some(Self {
            dist: usize::try_from(gic.dist.base).ok()?,
            cpu: usize::try_from(gic.cpu_interface().base).ok()?,
            hyp: usize::try_from(gic.hyp?.base).ok()?,
        })
    }

    fn read(base: usize, offset: u64) -> u32 {
        // SAFETY: `base` is one of the machine GIC's frames from the device tree, identity-
        // mapped as device memory at boot (`ranges`), and `offset` one of its 32-bit
        // registers; a volatile read, no Rust object lives there.
        unsafe { core::ptr::read_volatile((base + offset as usize) as *const u32) }
    }

    fn write(base: usize, offset: u64, value: u32) {
        // SAFETY: as for `read`; Moat is the only software driving these registers.
        unsafe { core::ptr::write_volatile((base + offset as usize) as *mut u32, value) }
    }

    /// Sets one byte of a byte-per-interrupt distributor register (priority, targets) with a
    /// read-modify-write of its word (IHI 0048B allows byte accesses there, but one word
    /// access is what every GICv2 takes).
    fn set_dist_byte(self, register: u64, intid: u32, value: u8) {
        let offset = register + u64::from(intid & !3);
        let shift = 8 * (intid % 4);
        let word = Self::read(self.dist, offset) & !(0xFF << shift);
        Self::write(self.dist, offset, word | u32::from(value) << shift);
    }

    fn enable(self, intid: u32) {
        Self::write(
            self.dist,
            gicd::ISENABLER + 4 * u64::from(intid / 32),
            1 << (intid % 32),
        );
    }

    /// This CPU's interface bit, as `GICD_ITARGETSR0` (banked) reads.
    /// Enables SPI `intid` at `priority`, edge-triggered or level-sensitive
    /// (`GICD_ICFGR<n>.Int_config[1]`), targeting the calling CPU.
    fn enable_spi(self, intid: u32, edge: bool, priority: u8) {
        self.set_dist_byte(gicd::IPRIORITYR, intid, priority);
        self.set_dist_byte(gicd::ITARGETSR, intid, self.own_target());
        let offset = gicd::ICFGR + 4 * u64::from(intid / 16);
        let bit = 0b10 << (2 * (intid % 16));
        let cfg = Self::read(self.dist, offset);
        Self::write(self.dist, offset, if edge { cfg | bit } else { cfg & !bit });
        self.enable(intid);
    }

    fn own_target(self) -> u8 {
        Self::read(self.dist, gicd::ITARGETSR).to_le_bytes()[0]
    }

    /// The virtual interface's list registers and priority bits (`GICH_VTR`).
    pub fn vtr(self) -> IchVtr {
        gich_vtr(Self::read(self.hyp, gich::VTR))
    }

    /// The highest-priority pending interrupt, acknowledged (`GICC_IAR`): its INTID and the
    /// whole value, which its end gives back.
    pub fn acknowledge(self) -> Option<(u32, u32)> {
        let iar = Self::read(self.cpu, gicc::IAR);
        let intid = iar & gicc::IAR_INTERRUPT_ID_MASK;
        (intid < gicc::FIRST_SPECIAL).then_some((intid, iar))
    }

    /// Drops the running priority of the interrupt acknowledged as `iar` (`GICC_EOIR`).
    pub fn end(self, iar: u32) {
        Self::write(self.cpu, gicc::EOIR, iar);
    }

    /// Deactivates the interrupt acknowledged as `iar` (`GICC_DIR`; EOImode = 1).
    pub fn deactivate(self, iar: u32) {
        Self::write(self.cpu, gicc::DIR, iar);
    }

    /// `GICH_LR<n>` in the model's layout.
    pub fn read_lr(self, n: usize) -> u64 {
        from_gich_lr(Self::read(self.hyp, gich::LR + 4 * n as u64))
    }

    /// Writes the model's list-register value `value` to `GICH_LR<n>`.
    pub fn write_lr(self, n: usize, value: u64) {
        Self::write(self.hyp, gich::LR + 4 * n as u64, to_gich_lr(value));
    }

    /// Writes `GICH_HCR` (`En` bit 0, `UIE` bit 1: where `ICH_HCR_EL2` has them).
    pub fn write_hcr(self, value: u64) {
        // Truncation intended: the fill sets only En and UIE.
        #[allow(clippy::cast_possible_truncation)]
        Self::write(self.hyp, gich::HCR, value as u32);
    }

    /// The guest's side of the virtual CPU interface: `GICH_VMCR` and the running priority
    /// from `GICH_APR` (32 preemption levels at most, IHI 0048B 5.3.5).
    pub fn virtual_interface(self, vtr: IchVtr) -> VirtualInterface {
        let active = Self::read(self.hyp, gich::APR);
        let running = VirtualInterface::running_priority(&[active], vtr.preemption_bits);
        VirtualInterface::from_gich_vmcr(Self::read(self.hyp, gich::VMCR), running)
    }

    /// Returns the virtual CPU interface's guest state to its reset values: `GICH_VMCR` (the
    /// guest's `GICV_CTLR`, priority mask, binary points) and `GICH_APR` zero (IHI 0048B 5.3).
    pub fn reset_vcpu_state(self) {
        Self::write(self.hyp, gich::VMCR, 0);
        Self::write(self.hyp, gich::APR, 0);
    }
}

/// Takes the GICv2 `gic`, sets up its distributor from CPU 0 with the console's SPI `console`
/// targeting this CPU, and this CPU's interface (see [`init_cpu`]); `None` when it has no
/// virtualization extension.
pub fn init(gic: &GicV2, console: Option<u32>, private: &[u32], priority: u8) -> Option<Frames> {
    let frames = Frames::of(gic)?;
    Frames::write(frames.dist, gicd::CTLR, 0);
    if let Some(intid) = console {
        frames.enable_spi(intid, false, priority);
    }
    Frames::write(
        frames.dist,
        gicd::CTLR,
        gicd::CTLR_ENABLE_GRP0 | gicd::CTLR_ENABLE_GRP1,
    );
    CPU_FRAME.store(frames.cpu, Ordering::Relaxed);
    HYP_FRAME.store(frames.hyp, Ordering::Relaxed);
    DIST.store(frames.dist, Ordering::Release);
    init_cpu(0, private, priority)
}

/// Enables the SPI `intid` (edge or level) at `priority`, targeting the calling CPU (the boot
/// CPU for Moat's own SPIs); false when Moat drives no GICv2.
pub fn enable_spi(intid: u32, edge: bool, priority: u8) -> bool {
    let dist = DIST.load(Ordering::Acquire);
    if dist == 0 {
        return false;
    }
    let frames = Frames {
        dist,
        cpu: CPU_FRAME.load(Ordering::Relaxed),
        hyp: HYP_FRAME.load(Ordering::Relaxed),
    };
    frames.enable_spi(intid, edge, priority);
    true
}

/// Sets up this CPU's banked interrupts `private` (priority `priority`, enabled), its CPU
/// interface (every priority unmasked, both groups, split EOI) and records its interface's
/// target bit for [`kick`]; `None` before [`init`].
pub fn init_cpu(cpu: usize, private: &[u32], priority: u8) -> Option<Frames> {
    let frames = Frames {
        dist: nonzero(DIST.load(Ordering::Acquire))?,
        cpu: CPU_FRAME.load(Ordering::Relaxed),
        hyp: HYP_FRAME.load(Ordering::Relaxed),
    };
    for &intid in private {
        frames.set_dist_byte(gicd::IPRIORITYR, intid, priority);
        frames.enable(intid);
    }
    Frames::write(frames.cpu, gicc::PMR, 0xFF);
    Frames::write(
        frames.cpu,
        gicc::CTLR,
        gicc::CTLR_ENABLE_GRPS | gicc::CTLR_EOIMODE,
    );
    Frames::write(frames.hyp, gich::HCR, 0);
    let mpidr = MPIDR_EL1.get() & MPIDR_AFFINITY;
    let slot = cpu.min(crate::platform::MAX_CPUS - 1);
    CPU_TARGETS[slot].store(frames.own_target(), Ordering::Relaxed);
    CPU_MPIDRS[slot].store(mpidr, Ordering::Release);
    Some(frames)
}

fn nonzero(value: usize) -> Option<usize> {
    (value != 0).then_some(value)
}

/// Sends SGI `sgi` to the physical CPU whose MPIDR is `mpidr` (`GICD_SGIR`, `TargetListFilter`
/// 0, its interface's bit in `CPUTargetList`); returns false when the machine's GIC is not a
/// GICv2 Moat drives. A CPU that has not set up its interface yet is not sent anything (it
/// takes no interrupt before it runs a vCPU).
pub fn kick(mpidr: u64, sgi: u32) -> bool {
    let Some(dist) = nonzero(DIST.load(Ordering::Acquire)) else {
        return false;
    };
    let target = CPU_MPIDRS
        .iter()
        .position(|m| m.load(Ordering::Acquire) == mpidr)
        .map_or(0, |slot| CPU_TARGETS[slot].load(Ordering::Relaxed));
    if target != 0 {
        Frames::write(
            dist,
            gicd::SGIR,
            u32::from(target) << gicd::SGIR_TARGET_LIST_SHIFT | sgi,
        );
    }
    true
}
