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
    is_at: bool,
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

    fn is_address_translation(&self) -> bool {
        self.is_at
    }
}

impl Guest {
    fn mmu_off() -> Self {
        Self {
            tables: BTreeMap::new(),
            regs: Stage1Regs::default(),
            is_at: false,
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
            is_at: false,
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
    GuestAbort::from_trap(esr_el2(kind, s1ptw), far, hpfar).expect("an abort")
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
    guest.is_at = true;
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
    guest.is_at = true;
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
    let abort = GuestAbort::from_trap(permission, 0x4000_0000, 0x40_0000 << 4).unwrap();
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
    let abort = GuestAbort::from_trap(sea, 0x4000_0000, 0).unwrap();
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
    assert_eq!(GuestAbort::from_trap(0x5A00_0000, 0, 0), None, "HVC");
}
