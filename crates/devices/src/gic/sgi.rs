//! Software Generated Interrupts a guest sends by writing `ICC_SGI1R_EL1` (IHI 0069,
//! "ICC_SGI1R_EL1, Interrupt Controller Software Generated Interrupt Group 1 Register"). The
//! write is trapped to EL2 (the virtual CPU interface does not generate SGIs itself), decoded
//! here and turned into pending SGIs in the target vCPUs' redistributors.
//!
//! `ICC_SGI1R_EL1` generates Group 1 SGIs and `ICC_SGI0R_EL1` (same layout) Group 0 ones: an SGI
//! becomes pending on a target only when the target's `GICR_IGROUPR0` puts it in that group
//! (IHI 0069, "Forwarding an SGI to a target PE", with `GICD_CTLR.DS` = 1). `ICC_ASGI1R_EL1`
//! names the other Security state's Group 1, which a GIC with one Security state does not
//! have: such a write generates nothing, and the hypervisor just skips the instruction.

use super::{Affinity, Gic, IrqRef, MAX_VCPUS, VcpuSet};

/// `ICC_SGI1R_EL1` fields.
mod field {
    /// `TargetList`, bits \[15:0\]: one bit per `Aff0` value RS * 16 + n.
    pub const TARGET_LIST_MASK: u64 = 0xFFFF;
    /// `Aff1`, bits \[23:16\].
    pub const AFF1_SHIFT: u32 = 16;
    /// `INTID`, bits \[27:24\].
    pub const INTID_SHIFT: u32 = 24;
    pub const INTID_MASK: u64 = 0xF;
    /// `Aff2`, bits \[39:32\].
    pub const AFF2_SHIFT: u32 = 32;
    /// `IRM`, bit 40: 1 targets every PE but the sender.
    pub const IRM: u64 = 1 << 40;
    /// `RS`, bits \[47:44\]: the range of `Aff0` values `TargetList` covers.
    pub const RS_SHIFT: u32 = 44;
    pub const RS_MASK: u64 = 0xF;
    /// `Aff3`, bits \[55:48\].
    pub const AFF3_SHIFT: u32 = 48;
    /// The width of an affinity field and of the 16 `TargetList` bits per `RS` range.
    pub const AFF_MASK: u64 = 0xFF;
    pub const RANGE_SIZE: u32 = 16;
}

/// The affinity byte of `value` at `shift`.
const fn byte(value: u64, shift: u32) -> u8 {
    // Truncation intended: masked to a byte.
    #[allow(clippy::cast_possible_truncation)]
    let byte = ((value >> shift) & field::AFF_MASK) as u8;
    byte
}

/// A decoded `ICC_SGI1R_EL1` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sgi1r {
    /// `TargetList`: bit n targets the PE with `Aff0` = `RS` * 16 + n.
    pub target_list: u16,
    /// `Aff1` of the targets.
    pub aff1: u8,
    /// `INTID`: the SGI, 0–15.
    pub intid: u8,
    /// `Aff2` of the targets.
    pub aff2: u8,
    /// `IRM` (`Interrupt_Routing_Mode`): every PE but the sender, ignoring the other fields.
    pub irm: bool,
    /// `RS`: the range selector for `TargetList`.
    pub rs: u8,
    /// `Aff3` of the targets.
    pub aff3: u8,
}

impl Sgi1r {
    /// Decodes a value written to `ICC_SGI1R_EL1`; RES0 bits are ignored.
    #[must_use]
    pub const fn decode(value: u64) -> Self {
        Self {
            target_list: (value & field::TARGET_LIST_MASK) as u16,
            aff1: byte(value, field::AFF1_SHIFT),
            intid: ((value >> field::INTID_SHIFT) & field::INTID_MASK) as u8,
            aff2: byte(value, field::AFF2_SHIFT),
            irm: value & field::IRM != 0,
            rs: ((value >> field::RS_SHIFT) & field::RS_MASK) as u8,
            aff3: byte(value, field::AFF3_SHIFT),
        }
    }

    /// Encodes the fields back into the register layout.
    #[must_use]
    pub const fn encode(self) -> u64 {
        let irm = if self.irm { field::IRM } else { 0 };
        (self.target_list as u64)
            | ((self.aff1 as u64) << field::AFF1_SHIFT)
            | ((self.intid as u64 & field::INTID_MASK) << field::INTID_SHIFT)
            | ((self.aff2 as u64) << field::AFF2_SHIFT)
            | irm
            | ((self.rs as u64 & field::RS_MASK) << field::RS_SHIFT)
            | ((self.aff3 as u64) << field::AFF3_SHIFT)
    }

    /// Whether the register names the PE of affinity `target` (without `IRM`).
    #[must_use]
    pub const fn names(self, target: Affinity) -> bool {
        let base = self.rs as u32 * field::RANGE_SIZE;
        let aff0 = target.aff0 as u32;
        target.aff3 == self.aff3
            && target.aff2 == self.aff2
            && target.aff1 == self.aff1
            && aff0 >= base
            && aff0 < base + field::RANGE_SIZE
            && self.target_list & (1 << (aff0 - base)) != 0
    }

    /// The vCPUs (of a VM with `vcpus` vCPUs) that the SGI goes to when `sender` writes it.
    #[must_use]
    pub fn targets(self, sender: usize, vcpus: usize) -> VcpuSet {
        let vcpus = vcpus.min(MAX_VCPUS);
        if self.irm {
            return VcpuSet::first(vcpus).without(sender);
        }
        (0..vcpus)
            .filter(|&vcpu| self.names(Affinity::of_vcpu(vcpu)))
            .fold(VcpuSet::EMPTY, |set, vcpu| set.union(VcpuSet::single(vcpu)))
    }
}

impl<const SPIS: usize> Gic<SPIS> {
    /// Sends the Group 1 SGI that vCPU `sender` asked for by writing `value` to
    /// `ICC_SGI1R_EL1`: the SGI becomes pending in every target's redistributor where it is
    /// configured Group 1. Returns the vCPUs to kick (the targets for which the SGI is
    /// deliverable now).
    pub fn send_sgi(&mut self, sender: usize, value: u64) -> VcpuSet {
        self.send_sgi_of_group(sender, value, true)
    }

    /// As [`Gic::send_sgi`], for a write to `ICC_SGI0R_EL1` (Group 0 SGIs).
    pub fn send_sgi0(&mut self, sender: usize, value: u64) -> VcpuSet {
        self.send_sgi_of_group(sender, value, false)
    }

    fn send_sgi_of_group(&mut self, sender: usize, value: u64, group1: bool) -> VcpuSet {
        let sgi = Sgi1r::decode(value);
        let mut kick = VcpuSet::EMPTY;
        for vcpu in sgi.targets(sender, self.vcpus).iter() {
            let irq = IrqRef::Private {
                vcpu,
                intid: u32::from(sgi.intid),
            };
            if self.irq(irq).group1 == group1 {
                kick |= self.update(irq, |state| state.write_latch(true));
            }
        }
        kick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgi1r_fields_decode_at_their_architected_positions() {
        // Aff3 0x12, RS 3, IRM 0, Aff2 0x34, INTID 9, Aff1 0x56, TargetList 0x8001.
        let value = 0x0012_3034_0956_8001;
        let expected = Sgi1r {
            target_list: 0x8001,
            aff1: 0x56,
            intid: 9,
            aff2: 0x34,
            irm: false,
            rs: 3,
            aff3: 0x12,
        };
        assert_eq!(Sgi1r::decode(value), expected);
        assert_eq!(expected.encode(), value);
    }

    #[test]
    fn sgi1r_target_list_names_aff0_values_of_the_range() {
        let cases: [(u64, usize, &[usize]); 5] = [
            // TargetList 0b101: vCPUs 0 and 2.
            (0b101, 4, &[0, 2]),
            // Bits for vCPUs the VM does not have are ignored.
            (0xFFFF, 3, &[0, 1, 2]),
            // RS = 1 covers Aff0 16..31: no vCPU of an 8-vCPU VM.
            (1 << 44 | 0xFF, 8, &[]),
            // Aff1 = 1 names another cluster.
            (1 << 16 | 0xFF, 8, &[]),
            (0, 8, &[]),
        ];
        for (value, vcpus, expected) in cases {
            let targets: Vec<usize> = Sgi1r::decode(value).targets(0, vcpus).iter().collect();
            assert_eq!(targets, expected, "value {value:#x}");
        }
    }

    #[test]
    fn sgi1r_with_irm_targets_every_vcpu_but_the_sender() {
        let sgi = Sgi1r::decode(1 << 40 | 0xFFFF);
        let targets: Vec<usize> = sgi.targets(2, 4).iter().collect();
        assert_eq!(targets, [0, 1, 3]);
    }

    #[test]
    fn sgi_to_self_is_allowed_through_the_target_list() {
        let sgi = Sgi1r::decode(0b10);
        assert!(sgi.targets(1, 2).contains(1));
    }

    #[test]
    fn sgi_pends_only_where_the_target_puts_it_in_the_requested_group() {
        let mut gic = crate::gic::VirtGic::new(2).unwrap();
        let _ = gic.update(IrqRef::Private { vcpu: 1, intid: 7 }, |irq| {
            irq.group1 = true
        });
        gic.send_sgi(1, 7 << 24 | 0b11);
        let pending =
            |gic: &crate::gic::VirtGic, vcpu| gic.irq(IrqRef::Private { vcpu, intid: 7 }).pending();
        assert!(!pending(&gic, 0), "Group 0 SGI 7 ignores ICC_SGI1R_EL1");
        assert!(pending(&gic, 1), "Group 1 SGI 7 takes ICC_SGI1R_EL1");
        let _ = gic.update(IrqRef::Private { vcpu: 1, intid: 7 }, |irq| {
            irq.write_latch(false);
        });
        gic.send_sgi0(1, 7 << 24 | 0b11);
        assert!(pending(&gic, 0), "Group 0 SGI 7 takes ICC_SGI0R_EL1");
        assert!(!pending(&gic, 1), "Group 1 SGI 7 ignores ICC_SGI0R_EL1");
    }

    #[test]
    fn sent_sgi_kicks_only_targets_where_it_is_enabled() {
        let mut gic = crate::gic::VirtGic::new(4).unwrap();
        gic.enables.grp1 = true;
        for vcpu in 0..4 {
            let irq = IrqRef::Private { vcpu, intid: 5 };
            let _ = gic.update(irq, |irq| {
                irq.group1 = true;
                irq.enabled = vcpu != 3;
            });
        }
        let kick = gic.send_sgi(0, 1 << 40 | 5 << 24);
        assert_eq!(kick.iter().collect::<Vec<_>>(), [1, 2]);
        let irq = IrqRef::Private { vcpu: 3, intid: 5 };
        assert!(
            gic.irq(irq).pending(),
            "a disabled SGI still becomes pending"
        );
    }
}
