//! `./x kut`: every test of a kvm-unit-tests build (the suite's own guest-side tests of Arm
//! virtualization; see `../shared/kvm-unit-tests/README.md`) under Moat and bare on QEMU, side
//! by side, both under `-icount shift=0,sleep=off` so that what a test times (the timer's
//! interrupt latency) is virtual time on both sides. A table gives each test's result on each
//! side and, where Moat is known not to pass yet, why ([`EXPECTED`]). The suite passes when
//! every test that passes bare passes under Moat, except the listed ones.
//!
//! The images are test input read from a build directory; nothing of the suite is copied here.

#[path = "kut/cfg.rs"]
mod cfg;

use crate::build::Artifacts;
use crate::error::{XResult, failed, usage};
use crate::input::Named;
use crate::qemu::{ConsoleMode, Machine, Outcome, ScriptStep};
use crate::scratch::Scratch;
use crate::vm::{self, GuestKind, VmRequest};
use cfg::Test;
use moat_config::GuestArch;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `$MAX_SMP` of the suite's files: the vCPUs of `psci`, `selftest-smp`, `gicv3-*`.
pub const MAX_SMP: u32 = 4;

/// The time limit of one boot (a hung test costs this much): the timer test runs for minutes
/// of host time under `-icount` on a busy 2-core machine.
const LIMIT: Duration = Duration::from_secs(300);

/// `micro-bench`'s limit: the longest test of the suite. On this project's 2-core machine it
/// took 177 s of host time bare alone, and 200 s with both sides side by side beside two
/// low-priority fuzzers; with more load it passed 300 s on both sides.
const MICRO_BENCH_LIMIT: Duration = Duration::from_secs(900);

/// The time limit of `test`'s boots.
fn limit(test: &Test) -> Duration {
    if test.file == "micro-bench.flat" {
        MICRO_BENCH_LIMIT
    } else {
        LIMIT
    }
}

/// Both sides run in virtual time: one instruction per ns, no sleeping while idle.
const ICOUNT: [&str; 2] = ["-icount", "shift=0,sleep=off"];

/// The environment the images read from their initrd (`KEY=VALUE` lines), as the suite's own
/// runner passes it under TCG.
const ENVIRONMENT: &[u8] = b"QEMU_ACCEL=tcg\n";

/// `micro-bench`'s `mmio_read_user` reads a device register: by default a virtio-mmio transport
/// at 0x0a00_0000, which a Moat VM lacks; both sides read the PL011's UARTFR instead.
const MICRO_BENCH_MMIO: &str = "mmio-addr=0x09000018";

/// The suite's migration prompts (its `lib/migrate.c`), each waiting for a key: a test may
/// migrate once, many times (quiet), continuously, or skip its migration and still wait. Both
/// sides are answered at once, every time (no migration happens; the tests check that state
/// survived the pause).
const MIGRATE: &[ScriptStep] = &[
    ScriptStep {
        wait_for: "Now migrate the VM, then press a key to continue",
        send: "\n",
    },
    ScriptStep {
        wait_for: "Now migrate the VM (quiet)",
        send: "\n",
    },
    ScriptStep {
        wait_for: "Skipped VM migration (quiet)",
        send: "\n",
    },
    ScriptStep {
        wait_for: "Begin continuous migration",
        send: "\n",
    },
    // Printed twice, plain and "(quiet)", for one key: the second is the one answered.
    ScriptStep {
        wait_for: "End continuous migration (quiet)",
        send: "\n",
    },
];

/// Tests known not to pass under Moat yet, each with the reason; this list shrinks as Moat
/// grows the missing parts.
pub const EXPECTED: &[(&str, &str)] = &[
    ("pci-test", "no PCI host bridge in a Moat VM"),
    ("its-introspection", "no GICv3 ITS in a Moat VM"),
    ("its-trigger", "no GICv3 ITS in a Moat VM"),
    ("its-migration", "no GICv3 ITS in a Moat VM"),
    ("its-pending-migration", "no GICv3 ITS in a Moat VM"),
    (
        "its-migrate-unmapped-collection",
        "no GICv3 ITS in a Moat VM",
    ),
    ("pl031", "no PL031 RTC in a Moat VM"),
    ("mte-sync", "MTE hidden from the guest"),
    ("mte-async", "MTE hidden from the guest"),
    ("mte-asymm", "MTE hidden from the guest"),
    (
        "fpu-context",
        "SVE hidden from the guest (the test's second half)",
    ),
];

/// The reason a test is listed in [`EXPECTED`].
pub fn expected(name: &str) -> Option<&'static str> {
    EXPECTED.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

/// One architecture's build: its directory, the `arch` of its file's entries, and the CPUs.
#[derive(Clone, Copy, Debug)]
pub struct Build {
    /// `arm64` or `arm`.
    pub name: &'static str,
    guest: GuestArch,
    /// Moat's machine.
    moat_cpu: &'static str,
    /// The bare reference.
    bare_cpu: &'static str,
}

/// The AArch64 build: both sides on QEMU's `max`.
pub const ARM64: Build = Build {
    name: "arm64",
    guest: GuestArch::Aarch64,
    moat_cpu: "max,pauth-impdef=on",
    bare_cpu: "max,pauth-impdef=on",
};

/// The AArch32 build: an `arch = "aarch32"` VM on `cortex-a72` (a core with AArch32 EL1);
/// bare on `cortex-a15` (the suite's reference, a different core: QEMU's A32 emulation, run by
/// `qemu-system-aarch64`, which has every `qemu-system-arm` CPU).
pub const ARM: Build = Build {
    name: "arm",
    guest: GuestArch::Aarch32,
    moat_cpu: "cortex-a72",
    bare_cpu: "cortex-a15",
};

/// Where QEMU's `-kernel` puts a raw AArch32 image, and where the suite's `arm/` images are
/// linked to run (they are not position-independent): RAM base + 0x1_0000.
const A32_LOAD: u32 = 0x4001_0000;

/// The AArch32 image as a 32-bit Arm ELF file with one `PT_LOAD` at [`A32_LOAD`] and its entry
/// there: Moat's loader puts a raw image at RAM base + 0x8_0000 (the arm64 `Image` rule), so
/// the address the image needs is named by the ELF file (ELF for the Arm Architecture: `ET_EXEC`,
/// `EM_ARM` = 40, `EF_ARM_EABI_VER5`).
fn a32_elf(flat: &[u8]) -> Vec<u8> {
    const EHSIZE: u16 = 52;
    const PHENTSIZE: u16 = 32;
    let offset = u32::from(EHSIZE + PHENTSIZE);
    let size = u32::try_from(flat.len()).unwrap_or(u32::MAX);
    let mut elf = b"\x7fELF\x01\x01\x01".to_vec();
    elf.resize(16, 0);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type ET_EXEC
    elf.extend_from_slice(&40u16.to_le_bytes()); // e_machine EM_ARM
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&A32_LOAD.to_le_bytes()); // e_entry
    elf.extend_from_slice(&u32::from(EHSIZE).to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0x0500_0000u32.to_le_bytes()); // e_flags
    for half in [EHSIZE, PHENTSIZE, 1, 40, 0, 0] {
        // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        elf.extend_from_slice(&half.to_le_bytes());
    }
    // PT_LOAD: p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags (RWX), p_align
    for word in [1, offset, A32_LOAD, A32_LOAD, size, size, 7, 4] {
        elf.extend_from_slice(&word.to_le_bytes());
    }
    elf.extend_from_slice(flat);
    elf
}

/// A test's result on one side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Result {
    /// `EXIT: STATUS=1`, with the `SUMMARY` line's pass and failure counts.
    Pass(Counts),
    /// `EXIT: STATUS=77`: everything skipped.
    Skip(Counts),
    /// Another status, or none (the reason).
    Fail(Option<Counts>, String),
    /// Not run on this side (the reason).
    NotRun(&'static str),
}

/// The `SUMMARY:` line's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counts {
    /// Checks that passed.
    pub pass: u32,
    /// Unexpected failures.
    pub fail: u32,
}

impl fmt::Display for Result {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = |c: &Counts| format!(" {}/{}", c.pass, c.fail);
        match self {
            Self::Pass(c) => write!(f, "PASS{}", counts(c)),
            Self::Skip(c) => write!(f, "SKIP{}", counts(c)),
            Self::Fail(c, why) => write!(
                f,
                "FAIL{} ({why})",
                c.as_ref().map_or(String::new(), counts)
            ),
            Self::NotRun(why) => write!(f, "not run ({why})"),
        }
    }
}

/// Reads a test's console: `EXIT: STATUS=n` (1 pass, 77 skip, else fail) and the counts of
/// `SUMMARY: N tests[, F unexpected failures][, X expected failures][, S skipped]`.
pub fn result_of(console: &str, end: &str) -> Result {
    let counts = console.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("SUMMARY: ")?;
        let mut figures = rest.split(", ");
        let total: u32 = figures.next()?.strip_suffix(" tests")?.parse().ok()?;
        let mut c = Counts::default();
        let mut not_passed = 0;
        for part in figures {
            let (n, what) = part.split_once(' ')?;
            let n: u32 = n.parse().ok()?;
            not_passed += n;
            if what == "unexpected failures" || what == "unexpected failure" {
                c.fail = n;
            }
        }
        c.pass = total.saturating_sub(not_passed);
        Some(c)
    });
    let status = console.lines().find_map(|l| {
        let at = l.find("EXIT: STATUS=")?;
        let digits: String = l[at + 13..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<u32>().ok()
    });
    match (status, counts) {
        (Some(1), c) => Result::Pass(c.unwrap_or_default()),
        (Some(77), c) => Result::Skip(c.unwrap_or_default()),
        (Some(n), c) => Result::Fail(c, format!("status {n}")),
        (None, c) => Result::Fail(c, end.into()),
    }
}

/// One row of the table.
#[derive(Debug)]
pub struct Row {
    /// The test's name (with the run's number when repeated).
    pub name: String,
    /// Under Moat.
    pub moat: Result,
    /// Bare.
    pub bare: Result,
    /// Why Moat is known not to pass, if it is listed.
    pub expected: Option<&'static str>,
    /// The last console lines of each side that failed, for the reader.
    pub tails: Vec<String>,
}

impl Row {
    /// Whether the row breaks the rule: passes bare, not under Moat, and is not listed.
    pub fn is_failure(&self) -> bool {
        matches!(self.bare, Result::Pass(_))
            && !matches!(self.moat, Result::Pass(_))
            && self.expected.is_none()
    }
}

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Only these tests (by section name); all when empty.
    pub only: Vec<String>,
    /// How many times each (a row per run).
    pub runs: u32,
}

/// The builds found in `dir`: `dir` itself when it holds a `unittests.cfg` (AArch32 when its
/// name is `arm`), else its `arm64/` and `arm/`.
pub fn builds_in(dir: &Path) -> Vec<(PathBuf, Build)> {
    if dir.join("unittests.cfg").is_file() {
        let build = if dir.file_name().is_some_and(|n| n == "arm") {
            ARM
        } else {
            ARM64
        };
        return vec![(dir.to_path_buf(), build)];
    }
    [ARM64, ARM]
        .into_iter()
        .map(|b| (dir.join(b.name), b))
        .filter(|(d, _)| d.join("unittests.cfg").is_file())
        .collect()
}

/// Runs the selected tests of one build, printing each row as it ends; returns the rows.
///
/// # Errors
///
/// An unreadable or malformed `unittests.cfg`, a test name in `only` that it lacks, or a VM
/// that cannot be assembled.
pub fn run_build(
    artifacts: &Artifacts,
    dir: &Path,
    build: Build,
    selection: &Selection,
) -> XResult<Vec<Row>> {
    let cfg_path = dir.join("unittests.cfg");
    let text = std::fs::read_to_string(&cfg_path)
        .map_err(|e| usage(format!("{}: {e}", cfg_path.display())))?;
    let tests =
        cfg::parse(&text, MAX_SMP).map_err(|e| usage(format!("{}: {e}", cfg_path.display())))?;
    if let Some(unknown) = selection
        .only
        .iter()
        .find(|n| !tests.iter().any(|t| &t.name == *n))
    {
        return Err(usage(format!(
            "--only {unknown}: {} has no such test",
            cfg_path.display()
        )));
    }
    let tests: Vec<Test> = tests
        .into_iter()
        .filter(|t| t.arch.as_deref().is_none_or(|a| a == build.name))
        .filter(|t| selection.only.is_empty() || selection.only.contains(&t.name))
        .collect();
    let scratch = Scratch::new("kut")?;
    let env = scratch.join("env");
    std::fs::write(&env, ENVIRONMENT).map_err(|e| failed(format!("{}: {e}", env.display())))?;
    println!(
        "kvm-unit-tests {} ({}): Moat on -cpu {}, bare on -cpu {}{}, both -icount shift=0,sleep=off; \
         result PASS/SKIP/FAIL pass-count/failure-count",
        build.name,
        dir.display(),
        build.moat_cpu,
        build.bare_cpu,
        if build.moat_cpu == build.bare_cpu {
            ""
        } else {
            " (a different core)"
        },
    );
    println!("{:<34} {:<26} {:<26} expected", "test", "Moat", "bare");
    let mut rows = Vec::new();
    for test in &tests {
        for run in 1..=selection.runs.max(1) {
            let name = if selection.runs > 1 {
                format!("{} #{run}", test.name)
            } else {
                test.name.clone()
            };
            let row = run_test(artifacts, dir, build, test, &env, &scratch, name)?;
            println!(
                "{:<34} {:<26} {:<26} {}{}",
                row.name,
                row.moat.to_string(),
                row.bare.to_string(),
                row.expected.unwrap_or(""),
                if row.is_failure() {
                    "  <- fails under Moat only"
                } else {
                    ""
                }
            );
            for line in &row.tails {
                println!("{line}");
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Runs `test` bare and under Moat at the same time.
fn run_test(
    artifacts: &Artifacts,
    dir: &Path,
    build: Build,
    test: &Test,
    env: &Path,
    scratch: &Scratch,
    name: String,
) -> XResult<Row> {
    let image = dir.join(&test.file);
    let mut args = test.args.clone();
    if test.file == "micro-bench.flat" && !args.contains("mmio-addr") {
        args = format!("{args} {MICRO_BENCH_MMIO}").trim().into();
    }
    let limit = limit(test);
    let mode = if test.groups.iter().any(|g| g == "migration") {
        ConsoleMode::Answering(MIGRATE)
    } else {
        ConsoleMode::Captured
    };
    let mem_mib = test.mem_mib.unwrap_or(128);
    let bare = Machine {
        cpu: build.bare_cpu.into(),
        mem_mib,
        kernel: image.clone(),
        initrd: Some(env.to_path_buf()),
        append: Some(args.clone()),
        el2: false,
        gic_version: 3,
        smp: test.smp,
    };
    let mut bare_extra: Vec<String> = ICOUNT.iter().map(|s| (*s).into()).collect();
    if let Some(v) = test.gic_version {
        bare_extra.extend(["-machine".into(), format!("gic-version={v}")]);
    }
    if test.mte {
        bare_extra.extend(["-machine".into(), "mte=on".into()]);
    }
    let moat_side = || -> XResult<(Result, Vec<String>)> {
        if test.gic_version.is_some_and(|v| v != 2 && v != 3) {
            return Ok((Result::NotRun("no such GIC in a Moat VM"), Vec::new()));
        }
        // A GICv2 test runs on QEMU virt with gic-version=2, its VM given a GICv2.
        let request = VmRequest {
            mem: Some(mem_mib << 20),
            bootargs: Some(args.clone()),
            cpus: Some(test.smp),
            gic_v2: test.gic_version == Some(2),
            ..VmRequest::default()
        };
        let mut config = vm::describe(&request, build.moat_cpu)?;
        config.arch = build.guest;
        let guest = if build.guest == GuestArch::Aarch32 {
            let flat =
                std::fs::read(&image).map_err(|e| usage(format!("{}: {e}", image.display())))?;
            let elf = scratch.join(&format!("{}.elf", test.name));
            vm::write_file(&elf, &a32_elf(&flat))?;
            elf
        } else {
            image.clone()
        };
        let bytes = vm::bundle(
            &config,
            Named::new("kvm-unit-tests image", &guest),
            GuestKind::Any,
            Some(Named::new("environment", env)),
        )?;
        let bundle = scratch.join(&format!("{}.bundle", test.name));
        vm::write_file(&bundle, &bytes)?;
        let machine = Machine {
            cpu: build.moat_cpu.into(),
            mem_mib: vm::checked_machine_mem_mib(&config, bytes.len() as u64)?,
            kernel: artifacts.moat.clone(),
            initrd: Some(bundle),
            append: None,
            el2: true,
            gic_version: if config.has_gic_v2() { 2 } else { 3 },
            smp: config.cpus,
        };
        let extra: Vec<String> = ICOUNT.iter().map(|s| (*s).into()).collect();
        let outcome = machine.run_until(&extra, mode, Some(limit), Some("EXIT: STATUS="))?;
        Ok(judge(&outcome, true, limit))
    };
    let (moat, bare) = std::thread::scope(|s| {
        let bare = s.spawn(|| {
            bare.run_until(&bare_extra, mode, Some(limit), Some("EXIT: STATUS="))
                .map(|o| judge(&o, false, limit))
        });
        let moat = moat_side();
        (
            moat,
            bare.join()
                .map_err(|_| failed("the bare run's thread panicked")),
        )
    });
    let ((moat, mut tails), (bare, bare_tail)) = (moat?, bare??);
    tails.extend(bare_tail);
    Ok(Row {
        name,
        moat,
        bare,
        expected: expected(&test.name),
        tails,
    })
}

/// A run's result, with why when the console has no `EXIT:` line.
fn judge(outcome: &Outcome, moat: bool, limit: Duration) -> (Result, Vec<String>) {
    let end = if outcome.timed_out {
        format!("no EXIT line in {} s", limit.as_secs())
    } else if let Some(exit) = outcome.exit.filter(|_| moat) {
        format!("no EXIT line; MOAT-EXIT {exit:?}")
    } else {
        "no EXIT line".into()
    };
    let result = result_of(&outcome.console, &end);
    let side = if moat { "Moat" } else { "bare" };
    let tail = if matches!(result, Result::Fail(..)) {
        let lines: Vec<&str> = outcome.lines().collect();
        lines[lines.len().saturating_sub(TAIL)..]
            .iter()
            .map(|l| format!("    {side} | {l}"))
            .collect()
    } else {
        Vec::new()
    };
    (result, tail)
}

/// How many console lines a failed side shows.
const TAIL: usize = 6;

/// `./x kut`: the table of every build in `dir`; fails when a test passes bare but not under
/// Moat and is not listed.
///
/// # Errors
///
/// A directory without a build, or a build that cannot be run (see [`run_build`]).
pub fn command(artifacts: &Artifacts, dir: &Path, selection: &Selection) -> XResult<bool> {
    let builds = builds_in(dir);
    if builds.is_empty() {
        return Err(usage(format!(
            "--dir {}: no unittests.cfg there, nor in its arm64/ or arm/",
            dir.display()
        )));
    }
    let start = Instant::now();
    let mut failures = Vec::new();
    let mut total = 0;
    for (dir, build) in builds {
        let rows = run_build(artifacts, &dir, build, selection)?;
        total += rows.len();
        failures.extend(
            rows.into_iter()
                .filter(Row::is_failure)
                .map(|r| format!("{} {}", build.name, r.name)),
        );
    }
    println!(
        "kvm-unit-tests: {total} runs in {:.0} s; {} pass bare but not under Moat (unlisted){}",
        start.elapsed().as_secs_f64(),
        failures.len(),
        if failures.is_empty() {
            String::new()
        } else {
            format!(": {}", failures.join(", "))
        }
    );
    Ok(failures.is_empty())
}

/// The tests `./x test` runs (the whole suite takes too long for it; `./x kut` runs every
/// test): the framework's setup, exception vectors and SMP bring-up, PSCI with `MAX_SMP` vCPUs
/// racing `CPU_ON`, the PMU cycle counter, debug single-step and cache maintenance. (`gicv3-*`
/// with 4 vCPUs and `timer` run for minutes under `-icount` here, bare as under Moat.)
pub const QUICK: [&str; 7] = [
    "selftest-setup",
    "selftest-vectors-kernel",
    "selftest-smp",
    "psci",
    "pmu-cycle-counter",
    "debug-sstep",
    "cache",
];

/// Added to [`QUICK`] for the AArch32 build only: `gicv3-ipi` sends its IPIs with the 64-bit
/// `MCRR p15, 0, Rt, Rt2, c12` (`ICC_SGI1R`), which once stopped the VM (EC 0x04 had no
/// outcome). The AArch64 build's 4-vCPU GICv3 tests take minutes under `-icount`, bare as
/// under Moat, and stay in `./x kut`.
pub const QUICK_AARCH32: [&str; 1] = ["gicv3-ipi"];

/// `./x test`'s run: [`QUICK`] from every build in `dir`; each row is a case named
/// `kut_<build>_<test>` that fails when it passes bare but not under Moat (unlisted).
///
/// # Errors
///
/// A build that cannot be run (see [`run_build`]).
pub fn quick(
    artifacts: &Artifacts,
    dir: &Path,
) -> XResult<Vec<(String, std::result::Result<(), String>)>> {
    let mut cases = Vec::new();
    for (dir, build) in builds_in(dir) {
        let extra: &[&str] = if build.name == ARM.name {
            &QUICK_AARCH32
        } else {
            &[]
        };
        let selection = Selection {
            only: QUICK.iter().chain(extra).map(|s| (*s).into()).collect(),
            runs: 1,
        };
        for row in run_build(artifacts, &dir, build, &selection)? {
            let verdict = if row.is_failure() {
                Err(format!(
                    "passes bare ({}), not under Moat ({})",
                    row.bare, row.moat
                ))
            } else {
                Ok(())
            };
            cases.push((format!("kut_{}_{}", build.name, row.name), verdict));
        }
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_1_is_a_pass_with_the_summarys_counts() {
        let console = "PASS: a\nSKIP: b\nSUMMARY: 5 tests, 1 skipped\n\nEXIT: STATUS=1";
        assert_eq!(
            result_of(console, ""),
            Result::Pass(Counts { pass: 4, fail: 0 })
        );
    }

    #[test]
    fn exit_status_77_is_a_skip_and_another_a_failure() {
        assert!(matches!(
            result_of("SUMMARY: 1 tests, 1 skipped\nEXIT: STATUS=77\n", ""),
            Result::Skip(_)
        ));
        let console = "SUMMARY: 9 tests, 2 unexpected failures, 1 expected failures, 1 skipped\nEXIT: STATUS=3\n";
        assert_eq!(
            result_of(console, ""),
            Result::Fail(Some(Counts { pass: 5, fail: 2 }), "status 3".into())
        );
    }

    #[test]
    fn no_exit_line_is_a_failure_saying_how_the_run_ended() {
        let r = result_of("PASS: a\n", "no EXIT line in 120 s");
        assert_eq!(r, Result::Fail(None, "no EXIT line in 120 s".into()));
    }

    #[test]
    fn a_failure_counts_only_when_bare_passes_and_the_test_is_not_listed() {
        let pass = Result::Pass(Counts::default());
        let fail = Result::Fail(None, "status 3".into());
        let row = |name: &str, moat: &Result, bare: &Result| Row {
            name: name.into(),
            moat: moat.clone(),
            bare: bare.clone(),
            expected: expected(name),
            tails: Vec::new(),
        };
        assert!(row("psci", &fail, &pass).is_failure());
        assert!(!row("psci", &fail, &fail).is_failure());
        assert!(!row("psci", &pass, &pass).is_failure());
        assert!(!row("pci-test", &fail, &pass).is_failure());
        assert!(
            !row(
                "psci",
                &Result::Skip(Counts::default()),
                &Result::Skip(Counts::default())
            )
            .is_failure()
        );
    }

    #[test]
    fn the_a32_elf_loads_the_whole_image_at_ram_base_plus_64_kib_and_enters_there() {
        let flat = [0xe1a0_0000u32.to_le_bytes(), [1, 2, 3, 4]].concat();
        let elf = a32_elf(&flat);
        let word = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
        assert_eq!(&elf[..6], b"\x7fELF\x01\x01");
        assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 40);
        assert_eq!(word(24), 0x4001_0000);
        let ph = word(28) as usize;
        assert_eq!(word(ph), 1);
        assert_eq!(&elf[word(ph + 4) as usize..], &flat[..]);
        assert_eq!(
            (word(ph + 8), word(ph + 16), word(ph + 20)),
            (0x4001_0000, 8, 8)
        );
    }

    #[test]
    fn every_listed_test_has_a_reason() {
        assert!(EXPECTED.iter().all(|(n, r)| !n.is_empty() && !r.is_empty()));
    }
}
