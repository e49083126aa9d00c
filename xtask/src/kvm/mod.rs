//! Linux KVM beside Moat, in the same QEMU: a bare guest run under Debian's KVM by Moat's own
//! small VMM (`kvm-runner/`), on a VM of the same shape as Moat's (the same RAM, device tree
//! and PL011), so that `./x bench exits --kvm` can compare the two on the same guest.
//!
//! [`run_guest`] builds the runner (static, for `aarch64-unknown-linux-gnu`; see [`build`]),
//! generates the guest's device tree from the VM description exactly as Moat's bundle gets it
//! (`moat_config::generate_guest_dtb`, at `moat_config::default_dtb_ipa`), packs an initramfs
//! ([`boot`]) and boots Debian's cloud kernel at EL2 under `-icount shift=0,sleep=off` in VHE or
//! nVHE mode. `./x kvm-run` drives it; without a guest it runs the check guest
//! (`kvm-runner/guest/kvmcheck.s`) and prints the HVC round trip it measured ([`check`]).

pub mod boot;
pub mod build;
pub mod check;

pub use boot::{KvmOptions, Mode};

use crate::error::{XResult, failed, usage};
use crate::qemu::{ConsoleMode, Machine};
use moat_config::VmConfig;
use std::path::Path;
use std::time::Duration;

/// The QEMU CPU: `max` has FEAT_VHE; pointer authentication's cheap variant keeps TCG fast.
pub const CPU: &str = "max,pauth-impdef=on";
/// The host kernel's own memory besides the guest's RAM (its initramfs included).
const HOST_MIB: u64 = 512;
/// The time limit of one boot (TCG with `-icount` runs one CPU at a time).
const LIMIT: Duration = Duration::from_secs(300);

/// One guest run under KVM.
#[derive(Clone, Debug)]
pub struct KvmOutcome {
    /// The guest's console output, exactly as it printed it.
    pub console: String,
    /// The host kernel's KVM lines, e.g. `kvm [1]: VHE mode initialized successfully`.
    pub host: Vec<String>,
    /// Wall time of the whole boot.
    pub elapsed: Duration,
}

/// Runs `image` (a raw AArch64 image, entered at RAM base + 0x80000) once under Debian's KVM
/// in `mode`, on a VM shaped by `vm` (RAM size, vCPUs, IPA size, command line in the device
/// tree), and returns its console output once it has powered off (PSCI `SYSTEM_OFF`).
///
/// # Errors
///
/// A usage error for a VM the runner cannot build (RAM elsewhere than QEMU virt's base, more
/// than one RAM region); a failure when a build fails, QEMU does not start or ends early, KVM
/// did not initialise in `mode`, or the guest ended in any other way than `SYSTEM_OFF` (the
/// runner's messages are in the error).
#[allow(
    dead_code,
    reason = "the entry point for `./x bench exits --kvm`, written on another branch"
)]
pub fn run_guest(vm: &VmConfig, image: &Path, mode: Mode) -> XResult<KvmOutcome> {
    let artifacts = build::build()?;
    run_built(&artifacts, vm, image, mode, KvmOptions::default())
}

/// [`run_guest`] with the runner already built (a benchmark builds once and boots many times)
/// and with `options` (the default: the in-kernel vGICv3, no virtual PMU).
///
/// # Errors
///
/// As [`run_guest`].
pub fn run_built(
    artifacts: &build::KvmArtifacts,
    vm: &VmConfig,
    image: &Path,
    mode: Mode,
    options: KvmOptions,
) -> XResult<KvmOutcome> {
    let run = run_on(artifacts, CPU, vm, image, mode, options)?;
    let what = format!("the guest under KVM ({})", mode.name());
    match run.status {
        Some(0) => Ok(run.outcome),
        Some(status) => Err(failed(format!(
            "{what}: the runner ended with status {status}: {}",
            run.stderr.join(" / ")
        ))),
        None => Err(failed(format!(
            "{what}: the host did not finish the run{}{}",
            if run.timed_out { " (time limit)" } else { "" },
            tail(&run.host_console)
        ))),
    }
}

/// One run under KVM however the runner ended: what [`run_on`] returns.
#[derive(Clone, Debug)]
pub struct KvmRun {
    /// The guest's console and the host's KVM lines.
    pub outcome: KvmOutcome,
    /// The runner's exit status, if the host ran it to the end.
    pub status: Option<i32>,
    /// The runner's stderr lines.
    pub stderr: Vec<String>,
    /// Whether the time limit ended the boot.
    pub timed_out: bool,
    /// The host's whole console (for error messages).
    pub host_console: String,
}

/// [`run_built`] on the QEMU CPU model `cpu`, returning the guest's console however the
/// runner ended (a benchmark reads what a guest printed before a run it could not finish).
///
/// # Errors
///
/// As [`run_guest`], except that the runner's status is returned, not judged; KVM not
/// initialising in `mode` on `cpu` is still an error.
pub fn run_on(
    artifacts: &build::KvmArtifacts,
    cpu: &str,
    vm: &VmConfig,
    image: &Path,
    mode: Mode,
    options: KvmOptions,
) -> XResult<KvmRun> {
    let ram = single_ram(vm)?;
    let linux = crate::linux::default_linux()?;
    let dtb_addr =
        moat_config::default_dtb_ipa(vm).map_err(|e| usage(format!("guest device tree: {e}")))?;
    let dtb = moat_config::generate_guest_dtb(vm, None)
        .map_err(|e| failed(format!("guest device tree: {e}")))?;
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| failed(format!("reading {}: {e}", path.display())))
    };
    let args = boot::runner_args(ram.size, vm.cpus, vm.ipa_bits, dtb_addr.raw(), options);
    let entries = boot::entries(
        crate::linux::busybox()?,
        read(&artifacts.runner)?,
        read(image)?,
        dtb,
        boot::init_script(&args),
    );
    let archive = crate::initramfs::newc_archive(&entries);
    let initramfs = crate::build::out_dir().join("kvm").join(format!(
        "host-{}-{}.cpio",
        mode.name(),
        std::process::id()
    ));
    std::fs::write(&initramfs, archive)
        .map_err(|e| failed(format!("writing {}: {e}", initramfs.display())))?;
    let machine = Machine {
        cpu: cpu.into(),
        mem_mib: HOST_MIB + (ram.size >> 20),
        kernel: linux.kernel,
        initrd: Some(initramfs.clone()),
        append: Some(boot::kernel_cmdline(mode)),
        el2: true,
        gic_version: 3,
        smp: vm.cpus,
    };
    let icount = ["-icount".to_string(), "shift=0,sleep=off".into()];
    let outcome = machine.run_with(&icount, ConsoleMode::Captured, Some(LIMIT));
    let _ = std::fs::remove_file(&initramfs);
    let outcome = outcome?;
    let report = boot::parse(&outcome.console);
    let what = format!("the guest under KVM ({}, -cpu {cpu})", mode.name());
    if !report
        .host
        .iter()
        .any(|l| l.contains(mode.initialised_line()))
    {
        return Err(failed(format!(
            "{what}: the host kernel did not say `{}`; its KVM lines: {:?}{}",
            mode.initialised_line(),
            report.host,
            tail(&outcome.console)
        )));
    }
    Ok(KvmRun {
        outcome: KvmOutcome {
            console: report.guest,
            host: report.host,
            elapsed: outcome.elapsed,
        },
        status: report.status,
        stderr: report.stderr,
        timed_out: outcome.timed_out,
        host_console: outcome.console,
    })
}

/// The VM's one RAM region, where the runner puts it (QEMU virt's base).
fn single_ram(vm: &VmConfig) -> XResult<&moat_config::RamRegion> {
    match vm.ram.as_slice() {
        [ram] if ram.base.raw() == 0x4000_0000 => Ok(ram),
        _ => Err(usage(
            "the KVM runner builds VMs with one RAM region at 0x4000_0000",
        )),
    }
}

/// The last console lines, for an error message.
fn tail(console: &str) -> String {
    let lines: Vec<&str> = console.lines().collect();
    let last = &lines[lines.len().saturating_sub(8)..];
    format!("; the console ended with:\n    | {}", last.join("\n    | "))
}

/// `./x kvm-run`: `guest` (default: the check guest) on the VM `request` describes (vCPUs,
/// RAM, command line; with `options`) under KVM in each of `modes`; prints the guest's console, or the check guest's figures.
///
/// # Errors
///
/// As [`run_guest`], and a failure when the check guest's report is incomplete.
pub fn command(
    guest: Option<&Path>,
    request: &crate::vm::VmRequest,
    modes: &[Mode],
    options: KvmOptions,
) -> XResult<std::process::ExitCode> {
    let vm = crate::vm::describe(request, CPU)?;
    if let Some(path) = guest.filter(|p| !p.is_file()) {
        return Err(usage(format!("--guest {}: no such file", path.display())));
    }
    let artifacts = build::build()?;
    let image = guest.map_or_else(|| artifacts.check_guest.clone(), Path::to_path_buf);
    for &mode in modes {
        let outcome = run_built(&artifacts, &vm, &image, mode, options)?;
        let seconds = outcome.elapsed.as_secs_f64();
        for line in outcome
            .host
            .iter()
            .filter(|l| l.contains(mode.initialised_line()))
        {
            println!("KVM {}: host kernel: {line}", mode.name());
        }
        if guest.is_some() {
            print!("{}", outcome.console);
            println!(
                "x: KVM {}: the guest powered off ({seconds:.1} s)",
                mode.name()
            );
            continue;
        }
        let check = check::parse(&outcome.console)
            .map_err(|e| failed(format!("the check guest under KVM {}: {e}", mode.name())))?;
        let figures = check.figures().map_err(failed)?;
        let name = mode.name();
        println!(
            "KVM {name}: guest at EL{}, PSCI_VERSION {:#x}, CPU_ON(MPIDR 1) = {}{}, CNTFRQ {} Hz, \
             {:.3} instructions per tick",
            check.el,
            check.psci_version,
            check.cpu_on,
            if check.cpu1_up { " (vCPU 1 up)" } else { "" },
            check.cntfrq,
            figures.per_tick
        );
        println!(
            "KVM {name}: HVC PSCI_VERSION round trip {:.1} instructions (median of {} batches; \
             min {:.1}); the boot took {seconds:.1} s",
            figures.median,
            check.batches.len(),
            figures.min
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The `./x test` case in `mode`: the check guest on 2 vCPUs ran at EL1, printed through the
/// runner's PL011, started vCPU 1 with PSCI `CPU_ON`, got PSCI 1.x from KVM, timed its 21
/// batches, and powered off. `Err` only when the runner or the guest cannot be built.
///
/// # Errors
///
/// A failed build.
pub fn check_case(mode: Mode) -> XResult<Result<(), String>> {
    let artifacts = build::build()?;
    let mut vm = VmConfig::default_virt();
    vm.set_cpus(2);
    let outcome = match run_built(
        &artifacts,
        &vm,
        &artifacts.check_guest,
        mode,
        KvmOptions::default(),
    ) {
        Ok(outcome) => outcome,
        Err(e) => return Ok(Err(e.to_string())),
    };
    Ok(check::parse(&outcome.console).and_then(|c| c.verdict()))
}
