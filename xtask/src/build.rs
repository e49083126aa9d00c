//! Builds: the host workspace's checks and the bare-metal workspace (`bare/`: Moat's EL2
//! binary and the test guests), and the flat `Image` files QEMU boots.

use crate::error::{XResult, failed};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository")
        .into()
}

/// Where the host tool puts what it makes (images, bundles, logs).
pub fn out_dir() -> PathBuf {
    repo_root().join("target").join("moat")
}

/// The test guests built from `bare/guests/`, by binary name.
pub const GUESTS: [&str; 9] = [
    "moat-guest-hello",
    "moat-guest-partner",
    "moat-guest-selftest",
    "moat-guest-exitbench",
    "moat-guest-probe",
    "moat-guest-shim32",
    "moat-guest-sysregsweep",
    "moat-guest-chaos",
    "moat-guest-pcidma",
];

/// The AArch32 guests are built for this target.
const AARCH32_TARGET: &str = "armv7a-none-eabi";
/// The AArch32 probe of the differential suite (`bare/guests/probe32`).
pub const PROBE32: &str = "moat-guest-probe32";

/// The bare-metal target every image is built for.
const BARE_TARGET: &str = "aarch64-unknown-none-softfloat";

/// What a bare-metal build produced.
#[derive(Clone, Debug)]
pub struct Artifacts {
    /// Moat's flat arm64 `Image`.
    pub moat: PathBuf,
    /// Moat's ELF file, with its symbols and debug information.
    pub moat_elf: PathBuf,
    /// The directory holding each guest's flat `Image` as `<name>.bin`.
    pub guests: PathBuf,
}

impl Artifacts {
    /// The flat image of the guest named `name`.
    pub fn guest(&self, name: &str) -> PathBuf {
        self.guests.join(format!("{name}.bin"))
    }
}

/// A `cargo` command for the host workspace (rustup's toolchain).
pub fn host_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(repo_root());
    cmd
}

/// A `cargo` command for the bare-metal workspace. It must run inside `bare/` so that cargo
/// reads `bare/rust-toolchain.toml` and `bare/.cargo/config.toml`, and without the variables
/// a parent cargo or rustup sets, which would pin the wrong toolchain.
pub fn bare_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(repo_root().join("bare"));
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTDOC",
        "CARGO",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cmd`, failing with `what` in the message when it does not succeed.
pub fn run_step(cmd: &mut Command, what: &str) -> XResult<()> {
    let status = cmd
        .status()
        .map_err(|e| failed(format!("{what}: cannot start {cmd:?}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(failed(format!("{what} failed ({status})")))
    }
}

/// Builds Moat and the guests (release) and converts them to flat images.
///
/// # Errors
///
/// When cargo or objcopy fails.
pub fn build_bare() -> XResult<Artifacts> {
    run_step(
        bare_cargo().args(["build", "--release", "--quiet"]),
        "building Moat and the guests",
    )?;
    let elf_dir = repo_root()
        .join("bare/target")
        .join(BARE_TARGET)
        .join("release");
    let out = out_dir();
    let guests = out.join("guests");
    std::fs::create_dir_all(&guests)
        .map_err(|e| failed(format!("creating {}: {e}", guests.display())))?;
    let moat = out.join("moat.bin");
    check_relocations(&elf_dir.join("moat"))?;
    objcopy(&elf_dir.join("moat"), &moat)?;
    for guest in GUESTS {
        objcopy(&elf_dir.join(guest), &guests.join(format!("{guest}.bin")))?;
    }
    build_aarch32_probe(&guests)?;
    Ok(Artifacts {
        moat,
        moat_elf: elf_dir.join("moat"),
        guests,
    })
}

/// Refuses a Moat ELF whose relocations its boot code cannot apply (`relocs.rs`).
fn check_relocations(elf: &Path) -> XResult<()> {
    let bytes =
        std::fs::read(elf).map_err(|e| failed(format!("reading {}: {e}", elf.display())))?;
    crate::relocs::check(&bytes)
        .map(|_| ())
        .map_err(|e| failed(format!("{} cannot relocate itself: {e}", elf.display())))
}

/// Builds the AArch32 probe for its own target (a workspace-wide build makes it an empty stub:
/// cargo's per-package targets do not work with build-std) and keeps both the ELF (Moat loads
/// it by its program headers) and the flat image (QEMU's loader places it for the bare
/// reference).
fn build_aarch32_probe(guests: &Path) -> XResult<()> {
    run_step(
        bare_cargo().args([
            "build",
            "--release",
            "--quiet",
            "-p",
            PROBE32,
            "--target",
            AARCH32_TARGET,
        ]),
        "building the AArch32 probe",
    )?;
    let elf = repo_root()
        .join("bare/target")
        .join(AARCH32_TARGET)
        .join("release")
        .join(PROBE32);
    let kept = guests.join(format!("{PROBE32}.elf"));
    replace(&kept, |partial| {
        std::fs::copy(&elf, partial)
            .map(|_| ())
            .map_err(|e| failed(format!("copying {}: {e}", elf.display())))
    })?;
    objcopy(&elf, &guests.join(format!("{PROBE32}.bin")))
}

/// `objcopy -O binary`: the loadable segments as one flat file from the first one's address.
fn objcopy(elf: &Path, bin: &Path) -> XResult<()> {
    replace(bin, |partial| {
        run_step(
            Command::new("aarch64-linux-gnu-objcopy")
                .arg("-O")
                .arg("binary")
                .arg(elf)
                .arg(partial),
            &format!("converting {} to a flat image", elf.display()),
        )
    })
}

/// Makes `path` with `make` (given a temporary name beside it) and renames the result into
/// place: two `./x` building at once each write their own file, and a QEMU that another run
/// started meanwhile reads a whole image, the old or the new, never one half-written (objcopy
/// writes its output in place).
pub fn replace(path: &Path, make: impl FnOnce(&Path) -> XResult<()>) -> XResult<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(format!(".{}.partial", std::process::id()));
    let partial = PathBuf::from(partial);
    let made = make(&partial).and_then(|()| {
        std::fs::rename(&partial, path)
            .map_err(|e| failed(format!("writing {}: {e}", path.display())))
    });
    if made.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    made
}
