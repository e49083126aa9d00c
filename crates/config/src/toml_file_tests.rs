//! Reading VM description files, including every file under `configs/`.

use std::path::{Path, PathBuf};

use super::*;
use crate::guest_parange_bits;
use crate::system::{Machine, SystemConfig};

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

/// The machine the files of `configs/` are checked against (configs/README.md): 4 CPUs and
/// 1 GiB of RAM for VMs.
const MACHINE: Machine = Machine {
    cpus: 4,
    ram_bytes: 1 << 30,
};

/// Parses either form and validates against [`MACHINE`], turning either failure into its
/// message.
fn load(text: &str) -> Result<SystemConfig, String> {
    let system = SystemConfig::from_toml_str(text).map_err(|e| e.to_string())?;
    system
        .validate(Some(MACHINE), None)
        .map_err(|e| e.to_string())?;
    Ok(system)
}

#[test]
fn default_toml_equals_default_virt() {
    let text = std::fs::read_to_string(configs_dir().join("default.toml")).unwrap();
    assert_eq!(
        load(&text),
        Ok(SystemConfig::single(VmConfig::default_virt()))
    );
    assert_eq!(
        VmConfig::from_toml_str(&text).unwrap(),
        VmConfig::default_virt()
    );
}

#[test]
fn every_config_in_configs_parses_and_validates() {
    let files = toml_files(&configs_dir());
    assert!(files.len() >= 5, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(message) = load(&text) {
            panic!("{}: {message}", path.display());
        }
    }
}

#[test]
fn every_invalid_config_is_refused_with_the_message_its_first_line_expects() {
    let files = toml_files(&configs_dir().join("invalid"));
    assert!(files.len() >= 5, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "));
        let expected =
            expected.unwrap_or_else(|| panic!("{}: no `# expect:` line", path.display()));
        match load(&text) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(message) => assert!(message.contains(expected), "{}: {message}", path.display()),
        }
    }
}

#[test]
fn tight44_shows_the_guest_a_44_bit_parange() {
    let text = std::fs::read_to_string(configs_dir().join("tight44.toml")).unwrap();
    let vm = load(&text).unwrap().vms.remove(0);
    assert_eq!(guest_parange_bits(vm.parange, vm.ipa_bits, 48), 44);
}

#[test]
fn omitted_keys_take_their_defaults() {
    let vm = VmConfig::from_toml_str("[[ram]]\nbase = 0x4000_0000\nsize = 0x1000\n").unwrap();
    assert_eq!(vm.name, "vm");
    assert_eq!((vm.ipa_bits, vm.cpus), (40, 1));
    assert_eq!(
        (vm.parange, vm.hole_policy),
        (ParangeMode::Max, HolePolicy::Abort)
    );
    assert!(vm.devices.is_empty() && vm.bootargs.is_empty());
}

#[test]
fn sizes_may_be_integers_or_strings() {
    let text = "[[ram]]\nbase = \"0x4000_0000\"\nsize = \"1G\"\n[[ram]]\nbase = 0\nsize = 4096\n";
    let vm = VmConfig::from_toml_str(text).unwrap();
    assert_eq!(
        vm.ram[0],
        RamRegion {
            base: Ipa(0x4000_0000),
            size: 1 << 30
        }
    );
    assert_eq!(
        vm.ram[1],
        RamRegion {
            base: Ipa(0),
            size: 4096
        }
    );
}

#[test]
fn device_sizes_default_to_the_architectural_window() {
    let text = "cpus = 3\n[[device]]\nkind = \"gicv3-redist\"\nbase = 0x080A_0000\n\
                [[device]]\nkind = \"gicv3-dist\"\nbase = 0x0800_0000\n";
    let vm = VmConfig::from_toml_str(text).unwrap();
    assert_eq!(vm.devices[0].size, 3 * 0x2_0000);
    assert_eq!(vm.devices[1].size, 0x1_0000);
}

#[test]
fn unknown_keys_are_refused_naming_the_key_and_the_accepted_ones() {
    let message = VmConfig::from_toml_str("ipa_bits = 36\n")
        .unwrap_err()
        .to_string();
    assert!(message.contains("unknown field `ipa_bits`"), "{message}");
    assert!(message.contains("`ipa-bits`"), "{message}");
    let message = VmConfig::from_toml_str("[[ram]]\nbase = 0\nsize = 1\nsise = 2\n")
        .unwrap_err()
        .to_string();
    assert!(message.contains("unknown field `sise`"), "{message}");
}

#[test]
fn pci_lists_function_addresses_as_lspci_writes_them() {
    let vm = VmConfig::from_toml_str("pci = [\"00:01.0\", \"0:2.1\"]\n").unwrap();
    let shown: Vec<String> = vm.pci.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["00:01.0", "00:02.1"]);
    assert!(VmConfig::from_toml_str("").unwrap().pci.is_empty());
}

#[test]
fn a_malformed_pci_address_is_refused_at_its_position() {
    let message = VmConfig::from_toml_str("cpus = 1\npci = [\"00:20.0\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("line 2, column 7: pci \"00:20.0\": not a PCI function address"),
        "{message}"
    );
}

#[test]
fn negative_addresses_are_refused() {
    let message = VmConfig::from_toml_str("[[ram]]\nbase = -4096\nsize = 4096\n").unwrap_err();
    assert!(
        message.to_string().contains("non-negative integer"),
        "{message}"
    );
}

#[test]
fn unknown_parange_mode_is_refused_with_the_accepted_names() {
    let message = VmConfig::from_toml_str("parange = \"exact\"\n")
        .unwrap_err()
        .to_string();
    assert!(message.contains("unknown parange mode \"exact\": expected one of max, tight"));
}

#[test]
fn arch_selects_the_guest_el1_execution_state_and_defaults_to_aarch64() {
    let vm = VmConfig::from_toml_str("arch = \"aarch32\"\n").unwrap();
    assert_eq!(vm.arch, crate::GuestArch::Aarch32);
    assert_eq!(
        VmConfig::from_toml_str("").unwrap().arch,
        crate::GuestArch::Aarch64
    );
    let message = VmConfig::from_toml_str("arch = \"riscv\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("expected one of aarch64, aarch32"),
        "{message}"
    );
}
