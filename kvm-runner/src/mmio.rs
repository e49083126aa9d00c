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
    /// A read of `data.len()` bytes at `addr`: `data` receives the bytes read (little-endian,
    /// as KVM takes them).
    ///
    /// # Errors
    ///
    /// [`Unclaimed`] for an address outside the PL011's window or a length other than 1, 2, 4
    /// or 8; `data` is then left as it was.
    pub fn read(&mut self, addr: u64, data: &mut [u8]) -> Result<Effects, Unclaimed> {
        let (offset, size) = Self::decode(addr, data.len(), false)?;
        let access = Access::read(offset, size);
        let (value, effects) = self.uart.access(access);
        store_le(data, value & access.size_mask());
        Ok(effects.into())
    }

    /// A write of `data` (little-endian, as KVM gives it) at `addr`.
    ///
    /// # Errors
    ///
    /// As [`Bus::read`].
    pub fn write(&mut self, addr: u64, data: &[u8]) -> Result<Effects, Unclaimed> {
        let (offset, size) = Self::decode(addr, data.len(), true)?;
        let (_, effects) = self.uart.access(Access::write(offset, size, load_le(data)));
        Ok(effects.into())
    }

    /// The offset into the PL011's window and the access size.
    fn decode(addr: u64, len: usize, write: bool) -> Result<(u64, u8), Unclaimed> {
        let unclaimed = Unclaimed { addr, len, write };
        let offset = addr
            .checked_sub(PL011_BASE)
            .filter(|&o| o < PL011_SIZE)
            .ok_or(unclaimed)?;
        match len {
            1 => Ok((offset, 1)),
            2 => Ok((offset, 2)),
            4 => Ok((offset, 4)),
            8 => Ok((offset, 8)),
            _ => Err(unclaimed),
        }
    }
}

impl From<DeviceEffects> for Effects {
    fn from(effects: DeviceEffects) -> Self {
        Self {
            console_out: effects.console_out,
            uart_irq: effects.irq_level,
        }
    }
}

// The byte conversions go through fixed-size arrays, one arm per access size, so that no
// variable-length copy is left: the C library's `memcpy` for one would be its SVE variant on an
// SVE host, and an SVE instruction after every `KVM_RUN` costs the kernel an SVE access trap
// and a state reload (measured: about 600 instructions per MMIO exit under QEMU `-cpu max`).

/// `data` (1, 2, 4 or 8 bytes, little-endian) as a number; other lengths read as 0 (the
/// caller has refused them).
fn load_le(data: &[u8]) -> u64 {
    match data.len() {
        1 => u64::from(data[0]),
        2 => <[u8; 2]>::try_from(data).map_or(0, |b| u64::from(u16::from_le_bytes(b))),
        4 => <[u8; 4]>::try_from(data).map_or(0, |b| u64::from(u32::from_le_bytes(b))),
        8 => <[u8; 8]>::try_from(data).map_or(0, u64::from_le_bytes),
        _ => 0,
    }
}

/// Stores the low `data.len()` bytes of `value` (1, 2, 4 or 8) into `data`, little-endian.
#[allow(clippy::cast_possible_truncation)] // the truncation to the access size is the point
fn store_le(data: &mut [u8], value: u64) {
    match data.len() {
        1 => data[0] = value as u8,
        2 => {
            if let Ok(d) = <&mut [u8; 2]>::try_from(data) {
                *d = (value as u16).to_le_bytes();
            }
        }
        4 => {
            if let Ok(d) = <&mut [u8; 4]>::try_from(data) {
                *d = (value as u32).to_le_bytes();
            }
        }
        8 => {
            if let Ok(d) = <&mut [u8; 8]>::try_from(data) {
                *d = value.to_le_bytes();
            }
        }
        _ => {}
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
        bus.read(addr, &mut data).unwrap();
        u32::from_le_bytes(data)
    }

    #[test]
    fn a_byte_written_to_uartdr_goes_to_the_console() {
        let mut bus = Bus::default();
        let effects = bus.write(PL011_BASE, &[b'K', 0, 0, 0]).unwrap();
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
        bus.read(CR + 1, &mut data).unwrap();
        // An offset that is not word-aligned reaches no register (the model reads it as 0).
        assert_eq!(data, [0]);
        let mut data = [0xAA; 2];
        bus.read(CR, &mut data).unwrap();
        assert_eq!(data, [0x00, 0x03]);
    }

    #[test]
    fn unmasking_the_transmit_interrupt_raises_the_uart_line() {
        let mut bus = Bus::default();
        let tx = 1u32 << 5;
        let effects = bus.write(IMSC, &tx.to_le_bytes()).unwrap();
        assert_eq!(effects.uart_irq, Some(true));
    }

    #[test]
    fn the_byte_conversions_are_little_endian_at_every_access_size() {
        for (len, value) in [
            (1, 0xA1),
            (2, 0xB2A1),
            (4, 0xD4C3_B2A1),
            (8, 0x0807_0605_D4C3_B2A1),
        ] {
            let mut data = vec![0u8; len];
            store_le(&mut data, 0x0807_0605_D4C3_B2A1);
            assert_eq!(data[0], 0xA1, "{len}");
            assert_eq!(load_le(&data), value, "{len}");
        }
    }

    #[test]
    fn accesses_outside_the_uart_window_or_of_odd_length_are_unclaimed() {
        let mut bus = Bus::default();
        let mut data = [0u8; 4];
        assert_eq!(
            bus.read(PL011_BASE + PL011_SIZE, &mut data),
            Err(Unclaimed {
                addr: PL011_BASE + PL011_SIZE,
                len: 4,
                write: false
            })
        );
        assert!(bus.write(PL011_BASE - 4, &data).is_err());
        assert!(bus.read(FR, &mut [0u8; 3]).is_err());
    }
}
