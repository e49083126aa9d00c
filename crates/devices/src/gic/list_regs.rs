//! The list registers of the hardware virtual CPU interface (`ICH_LR<n>_EL2`, IHI 0069
//! "`ICH_LR<n>_EL2`, Interrupt Controller List Registers") and the scheduling that moves
//! interrupts between the model and them, at a cost proportional to what changed.
//!
//! # What the list registers hold
//!
//! The interrupts that want a list register of the vCPU (the per-vCPU summary of `summary`),
//! best first: every active interrupt the vCPU acknowledged (the guest must be able to
//! deactivate it, so no pending interrupt ever pushes one out), then the highest-priority
//! pending, enabled interrupts of enabled groups, lowest INTID first among equal priorities.
//! An interrupt made active by `ISACTIVER` that the vCPU did not acknowledge takes no list
//! register and blocks nothing (IHI 0069: a CPU interface's running priority comes from the
//! interrupts it acknowledged); active and pending, it waits for its deactivation. When more
//! want a list register than there are, the fill asks for an underflow maintenance interrupt
//! (`ICH_HCR_EL2.UIE`) so that the guest's making room brings the hypervisor back.
//! Level-sensitive interrupts are loaded with `EOI` = 1 (a maintenance interrupt when the
//! guest deactivates them) so that their line is sampled again: one whose line is still high
//! is pending again at once.
//!
//! While a list register holds an interrupt, the list register is the truth for its pending
//! and active state; the model remembers what it loaded (`LrShadow`) and which vCPU holds the
//! interrupt, so no interrupt is ever in two vCPUs' list registers. Register reads of such an
//! interrupt's pending and active bits give the state it was loaded with.
//!
//! # The protocol the hypervisor follows, per vCPU
//!
//! 1. After every exit, before handling it: `n` = [`Gic::live_list_registers`]; read
//!    `ICH_LR0_EL2` .. `ICH_LR<n-1>_EL2` (no read at all when `n` = 0, the common case of a
//!    vCPU with nothing pending) and pass exactly those to [`Gic::sync_from_list_registers`];
//!    kick the vCPUs it returns.
//! 2. Handle the exit. Every model operation keeps the summary and returns the vCPUs to kick
//!    (the hypervisor kicks them: a running vCPU exits, one waiting in WFI wakes).
//! 3. Before entering, [`Gic::fill_list_registers`]: on [`LrFill::Unchanged`] write nothing —
//!    no list register and not `ICH_HCR_EL2`; on [`LrFill::Write`], write each of
//!    [`LrWrites::values`] to `ICH_LR<i>_EL2` in order, then [`LrWrites::ich_hcr_el2`] to
//!    `ICH_HCR_EL2`, and kick [`LrWrites::kick`].
//!
//! The hypervisor writes the list registers and `ICH_HCR_EL2` of a vCPU's CPU only this way:
//! the model counts on them holding what its last fill wrote, changed only by the guest. The
//! first fill of a vCPU always writes all its list registers and `ICH_HCR_EL2` (their reset
//! values are unknown); later fills write only the list registers that may be valid.
//!
//! # When the list registers are left alone
//!
//! A fill writes nothing unless the vCPU's list registers are *stale*. They become stale when
//! a sync reads back any live list register other than exactly as loaded (the guest
//! acknowledged an interrupt, pending → active; completed or deactivated one, → invalid or
//! active → pending), and when a model operation changes an interrupt this vCPU's list
//! registers hold, or one that wants (or wanted) one of its list registers (a new SPI, SGI or
//! PPI for it, an enable, priority, group, trigger, route or pending/active change of its
//! candidates), or the group enables or a redistributor's `ProcessorSleep` (which make every
//! vCPU stale). An operation on another vCPU's interrupts leaves this vCPU's list registers
//! alone. A sync of stale list registers, or a fill of them, takes every loaded interrupt
//! back into the model (as read back, or as loaded) and the fill chooses afresh.
//!
//! Maintenance interrupts are just exits: the underflow one (`UIE`) fires when the guest has
//! consumed list registers and the `EOI` one when it deactivated a level-sensitive
//! interrupt; either way the read-back differs from what was loaded and the fill writes, which
//! also ends the maintenance condition (`ICH_MISR_EL2`, `ICH_EISR_EL2` need not be read). An
//! exit with a list register still pending that the guest has not touched writes nothing.
//!
//! On an exit that changed nothing, the sync compares the live list registers with what was
//! loaded (none when none is live) and the fill checks one flag.

use super::{Gic, GicArch, Irq, IrqRef, PRIVATE_COUNT, SGI_COUNT, VcpuSet};

pub mod gich;
mod interface;
mod registers;

pub use interface::VirtualInterface;
pub use registers::{IchVtr, ListRegister, LrState};

/// The most list registers an implementation can have (`ICH_VTR_EL2.ListRegs` + 1 ≤ 16).
pub const MAX_LIST_REGS: usize = 16;

/// `ICH_HCR_EL2` fields.
pub(crate) mod hcr {
    /// `En`: the virtual CPU interface is enabled.
    pub const EN: u64 = 1 << 0;
    /// `UIE`: maintenance interrupt when at most one list register holds a valid interrupt.
    pub const UIE: u64 = 1 << 1;
}

/// What the hypervisor does to a vCPU's list registers before entering it.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrFill {
    /// The list registers and `ICH_HCR_EL2` already hold what they should: write nothing.
    Unchanged,
    /// Write these values to `ICH_LR<n>_EL2` and `ICH_HCR_EL2`.
    Write(LrWrites),
}

impl LrFill {
    /// The writes, unless there are none.
    #[must_use]
    pub const fn writes(&self) -> Option<&LrWrites> {
        match self {
            Self::Unchanged => None,
            Self::Write(writes) => Some(writes),
        }
    }
}

/// The list-register writes of an [`LrFill::Write`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LrWrites {
    values: [u64; MAX_LIST_REGS],
    count: usize,
    underflow: bool,
    kick: VcpuSet,
}

impl LrWrites {
    /// The values of `ICH_LR0_EL2`, `ICH_LR1_EL2`, ... to write, in order: the loaded
    /// interrupts, best first, then 0 (invalid) for list registers that may still hold
    /// something from before. Higher list registers are invalid already and are not written.
    #[must_use]
    pub fn values(&self) -> &[u64] {
        &self.values[..self.count]
    }

    /// Whether more interrupts want a list register than there are.
    #[must_use]
    pub const fn underflow(&self) -> bool {
        self.underflow
    }

    /// The other vCPUs to kick: an SPI that the fill took back from the list registers may
    /// belong to another vCPU now (its route changed while it was loaded).
    #[must_use]
    pub const fn kick(&self) -> VcpuSet {
        self.kick
    }

    /// The `ICH_HCR_EL2` value to write with the list registers: `En` = 1, and `UIE` = 1 on an
    /// underflow. (`ICH_VMCR_EL2` belongs to the guest and is left alone.)
    #[must_use]
    pub const fn ich_hcr_el2(&self) -> u64 {
        if self.underflow {
            hcr::EN | hcr::UIE
        } else {
            hcr::EN
        }
    }
}

/// What a vCPU's list registers hold, as the model knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LrShadow {
    /// The values the last fill wrote to `ICH_LR0_EL2` ... (the first `live` of them hold an
    /// interrupt).
    values: [u64; MAX_LIST_REGS],
    /// How many list registers hold an interrupt the model has not taken back: the hypervisor
    /// reads back this many.
    live: usize,
    /// How many of the first list registers may be valid in the hardware (the ones above were
    /// written invalid); `None` before the first fill, when all may be.
    extent: Option<usize>,
    /// The list registers must be written before the vCPU runs again.
    stale: bool,
}

impl LrShadow {
    /// Before the first fill: the list registers and `ICH_HCR_EL2` hold unknown values.
    pub const UNKNOWN: Self = Self {
        values: [0; MAX_LIST_REGS],
        live: 0,
        extent: None,
        stale: true,
    };

    /// The values loaded and not yet taken back.
    #[inline]
    pub fn loaded(&self) -> &[u64] {
        &self.values[..self.live]
    }
}

impl<const SPIS: usize> Gic<SPIS> {
    /// How many list registers of vCPU `vcpu` hold an interrupt: after the vCPU ran, the
    /// hypervisor reads back `ICH_LR0_EL2` .. `ICH_LR<n-1>_EL2` for this `n` (often 0) and
    /// passes them to [`Gic::sync_from_list_registers`]. The others are invalid and the guest
    /// cannot change them.
    #[must_use]
    #[inline]
    pub fn live_list_registers(&self, vcpu: usize) -> usize {
        self.shadows.get(vcpu).map_or(0, |shadow| shadow.live)
    }

    /// Takes what the guest did back into the model: `lrs` are vCPU `vcpu`'s first
    /// [`Gic::live_list_registers`] list registers as read back after it ran (in order
    /// `ICH_LR0_EL2`, ...; more are ignored, missing ones count as unchanged).
    ///
    /// When every one reads back exactly as loaded and no operation of the model made the
    /// vCPU's list registers stale, the list registers keep their interrupts and nothing
    /// changes. Otherwise (the guest acknowledged, completed or deactivated one, or the model
    /// changed what they should hold) every interrupt in them goes back into the model, and the
    /// next [`Gic::fill_list_registers`] writes them all. Returns the other vCPUs to kick (an
    /// SPI the guest left pending may now belong to another vCPU).
    #[inline]
    pub fn sync_from_list_registers(&mut self, vcpu: usize, lrs: &[u64]) -> VcpuSet {
        self.sync_from_list_registers_with(vcpu, |n| lrs.get(n).copied())
    }

    /// [`Gic::sync_from_list_registers`] with the list registers read one at a time through
    /// `read` (`read(n)` is `ICH_LR<n>_EL2` as read back, `None` for one not read, which counts
    /// as unchanged), for a hypervisor that reads the hardware registers directly instead of
    /// copying them into an array first. `read` is called only for `n` below
    /// [`Gic::live_list_registers`], and may be called more than once for the same `n`.
    #[inline]
    pub fn sync_from_list_registers_with(
        &mut self,
        vcpu: usize,
        mut read: impl FnMut(usize) -> Option<u64>,
    ) -> VcpuSet {
        let Some(shadow) = self.shadows.get_mut(vcpu) else {
            return VcpuSet::EMPTY;
        };
        let consumed = shadow
            .loaded()
            .iter()
            .enumerate()
            .any(|(n, &loaded)| read(n).is_some_and(|now| now != loaded));
        if !consumed && !shadow.stale {
            return VcpuSet::EMPTY;
        }
        shadow.stale = true;
        self.take_back(vcpu, read)
    }

    /// Decides what vCPU `vcpu`'s list registers hold next (see the module documentation);
    /// `vtr` is the hardware's `ICH_VTR_EL2`, decoded. [`LrFill::Unchanged`] unless the list
    /// registers are stale (the first fill always writes): the hypervisor then writes nothing.
    /// Otherwise the interrupts still in the list registers go back into the model as loaded,
    /// and the best candidates are loaded afresh.
    #[inline]
    pub fn fill_list_registers(&mut self, vcpu: usize, vtr: IchVtr) -> LrFill {
        let mut values = [0; MAX_LIST_REGS];
        let mut count = 0;
        let Some((ich_hcr_el2, kick)) = self.fill_list_registers_with(vcpu, vtr, |n, value| {
            values[n] = value;
            count = n + 1;
        }) else {
            return LrFill::Unchanged;
        };
        LrFill::Write(LrWrites {
            values,
            count,
            underflow: ich_hcr_el2 & hcr::UIE != 0,
            kick,
        })
    }

    /// [`Gic::fill_list_registers`] with the writes handed to `write` one at a time instead of
    /// returned in an array: `write(n, value)` for `ICH_LR<n>_EL2`, `n` = 0, 1, ... in order
    /// (nothing when the list registers are unchanged). Returns `None` when nothing is to be
    /// written, else the `ICH_HCR_EL2` value to write after the list registers
    /// ([`LrWrites::ich_hcr_el2`]) and the vCPUs to kick ([`LrWrites::kick`]).
    #[inline]
    pub fn fill_list_registers_with(
        &mut self,
        vcpu: usize,
        vtr: IchVtr,
        mut write: impl FnMut(usize, u64),
    ) -> Option<(u64, VcpuSet)> {
        if vcpu >= self.vcpus || !self.shadows[vcpu].stale {
            return None;
        }
        Some(self.refill(vcpu, vtr, &mut write))
    }

    /// The fill of stale list registers, kept out of line so that the unchanged case is a few
    /// instructions in the caller. The loaded values go straight into the shadow and to
    /// `write`, never through a whole-array copy.
    #[inline(never)]
    fn refill(
        &mut self,
        vcpu: usize,
        vtr: IchVtr,
        write: &mut impl FnMut(usize, u64),
    ) -> (u64, VcpuSet) {
        let kick = self.take_back(vcpu, |_| None);
        let count = vtr.list_regs.min(MAX_LIST_REGS);
        // One more than fit: whether any is left over decides the underflow request.
        let mut best = Candidates::new(count + 1);
        self.offer_candidates(vcpu, &mut best);
        let loaded = best.len().min(count);
        for (n, irq) in best.irqs(vcpu).take(loaded).enumerate() {
            let value = self.load(irq, vcpu, vtr.priority_mask());
            self.shadows[vcpu].values[n] = value;
            write(n, value);
        }
        let shadow = &mut self.shadows[vcpu];
        let writes = shadow
            .extent
            .map_or(count, |extent| extent.max(loaded).min(count));
        for n in loaded..writes {
            shadow.values[n] = 0;
            write(n, 0);
        }
        shadow.live = loaded;
        shadow.extent = Some(loaded);
        shadow.stale = false;
        let ich_hcr_el2 = if best.len() > loaded {
            hcr::EN | hcr::UIE
        } else {
            hcr::EN
        };
        (ich_hcr_el2, kick)
    }

    /// vCPU `vcpu` starts on a CPU whose virtual CPU interface was switched off while no vCPU
    /// ran there (`ICH_HCR_EL2.En` = 0, so that the list registers' maintenance conditions,
    /// `ICH_MISR_EL2`, raise no interrupt while the CPU waits): its next fill writes the list
    /// registers and `ICH_HCR_EL2` again, whatever the model held loaded (IHI 0069,
    /// `ICH_HCR_EL2.En`: with it 0 the virtual CPU interface signals nothing to the guest).
    pub fn interface_switched_off(&mut self, vcpu: usize) {
        self.mark_stale(vcpu);
    }

    /// Marks vCPU `vcpu`'s list registers stale: its next fill writes them.
    pub(crate) fn mark_stale(&mut self, vcpu: usize) {
        if let Some(shadow) = self.shadows.get_mut(vcpu) {
            shadow.stale = true;
        }
    }

    /// Takes every interrupt in vCPU `vcpu`'s list registers back into the model, in the
    /// state `read` gives (`None`: as loaded); returns the other vCPUs to kick.
    #[inline(never)]
    fn take_back(&mut self, vcpu: usize, mut read: impl FnMut(usize) -> Option<u64>) -> VcpuSet {
        // One register at a time rather than a copy of the whole shadow: this runs on every
        // exit that finds a list register consumed.
        let live = self.shadows[vcpu].live;
        self.shadows[vcpu].live = 0;
        let mut kick = VcpuSet::EMPTY;
        for n in 0..live {
            let loaded = ListRegister::decode(self.shadows[vcpu].values[n]);
            let now = read(n).map_or(loaded, ListRegister::decode);
            let Some(irq) = self.vcpu_irq(vcpu, loaded.vintid) else {
                continue;
            };
            let source = self.sgi_source_bit(&loaded);
            kick |= self.update(irq, |record| {
                record.fold(vcpu, now.state.pending(), now.state.active(), source);
                // Invalid now, loaded with `HW` = 1: the guest's deactivation deactivated the
                // physical interrupt (a list register goes invalid no other way).
                if loaded.hw && now.state == LrState::Invalid {
                    record.hw_active = false;
                }
            });
        }
        kick.without(vcpu)
    }

    /// The list register holding `irq` as it was loaded, and whose it is, if one holds it.
    fn held_state(&self, irq: IrqRef) -> Option<(usize, ListRegister)> {
        let holder = self.irq(irq).lr_of()?;
        let intid = Self::intid_of(irq);
        self.shadows[holder].loaded().iter().find_map(|&value| {
            let lr = ListRegister::decode(value);
            (lr.vintid == intid).then_some((holder, lr))
        })
    }

    /// `irq`'s record as a sync that read its list register back unchanged would leave it
    /// (the record itself when no list register holds it).
    pub(crate) fn visible(&self, irq: IrqRef) -> Irq {
        let mut record = *self.irq(irq);
        if let Some((holder, lr)) = self.held_state(irq) {
            let source = self.sgi_source_bit(&lr);
            record.fold(holder, lr.state.pending(), lr.state.active(), source);
        }
        record
    }

    /// The `Irq::sgi_sources` bit of the SGI source `lr` was loaded with: bit `CPUID` for a
    /// GICv2 SGI, 0 for any other interrupt and for every GICv3 one.
    fn sgi_source_bit(&self, lr: &ListRegister) -> u8 {
        if self.arch == GicArch::V2 && lr.vintid < SGI_COUNT && !lr.hw {
            1 << lr.source
        } else {
            0
        }
    }

    /// Whether vCPU `vcpu`'s list registers hold an interrupt that, taken back as loaded,
    /// would be deliverable on `vcpu`.
    pub(crate) fn holds_deliverable(&self, vcpu: usize) -> bool {
        self.holds_matching(vcpu, |record| self.deliverable(record))
    }

    /// Whether vCPU `vcpu`'s list registers hold an interrupt that, taken back as loaded,
    /// would be its own and in a state for which `wanted` holds.
    pub(crate) fn holds_matching(&self, vcpu: usize, wanted: impl Fn(&Irq) -> bool) -> bool {
        self.shadows[vcpu].loaded().iter().any(|&value| {
            let lr = ListRegister::decode(value);
            self.vcpu_irq(vcpu, lr.vintid).is_some_and(|irq| {
                let record = self.visible(irq);
                self.home(irq, &record) == Some(vcpu) && wanted(&record)
            })
        })
    }

    /// The interrupt that INTID `intid` names for vCPU `vcpu`.
    pub(crate) fn vcpu_irq(&self, vcpu: usize, intid: u32) -> Option<IrqRef> {
        if intid < PRIVATE_COUNT {
            Some(IrqRef::Private { vcpu, intid })
        } else {
            self.spi_ref(intid)
        }
    }

    /// Whether `irq` is pending, enabled and of an enabled group.
    pub(crate) fn pending_enabled(&self, irq: IrqRef) -> bool {
        let record = self.irq(irq);
        record.pending() && record.enabled && self.group_enabled(record.group1)
    }

    /// The (at most `limit`) interrupts of vCPU `vcpu` that most need a list register, best
    /// first: active ones (which the vCPU acknowledged) first, then by priority, then by INTID.
    /// One pass over the vCPU's summary (see `summary`), so a step per interrupt that wants a
    /// list register: loading one interrupt changes no other's place, so these are the
    /// interrupts that choosing the best, loading it and choosing again would load, in the
    /// same order.
    #[cfg(test)]
    pub(crate) fn best_candidates(&self, vcpu: usize, limit: usize) -> Candidates {
        let mut best = Candidates::new(limit);
        self.offer_candidates(vcpu, &mut best);
        best
    }

    /// Offers every interrupt that wants a list register of `vcpu` to `best` (filled in place:
    /// the refill before an entry builds no copy of it).
    #[inline]
    fn offer_candidates(&self, vcpu: usize, best: &mut Candidates) {
        // The summary is in INTID order: private interrupts, then SPIs.
        for irq in self.wanted_irqs(vcpu) {
            best.offer(self.irq(irq), irq);
        }
    }

    /// Hands `irq` to a list register of `vcpu` and returns the register's value.
    fn load(&mut self, irq: IrqRef, vcpu: usize, priority_mask: u8) -> u64 {
        let mut pending = self.pending_enabled(irq);
        let intid = Self::intid_of(irq);
        self.move_wanted(irq, Some(vcpu), None);
        let v2_sgi = self.arch == GicArch::V2 && intid < SGI_COUNT;
        let record = self.irq_mut(irq);
        // A GICv2 SGI is loaded for one source at a time (`GICH_LR<n>.CPUID`); the latch
        // stays set while another source's SGI waits.
        let mut source = 0;
        if v2_sgi && record.active && record.active_source != 0 {
            // Active from one source: the list register keeps that source, which the guest's
            // `GICC_EOIR`/`GICC_DIR` name (IHI 0048B, 3.2.3: an SGI's pending state is kept per
            // source; the source is part of the interrupt's identity in `GICC_IAR`). It is
            // pending and active only when that same source sent it again; another source's
            // waits in `GICD_SPENDSGIR<n>` until this one is deactivated (at the same priority
            // it could not preempt it before then anyway).
            // Truncation impossible: the index of a bit of a byte.
            #[allow(clippy::cast_possible_truncation)]
            let active_cpu = record.active_source.trailing_zeros() as u8;
            source = active_cpu;
            pending = pending && record.sgi_sources & record.active_source != 0;
            if pending {
                record.sgi_sources &= !record.active_source;
                record.latch = record.sgi_sources != 0;
            }
        } else if pending && v2_sgi && record.sgi_sources != 0 {
            // Truncation impossible: the index of a bit of a byte.
            #[allow(clippy::cast_possible_truncation)]
            let lowest = record.sgi_sources.trailing_zeros() as u8;
            source = lowest;
            record.sgi_sources &= !(1 << lowest);
            record.latch = record.sgi_sources != 0;
        } else if pending && record.edge {
            record.latch = false;
        }
        record.set_lr_of(Some(vcpu));
        let state = LrState::from_parts(pending, record.active);
        // A hardware-backed interrupt (IHI 0069, `ICH_LR<n>_EL2.HW`): the guest's deactivation
        // deactivates physical INTID `pINTID` (a PPI's own INTID, a mapped SPI's physical
        // one: `Gic::map_hw_spi`), so no maintenance interrupt is
        // needed for it. Pending and active is not a state a hardware interrupt may be loaded
        // in (the physical one cannot be pending again while it is active): then it is loaded
        // as a virtual-only interrupt, with the EOI maintenance interrupt of a level one, and
        // goes back to `HW` = 1 on the fill after its deactivation.
        let hw = record.hw_active && state != LrState::PendingActive;
        let (edge, priority, group1) = (record.edge, record.priority, record.group1);
        // Truncation impossible: an INTID below 1020.
        #[allow(clippy::cast_possible_truncation)]
        let pintid = if hw {
            self.physical_intid(intid) as u16
        } else {
            0
        };
        ListRegister {
            vintid: intid,
            pintid,
            eoi_maintenance: !hw && !edge,
            source,
            priority: priority & priority_mask,
            group1,
            hw,
            state,
        }
        .encode()
    }

    pub(crate) const fn intid_of(irq: IrqRef) -> u32 {
        irq.intid()
    }
}

/// What [`Gic::best_candidates`] chose, best first: room for every list register and one more.
pub(crate) struct Candidates {
    /// The chosen interrupts' sort keys, each packed into one word so that the whole choice is
    /// small to build before every refill: (not active, priority, INTID) from the high bits
    /// down (see [`Candidates::key`]), all of one vCPU, so the INTID names the interrupt.
    keys: [u32; MAX_LIST_REGS + 1],
    len: usize,
    /// The most it keeps.
    limit: usize,
}

impl Candidates {
    /// None chosen yet; room for `limit` (at most every list register and one more).
    fn new(limit: usize) -> Self {
        Self {
            keys: [0; MAX_LIST_REGS + 1],
            len: 0,
            limit: limit.min(MAX_LIST_REGS + 1),
        }
    }

    /// The sort key of `irq` in state `record`: active ones first, then by priority, then by
    /// INTID (below 1020, so within the low 16 bits).
    fn key(record: &Irq, irq: IrqRef) -> u32 {
        (u32::from(!record.active) << 24) | (u32::from(record.priority) << 16) | irq.intid()
    }

    /// Keeps `irq` (whose state is `record`) if it is among the best `limit` so far.
    #[inline]
    fn offer(&mut self, record: &Irq, irq: IrqRef) {
        let key = Self::key(record, irq);
        let place = self.keys[..self.len].partition_point(|&kept| kept < key);
        if place >= self.limit {
            return;
        }
        let end = (self.len + 1).min(self.limit);
        let mut n = end - 1;
        while n > place {
            self.keys[n] = self.keys[n - 1];
            n -= 1;
        }
        self.keys[place] = key;
        self.len = end;
    }

    const fn len(&self) -> usize {
        self.len
    }

    /// The chosen interrupts of vCPU `vcpu` (the one they were chosen for), best first.
    pub(crate) fn irqs(&self, vcpu: usize) -> impl Iterator<Item = IrqRef> + '_ {
        self.keys[..self.len].iter().map(move |&key| {
            let intid = key & 0xFFFF;
            if intid < PRIVATE_COUNT {
                IrqRef::Private { vcpu, intid }
            } else {
                IrqRef::Spi((intid - PRIVATE_COUNT) as usize)
            }
        })
    }
}

#[cfg(test)]
mod tests;
