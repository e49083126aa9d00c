//! Reading a VM's stage-2 tables the way the hardware walker does (`AArch64.S2Walk()`): the
//! translation of one IPA, and a visit of every leaf over a range.

use moat_arm::addr::{Ipa, Pa};

use crate::descriptor::{Descriptor, Kind, S2Attrs};
use crate::geometry::{BITS_PER_LEVEL, ENTRIES_PER_TABLE, PAGE_SIZE, level_shift, level_size};
use crate::hw::TableMemory;
use crate::ops::chunks;
use crate::stage2::for_each_root;
use crate::{Stage2, Stage2Error};

/// Where an IPA goes: the result of a successful stage-2 walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The output address of the IPA itself (page offset included).
    pub pa: Pa,
    /// The attributes of the leaf that maps it.
    pub attrs: S2Attrs,
    /// The level of that leaf: 1 (1 GiB block), 2 (2 MiB block) or 3 (4 KiB page).
    pub level: u8,
}

/// One block or page descriptor met by [`Stage2::walk`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The first IPA the leaf maps (it may start before the walked range).
    pub ipa: Ipa,
    /// The output address of that first IPA.
    pub pa: Pa,
    /// Bytes the leaf maps.
    pub size: u64,
    /// The leaf's level.
    pub level: u8,
    /// The leaf's attributes.
    pub attrs: S2Attrs,
}

impl Stage2 {
    /// The translation of `ipa`, or `None` where the walk meets an invalid descriptor (a
    /// stage-2 translation fault) or `ipa` lies at or beyond `2^S`.
    #[must_use]
    pub fn translate<M: TableMemory>(&self, mem: &M, ipa: Ipa) -> Option<Translation> {
        if ipa.0 >= self.geometry().ipa_end() {
            return None;
        }
        let mut level = self.geometry().start_level();
        let root_index = ipa.0 >> level_shift(level);
        let mut table = Pa(self.root().0 + (root_index >> BITS_PER_LEVEL) * PAGE_SIZE);
        let mut index = root_index as usize & (ENTRIES_PER_TABLE - 1);
        loop {
            let desc = Descriptor(mem.read(table, index));
            match desc.kind(level) {
                Kind::Invalid => return None,
                Kind::Table(next) => {
                    table = next;
                    level += 1;
                    index = (ipa.0 >> level_shift(level)) as usize & (ENTRIES_PER_TABLE - 1);
                }
                Kind::Leaf => {
                    let offset = ipa.0 & (level_size(level) - 1);
                    let pa = Pa(desc.output().0 + offset);
                    return Some(Translation {
                        pa,
                        attrs: desc.attrs(),
                        level,
                    });
                }
            }
        }
    }

    /// Calls `visit` for every leaf that maps part of `size` bytes at `ipa`, in IPA order.
    ///
    /// # Errors
    ///
    /// [`Stage2Error::MisalignedRange`] or [`Stage2Error::IpaRangeOutsideVm`] for a range
    /// that is not page aligned or not inside `2^S`.
    pub fn walk<M: TableMemory, F: FnMut(Leaf)>(
        &self,
        mem: &M,
        ipa: Ipa,
        size: u64,
        mut visit: F,
    ) -> Result<(), Stage2Error> {
        let Some(range) = self.check_range(ipa, size)? else {
            return Ok(());
        };
        let level = self.geometry().start_level();
        for_each_root(self.geometry(), self.root(), range, |table, part| {
            walk_table(mem, table, level, part, &mut visit);
            Ok(())
        })
    }
}

/// A leaf that maps memory outside what its VM owns: found by [`Stage2::confined_to`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Escape(pub Leaf);

impl Stage2 {
    /// Proves that the whole IPA space `[0, 2^S)` maps only into `owned` (physical ranges as
    /// `(base, size)`): every leaf's output range lies inside one of them. Returns the bytes
    /// mapped, or the first leaf that reaches anything else — another VM's memory, Moat's own,
    /// or memory nobody was given. The tables themselves are not leaves: a VM that maps them
    /// fails here, since they are never in `owned`.
    ///
    /// # Errors
    ///
    /// [`Escape`] with the first leaf, in IPA order, that is not confined.
    pub fn confined_to<M: TableMemory>(&self, mem: &M, owned: &[(Pa, u64)]) -> Result<u64, Escape> {
        let mut mapped = 0u64;
        let mut escape = None;
        let end = self.geometry().ipa_end();
        // The whole IPA space is a valid, page-aligned range of the VM: the walk cannot fail.
        let walked = self.walk(mem, Ipa(0), end, |leaf| {
            let inside = owned.iter().any(|&(base, size)| {
                leaf.pa.0 >= base.0 && leaf.pa.0 - base.0 <= size.saturating_sub(leaf.size)
            });
            if inside {
                mapped += leaf.size;
            } else if escape.is_none() {
                escape = Some(Escape(leaf));
            }
        });
        debug_assert!(walked.is_ok(), "the whole IPA space is walkable");
        escape.map_or(Ok(mapped), Err)
    }
}

fn walk_table<M: TableMemory, F: FnMut(Leaf)>(
    mem: &M,
    table: Pa,
    level: u8,
    (start, end): (u64, u64),
    visit: &mut F,
) {
    for c in chunks(level, start, end) {
        let desc = Descriptor(mem.read(table, c.index));
        match desc.kind(level) {
            Kind::Invalid => {}
            Kind::Table(next) => walk_table(mem, next, level + 1, (c.start, c.end), visit),
            Kind::Leaf => visit(Leaf {
                ipa: Ipa(c.base),
                pa: desc.output(),
                size: level_size(level),
                level,
                attrs: desc.attrs(),
            }),
        }
    }
}
