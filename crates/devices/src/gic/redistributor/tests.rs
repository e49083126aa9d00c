//! Redistributor register tests: `RD_base` and `SGI_base` facts, per vCPU.

use super::*;
use crate::gic::tests::{enable, linux_gic};
use crate::gic::{IrqRef, VirtGic};

const SGI_BASE: u64 = reg::SGI_BASE;
const ISENABLER0: u64 = SGI_BASE + 0x100;
const ICENABLER0: u64 = SGI_BASE + 0x180;
const ISPENDR0: u64 = SGI_BASE + 0x200;
const IGROUPR0: u64 = SGI_BASE + 0x080;
const IPRIORITYR0: u64 = SGI_BASE + 0x400;
const ICFGR0: u64 = SGI_BASE + 0xC00;
const ICFGR1: u64 = SGI_BASE + 0xC04;

fn read(gic: &mut VirtGic, vcpu: u64, offset: u64) -> u64 {
    let access = Access::read(vcpu * REDISTRIBUTOR_STRIDE + offset, 4);
    gic.redistributor_access(access).0
}

fn write(gic: &mut VirtGic, vcpu: u64, offset: u64, value: u64) -> VcpuSet {
    let access = Access::write(vcpu * REDISTRIBUTOR_STRIDE + offset, 4, value);
    gic.redistributor_access(access).1.kick
}

#[test]
fn gicr_typer_reports_affinity_processor_number_and_last_on_the_last() {
    let mut gic = VirtGic::new(3).unwrap();
    let cases = [
        (0, 0x0000_0000_0000_0000),
        (1, 0x0000_0001_0000_0100),
        (2, 0x0000_0002_0000_0210),
    ];
    for (vcpu, typer) in cases {
        let access = Access::read(vcpu * REDISTRIBUTOR_STRIDE + reg::TYPER, 8);
        assert_eq!(gic.redistributor_access(access).0, typer, "vCPU {vcpu}");
        assert_eq!(read(&mut gic, vcpu, reg::TYPER), typer & 0xFFFF_FFFF);
        assert_eq!(read(&mut gic, vcpu, reg::TYPER_HIGH), typer >> 32);
    }
}

#[test]
fn waker_resets_with_the_redistributor_asleep() {
    let mut gic = VirtGic::new(1).unwrap();
    assert_eq!(read(&mut gic, 0, reg::WAKER), 0b110);
    assert!(!gic.redistributor_awake(0));
}

#[test]
fn waker_clearing_processor_sleep_clears_children_asleep() {
    let mut gic = VirtGic::new(2).unwrap();
    write(&mut gic, 1, reg::WAKER, 0);
    assert_eq!(read(&mut gic, 1, reg::WAKER), 0);
    assert_eq!(read(&mut gic, 0, reg::WAKER), 0b110, "vCPU 0's is separate");
    write(&mut gic, 1, reg::WAKER, 0b010);
    assert_eq!(read(&mut gic, 1, reg::WAKER), 0b110);
}

#[test]
fn identification_and_control_registers_read_as_an_lpi_less_gicv3_redistributor() {
    let mut gic = VirtGic::new(1).unwrap();
    let cases = [
        (0xFFE8, 0x3B), // GICR_PIDR2: ArchRev 3
        (0xFFE0, 0x93), // GICR_PIDR0
        (0xFFF4, 0xF0), // GICR_CIDR1
        (reg::IIDR, 0x43B),
        (reg::CTLR, 0), // EnableLPIs RES0, RWP 0
        (reg::STATUSR, 0),
        (0x0070, 0), // GICR_PROPBASER
        (0x0078, 0), // GICR_PENDBASER
    ];
    for (offset, value) in cases {
        write(&mut gic, 0, offset, 0xFFFF_FFFF);
        assert_eq!(read(&mut gic, 0, offset), value, "offset {offset:#x}");
    }
}

#[test]
fn sgi_frame_registers_are_banked_per_vcpu() {
    let mut gic = VirtGic::new(2).unwrap();
    write(&mut gic, 1, ISENABLER0, 0x0800_0001);
    assert_eq!(read(&mut gic, 1, ISENABLER0), 0x0800_0001);
    assert_eq!(read(&mut gic, 0, ISENABLER0), 0);
    write(&mut gic, 1, ICENABLER0, 0x1);
    assert_eq!(read(&mut gic, 1, ICENABLER0), 0x0800_0000);
    write(&mut gic, 0, IGROUPR0, 0xFFFF_FFFF);
    assert_eq!(read(&mut gic, 0, IGROUPR0), 0xFFFF_FFFF);
    assert_eq!(read(&mut gic, 1, IGROUPR0), 0);
}

#[test]
fn ipriorityr0_to_7_cover_the_private_interrupts_bytewise() {
    let mut gic = VirtGic::new(1).unwrap();
    write(&mut gic, 0, IPRIORITYR0 + 0x1C, 0xA0B0_C0D0);
    let access = Access::read(IPRIORITYR0 + 0x1F, 1);
    assert_eq!(gic.redistributor_access(access).0, 0xA0);
    assert_eq!(
        gic.irq(IrqRef::Private { vcpu: 0, intid: 28 }).priority,
        0xD0
    );
    // IPRIORITYR8 would be INTID 32: not in a redistributor.
    write(&mut gic, 0, IPRIORITYR0 + 0x20, 0xFFFF_FFFF);
    assert_eq!(read(&mut gic, 0, IPRIORITYR0 + 0x20), 0);
}

#[test]
fn icfgr0_says_sgis_are_edge_triggered_and_ignores_writes() {
    let mut gic = VirtGic::new(1).unwrap();
    write(&mut gic, 0, ICFGR0, 0);
    assert_eq!(read(&mut gic, 0, ICFGR0), 0xAAAA_AAAA);
}

#[test]
fn icfgr1_programs_ppi_trigger_modes() {
    let mut gic = VirtGic::new(1).unwrap();
    assert_eq!(read(&mut gic, 0, ICFGR1), 0, "PPIs reset level-sensitive");
    write(&mut gic, 0, ICFGR1, 0x8000_0002);
    assert_eq!(read(&mut gic, 0, ICFGR1), 0x8000_0002);
    assert!(gic.irq(IrqRef::Private { vcpu: 0, intid: 31 }).edge);
}

#[test]
fn igrpmodr0_and_nsacr_are_raz_wi_with_one_security_state() {
    let mut gic = VirtGic::new(1).unwrap();
    for offset in [SGI_BASE + 0xD00, SGI_BASE + 0xE00] {
        write(&mut gic, 0, offset, 0xFFFF_FFFF);
        assert_eq!(read(&mut gic, 0, offset), 0);
    }
}

#[test]
fn redistributors_past_the_last_vcpu_read_as_zero() {
    let mut gic = VirtGic::new(2).unwrap();
    assert_eq!(read(&mut gic, 2, 0xFFE8), 0);
    write(&mut gic, 2, ISENABLER0, 0xFFFF_FFFF);
    assert_eq!(read(&mut gic, 2, ISENABLER0), 0);
}

#[test]
fn wrong_sizes_and_alignments_are_raz_wi() {
    let mut gic = VirtGic::new(1).unwrap();
    let cases = [
        Access::read(reg::TYPER + 4, 8),
        Access::read(reg::WAKER, 2),
        Access::read(reg::WAKER, 8),
        Access::read(reg::WAKER + 1, 4),
        Access::read(ISENABLER0, 8),
        Access::read(ISENABLER0 + 1, 1),
    ];
    write(&mut gic, 0, ISENABLER0, 0xFFFF_FFFF);
    for access in cases {
        assert_eq!(gic.redistributor_access(access).0, 0, "{access:?}");
    }
    let typer_write = Access::write(reg::TYPER, 8, u64::MAX);
    assert_eq!(gic.redistributor_access(typer_write).0, 0);
}

#[test]
fn sgi_pended_through_ispendr0_kicks_its_vcpu_once_enabled() {
    let mut gic = linux_gic(2);
    assert!(write(&mut gic, 1, ISPENDR0, 0x8).is_empty(), "disabled");
    assert_eq!(write(&mut gic, 1, ISENABLER0, 0x8), VcpuSet::single(1));
    assert!(
        write(&mut gic, 1, ISPENDR0, 0x8).is_empty(),
        "already pending: nothing new for vCPU 1"
    );
}

#[test]
fn waking_a_redistributor_moves_one_of_n_spis_to_it() {
    let mut gic = linux_gic(2);
    gic.redists[0].processor_sleep = true;
    gic.redists[1].processor_sleep = true;
    let _ = gic.resummarise();
    enable(&mut gic, 0, 40);
    gic.distributor_access(Access::write(0x6000 + 8 * 40, 8, 1 << 31));
    gic.set_spi_level(40, true);
    assert_eq!(write(&mut gic, 1, reg::WAKER, 0), VcpuSet::single(1));
    assert!(gic.has_deliverable(1));
}
