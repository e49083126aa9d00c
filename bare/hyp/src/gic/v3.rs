//! The machine's GICv3 (IHI 0069) as Moat drives it at EL2: the distributor and
//! redistributors through the `arm-gic` driver, this CPU's interface through the `ICC_*`
//! system registers (`ICC_CTLR_EL1.EOImode` = 1: `ICC_EOIR1_EL1` only drops the running
//! priority, `ICC_DIR_EL1` deactivates), and the virtual interface's `ICH_*_EL2` registers.

use crate::lock::Lock;
use crate::platform::PhysRange;
use aarch64_cpu::registers::{
    ICH_AP0R0_EL2, ICH_AP0R1_EL2, ICH_AP0R2_EL2, ICH_AP0R3_EL2, ICH_AP1R0_EL2, ICH_AP1R1_EL2,
    ICH_AP1R2_EL2, ICH_AP1R3_EL2, ICH_HCR_EL2, ICH_VMCR_EL2, ICH_VTR_EL2, MPIDR_EL1, Readable,
    Writeable,
};
use arm_gic::gicv3::{GicCpuInterface, GicV3};
use arm_gic::{InterruptGroup, Trigger};
use core::ptr::NonNull;
use moat_devices::gic::list_regs::{IchVtr, VirtualInterface};
use safe_mmio::UniqueMmioPointer;

use super::int_id;

/// The machine's GIC distributor and redistributors, shared by every physical CPU; taken only
/// to set one up (each CPU touches its own redistributor, but the driver is one object).
static MACHINE_GIC: Lock<Option<GicV3<'static>>> = Lock::new(None);

/// Takes the GIC at `dist`/`redist` of a machine of `cpus` CPUs, sets it up from CPU 0 and
/// enables `private` and the SPI `console` there, at `priority`; false when it cannot be
/// driven.
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
    private: &[u32],
    priority: u8,
) -> bool {
    let setup = || {
        let dist_ptr = NonNull::new(dist.base as *mut arm_gic::gicv3::registers::Gicd)?;
        let redist_ptr = NonNull::new(redist.base as *mut arm_gic::gicv3::registers::GicrSgi)?;
        // SAFETY: the caller guarantees both are the GIC's registers, exclusively Moat's.
        let mut gic =
            unsafe { GicV3::new(UniqueMmioPointer::new(dist_ptr), redist_ptr, cpus.max(1)) }
                .ok()?;
        GicCpuInterface::enable_system_register_el2(true);
        gic.setup(0);
        split_eoi();
        enable_private(&mut gic, 0, private, priority)?;
        if let Some(intid) = console {
            let uart = int_id(intid);
            gic.set_interrupt_priority(uart, None, priority).ok()?;
            gic.set_trigger(uart, None, Trigger::Level).ok()?;
            gic.enable_interrupt(uart, None, true).ok()?;
        }
        GicCpuInterface::set_priority_mask(0xFF);
        GicCpuInterface::enable_group1(true);
        *MACHINE_GIC.lock() = Some(gic);
        Some(())
    };
    setup().is_some()
}

/// Enables the SPI `intid` (edge or level) at `priority`; false when Moat drives no GICv3 or
/// the driver refused. The SPI is routed as `gic.setup` left `GICD_IROUTER<n>`: to the CPU of
/// affinity 0.0.0.0, the boot CPU.
pub fn enable_spi(intid: u32, edge: bool, priority: u8) -> bool {
    let mut guard = MACHINE_GIC.lock();
    let Some(gic) = guard.as_mut() else {
        return false;
    };
    let id = int_id(intid);
    let trigger = if edge { Trigger::Edge } else { Trigger::Level };
    gic.set_interrupt_priority(id, None, priority).is_ok()
        && gic.set_trigger(id, None, trigger).is_ok()
        && gic.enable_interrupt(id, None, true).is_ok()
}

/// Routes the SPI `intid` to the calling CPU (`GICD_IROUTER<n>` = its affinity,
/// `Interrupt_Routing_Mode` = 0), then enables it (edge or level) at `priority`; false when
/// Moat drives no GICv3 or the driver refused.
pub fn enable_spi_here(intid: u32, edge: bool, priority: u8) -> bool {
    let routed = {
        let mut guard = MACHINE_GIC.lock();
        let Some(gic) = guard.as_mut() else {
            return false;
        };
        gic.distributor()
            .set_routing(int_id(intid), Some(MPIDR_EL1.get()))
            .is_ok()
    };
    routed && enable_spi(intid, edge, priority)
}

/// Brings up physical CPU `cpu`'s redistributor and CPU interface (run on that CPU) and
/// enables `private` there; false when the machine has no GICv3 Moat drives, or this CPU's
/// part cannot be set up.
pub fn init_cpu(cpu: usize, private: &[u32], priority: u8) -> bool {
    let mut guard = MACHINE_GIC.lock();
    let Some(gic) = guard.as_mut() else {
        return false;
    };
    GicCpuInterface::enable_system_register_el2(true);
    gic.init_cpu(cpu);
    split_eoi();
    if enable_private(gic, cpu, private, priority).is_none() {
        return false;
    }
    GicCpuInterface::set_priority_mask(0xFF);
    GicCpuInterface::enable_group1(true);
    true
}

/// The virtual interface's list registers and priority bits (`ICH_VTR_EL2`).
pub fn vtr() -> IchVtr {
    IchVtr::decode(ICH_VTR_EL2.get())
}

/// The guest's side of this CPU's virtual CPU interface (`ICH_VMCR_EL2`, and the running
/// priority from the `vtr.active_priority_registers()` implemented `ICH_AP0R<n>_EL2` and
/// `ICH_AP1R<n>_EL2`).
pub fn virtual_interface(vtr: IchVtr) -> VirtualInterface {
    let registers = vtr.active_priority_registers();
    let mut active = [0u32; 4];
    // Truncations intended: the active priorities registers' bits [63:32] are RES0.
    #[allow(clippy::cast_possible_truncation)]
    for (n, word) in active.iter_mut().enumerate().take(registers) {
        *word = match n {
            0 => ICH_AP0R0_EL2.get() | ICH_AP1R0_EL2.get(),
            1 => ICH_AP0R1_EL2.get() | ICH_AP1R1_EL2.get(),
            2 => ICH_AP0R2_EL2.get() | ICH_AP1R2_EL2.get(),
            _ => ICH_AP0R3_EL2.get() | ICH_AP1R3_EL2.get(),
        } as u32;
    }
    let running = VirtualInterface::running_priority(&active[..registers], vtr.preemption_bits);
    VirtualInterface::from_ich_vmcr(ICH_VMCR_EL2.get(), running)
}

/// The highest-priority pending Group 1 interrupt, acknowledged (`ICC_IAR1_EL1`).
pub fn acknowledge() -> Option<u32> {
    GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1).map(u32::from)
}

/// Drops the running priority of `intid` (`ICC_EOIR1_EL1`; EOImode = 1).
pub fn end(intid: u32) {
    GicCpuInterface::end_interrupt(int_id(intid), InterruptGroup::Group1);
}

/// Writes `ICH_HCR_EL2`.
pub fn write_hcr(value: u64) {
    ICH_HCR_EL2.set(value);
}

fn enable_private(
    gic: &mut GicV3<'static>,
    cpu: usize,
    private: &[u32],
    priority: u8,
) -> Option<()> {
    for &intid in private {
        let id = int_id(intid);
        gic.set_interrupt_priority(id, Some(cpu), priority).ok()?;
        gic.enable_interrupt(id, Some(cpu), true).ok()?;
    }
    Some(())
}

/// Sends SGI `sgi` to the physical CPU whose MPIDR is `mpidr` (`ICC_SGI1R_EL1`: INTID in bits
/// \[27:24\], Aff3/Aff2/Aff1 and a one-bit TargetList for Aff0).
pub fn kick(mpidr: u64, sgi: u32) {
    let aff = |shift: u32| (mpidr >> shift) & 0xFF;
    let value = (u64::from(sgi) << 24)
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
pub fn deactivate(intid: u32) {
    let value = u64::from(intid);
    // SAFETY: a GIC CPU interface register write that deactivates an interrupt Moat
    // acknowledged and still holds active; no memory is accessed.
    unsafe { core::arch::asm!("msr icc_dir_el1, {}", in(reg) value, options(nomem, nostack)) };
}

/// Returns the virtual CPU interface's guest state to its reset values: `ICH_VMCR_EL2` (the
/// guest's priority mask, binary points and group enables) and the active-priority registers
/// `ICH_AP0R<n>_EL2`/`ICH_AP1R<n>_EL2` zero (GICv3 IHI 0069, 12.4: their reset values).
pub fn reset_vcpu_state() {
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

/// `MRS`/`MSR` of `ICH_LR<n>_EL2`, whose number must be in the instruction.
macro_rules! list_register_access {
    ($($n:literal),*) => {
        /// `ICH_LR<n>_EL2` (0 for `n` above 15).
        pub fn read_lr(n: usize) -> u64 {
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

        /// Writes `ICH_LR<n>_EL2` (nothing for `n` above 15).
        pub fn write_lr(n: usize, value: u64) {
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
