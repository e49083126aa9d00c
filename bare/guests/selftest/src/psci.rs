//! PSCI (Arm DEN 0022) as the guest reaches it over the device tree's conduit.

use moat_guest_rt::{TestResult, println, psci, test};

/// PSCI_VERSION reports 1.0 or later (Moat and QEMU 7.2 both implement 1.1), encoded as
/// major in bits \[31:16\] and minor in bits \[15:0\].
pub fn psci_version_is_1_1_or_later() -> TestResult {
    let version = psci::psci_version();
    println!(
        "PSCI version {}.{} ({version:#x}) via {:?}",
        version >> 16,
        version & 0xffff,
        psci::conduit()
    );
    // Bit 31 set would be a negative error code (NOT_SUPPORTED is -1), not a version.
    if version & (1 << 31) != 0 {
        return Err("PSCI_VERSION returned an error code");
    }
    if version < 0x1_0000 {
        return Err("PSCI_VERSION is below 1.0");
    }
    Ok(())
}

/// SYSTEM_OFF powers the machine off: the guest prints its pass line first, and the host checks
/// that the emulator exited. If the call returns, the runtime prints a fail line.
pub fn psci_system_off_powers_off() -> TestResult {
    test::report_pass();
    psci::system_off()
}
