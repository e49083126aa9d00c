//! The guest console: transmit-only PL011 (Arm PrimeCell UART, DDI 0183) at the address the
//! device tree gives, and the [`print!`](crate::print)/[`println!`](crate::println) macros.
//!
//! Output goes byte by byte to `UARTDR` after `UARTFR.TXFF` reads 0. Lines end in `\n` only (the
//! host runner splits on it). Until `init` has run, or when the device tree names no PL011,
//! output is dropped: a guest without a console still powers off.

use core::fmt::{self, Write};
use core::ptr;

use crate::global::Global;

/// `UARTDR`, the data register (PL011 TRM 3.3.1).
const UARTDR: usize = 0x000;
/// `UARTFR`, the flag register (PL011 TRM 3.3.3).
const UARTFR: usize = 0x018;
/// `UARTFR.TXFF`: the transmit FIFO is full.
const UARTFR_TXFF: u32 = 1 << 5;
/// How many times to poll `UARTFR` before writing anyway. A UART whose FIFO never drains must
/// not hang the guest; losing a byte is the lesser failure.
const TXFF_POLL_LIMIT: u32 = 1_000_000;

/// The PL011's MMIO base, once known.
static UART_BASE: Global<Option<usize>> = Global::new(None);

/// Sends console output to the PL011 at `base` (from the device tree's `reg`).
pub(crate) fn init(base: Option<usize>) {
    UART_BASE.set(base);
}

/// The PL011's base address, if the device tree named one.
pub fn uart_base() -> Option<usize> {
    UART_BASE.get()
}

/// A handle on the console for `core::fmt::Write`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(base) = UART_BASE.get() {
            s.bytes().for_each(|byte| put_byte(base, byte));
        }
        Ok(())
    }
}

/// Writes one byte to the PL011 at `base` once its transmit FIFO has room.
fn put_byte(base: usize, byte: u8) {
    let flags = (base + UARTFR) as *const u32;
    let data = (base + UARTDR) as *mut u32;
    for _ in 0..TXFF_POLL_LIMIT {
        // SAFETY: `base` is the PL011's `reg` address from the device tree; with the MMU off it
        // is the device's physical address, and UARTFR is a 32-bit, 4-byte-aligned register
        // whose read has no side effect. An address with no device behind it would give a
        // synchronous external abort to the runtime's vectors, not undefined behaviour.
        if unsafe { ptr::read_volatile(flags) } & UARTFR_TXFF == 0 {
            break;
        }
    }
    // SAFETY: as above; writing UARTDR queues one character and touches no memory of ours.
    unsafe { ptr::write_volatile(data, u32::from(byte)) };
}

/// Prints formatted text to the console; the target of [`print!`](crate::print).
#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    // `Console::write_str` never fails.
    let _ = Console.write_fmt(args);
}

/// Prints to the guest console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the guest console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
