//! Writing bundles and reading them back; the reader against malformed and corrupt blobs.

use moat_arm::addr::Ipa;
use proptest::prelude::*;
use vm_fdt::FdtWriter;

use super::fdt::{self, Node};
use super::*;
use crate::guest_dtb::generate_guest_dtb;
use crate::loader::{GuestImage, ImageFormat, Segment};
use crate::schema::{RamRegion, VmConfig};
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

fn default_bundle() -> Vec<u8> {
    bundle_for(&VmConfig::default_virt())
}

#[test]
fn written_bundle_reads_back_as_the_same_vm_and_images() {
    let vm = VmConfig::default_virt();
    let dtb = generate_guest_dtb(&vm, None).unwrap();
    let blob = write_bundle(&vm, &image(), &dtb, Ipa(0x47e0_0000)).unwrap();
    let bundle = Bundle::parse(&blob).unwrap();
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
        let vm = VmConfig::from_toml_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let blob = bundle_for(&vm);
        assert_eq!(
            Bundle::parse(&blob).unwrap().config(),
            &vm,
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
    let err = parse_edited(|t| t.set("moat,bundle-version", &2u32.to_be_bytes()));
    assert_eq!(err, Err(BundleError::UnsupportedVersion { found: 2 }));
}

#[test]
fn unknown_nodes_and_properties_are_refused() {
    let err = parse_edited(|t| t.child("vm").set("ipa_bits", &[0, 0, 0, 40]));
    let property = "ipa_bits".into();
    assert_eq!(
        err,
        Err(BundleError::UnknownProperty {
            node: "/vm".into(),
            property
        })
    );
    let extra = Tree {
        name: "virtio@a000000".into(),
        properties: vec![],
        children: vec![],
    };
    let err = parse_edited(|t| t.child("vm").children.push(extra));
    assert_eq!(
        err,
        Err(BundleError::UnknownNode {
            node: "/vm/virtio@a000000".into()
        })
    );
}

#[test]
fn missing_and_duplicate_parts_are_refused() {
    let err = parse_edited(|t| t.child("vm").children.retain(|c| c.name != "boot"));
    assert_eq!(
        err,
        Err(BundleError::MissingNode {
            parent: "/vm",
            node: "boot"
        })
    );
    let err = parse_edited(|t| t.child("vm").properties.retain(|(n, _)| n != "cpus"));
    let expected = BundleError::MissingProperty {
        node: "/vm".into(),
        property: "cpus",
    };
    assert_eq!(err, Err(expected));
    let err = parse_edited(|t| {
        let dtb = t.child("vm").child("guest-dtb").clone();
        t.child("vm").children.push(dtb);
    });
    assert_eq!(
        err,
        Err(BundleError::DuplicateNode {
            node: "/vm/guest-dtb".into()
        })
    );
}

#[test]
fn malformed_values_are_refused() {
    let err = parse_edited(|t| t.child("vm").set("parange", b"exact\0"));
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
    let err = parse_edited(|t| t.child("vm").set("cpus", &[1]));
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
        t.child("vm")
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
    let err = parse_edited(|t| t.child("vm").set("vm-name", b"no-nul"));
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
        let image = t.child("vm").child("image@40080000");
        image.set("load-ipa", &0x47ff_ff80u64.to_be_bytes());
    });
    assert!(
        matches!(
            err,
            Err(BundleError::Placement(PlacementError::OutsideRam(_)))
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
