//! `./x fuzz [TARGET] [--time S] [--asan]`: the coverage-guided fuzz targets of `fuzz/`
//! (cargo-fuzz, libFuzzer), one or all, each for `S` seconds; and their short run in
//! `./x test`.
//!
//! cargo-fuzz 0.13 is installed on first use from crates.io into `target/moat/tools/` (kept
//! there; `cargo install` is skipped while it is present). The targets are built once with
//! `cargo fuzz build -s none` — no sanitizer, which rustup's stable toolchain supports; the
//! code under test forbids `unsafe`, so a panic or a failed assertion is what a finding looks
//! like — and then each binary is run directly. `--asan` builds with AddressSanitizer instead
//! (`-s address`, which passes `-Zsanitizer=address`: stable rustc accepts it with
//! `RUSTC_BOOTSTRAP=1`), into its own target directory.
//!
//! Corpora grow in `target/fuzz/corpus/<target>/` (not committed); the committed seeds in
//! `fuzz/seeds/<target>/` are read too. A finding is written to
//! `target/fuzz/artifacts/<target>/` and reproduced by running the target's binary on that
//! file.

use crate::build::{out_dir, repo_root};
use crate::error::{XResult, failed, usage};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// Every target in `fuzz/fuzz_targets/`, in the order they run.
pub const TARGETS: [&str; 8] = [
    "esr", "insn", "devices", "smccc", "config", "bundle", "platform", "pci",
];

/// The cargo-fuzz release series the project uses.
const CARGO_FUZZ_VERSION: &str = "^0.13";

/// Seconds per target when `--time` is not given.
pub const DEFAULT_SECONDS: u64 = 60;

/// Seconds per target in `./x test`.
pub const SMOKE_SECONDS: u64 = 5;

/// The outcome of one target's run.
pub struct Run {
    /// The target's name.
    pub target: &'static str,
    /// Seconds it ran.
    pub seconds: f64,
    /// libFuzzer's `stat::number_of_executed_units` (0 when a crash ended the run early).
    pub executions: u64,
    /// The file a crash was written to, with the first lines of the panic; `None` when the
    /// run ended without a finding.
    pub finding: Option<String>,
}

/// `./x fuzz`: runs `target` (or every target) for `seconds` each and prints one line per
/// target and an `N passed, N failed` line.
///
/// # Errors
///
/// An unknown target (usage), or cargo-fuzz that cannot be installed or build the targets.
pub fn command(target: Option<&str>, seconds: u64, asan: bool) -> XResult<ExitCode> {
    let targets: Vec<&'static str> = match target {
        None => TARGETS.to_vec(),
        Some(name) => match TARGETS.iter().find(|t| **t == name) {
            Some(t) => vec![*t],
            None => {
                return Err(usage(format!(
                    "no fuzz target `{name}` (targets: {})",
                    TARGETS.join(", ")
                )));
            }
        },
    };
    let binaries = build(asan)?;
    let (mut passed, mut failed) = (0, 0);
    for target in targets {
        let run = run_target(&binaries, target, seconds)?;
        println!("{}", run.line());
        if run.finding.is_some() {
            failed += 1;
        } else {
            passed += 1;
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

impl Run {
    /// `PASS fuzz_esr (60.1 s, 5512312 executions)` or `FAIL ...: <finding>`.
    pub fn line(&self) -> String {
        let what = format!(
            "fuzz_{} ({:.1} s, {} executions)",
            self.target, self.seconds, self.executions
        );
        match &self.finding {
            None => format!("PASS {what}"),
            Some(finding) => format!("FAIL {what}: {finding}"),
        }
    }
}

/// The cargo-fuzz binary, installed into `target/moat/tools/` unless it is there.
fn cargo_fuzz() -> XResult<PathBuf> {
    let root = out_dir().join("tools");
    let binary = root.join("bin").join("cargo-fuzz");
    if binary.is_file() {
        return Ok(binary);
    }
    eprintln!(
        "x: installing cargo-fuzz {CARGO_FUZZ_VERSION} into {}",
        root.display()
    );
    crate::build::run_step(
        Command::new("cargo").args([
            "install",
            "--locked",
            "--quiet",
            "--root",
            &root.to_string_lossy(),
            "--version",
            CARGO_FUZZ_VERSION,
            "cargo-fuzz",
        ]),
        "installing cargo-fuzz",
    )?;
    Ok(binary)
}

/// Builds every target; returns the directory holding their binaries.
///
/// # Errors
///
/// cargo-fuzz cannot be installed, or the build fails.
pub fn build(asan: bool) -> XResult<PathBuf> {
    let cargo_fuzz = cargo_fuzz()?;
    let target_dir = repo_root()
        .join("target")
        .join(if asan { "fuzz-asan" } else { "fuzz" });
    let mut cmd = Command::new(&cargo_fuzz);
    cmd.current_dir(repo_root().join("fuzz"))
        .args(["fuzz", "build", "--target-dir"])
        .arg(&target_dir)
        .env_remove("RUSTUP_TOOLCHAIN");
    if asan {
        cmd.args(["-s", "address"]).env("RUSTC_BOOTSTRAP", "1");
    } else {
        cmd.args(["-s", "none"]);
    }
    crate::build::run_step(&mut cmd, "building the fuzz targets (cargo fuzz build)")?;
    let triple = host_triple()?;
    Ok(target_dir.join(triple).join("release"))
}

/// The host's target triple (`rustc -vV`'s `host:`), under which cargo-fuzz puts binaries.
fn host_triple() -> XResult<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .map_err(|e| failed(format!("cannot run rustc -vV: {e}")))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| failed("rustc -vV names no host"))
}

/// Runs one target's binary for `seconds` on its corpus and seeds.
///
/// # Errors
///
/// The binary cannot be started or its directories made.
pub fn run_target(binaries: &Path, target: &'static str, seconds: u64) -> XResult<Run> {
    let fuzz_dir = repo_root().join("target").join("fuzz");
    let corpus = fuzz_dir.join("corpus").join(target);
    let artifacts = fuzz_dir.join("artifacts").join(target);
    for dir in [&corpus, &artifacts] {
        std::fs::create_dir_all(dir)
            .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut cmd = Command::new(binaries.join(target));
    cmd.arg(&corpus);
    let seeds = repo_root().join("fuzz").join("seeds").join(target);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    let mut prefix = artifacts.into_os_string();
    prefix.push("/");
    let mut prefix_arg = std::ffi::OsString::from("-artifact_prefix=");
    prefix_arg.push(prefix);
    cmd.arg(format!("-max_total_time={seconds}"))
        .arg(prefix_arg)
        .arg("-print_final_stats=1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd
        .output()
        .map_err(|e| failed(format!("cannot run fuzz target {target}: {e}")))?;
    let log = String::from_utf8_lossy(&out.stderr);
    let executions = log
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let finding = (!out.status.success()).then(|| describe_finding(&log, out.status));
    Ok(Run {
        target,
        seconds: start.elapsed().as_secs_f64(),
        executions,
        finding,
    })
}

/// The panic message and the artifact libFuzzer wrote, from its log.
fn describe_finding(log: &str, status: std::process::ExitStatus) -> String {
    let panic: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.contains("panicked at"))
        .take(4)
        .collect();
    let artifact = log
        .lines()
        .find_map(|l| l.split("Test unit written to ").nth(1))
        .unwrap_or("no artifact written");
    if panic.is_empty() {
        format!("exit {status}; {artifact}")
    } else {
        format!("{} [{artifact}]", panic.join(" | "))
    }
}
