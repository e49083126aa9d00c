//! `AArch64.TakeException()` of the external data abort a plain abort injects
//! ([`PlainOutcome::Inject`](crate::plain_abort::PlainOutcome::Inject)), flattened for one CPU's
//! features: what [`inject_abort`](crate::inject::inject_abort) computes step by step (the
//! vector offset, the new PSTATE, `SPSR_EL1`, `ELR_EL1`, the syndrome) reduced, once per VM, to
//! two masks, three `SCTLR_EL1`-controlled bits and a table of four syndromes.
//!
//! The new PSTATE of an entry to EL1h from an AArch64 source (DDI 0487,
//! `AArch64.TakeException()`) keeps every bit of the old one but those the pseudocode writes:
//! `EXLOCK`, `M[4:0]` (EL1h, `nRW` = 0), `SS`, `D`, `A`, `I`, `F`, `IL`, `UINJ`, `PACM`,
//! `PPEND` always; `SSBS`, `PM`, `ALLINT`, `TCO`, `UAO`, `BTYPE` when the CPU has the feature.
//! Of those, `SSBS` (= `SCTLR_EL1.DSSBS`), `ALLINT` (= NOT `SCTLR_EL1.SPINTMASK`) and `PAN`
//! (set when `SCTLR_EL1.SPAN` = 0) depend on `SCTLR_EL1`; the rest are constants of the CPU.
//! The syndrome of an external data abort depends only on whether it comes from EL0 (`EC`
//! 0x24, else 0x25) and on `WnR`, so the four are computed once by the general encoder.
//!
//! An AArch32 source (EL0 in AArch32 state), which keeps only `NZCV`, `DIT` and `PAN` in other
//! bit positions, and an AArch32 EL1 are the general injection's: [`FlatAbortEntry::new`] and
//! [`FlatAbortEntry::external_data_abort`] return `None` for them. A property test holds this
//! to [`inject_abort`](crate::inject::inject_abort) for any state, features and access.

use crate::entry::{Aarch64Entry, CpuFeatures, GuestContext};
use crate::inject::{Abort, AbortAccess, AbortCause, inject_abort};
use moat_arm::addr::Va;
use moat_arm::pstate::{Aarch64Mode, M4_NRW, Spsr64, is_aarch32};
use moat_arm::sysreg::sctlr_el1;
use moat_arm::vector::{VBAR_BASE_MASK, VectorKind, VectorSource, vector_offset};

/// The external data abort's entry for one CPU's features with an AArch64 EL1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlatAbortEntry {
    /// The PSTATE bits the entry keeps.
    keep: u64,
    /// The PSTATE bits it sets whatever `SCTLR_EL1` holds.
    set: u64,
    /// FEAT_SSBS: `PSTATE.SSBS` = `SCTLR_EL1.DSSBS`.
    ssbs: bool,
    /// FEAT_NMI: `PSTATE.ALLINT` = NOT `SCTLR_EL1.SPINTMASK`.
    allint: bool,
    /// FEAT_PAN: `PSTATE.PAN` set when `SCTLR_EL1.SPAN` = 0.
    pan: bool,
    /// `ESR_EL1`, indexed by \[from EL0\]\[`WnR`\].
    esr: [[u64; 2]; 2],
    /// The vector offsets of a synchronous exception from EL1t, EL1h and EL0 (AArch64).
    vectors: [u64; 3],
}

impl FlatAbortEntry {
    /// The flattened entry for a CPU with `features`; `None` for an AArch32 EL1.
    #[must_use]
    pub fn new(features: CpuFeatures) -> Option<Self> {
        if features.el1_aarch32 {
            return None;
        }
        let f = features;
        let flag = |has: bool, field: moat_arm::field::Field| if has { field.mask() } else { 0 };
        let written = Spsr64::EXLOCK.mask()
            | Spsr64::M.mask()
            | M4_NRW.mask()
            | Spsr64::SS.mask()
            | Spsr64::D.mask()
            | Spsr64::A.mask()
            | Spsr64::I.mask()
            | Spsr64::F.mask()
            | Spsr64::IL.mask()
            | Spsr64::UINJ.mask()
            | Spsr64::PACM.mask()
            | Spsr64::PPEND.mask()
            | flag(f.has_ssbs, Spsr64::SSBS)
            | flag(f.has_ebep, Spsr64::PM)
            | flag(f.has_nmi, Spsr64::ALLINT)
            | flag(f.has_mte, Spsr64::TCO)
            | flag(f.has_uao, Spsr64::UAO)
            | flag(f.has_bti, Spsr64::BTYPE);
        let set = Spsr64::new(0).with_mode(Aarch64Mode::El1h).bits()
            | Spsr64::D.mask()
            | Spsr64::A.mask()
            | Spsr64::I.mask()
            | Spsr64::F.mask()
            | flag(f.has_ebep, Spsr64::PM)
            | flag(f.has_mte, Spsr64::TCO);
        // The four syndromes, from the general encoder: EL1h and EL0t sources, load and store.
        let el1h = Spsr64::new(0).with_mode(Aarch64Mode::El1h).bits();
        let el0t = Spsr64::new(0).with_mode(Aarch64Mode::El0t).bits();
        let esr = [el1h, el0t].map(|spsr| {
            [false, true].map(|wnr| {
                let ctx = GuestContext {
                    pc: 0,
                    spsr_el2: spsr,
                    sctlr_el1: 0,
                    vbar_el1: 0,
                    tcr_el1: 0,
                    far_el1: 0,
                    features,
                };
                match inject_abort(&ctx, &external_data_abort(wnr, 0)) {
                    crate::entry::Entry::Aarch64(e) => e.esr_el1,
                    crate::entry::Entry::Aarch32(_) => unreachable!("an AArch64 EL1 was asked"),
                }
            })
        });
        let sync = |source| vector_offset(source, VectorKind::Synchronous);
        Some(Self {
            keep: !written,
            set,
            ssbs: f.has_ssbs,
            allint: f.has_nmi,
            pan: f.has_pan,
            esr,
            vectors: [
                sync(VectorSource::CurrentElSp0),
                sync(VectorSource::CurrentElSpx),
                sync(VectorSource::LowerAarch64),
            ],
        })
    }

    /// The entry of the synchronous external data abort (`WnR` = `wnr`, `FAR_EL1` = `far`)
    /// taken on the instruction at `pc` by a guest whose PSTATE is `spsr_el2`, with its
    /// `SCTLR_EL1` and `VBAR_EL1`; `None` from AArch32 state.
    #[must_use]
    #[inline]
    pub fn external_data_abort(
        &self,
        pc: u64,
        spsr_el2: u64,
        sctlr_el1: u64,
        vbar_el1: u64,
        far: u64,
        wnr: bool,
    ) -> Option<Aarch64Entry> {
        if is_aarch32(spsr_el2) {
            return None;
        }
        let old = Spsr64::new(spsr_el2);
        let from_el0 = old.el() == 0;
        // vect_offset: 0x400 from EL0 (AArch64), else 0x200 with PSTATE.SP = 1, else 0.
        let vector = if from_el0 {
            self.vectors[2]
        } else {
            self.vectors[usize::from(old.sp_elx())]
        };
        let mut pstate = (spsr_el2 & self.keep) | self.set;
        if self.ssbs && sctlr_el1::DSSBS.is_set(sctlr_el1) {
            pstate |= Spsr64::SSBS.mask();
        }
        if self.allint && !sctlr_el1::SPINTMASK.is_set(sctlr_el1) {
            pstate |= Spsr64::ALLINT.mask();
        }
        if self.pan && !sctlr_el1::SPAN.is_set(sctlr_el1) {
            pstate |= Spsr64::PAN.mask();
        }
        Some(Aarch64Entry {
            elr_el2: (vbar_el1 & VBAR_BASE_MASK) | vector,
            spsr_el2: pstate,
            esr_el1: self.esr[usize::from(from_el0)][usize::from(wnr)],
            far_el1: Some(far),
            elr_el1: pc,
            spsr_el1: spsr_el2,
        })
    }
}

/// The synchronous external data abort at `far` (a store when `wnr`), as a plain abort
/// injects it.
#[must_use]
pub const fn external_data_abort(wnr: bool, far: u64) -> Abort {
    Abort {
        access: AbortAccess::Data { wnr, cm: false },
        cause: AbortCause::External,
        va: Va(far),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Entry;
    use crate::entry::tests_props::features;
    use proptest::prelude::*;

    /// A PSTATE: any bits, often with a guest's own mode (EL0t, EL1t, EL1h, AArch32 EL0).
    fn pstate() -> impl Strategy<Value = u64> {
        (any::<u64>(), 0u64..6).prop_map(|(bits, mode)| match mode {
            0 => bits & !0x1f,
            1 => (bits & !0x1f) | 0b0100,
            2 => (bits & !0x1f) | 0b0101,
            3 => (bits & !0x1f) | 0b1_0000,
            _ => bits,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn flat_entry_is_the_general_injection(
            features in features(),
            spsr in pstate(),
            regs in prop::array::uniform5(any::<u64>()),
            wnr in any::<bool>(),
        ) {
            let [pc, sctlr, vbar, far, tcr] = regs;
            let ctx = GuestContext {
                pc,
                spsr_el2: spsr,
                sctlr_el1: sctlr,
                vbar_el1: vbar,
                tcr_el1: tcr,
                far_el1: 0,
                features,
            };
            let general = inject_abort(&ctx, &external_data_abort(wnr, far));
            let flat = FlatAbortEntry::new(features)
                .and_then(|f| f.external_data_abort(pc, spsr, sctlr, vbar, far, wnr));
            match (general, flat) {
                (Entry::Aarch64(g), Some(f)) => prop_assert_eq!(g, f),
                // The general injection's alone: an AArch32 EL1, or an AArch32 source.
                (_, None) => prop_assert!(features.el1_aarch32 || is_aarch32(spsr)),
                (Entry::Aarch32(_), Some(_)) => prop_assert!(false, "flat entry for an AArch32 EL1"),
            }
        }
    }

    #[test]
    fn an_el1h_store_and_an_el0_load_take_the_arm_arm_vectors_and_syndromes() {
        let flat = FlatAbortEntry::new(CpuFeatures::default()).expect("an AArch64 EL1");
        // EL1h, DAIF clear: the current-EL SP_ELx vector, EC 0x25 with WnR.
        let e = flat
            .external_data_abort(0x1000, 0x5, 0, 0x8000_0800, 0x9000, true)
            .expect("an AArch64 source");
        assert_eq!(e.elr_el2, 0x8000_0a00);
        assert_eq!(e.esr_el1, 0x9600_0050);
        assert_eq!(e.spsr_el2, 0x3c5);
        assert_eq!(
            (e.elr_el1, e.spsr_el1, e.far_el1),
            (0x1000, 0x5, Some(0x9000))
        );
        // EL0t: the lower-EL AArch64 vector, EC 0x24, a load.
        let e = flat
            .external_data_abort(0x2000, 0x0, 0, 0x8000_0000, 0x10, false)
            .expect("an AArch64 source");
        assert_eq!(e.elr_el2, 0x8000_0400);
        assert_eq!(e.esr_el1, 0x9200_0010);
        // AArch32 EL0 and an AArch32 EL1 are the general injection's.
        assert_eq!(flat.external_data_abort(0, 0x10, 0, 0, 0, false), None);
        let aarch32 = CpuFeatures {
            el1_aarch32: true,
            ..CpuFeatures::default()
        };
        assert_eq!(FlatAbortEntry::new(aarch32), None);
    }
}
