//! Emulated devices: the MMIO bus and device models as pure state machines.
//!
//! A model sees only an offset into its window and returns what should happen (data for a
//! read, bytes for the console, interrupt lines to raise); the EL2 binary carries the effects
//! out, so every model is tested on the host.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bus;
pub mod console;
pub mod gic;
pub mod pl011;
pub mod virtio_net;

/// One data access to a device window, as the hypervisor decoded it from the guest's abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Offset of the access from the start of the device's window.
    pub offset: u64,
    /// Access size in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// The value written (already truncated to `size`), or `None` for a read.
    pub write: Option<u64>,
}

impl Access {
    /// A read of `size` bytes at `offset`.
    #[must_use]
    pub const fn read(offset: u64, size: u8) -> Self {
        Self {
            offset,
            size,
            write: None,
        }
    }

    /// A write of `value` (`size` bytes) at `offset`.
    #[must_use]
    pub const fn write(offset: u64, size: u8, value: u64) -> Self {
        Self {
            offset,
            size,
            write: Some(value),
        }
    }

    /// A mask of the access's width, to truncate read data to what the access returns.
    #[must_use]
    #[inline]
    pub const fn size_mask(&self) -> u64 {
        // 0xFF, 0xFFFF, 0xFFFF_FFFF for 1, 2, 4 bytes, all ones for 8 (and 0 or 16): one
        // shift, no branch. A size no access has (3, 5..7, 9..15) gets a mask of its bytes
        // modulo 8; every model refuses those sizes before it reads.
        u64::MAX >> (64u32.wrapping_sub(8 * self.size as u32) & 63)
    }
}

/// What a device access asks the hypervisor to do besides returning data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceEffects {
    /// A byte for the console.
    pub console_out: Option<u8>,
    /// The new level of the device's interrupt line, when it changed.
    pub irq_level: Option<bool>,
    /// The vCPUs whose virtual interrupt state changed (the GIC model): each must leave the
    /// guest or WFI to have its list registers synced and filled again.
    pub kick: gic::VcpuSet,
}

/// A device model behind an MMIO window.
pub trait MmioDevice {
    /// Performs one access; returns the read data (0 for a write) and the effects.
    fn access(&mut self, access: Access) -> (u64, DeviceEffects);
}

#[cfg(test)]
mod tests {
    use super::Access;

    #[test]
    fn the_size_mask_covers_the_access_bytes() {
        let mask = |size| Access::read(0, size).size_mask();
        assert_eq!(mask(1), 0xFF);
        assert_eq!(mask(2), 0xFFFF);
        assert_eq!(mask(4), 0xFFFF_FFFF);
        assert_eq!(mask(8), u64::MAX);
        // Sizes no access has: nothing is cut off.
        assert_eq!(mask(0), u64::MAX);
        assert_eq!(mask(16), u64::MAX);
    }
}
