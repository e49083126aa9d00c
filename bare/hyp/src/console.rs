//! Moat's own console: the machine's UART (a PL011 or a Cadence UART, `uart.rs`), found in the
//! device tree, shared by Moat's log lines and the bytes the guest writes to its emulated UART.
//!
//! Log lines start with `moat: ` and always begin on a fresh line, even when the guest left its
//! last line unfinished. The fault path writes through [`emergency_write`], which does not take
//! the lock, so that a fault while the lock is held still gets its diagnostic out.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::lock::Lock;
use crate::platform::UartKind;
use crate::uart::Port;

struct Console {
    uart: Port,
    at_line_start: bool,
}

impl Console {
    fn put(&mut self, byte: u8) {
        if byte == b'\n' {
            self.uart.write_byte(b'\r');
        }
        self.uart.write_byte(byte);
        self.at_line_start = byte == b'\n';
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(|b| self.put(b));
        Ok(())
    }
}

static CONSOLE: Lock<Option<Console>> = Lock::new(None);
static UART_BASE: AtomicUsize = AtomicUsize::new(0);
/// Whether the console is a Cadence UART rather than a PL011, for [`emergency_write`].
static UART_CADENCE: AtomicBool = AtomicBool::new(false);
/// The receive interrupt is off because the guest's UART had no room.
static RX_PAUSED: AtomicBool = AtomicBool::new(false);

/// Takes the UART of model `kind` at physical address `base` as Moat's console.
///
/// # Safety
///
/// `base` must be the address of such a UART's register block that nothing else drives,
/// mapped (identity) as device memory whenever the console is used.
pub unsafe fn init(kind: UartKind, base: usize) {
    // SAFETY: the caller guarantees `base` is an exclusively owned register block of `kind`.
    let Some(uart) = (unsafe { Port::new(kind, base) }) else {
        return;
    };
    *CONSOLE.lock() = Some(Console {
        uart,
        at_line_start: true,
    });
    UART_CADENCE.store(kind == UartKind::Cadence, Ordering::Release);
    UART_BASE.store(base, Ordering::Release);
}

/// Writes one `moat: ` log line.
pub fn log_line(args: fmt::Arguments<'_>) {
    if let Some(console) = CONSOLE.lock().as_mut() {
        if !console.at_line_start {
            console.put(b'\n');
        }
        // Writing to the UART cannot fail.
        let _ = writeln!(console, "moat: {args}");
    }
}

/// Writes a byte the guest sent to its UART.
pub fn guest_byte(byte: u8) {
    if let Some(console) = CONSOLE.lock().as_mut() {
        console.uart.write_byte(byte);
        console.at_line_start = byte == b'\n';
    }
}

/// A byte received on the console, if one waits (errors are dropped: a framing or parity
/// error on a host terminal means nothing to the guest).
pub fn receive() -> Option<u8> {
    CONSOLE.lock().as_mut().and_then(|c| c.uart.read_byte())
}

/// Turns the console's receive interrupts on or off: off while the guest's UART has no room,
/// so that a level interrupt Moat cannot serve does not storm.
pub fn set_receive_interrupt(enabled: bool) {
    RX_PAUSED.store(!enabled, Ordering::Relaxed);
    if let Some(console) = CONSOLE.lock().as_mut() {
        console.uart.set_receive_interrupt(enabled);
    }
}

/// Whether the receive interrupt is off for want of room in the guest's UART: then a guest
/// read of its UART may have made room, and the console must be read again.
pub fn receive_paused() -> bool {
    RX_PAUSED.load(Ordering::Relaxed)
}

/// Writes without taking the console lock: only for the fault and panic paths, where the lock
/// may be held by the code that faulted. Output may interleave; that is the price of getting it
/// out at all.
pub fn emergency_write(args: fmt::Arguments<'_>) {
    let base = UART_BASE.load(Ordering::Acquire);
    let kind = if UART_CADENCE.load(Ordering::Acquire) {
        UartKind::Cadence
    } else {
        UartKind::Pl011
    };
    // SAFETY: `base` was registered by `init` as the registers of a UART of `kind` (or is 0,
    // and `Port::new` refuses it); a second handle to them on the fault path can only
    // interleave bytes, never corrupt memory.
    let Some(mut uart) = (unsafe { Port::new(kind, base) }) else {
        return;
    };
    let _ = uart.write_fmt(format_args!("\r\n"));
    let _ = uart.write_fmt(args);
    let _ = uart.write_fmt(format_args!("\r\n"));
}

/// Logs a `moat: ` line on the console.
macro_rules! log {
    ($($arg:tt)*) => { $crate::console::log_line(format_args!($($arg)*)) };
}
pub(crate) use log;
