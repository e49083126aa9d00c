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
