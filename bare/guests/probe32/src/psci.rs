//! PSCI `SYSTEM_OFF` through `HVC #0` (PSCI DEN 0022, SMC32 id 0x84000008): below the shim the
//! HVC reaches EL2, which forwards it to QEMU's firmware; under Moat, Moat handles it.

use core::arch::asm;

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
