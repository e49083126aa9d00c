//! The root initramfs of the Debian VM (`crate::initramfs::root_init_script`) on bare QEMU
//! with a small disk of the test's own: Debian's full image takes too long to make and boot for
//! `./x test` (`./x debian` tests that).

use super::{Tally, expect_line};
use crate::debian::{BareDebian, DiskMode};
use crate::error::{XResult, failed};
use crate::qemu::ConsoleMode;
use crate::scratch::Scratch;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// The disk's init: says which process it is and what `/` is, then powers off.
const INIT: &str = "#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo \"rootfs-test: pid $$\"
/bin/busybox grep ' / ' /proc/mounts | /bin/busybox sed 's/^/rootfs-test: mounted /'
/bin/busybox poweroff -f
";

/// The time limit: a kernel boot under TCG, its PCI devices probed.
const LIMIT: Duration = Duration::from_secs(180);

/// The root initramfs loads `virtio_pci` and `virtio_blk` (in `.modinfo` order, beside
/// `virtio_net`), finds `/dev/vda` on virtio-blk-pci, mounts it read-write as ext4 (made by
/// `mke2fs -d`, as the Debian image is) and `switch_root`s to its `/sbin/init` (an absolute
/// symbolic link, as Debian's) as PID 1, on the
/// same machine as the Debian VM's.
pub fn root_initramfs_case(tally: &mut Tally) -> XResult<()> {
    let linux = crate::linux::root_linux()?;
    let scratch = Scratch::new("test")?;
    let disk = scratch.join("root.img");
    make_disk(&scratch.join("tree"), &disk)?;
    let append = crate::debian::bootargs(crate::debian::UART);
    let machine = BareDebian {
        linux: &linux,
        disk: &disk,
        append: &append,
        disk_mode: DiskMode::Snapshot,
        reboot: false,
        icount: false,
        moat_dtb: None,
    };
    let outcome = machine.run(ConsoleMode::Captured, Some(LIMIT))?;
    let verdict = expect_line(&outcome, "rootfs-test: pid 1\n")
        .and_then(|()| expect_line(&outcome, "rootfs-test: mounted /dev/vda / ext4 rw"))
        .and_then(|()| {
            if outcome.console.contains(crate::initramfs::ROOT_FAILED) {
                Err("the initramfs said it failed".into())
            } else {
                Ok(())
            }
        });
    tally.record(
        "root_initramfs_mounts_the_virtio_blk_pci_disk_and_switches_root_to_its_init",
        crate::debian::CPU,
        Some(&outcome),
        verdict,
    );
    Ok(())
}

/// A 16 MiB ext4 image holding busybox and [`INIT`], `/sbin/init` an absolute symbolic link to
/// it.
fn make_disk(tree: &Path, disk: &Path) -> XResult<()> {
    let busybox = crate::linux::busybox()?;
    for dir in ["bin", "sbin", "proc", "dev", "sys"] {
        let dir = tree.join(dir);
        std::fs::create_dir_all(&dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    }
    for (path, data) in [("bin/busybox", busybox), ("bin/moat-init", INIT.into())] {
        let path = tree.join(path);
        std::fs::write(&path, data)
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)))
            .map_err(|e| failed(format!("{}: {e}", path.display())))?;
    }
    // As in Debian 12, whose /sbin/init is a link to /lib/systemd/systemd: absolute, so it
    // resolves only inside the new root.
    let init = tree.join("sbin/init");
    std::os::unix::fs::symlink("/bin/moat-init", &init)
        .map_err(|e| failed(format!("{}: {e}", init.display())))?;
    crate::build::run_step(
        std::process::Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-d"])
            .arg(tree)
            .arg(disk)
            .arg("16M"),
        "mke2fs -d (e2fsprogs)",
    )
}
