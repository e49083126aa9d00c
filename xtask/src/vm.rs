//! Assembling a VM for Moat: the VM description (a TOML file or the default `virt` map, with
//! the command line's overrides), the guest image, the guest's device tree, and the bundle
//! that carries them to Moat as QEMU's initrd.

use crate::error::{XResult, failed, usage};
use crate::input::Named;
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
    /// `--board virt-gicv2`: the VM gets a GICv2 (`VmConfig::use_gic_v2`) unless its
    /// description gives it one.
    pub gic_v2: bool,
}

/// The VM description with the overrides applied, validated as far as the host can.
///
/// # Errors
///
/// A usage error naming the file or the rule the description breaks.
pub fn describe(request: &VmRequest, cpu: &str) -> XResult<VmConfig> {
    let mut vm = match &request.config {
        Some(path) => {
            let file = Named::new("--config", path);
            VmConfig::from_toml_str(&file.read_text()?).map_err(|e| file.refuse(e))?
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
    if request.gic_v2 && !vm.has_gic_v2() {
        vm.use_gic_v2();
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

/// Which loader a guest file takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestKind {
    /// `--kernel`: an arm64 `Image`, and nothing else.
    LinuxKernel,
    /// `--guest`: an ELF file, an arm64 `Image` or a raw binary, recognised by its contents.
    Any,
}

/// What a VM's bundle node carries besides its description: the loaded image (the initrd,
/// if any, one more segment), the guest device tree and where it goes.
pub struct VmParts {
    /// The guest image.
    pub image: moat_config::GuestImage,
    /// The guest device tree.
    pub dtb: Vec<u8>,
    /// Where the device tree goes.
    pub dtb_ipa: moat_config::Ipa,
}

/// Loads `guest` into `vm` (with `initrd`, if any, placed after it by
/// `moat_config::initrd` as one more image segment and named in the guest device tree's
/// `/chosen`), and generates the device tree.
///
/// # Errors
///
/// A usage error naming the file (and the option that named it) when a file is missing,
/// unreadable, not what `kind` asks for, or the images do not fit the VM's RAM.
pub fn prepare(
    vm: &VmConfig,
    guest: Named<'_>,
    kind: GuestKind,
    initrd: Option<Named<'_>>,
) -> XResult<VmParts> {
    let bytes = guest.read()?;
    let ram = vm.ram.first().ok_or_else(|| usage("the VM has no RAM"))?;
    let load = match kind {
        GuestKind::LinuxKernel => moat_config::load_linux_kernel,
        GuestKind::Any => moat_config::load_guest_image,
    };
    let mut image = load(&bytes, ram.base, ram.size).map_err(|e| guest.refuse(e))?;
    drop(bytes);
    let dtb_ipa =
        moat_config::default_dtb_ipa(vm).map_err(|e| usage(format!("guest device tree: {e}")))?;
    let initrd = match initrd {
        Some(file) => Some(add_initrd(vm, &mut image, dtb_ipa, file)?),
        None => None,
    };
    let dtb = moat_config::generate_guest_dtb(vm, initrd)
        .map_err(|e| failed(format!("guest device tree: {e}")))?;
    Ok(VmParts {
        image,
        dtb,
        dtb_ipa,
    })
}

/// [`prepare`]s the single VM `vm` and returns its bundle.
///
/// # Errors
///
/// As [`prepare`].
pub fn bundle(
    vm: &VmConfig,
    guest: Named<'_>,
    kind: GuestKind,
    initrd: Option<Named<'_>>,
) -> XResult<Vec<u8>> {
    let parts = prepare(vm, guest, kind, initrd)?;
    moat_config::write_bundle(vm, &parts.image, &parts.dtb, parts.dtb_ipa)
        .map_err(|e| guest.refuse(e))
}

/// Writes `bytes` to `out`, creating its directory.
///
/// # Errors
///
/// When the file cannot be written.
pub fn write_file(out: &Path, bytes: &[u8]) -> XResult<()> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| failed(format!("creating {}: {e}", dir.display())))?;
    }
    std::fs::write(out, bytes).map_err(|e| failed(format!("writing {}: {e}", out.display())))
}

/// Loads `guest` (any image the loader recognises) into `vm`, generates its device tree, and
/// writes the bundle to `out`.
///
/// # Errors
///
/// A usage error when the guest file is missing or does not fit the VM's RAM.
pub fn write_bundle(vm: &VmConfig, guest: &Path, out: &Path) -> XResult<()> {
    write_bundle_with_initrd(vm, guest, None, out)
}

/// As [`write_bundle`], with an initrd (see [`bundle`]).
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
    let guest = Named::new("guest image", guest);
    let initrd = initrd.map(|path| Named::new("initrd", path));
    write_file(out, &bundle(vm, guest, GuestKind::Any, initrd)?)
}

/// Writes the bundle of `guest` in `vm` to `bundle` and returns the machine that boots it under
/// Moat (`moat`, the EL2 image) on QEMU's `cpu`: one QEMU CPU per vCPU, RAM by
/// [`machine_mem_mib`].
///
/// # Errors
///
/// A usage error when the guest file is missing or does not fit the VM's RAM.
pub fn moat_machine(
    vm: &VmConfig,
    moat: &Path,
    guest: &Path,
    cpu: &str,
    bundle: &Path,
) -> XResult<crate::qemu::Machine> {
    write_bundle(vm, guest, bundle)?;
    let size = std::fs::metadata(bundle).map(|m| m.len()).unwrap_or(0);
    Ok(crate::qemu::Machine {
        cpu: cpu.into(),
        mem_mib: machine_mem_mib(vm, size),
        kernel: moat.to_path_buf(),
        initrd: Some(bundle.to_path_buf()),
        append: None,
        el2: true,
        gic_version: if vm.has_gic_v2() { 2 } else { 3 },
        smp: vm.cpus,
    })
}

/// Places the initrd by its size before reading it (a file too large for the VM's RAM is
/// refused unread), reads it and adds it to `image`; returns its IPA and size.
fn add_initrd(
    vm: &VmConfig,
    image: &mut moat_config::GuestImage,
    dtb_ipa: moat_config::Ipa,
    file: Named<'_>,
) -> XResult<(moat_config::Ipa, u64)> {
    let place = |image: &moat_config::GuestImage, size: u64| {
        moat_config::place_initrd(vm, image, dtb_ipa, size).map_err(|e| file.refuse(e))
    };
    place(image, file.check()?)?;
    let data = file.read()?;
    // Placed again by what was read: the file may have changed since it was looked up.
    let ipa = place(image, data.len() as u64)?;
    Ok(moat_config::add_initrd(image, ipa, data))
}

/// The room the machine's RAM keeps beside the VMs' for Moat itself (its image, heap and
/// stage-2 tables) and the bundle.
pub const MOAT_ROOM_MIB: u64 = 256;

/// The machine's RAM for a VM: all of the VM's RAM plus room for Moat, the bundle and the
/// device tree, rounded up to 64 MiB, at least 512 MiB.
pub fn machine_mem_mib(vm: &VmConfig, bundle_bytes: u64) -> u64 {
    mem_mib_for(vm.ram.iter().map(|r| r.size).sum(), bundle_bytes)
}

/// The machine's RAM for `guest_ram` bytes of VM RAM and the bundle, as [`machine_mem_mib`].
fn mem_mib_for(guest_ram: u64, bundle_bytes: u64) -> u64 {
    let total = guest_ram
        .saturating_add(bundle_bytes)
        .saturating_add(MOAT_ROOM_MIB << 20);
    (total >> 20).next_multiple_of(64).max(512)
}

/// The most RAM QEMU's `virt` board addresses with `highmem=off` (the board Moat runs on): RAM
/// starts at 1 GiB and must end by 4 GiB ("Addressing limited to 32 bits" beyond).
pub const MACHINE_MEM_MAX_MIB: u64 = 3072;

/// The largest machine `./x run` gives QEMU, as the system description's rules see it: Moat's
/// CPU limit, and the board's RAM less [`MOAT_ROOM_MIB`].
pub const LARGEST_MACHINE: moat_config::Machine = moat_config::Machine {
    cpus: moat_config::MAX_MACHINE_CPUS,
    ram_bytes: (MACHINE_MEM_MAX_MIB - MOAT_ROOM_MIB) << 20,
};

/// [`machine_mem_mib`], refused when QEMU's board cannot hold it.
///
/// # Errors
///
/// A usage error naming the VM's RAM, what the machine would need and the board's limit.
pub fn checked_machine_mem_mib(vm: &VmConfig, bundle_bytes: u64) -> XResult<u64> {
    let guest: u64 = vm.ram.iter().map(|r| r.size).sum();
    checked_mem_mib(guest, bundle_bytes, "--mem: the VM's")
}

/// The machine's RAM for all the VMs of `system` and their bundle, refused when QEMU's board
/// cannot hold it.
///
/// # Errors
///
/// A usage error naming the VMs' RAM, what the machine would need and the board's limit.
pub fn checked_system_mem_mib(
    system: &moat_config::SystemConfig,
    bundle_bytes: u64,
) -> XResult<u64> {
    let guest = u64::try_from(system.ram_bytes()).unwrap_or(u64::MAX);
    checked_mem_mib(guest, bundle_bytes, "the VMs'")
}

fn checked_mem_mib(guest: u64, bundle_bytes: u64, whose: &str) -> XResult<u64> {
    let mib = mem_mib_for(guest, bundle_bytes);
    if mib <= MACHINE_MEM_MAX_MIB {
        return Ok(mib);
    }
    Err(usage(format!(
        "{whose} {} MiB of RAM need a {mib} MiB machine (with Moat and the bundle), but QEMU's virt board (highmem=off) addresses at most {MACHINE_MEM_MAX_MIB} MiB",
        guest >> 20
    )))
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
    linux_machine(&linux_vm(cpus, ram_mib), moat, linux, bundle)
}

/// The default `virt` VM of `cpus` vCPUs and `ram_mib` MiB with Linux's default command line.
pub fn linux_vm(cpus: u32, ram_mib: u64) -> VmConfig {
    let mut vm = VmConfig::default_virt();
    vm.ram[0].size = ram_mib << 20;
    vm.set_cpus(cpus);
    vm.bootargs = crate::linux::default_append(0x0900_0000);
    vm
}

/// Writes the bundle of `linux` in `vm` to `bundle` and returns the machine that boots it
/// under Moat (a GICv2 machine for a GICv2 VM).
///
/// # Errors
///
/// When the bundle cannot be written.
pub fn linux_machine(
    vm: &VmConfig,
    moat: &Path,
    linux: &crate::linux::LinuxGuest,
    bundle: &Path,
) -> XResult<crate::qemu::Machine> {
    write_bundle_with_initrd(vm, &linux.kernel, Some(&linux.initramfs), bundle)?;
    let size = std::fs::metadata(bundle).map(|m| m.len()).unwrap_or(0);
    Ok(crate::qemu::Machine {
        cpu: "max,pauth-impdef=on".into(),
        mem_mib: machine_mem_mib(vm, size),
        kernel: moat.to_path_buf(),
        initrd: Some(bundle.to_path_buf()),
        append: None,
        el2: true,
        gic_version: if vm.has_gic_v2() { 2 } else { 3 },
        smp: vm.cpus,
    })
}

/// The device tree Moat gives the one VM of `bundle`, written to `dtb`: for bare QEMU to boot
/// the same guest on the same tree (like with like).
///
/// # Errors
///
/// When the bundle cannot be read or parsed, holds several VMs, or `dtb` cannot be written.
pub fn write_bundle_dtb(bundle: &Path, dtb: &Path) -> XResult<()> {
    let bytes = std::fs::read(bundle).map_err(|e| failed(format!("{}: {e}", bundle.display())))?;
    let parsed = moat_config::Bundle::parse(&bytes)
        .map_err(|e| failed(format!("{}: {e:?}", bundle.display())))?;
    let [vm] = parsed.vms() else {
        return Err(failed(format!(
            "{}: not a single-VM bundle",
            bundle.display()
        )));
    };
    std::fs::write(dtb, vm.dtb()).map_err(|e| failed(format!("{}: {e}", dtb.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;

    /// The initrd images of a bundle and the `/chosen` range its device tree names.
    fn initrd_of(bundle: &[u8], data_len: usize) -> (u64, u64, u64) {
        let bundle = moat_config::Bundle::parse(bundle).expect("a valid bundle");
        let [bundle] = bundle.vms() else {
            panic!("one VM")
        };
        let placed = bundle
            .images()
            .find(|i| i.data.len() == data_len && i.data.starts_with(b"INITRD"))
            .expect("the initrd is a segment");
        let dtb = fdt::Fdt::new(bundle.dtb()).expect("a valid device tree");
        let chosen = dtb.find_node("/chosen").expect("/chosen");
        let cell = |name| chosen.property(name).and_then(|p| p.as_usize()).unwrap() as u64;
        (
            placed.load_ipa.raw(),
            cell("linux,initrd-start"),
            cell("linux,initrd-end"),
        )
    }

    /// An ELF64 AArch64 file with one `PT_LOAD` of 16 bytes at `paddr` and `memsz` bytes.
    fn elf(paddr: u64, memsz: u64) -> Vec<u8> {
        let mut file = vec![0u8; 64];
        file[..4].copy_from_slice(b"\x7fELF");
        file[4] = 2;
        file[5] = 1;
        file[6] = 1;
        file[18..20].copy_from_slice(&183u16.to_le_bytes());
        file[24..32].copy_from_slice(&paddr.to_le_bytes());
        file[32..40].copy_from_slice(&64u64.to_le_bytes());
        file[54..56].copy_from_slice(&56u16.to_le_bytes());
        file[56..58].copy_from_slice(&1u16.to_le_bytes());
        for field in [1u64, 120, paddr, paddr, 16, memsz, 0] {
            file.extend_from_slice(&field.to_le_bytes());
        }
        file.extend_from_slice(&[0xd5; 16]);
        file
    }

    fn with_initrd(guest: &[u8], initrd_len: usize) -> XResult<(u64, u64, u64)> {
        let dir = Scratch::new("vm-test")?;
        let (guest_path, initrd_path) = (dir.join("guest"), dir.join("initrd"));
        std::fs::write(&guest_path, guest).unwrap();
        let mut data = b"INITRD".to_vec();
        data.resize(initrd_len, 0x5a);
        std::fs::write(&initrd_path, &data).unwrap();
        let vm = VmConfig::default_virt();
        let bytes = bundle(
            &vm,
            Named::new("--guest", &guest_path),
            GuestKind::Any,
            Some(Named::new("--initrd", &initrd_path)),
        )?;
        Ok(initrd_of(&bytes, initrd_len))
    }

    #[test]
    fn a_raw_guests_initrd_goes_at_ram_base_plus_half_of_128_mib_and_is_named_in_chosen() {
        let (ipa, start, end) = with_initrd(&0x1400_0000u32.to_le_bytes(), 4096).unwrap();
        assert_eq!(ipa, 0x4000_0000 + (64 << 20));
        assert_eq!((start, end), (ipa, ipa + 4096));
    }

    #[test]
    fn an_elf_guest_reaching_past_the_qemu_spot_gets_its_initrd_at_the_next_2_mib_boundary() {
        // The image ends at 0x4510_0000, above RAM base + 64 MiB.
        let (ipa, start, end) = with_initrd(&elf(0x4500_0000, 0x10_0000), 100).unwrap();
        assert_eq!(ipa, 0x4520_0000);
        assert_eq!((start, end), (0x4520_0000, 0x4520_0064));
        // Below the QEMU spot, an ELF guest's initrd is at RAM base + 64 MiB as for a raw one.
        assert_eq!(
            with_initrd(&elf(0x4008_0000, 16), 100).unwrap().0,
            0x4400_0000
        );
    }

    #[test]
    fn an_initrd_with_no_room_after_the_guest_is_refused_naming_the_option() {
        // The image fills RAM up to 2 MiB below the device tree's block.
        let err = with_initrd(&elf(0x4008_0000, 0x7b0_0000), 0x40_0000).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(text.starts_with("--initrd "), "{text}");
        assert!(
            text.contains("does not fit in RAM after the kernel"),
            "{text}"
        );
    }
}
