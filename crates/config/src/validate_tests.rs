//! One test per refusal of [`VmConfig::validate`], checking the variant and its message.

use alloc::string::ToString;
use alloc::vec;

use moat_arm::addr::Ipa;

use super::*;
use crate::schema::{DeviceWindow, RamRegion};

fn vm() -> VmConfig {
    VmConfig::default_virt()
}

fn refusal(vm: &VmConfig, ipa_limit: Option<u32>) -> (ConfigError, alloc::string::String) {
    let err = vm
        .validate(ipa_limit)
        .expect_err("the configuration should be refused");
    let message = err.to_string();
    (err, message)
}

#[test]
fn default_virt_is_valid_with_and_without_a_limit() {
    assert_eq!(vm().validate(None), Ok(()));
    assert_eq!(vm().validate(Some(40)), Ok(()));
}

#[test]
fn ipa_bits_below_32_are_refused() {
    let mut vm = vm();
    vm.ipa_bits = 31;
    let (err, message) = refusal(&vm, None);
    assert_eq!(err, ConfigError::IpaBitsTooSmall { ipa_bits: 31 });
    assert!(
        message.starts_with("ipa-bits = 31 is below 32"),
        "{message}"
    );
}

#[test]
fn ipa_bits_above_48_are_refused_even_without_a_limit() {
    let mut vm = vm();
    vm.ipa_bits = 52;
    let (err, message) = refusal(&vm, None);
    assert_eq!(err, ConfigError::IpaBitsAboveStage2 { ipa_bits: 52 });
    assert!(message.contains("at most 48 bits"), "{message}");
}

#[test]
fn ipa_bits_above_the_machine_limit_are_refused() {
    let mut vm = vm();
    vm.ipa_bits = 44;
    assert_eq!(vm.validate(None), Ok(()));
    let (err, message) = refusal(&vm, Some(40));
    assert_eq!(
        err,
        ConfigError::IpaBitsAboveLimit {
            ipa_bits: 44,
            ipa_limit: 40
        }
    );
    assert!(message.contains("IPA limit L = 40"), "{message}");
}

#[test]
fn zero_and_too_many_cpus_are_refused() {
    for cpus in [0, 9] {
        let mut vm = vm();
        vm.cpus = cpus;
        vm.devices[2].size = 9 * GICR_SIZE_PER_CPU;
        assert_eq!(refusal(&vm, None).0, ConfigError::CpuCount { cpus });
    }
}

#[test]
fn a_physical_cpu_list_of_another_length_than_cpus_is_refused() {
    let mut vm = vm();
    vm.set_cpus(2);
    vm.physical_cpus = vec![3];
    let (err, message) = refusal(&vm, None);
    assert_eq!(err, ConfigError::PhysicalCpuCount { cpus: 2, listed: 1 });
    assert!(
        message.starts_with("cpus = 2 but 1 machine CPUs are listed"),
        "{message}"
    );
    vm.physical_cpus = vec![3, 1];
    assert_eq!(vm.validate(None), Ok(()));
}

#[test]
fn a_physical_cpu_listed_twice_in_one_vm_is_refused() {
    let mut vm = vm();
    vm.set_cpus(3);
    vm.physical_cpus = vec![2, 0, 2];
    let (err, message) = refusal(&vm, None);
    assert_eq!(err, ConfigError::PhysicalCpuTwice { cpu: 2 });
    assert!(
        message.starts_with("CPU 2 is listed twice for the VM"),
        "{message}"
    );
}

#[test]
fn a_vm_without_ram_is_refused() {
    let mut vm = vm();
    vm.ram.clear();
    assert_eq!(refusal(&vm, None).0, ConfigError::NoRam);
}

#[test]
fn an_empty_region_is_refused_by_name() {
    let mut vm = vm();
    vm.devices[0].size = 0;
    let (err, message) = refusal(&vm, None);
    let id = RegionId::Device {
        index: 0,
        kind: DeviceKind::Pl011,
    };
    assert_eq!(
        err,
        ConfigError::EmptyRegion {
            id,
            base: Ipa(0x900_0000)
        }
    );
    assert!(
        message.starts_with("device 0 (pl011) at 0x900_0000 has size 0"),
        "{message}"
    );
}

#[test]
fn unaligned_base_and_size_are_refused() {
    let mut vm = vm();
    vm.ram[0].base = Ipa(0x4000_0800);
    let (_, message) = refusal(&vm, None);
    assert!(message.starts_with("RAM region 0 [0x4000_0800, 0x4800_0800) is not 4 KiB-aligned"));
    let mut vm = self::vm();
    vm.ram[0].size = 0x1234;
    assert!(matches!(
        refusal(&vm, None).0,
        ConfigError::Unaligned { .. }
    ));
}

#[test]
fn ram_beyond_the_ipa_space_is_refused_with_the_spec_message() {
    let mut vm = vm();
    vm.ipa_bits = 32;
    vm.ram.push(RamRegion {
        base: Ipa(0x1_0000_0000),
        size: 0x1_0000_0000,
    });
    let (err, message) = refusal(&vm, None);
    assert!(matches!(
        err,
        ConfigError::BeyondIpaSpace { ipa_bits: 32, .. }
    ));
    assert_eq!(
        message,
        "RAM region 1 [0x1_0000_0000, 0x2_0000_0000) ends beyond the VM's IPA space \
         2^32 = 0x1_0000_0000: anything reachable by a memory transaction has to fit in the IPA \
         space"
    );
}

#[test]
fn a_region_ending_exactly_at_2_pow_s_is_accepted() {
    let mut vm = vm();
    vm.ipa_bits = 32;
    vm.ram.push(RamRegion {
        base: Ipa(0xF000_0000),
        size: 0x1000_0000,
    });
    assert_eq!(vm.validate(None), Ok(()));
}

#[test]
fn a_region_wrapping_the_64_bit_space_is_beyond_the_ipa_space() {
    let mut vm = vm();
    vm.ram.push(RamRegion {
        base: Ipa(0xFFFF_FFFF_FFFF_F000),
        size: 0x2000,
    });
    assert!(matches!(
        refusal(&vm, None).0,
        ConfigError::BeyondIpaSpace { .. }
    ));
}

#[test]
fn overlapping_ram_regions_are_refused() {
    let mut vm = vm();
    vm.ram.push(RamRegion {
        base: Ipa(0x4700_0000),
        size: 0x200_0000,
    });
    let (err, message) = refusal(&vm, None);
    assert!(matches!(err, ConfigError::Overlap { .. }));
    assert_eq!(
        message,
        "RAM region 0 [0x4000_0000, 0x4800_0000) overlaps RAM region 1 [0x4700_0000, \
         0x4900_0000): an IPA can be backed by one region only"
    );
}

#[test]
fn ram_overlapping_a_device_is_refused() {
    let mut vm = vm();
    vm.ram.push(RamRegion {
        base: Ipa(0x0900_0000),
        size: 0x10_0000,
    });
    let (_, message) = refusal(&vm, None);
    assert!(message.starts_with("RAM region 1 [0x900_0000, 0x910_0000) overlaps device 0 (pl011)"));
}

#[test]
fn overlapping_devices_are_refused() {
    let mut vm = vm();
    vm.devices.push(DeviceWindow {
        kind: DeviceKind::Pl011,
        base: Ipa(0x0800_F000),
        size: 0x2000,
        link: None,
    });
    let (_, message) = refusal(&vm, None);
    assert!(
        message.starts_with("device 1 (gicv3-dist) [0x800_0000, 0x801_0000) overlaps device 3")
    );
}

#[test]
fn adjacent_regions_do_not_overlap() {
    let mut vm = vm();
    vm.ram.push(RamRegion {
        base: Ipa(0x4800_0000),
        size: 0x1000,
    });
    assert_eq!(vm.validate(None), Ok(()));
}

#[test]
fn a_second_distributor_is_refused() {
    let mut vm = vm();
    let gicd = DeviceWindow {
        kind: DeviceKind::GicV3Distributor,
        base: Ipa(0x0a00_0000),
        size: 0x1_0000,
        link: None,
    };
    vm.devices.push(gicd);
    let (err, message) = refusal(&vm, None);
    assert!(matches!(
        err,
        ConfigError::DuplicateDevice {
            kind: DeviceKind::GicV3Distributor,
            ..
        }
    ));
    assert!(message.starts_with("device 3 (gicv3-dist) [0xa00_0000, 0xa01_0000) is a second"));
}

#[test]
fn a_second_uart_is_accepted() {
    let mut vm = vm();
    vm.devices.push(DeviceWindow {
        kind: DeviceKind::Pl011,
        base: Ipa(0x0900_1000),
        size: 0x1000,
        link: None,
    });
    assert_eq!(vm.validate(None), Ok(()));
}

#[test]
fn redistributors_need_a_frame_pair_per_cpu() {
    let mut vm = vm();
    vm.cpus = 2;
    vm.physical_cpus = vec![0, 1];
    let (err, message) = refusal(&vm, None);
    assert!(matches!(
        err,
        ConfigError::RedistributorsTooSmall {
            cpus: 2,
            needed: 0x4_0000,
            ..
        }
    ));
    assert!(message.contains("too small for 2 vCPUs"), "{message}");
    vm.devices[2].size = 0x4_0000;
    assert_eq!(vm.validate(None), Ok(()));
}

#[test]
fn regions_lists_ram_before_devices() {
    let ids: vec::Vec<RegionId> = vm().regions().map(|r| r.id).collect();
    assert_eq!(ids[0], RegionId::Ram(0));
    assert_eq!(ids.len(), 4);
}

#[test]
fn a_distributor_without_redistributors_is_refused_naming_both() {
    let mut vm = vm();
    vm.devices
        .retain(|d| d.kind != DeviceKind::GicV3Redistributors);
    let (err, message) = refusal(&vm, None);
    assert!(matches!(
        err,
        ConfigError::IncompleteGic {
            missing: DeviceKind::GicV3Redistributors,
            ..
        }
    ));
    assert!(message.contains("gicv3-dist"), "{message}");
    assert!(message.contains("no gicv3-redist window"), "{message}");
}

#[test]
fn redistributors_without_a_distributor_are_refused() {
    let mut vm = vm();
    vm.devices
        .retain(|d| d.kind != DeviceKind::GicV3Distributor);
    let (err, _) = refusal(&vm, None);
    assert!(matches!(
        err,
        ConfigError::IncompleteGic {
            missing: DeviceKind::GicV3Distributor,
            ..
        }
    ));
}

#[test]
fn a_gicv2_is_its_distributor_and_its_8k_cpu_interface() {
    let mut vm = vm();
    vm.use_gic_v2();
    assert!(vm.validate(None).is_ok());
    let cpu = vm
        .devices
        .iter_mut()
        .find(|d| d.kind == DeviceKind::GicV2CpuInterface)
        .unwrap();
    cpu.size = 0x1000;
    let (err, message) = refusal(&vm, None);
    assert!(matches!(err, ConfigError::GicV2CpuInterfaceSize { .. }));
    assert!(message.contains("gicv2-cpu"), "{message}");
    vm.devices
        .retain(|d| d.kind != DeviceKind::GicV2CpuInterface);
    let (err, _) = refusal(&vm, None);
    assert!(matches!(
        err,
        ConfigError::IncompleteGic {
            missing: DeviceKind::GicV2CpuInterface,
            ..
        }
    ));
}

#[test]
fn a_gicv2_beside_a_gicv3_is_refused() {
    let mut vm = vm();
    vm.use_gic_v2();
    let mut v3 = VmConfig::default_virt();
    v3.devices.retain(|d| d.kind.is_gic_v3());
    for d in &mut v3.devices {
        d.base = Ipa(d.base.0 + 0x1000_0000);
    }
    vm.devices.extend(v3.devices);
    let (err, message) = refusal(&vm, None);
    assert!(matches!(err, ConfigError::MixedGic { .. }), "{message}");
}

fn with_net(link: Option<&str>) -> VmConfig {
    let mut vm = VmConfig::default_virt();
    vm.devices.push(DeviceWindow {
        kind: DeviceKind::VirtioNet,
        base: Ipa(0x0a00_0000),
        size: crate::schema::VIRTIO_NET_SIZE,
        link: link.map(Into::into),
    });
    vm
}

#[test]
fn a_virtio_net_device_without_a_link_is_refused() {
    let err = with_net(None).validate(None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "device 3 (virtio-net) [0xa00_0000, 0xa00_1000) has no `link`: a virtio-net device is one end of a link and names the VM at the other"
    );
    assert_eq!(with_net(Some("peer")).validate(None), Ok(()));
}

#[test]
fn a_link_on_a_uart_is_refused() {
    let mut vm = VmConfig::default_virt();
    vm.devices[0].link = Some("peer".into());
    let err = vm.validate(None).unwrap_err();
    assert!(
        matches!(err, ConfigError::LinkOnOtherDevice { .. }),
        "{err}"
    );
}

#[test]
fn more_virtio_net_devices_than_intids_are_refused() {
    let mut vm = VmConfig::default_virt();
    for n in 0..=crate::schema::MAX_NET_LINKS as u64 {
        vm.devices.push(DeviceWindow {
            kind: DeviceKind::VirtioNet,
            base: Ipa(0x0a00_0000 + 0x1000 * n),
            size: crate::schema::VIRTIO_NET_SIZE,
            link: Some(alloc::format!("peer{n}")),
        });
    }
    let err = vm.validate(None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the VM has 9 virtio-net devices: at most 8 (their interrupts are INTIDs 48 to 55)"
    );
    assert_eq!(vm.virtio_net_intid(3), Some(48));
    assert_eq!(vm.virtio_net_intid(10), Some(55));
    assert_eq!(
        vm.virtio_net_intid(0),
        None,
        "the UART is not a virtio-net device"
    );
}
