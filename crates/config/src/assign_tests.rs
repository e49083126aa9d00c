//! The PCI assignment rules: one test per refusal with its message, the shapes accepted, and
//! the boot-time check against a scan.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::*;
use moat_pci::smmu::SmmuFeatures;

fn bdf(text: &str) -> Bdf {
    text.parse().unwrap()
}

/// A VM called `name` on machine CPU `cpu`, owning the functions `pci`.
fn vm(name: &str, cpu: u32, pci: &[&str]) -> VmConfig {
    let mut vm = VmConfig::default_virt();
    vm.name = name.into();
    vm.physical_cpus = alloc::vec![cpu];
    vm.pci = pci.iter().map(|t| bdf(t)).collect();
    vm
}

fn system(vms: &[VmConfig]) -> SystemConfig {
    SystemConfig { vms: vms.to_vec() }
}

fn refusal(system: &SystemConfig) -> String {
    let message = system.validate(None, None).unwrap_err().to_string();
    assert!(!message.contains('\n'), "{message}");
    message
}

#[test]
fn intx_line_is_slot_plus_pin_minus_one_mod_4() {
    assert_eq!(intx_line(bdf("00:00.0"), 1), 0);
    assert_eq!(intx_line(bdf("00:01.0"), 1), 1);
    assert_eq!(intx_line(bdf("00:05.0"), 1), 1);
    assert_eq!(
        intx_line(bdf("00:01.0"), 4),
        0,
        "INTD of slot 1 wraps to line 0"
    );
    assert_eq!(intx_line(bdf("00:1f.0"), 2), 0);
}

#[test]
fn a_function_listed_twice_for_one_vm_is_refused() {
    let s = system(&[vm("a", 0, &["00:01.0", "00:02.0", "00:01.0"])]);
    assert_eq!(
        refusal(&s),
        "VM 'a': PCI function 00:01.0 is listed twice for the VM"
    );
}

#[test]
fn a_vm_with_functions_and_more_than_44_ipa_bits_is_refused() {
    let mut big = vm("big", 0, &["00:01.0"]);
    big.ipa_bits = 45;
    assert_eq!(
        refusal(&system(&[big.clone()])),
        "VM 'big': ipa-bits = 45 is above 44 for a VM with PCI functions: the SMMU translates their DMA through the VM's stage 2 and takes input addresses of at most 44 bits (QEMU's SMMUv3)"
    );
    big.ipa_bits = 44;
    assert_eq!(system(&[big.clone()]).validate(None, None), Ok(()));
    big.ipa_bits = 48;
    big.pci.clear();
    assert_eq!(
        system(&[big]).validate(None, None),
        Ok(()),
        "no functions: no SMMU"
    );
}

#[test]
fn a_function_given_to_two_vms_is_refused() {
    let s = system(&[vm("a", 0, &["00:01.0"]), vm("b", 1, &["00:01.0"])]);
    assert_eq!(
        refusal(&s),
        "PCI function 00:01.0 is given to both VM 'a' and VM 'b': a device belongs to one VM"
    );
}

#[test]
fn functions_of_two_vms_in_slots_equal_mod_4_are_refused_for_their_shared_intx_line() {
    let s = system(&[vm("a", 0, &["00:01.0"]), vm("b", 1, &["00:05.0"])]);
    assert_eq!(
        refusal(&s),
        "PCI functions 00:01.0 of VM 'a' and 00:05.0 of VM 'b' would share INTx line 1 (INTA of slots 1 and 5, equal mod 4): the four INTx lines are shared between slots, and devices of different VMs must not share one"
    );
}

#[test]
fn one_vm_may_have_functions_on_one_line_and_vms_on_different_lines_are_accepted() {
    let s = system(&[
        vm("a", 0, &["00:01.0", "00:05.0", "00:01.1"]),
        vm("b", 1, &["00:02.0", "00:03.0"]),
        vm("c", 2, &["00:04.0"]),
        vm("d", 3, &[]),
    ]);
    assert_eq!(s.validate(None, None), Ok(()));
}

/// The scan of QEMU virt with virtio-blk at 00:01.0 (INTA), virtio-net at 00:02.0 (INTA) and a
/// two-function device at 00:03.0 (function 1 on INTB); INTIDs through virt's map.
fn scanned(bdf: Bdf) -> Option<u8> {
    let found: Vec<(Bdf, u8)> = ["00:01.0", "00:02.0", "00:03.0", "00:03.1"]
        .iter()
        .zip([1, 1, 1, 2])
        .map(|(t, pin)| (t.parse().unwrap(), pin))
        .collect();
    found.iter().find(|(b, _)| *b == bdf).map(|&(_, pin)| pin)
}

fn virt_intid(bdf: Bdf, pin: u8) -> Option<u32> {
    Some(32 + 3 + u32::from(intx_line(bdf, pin)))
}

#[test]
fn at_boot_a_function_the_scan_did_not_find_is_refused() {
    let s = system(&[vm("a", 0, &["00:01.0"]), vm("b", 1, &["00:06.0"])]);
    assert_eq!(
        s.check_pci_against_scan(scanned, virt_intid)
            .unwrap_err()
            .to_string(),
        "VM 'b' is given PCI function 00:06.0, but the machine's PCI scan found no function there"
    );
}

#[test]
fn at_boot_the_real_pins_decide_which_functions_share_a_line() {
    // 00:03.1 uses INTB: line (3 + 2 − 1) mod 4 = 0, not 00:02.0's line 2.
    let ok = system(&[vm("a", 0, &["00:02.0"]), vm("b", 1, &["00:03.1"])]);
    assert_eq!(ok.check_pci_against_scan(scanned, virt_intid), Ok(()));
    // By INTA alone 00:02.0 (line 2) and 00:01.0 (line 1) differ; if the scan finds 00:01.0
    // on INTB, it is on line 2 too (INTID 32 + 3 + 2).
    let clash = system(&[vm("a", 0, &["00:02.0"]), vm("b", 1, &["00:01.0"])]);
    assert_eq!(clash.validate(None, None), Ok(()));
    let intb = |bdf: Bdf| scanned(bdf).map(|pin| if bdf.device == 1 { 2 } else { pin });
    assert_eq!(
        clash
            .check_pci_against_scan(intb, virt_intid)
            .unwrap_err()
            .to_string(),
        "PCI functions 00:02.0 of VM 'a' and 00:01.0 of VM 'b' both interrupt on INTID 37 (their INTx pins meet on one line): devices of different VMs must not share an INTx line"
    );
}

#[test]
fn at_boot_a_function_without_an_interrupt_pin_shares_nothing() {
    let no_pin = |bdf: Bdf| scanned(bdf).map(|_| 0);
    let s = system(&[vm("a", 0, &["00:01.0"]), vm("b", 1, &["00:02.0"])]);
    let every_intid_the_same = |_: Bdf, _: u8| Some(40);
    assert_eq!(
        s.check_pci_against_scan(no_pin, every_intid_the_same),
        Ok(())
    );
    assert!(
        s.check_pci_against_scan(scanned, every_intid_the_same)
            .is_err()
    );
}

/// QEMU 10.0.2's SMMUv3 (both stages, OAS 44) and QEMU 7.2's (stage 1 only).
fn smmu(stage2: bool) -> Option<SmmuFeatures> {
    let idr0 = u32::from(stage2) | 1 << 1 | 0b10 << 2 | 1 << 4;
    Some(SmmuFeatures::decode(idr0, 16, 0b100 | 1 << 4))
}

fn at_boot(s: &SystemConfig, smmu: Option<SmmuFeatures>) -> Result<(), String> {
    s.check_pci_at_boot(smmu, scanned, virt_intid)
        .map_err(|e| e.to_string())
}

#[test]
fn at_boot_functions_need_an_smmu_with_stage_2_and_the_vms_ipa_size() {
    let s = system(&[vm("a", 0, &["00:01.0"])]);
    assert_eq!(at_boot(&s, smmu(true)), Ok(()));
    assert_eq!(
        at_boot(&s, None),
        Err("VM 'a' is given PCI function 00:01.0, but the machine has no SMMUv3 to confine its DMA".into())
    );
    assert_eq!(
        at_boot(&s, smmu(false)),
        Err("VM 'a' is given PCI function 00:01.0, but the SMMUv3 cannot confine its DMA: it has no stage 2 translation (SMMU_IDR0.S2P = 0)".into())
    );
    let mut big = vm("big", 0, &["00:01.0"]);
    big.ipa_bits = 44;
    let small_smmu = Some(SmmuFeatures::decode(
        1 | 0b10 << 2 | 1 << 4,
        16,
        0b010 | 1 << 4,
    ));
    assert_eq!(
        at_boot(&system(&[big]), small_smmu),
        Err("VM 'big' has PCI functions and ipa-bits = 44, but the SMMUv3 takes input addresses of 40 bits".into())
    );
}

#[test]
fn at_boot_an_absent_function_is_named_before_the_smmu_is_looked_at() {
    let s = system(&[vm("a", 0, &["00:06.0"])]);
    assert_eq!(
        at_boot(&s, None),
        Err("VM 'a' is given PCI function 00:06.0, but the machine's PCI scan found no function there".into())
    );
}

#[test]
fn at_boot_vms_without_functions_need_nothing() {
    let s = system(&[vm("a", 0, &[]), vm("b", 1, &[])]);
    assert_eq!(at_boot(&s, None), Ok(()));
}

#[test]
fn a_vm_with_functions_has_its_bridge_windows_checked_as_regions() {
    use crate::validate::RegionId;
    let mut vm = VmConfig::default_virt();
    assert!(vm.regions().all(|r| !matches!(r.id, RegionId::PciEcam)));
    vm.pci = vec!["00:01.0".parse().unwrap()];
    vm.validate(None).unwrap();
    let ids: Vec<RegionId> = vm.regions().map(|r| r.id).collect();
    assert!(ids.contains(&RegionId::PciEcam) && ids.contains(&RegionId::PciMemory));
    // RAM moved onto the memory window: refused as an overlap, naming the window.
    vm.ram[0].base = moat_arm::addr::Ipa(0x2000_0000);
    let e = vm.validate(None).unwrap_err().to_string();
    assert!(e.contains("the PCIe host bridge's memory window"), "{e}");
}

#[test]
fn a_function_on_a_bus_the_vms_bridge_lacks_is_refused() {
    let mut vm = VmConfig::default_virt();
    vm.pci = vec!["10:01.0".parse().unwrap()];
    assert_eq!(
        vm.validate(None).unwrap_err().to_string(),
        "PCI function 10:01.0 is on a bus above 0x0f: the VM's host bridge has buses 00-0f"
    );
}

#[test]
fn intx_routes_pair_each_physical_line_with_the_guests_line_once() {
    // On QEMU virt's swizzle: 00:01.0 INTA is line 1, 00:02.0 INTA line 2, 00:03.0 INTA
    // line 3, 00:03.1 INTB line 0.
    let a = vm("a", 0, &["00:01.0", "00:02.0", "00:03.0", "00:03.1"]);
    let routes = a.intx_routes(scanned, virt_intid).unwrap();
    let pairs: Vec<(u32, u32)> = routes.iter().map(|r| (r.physical, r.guest)).collect();
    assert_eq!(
        pairs,
        [(36, 36), (37, 37), (38, 38), (35, 35)],
        "one route per line, in the order of first use; physical = guest on virt"
    );
    // A bridge wired elsewhere (SPIs 100..104): forwarded to the guest's lines all the same.
    let elsewhere = |bdf: Bdf, pin: u8| Some(100 + u32::from(intx_line(bdf, pin)));
    let routes = vm("a", 0, &["00:01.0", "00:03.1"])
        .intx_routes(scanned, elsewhere)
        .unwrap();
    assert_eq!(
        routes,
        [
            IntxRoute {
                physical: 101,
                guest: 36
            },
            IntxRoute {
                physical: 100,
                guest: 35
            }
        ]
    );
    // No pin, or a pin the interrupt-map leaves out: no route.
    let no_pin = |bdf: Bdf| scanned(bdf).map(|_| 0);
    assert!(a.intx_routes(no_pin, virt_intid).unwrap().is_empty());
    assert!(a.intx_routes(scanned, |_, _| None).unwrap().is_empty());
}

#[test]
fn intx_lines_a_vm_cannot_forward_one_to_one_are_refused_at_boot() {
    // Every function on one physical SPI, but on different guest lines.
    let s = system(&[vm("a", 0, &["00:01.0", "00:02.0"])]);
    assert_eq!(
        s.check_pci_against_scan(scanned, |_, _| Some(40))
            .unwrap_err()
            .to_string(),
        "VM 'a': PCI functions 00:01.0 and 00:02.0 interrupt on guest INTIDs 36 and 37 but on physical INTIDs 40 and 40: Moat forwards one physical INTx line to one guest line, and the host bridge's interrupt-map does not pair them so"
    );
    // One guest line (slots 1 and 5, INTA), two physical SPIs.
    let split = |bdf: Bdf, _: u8| Some(40 + u32::from(bdf.device));
    let both = |bdf: Bdf| Some(u8::from(bdf.device == 1 || bdf.device == 5));
    let s = system(&[vm("a", 0, &["00:01.0", "00:05.0"])]);
    assert!(matches!(
        s.check_pci_against_scan(both, split),
        Err(SystemError::IntxNotOneToOne { .. })
    ));
}
