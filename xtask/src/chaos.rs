//! `./x chaos`: the differential chaos run of issue 10 item 2. The guest
//! `bare/guests/chaos` runs a seeded stream of operations on every vCPU (its module docs list
//! them and the address classes) and prints one hash per block of operations per vCPU. This
//! module runs it bare on QEMU (EL1, the same CPU model and vCPU count) and under Moat, and:
//!
//! 1. compares the block hashes;
//! 2. runs the blocks that differ again on both sides with full per-operation records and
//!    names the first operation that differs in each;
//! 3. reports what is not a comparison at all: a VM stop (Moat's `MOAT-EXIT` other than
//!    poweroff), a hang (the time limit, or a vCPU the guest saw make no progress), a stray
//!    exception, a run that did not finish;
//! 4. with `--reduce`, turns the first failure into a minimal list of operation indices by
//!    delta debugging ([`ddmin`]) and prints the command that reproduces it.
//!
//! What differs by design never reaches the hashes: the guest records canonical outcomes (ID
//! register values and volatile registers are not compared, SVE/SME access traps count as
//! UNDEFINED, SMCCC outcomes by meaning); the choices are in the guest's `ops.rs` and in
//! `docs/trap-outcomes.md`.

use crate::build::Artifacts;
use crate::error::XResult;
use crate::qemu::{ConsoleMode, Machine, MoatExit, Outcome};
use crate::scratch::Scratch;
use crate::vm::{self, VmRequest};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The guest's binary name.
const GUEST: &str = "moat-guest-chaos";
/// RAM of the VM and of the bare machine: the same, so that the guest's holes are holes on both.
const RAM_MIB: u64 = 128;
/// The tag bit of an op that ran at EL0 (the guest's `ops::EL0_TAG`).
const EL0_TAG: u64 = 1 << 23;
/// Detail blocks per rerun (the guest keeps at most 4).
const DETAIL_PER_RUN: usize = 4;
/// Differing blocks examined op by op, at most.
const DETAIL_MAX: usize = 8;

/// One run's request.
#[derive(Clone, Debug)]
pub struct Params {
    /// QEMU's CPU model.
    pub cpu: String,
    /// The seed.
    pub seed: u64,
    /// Operations per vCPU.
    pub ops: u64,
    /// vCPUs.
    pub smp: u32,
    /// Operations per hashed block.
    pub block: u64,
    /// Only these operation indices (the reducer's list), if given.
    pub only: Option<Vec<u64>>,
    /// Also the operations that differ by design (`chaos.full=1`).
    pub full: bool,
    /// The GIC enabled and interrupt probes among the ops (`chaos.irq=1`).
    pub irq: bool,
    /// A quarter of the ops at EL0 (`chaos.el0=1`).
    pub el0: bool,
}

impl Params {
    fn bootargs(&self, detail: &str) -> String {
        let mut args = format!(
            "chaos.seed={:#x} chaos.ops={} chaos.smp={} chaos.block={}",
            self.seed, self.ops, self.smp, self.block
        );
        if self.full {
            args.push_str(" chaos.full=1");
        }
        if self.irq {
            args.push_str(" chaos.irq=1");
        }
        if self.el0 {
            args.push_str(" chaos.el0=1");
        }
        if let Some(only) = &self.only {
            let _ = write!(args, " chaos.only={}", ranges(only));
        }
        if !detail.is_empty() {
            let _ = write!(args, " chaos.detail={detail}");
        }
        args
    }

    /// The time limit of one run: generous per operation (under Moat on a loaded 2-core
    /// machine about 1 ms each, printing included).
    fn limit(&self) -> Duration {
        let ops = self.only.as_ref().map_or(self.ops, |o| o.len() as u64);
        Duration::from_secs(60 + ops * u64::from(self.smp) / 200)
    }
}

/// Indices as `a-b,c,...` (sorted, consecutive runs joined).
pub fn ranges(indices: &[u64]) -> String {
    let mut sorted: Vec<u64> = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        out.push(if sorted[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", sorted[i])
        });
        i += 1;
    }
    out.join(",")
}

/// Parses `a-b,c,...`.
pub fn parse_ranges(text: &str) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    for item in text.split(',').filter(|s| !s.is_empty()) {
        let (a, b) = item.split_once('-').unwrap_or((item, item));
        let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
        if b < a || b - a > 10_000_000 {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

/// One operation's record: tag, status, value, FAR offset, ELR offset, SPSR, vector.
pub type OpRecord = [u64; 7];

/// What one side printed.
#[derive(Default, Debug)]
pub struct Run {
    /// `(cpu, block)` → (hash, ops in it).
    pub blocks: BTreeMap<(u32, u64), (String, u64)>,
    /// `(cpu, index)` → record (detail only).
    pub ops: BTreeMap<(u32, u64), OpRecord>,
    /// `(cpu, index)` → what the op executed (detail only).
    pub inputs: BTreeMap<(u32, u64), String>,
    /// `(cpu, EC)` → exceptions taken.
    pub ecs: BTreeMap<(u32, u8), u64>,
    /// vCPUs done, with their op counts.
    pub done: BTreeMap<u32, u64>,
    /// vCPUs the guest found hung, with their progress.
    pub hung: BTreeMap<u32, u64>,
    /// Stray exceptions and guest errors, as printed.
    pub errors: Vec<String>,
    /// `CHAOS-END` seen.
    pub end: bool,
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// Parses the guest's console.
pub fn parse(console: &str) -> Run {
    let mut run = Run::default();
    for line in console.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["CHAOS-BLOCK", cpu, block, hash, n] => {
                if let (Ok(cpu), Ok(block), Ok(n)) = (cpu.parse(), block.parse(), n.parse()) {
                    run.blocks.insert((cpu, block), ((*hash).to_owned(), n));
                }
            }
            ["CHAOS-OP", cpu, index, fields @ ..] if fields.len() >= 7 => {
                let mut record = [0u64; 7];
                let ok = fields
                    .iter()
                    .zip(&mut record)
                    .all(|(f, r)| hex(f).map(|v| *r = v).is_some());
                if let (true, Ok(cpu), Ok(index)) = (ok, cpu.parse(), index.parse()) {
                    run.ops.insert((cpu, index), record);
                    run.inputs.insert((cpu, index), fields[7..].join(" "));
                }
            }
            ["CHAOS-EC", cpu, ec, n] => {
                if let (Ok(cpu), Some(ec), Ok(n)) = (cpu.parse(), hex(ec), n.parse()) {
                    run.ecs.insert((cpu, ec as u8), n);
                }
            }
            ["CHAOS-DONE", cpu, n] => {
                if let (Ok(cpu), Ok(n)) = (cpu.parse(), n.parse()) {
                    run.done.insert(cpu, n);
                }
            }
            ["CHAOS-HANG", cpu, n] => {
                if let (Ok(cpu), Ok(n)) = (cpu.parse(), n.parse()) {
                    run.hung.insert(cpu, n);
                }
            }
            ["CHAOS-END"] => run.end = true,
            [first, ..] if first.starts_with("CHAOS-STRAY") || first.starts_with("CHAOS-ERROR") => {
                run.errors.push(line.to_owned());
            }
            _ => {}
        }
    }
    run
}

/// One side's boot: the console parsed, and how it ended.
#[derive(Debug)]
pub struct Side {
    /// The parsed console.
    pub run: Run,
    /// Moat's end line (None bare).
    pub exit: Option<MoatExit>,
    /// The time limit ended it.
    pub timed_out: bool,
    /// Wall time.
    pub elapsed: Duration,
    /// The console's last lines, for a report.
    pub tail: Vec<String>,
}

impl Side {
    fn from(outcome: &Outcome) -> Self {
        let lines: Vec<&str> = outcome.console.lines().collect();
        Self {
            run: parse(&outcome.console),
            exit: outcome.exit,
            timed_out: outcome.timed_out,
            elapsed: outcome.elapsed,
            tail: lines
                .iter()
                .rev()
                .take(6)
                .rev()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }

    /// What went wrong with this run itself (not a difference): a VM stop, a hang, a stray
    /// exception, an unfinished run. `moat` says whether the side ran under Moat.
    pub fn failure(&self, moat: bool) -> Option<String> {
        if self.timed_out {
            return Some(format!(
                "hang: the time limit ended the run; last lines {:?}",
                self.tail
            ));
        }
        if moat && self.exit != Some(MoatExit::PowerOff) {
            return Some(format!(
                "VM stop: MOAT-EXIT {:?}; last lines {:?}",
                self.exit, self.tail
            ));
        }
        if let Some((cpu, n)) = self.run.hung.iter().next() {
            return Some(format!("hang: vCPU {cpu} made no progress after {n} ops"));
        }
        if let Some(error) = self.run.errors.first() {
            return Some(error.clone());
        }
        if !self.run.end {
            return Some(format!(
                "the guest did not finish; last lines {:?}",
                self.tail
            ));
        }
        None
    }
}

fn boot_bare(artifacts: &Artifacts, params: &Params, detail: &str) -> XResult<Side> {
    let outcome = Machine {
        cpu: params.cpu.clone(),
        mem_mib: RAM_MIB,
        kernel: artifacts.guest(GUEST),
        initrd: None,
        append: Some(params.bootargs(detail)),
        el2: false,
        gic_version: 3,
        smp: params.smp,
    }
    .run_until(
        &[],
        ConsoleMode::Captured,
        Some(params.limit()),
        Some("CHAOS-END"),
    )?;
    Ok(Side::from(&outcome))
}

fn boot_moat(artifacts: &Artifacts, params: &Params, detail: &str) -> XResult<Side> {
    let request = VmRequest {
        mem: Some(RAM_MIB << 20),
        bootargs: Some(params.bootargs(detail)),
        cpus: Some(params.smp),
        ..VmRequest::default()
    };
    let vm = vm::describe(&request, &params.cpu)?;
    let scratch = Scratch::new("chaos")?;
    let bundle = scratch.join("chaos.bundle");
    let outcome = vm::moat_machine(
        &vm,
        &artifacts.moat,
        &artifacts.guest(GUEST),
        &params.cpu,
        &bundle,
    )?
    .run(ConsoleMode::Captured, Some(params.limit()))?;
    Ok(Side::from(&outcome))
}

/// The QEMU version line (`QEMU emulator version ...`).
pub fn qemu_version() -> String {
    std::process::Command::new("qemu-system-aarch64")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "QEMU version unknown".to_owned())
}

/// The first differing operation of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The vCPU.
    pub cpu: u32,
    /// The op index.
    pub index: u64,
    /// Bare's record (None: not printed).
    pub bare: Option<OpRecord>,
    /// Moat's.
    pub moat: Option<OpRecord>,
    /// What the op executed (the address called, the word there, X0..X7).
    pub input: String,
}

/// A comparison's figures.
#[derive(Debug, Default)]
pub struct Summary {
    /// Operations run per side (all vCPUs), from the guest's counts.
    pub ops: u64,
    /// Blocks compared.
    pub blocks: usize,
    /// Blocks whose hashes differ.
    pub differing_blocks: Vec<(u32, u64)>,
    /// The first differing op of each block examined.
    pub differences: Vec<Difference>,
    /// Failures of a run itself (VM stop, hang, stray, unfinished), with the side.
    pub failures: Vec<String>,
    /// Moat's per-EC exception counts (all vCPUs).
    pub moat_ecs: BTreeMap<u8, u64>,
    /// Bare's.
    pub bare_ecs: BTreeMap<u8, u64>,
    /// Wall time of the bare and the Moat run.
    pub times: (Duration, Duration),
}

impl Summary {
    /// No difference and no failure.
    pub fn clean(&self) -> bool {
        self.differing_blocks.is_empty() && self.failures.is_empty()
    }
}

/// The blocks whose hashes differ (or that one side lacks).
pub fn differing_blocks(bare: &Run, moat: &Run) -> Vec<(u32, u64)> {
    let keys: BTreeSet<&(u32, u64)> = bare.blocks.keys().chain(moat.blocks.keys()).collect();
    keys.into_iter()
        .filter(|k| bare.blocks.get(k) != moat.blocks.get(k))
        .copied()
        .collect()
}

/// The first op of `cpu` whose records differ (or that one side lacks).
pub fn first_difference(cpu: u32, bare: &Run, moat: &Run) -> Option<Difference> {
    let keys: BTreeSet<&(u32, u64)> = bare
        .ops
        .keys()
        .chain(moat.ops.keys())
        .filter(|k| k.0 == cpu)
        .collect();
    keys.into_iter().find_map(|k| {
        let (b, m) = (bare.ops.get(k).copied(), moat.ops.get(k).copied());
        (b != m).then(|| Difference {
            cpu,
            index: k.1,
            bare: b,
            moat: m,
            input: moat
                .inputs
                .get(k)
                .or(bare.inputs.get(k))
                .cloned()
                .unwrap_or_default(),
        })
    })
}

/// Runs `params` bare and under Moat and compares them.
///
/// # Errors
///
/// When a run cannot be started.
pub fn compare(artifacts: &Artifacts, params: &Params) -> XResult<Summary> {
    let bare = boot_bare(artifacts, params, "")?;
    let moat = boot_moat(artifacts, params, "")?;
    let mut summary = Summary {
        times: (bare.elapsed, moat.elapsed),
        ..Summary::default()
    };
    for (side, run, under_moat) in [("bare", &bare, false), ("moat", &moat, true)] {
        if let Some(f) = run.failure(under_moat) {
            summary.failures.push(format!("{side}: {f}"));
        }
    }
    summary.ops = moat.run.done.values().sum();
    for ((_, ec), n) in &moat.run.ecs {
        *summary.moat_ecs.entry(*ec).or_default() += n;
    }
    for ((_, ec), n) in &bare.run.ecs {
        *summary.bare_ecs.entry(*ec).or_default() += n;
    }
    summary.blocks = bare.run.blocks.len().max(moat.run.blocks.len());
    summary.differing_blocks = differing_blocks(&bare.run, &moat.run);
    if !summary.failures.is_empty() {
        return Ok(summary);
    }
    let examined: Vec<(u32, u64)> = summary
        .differing_blocks
        .iter()
        .take(DETAIL_MAX)
        .copied()
        .collect();
    for chunk in examined.chunks(DETAIL_PER_RUN) {
        let blocks: BTreeSet<u64> = chunk.iter().map(|k| k.1).collect();
        let detail: Vec<String> = blocks.iter().map(ToString::to_string).collect();
        let detail = detail.join(",");
        let bare = boot_bare(artifacts, params, &detail)?;
        let moat = boot_moat(artifacts, params, &detail)?;
        for &(cpu, block) in chunk {
            let in_block = |run: &Run| Run {
                ops: run
                    .ops
                    .iter()
                    .filter(|(k, _)| k.0 == cpu && k.1 / params.block == block)
                    .map(|(k, v)| (*k, *v))
                    .collect(),
                inputs: run.inputs.clone(),
                ..Run::default()
            };
            if let Some(d) = first_difference(cpu, &in_block(&bare.run), &in_block(&moat.run)) {
                summary.differences.push(d);
            }
        }
    }
    Ok(summary)
}

/// What an op tag names, for a human.
pub fn describe_tag(tag: u64) -> String {
    // Bit 23: the op ran at EL0 (`ops::EL0_TAG`).
    if tag & EL0_TAG != 0 {
        return format!("at EL0: {}", describe_tag(tag & !EL0_TAG));
    }
    let kind = (tag >> 16) & 0xff;
    let class = (tag >> 8) & 0xff;
    let variant = tag & 0xff;
    let classes = [
        "data",
        "GICD",
        "GICR",
        "PL011",
        "hole",
        "[2^40,2^P)",
        ">=2^P",
        "scratch",
    ];
    let class_name = classes.get(class as usize).copied().unwrap_or("?");
    match kind {
        0 | 1 => {
            let sizes = ["1", "2", "4", "8", "16 (pair)"];
            format!(
                "{} of {} bytes, {class_name}",
                if kind == 0 { "load" } else { "store" },
                sizes.get(variant as usize).copied().unwrap_or("?")
            )
        }
        2 => format!("branch to {class_name}"),
        3 => {
            let insns = [
                "DC CIVAC", "DC CVAC", "DC CVAU", "DC IVAC", "DC CVAP", "DC CVADP", "IC IVAU",
                "AT S1E1R", "AT S1E1W", "DC ZVA",
            ];
            format!(
                "{} of {class_name}",
                insns.get(variant as usize).copied().unwrap_or("?")
            )
        }
        4 => {
            let f = tag >> 24;
            format!(
                "{} S3_{}_C{}_C{}_{}",
                if variant == 1 { "MSR" } else { "MRS" },
                (f >> 11) & 7,
                (f >> 7) & 15,
                (f >> 3) & 15,
                f & 7
            )
        }
        5 => format!(
            "{} #{:#x} function {:#010x}",
            if class == 1 { "HVC+SMC" } else { "HVC" },
            tag >> 56,
            (tag >> 24) & 0xffff_ffff
        ),
        6 => format!("instruction word {:#010x}", (tag >> 24) & 0xffff_ffff),
        7 => format!("GIC write at offset {:#x}", (tag >> 24) & 0xff_ffff),
        8 => format!(
            "interrupt probe: INTID {} priority {:#x}, {}, pending by {}",
            (tag >> 24) & 0xffff,
            (tag >> 40) & 0xff,
            if variant == 1 {
                "enabled"
            } else {
                "not enabled"
            },
            if class == 1 {
                "ICC_SGI1R_EL1"
            } else {
                "ISPENDR"
            }
        ),
        9 => format!(
            "virtual timer interrupt after {} ticks, from {}",
            (tag >> 24) & 0xffff,
            if variant == 1 {
                "PSCI CPU_SUSPEND"
            } else {
                "WFI"
            }
        ),
        10 => {
            let what = [
                "an SGI to itself",
                "an SGI to another vCPU",
                "an SGI to all but itself (IRM)",
                "an SGI to a TargetList",
                "an SPI routed to its target",
                "GICD enable/pending/active writes to the target's SPIs",
                "an SGI waking the target from CPU_SUSPEND",
            ];
            format!(
                "cross-vCPU round: vCPU {} sends {} (INTID {}, priority {:#x}, receivers {:#b}); this vCPU {}",
                (tag >> 40) & 0xf,
                what.get(class as usize).copied().unwrap_or("?"),
                (tag >> 24) & 0xffff,
                (tag >> 48) & 0xff,
                (tag >> 44) & 0xf,
                match variant {
                    0 => "only watches",
                    1 => "sends",
                    2 => "receives",
                    _ => "sends and receives",
                }
            )
        }
        _ => format!("tag {tag:#x}"),
    }
}

/// A record for a human.
pub fn describe_record(record: Option<OpRecord>) -> String {
    match record {
        None => "no record".to_owned(),
        Some([tag, 0, value, ..]) if (tag >> 16) & 0xff == 8 => format!(
            "ICC_HPPIR1_EL1 {}, ICC_IAR1_EL1 {}",
            value & 0xff_ffff,
            value >> 32
        ),
        Some([tag, 1, intid, _, elr, spsr, vector]) if (tag >> 16) & 0xff == 9 => format!(
            "interrupt taken: ICC_IAR1_EL1 {intid}, ELR-pc {:#x} SPSR {spsr:#x} vector {vector:#x}",
            elr as i64
        ),
        Some([tag, 0, intid, ..]) if (tag >> 16) & 0xff == 9 => {
            format!("no interrupt taken; ICC_IAR1_EL1 {intid}")
        }
        Some([tag, broken, value, far, elr, spsr, vector]) if (tag >> 16) & 0xff == 10 => format!(
            "round: invariant {broken} broken (0: none), took its INTID {}×, others {}×, HPPIR1 after {}, CPU_SUSPEND {:#x}; GICD read {far:#x}/{elr:#x}; vector {vector:#x} SPSR {:#x} DAIF on entry {:#x}",
            value & 0xff,
            (value >> 8) & 0xff,
            (value >> 16) & 0xffff,
            value >> 32,
            spsr & 0xffff,
            spsr >> 16
        ),
        Some([_, 0, value, ..]) => format!("completed, value {value:#x}"),
        Some([_, 1, esr, far, elr, spsr, vector]) => format!(
            "exception EC {:#04x} ESR {esr:#x} FAR-addr {:#x} ELR-pc {:#x} SPSR {spsr:#x} vector {vector:#x}",
            (esr >> 26) & 0x3f,
            far as i64,
            elr as i64
        ),
        Some([_, 2, ..]) => "SMCCC not supported".to_owned(),
        Some([_, 3, ..]) => "SMCCC arch call answered".to_owned(),
        Some([_, 4, ..]) => "PSCI answered (value differs by design)".to_owned(),
        Some([_, 5, ..]) => "not compared (differs by design: docs/chaos.md)".to_owned(),
        Some(r) => format!("{r:x?}"),
    }
}

/// Prints a summary.
pub fn print(params: &Params, summary: &Summary) {
    println!(
        "{} ops ({} vCPUs × {}), {} blocks compared, {} differ; bare {:.1} s, Moat {:.1} s",
        summary.ops,
        params.smp,
        params.ops,
        summary.blocks,
        summary.differing_blocks.len(),
        summary.times.0.as_secs_f64(),
        summary.times.1.as_secs_f64()
    );
    for failure in &summary.failures {
        println!("    FAILURE {failure}");
    }
    for d in &summary.differences {
        let tag = d.bare.or(d.moat).map_or(0, |r| r[0]);
        println!(
            "    DIFFERENCE vCPU {} op {}: {} ({})\n        bare {}\n        moat {}",
            d.cpu,
            d.index,
            describe_tag(tag),
            d.input,
            describe_record(d.bare),
            describe_record(d.moat)
        );
    }
    let ecs = |m: &BTreeMap<u8, u64>| {
        m.iter()
            // 0x3f is unallocated: the guest counts interrupts (no syndrome) there.
            .map(|(ec, n)| match ec {
                0x3f => format!("IRQ:{n}"),
                _ => format!("{ec:#04x}:{n}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("    exceptions by EC, Moat: {}", ecs(&summary.moat_ecs));
    println!("    exceptions by EC, bare: {}", ecs(&summary.bare_ecs));
}

/// Runs the guest bare only and prints its figures (`./x chaos --bare`).
///
/// # Errors
///
/// When the run cannot be started.
pub fn bare_only(artifacts: &Artifacts, params: &Params) -> XResult<bool> {
    let start = Instant::now();
    let side = boot_bare(artifacts, params, "")?;
    let ops: u64 = side.run.done.values().sum();
    println!(
        "bare: {ops} ops, {} blocks in {:.1} s",
        side.run.blocks.len(),
        start.elapsed().as_secs_f64()
    );
    for ((cpu, block), (hash, n)) in &side.run.blocks {
        println!("    vCPU {cpu} block {block}: {hash} ({n} ops)");
    }
    let failure = side.failure(false);
    if let Some(f) = &failure {
        println!("    FAILURE {f}");
    }
    Ok(failure.is_none())
}

/// The failure a reduction keeps: the first differing op of a vCPU, or a failed Moat run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// vCPU, op index.
    Op(u32, u64),
    /// The Moat run fails (VM stop, hang, stray, unfinished).
    MoatFails,
}

/// Whether running only `list` still shows `target`.
fn still_fails(
    artifacts: &Artifacts,
    params: &Params,
    list: &[u64],
    target: &Target,
) -> XResult<bool> {
    let p = Params {
        only: Some(list.to_vec()),
        ..params.clone()
    };
    let moat = boot_moat(artifacts, &p, "all")?;
    if moat.failure(true).is_some() {
        return Ok(*target == Target::MoatFails);
    }
    let Target::Op(cpu, index) = *target else {
        return Ok(false);
    };
    let bare = boot_bare(artifacts, &p, "all")?;
    Ok(bare.run.ops.get(&(cpu, index)) != moat.run.ops.get(&(cpu, index)))
}

/// Delta debugging (Zeller's ddmin) of `items`: a 1-minimal sublist for which `fails` holds
/// (`fails(items)` is assumed). `keep` is always included and not reduced.
///
/// # Errors
///
/// Whatever `fails` returns.
pub fn ddmin(
    items: &[u64],
    keep: &[u64],
    mut fails: impl FnMut(&[u64]) -> XResult<bool>,
) -> XResult<Vec<u64>> {
    let with_keep = |list: &[u64]| {
        let mut all: Vec<u64> = list.iter().chain(keep).copied().collect();
        all.sort_unstable();
        all
    };
    let mut current: Vec<u64> = items.to_vec();
    if fails(&with_keep(&[]))? {
        return Ok(with_keep(&[]));
    }
    let mut n = 2usize;
    while current.len() >= 2 {
        let chunk = current.len().div_ceil(n);
        let parts: Vec<Vec<u64>> = current.chunks(chunk).map(<[u64]>::to_vec).collect();
        let mut reduced = false;
        for part in &parts {
            if fails(&with_keep(part))? {
                current.clone_from(part);
                n = 2;
                reduced = true;
                break;
            }
        }
        if !reduced {
            for i in 0..parts.len() {
                let complement: Vec<u64> = parts
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .flat_map(|(_, p)| p.iter().copied())
                    .collect();
                if parts.len() > 2 && fails(&with_keep(&complement))? {
                    current = complement;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if n >= current.len() {
                break;
            }
            n = (n * 2).min(current.len());
        }
    }
    Ok(with_keep(&current))
}

/// The largest `first` such that ops `first..=last` (with `keep`) still fail, by binary search
/// (failing is assumed for `first` = 0).
///
/// # Errors
///
/// Whatever `fails` returns.
pub fn shortest_suffix(
    last: u64,
    keep: &[u64],
    fails: &mut impl FnMut(&[u64]) -> XResult<bool>,
) -> XResult<u64> {
    let (mut lo, mut hi) = (0u64, last + 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let mut list: Vec<u64> = (mid..=last).chain(keep.iter().copied()).collect();
        list.sort_unstable();
        list.dedup();
        if fails(&list)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// Reduces the first failure of `summary` to a minimal op list and prints the command.
///
/// # Errors
///
/// When a run cannot be started.
pub fn reduce(
    artifacts: &Artifacts,
    params: &Params,
    summary: &Summary,
) -> XResult<Option<Vec<u64>>> {
    let (target, last) = if summary.failures.iter().any(|f| f.starts_with("moat")) {
        (Target::MoatFails, params.ops.saturating_sub(1))
    } else if let Some(d) = summary.differences.first() {
        (Target::Op(d.cpu, d.index), d.index)
    } else {
        println!("nothing to reduce");
        return Ok(None);
    };
    println!("reducing {target:?} over ops 0..={last}");
    let keep: Vec<u64> = match target {
        Target::Op(_, index) => vec![index],
        Target::MoatFails => vec![],
    };
    let mut tests = 0u32;
    let mut fails = |list: &[u64]| {
        tests += 1;
        still_fails(artifacts, params, list, &target)
    };
    // Most failures need only the ops just before them: the shortest failing suffix first
    // (a binary search), then ddmin inside it.
    let first = shortest_suffix(last, &keep, &mut fails)?;
    let items: Vec<u64> = (first..=last).filter(|i| !keep.contains(i)).collect();
    let list = ddmin(&items, &keep, &mut fails)?;
    println!("{tests} runs; minimal list: {}", ranges(&list));
    println!(
        "reproduce: ./x chaos --cpu {} --smp {} --seed {:#x} --ops {}{}{}{} --only {}",
        params.cpu,
        params.smp,
        params.seed,
        last + 1,
        if params.full { " --full" } else { "" },
        if params.irq { " --irq" } else { "" },
        if params.el0 { " --el0" } else { "" },
        ranges(&list)
    );
    Ok(Some(list))
}

/// The short runs of `./x test`: 2 vCPUs, 3,000 ops each, on `cpu`, the default mix, with
/// `--irq` and with `--el0`. `Err` names every difference and failure.
///
/// # Errors
///
/// When a run cannot be started.
pub fn smoke(artifacts: &Artifacts, cpu: &str) -> XResult<Result<(), String>> {
    let mut report = Vec::new();
    for (irq, el0) in [(false, false), (true, false), (false, true)] {
        let params = Params {
            cpu: cpu.to_owned(),
            seed: SMOKE_SEED,
            ops: 3000,
            smp: 2,
            block: 1024,
            only: None,
            full: false,
            irq,
            el0,
        };
        smoke_run(artifacts, &params, &mut report)?;
    }
    Ok(if report.is_empty() {
        Ok(())
    } else {
        Err(report.join("; "))
    })
}

fn smoke_run(artifacts: &Artifacts, params: &Params, report: &mut Vec<String>) -> XResult<()> {
    let summary = compare(artifacts, params)?;
    let mode = match (params.irq, params.el0) {
        (true, _) => "--irq: ",
        (_, true) => "--el0: ",
        _ => "",
    };
    report.extend(summary.failures.iter().map(|f| format!("{mode}{f}")));
    for d in &summary.differences {
        report.push(format!(
            "{mode}vCPU {} op {} ({}): bare {}, moat {}",
            d.cpu,
            d.index,
            describe_tag(d.bare.or(d.moat).map_or(0, |r| r[0])),
            describe_record(d.bare),
            describe_record(d.moat)
        ));
    }
    if summary.differing_blocks.len() > summary.differences.len() {
        report.push(format!(
            "{mode}{} blocks differ",
            summary.differing_blocks.len()
        ));
    }
    if summary.failures.is_empty() && summary.ops != 6000 {
        report.push(format!("{mode}{} ops ran, want 6000", summary.ops));
    }
    Ok(())
}

/// The seed of `./x test`'s run.
pub const SMOKE_SEED: u64 = 0x10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_round_trip() {
        assert_eq!(ranges(&[5, 1, 2, 3, 9, 10]), "1-3,5,9-10");
        assert_eq!(parse_ranges("1-3,5,9-10"), Some(vec![1, 2, 3, 5, 9, 10]));
        assert_eq!(parse_ranges("3-1"), None);
        assert_eq!(parse_ranges("x"), None);
    }

    #[test]
    fn console_lines_parse() {
        let run = parse(
            "CHAOS-START seed=0x1\nCHAOS-BLOCK 1 2 00ff 1024\nCHAOS-OP 0 7 20600 1 86000000 0 0 600003c5 200\nCHAOS-EC 0 0x21 5\nCHAOS-DONE 0 10\nCHAOS-HANG 1 3\nCHAOS-STRAY 1 vector=0x200\nCHAOS-END\n",
        );
        assert_eq!(run.blocks[&(1, 2)], ("00ff".to_owned(), 1024));
        assert_eq!(
            run.ops[&(0, 7)],
            [0x20600, 1, 0x8600_0000, 0, 0, 0x6000_03c5, 0x200]
        );
        assert_eq!(run.ecs[&(0, 0x21)], 5);
        assert_eq!(run.done[&0], 10);
        assert_eq!(run.hung[&1], 3);
        assert_eq!(run.errors.len(), 1);
        assert!(run.end);
    }

    #[test]
    fn the_first_differing_op_and_block_are_found() {
        let mut bare = Run::default();
        let mut moat = Run::default();
        for i in 0..5 {
            bare.ops.insert((0, i), [i, 0, 0, 0, 0, 0, 0]);
            moat.ops
                .insert((0, i), [i, 0, u64::from(i >= 3), 0, 0, 0, 0]);
        }
        bare.blocks.insert((0, 0), ("a".into(), 5));
        moat.blocks.insert((0, 0), ("b".into(), 5));
        moat.blocks.insert((1, 0), ("c".into(), 5));
        assert_eq!(first_difference(0, &bare, &moat).map(|d| d.index), Some(3));
        assert_eq!(differing_blocks(&bare, &moat), vec![(0, 0), (1, 0)]);
        assert_eq!(first_difference(1, &bare, &moat), None);
    }

    #[test]
    fn ddmin_finds_the_two_ops_a_failure_needs() {
        let items: Vec<u64> = (0..100).collect();
        let mut runs = 0;
        let list = ddmin(&items, &[100], |l| {
            runs += 1;
            Ok(l.contains(&17) && l.contains(&63) && l.contains(&100))
        })
        .unwrap();
        assert_eq!(list, vec![17, 63, 100]);
        assert!(runs <= 80, "{runs} runs");
        let alone = ddmin(&items, &[100], |l| Ok(l.contains(&100))).unwrap();
        assert_eq!(alone, vec![100]);
    }

    #[test]
    fn an_op_at_el0_is_named_as_such() {
        // LDR X of a hole at EL0; the same at EL1.
        assert_eq!(describe_tag(0x80_0403), "at EL0: load of 8 bytes, hole");
        assert_eq!(describe_tag(0x0403), "load of 8 bytes, hole");
    }

    #[test]
    fn the_shortest_failing_suffix_starts_at_the_last_op_needed() {
        let mut fails = |l: &[u64]| Ok(l.contains(&40) && l.contains(&90));
        assert_eq!(shortest_suffix(90, &[90], &mut fails).unwrap(), 40);
    }

    #[test]
    fn a_moat_run_that_did_not_power_off_is_a_vm_stop() {
        let side = Side {
            run: Run {
                end: true,
                ..Run::default()
            },
            exit: Some(MoatExit::VmStopped),
            timed_out: false,
            elapsed: Duration::ZERO,
            tail: vec![],
        };
        assert!(side.failure(true).unwrap().starts_with("VM stop"));
        assert_eq!(side.failure(false), None);
    }
}
