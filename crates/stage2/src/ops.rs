//! The recursive table updates behind [`Stage2::map`](crate::Stage2::map), `unmap` and
//! `protect`, one table at a time.
//!
//! A `live` table is reachable from `VTTBR_EL2`: changing a valid descriptor in it follows
//! break-before-make through the [`Batch`]. A table that is not live is being built (a new
//! table, or a block being split) and is written directly, then linked with one write (in place
//! of an invalid descriptor) or one break-before-make (of the block it replaces), so a failed
//! allocation never leaves a half-built table reachable. Invalid → valid needs no break; the
//! operation's final barrier publishes it.

use moat_arm::addr::{Ipa, Pa};

use crate::Stage2Error;
use crate::batch::Batch;
use crate::descriptor::{Descriptor, Kind, S2Attrs};
use crate::geometry::{ENTRIES_PER_TABLE, LAST_LEVEL, PAGE_SIZE, level_shift, level_size};
use crate::hw::{FrameAllocator, TableMemory, TlbMaintenance};

/// The first level at which the 4K granule has block descriptors (1 GiB); level 0 blocks need
/// `VTCR_EL2.DS`.
const MIN_BLOCK_LEVEL: u8 = 1;

/// One descriptor's share of a range: its index, the part of the range it covers, and whether
/// that is all of the descriptor's span.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunk {
    pub(crate) index: usize,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) base: u64,
    pub(crate) whole: bool,
}

/// The chunks of `[start, end)` (within one table) at `level`.
pub(crate) fn chunks(level: u8, start: u64, end: u64) -> impl Iterator<Item = Chunk> {
    let size = level_size(level);
    let mut next = start;
    core::iter::from_fn(move || {
        if next >= end {
            return None;
        }
        let base = next & !(size - 1);
        let chunk_end = (base + size).min(end);
        let chunk = Chunk {
            index: table_index(level, next),
            start: next,
            end: chunk_end,
            base,
            whole: next == base && chunk_end == base + size,
        };
        next = chunk_end;
        Some(chunk)
    })
}

/// The index of `ipa`'s descriptor in its table at `level` (not the concatenated root).
#[inline]
pub(crate) fn table_index(level: u8, ipa: u64) -> usize {
    (ipa >> level_shift(level)) as usize & (ENTRIES_PER_TABLE - 1)
}

/// Everything one operation needs: the hardware seams, the VM's VMID and the pending batch.
pub(crate) struct Ops<'a, M, A, T> {
    pub(crate) mem: &'a mut M,
    pub(crate) alloc: &'a mut A,
    pub(crate) tlb: &'a mut T,
    pub(crate) batch: &'a mut Batch,
    pub(crate) vmid: u16,
}

impl<M: TableMemory, A: FrameAllocator, T: TlbMaintenance> Ops<'_, M, A, T> {
    #[inline]
    fn read(&self, table: Pa, index: usize) -> Descriptor {
        Descriptor(self.mem.read(table, index))
    }

    #[inline]
    fn write(&mut self, table: Pa, index: usize, desc: Descriptor) {
        self.mem.write(table, index, desc.0);
        self.batch.wrote();
    }

    /// Completes pending breaks (see [`Batch::flush`]), then frees the tables they unlinked.
    pub(crate) fn flush(&mut self) {
        self.batch.flush(self.vmid, self.tlb);
        while let Some((table, level)) = self.batch.pop_free() {
            self.free_subtree(table, level);
        }
    }

    fn new_table(&mut self, ipa: u64) -> Result<Pa, Stage2Error> {
        let table = self.alloc.alloc_zeroed_table();
        let table = table.ok_or(Stage2Error::OutOfTableMemory { ipa: Ipa(ipa) })?;
        assert!(
            table.0 & (PAGE_SIZE - 1) == 0,
            "frame allocator returned unaligned {table}"
        );
        Ok(table)
    }

    /// Maps `[start, end)` → `pa…` in `table`, with the largest blocks that fit.
    pub(crate) fn map(
        &mut self,
        table: Pa,
        level: u8,
        (start, end): (u64, u64),
        pa: u64,
        attrs: S2Attrs,
        live: bool,
    ) -> Result<(), Stage2Error> {
        for c in chunks(level, start, end) {
            let out = pa + (c.start - start);
            if c.whole && level >= MIN_BLOCK_LEVEL && out & (level_size(level) - 1) == 0 {
                let leaf = Descriptor::leaf(Pa(out), attrs, level);
                self.set_leaf(table, level, c, leaf, live)?;
            } else {
                self.map_below(table, level, c, out, attrs, live)?;
            }
        }
        Ok(())
    }

    /// Maps the one page at `ipa` → `pa` below the live `table` at `level`: the fault-handling
    /// hot path, an iterative descent that falls back to [`Ops::map`] where a block is in the
    /// way.
    pub(crate) fn map_page(
        &mut self,
        mut table: Pa,
        mut level: u8,
        ipa: u64,
        pa: u64,
        attrs: S2Attrs,
    ) -> Result<(), Stage2Error> {
        let range = (ipa, ipa + level_size(LAST_LEVEL));
        while level < LAST_LEVEL {
            let index = table_index(level, ipa);
            let desc = self.read(table, index);
            table = match desc.kind(level) {
                Kind::Table(next) => next,
                Kind::Invalid => {
                    let base = ipa & !(level_size(level) - 1);
                    let c = Chunk {
                        index,
                        start: ipa,
                        end: range.1,
                        base,
                        whole: false,
                    };
                    return self.map_below(table, level, c, pa, attrs, true);
                }
                Kind::Leaf => return self.map(table, level, range, pa, attrs, true),
            };
            level += 1;
        }
        let page = Chunk {
            index: table_index(level, ipa),
            start: ipa,
            end: range.1,
            base: ipa,
            whole: true,
        };
        self.set_leaf(
            table,
            level,
            page,
            Descriptor::leaf(Pa(pa), attrs, level),
            true,
        )
    }

    /// Maps the chunk `c` one level down, creating or splitting the next table.
    fn map_below(
        &mut self,
        table: Pa,
        level: u8,
        c: Chunk,
        out: u64,
        attrs: S2Attrs,
        live: bool,
    ) -> Result<(), Stage2Error> {
        let old = self.read(table, c.index);
        let range = (c.start, c.end);
        match old.kind(level) {
            Kind::Table(child) => self.map(child, level + 1, range, out, attrs, live),
            Kind::Invalid => {
                // Built off-line and linked with one write, so that running out of frames
                // leaves no empty table behind. A walker that meets the link before the new
                // entries are visible reads the allocator's zeroes: a fault the guest retries.
                let child = self.new_table(c.start)?;
                if let Err(e) = self.map(child, level + 1, range, out, attrs, false) {
                    self.free_subtree(child, level + 1);
                    return Err(e);
                }
                self.write(table, c.index, Descriptor::table(child));
                Ok(())
            }
            Kind::Leaf => self.split(table, level, c, old, live, |ops, child| {
                ops.map(child, level + 1, range, out, attrs, false)
            }),
        }
    }

    /// Puts `leaf` in the chunk's descriptor, replacing whatever mapped it before.
    fn set_leaf(
        &mut self,
        table: Pa,
        level: u8,
        c: Chunk,
        leaf: Descriptor,
        live: bool,
    ) -> Result<(), Stage2Error> {
        let old = self.read(table, c.index);
        match old.kind(level) {
            Kind::Invalid => self.write(table, c.index, leaf),
            Kind::Leaf if old == leaf => {}
            Kind::Leaf => self.replace(table, level, c, leaf, live),
            Kind::Table(child) => {
                self.detach(table, c, child, level + 1, live);
                if live {
                    self.flush();
                }
                self.write(table, c.index, leaf);
            }
        }
        Ok(())
    }

    /// Break-before-make of a valid leaf in a live table: invalid, invalidate, then `new`.
    fn replace(&mut self, table: Pa, level: u8, c: Chunk, new: Descriptor, live: bool) {
        if live {
            self.write(table, c.index, Descriptor::INVALID);
            self.batch.broke(Ipa(c.base), Some(level));
            self.flush();
        }
        self.write(table, c.index, new);
    }

    /// Removes the table `child` (at `child_level`, with everything below it) from the chunk's
    /// descriptor, and frees it once no walker can reach it. The leaves of a page table are
    /// invalidated by IPA while the batch has room; any deeper subtree invalidates the VMID.
    fn detach(&mut self, table: Pa, c: Chunk, child: Pa, child_level: u8, live: bool) {
        if !live {
            self.write(table, c.index, Descriptor::INVALID);
            self.free_subtree(child, child_level);
            return;
        }
        if child_level < LAST_LEVEL {
            self.batch.broke_many();
        }
        for index in 0..ENTRIES_PER_TABLE {
            if self.batch.invalidates_vmid() {
                break;
            }
            if self.read(child, index).is_valid() {
                let ipa = c.base + index as u64 * level_size(child_level);
                self.batch.broke(Ipa(ipa), Some(child_level));
            }
        }
        self.unlink_empty(table, c, child, child_level, live);
    }

    /// Removes the empty table `child` from the chunk's descriptor and frees it once no walker
    /// can reach it (its table descriptor may sit in a walk cache).
    fn unlink_empty(&mut self, table: Pa, c: Chunk, child: Pa, child_level: u8, live: bool) {
        self.write(table, c.index, Descriptor::INVALID);
        if !live {
            self.free_subtree(child, child_level);
            return;
        }
        self.batch.broke(Ipa(c.base), None);
        if !self.batch.can_defer_free() {
            self.flush();
        }
        self.batch.defer_free(child, child_level);
    }

    /// Replaces the block `block` in the chunk's descriptor by a table of the next level that
    /// maps the same, changed by `change` before it becomes reachable.
    fn split<F>(
        &mut self,
        table: Pa,
        level: u8,
        c: Chunk,
        block: Descriptor,
        live: bool,
        change: F,
    ) -> Result<(), Stage2Error>
    where
        F: FnOnce(&mut Self, Pa) -> Result<(), Stage2Error>,
    {
        let child = self.new_table(c.start)?;
        let sub = block.as_level(level + 1);
        let step = level_size(level + 1);
        let mut out = block.output().0 & !(level_size(level) - 1);
        for index in 0..ENTRIES_PER_TABLE {
            self.write(child, index, sub.with_output(Pa(out)));
            out += step;
        }
        if let Err(e) = change(self, child) {
            self.free_subtree(child, level + 1);
            return Err(e);
        }
        self.replace(table, level, c, Descriptor::table(child), live);
        Ok(())
    }

    /// Frees `table` and every table below it; none of them is reachable.
    fn free_subtree(&mut self, table: Pa, level: u8) {
        if level < LAST_LEVEL {
            for index in 0..ENTRIES_PER_TABLE {
                if let Kind::Table(child) = self.read(table, index).kind(level) {
                    self.free_subtree(child, level + 1);
                }
            }
        }
        self.alloc.free_table(table);
    }

    /// Whether `table` (at `level`) holds nothing after `[start, end)` was cleared in it. The
    /// entries just after and just before the range are looked at first: unmapping page by
    /// page, in either direction, finds a neighbour still mapped at once.
    fn is_empty(&self, table: Pa, level: u8, (start, end): (u64, u64)) -> bool {
        let after = table_index(level, end - 1) + 1;
        let before = table_index(level, start).checked_sub(1);
        let mapped = |index: usize| self.read(table, index) != Descriptor::INVALID;
        if (after < ENTRIES_PER_TABLE && mapped(after)) || before.is_some_and(mapped) {
            return false;
        }
        !(0..ENTRIES_PER_TABLE).any(mapped)
    }

    /// Unmaps `[start, end)` in `table`, splitting blocks it covers in part and unlinking
    /// tables it leaves empty.
    pub(crate) fn unmap(
        &mut self,
        table: Pa,
        level: u8,
        (start, end): (u64, u64),
        live: bool,
    ) -> Result<(), Stage2Error> {
        for c in chunks(level, start, end) {
            let old = self.read(table, c.index);
            let range = (c.start, c.end);
            match old.kind(level) {
                Kind::Invalid => {}
                Kind::Leaf if c.whole => {
                    self.write(table, c.index, Descriptor::INVALID);
                    if live {
                        self.batch.broke(Ipa(c.base), Some(level));
                    }
                }
                Kind::Leaf => self.split(table, level, c, old, live, |ops, child| {
                    ops.unmap(child, level + 1, range, false)
                })?,
                Kind::Table(child) if c.whole => self.detach(table, c, child, level + 1, live),
                Kind::Table(child) => {
                    self.unmap(child, level + 1, range, live)?;
                    if self.is_empty(child, level + 1, range) {
                        self.unlink_empty(table, c, child, level + 1, live);
                    }
                }
            }
        }
        Ok(())
    }

    /// Unmaps the one page at `ipa` below the live root `table` at `level`: an iterative
    /// descent that remembers its path, then unlinks the tables it leaves empty, bottom up.
    /// Falls back to [`Ops::unmap`] where a block has to be split.
    pub(crate) fn unmap_page(
        &mut self,
        mut table: Pa,
        start_level: u8,
        ipa: u64,
    ) -> Result<(), Stage2Error> {
        let page = (ipa, ipa + level_size(LAST_LEVEL));
        let mut path = [Pa(0); LAST_LEVEL as usize + 1];
        let mut level = start_level;
        loop {
            path[usize::from(level)] = table;
            match self.read(table, table_index(level, ipa)).kind(level) {
                Kind::Invalid => return Ok(()),
                Kind::Table(next) => table = next,
                Kind::Leaf if level == LAST_LEVEL => break,
                Kind::Leaf => return self.unmap(table, level, page, true),
            }
            level += 1;
        }
        self.write(table, table_index(level, ipa), Descriptor::INVALID);
        self.batch.broke(Ipa(ipa), Some(level));
        while level > start_level && self.is_empty(path[usize::from(level)], level, page) {
            let parent_level = level - 1;
            let base = ipa & !(level_size(parent_level) - 1);
            let index = table_index(parent_level, ipa);
            let c = Chunk {
                index,
                start: base,
                end: base + level_size(parent_level),
                base,
                whole: true,
            };
            self.unlink_empty(
                path[usize::from(parent_level)],
                c,
                path[usize::from(level)],
                level,
                true,
            );
            level = parent_level;
        }
        Ok(())
    }

    /// First pass of a permission change: every leaf in `[start, end)` whose attributes differ
    /// from `attrs` is parked (made invalid with the new attributes kept in it) in a live table
    /// or rewritten in a table being built. Blocks covered in part are split.
    pub(crate) fn protect_park(
        &mut self,
        table: Pa,
        level: u8,
        (start, end): (u64, u64),
        attrs: S2Attrs,
        live: bool,
    ) -> Result<(), Stage2Error> {
        for c in chunks(level, start, end) {
            let old = self.read(table, c.index);
            let range = (c.start, c.end);
            match old.kind(level) {
                Kind::Invalid => {}
                Kind::Table(child) => self.protect_park(child, level + 1, range, attrs, live)?,
                Kind::Leaf if old.with_attrs(attrs) == old => {}
                Kind::Leaf if !c.whole => {
                    self.split(table, level, c, old, live, |ops, child| {
                        ops.protect_park(child, level + 1, range, attrs, false)
                    })?
                }
                Kind::Leaf if live => {
                    self.write(table, c.index, old.with_attrs(attrs).parked());
                    self.batch.broke(Ipa(c.base), Some(level));
                }
                Kind::Leaf => self.write(table, c.index, old.with_attrs(attrs)),
            }
        }
        Ok(())
    }

    /// Second pass of a permission change, after the flush: makes every parked leaf in
    /// `[start, end)` valid again.
    pub(crate) fn protect_unpark(&mut self, table: Pa, level: u8, (start, end): (u64, u64)) {
        for c in chunks(level, start, end) {
            let old = self.read(table, c.index);
            if old.is_parked() {
                self.write(table, c.index, old.unparked());
            } else if let Kind::Table(child) = old.kind(level) {
                self.protect_unpark(child, level + 1, (c.start, c.end));
            }
        }
    }
}
