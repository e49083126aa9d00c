//! The DMA-isolation guest (issue 12): drives the virtio-blk-pci function Moat assigns to its
//! VM through the `virtio-drivers` crate's PCI transport, and reads sector 0 of the disk into a
//! buffer its bootargs choose:
//!
//! - `pcidma.target=ram`: a buffer in its own RAM (the positive control): prints the IPA and
//!   the sector's first bytes, which the test wrote into the disk image.
//! - `pcidma.target=0x...`: the device is told to write the sector at that IPA — beyond the
//!   VM's RAM, or an IPA equal to the physical address of Moat's or another VM's memory. The
//!   guest then polls, a bounded number of times, until the request completes or the device
//!   says it needs a reset (`DEVICE_NEEDS_RESET`, virtio 1.2 §2.1), and prints which.
//! - `pcidma.target=intx`: reads into its own RAM, each read completed by the function's INTx
//!   interrupt through the VM's GIC (`intx`).
//!
//! The MMU stays off (the runtime's state): guest physical addresses are IPAs, and the DMA
//! addresses the driver hands the device are IPAs too, translated by the SMMU through the VM's
//! stage 2 — what `VIRTIO_F_ACCESS_PLATFORM` says (`platform::AccessPlatform`).
#![no_std]
#![no_main]

mod hal;
mod intx;
mod platform;

use moat_guest_rt::boot::Region;
use moat_guest_rt::test::bootarg;
use moat_guest_rt::{BootInfo, println};
use platform::AccessPlatform;
use virtio_drivers::device::blk::{BlkReq, BlkResp, SECTOR_SIZE, VirtIOBlk};
use virtio_drivers::transport::DeviceStatus;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{
    BarInfo, Cam, Command, DeviceFunction, MmioCam, PciRoot,
};

moat_guest_rt::entry!(main);

/// The VM's ECAM window and memory window, as Moat's guest device tree gives them
/// (`moat_config::assign`): the guest uses what QEMU `virt` would give it.
const ECAM: usize = 0x3f00_0000;
const MEMORY_WINDOW: (u64, u64) = (0x1000_0000, 0x2eff_0000);
/// How many times the guest looks for a completion or a reset before it says neither came:
/// far more than QEMU needs (it answers within the notifying write's exit).
const POLLS: u32 = 1_000_000;

fn main(boot: &BootInfo) {
    let Some(target) = bootarg(boot.bootargs, "pcidma.target") else {
        println!("pcidma: no pcidma.target= in the bootargs");
        return;
    };
    let Some(ram) = boot.free_ram(1 << 20) else {
        println!("pcidma: no free RAM");
        return;
    };
    hal::init(ram.base, ram.size);
    let Some((transport, device)) = find_block_device() else {
        println!("pcidma: no virtio-blk function on bus 0");
        return;
    };
    let mut blk = match VirtIOBlk::<hal::GuestHal, _>::new(AccessPlatform::new(transport)) {
        Ok(blk) => blk,
        Err(e) => {
            println!("pcidma: the device refused the driver: {e}");
            return;
        }
    };
    println!(
        "pcidma: virtio-blk ready, {} sectors, VIRTIO_F_ACCESS_PLATFORM accepted",
        blk.capacity()
    );
    let mut sector = [0u8; SECTOR_SIZE];
    match target {
        "ram" => read_to_ram(&mut blk, &mut sector),
        "intx" => match intx::intid(ECAM, device.device, device.function) {
            Some(intid) => intx::read_by_interrupt(&mut blk, &mut sector, intid),
            None => println!("pcidma: the function has no INTx pin"),
        },
        ipa => match parse_hex(ipa) {
            Some(ipa) => read_to(&mut blk, &mut sector, ipa, boot.ram.unwrap_or(ram)),
            None => println!("pcidma: pcidma.target={ipa} is neither ram nor an 0x address"),
        },
    }
}

/// Reads sector 0 into `sector` (in the guest's RAM) and prints where and what.
fn read_to_ram(
    blk: &mut VirtIOBlk<hal::GuestHal, AccessPlatform<PciTransport>>,
    sector: &mut [u8],
) {
    let ipa = sector.as_ptr() as u64;
    match blk.read_blocks(0, sector) {
        Ok(()) => println!(
            "pcidma: sector 0 read into IPA {ipa:#x}: \"{}\"",
            text_at(ipa)
        ),
        Err(e) => println!("pcidma: reading sector 0 into IPA {ipa:#x} failed: {e}"),
    }
}

/// Has the device write sector 0 at IPA `target`: the driver's data buffer is `sector`, but
/// the address the device is given for it is `target`. Then polls for a completion or a reset.
fn read_to(
    blk: &mut VirtIOBlk<hal::GuestHal, AccessPlatform<PciTransport>>,
    sector: &mut [u8],
    target: u64,
    ram: Region,
) {
    let mut request = BlkReq::default();
    let mut response = BlkResp::default();
    hal::redirect(sector.as_ptr() as u64, target);
    println!("pcidma: reading sector 0 with the device told to write it at IPA {target:#x}");
    // SAFETY: `request`, `sector` and `response` live until the request completes or the
    // device is reset below; the device never writes `sector` itself (its address was
    // replaced), only what `target` translates to.
    let token = match unsafe { blk.read_blocks_nb(0, &mut request, sector, &mut response) } {
        Ok(token) => token,
        Err(e) => {
            println!("pcidma: the request was not queued: {e}");
            return;
        }
    };
    for _ in 0..POLLS {
        if blk.peek_used() == Some(token) {
            // SAFETY: as above: the same buffers, the request the device completed.
            let done = unsafe { blk.complete_read_blocks(token, &request, sector, &mut response) };
            println!("pcidma: the read completed ({done:?})");
            if ram.contains(&Region::new(target as usize, 32)) {
                println!(
                    "pcidma: IPA {target:#x} (own RAM) now holds \"{}\"",
                    text_at(target)
                );
            }
            return;
        }
        let status = platform::status();
        if status.contains(DeviceStatus::DEVICE_NEEDS_RESET) {
            println!(
                "pcidma: the device needs a reset (device status {:#x}); the read did not complete",
                status.bits()
            );
            return;
        }
    }
    println!("pcidma: neither a completion nor a reset after {POLLS} polls");
}

/// The first virtio-blk function on bus 0, its memory BARs placed in the memory window, decode
/// and bus mastering on; and where it is.
fn find_block_device() -> Option<(PciTransport, DeviceFunction)> {
    // SAFETY: the ECAM window of the guest's device tree, mapped (trapped) by Moat; the guest
    // runs alone, nothing else accesses it.
    let cam = unsafe { MmioCam::new(ECAM as *mut u8, Cam::Ecam) };
    let mut root = PciRoot::new(cam);
    let (function, info) = root
        .enumerate_bus(0)
        .find(|(_, info)| info.vendor_id == 0x1af4 && info.device_id == 0x1042)?;
    println!(
        "pcidma: virtio-blk {:02x}:{:02x}.{} ({:04x}:{:04x})",
        function.bus, function.device, function.function, info.vendor_id, info.device_id
    );
    let bars = place_bars(&mut root, function)?;
    root.set_command(function, Command::MEMORY_SPACE | Command::BUS_MASTER);
    platform::find_common_cfg(&root, function, &bars);
    PciTransport::new::<hal::GuestHal, _>(&mut root, function)
        .map_err(|e| println!("pcidma: no virtio-pci transport: {e}"))
        .ok()
        .map(|transport| (transport, function))
}

/// Places the function's memory BARs in the memory window, each aligned to its size; returns
/// their addresses by index.
fn place_bars(root: &mut PciRoot<MmioCam<'_>>, function: DeviceFunction) -> Option<[u64; 6]> {
    let mut placed = [0; 6];
    let mut next = MEMORY_WINDOW.0;
    let mut index = 0;
    while index < 6 {
        let info = root.bar_info(function, index).ok()?;
        let two = info.as_ref().is_some_and(BarInfo::takes_two_entries);
        if let Some((_, size)) = info.as_ref().and_then(BarInfo::memory_address_size) {
            let at = next.next_multiple_of(size.max(0x1000));
            if at + size > MEMORY_WINDOW.0 + MEMORY_WINDOW.1 {
                println!("pcidma: BAR {index} does not fit the memory window");
                return None;
            }
            if two {
                root.set_bar_64(function, index, at);
            } else {
                root.set_bar_32(function, index, at as u32);
            }
            println!("pcidma: BAR {index}: {size:#x} bytes at {at:#x}");
            placed[usize::from(index)] = at;
            next = at + size;
        }
        index += if two { 2 } else { 1 };
    }
    Some(placed)
}

/// The text at the start of the 32 bytes of RAM at `ipa`, up to its first NUL.
fn text_at(ipa: u64) -> &'static str {
    // SAFETY: `ipa` is 32 bytes of the guest's RAM (the callers check), identity-mapped with
    // the MMU off; read only.
    let bytes = unsafe { core::slice::from_raw_parts(ipa as *const u8, 32) };
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    core::str::from_utf8(&bytes[..end]).unwrap_or("(not text)")
}

fn parse_hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text.strip_prefix("0x")?.trim_start_matches('_'), 16).ok()
}
