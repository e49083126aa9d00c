//! A VM's RAM as Moat backs it: each region's IPA range and the machine memory behind it,
//! which Moat's EL2 identity map reaches.

use moat_arm::addr::{Ipa, Pa};

/// One RAM region of a VM and the machine memory behind it.
#[derive(Clone, Copy, Debug)]
pub struct Backing {
    /// The region's first IPA.
    pub ipa: Ipa,
    /// The machine address behind it.
    pub pa: Pa,
    /// Length in bytes.
    pub size: u64,
}

impl Backing {
    /// The machine address of `ipa`, when `len` bytes from it lie inside this region.
    pub fn pa_of(&self, ipa: Ipa, len: u64) -> Option<u64> {
        let offset = ipa.0.checked_sub(self.ipa.0)?;
        (offset.checked_add(len)? <= self.size).then_some(self.pa.0 + offset)
    }
}
