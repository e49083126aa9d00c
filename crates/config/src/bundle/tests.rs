//! Writing bundles and reading them back; the reader against malformed and corrupt blobs.

use moat_arm::addr::Ipa;
use proptest::prelude::*;
use vm_fdt::FdtWriter;

use super::fdt::{self, Node};
use super::*;
use crate::guest_dtb::generate_guest_dtb;
use crate::loader::{GuestImage, ImageFormat, Segment};
use crate::schema::{OnPowerOff, OnReset, RamRegion, VmConfig};
use crate::system::{SystemConfig, SystemError};
use crate::validate::ConfigError;

/// A two-segment image: text at 0x4008_0000 and data with `.bss` at 0x4010_0000.
fn image() -> GuestImage {
    let segments = vec![
        Segment {
            ipa: Ipa(0x4008_0000),
            data: (0..=255).collect(),
        },
        Segment {
            ipa: Ipa(0x4010_0000),
            data: vec![0xa5; 64],
        },
    ];
    GuestImage {
        segments,
        entry: Ipa(0x4008_0000),
        format: ImageFormat::Elf,
        arch: Some(crate::GuestArch::Aarch64),
    }
}

fn bundle_for(vm: &VmConfig) -> Vec<u8> {
    let dtb = generate_guest_dtb(vm, None).unwrap();
    write_bundle(vm, &image(), &dtb, default_dtb_ipa(vm).unwrap()).unwrap()
}

/// The bundle of `vms`, each booting [`image`] with its generated device tree.
fn system_bundle_for(vms: &[VmConfig]) -> Vec<u8> {
    let image = image();
    let dtbs: Vec<Vec<u8>> = vms
        .iter()
        .map(|vm| generate_guest_dtb(vm, None).unwrap())
        .collect();
    let parts: Vec<BundleVm<'_>> = vms
        .iter()
        .zip(&dtbs)
        .map(|(vm, dtb)| BundleVm {
            config: vm,
            image: &image,
            dtb,
            dtb_ipa: default_dtb_ipa(vm).unwrap(),
        })
        .collect();
    write_system_bundle(&parts).unwrap()
}

fn default_bundle() -> Vec<u8> {
    bundle_for(&VmConfig::default_virt())
}

#[test]
fn written_bundle_reads_back_as_the_same_vm_and_images() {
    let vm = VmConfig::default_virt();
    let dtb = generate_guest_dtb(&vm, None).unwrap();
    let blob = write_bundle(&vm, &image(), &dtb, Ipa(0x47e0_0000)).unwrap();
    let bundle = Bundle::parse(&blob).unwrap();
    let [bundle] = bundle.vms() else {
        panic!("one VM, got {}", bundle.vms().len())
    };
    assert_eq!(bundle.config(), &vm);
    assert_eq!(bundle.entry(), Ipa(0x4008_0000));
    assert_eq!(
        (bundle.dtb_ipa(), bundle.dtb()),
        (Ipa(0x47e0_0000), &dtb[..])
    );
    let images: Vec<(Ipa, Vec<u8>)> = bundle
        .images()
        .map(|i| (i.load_ipa, i.data.to_vec()))
        .collect();
    let expected: Vec<(Ipa, Vec<u8>)> = image()
        .segments
        .into_iter()
        .map(|s| (s.ipa, s.data))
        .collect();
    assert_eq!(images, expected);
}

#[test]
fn every_config_in_configs_round_trips_through_a_bundle() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let system = SystemConfig::from_toml_str(&text).unwrap();
        let blob = system_bundle_for(&system.vms);
        assert_eq!(
            Bundle::parse(&blob).unwrap().system(),
            system,
            "{}",
            path.display()
        );
    }
}

#[test]
fn default_dtb_ipa_is_the_last_2mib_block_of_the_first_ram_region() {
    assert_eq!(
        default_dtb_ipa(&VmConfig::default_virt()).unwrap(),
        Ipa(0x47e0_0000)
    );
    let mut vm = VmConfig::default_virt();
    vm.ram[0] = RamRegion {
        base: Ipa(0x4000_0000),
        size: 0x30_1000,
    };
    assert_eq!(default_dtb_ipa(&vm).unwrap(), Ipa(0x4020_0000));
}

#[test]
fn default_dtb_ipa_needs_an_aligned_address_inside_the_region() {
    let mut vm = VmConfig::default_virt();
    vm.ram[0] = RamRegion {
        base: Ipa(0x4010_0000),
        size: 0x8_0000,
    };
    let err = default_dtb_ipa(&vm).unwrap_err();
    assert_eq!(
        err,
        BundleWriteError::NoRoomForDtb {
            base: 0x4010_0000,
            size: 0x8_0000
        }
    );
    vm.ram.clear();
    assert_eq!(
        default_dtb_ipa(&vm),
        Err(BundleWriteError::Config(ConfigError::NoRam))
    );
}

#[test]
fn writer_refuses_a_dtb_overlapping_an_image_segment() {
    let vm = VmConfig::default_virt();
    let err = write_bundle(&vm, &image(), &[0; 64], Ipa(0x4008_0080)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "image segment 0 [0x4008_0000, 0x4008_0100) overlaps the guest device tree \
         [0x4008_0080, 0x4008_00c0)"
    );
}

#[test]
fn writer_refuses_a_dtb_outside_ram() {
    let vm = VmConfig::default_virt();
    let err = write_bundle(&vm, &image(), &[0; 64], Ipa(0x47ff_fff8)).unwrap_err();
    assert!(
        matches!(
            err,
            BundleWriteError::Placement(PlacementError::OutsideRam(_))
        ),
        "{err}"
    );
}

#[test]
fn writer_refuses_an_unaligned_or_oversized_dtb() {
    let vm = VmConfig::default_virt();
    let err = write_bundle(&vm, &image(), &[0; 64], Ipa(0x47e0_0004)).unwrap_err();
    assert_eq!(err, BundleWriteError::DtbUnaligned { ipa: 0x47e0_0004 });
    let huge = vec![0; (2 << 20) + 1];
    let err = write_bundle(&vm, &image(), &huge, Ipa(0x4400_0000)).unwrap_err();
    assert_eq!(
        err,
        BundleWriteError::DtbTooLarge {
            size: (2 << 20) + 1
        }
    );
}

#[test]
fn writer_refuses_an_invalid_config() {
    let mut vm = VmConfig::default_virt();
    vm.ipa_bits = 30;
    let err = write_bundle(&vm, &image(), &[0; 8], Ipa(0x47e0_0000)).unwrap_err();
    assert_eq!(
        err,
        BundleWriteError::Config(ConfigError::IpaBitsTooSmall { ipa_bits: 30 })
    );
}

/// An owned copy of a device-tree node, to edit and write back.
#[derive(Clone)]
struct Tree {
    name: String,
    properties: Vec<(String, Vec<u8>)>,
    children: Vec<Tree>,
}

impl Tree {
    fn from_node(node: &Node<'_>) -> Self {
        Self {
            name: node.name.into(),
            properties: node
                .properties
                .iter()
                .map(|p| (p.name.into(), p.value.to_vec()))
                .collect(),
            children: node.children.iter().map(Tree::from_node).collect(),
        }
    }

    fn write(&self, fdt: &mut FdtWriter) {
        let node = fdt.begin_node(&self.name).unwrap();
        for (name, value) in &self.properties {
            fdt.property(name, value).unwrap();
        }
        self.children.iter().for_each(|child| child.write(fdt));
        fdt.end_node(node).unwrap();
    }

    fn to_blob(&self) -> Vec<u8> {
        let mut fdt = FdtWriter::new().unwrap();
        self.write(&mut fdt);
        fdt.finish().unwrap()
    }

    fn child(&mut self, name: &str) -> &mut Tree {
        self.children.iter_mut().find(|c| c.name == name).unwrap()
    }

    fn set(&mut self, name: &str, value: &[u8]) {
        match self.properties.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value.to_vec(),
            None => self.properties.push((name.into(), value.to_vec())),
        }
    }
}

/// The default bundle as an editable tree.
fn default_tree() -> Tree {
    Tree::from_node(&fdt::parse(&default_bundle()).unwrap())
}

fn parse_edited(edit: impl FnOnce(&mut Tree)) -> Result<(), BundleError> {
    let mut tree = default_tree();
    edit(&mut tree);
    Bundle::parse(&tree.to_blob()).map(|_| ())
}

#[test]
fn an_unedited_tree_copy_still_parses() {
    assert_eq!(parse_edited(|_| {}), Ok(()));
}

#[test]
fn a_guest_device_tree_is_not_a_bundle() {
    let dtb = generate_guest_dtb(&VmConfig::default_virt(), None).unwrap();
    assert_eq!(Bundle::parse(&dtb), Err(BundleError::NotABundle));
}

#[test]
fn another_bundle_version_is_refused() {
    let err = parse_edited(|t| t.set("moat,bundle-version", &4u32.to_be_bytes()));
    assert_eq!(err, Err(BundleError::UnsupportedVersion { found: 4 }));
    let err = parse_edited(|t| t.set("moat,bundle-version", &2u32.to_be_bytes()));
    assert_eq!(err, Err(BundleError::UnsupportedVersion { found: 2 }));
}

#[test]
fn a_version_1_bundle_is_refused_saying_to_rebuild_it() {
    let err = parse_edited(|t| t.set("moat,bundle-version", &1u32.to_be_bytes())).unwrap_err();
    assert_eq!(err, BundleError::UnsupportedVersion { found: 1 });
    assert_eq!(
        err.to_string(),
        "bundle version 1 is not supported: this Moat reads version 3; rebuild the bundle with \
         the matching host tool"
    );
}

#[test]
fn unknown_nodes_and_properties_are_refused() {
    let err = parse_edited(|t| t.child("vm@0").set("ipa_bits", &[0, 0, 0, 40]));
    let property = "ipa_bits".into();
    assert_eq!(
        err,
        Err(BundleError::UnknownProperty {
            node: "/vm@0".into(),
            property
        })
    );
    let extra = Tree {
        name: "virtio@a000000".into(),
        properties: vec![],
        children: vec![],
    };
    let err = parse_edited(|t| t.child("vm@0").children.push(extra));
    assert_eq!(
        err,
        Err(BundleError::UnknownNode {
            node: "/vm@0/virtio@a000000".into()
        })
    );
}

#[test]
fn missing_and_duplicate_parts_are_refused() {
    let err = parse_edited(|t| t.child("vm@0").children.retain(|c| c.name != "boot"));
    assert_eq!(
        err,
        Err(BundleError::MissingNode {
            parent: "/vm@0".into(),
            node: "boot"
        })
    );
    let err = parse_edited(|t| t.child("vm@0").properties.retain(|(n, _)| n != "cpus"));
    let expected = BundleError::MissingProperty {
        node: "/vm@0".into(),
        property: "cpus",
    };
    assert_eq!(err, Err(expected));
    let err = parse_edited(|t| {
        let dtb = t.child("vm@0").child("guest-dtb").clone();
        t.child("vm@0").children.push(dtb);
    });
    assert_eq!(
        err,
        Err(BundleError::DuplicateNode {
            node: "/vm@0/guest-dtb".into()
        })
    );
}

#[test]
fn malformed_values_are_refused() {
    let err = parse_edited(|t| t.child("vm@0").set("parange", b"exact\0"));
    assert!(
        matches!(
            err,
            Err(BundleError::BadValue {
                property: "parange",
                ..
            })
        ),
        "{err:?}"
    );
    let err = parse_edited(|t| t.child("vm@0").set("cpus", &[1]));
    assert!(
        matches!(
            err,
            Err(BundleError::BadValue {
                property: "cpus",
                ..
            })
        ),
        "{err:?}"
    );
    let err = parse_edited(|t| {
        t.child("vm@0")
            .child("device@9000000")
            .set("compatible", b"arm,pl011\0")
    });
    assert!(
        matches!(
            err,
            Err(BundleError::BadValue {
                property: "compatible",
                ..
            })
        ),
        "{err:?}"
    );
    let err = parse_edited(|t| t.child("vm@0").set("vm-name", b"no-nul"));
    assert!(
        matches!(
            err,
            Err(BundleError::BadValue {
                property: "vm-name",
                ..
            })
        ),
        "{err:?}"
    );
}

#[test]
fn images_outside_ram_are_refused_by_the_reader() {
    let err = parse_edited(|t| {
        let image = t.child("vm@0").child("image@40080000");
        image.set("load-ipa", &0x47ff_ff80u64.to_be_bytes());
    });
    assert!(
        matches!(
            &err,
            Err(BundleError::Placement { vm, error: PlacementError::OutsideRam(_) }) if vm == "default"
        ),
        "{err:?}"
    );
}

#[test]
fn nesting_deeper_than_the_limit_is_refused() {
    let mut fdt = FdtWriter::new().unwrap();
    let nodes: Vec<_> = (0..=fdt::MAX_DEPTH)
        .map(|i| fdt.begin_node(if i == 0 { "" } else { "n" }).unwrap())
        .collect();
    nodes
        .into_iter()
        .rev()
        .for_each(|node| fdt.end_node(node).unwrap());
    let blob = fdt.finish().unwrap();
    assert_eq!(
        Bundle::parse(&blob),
        Err(BundleError::Fdt(FdtError::TooDeep))
    );
}

#[test]
fn every_truncation_of_a_bundle_is_refused() {
    let blob = default_bundle();
    for len in 0..blob.len() {
        assert!(Bundle::parse(&blob[..len]).is_err(), "length {len}");
    }
}

#[test]
fn a_header_with_a_lying_totalsize_is_refused() {
    let mut blob = default_bundle();
    blob[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        Bundle::parse(&blob),
        Err(BundleError::Fdt(FdtError::Truncated { .. }))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn bit_flipped_bundles_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..6)) {
        let mut blob = default_bundle();
        for (index, bit) in flips {
            let at = index.index(blob.len());
            blob[at] ^= 1 << bit;
        }
        let _ = Bundle::parse(&blob);
    }

    #[test]
    fn overwritten_words_never_panic(writes in prop::collection::vec((any::<prop::sample::Index>(), any::<u32>()), 1..4)) {
        let mut blob = default_bundle();
        for (index, word) in writes {
            let at = index.index(blob.len() / 4) * 4;
            blob[at..at + 4].copy_from_slice(&word.to_be_bytes());
        }
        let _ = Bundle::parse(&blob);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Bundle::parse(&bytes);
    }
}

/// Two VMs unlike in every field: Linux-like on CPUs 2 and 1 that restarts when it resets,
/// and a small one on CPU 0 that halts alone, with RAM at the same IPA.
fn two_vms() -> [VmConfig; 2] {
    let mut linux = VmConfig::default_virt();
    linux.name = "linux".into();
    linux.set_cpus(2);
    linux.physical_cpus = vec![2, 1];
    linux.ram[0].size = 256 << 20;
    linux.bootargs = "console=ttyAMA0 earlycon=pl011,0x9000000".into();
    linux.on_poweroff = OnPowerOff::HaltVm;
    linux.on_reset = OnReset::Restart;
    linux.pci = vec!["00:01.0".parse().unwrap(), "01:1f.7".parse().unwrap()];
    let mut bare = VmConfig::default_virt();
    bare.name = "bare".into();
    bare.physical_cpus = vec![0];
    bare.ipa_bits = 36;
    bare.parange = crate::ParangeMode::Tight;
    bare.hole_policy = crate::HolePolicy::ReadAsZeroWriteIgnore;
    bare.ram[0].size = 16 << 20;
    bare.bootargs = String::new();
    bare.on_poweroff = OnPowerOff::PowerOffMachine;
    bare.on_reset = OnReset::HaltVm;
    [linux, bare]
}

/// A one-segment image of `len` bytes of `byte` at `ipa`, entered there.
fn image_at(ipa: u64, byte: u8, len: usize) -> GuestImage {
    GuestImage {
        segments: vec![Segment {
            ipa: Ipa(ipa),
            data: vec![byte; len],
        }],
        entry: Ipa(ipa),
        format: ImageFormat::Raw,
        arch: None,
    }
}

#[test]
fn two_vms_round_trip_field_by_field() {
    let vms = two_vms();
    let images = [image(), image_at(0x4000_0000, 0x5a, 4096)];
    let dtbs = vms
        .each_ref()
        .map(|vm| generate_guest_dtb(vm, None).unwrap());
    let dtb_ipas = [Ipa(0x4fe0_0000), Ipa(0x4000_8000)];
    let parts: Vec<BundleVm<'_>> = (0..2)
        .map(|i| BundleVm {
            config: &vms[i],
            image: &images[i],
            dtb: &dtbs[i],
            dtb_ipa: dtb_ipas[i],
        })
        .collect();
    let blob = write_system_bundle(&parts).unwrap();
    let bundle = Bundle::parse(&blob).unwrap();
    assert_eq!(bundle.vms().len(), 2);
    for (i, read) in bundle.vms().iter().enumerate() {
        let config = read.config();
        let vm = &vms[i];
        assert_eq!(config.name, vm.name);
        assert_eq!(config.ipa_bits, vm.ipa_bits);
        assert_eq!(config.parange, vm.parange);
        assert_eq!(config.arch, vm.arch);
        assert_eq!(config.cpus, vm.cpus);
        assert_eq!(config.physical_cpus, vm.physical_cpus);
        assert_eq!(config.hole_policy, vm.hole_policy);
        assert_eq!(config.ram, vm.ram);
        assert_eq!(config.devices, vm.devices);
        assert_eq!(config.bootargs, vm.bootargs);
        assert_eq!(config.on_poweroff, vm.on_poweroff);
        assert_eq!(config.on_reset, vm.on_reset);
        assert_eq!(config.pci, vm.pci);
        assert_eq!(config, vm, "and nothing else");
        assert_eq!(read.entry(), images[i].entry);
        assert_eq!((read.dtb_ipa(), read.dtb()), (dtb_ipas[i], &dtbs[i][..]));
        let segments: Vec<(Ipa, Vec<u8>)> = read
            .images()
            .map(|s| (s.load_ipa, s.data.to_vec()))
            .collect();
        let expected: Vec<(Ipa, Vec<u8>)> = images[i]
            .segments
            .iter()
            .map(|s| (s.ipa, s.data.clone()))
            .collect();
        assert_eq!(segments, expected);
    }
    assert_eq!(bundle.system(), SystemConfig { vms: vms.to_vec() });
    let owned = bundle.clone().into_vms();
    assert_eq!(owned, bundle.vms());
}

#[test]
fn the_single_vm_writer_and_the_system_writer_agree() {
    let vm = VmConfig::default_virt();
    assert_eq!(bundle_for(&vm), system_bundle_for(&[vm]));
}

/// The two-VM bundle as an editable tree.
fn two_vm_tree() -> Tree {
    Tree::from_node(&fdt::parse(&system_bundle_for(&two_vms())).unwrap())
}

fn parse_edited_two(edit: impl FnOnce(&mut Tree)) -> Result<(), BundleError> {
    let mut tree = two_vm_tree();
    edit(&mut tree);
    Bundle::parse(&tree.to_blob()).map(|_| ())
}

#[test]
fn an_unedited_two_vm_tree_copy_still_parses() {
    assert_eq!(parse_edited_two(|_| {}), Ok(()));
}

#[test]
fn the_reader_refuses_a_cpu_given_to_two_vms() {
    let err = parse_edited_two(|t| t.child("vm@1").set("physical-cpus", &1u32.to_be_bytes()));
    assert_eq!(
        err,
        Err(BundleError::System(SystemError::SharedCpu {
            cpu: 1,
            first: "linux".into(),
            second: "bare".into()
        }))
    );
}

#[test]
fn the_reader_refuses_two_vms_of_one_name() {
    let err = parse_edited_two(|t| t.child("vm@1").set("vm-name", b"linux\0"));
    assert_eq!(
        err,
        Err(BundleError::System(SystemError::DuplicateName {
            name: "linux".into(),
            first: 0,
            second: 1
        }))
    );
}

#[test]
fn the_reader_refuses_a_physical_cpu_list_that_does_not_match_cpus() {
    let err = parse_edited_two(|t| t.child("vm@0").set("physical-cpus", &2u32.to_be_bytes()));
    assert_eq!(
        err,
        Err(BundleError::System(SystemError::Vm {
            vm: "linux".into(),
            error: ConfigError::PhysicalCpuCount { cpus: 2, listed: 1 }
        }))
    );
    let err = parse_edited_two(|t| t.child("vm@0").set("physical-cpus", &[0, 0, 1]));
    assert!(
        matches!(
            err,
            Err(BundleError::BadValue {
                property: "physical-cpus",
                ..
            })
        ),
        "{err:?}"
    );
    let err = parse_edited_two(|t| t.child("vm@1").set("physical-cpus", &[]));
    assert_eq!(
        err,
        Err(BundleError::System(SystemError::NoCpu {
            vm: "bare".into()
        }))
    );
}

#[test]
fn the_reader_refuses_unknown_lifecycle_names() {
    let err = parse_edited_two(|t| t.child("vm@1").set("on-reset", b"reboot\0"));
    assert!(
        matches!(
            &err,
            Err(BundleError::BadValue { node, property: "on-reset", .. }) if node == "/vm@1"
        ),
        "{err:?}"
    );
    let err = parse_edited_two(|t| t.child("vm@0").set("on-poweroff", b"restart\0"));
    assert!(
        matches!(
            err,
            Err(BundleError::BadValue {
                property: "on-poweroff",
                ..
            })
        ),
        "{err:?}"
    );
    let err = parse_edited_two(|t| {
        t.child("vm@0").properties.retain(|(n, _)| n != "on-reset");
    });
    assert_eq!(
        err,
        Err(BundleError::MissingProperty {
            node: "/vm@0".into(),
            property: "on-reset"
        })
    );
}

#[test]
fn vm_nodes_must_be_numbered_in_order() {
    let err = parse_edited_two(|t| t.child("vm@1").name = "vm@2".into());
    assert_eq!(
        err,
        Err(BundleError::VmOrder {
            index: 1,
            node: "vm@2".into()
        })
    );
    let err = parse_edited_two(|t| t.children.swap(0, 1));
    assert_eq!(
        err,
        Err(BundleError::VmOrder {
            index: 0,
            node: "vm@1".into()
        })
    );
    let err = parse_edited_two(|t| t.child("vm@1").name = "vm@0".into());
    assert_eq!(
        err,
        Err(BundleError::VmOrder {
            index: 1,
            node: "vm@0".into()
        })
    );
    let err = parse_edited(|t| t.child("vm@0").name = "vm".into()).unwrap_err();
    assert_eq!(
        err,
        BundleError::VmOrder {
            index: 0,
            node: "vm".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "the bundle's VM nodes are not numbered vm@0, vm@1, ... in order: node 0 is vm"
    );
}

#[test]
fn a_bundle_without_vms_or_with_other_root_nodes_is_refused() {
    let err = parse_edited_two(|t| t.children.clear());
    assert_eq!(
        err,
        Err(BundleError::MissingNode {
            parent: "/".into(),
            node: "vm@0"
        })
    );
    let extra = Tree {
        name: "link@0".into(),
        properties: vec![],
        children: vec![],
    };
    let err = parse_edited_two(|t| t.children.push(extra));
    assert_eq!(
        err,
        Err(BundleError::UnknownNode {
            node: "/link@0".into()
        })
    );
}

#[test]
fn the_reader_names_the_vm_whose_images_do_not_fit() {
    let err = parse_edited_two(|t| {
        let image = t.child("vm@1").child("image@40080000");
        image.set("load-ipa", &0x40ff_ff80u64.to_be_bytes());
    })
    .unwrap_err();
    assert!(
        matches!(&err, BundleError::Placement { vm, error: PlacementError::OutsideRam(_) } if vm == "bare"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("VM 'bare' cannot be loaded: image segment 0 "),
        "{err}"
    );
}

#[test]
fn the_system_writer_refuses_what_the_reader_would() {
    let [linux, bare] = two_vms();
    let mut sharing = bare.clone();
    sharing.physical_cpus = vec![2];
    let image = image();
    let dtb = [0u8; 64];
    let part = |config| BundleVm {
        config,
        image: &image,
        dtb: &dtb,
        dtb_ipa: Ipa(0x47e0_0000),
    };
    let err = write_system_bundle(&[part(&linux), part(&sharing)]).unwrap_err();
    assert_eq!(
        err,
        BundleWriteError::System(SystemError::SharedCpu {
            cpu: 2,
            first: "linux".into(),
            second: "bare".into()
        })
    );
    assert_eq!(
        write_system_bundle(&[]).unwrap_err(),
        BundleWriteError::System(SystemError::NoVm)
    );
    let err = write_system_bundle(&[part(&linux), part(&bare)]).unwrap_err();
    assert!(
        matches!(&err, BundleWriteError::Vm { vm, error } if vm == "bare"
            && matches!(**error, BundleWriteError::Placement(PlacementError::OutsideRam(_)))),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("VM 'bare': the guest device tree "),
        "{err}"
    );
}

#[test]
fn a_virtio_net_link_is_read_from_toml_and_survives_the_bundle() {
    let toml = r#"
[[vm]]
name = "a"
cpus = [0]
guest = "hello"
[[vm.ram]]
base = 0x4000_0000
size = "64M"
[[vm.device]]
kind = "virtio-net"
base = 0x0a00_0000
link = "b"

[[vm]]
name = "b"
cpus = [1]
guest = "hello"
[[vm.ram]]
base = 0x4000_0000
size = "64M"
[[vm.device]]
kind = "virtio-net"
base = 0x0a00_0000
link = "a"
"#;
    let system = SystemConfig::from_toml_str(toml).unwrap();
    let net = &system.vms[0].devices[0];
    assert_eq!(
        (net.kind, net.size, net.link.as_deref()),
        (crate::DeviceKind::VirtioNet, 0x1000, Some("b"))
    );
    assert_eq!(system.validate(None, None), Ok(()));
    let blob = system_bundle_for(&system.vms);
    assert_eq!(Bundle::parse(&blob).unwrap().system(), system);
}
