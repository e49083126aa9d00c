//! Property tests: no sequence of guest accesses and hypervisor inputs panics or puts an
//! interrupt into two list registers; the per-vCPU summary is always its full recomputation;
//! the list registers a simulated CPU holds are always what a full refill would write, even
//! when the fill wrote nothing; and the enable, pending and group bitmaps behave like a plain
//! array of bits.

use super::invariants::{
    check_list_register_ownership, check_summary, deliverable_by_scan, vcpu_irqs,
    wants_list_register,
};
use super::list_regs::{IchVtr, VirtualInterface};
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
    RaiseHwPpi(usize, u32),
    SettleHwPpi(usize, u32, bool),
    MapHwSpi(u32, u32),
    RaiseHwSpi(u32),
    SettleHwSpi(u32, bool),
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
        (0usize..10, 0u32..40).prop_map(|(v, i)| Input::RaiseHwPpi(v, i)),
        (0usize..10, 0u32..40, any::<bool>()).prop_map(|(v, i, a)| Input::SettleHwPpi(v, i, a)),
        (30u32..45, 30u32..45).prop_map(|(v, p)| Input::MapHwSpi(v, p)),
        (30u32..45).prop_map(Input::RaiseHwSpi),
        (30u32..45, any::<bool>()).prop_map(|(i, a)| Input::SettleHwSpi(i, a)),
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
        Input::RaiseHwPpi(vcpu, intid) => drop(gic.raise_hw_ppi(vcpu, intid)),
        Input::SettleHwPpi(vcpu, intid, asserted) => {
            let _ = gic.settle_hw_ppi(vcpu, intid, asserted);
        }
        Input::MapHwSpi(intid, pintid) => drop(gic.map_hw_spi(intid, pintid)),
        Input::RaiseHwSpi(intid) => drop(gic.raise_hw_spi(intid)),
        Input::SettleHwSpi(intid, asserted) => {
            let _ = gic.settle_hw_spi(intid, asserted);
        }
    }
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
        vmcr in any::<u64>(),
        running in any::<u8>(),
    ) {
        let mut gic = VirtGic::new(vcpus).unwrap();
        let guest = VirtualInterface::from_ich_vmcr(vmcr, running);
        for input in inputs {
            apply(&mut gic, input);
            check_list_register_ownership(&gic);
            check_summary(&gic);
            for vcpu in 0..vcpus {
                prop_assert_eq!(gic.has_deliverable(vcpu), deliverable_by_scan(&gic, vcpu));
                // A virtual CPU interface that masks nothing (both groups on, priority mask
                // 0xff above every 5-bit priority, nothing active) signals exactly what the
                // model counts as deliverable.
                let open = VirtualInterface::from_ich_vmcr(0xFF << 24 | 0b11, 0xFF);
                prop_assert_eq!(gic.wakes_from_wfi(vcpu, &open, qemu_vtr()), gic.has_deliverable(vcpu));
                // Whatever the guest's interface, what it signals is deliverable.
                prop_assert!(!gic.wakes_from_wfi(vcpu, &guest, qemu_vtr()) || gic.has_deliverable(vcpu));
            }
        }
    }

    /// The one-pass choice of what the list registers get is the full sort of every
    /// interrupt that wants one: active (acknowledged by the vCPU) first, then by priority,
    /// then by INTID (private interrupts before SPIs).
    #[test]
    fn list_register_choice_is_the_sorted_order_of_the_candidates(
        vcpus in 1usize..=MAX_VCPUS,
        inputs in prop::collection::vec(input(), 0..100),
        states in prop::collection::vec(interrupt_state(), PRIVATE_COUNT as usize + DEFAULT_SPIS),
        acknowledgers in prop::collection::vec(prop::option::of(0usize..MAX_VCPUS), PRIVATE_COUNT as usize + DEFAULT_SPIS),
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
        let states = states.into_iter().zip(acknowledgers);
        for (irq, ((enabled, latch, active, group1, priority), acknowledger)) in irqs.zip(states) {
            // A private interrupt can only have been acknowledged by its own vCPU.
            let acknowledger = match irq {
                IrqRef::Private { vcpu, .. } => acknowledger.map(|_| vcpu),
                IrqRef::Spi(_) => acknowledger.filter(|&v| v < vcpus),
            };
            let record = gic.irq_mut(irq);
            record.enabled = enabled;
            record.latch = latch;
            record.active = active;
            record.set_active_on(acknowledger.filter(|_| active));
            record.group1 = group1;
            record.priority = priority;
        }
        let _ = gic.resummarise();
        check_summary(&gic);
        for vcpu in 0..vcpus {
            let chosen = gic.best_candidates(vcpu, limit);
            let mut all: Vec<_> = vcpu_irqs(vcpu)
                .enumerate()
                .filter(|&(_, irq)| wants_list_register(&gic, vcpu, irq))
                .map(|(order, irq)| ((!gic.irq(irq).active, gic.irq(irq).priority, order), irq))
                .collect();
            all.sort_by_key(|&(key, _)| key);
            let expected: Vec<IrqRef> = all.into_iter().map(|(_, irq)| irq).take(limit).collect();
            prop_assert_eq!(chosen.irqs(vcpu).collect::<Vec<_>>(), expected);
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
fn edge_gic(vcpus: usize, priorities: &[u8], routes: &[usize]) -> (VirtGic, Vec<Cpu>) {
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
    let _ = gic.resummarise();
    (gic, vec![Cpu::default(); vcpus])
}

/// One vCPU runs: the guest acknowledges up to `acks` pending interrupts (highest priority
/// first, as the list registers come) and completes every active one.
fn run_guest(gic: &mut VirtGic, cpu: &mut Cpu, vcpu: usize, acks: usize) {
    cpu.enter(gic, vcpu, QEMU_VTR);
    let mut acked = 0;
    for value in &mut cpu.lrs {
        let mut lr = list_regs::ListRegister::decode(*value);
        lr.state = match lr.state {
            LrState::Pending if acked < acks => {
                acked += 1;
                LrState::Invalid
            }
            LrState::Active => LrState::Invalid,
            LrState::PendingActive => LrState::Pending,
            other => other,
        };
        *value = lr.encode();
    }
    cpu.exit(gic, vcpu);
}

/// QEMU's `ICH_VTR_EL2`: 4 list registers, 5 priority bits.
const QEMU_VTR: u64 = 0x90b8_0003;

/// The hardware a vCPU runs on, as far as the list registers go: the hypervisor follows the
/// protocol of `list_regs`'s documentation, the guest changes list registers as a CPU
/// interface does.
#[derive(Clone, Copy, Debug, Default)]
struct Cpu {
    /// `ICH_LR<n>_EL2`.
    lrs: [u64; list_regs::MAX_LIST_REGS],
    /// `ICH_HCR_EL2`.
    hcr: u64,
    /// The list registers as the last entry left them.
    entered: [u64; list_regs::MAX_LIST_REGS],
    running: bool,
    /// A kick has been sent since the last entry: the vCPU is about to exit.
    kicked: bool,
}

impl Cpu {
    /// Before entry: writes what the fill asks for, nothing when it is unchanged.
    fn enter(&mut self, gic: &mut VirtGic, vcpu: usize, vtr: u64) {
        if let Some(writes) = gic.fill_list_registers(vcpu, IchVtr::decode(vtr)).writes() {
            self.lrs[..writes.values().len()].copy_from_slice(writes.values());
            self.hcr = writes.ich_hcr_el2();
        }
        self.entered = self.lrs;
        self.running = true;
        self.kicked = false;
    }

    /// After the guest ran: reads back the live list registers only.
    fn exit(&mut self, gic: &mut VirtGic, vcpu: usize) {
        let live = gic.live_list_registers(vcpu);
        let _ = gic.sync_from_list_registers(vcpu, &self.lrs[..live]);
        self.running = false;
    }

    /// The guest acknowledges (pending → active) or deactivates (active → invalid, pending
    /// and active → pending) the interrupt in list register `n`.
    fn guest(&mut self, n: usize, acknowledge: bool) {
        let mut lr = list_regs::ListRegister::decode(self.lrs[n]);
        lr.state = match (lr.state, acknowledge) {
            (LrState::Pending, true) => LrState::Active,
            (LrState::Active, false) => LrState::Invalid,
            (LrState::PendingActive, false) => LrState::Pending,
            (state, _) => state,
        };
        self.lrs[n] = lr.encode();
    }
}

/// What a full refill of vCPU `vcpu`'s list registers would write now: the values of all
/// `list_regs` of them and `ICH_HCR_EL2`.
fn full_refill(gic: &VirtGic, vcpu: usize, vtr: u64) -> (Vec<u64>, u64) {
    let mut refilled = gic.clone();
    refilled.mark_stale(vcpu);
    let fill = refilled.fill_list_registers(vcpu, IchVtr::decode(vtr));
    let writes = fill.writes().expect("a stale vCPU's fill writes");
    let mut values = writes.values().to_vec();
    values.resize(IchVtr::decode(vtr).list_regs, 0);
    (values, writes.ich_hcr_el2())
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
        let (mut gic, mut cpus) = edge_gic(vcpus, &priorities, &routes);
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
                Event::Round(acks) => {
                    for (v, cpu) in cpus.iter_mut().enumerate() {
                        run_guest(&mut gic, cpu, v, acks);
                    }
                }
            }
        }
        // Enough rounds to drain every interrupt four list registers at a time.
        let most = (32 + DEFAULT_SPIS) * 2;
        for _ in 0..most {
            for (v, cpu) in cpus.iter_mut().enumerate() {
                run_guest(&mut gic, cpu, v, 4);
            }
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

/// A model operation aimed at the registers and inputs that decide what the list registers
/// hold (random offsets rarely reach them).
#[derive(Clone, Debug)]
enum Op {
    /// A word write to the distributor (the SPIs' bit, priority and configuration registers).
    Distributor(u64, u32),
    /// A word write to vCPU `.0`'s `SGI_base` frame.
    Redistributor(usize, u64, u32),
    /// `GICD_IROUTER<n>` of SPI `.0`: to vCPU `.1` (which may not exist), or 1 of N.
    Route(u32, Option<usize>),
    /// `GICD_CTLR`.
    Ctlr(u32),
    /// `GICR_WAKER.ProcessorSleep` of a vCPU.
    Waker(usize, bool),
    SpiLevel(u32, bool),
    PpiLevel(usize, u32, bool),
    Sgi(usize, u64),
    /// A GICv2 distributor write by vCPU `.0` at `.1` of `.2` (banked registers are its own).
    V2Distributor(usize, u64, u32),
    /// `GICD_ITARGETSR<n>` byte of SPI `.0`: the vCPU mask `.1`.
    V2Targets(u32, u8),
    /// `GICD_SGIR` written by vCPU `.0`.
    V2Sgir(usize, u32),
    /// `GICD_SPENDSGIR<n>` (`.3`) or `GICD_CPENDSGIR<n>` byte of SGI `.1` of vCPU `.0`: the
    /// sources `.2`.
    V2PendSgi(usize, u32, u8, bool),
}

/// A register of the shared block: a bit register (words `words`), `IPRIORITYR` or `ICFGR`.
fn block_register(words: core::ops::Range<u64>) -> impl Strategy<Value = (u64, u32)> {
    let bit_regs = prop_oneof![
        Just(0x080u64),
        Just(0x100),
        Just(0x180),
        Just(0x200),
        Just(0x280),
        Just(0x300),
        Just(0x380)
    ];
    let value = prop_oneof![any::<u32>(), (0u32..32).prop_map(|bit| 1 << bit)];
    let priority = prop_oneof![Just(0x00u32), Just(0x40), Just(0xA0)];
    let priorities = (priority.clone(), priority).prop_map(|(a, b)| a | (b << 16));
    let (first, last) = (words.start, words.end);
    prop_oneof![
        4 => (bit_regs, words).prop_map(|(base, word)| base + 4 * word),
        1 => (8 * first..8 * last).prop_map(|word| 0x400 + 4 * word),
        1 => (2 * first..2 * last).prop_map(|word| 0xC00 + 4 * word),
    ]
    .prop_flat_map(move |offset| {
        let value = if (0x400..0x800).contains(&offset) {
            priorities.clone().boxed()
        } else {
            value.clone().boxed()
        };
        (Just(offset), value)
    })
}

fn op(vcpus: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => block_register(1..2).prop_map(|(offset, value)| Op::Distributor(offset, value)),
        1 => block_register(2..4).prop_map(|(offset, value)| Op::Distributor(offset, value)),
        4 => (0..vcpus, block_register(0..1))
            .prop_map(|(v, (offset, value))| Op::Redistributor(v, offset, value)),
        1 => (32u32..40, prop::option::of(0..=vcpus)).prop_map(|(i, v)| Op::Route(i, v)),
        1 => (0u32..4).prop_map(Op::Ctlr),
        1 => (0..vcpus, any::<bool>()).prop_map(|(v, s)| Op::Waker(v, s)),
        3 => (32u32..40, any::<bool>()).prop_map(|(i, l)| Op::SpiLevel(i, l)),
        3 => (0..vcpus, 25u32..30, any::<bool>()).prop_map(|(v, i, l)| Op::PpiLevel(v, i, l)),
        2 => (0..vcpus, 0u64..1 << 41).prop_map(|(v, x)| Op::Sgi(v, x)),
    ]
}

fn perform(gic: &mut VirtGic, op: Op) -> VcpuSet {
    let write = |offset, value: u64| Access::write(offset, 4, value);
    match op {
        Op::Distributor(offset, value) => {
            gic.distributor_access(write(offset, value.into())).1.kick
        }
        Op::Redistributor(vcpu, offset, value) => {
            let base = vcpu as u64 * REDISTRIBUTOR_STRIDE + 0x1_0000;
            gic.redistributor_access(write(base + offset, value.into()))
                .1
                .kick
        }
        Op::Route(intid, target) => {
            let value = target.map_or(1 << 31, |v| irouter_for(Affinity::of_vcpu(v)));
            let access = Access::write(0x6000 + 8 * u64::from(intid), 8, value);
            gic.distributor_access(access).1.kick
        }
        Op::Ctlr(value) => gic.distributor_access(write(0, value.into())).1.kick,
        Op::Waker(vcpu, sleep) => {
            let value = if sleep { 0b10 } else { 0 };
            let offset = vcpu as u64 * REDISTRIBUTOR_STRIDE + 0x14;
            gic.redistributor_access(write(offset, value)).1.kick
        }
        Op::SpiLevel(intid, level) => gic.set_spi_level(intid, level),
        Op::PpiLevel(vcpu, intid, level) => gic.set_ppi_level(vcpu, intid, level),
        Op::Sgi(sender, value) => gic.send_sgi(sender, value),
        Op::V2Distributor(vcpu, offset, value) => {
            gic.distributor_v2_access(vcpu, write(offset, value.into()))
                .1
                .kick
        }
        Op::V2Targets(intid, mask) => {
            let access = Access::write(0x800 + u64::from(intid), 1, mask.into());
            gic.distributor_v2_access(0, access).1.kick
        }
        Op::V2Sgir(sender, value) => {
            gic.distributor_v2_access(sender, write(0xF00, value.into()))
                .1
                .kick
        }
        Op::V2PendSgi(vcpu, sgi, sources, set) => {
            let base = if set { 0xF20 } else { 0xF10 };
            let access = Access::write(base + u64::from(sgi), 1, sources.into());
            gic.distributor_v2_access(vcpu, access).1.kick
        }
    }
}

/// The operations on a GICv2 of `vcpus` vCPUs: the shared bit, priority and configuration
/// registers (banked for INTIDs 0–31), SPI targets (several vCPUs among them), SGIs from
/// `GICD_SGIR` and the per-source pending registers, the group enables and the lines.
fn op_v2(vcpus: usize) -> impl Strategy<Value = Op> {
    let sgir = (0u32..4, 0u32..0x100, 0u32..4)
        .prop_map(|(filter, targets, intid)| filter << 24 | targets << 16 | intid);
    prop_oneof![
        4 => (0..vcpus, block_register(0..2))
            .prop_map(|(v, (offset, value))| Op::V2Distributor(v, offset, value)),
        2 => (32u32..40, 0u8..16).prop_map(|(i, mask)| Op::V2Targets(i, mask)),
        3 => (0..vcpus, sgir).prop_map(|(v, value)| Op::V2Sgir(v, value)),
        1 => (0..vcpus, 0u32..4, 0u8..16, any::<bool>())
            .prop_map(|(v, sgi, sources, set)| Op::V2PendSgi(v, sgi, sources, set)),
        1 => (0..vcpus, 0u32..4).prop_map(|(v, value)| Op::V2Distributor(v, 0, value)),
        3 => (32u32..40, any::<bool>()).prop_map(|(i, l)| Op::SpiLevel(i, l)),
        3 => (0..vcpus, 25u32..30, any::<bool>()).prop_map(|(v, i, l)| Op::PpiLevel(v, i, l)),
    ]
}

/// A step of the simulation: a model operation, or a vCPU entering, exiting, or its guest
/// acknowledging or deactivating list register `n`.
#[derive(Clone, Debug)]
enum Step {
    Op(Op),
    Enter(usize),
    Exit(usize),
    Guest(usize, usize, bool),
}

fn step(vcpus: usize) -> impl Strategy<Value = Step> {
    steps_of(op(vcpus).boxed(), vcpus)
}

fn step_v2(vcpus: usize) -> impl Strategy<Value = Step> {
    steps_of(op_v2(vcpus).boxed(), vcpus)
}

fn steps_of(ops: BoxedStrategy<Op>, vcpus: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => ops.prop_map(Step::Op),
        2 => (0..vcpus).prop_map(Step::Enter),
        2 => (0..vcpus).prop_map(Step::Exit),
        3 => (0..vcpus, 0..list_regs::MAX_LIST_REGS, any::<bool>())
            .prop_map(|(v, n, ack)| Step::Guest(v, n, ack)),
    ]
}

/// The number of list registers of a simulated CPU: `ICH_VTR_EL2` with `PRIbits` 5.
fn vtr() -> impl Strategy<Value = u64> {
    prop_oneof![Just(1u64), Just(2), Just(4), Just(16)].prop_map(|n| 0x90b8_0000 | (n - 1))
}

/// Checks what the steps leave, after `step` on a GIC whose deliverability was `before`.
fn check_step(gic: &VirtGic, cpus: &[Cpu], step: &Step, kick: VcpuSet, before: &[bool], vtr: u64) {
    check_list_register_ownership(gic);
    check_summary(gic);
    for (vcpu, cpu) in cpus.iter().enumerate() {
        let deliverable = gic.has_deliverable(vcpu);
        assert_eq!(deliverable, deliverable_by_scan(gic, vcpu), "vCPU {vcpu}");
        if matches!(*step, Step::Enter(entered) if entered == vcpu) {
            // What the vCPU runs with is what a full refill would write, whether or not this
            // fill wrote anything.
            let (values, hcr) = full_refill(gic, vcpu, vtr);
            assert_eq!(
                &cpu.lrs[..values.len()],
                &values[..],
                "vCPU {vcpu} list registers"
            );
            assert_eq!(cpu.hcr, hcr, "vCPU {vcpu} ICH_HCR_EL2");
        }
        if !kick.contains(vcpu) {
            // A vCPU that was not kicked misses nothing: no interrupt became deliverable for
            // it (one waiting in WFI would sleep on), and, running, the interrupts it was
            // entered with are still the right ones (at worst it asks for an underflow
            // maintenance interrupt it no longer needs).
            assert!(!deliverable || before[vcpu], "vCPU {vcpu} not woken");
            if cpu.running && !cpu.kicked && matches!(step, Step::Op(_)) {
                let (values, hcr) = full_refill(gic, vcpu, vtr);
                assert_eq!(
                    &cpu.entered[..values.len()],
                    &values[..],
                    "vCPU {vcpu} not kicked"
                );
                assert!(cpu.hcr >= hcr, "vCPU {vcpu} needs an underflow interrupt");
            }
        }
    }
}

proptest! {
    /// A CPU per vCPU runs the hypervisor's protocol while the guest and the devices work
    /// the GIC: what each vCPU runs with is always what a full refill would write (a fill
    /// that wrote nothing left nothing stale), the summary is always its recomputation, and
    /// every vCPU that must see a change is kicked.
    #[test]
    fn list_registers_always_hold_what_a_full_refill_would_write(
        (vcpus, steps) in (1usize..=4).prop_flat_map(|v| (Just(v), prop::collection::vec(step(v), 0..200))),
        vtr in vtr(),
    ) {
        // Both groups enabled and every redistributor awake, as a guest runs most of the time.
        let mut gic = VirtGic::new(vcpus).unwrap();
        let _ = perform(&mut gic, Op::Ctlr(0b11));
        for vcpu in 0..vcpus {
            let _ = perform(&mut gic, Op::Waker(vcpu, false));
        }
        simulate(gic, vcpus, steps, vtr);
    }

    /// The same for a GICv2 (`GicArch::V2`): banked distributor registers, SPIs targeting
    /// one or several vCPUs (whose place follows which vCPUs are busy), SGIs with their
    /// sources, active from one source and pending from another.
    #[test]
    fn gicv2_list_registers_always_hold_what_a_full_refill_would_write(
        (vcpus, steps) in (1usize..=4).prop_flat_map(|v| (Just(v), prop::collection::vec(step_v2(v), 0..200))),
        vtr in vtr(),
    ) {
        // Both groups and every interrupt enabled, SPIs 32–39 targeting every vCPU, as a
        // guest that spreads its device interrupts would leave them.
        let mut gic = VirtGic::new_v2(vcpus).unwrap();
        let _ = perform(&mut gic, Op::V2Distributor(0, 0, 0b11));
        for vcpu in 0..vcpus {
            let _ = perform(&mut gic, Op::V2Distributor(vcpu, 0x100, u32::MAX));
        }
        let _ = perform(&mut gic, Op::V2Distributor(0, 0x104, u32::MAX));
        let _ = perform(&mut gic, Op::V2Distributor(0, 0x820, u32::MAX));
        let _ = perform(&mut gic, Op::V2Distributor(0, 0x824, u32::MAX));
        simulate(gic, vcpus, steps, vtr);
    }
}

/// Runs `steps` on `gic` with a simulated CPU per vCPU, checking every step (`check_step`).
fn simulate(mut gic: VirtGic, vcpus: usize, steps: Vec<Step>, vtr: u64) {
    let mut cpus = vec![Cpu::default(); vcpus];
    let list_regs = IchVtr::decode(vtr).list_regs;
    for step in steps {
        let before: Vec<bool> = (0..vcpus).map(|v| gic.has_deliverable(v)).collect();
        let mut kick = VcpuSet::EMPTY;
        match step {
            Step::Op(ref op) => kick = perform(&mut gic, op.clone()),
            Step::Enter(v) if !cpus[v].running => cpus[v].enter(&mut gic, v, vtr),
            Step::Exit(v) if cpus[v].running => cpus[v].exit(&mut gic, v),
            Step::Guest(v, n, ack) if cpus[v].running && n < list_regs => cpus[v].guest(n, ack),
            _ => continue,
        }
        // Entering, exiting and the guest's own work kick nobody in this model of them.
        if !matches!(step, Step::Op(_)) {
            kick = VcpuSet::first(vcpus);
        }
        check_step(&gic, &cpus, &step, kick, &before, vtr);
        for v in kick.iter() {
            cpus[v].kicked = true;
        }
    }
}

/// QEMU's `ICH_VTR_EL2`: 4 list registers, 5 priority and preemption bits.
fn qemu_vtr() -> IchVtr {
    IchVtr::decode(0x90b8_0003)
}

/// The reads the unsynced sweep makes of `window` on a GIC of `vcpus` vCPUs: every word of
/// the register blocks, bytes of the priority (and a GICv2's target and SGI pending)
/// registers, the routes and the identification registers.
fn swept_reads(window: GicWindow, vcpus: usize) -> Vec<Access> {
    let words = |range: core::ops::Range<u64>| range.step_by(4).map(|o| Access::read(o, 4));
    let bytes = |range: core::ops::Range<u64>| range.map(|o| Access::read(o, 1));
    match window {
        GicWindow::Distributor => words(0..0x1000)
            .chain(bytes(0x400..0x448))
            .chain((0x6100..0x6140).step_by(8).map(|o| Access::read(o, 8)))
            .chain(words(0x6100..0x6140))
            .chain(words(0xFFD0..0x1_0000))
            .collect(),
        GicWindow::Redistributors => (0..vcpus as u64)
            .flat_map(|v| {
                let base = v * REDISTRIBUTOR_STRIDE;
                words(base..base + 0x20)
                    .chain(core::iter::once(Access::read(base + 8, 8)))
                    .chain(words(base + 0xFFD0..base + 0x1_0000))
                    .chain(words(base + 0x1_0000..base + 0x1_0D00))
                    .chain(bytes(base + 0x1_0400..base + 0x1_0420))
            })
            .collect(),
        GicWindow::V2Distributor => words(0..0x1000)
            .chain(bytes(0x400..0x448))
            .chain(bytes(0x800..0x848))
            .chain(bytes(0xF10..0xF30))
            .collect(),
    }
}

/// The general path's read: the reading vCPU synced (by the caller), then the window's access.
fn synced_read(gic: &mut VirtGic, window: GicWindow, vcpu: usize, access: Access) -> u64 {
    match window {
        GicWindow::Distributor => gic.distributor_access(access).0,
        GicWindow::Redistributors => gic.redistributor_access(access).0,
        GicWindow::V2Distributor => gic.distributor_v2_access(vcpu, access).0,
    }
}

/// Runs `steps` with a simulated CPU per vCPU, then, for every vCPU whose guest is running
/// (its list registers possibly changed since they were loaded), reads every register of
/// `window` unsynced and checks each answer against the general path's read after that
/// vCPU's sync, that the pending and active registers are refused, and that the unsynced
/// reads changed nothing.
fn sweep_unsynced_reads(
    mut gic: VirtGic,
    vcpus: usize,
    steps: Vec<Step>,
    vtr: u64,
    window: GicWindow,
) {
    let mut cpus = vec![Cpu::default(); vcpus];
    let list_regs = IchVtr::decode(vtr).list_regs;
    for step in steps {
        match step {
            Step::Op(op) => drop(perform(&mut gic, op)),
            Step::Enter(v) if !cpus[v].running => cpus[v].enter(&mut gic, v, vtr),
            Step::Exit(v) if cpus[v].running => cpus[v].exit(&mut gic, v),
            Step::Guest(v, n, ack) if cpus[v].running && n < list_regs => cpus[v].guest(n, ack),
            _ => {}
        }
    }
    let before = format!("{gic:?}");
    for (vcpu, cpu) in cpus.iter().enumerate().filter(|(_, cpu)| cpu.running) {
        let mut synced = gic.clone();
        cpu.clone().exit(&mut synced, vcpu);
        let mut answered = 0;
        for access in swept_reads(window, vcpus) {
            let Some(data) = gic.read_unsynced(window, vcpu, access) else {
                continue;
            };
            answered += 1;
            let expected = synced_read(&mut synced, window, vcpu, access);
            assert_eq!(data, expected, "vCPU {vcpu} {window:?} {access:?}");
        }
        assert!(answered > 0, "no read of {window:?} was answered unsynced");
    }
    assert_eq!(
        format!("{gic:?}"),
        before,
        "an unsynced read changed the model"
    );
}

proptest! {
    /// The registers the exit path reads in place, without reading back the list registers
    /// the guest may have changed since they were loaded, read what the general path reads
    /// after that sync: for a GICv3's distributor and redistributors and a GICv2's
    /// distributor, whatever the guest acknowledged or deactivated meanwhile.
    #[test]
    fn unsynced_reads_answer_what_a_synced_read_would(
        (vcpus, steps) in (1usize..=4).prop_flat_map(|v| (Just(v), prop::collection::vec(step(v), 0..120))),
        v2_steps in prop::collection::vec(step_v2(4), 0..120),
        vtr in vtr(),
    ) {
        let mut gic = VirtGic::new(vcpus).unwrap();
        let _ = perform(&mut gic, Op::Ctlr(0b11));
        for vcpu in 0..vcpus {
            let _ = perform(&mut gic, Op::Waker(vcpu, false));
        }
        sweep_unsynced_reads(gic.clone(), vcpus, steps.clone(), vtr, GicWindow::Distributor);
        sweep_unsynced_reads(gic, vcpus, steps, vtr, GicWindow::Redistributors);
        let mut v2 = VirtGic::new_v2(4).unwrap();
        let _ = perform(&mut v2, Op::V2Distributor(0, 0, 0b11));
        for vcpu in 0..4 {
            let _ = perform(&mut v2, Op::V2Distributor(vcpu, 0x100, u32::MAX));
        }
        let _ = perform(&mut v2, Op::V2Distributor(0, 0x104, u32::MAX));
        let _ = perform(&mut v2, Op::V2Distributor(0, 0x820, u32::MAX));
        sweep_unsynced_reads(v2, 4, v2_steps, vtr, GicWindow::V2Distributor);
    }
}
