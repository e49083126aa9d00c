//! `VTCR_EL2` geometry of a VM's stage-2 translation: how a VM IPA size `S` (32..=48 bits, any
//! integer, not only the `PARange` steps) becomes a start level, a number of concatenated start
//! tables, and the `T0SZ`/`SL0`/`PS` fields, for the 4K granule without `VTCR_EL2.DS`.
//!
//! The rules are the Arm ARM's (DDI 0487, `VTCR_EL2.SL0` and "Concatenated translation tables
//! for the initial lookup"; pseudocode `AArch64.S2InconsistentSL()` and `AArch64.S2InvalidSL()`):
//! a start level `l` resolves the IPA bits above those resolved by the later levels, at least one
//! and at most 9 + 4 of them (up to 16 concatenated tables); start level 0 needs a PA size of at
//! least 44 bits. Where two start levels are legal (S = 31..=34: levels 1 and 2; S = 40..=43:
//! levels 0 and 1) Moat takes the one with fewer levels and more concatenation, as KVM does: one
//! memory access less on every walk, for at most 15 extra pages per VM.
//!
//! The IPA limit `L` of SPEC §1 comes from `ID_AA64MMFR0_EL1.PARange` of every CPU
//! ([`ipa_limit_bits`]); `VTCR_EL2.PS` encodes `L`, so stage 2 never outputs an address the
//! machine lacks.

use moat_arm::addr::Pa;

use crate::Stage2Error;

/// log2 of the translation granule: 4 KiB pages.
pub const PAGE_SHIFT: u32 = 12;
/// The translation granule in bytes.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// IPA bits resolved by one full table of the 4K granule (512 eight-byte descriptors).
pub const BITS_PER_LEVEL: u32 = 9;
/// Descriptors in one 4 KiB table.
pub const ENTRIES_PER_TABLE: usize = 1 << BITS_PER_LEVEL;
/// The last lookup level of the 4K granule, whose descriptors are pages.
pub const LAST_LEVEL: u8 = 3;
/// The most tables the Arm ARM lets stage 2 concatenate at its start level (4 extra bits).
pub const MAX_CONCATENATED_TABLES: u32 = 16;
/// The smallest VM IPA size Moat offers (SPEC §1).
pub const MIN_IPA_BITS: u32 = 32;
/// The largest output (and input) size of the 4K granule without `VTCR_EL2.DS` (FEAT_LPA2).
pub const MAX_PA_BITS_4K: u32 = 48;

/// `ID_AA64MMFR0_EL1.PARange` encodings and the PA sizes they mean, in field order. The same
/// encoding is used by `VTCR_EL2.PS`.
const PARANGE_BITS: [u32; 8] = [32, 36, 40, 42, 44, 48, 52, 56];

/// `VTCR_EL2` fields (Arm ARM, register `VTCR_EL2`).
mod vtcr {
    pub const T0SZ_SHIFT: u32 = 0;
    pub const SL0_SHIFT: u32 = 6;
    pub const IRGN0_SHIFT: u32 = 8;
    pub const ORGN0_SHIFT: u32 = 10;
    pub const SH0_SHIFT: u32 = 12;
    pub const TG0_SHIFT: u32 = 14;
    pub const PS_SHIFT: u32 = 16;
    /// `VS`, bit 19: 16-bit VMIDs (FEAT_VMID16).
    pub const VS: u64 = 1 << 19;
    /// Bit 31 is RES1.
    pub const RES1: u64 = 1 << 31;
    /// `IRGN0`/`ORGN0`: Normal memory, Write-Back Read-Allocate Write-Allocate Cacheable.
    pub const RGN_WBWA: u64 = 0b01;
    /// `SH0`: Inner Shareable.
    pub const SH_INNER: u64 = 0b11;
    /// `TG0`: 4 KiB granule.
    pub const TG0_4K: u64 = 0b00;
}

/// `VTTBR_EL2` fields (Arm ARM, register `VTTBR_EL2`).
mod vttbr {
    /// `VMID` at bits [55:48] with 8-bit VMIDs, [63:48] with 16-bit VMIDs (`VTCR_EL2.VS` = 1).
    pub const VMID_SHIFT: u32 = 48;
    /// `BADDR`, bits [47:1]; Moat's tables are page aligned so bits [11:1] are zero anyway.
    pub const BADDR_MASK: u64 = 0x0000_ffff_ffff_fffe;
}

/// The PA size in bits that an `ID_AA64MMFR0_EL1.PARange` (or `VTCR_EL2.PS`) value encodes, or
/// `None` for a reserved value.
#[must_use]
pub fn parange_bits(parange: u8) -> Option<u32> {
    PARANGE_BITS.get(usize::from(parange)).copied()
}

/// The IPA limit `L` of SPEC §1: the smallest PA size of all CPUs, capped at 48 bits (the
/// largest IPA a 4K-granule stage 2 without `VTCR_EL2.DS` translates).
///
/// `parange_per_cpu` holds each CPU's `ID_AA64MMFR0_EL1.PARange` field (bits [3:0]).
///
/// # Errors
///
/// [`Stage2Error::NoCpus`] for an empty list; [`Stage2Error::UnknownParange`] naming the first
/// CPU with a reserved `PARange` value.
pub fn ipa_limit_bits(parange_per_cpu: &[u8]) -> Result<u32, Stage2Error> {
    let mut limit: Option<u32> = None;
    for (cpu, &parange) in parange_per_cpu.iter().enumerate() {
        let bits = parange_bits(parange).ok_or(Stage2Error::UnknownParange { cpu, parange })?;
        limit = Some(limit.map_or(bits, |l| l.min(bits)));
    }
    limit
        .map(|l| l.min(MAX_PA_BITS_4K))
        .ok_or(Stage2Error::NoCpus)
}

/// log2 of the bytes one descriptor at `level` maps (4K granule): 39, 30, 21, 12 for levels 0–3.
#[must_use]
pub const fn level_shift(level: u8) -> u32 {
    PAGE_SHIFT + BITS_PER_LEVEL * (LAST_LEVEL - level) as u32
}

/// Bytes one descriptor at `level` maps: 512 GiB, 1 GiB, 2 MiB, 4 KiB for levels 0–3.
#[must_use]
pub const fn level_size(level: u8) -> u64 {
    1 << level_shift(level)
}

/// The stage-2 translation geometry of one VM: IPA size, start level, concatenated start tables
/// and output size, from which `VTCR_EL2` follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    ipa_bits: u32,
    pa_limit_bits: u32,
    start_level: u8,
    root_tables: u32,
    vmid_bits: VmidBits,
}

/// The width of the VMIDs the machine's stage 2 uses: 8 bits, which every implementation has,
/// or 16 where every CPU has FEAT_VMID16 (`ID_AA64MMFR1_EL1.VMIDBits` = 0b0010), selected by
/// `VTCR_EL2.VS` (Arm ARM, register `VTCR_EL2`; `VTTBR_EL2.VMID`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VmidBits {
    /// 8-bit VMIDs (`VS` = 0).
    #[default]
    Eight,
    /// 16-bit VMIDs (`VS` = 1).
    Sixteen,
}

impl VmidBits {
    /// The width the CPUs' `ID_AA64MMFR1_EL1.VMIDBits` fields allow (16 only if all say 0b0010).
    #[must_use]
    pub fn of_cpus(vmid_bits_fields: &[u8]) -> Self {
        if !vmid_bits_fields.is_empty() && vmid_bits_fields.iter().all(|&f| f == 0b0010) {
            Self::Sixteen
        } else {
            Self::Eight
        }
    }

    /// The largest VMID of this width.
    #[must_use]
    pub const fn max_vmid(self) -> u16 {
        match self {
            Self::Eight => u8::MAX as u16,
            Self::Sixteen => u16::MAX,
        }
    }
}

impl Geometry {
    /// The geometry for a VM IPA size of `ipa_bits` (`S`) on a machine whose IPA limit is
    /// `pa_limit_bits` (`L`, from [`ipa_limit_bits`]).
    ///
    /// # Errors
    ///
    /// [`Stage2Error::UnsupportedPaLimit`] when `L` is not a `VTCR_EL2.PS` size at or below 48;
    /// [`Stage2Error::IpaSizeTooSmall`] when `S < 32`; [`Stage2Error::IpaSizeAboveLimit`] when
    /// `S > L`.
    pub fn new(ipa_bits: u32, pa_limit_bits: u32) -> Result<Self, Stage2Error> {
        if pa_limit_bits > MAX_PA_BITS_4K || !PARANGE_BITS.contains(&pa_limit_bits) {
            return Err(Stage2Error::UnsupportedPaLimit { pa_limit_bits });
        }
        if ipa_bits < MIN_IPA_BITS {
            return Err(Stage2Error::IpaSizeTooSmall {
                ipa_bits,
                min_bits: MIN_IPA_BITS,
            });
        }
        if ipa_bits > pa_limit_bits {
            return Err(Stage2Error::IpaSizeAboveLimit {
                ipa_bits,
                limit_bits: pa_limit_bits,
            });
        }
        let start_level = start_level_for(ipa_bits);
        let start_bits = ipa_bits - level_shift(start_level);
        let root_tables = 1 << start_bits.saturating_sub(BITS_PER_LEVEL);
        Ok(Self {
            ipa_bits,
            pa_limit_bits,
            start_level,
            root_tables,
            vmid_bits: VmidBits::Eight,
        })
    }

    /// The same geometry with VMIDs of width `vmid_bits` (8 unless set).
    #[must_use]
    pub const fn with_vmid_bits(self, vmid_bits: VmidBits) -> Self {
        Self { vmid_bits, ..self }
    }

    /// The VMID width (`VTCR_EL2.VS`).
    #[must_use]
    pub const fn vmid_bits(&self) -> VmidBits {
        self.vmid_bits
    }

    /// The VM IPA size `S` in bits.
    #[must_use]
    pub const fn ipa_bits(&self) -> u32 {
        self.ipa_bits
    }

    /// The output size limit `L` in bits (`VTCR_EL2.PS`).
    #[must_use]
    pub const fn pa_limit_bits(&self) -> u32 {
        self.pa_limit_bits
    }

    /// The lookup level at which a walk starts (Arm ARM numbering, 0..=2 here).
    #[must_use]
    pub const fn start_level(&self) -> u8 {
        self.start_level
    }

    /// How many 4 KiB tables are concatenated at the start level (1..=16); the root is that many
    /// contiguous frames, aligned to their total size.
    #[must_use]
    pub const fn root_tables(&self) -> u32 {
        self.root_tables
    }

    /// The first IPA beyond the VM's IPA space, `2^S`.
    #[must_use]
    pub const fn ipa_end(&self) -> u64 {
        1 << self.ipa_bits
    }

    /// `VTCR_EL2.T0SZ`: 64 − S.
    #[must_use]
    pub const fn t0sz(&self) -> u64 {
        64 - self.ipa_bits as u64
    }

    /// `VTCR_EL2.SL0` for the 4K granule: 0b00 = level 2, 0b01 = level 1, 0b10 = level 0.
    #[must_use]
    pub const fn sl0(&self) -> u64 {
        2 - self.start_level as u64
    }

    /// `VTCR_EL2.PS`, the `PARange` encoding of `L`.
    #[must_use]
    pub fn ps(&self) -> u64 {
        let encoding = PARANGE_BITS.iter().position(|&b| b == self.pa_limit_bits);
        encoding.expect("Geometry::new accepts only encodable PA limits") as u64
    }

    /// The `VTCR_EL2` value: `T0SZ`, `SL0`, 4K granule (`TG0`), table walks Inner Shareable
    /// Write-Back Write-Allocate (`SH0`, `IRGN0`, `ORGN0`), `PS` from `L`, `VS` from the VMID
    /// width, no hardware access-flag or dirty management (`HA` = `HD` = 0) and bit 31 RES1.
    #[must_use]
    pub fn vtcr_el2(&self) -> u64 {
        let vs = match self.vmid_bits {
            VmidBits::Eight => 0,
            VmidBits::Sixteen => vtcr::VS,
        };
        vtcr::RES1
            | vs
            | self.t0sz() << vtcr::T0SZ_SHIFT
            | self.sl0() << vtcr::SL0_SHIFT
            | vtcr::RGN_WBWA << vtcr::IRGN0_SHIFT
            | vtcr::RGN_WBWA << vtcr::ORGN0_SHIFT
            | vtcr::SH_INNER << vtcr::SH0_SHIFT
            | vtcr::TG0_4K << vtcr::TG0_SHIFT
            | self.ps() << vtcr::PS_SHIFT
    }
}

/// The start level with the fewest levels whose initial lookup resolves at most 9 + 4 bits
/// (16 concatenated tables), i.e. `AArch64.S2InconsistentSL()` is false for it. For S ≤ 48 this
/// is never level 3 (which needs FEAT_TTST and S ≤ 25).
const fn start_level_for(ipa_bits: u32) -> u8 {
    let max_start_bits = BITS_PER_LEVEL + MAX_CONCATENATED_TABLES.trailing_zeros();
    let mut level = LAST_LEVEL - 1;
    while ipa_bits > level_shift(level) + max_start_bits {
        level -= 1;
    }
    level
}

/// The `VTTBR_EL2` value for a VM: `VMID` from bit 48 (bits [55:48] hold an 8-bit VMID, and
/// with `VTCR_EL2.VS` = 1 bits [63:56] the upper half of a 16-bit one; a VMID above 255 needs
/// that), `BADDR` = the root (the first of the concatenated start tables, aligned to their
/// total size), `CnP` = 0.
#[must_use]
pub const fn vttbr_el2(vmid: u16, root: Pa) -> u64 {
    (vmid as u64) << vttbr::VMID_SHIFT | (root.0 & vttbr::BADDR_MASK)
}

#[cfg(test)]
mod tests;
