//! System description files: either form of `configs/*.toml`, read by the host tool.
//!
//! A file of top-level keys describes one VM (see [`crate::toml_file`]) on the machine's CPUs
//! `0..cpus`; its images come from the command line. A file of `[[vm]]` tables describes a
//! system: each table has a single-VM file's keys, with `cpus` the list of the machine's CPUs
//! that run its vCPUs, what its power-off and reset do, and its images (paths are relative to
//! the file's directory):
//!
//! ```toml
//! [[vm]]
//! name = "linux"
//! cpus = [0, 1]                # vCPU n runs on the n-th listed machine CPU
//! kernel = "linux"             # Debian's kernel and busybox initramfs (./x linux-fetch),
//!                              # or an arm64 Image: kernel = "path/to/Image"
//! initrd = "path/to/initrd"    # optional: replaces the busybox initramfs of "linux"
//!                              # (kernel = "debian": the kernel booting the Debian root
//!                              # file system of ./x linux-fetch --rootfs from its disk)
//! bootargs = "console=ttyAMA0"
//! on-poweroff = "halt-vm"      # or "power-off-machine" (the default)
//! on-reset = "restart"         # the default; or "halt-vm", "power-off-machine"
//! [[vm.ram]]
//! base = 0x4000_0000
//! size = "256M"
//! [[vm.device]]
//! kind = "pl011"
//! base = 0x0900_0000
//!
//! [[vm]]
//! name = "bare"
//! cpus = [2]
//! guest = "hello"              # a built-in guest (bare/guests/NAME), or a file: "./guest.elf"
//! [[vm.ram]]
//! base = 0x4000_0000
//! size = "16M"
//! ```
//!
//! A word without `/` or `.` is a built-in name (`kernel = "linux"`, `guest = "hello"`);
//! anything else is a path (`"./Image"` for a file called `Image` beside the description).
//! Mixing top-level VM keys with `[[vm]]` tables is refused, as is a `[[vm]]` table with both
//! a `kernel` and a `guest`, or neither.

use std::path::{Path, PathBuf};

use crate::schema::VmConfig;
use crate::system::SystemConfig;
use crate::toml_file::{SystemToml, TomlError, VmKeys, parse};

/// The built-in kernel of `kernel = "linux"`.
pub const BUILTIN_LINUX: &str = "linux";
/// The built-in kernel of `kernel = "debian"`.
pub const BUILTIN_DEBIAN: &str = "debian";

/// A VM's guest, as its `[[vm]]` table names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestSource {
    /// `kernel = "path"`: an arm64 `Image`, booted by the Linux boot protocol.
    LinuxKernel(PathBuf),
    /// `kernel = "linux"`: Debian's cloud kernel that `./x linux-fetch` provides, with the
    /// project's busybox initramfs unless the table gives an `initrd`.
    DebianLinux,
    /// `kernel = "debian"`: the same kernel with the initramfs that mounts the Debian root file
    /// system of `./x linux-fetch --rootfs` from a virtio-blk disk and starts its systemd; the
    /// host tool gives the machine that disk and a virtio-net card on QEMU's user network as
    /// PCI functions (`configs/debian.toml` assigns them to the VM).
    DebianRoot,
    /// `guest = "path"`: an ELF file, an arm64 `Image` or a raw binary, as `--guest` takes.
    File(PathBuf),
    /// `guest = "name"`: the project's guest `bare/guests/<name>`, as built by `./x build`.
    Builtin(String),
}

/// The images of one VM of a system description: host-only data, not part of [`VmConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmImages {
    /// The kernel or guest image.
    pub guest: GuestSource,
    /// `initrd = "path"`: an initrd or initramfs, placed as `--initrd` places it.
    pub initrd: Option<PathBuf>,
}

/// A description file as read: the system, and for a `[[vm]]` file each VM's images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemFile {
    /// The VMs (one for a single-VM file).
    pub system: SystemConfig,
    /// `None` for a single-VM file, whose images come from the command line; for a `[[vm]]`
    /// file, each VM's images, in the order of [`SystemConfig::vms`].
    pub images: Option<Vec<VmImages>>,
}

impl SystemFile {
    /// Reads a description file of either form; relative image paths are taken from `dir`,
    /// the file's directory. The result is not validated: call [`SystemConfig::validate`].
    ///
    /// # Errors
    ///
    /// [`TomlError`] as [`VmConfig::from_toml_str`] for either form, and for a file mixing
    /// top-level VM keys with `[[vm]]` tables, a `[[vm]]` table without a `name`, with a
    /// `cpus` that is not a list, naming no image or both a kernel and a guest, or a built-in
    /// kernel name other than `"linux"` and `"debian"`.
    pub fn from_toml_str(text: &str, dir: &Path) -> Result<Self, TomlError> {
        let single = |vm| Self {
            system: SystemConfig::single(vm),
            images: None,
        };
        // The untyped table only tells the forms apart. It holds integers as i64, where the
        // typed reader takes an address as u64, so a file it cannot hold is read as a single
        // VM, or refused with the table's error (found by the `config` fuzz target).
        let table: ::toml::Table = match parse(text) {
            Ok(table) => table,
            Err(e) => return VmConfig::from_toml_str(text).map(single).map_err(|_| e),
        };
        if !table.contains_key("vm") {
            return VmConfig::from_toml_str(text).map(single);
        }
        let others: Vec<&str> = table
            .keys()
            .map(String::as_str)
            .filter(|&k| k != "vm")
            .collect();
        if !others.is_empty() {
            return Err(TomlError::plain(format!(
                "top-level keys ({}) beside [[vm]] tables: a file describes one VM with top-level keys or several in [[vm]] tables, not both; move them into a [[vm]] table",
                others.join(", ")
            )));
        }
        let file: SystemToml = parse(text)?;
        let mut vms = Vec::with_capacity(file.vm.len());
        let mut all_images = Vec::with_capacity(file.vm.len());
        for table in &file.vm {
            let vm = table.get_ref().table(text, table.span())?;
            all_images.push(images(table.get_ref(), &vm.name, text, dir)?);
            vms.push(vm);
        }
        Ok(Self {
            system: SystemConfig { vms },
            images: Some(all_images),
        })
    }
}

impl SystemConfig {
    /// Reads a description file of either form, without its images (see
    /// [`SystemFile::from_toml_str`]).
    ///
    /// # Errors
    ///
    /// As [`SystemFile::from_toml_str`].
    pub fn from_toml_str(text: &str) -> Result<Self, TomlError> {
        Ok(SystemFile::from_toml_str(text, Path::new(""))?.system)
    }
}

/// Whether `value` names something built in rather than a file.
fn is_builtin_name(value: &str) -> bool {
    !value.is_empty() && !value.contains(['/', '.'])
}

fn images(keys: &VmKeys, name: &str, text: &str, dir: &Path) -> Result<VmImages, TomlError> {
    let refuse = |at: &toml::Spanned<String>, problem: String| {
        TomlError::at(text, at.span(), format!("VM '{name}': {problem}"))
    };
    let guest = match (&keys.kernel, &keys.guest) {
        (Some(_), Some(guest)) => {
            return Err(refuse(
                guest,
                "both kernel and guest are given: a VM boots one image".into(),
            ));
        }
        (None, None) => {
            return Err(TomlError::plain(format!(
                "VM '{name}': no image: give kernel = \"linux\" or a path to an arm64 Image, or guest = a path or a built-in guest's name"
            )));
        }
        (Some(kernel), None) => match kernel.get_ref().as_str() {
            BUILTIN_LINUX => GuestSource::DebianLinux,
            BUILTIN_DEBIAN => GuestSource::DebianRoot,
            word if is_builtin_name(word) => {
                return Err(refuse(
                    kernel,
                    format!(
                        "kernel = {word:?} is neither a path nor a built-in kernel (\"linux\", \"debian\"; write \"./{word}\" for a file beside the description)"
                    ),
                ));
            }
            path => GuestSource::LinuxKernel(dir.join(path)),
        },
        (None, Some(guest)) => match guest.get_ref().as_str() {
            word if is_builtin_name(word) => GuestSource::Builtin(word.into()),
            path => GuestSource::File(dir.join(path)),
        },
    };
    Ok(VmImages {
        guest,
        initrd: keys.initrd.as_ref().map(|path| dir.join(path.get_ref())),
    })
}

#[cfg(test)]
#[path = "system_file_tests.rs"]
mod tests;
