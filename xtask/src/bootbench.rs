//! `./x bench boot`: how much later Linux reaches `/init` under Moat than on QEMU alone, in
//! virtual time.
//!
//! QEMU runs with `-icount shift=0`: every instruction advances the virtual clock by 1 ns, so
//! the kernel's own printk timestamp on `Run /init as init process` counts the instructions
//! (and the idle time) the boot took — the same on every run and every machine, unlike wall
//! time on shared hosts. The same kernel, initramfs, command line and RAM size boot bare (EL1,
//! QEMU's firmware PSCI) and under Moat, on 1 and on 2 CPUs; each run then powers off.

use crate::build::{self, Artifacts};
use crate::error::{XResult, failed};
use crate::qemu::{ConsoleMode, Machine, Outcome, ScriptStep};
use crate::vm;
use std::process::ExitCode;
use std::time::Duration;

/// The kernel's line whose timestamp the benchmark reads.
const MARK: &str = "Run /init as init process";

/// Wait for `/init`, then for the shell, and power off.
const SCRIPT: &[ScriptStep] = &[
    ScriptStep {
        wait_for: MARK,
        send: "",
    },
    ScriptStep {
        wait_for: "/ # ",
        send: "poweroff -f\n",
    },
];

/// The time limit of one boot (TCG with `-icount` runs one CPU at a time).
const LIMIT: Duration = Duration::from_secs(240);

/// The guest's RAM, bare and under Moat (as the Linux test case has it).
const RAM_MIB: u64 = 512;

/// Runs the benchmark and prints one line per CPU count and the ratios.
///
/// # Errors
///
/// When the guest cannot be fetched or built, QEMU cannot start, or a boot does not reach
/// `/init`.
pub fn run() -> XResult<ExitCode> {
    let linux = crate::linux::default_linux()?;
    let artifacts = build::build_bare()?;
    println!("virtual time to `{MARK}` (-icount shift=0: 1 ns per instruction)");
    println!(
        "{:<6} {:>12} {:>12} {:>8}",
        "vCPUs", "bare (s)", "Moat (s)", "ratio"
    );
    for cpus in [1u32, 2] {
        let bare = seconds_to_init(&bare_boot(&linux, cpus)?, "bare", cpus)?;
        let moat = seconds_to_init(&moat_boot(&artifacts, &linux, cpus)?, "Moat", cpus)?;
        println!("{cpus:<6} {bare:>12.6} {moat:>12.6} {:>8.3}", moat / bare);
    }
    Ok(ExitCode::SUCCESS)
}

fn icount() -> Vec<String> {
    vec!["-icount".into(), "shift=0".into()]
}

fn bare_boot(linux: &crate::linux::LinuxGuest, cpus: u32) -> XResult<Outcome> {
    let machine = Machine {
        cpu: "max,pauth-impdef=on".into(),
        mem_mib: RAM_MIB,
        kernel: linux.kernel.clone(),
        initrd: Some(linux.initramfs.clone()),
        append: Some(crate::linux::default_append(0x0900_0000)),
        el2: false,
        smp: cpus,
    };
    machine.run_with(&icount(), ConsoleMode::Scripted(SCRIPT), Some(LIMIT))
}

fn moat_boot(
    artifacts: &Artifacts,
    linux: &crate::linux::LinuxGuest,
    cpus: u32,
) -> XResult<Outcome> {
    let scratch = crate::scratch::Scratch::new("bench")?;
    let bundle = scratch.join(&format!("linux-{cpus}.bundle"));
    let machine = vm::linux_under_moat(&artifacts.moat, linux, cpus, RAM_MIB, &bundle)?;
    machine.run_with(&icount(), ConsoleMode::Scripted(SCRIPT), Some(LIMIT))
}

/// The printk timestamp (seconds) of the `/init` line.
fn seconds_to_init(outcome: &Outcome, what: &str, cpus: u32) -> XResult<f64> {
    outcome
        .lines()
        .find(|line| line.contains(MARK))
        .and_then(printk_seconds)
        .ok_or_else(|| {
            failed(format!(
                "{what} on {cpus} CPU(s): Linux did not reach /init{}",
                if outcome.timed_out {
                    " (time limit)"
                } else {
                    ""
                }
            ))
        })
}

/// The seconds of a printk line's `[    1.234567]` prefix.
fn printk_seconds(line: &str) -> Option<f64> {
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    line[open + 1..close].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::printk_seconds;

    #[test]
    fn printk_timestamp_is_read_in_seconds() {
        assert_eq!(
            printk_seconds("[    0.943420] Run /init as init process"),
            Some(0.943_420)
        );
        assert_eq!(printk_seconds("Run /init as init process"), None);
        assert_eq!(printk_seconds("[  x ] Run /init"), None);
    }
}
