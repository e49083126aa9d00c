//! `./x bench boot`: how much later Linux reaches its first user instruction under Moat than on
//! QEMU alone, in virtual time from power-on (issue 9, item 5).
//!
//! QEMU runs with `-icount shift=0,sleep=off`: every instruction the machine executes — Moat's
//! start-up and VM creation at EL2 included — advances the virtual clock by 1 ns, and idle time
//! jumps to the next timer deadline instead of being slept, so the figure is the same on every
//! run and every host. The generic timer's counter runs on that clock from 0 at QEMU's start,
//! and the guest's virtual counter equals it (`CNTVOFF_EL2` = 0 under Moat; bare QEMU at EL1 has
//! no offset). The initramfs's `/init` is a tiny static program (`bootbench/init.s`) whose
//! first instruction reads `CNTVCT_EL0`; it prints the value and `CNTFRQ_EL0` and powers off.
//!
//! Both sides boot the same kernel, initramfs, command line and 512 MiB of RAM, with the same
//! device tree: the one Moat's bundle gives its guest (`moat_config`'s guest device tree, as
//! `./x run --linux` builds it), passed to bare QEMU with `-dtb` (QEMU then only fills in
//! `/chosen`'s initrd range and `/memory` for where it put them), on 1 and 2 vCPUs.

use crate::build::{self, Artifacts, run_step};
use crate::error::{XResult, failed};
use crate::qemu::{ConsoleMode, Machine, Outcome};
use crate::vm;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

/// The line `/init` prints.
const MARK: &str = "MOAT-INIT ";

/// The time limit of one boot (TCG with `-icount` runs one CPU at a time).
const LIMIT: Duration = Duration::from_secs(300);

/// The guest's RAM, bare and under Moat (as the Linux test case has it).
const RAM_MIB: u64 = 512;

/// The CPU model of both sides.
const CPU: &str = "max,pauth-impdef=on";

/// Runs the benchmark and prints one line per CPU count and the ratios.
///
/// # Errors
///
/// When the guest cannot be fetched or built, QEMU cannot start, or a boot does not reach
/// `/init`.
pub fn run() -> XResult<ExitCode> {
    let linux = crate::linux::default_linux()?;
    let artifacts = build::build_bare()?;
    let dir = build::out_dir().join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    let initramfs = initramfs(&dir)?;
    let guest = crate::linux::LinuxGuest { initramfs, ..linux };
    println!(
        "virtual time from QEMU's first instruction to `/init`'s first (its CNTVCT_EL0 read), \
         -icount shift=0,sleep=off (1 ns per instruction), -cpu {CPU}, {RAM_MIB} MiB, the same \
         kernel, initramfs, command line and device tree (Moat's guest DTB; bare: -dtb); Moat's \
         start-up, guest RAM scrub (DC ZVA: one instruction per block under -icount, memory \
         bandwidth is not modelled) and VM creation included"
    );
    println!(
        "{:<6} {:>12} {:>12} {:>8}",
        "vCPUs", "bare (s)", "Moat (s)", "ratio"
    );
    for cpus in [1u32, 2] {
        let bundle = dir.join(format!("boot-{cpus}.bundle"));
        let moat_machine = moat_machine(&artifacts, &guest, cpus, &bundle)?;
        let dtb = dir.join(format!("boot-{cpus}.dtb"));
        crate::vm::write_bundle_dtb(&bundle, &dtb)?;
        let bare = seconds_to_init(&bare_boot(&guest, cpus, &dtb)?, "bare", cpus)?;
        let moat = seconds_to_init(
            &moat_machine.run_with(&icount(&[]), ConsoleMode::Captured, Some(LIMIT))?,
            "Moat",
            cpus,
        )?;
        println!("{cpus:<6} {bare:>12.6} {moat:>12.6} {:>8.3}", moat / bare);
    }
    Ok(ExitCode::SUCCESS)
}

fn icount(extra: &[String]) -> Vec<String> {
    let mut args = vec!["-icount".into(), "shift=0,sleep=off".into()];
    args.extend_from_slice(extra);
    args
}

/// `MRS X19, CNTVCT_EL0` (Arm ARM C6.2 "MRS": `0xD5300000` | o0 = 1 (op0 = 3) << 19 | op1 = 3
/// << 16 | CRn = 14 << 12 | CRm = 0 << 8 | op2 = 2 << 5 | Rt = 19), little-endian.
const READ_CNTVCT: [u8; 4] = 0xD53B_E053_u32.to_le_bytes();

/// The smoke check of `./x test` (a boot takes minutes, so none runs there): `/init` assembles
/// and links, and its first instruction is the counter read. `Err` says what is wrong.
///
/// # Errors
///
/// The outer error: the output directory cannot be made.
pub fn smoke() -> XResult<Result<(), String>> {
    let dir = build::out_dir().join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    let init = match assemble_init(&dir) {
        Ok(init) => init,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let text = dir.join("init.text");
    let flat = Command::new("aarch64-linux-gnu-objcopy")
        .args(["-O", "binary", "-j", ".text"])
        .arg(&init)
        .arg(&text)
        .status();
    if !flat.is_ok_and(|s| s.success()) {
        return Ok(Err("objcopy could not extract /init's .text".into()));
    }
    let bytes = std::fs::read(&text).unwrap_or_default();
    Ok(if bytes.starts_with(&READ_CNTVCT) {
        Ok(())
    } else {
        Err(format!(
            "/init's first instruction is {:02x?}, not MRS X19, CNTVCT_EL0",
            bytes.get(..4)
        ))
    })
}

/// Assembles and links `/init` into `dir/init`.
fn assemble_init(dir: &Path) -> XResult<PathBuf> {
    let source = build::repo_root().join("xtask/src/bootbench/init.s");
    let (object, init) = (dir.join("init.o"), dir.join("init"));
    let tool = |name: &str| Command::new(format!("aarch64-linux-gnu-{name}"));
    run_step(
        tool("as").arg(&source).arg("-o").arg(&object),
        "assembling the boot benchmark's /init",
    )?;
    run_step(
        tool("ld")
            .args(["-static", "-e", "_start", "-o"])
            .arg(&init)
            .arg(&object),
        "linking the boot benchmark's /init",
    )?;
    Ok(init)
}

/// Assembles `/init` and packs it with busybox (as every guest initramfs has it) into
/// `dir/boot-initramfs.cpio.gz`.
fn initramfs(dir: &Path) -> XResult<PathBuf> {
    let init = assemble_init(dir)?;
    let read =
        |path: &Path| std::fs::read(path).map_err(|e| failed(format!("{}: {e}", path.display())));
    let entries = with_init(
        crate::initramfs::entries(crate::linux::busybox()?, &[]),
        read(&init)?,
    );
    let archive = crate::initramfs::gzip(&crate::initramfs::newc_archive(&entries))
        .map_err(|e| failed(format!("compressing the initramfs: {e}")))?;
    let path = dir.join("boot-initramfs.cpio.gz");
    std::fs::write(&path, archive).map_err(|e| failed(format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// `entries` with `/init` replaced by the program `init`.
fn with_init(entries: Vec<crate::initramfs::Entry>, init: Vec<u8>) -> Vec<crate::initramfs::Entry> {
    use crate::initramfs::Entry;
    entries
        .into_iter()
        .map(|e| match e {
            Entry::File { path, .. } if path == "init" => Entry::File {
                path,
                perm: 0o755,
                data: init.clone(),
            },
            other => other,
        })
        .collect()
}

fn moat_machine(
    artifacts: &Artifacts,
    linux: &crate::linux::LinuxGuest,
    cpus: u32,
    bundle: &Path,
) -> XResult<Machine> {
    let mut machine = vm::linux_under_moat(&artifacts.moat, linux, cpus, RAM_MIB, bundle)?;
    machine.cpu = CPU.into();
    Ok(machine)
}

fn bare_boot(linux: &crate::linux::LinuxGuest, cpus: u32, dtb: &Path) -> XResult<Outcome> {
    let machine = Machine {
        cpu: CPU.into(),
        mem_mib: RAM_MIB,
        kernel: linux.kernel.clone(),
        initrd: Some(linux.initramfs.clone()),
        append: Some(crate::linux::default_append(0x0900_0000)),
        el2: false,
        gic_version: 3,
        smp: cpus,
    };
    let extra = ["-dtb".to_string(), dtb.display().to_string()];
    machine.run_with(&icount(&extra), ConsoleMode::Captured, Some(LIMIT))
}

/// The seconds `/init` read from its virtual counter.
fn seconds_to_init(outcome: &Outcome, what: &str, cpus: u32) -> XResult<f64> {
    outcome.lines().find_map(init_seconds).ok_or_else(|| {
        failed(format!(
            "{what} on {cpus} CPU(s): Linux did not reach /init{}",
            if outcome.timed_out {
                " (time limit)"
            } else {
                ""
            }
        ))
    })
}

/// `MOAT-INIT cntvct=<hex> cntfrq=<hex>` → counter ticks / frequency, in seconds.
fn init_seconds(line: &str) -> Option<f64> {
    let rest = &line[line.find(MARK)? + MARK.len()..];
    let field = |key: &str| {
        let value = rest
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))?;
        u64::from_str_radix(value, 16).ok()
    };
    let (ticks, freq) = (field("cntvct")?, field("cntfrq")?);
    #[allow(clippy::cast_precision_loss)] // far below 2^52 ticks
    (freq > 0).then(|| ticks as f64 / freq as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_line_gives_counter_ticks_over_frequency_in_seconds() {
        // 0x3b9aca0 = 62 500 000 ticks at 62.5 MHz (0x3b9aca0) is one second.
        let line = "MOAT-INIT cntvct=0000000003b9aca0 cntfrq=0000000003b9aca0";
        assert_eq!(init_seconds(line), Some(1.0));
        let half = "\u{0}MOAT-INIT cntvct=0000000001dcd650 cntfrq=0000000003b9aca0";
        assert_eq!(init_seconds(half), Some(0.5));
        assert_eq!(init_seconds("Run /init as init process"), None);
        assert_eq!(init_seconds("MOAT-INIT cntvct=12 cntfrq=0"), None);
    }

    #[test]
    fn the_benchmark_initramfs_keeps_every_entry_and_replaces_only_init() {
        let base = crate::initramfs::entries(vec![7], &[]);
        let replaced = with_init(base.clone(), vec![0x7f, b'E']);
        assert_eq!(base.len(), replaced.len());
        let init = replaced.iter().find_map(|e| match e {
            crate::initramfs::Entry::File { path, data, perm } if path == "init" => {
                Some((data.clone(), *perm))
            }
            _ => None,
        });
        assert_eq!(init, Some((vec![0x7f, b'E'], 0o755)));
        assert!(replaced.iter().any(|e| matches!(
            e,
            crate::initramfs::Entry::CharDev { path, .. } if path == "dev/console"
        )));
    }
}
