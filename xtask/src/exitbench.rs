//! `./x bench exits`: what each kind of exit costs a guest, in instructions, under Moat and on
//! QEMU alone ("bare"), on each CPU model of [`CPUS`] (issue 9).
//!
//! The benchmark guest (`bare/guests/exitbench`) times its operations with the virtual counter;
//! QEMU runs with `-icount shift=0,sleep=off`, so every instruction the emulated machine
//! executes — the guest's, Moat's at EL2, another vCPU's — advances the counter by the same
//! amount (1 ns), and waiting in `WFI` costs nothing. The guest calibrates the counter's rate
//! itself. One-vCPU operations run in a one-vCPU VM, the SGI operations in a second run with two
//! vCPUs, so that an idle second CPU never runs during the one-vCPU figures.
//!
//! The table is built from a list of [`Side`]s, each producing a [`Report`] per CPU model:
//! Moat, bare, and with `--kvm` Linux KVM in nVHE and VHE mode (Debian's cloud kernel at EL2 in
//! the same QEMU, the same guest image run by Moat's KVM runner on a VM of the same shape and
//! device tree; see [`crate::kvm`] and `exitbench/kvm.rs`).

mod kvm;
mod report;

pub use report::{Column, Report, notes, parse, table};

use crate::build::{self, Artifacts};
use crate::error::{XResult, failed};
use crate::qemu::{ConsoleMode, Machine, Outcome};
use crate::vm;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The CPU models the benchmark runs on.
pub const CPUS: [&str; 2] = ["max,pauth-impdef=on", "cortex-a72"];

/// The time limit of one benchmark boot.
const LIMIT: Duration = Duration::from_secs(300);

/// How many batches of how many repetitions.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Batches per operation (the guest keeps at most 63).
    pub batches: u32,
    /// Repetitions per batch (the slow operations run `n / 8`).
    pub n: u32,
}

/// The full benchmark: 21 batches, as issue 9's table.
pub const FULL: Params = Params {
    batches: 21,
    n: 500,
};
/// The smoke run of `./x test`: enough to run every operation, no more.
pub const QUICK: Params = Params { batches: 3, n: 16 };

/// Which operations a boot runs: the guest's `exitbench.group`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// The one-vCPU operations, in a one-vCPU VM.
    Single,
    /// The two-vCPU operations, in a two-vCPU VM.
    Pair,
    /// Everything in one two-vCPU boot (the smoke test).
    All,
}

impl Group {
    fn word(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Pair => "pair",
            Self::All => "all",
        }
    }

    fn cpus(self) -> u32 {
        if self == Self::Single { 1 } else { 2 }
    }
}

/// What a side needs to boot the guest.
pub struct Context {
    /// The built images.
    pub artifacts: Artifacts,
    /// The batches.
    pub params: Params,
    /// The KVM runner, when the KVM sides run (`--kvm`).
    pub kvm: Option<crate::kvm::build::KvmArtifacts>,
}

/// One column group of the table: how to get a [`Report`] on a CPU model.
pub struct Side {
    /// The column's name.
    pub name: &'static str,
    /// Boots the guest for `group` on `cpu` and returns the console.
    pub boot: fn(&Context, &str, Group) -> XResult<Outcome>,
    /// Why the side cannot run on a CPU model, where it cannot.
    pub unavailable: fn(&str) -> Option<&'static str>,
    /// Turns what the guest saw into the side's cells (KVM's answer to an SMC, say).
    pub interpret: fn(&mut Report),
}

/// The sides, in column order: Moat, then KVM nVHE and VHE when `kvm`, then bare.
pub fn sides(kvm: bool) -> Vec<Side> {
    let mut sides = vec![Side {
        name: "Moat",
        boot: boot_moat,
        unavailable: |_| None,
        interpret: |_| {},
    }];
    if kvm {
        sides.extend(kvm::sides());
    }
    sides.push(Side {
        name: "bare",
        boot: boot_bare,
        unavailable: |_| None,
        interpret: |_| {},
    });
    sides
}

/// The ratio columns: (numerator side, denominator side), indices into [`sides`]: each KVM
/// side over Moat, then Moat over bare.
pub fn ratios(kvm: bool) -> Vec<(usize, usize)> {
    if kvm {
        vec![(1, 0), (2, 0), (0, 3)]
    } else {
        vec![(0, 1)]
    }
}

/// `-icount shift=0,sleep=off`: one instruction is 1 ns of virtual time, and idle time is
/// skipped rather than slept.
pub fn icount() -> Vec<String> {
    vec!["-icount".into(), "shift=0,sleep=off".into()]
}

fn bootargs(params: Params, group: Group) -> String {
    format!(
        "exitbench.group={} exitbench.batches={} exitbench.n={}",
        group.word(),
        params.batches,
        params.n
    )
}

/// The guest under Moat, in the default VM (40-bit IPA space, so `2^S` is the abort address)
/// with `group`'s vCPUs.
pub fn boot_moat(ctx: &Context, cpu: &str, group: Group) -> XResult<Outcome> {
    moat_machine(ctx, cpu, group)?.run_with(&icount(), ConsoleMode::Captured, Some(LIMIT))
}

/// The machine [`boot_moat`] boots (without `-icount`), its bundle written.
///
/// # Errors
///
/// When the bundle cannot be made.
pub fn moat_machine(ctx: &Context, cpu: &str, group: Group) -> XResult<crate::qemu::Machine> {
    let mut config = moat_config::VmConfig::default_virt();
    config.set_cpus(group.cpus());
    config.bootargs = bootargs(ctx.params, group);
    let tag = format!("exitbench-{}-{}", cpu_tag(cpu), group.word());
    let bundle = build::out_dir().join("bench").join(format!("{tag}.bundle"));
    vm::moat_machine(
        &config,
        &ctx.artifacts.moat,
        &guest(&ctx.artifacts),
        cpu,
        &bundle,
    )
}

/// The guest on QEMU alone at EL1: QEMU answers PSCI on HVC itself, and the GIC, the UART and
/// the abort are QEMU's devices and bus.
pub fn boot_bare(ctx: &Context, cpu: &str, group: Group) -> XResult<Outcome> {
    let machine = Machine {
        cpu: cpu.into(),
        mem_mib: 128,
        kernel: guest(&ctx.artifacts),
        initrd: None,
        append: Some(bootargs(ctx.params, group)),
        el2: false,
        gic_version: 3,
        smp: group.cpus(),
    };
    machine.run_with(&icount(), ConsoleMode::Captured, Some(LIMIT))
}

fn guest(artifacts: &Artifacts) -> PathBuf {
    artifacts.guest("moat-guest-exitbench")
}

fn cpu_tag(cpu: &str) -> &str {
    cpu.split(',').next().unwrap_or(cpu)
}

/// A side's report on `cpu` from the boots of `groups`, merged.
///
/// # Errors
///
/// When a boot cannot start, times out, or prints lines that do not parse.
pub fn measure(side: &Side, ctx: &Context, cpu: &str, groups: &[Group]) -> XResult<Report> {
    let mut merged: Option<Report> = None;
    for &group in groups {
        let outcome = (side.boot)(ctx, cpu, group)?;
        let what = format!("{} on {cpu} ({})", side.name, group.word());
        if outcome.timed_out {
            return Err(failed(format!(
                "{what}: no end within {} s",
                LIMIT.as_secs()
            )));
        }
        let report = parse(&outcome.console).map_err(|e| failed(format!("{what}: {e}")))?;
        if !report.done {
            let tail: Vec<&str> = outcome.console.lines().rev().take(5).collect();
            return Err(failed(format!(
                "{what}: the guest did not finish; last lines: {tail:?}"
            )));
        }
        match merged.as_mut() {
            Some(m) => m.merge(report),
            None => merged = Some(report),
        }
    }
    Ok(merged.unwrap_or_default())
}

/// The tables of the CPU models `cpus` (for the repository's figures: [`CPUS`]), as Markdown,
/// with notes; printed as they are made.
///
/// # Errors
///
/// As [`measure`].
pub fn tables(ctx: &Context, cpus: &[&str]) -> XResult<String> {
    let mut out = String::new();
    let with_kvm = ctx.kvm.is_some();
    for &cpu in cpus {
        let mut columns = Vec::new();
        let mut side_notes = Vec::new();
        for side in sides(with_kvm) {
            let report = match (side.unavailable)(cpu) {
                Some(why) => {
                    side_notes.push(format!("{}: not run on `{cpu}`: {why}", side.name));
                    Report::default()
                }
                None => {
                    let mut report = measure(&side, ctx, cpu, &[Group::Single, Group::Pair])?;
                    (side.interpret)(&mut report);
                    report
                }
            };
            columns.push(Column {
                name: side.name.into(),
                report,
            });
        }
        if with_kvm {
            side_notes.extend(kvm::no_vgic_notes(ctx, cpu)?);
        }
        let per_tick = columns[0].report.per_tick.unwrap_or(0.0);
        let mut text = format!(
            "### `-cpu {cpu}`\n\ninstructions per operation, {} batches of {} \
             (calibrated: {per_tick:.3} instructions per counter tick)\n\n",
            ctx.params.batches, ctx.params.n
        );
        text.push_str(&table(&columns, &ratios(with_kvm)));
        for note in side_notes.into_iter().chain(notes(&columns)) {
            text.push_str(&format!("\n- {note}"));
        }
        text.push('\n');
        println!("{text}");
        out.push_str(&text);
        out.push('\n');
    }
    Ok(out)
}

/// `./x bench exits`, on the CPU model `cpu` alone or on every one of [`CPUS`].
///
/// # Errors
///
/// When the build or a boot fails.
pub fn run(quick: bool, with_kvm: bool, cpu: Option<&str>) -> XResult<ExitCode> {
    let ctx = Context {
        artifacts: build::build_bare()?,
        params: if quick { QUICK } else { FULL },
        kvm: with_kvm.then(crate::kvm::build::build).transpose()?,
    };
    println!("{}", method(ctx.params, with_kvm));
    let one = cpu.map(|c| [c]);
    tables(&ctx, one.as_ref().map_or(&CPUS[..], |c| &c[..]))?;
    Ok(ExitCode::SUCCESS)
}

/// What the figures mean, printed above the tables.
pub fn method(params: Params, with_kvm: bool) -> String {
    let mut text = format!(
        "Instructions per operation under `qemu-system-aarch64 -icount shift=0,sleep=off` \
         (every instruction of the emulated machine, EL2's included, is 1 ns of virtual time), \
         timed by the benchmark guest (`bare/guests/exitbench`) with the virtual counter, its \
         rate calibrated at start; per batch of {n} operations (the wake-ups and SGIs: about \
         {slow}) minus the empty loop of the same length; min and median over {b} batches. Each figure counts \
         the operation's own instructions (1 to 4, argument set-up included) and everything it \
         makes the machine run until the guest's next instruction (Moat's EL2 code, the \
         guest's exception handler). The timer wake-up counts from the timer's deadline (the \
         wait before it is idle, skipped by `sleep=off`); SGI figures are per one-way delivery \
         (half a ping-pong between two vCPUs, the target spinning with `YIELD` or waiting in \
         `WFI`). \"bare\": the same guest on QEMU alone at EL1, where QEMU's \
         devices and PSCI answer in the emulator itself (no instructions).",
        n = params.n,
        slow = (params.n / 8).max(1),
        b = params.batches,
    );
    if with_kvm {
        text.push_str(&kvm::method());
    }
    text
}

/// The smoke test of `./x test` on `cpu`: one boot under Moat, every operation in one
/// two-vCPU VM with [`QUICK`] batches. It checks that the guest ran every operation, that each
/// did what it should (the guest's own checks) and that every line parses; it asserts nothing
/// about any figure's size. `Err` says what is missing.
///
/// # Errors
///
/// The outer error: QEMU could not start.
pub fn smoke(artifacts: &Artifacts, cpu: &str) -> XResult<(Outcome, Result<(), String>)> {
    let ctx = Context {
        artifacts: artifacts.clone(),
        params: QUICK,
        kvm: None,
    };
    let outcome = boot_moat(&ctx, cpu, Group::All)?;
    let verdict = smoke_verdict(&outcome);
    Ok((outcome, verdict))
}

fn smoke_verdict(outcome: &Outcome) -> Result<(), String> {
    if outcome.timed_out {
        return Err(format!("no end within {} s", LIMIT.as_secs()));
    }
    let report = parse(&outcome.console)?;
    if !report.done {
        return Err("the guest did not print its done line".into());
    }
    match report.missing().first() {
        Some(first) => Err(first.clone()),
        None if outcome.exit == Some(crate::qemu::MoatExit::PowerOff) => Ok(()),
        None => Err(format!(
            "expected MOAT-EXIT PowerOff, got {:?}",
            outcome.exit
        )),
    }
}
