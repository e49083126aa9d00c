//! Moat started by a real firmware: Debian's U-Boot for QEMU `virt` (`u-boot-qemu`, 2023.01,
//! `qemu_arm64`), run as the machine's `-bios`, loads nothing itself here but `booti`s Moat
//! where QEMU's loader put it, with the VM bundle as the initrd and QEMU's device tree (which
//! U-Boot relocates near the top of RAM and fills in `/chosen`'s initrd range). QEMU starts the
//! firmware at EL2 with `virtualization=on`, and U-Boot's `booti` stays at EL2 (it drops only
//! from EL3), so Moat is entered at EL2 as on a board.
//!
//! The commands reach U-Boot through its environment, which on `qemu_arm64` lives in the
//! second flash bank (`CONFIG_ENV_IS_IN_FLASH`, `CONFIG_ENV_ADDR` 0x4000000,
//! `CONFIG_ENV_SIZE` 0x40000): a 4-byte little-endian CRC-32 of the rest, then `name=value`
//! strings each ending in NUL, an empty string last. `bootdelay=0` and `bootcmd=booti ...`
//! make it boot unattended.
//!
//! The bundle is a flattened device tree, which U-Boot (built with FIT support) takes for a FIT
//! image and refuses as a raw `addr:size` initrd; so it is wrapped in a legacy U-Boot image
//! header of type ramdisk, as `mkimage -A arm64 -O linux -T ramdisk -C none -d vm.bundle`
//! would make it (U-Boot's `include/image.h` for the header). U-Boot checks both CRCs, then
//! hands Moat the bundle itself. On a real board the user types the same `booti`.
//!
//! Two ways in: [`Boot::Booti`] puts Moat and the bundle in RAM with QEMU's loader at chosen
//! addresses and sets `bootcmd` (the relocation cases: any load address), and [`Boot::Disk`]
//! gives U-Boot only a virtio disk the host tool builds — an MBR with one ext2 partition holding
//! `moat.bin`, `bundle.uimg` and `boot.scr` — which U-Boot's default environment finds on its
//! own (`distro_bootcmd`: `boot_targets` up to `virtio0`, then `boot.scr` on the bootable
//! partition), as it would on a board's SD card.

use crate::error::{XResult, failed};
use crate::qemu::{self, ConsoleMode, Outcome};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Debian's U-Boot for QEMU `virt` (package `u-boot-qemu`).
pub const UBOOT_QEMU_ARM64: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";

/// The size of U-Boot's environment in the flash (`CONFIG_ENV_SIZE`).
const ENV_SIZE: usize = 0x4_0000;
/// The size of a `virt` flash bank: QEMU wants the `-drive if=pflash` file exactly this big.
const FLASH_BANK_SIZE: u64 = 64 << 20;

/// The legacy image header's magic (`IH_MAGIC`).
const IH_MAGIC: u32 = 0x2705_1956;
/// `IH_OS_LINUX`, `IH_ARCH_ARM64`, `IH_TYPE_RAMDISK`, `IH_COMP_NONE`: what `booti` accepts as
/// an initrd ("AArch64 Linux RAMDisk Image (uncompressed)").
const IH_OS_LINUX: u8 = 5;
const IH_ARCH_ARM64: u8 = 22;
const IH_TYPE_RAMDISK: u8 = 3;
const IH_COMP_NONE: u8 = 0;
/// `IH_TYPE_SCRIPT`: a script `source` runs.
const IH_TYPE_SCRIPT: u8 = 6;

/// `data` behind a 64-byte legacy U-Boot image header of type ramdisk.
pub fn ramdisk_image(data: &[u8], name: &str) -> Vec<u8> {
    legacy_image(data, name, IH_TYPE_RAMDISK)
}

/// A script for U-Boot's `source`, as `mkimage -T script` makes it: a legacy image in the
/// multi-file layout (the length of each part, a 0, then the parts), with the script the only
/// part.
pub fn script_image(script: &str, name: &str) -> Vec<u8> {
    let mut data = (script.len() as u32).to_be_bytes().to_vec();
    data.extend(0u32.to_be_bytes());
    data.extend_from_slice(script.as_bytes());
    legacy_image(&data, name, IH_TYPE_SCRIPT)
}

/// `data` behind a 64-byte legacy U-Boot image header of type `kind` (big-endian fields:
/// magic, header CRC, time, size, load, entry, data CRC, OS, arch, type, compression, name).
fn legacy_image(data: &[u8], name: &str, kind: u8) -> Vec<u8> {
    let header = |header_crc: u32| {
        let mut h = Vec::with_capacity(64);
        h.extend(IH_MAGIC.to_be_bytes());
        h.extend(header_crc.to_be_bytes());
        h.extend(0u32.to_be_bytes()); // ih_time: none, so the image is reproducible.
        h.extend((data.len() as u32).to_be_bytes());
        h.extend(0u32.to_be_bytes()); // ih_load: 0, used where it is.
        h.extend(0u32.to_be_bytes()); // ih_ep
        h.extend(crc32(data).to_be_bytes());
        h.extend([IH_OS_LINUX, IH_ARCH_ARM64, kind, IH_COMP_NONE]);
        let mut ih_name = [0u8; 32];
        let n = name.len().min(31);
        ih_name[..n].copy_from_slice(&name.as_bytes()[..n]);
        h.extend(ih_name);
        h
    };
    // The header CRC covers the header with its own CRC field 0.
    let mut image = header(crc32(&header(0)));
    image.extend_from_slice(data);
    image
}

/// U-Boot's environment block of `vars` (`name=value` each).
///
/// # Errors
///
/// When the variables do not fit the block.
pub fn environment(vars: &[String]) -> XResult<Vec<u8>> {
    let mut strings = Vec::new();
    for var in vars {
        strings.extend_from_slice(var.as_bytes());
        strings.push(0);
    }
    strings.push(0);
    if strings.len() > ENV_SIZE - 4 {
        return Err(failed(format!(
            "U-Boot environment of {} bytes exceeds its {ENV_SIZE:#x}-byte block",
            strings.len()
        )));
    }
    strings.resize(ENV_SIZE - 4, 0);
    let mut block = crc32(&strings).to_le_bytes().to_vec();
    block.extend(strings);
    Ok(block)
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

/// Where QEMU's loader puts what U-Boot boots.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    /// Moat's `Image`: a 2 MiB boundary + its `text_offset` (0x200000), which `booti` leaves in
    /// place because the header's flags say the image may be anywhere.
    pub moat: u64,
    /// The bundle's legacy ramdisk image.
    pub bundle: u64,
}

/// How U-Boot finds Moat.
#[derive(Clone, Copy, Debug)]
pub enum Boot {
    /// In RAM where QEMU's loader put it; `bootcmd` (in the environment flash) `booti`s it.
    Booti(Placement),
    /// On a virtio disk, through U-Boot's default environment and the disk's `boot.scr`.
    Disk,
}

/// The boot script on the disk: U-Boot's own load addresses for a kernel and a ramdisk
/// (`kernel_addr_r`, `ramdisk_addr_r`), the partition distro boot found it on, and the device
/// tree QEMU gave U-Boot.
pub const BOOT_SCRIPT: &str = "\
load ${devtype} ${devnum}:${distro_bootpart} ${kernel_addr_r} /moat.bin
load ${devtype} ${devnum}:${distro_bootpart} ${ramdisk_addr_r} /bundle.uimg
booti ${kernel_addr_r} ${ramdisk_addr_r} ${fdtcontroladdr}
";

/// Where U-Boot 2023.01's `qemu_arm64` environment loads a kernel (`kernel_addr_r`): Moat
/// stays there, 0x200000 past a 2 MiB boundary.
pub const KERNEL_ADDR_R: u64 = 0x4040_0000;

/// The first sector of the disk's one partition: 1 MiB, as partitioning tools align it.
const PARTITION_START_LBA: u32 = 2048;
const SECTOR: u64 = 512;

/// A master boot record with one bootable Linux partition (type 0x83) of `sectors` sectors
/// from `start_lba`; the CHS fields say "use the LBA ones" (1023/254/63).
pub fn mbr(start_lba: u32, sectors: u32) -> [u8; 512] {
    let mut mbr = [0u8; 512];
    let entry = &mut mbr[446..462];
    entry[0] = 0x80;
    entry[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
    entry[4] = 0x83;
    entry[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    entry[8..12].copy_from_slice(&start_lba.to_le_bytes());
    entry[12..16].copy_from_slice(&sectors.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    mbr
}

/// Builds `dir/disk.img`: the MBR, then an ext2 file system (made by `mke2fs -d` from a
/// folder, no privileges needed) holding `files` (name, bytes).
///
/// # Errors
///
/// When a file cannot be written or `mke2fs` fails.
pub fn disk_image(dir: &Path, files: &[(&str, &[u8])]) -> XResult<std::path::PathBuf> {
    let root = dir.join("disk-root");
    std::fs::create_dir_all(&root)
        .map_err(|e| failed(format!("creating {}: {e}", root.display())))?;
    let mut bytes = 0u64;
    for (name, data) in files {
        write(&root.join(name), data)?;
        bytes += data.len() as u64;
    }
    // Room for the files twice over and the file system's own tables.
    let fs_mib = (2 * bytes).div_ceil(1 << 20) + 8;
    let disk = dir.join("disk.img");
    let _ = std::fs::remove_file(&disk);
    let offset = u64::from(PARTITION_START_LBA) * SECTOR;
    crate::build::run_step(
        Command::new(mke2fs())
            .args(["-q", "-F", "-t", "ext2", "-L", "moat", "-d"])
            .arg(&root)
            .arg("-E")
            .arg(format!("offset={offset}"))
            .arg(&disk)
            .arg(format!("{fs_mib}M"))
            // It says "Creating regular file" even with -q; failures go to standard error.
            .stdout(std::process::Stdio::null()),
        "making the boot disk's file system (mke2fs)",
    )?;
    let sectors = (fs_mib << 20) / SECTOR;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&disk)
        .map_err(|e| failed(format!("opening {}: {e}", disk.display())))?;
    std::os::unix::fs::FileExt::write_all_at(&file, &mbr(PARTITION_START_LBA, sectors as u32), 0)
        .map_err(|e| failed(format!("writing the MBR of {}: {e}", disk.display())))?;
    Ok(disk)
}

/// `mke2fs` (Debian's e2fsprogs, an essential package): in `/usr/sbin`, which a user's `PATH`
/// may lack.
fn mke2fs() -> &'static str {
    const SBIN: &str = "/usr/sbin/mke2fs";
    if Path::new(SBIN).exists() {
        SBIN
    } else {
        "mke2fs"
    }
}

/// One U-Boot boot of Moat on `virt`.
#[derive(Clone, Debug)]
pub struct UbootMachine<'a> {
    /// QEMU's `-cpu`.
    pub cpu: &'a str,
    /// RAM in MiB.
    pub mem_mib: u64,
    /// `-smp`.
    pub smp: u32,
    /// Moat's flat `Image`.
    pub moat: &'a Path,
    /// The VM bundle.
    pub bundle: &'a Path,
    /// How U-Boot finds them.
    pub boot: Boot,
}

impl UbootMachine<'_> {
    /// Writes the ramdisk image and the flash holding the environment, or the disk, into
    /// `dir`, and boots.
    ///
    /// # Errors
    ///
    /// When U-Boot is not installed, a file cannot be written, or QEMU cannot be started.
    pub fn run(&self, dir: &Path, mode: ConsoleMode, limit: Duration) -> XResult<Outcome> {
        if !Path::new(UBOOT_QEMU_ARM64).exists() {
            return Err(failed(format!(
                "{UBOOT_QEMU_ARM64} is missing (Debian's u-boot-qemu; ./x installs it)"
            )));
        }
        let bundle = std::fs::read(self.bundle)
            .map_err(|e| failed(format!("reading {}: {e}", self.bundle.display())))?;
        let ramdisk = ramdisk_image(&bundle, "moat vm bundle");
        let mut cmd = Command::new("qemu-system-aarch64");
        cmd.args(["-M", "virt,virtualization=on,gic-version=3,highmem=off"]);
        cmd.args(["-cpu", self.cpu, "-no-reboot", "-nic", "none"]);
        cmd.arg("-smp").arg(self.smp.max(1).to_string());
        cmd.arg("-m").arg(format!("{}M", self.mem_mib));
        cmd.args(["-bios", UBOOT_QEMU_ARM64]);
        match self.boot {
            Boot::Booti(at) => {
                let ramdisk_file = dir.join("bundle.uimg");
                write(&ramdisk_file, &ramdisk)?;
                let flash = environment_flash(dir, at)?;
                cmd.arg("-drive").arg(format!(
                    "if=pflash,unit=1,format=raw,file={}",
                    flash.display()
                ));
                for (file, addr) in [(self.moat, at.moat), (&ramdisk_file, at.bundle)] {
                    cmd.arg("-device").arg(format!(
                        "loader,file={},addr={addr:#x},force-raw=on",
                        file.display()
                    ));
                }
            }
            Boot::Disk => {
                let moat = std::fs::read(self.moat)
                    .map_err(|e| failed(format!("reading {}: {e}", self.moat.display())))?;
                let script = script_image(BOOT_SCRIPT, "moat boot script");
                let disk = disk_image(
                    dir,
                    &[
                        ("moat.bin", &moat),
                        ("bundle.uimg", &ramdisk),
                        ("boot.scr", &script),
                    ],
                )?;
                cmd.arg("-drive").arg(format!(
                    "if=none,format=raw,id=boot,file={}",
                    disk.display()
                ));
                cmd.args(["-device", "virtio-blk-device,drive=boot"]);
            }
        }
        cmd.args(qemu::console_args(mode));
        qemu::run_command(cmd, mode, Some(limit), None)
    }
}

/// `dir/uboot-env.flash`: the second flash bank, holding an environment that boots at once
/// with `booti` of what the loader placed at `at`.
fn environment_flash(dir: &Path, at: Placement) -> XResult<std::path::PathBuf> {
    let flash = dir.join("uboot-env.flash");
    let env = environment(&[
        "bootdelay=0".into(),
        // `fdtcontroladdr`: the device tree QEMU gave U-Boot, which `booti` passes on.
        format!(
            "bootcmd=booti {:#x} {:#x} ${{fdtcontroladdr}}",
            at.moat, at.bundle
        ),
    ])?;
    write(&flash, &env)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&flash)
        .map_err(|e| failed(format!("opening {}: {e}", flash.display())))?;
    file.set_len(FLASH_BANK_SIZE)
        .map_err(|e| failed(format!("sizing {}: {e}", flash.display())))?;
    Ok(flash)
}

fn write(path: &Path, bytes: &[u8]) -> XResult<()> {
    std::fs::write(path, bytes).map_err(|e| failed(format!("writing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_ieee_polynomial_u_boot_uses() {
        // The CRC-32 check value of "123456789".
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn ramdisk_header_carries_size_crcs_and_the_arm64_ramdisk_kind() {
        let data = b"bundle bytes";
        let image = ramdisk_image(data, "moat vm bundle");
        assert_eq!(image.len(), 64 + data.len());
        assert_eq!(&image[64..], data);
        let be = |at: usize| u32::from_be_bytes(image[at..at + 4].try_into().unwrap());
        assert_eq!(be(0), IH_MAGIC);
        assert_eq!(be(12), data.len() as u32);
        assert_eq!(be(24), crc32(data));
        assert_eq!(&image[28..32], &[5, 22, 3, 0]);
        assert_eq!(&image[32..46], b"moat vm bundle");
        // The header CRC is over the header with the CRC field zeroed.
        let mut zeroed = image[..64].to_vec();
        zeroed[4..8].fill(0);
        assert_eq!(be(4), crc32(&zeroed));
    }

    #[test]
    fn environment_is_crc_then_nul_terminated_strings_then_an_empty_one() {
        let env = environment(&["a=1".into(), "bootcmd=booti 0x1".into()]).unwrap();
        assert_eq!(env.len(), ENV_SIZE);
        assert_eq!(&env[4..27], b"a=1\0bootcmd=booti 0x1\0\0");
        let crc = u32::from_le_bytes(env[..4].try_into().unwrap());
        assert_eq!(crc, crc32(&env[4..]));
    }

    #[test]
    fn script_image_is_a_script_in_the_multi_file_layout() {
        let image = script_image("echo hi\n", "s");
        assert_eq!(image[30], IH_TYPE_SCRIPT);
        // The part lengths (8 bytes of script), their terminating 0, then the script.
        assert_eq!(&image[64..72], &[0, 0, 0, 8, 0, 0, 0, 0]);
        assert_eq!(&image[72..], b"echo hi\n");
        let size = u32::from_be_bytes(image[12..16].try_into().unwrap());
        assert_eq!(size as usize, image.len() - 64);
    }

    #[test]
    fn mbr_has_one_bootable_linux_partition_by_lba_and_the_boot_signature() {
        let mbr = mbr(2048, 16384);
        assert_eq!(mbr[446], 0x80);
        assert_eq!(mbr[450], 0x83);
        assert_eq!(&mbr[454..458], &2048u32.to_le_bytes());
        assert_eq!(&mbr[458..462], &16384u32.to_le_bytes());
        assert!(mbr[462..510].iter().all(|&b| b == 0));
        assert_eq!(&mbr[510..], &[0x55, 0xaa]);
    }

    #[test]
    fn an_environment_larger_than_its_block_is_refused() {
        assert!(environment(&["x".repeat(ENV_SIZE)]).is_err());
    }
}
