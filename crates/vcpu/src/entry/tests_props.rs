//! Properties of exception entry over arbitrary guest states: no input panics, and the
//! invariants every entry keeps whatever the registers held.

use super::*;
use moat_arm::esr::Esr;
use moat_arm::pstate::{Aarch32Mode, Aarch64Mode, Spsr32, Spsr64};
use moat_arm::vector::VectorKind;
use proptest::prelude::*;

/// Any combination of features (shared with `flat_entry`'s tests).
pub(crate) fn features() -> impl Strategy<Value = CpuFeatures> {
    prop::array::uniform9(any::<bool>()).prop_map(|f| CpuFeatures {
        has_pan: f[0],
        has_ssbs: f[1],
        has_mte: f[2],
        has_ras: f[3],
        has_uao: f[4],
        has_bti: f[5],
        has_nmi: f[6],
        el1_aarch32: f[7],
        has_ebep: f[8],
    })
}

fn context() -> impl Strategy<Value = GuestContext> {
    let regs = prop::array::uniform6(any::<u64>());
    (regs, features()).prop_map(|(r, features)| GuestContext {
        pc: r[0],
        spsr_el2: r[1],
        sctlr_el1: r[2],
        vbar_el1: r[3],
        tcr_el1: r[4],
        far_el1: r[5],
        features,
    })
}

fn aarch32_exception() -> impl Strategy<Value = Aarch32Exception> {
    prop_oneof![
        Just(Aarch32Exception::Undefined),
        (any::<u32>(), any::<u32>())
            .prop_map(|(ifsr, ifar)| Aarch32Exception::PrefetchAbort { ifsr, ifar }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(dfsr, dfar)| Aarch32Exception::DataAbort { dfsr, dfar }),
    ]
}

proptest! {
    #[test]
    fn aarch64_entry_always_lands_in_el1h_with_daif_masked_inside_the_vector_table(
        ctx in context(), esr in any::<u64>(), serror in any::<bool>(),
    ) {
        let kind = if serror { VectorKind::SError } else { VectorKind::Synchronous };
        let entry = take_exception_aarch64(&ctx, &Aarch64Exception { kind, esr: Esr::new(esr), far: None });
        let p = Spsr64::new(entry.spsr_el2);
        prop_assert_eq!(p.mode(), Aarch64Mode::El1h);
        prop_assert!(!moat_arm::pstate::is_aarch32(entry.spsr_el2));
        for mask in [Spsr64::D, Spsr64::A, Spsr64::I, Spsr64::F] {
            prop_assert!(p.flag(mask));
        }
        prop_assert!(!p.flag(Spsr64::SS) && !p.flag(Spsr64::IL));
        prop_assert_eq!(entry.elr_el2 & !0x7FF, ctx.vbar_el1 & !0x7FF);
        prop_assert_eq!(entry.elr_el2 & 0x7F, 0, "vector entries are 0x80-aligned");
        prop_assert_eq!((entry.elr_el1, entry.spsr_el1), (ctx.pc, ctx.spsr_el2));
    }

    #[test]
    fn aarch32_entry_always_lands_in_abort_or_undefined_mode_at_a_vector(
        ctx in context(), exception in aarch32_exception(),
    ) {
        let entry = enter_mode_aarch32(&ctx, &exception);
        let p = Spsr32::new(entry.spsr_el2 as u32);
        let expected = match exception {
            Aarch32Exception::Undefined => Aarch32Mode::Undefined,
            _ => Aarch32Mode::Abort,
        };
        prop_assert_eq!(p.mode(), expected);
        prop_assert!(p.flag(Spsr32::I));
        prop_assert_eq!(entry.spsr_el2 >> 32, 0);
        prop_assert_eq!(entry.lr >> 32, 0, "LR is a 32-bit register");
        prop_assert!(matches!(entry.elr_el2 & 0x1F, 0x04 | 0x0C | 0x10));
        prop_assert_eq!(Spsr32::IT_LOW.get(entry.spsr_el2) | Spsr32::IT_HIGH.get(entry.spsr_el2), 0);
    }
}
