//! Interrupts: the machine's GICv3 as Moat drives it at EL2, and the glue between the guest's
//! virtual GIC (the model in `moat_devices::gic`) and the hardware's virtual CPU interface.
//!
//! Physical interrupts are routed to EL2 (`HCR_EL2.IMO`). Moat takes the ones it owns: the
//! guest's timer PPIs (the EL1 virtual and physical timers run in hardware; their interrupts
//! become the model's PPIs), the maintenance interrupt, and its console's receive interrupt.
//! Around every guest entry the model's pending interrupts are loaded into the `ICH_LR<n>_EL2`
//! list registers, and read back after the exit (GICv3 IHI 0069, "Virtual interrupt handling").
//!
//! A level-triggered timer interrupt stays asserted until the guest reprograms the timer.
//! Moat's CPU interface runs with `ICC_CTLR_EL1.EOImode` = 1 (IHI 0069: a write to
//! `ICC_EOIR1_EL1` only drops the running priority; `ICC_DIR_EL1` deactivates): a timer PPI
//! Moat acknowledges stays active, so it cannot fire again, and its virtual PPI goes into a
//! list register with `HW` = 1 and `pINTID` = the same INTID (`ICH_LR<n>_EL2`), so that the
//! guest's deactivation of the virtual interrupt deactivates the physical one in hardware — no
//! maintenance interrupt, no masking — and a timer still asserted fires again at once. Moat
//! deactivates it itself only when no list register will (`VirtGic::settle_hw_ppi`). Every
//! other interrupt Moat takes is deactivated as soon as it is served.

use crate::lock::Lock;
use crate::platform::PhysRange;
use aarch64_cpu::registers::{ICH_HCR_EL2, ICH_VTR_EL2, Readable, Writeable};
use arm_gic::gicv3::{GicCpuInterface, GicV3};
use arm_gic::{IntId, InterruptGroup, Trigger};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};
use moat_devices::gic::list_regs::IchVtr;
use moat_devices::gic::{HwPpi, VcpuSet, VirtGic};
use safe_mmio::UniqueMmioPointer;

/// The GIC maintenance interrupt (PPI 9, INTID 25, as on QEMU virt and SBSA systems).
pub const MAINTENANCE_INTID: u32 = 25;
/// The EL1 virtual timer's interrupt (PPI 11, INTID 27).
pub const VIRTUAL_TIMER_INTID: u32 = 27;
/// The EL1 physical timer's interrupt (PPI 14, INTID 30).
pub const PHYSICAL_TIMER_INTID: u32 = 30;
/// The SGI one physical CPU sends another to make its vCPU exit and see new virtual
/// interrupts (Moat owns the physical GIC, so no other software uses SGI 8).
pub const KICK_SGI: u32 = 8;
/// The INTID of Moat's console's receive interrupt, from the device tree's UART node
/// (`platform.console.intid`: SPI 1, INTID 33, on QEMU virt; SPI 21, INTID 53, for the
/// ZCU102's UART0); [`NO_CONSOLE_INTID`] until [`init`] sets it, or when the tree gives none.
static CONSOLE_INTID: AtomicU32 = AtomicU32::new(NO_CONSOLE_INTID);
/// No console interrupt: an INTID no GIC delivers (1023 is the spurious INTID).
const NO_CONSOLE_INTID: u32 = 1023;

/// The INTID of Moat's console's receive interrupt (never equal to an acknowledged INTID when
/// the machine's tree gives none).
pub fn console_intid() -> u32 {
    CONSOLE_INTID.load(Ordering::Relaxed)
}
/// The timers whose interrupts Moat forwards, with their control registers' names.
const TIMERS: [u32; 2] = [VIRTUAL_TIMER_INTID, PHYSICAL_TIMER_INTID];
/// The priority Moat gives the interrupts it takes (all equal: Moat never nests them).
const PRIORITY: u8 = 0x80;

/// The machine's GIC distributor and redistributors, shared by every physical CPU; taken only
/// to set one up (each CPU touches its own redistributor, but the driver is one object).
static MACHINE_GIC: Lock<Option<GicV3<'static>>> = Lock::new(None);

/// Takes the GIC at `dist`/`redist` of a machine of `cpus` CPUs, sets it up from CPU 0 and
/// enables the interrupts Moat handles there, its console's receive interrupt `console` (an
/// SPI) among them; `None` when it cannot be driven.
///
/// # Safety
///
/// `dist` and `redist` must be the machine's GICv3 distributor and redistributor regions from
/// the device tree, identity-mapped as device memory, driven by nothing else.
pub unsafe fn init(
    dist: PhysRange,
    redist: PhysRange,
    cpus: usize,
    console: Option<u32>,
) -> Option<CpuInterface> {
    let dist_ptr = NonNull::new(dist.base as *mut arm_gic::gicv3::registers::Gicd)?;
    let redist_ptr = NonNull::new(redist.base as *mut arm_gic::gicv3::registers::GicrSgi)?;
    // SAFETY: the caller guarantees both are the GIC's registers, exclusively Moat's.
    let mut gic =
        unsafe { GicV3::new(UniqueMmioPointer::new(dist_ptr), redist_ptr, cpus.max(1)) }.ok()?;
    GicCpuInterface::enable_system_register_el2(true);
    gic.setup(0);
    split_eoi();
    enable_private(&mut gic, 0)?;
    if let Some(intid) = console.filter(|&intid| intid >= 32) {
        let uart = int_id(intid);
        gic.set_interrupt_priority(uart, None, PRIORITY).ok()?;
        gic.set_trigger(uart, None, Trigger::Level).ok()?;
        gic.enable_interrupt(uart, None, true).ok()?;
        CONSOLE_INTID.store(intid, Ordering::Relaxed);
    }
    GicCpuInterface::set_priority_mask(0xFF);
    GicCpuInterface::enable_group1(true);
    *MACHINE_GIC.lock() = Some(gic);
    Some(CpuInterface::new())
}

/// Brings up physical CPU `cpu`'s redistributor and CPU interface (run on that CPU) and
/// enables the private interrupts Moat handles there; `None` when the machine has no GIC Moat
/// drives, or this CPU's part cannot be set up.
pub fn init_cpu(cpu: usize) -> Option<CpuInterface> {
    let mut guard = MACHINE_GIC.lock();
    let gic = guard.as_mut()?;
    GicCpuInterface::enable_system_register_el2(true);
    gic.init_cpu(cpu);
    split_eoi();
    enable_private(gic, cpu)?;
    GicCpuInterface::set_priority_mask(0xFF);
    GicCpuInterface::enable_group1(true);
    Some(CpuInterface::new())
}

/// One physical CPU's side of the GIC: its CPU interface's registers, the list registers of
/// its virtual CPU interface, and which of its timer PPIs Moat holds active for the guest.
/// Owned by the CPU's run loop; nothing here is shared.
pub struct CpuInterface {
    vtr: IchVtr,
    /// The timer PPIs Moat acknowledged and watches until the guest, or Moat, deactivates them.
    timer_held: [bool; TIMERS.len()],
}

impl CpuInterface {
    fn new() -> Self {
        Self {
            vtr: IchVtr::decode(ICH_VTR_EL2.get()),
            timer_held: [false; TIMERS.len()],
        }
    }

    /// The highest-priority pending physical interrupt, acknowledged; `None` when none is.
    pub fn acknowledge(&self) -> Option<u32> {
        GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1).map(u32::from)
    }

    /// Ends a physical interrupt Moat served: drops the running priority and deactivates it,
    /// except a timer PPI handed to the guest (`timer_fired`), which stays active until the
    /// guest deactivates its virtual PPI.
    pub fn end(&self, intid: u32) {
        GicCpuInterface::end_interrupt(int_id(intid), InterruptGroup::Group1);
        let handed_over = TIMERS
            .iter()
            .position(|&t| t == intid)
            .is_some_and(|slot| self.timer_held[slot]);
        if !handed_over {
            deactivate(intid);
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
            if let HwPpi::Released { deactivate: owed } = settled {
                self.timer_held[slot] = false;
                if owed {
                    deactivate(intid);
                }
            }
        }
        kick
    }

    /// The vCPU this CPU ran is gone for good (its VM halted, or restarts from its images):
    /// nothing of its interrupt state may reach the next run here. Its EL1 timers are
    /// switched off (`CNTV_CTL_EL0`, `CNTP_CTL_EL0` = 0), a timer PPI Moat left active for
    /// the guest to deactivate (`timer_fired`) is deactivated here, and the virtual CPU interface is returned to its reset state: every list
    /// register invalid, `ICH_VMCR_EL2` (the guest's priority mask, binary points and group
    /// enables) and the active-priority registers `ICH_AP0R<n>_EL2`/`ICH_AP1R<n>_EL2` zero
    /// (GICv3 IHI 0069, 12.4: their reset values). The next VM's model starts believing no list
    /// register is loaded, which is now true.
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
            write_lr(n, 0);
        }
        for (slot, &intid) in TIMERS.iter().enumerate() {
            if self.timer_held[slot] {
                self.timer_held[slot] = false;
                deactivate(intid);
            }
        }
        // ICH_VTR_EL2.PREbits, bits [28:26]: the number of preemption bits minus one; 5 bits
        // use AP<g>R0 only, 6 bits AP<g>R0..1, 7 bits AP<g>R0..3 (IHI 0069, ICH_AP1R<n>_EL2).
        let pre_bits = ((ICH_VTR_EL2.get() >> 26) & 0b111) + 1;
        // SAFETY: resets the virtual CPU interface's registers of a vCPU that is gone; they
        // affect only the virtual interrupts of the next guest run here, which must start
        // from their reset values. No memory is accessed.
        unsafe {
            core::arch::asm!(
                "msr ich_vmcr_el2, xzr",
                "msr ich_ap0r0_el2, xzr",
                "msr ich_ap1r0_el2, xzr",
                options(nomem, nostack)
            );
            if pre_bits >= 6 {
                core::arch::asm!(
                    "msr ich_ap0r1_el2, xzr",
                    "msr ich_ap1r1_el2, xzr",
                    options(nomem, nostack)
                );
            }
            if pre_bits == 7 {
                core::arch::asm!(
                    "msr ich_ap0r2_el2, xzr",
                    "msr ich_ap1r2_el2, xzr",
                    "msr ich_ap0r3_el2, xzr",
                    "msr ich_ap1r3_el2, xzr",
                    "isb",
                    options(nomem, nostack)
                );
            }
        }
    }

    /// Reads back the live list registers after vCPU `vcpu` ran (none when the model loaded
    /// none), one register at a time into the model; returns the other vCPUs the model asks to
    /// kick.
    pub fn sync(&self, gic: &mut VirtGic, vcpu: usize) -> VcpuSet {
        let implemented = self.vtr.list_regs;
        gic.sync_from_list_registers_with(vcpu, |n| (n < implemented).then(|| read_lr(n)))
    }

    /// Loads vCPU `vcpu`'s deliverable interrupts into the list registers before its entry,
    /// when they changed (nothing is written, not even `ICH_HCR_EL2`, when the model says they
    /// did not); returns the vCPUs the model asks to kick (an SPI re-routed while loaded).
    pub fn fill(&self, gic: &mut VirtGic, vcpu: usize) -> VcpuSet {
        let Some((ich_hcr_el2, kick)) = gic.fill_list_registers_with(vcpu, self.vtr, write_lr)
        else {
            return VcpuSet::EMPTY;
        };
        ICH_HCR_EL2.set(ich_hcr_el2);
        kick
    }
}

/// Enables the private interrupts Moat handles on physical CPU `cpu`: the maintenance
/// interrupt, the EL1 timers' PPIs and the kick SGI.
fn enable_private(gic: &mut GicV3<'static>, cpu: usize) -> Option<()> {
    for intid in [
        MAINTENANCE_INTID,
        VIRTUAL_TIMER_INTID,
        PHYSICAL_TIMER_INTID,
        KICK_SGI,
    ] {
        let id = int_id(intid);
        gic.set_interrupt_priority(id, Some(cpu), PRIORITY).ok()?;
        gic.enable_interrupt(id, Some(cpu), true).ok()?;
    }
    Some(())
}

/// Sends the kick SGI to the physical CPU whose MPIDR is `mpidr` (`ICC_SGI1R_EL1`: INTID in
/// bits \[27:24\], Aff3/Aff2/Aff1 and a one-bit TargetList for Aff0).
pub fn kick(mpidr: u64) {
    let aff = |shift: u32| (mpidr >> shift) & 0xFF;
    let value = (u64::from(KICK_SGI) << 24)
        | (aff(32) << 48)
        | (aff(16) << 32)
        | (aff(8) << 16)
        | (1 << (aff(0) & 0xF));
    // SAFETY: generates a physical SGI; a system register write at EL2, no memory accessed.
    unsafe {
        core::arch::asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) value, options(nomem, nostack))
    };
}

/// Sets `ICC_CTLR_EL1.EOImode` (bit 1) on this CPU, after the driver's set-up cleared it: a
/// write to `ICC_EOIR1_EL1` only drops the running priority, and [`deactivate`] deactivates
/// (IHI 0069, `ICC_CTLR_EL1`; with no EL3, the one register governs EL2).
fn split_eoi() {
    const EOIMODE: u64 = 1 << 1;
    // SAFETY: a read-modify-write of this CPU's GIC CPU interface control; Moat deactivates
    // every interrupt it takes accordingly (`CpuInterface::end`). No memory is accessed.
    unsafe {
        core::arch::asm!(
            "mrs {t}, icc_ctlr_el1",
            "orr {t}, {t}, {mode}",
            "msr icc_ctlr_el1, {t}",
            "isb",
            t = out(reg) _,
            mode = const EOIMODE,
            options(nomem, nostack)
        )
    };
}

/// Deactivates the active physical interrupt `intid` of this CPU (`ICC_DIR_EL1`; EOImode = 1).
fn deactivate(intid: u32) {
    let value = u64::from(intid);
    // SAFETY: a GIC CPU interface register write that deactivates an interrupt Moat
    // acknowledged and still holds active; no memory is accessed.
    unsafe { core::arch::asm!("msr icc_dir_el1, {}", in(reg) value, options(nomem, nostack)) };
}

/// The driver's name for INTID `raw` (SGIs 0–15, PPIs 16–31, SPIs from 32).
fn int_id(raw: u32) -> IntId {
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

/// `MRS`/`MSR` of `ICH_LR<n>_EL2`, whose number must be in the instruction.
macro_rules! list_register_access {
    ($($n:literal),*) => {
        fn read_lr(n: usize) -> u64 {
            match n {
                $($n => {
                    let value: u64;
                    // SAFETY: reads a list register the CPU implements (`n` is below
                    // `ICH_VTR_EL2.ListRegs` + 1); no side effects.
                    unsafe {
                        core::arch::asm!(concat!("mrs {}, ich_lr", $n, "_el2"), out(reg) value,
                                         options(nomem, nostack))
                    };
                    value
                })*
                _ => 0,
            }
        }

        fn write_lr(n: usize, value: u64) {
            match n {
                $($n => {
                    // SAFETY: writes a list register the CPU implements; it affects only the
                    // virtual interrupts the guest sees, which is its purpose.
                    unsafe {
                        core::arch::asm!(concat!("msr ich_lr", $n, "_el2, {}"), in(reg) value,
                                         options(nomem, nostack))
                    };
                })*
                _ => {}
            }
        }
    };
}

list_register_access!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
