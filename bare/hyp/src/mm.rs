//! Moat's memory: the physical page allocator, the heap, and Moat's own EL2 translation.
//!
//! Physical RAM from the device tree, less what is in use at boot (Moat's image, the device
//! tree, the VM bundle) and what the tree reserves for the firmware (its memory reservation
//! block, `/reserved-memory`), is handed out top-down in aligned blocks by
//! `moat_platform::PhysAllocator`: guest RAM, stage-2 tables and the heap all come from there. Moat's EL2 stage 1 is an
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
use core::sync::atomic::{AtomicU64, Ordering};
pub use moat_platform::{OutOfMemory, PhysAllocator};

/// The heap's size: tables of `aarch64-paging` and small bookkeeping only.
const HEAP_SIZE: u64 = 4 << 20;
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
