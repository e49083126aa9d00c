//! The Debian VM's machine, the same under Moat as on bare QEMU: its CPU, RAM, kernel command
//! line and the two PCI functions on QEMU's command line ([`device_args`]), and [`BareDebian`],
//! the VM booted on bare QEMU (also by `crate::linux::rootfs` to finish making the image).
//! A leaf of `crate::debian`, so that the image builder and the system runner can use it
//! without depending on the test and the benchmark scripts.

use crate::error::XResult;
use crate::linux::{self, LinuxGuest};
use crate::qemu::{self, ConsoleMode, Outcome};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Where QEMU virt (and `configs/debian.toml`) puts the PL011.
pub const UART: u64 = 0x0900_0000;
/// The CPU model (pointer authentication by QEMU's cheap algorithm, as the tests use).
pub const CPU: &str = "max,pauth-impdef=on";
/// vCPUs.
pub const SMP: u32 = 2;
/// The VM's RAM.
pub const MEM_MIB: u64 = 1024;
/// The PCI slot of the virtio-net-pci card (`00:01.0`, the one `configs/debian.toml` lists).
pub const NET_SLOT: u8 = 1;
/// The PCI slot of the virtio-blk-pci disk (`00:02.0`).
pub const BLK_SLOT: u8 = 2;
/// The shell prompt of root in the image (`root@<host name>:~# `).
pub const PROMPT: &str = ":~# ";

/// The kernel command line (also `configs/debian.toml`'s `bootargs`): the console on the
/// PL011, the root file system on the virtio-blk disk, mounted read-write by the initramfs.
pub fn bootargs(uart: u64) -> String {
    format!("{} root=/dev/vda rw", linux::default_append(uart))
}

/// How QEMU opens the disk image (`-drive` options).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskMode {
    /// Writes reach the image (the host's page cache in between).
    Persistent,
    /// Writes go to a temporary overlay QEMU drops when it ends (`snapshot=on`): the tests and
    /// benchmarks leave the cached image as it was, so every run starts from the same disk and
    /// several may run at once. A guest reboot keeps the overlay (one QEMU run).
    Snapshot,
    /// Host flushes ignored (`cache=unsafe`): for the image's second stage, whose disk is thrown
    /// away if anything fails.
    Unsafe,
}

impl DiskMode {
    fn options(self) -> &'static str {
        match self {
            Self::Persistent => "cache=writeback",
            Self::Snapshot => "cache=writeback,snapshot=on",
            Self::Unsafe => "cache=unsafe",
        }
    }
}

/// The QEMU arguments of the VM's two PCI functions: the disk image `disk` (opened as `mode`
/// says) as virtio-blk-pci and a virtio-net-pci card on QEMU's user network, and no default
/// network card.
pub fn device_args(disk: &Path, mode: DiskMode) -> Vec<String> {
    let virtio = "disable-legacy=on,iommu_platform=on";
    [
        "-nic".to_string(),
        "none".into(),
        "-drive".into(),
        format!(
            "if=none,id=root,format=raw,{},file={}",
            mode.options(),
            disk.display()
        ),
        "-device".into(),
        format!("virtio-blk-pci,drive=root,addr={BLK_SLOT:#x}.0,{virtio}"),
        "-netdev".into(),
        "user,id=net".into(),
        "-device".into(),
        format!("virtio-net-pci,netdev=net,addr={NET_SLOT:#x}.0,{virtio}"),
    ]
    .into()
}

/// `-icount shift=0,sleep=off`: every instruction is 1 ns of virtual time, idle time jumps to
/// the next timer deadline.
pub const ICOUNT: [&str; 2] = ["-icount", "shift=0,sleep=off"];

/// The Debian VM on bare QEMU.
pub struct BareDebian<'a> {
    /// The kernel and the root initramfs.
    pub linux: &'a LinuxGuest,
    /// The root file system image.
    pub disk: &'a Path,
    /// The kernel command line.
    pub append: &'a str,
    /// How QEMU opens the disk.
    pub disk_mode: DiskMode,
    /// Whether a guest reboot restarts the machine (else it ends QEMU).
    pub reboot: bool,
    /// Whether to run under [`ICOUNT`].
    pub icount: bool,
    /// The device tree Moat gives the VM (`configs/debian.toml`'s): with it, the machine is the
    /// Moat side's, like with like — the same QEMU 10 binary, the guest booted on Moat's tree
    /// (`-dtb`: no devices but the VM's, the same PCIe bridge and `interrupt-map`). Without it,
    /// the installed QEMU and its own tree (the image's second stage, which must not depend on
    /// Moat).
    pub moat_dtb: Option<&'a Path>,
}

impl BareDebian<'_> {
    /// Boots it and waits for QEMU to end (the guest powers off) or `limit` to pass.
    ///
    /// # Errors
    ///
    /// When QEMU cannot be started.
    pub fn run(&self, mode: ConsoleMode, limit: Option<Duration>) -> XResult<Outcome> {
        let mut cmd = match self.moat_dtb {
            Some(dtb) => {
                let qemu = crate::qemu10::qemu()?;
                let mut cmd = Command::new(qemu.binary());
                cmd.args(qemu.base_args());
                cmd.arg("-dtb").arg(dtb);
                cmd
            }
            None => Command::new("qemu-system-aarch64"),
        };
        cmd.args(["-M", "virt,gic-version=3,highmem=off,its=off", "-cpu", CPU]);
        cmd.arg("-smp").arg(SMP.to_string());
        cmd.arg("-m").arg(format!("{MEM_MIB}M"));
        cmd.arg("-kernel").arg(&self.linux.kernel);
        cmd.arg("-initrd").arg(&self.linux.initramfs);
        cmd.arg("-append").arg(self.append);
        if !self.reboot {
            cmd.arg("-no-reboot");
        }
        if self.icount {
            cmd.args(ICOUNT);
        }
        cmd.args(device_args(self.disk, self.disk_mode));
        cmd.args(qemu::console_args(mode));
        qemu::run_command(cmd, mode, limit, None)
    }
}
