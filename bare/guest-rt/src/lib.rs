//! `moat-guest-rt`: the runtime of Moat's bare-metal AArch64 test guests.
//!
//! A test guest is an arm64 Linux `Image` that runs at EL1 with the MMU off, under Moat or
//! directly on QEMU (`-M virt` without `virtualization=on`). This crate gives it everything it
//! needs and nothing more:
//!
//! - the entry code (`start.rs`): the `Image` header, stack, BSS, `VBAR_EL1`, then the guest's
//!   `main`;
//! - [`boot`]: the [`BootInfo`] found in the device tree (bootargs, PL011, PSCI conduit, RAM);
//! - [`console`]: PL011 output and the [`print!`]/[`println!`] macros;
//! - [`psci`]: PSCI and generic SMCCC calls over the conduit the device tree names;
//! - `secondary`: a second CPU started with PSCI `CPU_ON` on a stack of its own;
//! - `gic`: a GICv3 guest driver (bring-up, SPI routing, polling the CPU interface);
//! - [`exception`]: EL1 vectors that capture an [`ExceptionRecord`] and hand it to a hook a
//!   test installs;
//! - [`test`](mod@test): the test registry ([`tests!`]) and the `MOAT-TEST` result-line protocol that the
//!   host runner parses (see `bare/guests/README.md`).
//!
//! A guest binary is `#![no_std] #![no_main]`, calls [`entry!`] or [`tests!`] once, and links
//! with `-Tmoat-guest.ld` (its build.rs prints `cargo:rustc-link-arg-bins=-Tmoat-guest.ld`; this
//! crate's build script puts the script on the search path). The runtime provides the panic
//! handler.
//!
//! The hardware half (asm, system registers, the entry code) is compiled for the bare-metal
//! target only (`target_os = "none"`); the rest builds and is unit-tested on the host:
//! `cargo test --manifest-path bare/guest-rt/Cargo.toml` from the repository root (stable Rust,
//! host target; `--manifest-path` skips `bare/.cargo/config.toml` on purpose).
//!
//! Everything runs on one CPU with IRQ, FIQ and SError masked (`PSTATE.{D,A,I,F}` set at entry
//! and never cleared): the only code that can interrupt other code is a synchronous exception
//! handler. The runtime's shared state (`global.rs`) relies on that.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(
    not(target_os = "none"),
    allow(
        dead_code,
        reason = "on the host, the entry code and handler that use it are absent"
    )
)]

pub mod boot;
pub mod console;
mod dt;
pub mod exception;
#[cfg(target_os = "none")]
pub mod gic;
mod global;
pub mod psci;
mod running;
#[cfg(target_os = "none")]
pub mod secondary;
#[cfg(target_os = "none")]
mod start;
pub mod sysreg;
pub mod test;

pub use boot::{BootInfo, Region};
pub use exception::{
    ExceptionFrame, ExceptionHook, ExceptionLog, ExceptionRecord, PstateAtEntry, Resume,
    VectorOffset,
};
pub use test::{Test, TestResult};

/// Declares the guest's `main`: a `fn(&BootInfo)` that the runtime calls once the
/// console and PSCI are set up. When it returns, the runtime powers the machine off.
///
/// ```ignore
/// moat_guest_rt::entry!(main);
/// fn main(boot: &moat_guest_rt::BootInfo) { moat_guest_rt::println!("hi"); }
/// ```
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// The guest's entry point, called by `moat-guest-rt` (see `moat_guest_rt::entry!`).
        #[unsafe(no_mangle)]
        fn moat_guest_main(boot: &$crate::BootInfo) {
            let main: fn(&$crate::BootInfo) = $main;
            $crate::test::set_current(env!("CARGO_PKG_NAME"));
            main(boot)
        }
    };
}

/// Registers the guest's tests (functions `fn() -> TestResult`, named after the fact they
/// check) and makes the test runner the guest's `main`: bootargs `moat.test=<name>` run one
/// test, `moat.test=list` or no `moat.test=` list them (see [`test::run`](crate::test::run)).
///
/// ```ignore
/// moat_guest_rt::tests![console_hello, ram_load_store];
/// ```
#[macro_export]
macro_rules! tests {
    ($($name:ident),+ $(,)?) => {
        fn moat_guest_run_tests(boot: &$crate::BootInfo) {
            const TESTS: &[$crate::Test] = &[
                $($crate::Test { name: stringify!($name), run: $name }),+
            ];
            $crate::test::run(boot, TESTS)
        }
        $crate::entry!(moat_guest_run_tests);
    };
}
