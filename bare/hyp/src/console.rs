//! Moat's own console: the machine's UART (a PL011 or a Cadence UART, `uart.rs`), found in the
//! device tree, shared by Moat's log lines and the bytes the VMs write to their emulated UARTs. With several VMs each VM's lines
//! are prefixed with its name and its input comes by focus (`moat_devices::console`: Ctrl-T
//! three times gives the focus to the next VM).
//!
//! Log lines start with `moat: ` and always begin on a fresh line, even when the guest left its
//! last line unfinished. The fault path writes through [`emergency_write`], which does not take
//! the lock, so that a fault while the lock is held still gets its diagnostic out.

use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use moat_devices::console::{ConsoleMux, FocusSwitch, Received};

use crate::lock::Lock;
use crate::platform::UartKind;
use crate::uart::Port;

struct Console {
    uart: Port,
    /// The VMs' output, line by line (`moat_devices::console`); made once the heap is up and
    /// the VMs are known.
    mux: Option<ConsoleMux>,
    /// The console is at the start of a line (before the VMs share it).
    at_line_start: bool,
    /// The focus-switch key sequence in the input.
    switch: FocusSwitch,
    /// Received bytes for the focused VM not yet given to it (held presses of the switch key
    /// followed by another byte), in order.
    held_input: Vec<u8>,
}

impl Console {
    /// Writes bytes to the UART as they are.
    fn raw(uart: &mut Port, bytes: &[u8]) {
        bytes.iter().for_each(|&b| uart.write_byte(b));
    }

    /// Writes a byte VM `vm` sent to its UART when several VMs share the console: their lines
    /// told apart by the mux's prefixes. Not inlined: it keeps [`guest_byte`]'s one-VM path,
    /// inlined into the exit paths, small.
    #[inline(never)]
    fn shared_byte(&mut self, vm: usize, byte: u8) {
        let uart = &mut self.uart;
        if let Some(mux) = self.mux.as_mut() {
            mux.guest_byte(vm, byte, &mut |b| Self::raw(uart, b));
        }
    }

    /// Writes one `moat: ` line, on a line of its own.
    fn line(&mut self, args: fmt::Arguments<'_>) {
        self.status(format_args!("moat: {args}"));
    }

    /// Writes one line, on a line of its own.
    fn status(&mut self, args: fmt::Arguments<'_>) {
        let uart = &mut self.uart;
        match self.mux.as_mut() {
            Some(mux) => mux.before_log_line(&mut |b| Self::raw(uart, b)),
            None if !self.at_line_start => Self::raw(uart, b"\r\n"),
            None => {}
        }
        // Writing to the UART cannot fail.
        let _ = LineWriter(&mut self.uart).write_fmt(format_args!("{args}\n"));
        if let Some(mux) = self.mux.as_mut() {
            mux.after_log_line();
        }
        self.at_line_start = true;
    }
}

/// Moat's own text: `\n` becomes `\r\n`.
struct LineWriter<'a>(&'a mut Port);

impl Write for LineWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.0.write_byte(b'\r');
            }
            self.0.write_byte(b);
        }
        Ok(())
    }
}

static CONSOLE: Lock<Option<Console>> = Lock::new(None);
static UART_BASE: AtomicUsize = AtomicUsize::new(0);
/// Whether the console is a Cadence UART rather than a PL011, for [`emergency_write`].
static UART_CADENCE: AtomicBool = AtomicBool::new(false);
/// The receive interrupt is off because the guest's UART had no room.
static RX_PAUSED: AtomicBool = AtomicBool::new(false);
/// The VM whose UART gets the console's input.
static FOCUS: AtomicUsize = AtomicUsize::new(0);
/// Input is waiting for a VM other than the one whose exit found it (the focus moved, or the
/// receive interrupt came while another VM ran): the CPU hands it over once it holds no VM.
static INPUT_DEFERRED: AtomicBool = AtomicBool::new(false);

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
        mux: None,
        at_line_start: true,
        switch: FocusSwitch::default(),
        held_input: Vec::new(),
    });
    UART_CADENCE.store(kind == UartKind::Cadence, Ordering::Release);
    UART_BASE.store(base, Ordering::Release);
}

/// Shares the console among VMs named `names`, in the machine's order; the first has the
/// focus. With one VM its output goes out unchanged.
pub fn share<'a>(names: impl IntoIterator<Item = &'a str>) {
    let mux = ConsoleMux::new(names);
    // One VM has nothing to tell apart: its bytes go straight to the UART, as Moat's own
    // console path does before the VMs exist (the cheapest write an MMIO exit can make).
    if mux.vms() > 1
        && let Some(console) = CONSOLE.lock().as_mut()
    {
        console.mux = Some(mux);
    }
    FOCUS.store(0, Ordering::Relaxed);
}

/// Writes one `moat: ` log line.
pub fn log_line(args: fmt::Arguments<'_>) {
    if let Some(console) = CONSOLE.lock().as_mut() {
        console.line(args);
    }
}

/// Writes one machine-readable line (`MOAT-VM: ...`), on a line of its own.
pub fn status_line(args: fmt::Arguments<'_>) {
    if let Some(console) = CONSOLE.lock().as_mut() {
        console.status(args);
    }
}

/// Writes a byte VM `vm` sent to its UART. Inlined into the exit paths: with one VM the byte
/// goes straight to the UART (the cheapest write an MMIO exit can make); the line bookkeeping
/// of several VMs is [`Console::shared_byte`]'s.
#[inline]
pub fn guest_byte(vm: usize, byte: u8) {
    if let Some(console) = CONSOLE.lock().as_mut() {
        if console.mux.is_some() {
            console.shared_byte(vm, byte);
        } else {
            console.uart.write_byte(byte);
            console.at_line_start = byte == b'\n';
        }
    }
}

/// VM `vm` has nothing to do (a vCPU waits for an interrupt): its partial line, a prompt
/// waiting for input, is shown.
pub fn idle(vm: usize) {
    if let Some(console) = CONSOLE.lock().as_mut() {
        let uart = &mut console.uart;
        if let Some(mux) = console.mux.as_mut() {
            mux.idle(vm, &mut |b| Console::raw(uart, b));
        }
    }
}

/// The VM whose UART gets the console's input.
pub fn focus() -> usize {
    FOCUS.load(Ordering::Relaxed)
}

/// Notes that received input waits for the focused VM while another is locked.
pub fn defer_input() {
    INPUT_DEFERRED.store(true, Ordering::Release);
}

/// Whether input waits to be handed to the focused VM (and forgets it: the caller hands it).
pub fn take_deferred_input() -> bool {
    // A plain load first: the exit path asks after every exit, and input is rare.
    INPUT_DEFERRED.load(Ordering::Relaxed) && INPUT_DEFERRED.swap(false, Ordering::AcqRel)
}

/// A byte received on the console for the focused VM, if one waits (errors are dropped: a
/// framing or parity error on a host terminal means nothing to the guest). With several VMs,
/// Ctrl-T pressed three times moves the focus to the next VM instead: then `None`, and the
/// rest of the input waits for the new focus ([`take_deferred_input`]).
pub fn receive() -> Option<u8> {
    let mut guard = CONSOLE.lock();
    let console = guard.as_mut()?;
    loop {
        if !console.held_input.is_empty() {
            return Some(console.held_input.remove(0));
        }
        let byte = console.uart.read_byte()?;
        let Some(mux) = console.mux.as_mut().filter(|mux| mux.vms() > 1) else {
            return Some(byte);
        };
        match console.switch.receive(byte) {
            Received::Held => {}
            Received::Deliver { bytes, len } => console.held_input.extend_from_slice(&bytes[..len]),
            Received::Switch => {
                let uart = &mut console.uart;
                let focus = mux.switch_focus(&mut |b| Console::raw(uart, b));
                let name = alloc::string::String::from(mux.name(focus));
                FOCUS.store(focus, Ordering::Relaxed);
                console.line(format_args!(
                    "console: input goes to VM '{name}' (Ctrl-T three times: the next VM)"
                ));
                defer_input();
                return None;
            }
        }
    }
}

/// Turns the console's receive interrupts (`UARTIMSC.RXIM`, `RTIM`) on or off: off while the
/// guest's UART has no room, so that a level interrupt Moat cannot serve does not storm.
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
