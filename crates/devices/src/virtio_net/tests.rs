//! A driver that sets the device up as Linux's `virtio_mmio` and `virtio_net` do, over a fake
//! guest RAM, and the hostile drivers that must end in `DEVICE_NEEDS_RESET`.

use super::*;
use proptest::prelude::*;

const RAM_BASE: u64 = 0x4000_0000;
const RAM_SIZE: usize = 0x10_0000;
const QSIZE: u16 = 8;
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

const ACKNOWLEDGE: u64 = 1;
const DRIVER: u64 = 2;
const DRIVER_OK: u64 = 4;
const FEATURES_OK: u64 = 8;
const NEEDS_RESET: u8 = 64;
const VERSION_1: u64 = 1 << 32;
const F_MAC: u64 = 1 << 5;
const F_STATUS: u64 = 1 << 16;
const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;

/// A VM's RAM: refuses whatever is not wholly inside it.
struct Ram(Vec<u8>);

impl Ram {
    fn new() -> Self {
        Self(vec![0; RAM_SIZE])
    }

    fn range(&self, ipa: u64, len: usize) -> Result<core::ops::Range<usize>, OutsideRam> {
        let start = ipa.checked_sub(RAM_BASE).ok_or(OutsideRam)?;
        let start = usize::try_from(start).map_err(|_| OutsideRam)?;
        let end = start.checked_add(len).ok_or(OutsideRam)?;
        if end > self.0.len() {
            return Err(OutsideRam);
        }
        Ok(start..end)
    }

    fn put(&mut self, ipa: u64, data: &[u8]) {
        self.write(ipa, data).expect("the test writes inside RAM");
    }

    fn get(&self, ipa: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.read(ipa, &mut buf).expect("the test reads inside RAM");
        buf
    }

    fn u16_at(&self, ipa: u64) -> u16 {
        u16::from_le_bytes(self.get(ipa, 2).try_into().unwrap())
    }

    fn u32_at(&self, ipa: u64) -> u32 {
        u32::from_le_bytes(self.get(ipa, 4).try_into().unwrap())
    }
}

impl GuestMemory for Ram {
    fn read(&self, ipa: u64, buf: &mut [u8]) -> Result<(), OutsideRam> {
        let range = self.range(ipa, buf.len())?;
        buf.copy_from_slice(&self.0[range]);
        Ok(())
    }

    fn write(&mut self, ipa: u64, data: &[u8]) -> Result<(), OutsideRam> {
        let range = self.range(ipa, data.len())?;
        self.0[range].copy_from_slice(data);
        Ok(())
    }

    fn check(&self, ipa: u64, len: u64) -> Result<(), OutsideRam> {
        self.range(ipa, usize::try_from(len).map_err(|_| OutsideRam)?)
            .map(|_| ())
    }
}

/// Where queue `q`'s areas and buffers live in the fake RAM.
fn desc_area(q: usize) -> u64 {
    RAM_BASE + 0x1_0000 * (q as u64 + 1)
}
fn driver_area(q: usize) -> u64 {
    desc_area(q) + 0x1000
}
fn device_area(q: usize) -> u64 {
    desc_area(q) + 0x2000
}
fn buffer(q: usize, i: u16) -> u64 {
    RAM_BASE + 0x8_0000 + 0x1_0000 * q as u64 + 0x800 * u64::from(i)
}

/// A split-virtqueue driver for both queues.
struct Driver {
    dev: VirtioNet,
    ram: Ram,
    avail_idx: [u16; 2],
    used_seen: [u16; 2],
    next_desc: [u16; 2],
}

impl Driver {
    fn new() -> Self {
        Self {
            dev: VirtioNet::new(MAC),
            ram: Ram::new(),
            avail_idx: [0; 2],
            used_seen: [0; 2],
            next_desc: [0; 2],
        }
    }

    fn r(&mut self, offset: u64) -> u64 {
        let (value, effects) = self.dev.access(Access::read(offset, 4), &mut self.ram);
        assert!(effects.frames.is_empty());
        value
    }

    fn w(&mut self, offset: u64, value: u64) -> VirtioEffects {
        self.dev
            .access(Access::write(offset, 4, value), &mut self.ram)
            .1
    }

    fn status(&mut self) -> u8 {
        self.r(reg::STATUS) as u8
    }

    /// §3.1.1 with the features Linux's virtio_net takes from this device.
    fn negotiate(&mut self, features: u64) {
        let _ = self.w(reg::STATUS, 0);
        let _ = self.w(reg::STATUS, ACKNOWLEDGE);
        let _ = self.w(reg::STATUS, ACKNOWLEDGE | DRIVER);
        let _ = self.w(reg::DRIVER_FEATURES_SEL, 0);
        let _ = self.w(reg::DRIVER_FEATURES, features & 0xFFFF_FFFF);
        let _ = self.w(reg::DRIVER_FEATURES_SEL, 1);
        let _ = self.w(reg::DRIVER_FEATURES, features >> 32);
        let _ = self.w(reg::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
    }

    fn setup_queue(&mut self, q: usize, num: u64) {
        let _ = self.w(reg::QUEUE_SEL, q as u64);
        assert_eq!(self.r(reg::QUEUE_NUM_MAX), u64::from(QUEUE_NUM_MAX));
        assert_eq!(self.r(reg::QUEUE_READY), 0);
        let _ = self.w(reg::QUEUE_NUM, num);
        for (low, area) in [
            (reg::QUEUE_DESC_LOW, desc_area(q)),
            (reg::QUEUE_DRIVER_LOW, driver_area(q)),
            (reg::QUEUE_DEVICE_LOW, device_area(q)),
        ] {
            let _ = self.w(low, area & 0xFFFF_FFFF);
            let _ = self.w(low + 4, area >> 32);
        }
        let _ = self.w(reg::QUEUE_READY, 1);
    }

    /// A driver that reached `DRIVER_OK` with both queues of size `QSIZE`.
    fn ready() -> Self {
        let mut d = Self::new();
        d.negotiate(VERSION_1 | F_MAC | F_STATUS);
        assert_eq!(d.status(), (ACKNOWLEDGE | DRIVER | FEATURES_OK) as u8);
        d.setup_queue(RECEIVEQ, u64::from(QSIZE));
        d.setup_queue(TRANSMITQ, u64::from(QSIZE));
        let _ = d.w(reg::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        d
    }

    fn put_desc(&mut self, q: usize, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut raw = [0u8; 16];
        raw[0..8].copy_from_slice(&addr.to_le_bytes());
        raw[8..12].copy_from_slice(&len.to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..16].copy_from_slice(&next.to_le_bytes());
        self.ram.put(desc_area(q) + 16 * u64::from(i), &raw);
    }

    /// Makes chain `head` available on queue `q`.
    fn make_available(&mut self, q: usize, head: u16) {
        let slot = u64::from(self.avail_idx[q] % QSIZE);
        self.ram
            .put(driver_area(q) + 4 + 2 * slot, &head.to_le_bytes());
        self.avail_idx[q] = self.avail_idx[q].wrapping_add(1);
        let idx = self.avail_idx[q];
        self.ram.put(driver_area(q) + 2, &idx.to_le_bytes());
    }

    fn alloc_desc(&mut self, q: usize) -> u16 {
        let i = self.next_desc[q];
        self.next_desc[q] = (i + 1) % QSIZE;
        i
    }

    /// Posts one receive buffer of `len` bytes.
    fn post_rx(&mut self, len: u32) {
        let i = self.alloc_desc(RECEIVEQ);
        self.put_desc(RECEIVEQ, i, buffer(RECEIVEQ, i), len, DESC_F_WRITE, 0);
        self.make_available(RECEIVEQ, i);
    }

    /// Transmits `frame` behind a zeroed header, as two descriptors (header, then data), and
    /// notifies the device.
    fn transmit(&mut self, frame: &[u8]) -> VirtioEffects {
        let h = self.alloc_desc(TRANSMITQ);
        let d = self.alloc_desc(TRANSMITQ);
        self.ram.put(buffer(TRANSMITQ, h), &[0; HDR_LEN]);
        self.ram.put(buffer(TRANSMITQ, d), frame);
        self.put_desc(
            TRANSMITQ,
            h,
            buffer(TRANSMITQ, h),
            HDR_LEN as u32,
            DESC_F_NEXT,
            d,
        );
        self.put_desc(TRANSMITQ, d, buffer(TRANSMITQ, d), frame.len() as u32, 0, 0);
        self.make_available(TRANSMITQ, h);
        self.w(reg::QUEUE_NOTIFY, TRANSMITQ as u64)
    }

    /// The next used-ring entry of queue `q`, if the device returned one: (id, len).
    fn take_used(&mut self, q: usize) -> Option<(u32, u32)> {
        if self.ram.u16_at(device_area(q) + 2) == self.used_seen[q] {
            return None;
        }
        let slot = u64::from(self.used_seen[q] % QSIZE);
        self.used_seen[q] = self.used_seen[q].wrapping_add(1);
        let at = device_area(q) + 4 + 8 * slot;
        Some((self.ram.u32_at(at), self.ram.u32_at(at + 4)))
    }

    fn assert_needs_reset(&mut self) {
        assert_ne!(self.status() & NEEDS_RESET, 0, "DEVICE_NEEDS_RESET is set");
        assert_ne!(self.r(reg::INTERRUPT_STATUS) as u32 & INT_CONFIG, 0);
    }
}

fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn identification_registers_name_a_version_2_network_device() {
    let mut d = Driver::new();
    assert_eq!(d.r(reg::MAGIC_VALUE), 0x7472_6976);
    assert_eq!(d.r(reg::VERSION), 2);
    assert_eq!(d.r(reg::DEVICE_ID), 1);
    assert_eq!(d.r(reg::VENDOR_ID), u64::from(VENDOR_ID));
    let _ = d.w(reg::DEVICE_FEATURES_SEL, 0);
    let low = d.r(reg::DEVICE_FEATURES);
    let _ = d.w(reg::DEVICE_FEATURES_SEL, 1);
    let high = d.r(reg::DEVICE_FEATURES);
    assert_eq!(high << 32 | low, VERSION_1 | F_MAC | F_STATUS);
    assert_eq!(
        d.r(reg::SHM_LEN_LOW),
        0xFFFF_FFFF,
        "no shared memory region"
    );
}

#[test]
fn config_space_holds_the_mac_and_link_up_at_any_access_width() {
    let mut d = Driver::new();
    let mac: Vec<u8> = (0..6)
        .map(|i| d.dev.access(Access::read(reg::CONFIG + i, 1), &mut d.ram).0 as u8)
        .collect();
    assert_eq!(mac, MAC);
    let word = d.dev.access(Access::read(reg::CONFIG + 4, 4), &mut d.ram).0;
    assert_eq!(
        word, 0x0001_5634,
        "mac[4], mac[5], then status = VIRTIO_NET_S_LINK_UP"
    );
}

#[test]
fn linux_init_sequence_reaches_driver_ok() {
    let mut d = Driver::ready();
    assert_eq!(d.status(), 0x0F);
    let _ = d.w(reg::QUEUE_SEL, TRANSMITQ as u64);
    assert_eq!(d.r(reg::QUEUE_READY), 1);
}

#[test]
fn features_without_version_1_are_refused_by_clearing_features_ok() {
    let mut d = Driver::new();
    d.negotiate(F_MAC);
    assert_eq!(d.status(), (ACKNOWLEDGE | DRIVER) as u8);
}

#[test]
fn a_feature_the_device_did_not_offer_is_refused() {
    let mut d = Driver::new();
    d.negotiate(VERSION_1 | 1 << 15);
    assert_eq!(
        d.status() & FEATURES_OK as u8,
        0,
        "MRG_RXBUF is not offered"
    );
}

#[test]
fn transmit_returns_the_frame_without_its_header_and_returns_the_buffer() {
    let mut d = Driver::ready();
    let sent = frame(60, 7);
    let effects = d.transmit(&sent);
    assert_eq!(effects.frames, vec![sent]);
    assert_eq!(effects.irq_level, Some(true));
    assert_eq!(
        d.take_used(TRANSMITQ),
        Some((0, 0)),
        "head 0 returned, 0 bytes written"
    );
    assert_eq!(d.r(reg::INTERRUPT_STATUS) as u32, INT_VRING);
    let ack = d.w(reg::INTERRUPT_ACK, u64::from(INT_VRING));
    assert_eq!(ack.irq_level, Some(false));
}

#[test]
fn several_transmissions_in_one_notification_come_out_in_order() {
    let mut d = Driver::ready();
    let (a, b) = (frame(100, 1), frame(1514, 2));
    let h = d.alloc_desc(TRANSMITQ);
    let mut with_hdr = vec![0; HDR_LEN];
    with_hdr.extend_from_slice(&a);
    d.ram.put(buffer(TRANSMITQ, h), &with_hdr);
    d.put_desc(
        TRANSMITQ,
        h,
        buffer(TRANSMITQ, h),
        with_hdr.len() as u32,
        0,
        0,
    );
    d.make_available(TRANSMITQ, h);
    let effects = d.transmit(&b);
    assert_eq!(effects.frames, vec![a, b]);
}

#[test]
fn an_oversized_or_headerless_transmission_is_dropped_but_its_buffer_returned() {
    let mut d = Driver::ready();
    let effects = d.transmit(&frame(MAX_FRAME + 1, 3));
    assert!(effects.frames.is_empty());
    assert!(d.take_used(TRANSMITQ).is_some());
    assert_eq!(d.status(), 0x0F, "not a driver error");
}

#[test]
fn delivery_writes_header_and_frame_into_a_posted_buffer() {
    let mut d = Driver::ready();
    d.post_rx(HDR_LEN as u32 + 1514);
    let arrived = frame(342, 9);
    let (delivered, effects) = d.dev.deliver(&arrived, &mut d.ram);
    assert!(delivered);
    assert_eq!(effects.irq_level, Some(true));
    let (id, len) = d.take_used(RECEIVEQ).expect("the buffer was used");
    assert_eq!((id, len as usize), (0, HDR_LEN + arrived.len()));
    let hdr = d.ram.get(buffer(RECEIVEQ, 0), HDR_LEN);
    assert_eq!(hdr, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0], "num_buffers = 1");
    assert_eq!(
        d.ram.get(buffer(RECEIVEQ, 0) + HDR_LEN as u64, 342),
        arrived
    );
}

#[test]
fn delivery_scatters_across_a_chain_of_buffers() {
    let mut d = Driver::ready();
    d.put_desc(
        RECEIVEQ,
        0,
        buffer(RECEIVEQ, 0),
        20,
        DESC_F_WRITE | DESC_F_NEXT,
        1,
    );
    d.put_desc(RECEIVEQ, 1, buffer(RECEIVEQ, 1), 2000, DESC_F_WRITE, 0);
    d.make_available(RECEIVEQ, 0);
    let arrived = frame(64, 4);
    assert!(d.dev.deliver(&arrived, &mut d.ram).0);
    assert_eq!(d.ram.get(buffer(RECEIVEQ, 0) + 12, 8), arrived[..8]);
    assert_eq!(d.ram.get(buffer(RECEIVEQ, 1), 56), arrived[8..]);
}

#[test]
fn a_frame_without_a_posted_buffer_is_dropped() {
    let mut d = Driver::ready();
    let (delivered, effects) = d.dev.deliver(&frame(60, 0), &mut d.ram);
    assert!(!delivered);
    assert_eq!(effects.irq_level, None);
    assert_eq!(d.status(), 0x0F);
}

#[test]
fn a_frame_before_driver_ok_is_dropped() {
    let mut d = Driver::new();
    d.negotiate(VERSION_1);
    d.setup_queue(RECEIVEQ, u64::from(QSIZE));
    d.post_rx(2048);
    assert!(!d.dev.deliver(&frame(60, 0), &mut d.ram).0);
    assert_eq!(d.take_used(RECEIVEQ), None);
}

#[test]
fn a_buffer_too_small_for_the_frame_is_returned_empty() {
    let mut d = Driver::ready();
    d.post_rx(100);
    assert!(!d.dev.deliver(&frame(200, 0), &mut d.ram).0);
    assert_eq!(d.take_used(RECEIVEQ), Some((0, 0)));
    assert_eq!(d.status(), 0x0F, "not a driver error");
}

#[test]
fn frames_cross_a_link_of_two_devices_both_ways() {
    let (mut a, mut b) = (Driver::ready(), Driver::ready());
    for i in 0..3 {
        b.post_rx(2048);
        a.post_rx(2048);
        let ping = frame(98, i);
        for sent in a.transmit(&ping).frames {
            assert!(b.dev.deliver(&sent, &mut b.ram).0);
        }
        let (id, len) = b.take_used(RECEIVEQ).expect("b received");
        let got = b.ram.get(
            buffer(RECEIVEQ, id as u16) + HDR_LEN as u64,
            len as usize - HDR_LEN,
        );
        assert_eq!(got, ping);
        let pong = frame(98, 0x80 | i);
        for sent in b.transmit(&pong).frames {
            assert!(a.dev.deliver(&sent, &mut a.ram).0);
        }
        let (id, len) = a.take_used(RECEIVEQ).expect("a received");
        let got = a.ram.get(
            buffer(RECEIVEQ, id as u16) + HDR_LEN as u64,
            len as usize - HDR_LEN,
        );
        assert_eq!(got, pong);
    }
}

#[test]
fn a_descriptor_beyond_ram_needs_reset_and_touches_nothing() {
    let mut d = Driver::ready();
    let before = d.ram.0.clone();
    let end = RAM_BASE + RAM_SIZE as u64;
    d.put_desc(RECEIVEQ, 0, end - 16, 64, DESC_F_WRITE, 0);
    d.make_available(RECEIVEQ, 0);
    let after_setup = d.ram.0.clone();
    let (delivered, effects) = d.dev.deliver(&frame(60, 0), &mut d.ram);
    assert!(!delivered);
    assert_eq!(
        effects.irq_level,
        Some(true),
        "configuration-change interrupt"
    );
    d.assert_needs_reset();
    assert_ne!(before, after_setup);
    assert_eq!(
        d.ram.0, after_setup,
        "nothing written, not even the part inside RAM"
    );
}

#[test]
fn a_transmit_buffer_beyond_ram_needs_reset() {
    let mut d = Driver::ready();
    d.put_desc(TRANSMITQ, 0, RAM_BASE - 0x1000, 64, 0, 0);
    d.make_available(TRANSMITQ, 0);
    let effects = d.w(reg::QUEUE_NOTIFY, TRANSMITQ as u64);
    assert!(effects.frames.is_empty());
    d.assert_needs_reset();
}

#[test]
fn a_length_that_overflows_the_address_space_needs_reset() {
    let mut d = Driver::ready();
    d.put_desc(TRANSMITQ, 0, u64::MAX - 8, 64, 0, 0);
    d.make_available(TRANSMITQ, 0);
    let _ = d.w(reg::QUEUE_NOTIFY, TRANSMITQ as u64);
    d.assert_needs_reset();
}

#[test]
fn buffers_reaching_past_ram_in_a_long_chain_need_reset() {
    let mut d = Driver::ready();
    for i in 0..QSIZE {
        let flags = if i + 1 < QSIZE { DESC_F_NEXT } else { 0 };
        d.put_desc(TRANSMITQ, i, RAM_BASE, u32::MAX, flags, i + 1);
    }
    d.make_available(TRANSMITQ, 0);
    let effects = d.w(reg::QUEUE_NOTIFY, TRANSMITQ as u64);
    assert!(effects.frames.is_empty());
    d.assert_needs_reset();
}

#[test]
fn a_loop_in_a_descriptor_chain_needs_reset() {
    let mut d = Driver::ready();
    d.put_desc(TRANSMITQ, 0, buffer(TRANSMITQ, 0), 12, DESC_F_NEXT, 1);
    d.put_desc(TRANSMITQ, 1, buffer(TRANSMITQ, 1), 60, DESC_F_NEXT, 0);
    d.make_available(TRANSMITQ, 0);
    let _ = d.w(reg::QUEUE_NOTIFY, TRANSMITQ as u64);
    d.assert_needs_reset();
}

#[test]
fn a_next_index_past_the_queue_needs_reset() {
    let mut d = Driver::ready();
    d.put_desc(TRANSMITQ, 0, buffer(TRANSMITQ, 0), 12, DESC_F_NEXT, QSIZE);
    d.make_available(TRANSMITQ, 0);
    let _ = d.w(reg::QUEUE_NOTIFY, TRANSMITQ as u64);
    d.assert_needs_reset();
}

#[test]
fn an_avail_index_running_ahead_of_the_queue_needs_reset() {
    let mut d = Driver::ready();
    d.ram
        .put(driver_area(TRANSMITQ) + 2, &(QSIZE + 1).to_le_bytes());
    let _ = d.w(reg::QUEUE_NOTIFY, TRANSMITQ as u64);
    d.assert_needs_reset();
}

#[test]
fn a_writable_descriptor_in_a_transmission_needs_reset() {
    let mut d = Driver::ready();
    d.put_desc(TRANSMITQ, 0, buffer(TRANSMITQ, 0), 64, DESC_F_WRITE, 0);
    d.make_available(TRANSMITQ, 0);
    let _ = d.w(reg::QUEUE_NOTIFY, TRANSMITQ as u64);
    d.assert_needs_reset();
}

#[test]
fn a_readable_descriptor_in_a_receive_buffer_needs_reset() {
    let mut d = Driver::ready();
    d.put_desc(RECEIVEQ, 0, buffer(RECEIVEQ, 0), 2048, 0, 0);
    d.make_available(RECEIVEQ, 0);
    assert!(!d.dev.deliver(&frame(60, 0), &mut d.ram).0);
    d.assert_needs_reset();
}

#[test]
fn a_queue_size_that_is_not_a_power_of_two_needs_reset() {
    let mut d = Driver::new();
    d.negotiate(VERSION_1);
    d.setup_queue(TRANSMITQ, 6);
    assert_eq!(d.r(reg::QUEUE_READY), 0);
    d.assert_needs_reset();
}

#[test]
fn a_queue_larger_than_queue_num_max_needs_reset() {
    let mut d = Driver::new();
    d.negotiate(VERSION_1);
    d.setup_queue(RECEIVEQ, u64::from(QUEUE_NUM_MAX) * 2);
    d.assert_needs_reset();
}

#[test]
fn a_notification_before_the_queue_is_ready_needs_reset() {
    let mut d = Driver::new();
    d.negotiate(VERSION_1);
    let effects = d.w(reg::QUEUE_NOTIFY, TRANSMITQ as u64);
    assert_eq!(effects.irq_level, Some(true));
    d.assert_needs_reset();
}

#[test]
fn a_notification_of_a_queue_that_does_not_exist_needs_reset() {
    let mut d = Driver::ready();
    let _ = d.w(reg::QUEUE_NOTIFY, 2);
    d.assert_needs_reset();
}

#[test]
fn a_device_needing_reset_moves_nothing_until_reset() {
    let mut d = Driver::ready();
    let _ = d.w(reg::QUEUE_NOTIFY, 5);
    d.post_rx(2048);
    assert!(!d.dev.deliver(&frame(60, 0), &mut d.ram).0);
    assert!(d.transmit(&frame(60, 0)).frames.is_empty());
    let _ = d.w(reg::STATUS, 0x0F);
    d.assert_needs_reset();
    let effects = d.w(reg::STATUS, 0);
    assert_eq!(effects.irq_level, Some(false), "reset lowers the line");
    assert_eq!(d.status(), 0);
    let mut again = Driver {
        dev: d.dev.clone(),
        ram: Ram::new(),
        ..Driver::new()
    };
    again.negotiate(VERSION_1 | F_MAC);
    again.setup_queue(TRANSMITQ, u64::from(QSIZE));
    let _ = again.w(reg::STATUS, 0x0F);
    assert_eq!(again.transmit(&frame(60, 1)).frames.len(), 1);
}

#[test]
fn no_interrupt_flag_suppresses_the_used_buffer_interrupt() {
    let mut d = Driver::ready();
    d.ram
        .put(driver_area(TRANSMITQ), &AVAIL_F_NO_INTERRUPT.to_le_bytes());
    let effects = d.transmit(&frame(60, 0));
    assert_eq!(effects.frames.len(), 1);
    assert_eq!(effects.irq_level, None);
}

proptest! {
    /// Any register writes and notifications over RAM holding any bytes: no panic, every
    /// frame within bounds, and the line follows `InterruptStatus`.
    #[test]
    fn hostile_drivers_never_panic(
        writes in proptest::collection::vec((0u64..0x110, any::<u32>()), 0..64),
        noise in proptest::collection::vec((0usize..0x4000, any::<u8>()), 0..256),
    ) {
        let mut d = Driver::ready();
        for (at, byte) in noise {
            d.ram.0[0x1_0000 + at] = byte;
        }
        for (offset, value) in writes {
            let effects = d.w(offset & !3, u64::from(value));
            for f in &effects.frames {
                prop_assert!(f.len() <= MAX_FRAME);
            }
            let (delivered, _) = d.dev.deliver(&frame(60, 0), &mut d.ram);
            prop_assert!(!delivered || d.dev.status() & NEEDS_RESET == 0);
            prop_assert_eq!(d.dev.level, d.dev.interrupt_status != 0);
        }
    }
}
