//! Interrupts: the machine's GIC as Moat drives it at EL2 — a GICv3 (`v3`) or a GICv2 with its
//! virtualization extension (`v2`), chosen at boot from the device tree — and the glue between
//! the guest's virtual GIC (the model in `moat_devices::gic`) and the hardware's virtual CPU
//! interface.
//!
//! Physical interrupts are routed to EL2 (`HCR_EL2.IMO`). Moat takes the ones it owns: the
//! guest's timer PPIs (the EL1 virtual and physical timers run in hardware; their interrupts
//! become the model's PPIs), the maintenance interrupt, and its console's receive interrupt.
//! Around every guest entry the model's pending interrupts are loaded into the list registers
//! (`ICH_LR<n>_EL2` on a GICv3, `GICH_LR<n>` on a GICv2, translated by the model's
//! `list_regs::gich`), and read back after the exit (GICv3 IHI 0069, "Virtual interrupt
//! handling"; GICv2 IHI 0048B, 5 "GIC Support for Virtualization").
//!
//! A level-triggered timer interrupt stays asserted until the guest reprograms the timer.
//! Moat's CPU interface runs with split priority drop and deactivation (`EOImode` = 1 on both
//! GICs): a timer PPI Moat acknowledges stays active, so it cannot fire again, and its virtual
//! PPI goes into a list register with `HW` = 1 and the physical INTID the same, so that the
//! guest's deactivation of the virtual interrupt deactivates the physical one in hardware — no
//! maintenance interrupt, no masking — and a timer still asserted fires again at once. Moat
//! deactivates it itself only when no list register will (`VirtGic::settle_hw_ppi`). Every
//! other interrupt Moat takes is deactivated as soon as it is served.
//!
//! The run loop sees one [`CpuInterface`] whatever the GIC: each of its operations is one
//! `match` on the version found at boot, no indirect call.

mod lines;
mod v2;
mod v3;

pub use lines::{deactivate_spi, disable_spi, spi_pending, take_spi_here};

use crate::platform::{Gic, PhysRange};
use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicUsize, Ordering};
use moat_devices::gic::list_regs::IchVtr;
use moat_devices::gic::{HwIrq, VcpuSet, VirtGic};

/// The EL1 virtual timer's interrupt (PPI 11, INTID 27).
pub const VIRTUAL_TIMER_INTID: u32 = 27;
/// The EL1 physical timer's interrupt (PPI 14, INTID 30).
pub const PHYSICAL_TIMER_INTID: u32 = 30;
/// The SGI one physical CPU sends another to make its vCPU exit and see new virtual
/// interrupts (Moat owns the physical GIC, so no other software uses SGI 8).
pub const KICK_SGI: u32 = 8;
/// The INTID of Moat's console's receive interrupt, from the device tree's UART node
/// (`platform.console.intid`: SPI 1, INTID 33, on QEMU virt; SPI 21, INTID 53, for the
/// ZCU102's UART0); [`NO_INTID`] until [`init`] sets it, or when the tree gives none.
static CONSOLE_INTID: AtomicU32 = AtomicU32::new(NO_INTID);
/// The INTID of the virtual CPU interface's maintenance interrupt, from the device tree's GIC
/// node (`interrupts`: PPI 9, INTID 25, on QEMU virt and the ZynqMP); [`NO_INTID`]
/// until [`init`] sets it.
static MAINTENANCE_INTID: AtomicU32 = AtomicU32::new(NO_INTID);
/// The priority bits of the machine's virtual CPU interface (`ICH_VTR_EL2.PRIbits` or
/// `GICH_VTR.PRIbits`, plus one), from the boot CPU's at [`init`]; 0 before.
static VIRTUAL_PRIORITY_BITS: AtomicU8 = AtomicU8::new(0);
/// Whether [`init`] took the machine's GIC.
static DRIVEN: AtomicBool = AtomicBool::new(false);
/// The machine's distributor, identity-mapped (0 before [`init`]): its one-bit-per-interrupt
/// registers, which GICv3 and GICv2 place alike, reach an SPI from any CPU (`lines`).
static DISTRIBUTOR: AtomicUsize = AtomicUsize::new(0);
/// No interrupt: an INTID no GIC delivers (1023 is the spurious INTID).
const NO_INTID: u32 = 1023;
/// The timers whose interrupts Moat forwards, with their control registers' names.
const TIMERS: [u32; 2] = [VIRTUAL_TIMER_INTID, PHYSICAL_TIMER_INTID];
/// The private interrupts Moat enables on every CPU: the maintenance interrupt
/// (`maintenance`), the timers' and the kick SGI.
const fn private(maintenance: u32) -> [u32; 4] {
    [
        maintenance,
        VIRTUAL_TIMER_INTID,
        PHYSICAL_TIMER_INTID,
        KICK_SGI,
    ]
}
/// The priority Moat gives the interrupts it takes (all equal: Moat never nests them).
const PRIORITY: u8 = 0x80;

/// The INTID of Moat's console's receive interrupt (never equal to an acknowledged INTID when
/// the machine's tree gives none).
pub fn console_intid() -> u32 {
    CONSOLE_INTID.load(Ordering::Relaxed)
}

/// The INTID of the maintenance interrupt (never equal to an acknowledged INTID before
/// [`init`]).
pub fn maintenance_intid() -> u32 {
    MAINTENANCE_INTID.load(Ordering::Relaxed)
}

/// The priority bits of the machine's virtual CPU interface, which a guest's GICv2
/// distributor implements too (`VirtGic::set_priority_bits`); `None` before [`init`] took the
/// GIC.
pub fn virtual_priority_bits() -> Option<u8> {
    Some(VIRTUAL_PRIORITY_BITS.load(Ordering::Relaxed)).filter(|&bits| bits != 0)
}

/// The device ranges Moat maps for itself to drive `gic`.
pub fn ranges(gic: Option<Gic>) -> [PhysRange; 3] {
    match gic {
        Some(Gic::V3(v3)) => [v3.dist, v3.redist, PhysRange::default()],
        Some(Gic::V2(v2)) => v2::ranges(&v2),
        None => [PhysRange::default(); 3],
    }
}

/// Takes the machine's GIC `gic` (of a machine of `cpus` CPUs), sets it up from CPU 0 and
/// enables the interrupts Moat handles there, its console's receive interrupt `console` (an
/// SPI) among them, and the maintenance interrupt its node gives; `Err` with why when it
/// cannot be driven (a GIC node without a maintenance PPI, a GICv2 without the virtualization
/// extension).
///
/// # Safety
///
/// `gic` must be the machine's GIC from the device tree, its frames identity-mapped as device
/// memory ([`ranges`]), driven by nothing else.
pub unsafe fn init(
    gic: Gic,
    cpus: usize,
    console: Option<u32>,
) -> Result<CpuInterface, &'static str> {
    let console = console.filter(|&intid| intid >= 32);
    let maintenance = gic
        .maintenance()
        .ok_or("the GIC node's `interrupts` gives no maintenance PPI")?;
    MAINTENANCE_INTID.store(maintenance, Ordering::Relaxed);
    let private = private(maintenance);
    let hw = match gic {
        Gic::V3(v3) => {
            // SAFETY: the caller's guarantee, for the GICv3's two regions.
            let taken = unsafe { v3::init(v3.dist, v3.redist, cpus, console, &private, PRIORITY) };
            taken
                .then_some(Hw::V3)
                .ok_or("the GICv3 could not be set up")?
        }
        Gic::V2(v2) => Hw::V2(
            v2::init(&v2, console, &private, PRIORITY)
                .ok_or("the GICv2 has no virtualization extension (GICH, GICV)")?,
        ),
    };
    if let Some(intid) = console {
        CONSOLE_INTID.store(intid, Ordering::Relaxed);
    }
    let dist = match gic {
        Gic::V3(v3) => v3.dist.base,
        Gic::V2(v2) => v2.dist.base,
    };
    DISTRIBUTOR.store(usize::try_from(dist).unwrap_or(0), Ordering::Release);
    DRIVEN.store(true, Ordering::Relaxed);
    let cpu = CpuInterface::new(hw);
    VIRTUAL_PRIORITY_BITS.store(cpu.vtr.priority_bits, Ordering::Relaxed);
    Ok(cpu)
}

/// Enables the SPI `intid` for Moat (edge-triggered when `edge`, else level), at Moat's
/// priority, targeting the boot CPU; false when Moat drives no GIC or the GIC refused it.
pub fn enable_spi(intid: u32, edge: bool) -> bool {
    if !driven() || intid < 32 {
        return false;
    }
    v2::enable_spi(intid, edge, PRIORITY) || v3::enable_spi(intid, edge, PRIORITY)
}

/// Brings up physical CPU `cpu`'s part of the GIC (run on that CPU) and enables the private
/// interrupts Moat handles there; `None` when the machine has no GIC Moat drives, or this
/// CPU's part cannot be set up.
pub fn init_cpu(cpu: usize) -> Option<CpuInterface> {
    let private = private(maintenance_intid());
    if let Some(frames) = v2::init_cpu(cpu, &private, PRIORITY) {
        return Some(CpuInterface::new(Hw::V2(frames)));
    }
    v3::init_cpu(cpu, &private, PRIORITY).then(|| CpuInterface::new(Hw::V3))
}

/// Which GIC a CPU drives, and a GICv2's frames.
#[derive(Clone, Copy, Debug)]
enum Hw {
    V3,
    V2(v2::Frames),
}

/// One physical CPU's side of the GIC: its CPU interface's registers, the list registers of
/// its virtual CPU interface, and which of its timer PPIs Moat holds active for the guest.
/// Owned by the CPU's run loop; nothing here is shared.
pub struct CpuInterface {
    hw: Hw,
    vtr: IchVtr,
    /// The timer PPIs Moat acknowledged and watches until the guest, or Moat, deactivates them.
    timer_held: [bool; TIMERS.len()],
    /// A GICv2's last `GICC_IAR` value: an SGI's end and deactivation name its source `CPUID`.
    acknowledged: Cell<u32>,
}

impl CpuInterface {
    fn new(hw: Hw) -> Self {
        let vtr = match hw {
            Hw::V3 => v3::vtr(),
            Hw::V2(frames) => frames.vtr(),
        };
        Self {
            hw,
            vtr,
            timer_held: [false; TIMERS.len()],
            acknowledged: Cell::new(0),
        }
    }

    /// The highest-priority pending physical interrupt, acknowledged; `None` when none is.
    pub fn acknowledge(&self) -> Option<u32> {
        match self.hw {
            Hw::V3 => v3::acknowledge(),
            Hw::V2(frames) => {
                let (intid, iar) = frames.acknowledge()?;
                self.acknowledged.set(iar);
                Some(intid)
            }
        }
    }

    /// Ends a physical interrupt Moat served: drops the running priority and deactivates it,
    /// except a timer PPI handed to the guest (`timer_fired`), which stays active until the
    /// guest deactivates its virtual PPI.
    pub fn end(&self, intid: u32) {
        let handed_over = TIMERS
            .iter()
            .position(|&t| t == intid)
            .is_some_and(|slot| self.timer_held[slot]);
        self.end_leaving_active(intid);
        if !handed_over {
            self.deactivate(intid);
        }
    }

    /// Ends a physical interrupt Moat handed to a guest with `HW` = 1 (a VM's INTx line):
    /// drops the running priority only (`EOImode` = 1), leaving it active until the guest's
    /// deactivation of the virtual interrupt deactivates it, or Moat does (`deactivate_spi`).
    #[inline]
    pub fn end_leaving_active(&self, intid: u32) {
        match self.hw {
            Hw::V3 => v3::end(intid),
            Hw::V2(frames) => frames.end(self.iar_of(intid)),
        }
    }

    /// The `GICC_IAR` value that acknowledged `intid`: the last one when it names `intid`
    /// (an SGI's carries its source), else `intid` (a PPI's or SPI's `CPUID` is 0).
    fn iar_of(&self, intid: u32) -> u32 {
        let last = self.acknowledged.get();
        if last & 0x3FF == intid { last } else { intid }
    }

    /// Deactivates the active physical interrupt `intid` of this CPU.
    fn deactivate(&self, intid: u32) {
        match self.hw {
            Hw::V3 => v3::deactivate(intid),
            Hw::V2(frames) => frames.deactivate(self.iar_of(intid)),
        }
    }

    /// A timer PPI fired (acknowledged, and left active by [`CpuInterface::end`]): the
    /// guest's model gets the virtual PPI of vCPU `vcpu`, backed by the physical one. Returns
    /// the vCPUs the model asks to kick.
    pub fn timer_fired(&mut self, intid: u32, gic: &mut VirtGic, vcpu: usize) -> VcpuSet {
        let Some(slot) = TIMERS.iter().position(|&t| t == intid) else {
            return VcpuSet::EMPTY;
        };
        self.timer_held[slot] = true;
        gic.raise_hw_ppi(vcpu, intid)
    }

    /// Whether Moat watches a timer PPI it acknowledged (see [`CpuInterface::resample_timers`]).
    pub fn timer_held(&self) -> bool {
        self.timer_held.iter().any(|&held| held)
    }

    /// Samples the guest's timers (`CNTV_CTL_EL0`, `CNTP_CTL_EL0`) whose physical PPI Moat
    /// holds, and lets the model settle each (`VirtGic::settle_hw_ppi`): one still in the
    /// guest's hands stays held; one whose virtual PPI is gone, or pending while its timer's
    /// condition is false (the virtual PPI is then cleared), is released, and deactivated here
    /// when no guest deactivation reached it. Returns the vCPUs the model asks to kick.
    pub fn resample_timers(&mut self, gic: &mut VirtGic, vcpu: usize) -> VcpuSet {
        let mut kick = VcpuSet::EMPTY;
        for (slot, &intid) in TIMERS.iter().enumerate() {
            if !self.timer_held[slot] {
                continue;
            }
            let (settled, k) = gic.settle_hw_ppi(vcpu, intid, timer_asserted(intid));
            kick |= k;
            if let HwIrq::Released { deactivate: owed } = settled {
                self.timer_held[slot] = false;
                if owed {
                    self.deactivate(intid);
                }
            }
        }
        kick
    }

    /// The vCPU this CPU ran is gone for good (its VM halted, or restarts from its images):
    /// nothing of its interrupt state may reach the next run here. Its EL1 timers are
    /// switched off (`CNTV_CTL_EL0`, `CNTP_CTL_EL0` = 0), a timer PPI Moat left active for
    /// the guest to deactivate (`timer_fired`) is deactivated here, and the virtual CPU
    /// interface is returned to its reset state: every list register invalid, the guest's
    /// CPU interface state and active priorities zero. The next VM's model starts believing
    /// no list register is loaded, which is now true.
    pub fn release(&mut self) {
        // SAFETY: switches off the guest's EL1 timers of this CPU, whose vCPU will never run
        // again; system register writes, no memory accessed.
        unsafe {
            core::arch::asm!(
                "msr cntv_ctl_el0, xzr",
                "msr cntp_ctl_el0, xzr",
                "isb",
                options(nomem, nostack)
            )
        };
        for n in 0..self.vtr.list_regs {
            self.write_lr(n, 0);
        }
        for (slot, &intid) in TIMERS.iter().enumerate() {
            if self.timer_held[slot] {
                self.timer_held[slot] = false;
                self.deactivate(intid);
            }
        }
        match self.hw {
            Hw::V3 => v3::reset_vcpu_state(),
            Hw::V2(frames) => frames.reset_vcpu_state(),
        }
    }

    /// No vCPU runs on this CPU any more (for now or for good): its virtual CPU interface is
    /// switched off (`ICH_HCR_EL2`/`GICH_HCR` = 0: `En` = 0 and no maintenance condition
    /// enabled), so the maintenance interrupt cannot stay asserted at a CPU that waits (an
    /// underflow request, `UIE`, with its list registers drained would wake its `WFI` at once,
    /// forever). The vCPU that starts here next has its model told
    /// (`interface_switched_off`), so its first fill writes `En` again.
    pub fn switch_off_virtual(&mut self) {
        match self.hw {
            Hw::V3 => v3::write_hcr(0),
            Hw::V2(frames) => frames.write_hcr(0),
        }
    }

    /// Whether the guest's `WFI` on vCPU `vcpu` ends: the model has an interrupt for it that
    /// this CPU's virtual CPU interface, in the state the guest left it (priority mask, group
    /// enables, running priority), signals once loaded (`VirtGic::wakes_from_wfi`).
    pub fn wfi_ends(&self, gic: &VirtGic, vcpu: usize) -> bool {
        let interface = match self.hw {
            Hw::V3 => v3::virtual_interface(self.vtr),
            Hw::V2(frames) => frames.virtual_interface(self.vtr),
        };
        gic.wakes_from_wfi(vcpu, &interface, self.vtr)
    }

    fn write_lr(&self, n: usize, value: u64) {
        match self.hw {
            Hw::V3 => v3::write_lr(n, value),
            Hw::V2(frames) => frames.write_lr(n, value),
        }
    }

    /// Reads back the live list registers after vCPU `vcpu` ran (none when the model loaded
    /// none), one register at a time into the model; returns the other vCPUs the model asks to
    /// kick. One instantiation of the model's sync whatever the GIC: the version is matched
    /// only for a list register actually read, so an exit with none live costs what it did
    /// before Moat knew two GICs.
    pub fn sync(&self, gic: &mut VirtGic, vcpu: usize) -> VcpuSet {
        let implemented = self.vtr.list_regs;
        gic.sync_from_list_registers_with(vcpu, |n| (n < implemented).then(|| self.read_lr(n)))
    }

    fn read_lr(&self, n: usize) -> u64 {
        match self.hw {
            Hw::V3 => v3::read_lr(n),
            Hw::V2(frames) => frames.read_lr(n),
        }
    }

    /// Loads vCPU `vcpu`'s deliverable interrupts into the list registers before its entry,
    /// when they changed (nothing is written, not even `ICH_HCR_EL2`/`GICH_HCR`, when the
    /// model says they did not); returns the vCPUs the model asks to kick (an SPI re-routed
    /// while loaded). As for [`CpuInterface::sync`], the version is matched only for a write.
    pub fn fill(&self, gic: &mut VirtGic, vcpu: usize) -> VcpuSet {
        let Some((hcr, kick)) =
            gic.fill_list_registers_with(vcpu, self.vtr, |n, value| self.write_lr(n, value))
        else {
            return VcpuSet::EMPTY;
        };
        match self.hw {
            Hw::V3 => v3::write_hcr(hcr),
            Hw::V2(frames) => frames.write_hcr(hcr),
        }
        kick
    }
}

/// Whether Moat drives the machine's GIC (its CPUs then have interfaces to kick).
pub fn driven() -> bool {
    DRIVEN.load(Ordering::Relaxed)
}

/// Sends the kick SGI to the physical CPU whose MPIDR is `mpidr`, through whichever GIC the
/// machine has.
pub fn kick(mpidr: u64) {
    if !v2::kick(mpidr, KICK_SGI) {
        v3::kick(mpidr, KICK_SGI);
    }
}

/// The driver's name for INTID `raw` (SGIs 0–15, PPIs 16–31, SPIs from 32).
fn int_id(raw: u32) -> arm_gic::IntId {
    use arm_gic::IntId;
    match raw {
        0..16 => IntId::sgi(raw),
        16..32 => IntId::ppi(raw - 16),
        _ => IntId::spi(raw - 32),
    }
}

/// Whether the guest's timer of `intid` asserts its interrupt: `ENABLE` = 1, `ISTATUS` = 1,
/// `IMASK` = 0 in `CNTV_CTL_EL0`/`CNTP_CTL_EL0` (the EL1 timers, read from EL2 with E2H = 0).
fn timer_asserted(intid: u32) -> bool {
    const ENABLE: u64 = 1 << 0;
    const IMASK: u64 = 1 << 1;
    const ISTATUS: u64 = 1 << 2;
    let ctl: u64;
    if intid == VIRTUAL_TIMER_INTID {
        // SAFETY: reads the guest's virtual timer control; no side effects.
        unsafe { core::arch::asm!("mrs {}, cntv_ctl_el0", out(reg) ctl, options(nomem, nostack)) };
    } else {
        // SAFETY: reads the guest's physical timer control; no side effects.
        unsafe { core::arch::asm!("mrs {}, cntp_ctl_el0", out(reg) ctl, options(nomem, nostack)) };
    }
    ctl & (ENABLE | IMASK | ISTATUS) == ENABLE | ISTATUS
}
