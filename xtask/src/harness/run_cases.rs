//! `./x run` as a user runs it, under QEMU: an initrd beside a `--guest` image (found where
//! the placement rule puts it, and read by kvm-unit-tests as their environment), and two runs at the same time in one checkout, each booting its
//! own VM from its own private directory.

use super::{Assembled, Tally, assemble_guest, expect_status, path_str};
use crate::error::{XResult, failed};
use crate::scratch::{self, Scratch};
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};

/// Prints the bytes at RAM base + 64 MiB (where a 128 MiB VM's initrd goes when the image is
/// small: RAM base + min(RAM / 2, 128 MiB)) up to the first newline, at most 64, then powers
/// off.
const INITRD_READER: &str = "
    movz x1, #0x0900, lsl #16
    movz x3, #0x4400, lsl #16
    mov x4, #64
1:  ldrb w2, [x3], #1
    str w2, [x1]
    cmp w2, #'\\n'
    b.eq 2f
    subs x4, x4, #1
    b.ne 1b
2:  movz x0, #0x8400, lsl #16
    movk x0, #0x0008
    hvc #0
3:  b 3b
";

/// The console text of the initrd case.
const INITRD_TEXT: &[u8] = b"initrd seen by a raw --guest\n";

/// `./x run --guest RAW --initrd FILE`: the guest finds the file's bytes where the rule puts
/// them.
pub(super) fn initrd_with_guest(tally: &mut Tally) -> XResult<()> {
    let guest = assemble_guest("initrd-reader", INITRD_READER)?;
    let dir = Scratch::new("test")?;
    let initrd = dir.join("initrd.txt");
    std::fs::write(&initrd, INITRD_TEXT)
        .map_err(|e| failed(format!("{}: {e}", initrd.display())))?;
    let out = super::cli(&[
        "run",
        "--guest",
        path_str(&guest),
        "--initrd",
        path_str(&initrd),
        "--timeout",
        "30",
    ])?;
    let verdict = expect_status(&out, 0).and_then(|()| {
        let want = String::from_utf8_lossy(INITRD_TEXT);
        if String::from_utf8_lossy(&out.stdout).contains(want.trim_end()) {
            Ok(())
        } else {
            Err(format!("the console does not show {want:?}"))
        }
    });
    tally.record(
        "run_places_an_initrd_for_a_raw_guest_at_ram_base_plus_half_ram",
        "max",
        None,
        verdict,
    );
    Ok(())
}

/// kvm-unit-tests read their environment (`KEY=VALUE` lines) from the initrd that `/chosen`
/// names (their README, `../shared/kvm-unit-tests`): `selftest` given a line that is no
/// variable says so, which shows it found and read the file, and its setup checks still pass.
pub(super) fn kvm_unit_tests_environment(tally: &mut Tally) -> XResult<()> {
    const NAME: &str = "run_gives_kvm_unit_tests_their_environment_through_the_initrd";
    let image = crate::build::repo_root().join("../shared/kvm-unit-tests/arm64/selftest.flat");
    if !image.is_file() {
        println!("NOT RUN {NAME}: {} is not there", image.display());
        return Ok(());
    }
    let dir = Scratch::new("test")?;
    let env = dir.join("env");
    std::fs::write(&env, b"NOT_A_VARIABLE\n")
        .map_err(|e| failed(format!("{}: {e}", env.display())))?;
    let out = super::cli(&[
        "run",
        "--guest",
        path_str(&image),
        "--initrd",
        path_str(&env),
        "--append",
        "setup smp=1 mem=128",
        "--timeout",
        "30",
    ])?;
    let console = String::from_utf8_lossy(&out.stdout);
    let verdict = expect_status(&out, 0).and_then(|()| {
        [
            "Invalid environment variable: NOT_A_VARIABLE",
            "EXIT: STATUS=1",
        ]
        .into_iter()
        .find(|want| !console.contains(want))
        .map_or(Ok(()), |want| {
            Err(format!("the console does not show {want:?}"))
        })
    });
    tally.record(NAME, "max", None, verdict);
    Ok(())
}

/// Prints its name (kept as data, so that the bundle carrying it can be recognised), then
/// waits for a byte on the console before powering off: the test keeps both runs alive at
/// once.
fn waiting_guest(name: &str) -> String {
    format!(
        "
    movz x1, #0x0900, lsl #16
    adr x3, name
1:  ldrb w2, [x3], #1
    cbz w2, 2f
    str w2, [x1]
    b 1b
2:  ldr w2, [x1, #0x18]
    tbnz w2, #4, 2b
    movz x0, #0x8400, lsl #16
    movk x0, #0x0008
    hvc #0
3:  b 3b
name: .asciz \"{name}\\n\"
"
    )
}

/// One `./x run` in the background, its console read as it comes.
struct Running {
    name: &'static str,
    child: Child,
    console: Vec<u8>,
    _guest: Assembled,
}

impl Running {
    fn start(name: &'static str) -> XResult<Self> {
        let guest = assemble_guest(&name.to_lowercase(), &waiting_guest(name))?;
        let exe = std::env::current_exe()
            .map_err(|e| failed(format!("finding ./x's own binary: {e}")))?;
        let child = Command::new(exe)
            .args(["run", "--guest", path_str(&guest), "--timeout", "60"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("starting ./x run: {e}")))?;
        Ok(Self {
            name,
            child,
            console: Vec::new(),
            _guest: guest,
        })
    }

    /// Reads the console until the guest has printed its name (the run's `--timeout` bounds
    /// the wait: QEMU is stopped and the console ends).
    fn wait_for_name(&mut self) -> Result<(), String> {
        let stdout = self.child.stdout.as_mut().ok_or("no console")?;
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&self.console).contains(self.name) {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => return Err(format!("{} never printed its name", self.name)),
                Ok(n) => self.console.extend_from_slice(&buf[..n]),
            }
        }
        Ok(())
    }

    /// The private directory of this run (named by its process id) and its bundle.
    fn bundle(&self) -> Result<Vec<u8>, String> {
        let prefix = format!("run-{}-", self.child.id());
        let entries = std::fs::read_dir(scratch::root()).map_err(|e| e.to_string())?;
        let mut dirs = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix));
        let dir = dirs
            .next()
            .ok_or_else(|| format!("{} has no directory of its own", self.name))?;
        std::fs::read(dir.path().join("vm.bundle")).map_err(|e| format!("{}: {e}", self.name))
    }

    /// Lets the guest power off; returns its exit status and whole console.
    fn finish(mut self) -> Result<(i32, String), String> {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = stdin.write_all(b"\r");
            let _ = stdin.flush();
        }
        if let Some(mut stdout) = self.child.stdout.take() {
            let _ = stdout.read_to_end(&mut self.console);
        }
        let status = self.child.wait().map_err(|e| e.to_string())?;
        Ok((
            status.code().unwrap_or(-1),
            String::from_utf8_lossy(&self.console).into_owned(),
        ))
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Two `./x run --guest` of different guests at the same time: while both VMs run, each run
/// has a directory of its own holding a bundle with its own guest only; each console shows its
/// own guest; both directories are gone when the runs end.
pub(super) fn two_runs_at_once(tally: &mut Tally) -> XResult<()> {
    let names = ["ALPHA-GUEST", "BRAVO-GUEST"];
    let mut alpha = Running::start(names[0])?;
    let mut bravo = None;
    // Both VMs are up (each printed its name and waits) before the bundles are looked at.
    let live = alpha.wait_for_name().and_then(|()| {
        let run = bravo.insert(Running::start(names[1]).map_err(|e| e.to_string())?);
        run.wait_for_name()?;
        let runs = [&alpha, &*run];
        for (run, other) in [(runs[0], runs[1]), (runs[1], runs[0])] {
            let bundle = run.bundle()?;
            if !contains(&bundle, run.name) || contains(&bundle, other.name) {
                return Err(format!(
                    "{}'s bundle does not hold its guest alone",
                    run.name
                ));
            }
        }
        Ok(())
    });
    let pids: Vec<u32> = [Some(&alpha), bravo.as_ref()]
        .into_iter()
        .flatten()
        .map(|r| r.child.id())
        .collect();
    let ended = [Some(alpha.finish()), bravo.map(Running::finish)];
    let verdict = live.and_then(|()| {
        for (end, (name, other)) in ended
            .into_iter()
            .zip([(names[0], names[1]), (names[1], names[0])])
        {
            let (status, console) = end.ok_or("not started")??;
            if status != 0 || !console.contains(name) || console.contains(other) {
                return Err(format!("{name}: status {status}, console {console:?}"));
            }
        }
        let left = std::fs::read_dir(scratch::root())
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| pids.iter().any(|pid| n.starts_with(&format!("run-{pid}-"))))
            .collect::<Vec<_>>();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("directories left behind: {left:?}"))
        }
    });
    tally.record(
        "two_runs_at_once_each_boot_their_own_vm_from_their_own_directory",
        "max",
        None,
        verdict,
    );
    Ok(())
}
