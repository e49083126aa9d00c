//! `./x test`: every check, ending with one `N passed, N failed` line.
//!
//! The static checks (formatting, lints, host unit tests) run first, each a step that stops
//! the run when it fails. Then the QEMU cases: each boots one QEMU with a time limit and checks
//! what the console shows — the guest's `MOAT-TEST` lines (protocol in
//! `bare/guests/README.md`) and Moat's `MOAT-EXIT:` line — on every CPU model in [`CPUS`].

mod race;

use crate::build::{self, Artifacts, bare_cargo, host_cargo, run_step};
use crate::error::{XResult, failed};
use crate::qemu::{ConsoleMode, Machine, MoatExit, Outcome, ScriptStep};
use crate::scratch::Scratch;
use crate::vm::{self, VmRequest};
use moat_config::ParangeMode;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

#[path = "harness/run_cases.rs"]
mod run_cases;
mod systems;

#[path = "harness/boot_chain.rs"]
mod boot_chain;

#[path = "harness/board.rs"]
mod board;

#[path = "harness/pci.rs"]
mod pci;

#[path = "harness/rootfs.rs"]
mod rootfs;

/// The CPU models every guest test runs on: a 44-bit-PARange core and QEMU's `max` (52-bit
/// PARange, so the IPA limit is the 48 of the 4K granule); pointer authentication uses QEMU's
/// fast implementation-defined algorithm.
pub const CPUS: [&str; 2] = ["cortex-a72", "max,pauth-impdef=on"];

/// The time limit of one boot: generous for a 2-core CI machine; a hung guest costs this much.
const BOOT_LIMIT: Duration = Duration::from_secs(30);

/// Runs everything; the exit status is 0 only when every step and case passed.
///
/// # Errors
///
/// A failed static step (the cases' failures are counted, not errors).
pub fn test_all(guests_only: bool) -> XResult<ExitCode> {
    let start = Instant::now();
    if !guests_only {
        static_checks()?;
    }
    println!(
        "static checks and host unit tests took {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let artifacts = build::build_bare()?;
    let start = Instant::now();
    let mut tally = Tally::default();
    for cpu in CPUS {
        guest_suite(&artifacts, cpu, &mut tally)?;
        moat_cases(&artifacts, cpu, &mut tally)?;
        let verdict = crate::sweep::smoke(&artifacts, cpu)?;
        tally.record(
            "sysreg_sweep_of_op0_3_op1_0_and_3_matches_bare_qemu_or_a_listed_reason",
            cpu,
            None,
            verdict,
        );
        tally.record(
            "chaos_3000_ops_on_2_vcpus_with_and_without_interrupts_and_at_el0_match_bare_qemu_without_a_vm_stop_or_hang",
            cpu,
            None,
            crate::chaos::smoke(&artifacts, cpu)?,
        );
        let (outcome, verdict) = crate::exitbench::smoke(&artifacts, cpu)?;
        tally.record(
            "bench_exits_quick_runs_every_operation_under_moat",
            cpu,
            Some(&outcome),
            verdict,
        );
    }
    tally.record(
        "bench_trace_steps_an_hvc_exit_from_the_exit_path_to_its_eret",
        "cortex-a72",
        None,
        crate::exittrace::smoke(&artifacts),
    );
    gicv2_cases(&artifacts, &mut tally)?;
    parange_cases(&artifacts, &mut tally)?;
    moat_refuses_s_above_l(&artifacts, &mut tally)?;
    el2_stack_overflow(&artifacts, &mut tally)?;
    aarch32_cases(&artifacts, &mut tally)?;
    race::cpu_on_race(&artifacts, &mut tally)?;
    boot_chain::uboot_cases(&artifacts, &mut tally)?;
    board::zcu102_cases(&artifacts, &mut tally)?;
    board::zcu102_selftest_cases(&artifacts, &mut tally)?;
    board::zcu102_linux_case(&artifacts, &mut tally)?;
    board::reservation_case(&artifacts, &mut tally)?;
    pci_cases(&artifacts, &mut tally)?;
    linux_case(&artifacts, &mut tally)?;
    linux_gicv2_case(&artifacts, &mut tally)?;
    rootfs::root_initramfs_case(&mut tally)?;
    kvm_cases(&mut tally)?;
    tally.record(
        "bench_boot_init_reads_the_virtual_counter_first",
        "-",
        None,
        crate::bootbench::smoke()?,
    );
    cli_cases(&artifacts, &mut tally)?;
    run_cases::initrd_with_guest(&mut tally)?;
    run_cases::kvm_unit_tests_environment(&mut tally)?;
    run_cases::two_runs_at_once(&mut tally)?;
    systems::all(&mut tally)?;
    kvm_unit_tests(&artifacts, &mut tally)?;
    config_cases(&mut tally)?;
    fuzz_cases(&mut tally)?;
    println!("differential suite (SPEC §6): every case's exception state, bare QEMU vs Moat");
    let diff = crate::difftest::run(&artifacts, crate::difftest::Board::Virt)?;
    tally.passed += diff.passed;
    tally.failed += diff.failed;
    println!(
        "differential suite on the ZCU102 model's Cortex-A53s against bare virt -cpu cortex-a53"
    );
    let diff = crate::difftest::run(&artifacts, crate::difftest::Board::Zcu102)?;
    tally.passed += diff.passed;
    tally.failed += diff.failed;
    Ok(tally.summary(start))
}

/// `./x test --systems-only`: the cases of several VMs side by side alone.
///
/// # Errors
///
/// When the bare-metal build fails (the cases' failures are counted, not errors).
pub fn test_systems() -> XResult<ExitCode> {
    build::build_bare()?;
    let start = Instant::now();
    let mut tally = Tally::default();
    systems::all(&mut tally)?;
    Ok(tally.summary(start))
}

/// `./x test --pci-only`: the PCI cases alone.
///
/// # Errors
///
/// When the bare-metal build fails (the cases' failures are counted, not errors).
pub fn test_pci() -> XResult<ExitCode> {
    let artifacts = build::build_bare()?;
    let start = Instant::now();
    let mut tally = Tally::default();
    pci_cases(&artifacts, &mut tally)?;
    Ok(tally.summary(start))
}

/// The PCI cases of issue 12, on QEMU 10.
fn pci_cases(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    pci::scan_at_boot(artifacts, tally)?;
    pci::absent_function_refused(artifacts, tally)?;
    pci::dma_cases(artifacts, tally)?;
    pci::intx_case(artifacts, tally)?;
    pci::intx_on_a_secondary_cpu(tally)?;
    pci::dma_at_another_vm(tally)
}

/// kvm-unit-tests from `../shared/kvm-unit-tests` (a subset: `./x kut` runs them all), under
/// Moat and bare; not run, and said so, when the directory is not there.
fn kvm_unit_tests(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let dir = build::repo_root().join("../shared/kvm-unit-tests");
    if crate::kut::builds_in(&dir).is_empty() {
        println!(
            "NOT RUN kvm-unit-tests: no build in {} (not counted)",
            dir.display()
        );
        return Ok(());
    }
    for (name, verdict) in crate::kut::quick(artifacts, &dir)? {
        tally.record(&name, "kut", None, verdict);
    }
    Ok(())
}

fn static_checks() -> XResult<()> {
    run_step(
        host_cargo().args(["fmt", "--all", "--check"]),
        "cargo fmt --check (host workspace)",
    )?;
    run_step(
        bare_cargo().args(["fmt", "--all", "--check"]),
        "cargo fmt --check (bare-metal workspace)",
    )?;
    run_step(
        host_cargo().args([
            "fmt",
            "--all",
            "--check",
            "--manifest-path",
            "fuzz/Cargo.toml",
        ]),
        "cargo fmt --check (fuzz targets)",
    )?;
    run_step(
        host_cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ]),
        "cargo clippy (host workspace)",
    )?;
    run_step(
        bare_cargo().args(["clippy", "--release", "--quiet", "--", "-D", "warnings"]),
        "cargo clippy (bare-metal workspace)",
    )?;
    run_step(
        host_cargo().args(["test", "--workspace", "--all-features", "--quiet"]),
        "host unit tests",
    )?;
    // The guests' pure parts (the runtime's device tree, bootargs and syndromes; the probes'
    // bootargs, kinds, descriptor encodings and result lines) test on the host too.
    for manifest in [
        "bare/guests/probe/Cargo.toml",
        "bare/guests/probe32/Cargo.toml",
    ] {
        run_step(
            host_cargo().args(["test", "--quiet", "--lib", "--manifest-path", manifest]),
            "probe unit tests",
        )?;
    }
    run_step(
        host_cargo().args([
            "test",
            "--quiet",
            "--manifest-path",
            "bare/guest-rt/Cargo.toml",
        ]),
        "guest runtime unit tests",
    )?;
    crate::kvm::build::static_checks()?;
    // The logic crates are the EL2 binary's dependencies; building them by name for the
    // bare-metal target proves they stay `no_std`.
    let logic = [
        "moat-arm",
        "moat-stage2",
        "moat-vcpu",
        "moat-devices",
        "moat-config",
        "moat-platform",
    ];
    let mut cmd = bare_cargo();
    cmd.args(["build", "--release", "--quiet"]);
    for krate in logic {
        cmd.args(["-p", krate]);
    }
    run_step(
        &mut cmd,
        "building the logic crates for aarch64-unknown-none-softfloat",
    )
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    /// Prints how long the QEMU cases took since `start` and the closing `N passed, N failed`
    /// line; the exit status is 0 only when none failed.
    fn summary(&self, start: Instant) -> ExitCode {
        println!(
            "QEMU cases took {:.1} s in all",
            start.elapsed().as_secs_f64()
        );
        println!("{} passed, {} failed", self.passed, self.failed);
        if self.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    fn record(
        &mut self,
        name: &str,
        cpu: &str,
        outcome: Option<&Outcome>,
        verdict: Result<(), String>,
    ) {
        let time = outcome.map_or(String::new(), |o| {
            format!(" ({:.2} s)", o.elapsed.as_secs_f64())
        });
        match verdict {
            Ok(()) => {
                self.passed += 1;
                println!("PASS {name} [{cpu}]{time}");
            }
            Err(why) => {
                self.failed += 1;
                println!("FAIL {name} [{cpu}]{time}: {why}");
                if let Some(o) = outcome {
                    let lines: Vec<&str> = o.lines().collect();
                    for line in &lines[lines.len().saturating_sub(15)..] {
                        println!("    | {line}");
                    }
                }
            }
        }
    }
}

/// Boots `guest` under Moat on `cpu` with `bootargs`.
fn boot(
    artifacts: &Artifacts,
    guest: &Path,
    cpu: &str,
    request: &VmRequest,
    tag: &str,
) -> XResult<Outcome> {
    let (_scratch, machine) = moat_machine(artifacts, guest, cpu, request, tag)?;
    machine.run(ConsoleMode::Captured, Some(BOOT_LIMIT))
}

/// The machine that boots `guest` under Moat on `cpu`: its bundle is written into the returned
/// scratch directory, which must live as long as the machine is used.
fn moat_machine(
    artifacts: &Artifacts,
    guest: &Path,
    cpu: &str,
    request: &VmRequest,
    tag: &str,
) -> XResult<(Scratch, Machine)> {
    let vm = vm::describe(request, cpu)?;
    let scratch = Scratch::new("test")?;
    let bundle = scratch.join(&format!("{tag}.bundle"));
    let machine = vm::moat_machine(&vm, &artifacts.moat, guest, cpu, &bundle)?;
    Ok((scratch, machine))
}

fn with_bootargs(args: &str) -> VmRequest {
    VmRequest {
        bootargs: Some(args.into()),
        ..VmRequest::default()
    }
}

/// Every test of the selftest guest, one boot each.
fn guest_suite(artifacts: &Artifacts, cpu: &str, tally: &mut Tally) -> XResult<()> {
    let guest = artifacts.guest("moat-guest-selftest");
    let listing = boot(
        artifacts,
        &guest,
        cpu,
        &with_bootargs("moat.test=list"),
        "list",
    )?;
    let names = selftest_names(&listing);
    tally.record(
        "selftest_lists_its_tests",
        cpu,
        Some(&listing),
        listed(&names),
    );
    // The default VM shows P = L (SPEC §1).
    let parange = crate::qemu::cpu_pa_bits(cpu).map_or(0, |b| b.min(48));
    // The `gicv2_` tests need a GICv2 machine: `gicv2_cases` runs them.
    for name in names.into_iter().filter(|n| !n.starts_with(GICV2_PREFIX)) {
        let args = format!("moat.test={name} moat.parange={parange}");
        let outcome = boot(artifacts, &guest, cpu, &with_bootargs(&args), &name)?;
        let verdict = guest_verdict(&outcome, &name);
        tally.record(&format!("guest::{name}"), cpu, Some(&outcome), verdict);
    }
    Ok(())
}

/// The tests the selftest guest lists (`moat.test=list`), in its order.
fn selftest_names(listing: &Outcome) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.strip_prefix("MOAT-TEST list "))
        .map(|n| n.trim().to_owned())
        .collect()
}

/// The verdict on a listing: it names at least one test.
fn listed(names: &[String]) -> Result<(), String> {
    if names.is_empty() {
        Err("the selftest guest listed no tests".into())
    } else {
        Ok(())
    }
}

/// The prefix of the selftest guest's tests that need a GICv2 machine.
const GICV2_PREFIX: &str = "gicv2_";

/// The selftest guest's tests that exercise the GIC, on QEMU virt with `gic-version=2` and a
/// GICv2 VM of 2 vCPUs (Moat drives the GICv2, the guest's CPU interface is the hardware's
/// GICV): the interrupt tests every machine runs, then the `gicv2_` ones.
fn gicv2_cases(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let guest = artifacts.guest("moat-guest-selftest");
    let cpu = CPUS[1];
    let names = [
        "virtual_timer_interrupt_arrives_through_the_gic",
        "sgi_to_self_arrives_through_the_gic",
        "gicv2_sgis_between_two_vcpus_carry_their_source",
    ];
    for name in names {
        let request = VmRequest {
            bootargs: Some(format!("moat.test={name}")),
            cpus: Some(2),
            gic_v2: true,
            ..VmRequest::default()
        };
        let outcome = boot(artifacts, &guest, cpu, &request, name)?;
        let verdict = guest_verdict(&outcome, name)
            .and_then(|()| expect_line(&outcome, "moat: GICv2: distributor"));
        tally.record(&format!("gicv2::{name}"), cpu, Some(&outcome), verdict);
    }
    Ok(())
}

/// The console script of [`linux_case`]: wait for the shell, look at the CPUs and the interrupts,
/// touch an address at `2^S` with `devmem` (a synchronous external abort: Linux kills the
/// process with SIGBUS, the shell lives on), then power off.
const LINUX_SCRIPT: &[ScriptStep] = &[
    ScriptStep {
        wait_for: "Moat guest: Linux up",
        send: "",
    },
    ScriptStep {
        wait_for: "/ # ",
        send: "echo cpus=$(nproc); cat /proc/interrupts\n",
    },
    ScriptStep {
        wait_for: "cpus=",
        send: "",
    },
    ScriptStep {
        wait_for: "/ # ",
        send: "busybox devmem 0x10000000000; echo devmem-status=$?\n",
    },
    ScriptStep {
        wait_for: "devmem-status=",
        send: "",
    },
    ScriptStep {
        wait_for: "/ # ",
        send: "echo shell-still-here; dmesg | grep -ciE '(gic|timer|psci).*(error|fail)'\n",
    },
    ScriptStep {
        wait_for: "shell-still-here",
        send: "",
    },
    ScriptStep {
        wait_for: "/ # ",
        send: "poweroff -f\n",
    },
];

/// The time limit of a Linux boot and its script under TCG.
const LINUX_LIMIT: Duration = Duration::from_secs(180);

/// Debian's arm64 cloud kernel boots under Moat to a busybox shell (issue 6): the timer ticks
/// through the virtual GIC, the console takes input, PSCI powers off, and an access at `2^S`
/// (`S` = 40 on `max`, whose `P` is 48) is a synchronous external abort that Linux turns into
/// SIGBUS for the process alone.
/// The check guest under Debian's KVM in the same QEMU, nVHE and VHE (`crate::kvm`).
fn kvm_cases(tally: &mut Tally) -> XResult<()> {
    for mode in crate::kvm::Mode::ALL {
        let start = Instant::now();
        let verdict = crate::kvm::check_case(mode)?;
        let name = format!(
            "kvm_runs_the_check_guest_on_2_vcpus_to_power_off ({:.1} s)",
            start.elapsed().as_secs_f64()
        );
        tally.record(&name, mode.name(), None, verdict);
    }
    Ok(())
}

fn linux_case(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    linux_boot(
        artifacts,
        tally,
        &vm::linux_vm(2, 512),
        "GICv3",
        "linux_boots_on_2_vcpus_to_a_shell_and_survives_an_abort_at_2_pow_s",
    )
}

/// The same Linux boot on QEMU virt with `gic-version=2` and a GICv2 VM: the timer ticks through
/// Moat's GICv2 (Linux's `GIC-0`), IPIs reach both vCPUs through `GICD_SGIR`, the abort at
/// `2^S` and the power-off as on the GICv3.
fn linux_gicv2_case(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let mut vm = vm::linux_vm(2, 512);
    vm.use_gic_v2();
    linux_boot(
        artifacts,
        tally,
        &vm,
        "GIC-0",
        "linux_boots_on_2_vcpus_with_a_gicv2_to_a_shell_with_timer_ticks_and_ipis",
    )
}

/// Debian's Linux in `vm` (2 vCPUs) under Moat, through [`LINUX_SCRIPT`]; its timer's
/// interrupt controller is `chip` in `/proc/interrupts`.
fn linux_boot(
    artifacts: &Artifacts,
    tally: &mut Tally,
    vm: &moat_config::VmConfig,
    chip: &str,
    name: &str,
) -> XResult<()> {
    let linux = crate::linux::default_linux()?;
    let scratch = Scratch::new("test")?;
    let bundle = scratch.join("linux.bundle");
    let machine = vm::linux_machine(vm, &artifacts.moat, &linux, &bundle)?;
    let outcome = machine.run(ConsoleMode::Scripted(LINUX_SCRIPT), Some(LINUX_LIMIT))?;
    let verdict = expect_line(&outcome, "cpus=2")
        .and_then(|()| timer_ticked(&outcome, chip))
        .and_then(|()| ipis_counted(&outcome))
        .and_then(|()| expect_line(&outcome, "devmem-status=135"))
        .and_then(|()| expect_line(&outcome, "shell-still-here\n0\n"))
        .and_then(|()| expect_exit(&outcome, MoatExit::PowerOff));
    tally.record(name, "max", Some(&outcome), verdict);
    Ok(())
}

/// `/proc/interrupts` shows IPIs (rescheduling and function-call SGIs) taken by both vCPUs.
fn ipis_counted(outcome: &Outcome) -> Result<(), String> {
    let ipis: u64 = outcome
        .lines()
        .filter(|l| l.trim_start().starts_with("IPI0:") || l.trim_start().starts_with("IPI1:"))
        .map(|l| {
            let counts = l.split_whitespace().skip(1).take(2);
            counts
                .map(|n| n.parse::<u64>().unwrap_or(0))
                .min()
                .unwrap_or(0)
        })
        .sum();
    if ipis > 0 {
        Ok(())
    } else {
        Err("no IPIs counted on both vCPUs in /proc/interrupts".into())
    }
}

/// `/proc/interrupts` shows the architected timer's interrupt taken at least once through the
/// interrupt controller Linux calls `chip` (`GICv3`, or `GIC-0` for a GICv2).
fn timer_ticked(outcome: &Outcome, chip: &str) -> Result<(), String> {
    let line = outcome
        .lines()
        .find(|l| l.contains("arch_timer") && l.contains(chip))
        .ok_or("no arch_timer in /proc/interrupts")?;
    let count: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if count > 0 {
        Ok(())
    } else {
        Err(format!("the timer never ticked: {line:?}"))
    }
}

/// An AArch32 guest (`arch = "aarch32"`): entered in SVC mode with r2 = the device tree, its
/// UART stores emulated from the syndrome, an `LDRD` from the UART emulated by decoding the A32
/// instruction (no syndrome for a pair), its `MRC` of an ID register trapped and answered, PSCI
/// over `HVC`. On a core without an AArch32 EL1 Moat refuses the VM.
fn aarch32_cases(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let guest = assemble_with("arm-none-eabi-", "aarch32", AARCH32_GUEST)?;
    for cpu in ["cortex-a72", "max,pauth-impdef=on"] {
        let outcome = boot_arch32(artifacts, &guest, cpu)?;
        let verdict = expect_line(&outcome, "A32 entered with the device tree in r2\n")
            .and_then(|()| expect_line(&outcome, "UART flags read by LDRD: ok\n"))
            .and_then(|()| expect_line(&outcome, "ID_MMFR0 read: ok\n"))
            .and_then(|()| expect_line(&outcome, "PSCI 1.x\n"))
            .and_then(|()| expect_exit(&outcome, MoatExit::PowerOff));
        tally.record(
            "aarch32_guest_runs_under_moat",
            cpu,
            Some(&outcome),
            verdict,
        );
    }
    let outcome = boot_arch32(artifacts, &guest, "neoverse-n1")?;
    let verdict = expect_exit(&outcome, MoatExit::ConfigError)
        .and_then(|()| expect_line(&outcome, "AArch32 EL1"));
    tally.record(
        "aarch32_vm_is_refused_on_a_core_without_aarch32_el1",
        "neoverse-n1",
        Some(&outcome),
        verdict,
    );
    Ok(())
}

fn boot_arch32(artifacts: &Artifacts, guest: &Path, cpu: &str) -> XResult<Outcome> {
    let mut vm = moat_config::VmConfig::default_virt();
    vm.arch = moat_config::GuestArch::Aarch32;
    boot_config(artifacts, guest, cpu, &vm, "aarch32")
}

/// Boots `guest` in the VM `vm` under Moat on `cpu`, bypassing the host tool's checks.
fn boot_config(
    artifacts: &Artifacts,
    guest: &Path,
    cpu: &str,
    vm: &moat_config::VmConfig,
    tag: &str,
) -> XResult<Outcome> {
    let scratch = Scratch::new("test")?;
    let bundle = scratch.join(&format!("{tag}.bundle"));
    vm::write_bundle(vm, guest, &bundle)?;
    let machine = Machine {
        cpu: cpu.into(),
        mem_mib: 512,
        kernel: artifacts.moat.clone(),
        initrd: Some(bundle),
        append: None,
        el2: true,
        gic_version: 3,
        smp: vm.cpus,
    };
    machine.run(ConsoleMode::Captured, Some(BOOT_LIMIT))
}

/// The AArch32 guest of [`aarch32_cases`] (A32, GNU as syntax).
const AARCH32_GUEST: &str = r#"
.arm
    ldr r1, =0x09000000
    mov r4, r2
    cmp r4, #0x40000000          @ the device tree lies in RAM
    blo fail
    adr r0, entered
    bl puts
    mov r6, #0
    mov r7, #0
    ldrd r6, r7, [r1, #0x18]     @ UARTFR and UARTILPR: a pair, decoded by Moat
    and r6, r6, #0x80            @ UARTFR.TXFE must be set
    cmp r6, #0x80
    bne fail
    adr r0, ldrd_ok
    bl puts
    mrc p15, 0, r5, c0, c1, 4    @ ID_MMFR0, trapped by HCR_EL2.TID3
    and r5, r5, #0xf             @ VMSA support: 5 = LPAE on any ARMv8 core
    cmp r5, #5
    bne fail
    adr r0, mrc_ok
    bl puts
    ldr r0, =0x84000000          @ PSCI_VERSION
    hvc #0
    cmp r0, #0x10000
    blo fail
    adr r0, psci_ok
    bl puts
    ldr r0, =0x84000008          @ PSCI_SYSTEM_OFF
    hvc #0
fail:
    adr r0, failed
    bl puts
    ldr r0, =0x84000008
    hvc #0
1:  b 1b
puts:                            @ r0 = NUL-terminated string, r1 = UART
    ldrb r2, [r0], #1
    cmp r2, #0
    bxeq lr
    str r2, [r1]
    b puts
entered: .asciz "A32 entered with the device tree in r2\n"
ldrd_ok: .asciz "UART flags read by LDRD: ok\n"
mrc_ok:  .asciz "ID_MMFR0 read: ok\n"
psci_ok: .asciz "PSCI 1.x\n"
failed:  .asciz "AArch32 guest: a check failed\n"
.align 4
.ltorg
"#;

/// Moat itself refuses a VM whose IPA size exceeds the machine's limit `L`, whatever the host
/// tool checked: the bundle asks for `S` = 48 on a `cortex-a72` (`L` = 44), bypassing the host's
/// check as a tool that does not know the CPU would.
fn moat_refuses_s_above_l(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let mut vm = moat_config::VmConfig::default_virt();
    vm.ipa_bits = 48;
    let scratch = Scratch::new("test")?;
    let bundle = scratch.join("s-above-l.bundle");
    vm::write_bundle(&vm, &artifacts.guest("moat-guest-hello"), &bundle)?;
    let machine = Machine {
        cpu: "cortex-a72".into(),
        mem_mib: 512,
        kernel: artifacts.moat.clone(),
        initrd: Some(bundle),
        append: None,
        el2: true,
        gic_version: 3,
        smp: 1,
    };
    let outcome = machine.run(ConsoleMode::Captured, Some(BOOT_LIMIT))?;
    let verdict = expect_exit(&outcome, MoatExit::ConfigError)
        .and_then(|()| expect_line(&outcome, "refused"))
        .and_then(|()| expect_line(&outcome, "48"))
        .and_then(|()| expect_line(&outcome, "44"));
    tally.record(
        "moat_refuses_an_ipa_size_above_its_limit_at_boot",
        "cortex-a72",
        Some(&outcome),
        verdict,
    );
    Ok(())
}

/// A Moat bug that overflows an EL2 stack is caught by the stack's guard page and reported
/// loudly (`stacks.rs`): Moat injects the overflow into itself at boot
/// (`moat.self-test=el2-stack-overflow` in its own command line, `-append`), and the report
/// names the CPU and the guard page before the machine powers off with `MOAT-EXIT: panic`.
/// Without the guard page the recursion would run down through `.bss` and the image.
fn el2_stack_overflow(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let vm = moat_config::VmConfig::default_virt();
    let scratch = Scratch::new("test")?;
    let bundle = scratch.join("stack-overflow.bundle");
    let mut machine = vm::moat_machine(
        &vm,
        &artifacts.moat,
        &artifacts.guest("moat-guest-hello"),
        "cortex-a72",
        &bundle,
    )?;
    machine.append = Some("moat.self-test=el2-stack-overflow".into());
    let outcome = machine.run(ConsoleMode::Captured, Some(BOOT_LIMIT))?;
    let verdict = expect_exit(&outcome, MoatExit::Panic)
        .and_then(|()| expect_line(&outcome, "self-test: El2StackOverflow"))
        .and_then(|()| expect_line(&outcome, "moat: BUG: EL2 stack overflow on CPU 0"))
        .and_then(|()| expect_line(&outcome, "is in its guard page"));
    tally.record(
        "an_el2_stack_overflow_hits_its_guard_page_and_is_reported",
        "cortex-a72",
        Some(&outcome),
        verdict,
    );
    Ok(())
}

/// The guest-visible PARange `P` for IPA sizes and modes of SPEC §1: `max` shows `L`, `tight`
/// the smallest encoding that covers `S`.
fn parange_cases(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let guest = artifacts.guest("moat-guest-selftest");
    let cases = [
        ("cortex-a72", 36, ParangeMode::Max, 44),
        ("cortex-a72", 32, ParangeMode::Tight, 32),
        ("max,pauth-impdef=on", 37, ParangeMode::Tight, 40),
        ("max,pauth-impdef=on", 43, ParangeMode::Tight, 44),
        ("max,pauth-impdef=on", 48, ParangeMode::Tight, 48),
        ("max,pauth-impdef=on", 41, ParangeMode::Tight, 42),
    ];
    for (cpu, bits, mode, p) in cases {
        let request = VmRequest {
            ipa_bits: Some(bits),
            parange: Some(mode),
            bootargs: Some(format!(
                "moat.test=parange_is_the_vm_parange moat.parange={p}"
            )),
            ..VmRequest::default()
        };
        let outcome = boot(artifacts, &guest, cpu, &request, "parange")?;
        let name = format!("guest_reads_parange_{p}_with_s_{bits}_{}", mode.name());
        tally.record(
            &name,
            cpu,
            Some(&outcome),
            guest_verdict(&outcome, "parange_is_the_vm_parange"),
        );
    }
    Ok(())
}

/// A guest test passed when the guest said so, never said it failed, and the run ended with
/// the guest powering off.
fn guest_verdict(outcome: &Outcome, name: &str) -> Result<(), String> {
    if outcome.timed_out {
        return Err(format!("no end within {} s", BOOT_LIMIT.as_secs()));
    }
    if let Some(fail) = outcome.lines().find(|l| l.starts_with("MOAT-TEST fail")) {
        return Err(fail.to_owned());
    }
    if !outcome
        .lines()
        .any(|l| l.trim() == format!("MOAT-TEST pass {name}"))
    {
        return Err("no pass line".into());
    }
    expect_exit(outcome, MoatExit::PowerOff)
}

fn expect_exit(outcome: &Outcome, want: MoatExit) -> Result<(), String> {
    match outcome.exit {
        Some(exit) if exit == want => Ok(()),
        other => Err(format!("expected MOAT-EXIT {want:?}, got {other:?}")),
    }
}

fn expect_line(outcome: &Outcome, needle: &str) -> Result<(), String> {
    if outcome.console.contains(needle) {
        Ok(())
    } else {
        Err(format!("console lacks {needle:?}"))
    }
}

/// Cases about Moat itself, with the greeting guest and a guest that provokes a trap Moat
/// does not handle yet.
fn moat_cases(artifacts: &Artifacts, cpu: &str, tally: &mut Tally) -> XResult<()> {
    let hello = artifacts.guest("moat-guest-hello");
    let outcome = boot(artifacts, &hello, cpu, &VmRequest::default(), "hello")?;
    let limit = crate::qemu::cpu_pa_bits(cpu).map_or(0, |b| b.min(48));
    let verdict = expect_line(&outcome, "Hello from a Moat guest!")
        .and_then(|()| expect_line(&outcome, &format!("IPA limit L = {limit} bits")))
        .and_then(|()| expect_exit(&outcome, MoatExit::PowerOff));
    tally.record(
        "hello_guest_greets_and_powers_off_with_boot_report",
        cpu,
        Some(&outcome),
        verdict,
    );

    // `SCXTNUM_EL1`/`SCXTNUM_EL0` exist where `ID_AA64PFR0_EL1.CSV2` = 2 (`max`): they are the
    // guest's own registers, reset to 0 at its start, and keep what it writes. (On `cortex-a72`,
    // without FEAT_CSV2_2, they are UNDEFINED at EL1 and never reach Moat.)
    if !cpu.starts_with("max") {
        return Ok(());
    }
    let probe = assemble_guest("scxtnum", SCXTNUM_GUEST)?;
    let vm = moat_config::VmConfig::default_virt();
    let outcome = boot_config(artifacts, &probe, cpu, &vm, "scxtnum")?;
    let verdict = expect_line(&outcome, "scxtnum: reset 0, kept\n")
        .and_then(|()| expect_exit(&outcome, MoatExit::PowerOff));
    tally.record(
        "scxtnum_registers_are_guest_state_where_csv2_2_shows_them",
        cpu,
        Some(&outcome),
        verdict,
    );
    Ok(())
}

/// A guest that reads `SCXTNUM_EL1` and `SCXTNUM_EL0` (`S3_0_C13_C0_7`, `S3_3_C13_C0_7`),
/// expects 0, writes two values and reads them back, prints the result and powers off.
const SCXTNUM_GUEST: &str = "
    movz x1, #0x0900, lsl #16
    mrs x2, s3_0_c13_c0_7
    mrs x3, s3_3_c13_c0_7
    orr x2, x2, x3
    cbnz x2, bad
    movz x4, #0x1234
    movz x5, #0x5678
    msr s3_0_c13_c0_7, x4
    msr s3_3_c13_c0_7, x5
    mrs x2, s3_0_c13_c0_7
    mrs x3, s3_3_c13_c0_7
    cmp x2, x4
    b.ne bad
    cmp x3, x5
    b.ne bad
    adr x6, good
    b print
bad:
    adr x6, wrong
print:
    ldrb w2, [x6], #1
    cbz w2, off
    str w2, [x1]
    b print
off:
    movz x0, #0x8400, lsl #16
    movk x0, #0x0008
    hvc #0
1:  b 1b
good:
    .asciz \"scxtnum: reset 0, kept\\n\"
wrong:
    .asciz \"scxtnum: wrong\\n\"
";

/// A guest that writes `OK` to the UART and powers off: a few instructions built outside the
/// project with GNU as, as a user would.
const EXTERNAL_GUEST: &str = "
    movz x1, #0x0900, lsl #16
    mov w2, #'O'
    str w2, [x1]
    mov w2, #'K'
    str w2, [x1]
    mov w2, #'\\n'
    str w2, [x1]
    movz x0, #0x8400, lsl #16
    movk x0, #0x0008
    hvc #0
1:  b 1b
";

/// A test guest assembled into a directory of its own, which lives as long as this does.
struct Assembled {
    _dir: Scratch,
    /// The raw binary.
    bin: PathBuf,
}

impl std::ops::Deref for Assembled {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.bin
    }
}

/// Assembles `source` with GNU as into a raw binary (`./x run --guest` puts it at RAM base
/// + 0x80000).
fn assemble_guest(name: &str, source: &str) -> XResult<Assembled> {
    assemble_with("aarch64-linux-gnu-", name, source)
}

/// Assembles `source` with the GNU binutils of `prefix` (`aarch64-linux-gnu-` or
/// `arm-none-eabi-`) into a raw binary.
fn assemble_with(prefix: &str, name: &str, source: &str) -> XResult<Assembled> {
    let dir = Scratch::new("asm")?;
    let src = dir.join(&format!("{name}.S"));
    let obj = dir.join(&format!("{name}.o"));
    let bin = dir.join(&format!("{name}.bin"));
    std::fs::write(&src, source).map_err(|e| failed(format!("{}: {e}", src.display())))?;
    run_step(
        Command::new(format!("{prefix}as"))
            .arg(&src)
            .arg("-o")
            .arg(&obj),
        "assembling a test guest",
    )?;
    run_step(
        Command::new(format!("{prefix}objcopy"))
            .args(["-O", "binary"])
            .arg(&obj)
            .arg(&bin),
        "flattening a test guest",
    )?;
    Ok(Assembled { _dir: dir, bin })
}

/// A system description of one VM, on the machine's CPU 0, booting `external.bin` beside it.
const SYSTEM_OF_ONE_VM: &str = r#"
[[vm]]
name = "external"
cpus = [0]
guest = "./external.bin"
[[vm.ram]]
base = 0x4000_0000
size = "16M"
[[vm.device]]
kind = "pl011"
base = 0x0900_0000
"#;

/// The external guest's run: exit status 0 and its `OK` on the console.
fn printed_ok(out: &std::process::Output) -> Result<(), String> {
    expect_status(out, 0).and_then(|()| {
        if String::from_utf8_lossy(&out.stdout).contains("OK") {
            Ok(())
        } else {
            Err("no OK on the console".into())
        }
    })
}

/// The command line as a user meets it: `./x run` on an external image, and the refusals.
fn cli_cases(_artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let external = assemble_guest("external", EXTERNAL_GUEST)?;
    let ok = cli(&["run", "--guest", path_str(&external), "--timeout", "30"])?;
    let verdict = printed_ok(&ok);
    tally.record(
        "run_boots_an_image_assembled_outside_the_project",
        "max",
        None,
        verdict,
    );

    // The same image named by a system description beside it (`guest = "./external.bin"`):
    // the `[[vm]]` path of `./x run --config`, its image found relative to the file.
    let dir = Scratch::new("system")?;
    let copied = dir.join("external.bin");
    std::fs::copy(&external.bin, &copied)
        .map_err(|e| failed(format!("copying the external guest: {e}")))?;
    let description = dir.join("one-vm.toml");
    std::fs::write(&description, SYSTEM_OF_ONE_VM)
        .map_err(|e| failed(format!("{}: {e}", description.display())))?;
    let ok = cli(&["run", "--config", path_str(&description), "--timeout", "30"])?;
    let verdict = printed_ok(&ok);
    tally.record(
        "run_boots_the_guest_a_system_description_names_beside_it",
        "max",
        None,
        verdict,
    );

    let refusals: [(&str, &[&str], &str); 4] = [
        (
            "run_with_a_missing_guest_file_is_a_usage_error",
            &["run", "--guest", "/nonexistent/guest.bin"],
            "/nonexistent/guest.bin",
        ),
        (
            "run_with_more_than_8_vcpus_is_refused",
            &["run", "--smp", "9"],
            "cpus = 9",
        ),
        (
            "run_with_ipa_bits_above_the_cpu_limit_is_refused",
            &["run", "--cpu", "cortex-a72", "--ipa-bits", "48"],
            "48",
        ),
        (
            "run_with_an_unknown_option_is_a_usage_error",
            &["run", "--frobnicate"],
            "--frobnicate",
        ),
    ];
    for (name, args, needle) in refusals {
        let out = cli(args)?;
        let verdict = expect_status(&out, 2).and_then(|()| one_line_naming(&out, needle));
        tally.record(name, "-", None, verdict);
    }
    Ok(())
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("the repository path is UTF-8")
}

fn cli(args: &[&str]) -> XResult<std::process::Output> {
    let exe =
        std::env::current_exe().map_err(|e| failed(format!("finding ./x's own binary: {e}")))?;
    Command::new(exe)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| failed(format!("running ./x {args:?}: {e}")))
}

fn expect_status(out: &std::process::Output, want: i32) -> Result<(), String> {
    match out.status.code() {
        Some(code) if code == want => Ok(()),
        other => Err(format!(
            "exit status {other:?}, expected {want}; stderr: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// The error is one line (clap's usage hints aside) that names `needle`.
fn one_line_naming(out: &std::process::Output, needle: &str) -> Result<(), String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or("");
    if first.contains(needle) {
        Ok(())
    } else {
        Err(format!(
            "first stderr line {first:?} does not name {needle:?}"
        ))
    }
}

/// A short run of every fuzz target (built once), each a case: it passes when libFuzzer found
/// nothing in that time. `./x fuzz` runs them for longer.
fn fuzz_cases(tally: &mut Tally) -> XResult<()> {
    println!(
        "fuzz targets: {} s each (corpora in target/fuzz/corpus)",
        crate::fuzz::SMOKE_SECONDS
    );
    let binaries = crate::fuzz::build(false)?;
    for target in crate::fuzz::TARGETS {
        let run = crate::fuzz::run_target(&binaries, target, crate::fuzz::SMOKE_SECONDS)?;
        println!("{}", run.line());
        if run.finding.is_some() {
            tally.failed += 1;
        } else {
            tally.passed += 1;
        }
    }
    Ok(())
}

/// Every single-VM description in `configs/` boots the greeting guest (or is refused with
/// exit status 2 where it asks for what Moat does not offer yet), and every one in
/// `configs/invalid/` (both forms) is refused before anything runs, with the message its first
/// line names.
fn config_cases(tally: &mut Tally) -> XResult<()> {
    let dir = build::repo_root().join("configs");
    for path in toml_files(&dir)? {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| failed(format!("{}: {e}", path.display())))?;
        // A system description (`[[vm]]` tables) names its own guests, so `--hello` does not
        // apply: its VMs boot in the system cases; the host tests read and bundle every file.
        let system = moat_config::SystemFile::from_toml_str(&text, &dir)
            .map_err(|e| failed(format!("{}: {e}", path.display())))?;
        if system.images.is_some() {
            continue;
        }
        let name = format!("config_{}_boots", stem(&path));
        let out = cli(&[
            "run",
            "--hello",
            "--config",
            path_str(&path),
            "--timeout",
            "30",
        ])?;
        let _ = &text;
        let verdict = expect_status(&out, 0).and_then(|()| {
            let console = String::from_utf8_lossy(&out.stdout);
            if console.contains("Hello from a Moat guest!") {
                Ok(())
            } else {
                Err("no greeting".into())
            }
        });
        tally.record(&name, "max", None, verdict);
    }
    for path in toml_files(&dir.join("invalid"))? {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| failed(format!("{}: {e}", path.display())))?;
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or("");
        let out = cli(&["run", "--config", path_str(&path)])?;
        let verdict = if expect.is_empty() {
            Err(format!(
                "{} lacks its '# expect: ' first line",
                path.display()
            ))
        } else {
            expect_status(&out, 2).and_then(|()| one_line_naming(&out, expect))
        };
        tally.record(
            &format!("config_invalid_{}_is_refused", stem(&path)),
            "-",
            None,
            verdict,
        );
    }
    Ok(())
}

fn toml_files(dir: &Path) -> XResult<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().replace('-', "_"))
}
