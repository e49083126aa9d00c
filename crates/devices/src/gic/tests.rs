//! Tests of the interrupt state and routing, and helpers the other test modules share.

use super::*;
use crate::Access;

/// A GIC as Linux leaves it after its driver probed: groups enabled, every redistributor awake,
/// every interrupt Group 1 and priority 0xA0, SPIs level-sensitive and routed to vCPU 0.
pub(super) fn linux_gic(vcpus: usize) -> VirtGic {
    let mut gic = VirtGic::new(vcpus).unwrap();
    gic.enables = GroupEnables {
        grp0: true,
        grp1: true,
    };
    for vcpu in 0..vcpus {
        gic.redists[vcpu].processor_sleep = false;
        for intid in 0..PRIVATE_COUNT {
            let irq = gic.irq_mut(IrqRef::Private { vcpu, intid });
            irq.group1 = true;
            irq.priority = 0xA0;
        }
    }
    for irq in &mut gic.spis {
        irq.group1 = true;
        irq.priority = 0xA0;
    }
    let _ = gic.resummarise();
    gic
}

/// Enables INTID `intid` (an SPI, or a private interrupt of vCPU `vcpu`).
pub(super) fn enable(gic: &mut VirtGic, vcpu: usize, intid: u32) {
    poke(gic, vcpu, intid, |irq| irq.enabled = true);
}

/// Changes the record of INTID `intid` (an SPI, or a private interrupt of vCPU `vcpu`) as a
/// register write would, summary included; returns the vCPUs to kick.
pub(super) fn poke(
    gic: &mut VirtGic,
    vcpu: usize,
    intid: u32,
    change: impl FnOnce(&mut irq::Irq),
) -> VcpuSet {
    let irq = gic.vcpu_irq_for_tests(vcpu, intid);
    gic.update(irq, change)
}

/// Routes SPI `intid` to vCPU `vcpu` through its `GICD_IROUTER<n>`; returns the vCPUs to kick.
pub(super) fn route(gic: &mut VirtGic, intid: u32, vcpu: usize) -> VcpuSet {
    let access = Access::write(
        0x6000 + 8 * u64::from(intid),
        8,
        irouter_for(Affinity::of_vcpu(vcpu)),
    );
    gic.distributor_access(access).1.kick
}

/// Reads a 32-bit distributor register.
pub(super) fn gicd_read(gic: &mut VirtGic, offset: u64) -> u64 {
    gic.distributor_access(Access::read(offset, 4)).0
}

/// Writes a 32-bit distributor register and returns the vCPUs to kick.
pub(super) fn gicd_write(gic: &mut VirtGic, offset: u64, value: u64) -> VcpuSet {
    gic.distributor_access(Access::write(offset, 4, value))
        .1
        .kick
}

impl<const SPIS: usize> Gic<SPIS> {
    pub(super) fn vcpu_irq_for_tests(&self, vcpu: usize, intid: u32) -> IrqRef {
        if intid < PRIVATE_COUNT {
            IrqRef::Private { vcpu, intid }
        } else {
            self.spi_ref(intid).unwrap()
        }
    }

    pub(super) fn pending_for_tests(&self, vcpu: usize, intid: u32) -> bool {
        self.irq(self.vcpu_irq_for_tests(vcpu, intid)).pending()
    }
}

fn vcpus(set: VcpuSet) -> Vec<usize> {
    set.iter().collect()
}

#[test]
fn new_refuses_no_vcpu_and_more_than_eight() {
    assert_eq!(VirtGic::new(0).unwrap_err(), GicError::VcpuCount(0));
    assert_eq!(VirtGic::new(9).unwrap_err(), GicError::VcpuCount(9));
    assert_eq!(VirtGic::new(8).unwrap().vcpus(), 8);
}

#[test]
fn vcpu_affinity_is_its_index_in_clusters_of_sixteen() {
    let cases = [
        (0, 0x0000),
        (7, 0x0007),
        (15, 0x000F),
        (16, 0x0100),
        (33, 0x0201),
    ];
    for (vcpu, mpidr) in cases {
        assert_eq!(Affinity::of_vcpu(vcpu).mpidr(), mpidr, "vCPU {vcpu}");
        assert_eq!(Affinity::from_mpidr(mpidr), Affinity::of_vcpu(vcpu));
    }
}

#[test]
fn affinity_packs_aff3_above_aff2_for_gicr_typer() {
    let affinity = Affinity {
        aff0: 1,
        aff1: 2,
        aff2: 3,
        aff3: 4,
    };
    assert_eq!(affinity.packed(), 0x0403_0201);
    assert_eq!(affinity.mpidr(), 0x04_0003_0201);
}

#[test]
fn vcpu_set_holds_only_vcpus_below_the_maximum() {
    let set = VcpuSet::single(1)
        .union(VcpuSet::single(3))
        .union(VcpuSet::single(8));
    assert_eq!(vcpus(set), [1, 3]);
    assert_eq!(vcpus(VcpuSet::first(3).without(1)), [0, 2]);
    assert!(VcpuSet::EMPTY.is_empty());
}

#[test]
fn rising_edge_pends_an_edge_spi_and_lowering_the_line_keeps_it_pending() {
    let mut gic = linux_gic(1);
    poke(&mut gic, 0, 40, |irq| irq.edge = true);
    gic.set_spi_level(40, true);
    gic.set_spi_level(40, false);
    assert!(gic.pending_for_tests(0, 40));
}

#[test]
fn level_spi_is_pending_exactly_while_its_line_is_high() {
    let mut gic = linux_gic(1);
    for level in [true, false, true] {
        gic.set_spi_level(33, level);
        assert_eq!(gic.pending_for_tests(0, 33), level);
    }
}

#[test]
fn raising_an_enabled_spi_kicks_the_vcpu_it_is_routed_to() {
    let mut gic = linux_gic(4);
    enable(&mut gic, 0, 33);
    route(&mut gic, 33, 2);
    assert_eq!(vcpus(gic.set_spi_level(33, true)), [2]);
    assert!(gic.has_deliverable(2));
    assert!(!gic.has_deliverable(0));
}

#[test]
fn pending_interrupt_kicks_nobody_while_disabled_or_its_group_is_disabled() {
    let mut gic = linux_gic(1);
    assert!(gic.set_spi_level(33, true).is_empty(), "disabled");
    enable(&mut gic, 0, 34);
    gicd_write(&mut gic, 0, 0b01);
    assert!(gic.set_spi_level(34, true).is_empty(), "group 1 disabled");
}

#[test]
fn virtual_timer_ppi_pends_only_on_its_own_vcpu() {
    let mut gic = linux_gic(2);
    enable(&mut gic, 1, VIRTUAL_TIMER_PPI);
    assert_eq!(vcpus(gic.set_ppi_level(1, VIRTUAL_TIMER_PPI, true)), [1]);
    assert!(gic.pending_for_tests(1, VIRTUAL_TIMER_PPI));
    assert!(!gic.pending_for_tests(0, VIRTUAL_TIMER_PPI));
}

#[test]
fn line_inputs_outside_their_ranges_are_ignored() {
    let mut gic = linux_gic(2);
    let cases = [
        gic.set_spi_level(31, true),
        gic.set_spi_level(128, true),
        gic.set_ppi_level(0, 15, true),
        gic.set_ppi_level(0, 32, true),
        gic.set_ppi_level(2, 27, true),
    ];
    assert!(cases.iter().all(|kick| kick.is_empty()));
}

#[test]
fn spi_routed_to_an_affinity_no_vcpu_has_is_delivered_nowhere() {
    let mut gic = linux_gic(2);
    enable(&mut gic, 0, 35);
    let access = Access::write(0x6000 + 8 * 35, 8, Affinity::of_vcpu(5).mpidr());
    gic.distributor_access(access);
    assert!(gic.set_spi_level(35, true).is_empty());
    assert!(!gic.has_deliverable(0) && !gic.has_deliverable(1));
}

#[test]
fn one_of_n_spi_goes_to_the_first_awake_vcpu() {
    let mut gic = linux_gic(3);
    enable(&mut gic, 0, 36);
    gic.distributor_access(Access::write(0x6000 + 8 * 36, 8, 1 << 31));
    // GICR_WAKER.ProcessorSleep = 1 for vCPU 0.
    gic.redistributor_access(Access::write(0x14, 4, 0b10));
    assert_eq!(vcpus(gic.set_spi_level(36, true)), [1]);
}

#[test]
fn a_whole_gic_stays_small_enough_to_build_on_an_el2_stack() {
    assert!(
        core::mem::size_of::<VirtGic>() < 8 * 1024,
        "{}",
        core::mem::size_of::<VirtGic>()
    );
}

#[test]
fn windows_as_mmio_devices_reach_the_distributor_and_the_redistributors() {
    use crate::MmioDevice;
    let mut gic = VirtGic::new(1).unwrap();
    let pidr2 = Access::read(0xFFE8, 4);
    assert_eq!(DistributorWindow(&mut gic).access(pidr2).0, 0x3B);
    assert_eq!(RedistributorWindow(&mut gic).access(pidr2).0, 0x3B);
}

#[test]
fn a_line_that_does_not_change_the_pending_state_kicks_nobody() {
    let mut gic = linux_gic(1);
    enable(&mut gic, 0, 33);
    assert_eq!(gic.set_spi_level(33, true), VcpuSet::single(0));
    assert!(gic.set_spi_level(33, true).is_empty(), "level already high");
    poke(&mut gic, 0, 34, |irq| {
        irq.edge = true;
        irq.enabled = true;
    });
    assert_eq!(gic.set_spi_level(34, true), VcpuSet::single(0));
    gic.set_spi_level(34, false);
    assert!(
        gic.set_spi_level(34, true).is_empty(),
        "edge already latched"
    );
}

#[test]
fn vcpu_set_iterates_exactly_its_members_lowest_first() {
    for mask in 0..(1u32 << MAX_VCPUS) {
        let set = (0..MAX_VCPUS)
            .filter(|v| mask & (1 << v) != 0)
            .fold(VcpuSet::EMPTY, |s, v| s.union(VcpuSet::single(v)));
        let members: Vec<usize> = (0..MAX_VCPUS).filter(|&v| set.contains(v)).collect();
        assert_eq!(set.iter().collect::<Vec<_>>(), members, "{mask:#x}");
    }
}

/// A vCPU leaving its CPU (`CPU_OFF`, its VM's end) has that CPU's virtual interface switched
/// off (`ICH_HCR_EL2.En` = 0): otherwise an underflow request left in `ICH_HCR_EL2.UIE` keeps
/// the maintenance interrupt asserted at a CPU that only waits, which then never waits. When
/// the vCPU starts again the fill must rewrite `ICH_HCR_EL2` (with `En`) even though nothing
/// the model holds changed; before `interface_switched_off` it wrote nothing.
#[test]
fn a_vcpu_starting_on_a_switched_off_interface_gets_its_list_registers_and_hcr_written() {
    use super::list_regs::{IchVtr, hcr};
    let mut gic = linux_gic(1);
    let vtr = IchVtr::decode(0x90b8_0003);
    // Five pending SPIs for four list registers: the fill asks for an underflow interrupt.
    for intid in 40..45 {
        enable(&mut gic, 0, intid);
        let _ = route(&mut gic, intid, 0);
        let _ = gic.set_spi_level(intid, true);
    }
    let first = gic.fill_list_registers(0, vtr);
    let first = first.writes().expect("the first fill writes");
    assert_eq!(first.ich_hcr_el2(), hcr::EN | hcr::UIE);
    assert!(
        gic.fill_list_registers(0, vtr).writes().is_none(),
        "nothing changed: nothing to write"
    );
    gic.interface_switched_off(0);
    let again = gic.fill_list_registers(0, vtr);
    let again = again
        .writes()
        .expect("the switched-off interface is written again");
    assert_eq!(again.ich_hcr_el2(), hcr::EN | hcr::UIE);
    assert_eq!(again.values(), first.values());
}
