//! One VM's stage-2 translation: its root (concatenated start tables), VMID and the public
//! map / unmap / protect operations on live tables.
//!
//! Every operation validates its range first, runs over the root tables it touches, and ends
//! with one flush: pending invalidations complete and new descriptors become visible before it
//! returns, so the caller may resume the guest at once.

use moat_arm::addr::{Ipa, Pa};

use crate::Stage2Error;
use crate::batch::Batch;
use crate::descriptor::S2Attrs;
use crate::geometry::{BITS_PER_LEVEL, Geometry, PAGE_SIZE, level_shift, vttbr_el2};
use crate::hw::{FrameAllocator, TableMemory, TlbMaintenance};
use crate::ops::Ops;

/// The largest VMID with 8-bit VMIDs (`VTCR_EL2.VS` = 0), which every implementation has
/// (a geometry with [`crate::VmidBits::Sixteen`] allows up to `u16::MAX`).
pub const MAX_VMID: u16 = u8::MAX as u16;

/// A VM's stage-2 tables. It owns the table frames it allocated; hand them back with
/// [`Stage2::destroy`].
///
/// One CPU at a time changes a VM's tables (`&mut self`; the EL2 binary serialises with a
/// per-VM lock); the hardware walkers of every CPU running the VM may read them meanwhile,
/// which is what break-before-make and the [`TlbMaintenance`] order are for.
#[derive(Debug)]
pub struct Stage2 {
    geometry: Geometry,
    vmid: u16,
    root: Pa,
    batch: Batch,
}

impl Stage2 {
    /// Empty stage-2 tables for a VM: allocates the concatenated start tables.
    ///
    /// # Errors
    ///
    /// [`Stage2Error::VmidTooLarge`] for a VMID wider than the geometry's VMID width;
    /// [`Stage2Error::OutOfTableMemory`] when the root cannot be allocated.
    pub fn new<A: FrameAllocator>(
        geometry: Geometry,
        vmid: u16,
        alloc: &mut A,
    ) -> Result<Self, Stage2Error> {
        let max = geometry.vmid_bits().max_vmid();
        if vmid > max {
            return Err(Stage2Error::VmidTooLarge { vmid, max });
        }
        let count = geometry.root_tables() as usize;
        let root = alloc.alloc_zeroed_tables(count, count as u64 * PAGE_SIZE);
        let root = root.ok_or(Stage2Error::OutOfTableMemory { ipa: Ipa(0) })?;
        let align = count as u64 * PAGE_SIZE;
        assert!(
            root.0 % align == 0,
            "frame allocator returned {root}, not {align:#x} aligned"
        );
        Ok(Self {
            geometry,
            vmid,
            root,
            batch: Batch::new(),
        })
    }

    /// The geometry the tables follow.
    #[must_use]
    pub const fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The VM's VMID.
    #[must_use]
    pub const fn vmid(&self) -> u16 {
        self.vmid
    }

    /// The first frame of the concatenated start tables.
    #[must_use]
    pub const fn root(&self) -> Pa {
        self.root
    }

    /// The `VTTBR_EL2` value that selects these tables and the VM's VMID.
    #[must_use]
    pub const fn vttbr_el2(&self) -> u64 {
        vttbr_el2(self.vmid, self.root)
    }

    /// The `VTCR_EL2` value for these tables (same as the geometry's).
    #[must_use]
    pub fn vtcr_el2(&self) -> u64 {
        self.geometry.vtcr_el2()
    }

    /// Maps `size` bytes at `ipa` to `pa` with `attrs`, using 1 GiB and 2 MiB blocks where
    /// both addresses are aligned and 4 KiB pages elsewhere. Whatever mapped part of the range
    /// before is replaced with break-before-make. The new mapping is visible to every CPU when
    /// this returns.
    ///
    /// # Errors
    ///
    /// [`Stage2Error::MisalignedRange`], [`Stage2Error::MisalignedPa`],
    /// [`Stage2Error::IpaRangeOutsideVm`], [`Stage2Error::PaRangeAboveLimit`] before anything
    /// changes; [`Stage2Error::OutOfTableMemory`] when a table frame is missing, after the part
    /// of the range before the named IPA was mapped (unmap the range to undo it).
    #[allow(
        clippy::too_many_arguments,
        reason = "the three hardware seams are separate borrows"
    )]
    pub fn map<M: TableMemory, A: FrameAllocator, T: TlbMaintenance>(
        &mut self,
        mem: &mut M,
        alloc: &mut A,
        tlb: &mut T,
        ipa: Ipa,
        pa: Pa,
        size: u64,
        attrs: S2Attrs,
    ) -> Result<(), Stage2Error> {
        let Some(range) = self.check_range(ipa, size)? else {
            return Ok(());
        };
        self.check_output(pa, size)?;
        self.edit(mem, alloc, tlb, range, |ops, table, level, part| {
            if part.1 - part.0 == PAGE_SIZE {
                ops.map_page(table, level, part.0, pa.0, attrs)
            } else {
                ops.map(table, level, part, pa.0 + (part.0 - range.0), attrs, true)
            }
        })
    }

    /// Unmaps `size` bytes at `ipa`: blocks partly inside are split, tables left empty are
    /// freed, and the TLBs no longer hold the range when this returns. Unmapped parts of the
    /// range are skipped.
    ///
    /// # Errors
    ///
    /// [`Stage2Error::MisalignedRange`], [`Stage2Error::IpaRangeOutsideVm`] before anything
    /// changes; [`Stage2Error::OutOfTableMemory`] when splitting a block needs a frame, after
    /// the part of the range before the named IPA was unmapped.
    pub fn unmap<M: TableMemory, A: FrameAllocator, T: TlbMaintenance>(
        &mut self,
        mem: &mut M,
        alloc: &mut A,
        tlb: &mut T,
        ipa: Ipa,
        size: u64,
    ) -> Result<(), Stage2Error> {
        let Some(range) = self.check_range(ipa, size)? else {
            return Ok(());
        };
        self.edit(mem, alloc, tlb, range, |ops, table, level, part| {
            if part.1 - part.0 == PAGE_SIZE {
                ops.unmap_page(table, level, part.0)
            } else {
                ops.unmap(table, level, part, true)
            }
        })
    }

    /// Gives every mapped page of `size` bytes at `ipa` the attributes `attrs` (memory type,
    /// permission, execute-never), keeping its output address; unmapped parts stay unmapped.
    /// Each changed descriptor is broken, invalidated and remade.
    ///
    /// # Errors
    ///
    /// [`Stage2Error::MisalignedRange`], [`Stage2Error::IpaRangeOutsideVm`] before anything
    /// changes; [`Stage2Error::OutOfTableMemory`] when splitting a block needs a frame, after
    /// the part of the range before the named IPA was changed.
    pub fn protect<M: TableMemory, A: FrameAllocator, T: TlbMaintenance>(
        &mut self,
        mem: &mut M,
        alloc: &mut A,
        tlb: &mut T,
        ipa: Ipa,
        size: u64,
        attrs: S2Attrs,
    ) -> Result<(), Stage2Error> {
        let Some(range) = self.check_range(ipa, size)? else {
            return Ok(());
        };
        let result = self.edit(mem, alloc, tlb, range, |ops, table, level, part| {
            ops.protect_park(table, level, part, attrs, true)
        });
        // Parked leaves are remade even after an error, so none stays invalid.
        let _ = self.edit(mem, alloc, tlb, range, |ops, table, level, part| {
            ops.protect_unpark(table, level, part);
            Ok(())
        });
        result
    }

    /// Unmaps everything, invalidates the VM's TLB entries and frees every table, the root
    /// included.
    pub fn destroy<M: TableMemory, A: FrameAllocator, T: TlbMaintenance>(
        mut self,
        mem: &mut M,
        alloc: &mut A,
        tlb: &mut T,
    ) {
        let end = self.geometry.ipa_end();
        let result = self.edit(mem, alloc, tlb, (0, end), |ops, table, level, part| {
            ops.unmap(table, level, part, true)
        });
        assert!(
            result.is_ok(),
            "unmapping whole tables never splits a block"
        );
        tlb.invalidate_vmid(self.vmid);
        tlb.barrier();
        alloc.free_tables(self.root, self.geometry.root_tables() as usize);
    }

    /// Runs `step` on each start table's share of `range` (the table, the start level, the
    /// share), with the edit state: the three seams, this stage 2's TLB batch and VMID. Then
    /// issues the TLB maintenance the steps batched, also after an error. Returns the first
    /// error, which ends the walk.
    fn edit<M: TableMemory, A: FrameAllocator, T: TlbMaintenance>(
        &mut self,
        mem: &mut M,
        alloc: &mut A,
        tlb: &mut T,
        range: (u64, u64),
        mut step: impl FnMut(&mut Ops<'_, M, A, T>, Pa, u8, (u64, u64)) -> Result<(), Stage2Error>,
    ) -> Result<(), Stage2Error> {
        let mut ops = Ops {
            mem,
            alloc,
            tlb,
            batch: &mut self.batch,
            vmid: self.vmid,
        };
        let level = self.geometry.start_level();
        let result = for_each_root(&self.geometry, self.root, range, |table, part| {
            step(&mut ops, table, level, part)
        });
        ops.flush();
        result
    }

    /// `[ipa, ipa + size)` after checking it is page aligned and inside `2^S`; `None` if empty.
    pub(crate) fn check_range(
        &self,
        ipa: Ipa,
        size: u64,
    ) -> Result<Option<(u64, u64)>, Stage2Error> {
        if (ipa.0 | size) & (PAGE_SIZE - 1) != 0 {
            return Err(Stage2Error::MisalignedRange { ipa, size });
        }
        let outside = Stage2Error::IpaRangeOutsideVm {
            ipa,
            size,
            ipa_bits: self.geometry.ipa_bits(),
        };
        let end = ipa.0.checked_add(size).ok_or(outside)?;
        if end > self.geometry.ipa_end() {
            return Err(outside);
        }
        Ok((size != 0).then_some((ipa.0, end)))
    }

    fn check_output(&self, pa: Pa, size: u64) -> Result<(), Stage2Error> {
        if pa.0 & (PAGE_SIZE - 1) != 0 {
            return Err(Stage2Error::MisalignedPa { pa });
        }
        let pa_limit_bits = self.geometry.pa_limit_bits();
        match pa.0.checked_add(size) {
            Some(end) if end <= 1 << pa_limit_bits => Ok(()),
            _ => Err(Stage2Error::PaRangeAboveLimit {
                pa,
                size,
                pa_limit_bits,
            }),
        }
    }
}

/// Runs `f` on each concatenated root table that `[start, end)` touches, with the part of the
/// range inside it, stopping at the first error.
pub(crate) fn for_each_root<F>(
    geometry: &Geometry,
    root: Pa,
    (start, end): (u64, u64),
    mut f: F,
) -> Result<(), Stage2Error>
where
    F: FnMut(Pa, (u64, u64)) -> Result<(), Stage2Error>,
{
    let table_shift = level_shift(geometry.start_level()) + BITS_PER_LEVEL;
    let mut next = start;
    while next < end {
        let frame = next >> table_shift;
        let part_end = ((frame + 1) << table_shift).min(end);
        f(Pa(root.0 + frame * PAGE_SIZE), (next, part_end))?;
        next = part_end;
    }
    Ok(())
}
