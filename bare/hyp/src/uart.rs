//! The machine's console UART, whichever model the device tree names: a PL011 (QEMU `virt`,
//! through `arm-pl011-uart`) or a Cadence UART (the ZCU102, `cadence_uart.rs`). The console
//! (`console.rs`) sends, receives and masks its receive interrupt through [`Port`] alone.

use crate::cadence_uart::CadenceUart;
use crate::platform::UartKind;
use arm_pl011_uart::{Interrupts, PL011Registers, Uart};
use core::fmt;
use core::ptr::NonNull;
use safe_mmio::UniqueMmioPointer;

/// One console UART.
pub enum Port {
    /// An Arm PL011.
    Pl011(Uart<'static>),
    /// A Cadence UART.
    Cadence(CadenceUart<'static>),
}

impl Port {
    /// The UART of model `kind` at `base`, ready to send.
    ///
    /// # Safety
    ///
    /// `base` must be the address of such a UART's register block that nothing else drives
    /// (or, on the fault path, only another `Port` that may interleave bytes with this one),
    /// mapped as device memory (or reached with the MMU off) whenever it is used.
    pub unsafe fn new(kind: UartKind, base: usize) -> Option<Self> {
        match kind {
            UartKind::Pl011 => {
                let regs = NonNull::new(base as *mut PL011Registers)?;
                // SAFETY: the caller guarantees `base` is a PL011 register block nothing else
                // drives.
                Some(Self::Pl011(Uart::new(unsafe {
                    UniqueMmioPointer::new(regs)
                })))
            }
            // SAFETY: the caller's guarantee, for a Cadence UART.
            UartKind::Cadence => unsafe { CadenceUart::new(base) }.map(Self::Cadence),
        }
    }

    /// Sends `byte`.
    pub fn write_byte(&mut self, byte: u8) {
        match self {
            Self::Pl011(uart) => uart.write_word(byte),
            Self::Cadence(uart) => uart.write_byte(byte),
        }
    }

    /// A received byte, if one waits (a PL011's framing or parity errors are dropped: they
    /// mean nothing to the guest).
    pub fn read_byte(&mut self) -> Option<u8> {
        match self {
            Self::Pl011(uart) => uart.read_word().ok().flatten(),
            Self::Cadence(uart) => uart.read_byte(),
        }
    }

    /// Turns the receive interrupt on or off (PL011: `UARTIMSC.RXIM` and `RTIM`; Cadence:
    /// `RTRIG`).
    pub fn set_receive_interrupt(&mut self, enabled: bool) {
        match self {
            Self::Pl011(uart) => {
                let rx = Interrupts::RXI | Interrupts::RTI;
                let masks = uart.interrupt_masks();
                let masks = if enabled { masks | rx } else { masks - rx };
                uart.set_interrupt_masks(masks);
            }
            Self::Cadence(uart) => uart.set_receive_interrupt(enabled),
        }
    }
}

impl fmt::Write for Port {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(|b| self.write_byte(b));
        Ok(())
    }
}
