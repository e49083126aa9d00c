//! Builds the KVM runner (`kvm-runner/`) as a static `aarch64-unknown-linux-gnu` program, and
//! the check guest (`kvm-runner/guest/kvmcheck.s`) as a raw image.
//!
//! The machines have no rustup targets (../shared/TOOLCHAIN.md): the runner is built with
//! Debian's `rustc-web` (`RUSTC=/usr/bin/rustc`, else Debian's cargo picks rustup's rustc) and
//! Debian's arm64 standard library, `libstd-rust-web-dev:arm64` at exactly the compiler's
//! version, fetched with `apt-get download` into the Linux cache and passed with `--sysroot`;
//! `+crt-static` with `aarch64-linux-gnu-gcc` (./x installs `gcc-aarch64-linux-gnu` and
//! `libc6-dev-arm64-cross`) as the linker gives a binary that runs in an initramfs without a C
//! library. Cargo's own caching makes a rebuild a no-op; the sysroot is fetched once per
//! compiler version.

use crate::build::{out_dir, repo_root, run_step};
use crate::error::{XResult, failed};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The runner's target.
pub const TARGET: &str = "aarch64-unknown-linux-gnu";
/// The runner's binary name (`kvm-runner/Cargo.toml`).
pub const RUNNER: &str = "moat-kvm-runner";
/// Debian's compiler package, whose version the arm64 standard library must match.
const RUSTC_PACKAGE: &str = "rustc-web";
/// Debian's standard library for a target, as rlibs under `usr/lib/rustlib/<target>/lib`.
const STD_PACKAGE: &str = "libstd-rust-web-dev";
/// The cross linker (`gcc-aarch64-linux-gnu`).
const LINKER: &str = "aarch64-linux-gnu-gcc";

/// What the KVM side needs built.
#[derive(Clone, Debug)]
pub struct KvmArtifacts {
    /// The static runner.
    pub runner: PathBuf,
    /// The check guest's raw image.
    pub check_guest: PathBuf,
}

/// Builds the runner and the check guest (each a no-op when up to date).
///
/// # Errors
///
/// When a tool is missing, the sysroot cannot be fetched, or a build fails.
pub fn build() -> XResult<KvmArtifacts> {
    let runner = build_runner()?;
    let check_guest = assemble_check_guest()?;
    Ok(KvmArtifacts {
        runner,
        check_guest,
    })
}

/// The installed version of a Debian package.
fn installed_version(package: &str) -> XResult<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .map_err(|e| failed(format!("cannot start dpkg-query: {e}")))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !version.is_empty() {
        Ok(version)
    } else {
        Err(failed(format!(
            "{package} is not installed (./x installs it)"
        )))
    }
}

/// The private sysroot: Debian's arm64 standard library at the compiler's version.
fn sysroot() -> XResult<PathBuf> {
    let version = installed_version(RUSTC_PACKAGE)?;
    let tree = crate::linux::arm64_package(STD_PACKAGE, &version)?;
    let sysroot = tree.join("usr");
    let lib = sysroot.join("lib/rustlib").join(TARGET).join("lib");
    if lib.is_dir() {
        Ok(sysroot)
    } else {
        Err(failed(format!(
            "{STD_PACKAGE} {version} (arm64) has no {}",
            lib.display()
        )))
    }
}

/// The flags for the runner's target: the sysroot, and a static C library.
fn encoded_rustflags(sysroot: &Path) -> String {
    [
        "--sysroot".to_string(),
        sysroot.display().to_string(),
        "-C".into(),
        "target-feature=+crt-static".into(),
    ]
    .join("\x1f")
}

/// `cargo build` of `kvm-runner/` with Debian's toolchain; returns the binary.
fn build_runner() -> XResult<PathBuf> {
    let mut cmd = target_cargo()?;
    cmd.args([
        "build",
        "--release",
        "--quiet",
        "--locked",
        "--target",
        TARGET,
    ]);
    run_step(&mut cmd, "building the KVM runner")?;
    Ok(runner_dir()
        .join("target")
        .join(TARGET)
        .join("release")
        .join(RUNNER))
}

/// The runner's checks for `./x test`: formatting, and lints and unit tests of its pure parts
/// on the host (rustup's toolchain), and lints of the whole program for its target (Debian's).
///
/// # Errors
///
/// The first check that fails.
pub fn static_checks() -> XResult<()> {
    let manifest = runner_dir().join("Cargo.toml");
    let host = |args: &[&str], what: &str| {
        let mut cmd = crate::build::host_cargo();
        cmd.args(args).arg("--manifest-path").arg(&manifest);
        run_step(&mut cmd, what)
    };
    host(&["fmt", "--check"], "cargo fmt --check (kvm-runner)")?;
    host(&["test", "--quiet", "--locked"], "KVM runner unit tests")?;
    let mut cmd = crate::build::host_cargo();
    cmd.args([
        "clippy",
        "--quiet",
        "--locked",
        "--all-targets",
        "--manifest-path",
    ])
    .arg(&manifest)
    .args(["--", "-D", "warnings"]);
    run_step(&mut cmd, "cargo clippy (kvm-runner, host)")?;
    let mut cmd = target_cargo()?;
    // Debian's clippy, found before rustup's proxies (whose clippy is another compiler's).
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("/usr/bin:{path}"))
        .args([
            "clippy",
            "--release",
            "--quiet",
            "--locked",
            "--target",
            TARGET,
        ])
        .args(["--", "-D", "warnings"]);
    run_step(&mut cmd, "cargo clippy (kvm-runner, aarch64 Linux)")
}

fn runner_dir() -> PathBuf {
    repo_root().join("kvm-runner")
}

/// Debian's cargo in `kvm-runner/`, set up for the runner's target: Debian's rustc, the
/// private sysroot, a static C library, the cross linker; nothing a parent cargo or rustup set.
fn target_cargo() -> XResult<Command> {
    if Command::new(LINKER).arg("--version").output().is_err() {
        return Err(failed(format!(
            "{LINKER} is missing (./x installs gcc-aarch64-linux-gnu)"
        )));
    }
    let sysroot = sysroot()?;
    let mut cmd = Command::new("/usr/bin/cargo");
    cmd.current_dir(runner_dir());
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTDOC",
        "CARGO",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUSTC", "/usr/bin/rustc")
        .env("CARGO_ENCODED_RUSTFLAGS", encoded_rustflags(&sysroot))
        .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", LINKER);
    Ok(cmd)
}

/// Assembles and links the check guest at `0x4008_0000` and flattens it.
fn assemble_check_guest() -> XResult<PathBuf> {
    let source = repo_root().join("kvm-runner/guest/kvmcheck.s");
    let out = out_dir().join("kvm");
    std::fs::create_dir_all(&out)
        .map_err(|e| failed(format!("creating {}: {e}", out.display())))?;
    let (object, elf, image) = (
        out.join("kvmcheck.o"),
        out.join("kvmcheck.elf"),
        out.join("kvmcheck.bin"),
    );
    let tool = |name: &str| Command::new(format!("aarch64-linux-gnu-{name}"));
    run_step(
        tool("as").arg(&source).arg("-o").arg(&object),
        "assembling the KVM check guest",
    )?;
    run_step(
        tool("ld")
            .args(["-Ttext=0x40080000", "-e", "_start", "-o"])
            .arg(&elf)
            .arg(&object),
        "linking the KVM check guest",
    )?;
    run_step(
        tool("objcopy").args(["-O", "binary"]).arg(&elf).arg(&image),
        "flattening the KVM check guest",
    )?;
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_flags_name_the_sysroot_and_a_static_c_library_as_separate_arguments() {
        let flags = encoded_rustflags(Path::new("/cache/std/usr"));
        let args: Vec<&str> = flags.split('\x1f').collect();
        assert_eq!(
            args,
            [
                "--sysroot",
                "/cache/std/usr",
                "-C",
                "target-feature=+crt-static"
            ]
        );
    }
}
