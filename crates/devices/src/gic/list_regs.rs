//! The list registers of the hardware virtual CPU interface (`ICH_LR<n>_EL2`, IHI 0069
//! "`ICH_LR<n>_EL2`, Interrupt Controller List Registers") and the scheduling that moves
//! interrupts between the model and them.
//!
//! After a vCPU ran, the hypervisor reads its list registers back and calls
//! [`Gic::sync_from_list_registers`]: what the guest did to each interrupt (acknowledged it:
//! pending → active; completed it: → invalid) goes back into the model. Before the vCPU runs
//! again, [`Gic::fill_list_registers`] picks what the list registers should hold: every active
//! interrupt of the vCPU first (the guest must be able to deactivate it), then the
//! highest-priority pending, enabled interrupts of enabled groups (lowest INTID first among
//! equal priorities). When more want a list register than there are, the fill asks for an
//! underflow maintenance interrupt (`ICH_HCR_EL2.UIE`) so the hypervisor gets control back
//! when the guest has made room. Level-sensitive interrupts are loaded with `EOI` = 1 (a
//! maintenance interrupt when the guest deactivates them) so that their line is sampled again:
//! one whose line is still high is pending again at once.
//!
//! While a list register holds an interrupt, the list register is the truth for its pending
//! and active state; the model remembers what it loaded (`LrShadow`) and which vCPU holds the
//! interrupt, so no interrupt is ever in two vCPUs' list registers.

use super::{Gic, Irq, IrqRef, PRIVATE_COUNT, VcpuSet};

/// The most list registers an implementation can have (`ICH_VTR_EL2.ListRegs` + 1 ≤ 16).
pub const MAX_LIST_REGS: usize = 16;

/// `ICH_LR<n>_EL2` fields.
mod lr {
    /// `vINTID`, bits \[31:0\].
    pub const VINTID_MASK: u64 = 0xFFFF_FFFF;
    /// `pINTID`, bits \[44:32\], when `HW` = 1.
    pub const PINTID_SHIFT: u32 = 32;
    pub const PINTID_MASK: u64 = 0x1FFF;
    /// `EOI`, bit 41, when `HW` = 0: a maintenance interrupt on deactivation.
    pub const EOI: u64 = 1 << 41;
    /// `Priority`, bits \[55:48\].
    pub const PRIORITY_SHIFT: u32 = 48;
    pub const PRIORITY_MASK: u64 = 0xFF;
    /// `Group`, bit 60: Group 1 when set.
    pub const GROUP: u64 = 1 << 60;
    /// `HW`, bit 61: the virtual interrupt is tied to physical interrupt `pINTID`.
    pub const HW: u64 = 1 << 61;
    /// `State`, bits \[63:62\].
    pub const STATE_SHIFT: u32 = 62;
    pub const STATE_MASK: u64 = 0b11;
}

/// `bit` when `set`, else 0.
const fn flag(set: bool, bit: u64) -> u64 {
    if set { bit } else { 0 }
}

/// `ICH_VTR_EL2` fields.
mod vtr {
    /// `ListRegs`, bits \[4:0\]: the number of list registers minus 1.
    pub const LIST_REGS_MASK: u64 = 0x1F;
    /// `PRIbits`, bits \[31:29\]: the number of virtual priority bits minus 1.
    pub const PRI_BITS_SHIFT: u32 = 29;
    pub const PRI_BITS_MASK: u64 = 0b111;
}

/// `ICH_HCR_EL2` fields.
mod hcr {
    /// `En`: the virtual CPU interface is enabled.
    pub const EN: u64 = 1 << 0;
    /// `UIE`: maintenance interrupt when at most one list register holds a valid interrupt.
    pub const UIE: u64 = 1 << 1;
}

/// The `State` field of a list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrState {
    /// 0b00: the list register holds no interrupt (or the guest deactivated it).
    Invalid,
    /// 0b01: pending.
    Pending,
    /// 0b10: active (the guest acknowledged it).
    Active,
    /// 0b11: active, and pending again.
    PendingActive,
}

impl LrState {
    /// The state with the given pending and active parts.
    #[must_use]
    pub const fn from_parts(pending: bool, active: bool) -> Self {
        match (pending, active) {
            (false, false) => Self::Invalid,
            (true, false) => Self::Pending,
            (false, true) => Self::Active,
            (true, true) => Self::PendingActive,
        }
    }

    /// Whether the state includes pending.
    #[must_use]
    pub const fn pending(self) -> bool {
        matches!(self, Self::Pending | Self::PendingActive)
    }

    /// Whether the state includes active.
    #[must_use]
    pub const fn active(self) -> bool {
        matches!(self, Self::Active | Self::PendingActive)
    }

    const fn bits(self) -> u64 {
        match self {
            Self::Invalid => 0b00,
            Self::Pending => 0b01,
            Self::Active => 0b10,
            Self::PendingActive => 0b11,
        }
    }
}

/// One `ICH_LR<n>_EL2` value, field by field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListRegister {
    /// `vINTID`: the INTID the guest sees.
    pub vintid: u32,
    /// `pINTID` (only with `hw`): the physical interrupt deactivated with the virtual one.
    pub pintid: u16,
    /// `EOI` (only without `hw`): a maintenance interrupt when the guest deactivates it.
    pub eoi_maintenance: bool,
    /// `Priority`.
    pub priority: u8,
    /// `Group`: Group 1 when set.
    pub group1: bool,
    /// `HW`: a hardware interrupt.
    pub hw: bool,
    /// `State`.
    pub state: LrState,
}

impl ListRegister {
    /// An empty list register.
    pub const INVALID: Self = Self {
        vintid: 0,
        pintid: 0,
        eoi_maintenance: false,
        priority: 0,
        group1: false,
        hw: false,
        state: LrState::Invalid,
    };

    /// Decodes an `ICH_LR<n>_EL2` value.
    #[must_use]
    pub const fn decode(value: u64) -> Self {
        let hw = value & lr::HW != 0;
        let state = match (value >> lr::STATE_SHIFT) & lr::STATE_MASK {
            0b00 => LrState::Invalid,
            0b01 => LrState::Pending,
            0b10 => LrState::Active,
            _ => LrState::PendingActive,
        };
        // Truncations intended: each field is masked to its width first.
        #[allow(clippy::cast_possible_truncation)]
        Self {
            vintid: (value & lr::VINTID_MASK) as u32,
            pintid: if hw {
                ((value >> lr::PINTID_SHIFT) & lr::PINTID_MASK) as u16
            } else {
                0
            },
            eoi_maintenance: !hw && value & lr::EOI != 0,
            priority: ((value >> lr::PRIORITY_SHIFT) & lr::PRIORITY_MASK) as u8,
            group1: value & lr::GROUP != 0,
            hw,
            state,
        }
    }

    /// Encodes the value to write to `ICH_LR<n>_EL2`.
    #[must_use]
    pub const fn encode(self) -> u64 {
        let hw_part = if self.hw {
            ((self.pintid as u64) & lr::PINTID_MASK) << lr::PINTID_SHIFT
        } else {
            flag(self.eoi_maintenance, lr::EOI)
        };
        (self.vintid as u64)
            | hw_part
            | ((self.priority as u64) << lr::PRIORITY_SHIFT)
            | flag(self.group1, lr::GROUP)
            | flag(self.hw, lr::HW)
            | (self.state.bits() << lr::STATE_SHIFT)
    }
}

/// What the hardware's `ICH_VTR_EL2` says about the virtual CPU interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IchVtr {
    /// The number of list registers (`ListRegs` + 1).
    pub list_regs: usize,
    /// The number of virtual priority bits (`PRIbits` + 1).
    pub priority_bits: u8,
}

impl IchVtr {
    /// Decodes `ICH_VTR_EL2` (QEMU: 0x90b8_0003, 4 list registers and 5 priority bits).
    #[must_use]
    pub const fn decode(value: u64) -> Self {
        // Truncation intended: the fields are 5 and 3 bits wide.
        #[allow(clippy::cast_possible_truncation)]
        Self {
            list_regs: (value & vtr::LIST_REGS_MASK) as usize + 1,
            priority_bits: ((value >> vtr::PRI_BITS_SHIFT) & vtr::PRI_BITS_MASK) as u8 + 1,
        }
    }

    /// The implemented bits of an 8-bit priority: the top `priority_bits`.
    #[must_use]
    pub const fn priority_mask(self) -> u8 {
        let unimplemented = 8u8.saturating_sub(self.priority_bits);
        !((1u16 << unimplemented) - 1) as u8
    }
}

/// The list register values the hypervisor is to program for one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LrFill {
    values: [u64; MAX_LIST_REGS],
    count: usize,
    underflow: bool,
}

impl LrFill {
    /// `ICH_LR<n>_EL2` for each of the vCPU's list registers (`n` = 0 .. `ListRegs`); unused
    /// ones are 0 (invalid).
    #[must_use]
    pub fn values(&self) -> &[u64] {
        &self.values[..self.count]
    }

    /// Whether more interrupts want a list register than there are.
    #[must_use]
    pub const fn underflow(&self) -> bool {
        self.underflow
    }

    /// The `ICH_HCR_EL2` value to program with the list registers: `En` = 1, and `UIE` = 1 on
    /// an underflow. (`ICH_VMCR_EL2` belongs to the guest and is left alone.)
    #[must_use]
    pub const fn ich_hcr_el2(&self) -> u64 {
        if self.underflow {
            hcr::EN | hcr::UIE
        } else {
            hcr::EN
        }
    }
}

/// What a vCPU's list registers were last loaded with, kept until they are synced back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LrShadow {
    values: [u64; MAX_LIST_REGS],
    count: usize,
}

impl LrShadow {
    /// Nothing loaded, or everything synced back.
    pub const EMPTY: Self = Self {
        values: [0; MAX_LIST_REGS],
        count: 0,
    };

    /// The values loaded and not yet synced back.
    pub fn loaded(&self) -> &[u64] {
        &self.values[..self.count]
    }
}

impl<const SPIS: usize> Gic<SPIS> {
    /// Folds the guest's work back into the model: `lrs` are vCPU `vcpu`'s list registers as
    /// read back after it ran (in order `ICH_LR0_EL2`, ...; missing ones count as unchanged).
    /// Returns the other vCPUs to kick (an SPI the guest left pending may now belong to
    /// another vCPU).
    pub fn sync_from_list_registers(&mut self, vcpu: usize, lrs: &[u64]) -> VcpuSet {
        let Some(shadow) = self.shadows.get(vcpu).copied() else {
            return VcpuSet::EMPTY;
        };
        self.shadows[vcpu] = LrShadow::EMPTY;
        let mut kick = VcpuSet::EMPTY;
        for (n, &loaded) in shadow.loaded().iter().enumerate() {
            let loaded = ListRegister::decode(loaded);
            let now = lrs
                .get(n)
                .map_or(loaded, |&value| ListRegister::decode(value));
            let Some(irq) = self.vcpu_irq(vcpu, loaded.vintid) else {
                continue;
            };
            self.fold(irq, vcpu, now.state);
            kick |= self.attention(irq);
        }
        kick.without(vcpu)
    }

    /// Chooses what vCPU `vcpu`'s list registers hold next (see the module documentation);
    /// `vtr` is the hardware's `ICH_VTR_EL2`, decoded. Folds back a previous fill that was never
    /// synced as if the guest had not run.
    pub fn fill_list_registers(&mut self, vcpu: usize, vtr: IchVtr) -> LrFill {
        let mut fill = LrFill {
            values: [0; MAX_LIST_REGS],
            count: vtr.list_regs.min(MAX_LIST_REGS),
            underflow: false,
        };
        if vcpu >= self.vcpus {
            return fill;
        }
        self.sync_from_list_registers(vcpu, &[]);
        // One more than fit: whether any is left over decides the underflow request.
        let best = self.best_candidates(vcpu, fill.count + 1);
        let loaded = best.len().min(fill.count);
        for (value, &irq) in fill.values.iter_mut().zip(&best.irqs()[..loaded]) {
            *value = self.load(irq, vcpu, vtr.priority_mask());
        }
        fill.underflow = best.len() > loaded;
        self.shadows[vcpu] = LrShadow {
            values: fill.values,
            count: loaded,
        };
        fill
    }

    /// The interrupt that INTID `intid` names for vCPU `vcpu`.
    fn vcpu_irq(&self, vcpu: usize, intid: u32) -> Option<IrqRef> {
        if intid < PRIVATE_COUNT {
            Some(IrqRef::Private { vcpu, intid })
        } else {
            self.spi_ref(intid)
        }
    }

    /// Takes a list register's state back into the model. A guest write to the interrupt's
    /// registers while the list register held it wins over the list register.
    fn fold(&mut self, irq: IrqRef, vcpu: usize, state: LrState) {
        let record = self.irq_mut(irq);
        if record.lr_of() != Some(vcpu) {
            return;
        }
        record.set_lr_of(None);
        if !record.active_written {
            record.active = state.active();
            record.set_active_on(state.active().then_some(vcpu));
        }
        if !record.pending_written {
            if record.edge {
                // The latch went into the list register when it was loaded; an edge since
                // then has set it again.
                record.latch |= state.pending();
            } else if !state.pending() {
                // Acknowledged: a level-sensitive interrupt stays pending only by its line.
                record.latch = false;
            }
        }
        record.pending_written = false;
        record.active_written = false;
    }

    /// Whether `irq` wants a list register of its owner: active, or pending and deliverable.
    pub(crate) fn pending_enabled(&self, irq: IrqRef) -> bool {
        let record = self.irq(irq);
        record.pending() && record.enabled && self.group_enabled(record.group1)
    }

    /// The (at most `limit`) interrupts of vCPU `vcpu` that most need a list register, best
    /// first: active ones first, then by priority, then by INTID. One pass over the model, run
    /// before every entry of the vCPU: loading one interrupt changes no other's place, so
    /// these are the interrupts that choosing the best, loading it and choosing again would
    /// load, in the same order.
    pub(crate) fn best_candidates(&self, vcpu: usize, limit: usize) -> Candidates {
        let mut best = Candidates::new(limit);
        // Whether an interrupt wants a list register: not in one already, and active, or
        // pending and enabled in an enabled group (`pending_enabled`, on the record at hand:
        // these loops run before every entry).
        let wanted = |record: &Irq| {
            record.lr_of().is_none()
                && (record.active
                    || (record.pending() && record.enabled && self.group_enabled(record.group1)))
        };
        // A private interrupt not in a list register belongs to its own vCPU.
        for (intid, record) in (0..PRIVATE_COUNT).zip(&self.private[vcpu]) {
            if wanted(record) {
                best.offer(record, IrqRef::Private { vcpu, intid });
            }
        }
        for (index, record) in self.spis.iter().enumerate() {
            if wanted(record) && self.owner(IrqRef::Spi(index)) == Some(vcpu) {
                best.offer(record, IrqRef::Spi(index));
            }
        }
        best
    }

    /// Hands `irq` to a list register of `vcpu` and returns the register's value.
    fn load(&mut self, irq: IrqRef, vcpu: usize, priority_mask: u8) -> u64 {
        let pending = self.pending_enabled(irq);
        let intid = self.intid_of(irq);
        let record = self.irq_mut(irq);
        if pending && record.edge {
            record.latch = false;
        }
        record.set_lr_of(Some(vcpu));
        ListRegister {
            vintid: intid,
            pintid: 0,
            eoi_maintenance: !record.edge,
            priority: record.priority & priority_mask,
            group1: record.group1,
            hw: false,
            state: LrState::from_parts(pending, record.active),
        }
        .encode()
    }

    fn intid_of(&self, irq: IrqRef) -> u32 {
        match irq {
            IrqRef::Private { intid, .. } => intid,
            // Truncation impossible: index < SPIS <= MAX_SPIS.
            #[allow(clippy::cast_possible_truncation)]
            IrqRef::Spi(index) => PRIVATE_COUNT + index as u32,
        }
    }
}

/// What [`Gic::best_candidates`] chose, best first: room for every list register and one more.
pub(crate) struct Candidates {
    /// The interrupts' sort keys: (not active, priority).
    keys: [(bool, u8); MAX_LIST_REGS + 1],
    irqs: [IrqRef; MAX_LIST_REGS + 1],
    len: usize,
    /// The most it keeps.
    limit: usize,
}

impl Candidates {
    /// None chosen yet; room for `limit` (at most every list register and one more).
    fn new(limit: usize) -> Self {
        Self {
            keys: [(false, 0); MAX_LIST_REGS + 1],
            irqs: [IrqRef::Spi(0); MAX_LIST_REGS + 1],
            len: 0,
            limit: limit.min(MAX_LIST_REGS + 1),
        }
    }

    /// Keeps `irq` (whose state is `record`) if it is among the best `limit` so far. Offered
    /// in INTID order, so that earlier INTIDs win ties: a candidate goes after every one kept
    /// with an equal key.
    fn offer(&mut self, record: &Irq, irq: IrqRef) {
        let key = (!record.active, record.priority);
        let place = self.keys[..self.len].partition_point(|&kept| kept <= key);
        if place >= self.limit {
            return;
        }
        let end = (self.len + 1).min(self.limit);
        self.keys.copy_within(place..end - 1, place + 1);
        self.irqs.copy_within(place..end - 1, place + 1);
        self.keys[place] = key;
        self.irqs[place] = irq;
        self.len = end;
    }

    const fn len(&self) -> usize {
        self.len
    }

    /// The chosen interrupts, best first.
    pub(crate) fn irqs(&self) -> &[IrqRef] {
        &self.irqs[..self.len]
    }
}

#[cfg(test)]
mod tests;
