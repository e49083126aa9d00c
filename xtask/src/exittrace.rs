//! `./x bench trace OP [--cpu MODEL]`: where one exit's instructions go. It boots the exit
//! benchmark's guest under Moat (`exitbench`, its short batches) with QEMU's gdb stub, stops at
//! Moat's exit path (`moat_guest_exit`, the lower-EL vectors' common target) on the
//! operation's trap, steps it one instruction at a time until the guest runs again, and prints
//! how many instructions each function ran, in order, with the total: the counts that
//! `docs/architecture.md` explains for the hot exits, reproducible.
//!
//! The trap is recognised by its syndrome and registers as the exit vector saw them (`ESR_EL2`
//! and, per operation, `X0`, `HPFAR_EL2` or ISS fields); a few are let pass first, so that the
//! traced one runs warm, as the benchmark's batches do. Each name is the innermost function
//! (inlined ones included) of the instruction's debug information. The count starts at the
//! vectors' branch target (the vector entry's three instructions and the trapping instruction
//! are not in it) and ends at the `ERET`; the benchmark's figure adds the rest.
//!
//! Needs `gdb-multiarch` (`./x` installs it). The exits that wait at EL2 (`WFI`) or need
//! another CPU to move (the SGI's receiver) are not traced: stepping holds the other CPUs.

use crate::build;
use crate::error::{XResult, failed, usage};
use crate::exitbench::{self, Context, Group, QUICK};
use crate::qemu::ConsoleMode;
use moat_arm::esr::{DataAbortIss, Direction, ExceptionClass, SysRegIss};
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// QEMU `virt`'s RAM base, where it loads an arm64 `Image` (plus the image's `text_offset`).
const RAM_BASE: u64 = 0x4000_0000;

/// The operations that can be traced, by the benchmark's names.
pub const OPS: [&str; 9] = [
    "hvc_psci_version",
    "hvc_psci_features",
    "smc_psci_version",
    "mmio_read_uartfr",
    "mmio_write_uartdr",
    "mmio_read_gicd_typer",
    "external_abort",
    "mrs_id_register",
    "sgi_send",
];

/// Which trap is the operation's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Probe {
    /// The boot that runs it.
    group: Group,
    /// `ESR_EL2.EC`.
    ec: u8,
    /// `X0`, when it tells the operation apart (the SMCCC function).
    x0: Option<u64>,
    /// `HPFAR_EL2`, when it does (the IPA's page, `FIPA` in bits \[43:4\]).
    hpfar: Option<u64>,
    /// ISS bits that must hold `iss_value`.
    iss_mask: u32,
    /// Their value.
    iss_value: u32,
}

/// `HPFAR_EL2` of an access to `ipa`: `FIPA` (bits \[43:4\]) holds `ipa[47:12]`.
const fn hpfar_of(ipa: u64) -> u64 {
    (ipa >> 12) << 4
}

/// The PL011's and the GIC distributor's windows in the default VM (QEMU `virt`'s layout).
const UART: u64 = 0x0900_0000;
const GICD: u64 = 0x0800_0000;
/// The abort address of the benchmark: `2^S` of the default VM (40-bit IPA space).
const ABORT_IPA: u64 = 1 << 40;

/// `PSCI_VERSION` and `PSCI_FEATURES` (SMC32 function identifiers).
const PSCI_VERSION: u64 = 0x8400_0000;
const PSCI_FEATURES: u64 = 0x8400_000A;

/// The probe of operation `op`, or `None` for a name that is not one.
fn probe(op: &str) -> Option<Probe> {
    let call = |ec: ExceptionClass, x0| Probe {
        group: Group::Single,
        ec: ec.code(),
        x0: Some(x0),
        hpfar: None,
        iss_mask: 0,
        iss_value: 0,
    };
    let wnr = {
        let mut iss = DataAbortIss::decode(0);
        iss.wnr = true;
        iss.encode()
    };
    let access = |ipa, write: bool| Probe {
        group: Group::Single,
        ec: ExceptionClass::DataAbortLower.code(),
        x0: None,
        hpfar: Some(hpfar_of(ipa)),
        iss_mask: wnr,
        iss_value: if write { wnr } else { 0 },
    };
    let sysreg = |mask: SysRegIss, value: SysRegIss, group| Probe {
        group,
        ec: ExceptionClass::SysReg.code(),
        x0: None,
        hpfar: None,
        iss_mask: mask.encode(),
        iss_value: value.encode(),
    };
    let encoding = |op0, op1, crn, crm, op2, direction| SysRegIss {
        op0,
        op2,
        op1,
        crn,
        rt: 0,
        crm,
        direction,
    };
    Some(match op {
        "hvc_psci_version" => call(ExceptionClass::Hvc64, PSCI_VERSION),
        "hvc_psci_features" => call(ExceptionClass::Hvc64, PSCI_FEATURES),
        "smc_psci_version" => call(ExceptionClass::Smc64, PSCI_VERSION),
        "mmio_read_uartfr" => access(UART, false),
        "mmio_write_uartdr" => access(UART, true),
        "mmio_read_gicd_typer" => access(GICD, false),
        "external_abort" => access(ABORT_IPA, false),
        // Any register of the ID space (op0 3, op1 0, CRn 0), read.
        "mrs_id_register" => sysreg(
            encoding(3, 7, 15, 0, 0, Direction::Read),
            encoding(3, 0, 0, 0, 0, Direction::Read),
            Group::Single,
        ),
        // ICC_SGI1R_EL1 written (op0 3, op1 0, CRn 12, CRm 11, op2 5), whatever Rt.
        "sgi_send" => sysreg(
            encoding(3, 7, 15, 15, 7, Direction::Read),
            encoding(3, 0, 12, 11, 5, Direction::Write),
            Group::Pair,
        ),
        _ => return None,
    })
}

/// How many matching traps pass before the traced one.
const WARM_UP: u32 = 5;

/// The most instructions stepped before giving up (an exit that never returns to the guest).
const MAX_STEPS: u32 = 20_000;

/// How long the whole trace may take.
const LIMIT: Duration = Duration::from_secs(300);

/// The gdb script: connect, stop at the exit path on the probe's trap, step to the guest,
/// write `offset<TAB>function` per instruction to `out`.
fn script(probe: &Probe, port: u16, elf: &Path, base: u64, out: &Path) -> String {
    let mut checks = format!("    if esr >> 26 != {:#x}: return False\n", probe.ec);
    if let Some(x0) = probe.x0 {
        let _ = writeln!(checks, "    if reg('x0') != {x0:#x}: return False");
    }
    if let Some(hpfar) = probe.hpfar {
        let _ = writeln!(
            checks,
            "    if reg('HPFAR_EL2') != {hpfar:#x}: return False"
        );
    }
    if probe.iss_mask != 0 {
        let _ = writeln!(
            checks,
            "    if esr & {:#x} != {:#x}: return False",
            probe.iss_mask, probe.iss_value
        );
    }
    format!(
        r#"import gdb
BASE = {base:#x}
gdb.execute("set pagination off")
gdb.execute("set confirm off")
import time
for attempt in range(300):
    try:
        gdb.execute("target remote 127.0.0.1:{port}")
        break
    except gdb.error:
        time.sleep(0.1)
gdb.execute("add-symbol-file {elf} -o {base:#x}")
gdb.execute("hbreak moat_guest_exit")

def reg(name):
    return int(gdb.parse_and_eval("$" + name)) & 0xFFFFFFFFFFFFFFFF

def wanted():
    esr = reg("ESR_EL2")
{checks}    return True

seen = 0
while seen < {warm}:
    gdb.execute("continue", to_string=True)
    if wanted():
        seen += 1
gdb.execute("delete")
gdb.execute("set scheduler-locking step")
lo = BASE
hi = BASE + 0x1000000

def name_of(pc):
    # Code without line information (the exit vector's assembly) is named by its symbol.
    block = None
    if gdb.find_pc_line(pc).line:
        try:
            block = gdb.block_for_pc(pc)
        except RuntimeError:
            block = None
    while block is not None and block.function is None:
        block = block.superblock
    if block is None:
        said = gdb.execute("info symbol %d" % pc, to_string=True).splitlines()
        sym = [l for l in said if " in section " in l]
        return sym[-1].split(" in ")[0].split(" + ")[0].strip() if sym else "?"
    return block.function.print_name

with open("{out}", "w") as out:
    for _ in range({max_steps}):
        pc = reg("pc")
        if pc < lo or pc >= hi:
            break
        out.write("%x\t%s\n" % (pc - BASE, name_of(pc)))
        gdb.execute("stepi", to_string=True)
gdb.execute("kill")
"#,
        elf = elf.display(),
        out = out.display(),
        warm = WARM_UP,
        max_steps = MAX_STEPS,
    )
}

/// One traced instruction: its offset in Moat's image and its function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The offset from the image's load address.
    pub offset: u64,
    /// The innermost function, generic arguments and closures cut off.
    pub function: String,
}

/// Reads the script's output.
///
/// # Errors
///
/// A line that is not `offset<TAB>function`.
pub fn parse(text: &str) -> Result<Vec<Step>, String> {
    text.lines()
        .map(|line| {
            let (offset, function) = line
                .split_once('\t')
                .ok_or_else(|| format!("trace line without a function: {line:?}"))?;
            let offset =
                u64::from_str_radix(offset, 16).map_err(|e| format!("trace line {line:?}: {e}"))?;
            Ok(Step {
                offset,
                function: short_name(function),
            })
        })
        .collect()
}

/// A function's name without generic arguments and closure suffixes: `<a::B<96>>::f::<T>`
/// becomes `a::B::f`. One pass: what lies outside every `<>` is kept, and of a leading
/// qualified type (`<a::B<96> as T>`) its own path, up to its first `<` or space.
fn short_name(name: &str) -> String {
    let name = name.split("::{closure").next().unwrap_or(name);
    let mut out = String::new();
    let mut depth = 0u32;
    let mut previous = ' ';
    let mut type_path = name.starts_with('<');
    for c in name.chars() {
        match c {
            '<' => {
                type_path &= depth == 0;
                depth += 1;
            }
            // The arrow of a `fn(..) -> T` argument closes nothing.
            '>' if previous != '-' => {
                depth = depth.saturating_sub(1);
                type_path &= depth > 0;
            }
            ' ' if depth == 1 => type_path = false,
            _ if depth == 0 || (depth == 1 && type_path) => out.push(c),
            _ => {}
        }
        previous = c;
    }
    out.trim_end_matches("::").to_string()
}

/// The steps as runs of one function: (count, function), in order.
pub fn runs(steps: &[Step]) -> Vec<(usize, &str)> {
    let mut runs: Vec<(usize, &str)> = Vec::new();
    for step in steps {
        match runs.last_mut() {
            Some((count, function)) if *function == step.function => *count += 1,
            _ => runs.push((1, &step.function)),
        }
    }
    runs
}

/// `./x bench trace OP`: traces one exit of `op` on `cpu` and prints its runs and total.
///
/// # Errors
///
/// An unknown operation (usage), a build or boot that fails, gdb missing or failing, or a trap
/// that never came.
pub fn run(op: &str, cpu: &str) -> XResult<ExitCode> {
    let Some(probe) = probe(op) else {
        return Err(usage(format!(
            "no traced operation `{op}` (operations: {})",
            OPS.join(", ")
        )));
    };
    crate::qemu::check_cpu(cpu)?;
    let artifacts = build::build_bare()?;
    let (steps, file) = trace(&artifacts, op, &probe, cpu)?;
    println!("{op} on -cpu {cpu}: one exit, instruction by instruction (runs of one function)");
    for (count, function) in runs(&steps) {
        println!("{count:6}  {function}");
    }
    println!(
        "{} instructions from moat_guest_exit to the ERET (the vector's 3 and the trapping instruction not included)",
        steps.len()
    );
    println!(
        "each instruction's offset in the image and function: {}",
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Boots the benchmark guest under Moat with the gdb stub and returns the traced steps.
fn trace(
    artifacts: &build::Artifacts,
    op: &str,
    probe: &Probe,
    cpu: &str,
) -> XResult<(Vec<Step>, PathBuf)> {
    let ctx = Context {
        artifacts: artifacts.clone(),
        params: QUICK,
        kvm: None,
    };
    let base = RAM_BASE + text_offset(&ctx.artifacts.moat)?;
    let machine = exitbench::moat_machine(&ctx, cpu, probe.group)?;
    let dir = build::out_dir().join("trace");
    std::fs::create_dir_all(&dir)
        .map_err(|e| failed(format!("creating {}: {e}", dir.display())))?;
    let port = free_port()?;
    let out = dir.join(format!("{op}-{}.txt", cpu.split(',').next().unwrap_or(cpu)));
    let script_path = dir.join(format!("trace-{}.py", std::process::id()));
    std::fs::write(
        &script_path,
        script(probe, port, &ctx.artifacts.moat_elf, base, &out),
    )
    .map_err(|e| failed(format!("writing {}: {e}", script_path.display())))?;
    let mut extra = exitbench::icount();
    extra.extend(["-gdb".into(), format!("tcp:127.0.0.1:{port}"), "-S".into()]);
    let qemu =
        std::thread::spawn(move || machine.run_with(&extra, ConsoleMode::Captured, Some(LIMIT)));
    // The script connects once QEMU listens (a probe of the port would be taken for the
    // debugger and start the machine).
    let log = dir.join(format!("gdb-{}.log", std::process::id()));
    let gdb = run_gdb(&script_path, &log);
    let booted = qemu
        .join()
        .map_err(|_| failed("the QEMU thread panicked"))?;
    gdb?;
    booted?;
    let text = std::fs::read_to_string(&out)
        .map_err(|e| failed(format!("{}: {e} (gdb found no such trap)", out.display())))?;
    for file in [&script_path, &log] {
        let _ = std::fs::remove_file(file);
    }
    let steps = parse(&text).map_err(failed)?;
    if steps.is_empty() {
        return Err(failed("the trace is empty: the trap was not stopped at"));
    }
    Ok((steps, out))
}

/// `./x test`'s case: an HVC `PSCI_VERSION` exit on `cortex-a72` traced with `artifacts`; it
/// must run from the exit path through the in-place call service to the reload before `ERET`.
pub fn smoke(artifacts: &build::Artifacts) -> Result<(), String> {
    let op = "hvc_psci_version";
    let probe = probe(op).ok_or("no probe for hvc_psci_version")?;
    let (steps, _) = trace(artifacts, op, &probe, "cortex-a72").map_err(|e| e.to_string())?;
    let runs = runs(&steps);
    let first = runs.first().map(|r| r.1);
    let last = runs.last().map(|r| r.1);
    if first != Some("moat_guest_exit") || last != Some("moat_guest_resume_partial") {
        return Err(format!(
            "the trace runs from {first:?} to {last:?}, not from moat_guest_exit to moat_guest_resume_partial"
        ));
    }
    if !runs.iter().any(|r| r.1 == "moat::fastpath::in_place_call") {
        return Err("the HVC's trace never reached fastpath::in_place_call".into());
    }
    Ok(())
}

/// `text_offset` of an arm64 `Image` (bytes 8..16 of its header).
fn text_offset(image: &Path) -> XResult<u64> {
    let bytes =
        std::fs::read(image).map_err(|e| failed(format!("reading {}: {e}", image.display())))?;
    bytes
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| failed(format!("{}: no arm64 Image header", image.display())))
}

/// A TCP port nothing listens on now.
fn free_port() -> XResult<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| failed(format!("finding a free port for QEMU's gdb stub: {e}")))
}

/// Runs the script in `gdb-multiarch`, killed after [`LIMIT`]. Its output goes to `log` (a
/// pipe would fill with a warning per stop and stall it).
fn run_gdb(script: &Path, log: &Path) -> XResult<()> {
    let file = std::fs::File::create(log)
        .map_err(|e| failed(format!("creating {}: {e}", log.display())))?;
    let err = file
        .try_clone()
        .map_err(|e| failed(format!("{}: {e}", log.display())))?;
    let mut child = Command::new("gdb-multiarch")
        .args(["-batch", "-nx", "-x"])
        .arg(script)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| failed(format!("cannot start gdb-multiarch: {e} (./x installs it)")))?;
    let start = Instant::now();
    let tail = || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<String> = text.lines().rev().take(3).map(String::from).collect();
        format!("{lines:?} (all of it in {})", log.display())
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(failed(format!(
                    "gdb-multiarch failed ({status}): {}",
                    tail()
                )));
            }
            Ok(None) if start.elapsed() > LIMIT => {
                let _ = child.kill();
                return Err(failed(format!(
                    "gdb-multiarch: no trace within {} s: {}",
                    LIMIT.as_secs(),
                    tail()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(failed(format!("waiting for gdb-multiarch: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_generics_and_closures_but_keep_their_type() {
        assert_eq!(
            short_name(
                "<moat_devices::gic::Gic<96>>::take_back::<<moat::gic::CpuInterface>::sync::{closure#0}>"
            ),
            "moat_devices::gic::Gic::take_back"
        );
        assert_eq!(
            short_name("moat::machine::with_vm::<core::option::Option<bool>, x>"),
            "moat::machine::with_vm"
        );
        assert_eq!(short_name("moat_guest_exit"), "moat_guest_exit");
        assert_eq!(
            short_name("<moat::vm::Vm<4> as core::fmt::Debug>::fmt"),
            "moat::vm::Vm::fmt"
        );
        assert_eq!(
            short_name("core::option::Option::map<u64, u32, fn(u64) -> u32>"),
            "core::option::Option::map"
        );
        assert_eq!(
            short_name("moat::fastpath::in_place_call"),
            "moat::fastpath::in_place_call"
        );
    }

    #[test]
    fn steps_become_runs_of_one_function() {
        let steps =
            parse("87c\tmoat_guest_exit\n880\tmoat_guest_exit\n900\tf\n87c\tmoat_guest_exit\n")
                .unwrap();
        assert_eq!(
            runs(&steps),
            vec![(2, "moat_guest_exit"), (1, "f"), (1, "moat_guest_exit")]
        );
        assert!(parse("zz\tf\n").is_err());
        assert!(parse("87c\n").is_err());
    }

    #[test]
    fn every_operation_has_a_probe_and_the_probes_tell_them_apart() {
        let probes: Vec<Probe> = OPS.iter().map(|op| probe(op).expect(op)).collect();
        for (i, a) in probes.iter().enumerate() {
            for b in &probes[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert!(probe("wfi").is_none());
        // The MMIO read and write of the UART differ in WnR only (ISS bit 6).
        let (read, write) = (
            probe("mmio_read_uartfr").unwrap(),
            probe("mmio_write_uartdr").unwrap(),
        );
        assert_eq!(read.iss_mask, 1 << 6);
        assert_eq!((read.iss_value, write.iss_value), (0, 1 << 6));
        assert_eq!(read.hpfar, Some(0x90000));
        // ICC_SGI1R_EL1 written: op0 3, op2 5, CRn 12, CRm 11, Direction 0.
        assert_eq!(probe("sgi_send").unwrap().iss_value, 0x3A_3016);
    }
}
