//! List-register tests: the encoding, then the sync/fill scheduling as a guest would drive it.

use super::*;
use crate::gic::tests::{enable, linux_gic};
use crate::gic::{Affinity, VirtGic};

/// QEMU's `ICH_VTR_EL2`: 4 list registers, 5 priority bits.
const QEMU_VTR: u64 = 0x90b8_0003;

fn qemu() -> IchVtr {
    IchVtr::decode(QEMU_VTR)
}

fn decoded(fill: &LrFill) -> Vec<ListRegister> {
    fill.values()
        .iter()
        .map(|&v| ListRegister::decode(v))
        .collect()
}

/// The (vINTID, state) of each valid list register.
fn loaded(fill: &LrFill) -> Vec<(u32, LrState)> {
    decoded(fill)
        .into_iter()
        .filter(|lr| lr.state != LrState::Invalid)
        .map(|lr| (lr.vintid, lr.state))
        .collect()
}

/// The list registers after the guest changed the state of `intid` to `state`.
fn guest_sets(lrs: &[u64], intid: u32, state: LrState) -> Vec<u64> {
    lrs.iter()
        .map(|&value| {
            let lr = ListRegister::decode(value);
            let lr = if lr.vintid == intid && lr.state != LrState::Invalid {
                ListRegister { state, ..lr }
            } else {
                lr
            };
            lr.encode()
        })
        .collect()
}

/// A Linux-like GIC with SPIs `intids` edge-triggered, enabled and pending on vCPU 0.
fn with_pending_edge_spis(intids: &[u32]) -> VirtGic {
    let mut gic = linux_gic(2);
    for &intid in intids {
        enable(&mut gic, 0, intid);
        let irq = gic.vcpu_irq_for_tests(0, intid);
        gic.irq_mut(irq).edge = true;
        gic.set_spi_level(intid, true);
        gic.set_spi_level(intid, false);
    }
    gic
}

#[test]
fn list_register_fields_encode_at_their_architected_positions() {
    let cases = [
        // Pending, Group 1, priority 0xA0, vINTID 27, EOI maintenance.
        (
            ListRegister {
                vintid: 27,
                pintid: 0,
                eoi_maintenance: true,
                priority: 0xA0,
                group1: true,
                hw: false,
                state: LrState::Pending,
            },
            0x50A0_0200_0000_001B,
        ),
        // Active, Group 0, HW with pINTID 0x1FFF, vINTID 1019.
        (
            ListRegister {
                vintid: 1019,
                pintid: 0x1FFF,
                eoi_maintenance: false,
                priority: 0x08,
                group1: false,
                hw: true,
                state: LrState::Active,
            },
            0xA008_1FFF_0000_03FB,
        ),
        (ListRegister::INVALID, 0),
    ];
    for (lr, value) in cases {
        assert_eq!(lr.encode(), value, "{lr:?}");
        assert_eq!(ListRegister::decode(value), lr);
    }
}

#[test]
fn list_register_state_decodes_pending_active_and_both() {
    let cases = [
        (0b00, LrState::Invalid, false, false),
        (0b01, LrState::Pending, true, false),
        (0b10, LrState::Active, false, true),
        (0b11, LrState::PendingActive, true, true),
    ];
    for (bits, state, pending, active) in cases {
        let decoded = ListRegister::decode(bits << 62).state;
        assert_eq!(decoded, state);
        assert_eq!((decoded.pending(), decoded.active()), (pending, active));
        assert_eq!(LrState::from_parts(pending, active), state);
    }
}

#[test]
fn ich_vtr_of_qemu_gives_four_list_registers_and_five_priority_bits() {
    assert_eq!(
        qemu(),
        IchVtr {
            list_regs: 4,
            priority_bits: 5
        }
    );
    assert_eq!(qemu().priority_mask(), 0xF8);
    assert_eq!(IchVtr::decode(0xE000_000F).list_regs, 16);
    assert_eq!(IchVtr::decode(0xE000_000F).priority_mask(), 0xFF);
}

#[test]
fn fill_loads_pending_interrupts_highest_priority_first_then_lowest_intid() {
    let mut gic = with_pending_edge_spis(&[40, 41, 42]);
    gic.spis[9].priority = 0x10; // INTID 41
    let fill = gic.fill_list_registers(0, qemu());
    assert_eq!(
        loaded(&fill),
        [
            (41, LrState::Pending),
            (40, LrState::Pending),
            (42, LrState::Pending)
        ]
    );
    assert_eq!(fill.values().len(), 4);
    assert_eq!(fill.values()[3], 0, "the unused list register is invalid");
}

#[test]
fn four_pending_interrupts_fit_without_maintenance() {
    let mut gic = with_pending_edge_spis(&[32, 33, 34, 35]);
    let fill = gic.fill_list_registers(0, qemu());
    assert!(!fill.underflow());
    assert_eq!(fill.ich_hcr_el2(), 0b01, "En only");
}

#[test]
fn fifth_pending_interrupt_requests_underflow_maintenance() {
    let mut gic = with_pending_edge_spis(&[32, 33, 34, 35, 36]);
    let fill = gic.fill_list_registers(0, qemu());
    assert!(fill.underflow());
    assert_eq!(fill.ich_hcr_el2(), 0b11, "En and UIE");
    assert!(!loaded(&fill).contains(&(36, LrState::Pending)));
    // Once the guest completed one, the fifth gets its turn.
    let lrs = guest_sets(fill.values(), 32, LrState::Invalid);
    gic.sync_from_list_registers(0, &lrs);
    let fill = gic.fill_list_registers(0, qemu());
    assert!(loaded(&fill).contains(&(36, LrState::Pending)));
    assert!(!fill.underflow());
}

#[test]
fn acknowledged_interrupt_stays_loaded_as_active_until_the_guest_completes_it() {
    let mut gic = with_pending_edge_spis(&[50]);
    let fill = gic.fill_list_registers(0, qemu());
    gic.sync_from_list_registers(0, &guest_sets(fill.values(), 50, LrState::Active));
    assert!(gic.spis[18].active && !gic.spis[18].pending());
    let fill = gic.fill_list_registers(0, qemu());
    assert_eq!(loaded(&fill), [(50, LrState::Active)]);
    gic.sync_from_list_registers(0, &guest_sets(fill.values(), 50, LrState::Invalid));
    assert!(!gic.spis[18].active && !gic.spis[18].pending());
    assert!(loaded(&gic.fill_list_registers(0, qemu())).is_empty());
}

#[test]
fn level_interrupt_is_pending_again_after_eoi_while_its_line_is_high() {
    let mut gic = linux_gic(1);
    enable(&mut gic, 0, 33);
    gic.set_spi_level(33, true);
    let fill = gic.fill_list_registers(0, qemu());
    let lr = decoded(&fill)[0];
    assert!(lr.eoi_maintenance, "EOI maintenance resamples the line");
    // Acknowledged: active, and still pending by its line.
    gic.sync_from_list_registers(0, &guest_sets(fill.values(), 33, LrState::Active));
    let fill = gic.fill_list_registers(0, qemu());
    assert_eq!(loaded(&fill), [(33, LrState::PendingActive)]);
    // Completed while the line stays high: pending again.
    gic.sync_from_list_registers(0, &guest_sets(fill.values(), 33, LrState::Invalid));
    let fill = gic.fill_list_registers(0, qemu());
    assert_eq!(loaded(&fill), [(33, LrState::Pending)]);
}

#[test]
fn edge_interrupt_is_not_pending_after_eoi() {
    let mut gic = with_pending_edge_spis(&[33]);
    let fill = gic.fill_list_registers(0, qemu());
    assert!(!decoded(&fill)[0].eoi_maintenance);
    gic.sync_from_list_registers(0, &guest_sets(fill.values(), 33, LrState::Active));
    let fill = gic.fill_list_registers(0, qemu());
    assert_eq!(loaded(&fill), [(33, LrState::Active)]);
    gic.sync_from_list_registers(0, &guest_sets(fill.values(), 33, LrState::Invalid));
    assert!(loaded(&gic.fill_list_registers(0, qemu())).is_empty());
}

#[test]
fn level_interrupt_whose_line_drops_before_acknowledge_is_withdrawn() {
    let mut gic = linux_gic(1);
    enable(&mut gic, 0, 34);
    gic.set_spi_level(34, true);
    let fill = gic.fill_list_registers(0, qemu());
    gic.sync_from_list_registers(0, fill.values());
    gic.set_spi_level(34, false);
    assert!(loaded(&gic.fill_list_registers(0, qemu())).is_empty());
}

#[test]
fn edge_arriving_while_active_is_loaded_pending_and_active() {
    let mut gic = with_pending_edge_spis(&[45]);
    let fill = gic.fill_list_registers(0, qemu());
    gic.set_spi_level(45, true);
    gic.sync_from_list_registers(0, &guest_sets(fill.values(), 45, LrState::Active));
    let fill = gic.fill_list_registers(0, qemu());
    assert_eq!(loaded(&fill), [(45, LrState::PendingActive)]);
}

#[test]
fn active_interrupts_keep_their_list_registers_over_higher_priority_pending_ones() {
    let mut gic = with_pending_edge_spis(&[32, 33, 34, 35]);
    let fill = gic.fill_list_registers(0, qemu());
    let lrs = (32..36).fold(fill.values().to_vec(), |lrs, intid| {
        guest_sets(&lrs, intid, LrState::Active)
    });
    gic.sync_from_list_registers(0, &lrs);
    with_priority(&mut gic, 36, 0x00);
    let fill = gic.fill_list_registers(0, qemu());
    let mut states = loaded(&fill);
    states.sort_unstable_by_key(|&(intid, _)| intid);
    assert_eq!(
        states,
        (32..36).map(|i| (i, LrState::Active)).collect::<Vec<_>>()
    );
    assert!(
        fill.underflow(),
        "the pending one waits for a free list register"
    );
}

/// Makes SPI `intid` pending, enabled and of priority `priority`.
fn with_priority(gic: &mut VirtGic, intid: u32, priority: u8) {
    enable(gic, 0, intid);
    let irq = gic.vcpu_irq_for_tests(0, intid);
    gic.irq_mut(irq).priority = priority;
    gic.irq_mut(irq).write_latch(true);
}

#[test]
fn higher_priority_arrival_displaces_the_lowest_priority_pending_one() {
    let mut gic = with_pending_edge_spis(&[32, 33, 34, 35]);
    let fill = gic.fill_list_registers(0, qemu());
    with_priority(&mut gic, 36, 0x00);
    gic.sync_from_list_registers(0, fill.values());
    let fill = gic.fill_list_registers(0, qemu());
    let intids: Vec<u32> = loaded(&fill).iter().map(|&(i, _)| i).collect();
    assert_eq!(intids, [36, 32, 33, 34]);
    assert!(fill.underflow());
    assert!(
        gic.spis[3].pending(),
        "INTID 35 is still pending in the model"
    );
}

#[test]
fn spi_loaded_on_one_vcpu_is_not_loaded_on_another_after_rerouting() {
    let mut gic = with_pending_edge_spis(&[38]);
    let fill = gic.fill_list_registers(0, qemu());
    assert_eq!(loaded(&fill).len(), 1);
    gic.routes[6] = Affinity::of_vcpu(1).mpidr();
    assert!(loaded(&gic.fill_list_registers(1, qemu())).is_empty());
    // vCPU 0 gives it back untouched; now it belongs to vCPU 1.
    let kick = gic.sync_from_list_registers(0, fill.values());
    assert_eq!(kick, VcpuSet::single(1));
    assert!(loaded(&gic.fill_list_registers(0, qemu())).is_empty());
    assert_eq!(
        loaded(&gic.fill_list_registers(1, qemu())),
        [(38, LrState::Pending)]
    );
}

#[test]
fn active_spi_stays_with_the_vcpu_that_acknowledged_it_after_rerouting() {
    let mut gic = with_pending_edge_spis(&[39]);
    let fill = gic.fill_list_registers(0, qemu());
    gic.sync_from_list_registers(0, &guest_sets(fill.values(), 39, LrState::Active));
    gic.routes[7] = Affinity::of_vcpu(1).mpidr();
    assert_eq!(
        loaded(&gic.fill_list_registers(0, qemu())),
        [(39, LrState::Active)]
    );
    assert!(loaded(&gic.fill_list_registers(1, qemu())).is_empty());
}

#[test]
fn icpendr_while_loaded_wins_over_the_list_register_at_sync() {
    let mut gic = with_pending_edge_spis(&[41]);
    let fill = gic.fill_list_registers(0, qemu());
    // Another vCPU clears it through the distributor while vCPU 0 runs.
    let kick = crate::gic::tests::gicd_write(&mut gic, 0x284, 1 << 9);
    assert_eq!(
        kick,
        VcpuSet::single(0),
        "vCPU 0's list registers are stale"
    );
    gic.sync_from_list_registers(0, fill.values());
    assert!(!gic.spis[9].pending());
    assert!(loaded(&gic.fill_list_registers(0, qemu())).is_empty());
}

#[test]
fn filling_again_without_a_sync_loses_no_edge() {
    let mut gic = with_pending_edge_spis(&[42]);
    let first = gic.fill_list_registers(0, qemu());
    let second = gic.fill_list_registers(0, qemu());
    assert_eq!(first, second);
}

#[test]
fn disabled_or_group_disabled_pending_interrupts_are_not_loaded() {
    let mut gic = with_pending_edge_spis(&[43, 44]);
    gic.spis[11].enabled = false; // INTID 43
    gic.spis[12].group1 = false; // INTID 44, Group 0
    gic.enables.grp0 = false;
    let fill = gic.fill_list_registers(0, qemu());
    assert!(loaded(&fill).is_empty());
    assert!(!fill.underflow());
}

#[test]
fn loaded_priority_keeps_only_the_implemented_bits_and_group_follows_igroupr() {
    let mut gic = with_pending_edge_spis(&[46]);
    gic.spis[14].priority = 0xA7;
    gic.spis[14].group1 = false;
    let lr = decoded(&gic.fill_list_registers(0, qemu()))[0];
    assert_eq!((lr.priority, lr.group1, lr.hw), (0xA0, false, false));
}

#[test]
fn private_interrupts_load_only_into_their_own_vcpu() {
    let mut gic = linux_gic(2);
    enable(&mut gic, 1, 27);
    gic.set_ppi_level(1, 27, true);
    assert!(loaded(&gic.fill_list_registers(0, qemu())).is_empty());
    assert_eq!(
        loaded(&gic.fill_list_registers(1, qemu())),
        [(27, LrState::Pending)]
    );
}

#[test]
fn sgi_sent_to_a_running_vcpu_is_loaded_at_its_next_fill() {
    let mut gic = linux_gic(2);
    enable(&mut gic, 1, 1);
    let fill = gic.fill_list_registers(1, qemu());
    assert_eq!(gic.send_sgi(0, 1 << 24 | 0b10), VcpuSet::single(1));
    gic.sync_from_list_registers(1, fill.values());
    assert_eq!(
        loaded(&gic.fill_list_registers(1, qemu())),
        [(1, LrState::Pending)]
    );
}

#[test]
fn fill_for_a_vcpu_the_vm_lacks_is_empty() {
    let mut gic = with_pending_edge_spis(&[32]);
    let fill = gic.fill_list_registers(5, qemu());
    assert!(loaded(&fill).is_empty());
    assert_eq!(gic.sync_from_list_registers(9, &[]), VcpuSet::EMPTY);
}
