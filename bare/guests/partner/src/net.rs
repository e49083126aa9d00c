//! `partner.net=ping|pong`: two VMs joined by a virtio-net link exchange Ethernet frames
//! through Moat. A small polled driver of the virtio-mmio transport (virtio 1.2 §4.2.3.1.1
//! and §3.1.1: reset, `ACKNOWLEDGE`, `DRIVER`, features, `FEATURES_OK`, queues, `DRIVER_OK`)
//! with split virtqueues of [`QSIZE`] entries in the guest's free RAM.
//!
//! `ping` posts receive buffers, then sends `moat ping` to the broadcast address until a
//! `moat pong` comes back (its peer may not have posted buffers yet: a frame without one
//! is dropped, as a NIC drops it), and prints what it got. `pong` answers every ping to the
//! sender's MAC address, printing the first, until the machine ends.
//!
//! `reset` is `ping` after a driver error (virtio 1.2 §2.1.2): its only receive buffer runs
//! past the end of its RAM (the last [`TAIL`] bytes in RAM, marked, the rest beyond), and it
//! pings until the pong's answer meets that buffer. The device must then set
//! `DEVICE_NEEDS_RESET` in `Status` and raise the configuration-change interrupt
//! (`InterruptStatus` bit 1, its INTID pending at the GIC distributor), having written
//! nothing: neither the marked bytes nor its used ring. The driver acknowledges the interrupt
//! (the line drops), resets the device by writing 0 to `Status`, initialises it again and pings
//! as `ping` does: the device works again.

use moat_guest_rt::{BootInfo, println};

/// Where the test's description puts the device (QEMU virt's first virtio-mmio slot).
const BASE: usize = 0x0a00_0000;
/// The queue size the driver uses.
const QSIZE: u16 = 8;
/// The size of each buffer: a 12-byte `virtio_net_hdr` and a whole Ethernet frame.
const BUF: usize = 2048;
const HDR: usize = 12;
/// An EtherType for local experiments (IEEE 802, "Local Experimental EtherType 1").
const ETHERTYPE: [u8; 2] = [0x88, 0xB5];

mod reg {
    pub const MAGIC: usize = 0x000;
    pub const VERSION: usize = 0x004;
    pub const DEVICE_ID: usize = 0x008;
    pub const DEVICE_FEATURES: usize = 0x010;
    pub const DEVICE_FEATURES_SEL: usize = 0x014;
    pub const DRIVER_FEATURES: usize = 0x020;
    pub const DRIVER_FEATURES_SEL: usize = 0x024;
    pub const QUEUE_SEL: usize = 0x030;
    pub const QUEUE_NUM_MAX: usize = 0x034;
    pub const QUEUE_NUM: usize = 0x038;
    pub const QUEUE_READY: usize = 0x044;
    pub const QUEUE_NOTIFY: usize = 0x050;
    pub const INTERRUPT_STATUS: usize = 0x060;
    pub const INTERRUPT_ACK: usize = 0x064;
    pub const STATUS: usize = 0x070;
    pub const QUEUE_DESC_LOW: usize = 0x080;
    pub const QUEUE_DRIVER_LOW: usize = 0x090;
    pub const QUEUE_DEVICE_LOW: usize = 0x0a0;
    pub const CONFIG: usize = 0x100;
}

/// `Status` bits (§2.1).
const ACKNOWLEDGE: u32 = 1;
const DRIVER: u32 = 2;
const DRIVER_OK: u32 = 4;
const FEATURES_OK: u32 = 8;
/// `VIRTIO_NET_F_MAC` (bit 5) and `VIRTIO_F_VERSION_1` (bit 32, bit 0 of the high word).
const F_MAC: u32 = 1 << 5;
const F_VERSION_1_HIGH: u32 = 1;
/// `VIRTQ_DESC_F_WRITE`.
const DESC_F_WRITE: u16 = 2;
/// `Status`: `DEVICE_NEEDS_RESET` (§2.1).
const DEVICE_NEEDS_RESET: u32 = 64;
/// `InterruptStatus`: a used buffer notification, a configuration change (§4.2.2).
const INT_VRING: u32 = 1;
const INT_CONFIG: u32 = 2;
/// The device's interrupt: the VM's first virtio-net device is INTID 48 (SPI 16).
const INTID: usize = 48;
/// `GICD_ISPENDR<n>` (GICv3 IHI 0069): one pending bit per INTID, at the distributor of the
/// test's description.
const GICD_ISPENDR: usize = 0x0800_0000 + 0x200;
/// How many bytes of the bad receive buffer lie in RAM (its last bytes), marked.
const TAIL: usize = 64;
/// The mark on them.
const TAIL_MARK: u8 = 0xA5;

const RX: usize = 0;
const TX: usize = 1;

fn read(offset: usize) -> u32 {
    // SAFETY: a register of the virtio-mmio window Moat emulates at `BASE`; the guest runs
    // with its MMU off, so the access is a Device access that traps to Moat.
    unsafe { ((BASE + offset) as *const u32).read_volatile() }
}

fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`.
    unsafe { ((BASE + offset) as *mut u32).write_volatile(value) }
}

/// Orders the driver's writes to its rings before what follows (a notification, a read of
/// the device's progress).
fn barrier() {
    // SAFETY: a barrier; no memory is accessed.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// The driver's view of one queue: its three areas and buffers in RAM.
struct Queue {
    desc: usize,
    avail: usize,
    used: usize,
    buffers: usize,
    avail_idx: u16,
    used_seen: u16,
}

impl Queue {
    fn put_u16(at: usize, value: u16) {
        // SAFETY: `at` is in the free RAM `Net::new` took for the queues, which nothing else
        // uses; the guest runs on one CPU.
        unsafe { (at as *mut u16).write_volatile(value) }
    }

    fn get_u16(at: usize) -> u16 {
        // SAFETY: as in `put_u16`.
        unsafe { (at as *const u16).read_volatile() }
    }

    fn get_u32(at: usize) -> u32 {
        // SAFETY: as in `put_u16`.
        unsafe { (at as *const u32).read_volatile() }
    }

    fn buffer(&self, i: u16) -> *mut u8 {
        (self.buffers + BUF * usize::from(i)) as *mut u8
    }

    /// Descriptor `i` is buffer `i`: `len` bytes, with `flags`.
    fn set_desc(&self, i: u16, len: u32, flags: u16) {
        self.set_desc_at(i, self.buffer(i) as u64, len, flags);
    }

    /// Descriptor `i` is `len` bytes at `addr`, with `flags`.
    fn set_desc_at(&self, i: u16, addr: u64, len: u32, flags: u16) {
        let at = self.desc + 16 * usize::from(i);
        // SAFETY: as in `put_u16`: the descriptor table is in the queues' free RAM.
        unsafe {
            (at as *mut u64).write_volatile(addr);
            ((at + 8) as *mut u32).write_volatile(len);
        }
        Self::put_u16(at + 12, flags);
        Self::put_u16(at + 14, 0);
    }

    fn make_available(&mut self, head: u16) {
        Self::put_u16(
            self.avail + 4 + 2 * usize::from(self.avail_idx % QSIZE),
            head,
        );
        barrier();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        Self::put_u16(self.avail + 2, self.avail_idx);
        barrier();
    }

    /// The next buffer the device returned: (descriptor, bytes written).
    fn take_used(&mut self) -> Option<(u16, usize)> {
        barrier();
        if Self::get_u16(self.used + 2) == self.used_seen {
            return None;
        }
        let at = self.used + 4 + 8 * usize::from(self.used_seen % QSIZE);
        self.used_seen = self.used_seen.wrapping_add(1);
        Some((Self::get_u32(at) as u16, Self::get_u32(at + 4) as usize))
    }
}

struct Net {
    mac: [u8; 6],
    queues: [Queue; 2],
    next_tx: u16,
}

impl Net {
    /// Initialises the device (§3.1.1); `None`, said why, when it is not a version 2 virtio
    /// network device or refuses the features.
    fn new(boot: &BootInfo) -> Option<Self> {
        let (magic, version, id) = (read(reg::MAGIC), read(reg::VERSION), read(reg::DEVICE_ID));
        if (magic, version, id) != (0x7472_6976, 2, 1) {
            println!(
                "partner: net: no virtio-net v2 device (magic {magic:#x}, version {version}, id {id})"
            );
            return None;
        }
        write(reg::STATUS, 0);
        write(reg::STATUS, ACKNOWLEDGE);
        write(reg::STATUS, ACKNOWLEDGE | DRIVER);
        write(reg::DEVICE_FEATURES_SEL, 1);
        let high = read(reg::DEVICE_FEATURES);
        write(reg::DEVICE_FEATURES_SEL, 0);
        let low = read(reg::DEVICE_FEATURES);
        write(reg::DRIVER_FEATURES_SEL, 1);
        write(reg::DRIVER_FEATURES, high & F_VERSION_1_HIGH);
        write(reg::DRIVER_FEATURES_SEL, 0);
        write(reg::DRIVER_FEATURES, low & F_MAC);
        write(reg::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        if read(reg::STATUS) & FEATURES_OK == 0 {
            println!("partner: net: FEATURES_OK refused (features {high:#x}:{low:#x})");
            return None;
        }
        let mut mac = [0u8; 6];
        for (i, byte) in mac.iter_mut().enumerate() {
            // SAFETY: as in `read`: the configuration space, read a byte at a time.
            *byte = unsafe { ((BASE + reg::CONFIG + i) as *const u8).read_volatile() };
        }
        let free = boot.free_ram(1 << 20)?;
        let queue = |q: usize| {
            let area = free.base + q * 0x8_0000;
            Queue {
                desc: area,
                avail: area + 0x1000,
                used: area + 0x2000,
                buffers: area + 0x4000,
                avail_idx: 0,
                used_seen: 0,
            }
        };
        let queues = [queue(RX), queue(TX)];
        for (q, queue) in queues.iter().enumerate() {
            write(reg::QUEUE_SEL, q as u32);
            if read(reg::QUEUE_NUM_MAX) < u32::from(QSIZE) {
                return None;
            }
            write(reg::QUEUE_NUM, u32::from(QSIZE));
            for (low, area) in [
                (reg::QUEUE_DESC_LOW, queue.desc),
                (reg::QUEUE_DRIVER_LOW, queue.avail),
                (reg::QUEUE_DEVICE_LOW, queue.used),
            ] {
                write(low, area as u32);
                write(low + 4, (area as u64 >> 32) as u32);
            }
            Queue::put_u16(queue.avail, 0);
            Queue::put_u16(queue.avail + 2, 0);
            Queue::put_u16(queue.used + 2, 0);
            write(reg::QUEUE_READY, 1);
        }
        write(reg::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        Some(Self {
            mac,
            queues,
            next_tx: 0,
        })
    }

    /// Posts every receive buffer.
    fn post_receive_buffers(&mut self) {
        for i in 0..QSIZE {
            self.queues[RX].set_desc(i, BUF as u32, DESC_F_WRITE);
            self.queues[RX].make_available(i);
        }
    }

    /// Sends `payload` to `to` from this device's address.
    fn send(&mut self, to: [u8; 6], payload: &[u8]) {
        let i = self.next_tx;
        self.next_tx = (i + 1) % QSIZE;
        let tx = &mut self.queues[TX];
        let mut frame = [0u8; HDR + 60];
        frame[HDR..HDR + 6].copy_from_slice(&to);
        frame[HDR + 6..HDR + 12].copy_from_slice(&self.mac);
        frame[HDR + 12..HDR + 14].copy_from_slice(&ETHERTYPE);
        let len = payload.len().min(60 - 14);
        frame[HDR + 14..HDR + 14 + len].copy_from_slice(&payload[..len]);
        // SAFETY: buffer `i` is the queue's own, `BUF` bytes of the free RAM, and the device
        // returned it (or never had it): at most `QSIZE` sends are in flight before `take_used`.
        unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), tx.buffer(i), frame.len()) };
        tx.set_desc(i, frame.len() as u32, 0);
        tx.make_available(i);
        write(reg::QUEUE_NOTIFY, TX as u32);
        while tx.take_used().is_some() {}
    }

    /// A received frame (without its header) copied into `out`, its length; the buffer is
    /// posted again.
    fn receive(&mut self, out: &mut [u8; BUF]) -> Option<usize> {
        let status = read(reg::INTERRUPT_STATUS);
        write(reg::INTERRUPT_ACK, status);
        let rx = &mut self.queues[RX];
        let (i, written) = rx.take_used()?;
        let len = written.saturating_sub(HDR).min(BUF - HDR);
        // SAFETY: buffer `i` is the device's no more (it is in the used ring): `len` bytes after
        // the header, within the buffer.
        unsafe { core::ptr::copy_nonoverlapping(rx.buffer(i).add(HDR), out.as_mut_ptr(), len) };
        rx.make_available(i);
        write(reg::QUEUE_NOTIFY, RX as u32);
        Some(len)
    }
}

fn ours(frame: &[u8], word: &[u8]) -> bool {
    frame.len() >= 14 + word.len() && frame[12..14] == ETHERTYPE && frame[14..].starts_with(word)
}

fn show_mac(mac: &[u8]) -> [u8; 17] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [b':'; 17];
    for (i, byte) in mac.iter().take(6).enumerate() {
        text[3 * i] = HEX[usize::from(byte >> 4)];
        text[3 * i + 1] = HEX[usize::from(byte & 0xF)];
    }
    text
}

/// Runs `role` (`ping`, `pong` or `reset`).
pub fn run(boot: &BootInfo, role: &str) {
    let Some(mut net) = Net::new(boot) else {
        return;
    };
    let mac = show_mac(&net.mac);
    println!(
        "partner: net up, mac {}",
        core::str::from_utf8(&mac).unwrap_or("?")
    );
    match role {
        "ping" => {
            net.post_receive_buffers();
            ping(&mut net);
        }
        "reset" => {
            if needs_reset(boot, &mut net) {
                // §2.1.2: the driver resets the device (`Net::new` writes 0 to `Status` first).
                let Some(mut net) = Net::new(boot) else {
                    return;
                };
                println!(
                    "partner: net reset by the driver, status {:#x}",
                    read(reg::STATUS)
                );
                net.post_receive_buffers();
                ping(&mut net);
            }
        }
        _ => {
            net.post_receive_buffers();
            pong(&mut net);
        }
    }
}

/// Pings until a pong comes back; prints it.
fn ping(net: &mut Net) {
    let mut frame = [0u8; BUF];
    let (_, hz) = crate::counter();
    for attempt in 0..200u32 {
        net.send([0xFF; 6], b"moat ping");
        let (start, _) = crate::counter();
        while crate::counter().0 - start < hz / 100 {
            if let Some(len) = net.receive(&mut frame)
                && ours(&frame[..len], b"moat pong")
            {
                let from = show_mac(&frame[6..12]);
                println!(
                    "partner: net pong from {} after {} ping(s), {len} bytes",
                    core::str::from_utf8(&from).unwrap_or("?"),
                    attempt + 1
                );
                return;
            }
        }
    }
    println!("partner: net no pong");
}

/// Answers every ping, printing the first; never returns (the machine's power-off ends it).
fn pong(net: &mut Net) -> ! {
    let mut frame = [0u8; BUF];
    let mut first = true;
    loop {
        if let Some(len) = net.receive(&mut frame)
            && ours(&frame[..len], b"moat ping")
        {
            if first {
                let from = show_mac(&frame[6..12]);
                println!(
                    "partner: net ping from {}, {len} bytes",
                    core::str::from_utf8(&from).unwrap_or("?")
                );
                first = false;
            }
            let mut to = [0u8; 6];
            to.copy_from_slice(&frame[6..12]);
            net.send(to, b"moat pong");
        }
    }
}

/// Whether the interrupt `INTID` is pending at the distributor (`GICD_ISPENDR<n>`).
fn intid_pending() -> bool {
    let at = GICD_ISPENDR + 4 * (INTID / 32);
    // SAFETY: a register of the GIC distributor Moat emulates for the VM (MMU off: a Device
    // access that traps); reading it has no side effect.
    let bits = unsafe { (at as *const u32).read_volatile() };
    bits & (1 << (INTID % 32)) != 0
}

/// The driver error of `reset`: the only receive buffer runs past the end of RAM. Pings until
/// the answer meets it; prints what the device did and whether it kept to §2.1.2 (true when
/// it did).
fn needs_reset(boot: &BootInfo, net: &mut Net) -> bool {
    let Some(ram) = boot.ram else {
        println!("partner: no RAM in the device tree");
        return false;
    };
    let tail = ram.end() - TAIL;
    let tail_region = moat_guest_rt::Region::new(tail, TAIL);
    if boot.image.overlaps(&tail_region) || boot.dtb.is_some_and(|d| d.overlaps(&tail_region)) {
        println!("partner: net: the last {TAIL} bytes of RAM are not free");
        return false;
    }
    let marks = tail as *mut u8;
    for i in 0..TAIL {
        // SAFETY: the last `TAIL` bytes of this VM's RAM, which neither the image nor the
        // device tree holds (checked above); one CPU.
        unsafe { marks.add(i).write_volatile(TAIL_MARK) };
    }
    let rx = &mut net.queues[RX];
    rx.set_desc_at(0, tail as u64, BUF as u32, DESC_F_WRITE);
    rx.make_available(0);
    let mut pings = 0u32;
    while read(reg::STATUS) & DEVICE_NEEDS_RESET == 0 && pings < 200 {
        net.send([0xFF; 6], b"moat ping");
        pings += 1;
        let (start, hz) = crate::counter();
        while crate::counter().0 - start < hz / 100 && read(reg::STATUS) & DEVICE_NEEDS_RESET == 0 {
        }
    }
    // The pings' used-buffer notifications acknowledged, what keeps the line up is the
    // configuration change alone.
    write(reg::INTERRUPT_ACK, INT_VRING);
    let status = read(reg::STATUS);
    let interrupts = read(reg::INTERRUPT_STATUS);
    let pending = intid_pending();
    barrier();
    let used = Queue::get_u16(net.queues[RX].used + 2);
    // SAFETY: as above: the marked bytes, read.
    let untouched = (0..TAIL).all(|i| unsafe { marks.add(i).read_volatile() } == TAIL_MARK);
    println!(
        "partner: net receive buffer [{tail:#x}, {:#x}) past RAM's end {:#x}: after {pings} ping(s) status {status:#x}, interrupt status {interrupts:#x}, INTID {INTID} pending {pending}, used idx {used}, RAM tail {}",
        tail + BUF,
        ram.end(),
        if untouched { "untouched" } else { "WRITTEN" }
    );
    write(reg::INTERRUPT_ACK, interrupts);
    let dropped = !intid_pending();
    println!(
        "partner: net interrupt acknowledged, INTID {INTID} pending {}",
        !dropped
    );
    status & DEVICE_NEEDS_RESET != 0
        && interrupts == INT_CONFIG
        && pending
        && used == 0
        && untouched
        && dropped
}
