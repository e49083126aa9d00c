//! The MMIO the runner answers in its own process, as a VMM does: KVM hands it every data
//! access outside the memslots and the in-kernel vGIC (`KVM_EXIT_MMIO`: address, length, the
//! bytes written or to be read). The one device is QEMU virt's PL011 at `0x0900_0000`, answered
//! by Moat's own PL011 model (`moat_devices::pl011`), so the guest reads the same registers
//! under KVM as under Moat. Anything else is a guest access to nothing the runner emulates:
//! reported, not guessed at.

use crate::layout::devices::{PL011_BASE, PL011_SIZE};
use moat_devices::pl011::Pl011;
use moat_devices::{Access, DeviceEffects, MmioDevice};
use std::fmt;

/// The devices behind `KVM_EXIT_MMIO`; the default has the PL011 in its reset state.
#[derive(Debug, Default)]
pub struct Bus {
    uart: Pl011,
}

/// An access to an address no device answers, or of a length an MMIO access cannot have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unclaimed {
    /// The IPA accessed.
    pub addr: u64,
    /// The access's length in bytes.
    pub len: usize,
    /// Whether it was a write.
    pub write: bool,
}

impl fmt::Display for Unclaimed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.write { "write to" } else { "read of" };
        write!(
            f,
            "MMIO {what} {:#x} ({} bytes): no device there",
            self.addr, self.len
        )
    }
}

/// What one access did besides its read data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// A byte for the console (a write to `UARTDR`).
    pub console_out: Option<u8>,
    /// The new level of the PL011's interrupt line, when it changed.
    pub uart_irq: Option<bool>,
}

impl Bus {
    /// Carries out one access: `data` holds the bytes written (little-endian, as KVM gives
    /// them) or receives the bytes read.
    ///
    /// # Errors
    ///
    /// [`Unclaimed`] for an address outside the PL011's window or a length other than 1, 2, 4
    /// or 8; `data` is then left as it was.
    pub fn access(
        &mut self,
        addr: u64,
        data: &mut [u8],
        write: bool,
    ) -> Result<Effects, Unclaimed> {
        let unclaimed = Unclaimed {
            addr,
            len: data.len(),
            write,
        };
        let offset = addr
            .checked_sub(PL011_BASE)
            .filter(|&o| o < PL011_SIZE)
            .ok_or(unclaimed)?;
        let size = match data.len() {
            n @ (1 | 2 | 4 | 8) => u8::try_from(n).map_err(|_| unclaimed)?,
            _ => return Err(unclaimed),
        };
        let access = if write {
            let mut bytes = [0u8; 8];
            bytes[..data.len()].copy_from_slice(data);
            Access::write(offset, size, u64::from_le_bytes(bytes))
        } else {
            Access::read(offset, size)
        };
        let (value, effects): (u64, DeviceEffects) = self.uart.access(access);
        if !write {
            let bytes = (value & access.size_mask()).to_le_bytes();
            data.copy_from_slice(&bytes[..data.len()]);
        }
        Ok(Effects {
            console_out: effects.console_out,
            uart_irq: effects.irq_level,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `UARTFR`, `UARTCR` and `UARTPeriphID0`, by offset (PL011 TRM, "Summary of registers").
    const FR: u64 = PL011_BASE + 0x18;
    const CR: u64 = PL011_BASE + 0x30;
    const PERIPH_ID0: u64 = PL011_BASE + 0xFE0;
    const IMSC: u64 = PL011_BASE + 0x38;

    fn read32(bus: &mut Bus, addr: u64) -> u32 {
        let mut data = [0xAA; 4];
        bus.access(addr, &mut data, false).unwrap();
        u32::from_le_bytes(data)
    }

    #[test]
    fn a_byte_written_to_uartdr_goes_to_the_console() {
        let mut bus = Bus::default();
        let effects = bus.access(PL011_BASE, &mut [b'K', 0, 0, 0], true).unwrap();
        assert_eq!(effects.console_out, Some(b'K'));
    }

    #[test]
    fn uartfr_says_transmit_fifo_empty_and_receive_fifo_empty() {
        let mut bus = Bus::default();
        assert_eq!(read32(&mut bus, FR), (1 << 7) | (1 << 4));
    }

    #[test]
    fn other_registers_read_as_the_pl011_reset_values_and_ids() {
        let mut bus = Bus::default();
        assert_eq!(read32(&mut bus, CR), 0x300);
        assert_eq!(read32(&mut bus, PERIPH_ID0), 0x11);
    }

    #[test]
    fn a_narrow_read_fills_exactly_its_bytes() {
        let mut bus = Bus::default();
        let mut data = [0xAA; 1];
        bus.access(CR + 1, &mut data, false).unwrap();
        // An offset that is not word-aligned reaches no register (the model reads it as 0).
        assert_eq!(data, [0]);
        let mut data = [0xAA; 2];
        bus.access(CR, &mut data, false).unwrap();
        assert_eq!(data, [0x00, 0x03]);
    }

    #[test]
    fn unmasking_the_transmit_interrupt_raises_the_uart_line() {
        let mut bus = Bus::default();
        let tx = 1u32 << 5;
        let effects = bus.access(IMSC, &mut tx.to_le_bytes(), true).unwrap();
        assert_eq!(effects.uart_irq, Some(true));
    }

    #[test]
    fn accesses_outside_the_uart_window_or_of_odd_length_are_unclaimed() {
        let mut bus = Bus::default();
        let mut data = [0u8; 4];
        assert_eq!(
            bus.access(PL011_BASE + PL011_SIZE, &mut data, false),
            Err(Unclaimed {
                addr: PL011_BASE + PL011_SIZE,
                len: 4,
                write: false
            })
        );
        assert!(bus.access(PL011_BASE - 4, &mut data, true).is_err());
        assert!(bus.access(FR, &mut [0u8; 3], false).is_err());
    }
}
