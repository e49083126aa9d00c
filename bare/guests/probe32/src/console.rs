//! The console: the PL011 the device tree names (PL011 TRM DDI 0183: `UARTDR` at 0x00, `UARTFR`
//! at 0x18 with `TXFF` bit 5), written by polling, and the `println!` the probe prints with.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};

/// The PL011's base address (0 until [`init`]: output is dropped).
static BASE: AtomicUsize = AtomicUsize::new(0);

/// Uses the PL011 at `base` from now on.
pub fn init(base: usize) {
    BASE.store(base, Ordering::Relaxed);
}

/// Writes to the PL011.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        const UARTFR: usize = 0x18;
        const TXFF: u32 = 1 << 5;
        let base = BASE.load(Ordering::Relaxed);
        if base == 0 {
            return Ok(());
        }
        for byte in s.bytes() {
            // SAFETY: `base` is the device tree's PL011, identity-mapped (MMU off, or the
            // probe's tables map its 2 MiB as Device memory); UARTFR and UARTDR are 32 bits.
            unsafe {
                while core::ptr::read_volatile((base + UARTFR) as *const u32) & TXFF != 0 {}
                core::ptr::write_volatile(base as *mut u32, u32::from(byte));
            }
        }
        Ok(())
    }
}

/// Prints a line on the console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::console::Console, $($arg)*);
    }};
}
