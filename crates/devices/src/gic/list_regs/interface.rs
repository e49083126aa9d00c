//! The guest's side of the hardware virtual CPU interface that decides whether a pending
//! virtual interrupt is signalled to the vCPU (IHI 0069, "Virtual CPU interface", "Preemption"
//! and "Priority masking"; GICv2 IHI 0048B, 5.3 and 3.3): the virtual priority mask
//! (`ICH_VMCR_EL2.VPMR`), the group enables (`VENG0`, `VENG1`), the binary points (`VBPR0`,
//! `VBPR1`, `VCBPR`) and the running priority, the highest priority set in the active
//! priorities registers (`ICH_AP0R<n>_EL2`, `ICH_AP1R<n>_EL2`). All of them belong to the guest
//! (its `ICC_PMR_EL1`, `ICC_IGRPEN<n>_EL1`, `ICC_BPR<n>_EL1`, `ICC_CTLR_EL1.CBPR`, and the
//! interrupts it acknowledged and has not ended); the model knows none of them, and the
//! hypervisor reads them when it must know whether the guest's `WFI` ends
//! ([`crate::gic::Gic::wakes_from_wfi`]).
//!
//! A pending interrupt is signalled when its group is enabled, its priority is higher (lower
//! in value) than the priority mask, and its group priority (the priority's bits above the
//! binary point) is higher than the running priority.

/// `ICH_VMCR_EL2` fields (`GICH_VMCR` keeps the same ones at the same places, with a 5-bit
/// `VMPriMask` at \[31:27\]).
mod vmcr {
    /// `VENG0`, bit 0: virtual Group 0 interrupts enabled.
    pub const VENG0: u64 = 1 << 0;
    /// `VENG1`, bit 1: virtual Group 1 interrupts enabled.
    pub const VENG1: u64 = 1 << 1;
    /// `VCBPR`, bit 4: `VBPR0` decides the preemption of both groups.
    pub const VCBPR: u64 = 1 << 4;
    /// `VBPR1`, bits \[20:18\].
    pub const VBPR1_SHIFT: u32 = 18;
    /// `VBPR0`, bits \[23:21\].
    pub const VBPR0_SHIFT: u32 = 21;
    pub const VBPR_MASK: u64 = 0b111;
    /// `VPMR`, bits \[31:24\].
    pub const VPMR_SHIFT: u32 = 24;
    pub const VPMR_MASK: u64 = 0xFF;
    /// `GICH_VMCR.VMPriMask`, bits \[31:27\]: the top five bits of `VPMR`; bits \[26:24\] are
    /// reserved.
    pub const GICH_VPMR_RESERVED: u64 = 0b111 << 24;
}

/// The idle priority: the running priority of a CPU interface with no active interrupt.
const IDLE_PRIORITY: u8 = 0xFF;

/// The guest's virtual CPU interface state that decides which pending virtual interrupts it
/// is signalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtualInterface {
    /// `VENG0`.
    pub group0_enabled: bool,
    /// `VENG1`.
    pub group1_enabled: bool,
    /// `VPMR`: only interrupts of a priority value below it are signalled.
    pub priority_mask: u8,
    /// `VBPR0`.
    pub binary_point0: u8,
    /// `VBPR1`.
    pub binary_point1: u8,
    /// `VCBPR`.
    pub common_binary_point: bool,
    /// The running priority: the highest active priority, [`IDLE_PRIORITY`] when none.
    pub running_priority: u8,
}

impl VirtualInterface {
    /// The state `ICH_VMCR_EL2` = `vmcr` gives, with `running_priority` from
    /// [`VirtualInterface::running_priority`].
    #[must_use]
    pub const fn from_ich_vmcr(vmcr: u64, running_priority: u8) -> Self {
        // Truncations intended: each field is masked to its width first.
        #[allow(clippy::cast_possible_truncation)]
        Self {
            group0_enabled: vmcr & vmcr::VENG0 != 0,
            group1_enabled: vmcr & vmcr::VENG1 != 0,
            priority_mask: ((vmcr >> vmcr::VPMR_SHIFT) & vmcr::VPMR_MASK) as u8,
            binary_point0: ((vmcr >> vmcr::VBPR0_SHIFT) & vmcr::VBPR_MASK) as u8,
            binary_point1: ((vmcr >> vmcr::VBPR1_SHIFT) & vmcr::VBPR_MASK) as u8,
            common_binary_point: vmcr & vmcr::VCBPR != 0,
            running_priority,
        }
    }

    /// The state a GICv2's `GICH_VMCR` = `vmcr` gives (IHI 0048B, 5.3.4: `VMGrp0En`,
    /// `VMGrp1En`, `VMCBPR`, `VMABP`, `VMBP` and `VMPriMask` where `ICH_VMCR_EL2` has `VENG0`,
    /// `VENG1`, `VCBPR`, `VBPR1`, `VBPR0` and the top five bits of `VPMR`), with
    /// `running_priority` from [`VirtualInterface::running_priority`] of `GICH_APR`.
    #[must_use]
    pub const fn from_gich_vmcr(vmcr: u32, running_priority: u8) -> Self {
        Self::from_ich_vmcr(vmcr as u64 & !vmcr::GICH_VPMR_RESERVED, running_priority)
    }

    /// The running priority the active priorities registers give: `active[n]` is
    /// `ICH_AP0R<n>_EL2 | ICH_AP1R<n>_EL2` (`GICH_APR` for `n` = 0 on a GICv2), each bit one
    /// preemption level of `preemption_bits` bits, the lowest bit the highest priority (IHI
    /// 0069, `ICH_AP1R<n>_EL2`); [`IDLE_PRIORITY`] when no bit is set.
    #[must_use]
    pub fn running_priority(active: &[u32], preemption_bits: u8) -> u8 {
        let shift = 8u32.saturating_sub(u32::from(preemption_bits));
        let levels = 1u32 << (8 - shift);
        active
            .iter()
            .enumerate()
            .find(|(_, word)| **word != 0)
            .map_or(IDLE_PRIORITY, |(n, word)| {
                let level = 32 * n as u32 + word.trailing_zeros();
                // Truncation impossible: a level below 2^preemption_bits, shifted into 8 bits.
                #[allow(clippy::cast_possible_truncation)]
                if level < levels {
                    (level << shift) as u8
                } else {
                    IDLE_PRIORITY
                }
            })
    }

    /// The group priority of `priority` in group 1 (`group1`) or 0: its bits above the binary
    /// point. Group 0, and Group 1 with `VCBPR`, use `VBPR0`, whose group priority field is
    /// bits \[7:VBPR0 + 1\]; Group 1 otherwise `VBPR1`, bits \[7:VBPR1\] (IHI 0069,
    /// `ICC_BPR0_EL1`, `ICC_BPR1_EL1`, "Priority grouping").
    const fn group_priority(&self, priority: u8, group1: bool) -> u8 {
        let below = if group1 && !self.common_binary_point {
            self.binary_point1
        } else {
            self.binary_point0 + 1
        };
        if below >= 8 {
            0
        } else {
            priority & (0xFF << below)
        }
    }

    /// Whether a pending interrupt of `priority` (as loaded in its list register) in group 1
    /// (`group1`) or 0 is signalled: its group enabled, its priority above the priority mask
    /// and its group priority above the running priority.
    #[must_use]
    pub const fn signals(&self, priority: u8, group1: bool) -> bool {
        let enabled = if group1 {
            self.group1_enabled
        } else {
            self.group0_enabled
        };
        enabled
            && priority < self.priority_mask
            && self.group_priority(priority, group1) < self.running_priority
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ICH_VMCR_EL2` of a guest that set `ICC_PMR_EL1` = 0xff and `ICC_IGRPEN1_EL1` = 1, with
    /// the binary points at QEMU's reset values (`VBPR0` 2, `VBPR1` 3).
    const OPEN: u64 = 0xF8 << 24 | 2 << 21 | 3 << 18 | 1 << 1;

    #[test]
    fn an_open_interface_signals_a_group_1_interrupt_of_any_priority_above_the_mask() {
        let open = VirtualInterface::from_ich_vmcr(OPEN, IDLE_PRIORITY);
        assert!(open.signals(0x00, true) && open.signals(0xF0, true));
        // Equal to the mask is masked (the priority must be higher, lower in value).
        assert!(!open.signals(0xF8, true));
        // Group 0 is not enabled.
        assert!(!open.signals(0x80, false));
    }

    #[test]
    fn the_reset_interface_signals_nothing() {
        let reset = VirtualInterface::from_ich_vmcr(0, IDLE_PRIORITY);
        assert!(!reset.signals(0x00, true) && !reset.signals(0x00, false));
    }

    #[test]
    fn an_active_interrupt_blocks_those_of_its_group_priority_and_lower() {
        // The guest acknowledged (and never ended) an interrupt of priority 0x80: bit 0x80 >> 3
        // of ICH_AP1R0_EL2 with five preemption bits.
        let running = VirtualInterface::running_priority(&[1 << 16], 5);
        assert_eq!(running, 0x80);
        let busy = VirtualInterface::from_ich_vmcr(OPEN, running);
        assert!(!busy.signals(0x80, true) && !busy.signals(0xC0, true));
        assert!(busy.signals(0x78, true));
        // Preemption compares group priorities: with VBPR1 = 3 a Group 1 priority's bits
        // [7:3], with VBPR1 = 4 bits [7:4], so 0x48 is group priority 0x40, above a running
        // priority of 0x48 (acknowledged under the finer binary point).
        let running = VirtualInterface::running_priority(&[1 << 9], 5);
        assert_eq!(running, 0x48);
        let fine = VirtualInterface::from_ich_vmcr(OPEN, running);
        let coarse = VirtualInterface::from_ich_vmcr(OPEN & !(7 << 18) | 4 << 18, running);
        assert!(!fine.signals(0x48, true) && coarse.signals(0x48, true));
        // With VCBPR, Group 1 uses VBPR0 (2): bits [7:3].
        let common = VirtualInterface::from_ich_vmcr(OPEN & !(7 << 18) | 4 << 18 | 1 << 4, running);
        assert!(!common.signals(0x48, true));
    }

    #[test]
    fn the_running_priority_is_the_lowest_active_bit_of_every_register() {
        assert_eq!(VirtualInterface::running_priority(&[0], 5), IDLE_PRIORITY);
        assert_eq!(VirtualInterface::running_priority(&[], 5), IDLE_PRIORITY);
        assert_eq!(VirtualInterface::running_priority(&[0b1010_0000], 5), 0x28);
        // Seven bits: four registers, level 32n + bit, two priority values per level.
        assert_eq!(
            VirtualInterface::running_priority(&[0, 0, 1 << 3, 1], 7),
            0x86
        );
    }

    #[test]
    fn gich_vmcr_keeps_the_same_fields_with_a_five_bit_mask() {
        let gich = VirtualInterface::from_gich_vmcr(0x1F << 27 | 2 << 21 | 3 << 18 | 1, 0xFF);
        assert_eq!(gich.priority_mask, 0xF8);
        assert!(gich.group0_enabled && !gich.group1_enabled);
        assert!(gich.signals(0xF0, false) && !gich.signals(0xF0, true));
    }
}
