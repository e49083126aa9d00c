//! The one error type of the stage-2 crate: hypervisor set-up and mapping mistakes, each with the
//! values that make it a mistake, so that the message alone says what to fix.

use core::fmt;

use moat_arm::addr::{Ipa, Pa};

/// Why a stage-2 geometry, table or mapping request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage2Error {
    /// The VM IPA size is below the smallest one Moat offers (32 bits).
    IpaSizeTooSmall {
        /// The requested VM IPA size `S`.
        ipa_bits: u32,
        /// The smallest IPA size accepted.
        min_bits: u32,
    },
    /// The VM IPA size is above the IPA limit `L` of this machine (SPEC §1).
    IpaSizeAboveLimit {
        /// The requested VM IPA size `S`.
        ipa_bits: u32,
        /// The IPA limit `L`.
        limit_bits: u32,
    },
    /// The IPA limit is not a size `VTCR_EL2.PS` can encode at or below 48 bits (4K granule
    /// without `VTCR_EL2.DS`).
    UnsupportedPaLimit {
        /// The limit that was given.
        pa_limit_bits: u32,
    },
    /// A CPU reported an `ID_AA64MMFR0_EL1.PARange` value the Arm ARM does not define.
    UnknownParange {
        /// Index of the CPU in the list that was given.
        cpu: usize,
        /// The reserved `PARange` field value.
        parange: u8,
    },
    /// No CPU's `PARange` was given, so there is no limit to compute.
    NoCpus,
    /// The VMID does not fit the VMID width (`VTCR_EL2.VS`) of the geometry.
    VmidTooLarge {
        /// The VMID that was given.
        vmid: u16,
        /// The largest VMID accepted.
        max: u16,
    },
    /// An IPA range does not start or end on a 4 KiB page boundary.
    MisalignedRange {
        /// Start of the range.
        ipa: Ipa,
        /// Length of the range in bytes.
        size: u64,
    },
    /// An output address does not start on a 4 KiB page boundary.
    MisalignedPa {
        /// The output address.
        pa: Pa,
    },
    /// An IPA range reaches at or beyond `2^S`, outside the VM's IPA space.
    IpaRangeOutsideVm {
        /// Start of the range.
        ipa: Ipa,
        /// Length of the range in bytes.
        size: u64,
        /// The VM IPA size `S`.
        ipa_bits: u32,
    },
    /// An output range reaches at or beyond `2^L`, beyond what `VTCR_EL2.PS` lets stage 2 output.
    PaRangeAboveLimit {
        /// Start of the output range.
        pa: Pa,
        /// Length of the range in bytes.
        size: u64,
        /// The output size limit in bits.
        pa_limit_bits: u32,
    },
    /// The frame allocator had no table frame left; the operation stopped at `ipa`.
    OutOfTableMemory {
        /// The IPA whose translation needed the table.
        ipa: Ipa,
    },
}

impl fmt::Display for Stage2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IpaSizeTooSmall { ipa_bits, min_bits } => {
                write!(
                    f,
                    "VM IPA size {ipa_bits} bits is below the minimum of {min_bits} bits"
                )
            }
            Self::IpaSizeAboveLimit {
                ipa_bits,
                limit_bits,
            } => write!(
                f,
                "VM IPA size {ipa_bits} bits is above this machine's IPA limit of {limit_bits} bits"
            ),
            Self::UnsupportedPaLimit { pa_limit_bits } => write!(
                f,
                "IPA limit {pa_limit_bits} bits is not a VTCR_EL2.PS size at or below 48 bits"
            ),
            Self::UnknownParange { cpu, parange } => {
                write!(
                    f,
                    "CPU {cpu} reports reserved ID_AA64MMFR0_EL1.PARange {parange:#x}"
                )
            }
            Self::NoCpus => write!(f, "no CPU PARange given"),
            Self::VmidTooLarge { vmid, max } => {
                write!(
                    f,
                    "VMID {vmid} is above the maximum {max} of the VMID width"
                )
            }
            Self::MisalignedRange { ipa, size } => {
                write!(f, "IPA range {ipa}+{size:#x} is not 4 KiB aligned")
            }
            Self::MisalignedPa { pa } => write!(f, "output address {pa} is not 4 KiB aligned"),
            Self::IpaRangeOutsideVm {
                ipa,
                size,
                ipa_bits,
            } => write!(
                f,
                "IPA range {ipa}+{size:#x} reaches beyond the VM's {ipa_bits}-bit IPA space"
            ),
            Self::PaRangeAboveLimit {
                pa,
                size,
                pa_limit_bits,
            } => write!(
                f,
                "output range {pa}+{size:#x} reaches beyond the {pa_limit_bits}-bit PA limit"
            ),
            Self::OutOfTableMemory { ipa } => {
                write!(
                    f,
                    "no frame left for a stage-2 table while mapping IPA {ipa}"
                )
            }
        }
    }
}

impl core::error::Error for Stage2Error {}
