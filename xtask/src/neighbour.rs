//! `./x neighbour`: the hostile neighbour of issue 11. A Linux VM and a VM running the `chaos`
//! guest share the machine: Linux on CPU 0 writes a file of random bytes, records its checksum
//! and that of its busybox, and checks both again every few seconds in the background; the
//! chaos VM on CPUs 1 and 2 runs round after round of seeded hostile operations (random
//! accesses of every class, system registers, hypercalls, instruction words, GIC writes and
//! interrupt probes, and the operations that differ by design), each round ending with PSCI
//! `SYSTEM_RESET`, which restarts that VM alone (`on-reset = "restart"`: its RAM scrubbed, its
//! images loaded again, a new seed from its virtual counter). When the rounds are done the
//! Linux shell must answer, every check must have found the checksums unchanged, no chaos vCPU
//! may have hung or been stopped, and Linux powers the machine off.
//!
//! It is a command of its own, not part of `./x test`: 10 M operations take about an hour
//! of QEMU.

use crate::error::{XResult, failed, usage};
use crate::qemu::{ConsoleMode, MoatExit, ScriptStep};
use crate::scratch::Scratch;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

/// What `./x neighbour` runs.
pub struct Params {
    /// Chaos operations in all, over every round and vCPU.
    pub ops: u64,
    /// Rounds of the chaos VM: each ends with `SYSTEM_RESET`.
    pub rounds: u32,
    /// QEMU's `-cpu`.
    pub cpu: String,
}

/// The chaos VM's vCPUs (on machine CPUs 1 and 2).
const CHAOS_VCPUS: u64 = 2;

/// Ops per hashed block: 10 M ops in 10 rounds on 2 vCPUs is 500,000 per vCPU and round,
/// 489 blocks, well under the guest's 16,384.
const BLOCK: u64 = 1024;

impl Params {
    /// Operations per vCPU and round.
    fn ops_per_vcpu(&self) -> u64 {
        (self.ops / (u64::from(self.rounds) * CHAOS_VCPUS)).max(1)
    }

    /// The system description: Linux on CPU 0 powering the machine off, the chaos guest on
    /// CPUs 1 and 2 restarting at each reset; each VM has QEMU virt's map in its own IPA
    /// space.
    fn description(&self) -> String {
        let map = crate::system::VIRT_DEVICES;
        format!(
            r#"[[vm]]
name = "linux"
cpus = [0]
kernel = "linux"
bootargs = "console=ttyAMA0 earlycon=pl011,0x9000000"
on-poweroff = "power-off-machine"
on-reset = "power-off-machine"

[[vm.ram]]
base = 0x4000_0000
size = "256M"
{map}
[[vm]]
name = "chaos"
cpus = [1, 2]
guest = "chaos"
bootargs = "chaos.seed=clock chaos.ops={ops} chaos.smp={CHAOS_VCPUS} chaos.block={BLOCK} chaos.irq=1 chaos.full=1 chaos.el0=1 chaos.end=reset"
on-poweroff = "halt-vm"
on-reset = "restart"

[[vm.ram]]
base = 0x4000_0000
size = "128M"
{map}"#,
            ops = self.ops_per_vcpu()
        )
    }

    /// The console script: start Linux's checks, wait for every round's restart, then check
    /// once more, ask the shell, and power off.
    fn script(&self) -> Vec<ScriptStep> {
        let mut steps = vec![ScriptStep {
            wait_for: "[linux] Moat guest: Linux up",
            send: concat!(
                "dd if=/dev/urandom of=/tmp/w bs=1M count=16 2>/dev/null; ",
                "sha256sum /tmp/w /bin/busybox > /tmp/sums; ",
                "(while :; do sha256sum -c -s /tmp/sums && echo nb-same-$((6*7)) || echo nb-changed-$((6*7)); sleep 5; done) &\n"
            ),
        }];
        // Rounds are counted from Linux's first check on: the chaos VM may run many before
        // Linux's shell is up.
        steps.push(ScriptStep {
            wait_for: "nb-same-42",
            send: "",
        });
        for _ in 0..self.rounds {
            steps.push(ScriptStep {
                wait_for: "MOAT-VM: chaos restart",
                send: "",
            });
        }
        // The chaos VM's next round has begun: Linux has lived through every reset.
        steps.push(ScriptStep {
            wait_for: "[chaos] CHAOS-START",
            send: "kill %1; sha256sum -c -s /tmp/sums && echo nb-final-same-$((6*7)); echo nb-answers-$((6*7))\n",
        });
        steps.push(ScriptStep {
            wait_for: "nb-answers-42",
            send: "poweroff -f\n",
        });
        steps
    }

    /// The run's time limit: Linux's boot, and a generous rate for the chaos ops.
    fn limit(&self) -> Duration {
        Duration::from_secs(600 + self.ops / 2_000)
    }
}

/// What the console of a hostile-neighbour run shows.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The seeds of the chaos rounds that started, in order.
    pub seeds: Vec<String>,
    /// Chaos operations done, over every round and vCPU (`CHAOS-DONE`).
    pub ops_done: u64,
    /// Restarts of the chaos VM (`MOAT-VM: chaos restart`).
    pub restarts: u32,
    /// Linux's background checks that found the checksums unchanged.
    pub same: u32,
    /// What is wrong, if anything.
    pub problems: Vec<String>,
}

/// Reads the console of a run of `rounds` rounds.
pub fn judge(console: &str, rounds: u32, exit: Option<MoatExit>) -> Verdict {
    let mut v = Verdict::default();
    for line in crate::system::vm_stream(console, "chaos").lines() {
        if let Some(rest) = line.strip_prefix("CHAOS-START seed=") {
            v.seeds
                .push(rest.split_whitespace().next().unwrap_or("").to_owned());
        } else if let Some(rest) = line.strip_prefix("CHAOS-DONE ") {
            v.ops_done += rest
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        } else if line.starts_with("CHAOS-HANG") || line.starts_with("CHAOS-ERROR") {
            v.problems.push(format!("chaos VM: {line}"));
        }
    }
    // Moat's own lines.
    for line in console.lines() {
        if line.contains("MOAT-VM: chaos restart") {
            v.restarts += 1;
        } else if line.contains("vm-stopped") || line.contains("VM 'chaos' stopped") {
            v.problems.push(format!("a VM was stopped: {line}"));
        }
    }
    // The words Linux prints are made by its shell's arithmetic, so the echo of the typed
    // command (which has `$((6*7))`) never matches them.
    let linux = crate::system::vm_stream(console, "linux");
    v.same = linux.matches("nb-same-42").count() as u32;
    if linux.contains("nb-changed-42") {
        v.problems
            .push("Linux found its checksums changed".to_owned());
    }
    if v.restarts < rounds {
        v.problems.push(format!(
            "the chaos VM restarted {} times of {rounds}",
            v.restarts
        ));
    }
    if v.same == 0 {
        v.problems
            .push("Linux's background check never reported".to_owned());
    }
    if !linux.contains("nb-final-same-42") {
        v.problems
            .push("Linux's last check did not find its checksums unchanged".to_owned());
    }
    if !linux.contains("nb-answers-42") {
        v.problems.push("Linux's shell did not answer".to_owned());
    }
    if exit != Some(MoatExit::PowerOff) {
        v.problems.push(format!(
            "the machine ended with {exit:?}, not Linux's power-off"
        ));
    }
    v
}

/// Runs `./x neighbour`.
///
/// # Errors
///
/// A usage error for bad parameters; a failure when the build or QEMU fails.
pub fn command(params: &Params) -> XResult<ExitCode> {
    if params.rounds == 0 {
        return Err(usage("--rounds: want at least 1"));
    }
    if params.ops_per_vcpu().div_ceil(BLOCK) > 16 * 1024 {
        return Err(usage(format!(
            "--ops: at most {} per round",
            16 * 1024 * BLOCK * CHAOS_VCPUS
        )));
    }
    let scratch = Scratch::new("neighbour")?;
    let path = scratch.join("neighbour.toml");
    std::fs::write(&path, params.description())
        .map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let file = moat_config::SystemFile::from_toml_str(&params.description(), scratch.path())
        .map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let images = file
        .images
        .ok_or_else(|| failed("the neighbour description is not a system description"))?;
    let run = crate::system::SystemRun {
        path: &path,
        system: file.system,
        images,
        cpu: &params.cpu,
        timeout: None,
        moat_append: None,
        qemu_args: &[],
    };
    let (machine, machine_scratch) = run.machine()?;
    println!(
        "hostile neighbour: -cpu {}, {} rounds of {} ops on each of {CHAOS_VCPUS} chaos vCPUs beside Linux",
        params.cpu,
        params.rounds,
        params.ops_per_vcpu()
    );
    // The script lives as long as the run; the command ends after it.
    let script: &'static [ScriptStep] = Box::leak(params.script().into_boxed_slice());
    let outcome = machine.run(ConsoleMode::Scripted(script), Some(params.limit()))?;
    drop(machine_scratch);
    let log = crate::build::repo_root().join("target/moat/neighbour-console.log");
    std::fs::write(&log, &outcome.console)
        .map_err(|e| failed(format!("{}: {e}", log.display())))?;
    println!("the whole console: {}", log.display());
    let verdict = judge(&outcome.console, params.rounds, outcome.exit);
    let mut report = String::new();
    let _ = writeln!(
        report,
        "{} chaos ops in {} rounds (seeds {}), {} restarts; Linux's checks: {} unchanged; {:.0} s",
        verdict.ops_done,
        verdict.seeds.len(),
        verdict.seeds.join(" "),
        verdict.restarts,
        verdict.same,
        outcome.elapsed.as_secs_f64()
    );
    if outcome.timed_out {
        let _ = writeln!(report, "stopped after {:?} (time limit)", params.limit());
    }
    for problem in &verdict.problems {
        let _ = writeln!(report, "FAILED: {problem}");
    }
    print!("{report}");
    Ok(if verdict.problems.is_empty() && !outcome.timed_out {
        println!("hostile neighbour: Linux undisturbed");
        ExitCode::SUCCESS
    } else {
        let tail: Vec<&str> = outcome.console.lines().rev().take(30).collect();
        eprintln!("--- console tail:");
        tail.iter().rev().for_each(|l| eprintln!("{l}"));
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            ops: 10_000_000,
            rounds: 10,
            cpu: "max".to_owned(),
        }
    }

    #[test]
    fn the_description_is_a_valid_two_vm_system() {
        let p = params();
        let file =
            moat_config::SystemFile::from_toml_str(&p.description(), std::path::Path::new("."))
                .expect("parses");
        assert_eq!(file.system.vms.len(), 2);
        file.system.validate(None, Some(48)).expect("valid");
        assert!(p.description().contains("chaos.ops=500000 "));
    }

    #[test]
    fn the_script_waits_for_every_round() {
        let steps = params().script();
        let restarts = steps
            .iter()
            .filter(|s| s.wait_for == "MOAT-VM: chaos restart")
            .count();
        assert_eq!(restarts, 10);
        assert_eq!(steps.last().map(|s| s.send), Some("poweroff -f\n"));
    }

    const GOOD: &str = "[chaos] CHAOS-START seed=0x12 ops=5 smp=2 block=1024 pa_bits=48\n\
        [linux] nb-same-42\n\
        [chaos] CHAOS-DONE 0 5\n[chaos] CHAOS-DONE 1 5\n\
        MOAT-VM: chaos restart\n\
        [linux] nb-final-same-42\n[linux] nb-answers-42\n";

    #[test]
    fn a_clean_run_has_no_problems() {
        let v = judge(GOOD, 1, Some(MoatExit::PowerOff));
        assert_eq!(v.problems, Vec::<String>::new());
        assert_eq!((v.ops_done, v.restarts, v.same), (10, 1, 1));
        assert_eq!(v.seeds, vec!["0x12".to_owned()]);
    }

    #[test]
    fn every_kind_of_disturbance_is_a_problem() {
        for bad in [
            GOOD.replace("nb-same-42", "nb-changed-42"),
            GOOD.replace("MOAT-VM: chaos restart", "MOAT-VM: chaos vm-stopped"),
            GOOD.replace("[chaos] CHAOS-DONE 1 5", "[chaos] CHAOS-HANG 1 3"),
            GOOD.replace("[linux] nb-answers-42", ""),
            GOOD.replace("[linux] nb-final-same-42", ""),
        ] {
            assert!(
                !judge(&bad, 1, Some(MoatExit::PowerOff)).problems.is_empty(),
                "{bad}"
            );
        }
        assert!(!judge(GOOD, 2, Some(MoatExit::PowerOff)).problems.is_empty());
        assert!(
            !judge(GOOD, 1, Some(MoatExit::VmStopped))
                .problems
                .is_empty()
        );
    }
}
