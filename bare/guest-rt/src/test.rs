//! The in-guest test runner and the `MOAT-TEST` result-line protocol.
//!
//! The host runner boots one emulator per test and parses these lines exactly, so they must not
//! change (see `bare/guests/README.md`):
//!
//! - bootargs `moat.test=list`, or no `moat.test=`: `MOAT-TEST list <name>` per test, then off;
//! - bootargs `moat.test=<name>`: `MOAT-TEST begin <name>`, the test, then `MOAT-TEST pass <name>`
//!   or `MOAT-TEST fail <name>: <reason>`, then PSCI SYSTEM_OFF;
//! - an unknown name: `MOAT-TEST fail <name>: no such test`.
//!
//! A panic, an unexpected exception or a PSCI SYSTEM_OFF that returns also ends in a
//! `MOAT-TEST fail <name>: ...` line for the test that was running.

#[cfg(target_os = "none")]
use core::panic::PanicInfo;

use crate::boot::BootInfo;
#[cfg(target_os = "none")]
use crate::global::Global;
use crate::println;
#[cfg(target_os = "none")]
use crate::psci;

/// What a test returns: `Err` carries the reason printed after `MOAT-TEST fail <name>: `.
pub type TestResult = Result<(), &'static str>;

/// One registered test (see [`tests!`](crate::tests)).
#[derive(Debug, Clone, Copy)]
pub struct Test {
    /// The name `moat.test=` selects it by: the function's name, which says the fact it checks.
    pub name: &'static str,
    /// The test itself.
    pub run: fn() -> TestResult,
}

pub use crate::running::{current, set_current};

#[cfg(target_os = "none")]
static PANICKING: Global<bool> = Global::new(false);

/// The value of the first `moat.test=` in `bootargs`.
pub fn selected(bootargs: &str) -> Option<&str> {
    bootarg(bootargs, "moat.test")
}

/// The value of the first `key=value` word of `bootargs` whose key is `key`.
#[must_use]
pub fn bootarg<'a>(bootargs: &'a str, key: &str) -> Option<&'a str> {
    bootargs
        .split_whitespace()
        .find_map(|arg| arg.strip_prefix(key)?.strip_prefix('='))
}

/// Runs the test that the bootargs select, or lists them all; the runtime powers off after.
pub fn run(boot: &BootInfo, tests: &[Test]) {
    match selected(boot.bootargs) {
        None | Some("list") => list(tests),
        Some(name) => match tests.iter().find(|test| test.name == name) {
            Some(test) => run_one(test),
            None => println!("MOAT-TEST fail {name}: no such test"),
        },
    }
}

fn list(tests: &[Test]) {
    for test in tests {
        println!("MOAT-TEST list {}", test.name);
    }
}

fn run_one(test: &Test) {
    set_current(test.name);
    println!("MOAT-TEST begin {}", test.name);
    match (test.run)() {
        Ok(()) => report_pass(),
        Err(reason) => println!("MOAT-TEST fail {}: {reason}", test.name),
    }
}

/// Prints the current test's `pass` line. For a test that ends the machine itself (e.g. calls
/// [`psci::system_off`]) and so never returns to the runner.
pub fn report_pass() {
    println!("MOAT-TEST pass {}", current());
}

/// Fails the current test with the panic's message and location, then powers off.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if !PANICKING.get() {
        PANICKING.set(true);
        match info.location() {
            Some(at) => println!(
                "MOAT-TEST fail {}: panic at {}:{}: {}",
                current(),
                at.file(),
                at.line(),
                info.message()
            ),
            None => println!("MOAT-TEST fail {}: panic: {}", current(), info.message()),
        }
    }
    psci::system_off()
}

/// Fails the test with `reason` (after printing both values) unless `actual == expected`.
///
/// ```ignore
/// check_eq!(record.ec(), ec::BRK64, "ESR_EL1.EC is not BRK64")?;
/// ```
#[macro_export]
macro_rules! check_eq {
    ($actual:expr, $expected:expr, $reason:expr) => {{
        let (actual, expected) = (&$actual, &$expected);
        if actual == expected {
            Ok(())
        } else {
            $crate::println!(
                "  {}: expected {:#x?}, got {:#x?}",
                stringify!($actual),
                expected,
                actual
            );
            Err::<(), &'static str>($reason)
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_finds_moat_test_among_other_bootargs() {
        assert_eq!(
            selected("console=ttyAMA0 moat.test=ram_load_store quiet"),
            Some("ram_load_store")
        );
    }

    #[test]
    fn selected_takes_the_first_of_two() {
        assert_eq!(selected("moat.test=a moat.test=b"), Some("a"));
    }

    #[test]
    fn bootarg_needs_the_whole_key_before_the_equals_sign() {
        assert_eq!(
            bootarg("moat.parangex=1 moat.parange=44", "moat.parange"),
            Some("44")
        );
        assert_eq!(bootarg("moat.parange", "moat.parange"), None);
    }

    #[test]
    fn selected_is_none_without_moat_test() {
        assert_eq!(selected(""), None);
        assert_eq!(selected("xmoat.test=a moat.testing=b"), None);
    }
}
