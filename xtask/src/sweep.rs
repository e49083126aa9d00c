//! `./x sweep`: the system-register sweep of issue 10 item 1. The guest
//! `bare/guests/sysregsweep` executes every system-instruction encoding a guest at EL1 can
//! reach (`op0` 1..3 × `op1` × `CRn` × `CRm` × `op2`, read and write: 98,304 accesses) and
//! records each outcome. It runs bare on QEMU (EL1, no hypervisor, the same CPU model) and under
//! Moat, and the two are compared encoding by encoding:
//!
//! 1. both sides print one hash per block of 256 accesses (one `op0`/`op1`/`CRn`);
//! 2. the blocks whose hashes differ run again on both sides with `sweep.detail=`, which prints
//!    each access of those blocks that did anything but UNDEFINED;
//! 3. every access that differs is put in a [`Category`]: a documented hiding or a value that
//!    differs by design, or unexplained (a Moat bug, or a hiding not yet listed).
//!
//! `docs/trap-outcomes.md` is the inventory these figures feed.

use crate::build::Artifacts;
use crate::error::XResult;
use crate::qemu::{ConsoleMode, Machine, Outcome};
use crate::scratch::Scratch;
use crate::vm::{self, VmRequest};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// The guest's binary name.
const GUEST: &str = "moat-guest-sysregsweep";
/// A full sweep takes about a second bare and a few under Moat; this bounds a hung one.
const LIMIT: Duration = Duration::from_secs(120);
/// RAM of the VM and of the bare machine: the same, so the guest runs at the same addresses.
const RAM_MIB: u64 = 128;
/// Blocks in the sweep (`op0` 1..3 × `op1` × `CRn`).
pub const BLOCKS: usize = 384;

/// One access: `op0`, `op1`, `CRn`, `CRm`, `op2`, and whether it is the write (`MSR`/`SYS`).
pub type Access = (u8, u8, u8, u8, u8, bool);
/// What an access printed: the guest's record kind (0 done, 1 exception, 2 not written: unsafe)
/// and its data (the value, or `ESR_EL1`). Absent: UNDEFINED, or a write not performed because
/// the read failed.
pub type Record = (u64, u64);

/// One side's run.
#[derive(Default, Debug)]
pub struct Run {
    /// Each block's hash.
    pub hashes: BTreeMap<usize, String>,
    /// The detail records printed.
    pub records: BTreeMap<Access, Record>,
    /// `SWEEP-DONE`'s count, if the guest finished.
    pub done: Option<usize>,
    /// The `SWEEP-INSN` records: `fp`, `sve`.
    pub insns: BTreeMap<String, Record>,
}

/// Parses the guest's console.
pub fn parse(console: &str) -> Run {
    let mut run = Run::default();
    for line in console.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["SWEEP-BLOCK", block, hash] => {
                if let Ok(block) = block.parse() {
                    run.hashes.insert(block, (*hash).to_owned());
                }
            }
            ["SWEEP-DONE", n] => run.done = n.parse().ok(),
            ["SWEEP-INSN", name, kind, data] => {
                let data = u64::from_str_radix(data.trim_start_matches("0x"), 16);
                if let (Ok(kind), Ok(data)) = (kind.parse(), data) {
                    run.insns.insert((*name).to_owned(), (kind, data));
                }
            }
            ["SWEEP", op0, op1, crn, crm, op2, dir, kind, data] => {
                let field = |s: &str| s.parse::<u8>().ok();
                let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
                let parsed = (|| {
                    let access = (
                        field(op0)?,
                        field(op1)?,
                        field(crn)?,
                        field(crm)?,
                        field(op2)?,
                        *dir == "w",
                    );
                    Some((access, (kind.parse().ok()?, hex(data)?)))
                })();
                if let Some((access, record)) = parsed {
                    run.records.insert(access, record);
                }
            }
            _ => {}
        }
    }
    run
}

/// Why an access's outcome under Moat differs from bare QEMU's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    /// An ID register (`op0` 3, `op1` 0, `CRn` 0) read: Moat shows the sanitised value
    /// (`crates/vcpu/src/idregs.rs`), by design.
    IdSanitised,
    /// A counter or timer value (read, or its value written back), or a random number: they
    /// differ between any two runs.
    Volatile,
    /// A register whose reset value the Arm ARM leaves UNKNOWN and the guest does not set
    /// (`SCTLR_EL1`: QEMU resets it to the core's value, Moat to `SCTLR_EL1_RESET`).
    ResetUnknown,
    /// A register that exists, or is writable, only at the highest implemented Exception
    /// level: EL1 is that bare, not under Moat (`RVBAR_EL1` is UNDEFINED when EL2 is
    /// implemented; `CNTFRQ_EL0` is writable only at the highest EL).
    NotHighestEl,
    /// Bare QEMU has the register; under Moat it is UNDEFINED because Moat hides the feature
    /// and the ID field named by [`hidden_feature`] says it is absent.
    Hidden,
    /// QEMU departs from the Arm ARM and Moat does not: an SVE instruction on a core without
    /// SVE (`cortex-a72`) takes QEMU 7.2's SVE access trap (EC 0x19) bare; it is UNDEFINED.
    QemuDeparture,
    /// None of the above: a Moat bug or a hiding not yet documented.
    Unexplained,
}

impl Category {
    /// The name in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Self::IdSanitised => "ID register sanitised",
            Self::Volatile => "counter/timer/random value",
            Self::ResetUnknown => "UNKNOWN reset value",
            Self::NotHighestEl => "EL1 not the highest EL",
            Self::Hidden => "feature hidden (UNDEFINED)",
            Self::QemuDeparture => "QEMU departure",
            Self::Unexplained => "UNEXPLAINED",
        }
    }
}

/// Values that follow time or chance: `CNTPCT_EL0`, `CNTVCT_EL0`, `CNTPCTSS_EL0`,
/// `CNTVCTSS_EL0`, `CNTP_TVAL_EL0`, `CNTV_TVAL_EL0`, `PMCCNTR_EL0`; `CNTP_CVAL_EL0` and
/// `CNTV_CVAL_EL0` (the sweep writes each `TVAL` back, which sets `CVAL` = counter + `TVAL`);
/// `RNDR` and `RNDRRS` (FEAT_RNG).
const VOLATILE: [(u8, u8, u8, u8, u8); 11] = [
    (3, 3, 14, 0, 1),
    (3, 3, 14, 0, 2),
    (3, 3, 14, 0, 5),
    (3, 3, 14, 0, 6),
    (3, 3, 14, 2, 0),
    (3, 3, 14, 3, 0),
    (3, 3, 14, 2, 2),
    (3, 3, 14, 3, 2),
    (3, 3, 9, 13, 0),
    (3, 3, 2, 4, 0),
    (3, 3, 2, 4, 1),
];

/// `SCTLR_EL1`.
const SCTLR_EL1: (u8, u8, u8, u8, u8) = (3, 0, 1, 0, 0);
/// `RVBAR_EL1`.
const RVBAR_EL1: (u8, u8, u8, u8, u8) = (3, 0, 12, 0, 1);
/// `CNTFRQ_EL0`.
const CNTFRQ_EL0: (u8, u8, u8, u8, u8) = (3, 3, 14, 0, 0);

/// The feature Moat hides that makes an encoding UNDEFINED under Moat, with the ID field that
/// says so (Arm ARM, the register's "Configurations" / "accessibility" pseudocode).
pub fn hidden_feature(access: Access) -> Option<&'static str> {
    let (op0, op1, crn, crm, op2, _) = access;
    HIDDEN
        .iter()
        .find(|h| h.0 == (op0, op1, crn, crm) && h.1.contains(&op2))
        .map(|h| h.2)
}

/// (`op0`, `op1`, `CRn`, `CRm`), the `op2` values, and the feature with its ID field.
type Hiding = ((u8, u8, u8, u8), &'static [u8], &'static str);

/// The registers of features Moat hides, as the sweep measured them on QEMU 7.2 `max`.
const HIDDEN: &[Hiding] = &[
    // SMCR_EL1 (S3_0_C1_C2_6), SMPRI_EL1 (_4): bare EC 0x1D (SME access trap, CPACR_EL1.SMEN
    // = 0); Moat reports ID_AA64PFR1_EL1.SME = 0, so they are UNDEFINED.
    ((3, 0, 1, 2), &[4, 6], "FEAT_SME (ID_AA64PFR1_EL1.SME = 0)"),
    // SVCR (S3_3_C4_C2_2).
    ((3, 3, 4, 2), &[2], "FEAT_SME (ID_AA64PFR1_EL1.SME = 0)"),
    // ZCR_EL1 (S3_0_C1_C2_0): bare EC 0x19 (SVE access trap, CPACR_EL1.ZEN = 0).
    ((3, 0, 1, 2), &[0], "FEAT_SVE (ID_AA64PFR0_EL1.SVE = 0)"),
];

/// `ESR_EL1` of an UNDEFINED instruction (EC 0x00, IL = 1).
const ESR_UNDEFINED: u64 = 0x0200_0000;

/// Compares the two instructions executed after the table with `CPACR_EL1.FPEN` = 0: the FP
/// instruction's outcome must be bare's (EC 0x07); the SVE instruction's bare's, or UNDEFINED
/// where bare takes the SVE access trap (SVE hidden, `ID_AA64PFR0_EL1.SVE` = 0).
pub fn compare_insns(cpu: &str, bare: &Run, moat: &Run, summary: &mut Summary) {
    for name in ["fp", "sve"] {
        let (b, m) = (bare.insns.get(name), moat.insns.get(name));
        summary.accesses += 1;
        if b == m {
            summary.equal += 1;
            continue;
        }
        let line = format!(
            "{name} instruction: bare {}, moat {}",
            describe(b.copied()),
            describe(m.copied())
        );
        let sve_trap = matches!(b, Some(&(1, esr)) if esr >> 26 == 0x19);
        let category = if name == "sve" && sve_trap && m == Some(&(1, ESR_UNDEFINED)) {
            if cpu.starts_with("max") {
                Category::Hidden
            } else {
                Category::QemuDeparture
            }
        } else {
            summary.report.push(line.clone());
            Category::Unexplained
        };
        *summary.differing.entry(category).or_default() += 1;
        summary.listed.push(format!("[{}] {line}", category.name()));
    }
}

/// Classifies one access whose outcomes differ.
pub fn classify(access: Access, bare: Option<Record>, moat: Option<Record>) -> Category {
    let (op0, op1, crn, crm, op2, write) = access;
    let both_done = matches!((bare, moat), (Some((0, _)), Some((0, _))));
    if both_done && !write && (op0, op1, crn) == (3, 0, 0) {
        return Category::IdSanitised;
    }
    let encoding = (op0, op1, crn, crm, op2);
    if both_done && VOLATILE.contains(&encoding) {
        return Category::Volatile;
    }
    if both_done && !write && encoding == SCTLR_EL1 {
        return Category::ResetUnknown;
    }
    let moat_undefined = moat.is_none() || moat == Some((1, ESR_UNDEFINED));
    let bare_done = matches!(bare, Some((0, _)));
    if bare_done && moat_undefined && (encoding == RVBAR_EL1 || (encoding == CNTFRQ_EL0 && write)) {
        return Category::NotHighestEl;
    }
    if moat_undefined && hidden_feature(access).is_some() {
        return Category::Hidden;
    }
    Category::Unexplained
}

/// The figures of one CPU's sweep.
#[derive(Default, Debug)]
pub struct Summary {
    /// Accesses compared.
    pub accesses: usize,
    /// Accesses with equal outcomes.
    pub equal: usize,
    /// Differing accesses by category.
    pub differing: BTreeMap<Category, usize>,
    /// One line per unexplained difference, and per run that did not finish.
    pub report: Vec<String>,
    /// One line per difference of any category (`./x sweep --list`).
    pub listed: Vec<String>,
}

impl Summary {
    /// Whether nothing is unexplained and both runs finished.
    pub fn clean(&self) -> bool {
        self.report.is_empty()
    }
}

fn describe(record: Option<Record>) -> String {
    match record {
        None => "undefined/not-written".to_owned(),
        Some((0, v)) => format!("value {v:#x}"),
        Some((1, esr)) => format!("exception ESR {esr:#x} (EC {:#x})", esr >> 26),
        Some((2, _)) => "not written (unsafe)".to_owned(),
        Some((k, d)) => format!("kind {k} {d:#x}"),
    }
}

/// Compares the detail records of `blocks`.
pub fn compare(blocks: &[usize], bare: &Run, moat: &Run, summary: &mut Summary) {
    for &block in blocks {
        let (op0, op1, crn) = (
            (block / 128 + 1) as u8,
            (block / 16 % 8) as u8,
            (block % 16) as u8,
        );
        for crm in 0..16u8 {
            for op2 in 0..8u8 {
                for write in [false, true] {
                    let access = (op0, op1, crn, crm, op2, write);
                    let (b, m) = (
                        bare.records.get(&access).copied(),
                        moat.records.get(&access).copied(),
                    );
                    summary.accesses += 1;
                    if b == m {
                        summary.equal += 1;
                        continue;
                    }
                    let category = classify(access, b, m);
                    *summary.differing.entry(category).or_default() += 1;
                    let dir = if write { "write" } else { "read" };
                    let line = format!(
                        "S{op0}_{op1}_C{crn}_C{crm}_{op2} {dir}: bare {}, moat {}",
                        describe(b),
                        describe(m)
                    );
                    summary.listed.push(format!("[{}] {line}", category.name()));
                    if category == Category::Unexplained {
                        summary.report.push(line);
                    }
                }
            }
        }
    }
}

fn boot_bare(artifacts: &Artifacts, cpu: &str, bootargs: &str) -> XResult<Outcome> {
    Machine {
        cpu: cpu.into(),
        mem_mib: RAM_MIB,
        kernel: artifacts.guest(GUEST),
        initrd: None,
        append: Some(bootargs.to_owned()),
        el2: false,
        gic_version: 3,
        smp: 1,
    }
    .run(ConsoleMode::Captured, Some(LIMIT))
}

fn boot_moat(artifacts: &Artifacts, cpu: &str, bootargs: &str) -> XResult<Outcome> {
    let request = VmRequest {
        mem: Some(RAM_MIB << 20),
        bootargs: Some(bootargs.to_owned()),
        ..VmRequest::default()
    };
    let vm = vm::describe(&request, cpu)?;
    let scratch = Scratch::new("sweep")?;
    let bundle = scratch.join("sweep.bundle");
    vm::moat_machine(&vm, &artifacts.moat, &artifacts.guest(GUEST), cpu, &bundle)?
        .run(ConsoleMode::Captured, Some(LIMIT))
}

/// Why a run did not finish: its last lines.
fn unfinished(side: &str, outcome: &Outcome) -> String {
    let tail: Vec<&str> = outcome.console.lines().rev().take(4).collect();
    format!("{side} run did not finish (no SWEEP-DONE): {tail:?}")
}

/// Sweeps blocks `lo..=hi` on `cpu`, bare and under Moat, and compares them.
///
/// # Errors
///
/// When a run cannot be started.
pub fn sweep(artifacts: &Artifacts, cpu: &str, lo: usize, hi: usize) -> XResult<Summary> {
    let mut summary = Summary::default();
    let range = format!("sweep.blocks={lo}-{hi}");
    let bare = parse(&boot_bare(artifacts, cpu, &range)?.console);
    let moat_outcome = boot_moat(artifacts, cpu, &range)?;
    let moat = parse(&moat_outcome.console);
    if bare.done.is_none() {
        summary.report.push("bare run did not finish".to_owned());
    }
    if moat.done.is_none() {
        summary.report.push(unfinished("moat", &moat_outcome));
    }
    compare_insns(cpu, &bare, &moat, &mut summary);
    let differing: Vec<usize> = (lo..=hi)
        .filter(|b| bare.hashes.get(b) != moat.hashes.get(b))
        .collect();
    let equal_blocks = (hi + 1 - lo) - differing.len();
    summary.accesses += equal_blocks * 256;
    summary.equal += equal_blocks * 256;
    if differing.is_empty() {
        return Ok(summary);
    }
    let list: Vec<String> = differing.iter().map(ToString::to_string).collect();
    let detail = format!("{range} sweep.detail={}", list.join(","));
    let bare = parse(&boot_bare(artifacts, cpu, &detail)?.console);
    let moat_outcome = boot_moat(artifacts, cpu, &detail)?;
    let moat = parse(&moat_outcome.console);
    compare(&differing, &bare, &moat, &mut summary);
    Ok(summary)
}

/// The slices `./x test` sweeps on each CPU: `op0` 3, `op1` 0 (the EL1 registers: the ID
/// space, `SCTLR`/`CPACR`/`ZCR`/`SMCR`, the translation controls, the GIC CPU interface) and
/// `op0` 3, `op1` 3 (the EL0 registers: cache type, random numbers, PSTATE fields, thread IDs,
/// the PMU, the generic timer).
pub const SMOKE_BLOCKS: [(usize, usize); 2] = [(256, 271), (304, 319)];

/// The short run of `./x test`: [`SMOKE_BLOCKS`] on `cpu`; `Err` names every unexplained
/// difference and a run that did not finish.
///
/// # Errors
///
/// When a run cannot be started.
pub fn smoke(artifacts: &Artifacts, cpu: &str) -> XResult<Result<(), String>> {
    let mut report = Vec::new();
    for (lo, hi) in SMOKE_BLOCKS {
        let summary = sweep(artifacts, cpu, lo, hi)?;
        let expected = (hi + 1 - lo) * 256 + 2;
        report.extend(summary.report);
        if summary.accesses != expected {
            report.push(format!(
                "blocks {lo}-{hi}: {} accesses compared, want {expected}",
                summary.accesses
            ));
        }
    }
    Ok(if report.is_empty() {
        Ok(())
    } else {
        Err(report.join("; "))
    })
}

/// Prints a CPU's summary line and its report (with `list`, every difference).
pub fn print(cpu: &str, summary: &Summary, list: bool) {
    let mut line = format!(
        "{cpu}: {} accesses, {} equal",
        summary.accesses, summary.equal
    );
    for (category, n) in &summary.differing {
        let _ = write!(line, ", {n} {}", category.name());
    }
    println!("{line}");
    let lines = if list {
        &summary.listed
    } else {
        &summary.report
    };
    for item in lines {
        println!("    {item}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_hashes_details_and_done_parse() {
        let run = parse(
            "SWEEP-BLOCK 3 00ff\nSWEEP 3 0 0 0 0 r 0 0x410fd083\nSWEEP 3 3 4 2 1 w 2 0x0\nSWEEP-DONE 256\n",
        );
        assert_eq!(run.hashes[&3], "00ff");
        assert_eq!(run.records[&(3, 0, 0, 0, 0, false)], (0, 0x410f_d083));
        assert_eq!(run.records[&(3, 3, 4, 2, 1, true)], (2, 0));
        assert_eq!(run.done, Some(256));
    }

    #[test]
    fn a_differing_id_register_read_is_sanitised_but_an_unlisted_undefined_is_unexplained() {
        let midr = (3, 0, 0, 0, 0, false);
        assert_eq!(
            classify(midr, Some((0, 1)), Some((0, 2))),
            Category::IdSanitised
        );
        let tpidr = (3, 0, 13, 0, 4, false);
        assert_eq!(
            classify(tpidr, Some((0, 1)), Some((1, 0x0200_0000))),
            Category::Unexplained
        );
    }

    #[test]
    fn a_hidden_sme_register_is_a_hiding_with_its_id_field() {
        let svcr = (3, 3, 4, 2, 2, false);
        assert_eq!(
            classify(svcr, Some((1, 0x7600_0000)), None),
            Category::Hidden
        );
        assert_eq!(
            hidden_feature(svcr),
            Some("FEAT_SME (ID_AA64PFR1_EL1.SME = 0)")
        );
    }

    #[test]
    fn rvbar_el1_is_undefined_where_el1_is_not_the_highest_el() {
        let rvbar = (3, 0, 12, 0, 1, false);
        assert_eq!(classify(rvbar, Some((0, 0)), None), Category::NotHighestEl);
    }

    #[test]
    fn an_sve_instruction_must_be_undefined_and_an_fp_one_equal() {
        let run = |fp: Record, sve: Record| Run {
            insns: BTreeMap::from([("fp".to_owned(), fp), ("sve".to_owned(), sve)]),
            ..Run::default()
        };
        let bare = run((1, 0x1FE0_0000), (1, 0x6600_0000));
        let mut summary = Summary::default();
        compare_insns(
            "cortex-a72",
            &bare,
            &run((1, 0x1FE0_0000), (1, ESR_UNDEFINED)),
            &mut summary,
        );
        assert_eq!(summary.equal, 1);
        assert_eq!(summary.differing[&Category::QemuDeparture], 1);
        assert!(summary.clean());
        let mut summary = Summary::default();
        compare_insns(
            "max",
            &bare,
            &run((1, 0x0200_0000), (1, 0x6600_0000)),
            &mut summary,
        );
        assert_eq!(summary.differing[&Category::Unexplained], 1);
        assert!(!summary.clean());
    }

    #[test]
    fn the_counter_read_differs_by_time_only() {
        let cntvct = (3, 3, 14, 0, 2, false);
        assert_eq!(
            classify(cntvct, Some((0, 100)), Some((0, 200))),
            Category::Volatile
        );
    }
}
