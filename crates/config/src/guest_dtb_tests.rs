//! The generated guest device tree, read back with the `fdt` crate.

use fdt::Fdt;
use fdt::node::FdtNode;
use moat_arm::addr::Ipa;

use super::*;

fn dtb(vm: &VmConfig) -> Vec<u8> {
    generate_guest_dtb(vm, None).unwrap()
}

fn strings<'a>(node: FdtNode<'_, 'a>, name: &str) -> Vec<&'a str> {
    let value = node
        .property(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .value;
    let text = core::str::from_utf8(value).unwrap().trim_end_matches('\0');
    text.split('\0').collect()
}

fn u32s(node: FdtNode<'_, '_>, name: &str) -> Vec<u32> {
    let value = node
        .property(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .value;
    value
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect()
}

/// `reg` as (base, size) pairs of 2 cells each.
fn regs(node: FdtNode<'_, '_>) -> Vec<(u64, u64)> {
    let cells = u32s(node, "reg");
    let pairs = cells.chunks(4).map(|c| {
        (
            (u64::from(c[0]) << 32) | u64::from(c[1]),
            (u64::from(c[2]) << 32) | u64::from(c[3]),
        )
    });
    pairs.collect()
}

#[test]
fn root_is_a_dummy_virt_with_two_cell_addresses() {
    let blob = dtb(&VmConfig::default_virt());
    let fdt = Fdt::new(&blob).unwrap();
    let root = fdt.find_node("/").unwrap();
    assert_eq!(strings(root, "compatible"), ["linux,dummy-virt"]);
    assert_eq!(u32s(root, "#address-cells"), [2]);
    assert_eq!(u32s(root, "#size-cells"), [2]);
}

#[test]
fn every_ram_region_gets_a_memory_node() {
    let mut vm = VmConfig::default_virt();
    vm.ram.push(RamRegion {
        base: Ipa(0x1_0000_0000),
        size: 0x20_0000,
    });
    let blob = dtb(&vm);
    let fdt = Fdt::new(&blob).unwrap();
    let first = fdt.find_node("/memory@40000000").unwrap();
    assert_eq!(strings(first, "device_type"), ["memory"]);
    assert_eq!(regs(first), [(0x4000_0000, 128 << 20)]);
    let second = fdt.find_node("/memory@100000000").unwrap();
    assert_eq!(regs(second), [(0x1_0000_0000, 0x20_0000)]);
}

#[test]
fn each_vcpu_gets_a_cpu_node_with_its_affinity() {
    let mut vm = VmConfig::default_virt();
    vm.cpus = 3;
    let blob = dtb(&vm);
    let fdt = Fdt::new(&blob).unwrap();
    let cpus = fdt.find_node("/cpus").unwrap();
    assert_eq!(
        (u32s(cpus, "#address-cells"), u32s(cpus, "#size-cells")),
        (vec![1], vec![0])
    );
    let nodes: Vec<FdtNode<'_, '_>> = cpus.children().collect();
    assert_eq!(nodes.len(), 3);
    for (n, cpu) in nodes.into_iter().enumerate() {
        assert_eq!(cpu.name, format!("cpu@{n}"));
        assert_eq!(u32s(cpu, "reg"), [n as u32]);
        assert_eq!(strings(cpu, "device_type"), ["cpu"]);
        assert_eq!(strings(cpu, "compatible"), ["arm,armv8"]);
        assert_eq!(strings(cpu, "enable-method"), ["psci"]);
    }
}

#[test]
fn a_single_vcpu_has_no_enable_method() {
    let blob = dtb(&VmConfig::default_virt());
    let fdt = Fdt::new(&blob).unwrap();
    let cpu = fdt.find_node("/cpus/cpu@0").unwrap();
    assert!(cpu.property("enable-method").is_none());
}

#[test]
fn psci_is_reached_by_hvc() {
    let blob = dtb(&VmConfig::default_virt());
    let fdt = Fdt::new(&blob).unwrap();
    let psci = fdt.find_node("/psci").unwrap();
    assert_eq!(
        strings(psci, "compatible"),
        ["arm,psci-1.0", "arm,psci-0.2"]
    );
    assert_eq!(strings(psci, "method"), ["hvc"]);
}

#[test]
fn pl011_is_described_as_qemu_virt_does_with_its_24mhz_clock() {
    let blob = dtb(&VmConfig::default_virt());
    let fdt = Fdt::new(&blob).unwrap();
    let uart = fdt.find_node("/pl011@9000000").unwrap();
    assert_eq!(strings(uart, "compatible"), ["arm,pl011", "arm,primecell"]);
    assert_eq!(regs(uart), [(0x0900_0000, 0x1000)]);
    assert_eq!(strings(uart, "clock-names"), ["uartclk", "apb_pclk"]);
    let clocks = u32s(uart, "clocks");
    assert_eq!(clocks.len(), 2);
    let clock = fdt.find_phandle(clocks[0]).unwrap();
    assert_eq!(clock.name, "apb-pclk");
    assert_eq!(strings(clock, "compatible"), ["fixed-clock"]);
    assert_eq!(u32s(clock, "clock-frequency"), [24_000_000]);
    assert_eq!(u32s(clock, "#clock-cells"), [0]);
}

#[test]
fn chosen_has_bootargs_and_the_pl011_as_stdout() {
    let mut vm = VmConfig::default_virt();
    vm.bootargs = "console=ttyAMA0 earlycon".into();
    let blob = dtb(&vm);
    let fdt = Fdt::new(&blob).unwrap();
    assert_eq!(fdt.chosen().bootargs(), Some("console=ttyAMA0 earlycon"));
    assert_eq!(fdt.chosen().stdout().unwrap().name, "pl011@9000000");
}

#[test]
fn default_vm_tree_describes_the_emulated_gic_as_the_interrupt_parent() {
    let blob = dtb(&VmConfig::default_virt());
    let fdt = Fdt::new(&blob).unwrap();
    let intc = fdt.find_node("/intc@8000000").expect("the GICv3 node");
    assert!(intc.compatible().unwrap().all().any(|c| c == "arm,gic-v3"));
    assert!(fdt.find_node("/timer").is_some(), "the architected timer");
}

#[test]
fn a_vm_without_uart_has_no_clock_and_no_stdout_path() {
    let mut vm = VmConfig::default_virt();
    vm.devices.retain(|d| d.kind != DeviceKind::Pl011);
    let blob = dtb(&vm);
    let fdt = Fdt::new(&blob).unwrap();
    assert!(fdt.find_node("/apb-pclk").is_none());
    assert!(
        fdt.find_node("/chosen")
            .unwrap()
            .property("stdout-path")
            .is_none()
    );
}

#[test]
fn a_nul_in_bootargs_is_an_error_not_a_truncated_string() {
    let mut vm = VmConfig::default_virt();
    vm.bootargs = "console=ttyAMA0\0init=/evil".into();
    assert_eq!(
        generate_guest_dtb(&vm, None),
        Err(GuestDtbError::Fdt(vm_fdt::Error::InvalidString))
    );
}

/// The tree with the GIC's nodes on, as when Moat emulates the GIC.
fn dtb_with_gic(vm: &VmConfig) -> Vec<u8> {
    generate(vm, None, true).unwrap()
}

#[test]
fn with_the_gic_the_root_points_at_an_arm_gic_v3_intc() {
    let blob = dtb_with_gic(&VmConfig::default_virt());
    let fdt = Fdt::new(&blob).unwrap();
    let root = fdt.find_node("/").unwrap();
    let parent = u32s(root, "interrupt-parent");
    let intc = fdt.find_phandle(parent[0]).unwrap();
    assert_eq!(intc.name, "intc@8000000");
    assert_eq!(strings(intc, "compatible"), ["arm,gic-v3"]);
    assert_eq!(u32s(intc, "#interrupt-cells"), [3]);
    assert!(intc.property("interrupt-controller").is_some());
    assert!(
        intc.property("interrupts").is_none(),
        "no maintenance IRQ: no EL2"
    );
}

#[test]
fn gic_reg_is_the_distributor_and_one_128k_redistributor_per_vcpu() {
    let mut vm = VmConfig::default_virt();
    vm.cpus = 2;
    let mut redist = vm.devices.iter_mut();
    let redist = redist.find(|d| d.kind == DeviceKind::GicV3Redistributors);
    redist.unwrap().size = 0xf6_0000;
    let blob = dtb_with_gic(&vm);
    let fdt = Fdt::new(&blob).unwrap();
    let intc = fdt.find_node("/intc@8000000").unwrap();
    assert_eq!(
        regs(intc),
        [(0x0800_0000, 0x1_0000), (0x080a_0000, 2 * 0x2_0000)]
    );
}

#[test]
fn a_gicv2_vm_sees_an_arm_cortex_a15_gic_with_its_distributor_and_8k_cpu_interface() {
    let mut vm = VmConfig::default_virt();
    vm.cpus = 2;
    vm.use_gic_v2();
    let blob = dtb_with_gic(&vm);
    let fdt = Fdt::new(&blob).unwrap();
    let intc = fdt.find_node("/intc@8000000").unwrap();
    assert_eq!(strings(intc, "compatible"), ["arm,cortex-a15-gic"]);
    assert_eq!(regs(intc), [(0x0800_0000, 0x1_0000), (0x0801_0000, 0x2000)]);
    // The timer's PPIs name both vCPUs' interfaces in the flags cell's CPU mask.
    let timer = fdt.find_node("/timer").unwrap();
    assert_eq!(u32s(timer, "interrupts")[..3], [1, 13, 0x304]);
}

#[test]
fn timer_has_the_four_ppis_of_qemu_virt_level_high() {
    let blob = dtb_with_gic(&VmConfig::default_virt());
    let fdt = Fdt::new(&blob).unwrap();
    let timer = fdt.find_node("/timer").unwrap();
    assert_eq!(
        strings(timer, "compatible"),
        ["arm,armv8-timer", "arm,armv7-timer"]
    );
    assert_eq!(
        u32s(timer, "interrupts"),
        [1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]
    );
    assert!(timer.property("always-on").is_some());
}

#[test]
fn with_the_gic_the_pl011_has_spi_1() {
    let blob = dtb_with_gic(&VmConfig::default_virt());
    let fdt = Fdt::new(&blob).unwrap();
    let uart = fdt.find_node("/pl011@9000000").unwrap();
    assert_eq!(u32s(uart, "interrupts"), [0, 1, 4]);
    let mut no_gic = VmConfig::default_virt();
    no_gic.devices.retain(|d| d.kind == DeviceKind::Pl011);
    let without = dtb(&no_gic);
    let fdt = Fdt::new(&without).unwrap();
    let uart = fdt.find_node("/pl011@9000000").unwrap();
    assert!(uart.property("interrupts").is_none());
}

#[test]
fn a_vm_without_gic_windows_gets_no_gic_nodes_even_when_asked() {
    let mut vm = VmConfig::default_virt();
    vm.devices.retain(|d| d.kind == DeviceKind::Pl011);
    let blob = dtb_with_gic(&vm);
    let fdt = Fdt::new(&blob).unwrap();
    assert!(fdt.find_node("/timer").is_none());
    assert!(
        fdt.find_node("/")
            .unwrap()
            .property("interrupt-parent")
            .is_none()
    );
}

#[test]
fn a_virtio_net_device_is_a_virtio_mmio_node_with_spi_16_and_up() {
    let mut vm = VmConfig::default_virt();
    for (n, peer) in [(0u64, "b"), (1, "c")] {
        vm.devices.push(DeviceWindow {
            kind: DeviceKind::VirtioNet,
            base: Ipa(0x0a00_0000 + 0x1000 * n),
            size: crate::schema::VIRTIO_NET_SIZE,
            link: Some(peer.into()),
        });
    }
    let blob = dtb_with_gic(&vm);
    let fdt = Fdt::new(&blob).unwrap();
    for (n, name) in ["/virtio_mmio@a000000", "/virtio_mmio@a001000"]
        .iter()
        .enumerate()
    {
        let node = fdt.find_node(name).unwrap();
        assert_eq!(strings(node, "compatible"), ["virtio,mmio"]);
        assert_eq!(regs(node), [(0x0a00_0000 + 0x1000 * n as u64, 0x1000)]);
        assert_eq!(u32s(node, "interrupts"), [0, 16 + n as u32, 4]);
        assert!(node.property("dma-coherent").is_some());
    }
}

#[test]
fn a_vm_with_pci_functions_gets_a_generic_ecam_bridge_with_qemu_virts_windows_and_swizzle() {
    let mut vm = VmConfig::default_virt();
    assert!(
        Fdt::new(&dtb(&vm))
            .unwrap()
            .find_node("/pcie@3f000000")
            .is_none(),
        "no functions, no bridge"
    );
    vm.pci = vec!["00:01.0".parse().unwrap()];
    let blob = dtb(&vm);
    let fdt = Fdt::new(&blob).unwrap();
    let pcie = fdt.find_node("/pcie@3f000000").unwrap();
    assert_eq!(strings(pcie, "compatible"), ["pci-host-ecam-generic"]);
    assert_eq!(strings(pcie, "device_type"), ["pci"]);
    assert_eq!(regs(pcie), [(0x3f00_0000, 0x100_0000)]);
    assert_eq!(u32s(pcie, "bus-range"), [0, 15]);
    // 32-bit memory, bus address 0x1000_0000 at IPA 0x1000_0000, 0x2eff_0000 bytes.
    assert_eq!(
        u32s(pcie, "ranges"),
        [0x0200_0000, 0, 0x1000_0000, 0, 0x1000_0000, 0, 0x2eff_0000]
    );
    assert_eq!(u32s(pcie, "interrupt-map-mask"), [0x1800, 0, 0, 7]);
    let map = u32s(pcie, "interrupt-map");
    assert_eq!(map.len(), 16 * 10);
    // Slot 1 INTA (entry 4): line 1, SPI 4 (INTID 36), level-high, through the GIC.
    assert_eq!(map[40..50], [1 << 11, 0, 0, 1, GIC_PHANDLE, 0, 0, 0, 4, 4]);
    // Slot 3 INTD: line (3 + 3) mod 4 = 2, SPI 5.
    assert_eq!(
        map[150..160],
        [3 << 11, 0, 0, 4, GIC_PHANDLE, 0, 0, 0, 5, 4]
    );
}
