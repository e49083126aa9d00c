//! The QEMU runner: boots Moat (or a guest alone) on `qemu-system-aarch64 -M virt`, relays or
//! captures the console, enforces a time limit, and reads Moat's `MOAT-EXIT:` line.

use crate::error::{XResult, failed};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One QEMU boot.
#[derive(Clone, Debug)]
pub struct Machine {
    /// QEMU's `-cpu` value.
    pub cpu: String,
    /// The machine's RAM in MiB (`-m`).
    pub mem_mib: u64,
    /// The `-kernel` image.
    pub kernel: PathBuf,
    /// The `-initrd` file (Moat's VM bundle).
    pub initrd: Option<PathBuf>,
    /// `-append` (only for a guest booted bare).
    pub append: Option<String>,
    /// Whether EL2 exists (`virtualization=on`): true under Moat, false for a bare guest.
    pub el2: bool,
    /// The number of CPUs (`-smp`): a VM's vCPUs each need one.
    pub smp: u32,
    /// The GIC QEMU gives the machine (`gic-version=`): 3, or 2 (a GIC-400-like GICv2 with its
    /// virtualization extension when `el2`).
    pub gic_version: u8,
}

/// How the console is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleMode {
    /// The user's terminal: keyboard in, console out (`./x run`).
    Interactive,
    /// Captured for a test; nothing is shown.
    Captured,
    /// Captured, and a script types into the console: each step waits until the console shows
    /// its pattern (after the previous step's match), then sends its text.
    Scripted(&'static [ScriptStep]),
    /// Captured, and each step is a prompt answered every time the console shows it, in
    /// whatever order and number the guest asks (kvm-unit-tests' migration tests).
    Answering(&'static [ScriptStep]),
}

/// One step of a console script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptStep {
    /// What the console must have shown (after the previous step's match).
    pub wait_for: &'static str,
    /// What to type then.
    pub send: &'static str,
}

/// What Moat said when it ended the run (`MOAT-EXIT: <word>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoatExit {
    /// The guest powered off.
    PowerOff,
    /// The guest asked for a reset.
    Reset,
    /// Moat stopped the VM after an unhandled trap.
    VmStopped,
    /// The VM's configuration was refused.
    ConfigError,
    /// Moat failed: a Moat bug.
    Panic,
}

impl MoatExit {
    fn from_word(word: &str) -> Option<Self> {
        match word {
            "poweroff" => Some(Self::PowerOff),
            "reset" => Some(Self::Reset),
            "vm-stopped" => Some(Self::VmStopped),
            "config-error" => Some(Self::ConfigError),
            "panic" => Some(Self::Panic),
            _ => None,
        }
    }

    /// The host tool's exit status for this end: 0 when the guest ended the run itself.
    pub fn exit_status(self) -> u8 {
        match self {
            Self::PowerOff | Self::Reset => 0,
            Self::VmStopped => 1,
            Self::ConfigError => 2,
            Self::Panic => 3,
        }
    }
}

/// The result of one boot.
#[derive(Debug)]
pub struct Outcome {
    /// Everything the console printed, `\r` removed.
    pub console: String,
    /// Moat's end line, if it printed one.
    pub exit: Option<MoatExit>,
    /// Whether the time limit ended the run.
    pub timed_out: bool,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Outcome {
    /// `./x run`'s exit status for this run under Moat: 124 when `--timeout` (`timeout`
    /// seconds) stopped QEMU, else what Moat's `MOAT-EXIT:` line says (1 without one).
    pub fn run_exit_code(&self, timeout: Option<u64>) -> std::process::ExitCode {
        if self.timed_out {
            eprintln!(
                "x: stopped QEMU after {} s (--timeout)",
                timeout.unwrap_or(0)
            );
            return std::process::ExitCode::from(124);
        }
        match self.exit {
            Some(exit) => std::process::ExitCode::from(exit.exit_status()),
            None => {
                eprintln!("x: QEMU ended without Moat's MOAT-EXIT line");
                std::process::ExitCode::from(1)
            }
        }
    }

    /// The console's lines.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.console.lines()
    }
}

/// Finds Moat's end line in console output.
pub fn parse_exit(console: &str) -> Option<MoatExit> {
    console.lines().find_map(|l| {
        l.trim()
            .strip_prefix("MOAT-EXIT: ")
            .and_then(|w| MoatExit::from_word(w.trim()))
    })
}

impl Machine {
    fn command(&self, mode: ConsoleMode) -> Command {
        self.command_of(Command::new("qemu-system-aarch64"), mode)
    }

    /// The machine's arguments added to `cmd` (a QEMU and its own first arguments).
    fn command_of(&self, mut cmd: Command, mode: ConsoleMode) -> Command {
        // highmem=off: nothing above RAM (no high PCIe window, no high redistributors), so that
        // a bare guest's access there is an architectural abort (SPEC §6), and Moat's machine
        // is the same board.
        let el2 = if self.el2 { "virtualization=on," } else { "" };
        let machine = format!("virt,{el2}gic-version={},highmem=off", self.gic_version);
        cmd.args(["-M", &machine, "-cpu", &self.cpu, "-no-reboot"]);
        cmd.arg("-smp").arg(self.smp.max(1).to_string());
        cmd.arg("-m").arg(format!("{}M", self.mem_mib));
        cmd.arg("-kernel").arg(&self.kernel);
        if let Some(initrd) = &self.initrd {
            cmd.arg("-initrd").arg(initrd);
        }
        if let Some(append) = &self.append {
            cmd.arg("-append").arg(append);
        }
        cmd.args(console_args(mode));
        cmd
    }

    /// Boots the machine and waits for it to end or for `limit` to pass.
    ///
    /// # Errors
    ///
    /// When QEMU cannot be started.
    pub fn run(&self, mode: ConsoleMode, limit: Option<Duration>) -> XResult<Outcome> {
        self.run_with(&[], mode, limit)
    }

    /// [`Machine::run`] with more QEMU arguments, e.g. a `-device loader` that puts a second
    /// image in memory (the AArch32 probe beside its EL2 shim).
    ///
    /// # Errors
    ///
    /// When QEMU cannot be started.
    pub fn run_with(
        &self,
        extra: &[String],
        mode: ConsoleMode,
        limit: Option<Duration>,
    ) -> XResult<Outcome> {
        self.run_until(extra, mode, limit, None)
    }

    /// [`Machine::run_with`] on the QEMU 10 of the cache ([`crate::qemu10`]) instead of the
    /// installed one: the machines whose SMMUv3 must translate at stage 2.
    ///
    /// # Errors
    ///
    /// When that QEMU cannot be fetched or started.
    pub fn run_on_qemu10(
        &self,
        extra: &[String],
        mode: ConsoleMode,
        limit: Option<Duration>,
    ) -> XResult<Outcome> {
        let qemu = crate::qemu10::qemu()?;
        let mut cmd = Command::new(qemu.binary());
        cmd.args(qemu.base_args());
        let mut cmd = self.command_of(cmd, mode);
        cmd.args(extra);
        run_command(cmd, mode, limit, None)
    }

    /// [`Machine::run_with`] for a machine whose VMs are given PCI functions (`pci`): QEMU 10
    /// ([`Machine::run_on_qemu10`]) with the SMMUv3 in front of the host bridge and no default
    /// NIC (which would take slot 1), then `extra`; without, the installed QEMU with `extra`.
    ///
    /// # Errors
    ///
    /// When QEMU cannot be fetched or started.
    pub fn run_for_pci(
        &self,
        pci: bool,
        extra: &[String],
        mode: ConsoleMode,
        limit: Option<Duration>,
    ) -> XResult<Outcome> {
        if !pci {
            return self.run_with(extra, mode, limit);
        }
        let mut args: Vec<String> = PCI_MACHINE_ARGS.iter().map(|a| (*a).into()).collect();
        args.extend_from_slice(extra);
        self.run_on_qemu10(&args, mode, limit)
    }

    /// [`Machine::run_with`] that also ends the run [`END_GRACE`] after the console first shows
    /// `end` (a guest's last line, for guests whose power-off may not end QEMU): such an end
    /// is no time-out.
    ///
    /// # Errors
    ///
    /// When QEMU cannot be started.
    pub fn run_until(
        &self,
        extra: &[String],
        mode: ConsoleMode,
        limit: Option<Duration>,
        end: Option<&str>,
    ) -> XResult<Outcome> {
        let mut cmd = self.command(mode);
        cmd.args(extra);
        run_command(cmd, mode, limit, end)
    }
}

/// What a machine whose VMs are given PCI functions adds to `virt`: its SMMUv3 in front of
/// the host bridge, and no default NIC (QEMU would put a virtio-net-pci at 00:01.0).
pub const PCI_MACHINE_ARGS: [&str; 4] = ["-M", "iommu=smmuv3", "-nic", "none"];

/// The console arguments of `mode`: the user's terminal, or the first serial port on stdout.
pub fn console_args(mode: ConsoleMode) -> &'static [&'static str] {
    match mode {
        ConsoleMode::Interactive => &["-nographic"],
        ConsoleMode::Captured | ConsoleMode::Scripted(_) | ConsoleMode::Answering(_) => {
            &["-display", "none", "-monitor", "none", "-serial", "stdio"]
        }
    }
}

/// Runs a QEMU command line made elsewhere (a firmware boot, another board) as
/// [`Machine::run_until`] runs its own: `cmd` must put the console on stdio
/// ([`console_args`]).
///
/// # Errors
///
/// When QEMU cannot be started.
pub fn run_command(
    mut cmd: Command,
    mode: ConsoleMode,
    limit: Option<Duration>,
    end: Option<&str>,
) -> XResult<Outcome> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    cmd.stdin(match mode {
        ConsoleMode::Interactive => Stdio::inherit(),
        ConsoleMode::Scripted(_) | ConsoleMode::Answering(_) => Stdio::piped(),
        ConsoleMode::Captured => Stdio::null(),
    });
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("cannot start qemu-system-aarch64: {e}")))?;
    let captured = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let captured = Arc::clone(&captured);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if mode == ConsoleMode::Interactive {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
                captured
                    .lock()
                    .expect("console buffer")
                    .extend_from_slice(&buf[..n]);
            }
        })
    };
    let mut script = Script::new(mode, child.stdin.take());
    let mut timed_out = false;
    let mut end_seen: Option<Instant> = None;
    loop {
        {
            let console = captured.lock().expect("console buffer");
            script.advance(&console);
            if end_seen.is_none() && end.is_some_and(|e| find(&console, e.as_bytes()).is_some()) {
                end_seen = Some(Instant::now());
            }
        }
        if child
            .try_wait()
            .map_err(|e| failed(format!("waiting for QEMU: {e}")))?
            .is_some()
        {
            break;
        }
        if end_seen.is_some_and(|t| t.elapsed() > END_GRACE) {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        if limit.is_some_and(|l| start.elapsed() > l) {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = reader.join();
    let bytes = captured.lock().expect("console buffer").clone();
    let console = String::from_utf8_lossy(&bytes).replace('\r', "");
    Ok(Outcome {
        exit: parse_exit(&console),
        console,
        timed_out,
        elapsed: start.elapsed(),
    })
}

/// How long [`Machine::run_until`] lets a guest run after its last line: time to power off.
pub const END_GRACE: Duration = Duration::from_secs(3);

/// A console script being played: the next step (or, answering, every prompt) and where in
/// the output to look for it.
struct Script {
    steps: &'static [ScriptStep],
    /// Every step answers each time its prompt shows ([`ConsoleMode::Answering`]).
    answering: bool,
    /// Steps taken (prompts answered).
    next: usize,
    searched_from: usize,
    input: Option<std::process::ChildStdin>,
}

impl Script {
    fn new(mode: ConsoleMode, input: Option<std::process::ChildStdin>) -> Self {
        let (steps, answering) = match mode {
            ConsoleMode::Scripted(steps) => (steps, false),
            ConsoleMode::Answering(steps) => (steps, true),
            _ => (&[][..], false),
        };
        Self {
            steps,
            answering,
            next: 0,
            searched_from: 0,
            input,
        }
    }

    /// Sends the next step's text once the console shows its pattern; answering, sends the
    /// answer to every prompt shown since the last call, in the order shown.
    fn advance(&mut self, console: &[u8]) {
        loop {
            let seen = &console[self.searched_from.min(console.len())..];
            let found = |step: &'static ScriptStep| {
                find(seen, step.wait_for.as_bytes()).map(|at| (at, step))
            };
            let hit = if self.answering {
                self.steps
                    .iter()
                    .filter_map(found)
                    .min_by_key(|&(at, _)| at)
            } else {
                self.steps.get(self.next).and_then(found)
            };
            let Some((at, step)) = hit else {
                return;
            };
            self.searched_from += at + step.wait_for.len();
            if let Some(input) = self.input.as_mut() {
                let _ = input.write_all(step.send.as_bytes());
                let _ = input.flush();
            }
            self.next += 1;
            if !self.answering {
                return;
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len().max(1))
        .position(|w| w == needle)
}

/// The physical address size of QEMU's CPU models (`ID_AA64MMFR0_EL1.PARange`), for the
/// models the host tool knows; `None` for others (Moat checks at boot anyway).
pub fn cpu_pa_bits(cpu: &str) -> Option<u32> {
    let model = cpu.split(',').next().unwrap_or(cpu);
    match model {
        "cortex-a53" | "a64fx" | "cortex-a76" | "cortex-a55" => Some(40),
        "cortex-a57" | "cortex-a72" => Some(44),
        "neoverse-n1" => Some(48),
        "max" => Some(52),
        _ => None,
    }
}

/// Checks that QEMU knows the CPU model of `cpu` (the part before any `,property=value`): the
/// models [`cpu_pa_bits`] knows are accepted at once, others are looked up in
/// `qemu-system-aarch64 -cpu help`. If QEMU cannot be asked, the check is left to QEMU itself.
///
/// # Errors
///
/// A usage error for a model QEMU does not list.
pub fn check_cpu(cpu: &str) -> XResult<()> {
    let model = cpu.split(',').next().unwrap_or(cpu);
    if cpu_pa_bits(model).is_some() {
        return Ok(());
    }
    let Ok(help) = Command::new("qemu-system-aarch64")
        .args(["-machine", "none", "-cpu", "help"])
        .stdin(Stdio::null())
        .output()
    else {
        return Ok(());
    };
    if !help.status.success() || cpu_listed(&String::from_utf8_lossy(&help.stdout), model) {
        return Ok(());
    }
    Err(crate::error::usage(format!(
        "--cpu {cpu}: QEMU has no CPU model '{model}' (qemu-system-aarch64 -cpu help lists them)"
    )))
}

/// Whether `-cpu help`'s list (a heading, then one model per line, indented, possibly with a
/// description after it) names `model`.
fn cpu_listed(help: &str, model: &str) -> bool {
    !model.is_empty()
        && help
            .lines()
            .filter(|l| l.starts_with(' '))
            .any(|l| l.split_whitespace().next() == Some(model))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPTS: &[ScriptStep] = &[
        ScriptStep {
            wait_for: "first?",
            send: "\n",
        },
        ScriptStep {
            wait_for: "again?",
            send: "\n",
        },
    ];

    #[test]
    fn a_script_takes_its_steps_in_order_once_each() {
        let mut script = Script::new(ConsoleMode::Scripted(PROMPTS), None);
        script.advance(b"again? first? again? first?");
        assert_eq!(script.next, 1, "one step per look");
        script.advance(b"again? first? again? first?");
        assert_eq!(script.next, 2);
        script.advance(b"again? first? again? first? again?");
        assert_eq!(script.next, 2, "a script ends with its last step");
    }

    #[test]
    fn answering_answers_every_prompt_each_time_it_shows() {
        let mut script = Script::new(ConsoleMode::Answering(PROMPTS), None);
        script.advance(b"again? x first? again?");
        assert_eq!(script.next, 3);
        script.advance(b"again? x first? again?");
        assert_eq!(script.next, 3, "nothing new shown");
        script.advance(b"again? x first? again? first?");
        assert_eq!(script.next, 4);
    }

    #[test]
    fn exit_line_is_found_among_console_output() {
        let console = "moat: hello\nguest says hi\nMOAT-EXIT: vm-stopped\n";
        assert_eq!(parse_exit(console), Some(MoatExit::VmStopped));
    }

    #[test]
    fn no_exit_line_means_none() {
        assert_eq!(parse_exit("MOAT-EXIT: something-else\nmoat: x\n"), None);
    }

    #[test]
    fn guest_ending_the_run_is_success_and_failures_are_not() {
        assert_eq!(MoatExit::PowerOff.exit_status(), 0);
        assert_eq!(MoatExit::Reset.exit_status(), 0);
        assert_ne!(MoatExit::VmStopped.exit_status(), 0);
        assert_ne!(MoatExit::Panic.exit_status(), 0);
    }

    #[test]
    fn a_cpu_model_is_listed_only_by_its_own_line() {
        let help = "Available CPUs:\n  a64fx\n  cortex-a15\n  max\n  host  KVM only\n";
        assert!(cpu_listed(help, "cortex-a15"));
        assert!(cpu_listed(help, "host"));
        assert!(!cpu_listed(help, "cortex"));
        assert!(!cpu_listed(help, "Available"));
        assert!(!cpu_listed(help, ""));
    }

    #[test]
    fn cpu_options_do_not_hide_the_model() {
        assert_eq!(cpu_pa_bits("max,pauth-impdef=on"), Some(52));
        assert_eq!(cpu_pa_bits("cortex-a72"), Some(44));
        assert_eq!(cpu_pa_bits("cortex-a15"), None);
    }
}
