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
//! - neither: prints its bootargs and powers off.
#![no_std]
#![no_main]

use moat_guest_rt::test::bootarg;
use moat_guest_rt::{BootInfo, println, psci};

moat_guest_rt::entry!(main);

/// The marker `partner.reset` writes through its RAM before it resets.
const MARKER: u64 = 0x4D4F_4154_4449_5254; // "MOATDIRT"

/// How much free RAM the reset check covers (the VM's RAM past the image, up to this).
const CHECKED: usize = 4 << 20;

fn main(boot: &BootInfo) {
    if let Some(n) = bootarg(boot.bootargs, "partner.ticks") {
        tick(n.parse().unwrap_or(0));
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
