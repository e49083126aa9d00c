//! Canaries for the isolation scan (issue 11): marks Moat places in its own memory and in the
//! memory no VM was given, which no guest may ever read. The `partner` guest's
//! `partner.scan` reads all of its RAM and probes the rest of its IPA space for them; the
//! stage-2 walk of every VM (`Vm::check_confinement`) proves the same from the tables.
//!
//! A canary is a doubleword: the upper half [`CANARY_HI`] (the partner guest builds the same
//! value at run time), the lower half a tag — `MOAT` for Moat's own memory, `FREE` for free
//! memory.

use crate::console::log;
use crate::lock::Lock;
use crate::mm::PhysAllocator;
use crate::platform::PhysRange;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// The upper half of every canary.
const CANARY_HI: u32 = 0xA5A5_5A5A ^ 0x6102_4407;
/// The tag of Moat's own memory, "MOAT".
const TAG_MOAT: u32 = 0x4D4F_4154;
/// The tag of free memory, "FREE".
const TAG_FREE: u32 = 0x4652_4545;
/// The tag the `partner` guest's `partner.canary` fills its own free RAM with, "NEIG": a VM's
/// pages that begin with it are checked whole at the machine's end (a DMA-isolation case aims
/// a device at them).
const TAG_NEIGHBOUR: u32 = 0x4E45_4947;
/// The granule stage 2 maps at the finest: a page of free memory mapped by mistake holds a
/// canary in its first doubleword.
const PAGE: u64 = 4096;

/// A page of Moat's own data, all canaries.
#[repr(align(4096))]
struct OwnPage([AtomicU64; 512]);

static OWN: OwnPage = OwnPage([const { AtomicU64::new(0) }; 512]);

/// The free ranges [`place`] marked: no allocation after boot takes from them (stage 2's
/// later frames come from per-VM pools taken before).
static MARKED: Lock<Vec<PhysRange>> = Lock::new(Vec::new());

const fn canary(tag: u32) -> u64 {
    ((CANARY_HI as u64) << 32) | tag as u64
}

/// Places the canaries: a page of Moat's own data, and the first doubleword of every free page
/// (after the VMs took their memory, so nothing a VM owns is marked). Returns the free pages
/// marked.
pub fn place(phys: &PhysAllocator) -> u64 {
    for word in &OWN.0 {
        word.store(canary(TAG_MOAT), Ordering::Relaxed);
    }
    *MARKED.lock() = phys.free_ranges().to_vec();
    let mut pages = 0;
    for range in phys.free_ranges() {
        let mut at = range.base.next_multiple_of(PAGE);
        while at + 8 <= range.end() {
            // SAFETY: `at` lies in a range the allocator holds free: RAM that no VM, heap or
            // table uses, identity-mapped by Moat's own translation; nothing else writes it.
            unsafe { (at as *mut u64).write_volatile(canary(TAG_FREE)) };
            pages += 1;
            at += PAGE;
        }
    }
    pages
}

/// The physical address of Moat's canary page, for the report (a DMA-isolation case aims a
/// device at it).
pub fn own_page() -> u64 {
    core::ptr::addr_of!(OWN) as u64
}

/// Checks every canary at the machine's end: Moat's page and the first doubleword of every
/// page that was free when [`place`] marked them, and every doubleword of each page of the VMs'
/// RAM (`vm_ram`: physical base and size) that begins with the neighbour canary. Reports the
/// first changed one, or that all are intact.
pub fn verify(vm_ram: &[(u64, u64)]) {
    let own_changed = OWN
        .0
        .iter()
        .position(|w| w.load(Ordering::Relaxed) != canary(TAG_MOAT));
    if let Some(i) = own_changed {
        log!(
            "isolation: Moat's canary at {:#x} changed",
            own_page() + 8 * i as u64
        );
        return;
    }
    let mut pages = 0;
    for range in MARKED.lock().iter() {
        let mut at = range.base.next_multiple_of(PAGE);
        while at + 8 <= range.end() {
            // SAFETY: as in `place`: a free page's first doubleword, identity-mapped RAM no VM
            // maps and Moat does not use.
            let word = unsafe { (at as *const u64).read_volatile() };
            if word != canary(TAG_FREE) {
                log!("isolation: the canary of free page {at:#x} changed to {word:#x}");
                return;
            }
            pages += 1;
            at += PAGE;
        }
    }
    let neighbour = canary(TAG_NEIGHBOUR);
    let mut marked = 0;
    for &(base, size) in vm_ram {
        for page in (base..base + size).step_by(PAGE as usize) {
            // SAFETY: a page of a VM's backing RAM, identity-mapped Normal memory; the machine
            // is ending, its VMs' writes are done or do not matter; read only.
            let words = unsafe { core::slice::from_raw_parts(page as *const u64, 512) };
            if words[0] != neighbour {
                continue;
            }
            if let Some(i) = words.iter().position(|&w| w != neighbour) {
                log!(
                    "isolation: a VM's canary at {:#x} changed to {:#x}",
                    page + 8 * i as u64,
                    words[i]
                );
                return;
            }
            marked += 1;
        }
    }
    log!(
        "isolation: canaries intact: Moat's page at {:#x}, {pages} free pages and {marked} pages its VMs marked",
        own_page()
    );
}
