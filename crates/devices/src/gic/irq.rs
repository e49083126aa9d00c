//! The state of one interrupt as the GICv3 architecture defines it (IHI 0069, "Interrupt
//! handling state machine"): enabled, pending, active, priority, group and trigger mode, plus
//! the input line's level and where the interrupt sits while a vCPU's list registers hold it.

/// "No vCPU" in the one-byte vCPU fields of [`Irq`] (an `Option<u8>` takes two bytes, and a
/// whole GIC's records must stay small: `MAX_VCPUS` is far below it).
const NO_VCPU: u8 = u8::MAX;

/// The vCPU a one-byte field names.
fn slot(field: u8) -> Option<usize> {
    (field != NO_VCPU).then_some(usize::from(field))
}

/// The one-byte field for `vcpu`.
fn to_slot(vcpu: Option<usize>) -> u8 {
    vcpu.and_then(|v| u8::try_from(v).ok())
        .filter(|&v| v != NO_VCPU)
        .unwrap_or(NO_VCPU)
}

/// One interrupt's programmer-visible and line state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Irq {
    /// `GICD_ISENABLER`/`GICR_ISENABLER0` bit.
    pub enabled: bool,
    /// The pending latch: set by an edge, by `ISPENDR` or by an SGI; cleared by `ICPENDR`, or
    /// when the guest acknowledges the interrupt.
    pub latch: bool,
    /// The level of the input line (meaningful for level-sensitive interrupts).
    pub line: bool,
    /// The active state.
    pub active: bool,
    /// `IGROUPR` bit: Group 1 when set, Group 0 otherwise.
    pub group1: bool,
    /// `ICFGR` `Int_config\[1\]`: edge-triggered when set, level-sensitive otherwise.
    pub edge: bool,
    /// `IPRIORITYR` byte: lower values are higher priority.
    pub priority: u8,
    /// The vCPU whose list registers hold the interrupt since its last fill; until that vCPU's
    /// next sync the list register, not this record, has the pending and active state. (A
    /// byte, not a `usize`, keeps a whole GIC small: vCPU indices are below `MAX_VCPUS`.)
    lr_of: u8,
    /// The vCPU that acknowledged the interrupt (took it from a list register as active), while
    /// it is active; `None` when it was made active by `ISACTIVER`. Only an interrupt its vCPU
    /// acknowledged holds a list register while active (see `list_regs`).
    active_on: u8,
    /// The pending state was written by the guest (`ISPENDR`/`ICPENDR`) while a list register
    /// held the interrupt; the write wins over what the list register says at the next sync.
    pub pending_written: bool,
    /// As `pending_written`, for `ISACTIVER`/`ICACTIVER`.
    pub active_written: bool,
    /// A GICv2 SGI's sources: bit `n` when vCPU `n`'s SGI is pending (`GICD_SPENDSGIR<n>`);
    /// the latch is set while any is. A list register holds one source's SGI at a time
    /// (`GICH_LR<n>.CPUID`); the others wait here. Always 0 for a GICv3 guest.
    pub sgi_sources: u8,
    /// A GICv2 SGI's source while it is active: bit `n` when the vCPU acknowledged vCPU `n`'s
    /// SGI (`GICC_IAR.CPUID`) and has not deactivated it, which its list register keeps
    /// carrying; 0 otherwise, and always 0 for a GICv3 guest. Another source's SGI stays in
    /// `sgi_sources` meanwhile.
    pub active_source: u8,
    /// The physical PPI of the same INTID is active and owes its deactivation to this
    /// interrupt (raised by `Gic::raise_hw_ppi`): loaded with `ICH_LR<n>_EL2.HW` = 1, so that
    /// the guest's deactivation deactivates the physical interrupt too; cleared when a list
    /// register loaded so comes back invalid (the guest did), or by `Gic::settle_hw_ppi`
    /// (the hypervisor must).
    pub hw_active: bool,
}

impl Irq {
    /// An SPI or PPI at reset: disabled, Group 0, priority 0, level-sensitive.
    pub const fn reset() -> Self {
        Self {
            enabled: false,
            latch: false,
            line: false,
            active: false,
            group1: false,
            edge: false,
            priority: 0,
            lr_of: NO_VCPU,
            active_on: NO_VCPU,
            pending_written: false,
            active_written: false,
            sgi_sources: 0,
            active_source: 0,
            hw_active: false,
        }
    }

    /// A vCPU's 32 private interrupts at reset: as [`Irq::reset`], but SGIs are always
    /// edge-triggered (`GICR_ICFGR0` reads as 0xAAAA_AAAA).
    pub const fn private_reset() -> [Self; 32] {
        let mut irqs = [Self::reset(); 32];
        let mut intid = 0;
        while intid < super::SGI_COUNT as usize {
            irqs[intid].edge = true;
            intid += 1;
        }
        irqs
    }

    /// The pending state: the latch, or a level-sensitive interrupt's asserted line.
    pub const fn pending(&self) -> bool {
        self.latch || (!self.edge && self.line)
    }

    /// Whether the interrupt would be forwarded to a PE: pending, not active (an active and
    /// pending interrupt waits for its deactivation), enabled, and its group enabled.
    pub const fn deliverable_if(&self, group_enabled: bool) -> bool {
        self.pending() && !self.active && self.enabled && group_enabled
    }

    /// The vCPU whose list registers hold the interrupt, if any.
    pub fn lr_of(&self) -> Option<usize> {
        slot(self.lr_of)
    }

    /// Records which vCPU's list registers hold the interrupt.
    pub fn set_lr_of(&mut self, vcpu: Option<usize>) {
        self.lr_of = to_slot(vcpu);
    }

    /// The vCPU that acknowledged the interrupt, while it is active.
    pub fn active_on(&self) -> Option<usize> {
        slot(self.active_on)
    }

    /// Records the vCPU that acknowledged the interrupt.
    pub fn set_active_on(&mut self, vcpu: Option<usize>) {
        self.active_on = to_slot(vcpu);
    }

    /// Drives the input line: a rising edge latches an edge-triggered interrupt.
    pub fn set_line(&mut self, level: bool) {
        if self.edge && level && !self.line {
            self.latch = true;
        }
        self.line = level;
    }

    /// Writes the pending latch from the guest's `ISPENDR`/`ICPENDR` or an SGI.
    pub fn write_latch(&mut self, pending: bool) {
        self.latch = pending;
        self.pending_written |= self.lr_of != NO_VCPU;
    }

    /// Takes back the state a list register of `vcpu` holds for the interrupt (`pending`,
    /// `active`: its `State` field; `source`: the GICv2 SGI source bit it was loaded with, 0
    /// otherwise). A guest write to the interrupt's pending or active state while the list
    /// register held it wins over the list register. Nothing happens when `vcpu`'s list
    /// registers do not hold the interrupt.
    pub fn fold(&mut self, vcpu: usize, pending: bool, active: bool, source: u8) {
        if self.lr_of() != Some(vcpu) {
            return;
        }
        self.lr_of = NO_VCPU;
        if !self.active_written {
            self.active = active;
            self.set_active_on(active.then_some(vcpu));
            self.active_source = if active { source } else { 0 };
        }
        if !self.pending_written {
            if self.edge {
                // The latch went into the list register when it was loaded; an edge since
                // then has set it again. A GICv2 SGI still pending is its source's again.
                self.latch |= pending;
                if pending {
                    self.sgi_sources |= source;
                }
            } else if !pending {
                // Acknowledged: a level-sensitive interrupt stays pending only by its line.
                self.latch = false;
            }
        }
        self.pending_written = false;
        self.active_written = false;
    }

    /// Writes the active state from the guest's `ISACTIVER`/`ICACTIVER`.
    pub fn write_active(&mut self, active: bool) {
        self.active = active;
        self.active_on = NO_VCPU;
        self.active_source = 0;
        self.active_written |= self.lr_of != NO_VCPU;
    }
}
