//! The three hardware seams of stage 2: where table frames come from, how descriptors are read
//! and written, and how TLBs are invalidated. The EL2 binary implements them with real memory
//! and instructions; host tests implement them with heap frames and a log, so that the update
//! order (break-before-make) is checked on the host.
//!
//! All methods are called from generic, monomorphised code, so an `#[inline]` implementation
//! costs no more than the instruction it wraps.

use moat_arm::addr::{Ipa, Pa};

/// Supplies and takes back 4 KiB translation-table frames.
pub trait FrameAllocator {
    /// One 4 KiB frame, 4 KiB aligned, every byte zero, with the zeroes visible to the
    /// translation table walker before it returns (the EL2 implementation zeroes, then issues
    /// `DSB ISHST`), or `None` when memory is exhausted. The frame must lie below `2^L`.
    fn alloc_zeroed_table(&mut self) -> Option<Pa>;

    /// `count` (a power of two, 1..=16) contiguous zeroed frames aligned to `align` bytes
    /// (`count × 4 KiB`): the concatenated start tables of a VM (`VTTBR_EL2.BADDR` alignment).
    /// Same visibility rule as [`FrameAllocator::alloc_zeroed_table`].
    fn alloc_zeroed_tables(&mut self, count: usize, align: u64) -> Option<Pa>;

    /// Takes back a frame from [`FrameAllocator::alloc_zeroed_table`]. Stage 2 calls it only
    /// once no walker can reach the frame (after its TLB invalidation has completed).
    fn free_table(&mut self, table: Pa);

    /// Takes back frames from [`FrameAllocator::alloc_zeroed_tables`], same rule.
    fn free_tables(&mut self, first: Pa, count: usize);
}

/// Reads and writes descriptors of the tables stage 2 allocated.
///
/// `index` is below 512. Each access must be one single-copy-atomic 64-bit access (a volatile
/// `u64` load or store at `table + 8 × index`), because the walker of another CPU may read the
/// descriptor at the same moment; the compiler must neither tear, merge nor elide it.
pub trait TableMemory {
    /// The descriptor at `index` in the table at `table`.
    fn read(&self, table: Pa, index: usize) -> u64;
    /// Stores `desc` at `index` in the table at `table`.
    fn write(&mut self, table: Pa, index: usize, desc: u64);
}

/// TLB maintenance and barriers for one VM's stage 2, in the order stage 2 calls them.
///
/// A break-before-make update is: write the invalid descriptor, [`barrier`](Self::barrier),
/// [`invalidate_ipa`](Self::invalidate_ipa) for each broken entry (or
/// [`invalidate_vmid`](Self::invalidate_vmid) when there are many), `barrier`,
/// [`invalidate_combined`](Self::invalidate_combined), `barrier`, then write the new descriptor
/// (Arm ARM "Using break-before-make when updating translation table entries").
pub trait TlbMaintenance {
    /// `DSB ISH`: every earlier table write and TLB invalidation is complete for all CPUs of
    /// the Inner Shareable domain before anything later.
    fn barrier(&mut self);

    /// `TLBI IPAS2E1IS` for `ipa` (the operand holds `IPA[55:12]`) with VMID `vmid`: drops
    /// stage-2-only entries and walk-cache entries for that IPA. `level` is the level of the
    /// leaf being removed, usable as the FEAT_TTL hint; `None` when a table descriptor is
    /// removed (no hint may be given). The instruction uses the VMID in `VTTBR_EL2`, so the
    /// implementation must run it with `vmid`'s `VTTBR_EL2` loaded.
    fn invalidate_ipa(&mut self, vmid: u16, ipa: Ipa, level: Option<u8>);

    /// `TLBI VMALLE1IS` with VMID `vmid` loaded: drops the entries that combine stage 1 and
    /// stage 2, which `TLBI IPAS2E1IS` leaves in place.
    fn invalidate_combined(&mut self, vmid: u16);

    /// `TLBI VMALLS12E1IS` with VMID `vmid` loaded: drops every stage-1 and stage-2 entry of
    /// the VM; used instead of many [`invalidate_ipa`](Self::invalidate_ipa) calls.
    fn invalidate_vmid(&mut self, vmid: u16);
}
