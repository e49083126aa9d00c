//! `./x linux-fetch --rootfs`: a Debian 12 (bookworm) arm64 root file system image, made from
//! Debian's packages on this machine and needing no network inside the guest (issue 12,
//! item 4).
//!
//! 1. `debootstrap --foreign --arch=arm64 --variant=minbase` on the host (as root, which these
//!    machines and CI are; `./x` installs `debootstrap` when it is missing) unpacks
//!    [`PACKAGES`] and what they need from the mirror this machine's apt uses
//!    (`/etc/apt/sources.list*`, as the kernel's fetch reads it) into a folder of the cache;
//!    the image's own files ([`files`]) are added to it.
//! 2. `mke2fs -t ext4 -d` makes the ext4 image from that folder: no loop mount.
//! 3. The second stage (`debootstrap --second-stage`: dpkg configures every package) must run
//!    on an arm64 CPU. It runs in bare QEMU (`crate::debian`'s machine, the disk as
//!    virtio-blk-pci): Debian's cloud kernel and the root initramfs
//!    ([`crate::initramfs::root_init_script`]) with `moat.stage2` on the command line, which
//!    mounts the disk, runs the second stage and [`setup`] in a `chroot`, unmounts it and powers
//!    off. It runs on bare QEMU so that the image Moat's Debian test boots does not depend on
//!    the Moat being tested (under Moat it would be a good workload too: `./x debian --moat`
//!    boots the same disk).
//!
//! The finished image is renamed into place in the cache (`$MOAT_CACHE`, else
//! `target/moat/linux-cache`) as [`IMAGE_NAME`] and not made again while it is there (a change
//! of recipe changes the name). It is never made by `./x test`: the second stage takes many
//! minutes under TCG.
//!
//! Console login is as `root` with no password (`passwd -d root`): the test and a user log in
//! on the console the way a user would (a real `login:` prompt, PAM's `pam_unix nullok` in
//! Debian 12), no secret is written into the repository, and the SSH server refuses empty
//! passwords (`PermitEmptyPasswords no`, its default), so the account is not reachable over
//! the network; SSH is for users who add a key. Autologin would skip the login the issue asks
//! the test to make.

use super::{create_dir, remove_dir, sources};
use crate::build;
use crate::error::{XResult, failed};
use crate::initramfs::{ROOT_FAILED, ROOT_READY, SETUP_SCRIPT, STAGE2_PARAMETER};
use crate::qemu::ConsoleMode;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The packages asked for beyond `minbase` (Debian's required packages and apt): systemd as
/// init (`systemd-sysv`) with `udev` and `dbus` (logind and `systemctl` talk over it), the SSH
/// server, `iproute2`, `fio` and `iperf3` for issue 12's figures, and `wget` for the test's
/// download from the host. The network comes up with `systemd-networkd` (part of `systemd`).
pub const PACKAGES: [&str; 9] = [
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "openssh-server",
    "iproute2",
    "fio",
    "iperf3",
    "wget",
];

/// The image's file name in the cache; the number changes whenever what goes into the image
/// does, so that an image of an older recipe is not used.
pub const IMAGE_NAME: &str = "debian-12-arm64-rootfs-1.img";

/// The image's size: the file is sparse, the installed system takes about 400 MB.
const IMAGE_SIZE: &str = "2G";

/// The file system label.
const LABEL: &str = "moat-debian";

/// The guest's host name (its shell prompt is `root@moat-debian:~#`).
pub const HOSTNAME: &str = "moat-debian";

/// How long the second stage may take (wall time, TCG on a loaded 2-core machine).
const SECOND_STAGE_LIMIT: Duration = Duration::from_secs(3600);

/// What runs in a `chroot` after the second stage, with `sh -e`: root's password removed (see
/// the module's description), `systemd-networkd` enabled (its DHCP configuration is among
/// [`files`]), the package cache emptied. The host name and name server (QEMU's user network's)
/// are written here because the second stage writes its own.
pub fn setup() -> String {
    format!(
        "passwd -d root
systemctl enable systemd-networkd.service
echo {HOSTNAME} > /etc/hostname
printf '127.0.0.1 localhost\\n127.0.1.1 {HOSTNAME}\\n' > /etc/hosts
echo 'nameserver 10.0.2.3' > /etc/resolv.conf
apt-get clean
"
    )
}

/// The image's own files, written into the tree before the image is made: `/etc/fstab` (the
/// root on the virtio-blk disk), `systemd-networkd`'s DHCP on every wired interface, and the
/// set-up script ([`setup`]).
pub fn files() -> Vec<(&'static str, String)> {
    vec![
        (
            "etc/fstab",
            "/dev/vda / ext4 rw,errors=remount-ro 0 1\n".to_string(),
        ),
        (
            "etc/systemd/network/20-wired.network",
            "[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n".to_string(),
        ),
        (SETUP_SCRIPT, setup()),
    ]
}

/// The cached image, if it has been made.
pub fn cached() -> Option<PathBuf> {
    let path = super::cache_dir().join(IMAGE_NAME);
    path.is_file().then_some(path)
}

/// The image, made first when the cache has none (see the module's description).
///
/// # Errors
///
/// One line naming the step that failed.
pub fn image() -> XResult<PathBuf> {
    if let Some(path) = cached() {
        return Ok(path);
    }
    let cache = super::cache_dir();
    create_dir(&cache)?;
    let _lock = crate::scratch::FileLock::exclusive(
        &cache.join("rootfs.lock"),
        "another ./x making the Debian root file system",
    )?;
    if let Some(path) = cached() {
        return Ok(path);
    }
    make(&cache)
}

/// The three steps, timed; the image renamed into place only when the second stage said so.
fn make(cache: &Path) -> XResult<PathBuf> {
    let work = cache.join("rootfs-work");
    remove_dir(&work)?;
    let tree = work.join("tree");
    let mirror = sources::system_mirrors()?.main.uri;
    let debootstrap = debootstrap_program()?;
    eprintln!(
        "x: debootstrap --foreign of Debian {} arm64 from {mirror} into {}",
        super::SUITE,
        tree.display()
    );
    let start = Instant::now();
    let keyring = super::DEFAULT_KEYRING;
    build::run_step(
        Command::new(&debootstrap)
            .args(["--foreign", "--arch=arm64", "--variant=minbase"])
            .arg(format!("--keyring={keyring}"))
            .arg(format!("--include={}", PACKAGES.join(",")))
            .arg(super::SUITE)
            .arg(&tree)
            .arg(&mirror)
            .env("LC_ALL", "C"),
        "debootstrap --foreign (is this root, is the network up?)",
    )?;
    for (path, text) in files() {
        let path = tree.join(path);
        if let Some(dir) = path.parent() {
            create_dir(dir)?;
        }
        fs::write(&path, text).map_err(|e| failed(format!("{}: {e}", path.display())))?;
    }
    let first = start.elapsed();
    let partial = work.join("root.img");
    build::run_step(
        Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-L", LABEL, "-d"])
            .arg(&tree)
            .arg(&partial)
            .arg(IMAGE_SIZE),
        "mke2fs -d (e2fsprogs)",
    )?;
    remove_dir(&tree)?;
    let mkfs = start.elapsed() - first;
    eprintln!(
        "x: first stage {:.0} s, image {:.0} s; the second stage runs in bare QEMU (TCG: \
         many minutes)",
        first.as_secs_f64(),
        mkfs.as_secs_f64()
    );
    let second = Instant::now();
    second_stage(&partial)?;
    let second = second.elapsed();
    let path = cache.join(IMAGE_NAME);
    fs::rename(&partial, &path).map_err(|e| failed(format!("{}: {e}", path.display())))?;
    remove_dir(&work)?;
    eprintln!(
        "x: Debian root file system made in {:.0} s (first stage {:.0} s, mke2fs {:.0} s, \
         second stage {:.0} s)",
        start.elapsed().as_secs_f64(),
        first.as_secs_f64(),
        mkfs.as_secs_f64(),
        second.as_secs_f64()
    );
    Ok(path)
}

/// Boots the disk in bare QEMU with `moat.stage2` and waits for [`ROOT_READY`].
fn second_stage(disk: &Path) -> XResult<()> {
    let linux = super::root_linux()?;
    let append = format!(
        "{} {STAGE2_PARAMETER}",
        crate::debian::machine::bootargs(crate::debian::machine::UART)
    );
    let machine = crate::debian::machine::BareDebian {
        linux: &linux,
        disk,
        append: &append,
        disk_mode: crate::debian::machine::DiskMode::Unsafe,
        reboot: false,
        icount: false,
        moat_dtb: None,
    };
    let outcome = machine.run(ConsoleMode::Captured, Some(SECOND_STAGE_LIMIT))?;
    if outcome.console.contains(ROOT_READY) {
        return Ok(());
    }
    let tail: Vec<&str> = outcome.console.lines().rev().take(30).collect();
    tail.iter().rev().for_each(|l| eprintln!("    | {l}"));
    let why = outcome
        .console
        .lines()
        .find(|l| l.contains(ROOT_FAILED))
        .map_or_else(
            || {
                if outcome.timed_out {
                    format!("timed out after {} s", SECOND_STAGE_LIMIT.as_secs())
                } else {
                    "QEMU ended first".to_string()
                }
            },
            str::to_string,
        );
    Err(failed(format!(
        "the second stage of the Debian root file system: {why}"
    )))
}

/// `debootstrap`, which `./x` installs when missing (it is in `/usr/sbin`, which a user's
/// `PATH` may lack).
fn debootstrap_program() -> XResult<PathBuf> {
    let path = PathBuf::from("/usr/sbin/debootstrap");
    if path.is_file() {
        return Ok(path);
    }
    Err(failed(
        "no /usr/sbin/debootstrap: ./x installs it (apt-get install debootstrap)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_has_what_the_issue_asks_for() {
        for wanted in [
            "systemd-sysv",
            "openssh-server",
            "iproute2",
            "fio",
            "iperf3",
        ] {
            assert!(PACKAGES.contains(&wanted), "{wanted}");
        }
    }

    #[test]
    fn the_root_is_the_virtio_blk_disk_and_the_network_comes_up_by_dhcp() {
        let files = files();
        let file = |name: &str| {
            files
                .iter()
                .find(|(path, _)| *path == name)
                .map(|(_, text)| text.as_str())
                .unwrap_or_else(|| panic!("no {name}"))
        };
        assert!(file("etc/fstab").starts_with("/dev/vda / ext4 rw"));
        assert!(file("etc/systemd/network/20-wired.network").contains("DHCP=ipv4"));
        let setup = file(SETUP_SCRIPT);
        assert!(setup.contains("systemctl enable systemd-networkd.service"));
        assert!(setup.lines().any(|l| l == "passwd -d root"));
        assert!(setup.contains(&format!("echo {HOSTNAME} > /etc/hostname")));
        // Paths are relative: they are joined to the tree.
        assert!(files.iter().all(|(path, _)| !path.starts_with('/')));
    }
}
