//! `VIRTIO_F_ACCESS_PLATFORM` (virtio 1.2 §6: the device's DMA goes through the platform's
//! IOMMU, here the SMMU, and the addresses the driver gives are the guest's physical ones).
//! QEMU's virtio-pci devices with `iommu_platform=on` offer it, and a device offering it "MAY
//! fail to operate further" unless the driver accepts it (§6.1). `virtio-drivers` 0.12's block
//! driver does not list it among its features; rather than fork the crate, [`AccessPlatform`]
//! wraps its transport and accepts the feature when the device offers it — true of this
//! guest, whose DMA addresses are its IPAs — and passes everything else through.
//!
//! Also here: the device status as the guest reads it itself, from the virtio common
//! configuration structure (virtio 1.2 §4.1.4.3), while the driver owns the transport.

use core::sync::atomic::{AtomicUsize, Ordering};
use virtio_drivers::transport::pci::bus::{
    Cam, ConfigurationAccess, DeviceFunction, MmioCam, PciRoot,
};
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{PhysAddr, Result};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// `VIRTIO_F_ACCESS_PLATFORM`, feature bit 33.
pub const ACCESS_PLATFORM: u64 = 1 << 33;

/// A transport whose driver accepts `VIRTIO_F_ACCESS_PLATFORM` when the device offers it.
pub struct AccessPlatform<T> {
    inner: T,
    offered: bool,
}

impl<T: Transport> AccessPlatform<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            offered: false,
        }
    }
}

impl<T: Transport> Transport for AccessPlatform<T> {
    fn device_type(&self) -> DeviceType {
        self.inner.device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        let features = self.inner.read_device_features();
        self.offered = features & ACCESS_PLATFORM != 0;
        features
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        let accepted = if self.offered { ACCESS_PLATFORM } else { 0 };
        self.inner.write_driver_features(driver_features | accepted);
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.inner.max_queue_size(queue)
    }
    fn notify(&mut self, queue: u16) {
        self.inner.notify(queue);
    }
    fn get_status(&self) -> DeviceStatus {
        self.inner.get_status()
    }
    fn set_status(&mut self, status: DeviceStatus) {
        self.inner.set_status(status);
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.inner.set_guest_page_size(guest_page_size);
    }
    fn requires_legacy_layout(&self) -> bool {
        self.inner.requires_legacy_layout()
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.inner
            .queue_set(queue, size, descriptors, driver_area, device_area);
    }
    fn queue_unset(&mut self, queue: u16) {
        self.inner.queue_unset(queue);
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.inner.queue_used(queue)
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.inner.ack_interrupt()
    }
    fn read_config_generation(&self) -> u32 {
        self.inner.read_config_generation()
    }
    fn read_config_space<V: FromBytes + IntoBytes>(&self, offset: usize) -> Result<V> {
        self.inner.read_config_space(offset)
    }
    fn write_config_space<V: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: V,
    ) -> Result<()> {
        self.inner.write_config_space(offset, value)
    }
}

/// The address of the device's common configuration structure, once found.
static COMMON_CFG: AtomicUsize = AtomicUsize::new(0);
/// `device_status` in the common configuration structure (§4.1.4.3).
const DEVICE_STATUS: usize = 0x14;
/// The vendor-specific capability ID, and `VIRTIO_PCI_CAP_COMMON_CFG` (§4.1.4).
const CAP_VENDOR: u8 = 0x09;
const COMMON_CFG_TYPE: u32 = 1;

/// Finds the common configuration structure of `function` (its BARs at `bars`) from its
/// virtio capabilities: `cfg_type` (byte 3), `bar` (byte 4), `offset` (bytes 8..12).
pub fn find_common_cfg<C: ConfigurationAccess>(
    root: &PciRoot<C>,
    function: DeviceFunction,
    bars: &[u64; 6],
) {
    // SAFETY: the ECAM window `main` gave the root; only configuration reads, which have no
    // side effect, are made through this second handle.
    let cam = unsafe { MmioCam::new(crate::ECAM as *mut u8, Cam::Ecam) };
    for cap in root.capabilities(function) {
        if cap.id != CAP_VENDOR {
            continue;
        }
        let word0 = cam.read_word(function, cap.offset);
        let bar = cam.read_word(function, cap.offset + 4) & 0xff;
        let offset = cam.read_word(function, cap.offset + 8);
        if word0 >> 24 == COMMON_CFG_TYPE {
            let base = bars[bar as usize % 6] + u64::from(offset);
            COMMON_CFG.store(base as usize, Ordering::Relaxed);
        }
    }
}

/// The device status the device reports now (empty before the structure was found).
pub fn status() -> DeviceStatus {
    let base = COMMON_CFG.load(Ordering::Relaxed);
    if base == 0 {
        return DeviceStatus::empty();
    }
    // SAFETY: `device_status` of the common configuration structure, in a BAR the guest placed
    // and enabled; reading it has no side effect.
    let status = unsafe { core::ptr::read_volatile((base + DEVICE_STATUS) as *const u8) };
    DeviceStatus::from_bits_truncate(status.into())
}
