//! `moat-guest-probe`: the AArch64 probe of the differential test suite (SPEC §6). It performs
//! one access per case (a load, store, pair, fetch, cache maintenance or `AT`, from EL1h, EL1t or
//! EL0, with its MMU off or through a stage-1 mapping it builds itself) to the addresses the
//! bootargs give, and prints the full exception state each one receives, one `MOAT-PROBE` line
//! per case, then `MOAT-PROBE-DONE <cases>`, and powers off. The same binary runs bare on QEMU
//! (the oracle) and under Moat; the host harness compares the lines. Protocol, output format and
//! the results measured on bare QEMU: `bare/guests/probe/README.md`.
#![no_std]
#![no_main]

mod enter;
mod mmu;
mod regs;

use moat_guest_probe::config::{self, Config};
use moat_guest_probe::kinds::{ACCESSES, BRKS, Kind, Mode, Snippet};
use moat_guest_probe::layout::Shape;
use moat_guest_probe::line::{ExceptionFields, Line, Outcome};
use moat_guest_rt::{BootInfo, Region, println};

moat_guest_rt::entry!(probe_main);

/// `SCTLR_EL1` bits the probe sets itself: M (0), A (1), C (2), WXN (19), SPAN (23), DSSBS (44).
/// A is cleared (the runtime sets it), so that the memory type alone decides whether the
/// `*_misaligned` kinds take an Alignment fault; the probe's own code is built `+strict-align`.
const SCTLR_M: u64 = 1 << 0;
const SCTLR_A: u64 = 1 << 1;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_WXN: u64 = 1 << 19;
const SCTLR_SPAN: u64 = 1 << 23;
const SCTLR_DSSBS: u64 = 1 << 44;

/// What a store writes (X1 of the snippet).
const STORE_VALUE: u64 = 0;

fn probe_main(boot: &BootInfo) {
    let config = match config::parse(boot.bootargs) {
        Ok(config) => config,
        Err(error) => return println!("MOAT-PROBE-ERROR {error}"),
    };
    if let Err(message) = set_up(boot, &config) {
        return println!("MOAT-PROBE-ERROR {message}");
    }
    let mut cases = 0u32;
    for mode in BRKS {
        cases += run_kind(boot, &config, Kind::brk(mode));
    }
    let shapes = Shape::ALL.map(Some);
    let shapes: &[Option<Shape>] = if config.mmu { &shapes } else { &[None] };
    for &shape in shapes {
        for (snippet, mode) in ACCESSES {
            let kind = Kind {
                snippet,
                mode,
                shape,
            };
            cases += run_kind(boot, &config, kind);
        }
    }
    println!("MOAT-PROBE-DONE {cases}");
}

/// Puts `SCTLR_EL1` in the probe's defined state and, with `probe.mmu=on`, builds the tables
/// and turns the MMU on. Prints a diagnostic line (not a `MOAT-PROBE` line).
fn set_up(boot: &BootInfo, config: &Config) -> Result<(), &'static str> {
    let mut sctlr =
        regs::sctlr_el1() & !(SCTLR_M | SCTLR_A | SCTLR_C | SCTLR_WXN | SCTLR_SPAN | SCTLR_DSSBS);
    if config.span {
        sctlr |= SCTLR_SPAN;
    }
    // SAFETY: M stays 0 (the MMU stays off) and C stays 0; A = 0 only stops faulting misaligned
    // accesses to Normal memory, which the probe's strict-align code never makes; the other bits
    // changed (WXN, SPAN, DSSBS) affect only permissions under a stage-1 regime that is off, and what exception entry
    // does to PSTATE.PAN and PSTATE.SSBS.
    unsafe { regs::set_sctlr_el1(sctlr) };
    if config.mmu {
        let ram = boot.ram.ok_or("no /memory node: cannot map RAM")?;
        let uart = boot.uart.ok_or("no PL011: cannot map the console")?;
        mmu::enable(
            (ram.base as u64, ram.size as u64),
            uart as u64,
            config.ips,
            sctlr,
        )
        .map_err(|_| "RAM or UART beyond what the probe's tables map")?;
    }
    println!(
        "probe: midr={:#x} parange={:#x} mmu={} ips={} sctlr={:#x}",
        regs::midr_el1(),
        regs::id_aa64mmfr0_el1() & 0xf,
        if config.mmu { "on" } else { "off" },
        config.ips_bits,
        regs::sctlr_el1()
    );
    Ok(())
}

/// Runs `kind` at every address (or once at 0 for `brk`) if selected; returns how many lines it
/// printed.
fn run_kind(boot: &BootInfo, config: &Config, kind: Kind) -> u32 {
    if !config.wants(&kind) {
        return 0;
    }
    if kind.snippet == Snippet::Brk {
        run_case(boot, kind, 0);
        return 1;
    }
    let mut lines = 0;
    for address in config.addresses() {
        run_case(boot, kind, address);
        lines += 1;
    }
    lines
}

/// Whether `[address, address + len)` touches the probe's image (code, data, stack, tables) or
/// the device tree, which a store, `DC ZVA`, fetch or walk must not.
fn touches_own(boot: &BootInfo, address: u64, len: u64) -> bool {
    // A range that leaves the address space, or `usize`, cannot overlap RAM.
    let (Ok(base), Some(_)) = (usize::try_from(address), address.checked_add(len)) else {
        return false;
    };
    let target = Region::new(base, len as usize);
    target.overlaps(&boot.image) || boot.dtb.is_some_and(|dtb| target.overlaps(&dtb))
}

/// Whether `[address, address + len)` touches the console's 4K page, which a store must not
/// (it would write into the line the host is parsing).
fn touches_console(boot: &BootInfo, address: u64, len: u64) -> bool {
    boot.uart.is_some_and(|uart| {
        let page = (uart as u64) & !0xfff;
        address < page + 0x1000 && page < address.saturating_add(len)
    })
}

/// Whether the case would be unsafe or meaningless to run (printed as `skipped`).
fn skip(boot: &BootInfo, kind: Kind, address: u64) -> bool {
    let extent = kind.snippet.extent();
    let protected = kind.snippet.writes_or_executes()
        && (touches_own(boot, address, extent)
            || (kind.snippet.writes() && touches_console(boot, address, extent)));
    match kind.shape {
        None => protected,
        Some(shape) => {
            !shape.can_map(address)
                || protected
                || (shape == Shape::TableAt && touches_own(boot, address & !0xfff, 0x1000))
        }
    }
}

/// Runs one case and prints its line.
fn run_case(boot: &BootInfo, kind: Kind, address: u64) {
    let (outcome, par) = if skip(boot, kind, address) {
        (Outcome::Skipped, None)
    } else {
        run_unskipped(kind, address)
    };
    let line = Line {
        kind,
        address,
        outcome,
        par,
    };
    println!("{line}");
}

/// Maps the target if the kind has a shape, runs the snippet, and collects what it gave.
fn run_unskipped(kind: Kind, address: u64) -> (Outcome, Option<u64>) {
    let va = match kind.shape {
        Some(shape) => {
            mmu::map_window(shape, address, kind.mode == Mode::El0);
            shape.va(address)
        }
        None => address,
    };
    let run = enter::run(kind.snippet, va, STORE_VALUE, kind.mode.spsr());
    let par = (kind.snippet == Snippet::AtS1e1r).then(regs::par_el1);
    // The instruction the ELR is reported against: the fetched one for a fetch, else the snippet.
    let probed = match kind.snippet {
        Snippet::Fetch | Snippet::FetchBr => va,
        snippet => enter::address(snippet),
    };
    let outcome = match run.exception {
        Some(record) => Outcome::Exception(ExceptionFields::new(&record, probed)),
        None => Outcome::Completed {
            value: kind.snippet.loads().then_some(run.x0),
        },
    };
    (outcome, par)
}
