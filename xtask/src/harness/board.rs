//! Moat on the ZCU102 board model (`board.rs`, issue 13 item 2): its device tree, its Cadence
//! UART as Moat's console, RAM from address 0, its GIC-400 driven by Moat (the VM gets a
//! GICv2), and a guest greeting there.
//!
//! And what a board's firmware may reserve: on `virt`, QEMU's own tree with a memory
//! reservation added (as firmware in DDR, TF-A or OP-TEE, would have it) must keep the VM's
//! RAM out of that range.

use super::{
    BOOT_LIMIT, GICV2_PREFIX, LINUX_LIMIT, Tally, expect_exit, expect_line, guest_verdict,
    ipis_counted, listed, moat_machine, selftest_names, timer_ticked,
};
use crate::board::{self, Zcu102};
use crate::build::{Artifacts, run_step};
use crate::error::{XResult, failed};
use crate::qemu::{ConsoleMode, Machine, MoatExit, Outcome, ScriptStep};
use crate::scratch::Scratch;
use crate::vm::{self, VmRequest};
use std::process::Command;

/// The board's cores.
const CPU: &str = "cortex-a53";

/// Boots `guest` in a VM of `request` (given a GICv2, as the board's GIC-400 is one) under
/// Moat on the ZCU102 model.
fn boot_on_zcu102(
    artifacts: &Artifacts,
    guest: &std::path::Path,
    request: VmRequest,
) -> XResult<Outcome> {
    let request = VmRequest {
        gic_v2: true,
        ..request
    };
    let vm = vm::describe(&request, CPU)?;
    let dir = Scratch::new("test")?;
    let bundle = dir.join("guest.bundle");
    vm::write_bundle(&vm, guest, &bundle)?;
    let dtb = board::zcu102_dtb();
    let machine = Zcu102 {
        moat: &artifacts.moat,
        bundle: &bundle,
        dtb: &dtb,
    };
    machine.run(ConsoleMode::Captured, Some(BOOT_LIMIT))
}

/// `zcu102_moat_reports_on_the_cadence_uart_and_the_guest_powers_off`.
pub(super) fn zcu102_cases(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let hello = artifacts.guest("moat-guest-hello");
    let outcome = boot_on_zcu102(artifacts, &hello, VmRequest::default())?;
    let verdict = expect_line(&outcome, "starting at EL2")
        .and_then(|()| expect_line(&outcome, "image: [0x200000, "))
        .and_then(|()| expect_line(&outcome, "CPU: Arm Cortex-A53"))
        .and_then(|()| expect_line(&outcome, "memory: [0x0, 0x80000000)"))
        .and_then(|()| expect_line(&outcome, "console: Cadence UART at 0xff000000"))
        .and_then(|()| expect_line(&outcome, "the machine's GICV at 0xf906f000"))
        .and_then(|()| expect_line(&outcome, "Hello from a Moat guest!"))
        .and_then(|()| expect_exit(&outcome, MoatExit::PowerOff));
    tally.record(
        "zcu102_moat_reports_on_the_cadence_uart_and_the_guest_powers_off",
        CPU,
        Some(&outcome),
        verdict,
    );
    Ok(())
}

/// Every test of the selftest guest on the ZCU102 model, one boot each (`zcu102::<test>`):
/// the guest in a GICv2 VM under Moat on the board's Cortex-A53s (PARange 40, so the VM's
/// `P` is 40), its interrupts through the GIC-400's virtual CPU interface. The `gicv2_` tests
/// get 2 vCPUs, the others 1.
pub(super) fn zcu102_selftest_cases(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let guest = artifacts.guest("moat-guest-selftest");
    let with_args = |args: String, cpus: u32| VmRequest {
        bootargs: Some(args),
        cpus: Some(cpus),
        ..VmRequest::default()
    };
    let listing = boot_on_zcu102(artifacts, &guest, with_args("moat.test=list".into(), 1))?;
    let names = selftest_names(&listing);
    tally.record(
        "zcu102::selftest_lists_its_tests",
        CPU,
        Some(&listing),
        listed(&names),
    );
    let parange = crate::qemu::cpu_pa_bits(CPU).unwrap_or(0);
    for name in names {
        let cpus = if name.starts_with(GICV2_PREFIX) { 2 } else { 1 };
        let args = format!("moat.test={name} moat.parange={parange}");
        let outcome = boot_on_zcu102(artifacts, &guest, with_args(args, cpus))?;
        let verdict = guest_verdict(&outcome, &name)
            .and_then(|()| expect_line(&outcome, "console: Cadence UART at 0xff000000"));
        tally.record(&format!("zcu102::{name}"), CPU, Some(&outcome), verdict);
    }
    Ok(())
}

/// The console script of [`zcu102_linux_case`]: the shell counts its CPUs and shows the
/// interrupt counts, then powers off.
const BOARD_LINUX_SCRIPT: &[ScriptStep] = &[
    ScriptStep {
        wait_for: "Moat guest: Linux up",
        send: "echo cpus=$(nproc); cat /proc/interrupts; echo listed-$((6*7))\n",
    },
    ScriptStep {
        wait_for: "listed-42",
        send: "poweroff -f\n",
    },
];

/// Debian's Linux on the ZCU102 model under Moat, on 4 vCPUs (the board's four Cortex-A53s):
/// the VM's GICv2 is emulated by Moat with its CPU interface the GIC-400's GICV, the timer
/// ticks through it (`GIC-0`), IPIs reach the vCPUs through `GICD_SGIR`, the shell answers on
/// the VM's PL011 while Moat's own console is the board's Cadence UART, and `poweroff -f` ends
/// the machine.
pub(super) fn zcu102_linux_case(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let mut vm = vm::linux_vm(4, 512);
    vm.use_gic_v2();
    let linux = crate::linux::default_linux()?;
    let dir = Scratch::new("test")?;
    let bundle = dir.join("linux.bundle");
    vm::write_bundle_with_initrd(&vm, &linux.kernel, Some(&linux.initramfs), &bundle)?;
    let dtb = board::zcu102_dtb();
    let machine = Zcu102 {
        moat: &artifacts.moat,
        bundle: &bundle,
        dtb: &dtb,
    };
    let outcome = machine.run(ConsoleMode::Scripted(BOARD_LINUX_SCRIPT), Some(LINUX_LIMIT))?;
    let verdict = expect_line(&outcome, "console: Cadence UART at 0xff000000")
        .and_then(|()| expect_line(&outcome, "cpus=4"))
        .and_then(|()| timer_ticked(&outcome, "GIC-0"))
        .and_then(|()| ipis_counted(&outcome))
        .and_then(|()| expect_exit(&outcome, MoatExit::PowerOff));
    tally.record(
        "zcu102_linux_boots_on_4_vcpus_to_a_shell_with_a_gicv2_timer_ticks_and_ipis",
        CPU,
        Some(&outcome),
        verdict,
    );
    Ok(())
}

/// The CPU of the reservation case.
const VIRT_CPU: &str = "cortex-a72";
/// The reservation: the top 64 MiB of the 512 MiB `virt` machine, where Moat's top-down
/// allocator would otherwise put the VM's RAM.
const RESERVED: (u64, u64) = (0x5c00_0000, 0x400_0000);

/// `firmware_reservation_keeps_the_vm_ram_out_of_the_reserved_range`.
pub(super) fn reservation_case(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let hello = artifacts.guest("moat-guest-hello");
    let request = VmRequest::default();
    let (dir, machine) = moat_machine(artifacts, &hello, VIRT_CPU, &request, "reserved")?;
    let ram_end = 0x4000_0000 + (machine.mem_mib << 20);
    if RESERVED.0 + RESERVED.1 != ram_end {
        return Err(failed(format!(
            "the reservation case expects RAM to end at {:#x}, not {ram_end:#x}",
            RESERVED.0 + RESERVED.1
        )));
    }
    let dtb = dir.join("reserved.dtb");
    virt_tree_with_reservation(&machine, &dir, &dtb)?;
    let extra = ["-dtb".to_string(), dtb.display().to_string()];
    let outcome = machine.run_with(&extra, ConsoleMode::Captured, Some(BOOT_LIMIT))?;
    let verdict = vm_ram_outside_reservation(&outcome)
        .and_then(|()| expect_line(&outcome, "Hello from a Moat guest!"))
        .and_then(|()| expect_exit(&outcome, MoatExit::PowerOff));
    tally.record(
        "firmware_reservation_keeps_the_vm_ram_out_of_the_reserved_range",
        VIRT_CPU,
        Some(&outcome),
        verdict,
    );
    Ok(())
}

/// QEMU's `virt` tree for `machine` (`dumpdtb`), with a `/memreserve/` of [`RESERVED`] added
/// by `dtc`.
fn virt_tree_with_reservation(
    machine: &Machine,
    dir: &Scratch,
    out: &std::path::Path,
) -> XResult<()> {
    let dumped = dir.join("virt.dtb");
    run_step(
        Command::new("qemu-system-aarch64")
            .arg("-M")
            .arg(format!(
                "virt,virtualization=on,gic-version=3,highmem=off,dumpdtb={}",
                dumped.display()
            ))
            .args(["-cpu", &machine.cpu, "-display", "none"])
            .arg("-smp")
            .arg(machine.smp.to_string())
            .arg("-m")
            .arg(format!("{}M", machine.mem_mib))
            .stderr(std::process::Stdio::null()),
        "dumping QEMU virt's device tree",
    )?;
    let dts = Command::new("dtc")
        .args(["-q", "-I", "dtb", "-O", "dts"])
        .arg(&dumped)
        .output()
        .map_err(|e| failed(format!("cannot start dtc: {e}")))?;
    let source = String::from_utf8_lossy(&dts.stdout);
    let Some(body) = source.strip_prefix("/dts-v1/;") else {
        return Err(failed("dtc's source does not start with /dts-v1/;"));
    };
    let (base, size) = RESERVED;
    let dts_path = dir.join("reserved.dts");
    std::fs::write(
        &dts_path,
        format!("/dts-v1/;\n/memreserve/ {base:#x} {size:#x};{body}"),
    )
    .map_err(|e| failed(format!("writing {}: {e}", dts_path.display())))?;
    run_step(
        Command::new("dtc")
            .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
            .arg(out)
            .arg(&dts_path),
        "compiling the device tree with the reservation",
    )
}

/// Every `RAM IPA [...) at PA <pa>` line of Moat's report places the region outside
/// [`RESERVED`], and there is at least one.
fn vm_ram_outside_reservation(outcome: &Outcome) -> Result<(), String> {
    let (base, size) = RESERVED;
    let mut regions = 0;
    for line in outcome.lines() {
        let Some((ipa, pa)) = line
            .split_once("RAM IPA [")
            .and_then(|(_, r)| r.split_once(") at PA "))
        else {
            continue;
        };
        let parse = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok();
        let (start, end) = ipa
            .split_once(", ")
            .ok_or(format!("unreadable line {line:?}"))?;
        let (Some(start), Some(end), Some(pa)) = (parse(start), parse(end), parse(pa)) else {
            return Err(format!("unreadable line {line:?}"));
        };
        if pa < base + size && base < pa + (end - start) {
            return Err(format!(
                "VM RAM at PA {pa:#x} overlaps the reservation {base:#x}+{size:#x}"
            ));
        }
        regions += 1;
    }
    if regions == 0 {
        return Err("Moat reported no VM RAM".into());
    }
    Ok(())
}
