//! Moat's memory: the physical page allocator, the heap, and Moat's own EL2 translation.
//!
//! Physical RAM from the device tree, less what is in use at boot (Moat's image, the device
//! tree, the VM bundle, and the loader's area below Moat) and what the tree reserves for the
//! firmware (its memory reservation block, `/reserved-memory`), is handed out top-down in aligned
//! blocks: guest RAM, stage-2 tables and the heap all come from here. Moat's EL2 stage 1 is an
//! identity map built with `aarch64-paging` (RAM normal write-back, devices nGnRE), so
//! physical addresses can be used as pointers everywhere in Moat.

use crate::platform::{PhysRange, Platform};
use crate::stacks;
use aarch64_cpu::registers::{
    ID_AA64MMFR0_EL1, MAIR_EL2, ReadWriteable, Readable, SCTLR_EL2, TCR_EL2, TTBR0_EL2, Writeable,
};
use aarch64_paging::descriptor::El23Attributes;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{El2, MemoryRegion};
use buddy_system_allocator::LockedHeap;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

/// The heap's size: tables of `aarch64-paging` and small bookkeeping only.
const HEAP_SIZE: u64 = 4 << 20;
/// Upper bound on distinct free ranges after reservations are cut out.
const MAX_FREE_RANGES: usize = 32;
/// The smallest unit handed out.
pub const PAGE_SIZE: u64 = 4096;

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// Moat's own image in memory, from the linker script's symbols.
pub fn image_range() -> PhysRange {
    // Only the symbols' addresses are taken; nothing is read through them.
    let start = &raw const __image_start as u64;
    let end = &raw const __image_end as u64;
    PhysRange {
        base: start,
        size: end - start,
    }
}

/// Physical memory left after the boot reservations, handed out top-down.
pub struct PhysAllocator {
    free: [PhysRange; MAX_FREE_RANGES],
    count: usize,
}

/// Why physical memory could not be had.
#[derive(Clone, Copy, Debug)]
pub struct OutOfMemory {
    /// Bytes asked for.
    pub size: u64,
    /// Alignment asked for.
    pub align: u64,
}

impl fmt::Display for OutOfMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no free {:#x} bytes of RAM aligned to {:#x}",
            self.size, self.align
        )
    }
}

impl PhysAllocator {
    /// All RAM of `platform` minus `reserved` ranges and the firmware's.
    pub fn new(platform: &Platform, reserved: &[PhysRange]) -> Self {
        let mut this = Self {
            free: [PhysRange::default(); MAX_FREE_RANGES],
            count: 0,
        };
        for ram in platform.memory() {
            this.add(*ram);
        }
        for r in reserved.iter().chain(platform.reserved()) {
            this.remove(*r);
        }
        this
    }

    fn add(&mut self, range: PhysRange) {
        if range.size != 0 && self.count < MAX_FREE_RANGES {
            self.free[self.count] = range;
            self.count += 1;
        }
    }

    /// Cuts `hole` out of every free range (splitting one in two where needed).
    fn remove(&mut self, hole: PhysRange) {
        let mut kept = [PhysRange::default(); MAX_FREE_RANGES];
        let mut n = 0;
        for r in &self.free[..self.count] {
            let lower_end = hole.base.clamp(r.base, r.end());
            let upper_base = hole.end().clamp(r.base, r.end());
            let lower = PhysRange {
                base: r.base,
                size: lower_end - r.base,
            };
            let upper = PhysRange {
                base: upper_base,
                size: r.end() - upper_base,
            };
            for piece in [lower, upper] {
                if piece.size != 0 && n < MAX_FREE_RANGES {
                    kept[n] = piece;
                    n += 1;
                }
            }
        }
        self.free = kept;
        self.count = n;
    }

    /// `size` bytes aligned to `align` (a power of two), from the top of the highest range
    /// that fits.
    ///
    /// # Errors
    ///
    /// [`OutOfMemory`] when no free range holds such a block.
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<u64, OutOfMemory> {
        let best = self.free[..self.count]
            .iter()
            .filter_map(|r| {
                let base = r.end().checked_sub(size)? & !(align - 1);
                (base >= r.base).then_some(base)
            })
            .max()
            .ok_or(OutOfMemory { size, align })?;
        self.remove(PhysRange { base: best, size });
        Ok(best)
    }

    /// The free ranges.
    pub fn free_ranges(&self) -> &[PhysRange] {
        &self.free[..self.count]
    }

    /// Total free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free[..self.count].iter().map(|r| r.size).sum()
    }
}

/// Gives the heap its memory.
///
/// # Errors
///
/// [`OutOfMemory`] when the heap's block cannot be had.
pub fn init_heap(phys: &mut PhysAllocator) -> Result<(), OutOfMemory> {
    let base = phys.alloc(HEAP_SIZE, PAGE_SIZE)?;
    // SAFETY: the block was just taken from the allocator, so nothing else uses it; with the
    // MMU off (and later identity-mapped) its physical address is its address.
    unsafe { HEAP.lock().init(base as usize, HEAP_SIZE as usize) };
    Ok(())
}

/// `MAIR_EL2` attribute indices used by Moat's stage 1.
const MAIR_DEVICE_NGNRE: u64 = 0;
const MAIR_NORMAL_WB: u64 = 1;

fn attrs(index: u64) -> El23Attributes {
    let idx = El23Attributes::from_bits_retain((index as usize) << 2);
    El23Attributes::VALID | El23Attributes::ACCESSED | El23Attributes::USER_RES1 | idx
}

/// Builds Moat's identity map (RAM normal write-back but the stacks' guard pages, `devices` as
/// device nGnRE, never executable) and turns the MMU and caches on at EL2.
pub fn enable_el2_translation(platform: &Platform, devices: &[PhysRange]) {
    let mut idmap = IdMap::new(0, El2);
    let normal = attrs(MAIR_NORMAL_WB) | El23Attributes::INNER_SHAREABLE;
    let device = attrs(MAIR_DEVICE_NGNRE) | El23Attributes::XN;
    for ram in platform.memory() {
        map(&mut idmap, *ram, normal);
    }
    for dev in devices {
        map(&mut idmap, *dev, device);
    }
    // The stacks' guard pages stay unmapped: an overflow faults instead of writing below.
    for cpu in 0..stacks::CPUS {
        map(&mut idmap, stacks::guard(cpu), El23Attributes::empty());
    }
    configure_translation_registers();
    // SAFETY: the map covers all RAM (Moat's image, stack, heap and everything it will
    // allocate) and every device Moat touches, at their own addresses, so turning it on changes
    // no address Moat uses. The table is leaked below, so it is never dropped while active.
    unsafe { idmap.activate() };
    EL2_TTBR0.store(TTBR0_EL2.get(), Ordering::Release);
    core::mem::forget(idmap);
    turn_mmu_and_caches_on();
}

/// `TTBR0_EL2` of Moat's identity map, for the secondary CPUs to use the same tables.
static EL2_TTBR0: AtomicU64 = AtomicU64::new(0);

/// Turns on, on a secondary CPU, the EL2 translation the boot CPU built.
pub fn enable_el2_translation_secondary() {
    configure_translation_registers();
    TTBR0_EL2.set(EL2_TTBR0.load(Ordering::Acquire));
    turn_mmu_and_caches_on();
}

/// Maps `range` with `flags`, or unmaps it when `flags` lacks `VALID` (`aarch64-paging`
/// writes invalid descriptors then).
fn map(idmap: &mut IdMap<El2>, range: PhysRange, flags: El23Attributes) {
    let start = range.base & !(PAGE_SIZE - 1);
    let end = range.end().next_multiple_of(PAGE_SIZE);
    let region = MemoryRegion::new(start as usize, end as usize);
    if let Err(e) = idmap.map_range(&region, flags) {
        panic!("cannot identity-map {range} at EL2: {e}");
    }
}

fn configure_translation_registers() {
    // MAIR_EL2: Attr0 = Device-nGnRE (0x04), Attr1 = Normal, inner/outer write-back
    // read/write-allocate non-transient (0xff).
    MAIR_EL2.set(0x04 << (8 * MAIR_DEVICE_NGNRE) | 0xff << (8 * MAIR_NORMAL_WB));
    // TCR_EL2 (E2H = 0): T0SZ = 16 (48-bit VA, start at level 0), 4K granule, walks inner
    // shareable write-back cacheable, PS = the CPU's PARange capped at 48 bits (4K granule
    // without TCR_EL2.DS); bits 31 and 23 are RES1.
    let parange = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange).min(0b101);
    TCR_EL2.set(
        (1 << 31) | (1 << 23) | (parange << 16) | (0b11 << 12) | (0b01 << 10) | (0b01 << 8) | 16,
    );
}

fn turn_mmu_and_caches_on() {
    // SAFETY: invalidates EL2 TLB entries (none are live with the MMU off) and orders the table
    // writes before the walk; no memory is accessed.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi alle2",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        );
    }
    SCTLR_EL2.modify(SCTLR_EL2::M::Enable + SCTLR_EL2::C::Cacheable + SCTLR_EL2::I::Cacheable);
    // SAFETY: a context synchronization event so that the MMU is on for what follows.
    unsafe { core::arch::asm!("isb", options(nostack, preserves_flags)) };
}
