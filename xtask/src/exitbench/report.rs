//! The pure half of `./x bench exits`: the benchmark guest's `MOAT-BENCH` lines parsed into
//! per-operation figures (instructions per operation, minimum and median over batches), and
//! the table that sets the sides (Moat, bare, later KVM) beside each other.
//!
//! The line protocol is written by `bare/guests/exitbench/src/main.rs`: a calibration line
//! (`instructions` loop instructions took `ticks` counter ticks), then per operation the ticks of
//! each batch of `n` operations and of its empty-loop baseline, or a skip or fail line.

use std::collections::BTreeMap;
use std::fmt::Write;

/// The operations, in table order: the guest's name and the table's label.
pub const OPERATIONS: [(&str, &str); 13] = [
    ("hvc_psci_version", "HVC `PSCI_VERSION`"),
    ("hvc_psci_features", "HVC `PSCI_FEATURES(PSCI_VERSION)`"),
    ("smc_psci_version", "SMC `PSCI_VERSION`"),
    ("mmio_read_uartfr", "MMIO read, PL011 `UARTFR`"),
    ("mmio_write_uartdr", "MMIO write, PL011 `UARTDR`"),
    ("mmio_read_gicd_typer", "MMIO read, `GICD_TYPER`"),
    ("abort_mmu_off", "external abort at 2^S, MMU off"),
    ("abort_mmu_on", "external abort at 2^S, MMU on"),
    ("idreg_mmfr0", "`MRS ID_AA64MMFR0_EL1`"),
    ("timer_wfi_wake", "WFI wake-up by the virtual timer"),
    ("sgi_wfi_wake", "WFI wake-up by an SGI from another vCPU"),
    ("sgi_running", "SGI to a running vCPU"),
    ("brk", "`BRK` (the guest's own exception)"),
];

/// Instructions per operation over the batches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figure {
    /// The cheapest batch.
    pub min: f64,
    /// The median batch.
    pub median: f64,
}

/// What one side says about one operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Measured.
    Figure(Figure),
    /// The operation does not exist on this side (the guest said why).
    Skipped(String),
    /// The guest ran it and it did not do what it should.
    Failed(String),
}

/// One run's (or several runs') figures, by operation name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Instructions per counter tick, as calibrated.
    pub per_tick: Option<f64>,
    /// Per operation.
    pub cells: BTreeMap<String, Cell>,
    /// Whether the guest printed its `done` line.
    pub done: bool,
}

impl Report {
    /// Adds `other`'s operations (a second run of the same side).
    pub fn merge(&mut self, other: Report) {
        self.per_tick = self.per_tick.or(other.per_tick);
        self.cells.extend(other.cells);
        self.done &= other.done;
    }

    /// The operations of [`OPERATIONS`] that have no figure, with why.
    pub fn missing(&self) -> Vec<String> {
        OPERATIONS
            .iter()
            .filter_map(|(name, _)| match self.cells.get(*name) {
                Some(Cell::Figure(_)) => None,
                Some(Cell::Skipped(why)) => Some(format!("{name} skipped: {why}")),
                Some(Cell::Failed(why)) => Some(format!("{name} failed: {why}")),
                None => Some(format!("{name}: no result line")),
            })
            .collect()
    }
}

/// Parses the guest's console (NUL bytes, from the `UARTDR` operation, are dropped).
///
/// # Errors
///
/// A line of the protocol that does not parse, or an operation line before the calibration.
pub fn parse(console: &str) -> Result<Report, String> {
    let mut report = Report::default();
    for line in console.split('\n').map(|l| l.replace('\0', "")) {
        let Some(rest) = line.trim().strip_prefix("MOAT-BENCH ") else {
            continue;
        };
        let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        match kind {
            "calibrate" => report.per_tick = Some(calibration(rest)?),
            "op" => {
                let per_tick = report.per_tick.ok_or("an op line before the calibration")?;
                let (name, figure) = op_line(rest, per_tick)?;
                report.cells.insert(name, Cell::Figure(figure));
            }
            "skip" | "fail" => {
                let (name, why) = rest.split_once(": ").ok_or_else(|| bad(&line))?;
                let why = why.to_owned();
                let cell = if kind == "skip" {
                    Cell::Skipped(why)
                } else {
                    Cell::Failed(why)
                };
                report.cells.insert(name.to_owned(), cell);
            }
            "done" => report.done = true,
            _ => return Err(bad(&line)),
        }
    }
    Ok(report)
}

fn bad(line: &str) -> String {
    format!("unreadable benchmark line {line:?}")
}

/// `instructions=<I> ticks=<T>` → instructions per tick.
fn calibration(rest: &str) -> Result<f64, String> {
    let instructions: f64 = field(rest, "instructions")?;
    let ticks: f64 = field(rest, "ticks")?;
    if ticks > 0.0 {
        Ok(instructions / ticks)
    } else {
        Err("the calibration counted no ticks".into())
    }
}

/// `<name> n=<n> op=<t,...> base=<t,...>` → the name and its figure.
fn op_line(rest: &str, per_tick: f64) -> Result<(String, Figure), String> {
    let name = rest.split_whitespace().next().ok_or_else(|| bad(rest))?;
    let n: f64 = field(rest, "n")?;
    let ops = list(rest, "op")?;
    let bases = list(rest, "base")?;
    if ops.is_empty() || ops.len() != bases.len() || n <= 0.0 {
        return Err(format!("{name}: batches and baselines do not pair up"));
    }
    let per_op: Vec<f64> = ops
        .iter()
        .zip(&bases)
        .map(|(&op, &base)| (op - base) * per_tick / n)
        .collect();
    Ok((name.to_owned(), figure(per_op)))
}

/// The minimum and median of the batches' figures.
fn figure(mut values: Vec<f64>) -> Figure {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    let median = if values.len() % 2 == 1 {
        values[mid]
    } else {
        f64::midpoint(values[mid - 1], values[mid])
    };
    Figure {
        min: values[0],
        median,
    }
}

fn field(rest: &str, key: &str) -> Result<f64, String> {
    let value = rest
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .ok_or_else(|| format!("no {key}= in {rest:?}"))?;
    value
        .parse()
        .map_err(|_| format!("{key}={value} is not a number"))
}

fn list(rest: &str, key: &str) -> Result<Vec<f64>, String> {
    let value = rest
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .ok_or_else(|| format!("no {key}= in {rest:?}"))?;
    value
        .split(',')
        .map(|v| v.parse().map_err(|_| format!("{key}: {v} is not a number")))
        .collect()
}

/// One column group of the table: a side's name and its report.
#[derive(Clone, Debug)]
pub struct Column {
    /// E.g. `Moat`, `bare`, `KVM nVHE`.
    pub name: String,
    /// Its figures.
    pub report: Report,
}

/// A Markdown table: per operation, each column's min and median, then each ratio
/// (`columns[a]` median / `columns[b]` median) in `ratios`.
pub fn table(columns: &[Column], ratios: &[(usize, usize)]) -> String {
    let mut out = String::from("| operation |");
    for c in columns {
        let _ = write!(out, " {0} min | {0} median |", c.name);
    }
    for &(a, b) in ratios {
        let _ = write!(out, " {} / {} |", columns[a].name, columns[b].name);
    }
    out.push_str("\n| --- |");
    out.push_str(&" ---: |".repeat(2 * columns.len() + ratios.len()));
    out.push('\n');
    for (name, label) in OPERATIONS {
        let _ = write!(out, "| {label} |");
        let cells: Vec<Option<&Cell>> = columns.iter().map(|c| c.report.cells.get(name)).collect();
        for cell in &cells {
            match cell {
                Some(Cell::Figure(f)) => {
                    let _ = write!(out, " {:.1} | {:.1} |", f.min, f.median);
                }
                Some(Cell::Failed(_)) => out.push_str(" failed | failed |"),
                Some(Cell::Skipped(_)) | None => out.push_str(" - | - |"),
            }
        }
        for &(a, b) in ratios {
            match (cells[a], cells[b]) {
                (Some(Cell::Figure(x)), Some(Cell::Figure(y))) if y.median > 0.0 => {
                    let _ = write!(out, " {:.1} |", x.median / y.median);
                }
                _ => out.push_str(" - |"),
            }
        }
        out.push('\n');
    }
    out
}

/// The skip and fail reasons of every column, one line each, for the notes under a table.
pub fn notes(columns: &[Column]) -> Vec<String> {
    let mut notes = Vec::new();
    for c in columns {
        for (name, cell) in &c.report.cells {
            match cell {
                Cell::Skipped(why) => notes.push(format!("{}: {name} skipped: {why}", c.name)),
                Cell::Failed(why) => notes.push(format!("{}: {name} FAILED: {why}", c.name)),
                Cell::Figure(_) => {}
            }
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "moat: booting\n\
        MOAT-BENCH calibrate instructions=1966080 ticks=122880\n\
        \0\0\0MOAT-BENCH op brk n=100 op=56,56,57 base=12,12,12\n\
        MOAT-BENCH skip smc_psci_version: SMC is UNDEFINED here\n\
        MOAT-BENCH fail abort_mmu_on: not every load took a data abort\n\
        MOAT-BENCH done\n";

    #[test]
    fn calibration_gives_16_instructions_per_tick_at_62_5_mhz_and_1_ns_per_instruction() {
        let report = parse(CONSOLE).unwrap();
        assert_eq!(report.per_tick, Some(16.0));
        assert!(report.done);
    }

    #[test]
    fn batch_minus_baseline_is_converted_to_instructions_per_operation() {
        let report = parse(CONSOLE).unwrap();
        // (56 - 12) * 16 / 100 = 7.04; the median batch is 56 too; the max is ignored.
        let Some(Cell::Figure(f)) = report.cells.get("brk") else {
            panic!("brk has no figure");
        };
        assert!((f.min - 7.04).abs() < 1e-9 && (f.median - 7.04).abs() < 1e-9);
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let f = figure(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!((f.min, f.median), (1.0, 2.5));
    }

    #[test]
    fn skip_and_fail_lines_keep_their_reasons_and_nul_bytes_are_dropped() {
        let report = parse(CONSOLE).unwrap();
        assert_eq!(
            report.cells.get("smc_psci_version"),
            Some(&Cell::Skipped("SMC is UNDEFINED here".into()))
        );
        assert!(matches!(
            report.cells.get("abort_mmu_on"),
            Some(Cell::Failed(_))
        ));
        assert!(
            report
                .missing()
                .iter()
                .any(|m| m.starts_with("hvc_psci_version"))
        );
    }

    #[test]
    fn op_line_before_calibration_or_unpaired_batches_are_errors() {
        assert!(parse("MOAT-BENCH op brk n=1 op=1 base=1\n").is_err());
        let unpaired = "MOAT-BENCH calibrate instructions=16 ticks=1\n\
                        MOAT-BENCH op brk n=1 op=1,2 base=1\n";
        assert!(parse(unpaired).is_err());
        assert!(parse("MOAT-BENCH frobnicate\n").is_err());
    }

    #[test]
    fn table_shows_dashes_where_a_side_lacks_the_operation_and_a_ratio_of_medians() {
        let moat = parse(
            "MOAT-BENCH calibrate instructions=16 ticks=1\n\
             MOAT-BENCH op brk n=1 op=10 base=0\n\
             MOAT-BENCH op smc_psci_version n=1 op=300 base=0\n",
        )
        .unwrap();
        let bare = parse(CONSOLE).unwrap();
        let columns = [
            Column {
                name: "Moat".into(),
                report: moat,
            },
            Column {
                name: "bare".into(),
                report: bare,
            },
        ];
        let text = table(&columns, &[(0, 1)]);
        assert!(text.starts_with("| operation | Moat min | Moat median | bare min |"));
        assert!(text.contains("| SMC `PSCI_VERSION` | 4800.0 | 4800.0 | - | - | - |"));
        // 160 / 7.04
        assert!(
            text.contains(
                "| `BRK` (the guest's own exception) | 160.0 | 160.0 | 7.0 | 7.0 | 22.7 |"
            )
        );
        assert!(
            notes(&columns)
                .iter()
                .any(|n| n.contains("abort_mmu_on FAILED"))
        );
    }
}
