//! Global errors (IHI 0070, 6.3.19 `SMMU_GERROR`, 6.3.20 `SMMU_GERRORN`): an error is active
//! while its bit differs between the two registers; software acknowledges it by toggling
//! the `GERRORN` bit to match.

use core::fmt;

/// The active global errors: `SMMU_GERROR` XOR `SMMU_GERRORN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalErrors(pub u32);

impl GlobalErrors {
    /// `CMDQ_ERR`, bit [0]: the command queue stopped on an error (`SMMU_CMDQ_CONS.ERR`).
    pub const CMDQ_ERR: u32 = 1 << 0;
    /// `EVENTQ_ABT_ERR`, bit [2]: a write to the event queue was aborted.
    pub const EVENTQ_ABT_ERR: u32 = 1 << 2;
    /// `PRIQ_ABT_ERR`, bit [3].
    pub const PRIQ_ABT_ERR: u32 = 1 << 3;
    /// `MSI_CMDQ_ABT_ERR`, bit [4].
    pub const MSI_CMDQ_ABT_ERR: u32 = 1 << 4;
    /// `MSI_EVENTQ_ABT_ERR`, bit [5].
    pub const MSI_EVENTQ_ABT_ERR: u32 = 1 << 5;
    /// `MSI_PRIQ_ABT_ERR`, bit [6].
    pub const MSI_PRIQ_ABT_ERR: u32 = 1 << 6;
    /// `MSI_GERROR_ABT_ERR`, bit [7].
    pub const MSI_GERROR_ABT_ERR: u32 = 1 << 7;
    /// `SFM_ERR`, bit [8]: the SMMU entered Service Failure Mode and terminates all traffic.
    pub const SFM_ERR: u32 = 1 << 8;
    /// `CMDQP_ERR`, bit [9].
    pub const CMDQP_ERR: u32 = 1 << 9;
    /// `DPT_ERR`, bit [10].
    pub const DPT_ERR: u32 = 1 << 10;

    const NAMES: [(u32, &'static str); 10] = [
        (Self::CMDQ_ERR, "CMDQ_ERR"),
        (Self::EVENTQ_ABT_ERR, "EVENTQ_ABT_ERR"),
        (Self::PRIQ_ABT_ERR, "PRIQ_ABT_ERR"),
        (Self::MSI_CMDQ_ABT_ERR, "MSI_CMDQ_ABT_ERR"),
        (Self::MSI_EVENTQ_ABT_ERR, "MSI_EVENTQ_ABT_ERR"),
        (Self::MSI_PRIQ_ABT_ERR, "MSI_PRIQ_ABT_ERR"),
        (Self::MSI_GERROR_ABT_ERR, "MSI_GERROR_ABT_ERR"),
        (Self::SFM_ERR, "SFM_ERR"),
        (Self::CMDQP_ERR, "CMDQP_ERR"),
        (Self::DPT_ERR, "DPT_ERR"),
    ];

    /// The errors active given the two registers.
    #[must_use]
    pub const fn active(gerror: u32, gerrorn: u32) -> Self {
        Self(gerror ^ gerrorn)
    }

    /// The `SMMU_GERRORN` value that acknowledges every active error.
    #[must_use]
    pub const fn acknowledge(gerror: u32) -> u32 {
        gerror
    }

    /// Whether `bit` is active.
    #[must_use]
    pub const fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// The active errors by name, `|`-separated; `none` when there are none.
impl fmt::Display for GlobalErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (bit, name) in Self::NAMES {
            if self.has(bit) {
                f.write_str(if first { "" } else { "|" })?;
                f.write_str(name)?;
                first = false;
            }
        }
        let unknown = self.0 & !Self::NAMES.iter().fold(0, |m, (b, _)| m | b);
        if unknown != 0 {
            write!(f, "{}{unknown:#x}", if first { "" } else { "|" })?;
        } else if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}
