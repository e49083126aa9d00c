//! Moat on QEMU's model of the Xilinx ZCU102 board (`-M xlnx-zcu102,virtualization=on`): four
//! Cortex-A53s entered at EL2, DDR from address 0, a GIC-400, Cadence UARTs. QEMU loads Moat
//! as an arm64 `Image` at RAM base + `text_offset` (0x200000), the bundle as the initrd, and
//! the board's device tree from Debian's kernel package (`-dtb`), which it edits: the memory
//! node becomes one range of `-m` (so the machine runs with 2 GiB, below the devices at
//! 0xF9..., never 4 GiB), `/chosen` gains the initrd. The first serial port is the UART that
//! tree's `stdout-path` names (`serial0`, 0xFF000000).

use crate::build;
use crate::error::XResult;
use crate::qemu::{self, ConsoleMode, Outcome};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The board's RAM in MiB: 2 GiB, the low DDR range (0 to 0x8000_0000) of its device tree.
pub const ZCU102_MEM_MIB: u64 = 2048;

/// The ZCU102 rev 1.0 device tree of Debian 12's `linux-image-6.1.0-57-arm64` (6.1.192-3),
/// as committed for the platform crate's tests (`crates/platform/testdata/README.md`).
pub fn zcu102_dtb() -> PathBuf {
    build::repo_root().join("crates/platform/testdata/zynqmp-zcu102-rev1.0.dtb")
}

/// One boot of Moat on the ZCU102 model.
#[derive(Clone, Debug)]
pub struct Zcu102<'a> {
    /// Moat's flat `Image`.
    pub moat: &'a Path,
    /// The VM bundle (`-initrd`).
    pub bundle: &'a Path,
    /// The board's device tree (`-dtb`).
    pub dtb: &'a Path,
}

impl Zcu102<'_> {
    /// Boots and waits for the end or `limit`.
    ///
    /// # Errors
    ///
    /// When QEMU cannot be started.
    pub fn run(&self, mode: ConsoleMode, limit: Option<Duration>) -> XResult<Outcome> {
        let mut cmd = Command::new("qemu-system-aarch64");
        cmd.args(["-M", "xlnx-zcu102,virtualization=on", "-no-reboot"]);
        cmd.arg("-m").arg(format!("{ZCU102_MEM_MIB}M"));
        cmd.arg("-kernel").arg(self.moat);
        cmd.arg("-dtb").arg(self.dtb);
        cmd.arg("-initrd").arg(self.bundle);
        // The board's DisplayPort has an audio device; without a host sound card QEMU 7.2 would
        // try ALSA and complain on every boot. (Its `-audiodev` is not wired to that device.)
        cmd.env("QEMU_AUDIO_DRV", "none");
        cmd.args(qemu::console_args(mode));
        qemu::run_command(cmd, mode, limit, None)
    }
}
