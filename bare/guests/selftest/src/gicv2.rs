//! The GICv2 as a guest driver uses it (GICv2 IHI 0048B): the distributor (`GICD_*`) and the
//! memory-mapped CPU interface (`GICC_*`) at QEMU virt's `gic-version=2` addresses, which a
//! GICv2 VM under Moat has too (its GICC is the hardware's virtual CPU interface). Interrupts
//! stay in Group 0 (their reset group), signalled as IRQs (`GICC_CTLR.FIQEn` = 0).
//!
//! The tests of `interrupts.rs` take this path when the CPU has no GICv3 system register
//! interface (`ID_AA64PFR0_EL1.GIC` = 0); [`gicv2_sgis_between_two_vcpus_carry_their_source`]
//! is a GICv2 test of its own (the runner boots the `gicv2_` tests with 2 vCPUs on a GICv2
//! machine only).

use core::arch::asm;
use core::sync::atomic::{AtomicU32, Ordering};

use moat_guest_rt::{TestResult, check_eq, psci, secondary};

const GICD: usize = 0x0800_0000;
const GICC: usize = 0x0801_0000;
const GICD_CTLR: usize = 0x000;
const GICD_ISENABLER0: usize = 0x100;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_SGIR: usize = 0xF00;
const GICC_CTLR: usize = 0x000;
const GICC_PMR: usize = 0x004;
const GICC_IAR: usize = 0x00C;
const GICC_EOIR: usize = 0x010;
/// `GICD_CTLR.EnableGrp0`, `GICC_CTLR.EnableGrp0`.
const ENABLE_GRP0: u32 = 1;
/// `GICD_SGIR.TargetListFilter` \[25:24\]: 0 = `CPUTargetList` \[23:16\], 2 = the sender.
const FILTER_LIST: u32 = 0;
const FILTER_SELF: u32 = 2;
/// `GICC_IAR.InterruptID` \[9:0\] and `CPUID` \[12:10\].
const INTERRUPT_ID_MASK: u32 = 0x3FF;
const CPUID_SHIFT: u32 = 10;
/// `GICC_IAR` when nothing is pending.
pub const SPURIOUS: u32 = 1023;

fn write32(addr: usize, value: u32) {
    // SAFETY: a GIC register of QEMU virt's gic-version=2 map (the guest's device tree names
    // the same); MMIO with a volatile access, no Rust object lives there.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

fn read32(addr: usize) -> u32 {
    // SAFETY: as for `write32`.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Whether the CPU lacks the GICv3 system register interface (`ID_AA64PFR0_EL1.GIC`, bits
/// \[27:24\], is 0): then the machine's GIC is a GICv2, driven through memory.
pub fn is_gicv2() -> bool {
    let pfr0: u64;
    // SAFETY: reads an ID register; no side effects.
    unsafe { asm!("mrs {}, id_aa64pfr0_el1", out(reg) pfr0, options(nomem, nostack)) };
    (pfr0 >> 24) & 0xF == 0
}

/// Enables the distributor (Group 0) and this CPU's interface, and the private interrupt
/// `intid` (its banked enable and priority).
pub fn enable_private_interrupt(intid: u32) {
    write32(GICD + GICD_CTLR, ENABLE_GRP0);
    let prio = GICD + GICD_IPRIORITYR + (intid as usize & !3);
    let shift = 8 * (intid % 4);
    write32(prio, (read32(prio) & !(0xFF << shift)) | (0x80 << shift));
    write32(GICD + GICD_ISENABLER0, 1 << intid);
    write32(GICC + GICC_PMR, 0xFF);
    write32(GICC + GICC_CTLR, ENABLE_GRP0);
}

/// Acknowledges the highest-priority pending interrupt: the whole `GICC_IAR` value.
pub fn acknowledge() -> u32 {
    read32(GICC + GICC_IAR)
}

/// Ends (and, with `GICC_CTLR.EOImode` = 0, deactivates) the interrupt acknowledged as `iar`.
pub fn end(iar: u32) {
    write32(GICC + GICC_EOIR, iar);
}

/// Sends SGI `intid` to this CPU (`GICD_SGIR`, `TargetListFilter` = 2).
pub fn send_sgi_to_self(intid: u32) {
    write32(GICD + GICD_SGIR, FILTER_SELF << 24 | intid);
}

/// Sends SGI `intid` to the CPUs of `targets` (`CPUTargetList`).
fn send_sgi(targets: u32, intid: u32) {
    write32(GICD + GICD_SGIR, FILTER_LIST << 24 | targets << 16 | intid);
}

/// Waits (in `WFI`, IRQs masked: a pending interrupt wakes it all the same) until an interrupt
/// is pending and acknowledges it; [`SPURIOUS`] when none came (bounded).
fn wait_and_acknowledge() -> u32 {
    for _ in 0..10_000 {
        let iar = acknowledge();
        if iar & INTERRUPT_ID_MASK != SPURIOUS {
            return iar;
        }
        // SAFETY: waits for an interrupt with IRQs masked; no memory is accessed.
        unsafe { asm!("wfi", options(nomem, nostack)) };
    }
    SPURIOUS
}

/// The SGI vCPU 0 sends vCPU 1, and the one vCPU 1 answers with.
const PING: u32 = 4;
const PONG: u32 = 6;
/// PSCI `CPU_OFF`.
const CPU_OFF: u32 = 0x8400_0002;

/// vCPU 1's progress, and the `GICC_IAR` value with which it took the ping.
static PARTNER: AtomicU32 = AtomicU32::new(OFFLINE);
static PARTNER_IAR: AtomicU32 = AtomicU32::new(SPURIOUS);
const OFFLINE: u32 = 0;
const READY: u32 = 1;
const DONE: u32 = 2;

/// vCPU 1: brings up its CPU interface and its banked SGI, takes the ping, answers with the
/// pong to vCPU 0, and switches itself off.
extern "C" fn secondary_main() -> ! {
    enable_private_interrupt(PING);
    PARTNER.store(READY, Ordering::SeqCst);
    let iar = wait_and_acknowledge();
    PARTNER_IAR.store(iar, Ordering::SeqCst);
    if iar & INTERRUPT_ID_MASK != SPURIOUS {
        end(iar);
        send_sgi(0b01, PONG);
    }
    PARTNER.store(DONE, Ordering::SeqCst);
    psci::smccc_call(CPU_OFF, &[]);
    psci::park()
}

/// Polls vCPU 1's state with `YIELD` until it is `state`, for at most a second of the
/// virtual counter; whether it got there.
fn wait_partner(state: u32) -> bool {
    let (now, frequency): (u64, u64);
    // SAFETY: reads the virtual counter and its frequency; no side effects.
    unsafe {
        asm!("mrs {}, cntvct_el0", out(reg) now, options(nomem, nostack));
        asm!("mrs {}, cntfrq_el0", out(reg) frequency, options(nomem, nostack));
    }
    let deadline = now + frequency;
    loop {
        if PARTNER.load(Ordering::SeqCst) == state {
            return true;
        }
        let now: u64;
        // SAFETY: a hint to the emulator or the CPU, then a read of the virtual counter.
        unsafe {
            asm!("yield", "mrs {}, cntvct_el0", out(reg) now, options(nomem, nostack));
        }
        if now > deadline {
            return false;
        }
    }
}

/// vCPU 0 sends SGI 4 to vCPU 1 through `GICD_SGIR`'s target list; vCPU 1 takes it with
/// `GICC_IAR.CPUID` = 0 (its source) and answers with SGI 6, which vCPU 0 takes with
/// `CPUID` = 1.
pub fn gicv2_sgis_between_two_vcpus_carry_their_source() -> TestResult {
    if !is_gicv2() {
        return Err("the CPU has the GICv3 system registers: this is not a GICv2 machine");
    }
    enable_private_interrupt(PONG);
    if secondary::cpu_on(1, secondary_main) != 0 {
        return Err("PSCI CPU_ON of vCPU 1 failed (boot with 2 vCPUs)");
    }
    if !wait_partner(READY) {
        return Err("vCPU 1 did not come up");
    }
    send_sgi(0b10, PING);
    let iar = wait_and_acknowledge();
    if iar & INTERRUPT_ID_MASK != SPURIOUS {
        end(iar);
    }
    if !wait_partner(DONE) {
        return Err("vCPU 1 did not take the ping");
    }
    let ping = PARTNER_IAR.load(Ordering::SeqCst);
    moat_guest_rt::println!("vCPU 1 took GICC_IAR {ping:#x}; vCPU 0 took {iar:#x}");
    check_eq!(ping, PING, "vCPU 1's GICC_IAR: SGI 4 from CPU 0")?;
    check_eq!(
        iar,
        1 << CPUID_SHIFT | PONG,
        "vCPU 0's GICC_IAR: SGI 6 from CPU 1"
    )
}
