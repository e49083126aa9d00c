//! Scenario tests: the register sequence Linux's GICv3 driver performs when it probes the
//! distributor and brings up each CPU's redistributor (as the driver is documented to behave;
//! the offsets and values here come from IHI 0069), then interrupts flowing to list registers.

use super::list_regs::{IchVtr, ListRegister, LrState};
use super::*;
use crate::Access;

const GICD_CTLR: u64 = 0x0000;
const GICD_TYPER: u64 = 0x0004;
const GICD_IGROUPR: u64 = 0x0080;
const GICD_ISENABLER: u64 = 0x0100;
const GICD_ICENABLER: u64 = 0x0180;
const GICD_ICACTIVER: u64 = 0x0380;
const GICD_IPRIORITYR: u64 = 0x0400;
const GICD_ICFGR: u64 = 0x0C00;
const GICD_IROUTER: u64 = 0x6000;
const GICD_PIDR2: u64 = 0xFFE8;
const GICR_TYPER: u64 = 0x0008;
const GICR_WAKER: u64 = 0x0014;
const GICR_PIDR2: u64 = 0xFFE8;
const SGI_BASE: u64 = 0x1_0000;
const RWP: u64 = 1 << 31;
const CHILDREN_ASLEEP: u64 = 1 << 2;

fn rd32(gic: &mut VirtGic, offset: u64) -> u64 {
    gic.distributor_access(Access::read(offset, 4)).0
}

fn wr32(gic: &mut VirtGic, offset: u64, value: u64) {
    gic.distributor_access(Access::write(offset, 4, value));
}

fn rr(gic: &mut VirtGic, cpu: usize, offset: u64, size: u8) -> u64 {
    let base = cpu as u64 * REDISTRIBUTOR_STRIDE;
    gic.redistributor_access(Access::read(base + offset, size))
        .0
}

fn rw(gic: &mut VirtGic, cpu: usize, offset: u64, value: u64) -> VcpuSet {
    let base = cpu as u64 * REDISTRIBUTOR_STRIDE;
    gic.redistributor_access(Access::write(base + offset, 4, value))
        .1
        .kick
}

/// The distributor half of the probe: version check, disable, configure every SPI as Group 1,
/// level-sensitive, priority 0xA0, inactive and disabled, enable with affinity routing, route
/// every SPI to the boot CPU.
fn probe_distributor(gic: &mut VirtGic) {
    assert_eq!(rd32(gic, GICD_PIDR2) & 0xF0, 0x30, "GICv3");
    wr32(gic, GICD_CTLR, 0);
    assert_eq!(rd32(gic, GICD_CTLR) & RWP, 0);
    let lines = (rd32(gic, GICD_TYPER) & 0x1F) + 1;
    let irqs = (lines * 32).min(1020);
    for intid in (32..irqs).step_by(32) {
        wr32(gic, GICD_IGROUPR + intid / 8, 0xFFFF_FFFF);
        wr32(gic, GICD_ICACTIVER + intid / 8, 0xFFFF_FFFF);
        wr32(gic, GICD_ICENABLER + intid / 8, 0xFFFF_FFFF);
    }
    for intid in (32..irqs).step_by(16) {
        wr32(gic, GICD_ICFGR + intid / 4, 0);
    }
    for intid in (32..irqs).step_by(4) {
        wr32(gic, GICD_IPRIORITYR + intid, 0xA0A0_A0A0);
    }
    // ARE_NS | EnableGrp1A | EnableGrp1 in the Non-secure view's names.
    wr32(gic, GICD_CTLR, 0x13);
    assert_eq!(rd32(gic, GICD_CTLR) & 0x13, 0x13);
    for intid in 32..irqs {
        let access = Access::write(GICD_IROUTER + 8 * intid, 8, 0);
        gic.distributor_access(access);
    }
}

/// Finds CPU `mpidr`'s redistributor the way the driver walks the region, then wakes it and
/// configures its SGIs and PPIs; returns the redistributor's index.
fn bring_up_cpu(gic: &mut VirtGic, mpidr: u64) -> usize {
    let mut index = 0;
    loop {
        assert_eq!(
            rr(gic, index, GICR_PIDR2, 4) & 0xF0,
            0x30,
            "a redistributor"
        );
        let typer = rr(gic, index, GICR_TYPER, 8);
        if typer >> 32 == mpidr {
            break;
        }
        assert_eq!(
            typer & (1 << 4),
            0,
            "walked past Last without finding the CPU"
        );
        index += 1;
    }
    let waker = rr(gic, index, GICR_WAKER, 4);
    rw(gic, index, GICR_WAKER, waker & !0b10);
    assert_eq!(rr(gic, index, GICR_WAKER, 4) & CHILDREN_ASLEEP, 0);
    rw(gic, index, SGI_BASE + 0x080, 0xFFFF_FFFF);
    rw(gic, index, SGI_BASE + 0x380, 0xFFFF_FFFF);
    rw(gic, index, SGI_BASE + 0x180, 0xFFFF_0000);
    rw(gic, index, SGI_BASE + 0x100, 0x0000_FFFF);
    for word in 0..8 {
        rw(gic, index, SGI_BASE + 0x400 + 4 * word, 0xA0A0_A0A0);
    }
    index
}

fn booted(vcpus: usize) -> VirtGic {
    let mut gic = VirtGic::new(vcpus).unwrap();
    probe_distributor(&mut gic);
    for cpu in 0..vcpus {
        assert_eq!(bring_up_cpu(&mut gic, Affinity::of_vcpu(cpu).mpidr()), cpu);
    }
    gic
}

fn loaded(gic: &mut VirtGic, vcpu: usize) -> Vec<(u32, LrState, u8, bool)> {
    let fill = gic.fill_list_registers(vcpu, IchVtr::decode(0x90b8_0003));
    fill.writes()
        .expect("stale list registers: the fill writes")
        .values()
        .iter()
        .map(|&value| ListRegister::decode(value))
        .filter(|lr| lr.state != LrState::Invalid)
        .map(|lr| (lr.vintid, lr.state, lr.priority, lr.group1))
        .collect()
}

#[test]
fn linux_probe_finds_every_redistributor_and_leaves_the_distributor_enabled() {
    let mut gic = booted(4);
    assert_eq!(rd32(&mut gic, GICD_CTLR), 0x53);
    assert_eq!(rr(&mut gic, 3, GICR_TYPER, 8) & (1 << 4), 1 << 4, "Last");
    assert!((0..4).all(|cpu| gic.redistributor_awake(cpu)));
}

#[test]
fn uart_spi_enabled_by_linux_reaches_the_boot_cpus_list_registers() {
    let mut gic = booted(2);
    // The PL011 is SPI 1: INTID 33.
    wr32(&mut gic, GICD_ISENABLER + 4, 1 << 1);
    assert_eq!(gic.set_spi_level(33, true), VcpuSet::single(0));
    assert_eq!(loaded(&mut gic, 0), [(33, LrState::Pending, 0xA0, true)]);
    assert!(loaded(&mut gic, 1).is_empty());
}

#[test]
fn virtual_timer_ppi_enabled_by_linux_reaches_its_cpu() {
    let mut gic = booted(2);
    rw(&mut gic, 1, SGI_BASE + 0x100, 1 << VIRTUAL_TIMER_PPI);
    let kick = gic.set_ppi_level(1, VIRTUAL_TIMER_PPI, true);
    assert_eq!(kick, VcpuSet::single(1));
    assert_eq!(
        loaded(&mut gic, 1),
        [(VIRTUAL_TIMER_PPI, LrState::Pending, 0xA0, true)]
    );
}

#[test]
fn linux_ipi_through_icc_sgi1r_reaches_the_named_cpu() {
    let mut gic = booted(4);
    // Reschedule IPI (SGI 0) from CPU 0 to CPU 2: Aff1..3 = 0, TargetList bit 2.
    let kick = gic.send_sgi(0, 1 << 2);
    assert_eq!(kick, VcpuSet::single(2));
    assert_eq!(loaded(&mut gic, 2), [(0, LrState::Pending, 0xA0, true)]);
    assert!(loaded(&mut gic, 0).is_empty());
}

#[test]
fn spi_rerouted_by_irq_affinity_goes_to_the_new_cpu() {
    let mut gic = booted(4);
    wr32(&mut gic, GICD_ISENABLER + 4, 1 << 16);
    let route = irouter_for(Affinity::of_vcpu(3));
    gic.distributor_access(Access::write(GICD_IROUTER + 8 * 48, 8, route));
    assert_eq!(gic.set_spi_level(48, true), VcpuSet::single(3));
    assert_eq!(loaded(&mut gic, 3), [(48, LrState::Pending, 0xA0, true)]);
}
