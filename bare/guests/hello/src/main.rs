//! `moat-guest-hello`: the guest `./x run` boots by default. It greets, shows the bootargs and
//! the Exception level it runs at (`CurrentEL`), and powers off through PSCI SYSTEM_OFF.
#![no_std]
#![no_main]

use moat_guest_rt::{BootInfo, println, sysreg};

moat_guest_rt::entry!(main);

fn main(boot: &BootInfo) {
    println!("Hello from a Moat guest!");
    println!("bootargs: \"{}\"", boot.bootargs);
    println!("running at EL{}", sysreg::current_el());
}
