//! `moat-guest-exitbench`: the benchmark guest of `./x bench exits` (issue 9). It times the
//! operations a guest makes a hypervisor do — calls, trapped registers, emulated MMIO, injected
//! aborts, interrupt delivery — with the virtual counter, under QEMU's `-icount shift=0`, where
//! the counter advances with every instruction the emulated machine executes (EL2 included). The
//! same image runs under Moat and bare (QEMU at EL1, no hypervisor), where an operation exists
//! there.
//!
//! Method: the counter's rate in instructions is calibrated first (two counted loops; the
//! difference cancels their fixed cost), never assumed. Each operation runs in batches of `n`
//! repetitions, each batch paired with the empty loop of the same length as its baseline; the
//! host converts "batch minus baseline" to instructions per operation and reports the minimum
//! and median over the batches. Every batch checks what the guest saw (exception counts and
//! syndromes, SMCCC results), so a figure is only printed for an operation that did what it
//! says.
//!
//! Bootargs: `exitbench.group=single|pair|all` (the one-vCPU operations, the two-vCPU ones,
//! both; default all), `exitbench.batches=B` (1..=63, default 21), `exitbench.n=N` (default
//! 500), `exitbench.abort=ADDR` (hex; default 0x100_0000_0000 = 2^40, outside the default VM's
//! 40-bit IPA space and unassigned on bare QEMU).
//!
//! Output (one line each, parsed by `xtask/src/exitbench.rs`):
//! - `MOAT-BENCH calibrate instructions=<I> ticks=<T>`: `I` loop instructions took `T` ticks;
//! - `MOAT-BENCH op <name> n=<n> op=<t,...> base=<t,...>`: per batch, the ticks of `n`
//!   operations and of their baseline;
//! - `MOAT-BENCH skip <name>: <why>`: the operation does not exist here;
//! - `MOAT-BENCH fail <name>: <why>`: it did not do what it should;
//! - `MOAT-BENCH done`.
//!
//! The `mmio_write_uartdr` operation writes NUL bytes to the console, which the host drops.
#![no_std]
#![no_main]

mod mmu;
mod ops;
mod pair;
mod timer;
mod vectors;

use moat_guest_rt::test::bootarg;
use moat_guest_rt::{BootInfo, gic, print, println};
use ops::{Sample, Targets};

moat_guest_rt::entry!(main);

/// `ESR_EL1.EC` values the checks expect (Arm ARM `ESR_EL1`).
const EC_UNKNOWN: u64 = 0x00;
const EC_DATA_ABORT_SAME_EL: u64 = 0x25;
const EC_BRK: u64 = 0x3C;
/// `ESR_EL1.ISS.DFSC` (bits \[5:0\]) of a synchronous external abort, not on a walk.
const DFSC_EXTERNAL: u64 = 0x10;
/// The most batches a run keeps.
const MAX_BATCHES: usize = 63;

/// What the bootargs ask for.
struct Config {
    single: bool,
    pair: bool,
    batches: usize,
    n: u64,
    abort_at: usize,
}

impl Config {
    fn from_bootargs(args: &str) -> Self {
        let group = bootarg(args, "exitbench.group").unwrap_or("all");
        let number =
            |key, default: u64| bootarg(args, key).and_then(parse_number).unwrap_or(default);
        Self {
            single: group != "pair",
            pair: group != "single",
            batches: (number("exitbench.batches", 21) as usize).clamp(1, MAX_BATCHES),
            n: number("exitbench.n", 500).max(1),
            abort_at: number("exitbench.abort", 1 << 40) as usize,
        }
    }
}

/// A decimal number, or hexadecimal after `0x`.
fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// What a batch of `n` must show, else the figure means nothing.
#[derive(Clone, Copy)]
enum Expect {
    /// No exception at the guest.
    Quiet,
    /// A PSCI call answered with a version (bits \[31:16\] major >= 1, sign bit clear).
    PsciVersion,
    /// A PSCI call answered `SUCCESS` (0).
    PsciSuccess,
    /// `n` exceptions at the guest of this class.
    Taken(u64),
    /// `n` synchronous external aborts at the guest.
    ExternalAbort,
}

impl Expect {
    fn check(self, s: &Sample, n: u64) -> Result<(), &'static str> {
        let quiet = s.syncs == 0;
        match self {
            Self::Quiet | Self::PsciVersion | Self::PsciSuccess if !quiet => {
                Err("the guest took an exception")
            }
            Self::Quiet => Ok(()),
            Self::PsciVersion => match s.x0 {
                0x1_0000..0x8000_0000 => Ok(()),
                _ => Err("PSCI_VERSION did not answer a version >= 1.0"),
            },
            Self::PsciSuccess => match s.x0 {
                0 => Ok(()),
                _ => Err("PSCI_FEATURES(PSCI_VERSION) did not answer SUCCESS"),
            },
            Self::Taken(ec) if s.syncs == n && s.ec() == ec => Ok(()),
            Self::Taken(_) => Err("not every repetition took the expected exception"),
            Self::ExternalAbort if s.syncs == n && s.ec() == EC_DATA_ABORT_SAME_EL => {
                match s.esr & 0x3f {
                    DFSC_EXTERNAL => Ok(()),
                    _ => Err("the data abort was not a synchronous external abort"),
                }
            }
            Self::ExternalAbort => Err("not every load took a data abort"),
        }
    }
}

/// One single-vCPU operation.
struct Op {
    name: &'static str,
    run: fn(&Targets, u64) -> Sample,
    expect: Expect,
    /// Run it with the identity stage-1 map on.
    mmu: bool,
}

const SINGLE: [Op; 10] = [
    op("brk", ops::brk, Expect::Taken(EC_BRK)),
    op(
        "hvc_psci_version",
        ops::hvc_psci_version,
        Expect::PsciVersion,
    ),
    op(
        "hvc_psci_features",
        ops::hvc_psci_features,
        Expect::PsciSuccess,
    ),
    op(
        "smc_psci_version",
        ops::smc_psci_version,
        Expect::PsciVersion,
    ),
    op("mmio_read_uartfr", ops::uart_read_fr, Expect::Quiet),
    op("mmio_write_uartdr", ops::uart_write_dr, Expect::Quiet),
    op("mmio_read_gicd_typer", ops::gicd_typer, Expect::Quiet),
    op("abort_mmu_off", ops::abort, Expect::ExternalAbort),
    Op {
        mmu: true,
        ..op("abort_mmu_on", ops::abort, Expect::ExternalAbort)
    },
    op("idreg_mmfr0", ops::idreg, Expect::Quiet),
];

const fn op(name: &'static str, run: fn(&Targets, u64) -> Sample, expect: Expect) -> Op {
    Op {
        name,
        run,
        expect,
        mmu: false,
    }
}

/// Per batch: the operation's ticks and its baseline's.
struct Batches {
    op: [u64; MAX_BATCHES],
    base: [u64; MAX_BATCHES],
    len: usize,
}

impl Batches {
    const fn new() -> Self {
        Self {
            op: [0; MAX_BATCHES],
            base: [0; MAX_BATCHES],
            len: 0,
        }
    }

    fn push(&mut self, op: u64, base: u64) {
        self.op[self.len] = op;
        self.base[self.len] = base;
        self.len += 1;
    }

    fn print(&self, name: &str, n: u64) {
        print!("MOAT-BENCH op {name} n={n} op=");
        print_list(&self.op[..self.len]);
        print!(" base=");
        print_list(&self.base[..self.len]);
        println!();
    }
}

fn print_list(values: &[u64]) {
    for (i, v) in values.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        print!("{sep}{v}");
    }
}

fn main(boot: &BootInfo) {
    let config = Config::from_bootargs(boot.bootargs);
    let phases = calibrate();
    let targets = Targets {
        uart: boot.uart.unwrap_or(0x0900_0000),
        gicd: gic::GICD,
        abort_at: config.abort_at,
    };
    if config.single {
        for op in &SINGLE {
            run_single(op, &targets, boot, &config);
        }
    }
    let gic_up = gic::init_cpu(
        0,
        &[
            vectors::VIRTUAL_TIMER_INTID,
            pair::SGI_SPIN,
            pair::SGI_WFI,
            pair::SGI_STOP,
        ],
    );
    if config.single {
        run_timer(&config, phases, gic_up);
    }
    if config.pair {
        run_pair(&config, gic_up);
    }
    println!("MOAT-BENCH done");
}

/// Measures the counter's rate: two counted loops of known length, so the difference is
/// `2 * (long - short)` instructions. Returns the whole number of instructions per tick (the
/// timer's dither needs one), or 0 when the rate is not a whole number.
///
/// Each loop runs `CALIBRATION_RUNS` times and its fewest ticks count: under a hypervisor whose
/// host takes its own interrupts (Linux KVM: a 250 Hz tick, one per 4 M instructions) some runs
/// of the 2 M-instruction loop include the host's interrupt, and under `-icount` which runs do
/// is the same on every boot, so a single run could be off on every boot.
fn calibrate() -> u64 {
    const SHORT: u64 = 1 << 16;
    const LONG: u64 = 1 << 20;
    const CALIBRATION_RUNS: usize = 5;
    let fewest = |n| {
        (0..CALIBRATION_RUNS)
            .map(|_| ops::spin_ticks(n))
            .min()
            .unwrap_or(0)
    };
    let ticks = fewest(LONG).saturating_sub(fewest(SHORT));
    let instructions = 2 * (LONG - SHORT);
    println!("MOAT-BENCH calibrate instructions={instructions} ticks={ticks}");
    let per_tick = (instructions + ticks / 2) / ticks.max(1);
    // Within two ticks of a whole rate over two million instructions.
    let whole = (per_tick * ticks).abs_diff(instructions) <= 2 * per_tick;
    if whole { per_tick } else { 0 }
}

fn run_single(op: &Op, targets: &Targets, boot: &BootInfo, config: &Config) {
    let sctlr = op
        .mmu
        .then(|| mmu::on(boot.ram.map_or(0x4000_0000, |r| r.base), targets.abort_at));
    let mut batches = Batches::new();
    let outcome = measure(op, targets, config, &mut batches);
    if let Some(sctlr) = sctlr {
        mmu::off(sctlr);
    }
    match outcome {
        Outcome::Skip(why) => println!("MOAT-BENCH skip {}: {why}", op.name),
        Outcome::Fail(why) => println!("MOAT-BENCH fail {}: {why}", op.name),
        Outcome::Done => batches.print(op.name, config.n),
    }
}

/// How an operation's measurement ended.
enum Outcome {
    /// The operation does not exist here.
    Skip(&'static str),
    /// It did not do what it should.
    Fail(&'static str),
    /// Every batch passed its checks.
    Done,
}

/// One probe (is the operation there, does it do what it should), then the batches into
/// `batches`.
fn measure(op: &Op, targets: &Targets, config: &Config, batches: &mut Batches) -> Outcome {
    let probe = (op.run)(targets, 1);
    if op.name == "smc_psci_version" && probe.syncs == 1 && probe.ec() == EC_UNKNOWN {
        return Outcome::Skip("SMC is UNDEFINED at EL1 here: no EL3, and no hypervisor traps it");
    }
    if let Err(why) = op.expect.check(&probe, 1) {
        return Outcome::Fail(why);
    }
    for _ in 0..config.batches {
        let base = ops::empty(targets, config.n);
        let sample = (op.run)(targets, config.n);
        if let Err(why) = op.expect.check(&sample, config.n) {
            return Outcome::Fail(why);
        }
        batches.push(sample.ticks, base.ticks);
    }
    Outcome::Done
}

/// The slower operations (a wake-up, a ping-pong) run `n / 8` times per batch, a multiple of
/// `phases` (at least one).
fn slow_n(config: &Config, phases: u64) -> u64 {
    let step = phases.max(1);
    (config.n / 8).div_ceil(step).max(1) * step
}

fn run_timer(config: &Config, phases: u64, gic_up: Result<(), &'static str>) {
    const NAME: &str = "timer_wfi_wake";
    if phases == 0 || phases > timer::MAX_PHASES {
        println!(
            "MOAT-BENCH fail {NAME}: the counter's rate is not a whole, small number of instructions per tick"
        );
        return;
    }
    if let Err(why) = gic_up {
        println!("MOAT-BENCH fail {NAME}: {why}");
        return;
    }
    let n = slow_n(config, phases);
    let mut batches = Batches::new();
    for _ in 0..config.batches {
        let sample = timer::wake(n, phases);
        if sample.irqs != n || sample.syncs != 0 {
            println!("MOAT-BENCH fail {NAME}: not every wait ended in one timer interrupt");
            return;
        }
        batches.push(sample.ticks, n * timer::DELAY_TICKS);
    }
    batches.print(NAME, n);
}

fn run_pair(config: &Config, gic_up: Result<(), &'static str>) {
    const NAMES: [(&str, u32); 2] = [
        ("sgi_running", pair::SGI_SPIN),
        ("sgi_wfi_wake", pair::SGI_WFI),
    ];
    if let Err(why) = gic_up.and_then(|()| pair::start_partner()) {
        for (name, _) in NAMES {
            println!("MOAT-BENCH fail {name}: {why}");
        }
        return;
    }
    let n = slow_n(config, 1);
    for (name, intid) in NAMES {
        let mut batches = Batches::new();
        let mut failed = false;
        for _ in 0..config.batches {
            let base = ops::empty(
                &Targets {
                    uart: 0,
                    gicd: 0,
                    abort_at: 0,
                },
                n,
            );
            let sample = pair::ping_pong(intid, n);
            if sample.irqs != n || sample.syncs != 0 {
                println!("MOAT-BENCH fail {name}: not every SGI was answered by one SGI");
                failed = true;
                break;
            }
            batches.push(sample.ticks, base.ticks);
        }
        if !failed {
            // A round trip is two one-way deliveries.
            batches.print(name, 2 * n);
        }
    }
    if let Err(why) = pair::stop_partner() {
        println!("MOAT-BENCH fail sgi_stop: {why}");
    }
}
