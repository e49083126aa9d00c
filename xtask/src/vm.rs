//! Assembling a VM for Moat: the VM description (a TOML file or the default `virt` map, with
//! the command line's overrides), the guest image, the guest's device tree, and the bundle
//! that carries them to Moat as QEMU's initrd.

use crate::error::{XResult, failed, usage};
use crate::qemu::cpu_pa_bits;
use moat_config::{ParangeMode, RamRegion, VmConfig};
use std::path::{Path, PathBuf};

/// What the user asked for on the command line.
#[derive(Clone, Debug, Default)]
pub struct VmRequest {
    /// A VM description file.
    pub config: Option<PathBuf>,
    /// `--ipa-bits`: the VM IPA size `S`.
    pub ipa_bits: Option<u32>,
    /// `--parange`: how the guest-visible PARange is chosen.
    pub parange: Option<ParangeMode>,
    /// `--mem`: the size of the VM's (first) RAM region.
    pub mem: Option<u64>,
    /// `--append`: the guest's command line.
    pub bootargs: Option<String>,
    /// `--smp`: the number of vCPUs.
    pub cpus: Option<u32>,
}

/// The VM description with the overrides applied, validated as far as the host can.
///
/// # Errors
///
/// A usage error naming the file or the rule the description breaks.
pub fn describe(request: &VmRequest, cpu: &str) -> XResult<VmConfig> {
    let mut vm = match &request.config {
        Some(path) => {
            let text = read(path, "VM description")?;
            VmConfig::from_toml_str(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?
        }
        None => VmConfig::default_virt(),
    };
    if let Some(bits) = request.ipa_bits {
        vm.ipa_bits = bits;
    }
    if let Some(mode) = request.parange {
        vm.parange = mode;
    }
    if let Some(size) = request.mem {
        let first: &mut RamRegion = vm
            .ram
            .first_mut()
            .ok_or_else(|| usage("--mem: the VM description has no RAM region"))?;
        first.size = size;
    }
    if let Some(args) = &request.bootargs {
        vm.bootargs.clone_from(args);
    }
    if let Some(cpus) = request.cpus {
        vm.set_cpus(cpus);
    }
    // The IPA limit L of the CPU model, when the host knows it: Moat refuses S > L at boot
    // anyway, but the user gets the message before QEMU starts.
    let limit = cpu_pa_bits(cpu).map(|pa| pa.min(48));
    vm.validate(limit).map_err(|e| match limit {
        Some(l) => usage(format!(
            "VM '{}' on -cpu {cpu} (IPA limit {l} bits): {e}",
            vm.name
        )),
        None => usage(format!("VM '{}': {e}", vm.name)),
    })?;
    Ok(vm)
}

/// Loads `guest` into `vm`, generates its device tree, and writes the bundle to `out`.
///
/// # Errors
///
/// A usage error when the guest file is missing or does not fit the VM's RAM.
pub fn write_bundle(vm: &VmConfig, guest: &Path, out: &Path) -> XResult<()> {
    write_bundle_with_initrd(vm, guest, None, out)
}

/// As [`write_bundle`], with an initrd placed after the kernel (`moat_config::initrd`) as one
/// more image segment and named in the guest device tree's `/chosen`.
///
/// # Errors
///
/// A usage error when a file is missing or the images do not fit the VM's RAM.
pub fn write_bundle_with_initrd(
    vm: &VmConfig,
    guest: &Path,
    initrd: Option<&Path>,
    out: &Path,
) -> XResult<()> {
    let bytes =
        std::fs::read(guest).map_err(|e| usage(format!("guest image {}: {e}", guest.display())))?;
    let ram = vm.ram.first().ok_or_else(|| usage("the VM has no RAM"))?;
    let mut image = moat_config::load_guest_image(&bytes, ram.base, ram.size)
        .map_err(|e| usage(format!("guest image {}: {e}", guest.display())))?;
    let dtb_ipa =
        moat_config::default_dtb_ipa(vm).map_err(|e| usage(format!("guest device tree: {e}")))?;
    let initrd = match initrd {
        Some(path) => Some(add_initrd(vm, &mut image, dtb_ipa, path)?),
        None => None,
    };
    let dtb = moat_config::generate_guest_dtb(vm, initrd)
        .map_err(|e| failed(format!("guest device tree: {e}")))?;
    let bundle = moat_config::write_bundle(vm, &image, &dtb, dtb_ipa)
        .map_err(|e| usage(format!("guest image {}: {e}", guest.display())))?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| failed(format!("creating {}: {e}", dir.display())))?;
    }
    std::fs::write(out, bundle).map_err(|e| failed(format!("writing {}: {e}", out.display())))
}

/// Reads the initrd at `path`, places it and adds it to `image`; returns its IPA and size.
fn add_initrd(
    vm: &VmConfig,
    image: &mut moat_config::GuestImage,
    dtb_ipa: moat_config::Ipa,
    path: &Path,
) -> XResult<(moat_config::Ipa, u64)> {
    let data = std::fs::read(path).map_err(|e| usage(format!("initrd {}: {e}", path.display())))?;
    let ipa = moat_config::place_initrd(vm, image, dtb_ipa, data.len() as u64)
        .map_err(|e| usage(format!("initrd {}: {e}", path.display())))?;
    Ok(moat_config::add_initrd(image, ipa, data))
}

/// The machine's RAM for a VM: all of the VM's RAM plus room for Moat, the bundle and the
/// device tree, rounded up to 64 MiB, at least 512 MiB.
pub fn machine_mem_mib(vm: &VmConfig, bundle_bytes: u64) -> u64 {
    let guest: u64 = vm.ram.iter().map(|r| r.size).sum();
    let total = guest + bundle_bytes + (256 << 20);
    (total >> 20).next_multiple_of(64).max(512)
}

/// Debian's Linux (`./x linux-fetch`) as a VM of `cpus` vCPUs and `ram_mib` MiB on the
/// default `virt` map, with the default command line: its bundle written to `bundle`, and
/// the machine that boots it under Moat (`moat`, the EL2 image) on QEMU's `max` CPU.
///
/// # Errors
///
/// When the bundle cannot be written.
pub fn linux_under_moat(
    moat: &Path,
    linux: &crate::linux::LinuxGuest,
    cpus: u32,
    ram_mib: u64,
    bundle: &Path,
) -> XResult<crate::qemu::Machine> {
    let mut vm = VmConfig::default_virt();
    vm.ram[0].size = ram_mib << 20;
    vm.set_cpus(cpus);
    vm.bootargs = crate::linux::default_append(0x0900_0000);
    write_bundle_with_initrd(&vm, &linux.kernel, Some(&linux.initramfs), bundle)?;
    let size = std::fs::metadata(bundle).map(|m| m.len()).unwrap_or(0);
    Ok(crate::qemu::Machine {
        cpu: "max,pauth-impdef=on".into(),
        mem_mib: machine_mem_mib(&vm, size),
        kernel: moat.to_path_buf(),
        initrd: Some(bundle.to_path_buf()),
        append: None,
        el2: true,
        smp: vm.cpus,
    })
}

fn read(path: &Path, what: &str) -> XResult<String> {
    std::fs::read_to_string(path).map_err(|e| usage(format!("{what} {}: {e}", path.display())))
}
