//! `./x bench net`: how fast two Linux VMs move a file over their virtio-net link, Moat the
//! wire (issue 11, item 5), in virtual time.
//!
//! It boots `configs/two-linux.toml` as shipped under `-icount shift=0,sleep=off` (every
//! instruction the machine runs is 1 ns of virtual time, on whichever CPU; idle time jumps to
//! the next timer deadline) and drives both shells through the console switch: alpha pings
//! beta, writes [`FILE_MIB`] MiB of `/dev/urandom` to a file and prints its MD5; beta listens
//! with busybox `nc` into a file; alpha sends the file with `nc`, reading `/proc/uptime` (the
//! guest's clock, which under `-icount` is virtual time) before and after; beta prints the MD5
//! of what it received. The two checksums must be equal.

use crate::error::{XResult, failed};
use crate::qemu::{ConsoleMode, ScriptStep};
use std::process::ExitCode;
use std::time::Duration;

/// The size of the file moved.
pub const FILE_MIB: u32 = 64;

/// The time limit of the whole run (the wall time a slow host needs under `-icount`).
const LIMIT: Duration = Duration::from_secs(900);

/// The CPU model (as the tests boot the configuration).
const CPU: &str = "max,pauth-impdef=on";

/// The console script. Each command whose outcome is read ends by printing its exit status
/// plus 100 (`=100` is success), so a failure shows as a line and no step waits for text its
/// own echo holds. The sender's `nc` ends after the listener's (busybox's nc shuts its sending
/// half at the end of its input; the listener exits at the end of the stream), so alpha's two
/// readings of the clock hold the whole transfer, connection set-up included.
const SCRIPT: &[ScriptStep] = &[
    ScriptStep {
        wait_for: "Moat guest: Linux up",
        send: "",
    },
    ScriptStep {
        wait_for: "Moat guest: Linux up",
        send: "ping -c 5 10.0.0.2; echo bench-ping=$((100+$?))\n",
    },
    ScriptStep {
        wait_for: "bench-ping=1",
        send: "dd if=/dev/urandom of=/tmp/f bs=1M count=64 2>/dev/null; md5sum /tmp/f; \
               echo bench-made=$((100+$?))\n",
    },
    ScriptStep {
        wait_for: "bench-made=1",
        send: "\x14\x14\x14",
    },
    ScriptStep {
        wait_for: "console: input goes to VM 'beta'",
        send: "nc -l -p 5000 > /tmp/r & sleep 1; echo bench-listens-$((6*7))\n",
    },
    ScriptStep {
        wait_for: "bench-listens-42",
        send: "\x14\x14\x14",
    },
    ScriptStep {
        wait_for: "console: input goes to VM 'alpha'",
        send: "read a x < /proc/uptime; nc 10.0.0.2 5000 < /tmp/f; s=$?; \
               read b x < /proc/uptime; echo bench-sent=$((100+s)) uptime $a $b\n",
    },
    ScriptStep {
        wait_for: "bench-sent=1",
        send: "\x14\x14\x14",
    },
    // Beta powers off first: a VM on the boot CPU that has halted no longer serves the
    // console's receive interrupt (routed to that CPU), so the other VM would get no input.
    ScriptStep {
        wait_for: "console: input goes to VM 'beta'",
        send: "wait; md5sum /tmp/r; echo bench-got=$((100+$?)); poweroff -f\n",
    },
    ScriptStep {
        wait_for: "MOAT-VM: beta poweroff",
        send: "\x14\x14\x14",
    },
    ScriptStep {
        wait_for: "console: input goes to VM 'alpha'",
        send: "poweroff -f\n",
    },
];

/// What one run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// Each VM's kernel uptime when its `/init` printed the banner, in seconds.
    pub boot: [Option<f64>; 2],
    /// alpha's `ping` summary (`round-trip min/avg/max = ...`).
    pub rtt: String,
    /// Virtual seconds the transfer took (alpha's uptime after its `nc` less before).
    pub seconds: f64,
    /// The MD5 both sides printed.
    pub md5: String,
}

impl Figures {
    /// The throughput in MiB per virtual second.
    pub fn mib_per_s(&self) -> f64 {
        f64::from(FILE_MIB) / self.seconds
    }
}

/// Runs the benchmark and prints its figures.
///
/// # Errors
///
/// When the system cannot be built or booted, or the run shows a failure: a command that
/// failed, checksums that differ, a time-out.
pub fn run() -> XResult<ExitCode> {
    let (machine, scratch) = crate::system::shipped_machine("two-linux.toml", CPU)?;
    let icount = ["-icount".to_string(), "shift=0,sleep=off".into()];
    let outcome = machine.run_with(&icount, ConsoleMode::Scripted(SCRIPT), Some(LIMIT))?;
    drop(scratch);
    let figures = figures(&outcome.console).map_err(|e| {
        let tail: Vec<&str> = outcome.console.lines().rev().take(20).collect();
        tail.iter().rev().for_each(|l| eprintln!("    | {l}"));
        let timed_out = if outcome.timed_out {
            " (timed out)"
        } else {
            ""
        };
        failed(format!("./x bench net{timed_out}: {e}"))
    })?;
    println!(
        "{FILE_MIB} MiB of /dev/urandom from VM alpha to VM beta through busybox nc over their \
         virtio-net link (configs/two-linux.toml: one vCPU each, Debian's cloud kernel 6.1), \
         -icount shift=0,sleep=off (1 ns of virtual time per instruction of any CPU), -cpu {CPU}"
    );
    let boot = |s: Option<f64>| s.map_or("?".into(), |s| format!("{s:.2} s"));
    println!(
        "boot to the shell (the kernel's uptime at /init's banner, its virtio modules loaded and \
         eth0 up; Moat's start-up before the kernel not counted): alpha {}, beta {}",
        boot(figures.boot[0]),
        boot(figures.boot[1])
    );
    println!("ping alpha -> beta, 5 times: {}", figures.rtt);
    println!(
        "transfer: {:.2} s of virtual time, {:.2} MiB/s; MD5 {} on both sides ({:.0} s of wall time for the whole run)",
        figures.seconds,
        figures.mib_per_s(),
        figures.md5,
        outcome.elapsed.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// The figures of a run's console, or what shows it failed.
///
/// # Errors
///
/// The first thing missing or wrong, in the order the script goes.
pub fn figures(console: &str) -> Result<Figures, String> {
    let [alpha, beta] = ["alpha", "beta"].map(|vm| crate::system::vm_stream(console, vm));
    let line = |vm: &str, stream: &'_ str, needle: &str| -> Result<String, String> {
        stream
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_owned)
            .ok_or_else(|| format!("{vm} printed no {needle:?}"))
    };
    let boot = [&alpha, &beta].map(|stream| banner_uptime(stream));
    for done in ["bench-ping=100", "bench-made=100", "bench-sent=100"] {
        line("alpha", &alpha, done)?;
    }
    line("beta", &beta, "bench-got=100")?;
    let rtt = line("alpha", &alpha, "round-trip")?;
    let rtt = rtt[rtt.find("round-trip").unwrap_or(0)..].to_string();
    let sent = line("alpha", &alpha, "bench-sent=100 uptime ")?;
    let seconds = uptimes(&sent).ok_or_else(|| format!("no two uptimes in {sent:?}"))?;
    let (Some(sent_md5), Some(got_md5)) = (md5_of(&alpha, "/tmp/f"), md5_of(&beta, "/tmp/r"))
    else {
        return Err("the console lacks the MD5 of the file sent or of the file received".into());
    };
    if sent_md5 != got_md5 {
        return Err(format!(
            "alpha sent a file with MD5 {sent_md5}, beta received one with MD5 {got_md5}"
        ));
    }
    Ok(Figures {
        boot,
        rtt,
        seconds,
        md5: sent_md5.to_string(),
    })
}

/// The uptime on a VM's banner line, `Moat guest: Linux up (uptime 3.21 s)`, in its output
/// (`crate::system::vm_stream`).
fn banner_uptime(stream: &str) -> Option<f64> {
    stream.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("Moat guest: Linux up (uptime ")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The seconds between the two uptimes ending `... uptime <a> <b>`; `None` unless `b > a`.
fn uptimes(line: &str) -> Option<f64> {
    let (_, rest) = line.split_once(" uptime ")?;
    let mut times = rest.split_whitespace().map(str::parse::<f64>);
    let (a, b) = (times.next()?.ok()?, times.next()?.ok()?);
    (b > a).then_some(b - a)
}

/// The checksum `md5sum` printed for `path` (`<32 hex digits>  <path>`) in a VM's output
/// (`crate::system::vm_stream`).
pub fn md5_of<'a>(stream: &'a str, path: &str) -> Option<&'a str> {
    stream.lines().find_map(|line| {
        let (sum, name) = line.trim().split_once("  ")?;
        let hex = sum.len() == 32 && sum.bytes().all(|b| b.is_ascii_hexdigit());
        (hex && name == path).then_some(sum)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "\
[alpha] Moat guest: eth0 up 10.0.0.1/24
[alpha] Moat guest: Linux up (uptime 3.48 s)
[beta] Moat guest: Linux up (uptime 3.61 s)
[alpha] round-trip min/avg/max = 0.5/0.6/0.9 ms
[alpha] bench-ping=100
[alpha] 0123456789abcdef0123456789abcdef  /tmp/f
[alpha] bench-made=100
[alpha] / # read a x < /proc/uptime; nc 10.0.0.2 5000 < /tmp/f; echo bench-sent=$((100+s)) uptime $a $b
[alpha] bench-sent=100 uptime 20.50 36.50
[beta] 0123456789abcdef0123456789abcdef  /tmp/r
[beta] bench-got=100
";

    #[test]
    fn a_run_gives_boot_times_round_trips_and_the_throughput() {
        let figures = figures(CONSOLE).unwrap();
        assert_eq!(figures.boot, [Some(3.48), Some(3.61)]);
        assert_eq!(figures.rtt, "round-trip min/avg/max = 0.5/0.6/0.9 ms");
        assert_eq!(figures.seconds, 16.0);
        assert_eq!(figures.mib_per_s(), 4.0);
        assert_eq!(figures.md5, "0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn a_line_interrupted_by_the_other_vm_is_read_whole() {
        let split = CONSOLE.replace(
            "[alpha] bench-sent=100 uptime 20.50 36.50\n",
            "[alpha] bench-sent=100 upt\n[beta] Moat guest: eth0 up\n[alpha]+ ime 20.50 36.50\n",
        );
        assert_eq!(figures(&split).unwrap().seconds, 16.0);
    }

    #[test]
    fn the_script_makes_a_file_of_the_size_reported() {
        let made = SCRIPT
            .iter()
            .find(|s| s.send.contains("/dev/urandom"))
            .unwrap();
        assert!(made.send.contains(&format!("bs=1M count={FILE_MIB} ")));
    }

    #[test]
    fn different_checksums_or_a_failed_command_fail_the_run() {
        let corrupted = CONSOLE.replace("cdef  /tmp/r", "cdee  /tmp/r");
        assert!(
            figures(&corrupted)
                .unwrap_err()
                .contains("beta received one with MD5")
        );
        let refused = CONSOLE.replace("bench-sent=100 uptime", "bench-sent=101 uptime");
        assert_eq!(
            figures(&refused).unwrap_err(),
            "alpha printed no \"bench-sent=100\""
        );
        let backwards = CONSOLE.replace("20.50 36.50", "36.50 20.50");
        assert!(figures(&backwards).unwrap_err().contains("no two uptimes"));
    }
}
