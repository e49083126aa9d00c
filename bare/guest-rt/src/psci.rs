//! PSCI (Arm DEN 0022) and generic SMCCC (Arm DEN 0028) calls over the conduit the device tree's
//! `/psci` node names (`method = "hvc"` or `"smc"`).
//!
//! Under Moat and on bare QEMU without `virtualization=on` the conduit is HVC. When the device tree
//! has no `/psci` node the runtime assumes HVC, the only conduit a guest at EL1 can rely on.

#[cfg(target_os = "none")]
use core::arch::asm;

use crate::global::Global;
#[cfg(target_os = "none")]
use crate::{println, running};

/// PSCI_VERSION (DEN 0022, function ID 0x8400_0000).
pub const PSCI_VERSION: u32 = 0x8400_0000;
/// SYSTEM_OFF (DEN 0022, function ID 0x8400_0008).
pub const SYSTEM_OFF: u32 = 0x8400_0008;
/// SYSTEM_RESET (DEN 0022, function ID 0x8400_0009).
pub const SYSTEM_RESET: u32 = 0x8400_0009;

/// How a guest reaches the PSCI/SMCCC implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conduit {
    /// `HVC #0`: handled at EL2 (Moat, or QEMU's built-in PSCI with `psci-conduit=hvc`).
    Hvc,
    /// `SMC #0`: handled at EL3 (or by QEMU's built-in PSCI with `psci-conduit=smc`).
    Smc,
}

impl Conduit {
    /// The conduit named by a `/psci` node's `method` property.
    pub fn from_method(method: &str) -> Option<Self> {
        match method {
            "hvc" => Some(Self::Hvc),
            "smc" => Some(Self::Smc),
            _ => None,
        }
    }
}

static CONDUIT: Global<Conduit> = Global::new(Conduit::Hvc);

/// Uses `conduit` for every later call.
pub(crate) fn init(conduit: Conduit) {
    CONDUIT.set(conduit);
}

/// The conduit in use.
pub fn conduit() -> Conduit {
    CONDUIT.get()
}

/// Executes `$insn` with X0..X17 loaded from and written back to `$regs`.
#[cfg(target_os = "none")]
macro_rules! call {
    ($insn:literal, $regs:ident) => {
        // SAFETY: An SMCCC call changes at most X0..X17 (all declared as in/out here; X18 and up
        // are preserved, SMCCC "Register use in AArch64 SMC and HVC calls") and never the stack.
        // The asm is not `nomem`, so the compiler assumes it may read or write any memory whose
        // address the caller passed in; the runtime's own calls (PSCI_VERSION, SYSTEM_OFF,
        // SYSTEM_RESET) pass no addresses.
        unsafe {
            asm!($insn,
                inout("x0") $regs[0], inout("x1") $regs[1], inout("x2") $regs[2],
                inout("x3") $regs[3], inout("x4") $regs[4], inout("x5") $regs[5],
                inout("x6") $regs[6], inout("x7") $regs[7], inout("x8") $regs[8],
                inout("x9") $regs[9], inout("x10") $regs[10], inout("x11") $regs[11],
                inout("x12") $regs[12], inout("x13") $regs[13], inout("x14") $regs[14],
                inout("x15") $regs[15], inout("x16") $regs[16], inout("x17") $regs[17],
                options(nostack))
        }
    };
}

/// Issues an SMCCC call: `fid` in W0, `args` in X1.. (at most 17), and returns X0..X3.
///
/// # Panics
///
/// If `args` has more than 17 values (SMCCC v1.2 passes arguments in X1..X17).
#[cfg(target_os = "none")]
pub fn smccc_call(fid: u32, args: &[u64]) -> [u64; 4] {
    assert!(args.len() <= 17, "SMCCC passes at most 17 arguments");
    let mut regs = [0u64; 18];
    regs[0] = u64::from(fid);
    regs[1..=args.len()].copy_from_slice(args);
    match conduit() {
        Conduit::Hvc => call!("hvc #0", regs),
        Conduit::Smc => call!("smc #0", regs),
    }
    [regs[0], regs[1], regs[2], regs[3]]
}

/// PSCI_VERSION: bits \[31:16\] major, \[15:0\] minor (so 1.1 is 0x1_0001).
#[cfg(target_os = "none")]
pub fn psci_version() -> u32 {
    smccc_call(PSCI_VERSION, &[])[0] as u32
}

/// SYSTEM_OFF. Does not return: should the call come back, the guest prints a `MOAT-TEST fail`
/// line naming the current test and parks the CPU.
#[cfg(target_os = "none")]
pub fn system_off() -> ! {
    let status = smccc_call(SYSTEM_OFF, &[])[0];
    returned("SYSTEM_OFF", status)
}

/// SYSTEM_RESET. Does not return; if it does, reported like [`system_off`].
#[cfg(target_os = "none")]
pub fn system_reset() -> ! {
    let status = smccc_call(SYSTEM_RESET, &[])[0];
    returned("SYSTEM_RESET", status)
}

/// Reports a PSCI call that should not have returned, then parks the CPU.
#[cfg(target_os = "none")]
fn returned(call: &str, status: u64) -> ! {
    println!(
        "MOAT-TEST fail {}: PSCI {call} returned {}",
        running::current(),
        status as i32
    );
    park()
}

/// Parks the CPU for good. The very last resort, when PSCI itself failed to power off: nothing
/// else is left to stop the machine, and `WFE` at least idles instead of spinning hot. The host
/// runner's timeout ends the emulator.
#[cfg(target_os = "none")]
pub fn park() -> ! {
    loop {
        // SAFETY: WFE only waits for an event; it touches no memory, stack or flags.
        unsafe { asm!("wfe", options(nomem, nostack, preserves_flags)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psci_method_names_its_conduit() {
        assert_eq!(Conduit::from_method("hvc"), Some(Conduit::Hvc));
        assert_eq!(Conduit::from_method("smc"), Some(Conduit::Smc));
        assert_eq!(Conduit::from_method("HVC"), None);
    }
}
