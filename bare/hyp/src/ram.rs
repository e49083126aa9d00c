//! A VM's RAM as Moat backs it: each region's IPA range and the machine memory behind it,
//! which Moat's EL2 identity map reaches.

use moat_arm::addr::{Ipa, Pa};
use moat_devices::virtio_net::{GuestMemory, OutsideRam};

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
        // Lazily: `offset` may be anything a guest's descriptor names until it is known to
        // lie inside the region.
        (offset.checked_add(len)? <= self.size).then(|| self.pa.0 + offset)
    }
}

/// A VM's RAM as its devices reach it (`moat_devices::virtio_net::GuestMemory`): every access
/// lies wholly inside one of the VM's own regions, or is refused without touching anything.
/// Moat copies through its identity map; no other VM's memory, nor Moat's, is reachable.
pub struct VmRam<'a>(pub &'a [Backing]);

impl VmRam<'_> {
    /// The machine address of `[ipa, ipa + len)`, when it lies in one of the VM's regions.
    fn pa(&self, ipa: u64, len: u64) -> Result<u64, OutsideRam> {
        let found = self.0.iter().find_map(|b| b.pa_of(Ipa(ipa), len));
        found.ok_or(OutsideRam)
    }
}

impl GuestMemory for VmRam<'_> {
    fn read(&self, ipa: u64, buf: &mut [u8]) -> Result<(), OutsideRam> {
        let pa = self.pa(ipa, buf.len() as u64)?;
        // SAFETY: `pa` and the `buf.len()` bytes after it are the VM's own backing memory
        // (`pa_of` checked the whole range), identity-mapped Normal RAM that only this VM's
        // guest writes; `buf` is Moat's own (heap or stack), so the ranges do not overlap. A
        // guest writing the bytes at the same time only changes what is read.
        unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&mut self, ipa: u64, data: &[u8]) -> Result<(), OutsideRam> {
        let pa = self.pa(ipa, data.len() as u64)?;
        // SAFETY: as in `read`: the destination is wholly the VM's own backing memory, which
        // holds no Rust object of Moat's, and `data` is Moat's own.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), pa as *mut u8, data.len()) };
        Ok(())
    }

    fn check(&self, ipa: u64, len: u64) -> Result<(), OutsideRam> {
        self.pa(ipa, len).map(|_| ())
    }
}
