//! `./x`: Moat's host tool. Builds the EL2 binary and the guests, assembles a VM from its
//! description and a guest image, boots it under QEMU, and runs every test.
//!
//! `./x` (the shell bootstrap at the repository root) installs what a fresh Debian machine
//! lacks and then runs this program.

mod bootbench;
mod build;
mod cli;
mod difftest;
mod error;
mod explain;
mod harness;
mod initramfs;
mod kvm;
mod linux;
mod qemu;
mod vm;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("x: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
