//! The initramfs for a Linux guest: a `newc` cpio archive (Linux
//! `Documentation/driver-api/early-userspace/buffer-format.rst`), gzip-compressed, holding
//! busybox, the directories it needs, `/dev/console`, the kernel modules of Moat's virtio-net
//! links and an `/init` script that loads them, configures `eth0`, brings up a shell on the
//! console and powers the VM off when that shell exits.
//!
//! Written here rather than with the `cpio` tool (not on a fresh machine) or a crate (the format
//! is a 110-byte ASCII header per entry; the code says every field by name). Each entry: the
//! header, the NUL-terminated name, zeros to a multiple of 4, the data, zeros to a multiple
//! of 4; the archive ends with the entry `TRAILER!!!`.

use crate::linux::modules::Module;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write;

/// The header's magic for the `newc` format (no checksums).
pub const NEWC_MAGIC: &str = "070701";
/// The line the guest prints when its userspace is up (tests wait for it).
pub const BANNER: &str = "Moat guest: Linux up";

/// `st_mode` file types (`S_IFMT` bits).
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;

/// The line `/init` prints when it configured `eth0` (followed by the address).
pub const NET_UP: &str = "Moat guest: eth0 up";
/// The start of the line `/init` prints when a module or the address could not be set up.
pub const NET_FAILED: &str = "Moat guest: network FAILED";
/// The kernel command-line parameter that gives `eth0` its address (`moat.ip=10.0.0.1/24`):
/// the kernel ignores a dotted parameter of a module it does not have, and `/init` reads it
/// from `/proc/cmdline`. (The kernel's own `ip=` cannot serve: it runs before `/init` loads the
/// network driver.)
pub const IP_PARAMETER: &str = "moat.ip";
/// Where the kernel modules go in the initramfs.
const MODULE_DIR: &str = "lib/modules";

/// The `/init` script. busybox runs it as PID 1: mount the kernel's file systems, install its
/// applets as symlinks; when the device tree has a virtio-mmio transport (a Moat virtio-net
/// link), load `modules` (named in dependency order, from [`MODULE_DIR`]) and give `eth0` the
/// address of [`IP_PARAMETER`], saying so or saying what failed; print the banner with the
/// kernel's uptime (the VM's boot-to-shell time), start a shell
/// on the console with job control (`cttyhack` gives it a controlling terminal) and power off
/// when it exits.
pub fn init_script(modules: &[&str]) -> String {
    let modules = modules.join(" ");
    format!(
        "#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s
for node in /sys/firmware/devicetree/base/virtio_mmio@*; do
\t[ -e \"$node\" ] || break
\tfor m in {modules}; do
\t\tinsmod /{MODULE_DIR}/$m.ko || echo \"{NET_FAILED}: insmod $m\"
\tdone
\tbreak
done
ip link set lo up
for arg in $(cat /proc/cmdline); do
\tcase \"$arg\" in
\t{IP_PARAMETER}=*)
\t\taddr=\"${{arg#{IP_PARAMETER}=}}\"
\t\tif ip addr add \"$addr\" dev eth0 && ip link set eth0 up; then
\t\t\techo \"{NET_UP} $addr\"
\t\telse
\t\t\techo \"{NET_FAILED}: eth0 $addr\"
\t\tfi;;
\tesac
done
read up idle < /proc/uptime
echo \"{BANNER} (uptime $up s)\"
setsid cttyhack sh
echo 'Moat guest: shell exited, powering off'
poweroff -f
"
    )
}

/// The line the root file system's `/init` prints when the second stage of `debootstrap` and
/// the image's set-up are done and the disk is unmounted (the image builder waits for it).
pub const ROOT_READY: &str = "Moat guest: root file system ready";
/// The start of the line the root file system's `/init` prints when it cannot go on.
pub const ROOT_FAILED: &str = "Moat guest: root FAILED";
/// The kernel command-line word that makes the root file system's `/init` run the second stage
/// of `debootstrap` on the disk and power off, instead of booting it.
pub const STAGE2_PARAMETER: &str = "moat.stage2";
/// The script the image builder leaves at the root of the file system, run (in a `chroot`) after
/// the second stage and removed.
pub const SETUP_SCRIPT: &str = "moat-setup";

/// The `/init` of a Debian root file system on a virtio-blk disk. busybox runs it as PID 1:
/// mount the kernel's file systems, load `modules` (dependency order) so that the virtio PCI
/// devices appear, wait for the `root=` block device, then either (with
/// [`STAGE2_PARAMETER`]) mount it read-write, run `debootstrap --second-stage` and
/// [`SETUP_SCRIPT`] in a `chroot`, unmount and power off, or mount it (`ro` unless the command
/// line says `rw`) and `switch_root` to its `/sbin/init` (systemd; in Debian 12 a symbolic link
/// to `/lib/systemd/systemd`, which only resolves inside the new root). Anything that fails prints
/// [`ROOT_FAILED`] with what and powers off: a run that waits for a login prompt then ends
/// instead of hanging.
pub fn root_init_script(modules: &[&str]) -> String {
    let modules = modules.join(" ");
    format!(
        "#!/bin/busybox sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s
fail() {{
\techo \"{ROOT_FAILED}: $*\"
\tsync
\tpoweroff -f
}}
for m in {modules}; do
\tinsmod /{MODULE_DIR}/$m.ko || fail \"insmod $m\"
done
root=
mode=ro
stage2=
for arg in $(cat /proc/cmdline); do
\tcase \"$arg\" in
\troot=*) root=\"${{arg#root=}}\";;
\trw) mode=rw;;
\tro) mode=ro;;
\t{STAGE2_PARAMETER}) stage2=1;;
\tesac
done
[ -n \"$root\" ] || fail \"no root= on the kernel command line\"
tries=0
while [ ! -b \"$root\" ]; do
\ttries=$((tries + 1))
\t[ $tries -le 30 ] || fail \"no block device $root\"
\tsleep 1
done
if [ -n \"$stage2\" ]; then
\tmount -t ext4 -o rw \"$root\" /newroot || fail \"mount $root\"
\tmount -t devtmpfs devtmpfs /newroot/dev || fail \"devtmpfs in $root\"
\techo \"Moat guest: debootstrap --second-stage on $root\"
\tchroot /newroot /debootstrap/debootstrap --second-stage || fail \"debootstrap --second-stage\"
\tchroot /newroot /bin/sh -e /{SETUP_SCRIPT} || fail \"/{SETUP_SCRIPT}\"
\trm -f /newroot/{SETUP_SCRIPT}
\tumount /newroot/dev
\tumount /newroot || fail \"umount $root\"
\tsync
\techo \"{ROOT_READY}\"
\tpoweroff -f
fi
mount -t ext4 -o \"$mode\" \"$root\" /newroot || fail \"mount $root\"
[ -x /newroot/sbin/init ] || [ -L /newroot/sbin/init ] || fail \"$root has no /sbin/init\"
[ -e /newroot/{SETUP_SCRIPT} ] && fail \"$root is half made: its second stage has not run\"
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
"
    )
}

/// One file-system object in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir {
        /// Its path without a leading `/`.
        path: String,
    },
    /// A regular file with its permission bits.
    File {
        /// Its path without a leading `/`.
        path: String,
        /// Permission bits, e.g. 0o755.
        perm: u32,
        /// Its content.
        data: Vec<u8>,
    },
    /// A character device node.
    CharDev {
        /// Its path without a leading `/`.
        path: String,
        /// The device's major number.
        major: u32,
        /// The device's minor number.
        minor: u32,
    },
}

/// The entries of the guest's initramfs around `busybox` (an arm64 static busybox) and the
/// kernel `modules`, given in load order.
pub fn entries(busybox: Vec<u8>, modules: &[Module]) -> Vec<Entry> {
    let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    let init = init_script(&names);
    with_init(busybox, modules, init)
}

/// The entries of the initramfs that boots (or finishes making) a Debian root file system on a
/// virtio-blk disk: as [`entries`], with [`root_init_script`] as `/init`.
pub fn root_entries(busybox: Vec<u8>, modules: &[Module]) -> Vec<Entry> {
    let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    let init = root_init_script(&names);
    with_init(busybox, modules, init)
}

/// busybox, the directories, `/dev/console`, the modules and `init` as `/init`.
fn with_init(busybox: Vec<u8>, modules: &[Module], init: String) -> Vec<Entry> {
    let dir = |path: &str| Entry::Dir { path: path.into() };
    let mut entries: Vec<Entry> = ["dev", "proc", "sys", "bin", "sbin", "usr", "usr/bin"]
        .into_iter()
        .chain(["usr/sbin", "tmp", "root", "etc", "lib", MODULE_DIR])
        .map(dir)
        .collect();
    entries.extend(modules.iter().map(|m| Entry::File {
        path: format!("{MODULE_DIR}/{}.ko", m.name),
        perm: 0o644,
        data: m.object.clone(),
    }));
    entries.push(Entry::CharDev {
        path: "dev/console".into(),
        major: 5,
        minor: 1,
    });
    entries.push(Entry::File {
        path: "bin/busybox".into(),
        perm: 0o755,
        data: busybox,
    });
    entries.push(Entry::File {
        path: "init".into(),
        perm: 0o755,
        data: init.into_bytes(),
    });
    entries
}

/// The uncompressed `newc` archive of `entries`, inode numbers from 1 in order.
pub fn newc_archive(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let ino = u32::try_from(index + 1).expect("fewer than 2^32 entries");
        write_entry(&mut out, ino, entry);
    }
    let trailer = Header {
        nlink: 1,
        ..Header::default()
    };
    write_record(&mut out, &trailer, "TRAILER!!!", &[]);
    out
}

/// The gzip-compressed archive (Linux unpacks it with `CONFIG_RD_GZIP`, on in Debian's kernels).
///
/// # Errors
///
/// Only if compression into memory fails, which it does not in practice.
pub fn gzip(archive: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(archive)?;
    encoder.finish()
}

/// The fields of a `newc` header that vary; the rest are 0 (uid, gid, mtime, devices of the
/// file system, check).
#[derive(Clone, Copy, Debug, Default)]
struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    rdevmajor: u32,
    rdevminor: u32,
}

fn write_entry(out: &mut Vec<u8>, ino: u32, entry: &Entry) {
    let header = Header {
        ino,
        nlink: 1,
        ..Header::default()
    };
    match entry {
        Entry::Dir { path } => {
            let mode = S_IFDIR | 0o755;
            write_record(
                out,
                &Header {
                    mode,
                    nlink: 2,
                    ..header
                },
                path,
                &[],
            );
        }
        Entry::File { path, perm, data } => {
            let mode = S_IFREG | perm;
            write_record(out, &Header { mode, ..header }, path, data);
        }
        Entry::CharDev { path, major, minor } => {
            let (rdevmajor, rdevminor) = (*major, *minor);
            let mode = S_IFCHR | 0o600;
            let header = Header {
                mode,
                rdevmajor,
                rdevminor,
                ..header
            };
            write_record(out, &header, path, &[]);
        }
    }
}

/// One record: header, name with its NUL, padding, data, padding.
fn write_record(out: &mut Vec<u8>, header: &Header, name: &str, data: &[u8]) {
    let filesize = u32::try_from(data.len()).expect("a file under 4 GiB");
    let namesize = u32::try_from(name.len() + 1).expect("a short name");
    let fields = [
        header.ino,
        header.mode,
        0, // uid
        0, // gid
        header.nlink,
        0, // mtime
        filesize,
        0, // devmajor
        0, // devminor
        header.rdevmajor,
        header.rdevminor,
        namesize,
        0, // check
    ];
    out.extend_from_slice(NEWC_MAGIC.as_bytes());
    for field in fields {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

#[cfg(test)]
mod tests {
    //! The archive read back by a small `newc` reader written here from the format description.

    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    /// One record as read back.
    #[derive(Debug)]
    struct Record {
        /// The 13 header fields after the magic, by their `newc` order.
        fields: [u32; 13],
        name: String,
        data: Vec<u8>,
        /// Where the header started.
        offset: usize,
    }

    impl Record {
        fn mode(&self) -> u32 {
            self.fields[1]
        }
        fn rdev(&self) -> (u32, u32) {
            (self.fields[9], self.fields[10])
        }
    }

    fn hex(bytes: &[u8]) -> u32 {
        u32::from_str_radix(std::str::from_utf8(bytes).unwrap(), 16).unwrap()
    }

    fn read_archive(bytes: &[u8]) -> Vec<Record> {
        let mut records = Vec::new();
        let mut at = 0;
        loop {
            assert_eq!(at % 4, 0, "record at {at} not 4-byte aligned");
            assert_eq!(&bytes[at..at + 6], NEWC_MAGIC.as_bytes());
            let fields: [u32; 13] =
                core::array::from_fn(|i| hex(&bytes[at + 6 + 8 * i..at + 14 + 8 * i]));
            let (filesize, namesize) = (fields[6] as usize, fields[11] as usize);
            let name_at = at + 110;
            let name = &bytes[name_at..name_at + namesize];
            assert_eq!(name.last(), Some(&0), "name without its NUL");
            let data_at = (name_at + namesize).next_multiple_of(4);
            let name = String::from_utf8(name[..namesize - 1].to_vec()).unwrap();
            let data = bytes[data_at..data_at + filesize].to_vec();
            records.push(Record {
                fields,
                name,
                data,
                offset: at,
            });
            at = (data_at + filesize).next_multiple_of(4);
            if records.last().unwrap().name == "TRAILER!!!" {
                assert_eq!(at, bytes.len(), "bytes after the trailer");
                return records;
            }
        }
    }

    fn archive() -> Vec<Record> {
        let modules = ["virtio", "virtio_mmio"].map(|name| Module {
            name: name.into(),
            object: format!("{name} object").into_bytes(),
        });
        read_archive(&newc_archive(&entries(
            b"\x7fELF busybox".to_vec(),
            &modules,
        )))
    }

    fn find<'a>(records: &'a [Record], name: &str) -> &'a Record {
        records
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn every_record_starts_with_the_newc_magic_on_a_4_byte_boundary_and_ends_with_the_trailer() {
        let records = archive();
        assert!(records.iter().all(|r| r.offset % 4 == 0));
        let trailer = records.last().unwrap();
        assert_eq!(trailer.name, "TRAILER!!!");
        assert_eq!(trailer.fields[6], 0);
    }

    #[test]
    fn init_is_an_executable_script_run_by_busybox() {
        let records = archive();
        let init = find(&records, "init");
        assert_eq!(init.mode(), 0o100_755);
        let script = String::from_utf8(init.data.clone()).unwrap();
        assert!(script.starts_with("#!/bin/busybox sh\n"));
        for line in [
            "mount -t devtmpfs",
            "--install -s",
            BANNER,
            "setsid cttyhack sh",
        ] {
            assert!(script.contains(line), "no {line}");
        }
        assert!(script.trim_end().ends_with("poweroff -f"));
    }

    #[test]
    fn init_loads_the_modules_in_the_order_given_and_configures_eth0_from_the_command_line() {
        let records = archive();
        for name in ["virtio", "virtio_mmio"] {
            let module = find(&records, &format!("lib/modules/{name}.ko"));
            assert_eq!(module.mode(), 0o100_644);
            assert_eq!(module.data, format!("{name} object").into_bytes());
        }
        let script = String::from_utf8(find(&records, "init").data.clone()).unwrap();
        assert!(script.contains("for m in virtio virtio_mmio; do"));
        assert!(script.contains("insmod /lib/modules/$m.ko || echo \"Moat guest: network FAILED"));
        assert!(script.contains("moat.ip=*)"));
        assert!(script.contains("ip addr add \"$addr\" dev eth0 && ip link set eth0 up"));
        let net = script.find(NET_UP).unwrap();
        assert!(
            net < script.find(BANNER).unwrap(),
            "eth0 is up before the banner"
        );
    }

    #[test]
    fn the_root_init_loads_its_modules_then_boots_the_disk_or_finishes_making_it() {
        let modules = ["virtio", "virtio_pci", "virtio_blk"].map(|name| Module {
            name: name.into(),
            object: name.as_bytes().to_vec(),
        });
        let records = read_archive(&newc_archive(&root_entries(b"bb".to_vec(), &modules)));
        let init = find(&records, "init");
        assert_eq!(init.mode(), 0o100_755);
        let script = String::from_utf8(init.data.clone()).unwrap();
        let at = |needle: &str| {
            script
                .find(needle)
                .unwrap_or_else(|| panic!("no {needle:?} in\n{script}"))
        };
        assert!(at("for m in virtio virtio_pci virtio_blk; do") < at("root=*)"));
        assert!(at("insmod /lib/modules/$m.ko || fail") < at("while [ ! -b \"$root\" ]"));
        // The second stage: debootstrap, then the set-up script, then the disk unmounted before
        // the line the builder waits for.
        let stage2 = at("if [ -n \"$stage2\" ]");
        assert!(stage2 < at("debootstrap --second-stage ||"));
        assert!(at("debootstrap --second-stage ||") < at("/bin/sh -e /moat-setup"));
        assert!(at("umount /newroot ||") < at(&format!("echo \"{ROOT_READY}\"")));
        assert!(at(&format!("echo \"{ROOT_READY}\"")) < at("exec switch_root"));
        assert!(script.contains("moat.stage2) stage2=1;;"));
        assert!(script.contains("mount -t ext4 -o \"$mode\" \"$root\" /newroot"));
        assert!(
            script
                .trim_end()
                .ends_with("exec switch_root /newroot /sbin/init")
        );
        // Every failure says so and powers off.
        assert!(script.contains(&format!("echo \"{ROOT_FAILED}: $*\"")));
        assert!(!script.contains("setsid cttyhack sh"));
    }

    #[test]
    fn busybox_is_an_executable_regular_file_with_its_bytes() {
        let records = archive();
        let busybox = find(&records, "bin/busybox");
        assert_eq!(busybox.mode(), 0o100_755);
        assert_eq!(busybox.data, b"\x7fELF busybox");
    }

    #[test]
    fn dev_console_is_character_device_5_1() {
        let records = archive();
        let console = find(&records, "dev/console");
        assert_eq!(console.mode() & 0o170_000, 0o020_000);
        assert_eq!(console.rdev(), (5, 1));
    }

    #[test]
    fn the_directories_busybox_needs_exist_before_the_files_in_them() {
        let records = archive();
        for dir in [
            "dev", "proc", "sys", "bin", "sbin", "usr/bin", "usr/sbin", "tmp",
        ] {
            assert_eq!(find(&records, dir).mode(), 0o040_755, "{dir}");
        }
        let position = |name: &str| records.iter().position(|r| r.name == name).unwrap();
        assert!(position("dev") < position("dev/console"));
        assert!(position("bin") < position("bin/busybox"));
    }

    #[test]
    fn names_are_relative_and_inodes_distinct() {
        let records = archive();
        assert!(records.iter().all(|r| !r.name.starts_with('/')));
        let mut inodes: Vec<u32> = records[..records.len() - 1]
            .iter()
            .map(|r| r.fields[0])
            .collect();
        inodes.sort_unstable();
        inodes.dedup();
        assert_eq!(inodes.len(), records.len() - 1);
    }

    #[test]
    fn gzip_round_trips_to_the_same_archive() {
        let plain = newc_archive(&entries(vec![1, 2, 3], &[]));
        let mut unpacked = Vec::new();
        GzDecoder::new(&gzip(&plain).unwrap()[..])
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, plain);
    }
}
