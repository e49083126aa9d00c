//! `moat-guest-probe32`: the AArch32 probe of the differential test suite (SPEC §6). It runs at
//! PL1 (SVC mode) in AArch32, performs one access per case (a load, store, doubleword, multiple
//! or fetch, A32 or T32, from SVC or USR, with its MMU off or through LPAE or short-descriptor
//! tables it builds itself) to the addresses the bootargs give, prints the complete exception
//! state each one receives (one `MOAT-PROBE` line per case, then `MOAT-PROBE-DONE <cases>`) and
//! powers off with PSCI `SYSTEM_OFF` through `HVC #0`. The same image runs on bare QEMU below
//! `moat-guest-shim32` (the oracle) and under Moat. Protocol, commands and results:
//! `bare/guests/probe32/README.md`.
//!
//! Built for `armv7a-none-eabi` only; for any other target (a workspace-wide `cargo build`, which
//! defaults to AArch64) the binary is an empty stub.
#![no_std]
#![no_main]

#[cfg(target_arch = "arm")]
mod console;
#[cfg(target_arch = "arm")]
mod enter;
#[cfg(target_arch = "arm")]
mod mmu;
#[cfg(target_arch = "arm")]
mod psci;
#[cfg(target_arch = "arm")]
mod regs;
#[cfg(target_arch = "arm")]
mod run;
#[cfg(target_arch = "arm")]
mod start;

#[cfg(target_arch = "arm")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("MOAT-PROBE-ERROR panic: {info}");
    psci::system_off()
}

#[cfg(not(target_arch = "arm"))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The non-ARM stub has no code that can panic; park like the real probe after power-off.
    loop {
        core::hint::spin_loop();
    }
}
