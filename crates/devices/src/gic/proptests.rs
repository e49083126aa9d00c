//! Property tests: no sequence of guest accesses and hypervisor inputs panics or puts an
//! interrupt into two list registers, and the enable, pending and group bitmaps behave like a
//! plain array of bits.

use super::list_regs::IchVtr;
use super::*;
use crate::Access;
use proptest::prelude::*;

/// One input to the GIC, from the guest or the hypervisor.
#[derive(Clone, Debug)]
enum Input {
    Distributor(Access),
    Redistributor(Access),
    SpiLevel(u32, bool),
    PpiLevel(usize, u32, bool),
    Sgi(usize, u64),
    Sync(usize, Vec<u64>),
    Fill(usize, u64),
}

fn access(window: u64) -> impl Strategy<Value = Access> {
    let size = prop_oneof![Just(1u8), Just(2), Just(4), Just(8), 0u8..=16];
    // Mostly aligned offsets so that accesses reach registers, sometimes any offset.
    let offset = prop_oneof![(0..window / 4).prop_map(|w| w * 4), 0..window + 0x100];
    (offset, size, any::<Option<u64>>()).prop_map(|(offset, size, write)| Access {
        offset,
        size,
        write,
    })
}

fn input() -> impl Strategy<Value = Input> {
    let redist_window = REDISTRIBUTOR_STRIDE * (MAX_VCPUS as u64 + 1);
    prop_oneof![
        access(DISTRIBUTOR_SIZE).prop_map(Input::Distributor),
        access(redist_window).prop_map(Input::Redistributor),
        (0u32..1100, any::<bool>()).prop_map(|(i, l)| Input::SpiLevel(i, l)),
        (0usize..10, 0u32..40, any::<bool>()).prop_map(|(v, i, l)| Input::PpiLevel(v, i, l)),
        (0usize..10, any::<u64>()).prop_map(|(v, x)| Input::Sgi(v, x)),
        (0usize..10, prop::collection::vec(any::<u64>(), 0..6))
            .prop_map(|(v, lrs)| Input::Sync(v, lrs)),
        (0usize..10, any::<u64>()).prop_map(|(v, vtr)| Input::Fill(v, vtr)),
    ]
}

fn apply(gic: &mut VirtGic, input: Input) {
    match input {
        Input::Distributor(access) => drop(gic.distributor_access(access)),
        Input::Redistributor(access) => drop(gic.redistributor_access(access)),
        Input::SpiLevel(intid, level) => drop(gic.set_spi_level(intid, level)),
        Input::PpiLevel(vcpu, intid, level) => drop(gic.set_ppi_level(vcpu, intid, level)),
        Input::Sgi(sender, value) => drop(gic.send_sgi(sender, value)),
        Input::Sync(vcpu, lrs) => drop(gic.sync_from_list_registers(vcpu, &lrs)),
        Input::Fill(vcpu, vtr) => drop(gic.fill_list_registers(vcpu, IchVtr::decode(vtr))),
    }
}

/// Every interrupt marked as held by a vCPU's list registers is in exactly that vCPU's shadow.
fn check_list_register_ownership(gic: &VirtGic) {
    let mut held = 0;
    for (vcpu, shadow) in gic.shadows.iter().enumerate() {
        for &value in shadow.loaded() {
            let intid = list_regs::ListRegister::decode(value).vintid;
            let irq = gic.vcpu_irq_for_tests(vcpu, intid);
            assert_eq!(
                gic.irq(irq).lr_of(),
                Some(vcpu),
                "INTID {intid} of vCPU {vcpu}"
            );
            held += 1;
        }
    }
    let private = gic.private.iter().flatten();
    let marked = private.chain(&gic.spis).filter(|irq| irq.lr_of().is_some());
    assert_eq!(marked.count(), held);
}

/// An interrupt's enable, pending latch, active state, group and priority, from few
/// priorities so that ties are common.
fn interrupt_state() -> impl Strategy<Value = (bool, bool, bool, bool, u8)> {
    let priority = prop_oneof![Just(0x00u8), Just(0x40), Just(0xA0)];
    (
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.1),
        any::<bool>(),
        priority,
    )
}

proptest! {
    #[test]
    fn random_inputs_never_panic_and_never_load_an_interrupt_twice(
        vcpus in 1usize..=MAX_VCPUS,
        inputs in prop::collection::vec(input(), 0..200),
    ) {
        let mut gic = VirtGic::new(vcpus).unwrap();
        for input in inputs {
            apply(&mut gic, input);
            check_list_register_ownership(&gic);
        }
    }

    /// The one-pass choice of what the list registers get is the full sort of every
    /// interrupt that wants one: active first, then by priority, then by INTID (private
    /// interrupts before SPIs).
    #[test]
    fn list_register_choice_is_the_sorted_order_of_the_candidates(
        vcpus in 1usize..=MAX_VCPUS,
        inputs in prop::collection::vec(input(), 0..100),
        states in prop::collection::vec(interrupt_state(), PRIVATE_COUNT as usize + DEFAULT_SPIS),
        limit in 0usize..=list_regs::MAX_LIST_REGS + 1,
    ) {
        let mut gic = VirtGic::new(vcpus).unwrap();
        for input in inputs {
            apply(&mut gic, input);
        }
        // Many candidates, with equal priorities, on top of whatever the inputs left.
        gic.enables.grp0 = true;
        gic.enables.grp1 = true;
        let irqs = (0..PRIVATE_COUNT)
            .map(|intid| IrqRef::Private { vcpu: 0, intid })
            .chain((0..DEFAULT_SPIS).map(IrqRef::Spi));
        for (irq, (enabled, latch, active, group1, priority)) in irqs.zip(states) {
            let record = gic.irq_mut(irq);
            record.enabled = enabled;
            record.latch = latch;
            record.active = active;
            record.group1 = group1;
            record.priority = priority;
        }
        for vcpu in 0..vcpus {
            let chosen = gic.best_candidates(vcpu, limit);
            let mut all: Vec<_> = (0..PRIVATE_COUNT)
                .map(|intid| IrqRef::Private { vcpu, intid })
                .chain((0..DEFAULT_SPIS).map(IrqRef::Spi))
                .enumerate()
                .filter(|&(_, irq)| {
                    let record = gic.irq(irq);
                    let wanted = record.active || gic.pending_enabled(irq);
                    record.lr_of().is_none() && wanted && gic.owner(irq) == Some(vcpu)
                })
                .map(|(order, irq)| ((!gic.irq(irq).active, gic.irq(irq).priority, order), irq))
                .collect();
            all.sort_by_key(|&(key, _)| key);
            let expected: Vec<IrqRef> = all.into_iter().map(|(_, irq)| irq).take(limit).collect();
            prop_assert_eq!(chosen.irqs(), &expected[..]);
        }
    }
}

/// The set/clear register pairs under test, by offset of the set register (the clear register
/// follows 0x80 later), and IGROUPR.
#[derive(Clone, Copy, Debug)]
enum BitmapReg {
    Enable,
    Pending,
    Group,
}

/// The words the test writes: the five first of each register (INTIDs 0–159).
const WORDS: usize = 5;

/// The plain model: one bool per (bank, INTID) for each bitmap.
#[derive(Clone, Debug)]
struct Reference {
    bits: [[[bool; WORDS * 32]; MAX_VCPUS + 1]; 3],
}

impl Reference {
    /// Bank `MAX_VCPUS` is the distributor's (SPIs), bank `v` < `MAX_VCPUS` vCPU `v`'s.
    fn apply(
        &mut self,
        vcpus: usize,
        bank: usize,
        word: usize,
        reg: BitmapReg,
        clear: bool,
        value: u32,
    ) {
        let reaches = |intid: usize| {
            if bank == MAX_VCPUS {
                (32..32 + DEFAULT_SPIS).contains(&intid)
            } else {
                bank < vcpus && intid < 32
            }
        };
        for bit in 0..32 {
            let intid = word * 32 + bit;
            if !reaches(intid) {
                continue;
            }
            let one = value & (1 << bit) != 0;
            let slot = &mut self.bits[reg as usize][bank][intid];
            match (reg, clear) {
                (BitmapReg::Group, _) => *slot = one,
                (_, false) if one => *slot = true,
                (_, true) if one => *slot = false,
                _ => {}
            }
        }
    }
}

fn offset_of(reg: BitmapReg, clear: bool, word: usize) -> u64 {
    let base = match reg {
        BitmapReg::Group => 0x080,
        BitmapReg::Enable => 0x100,
        BitmapReg::Pending => 0x200,
    };
    let clear = if clear && !matches!(reg, BitmapReg::Group) {
        0x80
    } else {
        0
    };
    base + clear + 4 * word as u64
}

fn bank_access(bank: usize, offset: u64, write: Option<u64>) -> (bool, Access) {
    let distributor = bank == MAX_VCPUS;
    let base = if distributor {
        0
    } else {
        bank as u64 * REDISTRIBUTOR_STRIDE + 0x1_0000
    };
    let access = Access {
        offset: base + offset,
        size: 4,
        write,
    };
    (distributor, access)
}

fn gic_access(gic: &mut VirtGic, bank: usize, offset: u64, write: Option<u64>) -> u64 {
    match bank_access(bank, offset, write) {
        (true, access) => gic.distributor_access(access).0,
        (false, access) => gic.redistributor_access(access).0,
    }
}

fn bitmap_write() -> impl Strategy<Value = (usize, usize, BitmapReg, bool, u32)> {
    let reg = prop_oneof![
        Just(BitmapReg::Enable),
        Just(BitmapReg::Pending),
        Just(BitmapReg::Group)
    ];
    (0..=MAX_VCPUS, 0..WORDS, reg, any::<bool>(), any::<u32>())
}

proptest! {
    #[test]
    fn enable_pending_and_group_bitmaps_match_a_plain_bit_array(
        vcpus in 1usize..=MAX_VCPUS,
        writes in prop::collection::vec(bitmap_write(), 0..100),
    ) {
        let mut gic = VirtGic::new(vcpus).unwrap();
        let mut reference = Reference { bits: [[[false; WORDS * 32]; MAX_VCPUS + 1]; 3] };
        for (bank, word, reg, clear, value) in writes {
            gic_access(&mut gic, bank, offset_of(reg, clear, word), Some(u64::from(value)));
            reference.apply(vcpus, bank, word, reg, clear, value);
            for reg in [BitmapReg::Enable, BitmapReg::Pending, BitmapReg::Group] {
                let expected: u32 = (0..32)
                    .filter(|&bit| reference.bits[reg as usize][bank][word * 32 + bit])
                    .map(|bit| 1 << bit)
                    .sum();
                for clear in [false, true] {
                    let read = gic_access(&mut gic, bank, offset_of(reg, clear, word), None);
                    prop_assert_eq!(read, u64::from(expected), "{:?} bank {} word {}", reg, bank, word);
                }
            }
        }
    }
}

/// An edge on an interrupt, or a round of every vCPU running a guest that acknowledges and
/// completes what its list registers offer (some of it: `acks` says how many per vCPU).
#[derive(Clone, Debug)]
enum Event {
    SpiEdge(u32),
    PpiEdge(usize, u32),
    Sgi(usize, u64),
    Round(usize),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (32u32..128).prop_map(Event::SpiEdge),
        (0..MAX_VCPUS, 16u32..32).prop_map(|(v, i)| Event::PpiEdge(v, i)),
        (0..MAX_VCPUS, 0u64..1 << 41).prop_map(|(v, x)| Event::Sgi(v, x)),
        (0usize..3).prop_map(Event::Round),
    ]
}

/// A GIC whose every interrupt is enabled, Group 1 and edge-triggered, with random
/// priorities and SPI routes.
fn edge_gic(vcpus: usize, priorities: &[u8], routes: &[usize]) -> VirtGic {
    let mut gic = VirtGic::new(vcpus).unwrap();
    gic.enables.grp1 = true;
    let private = gic.private.iter_mut().flatten();
    for (irq, &priority) in private.chain(&mut gic.spis).zip(priorities.iter().cycle()) {
        irq.enabled = true;
        irq.group1 = true;
        irq.edge = true;
        irq.priority = priority;
    }
    for (route, &vcpu) in gic.routes.iter_mut().zip(routes.iter().cycle()) {
        *route = Affinity::of_vcpu(vcpu % vcpus).mpidr();
    }
    gic
}

/// One vCPU runs: the guest acknowledges up to `acks` pending interrupts (highest priority
/// first, as the list registers come) and completes every active one.
fn run_guest(gic: &mut VirtGic, vcpu: usize, acks: usize) {
    let fill = gic.fill_list_registers(vcpu, IchVtr::decode(0x90b8_0003));
    let mut acked = 0;
    let lrs: Vec<u64> = fill
        .values()
        .iter()
        .map(|&value| {
            let mut lr = list_regs::ListRegister::decode(value);
            lr.state = match lr.state {
                LrState::Pending if acked < acks => {
                    acked += 1;
                    LrState::Invalid
                }
                LrState::Active => LrState::Invalid,
                LrState::PendingActive => LrState::Pending,
                other => other,
            };
            lr.encode()
        })
        .collect();
    gic.sync_from_list_registers(vcpu, &lrs);
}

use list_regs::LrState;

proptest! {
    #[test]
    fn a_guest_that_completes_what_it_is_offered_drains_every_edge(
        vcpus in 1usize..=4,
        priorities in prop::collection::vec(any::<u8>(), 1..16),
        routes in prop::collection::vec(0usize..4, 1..8),
        events in prop::collection::vec(event(), 0..60),
    ) {
        let mut gic = edge_gic(vcpus, &priorities, &routes);
        for event in events {
            match event {
                Event::SpiEdge(intid) => {
                    gic.set_spi_level(intid, true);
                    gic.set_spi_level(intid, false);
                }
                Event::PpiEdge(vcpu, intid) => {
                    gic.set_ppi_level(vcpu, intid, true);
                    gic.set_ppi_level(vcpu, intid, false);
                }
                Event::Sgi(sender, value) => drop(gic.send_sgi(sender % vcpus, value)),
                Event::Round(acks) => (0..vcpus).for_each(|v| run_guest(&mut gic, v, acks)),
            }
        }
        // Enough rounds to drain every interrupt four list registers at a time.
        let most = (32 + DEFAULT_SPIS) * 2;
        for _ in 0..most {
            (0..vcpus).for_each(|v| run_guest(&mut gic, v, 4));
        }
        let private = gic.private.iter().take(vcpus).flatten();
        for (n, irq) in private.chain(&gic.spis).enumerate() {
            prop_assert!(!irq.pending() && !irq.active, "interrupt #{} left {:?}", n, irq);
        }
    }
}

/// A write to the priority registers: bank (as in [`Reference`]), byte offset, width, value.
fn priority_write() -> impl Strategy<Value = (usize, u64, u8, u32)> {
    let width = prop_oneof![Just(1u8), Just(4)];
    (0..=MAX_VCPUS, 0u64..WORDS as u64 * 32, width, any::<u32>()).prop_map(
        |(bank, byte, width, value)| {
            (
                bank,
                byte / u64::from(width) * u64::from(width),
                width,
                value,
            )
        },
    )
}

fn priority_reaches(vcpus: usize, bank: usize, intid: usize) -> bool {
    if bank == MAX_VCPUS {
        (32..32 + DEFAULT_SPIS).contains(&intid)
    } else {
        bank < vcpus && intid < 32
    }
}

proptest! {
    #[test]
    fn priority_bytes_match_a_plain_byte_array(
        vcpus in 1usize..=MAX_VCPUS,
        writes in prop::collection::vec(priority_write(), 0..100),
    ) {
        let mut gic = VirtGic::new(vcpus).unwrap();
        let mut reference = [[0u8; WORDS * 32]; MAX_VCPUS + 1];
        for (bank, byte, width, value) in writes {
            let (distributor, mut access) = bank_access(bank, 0x400 + byte, Some(u64::from(value)));
            access.size = width;
            if distributor {
                gic.distributor_access(access);
            } else {
                gic.redistributor_access(access);
            }
            for (index, data) in value.to_le_bytes().iter().take(usize::from(width)).enumerate() {
                let intid = usize::try_from(byte).unwrap() + index;
                if priority_reaches(vcpus, bank, intid) {
                    reference[bank][intid] = *data;
                }
            }
            for word in 0..WORDS * 8 {
                let read = gic_access(&mut gic, bank, 0x400 + 4 * word as u64, None);
                let expected = u32::from_le_bytes(reference[bank][4 * word..4 * word + 4].try_into().unwrap());
                prop_assert_eq!(read, u64::from(expected), "bank {} word {}", bank, word);
            }
        }
    }
}
