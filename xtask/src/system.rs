//! `./x run --config FILE` for a system description (`[[vm]]` tables): every VM's images as
//! the file names them, each VM's guest device tree, one bundle with all of them, and QEMU
//! with CPUs 0 to the highest CPU a VM names and RAM for every VM and Moat.
//!
//! Everything the host can check is checked before anything is built or booted: the options
//! (those that describe one VM are ambiguous for a file of several, and refused), the
//! description against the largest machine `./x run` gives QEMU and the CPU model's IPA
//! limit, then the image files, which are loaded and placed.

use crate::build::{self, GUESTS};
use crate::error::{XResult, failed, usage};
use crate::input::Named;
use crate::linux;
use crate::qemu::{ConsoleMode, Machine, cpu_pa_bits};
use crate::scratch::Scratch;
use crate::vm::{self, GuestKind, LARGEST_MACHINE, VmParts};
use moat_config::{BundleVm, GuestSource, SystemConfig, VmImages};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// The device tables of QEMU `virt`'s map for a `[[vm]]` table: the PL011 and the GICv3
/// distributor and redistributors, at `virt`'s addresses (each VM has its own IPA space, so
/// every VM of a description can use them).
pub const VIRT_DEVICES: &str = r#"
[[vm.device]]
kind = "pl011"
base = 0x0900_0000

[[vm.device]]
kind = "gicv3-dist"
base = 0x0800_0000

[[vm.device]]
kind = "gicv3-redist"
base = 0x080A_0000
"#;

/// What VM `name` wrote, taken back out of a shared console: its lines, each prefixed
/// `[name] ` on the console, where the rest of a line that another VM's output or Moat's log
/// interrupted came on a later console line prefixed `[name]+ ` (`moat_devices::console`)
/// and is joined to its start again. Lines end in `\n` alone, whether the console was raw
/// (`\r\n`) or captured.
pub fn vm_stream(console: &str, name: &str) -> String {
    let prefix = format!("[{name}] ");
    let continuation = format!("[{name}]+ ");
    let mut stream = String::new();
    for line in console.lines() {
        if let Some(text) = line.strip_prefix(&prefix) {
            if !stream.is_empty() {
                stream.push('\n');
            }
            stream.push_str(text);
        } else if let Some(rest) = line.strip_prefix(&continuation) {
            stream.push_str(rest);
        }
    }
    if !stream.is_empty() {
        stream.push('\n');
    }
    stream
}

/// The options of `./x run` that describe one VM, each with whether it was given.
pub struct SingleVmOptions {
    /// `(option, given)` pairs, in the order `./x run --help` lists them.
    pub given: Vec<(&'static str, bool)>,
    /// Whether `--smp` was given.
    pub smp: bool,
}

/// What `./x run --config` does with a `[[vm]]` file.
pub struct SystemRun<'a> {
    /// The file, for messages.
    pub path: &'a Path,
    /// Its VMs.
    pub system: SystemConfig,
    /// Their images, one per VM.
    pub images: Vec<VmImages>,
    /// QEMU's `-cpu`.
    pub cpu: &'a str,
    /// `--timeout`.
    pub timeout: Option<u64>,
    /// `--moat-append`: Moat's own command line.
    pub moat_append: Option<&'a str>,
    /// `--qemu-arg`s: more of QEMU's arguments (the devices the VMs' `pci` name).
    pub qemu_args: &'a [String],
}

/// Refuses the options a system description makes ambiguous.
///
/// # Errors
///
/// A usage error naming the first such option given, and the file.
pub fn refuse_single_vm_options(path: &Path, options: &SingleVmOptions) -> XResult<()> {
    let file = path.display();
    if options.smp {
        return Err(usage(format!(
            "--smp: --config {file} gives each VM its CPUs (cpus = [...] in its [[vm]] table), and QEMU gets CPUs 0 to the highest one named"
        )));
    }
    match options.given.iter().find(|(_, given)| *given) {
        Some((option, _)) => Err(usage(format!(
            "{option} describes one VM, but --config {file} describes its VMs in [[vm]] tables: set it in a VM's table"
        ))),
        None => Ok(()),
    }
}

/// The guest a VM boots, resolved to a file (a built-in guest's once it is built).
enum Resolved {
    /// A file the host loads before building: `kernel`, `guest = "path"` or Debian's kernel.
    File {
        path: PathBuf,
        initrd: Option<PathBuf>,
        kind: GuestKind,
    },
    /// The project's guest `moat-guest-<name>`, built by [`build::build_bare`].
    Builtin {
        artifact: String,
        initrd: Option<PathBuf>,
    },
}

impl SystemRun<'_> {
    /// Checks and builds: the machine that boots the system, and the private directory its
    /// bundle lives in (removed when it is dropped).
    ///
    /// # Errors
    ///
    /// A usage error (exit status 2) for a description the rules refuse or an image that
    /// cannot be loaded; a failure (exit status 1) when the build fails.
    pub fn machine(&self) -> XResult<(Machine, Scratch)> {
        crate::qemu::check_cpu(self.cpu)?;
        let limit = cpu_pa_bits(self.cpu).map(|pa| pa.min(48));
        self.system
            .validate(Some(LARGEST_MACHINE), limit)
            .map_err(|e| usage(format!("--config {}: {e}", self.path.display())))?;
        let mut debian = None;
        let resolved = self
            .system
            .vms
            .iter()
            .zip(&self.images)
            .map(|(vm, images)| resolve(&vm.name, images, &mut debian))
            .collect::<XResult<Vec<_>>>()?;
        let mut parts: Vec<Option<VmParts>> = Vec::new();
        for (vm, guest) in self.system.vms.iter().zip(&resolved) {
            parts.push(match guest {
                Resolved::File { path, initrd, kind } => {
                    Some(load(vm, path, initrd.as_deref(), *kind)?)
                }
                Resolved::Builtin { .. } => None,
            });
        }
        let artifacts = build::build_bare()?;
        for ((vm, guest), part) in self.system.vms.iter().zip(&resolved).zip(&mut parts) {
            if let Resolved::Builtin { artifact, initrd } = guest {
                let path = artifacts.guest(artifact);
                *part = Some(load(vm, &path, initrd.as_deref(), GuestKind::Any)?);
            }
        }
        let parts: Vec<VmParts> = parts.into_iter().flatten().collect();
        let vms: Vec<BundleVm<'_>> = self
            .system
            .vms
            .iter()
            .zip(&parts)
            .map(|(config, part)| BundleVm {
                config,
                image: &part.image,
                dtb: &part.dtb,
                dtb_ipa: part.dtb_ipa,
            })
            .collect();
        let bytes = moat_config::write_system_bundle(&vms)
            .map_err(|e| usage(format!("--config {}: {e}", self.path.display())))?;
        drop(vms);
        drop(parts);
        let mem_mib = vm::checked_system_mem_mib(&self.system, bytes.len() as u64)?;
        let scratch = Scratch::new("run")?;
        let bundle = scratch.join("system.bundle");
        vm::write_file(&bundle, &bytes)?;
        drop(bytes);
        let machine = Machine {
            cpu: self.cpu.to_owned(),
            mem_mib,
            kernel: artifacts.moat,
            initrd: Some(bundle),
            append: self.moat_append.map(str::to_owned),
            el2: true,
            gic_version: 3,
            smp: self.system.machine_cpus_needed(),
        };
        Ok((machine, scratch))
    }

    /// Checks, builds, boots with the console attached: see the module's description.
    ///
    /// # Errors
    ///
    /// As [`SystemRun::machine`]; a failure (exit status 1) when QEMU fails.
    pub fn run(&self) -> XResult<ExitCode> {
        let (machine, scratch) = self.machine()?;
        let limit = self.timeout.map(Duration::from_secs);
        let pci = self.system.vms.iter().any(|vm| !vm.pci.is_empty());
        // `kernel = "debian"` boots from the Debian root file system's disk, with a network
        // card, both PCI functions of the machine (crate::debian).
        let debian = self
            .images
            .iter()
            .any(|images| images.guest == GuestSource::DebianRoot);
        let mut extra = if debian {
            let disk = linux::rootfs::image()?;
            crate::debian::machine::device_args(&disk, crate::debian::machine::DiskMode::Persistent)
        } else {
            Vec::new()
        };
        extra.extend_from_slice(self.qemu_args);
        let outcome = machine.run_for_pci(pci, &extra, ConsoleMode::Interactive, limit)?;
        drop(scratch);
        Ok(outcome.run_exit_code(self.timeout))
    }
}

/// The machine of `configs/<name>`, a system description as shipped, on CPU model `cpu`, and
/// the private directory its bundle lives in (removed when it is dropped): for the tests and
/// benchmarks that boot a shipped system with a script on its console.
///
/// # Errors
///
/// When the file cannot be read or is not a system description, and as [`SystemRun::machine`].
pub fn shipped_machine(name: &str, cpu: &str) -> XResult<(Machine, Scratch)> {
    let path = build::repo_root().join("configs").join(name);
    let text =
        std::fs::read_to_string(&path).map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let dir = path.parent().unwrap_or(&path);
    let file = moat_config::SystemFile::from_toml_str(&text, dir)
        .map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let images = file
        .images
        .ok_or_else(|| failed(format!("configs/{name} is not a system description")))?;
    let run = SystemRun {
        path: &path,
        system: file.system,
        images,
        cpu,
        timeout: None,
        moat_append: None,
        qemu_args: &[],
    };
    run.machine()
}

/// The project's built-in guests, by the name a `[[vm]]` table gives them.
fn builtin_names() -> impl Iterator<Item = &'static str> {
    GUESTS
        .iter()
        .filter_map(|artifact| artifact.strip_prefix("moat-guest-"))
}

/// Where VM `name`'s guest comes from; files are checked to exist, built-in names to be
/// known, and Debian's kernel is fetched into the cache if it is not there yet (once for all
/// the VMs that boot it: `debian`).
fn resolve(
    name: &str,
    images: &VmImages,
    debian: &mut Option<linux::LinuxGuest>,
) -> XResult<Resolved> {
    let initrd = images.initrd.clone();
    if let Some(path) = &initrd {
        Named::new(&format!("VM '{name}' initrd"), path).check()?;
    }
    Ok(match &images.guest {
        GuestSource::LinuxKernel(path) => {
            Named::new(&format!("VM '{name}' kernel"), path).check()?;
            Resolved::File {
                path: path.clone(),
                initrd,
                kind: GuestKind::LinuxKernel,
            }
        }
        GuestSource::File(path) => {
            Named::new(&format!("VM '{name}' guest"), path).check()?;
            Resolved::File {
                path: path.clone(),
                initrd,
                kind: GuestKind::Any,
            }
        }
        GuestSource::DebianLinux => {
            let linux = match debian {
                Some(linux) => linux,
                None => debian.insert(linux::default_linux()?),
            };
            Resolved::File {
                path: linux.kernel.clone(),
                initrd: Some(initrd.unwrap_or_else(|| linux.initramfs.clone())),
                kind: GuestKind::LinuxKernel,
            }
        }
        GuestSource::DebianRoot => {
            let linux = linux::root_linux()?;
            Resolved::File {
                path: linux.kernel.clone(),
                initrd: Some(initrd.unwrap_or(linux.initramfs)),
                kind: GuestKind::LinuxKernel,
            }
        }
        GuestSource::Builtin(guest) => {
            if !builtin_names().any(|known| known == guest) {
                let known: Vec<&str> = builtin_names().collect();
                return Err(usage(format!(
                    "VM '{name}': guest = {guest:?} is not a built-in guest ({}); write \"./{guest}\" for a file beside the description",
                    known.join(", ")
                )));
            }
            Resolved::Builtin {
                artifact: format!("moat-guest-{guest}"),
                initrd,
            }
        }
    })
}

/// Loads VM `vm`'s guest and initrd and generates its device tree; messages name the VM.
fn load(
    vm: &moat_config::VmConfig,
    guest: &Path,
    initrd: Option<&Path>,
    kind: GuestKind,
) -> XResult<VmParts> {
    let what = match kind {
        GuestKind::LinuxKernel => format!("VM '{}' kernel", vm.name),
        GuestKind::Any => format!("VM '{}' guest", vm.name),
    };
    let initrd_what = format!("VM '{}' initrd", vm.name);
    let initrd = initrd.map(|path| Named::new(&initrd_what, path));
    // Messages about a file name the VM already ("VM 'a' kernel FILE: ..."); the others (its
    // guest device tree) get its name in front.
    vm::prepare(vm, Named::new(&what, guest), kind, initrd).map_err(|e| {
        e.map_message(|m| {
            if m.starts_with("VM '") {
                m
            } else {
                format!("VM '{}': {m}", vm.name)
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::vm_stream;

    #[test]
    fn a_vms_stream_is_its_lines_with_interrupted_ones_joined_again() {
        let console = "[a] one\n[b] x\nmoat: log\n[a] tw\n[b] y\n[a]+ o\n[ab] z\n[a] three\n";
        assert_eq!(vm_stream(console, "a"), "one\ntwo\nthree\n");
        assert_eq!(vm_stream(console, "b"), "x\ny\n");
        assert_eq!(vm_stream(console, "c"), "");
    }

    #[test]
    fn a_guests_own_line_ends_do_not_join_lines() {
        // Linux's terminal ends lines with `\r\n`; a run's captured console has lost the `\r`,
        // and raw output keeps it: either way only the `[a]+ ` prefix joins.
        for console in ["[a] p\r\n[a] q\r\n", "[a] p\n[a] q\n"] {
            assert_eq!(vm_stream(console, "a"), "p\nq\n");
        }
    }
}
