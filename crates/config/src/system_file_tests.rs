//! Reading both forms of a description file.

use std::path::Path;

use super::*;
use crate::schema::{OnPowerOff, OnReset, RamRegion};
use moat_arm::addr::Ipa;

const TWO_VMS: &str = r#"
[[vm]]
name = "linux"
cpus = [2, 3]
kernel = "linux"
bootargs = "console=ttyAMA0"
on-poweroff = "halt-vm"
[[vm.ram]]
base = 0x4000_0000
size = "256M"
[[vm.device]]
kind = "gicv3-redist"
base = 0x080A_0000
[[vm.device]]
kind = "gicv3-dist"
base = 0x0800_0000

[[vm]]
name = "bare"
cpus = [0]
guest = "hello"
initrd = "../initrd.img"
ipa-bits = 36
parange = "tight"
hole-policy = "raz-wi"
on-reset = "power-off-machine"
[[vm.ram]]
base = 0x4000_0000
size = "16M"
"#;

fn read(text: &str) -> Result<SystemFile, String> {
    SystemFile::from_toml_str(text, Path::new("/etc/moat")).map_err(|e| e.to_string())
}

fn refused(text: &str) -> String {
    let message = read(text).expect_err("the file should be refused");
    assert!(!message.contains('\n'), "{message}");
    message
}

#[test]
fn a_single_vm_file_is_one_vm_on_the_first_cpus_with_its_images_from_the_command_line() {
    let file = read("cpus = 3\n[[ram]]\nbase = 0x4000_0000\nsize = \"64M\"\n").unwrap();
    assert_eq!(file.images, None);
    let [vm] = &file.system.vms[..] else {
        panic!("{:?}", file.system)
    };
    assert_eq!((vm.cpus, &vm.physical_cpus[..]), (3, &[0, 1, 2][..]));
    assert_eq!(
        (vm.on_poweroff, vm.on_reset),
        (OnPowerOff::PowerOffMachine, OnReset::PowerOffMachine)
    );
    let system =
        SystemConfig::from_toml_str("cpus = 3\n[[ram]]\nbase = 0x4000_0000\nsize = \"64M\"\n");
    assert_eq!(system.unwrap(), file.system);
}

#[test]
fn a_single_vm_file_may_name_its_lifecycle() {
    let file = read("on-reset = \"restart\"\non-poweroff = \"halt-vm\"\n").unwrap();
    let vm = &file.system.vms[0];
    assert_eq!(
        (vm.on_poweroff, vm.on_reset),
        (OnPowerOff::HaltVm, OnReset::Restart)
    );
}

#[test]
fn vm_tables_give_each_vm_its_cpus_lifecycle_and_images() {
    let file = read(TWO_VMS).unwrap();
    let vms = &file.system.vms;
    assert_eq!(vms.len(), 2);
    let (linux, bare) = (&vms[0], &vms[1]);
    assert_eq!(linux.name, "linux");
    assert_eq!((linux.cpus, &linux.physical_cpus[..]), (2, &[2, 3][..]));
    assert_eq!(
        (linux.on_poweroff, linux.on_reset),
        (OnPowerOff::HaltVm, OnReset::Restart)
    );
    assert_eq!(linux.bootargs, "console=ttyAMA0");
    assert_eq!(
        linux.ram,
        [RamRegion {
            base: Ipa(0x4000_0000),
            size: 256 << 20
        }]
    );
    assert_eq!(linux.devices[0].size, 2 * 0x2_0000, "sized for 2 vCPUs");
    assert_eq!(bare.name, "bare");
    assert_eq!((bare.cpus, &bare.physical_cpus[..]), (1, &[0][..]));
    assert_eq!(
        (bare.ipa_bits, bare.parange),
        (36, crate::ParangeMode::Tight)
    );
    assert_eq!(bare.hole_policy, crate::HolePolicy::ReadAsZeroWriteIgnore);
    assert_eq!(
        (bare.on_poweroff, bare.on_reset),
        (OnPowerOff::PowerOffMachine, OnReset::PowerOffMachine)
    );
    assert_eq!(bare.ram[0].size, 16 << 20);
    assert_eq!(
        file.images,
        Some(vec![
            VmImages {
                guest: GuestSource::DebianLinux,
                initrd: None
            },
            VmImages {
                guest: GuestSource::Builtin("hello".into()),
                initrd: Some("/etc/moat/../initrd.img".into())
            },
        ])
    );
    assert_eq!(file.system.validate(None, None), Ok(()));
}

#[test]
fn image_paths_are_relative_to_the_files_directory_unless_absolute() {
    let vm = |image: &str| {
        let text = format!("[[vm]]\nname = \"a\"\ncpus = [0]\n{image}\n");
        read(&text).unwrap().images.unwrap().remove(0).guest
    };
    assert_eq!(
        vm("kernel = \"./Image\""),
        GuestSource::LinuxKernel("/etc/moat/./Image".into())
    );
    assert_eq!(
        vm("kernel = \"/boot/vmlinuz\""),
        GuestSource::LinuxKernel("/boot/vmlinuz".into())
    );
    assert_eq!(
        vm("guest = \"guests/probe.elf\""),
        GuestSource::File("/etc/moat/guests/probe.elf".into())
    );
    assert_eq!(vm("kernel = \"debian\""), GuestSource::DebianRoot);
}

#[test]
fn a_vm_table_with_two_images_or_none_is_refused_by_name() {
    let message =
        refused("[[vm]]\nname = \"a\"\ncpus = [0]\nkernel = \"linux\"\nguest = \"hello\"\n");
    assert_eq!(
        message,
        "line 5, column 9: VM 'a': both kernel and guest are given: a VM boots one image"
    );
    let message = refused("[[vm]]\nname = \"b\"\ncpus = [0]\n");
    assert!(message.starts_with("VM 'b': no image"), "{message}");
}

#[test]
fn a_kernel_name_other_than_linux_and_debian_is_refused() {
    let message = refused("[[vm]]\nname = \"a\"\ncpus = [0]\nkernel = \"Image\"\n");
    assert!(
        message.contains(
            "kernel = \"Image\" is neither a path nor a built-in kernel (\"linux\", \"debian\";"
        ),
        "{message}"
    );
    assert!(message.contains("\"./Image\""), "{message}");
}

#[test]
fn mixing_top_level_keys_and_vm_tables_is_refused_naming_the_keys() {
    let message = refused(&format!("name = \"x\"\ncpus = 2\n{TWO_VMS}"));
    assert!(
        message.starts_with("top-level keys (cpus, name) beside [[vm]] tables"),
        "{message}"
    );
    let message = refused("[[ram]]\nbase = 0\nsize = 4096\n[[vm]]\nname = \"a\"\n");
    assert!(
        message.starts_with("top-level keys (ram) beside"),
        "{message}"
    );
}

#[test]
fn unknown_keys_in_a_vm_table_are_refused_with_their_position() {
    let message = refused("[[vm]]\nname = \"a\"\ncpus = [0]\nguest = \"hello\"\nlink = \"b\"\n");
    assert!(message.starts_with("line 5, column 1: "), "{message}");
    assert!(message.contains("unknown field `link`"), "{message}");
    let message =
        refused("[[vm]]\nname = \"a\"\ncpus = [0]\nguest = \"hello\"\n[[vm.net]]\npeer = \"b\"\n");
    assert!(message.contains("unknown field `net`"), "{message}");
}

#[test]
fn a_single_vm_file_names_no_image_and_counts_its_cpus() {
    let message = refused("cpus = 2\nkernel = \"linux\"\n");
    assert_eq!(
        message,
        "line 2, column 10: `kernel` belongs in a [[vm]] table: a single-VM file takes its images from the command line (--kernel)"
    );
    let message = refused("initrd = \"x.cpio\"\n");
    assert!(message.contains("(--initrd)"), "{message}");
    let message = refused("name = \"x\"\ncpus = [1, 2]\n");
    assert!(
        message.starts_with("line 2, column 8: a single-VM file's `cpus` is its vCPU count"),
        "{message}"
    );
    let message = refused("cpus = \"two\"\n");
    assert!(message.contains("a vCPU count such as 2"), "{message}");
    let message = refused("cpus = 4294967296\n");
    assert!(message.starts_with("line 1, column 8: "), "{message}");
}

#[test]
fn a_vm_tables_cpus_is_a_list() {
    let message = refused("[[vm]]\nname = \"a\"\ncpus = 2\nguest = \"hello\"\n");
    assert!(message.starts_with("line 3, column 8: "), "{message}");
    assert!(
        message.contains("a list of the machine's CPUs such as [2, 3]"),
        "{message}"
    );
    let message = refused("[[vm]]\nname = \"a\"\ncpus = [-1]\nguest = \"hello\"\n");
    assert!(message.contains("line 3"), "{message}");
}

#[test]
fn a_vm_table_needs_a_name_and_known_lifecycle_actions() {
    let message =
        refused("[[vm]]\nname = \"a\"\ncpus = [0]\nguest = \"hello\"\n\n[[vm]]\ncpus = [1]\n");
    assert_eq!(message, "line 6, column 1: a [[vm]] table needs a `name`");
    let message =
        refused("[[vm]]\nname = \"a\"\ncpus = [0]\nguest = \"hello\"\non-reset = \"reboot\"\n");
    assert!(
        message.contains("unknown on-reset action \"reboot\": expected one of restart, halt-vm, power-off-machine"),
        "{message}"
    );
    let message =
        refused("[[vm]]\nname = \"a\"\ncpus = [0]\nguest = \"hello\"\non-poweroff = \"restart\"\n");
    assert!(
        message.contains("expected one of halt-vm, power-off-machine"),
        "{message}"
    );
}

#[test]
fn a_vm_table_without_cpus_parses_and_is_refused_by_validation() {
    let file = read(
        "[[vm]]\nname = \"a\"\nguest = \"hello\"\n[[vm.ram]]\nbase = 0x4000_0000\nsize = \"1M\"\n",
    )
    .unwrap();
    assert_eq!(
        file.system.validate(None, None),
        Err(crate::SystemError::NoCpu { vm: "a".into() })
    );
}

fn config_file(name: &str) -> SystemFile {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let text = std::fs::read_to_string(dir.join(name)).unwrap();
    SystemFile::from_toml_str(&text, &dir).unwrap()
}

#[test]
fn two_linux_is_two_debian_linux_vms_on_cpus_0_and_1_that_halt_and_restart_alone() {
    let file = config_file("two-linux.toml");
    let vms = &file.system.vms;
    let names: Vec<&str> = vms.iter().map(|vm| vm.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    for (vm, cpu) in vms.iter().zip([0, 1]) {
        assert_eq!((vm.cpus, &vm.physical_cpus[..]), (1, &[cpu][..]));
        assert_eq!(
            vm.ram,
            [RamRegion {
                base: Ipa(0x4000_0000),
                size: 256 << 20
            }]
        );
        assert_eq!(
            (vm.on_poweroff, vm.on_reset),
            (OnPowerOff::HaltVm, OnReset::Restart)
        );
    }
    let images = file.images.unwrap();
    assert!(
        images
            .iter()
            .all(|i| i.guest == GuestSource::DebianLinux && i.initrd.is_none())
    );
    assert_eq!(file.system.machine_cpus_needed(), 2);
}

#[test]
fn linux_and_bare_puts_linux_on_cpus_0_and_1_and_the_greeting_guest_on_cpu_2() {
    let file = config_file("linux-and-bare.toml");
    let [linux, bare] = &file.system.vms[..] else {
        panic!("{:?}", file.system)
    };
    assert_eq!((linux.cpus, &linux.physical_cpus[..]), (2, &[0, 1][..]));
    assert_eq!((bare.cpus, &bare.physical_cpus[..]), (1, &[2][..]));
    assert_eq!(bare.on_poweroff, OnPowerOff::HaltVm);
    let images = file.images.unwrap();
    assert_eq!(images[0].guest, GuestSource::DebianLinux);
    assert_eq!(images[1].guest, GuestSource::Builtin("hello".into()));
    assert_eq!(file.system.machine_cpus_needed(), 3);
}

/// The `config` fuzz target's finding: a base above `i64::MAX` (here in octal), which the
/// single-VM reader takes as a `u64` and the untyped table cannot hold, is read the same by
/// both readers (and left to validation, which refuses it as beyond the IPA space).
#[test]
fn a_single_vm_file_with_an_integer_beyond_i64_is_read_as_the_single_vm_reader_reads_it() {
    let text = "\n\n[[ram]]\nbase = 0o1_0000_00001_00001_0000_000\nsize = \"4G\"";
    let single = VmConfig::from_toml_str(text).expect("the single-VM reader takes it");
    let file = read(text).expect("so does the system reader");
    assert_eq!(file.system.vms, [single]);
    assert!(file.images.is_none());
    // In a file of [[vm]] tables the same integer is refused, with the table's error.
    let tables = "[[vm]]\nname = \"a\"\ncpus = [0]\nguest = \"hello\"\n\n[[vm.ram]]\nbase = 0o1_0000_00001_00001_0000_000\nsize = \"4G\"\n";
    assert!(read(tables).is_err());
}
