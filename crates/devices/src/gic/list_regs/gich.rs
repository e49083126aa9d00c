//! The GICv2 virtual interface control's list registers (`GICH_LR<n>`, GICv2 IHI 0048B, 5.3.11
//! "List Registers, GICH_LRn") and type register (`GICH_VTR`, 5.3.2), as translations to and
//! from the `ICH_LR<n>_EL2` layout the model keeps (see [`super::ListRegister`]).
//!
//! The two layouts hold the same fields: GICv2's `VirtualID` \[9:0\] is GICv3's `vINTID`,
//! `PhysicalID` \[19:10\] is `pINTID` \[41:32\] (with `HW` = 0 both keep `EOI` in its bit 9 and
//! GICv2 the SGI's source `CPUID` in its bits \[2:0\], where the model keeps it too), GICv2's
//! 5-bit `Priority` \[27:23\] is the top five bits of GICv3's 8-bit one \[55:48\], and `State`,
//! `Grp1` and `HW` sit at \[29:28\], 30 and 31 instead of \[63:62\], 60 and 61. So a value the
//! model wrote reads back through [`from_gich_lr`] exactly as it was loaded, unless the guest
//! changed its state: the sync's comparison with what was loaded works for both GICs.

use super::IchVtr;

/// `GICH_LR<n>` fields.
mod v2 {
    /// `VirtualID`, bits \[9:0\].
    pub const VIRTUAL_ID_MASK: u32 = 0x3FF;
    /// `PhysicalID`, bits \[19:10\].
    pub const PHYSICAL_ID_SHIFT: u32 = 10;
    pub const PHYSICAL_ID_MASK: u32 = 0x3FF;
    /// `Priority`, bits \[27:23\]: the top five bits of an 8-bit priority.
    pub const PRIORITY_SHIFT: u32 = 23;
    pub const PRIORITY_MASK: u32 = 0x1F;
    /// `State`, bits \[29:28\].
    pub const STATE_SHIFT: u32 = 28;
    pub const STATE_MASK: u32 = 0b11;
    /// `Grp1`, bit 30.
    pub const GRP1: u32 = 1 << 30;
    /// `HW`, bit 31.
    pub const HW: u32 = 1 << 31;
}

/// The same fields of `ICH_LR<n>_EL2`.
mod ich {
    pub const VINTID_MASK: u64 = 0x3FF;
    pub const PINTID_SHIFT: u32 = 32;
    pub const PRIORITY_SHIFT: u32 = 48;
    /// GICv2's five priority bits are the top five of the eight.
    pub const PRIORITY_DROP: u32 = 3;
    pub const STATE_SHIFT: u32 = 62;
    pub const GROUP: u64 = 1 << 60;
    pub const HW: u64 = 1 << 61;
}

/// The most priority bits a `GICH_LR<n>` holds.
const GICH_PRIORITY_BITS: u8 = 5;

/// The `GICH_LR<n>` value for the model's `ICH_LR<n>_EL2`-layout `value`.
#[must_use]
pub fn to_gich_lr(value: u64) -> u32 {
    // Truncations intended: each field is masked to its width first.
    #[allow(clippy::cast_possible_truncation)]
    let field = |shift: u32, mask: u32| ((value >> shift) as u32) & mask;
    let hw = if value & ich::HW != 0 { v2::HW } else { 0 };
    let grp1 = if value & ich::GROUP != 0 { v2::GRP1 } else { 0 };
    (value as u32 & v2::VIRTUAL_ID_MASK)
        | (field(ich::PINTID_SHIFT, v2::PHYSICAL_ID_MASK) << v2::PHYSICAL_ID_SHIFT)
        | (field(ich::PRIORITY_SHIFT + ich::PRIORITY_DROP, v2::PRIORITY_MASK) << v2::PRIORITY_SHIFT)
        | (field(ich::STATE_SHIFT, v2::STATE_MASK) << v2::STATE_SHIFT)
        | grp1
        | hw
}

/// The model's `ICH_LR<n>_EL2`-layout value for a `GICH_LR<n>` read back.
#[must_use]
pub fn from_gich_lr(value: u32) -> u64 {
    let field = |shift: u32, mask: u32| u64::from((value >> shift) & mask);
    let hw = if value & v2::HW != 0 { ich::HW } else { 0 };
    let group = if value & v2::GRP1 != 0 { ich::GROUP } else { 0 };
    (u64::from(value) & ich::VINTID_MASK)
        | (field(v2::PHYSICAL_ID_SHIFT, v2::PHYSICAL_ID_MASK) << ich::PINTID_SHIFT)
        | (field(v2::PRIORITY_SHIFT, v2::PRIORITY_MASK)
            << (ich::PRIORITY_SHIFT + ich::PRIORITY_DROP))
        | (field(v2::STATE_SHIFT, v2::STATE_MASK) << ich::STATE_SHIFT)
        | group
        | hw
}

/// What `GICH_VTR` says, as the fill wants it: `ListRegs` \[5:0\] (the number of list registers
/// minus one) and `PRIbits` \[31:29\] (priority bits minus one) sit where `ICH_VTR_EL2` has them;
/// the priority bits are at most the five a `GICH_LR<n>` holds.
#[must_use]
pub const fn gich_vtr(value: u32) -> IchVtr {
    const LIST_REGS_MASK: u32 = 0x3F;
    let decoded = IchVtr::decode(value as u64 & !0x3F);
    IchVtr {
        list_regs: (value & LIST_REGS_MASK) as usize + 1,
        priority_bits: if decoded.priority_bits < GICH_PRIORITY_BITS {
            decoded.priority_bits
        } else {
            GICH_PRIORITY_BITS
        },
        preemption_bits: if decoded.preemption_bits < GICH_PRIORITY_BITS {
            decoded.preemption_bits
        } else {
            GICH_PRIORITY_BITS
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gic::list_regs::{ListRegister, LrState};

    #[test]
    fn gich_lr_fields_sit_at_their_architected_positions() {
        // HW, Group 1, Active, priority 0xA0 (0b10100 in [27:23]), PhysicalID 27, VirtualID 27.
        let lr = ListRegister {
            vintid: 27,
            pintid: 27,
            eoi_maintenance: false,
            source: 0,
            priority: 0xA0,
            group1: true,
            hw: true,
            state: LrState::Active,
        };
        assert_eq!(
            to_gich_lr(lr.encode()),
            0xE000_0000 | 0x14 << 23 | 27 << 10 | 27
        );
        // An SGI from CPU 3 with an EOI maintenance request: CPUID [12:10], EOI bit 19.
        let sgi = ListRegister {
            vintid: 2,
            pintid: 0,
            eoi_maintenance: true,
            source: 3,
            priority: 0x08,
            group1: false,
            hw: false,
            state: LrState::Pending,
        };
        assert_eq!(
            to_gich_lr(sgi.encode()),
            1 << 28 | 1 << 23 | 1 << 19 | 3 << 10 | 2
        );
    }

    #[test]
    fn a_loaded_value_reads_back_unchanged_through_gich_lr() {
        let states = [
            LrState::Invalid,
            LrState::Pending,
            LrState::Active,
            LrState::PendingActive,
        ];
        for state in states {
            for (hw, source) in [(false, 0), (false, 7), (true, 0)] {
                let value = ListRegister {
                    vintid: 1019,
                    pintid: if hw { 30 } else { 0 },
                    eoi_maintenance: !hw,
                    source,
                    priority: 0xF8,
                    group1: source != 7,
                    hw,
                    state,
                }
                .encode();
                assert_eq!(from_gich_lr(to_gich_lr(value)), value, "{state:?} hw {hw}");
            }
        }
    }

    #[test]
    fn gich_vtr_gives_the_list_registers_and_at_most_five_priority_bits() {
        // GIC-400: 4 list registers, PRIbits 4 (5 bits), PREbits 4.
        let vtr = gich_vtr(0x9000_0003);
        assert_eq!((vtr.list_regs, vtr.priority_bits), (4, 5));
        assert_eq!(vtr.priority_mask(), 0xF8);
        // ListRegs is six bits wide in GICH_VTR; PRIbits 7 is capped at the LR's five.
        let vtr = gich_vtr(0xE000_0020);
        assert_eq!((vtr.list_regs, vtr.priority_bits), (33, 5));
    }
}
