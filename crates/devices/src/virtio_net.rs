//! A virtio network device behind a virtio-mmio window (virtio 1.2, §4.2 "Virtio Over MMIO",
//! transport version 2; §5.1 "Network Device"), the end of a link between two VMs.
//!
//! The model is the device side of two split virtqueues (§2.7): `receiveq1` (queue 0) and
//! `transmitq1` (queue 1). It offers only `VIRTIO_F_VERSION_1`, `VIRTIO_NET_F_MAC` and
//! `VIRTIO_NET_F_STATUS`: no offloads, no mergeable receive buffers, no indirect descriptors, no
//! event index, so every frame is one 12-byte `virtio_net_hdr` plus an Ethernet frame of at most
//! [`MAX_FRAME`] bytes, and every receive buffer a driver posts must hold one whole frame.
//!
//! Guest memory is reached only through [`GuestMemory`], which the hypervisor implements over
//! the VM's own RAM: an address or length outside it is refused there. Whatever a driver gives
//! that the device cannot use (an address outside RAM, a length that overflows, a loop in a
//! descriptor chain, a queue size that is not a power of two, a notification before the queue
//! is ready, a feature it did not offer) sets `DEVICE_NEEDS_RESET` in `Status` and raises a
//! configuration-change interrupt (§2.1.2); the device then does nothing more until the driver
//! resets it by writing 0 to `Status`.
//!
//! Transmitted frames are returned, header stripped, as an effect ([`VirtioEffects::frames`]);
//! the hypervisor carries them to the link's other end, whose [`VirtioNet::deliver`] puts one
//! into its receive queue, or drops it when the driver posted no buffer, as a NIC would.
//!
//! The layouts' constants (status bits, feature bits, descriptor flags, the header's size, the
//! device ID) come from the `virtio-spec` crate. Its `mmio` module is a driver's view (volatile
//! pointers to a mapped register block), which a device model serving offsets cannot use, so
//! the register offsets of §4.2.2 are listed here.

use crate::Access;
use alloc::vec;
use alloc::vec::Vec;
use virtio_spec::net::{self, Hdr};
use virtio_spec::virtq::DescF;
use virtio_spec::{DeviceStatus, Id};

/// Register offsets of the virtio-mmio transport, version 2 (§4.2.2, "MMIO Device Register
/// Layout").
mod reg {
    pub const MAGIC_VALUE: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    /// `SHMLenLow`..`SHMBaseHigh`: a device without shared memory regions reads all ones.
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}

/// `MagicValue`: "virt" in little-endian.
const MAGIC: u32 = 0x7472_6976;
/// The transport version this device implements (virtio 1.x, non-legacy).
const VERSION: u32 = 2;
/// `VendorID`: "MOAT" as ASCII, Moat's own (the spec leaves the value to the device).
pub const VENDOR_ID: u32 = u32::from_le_bytes(*b"MOAT");

/// `InterruptStatus` bits (§4.2.2): a used buffer notification, a configuration change.
const INT_VRING: u32 = 1 << 0;
const INT_CONFIG: u32 = 1 << 1;

/// The largest queue this device serves (`QueueNumMax`).
pub const QUEUE_NUM_MAX: u16 = 256;
/// The receive queue's index (§5.1.2, `receiveq1`).
pub const RECEIVEQ: usize = 0;
/// The transmit queue's index (§5.1.2, `transmitq1`).
pub const TRANSMITQ: usize = 1;
/// The size of `struct virtio_net_hdr` when `VIRTIO_F_VERSION_1` is negotiated (§5.1.6).
pub const HDR_LEN: usize = core::mem::size_of::<Hdr>();
/// The largest Ethernet frame without the FCS this device moves: a 1500-byte payload, the
/// 14-byte header and a VLAN tag (Linux's `GOOD_PACKET_LEN`). Larger transmissions are dropped.
pub const MAX_FRAME: usize = 1518;

/// Size of one split-virtqueue descriptor (`struct virtq_desc`, §2.7.5).
const DESC_SIZE: u64 = 16;
/// `VIRTQ_AVAIL_F_NO_INTERRUPT` in the driver area's `flags` (§2.7.7).
const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Guest memory as a device may reach it: the hypervisor implements it over the VM's own RAM.
pub trait GuestMemory {
    /// Reads `buf.len()` bytes at intermediate physical address `ipa`.
    ///
    /// # Errors
    ///
    /// [`OutsideRam`] when any byte of `[ipa, ipa + buf.len())` is not in the VM's RAM; nothing
    /// is read then.
    fn read(&self, ipa: u64, buf: &mut [u8]) -> Result<(), OutsideRam>;

    /// Writes `data` at intermediate physical address `ipa`.
    ///
    /// # Errors
    ///
    /// [`OutsideRam`] when any byte of `[ipa, ipa + data.len())` is not in the VM's RAM;
    /// nothing is written then.
    fn write(&mut self, ipa: u64, data: &[u8]) -> Result<(), OutsideRam>;

    /// Whether `[ipa, ipa + len)` is wholly in the VM's RAM.
    ///
    /// # Errors
    ///
    /// [`OutsideRam`] when it is not (or its end is not representable).
    fn check(&self, ipa: u64, len: u64) -> Result<(), OutsideRam>;
}

/// An access that would leave the VM's RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutsideRam;

/// What the hypervisor must carry out after the device served an access or a delivery.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct VirtioEffects {
    /// The new level of the device's interrupt line, when it changed.
    pub irq_level: Option<bool>,
    /// Frames the driver transmitted (Ethernet frames, `virtio_net_hdr` stripped), in order.
    pub frames: Vec<Vec<u8>>,
}

/// A driver error that makes the device need a reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NeedsReset;

impl From<OutsideRam> for NeedsReset {
    fn from(_: OutsideRam) -> Self {
        Self
    }
}

/// One split virtqueue's registers and the device's position in it.
#[derive(Clone, Copy, Debug, Default)]
struct Queue {
    num: u16,
    ready: bool,
    desc: u64,
    driver: u64,
    device: u64,
    /// The next available-ring entry the device will take (§2.7.13, `last_avail_idx`).
    last_avail: u16,
    /// The used ring's `idx`, as the device last wrote it.
    used_idx: u16,
}

/// One descriptor of a chain (`struct virtq_desc`).
#[derive(Clone, Copy, Debug)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

/// The device.
#[derive(Clone, Debug)]
pub struct VirtioNet {
    mac: [u8; 6],
    status: u8,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    queues: [Queue; 2],
    interrupt_status: u32,
    /// The line level last reported, so only changes become effects.
    level: bool,
}

/// The features this device offers: `VIRTIO_F_VERSION_1`, `VIRTIO_NET_F_MAC`,
/// `VIRTIO_NET_F_STATUS`.
fn device_features() -> u64 {
    let bits = net::F::VERSION_1 | net::F::MAC | net::F::STATUS;
    // Every offered bit is below 64 (VERSION_1 is bit 32).
    u64::try_from(bits.bits().to_ne()).expect("offered features fit in 64 bits")
}

impl VirtioNet {
    /// A device in its reset state whose configuration space reports `mac`.
    #[must_use]
    pub fn new(mac: [u8; 6]) -> Self {
        Self {
            mac,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            queues: [Queue::default(); 2],
            interrupt_status: 0,
            level: false,
        }
    }

    /// The MAC address its configuration space reports.
    #[must_use]
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The driver-visible `Status`.
    #[must_use]
    pub fn status(&self) -> u8 {
        self.status
    }

    /// Whether the device stopped on a driver error (`DEVICE_NEEDS_RESET`).
    #[must_use]
    pub fn needs_reset(&self) -> bool {
        self.status & DeviceStatus::DEVICE_NEEDS_RESET.bits() != 0
    }

    /// Resets the device (a `Status` write of 0, or the VM's reset): the line drops.
    pub fn reset(&mut self) -> VirtioEffects {
        self.reset_state();
        self.line()
    }

    /// Back to the reset state, the reported line level kept so that its drop is an effect.
    fn reset_state(&mut self) {
        let level = self.level;
        *self = Self::new(self.mac);
        self.level = level;
    }

    /// One access to the window; a notification of the transmit queue processes it through
    /// `mem`.
    pub fn access(&mut self, access: Access, mem: &mut impl GuestMemory) -> (u64, VirtioEffects) {
        match access.write {
            None => (self.read(access) & access.size_mask(), self.line()),
            Some(value) => {
                let value32 = u32::try_from(value & 0xFFFF_FFFF).unwrap_or_default();
                let frames = self.write(access.offset, value32, mem);
                let mut effects = self.line();
                effects.frames = frames;
                (0, effects)
            }
        }
    }

    /// Puts `frame` into the receive queue through `mem`; returns whether it was delivered.
    /// Without a usable posted buffer (the driver not ready, none posted, the device needing
    /// reset) the frame is dropped.
    pub fn deliver(&mut self, frame: &[u8], mem: &mut impl GuestMemory) -> (bool, VirtioEffects) {
        let delivered = if self.running() && self.queues[RECEIVEQ].ready {
            match self.receive(frame, mem) {
                Ok(delivered) => delivered,
                Err(NeedsReset) => {
                    self.fail();
                    false
                }
            }
        } else {
            false
        };
        (delivered, self.line())
    }

    fn read(&self, access: Access) -> u64 {
        if access.offset >= reg::CONFIG {
            return self.config_read(access.offset - reg::CONFIG, access.size);
        }
        let queue = self.selected().copied().unwrap_or_default();
        let value: u32 = match access.offset {
            reg::MAGIC_VALUE => MAGIC,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => u32::from(u8::from(Id::Net)),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => device_features() as u32,
                1 => (device_features() >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX if self.selected().is_some() => u32::from(QUEUE_NUM_MAX),
            reg::QUEUE_READY => u32::from(queue.ready),
            reg::INTERRUPT_STATUS => self.interrupt_status,
            reg::STATUS => u32::from(self.status),
            reg::SHM_LEN_LOW..=reg::SHM_BASE_HIGH => u32::MAX,
            // The configuration space never changes, so its generation stays 0.
            reg::CONFIG_GENERATION => 0,
            // Write-only and reserved registers read as zero.
            _ => 0,
        };
        u64::from(value)
    }

    /// `struct virtio_net_config` (§5.1.4): `mac`, then `status` (`VIRTIO_NET_S_LINK_UP`: the
    /// link is always up, its peer being Moat).
    fn config_read(&self, offset: u64, size: u8) -> u64 {
        let mut config = [0u8; 8];
        config[..6].copy_from_slice(&self.mac);
        config[6..8].copy_from_slice(&net::S::LINK_UP.bits().to_ne().to_le_bytes());
        (0..u64::from(size))
            .map(|i| {
                usize::try_from(offset + i)
                    .ok()
                    .and_then(|at| config.get(at))
                    .copied()
                    .unwrap_or(0)
            })
            .rev()
            .fold(0, |value, byte| value << 8 | u64::from(byte))
    }

    fn write(&mut self, offset: u64, value: u32, mem: &mut impl GuestMemory) -> Vec<Vec<u8>> {
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES => self.write_driver_features(value),
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NUM => self.with_idle_queue(|q| q.num = value as u16),
            reg::QUEUE_DESC_LOW => self.with_idle_queue(|q| set_low(&mut q.desc, value)),
            reg::QUEUE_DESC_HIGH => self.with_idle_queue(|q| set_high(&mut q.desc, value)),
            reg::QUEUE_DRIVER_LOW => self.with_idle_queue(|q| set_low(&mut q.driver, value)),
            reg::QUEUE_DRIVER_HIGH => self.with_idle_queue(|q| set_high(&mut q.driver, value)),
            reg::QUEUE_DEVICE_LOW => self.with_idle_queue(|q| set_low(&mut q.device, value)),
            reg::QUEUE_DEVICE_HIGH => self.with_idle_queue(|q| set_high(&mut q.device, value)),
            reg::QUEUE_READY => self.write_queue_ready(value),
            reg::QUEUE_NOTIFY => return self.notify(value, mem),
            reg::INTERRUPT_ACK => self.interrupt_status &= !value,
            reg::STATUS => self.write_status(value),
            // Read-only registers and the read-only configuration space ignore writes.
            _ => {}
        }
        Vec::new()
    }

    fn write_driver_features(&mut self, value: u32) {
        // §3.1.1: features are written before FEATURES_OK; later writes are ignored.
        if self.status & DeviceStatus::FEATURES_OK.bits() != 0 {
            return;
        }
        match self.driver_features_sel {
            0 => set_low(&mut self.driver_features, value),
            1 => set_high(&mut self.driver_features, value),
            _ => {}
        }
    }

    /// §2.1.2, §3.1.1: 0 resets; `FEATURES_OK` stays set only when the driver accepted a subset
    /// of the offered features that includes `VIRTIO_F_VERSION_1`; `DEVICE_NEEDS_RESET` is the
    /// device's and stays.
    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset_state();
            return;
        }
        let mut status = (value & 0xFF) as u8;
        let features_ok = DeviceStatus::FEATURES_OK.bits();
        let version_1 = u64::try_from(net::F::VERSION_1.bits().to_ne()).unwrap_or_default();
        let acceptable =
            self.driver_features & !device_features() == 0 && self.driver_features & version_1 != 0;
        if status & features_ok != 0 && !acceptable {
            status &= !features_ok;
        }
        let kept = self.status & DeviceStatus::DEVICE_NEEDS_RESET.bits();
        self.status = status & !DeviceStatus::DEVICE_NEEDS_RESET.bits() | kept;
    }

    /// `QueueReady` = 1 checks the queue's layout (§2.7: a power-of-two size no larger than
    /// `QueueNumMax`; §2.7.5-2.7.8: areas aligned to 16, 2 and 4 bytes).
    fn write_queue_ready(&mut self, value: u32) {
        let Some(queue) = self.selected_mut() else {
            return;
        };
        if value == 0 {
            queue.ready = false;
            return;
        }
        let valid = queue.num.is_power_of_two()
            && queue.num <= QUEUE_NUM_MAX
            && queue.desc % 16 == 0
            && queue.driver % 2 == 0
            && queue.device % 4 == 0;
        if valid {
            queue.ready = true;
        } else {
            self.fail();
        }
    }

    /// `QueueNotify`: the transmit queue is processed; the receive queue's buffers are taken
    /// as frames arrive. A notification for a queue that is not ready, or before `DRIVER_OK`,
    /// is a driver error.
    fn notify(&mut self, queue: u32, mem: &mut impl GuestMemory) -> Vec<Vec<u8>> {
        if self.needs_reset() {
            return Vec::new();
        }
        let ready = usize::try_from(queue)
            .ok()
            .and_then(|q| self.queues.get(q))
            .is_some_and(|q| q.ready);
        if !ready || !self.running() {
            self.fail();
            return Vec::new();
        }
        if queue as usize == RECEIVEQ {
            return Vec::new();
        }
        match self.transmit(mem) {
            Ok(frames) => frames,
            Err(NeedsReset) => {
                self.fail();
                Vec::new()
            }
        }
    }

    /// Takes every buffer the driver made available on the transmit queue when it notified
    /// (at most the queue's size: a later notification brings the rest) and returns their
    /// frames. A chain with a device-writable descriptor is a driver error; a frame shorter
    /// than the header or longer than [`MAX_FRAME`] is dropped, its buffer returned.
    fn transmit(&mut self, mem: &mut impl GuestMemory) -> Result<Vec<Vec<u8>>, NeedsReset> {
        let queue = &mut self.queues[TRANSMITQ];
        let pending = queue.pending(mem)?;
        let mut frames = Vec::new();
        for _ in 0..pending {
            let head = queue.pop(mem)?;
            let chain = queue.chain(head, mem)?;
            if chain
                .iter()
                .any(|d| d.flags & DescF::WRITE.bits().to_ne() != 0)
            {
                return Err(NeedsReset);
            }
            let total = chain_len(&chain)?;
            if (HDR_LEN..=HDR_LEN + MAX_FRAME).contains(&total) {
                let mut bytes = vec![0; total];
                let mut at = 0;
                for desc in &chain {
                    let len = desc.len as usize;
                    mem.read(desc.addr, &mut bytes[at..at + len])?;
                    at += len;
                }
                bytes.drain(..HDR_LEN);
                frames.push(bytes);
            }
            queue.push_used(head, 0, mem)?;
        }
        if pending > 0 {
            self.used_buffer_interrupt(TRANSMITQ, mem)?;
        }
        Ok(frames)
    }

    /// Writes `frame` behind a zeroed `virtio_net_hdr` (`num_buffers` = 1, §5.1.6.4) into the
    /// next available receive buffer. A buffer too small for it is returned empty and the
    /// frame dropped (§5.1.6.3.1: without `VIRTIO_NET_F_MRG_RXBUF` each buffer must hold a
    /// whole frame); a chain with a device-readable descriptor is a driver error.
    fn receive(&mut self, frame: &[u8], mem: &mut impl GuestMemory) -> Result<bool, NeedsReset> {
        let queue = &mut self.queues[RECEIVEQ];
        if queue.pending(mem)? == 0 {
            return Ok(false);
        }
        let head = queue.pop(mem)?;
        let chain = queue.chain(head, mem)?;
        if chain
            .iter()
            .any(|d| d.flags & DescF::WRITE.bits().to_ne() == 0)
        {
            return Err(NeedsReset);
        }
        let need = HDR_LEN + frame.len();
        let fits = chain_len(&chain)? >= need;
        if fits {
            let hdr = Hdr {
                num_buffers: 1.into(),
                ..Hdr::default()
            };
            let mut bytes = Vec::with_capacity(need);
            bytes.extend_from_slice(&hdr_bytes(&hdr));
            bytes.extend_from_slice(frame);
            let mut rest = &bytes[..];
            for desc in &chain {
                let (now, later) = rest.split_at(rest.len().min(desc.len as usize));
                mem.write(desc.addr, now)?;
                rest = later;
            }
        }
        let written = if fits { need as u32 } else { 0 };
        queue.push_used(head, written, mem)?;
        self.used_buffer_interrupt(RECEIVEQ, mem)?;
        Ok(fits)
    }

    /// Raises the used-buffer interrupt unless the driver suppressed it
    /// (`VIRTQ_AVAIL_F_NO_INTERRUPT`, §2.7.10).
    fn used_buffer_interrupt(
        &mut self,
        queue: usize,
        mem: &impl GuestMemory,
    ) -> Result<(), NeedsReset> {
        let flags = read_u16(mem, self.queues[queue].driver)?;
        if flags & AVAIL_F_NO_INTERRUPT == 0 {
            self.interrupt_status |= INT_VRING;
        }
        Ok(())
    }

    /// Whether the driver finished initialisation and the device has not failed.
    fn running(&self) -> bool {
        self.status & DeviceStatus::DRIVER_OK.bits() != 0 && !self.needs_reset()
    }

    /// Marks the device as needing reset and raises the configuration-change interrupt.
    fn fail(&mut self) {
        self.status |= DeviceStatus::DEVICE_NEEDS_RESET.bits();
        self.interrupt_status |= INT_CONFIG;
    }

    fn selected(&self) -> Option<&Queue> {
        self.queues.get(usize::try_from(self.queue_sel).ok()?)
    }

    fn selected_mut(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(usize::try_from(self.queue_sel).ok()?)
    }

    /// Applies `f` to the selected queue unless it is ready (§4.2.2: its registers are written
    /// only while `QueueReady` is 0).
    fn with_idle_queue(&mut self, f: impl FnOnce(&mut Queue)) {
        if let Some(queue) = self.selected_mut().filter(|q| !q.ready) {
            f(queue);
        }
    }

    /// The line follows `InterruptStatus`; a change is an effect.
    fn line(&mut self) -> VirtioEffects {
        let level = self.interrupt_status != 0;
        let changed = level != self.level;
        self.level = level;
        VirtioEffects {
            irq_level: changed.then_some(level),
            frames: Vec::new(),
        }
    }
}

impl Queue {
    /// How many buffers the driver made available since the device last looked (the driver
    /// area's `idx` less `last_avail`); more than the queue holds is a driver error.
    fn pending(&self, mem: &impl GuestMemory) -> Result<u16, NeedsReset> {
        let idx = read_u16(mem, offset(self.driver, 2)?)?;
        let pending = idx.wrapping_sub(self.last_avail);
        if pending > self.num {
            return Err(NeedsReset);
        }
        Ok(pending)
    }

    /// Takes the next available-ring entry: the head of a descriptor chain.
    fn pop(&mut self, mem: &impl GuestMemory) -> Result<u16, NeedsReset> {
        let slot = u64::from(self.last_avail % self.num);
        let head = read_u16(mem, offset(self.driver, 4 + 2 * slot)?)?;
        self.last_avail = self.last_avail.wrapping_add(1);
        Ok(head)
    }

    /// The descriptor chain starting at `head` (§2.7.5): every index below the queue size, at
    /// most the queue size of descriptors (so a loop is an error), no indirect descriptors
    /// (`VIRTIO_F_INDIRECT_DESC` is not offered), every buffer wholly in the VM's RAM, checked
    /// before any byte of the chain is used.
    fn chain(&self, head: u16, mem: &impl GuestMemory) -> Result<Vec<Desc>, NeedsReset> {
        let mut chain = Vec::new();
        let mut index = head;
        loop {
            if index >= self.num || chain.len() >= usize::from(self.num) {
                return Err(NeedsReset);
            }
            let mut raw = [0u8; DESC_SIZE as usize];
            mem.read(offset(self.desc, DESC_SIZE * u64::from(index))?, &mut raw)?;
            let desc = Desc {
                addr: u64::from_le_bytes(raw[0..8].try_into().expect("8 bytes")),
                len: u32::from_le_bytes(raw[8..12].try_into().expect("4 bytes")),
                flags: u16::from_le_bytes([raw[12], raw[13]]),
                next: u16::from_le_bytes([raw[14], raw[15]]),
            };
            if desc.flags & DescF::INDIRECT.bits().to_ne() != 0 {
                return Err(NeedsReset);
            }
            mem.check(desc.addr, u64::from(desc.len))?;
            chain.push(desc);
            if desc.flags & DescF::NEXT.bits().to_ne() == 0 {
                return Ok(chain);
            }
            index = desc.next;
        }
    }

    /// Returns chain `head` to the driver with `len` bytes written (§2.7.8): the used-ring
    /// entry first, then the used ring's `idx`.
    fn push_used(
        &mut self,
        head: u16,
        len: u32,
        mem: &mut impl GuestMemory,
    ) -> Result<(), NeedsReset> {
        let slot = u64::from(self.used_idx % self.num);
        let mut elem = [0u8; 8];
        elem[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        elem[4..].copy_from_slice(&len.to_le_bytes());
        mem.write(offset(self.device, 4 + 8 * slot)?, &elem)?;
        self.used_idx = self.used_idx.wrapping_add(1);
        mem.write(offset(self.device, 2)?, &self.used_idx.to_le_bytes())?;
        Ok(())
    }
}

/// `base + by`, an address a driver gave: one past the guest's address space is an error.
fn offset(base: u64, by: u64) -> Result<u64, NeedsReset> {
    base.checked_add(by).ok_or(NeedsReset)
}

/// The total length of a chain's buffers.
fn chain_len(chain: &[Desc]) -> Result<usize, NeedsReset> {
    chain.iter().try_fold(0usize, |total, d| {
        total.checked_add(d.len as usize).ok_or(NeedsReset)
    })
}

fn read_u16(mem: &impl GuestMemory, ipa: u64) -> Result<u16, NeedsReset> {
    let mut raw = [0u8; 2];
    mem.read(ipa, &mut raw)?;
    Ok(u16::from_le_bytes(raw))
}

/// `struct virtio_net_hdr`'s bytes (§5.1.6: little-endian fields in declaration order).
fn hdr_bytes(hdr: &Hdr) -> [u8; HDR_LEN] {
    let mut bytes = [0u8; HDR_LEN];
    bytes[0] = hdr.flags.bits();
    bytes[1] = hdr.gso_type;
    for (i, field) in [
        hdr.hdr_len,
        hdr.gso_size,
        hdr.csum_start,
        hdr.csum_offset,
        hdr.num_buffers,
    ]
    .into_iter()
    .enumerate()
    {
        bytes[2 + 2 * i..4 + 2 * i].copy_from_slice(&field.to_ne().to_le_bytes());
    }
    bytes
}

fn set_low(field: &mut u64, value: u32) {
    *field = *field & !0xFFFF_FFFF | u64::from(value);
}

fn set_high(field: &mut u64, value: u32) {
    *field = *field & 0xFFFF_FFFF | u64::from(value) << 32;
}

#[cfg(test)]
mod tests;
