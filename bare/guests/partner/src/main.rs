//! `moat-guest-partner`: a VM beside other VMs, for the tests of several VMs (issue 11). What it
//! does is chosen by its bootargs:
//!
//! - `partner.ticks=N`: prints `partner: tick <i>` every 2 ms of its virtual counter, N times,
//!   then powers off — a neighbour whose clock and console must go on undisturbed while
//!   another VM halts or restarts beside it;
//! - `partner.reset`: checks that its RAM past its image is all zero (what Moat's restart
//!   promises: the RAM scrubbed), prints `partner: boot, RAM clean` (or `RAM dirty at <addr>`),
//!   writes a marker through its free RAM, and resets with PSCI `SYSTEM_RESET`; restarted, it
//!   finds its RAM clean again;
//! - `partner.canary`: fills its free RAM with the neighbour canary (below), says so, and
//!   waits (its VM is ended by the machine's power-off) — memory another VM must never see;
//! - `partner.scan=<S>`: the isolation scan: reads every word of its RAM, and probes its IPA
//!   space `[0, 2^S)` at a 2 MiB stride outside its RAM and device windows with one load each
//!   (an abort is taken and skipped), looking for the canaries Moat places in its own memory
//!   and in free memory, and the neighbour's; prints `partner: scan ... canaries 0` when it
//!   found none, then powers off;
//! - `partner.other-cpu=<MPIDR>`: asks PSCI `CPU_ON` and `AFFINITY_INFO` (level 0) of an
//!   MPIDR that is not one of its vCPUs — another VM's CPU — and prints both statuses (PSCI's
//!   `INVALID_PARAMETERS`, -2, is what a VM must get: it has no name for another VM's CPU);
//! - `partner.net=ping|pong|reset`: two VMs joined by a virtio-net link exchange frames;
//!   `reset` first gives its device a receive buffer past the end of its RAM and checks that
//!   the device needs a reset, wrote nothing, and works again once reset (`net`);
//! - none of these: prints its bootargs and powers off.
//!
//! A canary is a doubleword whose upper half is [`CANARY_HI`] (built at run time, so that the
//! image holds no copy) and whose lower half says whose memory it marks: `MOAT` (Moat's own,
//! `bare/hyp/src/isolation.rs` places it), `FREE` (memory no VM was given), `NEIG` (a
//! neighbour VM's RAM).
#![no_std]
#![no_main]

use moat_guest_rt::exception::{ExceptionFrame, ExceptionRecord, Resume, ec, with_exception_hook};
use moat_guest_rt::test::bootarg;
use moat_guest_rt::{BootInfo, println, psci};

mod net;

moat_guest_rt::entry!(main);

/// The marker `partner.reset` writes through its RAM before it resets.
const MARKER: u64 = 0x4D4F_4154_4449_5254; // "MOATDIRT"

/// How much free RAM the reset check covers (the VM's RAM past the image, up to this).
const CHECKED: usize = 4 << 20;

/// The upper half of every canary, as two halves XORed at run time (Moat's `isolation.rs` has
/// the same value).
const CANARY_HI_PARTS: (u32, u32) = (0xA5A5_5A5A, 0x6102_4407);
/// The neighbour's tag, "NEIG".
const TAG_NEIGHBOUR: u32 = 0x4E45_4947;
/// The stride of the IPA-space probe.
const PROBE_STRIDE: usize = 2 << 20;

/// The canaries' upper half.
fn canary_hi() -> u32 {
    core::hint::black_box(CANARY_HI_PARTS.0) ^ CANARY_HI_PARTS.1
}

fn main(boot: &BootInfo) {
    if let Some(n) = bootarg(boot.bootargs, "partner.ticks") {
        tick(n.parse().unwrap_or(0));
    } else if let Some(bits) = bootarg(boot.bootargs, "partner.scan") {
        scan(boot, bits.parse().unwrap_or(32));
    } else if let Some(role) = bootarg(boot.bootargs, "partner.net") {
        net::run(boot, role);
    } else if let Some(mpidr) = bootarg(boot.bootargs, "partner.other-cpu") {
        other_cpu(mpidr.parse().unwrap_or(1));
    } else if boot
        .bootargs
        .split_whitespace()
        .any(|a| a == "partner.canary")
    {
        fill_with_canaries(boot);
    } else if boot
        .bootargs
        .split_whitespace()
        .any(|a| a == "partner.reset")
    {
        reset_check(boot);
    } else {
        println!("partner: bootargs \"{}\"", boot.bootargs);
    }
}

/// The virtual counter (`CNTVCT_EL0`) and its frequency (`CNTFRQ_EL0`).
fn counter() -> (u64, u64) {
    let (count, freq): (u64, u64);
    // SAFETY: reads the virtual counter and its frequency, readable at EL1; no side effects.
    unsafe {
        core::arch::asm!("isb", "mrs {}, cntvct_el0", "mrs {}, cntfrq_el0",
                         out(reg) count, out(reg) freq, options(nomem, nostack))
    };
    (count, freq)
}

/// Prints `n` ticks, 2 ms of virtual time apart.
fn tick(n: u32) {
    let (start, freq) = counter();
    let step = freq / 500;
    for i in 1..=n {
        let due = start + step * u64::from(i);
        while counter().0 < due {
            core::hint::spin_loop();
        }
        println!("partner: tick {i}");
    }
}

/// Checks its free RAM is zero, dirties it, and resets.
fn reset_check(boot: &BootInfo) {
    let Some(free) = boot.free_ram(CHECKED) else {
        println!("partner: no free RAM to check");
        return;
    };
    let words = free.size / 8;
    let base = free.base as *mut u64;
    // SAFETY: `free` is RAM of this VM that neither the image, its stack nor the device tree
    // uses (`BootInfo::free_ram`); the guest runs on one CPU, so nothing else accesses it.
    let dirty = (0..words).find(|&i| unsafe { base.add(i).read_volatile() } != 0);
    match dirty {
        None => println!("partner: boot, RAM clean"),
        Some(i) => println!("partner: boot, RAM dirty at {:#x}", free.base + i * 8),
    }
    for i in 0..words {
        // SAFETY: as above.
        unsafe { base.add(i).write_volatile(MARKER) };
    }
    println!("partner: RAM marked, resetting");
    psci::system_reset();
}

/// Marks its free RAM with the neighbour canary, then waits for the machine to end.
fn fill_with_canaries(boot: &BootInfo) {
    let Some(ram) = boot.ram else {
        println!("partner: no RAM in the device tree");
        return;
    };
    let Some(free) = boot.free_ram(ram.size / 2) else {
        println!("partner: no free RAM to mark");
        return;
    };
    let canary = (u64::from(canary_hi()) << 32) | u64::from(TAG_NEIGHBOUR);
    let base = free.base as *mut u64;
    for i in 0..free.size / 8 {
        // SAFETY: `free` is this VM's RAM that nothing of the guest uses; one CPU.
        unsafe { base.add(i).write_volatile(canary) };
    }
    println!(
        "partner: canaries at IPA [{:#x}, {:#x})",
        free.base,
        free.base + free.size
    );
    // The scan's own check, on memory that does hold canaries: it must count every one.
    println!(
        "partner: {} MiB marked with canaries; reading its RAM finds {} of {}",
        free.size >> 20,
        ram_canaries(ram, false),
        free.size / 8
    );
    loop {
        // SAFETY: waits; no memory is accessed.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}

/// Skips a load that took a data abort (a hole, or an address beyond the IPA space).
fn skip_abort(record: &ExceptionRecord, frame: &mut ExceptionFrame) -> Resume {
    if record.ec() != ec::DABT_CUR {
        return Resume::No;
    }
    frame.skip_instruction();
    Resume::Yes
}

/// One doubleword load from `address`; a load that aborts leaves `x0` as `u64::MAX` marks it:
/// the caller tells the two apart by the exception log.
fn probe(address: usize) -> u64 {
    let value: u64;
    // SAFETY: a load the exception hook may skip; X0 is the result. Not `nomem`: the handler
    // writes the exception log (see `with_exception_hook`).
    unsafe {
        core::arch::asm!("mov x0, xzr", "ldr x0, [{a}]", a = in(reg) address,
                         out("x0") value, options(nostack))
    };
    value
}

/// The canaries in `ram`, every doubleword read; the first one found is printed when `show`.
fn ram_canaries(ram: moat_guest_rt::Region, show: bool) -> usize {
    let hi = canary_hi();
    let mut canaries = 0usize;
    let base = ram.base as *const u64;
    for i in 0..ram.size / 8 {
        // SAFETY: this VM's RAM, read only.
        let word = unsafe { base.add(i).read_volatile() };
        if (word >> 32) as u32 == hi {
            if canaries == 0 && show {
                println!(
                    "partner: canary {word:#x} at {:#x} (own RAM)",
                    ram.base + i * 8
                );
            }
            canaries += 1;
        }
    }
    canaries
}

/// The isolation scan of an IPA space of `bits` bits.
fn scan(boot: &BootInfo, bits: u32) {
    // Give the neighbour time to mark its RAM first (it takes well under this).
    let (start, freq) = counter();
    while counter().0 < start + freq / 20 {
        core::hint::spin_loop();
    }
    let hi = canary_hi();
    let Some(ram) = boot.ram else {
        println!("partner: no RAM in the device tree");
        return;
    };
    let mut canaries = ram_canaries(ram, true);
    // The device windows of the VM (configs' virt map: GICD, the GICR of one vCPU, the PL011):
    // readable by design, and read-sensitive (a PL011 data read takes input).
    let uart = boot.uart.unwrap_or(0x0900_0000);
    let devices: [(usize, usize); 3] = [
        (0x0800_0000, 0x1_0000),
        (0x080A_0000, 0x2_0000),
        (uart, 0x1000),
    ];
    let inside = |a: usize, (b, s): (usize, usize)| a >= b && a - b < s;
    let (mut probed, mut aborted, mut readable) = (0usize, 0usize, 0usize);
    let end = 1usize << bits.min(48);
    let mut address = 0;
    while address < end {
        if !inside(address, (ram.base, ram.size)) && !devices.iter().any(|&d| inside(address, d)) {
            let (word, log) = with_exception_hook(skip_abort, || probe(address));
            probed += 1;
            if log.count > 0 {
                aborted += 1;
            } else {
                readable += 1;
                if (word >> 32) as u32 == hi {
                    println!("partner: canary {word:#x} at IPA {address:#x}");
                    canaries += 1;
                }
            }
        }
        address += PROBE_STRIDE;
    }
    println!(
        "partner: scan of {} MiB of RAM and 2^{bits} IPAs ({probed} probes: {aborted} aborted, {readable} readable outside RAM): canaries {canaries}",
        ram.size >> 20
    );
}

/// PSCI `CPU_ON` (SMC64) and `AFFINITY_INFO` (SMC64) of `mpidr` (DEN 0022).
fn other_cpu(mpidr: u64) {
    const CPU_ON_64: u32 = 0xC400_0003;
    const AFFINITY_INFO_64: u32 = 0xC400_0004;
    // An entry point inside the image: should the call start a CPU, it runs the image again.
    let entry = main as *const () as u64;
    let on = psci::smccc_call(CPU_ON_64, &[mpidr, entry, 0])[0] as i32;
    let info = psci::smccc_call(AFFINITY_INFO_64, &[mpidr, 0])[0] as i32;
    println!("partner: CPU_ON {mpidr:#x} -> {on}, AFFINITY_INFO {mpidr:#x} -> {info}");
}
