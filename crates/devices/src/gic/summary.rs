//! The per-vCPU summary that makes the list-register work proportional to what changed: for
//! each vCPU, the set of its interrupts that want a list register, and whether its list
//! registers must be written again before it next runs.
//!
//! An interrupt *wants a list register* of vCPU `v` when no list register holds it, `v` owns
//! it (a private interrupt of `v`; an SPI that `v` acknowledged and that is still active, else
//! an SPI routed to `v`), and either
//! - it is active and `v` acknowledged it (the guest must be able to deactivate it), or
//! - it is not active, pending, enabled and of an enabled group (it can be delivered).
//!
//! An interrupt made active by `ISACTIVER` that no vCPU acknowledged wants no list register,
//! pending or not: on a GIC the running priority of a CPU interface comes only from the
//! interrupts that interface acknowledged (IHI 0069, "Interrupt handling state machine" and
//! "Running Priority"), so such an interrupt neither blocks a pending one nor is delivered
//! (active and pending waits for its deactivation).
//!
//! Every operation of the model that can change an interrupt's record, an SPI's route, the
//! group enables or a redistributor's `ProcessorSleep` goes through [`Gic::update`] (or the
//! whole-GIC [`Gic::resummarise`]), which keeps the sets exact and marks the vCPUs whose list
//! registers it made stale: the holder of an interrupt whose record changed, and the vCPUs the
//! interrupt wanted a list register of before or after. The property tests hold the sets to a
//! full recomputation after any sequence of operations.

use super::{Gic, GicArch, Irq, IrqRef, MAX_VCPUS, PRIVATE_COUNT, VcpuSet};

/// 64-bit words in an [`IntidSet`]: INTIDs 0–1023 (the last SPI is INTID 1019).
const WORDS: usize = 16;

/// A set of INTIDs (bit `n` of word `n / 64` for INTID `n`). For vCPU `v` the private INTIDs
/// 0–31 name `v`'s own SGIs and PPIs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IntidSet([u64; WORDS]);

impl IntidSet {
    /// No INTID.
    pub const EMPTY: Self = Self([0; WORDS]);

    const fn place(intid: u32) -> (usize, u64) {
        ((intid / u64::BITS) as usize, 1 << (intid % u64::BITS))
    }

    /// Whether `intid` is in the set.
    pub const fn contains(&self, intid: u32) -> bool {
        let (word, bit) = Self::place(intid);
        word < WORDS && self.0[word] & bit != 0
    }

    /// Adds or removes `intid` (an INTID of 1024 or more is never in the set).
    pub fn set(&mut self, intid: u32, member: bool) {
        let (word, bit) = Self::place(intid);
        if let Some(word) = self.0.get_mut(word) {
            if member {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }

    /// The INTIDs below `limit` in the set, lowest first: one step per set bit and per word.
    pub fn iter(&self, limit: u32) -> impl Iterator<Item = u32> + '_ {
        let words = (limit.div_ceil(u64::BITS) as usize).min(WORDS);
        self.0[..words]
            .iter()
            .zip((0..).step_by(u64::BITS as usize))
            .flat_map(|(&word, base)| SetBits(word).map(move |bit| base + bit))
    }

    /// Whether the set has no INTID.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&word| word == 0)
    }
}

/// The set bits of a word, lowest first.
struct SetBits(u64);

impl Iterator for SetBits {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(bit)
    }
}

impl<const SPIS: usize> Gic<SPIS> {
    /// The vCPU whose list register `irq` wants, by the definition in the module
    /// documentation, computed from the model's state.
    pub(crate) fn wanting_vcpu(&self, irq: IrqRef) -> Option<usize> {
        let record = self.irq(irq);
        if record.lr_of().is_some() {
            return None;
        }
        let owner = self.home(irq, record)?;
        let wants = if record.active {
            record.active_on() == Some(owner)
        } else {
            record.pending() && record.enabled && self.group_enabled(record.group1)
        };
        wants.then_some(owner)
    }

    /// The vCPU whose summary holds `irq` now.
    fn summarised_at(&self, irq: IrqRef) -> Option<usize> {
        let intid = Self::intid_of(irq);
        match irq {
            IrqRef::Private { vcpu, .. } => self.wanted[vcpu].contains(intid).then_some(vcpu),
            IrqRef::Spi(_) => (0..self.vcpus).find(|&v| self.wanted[v].contains(intid)),
        }
    }

    /// Moves `irq` in the summary from vCPU `from`'s set to vCPU `to`'s.
    pub(crate) fn move_wanted(&mut self, irq: IrqRef, from: Option<usize>, to: Option<usize>) {
        let intid = Self::intid_of(irq);
        if let Some(v) = from {
            self.wanted[v].set(intid, false);
        }
        if let Some(v) = to {
            self.wanted[v].set(intid, true);
        }
    }

    /// Changes `irq`'s record by `change` and keeps the summary; returns the vCPUs to kick.
    pub(crate) fn update(&mut self, irq: IrqRef, change: impl FnOnce(&mut Irq)) -> VcpuSet {
        let before = *self.irq(irq);
        change(self.irq_mut(irq));
        self.changed(irq, &before, false)
    }

    /// Keeps the summary after `irq`'s record changed from `before` (or, with `rerouted`, its
    /// route): its new place in the sets, and the vCPUs whose list registers are stale now —
    /// the one holding it, and the ones it wanted a list register of before or after. Returns
    /// the vCPUs to kick: the holder, and the vCPU it wants a list register of now.
    pub(crate) fn changed(&mut self, irq: IrqRef, before: &Irq, rerouted: bool) -> VcpuSet {
        let record_changed = rerouted || self.irq(irq) != before;
        let was = self.summarised_at(irq);
        let now = self.wanting_vcpu(irq);
        if !record_changed && was == now {
            return VcpuSet::EMPTY;
        }
        self.move_wanted(irq, was, now);
        let mut kick = VcpuSet::EMPTY;
        if let Some(holder) = self.irq(irq).lr_of() {
            self.mark_stale(holder);
            kick |= VcpuSet::single(holder);
        }
        if let Some(v) = was {
            self.mark_stale(v);
        }
        if let Some(v) = now {
            self.mark_stale(v);
            kick |= VcpuSet::single(v);
        }
        // Only a GICv2's SPIs follow which vCPUs are busy: a GICv3's exits pay one comparison.
        let record = self.irq(irq);
        let business = record.active != before.active || record.active_on() != before.active_on();
        if business && self.arch == GicArch::V2 && !self.multi_target.is_empty() {
            kick |= self.replace_multi_target(irq);
        }
        kick
    }

    /// After a vCPU may have become busy or idle (an interrupt's active state or the vCPU
    /// that acknowledged it changed): every GICv2 SPI targeting several vCPUs, whose place
    /// follows which of them are busy (`Gic::route_target`), is placed again, but `except`
    /// (placed by its own change). One a list register holds for a vCPU that is no longer its
    /// home makes that vCPU's list registers stale and the vCPU kicked: it gives the SPI back
    /// at its next sync. Returns the vCPUs to kick.
    fn replace_multi_target(&mut self, except: IrqRef) -> VcpuSet {
        let mut kick = VcpuSet::EMPTY;
        let spis = self.multi_target;
        for intid in spis.iter(Self::intid_limit()) {
            let Some(irq) = self.spi_ref(intid) else {
                continue;
            };
            if irq == except {
                continue;
            }
            let record = *self.irq(irq);
            if let Some(holder) = record.lr_of() {
                if self.home(irq, &record) != Some(holder) {
                    self.mark_stale(holder);
                    kick |= VcpuSet::single(holder);
                }
                continue;
            }
            let was = self.summarised_at(irq);
            let now = self.wanting_vcpu(irq);
            if was == now {
                continue;
            }
            self.move_wanted(irq, was, now);
            if let Some(v) = was {
                self.mark_stale(v);
            }
            if let Some(v) = now {
                self.mark_stale(v);
                kick |= VcpuSet::single(v);
            }
        }
        kick
    }

    /// Recomputes every vCPU's set from the model and marks every vCPU's list registers
    /// stale: after a change that can move many interrupts at once (the group enables, a
    /// redistributor's `ProcessorSleep`, which 1-of-N SPIs follow). Returns the vCPUs to kick:
    /// those whose list registers hold an interrupt or that have one wanting a list register.
    pub(crate) fn resummarise(&mut self) -> VcpuSet {
        self.wanted = [IntidSet::EMPTY; MAX_VCPUS];
        let private = (0..self.vcpus)
            .flat_map(|vcpu| (0..PRIVATE_COUNT).map(move |intid| IrqRef::Private { vcpu, intid }));
        let irqs = private.chain((0..SPIS).map(IrqRef::Spi));
        for irq in irqs {
            let to = self.wanting_vcpu(irq);
            self.move_wanted(irq, None, to);
        }
        let mut kick = VcpuSet::EMPTY;
        for vcpu in 0..self.vcpus {
            self.mark_stale(vcpu);
            if self.live_list_registers(vcpu) > 0 || !self.wanted[vcpu].is_empty() {
                kick |= VcpuSet::single(vcpu);
            }
        }
        kick
    }

    /// The interrupts that want a list register of `vcpu`, lowest INTID first.
    pub(crate) fn wanted_irqs(&self, vcpu: usize) -> impl Iterator<Item = IrqRef> + '_ {
        self.wanted[vcpu]
            .iter(Self::intid_limit())
            .filter_map(move |intid| self.vcpu_irq(vcpu, intid))
    }
}
