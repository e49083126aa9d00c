//! Pending TLB invalidations and table frees of one stage-2 operation, so that breaking many
//! entries costs two barriers rather than two per entry, and so that a table frame is handed
//! back only after no walker can reach it.
//!
//! Up to [`MAX_PENDING_IPAS`] broken entries are invalidated one by one with
//! `TLBI IPAS2E1IS`; beyond that one `TLBI VMALLS12E1IS` for the VMID is cheaper (KVM makes the
//! same trade at 512 pages).

use moat_arm::addr::{Ipa, Pa};

use crate::hw::TlbMaintenance;

/// Broken entries invalidated by IPA before the batch falls back to invalidating the VMID.
pub(crate) const MAX_PENDING_IPAS: usize = 16;
/// Unlinked table subtrees held until the next flush.
const MAX_PENDING_FREES: usize = 16;

/// What the current operation broke and unlinked and has not yet invalidated.
#[derive(Debug)]
pub(crate) struct Batch {
    ipas: [(Ipa, Option<u8>); MAX_PENDING_IPAS],
    ipa_count: usize,
    whole_vmid: bool,
    frees: [(Pa, u8); MAX_PENDING_FREES],
    free_count: usize,
    wrote: bool,
}

impl Batch {
    pub(crate) const fn new() -> Self {
        Self {
            ipas: [(Ipa(0), None); MAX_PENDING_IPAS],
            ipa_count: 0,
            whole_vmid: false,
            frees: [(Pa(0), 0); MAX_PENDING_FREES],
            free_count: 0,
            wrote: false,
        }
    }

    /// A descriptor was written; the operation ends with a barrier.
    #[inline]
    pub(crate) fn wrote(&mut self) {
        self.wrote = true;
    }

    /// A valid descriptor mapping `ipa` at `level` (`None`: a table descriptor) was made
    /// invalid and needs invalidating before anything is written in its place.
    #[inline]
    pub(crate) fn broke(&mut self, ipa: Ipa, level: Option<u8>) {
        self.wrote = true;
        if self.ipa_count < MAX_PENDING_IPAS {
            self.ipas[self.ipa_count] = (ipa, level);
            self.ipa_count += 1;
        } else {
            self.whole_vmid = true;
        }
    }

    /// Too many entries to name: the flush invalidates the whole VMID.
    pub(crate) fn broke_many(&mut self) {
        self.wrote = true;
        self.whole_vmid = true;
    }

    /// Whether the flush will invalidate the whole VMID anyway.
    pub(crate) fn invalidates_vmid(&self) -> bool {
        self.whole_vmid
    }

    /// Whether a table can be deferred without flushing first.
    pub(crate) fn can_defer_free(&self) -> bool {
        self.free_count < MAX_PENDING_FREES
    }

    /// An unlinked table (with its subtree, rooted at `level`) to free after the next flush.
    /// The caller flushes first when [`Batch::can_defer_free`] is false.
    pub(crate) fn defer_free(&mut self, table: Pa, level: u8) {
        self.frees[self.free_count] = (table, level);
        self.free_count += 1;
    }

    /// The next unlinked subtree whose invalidation has completed, to free.
    pub(crate) fn pop_free(&mut self) -> Option<(Pa, u8)> {
        if self.ipa_count > 0 || self.whole_vmid || self.free_count == 0 {
            return None;
        }
        self.free_count -= 1;
        Some(self.frees[self.free_count])
    }

    /// Completes the break of every pending entry (`DSB`, `TLBI`s, `DSB`, combined-entry
    /// `TLBI`, `DSB`); the unlinked tables may then be freed ([`Batch::pop_free`]). With nothing
    /// broken, a lone `DSB` makes new descriptors visible to the walkers.
    pub(crate) fn flush<T: TlbMaintenance>(&mut self, vmid: u16, tlb: &mut T) {
        if self.whole_vmid {
            tlb.barrier();
            tlb.invalidate_vmid(vmid);
            tlb.barrier();
        } else if self.ipa_count > 0 {
            tlb.barrier();
            for &(ipa, level) in &self.ipas[..self.ipa_count] {
                tlb.invalidate_ipa(vmid, ipa, level);
            }
            tlb.barrier();
            tlb.invalidate_combined(vmid);
            tlb.barrier();
        } else if self.wrote {
            tlb.barrier();
        }
        self.ipa_count = 0;
        self.whole_vmid = false;
        self.wrote = false;
    }
}
