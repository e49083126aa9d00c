//! How a Moat run ends: one machine-readable line on the console, then the machine is powered
//! off (or reset) through the firmware's PSCI.
//!
//! The line is `MOAT-EXIT: <status>`; the host tool turns it into its exit status. Moat never
//! uses semihosting for this: with semihosting on, a guest's `HLT #0xF000` would reach QEMU.

use crate::platform::Conduit;
use core::sync::atomic::{AtomicBool, Ordering};

/// Why the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndStatus {
    /// The guest asked for `PSCI_SYSTEM_OFF`.
    PowerOff,
    /// The guest asked for `PSCI_SYSTEM_RESET`.
    Reset,
    /// Moat stopped the VM (an unhandled trap); the diagnostic precedes the line.
    VmStopped,
    /// The VM's configuration was refused before it started.
    ConfigError,
    /// Moat itself failed (a panic or an exception at EL2): a Moat bug.
    Panic,
}

impl EndStatus {
    /// The word on the `MOAT-EXIT:` line.
    pub const fn word(self) -> &'static str {
        match self {
            Self::PowerOff => "poweroff",
            Self::Reset => "reset",
            Self::VmStopped => "vm-stopped",
            Self::ConfigError => "config-error",
            Self::Panic => "panic",
        }
    }
}

static USE_HVC: AtomicBool = AtomicBool::new(false);
static ENDING: AtomicBool = AtomicBool::new(false);

/// Records the firmware's PSCI conduit from the device tree.
pub fn set_conduit(conduit: Conduit) {
    USE_HVC.store(conduit == Conduit::Hvc, Ordering::Relaxed);
}

/// Prints the end line and powers the machine off (`Reset`: resets it).
pub fn end(status: EndStatus) -> ! {
    if ENDING.swap(true, Ordering::AcqRel) {
        // A fault while ending: the line is out already; just power off.
        firmware_power(smccc::psci::PSCI_SYSTEM_OFF);
    }
    crate::console::emergency_write(format_args!("MOAT-EXIT: {}", status.word()));
    let function = match status {
        EndStatus::Reset => smccc::psci::PSCI_SYSTEM_RESET,
        _ => smccc::psci::PSCI_SYSTEM_OFF,
    };
    firmware_power(function)
}

/// Starts physical CPU `mpidr` at `entry` (a physical address) with `context` in `x0`, through
/// the firmware's PSCI `CPU_ON`; returns the PSCI status (0 = SUCCESS).
pub fn firmware_cpu_on(mpidr: u64, entry: u64, context: u64) -> i64 {
    let fid = u64::from(smccc::psci::PSCI_CPU_ON_64);
    let status: u64;
    if USE_HVC.load(Ordering::Relaxed) {
        // SAFETY: a PSCI call to the firmware, which starts another CPU at `entry` (Moat's
        // secondary entry); it clobbers only the SMCCC result registers, which are declared.
        unsafe {
            core::arch::asm!("hvc #0", inout("x0") fid => status, inout("x1") mpidr => _,
                             inout("x2") entry => _, inout("x3") context => _)
        };
    } else {
        // SAFETY: as above, through the secure monitor.
        unsafe {
            core::arch::asm!("smc #0", inout("x0") fid => status, inout("x1") mpidr => _,
                             inout("x2") entry => _, inout("x3") context => _)
        };
    }
    // Reinterpretation intended: PSCI statuses are signed.
    status as i64
}

fn firmware_power(function: u32) -> ! {
    let fid = u64::from(function);
    if USE_HVC.load(Ordering::Relaxed) {
        // SAFETY: a PSCI power-state call to the firmware; it does not return on success and
        // clobbers only the SMCCC result registers, which are declared.
        unsafe {
            core::arch::asm!("hvc #0", inout("x0") fid => _, out("x1") _, out("x2") _, out("x3") _)
        };
    } else {
        // SAFETY: as above, through the secure monitor.
        unsafe {
            core::arch::asm!("smc #0", inout("x0") fid => _, out("x1") _, out("x2") _, out("x3") _)
        };
    }
    // The firmware refused to power off. Nothing can run any more; park the CPU and say so.
    crate::console::emergency_write(format_args!("moat: firmware did not power off; CPU parked"));
    loop {
        aarch64_cpu::asm::wfe();
    }
}
