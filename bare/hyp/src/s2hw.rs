//! The hardware side of stage 2: table frames from Moat's physical allocator, descriptor
//! accesses as single-copy-atomic volatile loads and stores, and the TLB maintenance
//! instructions. Contracts are those of the `moat_stage2::hw` traits.

use crate::mm::{PAGE_SIZE, PhysAllocator};
use aarch64_cpu::registers::{Readable, VTTBR_EL2, Writeable};
use alloc::vec::Vec;
use moat_arm::addr::{Ipa, Pa};
use moat_stage2::{FrameAllocator, TableMemory, TlbMaintenance};

/// Table frames come from the physical allocator. Freed frames are not reused yet: a VM's
/// tables live as long as Moat does.
pub struct Frames<'a>(pub &'a mut PhysAllocator);

impl Frames<'_> {
    fn zeroed(&mut self, count: usize, align: u64) -> Option<Pa> {
        let size = PAGE_SIZE * count as u64;
        let base = self.0.alloc(size, align.max(PAGE_SIZE)).ok()?;
        // SAFETY: the block was just taken from the allocator, so nothing else refers to it,
        // and it is identity-mapped RAM.
        unsafe { core::ptr::write_bytes(base as *mut u8, 0, size as usize) };
        // The zeroes must be visible to the table walker before the frame is linked in.
        // SAFETY: a barrier; no memory is accessed.
        unsafe { core::arch::asm!("dsb ishst", options(nostack, preserves_flags)) };
        Some(Pa(base))
    }
}

impl FrameAllocator for Frames<'_> {
    fn alloc_zeroed_table(&mut self) -> Option<Pa> {
        self.zeroed(1, PAGE_SIZE)
    }

    fn alloc_zeroed_tables(&mut self, count: usize, align: u64) -> Option<Pa> {
        self.zeroed(count, align)
    }

    fn free_table(&mut self, _table: Pa) {}

    fn free_tables(&mut self, _first: Pa, _count: usize) {}
}

/// Table frames taken from the physical allocator ahead of time, for stage-2 changes made
/// after boot (a guest placing its PCI BARs), when the allocator is no longer at hand. Freed
/// frames come back to the pool.
pub struct FramePool(pub Vec<Pa>);

impl FramePool {
    /// A pool of `count` frames.
    ///
    /// # Errors
    ///
    /// When the allocator has not enough memory.
    pub fn new(phys: &mut PhysAllocator, count: usize) -> Result<Self, crate::mm::OutOfMemory> {
        let mut frames = Vec::with_capacity(count);
        for _ in 0..count {
            frames.push(Pa(phys.alloc(PAGE_SIZE, PAGE_SIZE)?));
        }
        Ok(Self(frames))
    }
}

impl FrameAllocator for FramePool {
    fn alloc_zeroed_table(&mut self) -> Option<Pa> {
        let frame = self.0.pop()?;
        // SAFETY: a frame of the pool: taken from the allocator for stage-2 tables, linked in
        // no table now (freed ones come back only once unreachable), identity-mapped RAM.
        unsafe { core::ptr::write_bytes(frame.0 as *mut u8, 0, PAGE_SIZE as usize) };
        // SAFETY: a barrier; no memory is accessed.
        unsafe { core::arch::asm!("dsb ishst", options(nostack, preserves_flags)) };
        Some(frame)
    }

    fn alloc_zeroed_tables(&mut self, _count: usize, _align: u64) -> Option<Pa> {
        // Only a VM's root needs contiguous frames, and it exists before any pool does.
        None
    }

    fn free_table(&mut self, table: Pa) {
        self.0.push(table);
    }

    fn free_tables(&mut self, first: Pa, count: usize) {
        self.0
            .extend((0..count as u64).map(|i| Pa(first.0 + i * PAGE_SIZE)));
    }
}

/// Descriptors live in identity-mapped RAM.
pub struct IdentityTables;

impl TableMemory for IdentityTables {
    #[inline]
    fn read(&self, table: Pa, index: usize) -> u64 {
        assert!(index < 512, "descriptor index {index} beyond a 4 KiB table");
        // SAFETY: `table` is a frame stage 2 allocated from `Frames` (identity-mapped RAM,
        // 8-byte aligned); a volatile aligned u64 load is single-copy atomic.
        unsafe { core::ptr::read_volatile((table.0 as *const u64).add(index)) }
    }

    #[inline]
    fn write(&mut self, table: Pa, index: usize, desc: u64) {
        assert!(index < 512, "descriptor index {index} beyond a 4 KiB table");
        // SAFETY: as for `read`; the store is one single-copy-atomic 64-bit write.
        unsafe { core::ptr::write_volatile((table.0 as *mut u64).add(index), desc) }
    }
}

/// TLB maintenance by the instructions, with the VM's `VTTBR_EL2` loaded.
pub struct Tlb {
    /// The `VTTBR_EL2` of the VM being changed (selects the VMID the instructions use).
    pub vttbr: u64,
}

impl Tlb {
    /// Runs `f` with this VM's `VTTBR_EL2` loaded; Moat runs one VM, so it normally is.
    fn with_vmid(&self, f: impl FnOnce()) {
        let previous = VTTBR_EL2.get();
        if previous != self.vttbr {
            VTTBR_EL2.set(self.vttbr);
            // SAFETY: a context synchronization event; no memory is accessed.
            unsafe { core::arch::asm!("isb", options(nostack, preserves_flags)) };
        }
        f();
        if previous != self.vttbr {
            VTTBR_EL2.set(previous);
            // SAFETY: as above.
            unsafe { core::arch::asm!("isb", options(nostack, preserves_flags)) };
        }
    }
}

impl TlbMaintenance for Tlb {
    fn barrier(&mut self) {
        // SAFETY: a barrier; no memory is accessed.
        unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
    }

    fn invalidate_ipa(&mut self, _vmid: u16, ipa: Ipa, _level: Option<u8>) {
        // TLBI IPAS2E1IS: the operand holds IPA[55:12] in bits [43:0].
        let operand = ipa.0 >> 12;
        // SAFETY: TLB maintenance has no effect on memory contents.
        self.with_vmid(|| unsafe {
            core::arch::asm!("tlbi ipas2e1is, {}", in(reg) operand, options(nostack, preserves_flags));
        });
    }

    fn invalidate_combined(&mut self, _vmid: u16) {
        // SAFETY: TLB maintenance has no effect on memory contents.
        self.with_vmid(|| unsafe {
            core::arch::asm!("tlbi vmalle1is", options(nostack, preserves_flags));
        });
    }

    fn invalidate_vmid(&mut self, _vmid: u16) {
        // SAFETY: TLB maintenance has no effect on memory contents.
        self.with_vmid(|| unsafe {
            core::arch::asm!("tlbi vmalls12e1is", options(nostack, preserves_flags));
        });
    }
}
