//! The probe's main flow: read the device tree (`r2` at entry), parse the bootargs, set `SCTLR`
//! and the MMU up, run every selected case in protocol order and print one line each.

use crate::enter::{self, Outcome as Run};
use crate::mmu::Region;
use crate::{console, mmu, println, psci, regs};
use moat_guest_probe32::config::{self, Config, Mmu};
use moat_guest_probe32::kinds::{Kind, MODES, Mode, REFERENCES, Shape, Snippet};
use moat_guest_probe32::line::{Line, Outcome};

/// `SCTLR` bits the probe sets itself: V (13), SPAN (23), EE (25), TE (30), DSSBS (31).
const SCTLR_V: u32 = 1 << 13;
const SCTLR_SPAN: u32 = 1 << 23;
const SCTLR_EE: u32 = 1 << 25;
const SCTLR_TE: u32 = 1 << 30;
const SCTLR_DSSBS: u32 = 1 << 31;
/// What a store writes (r1, and r2/r3 for `STRD`).
const STORE_VALUE: u32 = 0;

/// What the probe learnt at boot.
#[derive(Debug, Clone, Copy)]
pub struct Boot {
    /// `/chosen/bootargs`.
    pub bootargs: &'static str,
    /// The device tree blob.
    pub dtb: Region,
    /// The first `/memory` region.
    pub ram: Option<Region>,
    /// The PL011's base.
    pub uart: Option<u64>,
    /// The loaded image with BSS and stacks.
    pub image: Region,
}

/// Reads the device tree at `dtb` (`None` if there is no valid one there).
fn read_dt(dtb: usize) -> Option<Boot> {
    if dtb == 0 || !dtb.is_multiple_of(8) {
        return None;
    }
    // SAFETY: by the boot protocol r2 held the physical address of a device tree in RAM, usable
    // as is with the MMU off; `from_ptr` reads the header, then `totalsize` bytes. Nothing writes
    // to the blob afterwards (stores that would touch it are skipped), so `'static` holds.
    let fdt = unsafe { fdt::Fdt::from_ptr(dtb as *const u8) }.ok()?;
    let bootargs = fdt
        .find_node("/chosen")
        .and_then(|chosen| chosen.property("bootargs"))
        .and_then(|prop| prop.as_str())
        .unwrap_or("");
    let uart = fdt
        .find_compatible(&["arm,pl011"])
        .and_then(|node| node.reg()?.next())
        .map(|reg| reg.starting_address as u64);
    let ram = fdt
        .find_node("/memory")
        .and_then(|node| node.reg()?.next())
        .and_then(|reg| {
            Some(Region {
                base: reg.starting_address as u64,
                size: reg.size? as u64,
            })
        });
    unsafe extern "C" {
        static __image_start: u8;
        static __image_end: u8;
    }
    let start = &raw const __image_start as u64;
    let end = &raw const __image_end as u64;
    Some(Boot {
        bootargs,
        dtb: Region {
            base: dtb as u64,
            size: fdt.total_size() as u64,
        },
        ram,
        uart,
        image: Region {
            base: start,
            size: end - start,
        },
    })
}

/// The first Rust code (`start.rs`), in SVC mode with the MMU off.
#[unsafe(no_mangle)]
extern "C" fn moat32_main(dtb: usize, entry_spsr: u32) -> ! {
    let Some(boot) = read_dt(dtb) else {
        // No console without a device tree: power off silently (the host sees no DONE line).
        psci::system_off()
    };
    if let Some(uart) = boot.uart {
        console::init(uart as usize);
    }
    match config::parse(boot.bootargs) {
        Ok(config) => match set_up(&boot, &config, entry_spsr) {
            Ok(()) => run_all(&boot, &config),
            Err(message) => println!("MOAT-PROBE-ERROR {message}"),
        },
        Err(error) => println!("MOAT-PROBE-ERROR {error}"),
    }
    psci::system_off()
}

/// The vector page for A32 handlers (`SCTLR.TE` = 0) or T32 ones (`probe32.ld`, `start.rs`).
fn vectors_page(te: bool) -> u64 {
    unsafe extern "C" {
        static __vectors_page: u8;
        static __vectors_t32_page: u8;
    }
    if te {
        &raw const __vectors_t32_page as u64
    } else {
        &raw const __vectors_page as u64
    }
}

/// Builds the tables and turns the MMU on (if asked), then sets `VBAR` and `SCTLR.V`, `EE`,
/// `TE`, `SPAN` and `DSSBS`; prints a diagnostic line (not a `MOAT-PROBE` line) with
/// `entry_spsr`, `SPSR_svc` as the first instructions read it (`shim32` writes a marker there).
fn set_up(boot: &Boot, config: &Config, entry_spsr: u32) -> Result<(), &'static str> {
    let vectors = vectors_page(config.te);
    if config.mmu != Mmu::Off {
        let ram = boot.ram.ok_or("no /memory node: cannot map RAM")?;
        let uart = boot.uart.ok_or("no PL011: cannot map the console")?;
        mmu::enable(config.mmu, ram, uart, config.ee, vectors)?;
    }
    let flags = [
        (config.hivecs, SCTLR_V),
        (config.ee, SCTLR_EE),
        (config.te, SCTLR_TE),
        (config.span, SCTLR_SPAN),
        (config.dssbs, SCTLR_DSSBS),
    ];
    let mut sctlr = regs::sctlr();
    for (set, bit) in flags {
        sctlr = if set { sctlr | bit } else { sctlr & !bit };
    }
    // SAFETY: VBAR points at the vector page for the TE value about to be set (both pages are
    // in the image); EE changes only the data endianness of exception entry (the vector stubs
    // SETEND LE before their first access) and of table walks (`mmu` wrote the tables in that
    // order); V moves the vectors to 0xffff0000, which `mmu` mapped to the page in use; TE,
    // SPAN and DSSBS change only the CPSR an exception entry makes.
    unsafe {
        regs::set_vbar(vectors as u32);
        regs::set_sctlr(sctlr);
    }
    println!(
        "probe32: midr={:#x} id_mmfr0={:#x} psci={:#x} mmu={} hivecs={} ee={} sctlr={:#x} \
         entry_spsr={entry_spsr:#x}",
        regs::midr(),
        regs::id_mmfr0(),
        psci::version(),
        config.mmu.name(),
        u8::from(config.hivecs),
        u8::from(config.ee),
        regs::sctlr()
    );
    Ok(())
}

/// Runs every selected case in protocol order and prints the DONE line.
fn run_all(boot: &Boot, config: &Config) {
    let mut cases = 0u32;
    for snippet in REFERENCES {
        for mode in MODES {
            let kind = Kind {
                snippet,
                mode,
                shape: None,
            };
            if config.wants(&kind) {
                run_case(boot, config, kind, 0);
                cases += 1;
            }
        }
    }
    for shape in config.mmu.cases() {
        for kind in Kind::accesses(shape) {
            if !config.wants(&kind) {
                continue;
            }
            for address in config.addresses() {
                run_case(boot, config, kind, address);
                cases += 1;
            }
        }
    }
    println!("MOAT-PROBE-DONE {cases}");
}

/// Whether the case would be unsafe or meaningless to run (printed as `skipped`).
fn skip(boot: &Boot, kind: Kind, address: u64, hivecs: bool) -> bool {
    let snippet = kind.snippet;
    let extent = snippet.extent();
    let own = |a: u64, len: u64| boot.image.touches(a, len) || boot.dtb.touches(a, len);
    let console = |a: u64, len: u64| {
        boot.uart.is_some_and(|uart| {
            Region {
                base: uart & !0xfff,
                size: 0x1000,
            }
            .touches(a, len)
        })
    };
    let protected = (snippet.writes() || snippet.fetches()) && own(address, extent)
        || snippet.writes() && console(address, extent);
    match kind.shape {
        // With the MMU off a VA is the PA: 32 bits.
        None => protected || address.saturating_add(extent) > 1 << 32,
        Some(shape) => {
            let walked = match shape {
                Shape::TableAt | Shape::TableAtL2 => Some((address & !0xfff, 0x1000)),
                Shape::TtbrAt => Some((address & !0x3fff, 0x4000)),
                _ => None,
            };
            !mmu::can_map(shape, address)
                || protected
                || walked.is_some_and(|(base, len)| own(base, len))
                || (shape == Shape::TtbrAt && hivecs)
        }
    }
}

/// Runs one case and prints its line.
fn run_case(boot: &Boot, config: &Config, kind: Kind, address: u64) {
    let outcome = if !kind.snippet.reference() && skip(boot, kind, address, config.hivecs) {
        Outcome::Skipped
    } else {
        run_unskipped(kind, address)
    };
    println!(
        "{}",
        Line {
            kind,
            address,
            outcome
        }
    );
}

/// Maps the target if the kind has a shape, runs the snippet, and collects what it gave.
fn run_unskipped(kind: Kind, address: u64) -> Outcome {
    let va = match kind.shape {
        Some(shape) => mmu::map_window(shape, address, kind.mode == Mode::Usr),
        None => address as u32,
    };
    let target = if kind.snippet == Snippet::FetchT {
        va | 1
    } else {
        va
    };
    let probed = if kind.snippet.fetches() {
        va
    } else {
        enter::address(kind.snippet)
    };
    match enter::run(kind.snippet, target, STORE_VALUE, kind.spsr()) {
        Run::Completed(r0) => Outcome::Completed(kind.snippet.loads().then_some(r0)),
        Run::Exception(record) => Outcome::Exception { record, probed },
    }
}
