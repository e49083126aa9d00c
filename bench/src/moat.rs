//! The benchmark's work on Moat's stage 2, with its three hardware seams on the heap: table
//! frames in one arena (a PA is an arena offset), counting no-op TLB maintenance (as
//! `aarch64-paging`'s TLBI instructions are compiled out on the host).

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Instant;

use moat_arm::addr::{Ipa, Pa};
use moat_stage2::{FrameAllocator, Geometry, S2Attrs, Stage2, TableMemory, TlbMaintenance};

use crate::{BASE, LOOKUPS, PAGE, Rng, SIZE, Times};

/// The PA of arena frame 0; any page-aligned address below 2^48 would do.
const ARENA_BASE: u64 = 0x10_0000_0000;
const ENTRIES: usize = 512;
/// Frames in the arena: 16 MiB, far more than 1 GiB of pages needs (513 tables + root).
const ARENA_FRAMES: usize = 4096;

/// Heap frames for tables, shared by the table memory and the allocator as the EL2 binary's
/// identity-mapped RAM is: `Cell`s make a plain load or store per access without `unsafe`.
#[derive(Clone)]
struct Arena(Rc<[Cell<u64>]>);

impl Arena {
    fn new() -> Self {
        Self((0..ARENA_FRAMES * ENTRIES).map(|_| Cell::new(0)).collect())
    }

    #[inline]
    fn cell(&self, table: Pa, index: usize) -> &Cell<u64> {
        let slot = ((table.0 - ARENA_BASE) / PAGE) as usize;
        &self.0[slot * ENTRIES + index]
    }
}

impl TableMemory for Arena {
    #[inline]
    fn read(&self, table: Pa, index: usize) -> u64 {
        self.cell(table, index).get()
    }

    #[inline]
    fn write(&mut self, table: Pa, index: usize, desc: u64) {
        self.cell(table, index).set(desc);
    }
}

/// A frame allocator over the arena: a bump pointer and a free list.
struct Frames {
    arena: Arena,
    next: usize,
    free: Vec<usize>,
}

impl Frames {
    #[inline]
    fn pa(slot: usize) -> Pa {
        Pa(ARENA_BASE + slot as u64 * PAGE)
    }

    fn zero(&self, slot: usize) {
        for cell in &self.arena.0[slot * ENTRIES..(slot + 1) * ENTRIES] {
            cell.set(0);
        }
    }
}

impl FrameAllocator for Frames {
    #[inline]
    fn alloc_zeroed_table(&mut self) -> Option<Pa> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None if self.next < ARENA_FRAMES => {
                self.next += 1;
                self.next - 1
            }
            None => return None,
        };
        self.zero(slot);
        Some(Self::pa(slot))
    }

    fn alloc_zeroed_tables(&mut self, count: usize, align: u64) -> Option<Pa> {
        let first = self.next.next_multiple_of((align / PAGE) as usize);
        if first + count > ARENA_FRAMES {
            return None;
        }
        self.free.extend(self.next..first);
        self.next = first + count;
        (first..first + count).for_each(|slot| self.zero(slot));
        Some(Self::pa(first))
    }

    #[inline]
    fn free_table(&mut self, table: Pa) {
        self.free.push(((table.0 - ARENA_BASE) / PAGE) as usize);
    }

    fn free_tables(&mut self, first: Pa, count: usize) {
        for i in 0..count as u64 {
            self.free_table(Pa(first.0 + i * PAGE));
        }
    }
}

/// TLB maintenance that only counts, so the calls stay in the measured code.
#[derive(Default)]
struct NoTlb {
    calls: u64,
}

impl TlbMaintenance for NoTlb {
    #[inline]
    fn barrier(&mut self) {
        self.calls += 1;
    }

    #[inline]
    fn invalidate_ipa(&mut self, _vmid: u16, _ipa: Ipa, _level: Option<u8>) {
        self.calls += 1;
    }

    #[inline]
    fn invalidate_combined(&mut self, _vmid: u16) {
        self.calls += 1;
    }

    #[inline]
    fn invalidate_vmid(&mut self, _vmid: u16) {
        self.calls += 1;
    }
}

/// One repetition of the work.
pub fn run() -> Times {
    let geometry = Geometry::new(40, 48).expect("40-bit IPA under a 48-bit limit");
    let mut mem = Arena::new();
    let mut alloc = Frames {
        arena: mem.clone(),
        next: 0,
        free: Vec::new(),
    };
    let mut tlb = NoTlb::default();
    let mut s2 = Stage2::new(geometry, 1, &mut alloc).expect("root allocation");
    let mut times = Times::default();

    let start = Instant::now();
    map_pages(&mut s2, &mut mem, &mut alloc, &mut tlb);
    times.map = start.elapsed();

    let start = Instant::now();
    let mut rng = Rng::default();
    for _ in 0..LOOKUPS {
        let t = s2.translate(&mem, Ipa(rng.next_ipa())).expect("mapped");
        times.checksum = times.checksum.wrapping_add(black_box(t.pa.0));
    }
    times.translate = start.elapsed();

    let start = Instant::now();
    s2.unmap(&mut mem, &mut alloc, &mut tlb, Ipa(BASE), SIZE)
        .expect("unmap");
    times.unmap_all = start.elapsed();

    map_pages(&mut s2, &mut mem, &mut alloc, &mut tlb);
    let start = Instant::now();
    for page in (BASE..BASE + SIZE).step_by(PAGE as usize) {
        s2.unmap(&mut mem, &mut alloc, &mut tlb, Ipa(page), PAGE)
            .expect("unmap");
    }
    times.unmap_pages = start.elapsed();
    assert_eq!(alloc.next - alloc.free.len(), 2, "only the root is left");
    black_box(tlb.calls);
    times
}

fn map_pages(s2: &mut Stage2, mem: &mut Arena, alloc: &mut Frames, tlb: &mut NoTlb) {
    for page in (BASE..BASE + SIZE).step_by(PAGE as usize) {
        s2.map(mem, alloc, tlb, Ipa(page), Pa(page), PAGE, S2Attrs::RAM)
            .expect("map");
    }
}
