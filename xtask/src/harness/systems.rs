//! Several VMs side by side (issue 11), run as a user runs them: `./x run --config FILE` with a
//! system description of `[[vm]]` tables, its console read whole; the bare-guest cases name CPU
//! 3, so they run on 4 QEMU CPUs, some of them idle. One QEMU per behaviour: VMs
//! running side by side and the machine ending with the last; a VM restarting alone beside a
//! neighbour whose clock and console go on; the isolation scan; and the shipped
//! `configs/two-linux.toml`, two Linux shells driven through the console switch that ping each
//! other and move a file over their virtio-net link.

use super::{Tally, cli, expect_status};
use crate::error::{XResult, failed};
use crate::initramfs::{NET_FAILED, NET_UP};
use crate::qemu::{ConsoleMode, MoatExit, ScriptStep};
use crate::scratch::Scratch;
use std::time::Duration;

/// The RAM every VM of these cases has, at `virt`'s RAM base; its devices are
/// [`crate::system::VIRT_DEVICES`] (each VM its own IPA space, so all of them use the same
/// addresses).
pub(super) const VIRT_RAM: &str = r#"
[[vm.ram]]
base = 0x4000_0000
size = "16M"
"#;

/// Every case of this file, in order.
///
/// # Errors
///
/// When a case cannot be set up (a QEMU that does not start, a bundle that cannot be built).
pub(super) fn all(tally: &mut Tally) -> XResult<()> {
    side_by_side(tally)?;
    restart_alone(tally)?;
    stopped_alone(tally)?;
    isolation_scan(tally)?;
    virtio_net_link(tally)?;
    virtio_net_needs_reset(tally)?;
    two_linux(tally)?;
    linux_and_bare(tally)
}

/// One `[[vm]]` table running the `partner` guest with `bootargs` on physical CPU `cpu`.
pub(super) fn partner(name: &str, cpu: u32, bootargs: &str, extra: &str) -> String {
    format!(
        "[[vm]]\nname = \"{name}\"\ncpus = [{cpu}]\nguest = \"partner\"\nbootargs = \"{bootargs}\"\n{extra}\n{VIRT_RAM}{}\n",
        crate::system::VIRT_DEVICES
    )
}

/// Runs `./x run --config` on `description`; returns its console (stdout) after checking the
/// exit status is 0.
fn run_system(name: &str, description: &str) -> XResult<Result<String, String>> {
    run_system_with(name, description, &[], 0)
}

/// Runs `./x run --config` on `description` with the options `extra`; returns its console
/// (stdout) after checking the exit status is `status`.
pub(super) fn run_system_with(
    name: &str,
    description: &str,
    extra: &[&str],
    status: i32,
) -> XResult<Result<String, String>> {
    let dir = Scratch::new("test")?;
    let path = dir.join(&format!("{name}.toml"));
    std::fs::write(&path, description).map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let path = path.to_str().expect("the repository path is UTF-8");
    let mut args = vec!["run", "--config", path, "--timeout", "120"];
    args.extend_from_slice(extra);
    let out = cli(&args)?;
    let console = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(expect_status(&out, status).map(|()| console))
}

/// Every needle appears in `console`, in order.
pub(super) fn in_order(console: &str, needles: &[&str]) -> Result<(), String> {
    let mut from = 0;
    for needle in needles {
        match console[from..].find(needle) {
            Some(at) => from += at + needle.len(),
            None => {
                return Err(format!(
                    "{needle:?} missing (or out of order) in the console"
                ));
            }
        }
    }
    Ok(())
}

fn record(
    tally: &mut Tally,
    name: &str,
    console: &Result<String, String>,
    verdict: Result<(), String>,
) {
    let verdict = match console {
        Ok(_) => verdict,
        Err(e) => Err(e.clone()),
    };
    if verdict.is_err()
        && let Ok(text) = console
    {
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        eprintln!("--- console tail of {name}:");
        tail.iter().rev().for_each(|l| eprintln!("{l}"));
    }
    tally.record(name, "max", None, verdict);
}

/// Two VMs on CPUs 3 and 1 of 4 (CPUs 0 and 2 idle: the boot CPU serves only the console)
/// with `on-poweroff = "halt-vm"`, each with its own 16-bit VMID: each runs its guest and its
/// stage 2
/// maps only its own RAM; the first to power off halts alone while the other ticks on; the
/// machine powers off after the last, with one `MOAT-VM` line each. A VM's vCPUs have their own
/// virtual MPIDRs (vCPU n: Aff0 = n, whatever CPU runs it), so the one-vCPU VM on physical CPU
/// 3 asking PSCI about MPIDR 1 (the other VM's physical CPU) gets `INVALID_PARAMETERS`: no VM
/// has a name for another's CPU.
fn side_by_side(tally: &mut Tally) -> XResult<()> {
    let halt = "on-poweroff = \"halt-vm\"";
    let description = partner("quick", 3, "partner.other-cpu=1", halt)
        + &partner("ticker", 1, "partner.ticks=20", halt);
    let console = run_system("side-by-side", &description)?;
    let verdict = console.as_ref().map_err(Clone::clone).and_then(|c| {
        // `max` has FEAT_VMID16: each VM's VMID is 16 bits wide (VTCR_EL2.VS = 1).
        in_order(c, &["VMIDs: 16 bits", "VTCR_EL2 0x800d3558"])?;
        in_order(
            c,
            &["VM 'quick': stage 2 maps 16 MiB, all of it its own RAM"],
        )?;
        in_order(
            c,
            &["VM 'ticker': stage 2 maps 16 MiB, all of it its own RAM"],
        )?;
        in_order(
            c,
            &[
                "MOAT-VM: quick poweroff",
                "MOAT-VM: ticker poweroff",
                "MOAT-EXIT: poweroff",
            ],
        )?;
        // The ticker went on after its neighbour halted.
        let halted = c.find("MOAT-VM: quick poweroff").unwrap_or(0);
        if crate::system::vm_stream(&c[halted..], "ticker").contains("partner: tick") {
            Ok(())
        } else {
            Err("the ticker printed nothing after its neighbour halted".into())
        }
    });
    let verdict = verdict.and(console.as_ref().map(|_| ()).map_err(Clone::clone));
    record(
        tally,
        "two_vms_run_side_by_side_and_one_halting_leaves_the_other_running",
        &console,
        verdict,
    );
    Ok(())
}

/// A VM Moat stops (a trap it has no outcome for) goes alone, whatever its description says:
/// no guest can cause that (issue 10), so Moat's self-test stands in for the trap
/// (`--moat-append moat.self-test=stop-vm:0`: VM 0 stops at its next exit). The stopped VM's
/// diagnostic and `MOAT-VM: stopped vm-stopped` come, its neighbour ticks on and powers off,
/// and the machine ends `vm-stopped`, which `./x run` exits 1 for.
pub(super) fn stopped_alone(tally: &mut Tally) -> XResult<()> {
    let halt = "on-poweroff = \"halt-vm\"";
    let description = partner(
        "stopped",
        3,
        "partner.ticks=20",
        "on-poweroff = \"power-off-machine\"",
    ) + &partner("ticker", 1, "partner.ticks=20", halt);
    let console = run_system_with(
        "stopped-alone",
        &description,
        &["--moat-append", "moat.self-test=stop-vm:0"],
        1,
    )?;
    let verdict = console.as_ref().map_err(Clone::clone).and_then(|c| {
        in_order(
            c,
            &[
                "self-test: VM 'stopped' stops at its next exit",
                "VM 'stopped' stopped: self-test (moat.self-test=stop-vm:0)",
                "MOAT-VM: stopped vm-stopped",
                "MOAT-VM: ticker poweroff",
                "MOAT-EXIT: vm-stopped",
            ],
        )?;
        let stopped = c.find("MOAT-VM: stopped vm-stopped").unwrap_or(0);
        if crate::system::vm_stream(&c[stopped..], "ticker").contains("partner: tick") {
            Ok(())
        } else {
            Err("the ticker printed nothing after its neighbour was stopped".into())
        }
    });
    record(
        tally,
        "a_vm_moat_stops_goes_alone_and_the_machine_ends_vm_stopped_after_the_last",
        &console,
        verdict,
    );
    Ok(())
}

/// A VM with `on-reset = "restart"` resets again and again beside a ticking neighbour: each
/// restart finds its RAM scrubbed (the marker it wrote is gone), the neighbour's ticks come
/// all, in order, and it powers the machine off (`on-poweroff = "power-off-machine"`), the
/// restarting VM reported as cut off by it.
fn restart_alone(tally: &mut Tally) -> XResult<()> {
    let description = partner(
        "ticker",
        2,
        "partner.ticks=100",
        "on-poweroff = \"power-off-machine\"",
    ) + &partner("resetter", 3, "partner.reset", "on-reset = \"restart\"");
    let console = run_system("restart", &description)?;
    let verdict = console.as_ref().map_err(Clone::clone).and_then(|c| {
        // The ticker has the focus, so its lines go out as written, and Moat's log of the
        // resetter's restart may cut one in two: its own stream joins them again.
        let ticks: Vec<String> = (1..=100).map(|i| format!("partner: tick {i}\n")).collect();
        let ticker = crate::system::vm_stream(c, "ticker");
        in_order(
            &ticker,
            &ticks.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;
        let restarts = c.matches("MOAT-VM: resetter restart").count();
        let clean = crate::system::vm_stream(c, "resetter")
            .matches("partner: boot, RAM clean")
            .count();
        if restarts == 0 || clean < 2 {
            return Err(format!(
                "{restarts} restarts and {clean} clean boots: the resetter never came back"
            ));
        }
        if c.contains("RAM dirty") {
            return Err("a restarted VM found the marker of its previous run".into());
        }
        in_order(
            c,
            &[
                "MOAT-VM: ticker poweroff",
                "MOAT-VM: resetter machine-off",
                "MOAT-EXIT: poweroff",
            ],
        )
    });
    record(
        tally,
        "a_vm_restarts_alone_with_its_ram_scrubbed_beside_a_ticking_neighbour",
        &console,
        verdict,
    );
    Ok(())
}

/// Two `partner` VMs joined by a virtio-net link at QEMU virt's first virtio-mmio slot: `name`
/// on CPU 0 runs `partner.net=<role>` and powers the machine off; `pong` on CPU 1 answers its
/// pings and halts alone.
fn linked_pair(name: &str, role: &str) -> String {
    let net = |peer: &str| {
        format!("[[vm.device]]\nkind = \"virtio-net\"\nbase = 0x0a00_0000\nlink = \"{peer}\"\n")
    };
    let first = format!("on-poweroff = \"power-off-machine\"\n{}", net("pong"));
    let pong = format!("on-poweroff = \"halt-vm\"\n{}", net(name));
    partner(name, 0, &format!("partner.net={role}"), &first)
        + &partner("pong", 1, "partner.net=pong", &pong)
}

/// A virtio-net link between two VMs, Moat the wire: each VM's device is a version 2
/// virtio-mmio network device with its own MAC address (`02:4d:4f:41:54:<VM index + 1>`);
/// `ping` broadcasts until `pong` (which may still be setting up: a frame without a posted
/// buffer is dropped) answers to ping's address. Both frames cross by copy through Moat.
fn virtio_net_link(tally: &mut Tally) -> XResult<()> {
    let description = linked_pair("ping", "ping");
    let console = run_system("virtio-net", &description)?;
    let verdict = console.as_ref().map_err(Clone::clone).and_then(|c| {
        in_order(c, &["VM 'ping': virtio-net at IPA 0xa000000"])?;
        // Each VM's own stream: Moat's log may cut the focused VM's line in two.
        in_order(
            &crate::system::vm_stream(c, "pong"),
            &[
                "partner: net up, mac 02:4d:4f:41:54:02\n",
                "partner: net ping from 02:4d:4f:41:54:01, 60 bytes\n",
            ],
        )?;
        in_order(
            &crate::system::vm_stream(c, "ping"),
            &[
                "partner: net up, mac 02:4d:4f:41:54:01\n",
                "partner: net pong from 02:4d:4f:41:54:02 after ",
            ],
        )?;
        in_order(c, &["MOAT-EXIT: poweroff"])
    });
    record(
        tally,
        "virtio_net_link_carries_a_frame_each_way_between_two_vms",
        &console,
        verdict,
    );
    Ok(())
}

/// A driver error end to end (virtio 1.2 §2.1.2): the `reset` VM's only receive buffer runs
/// from the last 64 bytes of its 16 MiB of RAM past its end; the pong's answer meets it, and
/// the device sets `DEVICE_NEEDS_RESET` with a configuration-change interrupt alone (its INTID
/// pending at the VM's GIC until acknowledged), writes neither those 64 bytes nor its used
/// ring, and once the driver has reset it, carries frames again.
fn virtio_net_needs_reset(tally: &mut Tally) -> XResult<()> {
    let description = linked_pair("resetter", "reset");
    let console = run_system("virtio-net-reset", &description)?;
    let verdict = console.as_ref().map_err(Clone::clone).and_then(|c| {
        in_order(
            &crate::system::vm_stream(c, "resetter"),
            &[
                "partner: net up, mac 02:4d:4f:41:54:01\n",
                "partner: net receive buffer [0x40ffffc0, 0x410007c0) past RAM's end 0x41000000: after ",
                " ping(s) status 0x4f, interrupt status 0x2, INTID 48 pending true, used idx 0, RAM tail untouched\n",
                "partner: net interrupt acknowledged, INTID 48 pending false\n",
                "partner: net reset by the driver, status 0xf\n",
                "partner: net pong from 02:4d:4f:41:54:02 after ",
            ],
        )?;
        in_order(c, &["MOAT-EXIT: poweroff"])
    });
    record(
        tally,
        "virtio_net_descriptor_past_ram_sets_device_needs_reset_writes_nothing_and_reset_recovers",
        &console,
        verdict,
    );
    Ok(())
}

/// The isolation scan: a VM reads all of its RAM and probes its whole IPA space (2^36) at a
/// 2 MiB stride, beside a neighbour whose RAM is full of canaries, with Moat's own canaries in
/// its data and in every free page: it finds none, and every probe outside its RAM and devices
/// aborts. The neighbour's own count proves the scan sees canaries where they are.
fn isolation_scan(tally: &mut Tally) -> XResult<()> {
    let description = partner(
        "scanner",
        0,
        "partner.scan=36",
        "ipa-bits = 36\non-poweroff = \"power-off-machine\"",
    ) + &partner("neighbour", 3, "partner.canary", "");
    let console = run_system("isolation", &description)?;
    let verdict = console.as_ref().map_err(Clone::clone).and_then(|c| {
        in_order(c, &["isolation: canaries in a page of Moat's own data at "])?;
        in_order(
            c,
            &["[neighbour] partner: 8 MiB marked with canaries; reading its RAM finds 1048576 of 1048576"],
        )?;
        in_order(
            c,
            &[
                "[scanner] partner: scan of 16 MiB of RAM and 2^36 IPAs (32758 probes: 32758 aborted, 0 readable outside RAM): canaries 0",
                "MOAT-EXIT: poweroff",
            ],
        )
    });
    record(
        tally,
        "isolation_scan_finds_no_canary_of_moat_free_memory_or_the_neighbour",
        &console,
        verdict,
    );
    Ok(())
}

/// Boots `configs/<name>` as shipped, its console driven by `script`.
fn shipped_system(name: &str, script: &'static [ScriptStep]) -> XResult<crate::qemu::Outcome> {
    let (machine, scratch) = crate::system::shipped_machine(name, "max")?;
    let outcome = machine.run(
        ConsoleMode::Scripted(script),
        Some(Duration::from_secs(300)),
    )?;
    drop(scratch);
    Ok(outcome)
}

/// The console script of [`two_linux`]: each VM's shell answers, the focus moves with Ctrl-T
/// three times; over their virtio-net link each VM pings the other and alpha sends beta 1 MiB
/// of random bytes through busybox `nc`, each side printing the file's MD5; then beta's
/// `reboot -f` restarts only beta; alpha's `poweroff -f` halts only alpha (the VM on the CPU
/// that serves the console's receive interrupt), and beta still gets its input and answers
/// before it powers the machine off. Every command whose outcome the verdict reads
/// ends by printing its exit status plus 100 (`ping=100` is success), so that a failure shows
/// as a line instead of stalling the script, and no step waits for text its own echo holds.
const TWO_LINUX_SCRIPT: &[ScriptStep] = &[
    // The script reads the console forward only, and the VMs boot in either order: wait for
    // both inits' line (each VM's console is open from then on, and its tty keeps what is
    // typed until its shell reads it; typed earlier, the kernel would drop it).
    ScriptStep {
        wait_for: "Moat guest: Linux up",
        send: "",
    },
    ScriptStep {
        wait_for: "Moat guest: Linux up",
        send: "echo alpha-says-$((6*7))\n",
    },
    ScriptStep {
        wait_for: "alpha-says-42",
        send: "ping -c 3 10.0.0.2; echo alpha-ping=$((100+$?))\n",
    },
    ScriptStep {
        wait_for: "alpha-ping=1",
        send: "\x14\x14\x14",
    },
    ScriptStep {
        wait_for: "console: input goes to VM 'beta'",
        send: "echo beta-says-$((6*7))\n",
    },
    ScriptStep {
        wait_for: "beta-says-42",
        send: "ping -c 3 10.0.0.1; echo beta-ping=$((100+$?))\n",
    },
    // The listener starts in the background; a second of the guest's own time is ample for it
    // to bind before alpha connects (both run on the guest's clock, whatever the host's load).
    ScriptStep {
        wait_for: "beta-ping=1",
        send: "nc -l -p 5000 > /tmp/r & sleep 1; echo beta-listens-$((6*7))\n",
    },
    ScriptStep {
        wait_for: "beta-listens-42",
        send: "\x14\x14\x14",
    },
    // busybox's nc shuts its sending half when its input ends, so the listener sees the end
    // of the file, exits, and the sender's nc then ends too.
    ScriptStep {
        wait_for: "console: input goes to VM 'alpha'",
        send: "dd if=/dev/urandom of=/tmp/f bs=64k count=16 2>/dev/null; md5sum /tmp/f; \
               nc 10.0.0.2 5000 < /tmp/f; echo alpha-sent=$((100+$?))\n",
    },
    ScriptStep {
        wait_for: "alpha-sent=1",
        send: "\x14\x14\x14",
    },
    ScriptStep {
        wait_for: "console: input goes to VM 'beta'",
        send: "wait; md5sum /tmp/r; echo beta-got=$((100+$?))\n",
    },
    ScriptStep {
        wait_for: "beta-got=1",
        send: "reboot -f\n",
    },
    ScriptStep {
        wait_for: "MOAT-VM: beta restart",
        send: "",
    },
    ScriptStep {
        wait_for: "[beta] Moat guest: Linux up",
        send: "echo beta-again-$((6*7))\n",
    },
    // alpha, on the CPU the console's receive interrupt goes to, powers off first: beta must
    // still get what is typed (that CPU serves the interrupt while it waits).
    ScriptStep {
        wait_for: "beta-again-42",
        send: "\x14\x14\x14",
    },
    ScriptStep {
        wait_for: "console: input goes to VM 'alpha'",
        send: "poweroff -f\n",
    },
    ScriptStep {
        wait_for: "MOAT-VM: alpha poweroff",
        send: "\x14\x14\x14",
    },
    ScriptStep {
        wait_for: "console: input goes to VM 'beta'",
        send: "echo beta-still-$((6*7))\n",
    },
    ScriptStep {
        wait_for: "beta-still-42",
        send: "poweroff -f\n",
    },
];

/// `configs/two-linux.toml` as shipped: two Debian Linux VMs, one CPU each, driven through the
/// console switch by [`TWO_LINUX_SCRIPT`]. One boot, two behaviours, each its own verdict: the
/// console switch and per-VM lifecycle, and the network between the VMs.
fn two_linux(tally: &mut Tally) -> XResult<()> {
    let outcome = shipped_system("two-linux.toml", TWO_LINUX_SCRIPT)?;
    let console = &outcome.console;
    let verdict = in_order(
        console,
        &[
            "alpha-says-42",
            "beta-says-42",
            "MOAT-VM: beta restart",
            "beta-again-42",
            "MOAT-VM: alpha poweroff",
            "beta-still-42",
            "MOAT-VM: beta poweroff",
        ],
    )
    .and_then(|()| super::expect_exit(&outcome, MoatExit::PowerOff));
    tally.record(
        "two_linux_vms_answer_through_the_console_switch_and_reboot_and_power_off_alone",
        "max",
        Some(&outcome),
        verdict,
    );
    let verdict = linux_network(console);
    tally.record(
        "two_linux_vms_ping_each_other_and_move_1_mib_through_nc_with_equal_md5",
        "max",
        Some(&outcome),
        verdict,
    );
    Ok(())
}

/// The network half of [`two_linux`]'s verdict: both VMs configured `eth0`, each one's three
/// pings were answered, and the MD5 of the file beta received is that of the file alpha sent.
/// Prints each VM's boot-to-shell time and round trips.
fn linux_network(console: &str) -> Result<(), String> {
    let alpha = crate::system::vm_stream(console, "alpha");
    let beta = crate::system::vm_stream(console, "beta");
    for (name, stream, address, peer) in [
        ("alpha", &alpha, "10.0.0.1/24", "10.0.0.2"),
        ("beta", &beta, "10.0.0.2/24", "10.0.0.1"),
    ] {
        if let Some(line) = stream.lines().find(|l| l.contains(NET_FAILED)) {
            return Err(format!("{name}: {line}"));
        }
        in_order(stream, &[&format!("{NET_UP} {address}")]).map_err(|e| format!("{name}: {e}"))?;
        in_order(
            stream,
            &[
                "3 packets transmitted, 3 packets received",
                &format!("{name}-ping=100"),
            ],
        )
        .map_err(|e| format!("{name} pinging {peer}: {e}"))?;
        println!(
            "    {name}: {}; ping {peer}: {}",
            line_with(stream, "Moat guest: Linux up").unwrap_or("no banner"),
            line_with(stream, "round-trip").unwrap_or("no round trips")
        );
    }
    in_order(&alpha, &["alpha-sent=100"])?;
    in_order(&beta, &["beta-got=100"])?;
    let sent = crate::netbench::md5_of(&alpha, "/tmp/f")
        .ok_or("alpha printed no MD5 of the file it sent")?;
    let got = crate::netbench::md5_of(&beta, "/tmp/r")
        .ok_or("beta printed no MD5 of the file it received")?;
    if sent == got {
        Ok(())
    } else {
        Err(format!(
            "alpha sent a file with MD5 {sent}, beta received one with MD5 {got}"
        ))
    }
}

/// The first line of `stream` holding `needle`.
fn line_with<'a>(stream: &'a str, needle: &str) -> Option<&'a str> {
    stream.lines().find(|l| l.contains(needle))
}

/// The console script of [`linux_and_bare`]: Linux sees its two vCPUs, then powers off.
const LINUX_AND_BARE_SCRIPT: &[ScriptStep] = &[
    ScriptStep {
        wait_for: "[linux] Moat guest: Linux up",
        send: "echo cpus=$(nproc)\n",
    },
    ScriptStep {
        wait_for: "cpus=2",
        send: "poweroff -f\n",
    },
];

/// `configs/linux-and-bare.toml` as shipped: Linux on CPUs 0 and 1 beside the greeting guest on
/// CPU 2, which halts alone (`halt-vm`); Linux, with its two vCPUs, powers the machine off.
fn linux_and_bare(tally: &mut Tally) -> XResult<()> {
    let outcome = shipped_system("linux-and-bare.toml", LINUX_AND_BARE_SCRIPT)?;
    let console = &outcome.console;
    let verdict = in_order(
        console,
        &["[bare] Hello from a Moat guest!", "MOAT-VM: bare poweroff"],
    )
    .and_then(|()| {
        in_order(
            console,
            &[
                "[linux] cpus=2",
                "MOAT-VM: linux poweroff",
                "MOAT-EXIT: poweroff",
            ],
        )
    })
    .and_then(|()| super::expect_exit(&outcome, MoatExit::PowerOff));
    tally.record(
        "linux_on_two_cpus_runs_beside_a_bare_guest_that_halts_alone",
        "max",
        Some(&outcome),
        verdict,
    );
    Ok(())
}
