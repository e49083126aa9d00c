//! `moat-kvm-runner`: a small KVM VMM for AArch64 Linux, Moat's own, so that `./x bench exits
//! --kvm` can run the same bare guest under Linux KVM as under Moat, in the same QEMU.
//!
//! It maps guest RAM at `0x4000_0000`, loads a raw image at RAM base + `0x80000` and a device
//! tree blob (the one xtask generates for Moat's VM of the same shape), creates the vCPUs with
//! in-kernel PSCI and the in-kernel vGICv3 on QEMU virt's addresses, and answers the PL011 at
//! `0x0900_0000` itself with Moat's PL011 model. The guest's console goes to stdout.
//!
//! Exit status: 0 when the guest powered off (PSCI `SYSTEM_OFF`); 1 when it ended any other way
//! (the reason on stderr); 2 for a bad command line; 3 when the VM could not be built.
//!
//! Built for `aarch64-unknown-linux-gnu` only as a program; the pure parts (arguments, memory
//! layout, MMIO bus) also build and test on the host.

#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
mod vm;

use moat_kvm_runner::args::{self, Args, ArgsError};
use moat_kvm_runner::layout;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(ArgsError::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("moat-kvm-runner: {e}\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("moat-kvm-runner: {e}");
            ExitCode::from(3)
        }
    }
}

/// Reads the files, checks the layout and runs the guest.
fn run(args: &Args) -> Result<ExitCode, String> {
    let read =
        |path: &str, what: &str| std::fs::read(path).map_err(|e| format!("{what} {path}: {e}"));
    let image = read(&args.image, "guest image")?;
    let dtb = read(&args.dtb, "device tree")?;
    let layout = args
        .layout(image.len() as u64, dtb.len() as u64)
        .map_err(|e| e.to_string())?;
    run_vm(args, &layout, &image, &dtb)
}

#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
fn run_vm(
    args: &Args,
    layout: &layout::Layout,
    image: &[u8],
    dtb: &[u8],
) -> Result<ExitCode, String> {
    match vm::run(layout, args, image, dtb)? {
        vm::End::PowerOff => Ok(ExitCode::SUCCESS),
        vm::End::Unexpected(why) => {
            eprintln!("moat-kvm-runner: {why}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "linux")))]
fn run_vm(
    _args: &Args,
    _layout: &layout::Layout,
    _image: &[u8],
    _dtb: &[u8],
) -> Result<ExitCode, String> {
    Err("KVM for AArch64 needs an aarch64 Linux host".into())
}
