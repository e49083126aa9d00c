//! List-register tests: the encoding, then the sync/fill scheduling as a guest would drive it.

use super::*;
use crate::gic::tests::{enable, linux_gic, poke, route};
use crate::gic::{HwIrq, VirtGic};

/// QEMU's `ICH_VTR_EL2`: 4 list registers, 5 priority bits.
const QEMU_VTR: u64 = 0x90b8_0003;

fn qemu() -> IchVtr {
    IchVtr::decode(QEMU_VTR)
}

/// The writes of a fill that must write.
fn writes(fill: &LrFill) -> &LrWrites {
    fill.writes()
        .expect("the list registers are stale: the fill writes")
}

fn decoded(fill: &LrFill) -> Vec<ListRegister> {
    writes(fill)
        .values()
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
        poke(&mut gic, 0, intid, |irq| irq.edge = true);
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
                source: 0,
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
                source: 0,
                priority: 0x08,
                group1: false,
                hw: true,
                state: LrState::Active,
            },
            0xA008_1FFF_0000_03FB,
        ),
        // A GICv2 guest's SGI 3 from CPU 5, pending: the source in pINTID[2:0].
        (
            ListRegister {
                vintid: 3,
                pintid: 0,
                eoi_maintenance: false,
                source: 5,
                priority: 0x80,
                group1: false,
                hw: false,
                state: LrState::Pending,
            },
            0x4080_0005_0000_0003,
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
            priority_bits: 5,
            preemption_bits: 5
        }
    );
    assert_eq!(qemu().priority_mask(), 0xF8);
    assert_eq!(IchVtr::decode(0xE000_000F).list_regs, 16);
    assert_eq!(IchVtr::decode(0xE000_000F).priority_mask(), 0xFF);
}

#[test]
fn fill_loads_pending_interrupts_highest_priority_first_then_lowest_intid() {
    let mut gic = with_pending_edge_spis(&[40, 41, 42]);
    poke(&mut gic, 0, 41, |irq| irq.priority = 0x10);
    let fill = gic.fill_list_registers(0, qemu());
    assert_eq!(
        loaded(&fill),
        [
            (41, LrState::Pending),
            (40, LrState::Pending),
            (42, LrState::Pending)
        ]
    );
    assert_eq!(writes(&fill).values().len(), 4);
    assert_eq!(
        writes(&fill).values()[3],
        0,
        "the unused list register is invalid"
    );
}

#[test]
fn four_pending_interrupts_fit_without_maintenance() {
    let mut gic = with_pending_edge_spis(&[32, 33, 34, 35]);
    let fill = gic.fill_list_registers(0, qemu());
    assert!(!writes(&fill).underflow());
    assert_eq!(writes(&fill).ich_hcr_el2(), 0b01, "En only");
}

#[test]
fn fifth_pending_interrupt_requests_underflow_maintenance() {
    let mut gic = with_pending_edge_spis(&[32, 33, 34, 35, 36]);
    let fill = gic.fill_list_registers(0, qemu());
    assert!(writes(&fill).underflow());
    assert_eq!(writes(&fill).ich_hcr_el2(), 0b11, "En and UIE");
    assert!(!loaded(&fill).contains(&(36, LrState::Pending)));
    // Once the guest completed one, the fifth gets its turn.
    let lrs = guest_sets(writes(&fill).values(), 32, LrState::Invalid);
    gic.sync_from_list_registers(0, &lrs);
    let fill = gic.fill_list_registers(0, qemu());
    assert!(loaded(&fill).contains(&(36, LrState::Pending)));
    assert!(!writes(&fill).underflow());
}

#[test]
fn acknowledged_interrupt_stays_loaded_as_active_until_the_guest_completes_it() {
    let mut gic = with_pending_edge_spis(&[50]);
    let fill = gic.fill_list_registers(0, qemu());
    gic.sync_from_list_registers(0, &guest_sets(writes(&fill).values(), 50, LrState::Active));
    assert!(gic.spis[18].active && !gic.spis[18].pending());
    assert_eq!(gic.spis[18].active_on(), Some(0), "vCPU 0 acknowledged it");
    let fill = gic.fill_list_registers(0, qemu());
    assert_eq!(loaded(&fill), [(50, LrState::Active)]);
    gic.sync_from_list_registers(0, &guest_sets(writes(&fill).values(), 50, LrState::Invalid));
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
    gic.sync_from_list_registers(0, &guest_sets(writes(&fill).values(), 33, LrState::Active));
    let fill = gic.fill_list_registers(0, qemu());
    assert_eq!(loaded(&fill), [(33, LrState::PendingActive)]);
    // Completed while the line stays high: pending again.
    gic.sync_from_list_registers(0, &guest_sets(writes(&fill).values(), 33, LrState::Invalid));
    let fill = gic.fill_list_registers(0, qemu());
    assert_eq!(loaded(&fill), [(33, LrState::Pending)]);
}

#[test]
fn edge_interrupt_is_not_pending_after_eoi() {
    let mut gic = with_pending_edge_spis(&[33]);
    let fill = gic.fill_list_registers(0, qemu());
    assert!(!decoded(&fill)[0].eoi_maintenance);
    gic.sync_from_list_registers(0, &guest_sets(writes(&fill).values(), 33, LrState::Active));
    let fill = gic.fill_list_registers(0, qemu());
    assert_eq!(loaded(&fill), [(33, LrState::Active)]);
    gic.sync_from_list_registers(0, &guest_sets(writes(&fill).values(), 33, LrState::Invalid));
    assert!(loaded(&gic.fill_list_registers(0, qemu())).is_empty());
}

#[test]
fn level_interrupt_whose_line_drops_before_acknowledge_is_withdrawn() {
    let mut gic = linux_gic(1);
    enable(&mut gic, 0, 34);
    gic.set_spi_level(34, true);
    let fill = gic.fill_list_registers(0, qemu());
    gic.sync_from_list_registers(0, writes(&fill).values());
    gic.set_spi_level(34, false);
    assert!(loaded(&gic.fill_list_registers(0, qemu())).is_empty());
}

#[test]
fn edge_arriving_while_active_is_loaded_pending_and_active() {
    let mut gic = with_pending_edge_spis(&[45]);
    let fill = gic.fill_list_registers(0, qemu());
    gic.set_spi_level(45, true);
    gic.sync_from_list_registers(0, &guest_sets(writes(&fill).values(), 45, LrState::Active));
    let fill = gic.fill_list_registers(0, qemu());
    assert_eq!(loaded(&fill), [(45, LrState::PendingActive)]);
}

#[test]
fn active_interrupts_keep_their_list_registers_over_higher_priority_pending_ones() {
    let mut gic = with_pending_edge_spis(&[32, 33, 34, 35]);
    let fill = gic.fill_list_registers(0, qemu());
    let lrs = (32..36).fold(writes(&fill).values().to_vec(), |lrs, intid| {
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
        writes(&fill).underflow(),
        "the pending one waits for a free list register"
    );
}

/// Makes SPI `intid` pending, enabled and of priority `priority`.
fn with_priority(gic: &mut VirtGic, intid: u32, priority: u8) {
    enable(gic, 0, intid);
    poke(gic, 0, intid, |irq| {
        irq.priority = priority;
        irq.write_latch(true);
    });
}

#[test]
fn higher_priority_arrival_displaces_the_lowest_priority_pending_one() {
    let mut gic = with_pending_edge_spis(&[32, 33, 34, 35]);
    let fill = gic.fill_list_registers(0, qemu());
    with_priority(&mut gic, 36, 0x00);
    gic.sync_from_list_registers(0, writes(&fill).values());
    let fill = gic.fill_list_registers(0, qemu());
    let intids: Vec<u32> = loaded(&fill).iter().map(|&(i, _)| i).collect();
    assert_eq!(intids, [36, 32, 33, 34]);
    assert!(writes(&fill).underflow());
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
    assert_eq!(
        route(&mut gic, 38, 1),
        VcpuSet::single(0),
        "vCPU 0 holds it and must give it back"
    );
    assert!(loaded(&gic.fill_list_registers(1, qemu())).is_empty());
    // vCPU 0 gives it back untouched; now it belongs to vCPU 1.
    let kick = gic.sync_from_list_registers(0, writes(&fill).values());
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
    gic.sync_from_list_registers(0, &guest_sets(writes(&fill).values(), 39, LrState::Active));
    route(&mut gic, 39, 1);
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
    gic.sync_from_list_registers(0, writes(&fill).values());
    assert!(!gic.spis[9].pending());
    assert!(loaded(&gic.fill_list_registers(0, qemu())).is_empty());
}

#[test]
fn filling_again_without_a_sync_writes_nothing_and_loses_no_edge() {
    let mut gic = with_pending_edge_spis(&[42]);
    let first = gic.fill_list_registers(0, qemu());
    assert_eq!(gic.fill_list_registers(0, qemu()), LrFill::Unchanged);
    assert_eq!(gic.live_list_registers(0), 1);
    // Made stale, the next fill takes the interrupt back as loaded and loads it again, writing
    // only the list register that was in use (the others were written invalid).
    gic.mark_stale(0);
    let again = gic.fill_list_registers(0, qemu());
    assert_eq!(writes(&again).values(), &writes(&first).values()[..1]);
    assert_eq!(loaded(&again), [(42, LrState::Pending)]);
}

#[test]
fn disabled_or_group_disabled_pending_interrupts_are_not_loaded() {
    let mut gic = with_pending_edge_spis(&[43, 44]);
    poke(&mut gic, 0, 43, |irq| irq.enabled = false);
    poke(&mut gic, 0, 44, |irq| irq.group1 = false);
    crate::gic::tests::gicd_write(&mut gic, 0, 0b10);
    let fill = gic.fill_list_registers(0, qemu());
    assert!(loaded(&fill).is_empty());
    assert!(!writes(&fill).underflow());
}

#[test]
fn loaded_priority_keeps_only_the_implemented_bits_and_group_follows_igroupr() {
    let mut gic = with_pending_edge_spis(&[46]);
    poke(&mut gic, 0, 46, |irq| {
        irq.priority = 0xA7;
        irq.group1 = false;
    });
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
    gic.sync_from_list_registers(1, writes(&fill).values());
    assert_eq!(
        loaded(&gic.fill_list_registers(1, qemu())),
        [(1, LrState::Pending)]
    );
}

#[test]
fn fill_for_a_vcpu_the_vm_lacks_is_empty() {
    let mut gic = with_pending_edge_spis(&[32]);
    assert_eq!(gic.fill_list_registers(5, qemu()), LrFill::Unchanged);
    assert_eq!(gic.live_list_registers(5), 0);
    assert_eq!(gic.sync_from_list_registers(9, &[]), VcpuSet::EMPTY);
}

/// The list registers of a CPU with 4 of them, as the hypervisor's protocol leaves them.
#[derive(Default)]
struct Hardware {
    lrs: [u64; 4],
    hcr: u64,
    /// How many list registers the last entry wrote (0 when the fill was unchanged).
    written: usize,
}

impl Hardware {
    /// Before entry: writes what the fill asks for.
    fn enter(&mut self, gic: &mut VirtGic, vcpu: usize) -> LrFill {
        let fill = gic.fill_list_registers(vcpu, qemu());
        self.written = 0;
        if let Some(writes) = fill.writes() {
            self.lrs[..writes.values().len()].copy_from_slice(writes.values());
            self.hcr = writes.ich_hcr_el2();
            self.written = writes.values().len();
        }
        fill
    }

    /// After the guest ran: reads back the live list registers only.
    fn exit(&self, gic: &mut VirtGic, vcpu: usize) -> VcpuSet {
        let live = gic.live_list_registers(vcpu);
        gic.sync_from_list_registers(vcpu, &self.lrs[..live])
    }

    /// The guest changes the state of the list register holding `intid`.
    fn guest_sets(&mut self, intid: u32, state: LrState) {
        let lrs = guest_sets(&self.lrs, intid, state);
        self.lrs.copy_from_slice(&lrs);
    }

    /// The (vINTID, state) of each valid list register.
    fn holds(&self) -> Vec<(u32, LrState)> {
        self.lrs
            .iter()
            .map(|&v| ListRegister::decode(v))
            .filter(|lr| lr.state != LrState::Invalid)
            .map(|lr| (lr.vintid, lr.state))
            .collect()
    }
}

#[test]
fn an_exit_that_changed_nothing_reads_back_only_live_registers_and_writes_nothing() {
    let mut gic = with_pending_edge_spis(&[40]);
    let mut hw = Hardware::default();
    assert_eq!(loaded(&hw.enter(&mut gic, 0)), [(40, LrState::Pending)]);
    assert_eq!(hw.written, 4, "the first fill writes every list register");
    assert_eq!(hw.hcr, 0b01);
    assert_eq!(
        gic.live_list_registers(0),
        1,
        "one list register to read back"
    );
    // An exit in which the guest left the pending interrupt alone (an HVC, say).
    for _ in 0..3 {
        assert_eq!(hw.exit(&mut gic, 0), VcpuSet::EMPTY);
        assert!(
            gic.has_deliverable(0),
            "the loaded interrupt is still deliverable"
        );
        assert_eq!(hw.enter(&mut gic, 0), LrFill::Unchanged);
        assert_eq!(hw.holds(), [(40, LrState::Pending)]);
    }
    // With nothing loaded, nothing is read back either.
    let mut idle = linux_gic(1);
    let mut hw = Hardware::default();
    assert!(loaded(&hw.enter(&mut idle, 0)).is_empty());
    assert_eq!(idle.live_list_registers(0), 0);
    assert_eq!(hw.exit(&mut idle, 0), VcpuSet::EMPTY);
    assert_eq!(hw.enter(&mut idle, 0), LrFill::Unchanged);
}

#[test]
fn a_new_spi_for_the_vcpu_forces_a_refill() {
    let mut gic = with_pending_edge_spis(&[40]);
    let mut hw = Hardware::default();
    let _ = hw.enter(&mut gic, 0);
    enable(&mut gic, 0, 41);
    assert_eq!(gic.set_spi_level(41, true), VcpuSet::single(0));
    let _ = hw.exit(&mut gic, 0);
    let fill = hw.enter(&mut gic, 0);
    assert_eq!(
        loaded(&fill),
        [(40, LrState::Pending), (41, LrState::Pending)]
    );
    assert_eq!(
        hw.written, 2,
        "list registers 2 and 3 were written invalid before"
    );
}

#[test]
fn the_guest_acknowledging_or_completing_an_interrupt_forces_a_refill() {
    let mut gic = with_pending_edge_spis(&[40, 41]);
    let mut hw = Hardware::default();
    let _ = hw.enter(&mut gic, 0);
    hw.guest_sets(40, LrState::Active);
    let _ = hw.exit(&mut gic, 0);
    assert_eq!(
        loaded(&hw.enter(&mut gic, 0)),
        [(40, LrState::Active), (41, LrState::Pending)]
    );
    hw.guest_sets(40, LrState::Invalid);
    let _ = hw.exit(&mut gic, 0);
    assert_eq!(loaded(&hw.enter(&mut gic, 0)), [(41, LrState::Pending)]);
    assert_eq!(
        hw.holds(),
        [(41, LrState::Pending)],
        "list register 1 cleared"
    );
}

#[test]
fn a_deactivated_level_interrupt_has_its_list_register_rewritten_which_ends_the_eoi_maintenance() {
    let mut gic = linux_gic(1);
    enable(&mut gic, 0, 33);
    gic.set_spi_level(33, true);
    let mut hw = Hardware::default();
    let _ = hw.enter(&mut gic, 0);
    hw.guest_sets(33, LrState::Active);
    gic.set_spi_level(33, false);
    let _ = hw.exit(&mut gic, 0);
    let _ = hw.enter(&mut gic, 0);
    // Deactivated with EOI = 1: ICH_EISR_EL2 flags the list register until it is rewritten.
    hw.guest_sets(33, LrState::Invalid);
    assert!(ListRegister::decode(hw.lrs[0]).eoi_maintenance);
    let _ = hw.exit(&mut gic, 0);
    assert!(loaded(&hw.enter(&mut gic, 0)).is_empty());
    assert_eq!(hw.lrs[0], 0, "rewritten invalid without EOI");
}

#[test]
fn an_underflow_refills_when_the_guest_makes_room_and_not_before() {
    let mut gic = with_pending_edge_spis(&[32, 33, 34, 35, 36]);
    let mut hw = Hardware::default();
    let _ = hw.enter(&mut gic, 0);
    assert_eq!(hw.hcr, 0b11, "UIE: one interrupt waits");
    let _ = hw.exit(&mut gic, 0);
    assert_eq!(hw.enter(&mut gic, 0), LrFill::Unchanged);
    // The guest takes and completes three: the underflow maintenance interrupt exits.
    for intid in 32..35 {
        hw.guest_sets(intid, LrState::Invalid);
    }
    let _ = hw.exit(&mut gic, 0);
    let _ = hw.enter(&mut gic, 0);
    assert_eq!(hw.holds(), [(35, LrState::Pending), (36, LrState::Pending)]);
    assert_eq!(hw.hcr, 0b01);
}

#[test]
fn an_operation_on_another_vcpus_interrupts_leaves_this_vcpus_list_registers_alone() {
    let mut gic = with_pending_edge_spis(&[40]);
    let mut hw = [Hardware::default(), Hardware::default()];
    let _ = hw[0].enter(&mut gic, 0);
    let _ = hw[1].enter(&mut gic, 1);
    enable(&mut gic, 1, VIRTUAL_TIMER);
    assert_eq!(
        gic.set_ppi_level(1, VIRTUAL_TIMER, true),
        VcpuSet::single(1)
    );
    route(&mut gic, 41, 1);
    enable(&mut gic, 0, 41);
    assert_eq!(gic.set_spi_level(41, true), VcpuSet::single(1));
    assert_eq!(gic.send_sgi(0, 3 << 24 | 0b10), VcpuSet::EMPTY, "disabled");
    let _ = hw[0].exit(&mut gic, 0);
    assert_eq!(hw[0].enter(&mut gic, 0), LrFill::Unchanged);
    let _ = hw[1].exit(&mut gic, 1);
    assert_eq!(
        loaded(&hw[1].enter(&mut gic, 1)),
        [(VIRTUAL_TIMER, LrState::Pending), (41, LrState::Pending)]
    );
}

#[test]
fn a_group_enable_change_makes_every_vcpus_list_registers_stale() {
    let mut gic = with_pending_edge_spis(&[40]);
    let mut hw = [Hardware::default(), Hardware::default()];
    for (vcpu, hw) in hw.iter_mut().enumerate() {
        let _ = hw.enter(&mut gic, vcpu);
        let _ = hw.exit(&mut gic, vcpu);
    }
    // Group 0 off: nothing of Group 0 is pending, yet both vCPUs refill.
    let kick = crate::gic::tests::gicd_write(&mut gic, 0, 0b10);
    assert_eq!(kick, VcpuSet::single(0), "vCPU 0 holds an interrupt");
    for (vcpu, hw) in hw.iter_mut().enumerate() {
        assert!(hw.enter(&mut gic, vcpu).writes().is_some(), "vCPU {vcpu}");
    }
    // Group 1 off: the loaded Group 1 interrupt is withdrawn.
    crate::gic::tests::gicd_write(&mut gic, 0, 0);
    let _ = hw[0].exit(&mut gic, 0);
    assert!(loaded(&hw[0].enter(&mut gic, 0)).is_empty());
    assert!(!gic.has_deliverable(0));
}

/// The EL1 virtual timer's PPI.
const VIRTUAL_TIMER: u32 = crate::gic::VIRTUAL_TIMER_PPI;

#[test]
fn spis_made_active_by_isactiver_do_not_starve_a_pending_timer_interrupt() {
    // Issue 10, failure 2: on a CPU with 4 list registers, four SPIs routed to vCPU 0 made
    // active through GICD_ISACTIVER (never acknowledged by the vCPU), then its virtual timer.
    let mut gic = linux_gic(1);
    for intid in 32..36 {
        enable(&mut gic, 0, intid);
    }
    // GICD_ISACTIVER1: SPIs 32-35; INTID 35 pending too.
    crate::gic::tests::gicd_write(&mut gic, 0x304, 0xF);
    crate::gic::tests::gicd_write(&mut gic, 0x204, 1 << 3);
    enable(&mut gic, 0, VIRTUAL_TIMER);
    assert_eq!(
        gic.set_ppi_level(0, VIRTUAL_TIMER, true),
        VcpuSet::single(0)
    );
    assert!(gic.has_deliverable(0), "WFI must not wait");
    let fill = gic.fill_list_registers(0, qemu());
    // The timer is presented; the active SPIs take no list register, and active and
    // pending INTID 35 waits for its deactivation.
    assert_eq!(loaded(&fill), [(VIRTUAL_TIMER, LrState::Pending)]);
    assert!(!writes(&fill).underflow());
    // Once the guest deactivates INTID 35 (GICD_ICACTIVER1), it is delivered.
    let live = gic.live_list_registers(0);
    let lrs = writes(&fill).values()[..live].to_vec();
    crate::gic::tests::gicd_write(&mut gic, 0x384, 1 << 3);
    gic.sync_from_list_registers(0, &lrs);
    assert_eq!(
        loaded(&gic.fill_list_registers(0, qemu())),
        [(VIRTUAL_TIMER, LrState::Pending), (35, LrState::Pending)]
    );
}

#[test]
fn a_private_interrupt_the_vcpu_acknowledged_keeps_its_list_register_while_active() {
    let mut gic = linux_gic(1);
    enable(&mut gic, 0, VIRTUAL_TIMER);
    gic.set_ppi_level(0, VIRTUAL_TIMER, true);
    let fill = gic.fill_list_registers(0, qemu());
    let lrs = guest_sets(writes(&fill).values(), VIRTUAL_TIMER, LrState::Active);
    gic.sync_from_list_registers(0, &lrs);
    let irq = gic.vcpu_irq_for_tests(0, VIRTUAL_TIMER);
    assert_eq!(gic.irq(irq).active_on(), Some(0));
    assert_eq!(
        loaded(&gic.fill_list_registers(0, qemu())),
        [(VIRTUAL_TIMER, LrState::PendingActive)]
    );
}

#[test]
fn a_loaded_edge_interrupt_reads_pending_and_active_as_its_list_register_was_loaded() {
    let mut gic = with_pending_edge_spis(&[40]);
    let mut hw = Hardware::default();
    let _ = hw.enter(&mut gic, 0);
    let _ = hw.exit(&mut gic, 0);
    // GICD_ISPENDR1 and GICD_ISACTIVER1, INTID 40 is bit 8.
    assert_eq!(crate::gic::tests::gicd_read(&mut gic, 0x204), 1 << 8);
    assert_eq!(crate::gic::tests::gicd_read(&mut gic, 0x304), 0);
    // Reading changes nothing.
    assert_eq!(hw.enter(&mut gic, 0), LrFill::Unchanged);
}

/// A Linux-like GIC whose vCPU 0 has its virtual timer PPI enabled and raised by the
/// physical one (`raise_hw_ppi`), then loaded: returns the GIC and the list registers.
fn with_hw_timer_loaded() -> (VirtGic, Vec<u64>) {
    let mut gic = linux_gic(1);
    enable(&mut gic, 0, VIRTUAL_TIMER);
    assert!(gic.raise_hw_ppi(0, VIRTUAL_TIMER).contains(0));
    let fill = gic.fill_list_registers(0, qemu());
    let lrs = writes(&fill).values().to_vec();
    (gic, lrs)
}

#[test]
fn a_hardware_ppi_is_loaded_with_hw_and_its_pintid_and_no_eoi_maintenance() {
    let (_, lrs) = with_hw_timer_loaded();
    let lr = ListRegister::decode(lrs[0]);
    assert_eq!((lr.vintid, lr.state), (VIRTUAL_TIMER, LrState::Pending));
    assert!(
        lr.hw,
        "the guest's deactivation deactivates the physical PPI"
    );
    assert_eq!(u32::from(lr.pintid), VIRTUAL_TIMER);
    assert!(!lr.eoi_maintenance);
}

#[test]
fn a_hardware_ppi_in_a_list_register_or_active_stays_held() {
    let (mut gic, lrs) = with_hw_timer_loaded();
    assert_eq!(gic.settle_hw_ppi(0, VIRTUAL_TIMER, false).0, HwIrq::Held);
    // The guest acknowledged it: active, then taken back on a stale refill.
    let acked = guest_sets(&lrs, VIRTUAL_TIMER, LrState::Active);
    gic.sync_from_list_registers(0, &acked);
    let _ = gic.fill_list_registers(0, qemu());
    assert_eq!(gic.settle_hw_ppi(0, VIRTUAL_TIMER, false).0, HwIrq::Held);
}

#[test]
fn a_hardware_ppi_the_guest_deactivated_is_released_without_a_deactivation() {
    let (mut gic, lrs) = with_hw_timer_loaded();
    // Acknowledged and deactivated by the guest: the list register reads back invalid.
    gic.sync_from_list_registers(0, &guest_sets(&lrs, VIRTUAL_TIMER, LrState::Invalid));
    assert_eq!(
        gic.settle_hw_ppi(0, VIRTUAL_TIMER, true).0,
        HwIrq::Released { deactivate: false },
        "the hardware deactivated the physical PPI with the virtual one"
    );
    assert!(loaded(&gic.fill_list_registers(0, qemu())).is_empty());
}

#[test]
fn a_software_pend_of_a_hardware_ppi_the_guest_deactivated_outlives_its_source() {
    let (mut gic, lrs) = with_hw_timer_loaded();
    gic.sync_from_list_registers(0, &guest_sets(&lrs, VIRTUAL_TIMER, LrState::Invalid));
    // GICR_ISPENDR0 by the guest, the timer now off: a level interrupt's pending latch holds
    // until the interrupt is activated or GICR_ICPENDR0 clears it (IHI 0069, GICR_ISPENDR0).
    // Found by `./x chaos --irq --cpu max --seed 0x5eed --ops 355372 --only
    // 355284,355289,355296`.
    poke(&mut gic, 0, VIRTUAL_TIMER, |irq| irq.write_latch(true));
    assert_eq!(
        gic.settle_hw_ppi(0, VIRTUAL_TIMER, false).0,
        HwIrq::Released { deactivate: false }
    );
    assert_eq!(
        loaded(&gic.fill_list_registers(0, qemu())),
        vec![(VIRTUAL_TIMER, LrState::Pending)],
        "the guest's own pend is no hardware line that fell"
    );
}

#[test]
fn a_hardware_ppi_whose_pending_state_the_guest_cleared_is_deactivated_by_the_hypervisor() {
    let (mut gic, lrs) = with_hw_timer_loaded();
    // GICR_ICPENDR0 while the list register holds it pending: the write wins at the sync.
    poke(&mut gic, 0, VIRTUAL_TIMER, |irq| irq.write_latch(false));
    gic.sync_from_list_registers(0, &lrs);
    let _ = gic.fill_list_registers(0, qemu());
    assert_eq!(
        gic.settle_hw_ppi(0, VIRTUAL_TIMER, true).0,
        HwIrq::Released { deactivate: true }
    );
}

#[test]
fn a_pending_hardware_ppi_whose_source_fell_is_cleared_and_deactivated() {
    let mut gic = linux_gic(1);
    // Disabled: pending but never loaded.
    assert!(gic.raise_hw_ppi(0, VIRTUAL_TIMER).is_empty());
    assert_eq!(gic.settle_hw_ppi(0, VIRTUAL_TIMER, true).0, HwIrq::Held);
    assert_eq!(
        gic.settle_hw_ppi(0, VIRTUAL_TIMER, false).0,
        HwIrq::Released { deactivate: true }
    );
    enable(&mut gic, 0, VIRTUAL_TIMER);
    assert!(
        loaded(&gic.fill_list_registers(0, qemu())).is_empty(),
        "a level interrupt whose line fell is no longer pending"
    );
}

#[test]
fn a_pending_and_active_hardware_ppi_is_loaded_without_hw_until_deactivated() {
    let (mut gic, lrs) = with_hw_timer_loaded();
    gic.sync_from_list_registers(0, &guest_sets(&lrs, VIRTUAL_TIMER, LrState::Active));
    // GICR_ISPENDR0 while active.
    poke(&mut gic, 0, VIRTUAL_TIMER, |irq| irq.write_latch(true));
    let fill = gic.fill_list_registers(0, qemu());
    let lr = ListRegister::decode(writes(&fill).values()[0]);
    assert_eq!(lr.state, LrState::PendingActive);
    assert!(
        !lr.hw && lr.eoi_maintenance,
        "HW = 1 forbids pending and active"
    );
    // The guest deactivates the active instance: pending remains, now with HW again.
    let lrs = guest_sets(writes(&fill).values(), VIRTUAL_TIMER, LrState::Pending);
    gic.sync_from_list_registers(0, &lrs);
    let fill = gic.fill_list_registers(0, qemu());
    let lr = ListRegister::decode(writes(&fill).values()[0]);
    assert_eq!((lr.state, lr.hw), (LrState::Pending, true));
}

#[test]
fn a_hardware_ppi_no_virtual_ppi_took_is_deactivated_by_the_hypervisor() {
    let mut gic = linux_gic(1);
    assert!(gic.raise_hw_ppi(1, VIRTUAL_TIMER).is_empty(), "no vCPU 1");
    assert_eq!(
        gic.settle_hw_ppi(1, VIRTUAL_TIMER, true).0,
        HwIrq::Released { deactivate: true }
    );
    assert_eq!(
        gic.settle_hw_ppi(0, 5, true).0,
        HwIrq::Released { deactivate: true },
        "an SGI is no PPI"
    );
}

/// `ICH_VMCR_EL2` of the chaos guest as read in its hang (`./x neighbour`): `VPMR` 0xf8
/// (`ICC_PMR_EL1` = 0xff with five priority bits), `VBPR0` 2, `VBPR1` 3, `VENG1` = 1.
const CHAOS_VMCR: u64 = 0xF84C_000A;

#[test]
fn wfi_waits_while_the_guests_running_priority_holds_back_its_pending_timer() {
    // ./x neighbour, the chaos VM's hang (seed 0x62985315, vCPU 0): its op 1104, a system
    // register read of ICC_IAR1_EL1, acknowledged SGI 5 at priority 0 and never ended it
    // (ICH_AP1R0_EL2 = 1, ICH_LR0_EL2 = 0x9000000000000005, active); then its timer op waited
    // in WFI for the virtual timer's PPI at priority 0x80, which the physical one raised and
    // ICH_LR1_EL2 held (0x7080001b0000001b: pending, HW, pINTID 27).
    let (mut gic, _) = with_hw_timer_loaded();
    poke(&mut gic, 0, VIRTUAL_TIMER, |irq| irq.priority = 0x80);
    let _ = gic.fill_list_registers(0, qemu());
    let running = VirtualInterface::running_priority(&[1], 5);
    let busy = VirtualInterface::from_ich_vmcr(CHAOS_VMCR, running);
    // The model alone counts the timer as deliverable, but the virtual CPU interface never
    // signals it (its group priority is not above the running priority; bare QEMU's WFI
    // waits for ever on the same seed): Moat's WFI must wait too, not complete at once for
    // ever with the guest executing its WFI again.
    assert!(gic.has_deliverable(0));
    assert!(!gic.wakes_from_wfi(0, &busy, qemu()));
    // Once the interface would signal it (nothing active), the WFI ends.
    let idle = VirtualInterface::running_priority(&[0], 5);
    let open = VirtualInterface::from_ich_vmcr(CHAOS_VMCR, idle);
    assert!(gic.wakes_from_wfi(0, &open, qemu()));
    // An interrupt of a higher group priority than the running one preempts it.
    let running_0x80 = VirtualInterface::running_priority(&[1 << (0x80 >> 3)], 5);
    let at_0x80 = VirtualInterface::from_ich_vmcr(CHAOS_VMCR, running_0x80);
    assert!(!gic.wakes_from_wfi(0, &at_0x80, qemu()));
    poke(&mut gic, 0, VIRTUAL_TIMER, |irq| irq.priority = 0x40);
    assert!(gic.wakes_from_wfi(0, &at_0x80, qemu()));
}

#[test]
fn wfi_waits_while_the_guests_priority_mask_or_group_enable_hold_back_its_interrupts() {
    let (gic, _) = with_hw_timer_loaded();
    let idle = VirtualInterface::running_priority(&[], 5);
    // The reset interface (ICC_PMR_EL1 = 0, Group 1 off) signals nothing.
    assert!(!gic.wakes_from_wfi(0, &VirtualInterface::from_ich_vmcr(0, idle), qemu()));
    let no_group1 = VirtualInterface::from_ich_vmcr(CHAOS_VMCR & !(1 << 1), idle);
    assert!(!gic.wakes_from_wfi(0, &no_group1, qemu()));
    let open = VirtualInterface::from_ich_vmcr(CHAOS_VMCR, idle);
    assert!(gic.wakes_from_wfi(0, &open, qemu()));
}

/// A PCI function's INTx line as the VM sees it (SPI 3, INTID 35) and the physical SPI it is
/// wired to on a host bridge whose `interrupt-map` differs from the guest's (INTID 41).
const INTX: u32 = 35;
const PHYSICAL_INTX: u32 = 41;

/// A Linux-like GIC of two vCPUs whose SPI `INTX` is backed by `PHYSICAL_INTX`, enabled,
/// routed to vCPU `target`, raised by the physical interrupt, and loaded on `target`.
fn with_hw_spi_loaded(target: usize) -> (VirtGic, Vec<u64>) {
    let mut gic = linux_gic(2);
    gic.map_hw_spi(INTX, PHYSICAL_INTX).unwrap();
    enable(&mut gic, 0, INTX);
    let _ = route(&mut gic, INTX, target);
    assert!(
        gic.raise_hw_spi(INTX).contains(target),
        "the routed vCPU is kicked"
    );
    let fill = gic.fill_list_registers(target, qemu());
    let lrs = writes(&fill).values().to_vec();
    (gic, lrs)
}

#[test]
fn a_hardware_spi_is_loaded_on_its_routed_vcpu_with_hw_and_the_physical_intid() {
    let (mut gic, lrs) = with_hw_spi_loaded(1);
    let lr = ListRegister::decode(lrs[0]);
    assert_eq!((lr.vintid, lr.state), (INTX, LrState::Pending));
    assert!(
        lr.hw,
        "the guest's deactivation deactivates the physical SPI"
    );
    assert_eq!(
        u32::from(lr.pintid),
        PHYSICAL_INTX,
        "pINTID is the physical SPI the line is wired to, not the virtual INTID"
    );
    assert!(
        !lr.eoi_maintenance,
        "no maintenance interrupt for a hardware interrupt"
    );
    assert!(
        loaded(&gic.fill_list_registers(0, qemu())).is_empty(),
        "not loaded on a vCPU it is not routed to"
    );
}

#[test]
fn a_hardware_spi_the_guest_deactivated_is_released_and_raised_again_by_its_line() {
    let (mut gic, lrs) = with_hw_spi_loaded(0);
    assert_eq!(
        gic.settle_hw_spi(INTX, true).0,
        HwIrq::Held,
        "in a list register"
    );
    let active = guest_sets(&lrs, INTX, LrState::Active);
    gic.sync_from_list_registers(0, &active);
    let lrs = writes(&gic.fill_list_registers(0, qemu()))
        .values()
        .to_vec();
    assert_eq!(gic.settle_hw_spi(INTX, true).0, HwIrq::Held, "active");
    gic.sync_from_list_registers(0, &guest_sets(&lrs, INTX, LrState::Invalid));
    assert_eq!(
        gic.settle_hw_spi(INTX, true).0,
        HwIrq::Released { deactivate: false },
        "the guest's deactivation reached the physical SPI"
    );
    // The device still asserts its line: the physical SPI fires again at once.
    assert!(gic.raise_hw_spi(INTX).contains(0));
    assert_eq!(
        loaded(&gic.fill_list_registers(0, qemu())),
        vec![(INTX, LrState::Pending)]
    );
}

#[test]
fn a_hardware_spi_the_guest_cleared_or_disabled_with_its_line_low_is_deactivated_by_moat() {
    // GICD_ICPENDR while loaded: the write wins at the sync, and no guest deactivation will
    // reach the physical SPI.
    let (mut gic, lrs) = with_hw_spi_loaded(0);
    poke(&mut gic, 0, INTX, |irq| irq.write_latch(false));
    gic.sync_from_list_registers(0, &lrs);
    let _ = gic.fill_list_registers(0, qemu());
    assert_eq!(
        gic.settle_hw_spi(INTX, true).0,
        HwIrq::Released { deactivate: true }
    );
    // Disabled by the guest: pending and held while the line is high; once it falls the
    // pending state goes with it (a level-sensitive interrupt) and Moat deactivates.
    let mut gic = linux_gic(1);
    gic.map_hw_spi(INTX, PHYSICAL_INTX).unwrap();
    assert!(
        gic.raise_hw_spi(INTX).is_empty(),
        "disabled: nobody to kick"
    );
    assert_eq!(gic.settle_hw_spi(INTX, true).0, HwIrq::Held);
    assert_eq!(
        gic.settle_hw_spi(INTX, false).0,
        HwIrq::Released { deactivate: true }
    );
    enable(&mut gic, 0, INTX);
    assert!(loaded(&gic.fill_list_registers(0, qemu())).is_empty());
}

#[test]
fn an_spi_not_mapped_is_not_raised_and_is_deactivated_by_moat() {
    let mut gic = linux_gic(1);
    enable(&mut gic, 0, INTX);
    assert!(gic.raise_hw_spi(INTX).is_empty());
    assert!(loaded(&gic.fill_list_registers(0, qemu())).is_empty());
    assert_eq!(
        gic.settle_hw_spi(INTX, true).0,
        HwIrq::Released { deactivate: true }
    );
}

#[test]
fn hardware_spi_mappings_are_one_to_one_between_implemented_spis() {
    use crate::gic::{HwMapError, MAX_HW_SPIS};
    let mut gic = linux_gic(1);
    assert_eq!(gic.map_hw_spi(27, 41), Err(HwMapError::NoSuchSpi(27)));
    assert_eq!(gic.map_hw_spi(128, 41), Err(HwMapError::NoSuchSpi(128)));
    assert_eq!(
        gic.map_hw_spi(35, 30),
        Err(HwMapError::PhysicalNotAnSpi(30))
    );
    assert_eq!(
        gic.map_hw_spi(35, 1020),
        Err(HwMapError::PhysicalNotAnSpi(1020))
    );
    assert_eq!(gic.map_hw_spi(35, 41), Ok(()));
    assert_eq!(gic.map_hw_spi(35, 41), Ok(()), "the same mapping again");
    let taken = Err(HwMapError::Taken {
        intid: 35,
        pintid: 41,
    });
    assert_eq!(gic.map_hw_spi(35, 42), taken);
    assert_eq!(gic.map_hw_spi(36, 41), taken);
    for n in 1..MAX_HW_SPIS as u32 {
        assert_eq!(gic.map_hw_spi(35 + n, 41 + n), Ok(()));
    }
    assert_eq!(gic.map_hw_spi(60, 60), Err(HwMapError::Full));
}
