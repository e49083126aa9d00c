//! Host benchmarks of Moat's logic crates against their peers, run by `./x bench <name>`
//! (`cargo run --release -p moat-bench -- <name>`).
//!
//! `stage2`: Moat's stage-2 tables against google's `aarch64-paging` 0.12 (its `Stage2`
//! regime, identity-mapped `IdMap`) on the same work: map 1 GiB in 4 KiB pages one call per
//! page, translate 1 M pseudo-random IPAs, unmap it all in one call, and (a second map) unmap it
//! page by page. Both keep their tables in heap frames. Plain `std::time::Instant`, median of a
//! few repetitions: no benchmark framework, to keep CI compile time small.

mod moat;
mod paging;

use std::process::ExitCode;
use std::time::Duration;

/// The mapped window: 1 GiB at IPA 1 GiB, identity mapped (IPA = PA) in both.
pub const BASE: u64 = 1 << 30;
/// Bytes mapped.
pub const SIZE: u64 = 1 << 30;
/// Bytes per page.
pub const PAGE: u64 = 4096;
/// Random translations per repetition.
pub const LOOKUPS: usize = 1_000_000;
const DEFAULT_REPS: usize = 5;

/// Times of one repetition of the work, per operation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Times {
    /// Mapping every page with one call each.
    pub map: Duration,
    /// Translating [`LOOKUPS`] random IPAs.
    pub translate: Duration,
    /// Unmapping the whole window with one call.
    pub unmap_all: Duration,
    /// Unmapping the window one page per call (after mapping it again).
    pub unmap_pages: Duration,
    /// Sum of translated PAs, to check both did the same and keep the work observable.
    pub checksum: u64,
}

/// A fixed-seed xorshift64* generator: the same IPAs for both implementations, no `rand`.
pub struct Rng(u64);

impl Default for Rng {
    /// The generator every run starts from.
    fn default() -> Self {
        Self(0x9e37_79b9_7f4a_7c15)
    }
}

impl Rng {
    /// The next pseudo-random IPA inside the mapped window.
    pub fn next_ipa(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        BASE + (r >> 16) % SIZE
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("stage2") => {
            let reps = match args.get(1).map(|r| r.parse::<usize>()) {
                None => DEFAULT_REPS,
                Some(Ok(n)) if n > 0 => n,
                Some(_) => return usage(),
            };
            stage2(reps);
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: moat-bench stage2 [repetitions]");
    ExitCode::from(2)
}

/// A line of the result table: its label, which time it shows, operations per repetition.
type Row = (&'static str, fn(&Times) -> Duration, u64);

fn stage2(reps: usize) {
    let moat: Vec<Times> = (0..reps).map(|_| moat::run()).collect();
    let paging: Vec<Times> = (0..reps).map(|_| paging::run()).collect();
    assert_eq!(
        moat[0].checksum, paging[0].checksum,
        "both must translate to the same PAs"
    );
    let pages = SIZE / PAGE;
    println!(
        "stage2: 1 GiB at IPA {BASE:#x} in {pages} pages of 4 KiB, {LOOKUPS} random translations, \
         median of {reps} runs"
    );
    println!(
        "moat-stage2: IPA size 40 (start level 1, 2 concatenated tables); aarch64-paging 0.12: Stage2, root level 1"
    );
    println!(
        "{:<28} {:>12} {:>12} {:>9} {:>9}  {:>7}",
        "operation", "moat ms", "paging ms", "moat ns", "paging ns", "ratio"
    );
    let rows: [Row; 4] = [
        ("map 4 KiB x 262144 calls", |t| t.map, pages),
        ("translate 1M random IPAs", |t| t.translate, LOOKUPS as u64),
        ("unmap 1 GiB, one call", |t| t.unmap_all, 1),
        ("unmap 4 KiB x 262144 calls", |t| t.unmap_pages, pages),
    ];
    for (name, pick, ops) in rows {
        let (m, p) = (median(&moat, pick), median(&paging, pick));
        println!(
            "{name:<28} {:>12.3} {:>12.3} {:>9.1} {:>9.1}  {:>6.2}x",
            m.as_secs_f64() * 1e3,
            p.as_secs_f64() * 1e3,
            m.as_nanos() as f64 / ops as f64,
            p.as_nanos() as f64 / ops as f64,
            p.as_secs_f64() / m.as_secs_f64(),
        );
    }
    println!("ratio = aarch64-paging time / moat time (above 1.00x: moat is faster)");
}

fn median(runs: &[Times], pick: fn(&Times) -> Duration) -> Duration {
    let mut times: Vec<Duration> = runs.iter().map(pick).collect();
    times.sort_unstable();
    times[times.len() / 2]
}
