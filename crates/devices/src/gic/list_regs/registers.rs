//! The encodings of the virtual CPU interface's control registers that the model reads and
//! writes: `ICH_LR<n>_EL2` (IHI 0069, "`ICH_LR<n>_EL2`, Interrupt Controller List Registers") and
//! `ICH_VTR_EL2` ("`ICH_VTR_EL2`, Interrupt Controller VGIC Type Register"), field by field.

/// `ICH_LR<n>_EL2` fields.
mod lr {
    /// `vINTID`, bits \[31:0\].
    pub const VINTID_MASK: u64 = 0xFFFF_FFFF;
    /// `pINTID`, bits \[44:32\], when `HW` = 1.
    pub const PINTID_SHIFT: u32 = 32;
    pub const PINTID_MASK: u64 = 0x1FFF;
    /// `EOI`, bit 41, when `HW` = 0: a maintenance interrupt on deactivation.
    pub const EOI: u64 = 1 << 41;
    /// Bits \[34:32\] when `HW` = 0: RES0 in `ICH_LR<n>_EL2`; the model keeps a GICv2 SGI's
    /// source CPU there, where `GICH_LR<n>.CPUID` sits in the same `PhysicalID` field (see
    /// [`super::gich`]). Always 0 for a GICv3 guest.
    pub const SOURCE_MASK: u64 = 0b111;
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
    /// `PREbits`, bits \[28:26\]: the number of virtual preemption bits minus 1.
    pub const PRE_BITS_SHIFT: u32 = 26;
    pub const PRE_BITS_MASK: u64 = 0b111;
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
    /// A GICv2 SGI's source CPU (only without `hw`; 0 otherwise and for a GICv3 guest): what
    /// `GICH_LR<n>.CPUID` gives the guest in `GICC_IAR.CPUID`.
    pub source: u8,
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
        source: 0,
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
            source: if hw {
                0
            } else {
                ((value >> lr::PINTID_SHIFT) & lr::SOURCE_MASK) as u8
            },
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
                | (((self.source as u64) & lr::SOURCE_MASK) << lr::PINTID_SHIFT)
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
    /// The number of virtual preemption bits (`PREbits` + 1): the active priorities registers
    /// (`ICH_AP0R<n>_EL2`, `ICH_AP1R<n>_EL2`) hold one bit per preemption level, 32 per
    /// register.
    pub preemption_bits: u8,
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
            preemption_bits: ((value >> vtr::PRE_BITS_SHIFT) & vtr::PRE_BITS_MASK) as u8 + 1,
        }
    }

    /// How many active priorities registers of each group the virtual CPU interface has:
    /// `ICH_AP0R<n>_EL2`/`ICH_AP1R<n>_EL2` for `n` below this (1 for 5 preemption bits, 2 for
    /// 6, 4 for 7).
    #[must_use]
    pub const fn active_priority_registers(self) -> usize {
        let levels = 1usize << self.preemption_bits;
        if levels <= 32 { 1 } else { levels / 32 }
    }

    /// The implemented bits of an 8-bit priority: the top `priority_bits`.
    #[must_use]
    pub const fn priority_mask(self) -> u8 {
        let unimplemented = 8u8.saturating_sub(self.priority_bits);
        !((1u16 << unimplemented) - 1) as u8
    }
}
