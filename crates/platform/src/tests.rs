//! The parser on recorded trees (QEMU `virt` with GICv3 and GICv2, the ZCU102 board from
//! Debian's kernel package; `testdata/README.md`) and on small synthetic ones.

use super::*;
use crate::gic::contiguous_cpu_interface;
use vm_fdt::{FdtReserveEntry, FdtWriter};

const VIRT_GICV3: &[u8] = include_bytes!("../testdata/qemu-virt-gicv3.dtb");
const VIRT_GICV2: &[u8] = include_bytes!("../testdata/qemu-virt-gicv2.dtb");
const ZCU102: &[u8] = include_bytes!("../testdata/zynqmp-zcu102-rev1.0.dtb");
/// The ZCU102 tree as QEMU's `xlnx-zcu102` passes it with `-dtb`, `-m 2G` and `-initrd`:
/// libfdt's edits left `FDT_NOP` tokens between nodes.
const ZCU102_QEMU: &[u8] = include_bytes!("../testdata/zcu102-qemu-2g.dtb");

fn range(base: u64, size: u64) -> PhysRange {
    PhysRange { base, size }
}

fn parse(dtb: &[u8]) -> Platform {
    Platform::parse(dtb, 0x4000_0000).expect("a valid device tree")
}

/// The arm,armv8-timer interrupts of both QEMU `virt` and the ZCU102: PPIs 13, 14, 11, 10.
const ARMV8_TIMER: Timer = Timer {
    secure_phys: 29,
    phys: 30,
    virt: 27,
    hyp_phys: 26,
};

#[test]
fn virt_gicv3_tree_gives_ram_pl011_gicv3_timer_psci_cpus_and_initrd() {
    let p = parse(VIRT_GICV3);
    assert_eq!(p.dtb, range(0x4000_0000, VIRT_GICV3.len() as u64));
    assert_eq!(p.memory(), &[range(0x4000_0000, 0x2000_0000)]);
    assert_eq!(
        p.console,
        Some(Uart {
            regs: range(0x900_0000, 0x1000),
            kind: UartKind::Pl011,
            intid: Some(33),
        })
    );
    assert_eq!(
        p.gic,
        Some(Gic::V3(GicV3 {
            dist: range(0x800_0000, 0x1_0000),
            redist: range(0x80a_0000, 0xf6_0000),
            maintenance: Some(25),
        }))
    );
    assert_eq!(
        p.gic_v3(),
        Some((range(0x800_0000, 0x1_0000), range(0x80a_0000, 0xf6_0000)))
    );
    assert_eq!(p.timer, Some(ARMV8_TIMER));
    assert_eq!(p.psci, Conduit::Smc);
    assert_eq!(p.cpus(), &[0, 1]);
    assert_eq!(p.initrd, Some(range(0x4800_0000, 0x1_6942)));
}

#[test]
fn virt_gicv2_tree_gives_the_four_frames_and_the_maintenance_interrupt() {
    let p = parse(VIRT_GICV2);
    let Some(Gic::V2(gic)) = p.gic else {
        panic!("expected a GICv2, got {:?}", p.gic);
    };
    assert_eq!(
        gic,
        GicV2 {
            dist: range(0x800_0000, 0x1_0000),
            cpu: range(0x801_0000, 0x1_0000),
            hyp: Some(range(0x803_0000, 0x1_0000)),
            vcpu: Some(range(0x804_0000, 0x1_0000)),
            maintenance: Some(25),
        }
    );
    // virt's frames are not aliased: the interfaces start at their frames.
    assert_eq!(gic.cpu_interface(), range(0x801_0000, 0x2000));
    assert_eq!(gic.vcpu_interface(), Some(range(0x804_0000, 0x2000)));
    assert_eq!(p.gic_v3(), None);
    assert_eq!(p.console.map(|u| u.kind), Some(UartKind::Pl011));
    assert_eq!(p.timer, Some(ARMV8_TIMER));
}

#[test]
fn zcu102_tree_gives_two_ddr_ranges() {
    let p = parse(ZCU102);
    assert_eq!(
        p.memory(),
        &[range(0, 0x8000_0000), range(0x8_0000_0000, 0x8000_0000)]
    );
}

#[test]
fn zcu102_console_is_the_cadence_uart_stdout_path_names_through_an_alias() {
    // stdout-path = "serial0:115200n8"; serial0 = "/axi/serial@ff000000".
    let p = parse(ZCU102);
    assert_eq!(
        p.console,
        Some(Uart {
            regs: range(0xff00_0000, 0x1000),
            kind: UartKind::Cadence,
            intid: Some(32 + 21),
        })
    );
}

#[test]
fn zcu102_gic_400_has_four_frames_and_its_interfaces_at_frame_base_plus_0xf000() {
    let p = parse(ZCU102);
    let Some(Gic::V2(gic)) = p.gic else {
        panic!("expected a GICv2, got {:?}", p.gic);
    };
    assert_eq!(
        gic,
        GicV2 {
            dist: range(0xf901_0000, 0x1_0000),
            cpu: range(0xf902_0000, 0x2_0000),
            hyp: Some(range(0xf904_0000, 0x2_0000)),
            vcpu: Some(range(0xf906_0000, 0x2_0000)),
            maintenance: Some(25),
        }
    );
    assert_eq!(gic.cpu_interface(), range(0xf902_f000, 0x2000));
    assert_eq!(gic.vcpu_interface(), Some(range(0xf906_f000, 0x2000)));
}

#[test]
fn zcu102_has_psci_over_smc_four_cpus_the_timer_and_no_initrd() {
    let p = parse(ZCU102);
    assert_eq!(p.psci, Conduit::Smc);
    assert_eq!(p.cpus(), &[0, 1, 2, 3]);
    assert_eq!(p.timer, Some(ARMV8_TIMER));
    assert_eq!(p.initrd, None);
}

#[test]
fn not_a_device_tree_is_refused_with_its_address() {
    let err = Platform::parse(&[0u8; 64], 0x4000_0000).unwrap_err();
    assert_eq!(err, PlatformError::BadDeviceTree(0x4000_0000));
    assert_eq!(
        err.to_string(),
        "no valid device tree at 0x40000000 (x0 at entry)"
    );
}

#[test]
fn header_size_is_read_only_behind_the_magic() {
    let header: [u8; 8] = VIRT_GICV3[..8].try_into().unwrap();
    assert_eq!(device_tree_size(&header), Some(VIRT_GICV3.len()));
    assert_eq!(device_tree_size(&[0, 0, 0, 0, 0, 0, 0x10, 0]), None);
}

#[test]
fn gic_interrupt_specifiers_number_spis_from_32_and_ppis_from_16() {
    assert_eq!(gic_intid(&mut [0, 1, 4].into_iter()), Some(33));
    assert_eq!(gic_intid(&mut [1, 9, 0xf04].into_iter()), Some(25));
    assert_eq!(gic_intid(&mut [2, 9, 4].into_iter()), None);
    assert_eq!(gic_intid(&mut [0, 1].into_iter()), None);
}

#[test]
fn cpu_interface_of_an_8k_or_64k_frame_is_its_start_and_of_128k_the_last_alias() {
    assert_eq!(
        contiguous_cpu_interface(range(0x801_0000, 0x2000)),
        range(0x801_0000, 0x2000)
    );
    assert_eq!(
        contiguous_cpu_interface(range(0x801_0000, 0x1_0000)),
        range(0x801_0000, 0x2000)
    );
    assert_eq!(
        contiguous_cpu_interface(range(0xf906_0000, 0x2_0000)),
        range(0xf906_f000, 0x2000)
    );
}

/// A tree with two memory nodes (one disabled), two UARTs (the first disabled, no
/// stdout-path), HVC PSCI, and CPUs with two-cell `reg`.
fn synthetic() -> Vec<u8> {
    let reserve = [FdtReserveEntry::new(0x8000_0000, 0x1_0000).unwrap()];
    let mut f = FdtWriter::new_with_mem_reserv(&reserve).unwrap();
    let root = f.begin_node("").unwrap();
    f.property_u32("#address-cells", 2).unwrap();
    f.property_u32("#size-cells", 2).unwrap();
    for (base, status) in [(0x8000_0000u64, "okay"), (0x1_0000_0000, "disabled")] {
        let m = f.begin_node(&format!("memory@{base:x}")).unwrap();
        f.property_string("device_type", "memory").unwrap();
        f.property_array_u64("reg", &[base, 0x1000_0000]).unwrap();
        f.property_string("status", status).unwrap();
        f.end_node(m).unwrap();
    }
    for (base, status, compatible) in [
        (0x1c09_0000u64, "disabled", "arm,pl011"),
        (0xe000_0000, "okay", "xlnx,xuartps"),
    ] {
        let u = f.begin_node(&format!("serial@{base:x}")).unwrap();
        f.property_string_list("compatible", vec![compatible.into()])
            .unwrap();
        f.property_array_u64("reg", &[base, 0x1000]).unwrap();
        f.property_string("status", status).unwrap();
        f.end_node(u).unwrap();
    }
    let reserved = f.begin_node("reserved-memory").unwrap();
    f.property_u32("#address-cells", 2).unwrap();
    f.property_u32("#size-cells", 2).unwrap();
    f.property_null("ranges").unwrap();
    let tfa = f.begin_node("tf-a@8ff00000").unwrap();
    f.property_array_u64("reg", &[0x8ff0_0000, 0x10_0000])
        .unwrap();
    f.property_null("no-map").unwrap();
    f.end_node(tfa).unwrap();
    let pool = f.begin_node("pool").unwrap();
    f.property_u64("size", 0x40_0000).unwrap();
    f.end_node(pool).unwrap();
    f.end_node(reserved).unwrap();
    let psci = f.begin_node("psci").unwrap();
    f.property_string("compatible", "arm,psci-1.0").unwrap();
    f.property_string("method", "hvc").unwrap();
    f.end_node(psci).unwrap();
    let cpus = f.begin_node("cpus").unwrap();
    f.property_u32("#address-cells", 2).unwrap();
    f.property_u32("#size-cells", 0).unwrap();
    for mpidr in [0x1_0000_0000u64, 0x100] {
        let c = f.begin_node(&format!("cpu@{mpidr:x}")).unwrap();
        f.property_string("device_type", "cpu").unwrap();
        f.property_u64("reg", mpidr).unwrap();
        f.end_node(c).unwrap();
    }
    f.end_node(cpus).unwrap();
    f.end_node(root).unwrap();
    f.finish().unwrap()
}

#[test]
fn disabled_memory_and_uarts_are_skipped_and_the_first_enabled_uart_is_the_console() {
    let p = parse(&synthetic());
    assert_eq!(p.memory(), &[range(0x8000_0000, 0x1000_0000)]);
    let console = p.console.expect("a console");
    assert_eq!(console.kind, UartKind::Cadence);
    assert_eq!(console.regs, range(0xe000_0000, 0x1000));
    assert_eq!(console.intid, None);
}

#[test]
fn reservations_come_from_the_reservation_block_and_reserved_memory_nodes_with_reg() {
    let p = parse(&synthetic());
    assert_eq!(
        p.reserved(),
        &[range(0x8000_0000, 0x1_0000), range(0x8ff0_0000, 0x10_0000)]
    );
}

#[test]
fn qemu_and_debian_trees_reserve_nothing() {
    for dtb in [VIRT_GICV3, VIRT_GICV2, ZCU102, ZCU102_QEMU] {
        assert_eq!(parse(dtb).reserved(), &[]);
    }
}

#[test]
fn hvc_conduit_two_cell_cpu_ids_and_no_gic_or_timer_are_read_as_given() {
    let p = parse(&synthetic());
    assert_eq!(p.psci, Conduit::Hvc);
    assert_eq!(p.cpus(), &[0x1_0000_0000, 0x100]);
    assert_eq!(p.gic, None);
    assert_eq!(p.timer, None);
    assert_eq!(p.initrd, None);
}
#[test]
fn zcu102_tree_as_qemu_edits_it_keeps_chosen_console_gic_and_gains_one_ram_range_and_the_initrd() {
    let p = parse(ZCU102_QEMU);
    assert_eq!(p.memory(), &[range(0, 0x8000_0000)]);
    assert_eq!(p.initrd, Some(range(0x800_0000, 0x1_6942)));
    assert_eq!(p.console.map(|u| u.regs.base), Some(0xff00_0000));
    assert!(matches!(p.gic, Some(Gic::V2(_))));
    assert_eq!(p.cpus(), &[0, 1, 2, 3]);
}

#[test]
fn stdout_path_alias_is_followed_not_just_the_first_uart() {
    // serial1 is the second Cadence UART: only the alias leads there.
    let mut dtb = ZCU102.to_vec();
    let from = b"serial0:115200n8";
    let at = dtb.windows(from.len()).position(|w| w == from).unwrap();
    dtb[at + 6] = b'1';
    let p = parse(&dtb);
    assert_eq!(p.console.map(|u| u.regs), Some(range(0xff01_0000, 0x1000)));
    assert_eq!(p.console.and_then(|u| u.intid), Some(32 + 22));
}

#[test]
fn nodes_are_found_by_path_with_or_without_their_unit_address() {
    let tree = fdt::Tree::new(ZCU102).unwrap();
    let by_address = tree.find("/axi/serial@ff010000").unwrap();
    assert_eq!(by_address.name(), "serial@ff010000");
    assert_eq!(tree.find("/axi/serial").unwrap().name(), "serial@ff000000");
    assert!(tree.find("/serial@ff000000").is_none());
    assert!(tree.find("/axi/serial@ff000000/x").is_none());
    assert_eq!(tree.find("/").unwrap().name(), "");
}

#[test]
fn every_truncation_of_a_tree_parses_without_panicking() {
    for len in (0..ZCU102_QEMU.len()).step_by(61) {
        let mut blob = ZCU102_QEMU[..len].to_vec();
        if len >= 8 {
            // Claim the truncated length, so the blocks, not the header, run short.
            blob[4..8].copy_from_slice(&(len as u32).to_be_bytes());
        }
        let _ = Platform::parse(&blob, 0);
    }
}

#[test]
fn a_tree_whose_blocks_lie_beyond_it_is_refused() {
    let mut blob = VIRT_GICV3.to_vec();
    // off_dt_struct past the end.
    blob[8..12].copy_from_slice(&0x00ff_0000u32.to_be_bytes());
    assert_eq!(
        Platform::parse(&blob, 0x1000).unwrap_err(),
        PlatformError::BadDeviceTree(0x1000)
    );
}

#[test]
fn a_self_test_is_named_by_the_bootargs_and_unknown_names_are_none() {
    assert_eq!(
        SelfTest::from_bootargs("console=x moat.self-test=el2-stack-overflow"),
        Some(SelfTest::El2StackOverflow)
    );
    assert_eq!(SelfTest::from_bootargs("moat.self-test=reboot"), None);
    assert_eq!(
        SelfTest::from_bootargs("moat.self-test=stop-vm:1"),
        Some(SelfTest::StopVm(1))
    );
    for bad in [
        "stop-vm",
        "stop-vm:",
        "stop-vm:x",
        "stop-vm:256",
        "el2-stack-overflow:1",
    ] {
        assert_eq!(
            SelfTest::from_bootargs(&format!("moat.self-test={bad}")),
            None,
            "{bad}"
        );
    }
    assert_eq!(
        SelfTest::from_bootargs("xmoat.self-test=el2-stack-overflow"),
        None
    );
    assert_eq!(SelfTest::from_bootargs(""), None);
    for dtb in [VIRT_GICV3, VIRT_GICV2, ZCU102, ZCU102_QEMU] {
        assert_eq!(parse(dtb).self_test, None);
    }
}

#[test]
fn the_self_test_is_read_from_chosen_bootargs() {
    let mut f = FdtWriter::new().unwrap();
    let root = f.begin_node("").unwrap();
    let chosen = f.begin_node("chosen").unwrap();
    f.property_string("bootargs", "moat.self-test=el2-stack-overflow")
        .unwrap();
    f.end_node(chosen).unwrap();
    f.end_node(root).unwrap();
    let dtb = f.finish().unwrap();
    assert_eq!(parse(&dtb).self_test, Some(SelfTest::El2StackOverflow));
}

const VIRT_SMMUV3: &[u8] = include_bytes!("../testdata/qemu-virt-smmuv3.dtb");
const VIRT_SMMUV3_HIGHMEM: &[u8] = include_bytes!("../testdata/qemu-virt-smmuv3-highmem.dtb");

/// QEMU `virt`'s SMMUv3: 128 KiB of registers at 0x905_0000, edge-triggered SPIs 74..77
/// named eventq, priq, cmdq-sync, gerror (INTIDs 106..109).
const VIRT_SMMU: pci::SmmuV3 = pci::SmmuV3 {
    regs: PhysRange {
        base: 0x905_0000,
        size: 0x2_0000,
    },
    phandle: Some(0x8005),
    eventq: Some(106),
    priq: Some(107),
    cmdq_sync: Some(108),
    gerror: Some(109),
};

#[test]
fn virt_smmuv3_node_gives_registers_phandle_and_its_four_named_interrupts() {
    assert_eq!(parse(VIRT_SMMUV3).smmu, Some(VIRT_SMMU));
    assert_eq!(parse(VIRT_SMMUV3_HIGHMEM).smmu, Some(VIRT_SMMU));
}

#[test]
fn virt_without_iommu_has_a_pci_host_but_no_smmu() {
    let p = parse(VIRT_GICV3);
    assert_eq!(p.smmu, None);
    assert!(p.pci.is_some());
}

#[test]
fn virt_highmem_off_pci_host_has_low_ecam_16_buses_io_and_32_bit_windows() {
    use pci::{Window, WindowKind};
    let host = parse(VIRT_SMMUV3).pci.expect("a PCIe host bridge");
    assert_eq!(host.ecam, range(0x3f00_0000, 0x100_0000));
    assert_eq!(host.buses, (0, 15));
    let windows: Vec<Window> = host.windows().collect();
    assert_eq!(
        windows,
        [
            Window {
                kind: WindowKind::Io,
                pci: 0,
                cpu: range(0x3eff_0000, 0x1_0000),
            },
            Window {
                kind: WindowKind::Mem32 {
                    prefetchable: false
                },
                pci: 0x1000_0000,
                cpu: range(0x1000_0000, 0x2eff_0000),
            },
        ]
    );
    assert_eq!(
        host.window(WindowKind::Mem64 {
            prefetchable: false
        }),
        None
    );
}

#[test]
fn virt_highmem_pci_host_has_high_ecam_256_buses_and_the_64_bit_window_at_512g() {
    use pci::{Window, WindowKind};
    let host = parse(VIRT_SMMUV3_HIGHMEM).pci.expect("a PCIe host bridge");
    assert_eq!(host.ecam, range(0x40_1000_0000, 0x1000_0000));
    assert_eq!(host.buses, (0, 0xff));
    assert_eq!(
        host.window(WindowKind::Mem64 {
            prefetchable: false
        }),
        Some(Window {
            kind: WindowKind::Mem64 {
                prefetchable: false
            },
            pci: 0x80_0000_0000,
            cpu: range(0x80_0000_0000, 0x80_0000_0000),
        })
    );
    assert_eq!(host.windows().count(), 3);
    let kinds: Vec<String> = host.windows().map(|w| w.kind.to_string()).collect();
    assert_eq!(kinds, ["I/O", "32-bit memory", "64-bit memory"]);
    assert_eq!(
        WindowKind::Mem64 { prefetchable: true }.to_string(),
        "64-bit memory, prefetchable"
    );
}

#[test]
fn virt_intx_of_slot_d_pin_p_is_spi_3_plus_d_plus_p_minus_1_mod_4() {
    // QEMU virt: INTA of slot 0 on SPI 3 (INTID 35), rotated by one SPI per slot, repeating
    // every four slots (the interrupt-map-mask keeps device bits 1:0 and the pin).
    let host = parse(VIRT_SMMUV3).pci.expect("a PCIe host bridge");
    for device in 0..32u8 {
        for pin in 1..=4u32 {
            let expected = 32 + 3 + (u32::from(device) + pin - 1) % 4;
            assert_eq!(
                host.intx_intid(0, device, pin),
                Some(expected),
                "{device}.{pin}"
            );
        }
    }
    assert_eq!(host.intx_intid(0, 1, 0), None, "pin 0: no interrupt pin");
    assert_eq!(host.intx_intid(0, 1, 5), None, "pins are 1..=4");
    assert_eq!(
        host.intx_intid(1, 0, 1),
        Some(35),
        "the mask (0x1800) drops the bus number"
    );
}

#[test]
fn virt_requester_ids_are_stream_ids_at_the_smmu() {
    let host = parse(VIRT_SMMUV3).pci.expect("a PCIe host bridge");
    let map = host.iommu_map.expect("an iommu-map");
    assert_eq!(Some(map.iommu), VIRT_SMMU.phandle);
    assert_eq!(host.stream_id(0x0008), Some(0x0008), "00:01.0");
    assert_eq!(host.stream_id(0xffff), Some(0xffff));
}

#[test]
fn ecam_buses_are_the_bus_range_cut_to_the_region() {
    let host = parse(VIRT_SMMUV3).pci.expect("a PCIe host bridge");
    assert_eq!(host.ecam_buses(), Some((0, 15)));
    let high = parse(VIRT_SMMUV3_HIGHMEM).pci.expect("a PCIe host bridge");
    assert_eq!(high.ecam_buses(), Some((0, 255)));
    let small = pci::PciHost {
        ecam: range(0x3f00_0000, 0x20_0000),
        ..host
    };
    assert_eq!(
        small.ecam_buses(),
        Some((0, 1)),
        "2 MiB: two buses whatever bus-range says"
    );
    let shifted = pci::PciHost {
        buses: (0x10, 0x1f),
        ..small
    };
    assert_eq!(shifted.ecam_buses(), Some((0x10, 0x11)));
    let none = pci::PciHost {
        ecam: range(0x3f00_0000, 0x8_0000),
        ..host
    };
    assert_eq!(none.ecam_buses(), None, "half a bus");
    let backwards = pci::PciHost {
        buses: (5, 2),
        ..host
    };
    assert_eq!(backwards.ecam_buses(), None);
}

/// The `platform` fuzz target's finding: a `/chosen` whose initrd ends before it starts has no
/// initrd (before, the size was computed, and overflowed, whatever the comparison said).
#[test]
fn an_initrd_that_ends_before_it_starts_is_no_initrd() {
    let mut f = FdtWriter::new().unwrap();
    let root = f.begin_node("").unwrap();
    let chosen = f.begin_node("chosen").unwrap();
    f.property_u64("linux,initrd-start", 0x4800_0000).unwrap();
    f.property_u64("linux,initrd-end", 0x4000_0000).unwrap();
    f.end_node(chosen).unwrap();
    f.end_node(root).unwrap();
    let dtb = f.finish().unwrap();
    assert_eq!(parse(&dtb).initrd, None);
}

/// A tree like [`synthetic`]'s but with a GIC-400 whose node gives the maintenance interrupt
/// `interrupts` (type, number, flags).
fn gic_400_with_interrupts(interrupts: [u32; 3]) -> Vec<u8> {
    let mut f = FdtWriter::new().unwrap();
    let root = f.begin_node("").unwrap();
    f.property_u32("#address-cells", 2).unwrap();
    f.property_u32("#size-cells", 2).unwrap();
    let gic = f.begin_node("interrupt-controller@f9010000").unwrap();
    f.property_string_list("compatible", vec!["arm,gic-400".into()])
        .unwrap();
    f.property_array_u64(
        "reg",
        &[
            0xf901_0000,
            0x1_0000,
            0xf902_0000,
            0x2_0000,
            0xf904_0000,
            0x2_0000,
            0xf906_0000,
            0x2_0000,
        ],
    )
    .unwrap();
    f.property_array_u32("interrupts", &interrupts).unwrap();
    f.end_node(gic).unwrap();
    f.end_node(root).unwrap();
    f.finish().unwrap()
}

#[test]
fn the_maintenance_interrupt_is_the_gic_nodes_first_interrupt_on_virt_and_the_zcu102() {
    // QEMU virt (GICv3 and GICv2) and the ZynqMP: <GIC_PPI 9 ...>, INTID 25.
    for dtb in [VIRT_GICV3, VIRT_GICV2, ZCU102, ZCU102_QEMU] {
        let gic = parse(dtb).gic.expect("a GIC");
        assert_eq!(gic.maintenance(), Some(25));
    }
    // Read, not assumed: PPI 4 (flags: level, all CPUs) is INTID 20.
    let gic = parse(&gic_400_with_interrupts([1, 4, 0xf04])).gic;
    assert_eq!(gic.and_then(|g| g.maintenance()), Some(20));
}

#[test]
fn a_maintenance_interrupt_that_is_no_ppi_is_none() {
    // An SPI (type 0), a PPI number beyond the 16 PPIs, an unknown type.
    for interrupts in [[0, 9, 4], [1, 16, 4], [2, 9, 4]] {
        let gic = parse(&gic_400_with_interrupts(interrupts)).gic;
        assert!(matches!(gic, Some(Gic::V2(_))), "{interrupts:?}");
        assert_eq!(gic.and_then(|g| g.maintenance()), None, "{interrupts:?}");
    }
}

/// Moat's image as a loader places it: `base` and a size like the release build's.
fn image_at(base: u64) -> PhysRange {
    range(base, 0x6_0000)
}

/// The free ranges as `(base, end)` pairs, for readable failures.
fn free_spans(a: &PhysAllocator) -> Vec<(u64, u64)> {
    a.free_ranges().iter().map(|r| (r.base, r.end())).collect()
}

#[test]
fn on_virt_all_ram_is_free_but_the_image_the_tree_and_the_bundle() {
    // QEMU virt's `-kernel`: the tree at RAM's base, Moat at base + 2 MiB, the initrd above.
    let p = parse(VIRT_GICV3);
    let dtb_end = 0x4000_0000 + VIRT_GICV3.len() as u64;
    let a = PhysAllocator::new(&p, image_at(0x4020_0000));
    assert_eq!(
        free_spans(&a),
        [
            (dtb_end, 0x4020_0000),
            (0x4026_0000, 0x4800_0000),
            (0x4801_6942, 0x6000_0000),
        ]
    );
    assert_eq!(
        a.free_bytes(),
        0x2000_0000 - 0x6_0000 - VIRT_GICV3.len() as u64 - 0x1_6942
    );
}

#[test]
fn an_image_loaded_high_keeps_no_ram_below_it() {
    // U-Boot's `booti` at 0x4c200000: the 194 MiB between RAM's base and Moat are free.
    let p = parse(VIRT_GICV3);
    let a = PhysAllocator::new(&p, image_at(0x4c20_0000));
    let dtb_end = 0x4000_0000 + VIRT_GICV3.len() as u64;
    assert_eq!(
        free_spans(&a),
        [
            (dtb_end, 0x4800_0000),
            (0x4801_6942, 0x4c20_0000),
            (0x4c26_0000, 0x6000_0000),
        ]
    );
}

#[test]
fn on_the_zcu102_ram_from_address_0_is_free_up_to_the_image() {
    // QEMU's `xlnx-zcu102` with `-m 2G`: Moat at 0x200000 (RAM base + text_offset), the
    // initrd at 0x8000000; the tree where a loader put it, here at 0x7fe0_0000.
    let p = Platform::parse(ZCU102_QEMU, 0x7fe0_0000).expect("a valid device tree");
    let a = PhysAllocator::new(&p, image_at(0x20_0000));
    let dtb_end = 0x7fe0_0000 + ZCU102_QEMU.len() as u64;
    assert_eq!(
        free_spans(&a),
        [
            (0, 0x20_0000),
            (0x26_0000, 0x800_0000),
            (0x801_6942, 0x7fe0_0000),
            (dtb_end, 0x8000_0000),
        ]
    );
}

#[test]
fn the_firmwares_reservations_are_kept_out_and_nothing_else() {
    // RAM [0x8000_0000, 0x9000_0000), a /memreserve/ of its first 64 KiB, TF-A's no-map
    // node at 0x8ff0_0000; the tree itself outside RAM; no initrd.
    let p = parse(&synthetic());
    let a = PhysAllocator::new(&p, image_at(0x8020_0000));
    assert_eq!(
        free_spans(&a),
        [(0x8001_0000, 0x8020_0000), (0x8026_0000, 0x8ff0_0000)]
    );
    assert_eq!(
        p.boot_reservations(image_at(0x8020_0000)),
        [image_at(0x8020_0000), p.dtb, PhysRange::default()]
    );
}

#[test]
fn blocks_come_from_the_top_aligned_and_a_block_too_large_is_refused() {
    let p = Platform::parse(ZCU102_QEMU, 0x7fe0_0000).expect("a valid device tree");
    let mut a = PhysAllocator::new(&p, image_at(0x20_0000));
    // The last page of RAM, above the tree; then a 2 MiB block, which fits only below it.
    assert_eq!(a.alloc(0x1000, 0x1000), Ok(0x7fff_f000));
    assert_eq!(a.alloc(0x20_0000, 0x20_0000), Ok(0x7fc0_0000));
    let before = a.free_bytes();
    assert_eq!(
        a.alloc(0x8000_0000, 0x1000),
        Err(OutOfMemory {
            size: 0x8000_0000,
            align: 0x1000
        })
    );
    assert_eq!(a.free_bytes(), before);
}
