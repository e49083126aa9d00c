//! One test per refusal of [`SystemConfig::validate`], with its exact message, and the
//! accepted shapes.

use alloc::string::{String, ToString};
use alloc::vec;

use super::*;
use crate::schema::RamRegion;
use moat_arm::addr::Ipa;

/// A VM called `name` on the machine's CPUs `cpus`, with `mib` MiB of RAM at 1 GiB.
fn vm(name: &str, cpus: &[u32], mib: u64) -> VmConfig {
    let mut vm = VmConfig::default_virt();
    vm.name = name.into();
    vm.set_cpus(u32::try_from(cpus.len()).unwrap());
    vm.physical_cpus = cpus.to_vec();
    vm.ram[0].size = mib << 20;
    vm
}

fn system(vms: &[VmConfig]) -> SystemConfig {
    SystemConfig { vms: vms.to_vec() }
}

/// A machine of `cpus` CPUs with `mib` MiB for VMs.
fn machine(cpus: u32, mib: u64) -> Option<Machine> {
    Some(Machine {
        cpus,
        ram_bytes: mib << 20,
    })
}

fn refusal(system: &SystemConfig, machine: Option<Machine>) -> (SystemError, String) {
    let err = system
        .validate(machine, None)
        .expect_err("the system should be refused");
    let message = err.to_string();
    assert!(!message.contains('\n'), "{message}");
    (err, message)
}

#[test]
fn two_vms_on_their_own_cpus_with_ram_at_the_same_ipa_are_accepted() {
    let two = system(&[vm("a", &[0], 256), vm("b", &[1], 256)]);
    assert_eq!(two.validate(None, None), Ok(()));
    assert_eq!(two.validate(machine(2, 512), Some(40)), Ok(()));
    assert_eq!((two.machine_cpus_needed(), two.ram_bytes()), (2, 512 << 20));
}

#[test]
fn a_vm_may_take_any_cpus_in_any_order() {
    let sys = system(&[vm("linux", &[3, 1], 256), vm("bare", &[0], 16)]);
    assert_eq!(sys.validate(machine(4, 1024), None), Ok(()));
    assert_eq!(sys.machine_cpus_needed(), 4);
}

#[test]
fn the_default_single_vm_is_a_valid_system() {
    let sys = SystemConfig::single(VmConfig::default_virt());
    assert_eq!(sys.validate(machine(1, 128), Some(40)), Ok(()));
}

#[test]
fn no_vm_is_refused() {
    let (err, message) = refusal(&system(&[]), None);
    assert_eq!(err, SystemError::NoVm);
    assert_eq!(
        message,
        "the system description has no VM: give it at least one [[vm]] table"
    );
}

#[test]
fn a_vm_without_cpus_is_refused_by_name() {
    let (err, message) = refusal(&system(&[vm("a", &[0], 64), vm("b", &[], 64)]), None);
    assert_eq!(err, SystemError::NoCpu { vm: "b".into() });
    assert!(message.starts_with("VM 'b' has no CPU"), "{message}");
}

#[test]
fn a_vm_breaking_its_own_rules_is_refused_with_its_name() {
    let mut bad = vm("b", &[1], 64);
    bad.ram.push(RamRegion {
        base: Ipa(0x4000_0000),
        size: 0x1000,
    });
    let (err, message) = refusal(&system(&[vm("a", &[0], 64), bad]), None);
    assert!(
        matches!(&err, SystemError::Vm { vm, error: ConfigError::Overlap { .. } } if vm == "b"),
        "{err:?}"
    );
    assert!(message.starts_with("VM 'b': RAM region 0 "), "{message}");
    let mut dup = vm("c", &[0, 1], 64);
    dup.physical_cpus = vec![1, 1];
    let (err, message) = refusal(&system(&[dup]), None);
    assert_eq!(
        err,
        SystemError::Vm {
            vm: "c".into(),
            error: ConfigError::PhysicalCpuTwice { cpu: 1 }
        }
    );
    assert!(
        message.starts_with("VM 'c': CPU 1 is listed twice"),
        "{message}"
    );
}

#[test]
fn the_ipa_limit_applies_to_every_vm() {
    let mut big = vm("b", &[1], 64);
    big.ipa_bits = 44;
    let sys = system(&[vm("a", &[0], 64), big]);
    assert_eq!(sys.validate(None, Some(44)), Ok(()));
    let err = sys.validate(None, Some(40)).unwrap_err();
    assert_eq!(
        err,
        SystemError::Vm {
            vm: "b".into(),
            error: ConfigError::IpaBitsAboveLimit {
                ipa_bits: 44,
                ipa_limit: 40
            }
        }
    );
}

#[test]
fn two_vms_of_one_name_are_refused() {
    let sys = system(&[vm("a", &[0], 64), vm("b", &[1], 64), vm("a", &[2], 64)]);
    let (err, message) = refusal(&sys, None);
    assert_eq!(
        err,
        SystemError::DuplicateName {
            name: "a".into(),
            first: 0,
            second: 2
        }
    );
    assert_eq!(
        message,
        "VMs 0 and 2 are both named 'a': each VM needs a name of its own"
    );
}

#[test]
fn a_cpu_given_to_two_vms_is_refused_naming_both() {
    let sys = system(&[vm("a", &[0, 2], 64), vm("b", &[1, 2], 64)]);
    let (err, message) = refusal(&sys, None);
    assert_eq!(
        err,
        SystemError::SharedCpu {
            cpu: 2,
            first: "a".into(),
            second: "b".into()
        }
    );
    assert!(
        message.starts_with("CPU 2 is given to both VM 'a' and VM 'b'"),
        "{message}"
    );
}

#[test]
fn a_cpu_the_machine_lacks_is_refused_naming_the_machines_cpus() {
    let sys = system(&[vm("a", &[0], 64), vm("b", &[5], 64)]);
    assert_eq!(sys.validate(None, None), Ok(()));
    let (err, message) = refusal(&sys, machine(4, 1024));
    assert_eq!(
        err,
        SystemError::AbsentCpu {
            vm: "b".into(),
            cpu: 5,
            machine_cpus: 4
        }
    );
    assert_eq!(
        message,
        "VM 'b' names CPU 5, but the machine has 4 CPUs (0-3)"
    );
    let (_, message) = refusal(&system(&[vm("a", &[1], 64)]), machine(1, 1024));
    assert_eq!(
        message,
        "VM 'a' names CPU 1, but the machine has 1 CPUs (0)"
    );
}

#[test]
fn ram_above_the_machines_is_refused_naming_every_vm() {
    let mut b = vm("b", &[1], 64);
    b.ram.push(RamRegion {
        base: Ipa(0x1_0000_0000),
        size: 0x1000,
    });
    let sys = system(&[vm("a", &[0], 256), b]);
    assert_eq!(
        sys.validate(machine(2, 1024), None),
        Ok(()),
        "320 MiB and a page fit in 1 GiB"
    );
    let (err, message) = refusal(&sys, machine(2, 320));
    assert!(
        matches!(err, SystemError::RamExceedsMachine { available, .. } if available == 320 << 20)
    );
    assert_eq!(
        message,
        "the VMs' RAM together (VM 'a' 256 MiB, VM 'b' 0x400_1000 bytes: 0x1400_1000 bytes in all) \
         exceeds the 320 MiB the machine has for VMs"
    );
    let exactly = system(&[vm("a", &[0], 256), vm("b", &[1], 64)]);
    assert_eq!(exactly.validate(machine(2, 320), None), Ok(()));
}

/// `vm` with a virtio-net device at 0x0a00_0000 + 0x1000 × n linked to each of `peers`.
fn linked(mut vm: VmConfig, peers: &[&str]) -> VmConfig {
    for (n, peer) in (0u64..).zip(peers) {
        vm.devices.push(crate::schema::DeviceWindow {
            kind: crate::schema::DeviceKind::VirtioNet,
            base: Ipa(0x0a00_0000 + 0x1000 * n),
            size: crate::schema::VIRTIO_NET_SIZE,
            link: Some((*peer).to_string()),
        });
    }
    vm
}

#[test]
fn two_vms_linked_to_each_other_are_accepted() {
    let sys = system(&[
        linked(vm("a", &[0], 64), &["b", "c"]),
        linked(vm("b", &[1], 64), &["a"]),
        linked(vm("c", &[2], 64), &["a"]),
    ]);
    assert_eq!(sys.validate(machine(3, 192), None), Ok(()));
}

#[test]
fn a_link_to_an_unknown_vm_is_refused() {
    let sys = system(&[linked(vm("a", &[0], 64), &["ghost"]), vm("b", &[1], 64)]);
    let (_, message) = refusal(&sys, None);
    assert_eq!(
        message,
        "VM 'a' has a virtio-net link to 'ghost', but no VM is named 'ghost'"
    );
}

#[test]
fn a_link_to_itself_is_refused() {
    let sys = system(&[linked(vm("a", &[0], 64), &["a"])]);
    let (err, _) = refusal(&sys, None);
    assert_eq!(err, SystemError::LinkToItself { vm: "a".into() });
}

#[test]
fn a_link_not_named_back_is_refused() {
    let sys = system(&[linked(vm("a", &[0], 64), &["b"]), vm("b", &[1], 64)]);
    let (_, message) = refusal(&sys, None);
    assert_eq!(
        message,
        "VM 'a' has a virtio-net link to VM 'b', but VM 'b' has no virtio-net device with link = \"a\""
    );
}

#[test]
fn two_links_between_the_same_vms_are_refused() {
    let sys = system(&[
        linked(vm("a", &[0], 64), &["b", "b"]),
        linked(vm("b", &[1], 64), &["a"]),
    ]);
    let (err, _) = refusal(&sys, None);
    assert_eq!(
        err,
        SystemError::DuplicateLink {
            vm: "a".into(),
            peer: "b".into()
        }
    );
}
