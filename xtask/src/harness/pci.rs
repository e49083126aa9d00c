//! PCIe at boot (issue 12, the first EL2 step): QEMU `virt` with its SMMUv3 in front of the
//! host bridge and two virtio-pci functions at chosen slots; Moat scans ECAM and reports each
//! function with its INTx route and stream ID, and reads what the SMMU implements. The VM (the
//! greeting guest) is given nothing and runs as ever; a VM given a function the scan did not
//! find is refused at boot.

use super::{BOOT_LIMIT, Tally, expect_exit, expect_line, moat_machine};
use crate::build::Artifacts;
use crate::error::XResult;
use crate::qemu::{ConsoleMode, MoatExit};
use crate::scratch::Scratch;
use crate::vm::{self, VmRequest};

/// The CPU of the case.
const CPU: &str = "cortex-a72";

/// The machine's additions: the SMMU, no default NIC (QEMU would put a virtio-net-pci at
/// 00:01.0), a virtio-blk at 00:01.0 behind the SMMU (a null disk: nothing reads it yet) and a
/// virtio-rng at 00:03.0, modern-only so that `iommu_platform` is allowed.
const QEMU_ARGS: [&str; 10] = [
    "-M",
    "iommu=smmuv3",
    "-nic",
    "none",
    "-blockdev",
    "driver=null-co,node-name=pcidisk,size=1048576",
    "-device",
    "virtio-blk-pci,drive=pcidisk,addr=01.0,disable-legacy=on,iommu_platform=on",
    "-device",
    "virtio-rng-pci,addr=03.0,disable-legacy=on,iommu_platform=on",
];

/// `pci_scan_at_boot_reports_the_bridge_its_functions_and_the_smmu`.
pub(super) fn scan_at_boot(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let hello = artifacts.guest("moat-guest-hello");
    let (_dir, machine) = moat_machine(artifacts, &hello, CPU, &VmRequest::default(), "pci")?;
    let extra: Vec<String> = QEMU_ARGS.iter().map(|a| (*a).into()).collect();
    let outcome = machine.run_on_qemu10(&extra, ConsoleMode::Captured, Some(BOOT_LIMIT))?;
    // QEMU virt (highmem=off): the low ECAM, 16 buses; INTA of slot d on SPI 3 + d mod 4
    // (INTID 35 + d); requester ID = stream ID. QEMU 10's SMMU translates at both stages
    // (7.2's at stage 1 only), its OAS is 44 bits.
    let verdict = expect_line(&outcome, "PCIe: ECAM [0x3f000000, 0x40000000), buses 00-0f")
        .and_then(|()| expect_line(&outcome, "PCI 00:00.0: 1b36:0008 class 060000, no INTx"))
        .and_then(|()| {
            expect_line(
                &outcome,
                "PCI 00:01.0: 1af4:1042 class 010000, INTA INTID 36, stream 0x8",
            )
        })
        .and_then(|()| {
            expect_line(
                &outcome,
                "PCI 00:03.0: 1af4:1044 class 00ff00, INTA INTID 38, stream 0x18",
            )
        })
        .and_then(|()| expect_line(&outcome, "PCI: 3 functions on buses 00-0f"))
        .and_then(|()| {
            expect_line(
                &outcome,
                "SMMUv3: registers [0x9050000, 0x9070000), stage 1 yes, stage 2 yes, OAS 44 bits, 16-bit stream IDs",
            )
        })
        .and_then(|()| expect_line(&outcome, "SMMUv3: can confine assigned devices at stage 2"))
        // Moat takes the SMMU: a stream table for the 16 buses' stream IDs, every one aborting.
        .and_then(|()| expect_line(&outcome, "SMMUv3: enabled: 4096 STEs at "))
        .and_then(|()| {
            expect_line(
                &outcome,
                "(all abort), command queue 256 entries, event queue 256 entries",
            )
        })
        .and_then(|()| expect_line(&outcome, "Hello from a Moat guest!"))
        .and_then(|()| expect_exit(&outcome, MoatExit::PowerOff));
    tally.record(
        "pci_scan_at_boot_reports_the_bridge_its_functions_and_the_smmu",
        CPU,
        Some(&outcome),
        verdict,
    );
    Ok(())
}

/// `pci_function_the_scan_did_not_find_is_refused_at_boot`: the description is valid (the
/// host tool cannot know the machine's functions); Moat's scan refuses it.
pub(super) fn absent_function_refused(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let mut vm = vm::describe(&VmRequest::default(), CPU)?;
    vm.pci = vec!["00:06.0".parse().expect("a function address")];
    let dir = Scratch::new("test")?;
    let bundle = dir.join("pci-absent.bundle");
    let hello = artifacts.guest("moat-guest-hello");
    let machine = vm::moat_machine(&vm, &artifacts.moat, &hello, CPU, &bundle)?;
    let extra: Vec<String> = QEMU_ARGS.iter().map(|a| (*a).into()).collect();
    let outcome = machine.run_on_qemu10(&extra, ConsoleMode::Captured, Some(BOOT_LIMIT))?;
    let verdict = expect_line(
        &outcome,
        "error: VM 'default' is given PCI function 00:06.0, but the machine's PCI scan found no function there",
    )
    .and_then(|()| expect_exit(&outcome, MoatExit::ConfigError));
    tally.record(
        "pci_function_the_scan_did_not_find_is_refused_at_boot",
        CPU,
        Some(&outcome),
        verdict,
    );
    Ok(())
}
