//! The guest aborts decided from the syndrome alone: a lower-EL data abort with a valid
//! instruction syndrome (`ESR_EL2.ISV` = 1: one register of `SAS` bytes), aligned to its size,
//! that took a stage-2 translation or address size fault outside a walk and not for cache
//! maintenance. These are what a guest's MMIO accesses and its accesses to nothing take, and
//! they are most of all guest aborts; [`decide`](crate::abort::decide) answers them without the
//! guest's tables, instruction or EL1 controls, so the EL2 binary skips reading those.
//!
//! The syndrome is decoded once (`ESR_EL2` "ISS encoding for an exception from a Data Abort":
//! `ISV`, `SAS`, `SSE`, `SRT`, `SF`, `AR`, `CM`, `S1PTW`, `WnR`, `DFSC`), the IPA placed in the
//! VM's layout, and the outcome returned with the access already built for the device model.
//! Why the answer is [`decide`](crate::abort::decide)'s: no alignment rule faults an aligned
//! single-register access (`AArch64.UnalignedAccessFaults()`, `AArch64.S1HasAlignmentFault()`
//! only fault a misaligned one), a data access is not a fetch, `CM` = 0 and `ISV` = 1 rule out
//! the cache-maintenance and `AT` rows (their syndromes never have `ISV` = 1), and the rows of an
//! IPA below `2^P` need nothing of the guest. An IPA at or above `2^P` (the Address Size Fault
//! row, which may walk the guest's tables) is left to the general decision. A property test
//! (`abort_tests.rs`, `decide_plain_agrees_with_decide`) holds this to
//! [`decide`](crate::abort::decide) for any syndrome, address, register and guest state.

use crate::abort::{Decision, HolePolicy, IpaLayout, Place};
use crate::frame::TrapFrame;
use crate::inject::{Abort, AbortAccess, AbortCause};
use crate::mmio::{SyndromeAccess, size_mask};
use moat_arm::addr::Va;
use moat_arm::esr::{DataAbortIss, Esr, ExceptionClass};
use moat_arm::fault_addr::fault_ipa;
use moat_arm::fsc::Fsc;

/// A plain abort, decided: the access the syndrome describes and what it reaches. The access is
/// common to every outcome, so that a caller branches on [`PlainOutcome`] alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlainAbort {
    /// The access, a store's value taken from the trapped register.
    pub access: SyndromeAccess,
    /// The virtual address accessed (`FAR_EL2`).
    pub far: u64,
    /// What to do with it.
    pub outcome: PlainOutcome,
}

/// What to do with a plain abort's access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlainOutcome {
    /// Perform the access at `offset` in device window `device`, then advance the PC.
    Device {
        /// Index into [`IpaLayout::devices`].
        device: usize,
        /// Offset of the access in the window.
        offset: u64,
    },
    /// Complete the access as read-as-zero/write-ignore (a hole with that policy).
    ReadAsZero,
    /// Inject the synchronous external data abort of the access
    /// ([`PlainAbort::external_abort`]).
    Inject,
}

impl PlainAbort {
    /// The synchronous external data abort on the access (`WnR` from the syndrome, at the
    /// address accessed), which [`PlainOutcome::Inject`] injects.
    #[must_use]
    pub const fn external_abort(&self) -> Abort {
        Abort {
            access: AbortAccess::Data {
                wnr: self.access.write.is_some(),
                cm: false,
            },
            cause: AbortCause::External,
            va: Va(self.far),
        }
    }

    /// The same outcome as a [`Decision`], for comparing with the general decision.
    #[must_use]
    pub const fn decision(&self) -> Decision {
        match self.outcome {
            PlainOutcome::Device { device, offset } => Decision::Emulate { device, offset },
            PlainOutcome::ReadAsZero => Decision::ReadAsZeroWriteIgnore,
            PlainOutcome::Inject => Decision::Inject(self.external_abort()),
        }
    }
}

/// Decides the abort in `frame` (its `ESR_EL2`, `FAR_EL2`, `HPFAR_EL2` and registers) when it
/// is a plain one; `None` sends it to the general decision.
#[must_use]
#[inline(always)]
pub fn decide_plain(frame: &TrapFrame, layout: &IpaLayout<'_>) -> Option<PlainAbort> {
    let (esr, far) = (Esr::new(frame.esr), frame.far);
    if esr.ec() != ExceptionClass::DataAbortLower {
        return None;
    }
    let iss = DataAbortIss::decode(esr.iss());
    let translation = matches!(iss.dfsc, Fsc::Translation { .. } | Fsc::AddressSize { .. });
    if !iss.isv || iss.cm || iss.s1ptw || !translation {
        return None;
    }
    let size = iss.sas.bytes();
    // `AR` = 1 asks alignment to the same size as the element: one check covers both.
    if far & u64::from(size - 1) != 0 {
        return None;
    }
    let ipa = fault_ipa(frame.hpfar, far);
    let access = SyndromeAccess {
        size,
        write: iss.wnr.then(|| frame.reg(iss.srt) & size_mask(size)),
        register: iss.srt,
        sign_extend: iss.sse,
        sixty_four: iss.sf,
    };
    let outcome = match layout.place(ipa) {
        // An Address Size Fault may need the guest's walk; RAM is mapped (a fault there is
        // the general path's to report).
        Place::BeyondPaRange | Place::Ram => return None,
        Place::BeyondIpaSpace => PlainOutcome::Inject,
        Place::Device { device, offset } => PlainOutcome::Device { device, offset },
        Place::Hole => match layout.hole_policy {
            HolePolicy::Abort => PlainOutcome::Inject,
            HolePolicy::ReadAsZeroWriteIgnore => PlainOutcome::ReadAsZero,
        },
    };
    Some(PlainAbort {
        access,
        far,
        outcome,
    })
}
