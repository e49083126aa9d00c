//! `./x bench pci`: the Debian VM's disk and network (issue 12, item 5), in virtual time.
//!
//! It boots the Debian VM of `crate::debian` under `-icount shift=0,sleep=off` (every
//! instruction is 1 ns of virtual time on whichever CPU; idle time jumps to the next timer
//! deadline) on bare QEMU, or with `--moat` under Moat with the disk and the card assigned (the
//! one switch; refused until Moat assigns PCI functions), logs in on the console and runs:
//!
//! - `fio` reading the virtio-blk disk (`/dev/vda`, `--readonly`, `O_DIRECT`, one job, queue
//!   depth 1, `psync`): [`SEQ_MIB`] MiB sequentially in 1 MiB blocks, then [`RAND_MIB`] MiB
//!   of random 4 KiB blocks over the first 1 GiB;
//! - `iperf3` to a server the host runs on its loopback (10.0.2.2 from the guest, through
//!   QEMU's user network): [`IPERF_MIB`] MiB sent by the guest, then as much received.
//!
//! The figures are the guest's own (fio's bandwidth and IOPS, iperf3's figure of the guest's
//! end), read from its clock, which under `-icount` is virtual time. QEMU performs the device's
//! I/O (the disk read, the host's TCP stack) outside the guest's instructions: a wait costs no
//! instructions, but with `sleep=off` a vCPU that idles makes the virtual clock jump to the next
//! timer deadline at once (QEMU's `-icount` documentation, whose `sleep=on`/`off` wording was
//! reversed until QEMU 10.1). So a wait costs nothing while the guest has no timer armed, and
//! the time to its next deadlines when it has: the figures count the CPU's work per I/O (the
//! driver, interrupts, under Moat its exits) plus those jumps, not a disk's or a network's
//! speed, and they vary from run to run with how long the host takes.

use crate::debian::{self, DiskMode, HostServer, PROMPT, STARTUP, Side, WAIT_FOR_NETWORK};
use crate::error::XResult;
use crate::qemu::ConsoleMode;
use std::process::ExitCode;
use std::time::Duration;

/// MiB read sequentially (enough CPU-busy time, about 100 of `/proc/stat`'s 10 ms ticks, for
/// the busy figure to resolve a few per cent).
pub const SEQ_MIB: u32 = 1024;
/// MiB read in random 4 KiB blocks (as many ticks).
pub const RAND_MIB: u32 = 64;
/// MiB sent (and received) by iperf3.
pub const IPERF_MIB: u32 = 64;

/// The time limit of the whole run (wall time: a systemd boot under `-icount` and TCG).
const LIMIT: Duration = Duration::from_secs(3600);

/// fio's common options: the raw disk, never written, page cache bypassed, terse output
/// (version 3: one line of `;`-separated fields).
const FIO: &str = "fio --filename=/dev/vda --readonly --direct=1 --ioengine=psync --iodepth=1 \
                   --numjobs=1 --output-format=terse --terse-version=3";

/// One fio job's figures, from its terse line.
#[derive(Clone, Debug, PartialEq)]
pub struct FioJob {
    /// The job's name (field 3).
    pub name: String,
    /// KiB read (field 6).
    pub kib: u64,
    /// Bandwidth in KiB per second (field 7).
    pub kib_per_s: u64,
    /// Read operations per second (field 8).
    pub iops: f64,
    /// The run time in milliseconds (field 9).
    pub ms: u64,
}

/// A fio terse (version 3) line: `3;fio-3.33;NAME;0;0;KIB;BW;IOPS;MS;...`, field 5 the
/// job's error (0: none).
pub fn fio_job(line: &str) -> Option<FioJob> {
    let fields: Vec<&str> = line.trim().split(';').collect();
    if fields.len() < 9 || fields[0] != "3" || fields[4] != "0" {
        return None;
    }
    Some(FioJob {
        name: fields[2].to_string(),
        kib: fields[5].parse().ok()?,
        kib_per_s: fields[6].parse().ok()?,
        iops: fields[7].parse().ok()?,
        ms: fields[8].parse().ok()?,
    })
}

/// Which end of an iperf3 test a summary line is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The end that sent.
    Sender,
    /// The end that received.
    Receiver,
}

/// An iperf3 summary line (with `-f m`): `[  5]   0.00-4.21  sec  64.0 MBytes  127 Mbits/sec
/// 0  sender`, its end and Mbit/s. The client prints both ends' lines; the figure of the end
/// that ran in the guest is the one timed by the guest's clock (the sender's without `-R`, the
/// receiver's with it): the host's end is timed in real time.
pub fn iperf_summary(line: &str) -> Option<(End, f64)> {
    let line = line.trim();
    let end = if line.ends_with("sender") {
        End::Sender
    } else if line.ends_with("receiver") {
        End::Receiver
    } else {
        return None;
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    let unit = words.iter().position(|w| *w == "Mbits/sec")?;
    let rate = words.get(unit.checked_sub(1)?)?.parse().ok()?;
    Some((end, rate))
}

/// `command` between two readings of the CPUs' time (`/proc/stat`'s `cpu` line), printed as
/// `moat-busy-<name> cpu ... / cpu ...`, then `moat-<name>=` its exit status plus 100.
fn measured(name: &str, command: &str) -> String {
    format!(
        "a=$(grep '^cpu ' /proc/stat); {command}; r=$?; echo moat-busy-{name} $a / $(grep '^cpu ' /proc/stat); echo moat-{name}=$((100+r))\n"
    )
}

/// `/proc/stat`'s time unit (`USER_HZ`), in ms.
const TICK_MS: f64 = 10.0;

/// The busy time of all CPUs between the two readings of a `moat-busy-<name>` line, in ms:
/// user, nice, system, irq, softirq and steal (not idle, not iowait). Under `-icount` busy
/// virtual time is executed instructions (1 ns each), sampled by the kernel's tick: the jumps of
/// an idle vCPU's clock to its next timer deadline land in idle time and are left out.
pub fn busy_ms(console: &str, name: &str) -> Option<f64> {
    let prefix = format!("moat-busy-{name} ");
    let line = console
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))?;
    let (before, after) = line.split_once(" / ")?;
    let busy = |reading: &str| -> Option<u64> {
        let fields: Vec<u64> = reading
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        // user nice system idle iowait irq softirq steal ...
        let at = |i: usize| fields.get(i).copied();
        Some(at(0)? + at(1)? + at(2)? + at(5)? + at(6)? + at(7)?)
    };
    let ticks = busy(after)?.checked_sub(busy(before)?)?;
    Some(ticks as f64 * TICK_MS)
}

/// What one run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// systemd's `Startup finished in ...` line.
    pub startup: String,
    /// Sequential 1 MiB reads.
    pub seq: FioJob,
    /// Random 4 KiB reads.
    pub rand: FioJob,
    /// Mbit/s the guest sent (its sender line).
    pub send_mbit: f64,
    /// Mbit/s the guest received (`-R`: its receiver line).
    pub recv_mbit: f64,
    /// CPU-busy ms of each test ([`busy_ms`]): seq, rand, send, recv.
    pub busy_ms: [f64; 4],
}

/// The figures of a run's console, or what shows it failed.
///
/// # Errors
///
/// The first thing missing, in the order the script goes.
pub fn figures(console: &str) -> Result<Figures, String> {
    let console = &debian::plain(console);
    let line = |needle: &str| {
        console
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(needle))
            .ok_or_else(|| format!("the console has no line starting {needle:?}"))
    };
    let startup = line("Startup finished in")?.to_string();
    for done in [
        "moat-net=100",
        "moat-seq=100",
        "moat-rand=100",
        "moat-send=100",
        "moat-recv=100",
    ] {
        line(done)?;
    }
    let jobs: Vec<FioJob> = console.lines().filter_map(fio_job).collect();
    let job = |name: &str| {
        jobs.iter()
            .find(|j| j.name == name)
            .cloned()
            .ok_or_else(|| format!("no fio result for job {name}"))
    };
    let summaries: Vec<(End, f64)> = console.lines().filter_map(iperf_summary).collect();
    // Two tests, each with its sender's and its receiver's line: the guest sends, then receives.
    let [
        (End::Sender, send_mbit),
        (End::Receiver, _),
        (End::Sender, _),
        (End::Receiver, recv_mbit),
    ] = summaries[..]
    else {
        return Err(format!(
            "iperf3 summary lines {summaries:?}: not a sending and a receiving test"
        ));
    };
    let busy = |name: &str| {
        busy_ms(console, name).ok_or_else(|| format!("no readable moat-busy-{name} line"))
    };
    Ok(Figures {
        startup,
        seq: job("seq")?,
        rand: job("rand")?,
        send_mbit,
        recv_mbit,
        busy_ms: [busy("seq")?, busy("rand")?, busy("send")?, busy("recv")?],
    })
}

/// Runs the benchmark on `side` and prints its figures.
///
/// # Errors
///
/// When the VM cannot be booted, iperf3 is missing on the host, or the run shows a failure.
pub fn run(side: Side) -> XResult<ExitCode> {
    print_method(side);
    let (figures, elapsed) = measure(side)?;
    print(&figures, elapsed);
    Ok(ExitCode::SUCCESS)
}

/// `./x bench pci --compare RUNS`: bare QEMU and Moat alternately, `runs` boots each, every
/// run's figures, then the means of each side and Moat / bare.
///
/// # Errors
///
/// As [`run`], for any run.
pub fn compare(runs: u32) -> XResult<ExitCode> {
    print_method(Side::Bare);
    println!(
        "Like with like: the same QEMU 10 binary on both sides, the same kernel, initramfs, \
         command line, RAM, CPUs and devices, and on bare QEMU the device tree Moat gives the \
         VM (-dtb). Under Moat the devices' DMA also goes through QEMU's SMMUv3 model (host \
         time only). {runs} runs per side, alternating."
    );
    let mut all: Vec<(Side, Figures)> = Vec::new();
    for n in 1..=runs {
        for side in [Side::Bare, Side::Moat] {
            let (figures, elapsed) = measure(side)?;
            println!("{} run {n}:", side.name());
            print(&figures, elapsed);
            all.push((side, figures));
        }
    }
    let mean = |side: Side, value: &Figure| {
        let values: Vec<f64> = all
            .iter()
            .filter(|(s, _)| *s == side)
            .map(|(_, f)| value(f))
            .collect();
        values.iter().sum::<f64>() / values.len().max(1) as f64
    };
    println!("| mean of {runs} runs | bare | Moat | Moat / bare |");
    println!("| --- | ---: | ---: | ---: |");
    let rows: [(&str, &Figure); 10] = [
        ("boot, kernel + userspace (s)", &|f| {
            startup_seconds(&f.startup).unwrap_or(f64::NAN)
        }),
        ("fio sequential read (MiB/s)", &|f| {
            f.seq.kib_per_s as f64 / 1024.0
        }),
        ("fio random read (IOPS)", &|f| f.rand.iops),
        ("iperf3 guest sends (Mbit/s)", &|f| f.send_mbit),
        ("iperf3 guest receives (Mbit/s)", &|f| f.recv_mbit),
        ("CPU busy per 1 MiB sequential read (us)", &|f| {
            f.busy_ms[0] * 1000.0 / f64::from(SEQ_MIB)
        }),
        ("CPU busy per 4 KiB random read (us)", &|f| {
            f.busy_ms[1] * 1000.0 / f64::from(RAND_MIB * 256)
        }),
        ("CPU busy per MiB sent (us)", &|f| {
            f.busy_ms[2] * 1000.0 / f64::from(IPERF_MIB)
        }),
        ("CPU busy per MiB received (us)", &|f| {
            f.busy_ms[3] * 1000.0 / f64::from(IPERF_MIB)
        }),
        ("CPU busy, all four tests (ms)", &|f| f.busy_ms.iter().sum()),
    ];
    for (name, value) in rows {
        let (bare, moat) = (mean(Side::Bare, value), mean(Side::Moat, value));
        println!("| {name} | {bare:.1} | {moat:.1} | {:.3} |", moat / bare);
    }
    println!(
        "A throughput ratio above 1, or a busy ratio below 1, favours Moat. The throughput \
         columns swing with the idle clock's jumps (see above) and give no ratio to rely on; \
         the busy rows are the CPU work per I/O."
    );
    Ok(ExitCode::SUCCESS)
}

/// One figure of a run, as a number.
type Figure = dyn Fn(&Figures) -> f64;

/// The seconds of systemd's `Startup finished in 935ms (kernel) + 1.943s (userspace) = ...`:
/// kernel plus userspace.
fn startup_seconds(line: &str) -> Option<f64> {
    let total = line.split('=').nth(1)?.trim();
    let mut seconds = 0.0;
    for part in total.split_whitespace() {
        seconds += if let Some(ms) = part.strip_suffix("ms") {
            ms.parse::<f64>().ok()? / 1000.0
        } else if let Some(min) = part.strip_suffix("min") {
            min.parse::<f64>().ok()? * 60.0
        } else if let Some(s) = part.strip_suffix('s') {
            s.parse::<f64>().ok()?
        } else {
            return None;
        };
    }
    Some(seconds)
}

/// One boot of the Debian VM on `side` running the tests; its figures and wall time.
fn measure(side: Side) -> XResult<(Figures, Duration)> {
    let scratch = crate::scratch::Scratch::new("iobench")?;
    let iperf = HostServer::start(
        "iperf3",
        &["-s", "-B", "127.0.0.1", "-p", "{port}"],
        scratch.path(),
    )
    .map_err(|e| e.map_message(|m| format!("{m} (./x installs iperf3)")))?;
    let port = iperf.port;
    let mut steps = debian::login();
    steps.push((PROMPT.into(), STARTUP.into()));
    steps.push(("moat-up=".into(), WAIT_FOR_NETWORK.into()));
    let seq = format!("{FIO} --name=seq --rw=read --bs=1M --size={SEQ_MIB}M");
    let rand = format!(
        "{FIO} --name=rand --rw=randread --bs=4k --size=1G --io_size={RAND_MIB}M --randrepeat=1"
    );
    let send = format!("iperf3 -c 10.0.2.2 -p {port} -f m -n {IPERF_MIB}M");
    let recv = format!("{send} -R");
    steps.push(("moat-net=1".into(), measured("seq", &seq)));
    steps.push(("moat-seq=1".into(), measured("rand", &rand)));
    steps.push(("moat-rand=1".into(), measured("send", &send)));
    steps.push((
        "moat-send=1".into(),
        format!(
            "{}; systemctl poweroff\n",
            measured("recv", &recv).trim_end()
        ),
    ));
    let script = debian::leak_script(steps);
    eprintln!(
        "x: booting Debian {} under -icount (TCG: many minutes)",
        side.name()
    );
    let mode = ConsoleMode::Scripted(script);
    let outcome = debian::boot(side, mode, Some(LIMIT), DiskMode::Snapshot, true)?;
    drop(iperf);
    let figures =
        figures(&outcome.console).map_err(|e| debian::failure("./x bench pci", &outcome, &e))?;
    Ok((figures, outcome.elapsed))
}

fn print_method(side: Side) {
    println!(
        "Debian 12 ({side}: virtio-blk-pci and virtio-net-pci, INTx, {} vCPUs, {} MiB, Debian's \
         cloud kernel 6.1), -icount shift=0,sleep=off (1 ns of virtual time per instruction), \
         -cpu {}. An I/O wait executes no instructions; an idle vCPU's clock jumps to its next timer \
         deadline: the figures are the CPU's work per I/O plus those jumps.",
        debian::SMP,
        debian::MEM_MIB,
        debian::CPU,
        side = side.name()
    );
}

fn print(f: &Figures, elapsed: Duration) {
    println!("boot: {}", f.startup);
    println!(
        "fio sequential read, 1 MiB blocks, QD1, O_DIRECT: {:.1} MiB/s ({} MiB in {} ms)",
        f.seq.kib_per_s as f64 / 1024.0,
        f.seq.kib / 1024,
        f.seq.ms
    );
    println!(
        "fio random read, 4 KiB blocks, QD1, O_DIRECT: {:.0} IOPS, {:.1} MiB/s ({} MiB in {} ms)",
        f.rand.iops,
        f.rand.kib_per_s as f64 / 1024.0,
        f.rand.kib / 1024,
        f.rand.ms
    );
    println!(
        "iperf3 TCP to the host's loopback through QEMU's user network, {IPERF_MIB} MiB each \
         way: guest sends {:.0} Mbit/s, receives {:.0} Mbit/s",
        f.send_mbit, f.recv_mbit
    );
    let [seq, rand, send, recv] = f.busy_ms;
    println!(
        "CPU busy time (all vCPUs, /proc/stat, = instructions under -icount; the clock's jumps \
         while idle left out): sequential {:.0} us per 1 MiB read, random {:.1} us per 4 KiB \
         read, iperf3 {:.0} us per MiB sent, {:.0} us per MiB received",
        seq * 1000.0 / f64::from(SEQ_MIB),
        rand * 1000.0 / f64::from(RAND_MIB * 256),
        send * 1000.0 / f64::from(IPERF_MIB),
        recv * 1000.0 / f64::from(IPERF_MIB)
    );
    println!(
        "({:.0} s of wall time for the whole run)",
        elapsed.as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as fio 3.33 and iperf3 3.12 (Debian 12) print them.
    const SEQ: &str = "3;fio-3.33;seq;0;0;262144;51200;50;5120;0;0;0.000000;0.000000;1;2;1.5;0.1;1%=1;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0";
    const RAND: &str = "3;fio-3.33;rand;0;0;16384;8000;2000;2048;0";

    #[test]
    fn fio_terse_lines_give_bandwidth_iops_and_time() {
        assert_eq!(
            fio_job(SEQ),
            Some(FioJob {
                name: "seq".into(),
                kib: 262_144,
                kib_per_s: 51_200,
                iops: 50.0,
                ms: 5120,
            })
        );
        let failed = SEQ.replacen(";seq;0;0;", ";seq;0;5;", 1);
        assert_eq!(fio_job(&failed), None, "a job with an error has no figures");
        assert_eq!(fio_job("root@moat-debian:~# fio --name=seq"), None);
    }

    #[test]
    fn iperf3_summaries_give_their_end_and_rate() {
        let sender = "[  5]   0.00-4.21   sec  64.0 MBytes   127 Mbits/sec    0             sender";
        let receiver =
            "[  5]   0.00-4.25   sec  64.0 MBytes   126 Mbits/sec                  receiver";
        assert_eq!(iperf_summary(sender), Some((End::Sender, 127.0)));
        assert_eq!(iperf_summary(receiver), Some((End::Receiver, 126.0)));
        assert_eq!(
            iperf_summary("[  5]   0.00-1.00   sec  8.0 MBytes  67.1 Mbits/sec    0    300 KBytes"),
            None
        );
    }

    #[test]
    fn systemds_startup_line_gives_kernel_plus_userspace_seconds() {
        let secs = |l: &str| startup_seconds(l).map(|s| (s * 1000.0).round());
        assert_eq!(
            secs("Startup finished in 935ms (kernel) + 1.943s (userspace) = 2.879s"),
            Some(2879.0)
        );
        assert_eq!(
            secs("Startup finished in 8.280s (kernel) + 1min 35.189s (userspace) = 1min 43.469s"),
            Some(103_469.0)
        );
        assert_eq!(secs("Startup finished in 1s (kernel) = soon"), None);
    }

    #[test]
    fn a_run_gives_every_figure_or_says_what_is_missing() {
        let console = format!(
            "Startup finished in 4s (kernel) + 30s (userspace) = 34s\nmoat-net=100\n\u{1b}[?2004l{SEQ}\n\
             moat-busy-seq cpu 10 0 20 500 0 1 2 0 0 0 / cpu 40 0 60 900 0 3 4 0 0 0\nmoat-seq=100\n\
             {RAND}\nmoat-busy-rand cpu 1 1 1 1 1 1 1 1 0 0 / cpu 2 2 2 9 9 2 2 2 0 0\n\
             moat-busy-send cpu 0 0 0 0 0 0 0 0 0 0 / cpu 0 0 5 0 0 0 0 0 0 0\n\
             moat-busy-recv cpu 0 0 0 0 0 0 0 0 0 0 / cpu 0 0 7 0 0 0 0 0 0 0\n\
             moat-rand=100\n\
             [  5]   0.00-4.21   sec  64.0 MBytes   127 Mbits/sec    0             sender\n\
             [  5]   0.00-4.30   sec  64.0 MBytes   125 Mbits/sec                  receiver\n\
             moat-send=100\n\
             [  5]   0.00-4.00   sec  64.0 MBytes   134 Mbits/sec    9             sender\n\
             [  5]   0.00-5.00   sec  64.0 MBytes   107 Mbits/sec                  receiver\n\
             moat-recv=100\n"
        );
        let f = figures(&console).unwrap();
        assert_eq!((f.seq.kib_per_s, f.rand.iops), (51_200, 2000.0));
        assert_eq!((f.send_mbit, f.recv_mbit), (127.0, 107.0));
        // (30 + 40 + 2 + 2) ticks of 10 ms; idle and iowait left out.
        assert_eq!(f.busy_ms, [740.0, 60.0, 50.0, 70.0]);
        let failed = console.replace("moat-rand=100", "moat-rand=101");
        assert!(figures(&failed).unwrap_err().contains("moat-rand=100"));
    }
}
