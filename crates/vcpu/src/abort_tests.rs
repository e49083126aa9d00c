//! Tests of the guest-abort decision: one per row of SPEC §2 and per boundary (`2^S − 1`,
//! `2^S`, `2^P − 1`, `2^P`), for data and instruction aborts from EL0 and EL1, and for faults
//! on the guest's stage-1 walk. The walks are the real walker's over small guest tables, and
//! the injected syndrome is checked through the real injection engine.

extern crate std;

use super::*;
use crate::entry::{CpuFeatures, Entry, GuestContext};
use crate::inject::inject_abort;
use crate::s1walk::{Access, DescSize, GuestMemory, Stage1Regs, WalkRead, walk_aarch64};
use moat_arm::parange::PaRange;
use std::collections::BTreeMap;

/// `S` = 40, `P` = 44: a `cortex-a72`-like VM with the default IPA size.
const S: u32 = 40;
const P: u32 = 44;
const RAM: IpaRange = IpaRange {
    base: Ipa(0x4000_0000),
    size: 128 << 20,
};
const UART: IpaRange = IpaRange {
    base: Ipa(0x0900_0000),
    size: 0x1000,
};
const HOLE: u64 = 0x5000_0000;
/// `SPSR_EL2` of a trap from AArch64 EL1h.
const EL1H: u64 = 0x3C5;
/// `AT S1E1R, X0`.
const AT_S1E1R: u32 = 0xD508_7800;

/// The guest's stage-1 tables (4K granule, 48-bit VA from level 0), in its RAM.
const L0: u64 = 0x4010_0000;
const L1: u64 = 0x4010_1000;
const L2: u64 = 0x4010_2000;
const L3: u64 = 0x4010_3000;
/// The VA the tables map: L0 index 0, L1 index 2, L2 index 0, L3 index 0.
const VA: u64 = 0x8000_0000;
const TABLE: u64 = 0b11;
const PAGE: u64 = 0b11 | 1 << 10;

/// Guest memory: the VM's RAM holding the descriptors written, zero elsewhere in RAM.
struct Guest {
    tables: BTreeMap<u64, u64>,
    regs: Stage1Regs,
    /// The instruction at the faulting PC.
    insn: Option<Instruction>,
    controls: El1Controls,
}

impl GuestMemory for Guest {
    fn read_descriptor(&self, ipa: Ipa, _size: DescSize) -> Result<u64, WalkRead> {
        if RAM.offset_of(ipa).is_some() {
            Ok(self.tables.get(&ipa.0).copied().unwrap_or(0))
        } else if UART.offset_of(ipa).is_some() {
            Err(WalkRead::DeviceWindow)
        } else {
            Err(WalkRead::OutsideRam)
        }
    }
}

impl GuestView for Guest {
    fn walk(&self, va: Va) -> WalkReport {
        walk_aarch64(
            &self.regs,
            PaRange::from_bits(P as u8).unwrap(),
            va,
            Access::Data,
            self,
        )
    }

    fn instruction(&self) -> Option<Instruction> {
        self.insn
    }

    fn controls(&self) -> El1Controls {
        self.controls
    }
}

impl Guest {
    fn mmu_off() -> Self {
        Self {
            tables: BTreeMap::new(),
            regs: Stage1Regs::default(),
            insn: None,
            controls: El1Controls::default(),
        }
    }

    /// MMU on, `TCR_EL1.IPS` = 48 (above `P`: Moat must walk), T0SZ = 16.
    fn mmu_on(l1_entry: u64, l3_entry: u64) -> Self {
        let tables = BTreeMap::from([
            (L0, L1 | TABLE),
            (L1 + 2 * 8, l1_entry),
            (L2, L3 | TABLE),
            (L3, l3_entry),
        ]);
        let regs = Stage1Regs {
            sctlr_el1: 1,
            tcr_el1: (0b101 << 32) | 16,
            ttbr0_el1: L0,
            ttbr1_el1: 0,
        };
        Self {
            tables,
            regs,
            insn: None,
            controls: El1Controls::default(),
        }
    }

    /// The VA maps to `target` through a 4K page (leaf at level 3).
    fn page_to(target: u64) -> Self {
        Self::mmu_on(L2 | TABLE, target | PAGE)
    }

    /// The level-1 descriptor of the VA points at a level-2 table at `target`.
    fn table_at(target: u64) -> Self {
        Self::mmu_on(target | TABLE, 0)
    }
}

fn vm(mmu_on: bool, format: GuestFormat, hole_policy: HolePolicy) -> VmView<'static> {
    VmView {
        ipa_bits: S,
        pa_bits: P,
        ram: &[RAM],
        devices: &[UART],
        hole_policy,
        format,
        mmu_on,
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Load,
    Store,
    Fetch,
    CacheMaintenance,
}

/// `ESR_EL2` of a stage-2 translation fault at level 1 taken by `kind` (lower EL, `IL` = 1,
/// `ISV` = 0).
fn esr_el2(kind: Kind, s1ptw: bool) -> u64 {
    let s1ptw = u64::from(s1ptw) << 7;
    let base = match kind {
        Kind::Load => 0x24 << 26,
        Kind::Store => (0x24 << 26) | 1 << 6,
        Kind::CacheMaintenance => (0x24 << 26) | 1 << 8 | 1 << 6,
        Kind::Fetch => 0x20 << 26,
    };
    base | 1 << 25 | s1ptw | 0x05
}

/// The abort as the hardware reports it: `ipa` is the access's IPA (or the descriptor's).
fn trap(kind: Kind, ipa: u64, va: u64, s1ptw: bool) -> GuestAbort {
    let hpfar = (ipa >> 12) << 4;
    let far = if s1ptw {
        va
    } else {
        (va & !0xFFF) | (ipa & 0xFFF)
    };
    GuestAbort::from_trap(esr_el2(kind, s1ptw), far, hpfar, EL1H).expect("an abort")
}

fn decide_mmu_off(kind: Kind, ipa: u64) -> Decision {
    decide(
        &trap(kind, ipa, ipa, false),
        &vm(false, GuestFormat::Aarch64, HolePolicy::Abort),
        &Guest::mmu_off(),
    )
}

/// `ESR_EL1` and `FAR_EL1` after injecting `decision` into a guest at EL1h or EL0t.
fn injected(decision: Decision, from_el0: bool) -> (u64, Option<u64>) {
    let Decision::Inject(abort) = decision else {
        panic!("not an injection: {decision:?}")
    };
    let ctx = GuestContext {
        pc: 0x4008_0000,
        spsr_el2: if from_el0 { 0 } else { 0x3C5 },
        vbar_el1: 0x4000_0000,
        features: CpuFeatures::default(),
        ..GuestContext::default()
    };
    match inject_abort(&ctx, &abort) {
        Entry::Aarch64(e) => (e.esr_el1, e.far_el1),
        Entry::Aarch32(_) => panic!("an AArch64 guest"),
    }
}

const EC_IABT_LOWER: u64 = 0x20;
const EC_IABT_SAME: u64 = 0x21;
const EC_DABT_LOWER: u64 = 0x24;
const EC_DABT_SAME: u64 = 0x25;
const FSC_EXTERNAL: u64 = 0x10;
const FSC_ADDRESS_SIZE_L0: u64 = 0x00;

/// Checks the full injected syndrome for every access kind from EL0 and EL1.
fn check_boundary(ipa: u64, fsc: u64) {
    for from_el0 in [false, true] {
        for kind in [Kind::Load, Kind::Store, Kind::Fetch] {
            let (esr, far) = injected(decide_mmu_off(kind, ipa), from_el0);
            let ec = match (kind, from_el0) {
                (Kind::Fetch, true) => EC_IABT_LOWER,
                (Kind::Fetch, false) => EC_IABT_SAME,
                (_, true) => EC_DABT_LOWER,
                (_, false) => EC_DABT_SAME,
            };
            let wnr = u64::from(matches!(kind, Kind::Store)) << 6;
            let expected = ec << 26 | 1 << 25 | wnr | fsc;
            assert_eq!(
                esr,
                expected,
                "{kind:?} at {ipa:#x} from EL{}",
                u8::from(!from_el0)
            );
            assert_eq!(far, Some(ipa), "FAR_EL1 is the faulting VA");
        }
    }
}

#[test]
fn hole_just_below_2_pow_s_gets_a_synchronous_external_abort() {
    check_boundary((1 << S) - 8, FSC_EXTERNAL);
}

#[test]
fn ipa_at_2_pow_s_gets_a_synchronous_external_abort() {
    check_boundary(1 << S, FSC_EXTERNAL);
}

#[test]
fn ipa_just_below_2_pow_p_gets_a_synchronous_external_abort() {
    check_boundary((1 << P) - 8, FSC_EXTERNAL);
}

#[test]
fn ipa_at_2_pow_p_with_the_mmu_off_gets_an_address_size_fault_at_level_0() {
    check_boundary(1 << P, FSC_ADDRESS_SIZE_L0);
}

#[test]
fn ipa_far_beyond_2_pow_p_gets_an_address_size_fault_at_level_0() {
    check_boundary(0xFFFF_FFFF_F000, FSC_ADDRESS_SIZE_L0);
}

#[test]
fn ram_is_mapped_not_injected() {
    assert_eq!(decide_mmu_off(Kind::Load, 0x4000_1000), Decision::MapRam);
    assert_eq!(decide_mmu_off(Kind::Fetch, 0x4000_1000), Decision::MapRam);
}

#[test]
fn data_access_to_a_device_window_is_emulated_at_its_offset() {
    assert_eq!(
        decide_mmu_off(Kind::Store, 0x0900_0018),
        Decision::Emulate {
            device: 0,
            offset: 0x18
        }
    );
}

#[test]
fn instruction_fetch_from_a_device_window_gets_a_prefetch_external_abort() {
    let (esr, far) = injected(decide_mmu_off(Kind::Fetch, 0x0900_0000), false);
    assert_eq!(esr, EC_IABT_SAME << 26 | 1 << 25 | FSC_EXTERNAL);
    assert_eq!(far, Some(0x0900_0000));
}

#[test]
fn hole_with_raz_wi_policy_completes_data_accesses_but_still_aborts_fetches() {
    let view = vm(
        false,
        GuestFormat::Aarch64,
        HolePolicy::ReadAsZeroWriteIgnore,
    );
    let guest = Guest::mmu_off();
    for kind in [Kind::Load, Kind::Store] {
        let d = decide(&trap(kind, HOLE, HOLE, false), &view, &guest);
        assert_eq!(d, Decision::ReadAsZeroWriteIgnore, "{kind:?}");
    }
    let d = decide(&trap(Kind::Fetch, HOLE, HOLE, false), &view, &guest);
    assert!(matches!(
        d,
        Decision::Inject(Abort {
            cause: AbortCause::External,
            ..
        })
    ));
}

#[test]
fn cache_maintenance_with_nothing_behind_its_address_is_a_no_op() {
    for ipa in [HOLE, 1 << S, (1 << P) - 64] {
        assert_eq!(
            decide_mmu_off(Kind::CacheMaintenance, ipa),
            Decision::SkipInstruction,
            "{ipa:#x}"
        );
    }
    assert_eq!(
        decide_mmu_off(Kind::CacheMaintenance, 0x0900_0000),
        Decision::SkipInstruction
    );
}

#[test]
fn cache_maintenance_beyond_2_pow_p_gets_an_address_size_fault_with_cm_and_wnr() {
    let (esr, _) = injected(decide_mmu_off(Kind::CacheMaintenance, 1 << P), false);
    assert_eq!(
        esr,
        EC_DABT_SAME << 26 | 1 << 25 | 1 << 8 | 1 << 6 | FSC_ADDRESS_SIZE_L0
    );
}

#[test]
fn mmu_on_page_beyond_2_pow_p_gets_the_address_size_fault_of_its_level_3_descriptor() {
    let guest = Guest::page_to(1 << P);
    let view = vm(true, GuestFormat::Aarch64, HolePolicy::Abort);
    let d = decide(&trap(Kind::Load, 1 << P, VA, false), &view, &guest);
    let (esr, far) = injected(d, false);
    assert_eq!(esr & 0x3F, 0x03, "address size fault, level 3");
    assert_eq!(far, Some(VA), "FAR_EL1 is the VA, not the IPA");
}

#[test]
fn mmu_on_page_in_2_pow_s_to_2_pow_p_gets_an_external_abort_with_the_va() {
    let guest = Guest::page_to(1 << S);
    let view = vm(true, GuestFormat::Aarch64, HolePolicy::Abort);
    let (esr, far) = injected(
        decide(&trap(Kind::Store, 1 << S, VA, false), &view, &guest),
        true,
    );
    assert_eq!(esr, EC_DABT_LOWER << 26 | 1 << 25 | 1 << 6 | FSC_EXTERNAL);
    assert_eq!(far, Some(VA));
}

#[test]
fn mmu_on_walk_that_no_longer_reaches_the_address_is_retried() {
    // The guest remapped the page to RAM after the fault: the hardware will tell the truth.
    let guest = Guest::page_to(0x4020_0000);
    let view = vm(true, GuestFormat::Aarch64, HolePolicy::Abort);
    assert_eq!(
        decide(&trap(Kind::Load, 1 << P, VA, false), &view, &guest),
        Decision::Retry
    );
}

#[test]
fn walk_reading_a_hole_gets_an_external_abort_on_the_walk_at_the_reading_level() {
    let guest = Guest::table_at(HOLE);
    let view = vm(true, GuestFormat::Aarch64, HolePolicy::Abort);
    for (from_el0, ec) in [(false, EC_DABT_SAME), (true, EC_DABT_LOWER)] {
        let (esr, far) = injected(
            decide(&trap(Kind::Load, HOLE, VA, true), &view, &guest),
            from_el0,
        );
        assert_eq!(
            esr,
            ec << 26 | 1 << 25 | 0x16,
            "SEA on walk, level 2; S1PTW is 0"
        );
        assert_eq!(far, Some(VA));
    }
}

#[test]
fn walk_reading_beyond_2_pow_s_or_a_device_gets_an_external_abort_on_the_walk() {
    let view = vm(true, GuestFormat::Aarch64, HolePolicy::Abort);
    for table in [1 << S, (1 << P) - 0x1000, 0x0900_0000] {
        let guest = Guest::table_at(table);
        let d = decide(&trap(Kind::Fetch, table, VA, true), &view, &guest);
        let (esr, _) = injected(d, false);
        assert_eq!(
            esr,
            EC_IABT_SAME << 26 | 1 << 25 | 0x16,
            "table at {table:#x}"
        );
    }
}

#[test]
fn walk_reading_beyond_2_pow_p_gets_an_address_size_fault_at_the_holding_descriptor() {
    let guest = Guest::table_at(1 << P);
    let view = vm(true, GuestFormat::Aarch64, HolePolicy::Abort);
    let (esr, far) = injected(
        decide(&trap(Kind::Load, 1 << P, VA, true), &view, &guest),
        false,
    );
    assert_eq!(
        esr,
        EC_DABT_SAME << 26 | 1 << 25 | 0x01,
        "address size fault, level 1"
    );
    assert_eq!(far, Some(VA));
}

#[test]
fn at_instruction_meeting_a_table_beyond_2_pow_p_gets_par_not_a_data_abort() {
    let mut guest = Guest::table_at(1 << P);
    guest.insn = Some(Instruction::A64(AT_S1E1R));
    let view = vm(true, GuestFormat::Aarch64, HolePolicy::Abort);
    let d = decide(
        &trap(Kind::CacheMaintenance, 1 << P, VA, true),
        &view,
        &guest,
    );
    assert_eq!(
        d,
        Decision::AddressTranslationFault(AbortCause::AddressSize { level: Level::L1 })
    );
}

#[test]
fn at_instruction_meeting_a_hole_gets_a_data_abort_with_cm_and_wnr() {
    let mut guest = Guest::table_at(HOLE);
    guest.insn = Some(Instruction::A64(AT_S1E1R));
    let view = vm(true, GuestFormat::Aarch64, HolePolicy::Abort);
    let d = decide(&trap(Kind::CacheMaintenance, HOLE, VA, true), &view, &guest);
    let (esr, _) = injected(d, false);
    assert_eq!(esr, EC_DABT_SAME << 26 | 1 << 25 | 1 << 8 | 1 << 6 | 0x16);
}

#[test]
fn short_descriptor_guest_gets_an_external_abort_instead_of_an_address_size_fault() {
    let view = vm(false, GuestFormat::Aarch32Short, HolePolicy::Abort);
    let d = decide(
        &trap(Kind::Load, 1 << P, 1 << P, false),
        &view,
        &Guest::mmu_off(),
    );
    assert!(matches!(
        d,
        Decision::Inject(Abort {
            cause: AbortCause::External,
            ..
        })
    ));
}

#[test]
fn aarch32_long_descriptor_pa_size_is_capped_at_40_bits() {
    let mut view = vm(false, GuestFormat::Aarch32Long, HolePolicy::Abort);
    view.ipa_bits = 36;
    assert_eq!(view.effective_pa_bits(), 40);
    let d = decide(
        &trap(Kind::Load, 1 << 40, 1 << 40, false),
        &view,
        &Guest::mmu_off(),
    );
    let level = Level::L0;
    assert!(
        matches!(d, Decision::Inject(Abort { cause: AbortCause::AddressSize { level: l }, .. }) if l == level)
    );
}

#[test]
fn faults_moat_never_causes_stop_the_vm_instead_of_guessing() {
    let permission = (0x24 << 26) | 1 << 25 | 0x0F;
    let abort = GuestAbort::from_trap(permission, 0x4000_0000, 0x40_0000 << 4, EL1H).unwrap();
    let d = decide(
        &abort,
        &vm(false, GuestFormat::Aarch64, HolePolicy::Abort),
        &Guest::mmu_off(),
    );
    assert!(matches!(d, Decision::Unexpected(_)));
}

#[test]
fn a_real_external_abort_from_the_bus_is_reflected_as_one() {
    let sea = (0x24 << 26) | 1 << 25 | 0x10;
    let abort = GuestAbort::from_trap(sea, 0x4000_0000, 0, EL1H).unwrap();
    assert_eq!(
        abort.ipa, None,
        "HPFAR_EL2 is not valid for an external abort"
    );
    let d = decide(
        &abort,
        &vm(false, GuestFormat::Aarch64, HolePolicy::Abort),
        &Guest::mmu_off(),
    );
    assert!(matches!(
        d,
        Decision::Inject(Abort {
            cause: AbortCause::External,
            ..
        })
    ));
}

#[test]
fn other_exception_classes_are_not_aborts() {
    assert_eq!(GuestAbort::from_trap(0x5A00_0000, 0, 0, EL1H), None, "HVC");
}

/// A data abort with a valid instruction syndrome: a single register of `bytes` bytes.
fn trap_isv(kind: Kind, ipa: u64, bytes: u64, acquire_release: bool) -> GuestAbort {
    let sas = bytes.trailing_zeros() as u64;
    let isv = 1 << 24 | sas << 22 | u64::from(acquire_release) << 14;
    let hpfar = (ipa >> 12) << 4;
    GuestAbort::from_trap(esr_el2(kind, false) | isv, ipa, hpfar, EL1H).expect("an abort")
}

const FSC_ALIGNMENT: u64 = 0x21;
/// `LDP X0, X1, [X2]`, `LDXR X0, [X1]`, `DC CVAP`/`CVADP`/`CIVAC, X0`, `DC ZVA, X0`.
const LDP_X: u32 = 0xA940_0440;
const LDXR_X: u32 = 0xC85F_7C20;
const DC_CVAP: u32 = 0xD50B_7C20;
const DC_CVADP: u32 = 0xD50B_7D20;
const DC_CIVAC: u32 = 0xD50B_7E20;
const DC_ZVA: u32 = 0xD50B_7420;

fn mmu_off_with(insn: u32) -> Guest {
    Guest {
        insn: Some(Instruction::A64(insn)),
        ..Guest::mmu_off()
    }
}

fn alignment_fault(decision: Decision, write: bool, va: u64) {
    let (esr, far) = injected(decision, false);
    let wnr = u64::from(write) << 6;
    assert_eq!(esr, EC_DABT_SAME << 26 | 1 << 25 | wnr | FSC_ALIGNMENT);
    assert_eq!(far, Some(va));
}

#[test]
fn misaligned_load_from_a_device_with_the_mmu_off_is_an_alignment_fault_not_emulated() {
    let vm = vm(false, GuestFormat::Aarch64, HolePolicy::Abort);
    let load = trap_isv(Kind::Load, 0x0900_0002, 4, false);
    alignment_fault(decide(&load, &vm, &Guest::mmu_off()), false, 0x0900_0002);
    // Aligned to its size, the same window is emulated; a byte is never misaligned.
    let aligned = trap_isv(Kind::Load, 0x0900_0004, 4, false);
    assert!(matches!(
        decide(&aligned, &vm, &Guest::mmu_off()),
        Decision::Emulate { .. }
    ));
    let byte = trap_isv(Kind::Load, 0x0900_0003, 1, false);
    assert!(matches!(
        decide(&byte, &vm, &Guest::mmu_off()),
        Decision::Emulate { .. }
    ));
}

#[test]
fn misaligned_store_to_a_hole_or_beyond_2_pow_s_with_the_mmu_off_is_an_alignment_fault() {
    let vm = vm(false, GuestFormat::Aarch64, HolePolicy::Abort);
    for ipa in [HOLE + 1, (1 << S) + 6] {
        let store = trap_isv(Kind::Store, ipa, 8, false);
        alignment_fault(decide(&store, &vm, &Guest::mmu_off()), true, ipa);
    }
    // The read-as-zero policy does not hide it either: the check is at stage 1.
    let raz = self::vm(
        false,
        GuestFormat::Aarch64,
        HolePolicy::ReadAsZeroWriteIgnore,
    );
    let store = trap_isv(Kind::Store, HOLE + 2, 4, false);
    alignment_fault(decide(&store, &raz, &Guest::mmu_off()), true, HOLE + 2);
}

#[test]
fn address_size_fault_at_2_pow_p_comes_before_the_device_alignment_check() {
    let vm = vm(false, GuestFormat::Aarch64, HolePolicy::Abort);
    let load = trap_isv(Kind::Load, (1 << P) + 2, 4, false);
    let (esr, _) = injected(decide(&load, &vm, &Guest::mmu_off()), false);
    assert_eq!(esr & 0x3F, FSC_ADDRESS_SIZE_L0);
}

#[test]
fn pair_to_a_device_is_checked_per_register_from_the_decoded_instruction() {
    let vm = vm(false, GuestFormat::Aarch64, HolePolicy::Abort);
    let guest = mmu_off_with(LDP_X);
    let misaligned = trap(Kind::Load, 0x0900_0004, 0x0900_0004, false);
    alignment_fault(decide(&misaligned, &vm, &guest), false, 0x0900_0004);
    let aligned = trap(Kind::Load, 0x0900_0008, 0x0900_0008, false);
    assert!(matches!(
        decide(&aligned, &vm, &guest),
        Decision::Emulate { .. }
    ));
}

/// `MAIR_EL1`: Attr0 = Device-nGnRnE, Attr1 = Normal write-back.
const MAIR: u64 = 0xFF00;

fn mmu_on_page(target: u64, attr_index: u64) -> Guest {
    let mut guest = Guest::page_to(target);
    if let Some(l3) = guest.tables.get_mut(&L3) {
        *l3 |= attr_index << 2;
    }
    guest.controls.mair = MAIR;
    guest
}

#[test]
fn mmu_on_misaligned_access_faults_on_a_device_page_and_not_on_a_normal_one() {
    let vm = vm(true, GuestFormat::Aarch64, HolePolicy::Abort);
    let load = trap_isv(Kind::Load, HOLE + 2, 4, false);
    let load = GuestAbort {
        va: Va(VA + 2),
        ..load
    };
    alignment_fault(decide(&load, &vm, &mmu_on_page(HOLE, 0)), false, VA + 2);
    let normal = decide(&load, &vm, &mmu_on_page(HOLE, 1));
    let (esr, _) = injected(normal, false);
    assert_eq!(
        esr & 0x3F,
        FSC_EXTERNAL,
        "Normal memory: the hole's external abort"
    );
}

#[test]
fn misaligned_exclusive_is_an_alignment_fault_on_any_memory_type_and_before_the_walk() {
    let vm = vm(true, GuestFormat::Aarch64, HolePolicy::Abort);
    let mut guest = mmu_on_page(HOLE, 1);
    guest.insn = Some(Instruction::A64(LDXR_X));
    let access = GuestAbort {
        va: Va(VA + 4),
        ..trap(Kind::Load, HOLE + 4, VA + 4, false)
    };
    alignment_fault(decide(&access, &vm, &guest), false, VA + 4);
    let on_walk = trap(Kind::Load, L1, VA + 4, true);
    alignment_fault(decide(&on_walk, &vm, &guest), false, VA + 4);
    // With FEAT_LSE2 an exclusive within a 16-byte quantity need not be aligned.
    guest.controls.lse2 = true;
    let (esr, _) = injected(decide(&access, &vm, &guest), false);
    assert_eq!(esr & 0x3F, FSC_EXTERNAL);
}

#[test]
fn sctlr_a_makes_every_misaligned_access_an_alignment_fault() {
    let vm = vm(true, GuestFormat::Aarch64, HolePolicy::Abort);
    let mut guest = mmu_on_page(HOLE, 1);
    guest.controls.sctlr = 1 | 1 << 1;
    let load = GuestAbort {
        va: Va(VA + 2),
        ..trap_isv(Kind::Load, HOLE + 2, 4, false)
    };
    alignment_fault(decide(&load, &vm, &guest), false, VA + 2);
}

/// An instruction abort at the misaligned `pc`, from the PSTATE `spsr`.
fn fetch_at(pc: u64, spsr: u64) -> GuestAbort {
    let hpfar = (pc >> 12) << 4;
    GuestAbort::from_trap(esr_el2(Kind::Fetch, false), pc, hpfar, spsr).expect("an abort")
}

#[test]
fn fetch_from_a_misaligned_pc_in_a_hole_or_device_is_a_pc_alignment_fault() {
    let vm = vm(false, GuestFormat::Aarch64, HolePolicy::Abort);
    for pc in [HOLE + 2, 0x0900_0001, (1 << S) + 3, (1 << P) + 2] {
        let (esr, far) = injected(decide(&fetch_at(pc, EL1H), &vm, &Guest::mmu_off()), false);
        assert_eq!(esr, 0x8A00_0000, "EC 0x22, IL, ISS 0 at {pc:#x}");
        assert_eq!(far, Some(pc), "FAR_EL1 = the misaligned PC");
    }
    let aligned = decide(&fetch_at(HOLE + 4, EL1H), &vm, &Guest::mmu_off());
    assert_eq!(injected(aligned, false).0 & 0x3F, FSC_EXTERNAL);
}

#[test]
fn aarch32_pc_alignment_is_bit_1_in_a32_and_bit_0_in_t32() {
    const USR_A32: u64 = 0x10;
    const USR_T32: u64 = 0x30;
    let vm = vm(false, GuestFormat::Aarch32Long, HolePolicy::Abort);
    let a32 = decide(&fetch_at(HOLE + 2, USR_A32), &vm, &Guest::mmu_off());
    let Decision::Inject(abort) = a32 else {
        panic!("{a32:?}")
    };
    assert_eq!(abort.cause, AbortCause::Alignment);
    // A T32 instruction at +2 is aligned: the fetch's own fault.
    let t32 = decide(&fetch_at(HOLE + 2, USR_T32), &vm, &Guest::mmu_off());
    let Decision::Inject(abort) = t32 else {
        panic!("{t32:?}")
    };
    assert_eq!(abort.cause, AbortCause::External);
}

#[test]
fn dc_cvap_and_cvadp_reported_with_cm_0_are_no_ops_on_holes_and_devices() {
    let vm = vm(false, GuestFormat::Aarch64, HolePolicy::Abort);
    for insn in [DC_CVAP, DC_CVADP, DC_CIVAC] {
        for ipa in [HOLE, 0x0900_0000, 1 << S] {
            let access = trap(Kind::Load, ipa, ipa, false);
            assert_eq!(
                decide(&access, &vm, &mmu_off_with(insn)),
                Decision::SkipInstruction,
                "{insn:#x} at {ipa:#x}"
            );
        }
    }
}

#[test]
fn dc_zva_of_device_memory_is_an_alignment_fault_however_aligned() {
    let vm = vm(false, GuestFormat::Aarch64, HolePolicy::Abort);
    for ipa in [HOLE, 0x0900_0000, 1 << S] {
        let zva = trap(Kind::Store, ipa, ipa, false);
        alignment_fault(decide(&zva, &vm, &mmu_off_with(DC_ZVA)), true, ipa);
    }
    // At 2^P the address size fault of the MMU-off output comes first.
    let beyond = trap(Kind::Store, 1 << P, 1 << P, false);
    let (esr, _) = injected(decide(&beyond, &vm, &mmu_off_with(DC_ZVA)), false);
    assert_eq!(esr & 0x3F, FSC_ADDRESS_SIZE_L0);
}

#[test]
fn dc_zva_of_a_normal_page_follows_the_table() {
    let vm = vm(true, GuestFormat::Aarch64, HolePolicy::Abort);
    let mut guest = mmu_on_page(HOLE, 1);
    guest.insn = Some(Instruction::A64(DC_ZVA));
    let zva = GuestAbort {
        va: Va(VA),
        ..trap(Kind::Store, HOLE, VA, false)
    };
    let (esr, _) = injected(decide(&zva, &vm, &guest), false);
    assert_eq!(esr & 0x3F, FSC_EXTERNAL);
}

mod decide_plain_agrees_with_decide {
    use super::*;
    use crate::frame::TrapFrame;
    use crate::mmio::decode_syndrome_access;
    use crate::plain_abort::{PlainAbort, PlainOutcome, decide_plain};
    use proptest::prelude::*;

    fn frame(esr: u64, far: u64, hpfar: u64, spsr: u64, x: u64) -> TrapFrame {
        TrapFrame {
            x: core::array::from_fn(|n| x.rotate_left(n as u32)),
            pc: 0x4008_0000,
            pstate: spsr,
            esr,
            far,
            hpfar,
        }
    }

    proptest! {
        /// Whenever the plain decision answers, `decide` answers the same for a guest with its
        /// MMU off or on (tables, an instruction that is no load, alignment checks on), and the
        /// access is the one the syndrome describes; for any syndrome, address and hole policy.
        #[test]
        fn whenever_it_answers(
            iss in any::<u32>(),
            isv in prop::bool::weighted(0.8),
            dfsc in prop_oneof![0x04u32..=0x07, 0u32..0x40],
            data in prop::bool::weighted(0.8),
            lower in any::<bool>(),
            far in prop_oneof![
                3 => UART.base.0..UART.base.0 + UART.size + 0x10,
                1 => HOLE..HOLE + 0x10,
                1 => (1u64 << S) - 0x10..(1u64 << S) + 0x10,
                1 => (1u64 << P) - 0x10..(1u64 << P) + 0x10,
                1 => RAM.base.0..RAM.base.0 + 0x10,
                1 => any::<u64>(),
            ],
            same_page in prop::bool::weighted(0.8),
            other_page in any::<u64>(),
            mmu_on in any::<bool>(),
            raz in any::<bool>(),
            spsr in prop_oneof![Just(0x3C5u64), Just(0x3C4), Just(0x1D3), Just(0x3C0)],
            x in any::<u64>(),
        ) {
            let ec: u64 = match (data, lower) {
                (true, true) => 0x24,
                (true, false) => 0x25,
                (false, true) => 0x20,
                (false, false) => 0x21,
            };
            let iss = (iss & 0x00FF_FFC0) | (u32::from(isv) << 24) | dfsc;
            let esr = (ec << 26) | (1 << 25) | u64::from(iss);
            let page = if same_page { far >> 12 } else { other_page };
            let hpfar = (page & 0xFFF_FFFF_FFFF) << 4;
            let policy = if raz { HolePolicy::ReadAsZeroWriteIgnore } else { HolePolicy::Abort };
            let view = vm(mmu_on, GuestFormat::Aarch64, policy);
            let f = frame(esr, far, hpfar, spsr, x);
            let Some(plain) = decide_plain(&f, &view.layout()) else {
                return Ok(());
            };
            let abort = GuestAbort::from_trap(esr, far, hpfar, spsr).unwrap();
            let guest = if mmu_on {
                Guest {
                    insn: Some(Instruction::A64(AT_S1E1R)),
                    controls: El1Controls { sctlr: 1 << 1, ..El1Controls::default() },
                    ..Guest::page_to(far & !0xFFF)
                }
            } else {
                Guest::mmu_off()
            };
            prop_assert_eq!(decide(&abort, &view, &guest), plain.decision());
            prop_assert_eq!(plain.far, far);
            let iss = DataAbortIss::decode(Esr::new(esr).iss());
            prop_assert_eq!(Some(plain.access), decode_syndrome_access(&iss, &f));
        }
    }

    /// `ESR_EL2` of `LDR W2, [Xn]` (ISV, SAS = word, SRT = 2) or `STR W2` with `wnr`, DFSC
    /// translation level 0, from a lower EL.
    fn ldr_w2(wnr: bool) -> u64 {
        let iss = (1 << 24) | (0b10 << 22) | (2 << 16) | (u64::from(wnr) << 6) | 0b00_0100;
        (0x24 << 26) | (1 << 25) | iss
    }

    #[test]
    fn an_aligned_uart_load_is_a_device_access_and_a_misaligned_one_is_not_plain() {
        let view = vm(false, GuestFormat::Aarch64, HolePolicy::Abort);
        let uart = 0x0900_0018;
        let f = frame(ldr_w2(false), uart, (uart >> 12) << 4, EL1H, 0);
        let Some(PlainAbort {
            access,
            outcome: PlainOutcome::Device { device, offset },
            ..
        }) = decide_plain(&f, &view.layout())
        else {
            panic!("not a device access");
        };
        assert_eq!(
            (device, offset, access.size, access.write),
            (0, 0x18, 4, None)
        );
        let f = frame(ldr_w2(false), uart + 2, (uart >> 12) << 4, EL1H, 0);
        assert_eq!(decide_plain(&f, &view.layout()), None);
    }

    #[test]
    fn a_store_takes_its_register_truncated_to_the_access_size() {
        let view = vm(false, GuestFormat::Aarch64, HolePolicy::Abort);
        let mut f = frame(ldr_w2(true), UART.base.0, (UART.base.0 >> 12) << 4, EL1H, 0);
        f.x[2] = 0x1234_5678_9abc_def0;
        let Some(PlainAbort {
            access,
            outcome: PlainOutcome::Device { .. },
            ..
        }) = decide_plain(&f, &view.layout())
        else {
            panic!("not a device access");
        };
        assert_eq!(access.write, Some(0x9abc_def0));
    }

    #[test]
    fn a_load_at_two_to_the_s_is_an_external_abort_and_at_two_to_the_p_is_left_to_decide() {
        let view = vm(false, GuestFormat::Aarch64, HolePolicy::Abort);
        let at = |ipa: u64| {
            decide_plain(
                &frame(ldr_w2(false), ipa, (ipa >> 12) << 4, EL1H, 0),
                &view.layout(),
            )
        };
        let Some(
            plain @ PlainAbort {
                outcome: PlainOutcome::Inject,
                ..
            },
        ) = at(1 << S)
        else {
            panic!("no external abort at 2^S");
        };
        let abort = plain.external_abort();
        assert_eq!(abort.va, Va(1 << S));
        assert_eq!(abort.cause, AbortCause::External);
        assert_eq!(
            abort.access,
            AbortAccess::Data {
                wnr: false,
                cm: false
            }
        );
        assert_eq!(at(1 << P), None);
        assert_eq!(at(RAM.base.0), None);
    }
}
