//! `./x`: Moat's host tool. Builds the EL2 binary and the guests, assembles a VM from its
//! description and a guest image, boots it under QEMU, and runs every test.
//!
//! `./x` (the shell bootstrap at the repository root) installs what a fresh Debian machine
//! lacks and then runs this program.

mod benchmarks;
mod board;
mod bootbench;
mod build;
mod chaos;
mod cli;
mod debian;
mod difftest;
mod error;
mod exitbench;
mod exittrace;
mod explain;
mod fuzz;
mod harness;
mod initramfs;
mod input;
mod iobench;
mod kut;
mod kvm;
mod linux;
mod neighbour;
mod netbench;
mod qemu;
mod qemu10;
mod relocs;
mod scratch;
mod sweep;
mod system;
mod uboot;
mod vm;

use clap::Parser;
use clap::error::ErrorKind;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return command_line_error(&e),
    };
    match cli.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("x: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// A command line clap refused: one line naming the problem and exit status 2, like every
/// other refusal (clap's own report adds tips and a usage block on further lines). `--help`,
/// `--version` and a missing command print clap's full text, which is what was asked for.
fn command_line_error(e: &clap::Error) -> ExitCode {
    let full = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            | ErrorKind::MissingSubcommand
    );
    if full {
        e.exit();
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("x: error: {first} (./x --help lists the commands and options)");
    ExitCode::from(2)
}
