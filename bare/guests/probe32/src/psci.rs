//! PSCI `PSCI_VERSION` and `SYSTEM_OFF` through `HVC #0` (PSCI DEN 0022, SMC32 id 0x84000008): below the shim the
//! HVC reaches EL2, which forwards it to QEMU's firmware; under Moat, Moat handles it.

use core::arch::asm;

/// PSCI `PSCI_VERSION` (0x84000000): major in bits [31:16], minor in [15:0]. Called once at
/// start, so every case runs after a round trip through EL2.
pub fn version() -> u32 {
    let mut r0: u32 = 0x8400_0000;
    // SAFETY: HVC #0 is the PSCI conduit (see `system_off`); PSCI_VERSION has no effect and
    // clobbers only r0..r3.
    unsafe {
        asm!(".inst 0xe1400070", inout("r0") r0, out("r1") _, out("r2") _, out("r3") _,
            options(nostack));
    }
    r0
}

/// PSCI `SYSTEM_OFF`; parks the CPU if it returns.
pub fn system_off() -> ! {
    const SYSTEM_OFF: u32 = 0x8400_0008;
    // SAFETY: HVC #0 (encoded with .inst: the assembler wants the virtualization extension for
    // the mnemonic) is the PSCI conduit; SYSTEM_OFF does not return on success and clobbers only
    // r0..r3 otherwise.
    unsafe {
        asm!(".inst 0xe1400070", inout("r0") SYSTEM_OFF => _, out("r1") _, out("r2") _,
            out("r3") _, options(nostack));
    }
    crate::println!("MOAT-PROBE-ERROR PSCI SYSTEM_OFF returned");
    loop {
        // SAFETY: WFE only waits; nothing is left to do once power-off failed.
        unsafe { asm!("wfe", options(nomem, nostack)) };
    }
}
