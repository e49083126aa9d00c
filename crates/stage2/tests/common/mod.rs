//! Host fakes of the stage-2 hardware seams (heap frames, a recording TLB) sharing one event
//! log, an independent hardware-style walker that reads raw descriptors, and a
//! break-before-make checker over the log.
#![allow(dead_code, reason = "each test binary uses a different part")]

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use moat_arm::addr::{Ipa, Pa};
use moat_stage2::{FrameAllocator, TableMemory, TlbMaintenance};

pub const FRAME: u64 = 4096;
/// Where the fake allocator's frames start (any page-aligned address below 2^32 works).
const FRAME_BASE: u64 = 0x8000_0000;

/// Something the code under test did to the fake hardware, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Write {
        table: u64,
        index: usize,
        old: u64,
        new: u64,
    },
    Barrier,
    InvalidateIpa {
        vmid: u16,
        ipa: u64,
        level: Option<u8>,
    },
    InvalidateCombined {
        vmid: u16,
    },
    InvalidateVmid {
        vmid: u16,
    },
    Alloc {
        first: u64,
        count: usize,
    },
    Free {
        table: u64,
    },
}

#[derive(Default)]
pub struct World {
    pub frames: HashMap<u64, Box<[u64; 512]>>,
    pub log: Vec<Event>,
    cleared: usize,
    next: u64,
    /// Frames the allocator may still hand out; `None` = unlimited.
    pub budget: Option<usize>,
}

/// The fake hardware: memory, allocator and TLB over one shared [`World`].
#[derive(Clone)]
pub struct Fake(pub Rc<RefCell<World>>);

impl Fake {
    pub fn new() -> Self {
        let world = World {
            next: FRAME_BASE,
            ..World::default()
        };
        Self(Rc::new(RefCell::new(world)))
    }

    pub fn live_frames(&self) -> usize {
        self.0.borrow().frames.len()
    }

    /// The events since the last [`Fake::clear_log`].
    pub fn log(&self) -> Vec<Event> {
        let world = self.0.borrow();
        world.log[world.cleared..].to_vec()
    }

    /// Forgets the log for [`Fake::log`]; [`Fake::history`] keeps everything.
    pub fn clear_log(&self) {
        let mut world = self.0.borrow_mut();
        world.cleared = world.log.len();
    }

    /// Every event since the fake was made.
    pub fn history(&self) -> Vec<Event> {
        self.0.borrow().log.clone()
    }

    pub fn set_budget(&self, frames: Option<usize>) {
        self.0.borrow_mut().budget = frames;
    }

    /// The raw descriptor at byte address `addr` (for the hardware-style walker).
    pub fn read_phys(&self, addr: u64) -> u64 {
        let world = self.0.borrow();
        let frame = world.frames.get(&(addr & !(FRAME - 1)));
        let frame = frame.unwrap_or_else(|| panic!("walker read of unallocated frame {addr:#x}"));
        frame[((addr & (FRAME - 1)) / 8) as usize]
    }
}

impl TableMemory for Fake {
    fn read(&self, table: Pa, index: usize) -> u64 {
        assert!(index < 512, "index {index} beyond a table");
        self.read_phys(table.0 + 8 * index as u64)
    }

    fn write(&mut self, table: Pa, index: usize, desc: u64) {
        assert!(index < 512, "index {index} beyond a table");
        let mut world = self.0.borrow_mut();
        let frame = world.frames.get_mut(&table.0);
        let frame = frame.unwrap_or_else(|| panic!("write to unallocated frame {table}"));
        let old = std::mem::replace(&mut frame[index], desc);
        world.log.push(Event::Write {
            table: table.0,
            index,
            old,
            new: desc,
        });
    }
}

impl FrameAllocator for Fake {
    fn alloc_zeroed_table(&mut self) -> Option<Pa> {
        self.alloc_zeroed_tables(1, FRAME)
    }

    fn alloc_zeroed_tables(&mut self, count: usize, align: u64) -> Option<Pa> {
        let mut world = self.0.borrow_mut();
        if let Some(budget) = world.budget {
            world.budget = Some(budget.checked_sub(count)?);
        }
        let first = world.next.next_multiple_of(align);
        world.next = first + count as u64 * FRAME;
        for i in 0..count as u64 {
            world.frames.insert(first + i * FRAME, Box::new([0; 512]));
        }
        world.log.push(Event::Alloc { first, count });
        Some(Pa(first))
    }

    fn free_table(&mut self, table: Pa) {
        let mut world = self.0.borrow_mut();
        assert!(
            world.frames.remove(&table.0).is_some(),
            "free of unallocated frame {table}"
        );
        world.log.push(Event::Free { table: table.0 });
    }

    fn free_tables(&mut self, first: Pa, count: usize) {
        for i in 0..count as u64 {
            self.free_table(Pa(first.0 + i * FRAME));
        }
    }
}

impl TlbMaintenance for Fake {
    fn barrier(&mut self) {
        self.0.borrow_mut().log.push(Event::Barrier);
    }

    fn invalidate_ipa(&mut self, vmid: u16, ipa: Ipa, level: Option<u8>) {
        self.0.borrow_mut().log.push(Event::InvalidateIpa {
            vmid,
            ipa: ipa.0,
            level,
        });
    }

    fn invalidate_combined(&mut self, vmid: u16) {
        self.0
            .borrow_mut()
            .log
            .push(Event::InvalidateCombined { vmid });
    }

    fn invalidate_vmid(&mut self, vmid: u16) {
        self.0.borrow_mut().log.push(Event::InvalidateVmid { vmid });
    }
}

/// What the hardware-style walker found for one IPA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HwTranslation {
    pub pa: u64,
    pub level: u8,
    /// The leaf descriptor as read.
    pub desc: u64,
}

/// A stage-2 walk written from the Arm ARM (`AArch64.S2Walk()`), independent of the crate:
/// decodes `VTCR_EL2.T0SZ/SL0/TG0`, indexes the concatenated start tables from `VTTBR_EL2`,
/// follows table descriptors, and returns `Err(level)` for a translation fault.
pub fn hw_walk(fake: &Fake, vtcr: u64, vttbr: u64, ipa: u64) -> Result<HwTranslation, u8> {
    assert_eq!((vtcr >> 14) & 0b11, 0b00, "TG0 must be 4K");
    let ia_bits = 64 - (vtcr & 0x3f) as u32;
    let start_level = match (vtcr >> 6) & 0b11 {
        0b00 => 2u8,
        0b01 => 1,
        0b10 => 0,
        sl0 => panic!("SL0 {sl0:#b} reserved for 4K without TTST"),
    };
    if ipa >> ia_bits != 0 {
        return Err(0);
    }
    let oa_mask: u64 = 0x0000_ffff_ffff_f000;
    let shift = |level: u8| 12 + 9 * u32::from(3 - level);
    let mut level = start_level;
    // The start level indexes IPA[S-1:shift] across all concatenated tables.
    let mut index = ipa >> shift(level);
    let mut table = vttbr & 0x0000_ffff_ffff_fffe;
    loop {
        let desc = fake.read_phys(table + 8 * index);
        if desc & 1 == 0 {
            return Err(level);
        }
        let table_or_page = desc & 0b10 != 0;
        if level < 3 && table_or_page {
            table = desc & oa_mask;
            level += 1;
            index = (ipa >> shift(level)) & 0x1ff;
            continue;
        }
        if level == 0 || (level == 3 && !table_or_page) {
            return Err(level); // level 0 block (needs DS) or reserved level 3 encoding
        }
        assert_ne!(desc & (1 << 10), 0, "Moat sets AF in every leaf: {desc:#x}");
        let size_mask = (1u64 << shift(level)) - 1;
        return Ok(HwTranslation {
            pa: (desc & oa_mask & !size_mask) | (ipa & size_mask),
            level,
            desc,
        });
    }
}

/// Checks the log against break-before-make: in every reachable table, a valid descriptor is
/// never replaced by another valid one directly, and an entry made invalid becomes valid again
/// only after `DSB`, an invalidation that covers its IPA (or the VMID), and `DSB`. A table is
/// freed only after such a sequence follows its unlinking. `roots` maps each root frame to its
/// first IPA; `start_level` is the geometry's.
pub fn check_break_before_make(log: &[Event], roots: &[(u64, u64)], start_level: u8) {
    let size = |level: u8| 1u64 << (12 + 9 * u32::from(3 - level));
    // Linked tables: frame -> (first IPA, level, parent table; None for a root).
    let mut tables: HashMap<u64, (u64, u8, Option<u64>)> = roots
        .iter()
        .map(|&(frame, ipa)| (frame, (ipa, start_level, None)))
        .collect();
    // Slots made invalid and not yet remade: (table, index) -> log position of the break.
    let mut broken: HashMap<(u64, usize), usize> = HashMap::new();
    // Tables whose table descriptor was made invalid: frame -> log position.
    let mut detached: HashMap<u64, usize> = HashMap::new();
    let mut freed: HashSet<u64> = HashSet::new();
    for (pos, event) in log.iter().enumerate() {
        match *event {
            Event::Write {
                table,
                index,
                old,
                new,
            } => {
                assert!(
                    !freed.contains(&table),
                    "#{pos}: write to freed table {table:#x}"
                );
                assert!(
                    !detached.contains_key(&table),
                    "#{pos}: write to detached {table:#x}"
                );
                let Some(&(base, level, _)) = tables.get(&table) else {
                    continue;
                };
                let slot_ipa = base + index as u64 * size(level);
                let (old_valid, new_valid) = (old & 1 != 0, new & 1 != 0);
                assert!(
                    !(old_valid && new_valid && old != new),
                    "#{pos}: valid {old:#x} replaced by valid {new:#x} at IPA {slot_ipa:#x}"
                );
                if old_valid && !new_valid {
                    broken.insert((table, index), pos);
                    if level < 3 && old & 0b10 != 0 {
                        detached.insert(old & 0x0000_ffff_ffff_f000, pos);
                    }
                }
                if new_valid {
                    if let Some(since) = broken.remove(&(table, index)) {
                        let span = (slot_ipa, slot_ipa + size(level));
                        assert_invalidated(&log[since..pos], span, pos);
                    }
                    if level < 3 && new & 0b10 != 0 {
                        let child = new & 0x0000_ffff_ffff_f000;
                        tables.insert(child, (slot_ipa, level + 1, Some(table)));
                    }
                }
            }
            Event::Free { table } => {
                check_free(log, pos, table, &tables, &detached);
                tables.remove(&table);
                detached.remove(&table);
                freed.insert(table);
            }
            Event::Alloc { first, count } => {
                for i in 0..count as u64 {
                    freed.remove(&(first + i * FRAME));
                }
            }
            _ => {}
        }
    }
}

/// A table may be freed once it (or a table above it) was detached and that break completed;
/// a table that was never linked (built, then dropped on an error) may be freed at any time.
fn check_free(
    log: &[Event],
    pos: usize,
    table: u64,
    tables: &HashMap<u64, (u64, u8, Option<u64>)>,
    detached: &HashMap<u64, usize>,
) {
    let Some(&(base, _, _)) = tables.get(&table) else {
        return;
    };
    let mut current = table;
    loop {
        if let Some(&since) = detached.get(&current) {
            assert_invalidated(&log[since..pos], (base, base + 1), pos);
            return;
        }
        match tables.get(&current) {
            Some(&(_, _, Some(parent))) => current = parent,
            _ => panic!("#{pos}: freed table {table:#x} is still reachable"),
        }
    }
}

/// `DSB`, an invalidation of an IPA in `[span.0, span.1)` or of the VMID, then `DSB`, in order.
fn assert_invalidated(between: &[Event], span: (u64, u64), pos: usize) {
    let mut stage = 0;
    for event in between {
        stage = match (stage, event) {
            (0, Event::Barrier) => 1,
            (1, Event::InvalidateIpa { ipa, .. }) if (span.0..span.1).contains(ipa) => 2,
            (1, Event::InvalidateVmid { .. }) => 2,
            (2, Event::Barrier) => 3,
            (s, _) => s,
        };
    }
    assert_eq!(
        stage, 3,
        "#{pos}: IPA {:#x} remade or freed without DSB, TLBI, DSB",
        span.0
    );
}

/// Walks every table reachable from `VTTBR_EL2` (all concatenated start tables, as `VTCR_EL2`
/// sizes them) and returns how many frames they are, checking that every invalid descriptor is
/// all zero (nothing left parked) and no level-0 or level-3 descriptor has a reserved encoding.
pub fn reachable_frames(fake: &Fake, vtcr: u64, vttbr: u64) -> usize {
    let ia_bits = 64 - (vtcr & 0x3f) as u32;
    let start_level = 2 - ((vtcr >> 6) & 0b11) as u8;
    let start_bits = ia_bits - (12 + 9 * u32::from(3 - start_level));
    let root_frames = 1u64 << start_bits.saturating_sub(9);
    let root = vttbr & 0x0000_ffff_ffff_f000;
    (0..root_frames)
        .map(|i| frames_below(fake, root + i * FRAME, start_level))
        .sum()
}

fn frames_below(fake: &Fake, table: u64, level: u8) -> usize {
    let mut frames = 1;
    for index in 0..512 {
        let desc = fake.read_phys(table + 8 * index);
        match (desc & 1 != 0, desc & 0b10 != 0, level) {
            (false, _, _) => assert_eq!(desc, 0, "invalid descriptor {desc:#x} is not zero"),
            (true, true, 0..=2) => {
                frames += frames_below(fake, desc & 0x0000_ffff_ffff_f000, level + 1)
            }
            (true, false, 0) | (true, false, 3) => {
                panic!("reserved descriptor {desc:#x} at level {level}")
            }
            (true, _, _) => {}
        }
    }
    frames
}
