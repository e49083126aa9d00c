//! The Debian VM of issue 12 and `./x debian`: Debian's cloud kernel with the root initramfs
//! (`crate::initramfs::root_init_script`) booting the root file system of
//! `./x linux-fetch --rootfs` from a virtio-blk-pci disk to systemd and a console login, its
//! network a virtio-net-pci card on QEMU's user network (DHCP; the host's loopback is
//! 10.0.2.2 to the guest).
//!
//! The machine is the same on both [`Side`]s: the same kernel, initramfs and command line
//! ([`bootargs`]), the same two PCI functions at the same addresses ([`device_args`]: the
//! network card at 00:01.0, the disk at 00:02.0, both `disable-legacy=on,iommu_platform=on`).
//! [`Side::Bare`] boots it on bare QEMU `virt` (`its=off`: no MSI, so the devices interrupt by
//! INTx as they do under Moat, which has no ITS yet) — the QEMU 10 that runs Moat, and the
//! device tree Moat gives the VM (`-dtb`), so that both sides run the same QEMU devices and the
//! same guest sees the same machine; [`Side::Moat`] boots
//! `configs/debian.toml` under Moat on QEMU 10 with the SMMUv3 in front of the host bridge and
//! those functions assigned to the VM (their DMA confined by the SMMU through the VM's stage 2,
//! their INTx lines forwarded to its vGIC), and the same scripts run.
//!
//! `./x debian` logs in on the console (as `root`, no password), waits for the default route
//! by DHCP, fetches a file from an HTTP server it starts on the host's loopback
//! (`python3 -m http.server`), writes a file, reboots the guest, logs in again and reads the
//! file back; it passes when the fetched and the read-back contents are the ones expected. It
//! runs under `-icount` so that a loaded host cannot make systemd's time-outs run out.

use crate::error::{XResult, failed};
use crate::linux;
use crate::qemu::{ConsoleMode, Outcome, ScriptStep};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the VM runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Bare QEMU: the devices are QEMU's own, the guest's tree is QEMU's.
    Bare,
    /// Under Moat: `configs/debian.toml`, the two functions assigned to the VM.
    Moat,
}

impl Side {
    /// For messages and tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare QEMU",
            Self::Moat => "under Moat",
        }
    }
}

pub mod machine;
pub use machine::{
    BareDebian, CPU, DiskMode, ICOUNT, MEM_MIB, PROMPT, SMP, UART, bootargs, device_args,
};

/// Boots the Debian VM on `side` with the console handled by `mode`, its disk opened as
/// `disk_mode`, under [`ICOUNT`] when `icount`; the root file system is made first if the
/// cache has none.
///
/// # Errors
///
/// When the image cannot be made, the kernel fetched, or QEMU started.
pub fn boot(
    side: Side,
    mode: ConsoleMode,
    limit: Option<Duration>,
    disk_mode: DiskMode,
    icount: bool,
) -> XResult<Outcome> {
    match side {
        Side::Bare => {
            // Moat's tree for the VM, from the bundle Moat would boot: the bare guest sees the
            // same machine.
            let (machine, scratch) = crate::system::shipped_machine("debian.toml", CPU)?;
            let dtb = scratch.join("debian-guest.dtb");
            let bundle = machine
                .initrd
                .as_deref()
                .ok_or_else(|| failed("the Debian system has no bundle"))?;
            crate::vm::write_bundle_dtb(bundle, &dtb)?;
            let disk = linux::rootfs::image()?;
            let linux = linux::root_linux()?;
            let append = bootargs(UART);
            BareDebian {
                linux: &linux,
                disk: &disk,
                append: &append,
                disk_mode,
                reboot: true,
                icount,
                moat_dtb: Some(&dtb),
            }
            .run(mode, limit)
        }
        Side::Moat => {
            // The description first: a refusal comes before the image is made.
            let (machine, scratch) = crate::system::shipped_machine("debian.toml", CPU)?;
            let disk = linux::rootfs::image()?;
            let mut extra = device_args(&disk, disk_mode);
            if icount {
                extra.extend(ICOUNT.map(String::from));
            }
            let outcome = machine.run_for_pci(true, &extra, mode, limit);
            drop(scratch);
            outcome
        }
    }
}

/// A server the host runs for the guest on its loopback, stopped when dropped.
pub struct HostServer {
    child: Child,
    /// The TCP port it listens on (10.0.2.2:`port` from the guest).
    pub port: u16,
}

impl HostServer {
    /// Starts `program` with `args`, `{port}` in them replaced by a free port of the loopback.
    ///
    /// # Errors
    ///
    /// When no port can be had or the program cannot be started.
    pub fn start(program: &str, args: &[&str], dir: &Path) -> XResult<Self> {
        // A port free now; the tiny window before the server binds it is harmless here (the
        // guest connects minutes later, and a clash shows as a failed fetch).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| failed(format!("a free port on 127.0.0.1: {e}")))?
            .port();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{port}", &port.to_string()))
            .collect();
        let child = Command::new(program)
            .args(&args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| failed(format!("cannot start {program}: {e}")))?;
        Ok(Self { child, port })
    }
}

impl Drop for HostServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A console script made at run time (ports and tokens are known only then). The runner
/// takes `&'static` steps; one script per command, so the few hundred bytes are leaked
/// on purpose rather than the runner changed for owned steps.
pub fn leak_script(steps: Vec<(String, String)>) -> &'static [ScriptStep] {
    let steps: Vec<ScriptStep> = steps
        .into_iter()
        .map(|(wait_for, send)| ScriptStep {
            wait_for: Box::leak(wait_for.into_boxed_str()),
            send: Box::leak(send.into_boxed_str()),
        })
        .collect();
    Box::leak(steps.into_boxed_slice())
}

/// The step that logs in as root on the console at the next login prompt.
pub fn login() -> Vec<(String, String)> {
    vec![("login: ".into(), "root\n".into())]
}

/// The command that waits (at most a minute) for DHCP's default route through QEMU's user
/// network and prints the addresses, ending with `moat-net=100` when the route is there.
pub const WAIT_FOR_NETWORK: &str = "for i in $(seq 60); do ip -4 route show default | grep -q 'via 10.0.2.2' && break; sleep 1; done; ip -4 -br addr show; ip -4 route show default | grep -q 'via 10.0.2.2'; echo moat-net=$((100+$?))\n";

/// The command that waits for systemd's start-up to end and prints its times
/// (`Startup finished in ... (kernel) + ... (userspace) = ...`).
pub const STARTUP: &str =
    "systemctl is-system-running --wait; systemd-analyze; echo moat-up=$((100+$?))\n";

/// How long `./x debian` may take (wall time: two systemd boots under TCG).
const CHECK_LIMIT: Duration = Duration::from_secs(1800);

/// A value unlikely to be on the console by chance.
fn token(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("moat-{what}-{}-{nanos:09}", std::process::id())
}

/// `./x debian`: the console test of the module's description, on `side`.
///
/// # Errors
///
/// When the VM cannot be booted, or the run shows a failure (with the console's last lines).
pub fn check(side: Side) -> XResult<ExitCode> {
    let served = token("served");
    let written = token("written");
    let scratch = crate::scratch::Scratch::new("debian")?;
    std::fs::write(scratch.join("moat-fetch.txt"), format!("{served}\n"))
        .map_err(|e| failed(format!("{}: {e}", scratch.path().display())))?;
    let http = HostServer::start(
        "python3",
        &["-m", "http.server", "--bind", "127.0.0.1", "{port}"],
        scratch.path(),
    )?;
    let port = http.port;
    let mut steps = login();
    steps.push((PROMPT.into(), STARTUP.into()));
    steps.push(("moat-up=".into(), WAIT_FOR_NETWORK.into()));
    steps.push((
        "moat-net=1".into(),
        format!(
            "wget -q -O /tmp/f http://10.0.2.2:{port}/moat-fetch.txt; r=$?; cat /tmp/f; echo moat-fetch=$((100+r))\n"
        ),
    ));
    steps.push((
        "moat-fetch=1".into(),
        format!(
            "echo {written} > /root/moat-persist && sync; echo moat-wrote=$((100+$?)); systemctl reboot\n"
        ),
    ));
    steps.extend(login());
    steps.push((
        PROMPT.into(),
        "cat /root/moat-persist; echo moat-read=$((100+$?)); systemctl poweroff\n".into(),
    ));
    let script = leak_script(steps);
    eprintln!(
        "x: booting Debian {} (TCG: minutes per boot), the HTTP server on 127.0.0.1:{port}",
        side.name()
    );
    let outcome = boot(
        side,
        ConsoleMode::Scripted(script),
        Some(CHECK_LIMIT),
        DiskMode::Snapshot,
        // Under -icount the guest's clock counts its instructions: on a loaded host systemd's
        // job time-outs (90 s for a device such as ttyAMA0) do not run out in real time. Seen
        // without it: a boot under load whose serial getty never started.
        true,
    )?;
    drop(http);
    match verdict(&outcome.console, &served, &written) {
        Ok(report) => {
            println!("{report}");
            println!(
                "./x debian ({}): passed in {:.0} s",
                side.name(),
                outcome.elapsed.as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(failure("./x debian", &outcome, &e)),
    }
}

/// The error of a run whose console shows a failure `e`, after showing the console's last
/// lines.
pub fn failure(command: &str, outcome: &Outcome, e: &str) -> crate::error::XError {
    let tail: Vec<&str> = outcome.console.lines().rev().take(40).collect();
    tail.iter().rev().for_each(|l| eprintln!("    | {l}"));
    let timed_out = if outcome.timed_out {
        " (timed out)"
    } else {
        ""
    };
    failed(format!("{command}{timed_out}: {e}"))
}

/// The console without terminal control sequences (CSI: `ESC [`, parameters, one final byte
/// in `@`..`~`). bash's readline wraps each command in bracketed-paste switches, and the one
/// that ends it lands, once `\r` is dropped, at the start of the command's first line of
/// output.
pub fn plain(console: &str) -> String {
    let mut out = String::with_capacity(console.len());
    let mut chars = console.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What a run of [`check`] shows: its report, or the first thing missing.
///
/// # Errors
///
/// The first expected line the console lacks, in the order of the script.
pub fn verdict(console: &str, served: &str, written: &str) -> Result<String, String> {
    let console = plain(console);
    let lines: Vec<&str> = console.lines().map(str::trim).collect();
    let mut at = 0;
    let mut expect = |what: &str, matches: &dyn Fn(&str) -> bool| {
        let found = lines[at..]
            .iter()
            .position(|l| matches(l))
            .ok_or_else(|| format!("the console has no {what} (after line {at})"))?;
        at += found + 1;
        Ok::<&str, String>(lines[at - 1])
    };
    expect("login prompt", &|l| l.contains(" login:"))?;
    let startup = expect("systemd start-up time", &|l| {
        l.starts_with("Startup finished in")
    })?;
    expect("default route by DHCP (moat-net=100)", &|l| {
        l == "moat-net=100"
    })?;
    expect("file fetched from the host", &|l| l == served)?;
    expect("moat-fetch=100", &|l| l == "moat-fetch=100")?;
    expect("moat-wrote=100", &|l| l == "moat-wrote=100")?;
    expect("login prompt after the reboot", &|l| l.contains(" login:"))?;
    expect("file written before the reboot", &|l| l == written)?;
    expect("moat-read=100", &|l| l == "moat-read=100")?;
    Ok(format!(
        "first boot: {startup}\nlogin, DHCP, HTTP fetch from the host, write, reboot, read back: all seen"
    ))
}

#[cfg(test)]
mod tests {
    use super::machine::{BLK_SLOT, NET_SLOT};
    use super::*;

    #[test]
    fn the_devices_sit_where_the_description_lists_them() {
        let args = device_args(Path::new("/c/root.img"), DiskMode::Snapshot).join(" ");
        assert!(args.contains("-nic none"));
        assert!(args.contains("virtio-blk-pci,drive=root,addr=0x2.0,"));
        assert!(args.contains("virtio-net-pci,netdev=net,addr=0x1.0,"));
        assert_eq!(
            args.matches("disable-legacy=on,iommu_platform=on").count(),
            2
        );
        assert!(args.contains("format=raw,cache=writeback,snapshot=on,file=/c/root.img"));
        let text =
            std::fs::read_to_string(crate::build::repo_root().join("configs/debian.toml")).unwrap();
        for bdf in [
            format!("00:{NET_SLOT:02x}.0"),
            format!("00:{BLK_SLOT:02x}.0"),
        ] {
            assert!(text.contains(&format!("\"{bdf}\"")), "{bdf}");
        }
        assert!(text.contains(&format!("bootargs = \"{}\"", bootargs(UART))));
    }

    const CONSOLE: &str = "\
moat-debian login: root
root@moat-debian:~# systemctl is-system-running --wait; systemd-analyze; echo moat-up=$((100+$?))
running
Startup finished in 4.1s (kernel) + 30.2s (userspace) = 34.3s
moat-up=100
eth0 UP 10.0.2.15/24
moat-net=100
moat-served-1
moat-fetch=100
moat-wrote=100
moat-debian login: root
\u{1b}[?2004lmoat-written-1
moat-read=100
";

    #[test]
    fn control_sequences_are_dropped_from_the_console() {
        assert_eq!(
            plain(
                "\u{1b}[?2004hroot@moat-debian:~# cat f\n\u{1b}[?2004lmoat-1\n\u{1b}[0;32m OK \u{1b}[0m"
            ),
            "root@moat-debian:~# cat f\nmoat-1\n OK "
        );
        assert_eq!(plain("a\u{1b}b"), "a\u{1b}b");
    }

    #[test]
    fn a_run_passes_only_with_every_step_in_order() {
        let report = verdict(CONSOLE, "moat-served-1", "moat-written-1").unwrap();
        assert!(report.contains("Startup finished in 4.1s"));
        // The file read back before the reboot's login proves nothing.
        let early = CONSOLE.replacen("moat-written-1\n", "", 1).replacen(
            "moat-wrote=100\n",
            "moat-wrote=100\nmoat-written-1\n",
            1,
        );
        assert!(
            verdict(&early, "moat-served-1", "moat-written-1")
                .unwrap_err()
                .contains("file written before the reboot")
        );
        let no_dhcp = CONSOLE.replace("moat-net=100", "moat-net=101");
        assert!(
            verdict(&no_dhcp, "moat-served-1", "moat-written-1")
                .unwrap_err()
                .contains("DHCP")
        );
        assert!(
            verdict(CONSOLE, "moat-served-2", "moat-written-1")
                .unwrap_err()
                .contains("fetched")
        );
    }
}
