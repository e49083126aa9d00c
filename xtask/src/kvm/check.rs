//! The check guest's report (`kvm-runner/guest/kvmcheck.s`): that it ran at EL1, printed
//! through the runner's PL011, started a second vCPU with PSCI `CPU_ON` when there is one, and
//! what an HVC `PSCI_VERSION` round trip costs in instructions.
//!
//! Under `-icount shift=0` every instruction advances virtual time by 1 ns, and the guest reads
//! time from the virtual counter (`CNTVCT_EL0`, 62.5 MHz on QEMU virt: 16 instructions a tick,
//! but calibrated, never assumed). Each batch times a 2-instruction loop of [`CAL`] iterations
//! (instructions per tick), then [`N`] iterations of the empty benchmark loop and of the same
//! loop with `hvc #0` added; a round trip is the difference over `N`, in instructions. The
//! host kernel's own interrupts land in some batches, so the median over batches is reported
//! beside the minimum.

/// Iterations of the calibration loop (`CAL` in `kvmcheck.s`), two instructions each.
pub const CAL: u64 = 65536;
/// Iterations of the benchmark loops (`N` in `kvmcheck.s`).
pub const N: u64 = 256;
/// Batches (`BATCHES` in `kvmcheck.s`).
pub const BATCHES: usize = 21;
/// The line prefix of the check guest.
const PREFIX: &str = "KVMCHECK ";

/// One batch's counter ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The calibration loop: `2 * CAL` instructions.
    pub cal: u64,
    /// `N` iterations of the empty benchmark loop.
    pub base: u64,
    /// `N` iterations with the HVC.
    pub op: u64,
}

/// What the check guest showed.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// `CurrentEL`'s EL field.
    pub el: u64,
    /// `CNTFRQ_EL0`.
    pub cntfrq: u64,
    /// PSCI `CPU_ON`'s answer for MPIDR 1, as a signed PSCI return code.
    pub cpu_on: i64,
    /// Whether vCPU 1 said it was up.
    pub cpu1_up: bool,
    /// `PSCI_VERSION`'s answer.
    pub psci_version: u64,
    /// The batches, in order.
    pub batches: Vec<Batch>,
}

/// Round-trip figures in instructions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    /// Instructions per counter tick (the median of the batches' calibrations).
    pub per_tick: f64,
    /// The cheapest batch's round trip.
    pub min: f64,
    /// The median batch's round trip.
    pub median: f64,
}

/// Reads the check guest's lines.
///
/// # Errors
///
/// A message naming the line that is missing or malformed.
pub fn parse(console: &str) -> Result<Check, String> {
    let lines: Vec<&str> = console
        .lines()
        .filter_map(|l| l.trim().strip_prefix(PREFIX))
        .collect();
    let value = |key: &str| -> Result<u64, String> {
        let line = lines
            .iter()
            .find_map(|l| l.strip_prefix(key))
            .ok_or_else(|| format!("no `{PREFIX}{key}` line"))?;
        let numbers = hex_words(line)?;
        numbers
            .first()
            .copied()
            .ok_or_else(|| format!("`{PREFIX}{key}` has no value"))
    };
    let batches = lines
        .iter()
        .filter_map(|l| l.strip_prefix("batch "))
        .map(|l| match hex_words(l)?.as_slice() {
            &[cal, base, op] => Ok(Batch { cal, base, op }),
            _ => Err(format!("`{PREFIX}batch {l}` does not have three values")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !lines.contains(&"done") {
        return Err(format!("no `{PREFIX}done` line"));
    }
    Ok(Check {
        el: (value("hello CurrentEL ")? >> 2) & 3,
        cntfrq: value("cntfrq ")?,
        // The register's 64 bits as PSCI's signed return code.
        cpu_on: value("cpu_on ")?.cast_signed(),
        cpu1_up: lines.contains(&"cpu1 up"),
        psci_version: value("psci_version ")?,
        batches,
    })
}

/// Space-separated `0x` hexadecimal numbers.
fn hex_words(text: &str) -> Result<Vec<u64>, String> {
    text.split_whitespace()
        .map(|w| {
            w.strip_prefix("0x")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("{w:?} is not a 0x hexadecimal number"))
        })
        .collect()
}

impl Check {
    /// What the test case requires: EL1, vCPU 1 started and up, PSCI 1.x, every batch timed.
    ///
    /// # Errors
    ///
    /// The first requirement not met.
    pub fn verdict(&self) -> Result<(), String> {
        let checks = [
            (self.el == 1, format!("ran at EL{}, not EL1", self.el)),
            (
                self.cpu_on == 0 && self.cpu1_up,
                format!("CPU_ON(1) = {}, vCPU 1 up: {}", self.cpu_on, self.cpu1_up),
            ),
            (
                self.psci_version >> 16 == 1,
                format!("PSCI_VERSION {:#x}, not 1.x", self.psci_version),
            ),
            (
                self.batches.len() == BATCHES,
                format!("{} batches, not {BATCHES}", self.batches.len()),
            ),
        ];
        match checks.into_iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err(why),
            None => self.figures().map(|_| ()),
        }
    }

    /// The HVC round trip in instructions: min and median over the batches.
    ///
    /// # Errors
    ///
    /// When there are no batches or a calibration loop took no ticks.
    pub fn figures(&self) -> Result<Figures, String> {
        if self.batches.iter().any(|b| b.cal == 0) || self.batches.is_empty() {
            return Err("no batches, or a calibration that took no counter ticks".into());
        }
        #[allow(clippy::cast_precision_loss)] // tick counts are far below 2^52
        let per_tick = median(
            self.batches
                .iter()
                .map(|b| (2 * CAL) as f64 / b.cal as f64)
                .collect(),
        );
        #[allow(clippy::cast_precision_loss)]
        let trips: Vec<f64> = self
            .batches
            .iter()
            .map(|b| (b.op as f64 - b.base as f64) * per_tick / N as f64)
            .collect();
        let min = trips.iter().copied().fold(f64::INFINITY, f64::min);
        Ok(Figures {
            per_tick,
            min,
            median: median(trips),
        })
    }
}

/// The median (the lower middle one of an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[(values.len() - 1) / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "KVMCHECK hello CurrentEL 0x0000000000000004
KVMCHECK cntfrq 0x0000000003b9aca0
KVMCHECK cpu_on 0xfffffffffffffffe
KVMCHECK psci_version 0x0000000000010001
KVMCHECK batch 0x0000000000002000 0x0000000000000030 0x0000000000005c30
KVMCHECK batch 0x0000000000002000 0x0000000000000030 0x0000000000006000
KVMCHECK batch 0x0000000000002001 0x0000000000000031 0x0000000000005c31
KVMCHECK done
";

    #[test]
    fn the_check_guest_lines_are_read() {
        let check = parse(CONSOLE).unwrap();
        assert_eq!(check.el, 1);
        assert_eq!(check.cntfrq, 62_500_000);
        assert_eq!(check.cpu_on, -2, "PSCI INVALID_PARAMETERS: no vCPU 1");
        assert!(!check.cpu1_up);
        assert_eq!(check.psci_version, 0x10001);
        assert_eq!(check.batches.len(), 3);
    }

    #[test]
    fn a_round_trip_is_the_loop_difference_over_n_at_the_calibrated_rate() {
        let figures = parse(CONSOLE).unwrap().figures().unwrap();
        // 2 * 65536 instructions in 0x2000 ticks: 16 per tick (the median calibration).
        assert!((figures.per_tick - 16.0).abs() < 1e-9);
        // (0x5c30 - 0x30) ticks * 16 / 256 = 1472 instructions.
        assert!((figures.min - 1472.0).abs() < 1e-9);
        assert!((figures.median - 1472.0).abs() < 1e-9);
    }

    #[test]
    fn the_verdict_wants_el1_vcpu_1_up_psci_1_x_and_every_batch() {
        let check = parse(CONSOLE).unwrap();
        let err = check.verdict().unwrap_err();
        assert!(err.contains("CPU_ON(1) = -2"), "{err}");
        let batch = check.batches[0];
        let good = Check {
            cpu_on: 0,
            cpu1_up: true,
            batches: vec![batch; BATCHES],
            ..check.clone()
        };
        assert_eq!(good.verdict(), Ok(()));
        let el2 = Check {
            el: 2,
            ..good.clone()
        };
        assert!(el2.verdict().unwrap_err().contains("EL2"));
        let short = Check {
            batches: vec![batch; 3],
            ..good
        };
        assert!(short.verdict().unwrap_err().contains("3 batches"));
    }

    #[test]
    fn a_missing_done_line_or_a_malformed_batch_is_an_error() {
        let without_done = CONSOLE.replace("KVMCHECK done\n", "");
        assert!(parse(&without_done).unwrap_err().contains("done"));
        let bad = CONSOLE.replace("0x0000000000006000", "6000");
        assert!(parse(&bad).is_err());
    }
}
