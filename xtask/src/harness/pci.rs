//! PCIe (issue 12), on QEMU 10 (`crate::qemu10`: its SMMUv3 translates at stage 2) with the
//! SMMU in front of the host bridge. At boot: Moat scans ECAM and reports each function with
//! its INTx route and stream ID, reads what the SMMU implements and takes it (every stream
//! aborting); a VM given a function the scan did not find is refused. Assignment: the
//! `pcidma` guest drives the virtio-blk-pci Moat gives its VM, and the DMA cases check where
//! its reads land and that the SMMU stops those aimed outside the VM's RAM.

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

/// The marker the DMA cases write at the start of the disk image's sector 0.
const DISK_MARKER: &str = "MOAT-PCI-DISK-SECTOR-0";

/// One boot of the `pcidma` guest with `target` in its bootargs, the virtio-blk at 00:01.0
/// (behind the SMMU, `iommu_platform=on`) backed by a 1 MiB image holding [`DISK_MARKER`],
/// assigned to the VM.
fn dma_boot(artifacts: &Artifacts, target: &str) -> XResult<crate::qemu::Outcome> {
    let request = VmRequest {
        bootargs: Some(format!("console=ttyAMA0 pcidma.target={target}")),
        ..VmRequest::default()
    };
    let mut vm = vm::describe(&request, CPU)?;
    vm.pci = vec!["00:01.0".parse().expect("a function address")];
    let dir = Scratch::new("test")?;
    let disk = dir.join("pci-disk.img");
    let mut image = vec![0u8; 1 << 20];
    image[..DISK_MARKER.len()].copy_from_slice(DISK_MARKER.as_bytes());
    vm::write_file(&disk, &image)?;
    let guest = artifacts.guest("moat-guest-pcidma");
    let machine = vm::moat_machine(
        &vm,
        &artifacts.moat,
        &guest,
        CPU,
        &dir.join("pcidma.bundle"),
    )?;
    let extra = [
        "-drive".to_string(),
        format!("file={},format=raw,if=none,id=pcidisk", disk.display()),
        "-device".into(),
        "virtio-blk-pci,drive=pcidisk,addr=01.0,disable-legacy=on,iommu_platform=on".into(),
    ];
    machine.run_for_pci(true, &extra, ConsoleMode::Captured, Some(BOOT_LIMIT))
}

/// The hexadecimal number after `prefix` on the console's first line holding it.
fn hex_after(outcome: &crate::qemu::Outcome, prefix: &str) -> Result<u64, String> {
    hex_in(&outcome.console, prefix)
}

/// The hexadecimal number after `prefix` on the first line of `console` holding it.
fn hex_in(console: &str, prefix: &str) -> Result<u64, String> {
    let rest = console
        .lines()
        .find_map(|l| Some(&l[l.find(prefix)? + prefix.len()..]))
        .ok_or_else(|| format!("console lacks {prefix:?}"))?;
    let digits: String = rest
        .trim_start_matches("0x")
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    u64::from_str_radix(&digits, 16).map_err(|_| format!("no address after {prefix:?}"))
}

/// The DMA cases of issue 12, one behaviour each, on QEMU 10 (its SMMUv3 translates at stage
/// 2): the positive control, then a read the guest aims beyond its RAM, at the physical address
/// of Moat's canary page, and at free machine memory.
pub(super) fn dma_cases(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    // (a) Positive control: the sector lands where the guest's IPA says, the VM's RAM at a
    // PA other than its IPA (the SMMU translated through the VM's stage 2).
    let control = dma_boot(artifacts, "ram")?;
    let ram_pa = hex_after(&control, "RAM IPA [0x40000000, 0x48000000) at PA ");
    let own_page = hex_after(&control, "canaries in a page of Moat's own data at ");
    let verdict = expect_line(
        &control,
        "VM 'default': PCI 00:01.0 (stream 0x8) translated by the SMMU through its stage 2",
    )
    .and_then(|()| expect_line(&control, "VIRTIO_F_ACCESS_PLATFORM accepted"))
    .and_then(|()| expect_line(&control, "pcidma: sector 0 read into IPA 0x4"))
    .and_then(|()| expect_line(&control, &format!(": \"{DISK_MARKER}\"")))
    .and_then(|()| match &ram_pa {
        Ok(pa) if *pa != 0x4000_0000 => Ok(()),
        Ok(_) => Err("the VM's RAM is at PA = IPA: the control proves nothing".into()),
        Err(e) => Err(e.clone()),
    })
    .and_then(|()| expect_line(&control, "isolation: canaries intact"))
    .and_then(|()| expect_exit(&control, MoatExit::PowerOff));
    tally.record(
        "pci_dma_lands_at_the_pa_the_vms_stage_2_gives_its_ipa",
        CPU,
        Some(&control),
        verdict,
    );
    // (b) Beyond the VM's RAM: the SMMU refuses the write (F_TRANSLATION at stage 2), Moat
    // reports it. QEMU 10.0.2's virtio-blk then completes the request anyway (measured: its
    // data write fails at the SMMU, the status byte reaches RAM as OK, and the device does not
    // set DEVICE_NEEDS_RESET): the guest sees a completed read whose data went nowhere.
    let beyond = dma_boot(artifacts, "0x48001000")?;
    let verdict = expect_line(
        &beyond,
        "SMMUv3 event: F_TRANSLATION stream 0x8: stage 2 write at 0x48001000 (IPA 0x48001000)",
    )
    .and_then(|()| expect_line(&beyond, "pcidma: the read completed"))
    .and_then(|()| expect_line(&beyond, "isolation: canaries intact"))
    .and_then(|()| expect_exit(&beyond, MoatExit::PowerOff));
    tally.record(
        "pci_dma_beyond_the_vms_ram_is_stopped_by_the_smmu_and_reported",
        CPU,
        Some(&beyond),
        verdict,
    );
    // (c) At the IPA equal to the PA of Moat's canary page: that IPA is the VM's own RAM
    // (Moat's image lies inside [0x40000000, 0x48000000)), so the write lands there, in the
    // VM's memory, and Moat's page keeps its canaries.
    aimed_case(
        artifacts,
        tally,
        "pci_dma_at_the_pa_of_moats_memory_lands_in_the_vms_own_ram",
        own_page,
        |pa, o| {
            expect_line(
                o,
                &format!("pcidma: IPA {pa:#x} (own RAM) now holds \"{DISK_MARKER}\""),
            )
            .and_then(|()| expect_line(o, &format!("canaries intact: Moat's page at {pa:#x}")))
        },
    )?;
    // (d) At free machine memory 64 MiB below the VM's RAM (canary-marked by Moat; as an IPA
    // beyond the VM's RAM): stopped and reported, the canaries unchanged.
    aimed_case(
        artifacts,
        tally,
        "pci_dma_at_the_pa_of_free_memory_is_stopped_and_its_canaries_kept",
        ram_pa.map(|pa| pa - (64 << 20)),
        |free, o| {
            expect_line(
                o,
                &format!("SMMUv3 event: F_TRANSLATION stream 0x8: stage 2 write at {free:#x}"),
            )
            .and_then(|()| expect_line(o, "isolation: canaries intact"))
        },
    )
}

/// `pci_intx_reaches_the_guest_and_its_deactivation_ends_the_physical_line`: the function's
/// INTx (INTA of slot 1: line 1, INTID 36 on the machine and in the guest) is taken by Moat and
/// forwarded to the guest's SPI with `HW` = 1. The guest waits in `WFI` for it, acknowledges
/// it, reads the device's ISR (the line falls), completes its read and ends the interrupt;
/// nothing is pending after it (no second delivery of one completion). The second round's
/// interrupt can only arrive if the guest's deactivation of the first reached the physical
/// SPI, which Moat left active.
pub(super) fn intx_case(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let outcome = dma_boot(artifacts, "intx")?;
    let round = |n: u32| {
        format!(
            "pcidma: INTx round {n}: INTID 36 acknowledged, ISR 0x1, used true, read Ok(()), then ICC_HPPIR1_EL1 = 1023"
        )
    };
    let verdict = expect_line(&outcome, "pcidma: INTx: waiting for INTID 36")
        .and_then(|()| expect_line(&outcome, &round(1)))
        .and_then(|()| expect_line(&outcome, &round(2)))
        .and_then(|()| expect_exit(&outcome, MoatExit::PowerOff));
    tally.record(
        "pci_intx_reaches_the_guest_and_its_deactivation_ends_the_physical_line",
        CPU,
        Some(&outcome),
        verdict,
    );
    Ok(())
}

/// One DMA case aimed at `target` (found on an earlier console, or why not): the guest's read
/// aimed there, `check`ed, and the machine powered off.
fn aimed_case(
    artifacts: &Artifacts,
    tally: &mut Tally,
    name: &str,
    target: Result<u64, String>,
    check: impl Fn(u64, &crate::qemu::Outcome) -> Result<(), String>,
) -> XResult<()> {
    let outcome = match target {
        Ok(at) => Ok((at, dma_boot(artifacts, &format!("{at:#x}"))?)),
        Err(e) => Err(e),
    };
    let verdict = match &outcome {
        Ok((at, o)) => check(*at, o).and_then(|()| expect_exit(o, MoatExit::PowerOff)),
        Err(e) => Err(e.clone()),
    };
    tally.record(name, CPU, outcome.as_ref().ok().map(|(_, o)| o), verdict);
    Ok(())
}

/// The two-VM description of the neighbour case: VM 'disk' (the `pcidma` guest aiming at
/// `target`, given 00:01.0; its power-off ends the machine) beside VM 'other' (the `partner`
/// guest marking its free RAM with canaries).
fn neighbour_description(target: &str) -> String {
    neighbours(target, 0, 1)
}

/// [`neighbour_description`] with VM 'disk' on physical CPU `disk_cpu` and VM 'other' on
/// `other_cpu`.
fn neighbours(target: &str, disk_cpu: u32, other_cpu: u32) -> String {
    let disk = format!(
        "[[vm]]\nname = \"disk\"\ncpus = [{disk_cpu}]\nguest = \"pcidma\"\nbootargs = \"console=ttyAMA0 pcidma.target={target}\"\npci = [\"00:01.0\"]\non-poweroff = \"power-off-machine\"\n{}{}\n",
        super::systems::VIRT_RAM,
        crate::system::VIRT_DEVICES
    );
    disk + &super::systems::partner("other", other_cpu, "partner.canary", "")
}

/// The QEMU options of a virtio-blk at 00:01.0 behind the SMMU backed by a 1 MiB image holding
/// [`DISK_MARKER`], made in `dir`, as `./x run --qemu-arg` options.
fn disk_args(dir: &Scratch) -> XResult<Vec<String>> {
    let disk = dir.join("pci-disk.img");
    let mut image = vec![0u8; 1 << 20];
    image[..DISK_MARKER.len()].copy_from_slice(DISK_MARKER.as_bytes());
    vm::write_file(&disk, &image)?;
    Ok(vec![
        "--qemu-arg=-drive".to_string(),
        format!(
            "--qemu-arg=file={},format=raw,if=none,id=pcidisk",
            disk.display()
        ),
        "--qemu-arg=-device".into(),
        "--qemu-arg=virtio-blk-pci,drive=pcidisk,addr=01.0,disable-legacy=on,iommu_platform=on"
            .into(),
    ])
}

/// `pci_intx_of_a_vm_on_a_secondary_cpu_is_routed_to_that_cpu`: VM 'disk' runs on physical
/// CPU 1 beside VM 'other' on CPU 0; its function's INTx is routed to CPU 1 (its vCPU 0's,
/// `GICD_IROUTER<n>`) and reaches its guest twice as on one CPU, while 'other' runs on.
pub(super) fn intx_on_a_secondary_cpu(tally: &mut Tally) -> XResult<()> {
    let dir = Scratch::new("test")?;
    let qemu_args = disk_args(&dir)?;
    let extra: Vec<&str> = qemu_args.iter().map(String::as_str).collect();
    let name = "pci_intx_of_a_vm_on_a_secondary_cpu_is_routed_to_that_cpu";
    let console =
        super::systems::run_system_with("pci-intx-cpu1", &neighbours("intx", 1, 0), &extra, 0)?;
    let round = |n: u32| {
        format!(
            "[disk] pcidma: INTx round {n}: INTID 36 acknowledged, ISR 0x1, used true, read Ok(()), then ICC_HPPIR1_EL1 = 1023"
        )
    };
    let verdict = console.and_then(|c| {
        super::systems::in_order(
            &c,
            &[
                "[disk] pcidma: INTx: waiting for INTID 36",
                &round(1),
                &round(2),
                "isolation: canaries intact",
            ],
        )
    });
    tally.record(name, CPU, None, verdict);
    Ok(())
}

/// `pci_dma_at_the_pa_of_another_vms_ram_is_stopped_and_its_canaries_kept`: a first boot
/// finds where VM 'other''s RAM is and which part the partner marks, a second has VM 'disk''s
/// device write a sector at a PA inside it (2 MiB and 2 KiB in: away from the page's first
/// doubleword, by which Moat recognises a marked page). The SMMU stops it — as an IPA
/// it is beyond 'disk''s RAM — Moat reports it, and at the machine's end every page 'other'
/// marked still holds its canaries.
pub(super) fn dma_at_another_vm(tally: &mut Tally) -> XResult<()> {
    let dir = Scratch::new("test")?;
    let qemu_args = disk_args(&dir)?;
    let extra: Vec<&str> = qemu_args.iter().map(String::as_str).collect();
    let name = "pci_dma_at_the_pa_of_another_vms_ram_is_stopped_and_its_canaries_kept";
    let first =
        super::systems::run_system_with("pci-neighbour", &neighbour_description("ram"), &extra, 0)?;
    // Where 'other''s RAM is, and which part of it the partner marked.
    let other = first.and_then(|c| {
        let pa = hex_in(&c, "VM 'other': RAM IPA [0x40000000, 0x41000000) at PA ")?;
        let marked = hex_in(&c, "[other] partner: canaries at IPA [")?;
        Ok(pa + (marked - 0x4000_0000))
    });
    let verdict = match other {
        Ok(marked_pa) => {
            let target = marked_pa + (2 << 20) + 0x800;
            let second = super::systems::run_system_with(
                "pci-neighbour",
                &neighbour_description(&format!("{target:#x}")),
                &extra,
                0,
            )?;
            second.and_then(|c| {
                let event =
                    format!("SMMUv3 event: F_TRANSLATION stream 0x8: stage 2 write at {target:#x}");
                super::systems::in_order(&c, &[&event, "isolation: canaries intact: "])
            })
        }
        Err(e) => Err(e),
    };
    tally.record(name, CPU, None, verdict);
    Ok(())
}
