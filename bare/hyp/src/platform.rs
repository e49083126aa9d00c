//! The device tree the loader passed, read by `moat-platform` (memory, console, interrupt
//! controller, timer, PSCI conduit, CPUs, the initrd with the VM bundle). This module only
//! turns the address in `x0` into the slice that crate parses.

pub use moat_platform::{
    Conduit, Gic, GicV2, MAX_CPUS, PhysRange, Platform, PlatformError, SelfTest, UartKind,
};

/// Reads the device tree at physical address `dtb`.
///
/// # Errors
///
/// [`PlatformError::BadDeviceTree`] when no device tree starts there.
///
/// # Safety
///
/// `dtb` must be the address the loader passed in `x0`: readable memory holding a device tree
/// (or nothing; the header is checked before more is read) that stays untouched for Moat's
/// lifetime.
pub unsafe fn from_device_tree(dtb: u64) -> Result<Platform, PlatformError> {
    // SAFETY: the caller guarantees the header's 8 bytes are readable (the loader put a tree
    // there, and every tree is longer than its 40-byte header).
    let header = unsafe { &*(dtb as *const [u8; 8]) };
    let size = moat_platform::device_tree_size(header).ok_or(PlatformError::BadDeviceTree(dtb))?;
    // SAFETY: the header's magic matched, so `totalsize` bytes from `dtb` are the loader's
    // device tree, readable and left untouched for Moat's lifetime (the caller's guarantee).
    let bytes = unsafe { core::slice::from_raw_parts(dtb as *const u8, size) };
    Platform::parse(bytes, dtb)
}
