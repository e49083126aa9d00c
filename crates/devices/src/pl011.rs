//! An emulated Arm PrimeCell UART (PL011, Arm DDI 0183) as the guest sees it at its window.
//!
//! Transmission is immediate: every byte written to `UARTDR` becomes a console effect, so the
//! transmit FIFO is always empty (`UARTFR.TXFE` = 1, `TXFF` = 0, `BUSY` = 0). Received bytes are
//! pushed by the hypervisor and read from `UARTDR`. The interrupt state (`UARTRIS`, `UARTIMSC`,
//! `UARTMIS`) follows the TRM so that the level of the UART's interrupt line can be reported as
//! an effect; routing it to the guest's interrupt controller is the hypervisor's job.

use crate::{Access, DeviceEffects, MmioDevice};

/// Register offsets within the 4 KiB window (PL011 TRM, "Summary of registers").
mod reg {
    pub const DR: u64 = 0x000;
    pub const FR: u64 = 0x018;
    pub const ILPR: u64 = 0x020;
    pub const IBRD: u64 = 0x024;
    pub const FBRD: u64 = 0x028;
    pub const LCR_H: u64 = 0x02C;
    pub const CR: u64 = 0x030;
    pub const IFLS: u64 = 0x034;
    pub const IMSC: u64 = 0x038;
    pub const RIS: u64 = 0x03C;
    pub const MIS: u64 = 0x040;
    pub const ICR: u64 = 0x044;
    pub const DMACR: u64 = 0x048;
    /// `UARTPeriphID0` .. `UARTPCellID3`, one byte per word.
    pub const ID_START: u64 = 0xFE0;
}

/// `UARTFR` bits.
mod fr {
    pub const RXFE: u32 = 1 << 4;
    pub const TXFE: u32 = 1 << 7;
}

/// Interrupt bits shared by `UARTRIS`, `UARTIMSC`, `UARTMIS` and `UARTICR`.
mod int {
    /// Receive interrupt.
    pub const RX: u32 = 1 << 4;
    /// Transmit interrupt.
    pub const TX: u32 = 1 << 5;
    /// Receive timeout interrupt.
    pub const RT: u32 = 1 << 6;
    /// Every interrupt bit the TRM defines (bits [10:0]).
    pub const ALL: u32 = 0x7FF;
}

/// `UARTPeriphID0..3` and `UARTPCellID0..3`: part 0x011, designer Arm (0x41), revision r1p5,
/// and the PrimeCell identification `0xB105F00D`, as a PL011 on QEMU `virt` reports them.
const ID_BYTES: [u8; 8] = [0x11, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1];

/// Depth of the receive FIFO (PL011 TRM: 16 entries).
const RX_FIFO_DEPTH: usize = 16;

/// The PL011's programmer-visible state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pl011 {
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    dmacr: u32,
    /// Raw interrupt status bits that latch until cleared through `UARTICR`.
    latched: u32,
    rx: [u8; RX_FIFO_DEPTH],
    rx_len: usize,
}

impl Default for Pl011 {
    fn default() -> Self {
        Self::new()
    }
}

impl Pl011 {
    /// A UART in its reset state (PL011 TRM reset values: `UARTCR` = 0x300, `UARTIFLS` = 0x12).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: 0x300,
            ifls: 0x12,
            imsc: 0,
            dmacr: 0,
            latched: 0,
            rx: [0; RX_FIFO_DEPTH],
            rx_len: 0,
        }
    }

    /// Offers a received byte; returns `false` (byte dropped, as a full FIFO would overrun) when
    /// the receive FIFO is full.
    pub fn push_rx(&mut self, byte: u8) -> bool {
        if self.rx_len == RX_FIFO_DEPTH {
            return false;
        }
        self.rx[self.rx_len] = byte;
        self.rx_len += 1;
        true
    }

    /// Whether the guest can accept another received byte.
    #[must_use]
    pub const fn rx_has_room(&self) -> bool {
        self.rx_len < RX_FIFO_DEPTH
    }

    /// `UARTRIS`: the transmit interrupt is asserted while the (always empty) transmit FIFO is
    /// at or below its trigger level; the receive interrupt while data waits.
    fn raw_interrupts(&self) -> u32 {
        let rx = if self.rx_len > 0 {
            int::RX | int::RT
        } else {
            0
        };
        (self.latched | int::TX | rx) & int::ALL
    }

    /// The level of the UART's combined interrupt output (`UARTINTR`): any unmasked raw bit.
    #[must_use]
    pub fn interrupt_level(&self) -> bool {
        self.raw_interrupts() & self.imsc != 0
    }

    fn pop_rx(&mut self) -> u32 {
        if self.rx_len == 0 {
            return 0;
        }
        let byte = self.rx[0];
        self.rx.copy_within(1..self.rx_len, 0);
        self.rx_len -= 1;
        u32::from(byte)
    }

    fn flags(&self) -> u32 {
        let rx = if self.rx_len == 0 { fr::RXFE } else { 0 };
        fr::TXFE | rx
    }

    fn read_register(&mut self, offset: u64) -> u32 {
        match offset {
            reg::DR => self.pop_rx(),
            _ => self.read_stateless(offset),
        }
    }

    /// A read of any register but `UARTDR`: none changes the UART's state.
    #[inline]
    fn read_stateless(&self, offset: u64) -> u32 {
        match offset {
            reg::FR => self.flags(),
            reg::ILPR => self.ilpr,
            reg::IBRD => self.ibrd,
            reg::FBRD => self.fbrd,
            reg::LCR_H => self.lcr_h,
            reg::CR => self.cr,
            reg::IFLS => self.ifls,
            reg::IMSC => self.imsc,
            reg::RIS => self.raw_interrupts(),
            reg::MIS => self.raw_interrupts() & self.imsc,
            reg::DMACR => self.dmacr,
            reg::ID_START..=0xFFC => id_byte(offset),
            // RSR/ECR: no receive errors ever happen; reserved offsets read as zero.
            _ => 0,
        }
    }

    fn write_register(&mut self, offset: u64, value: u32, effects: &mut DeviceEffects) {
        match offset {
            // Truncation intended: `UARTDR` bits [7:0] are the data byte.
            #[allow(clippy::cast_possible_truncation)]
            reg::DR => effects.console_out = Some(value as u8),
            reg::ILPR => self.ilpr = value & 0xFF,
            reg::IBRD => self.ibrd = value & 0xFFFF,
            reg::FBRD => self.fbrd = value & 0x3F,
            reg::LCR_H => self.lcr_h = value & 0xFF,
            reg::CR => self.cr = value & 0xFF87,
            reg::IFLS => self.ifls = value & 0x3F,
            reg::IMSC => self.imsc = value & int::ALL,
            reg::ICR => self.latched &= !value,
            reg::DMACR => self.dmacr = value & 0x7,
            // A write to RSR/ECR clears the receive errors, of which there are none; read-only
            // and reserved offsets ignore writes.
            _ => {}
        }
    }
}

/// The identification byte at `offset` in 0xFE0..=0xFFC (one byte per 32-bit word).
fn id_byte(offset: u64) -> u32 {
    let index = usize::try_from((offset - reg::ID_START) / 4).unwrap_or(usize::MAX);
    ID_BYTES.get(index).map_or(0, |&b| u32::from(b))
}

impl MmioDevice for Pl011 {
    #[inline]
    fn access(&mut self, access: Access) -> (u64, DeviceEffects) {
        match (access.offset, access.write) {
            // A byte sent: transmission is immediate (the transmit FIFO stays empty), so a
            // write to `UARTDR` changes no state and no interrupt level, and is the console
            // effect alone. The most frequent write skips the level comparison.
            // Truncation intended: `UARTDR` bits [7:0] are the data byte.
            #[allow(clippy::cast_possible_truncation)]
            (reg::DR, Some(data)) => (
                0,
                DeviceEffects {
                    console_out: Some(data as u8),
                    ..DeviceEffects::default()
                },
            ),
            // Reading any register but `UARTDR` changes no state, so no interrupt level: the
            // most frequent access (the guest polling a status register) skips the level
            // comparison, and the state-changing path's frame (`access_changing`).
            (offset, None) if offset != reg::DR => {
                let value = if offset.is_multiple_of(4) {
                    u64::from(self.read_stateless(offset))
                } else {
                    0
                };
                (value & access.size_mask(), DeviceEffects::default())
            }
            _ => self.access_changing(access),
        }
    }
}

impl Pl011 {
    /// Any access, with the interrupt level compared before and after: what [`MmioDevice::access`]
    /// does for a write to any register but `UARTDR` and a read of `UARTDR` (which pops the
    /// receive FIFO), the accesses that may change the level; its shortcuts for the others are
    /// held to this by a property test.
    #[inline(never)]
    fn access_changing(&mut self, access: Access) -> (u64, DeviceEffects) {
        let mut effects = DeviceEffects::default();
        let before = self.interrupt_level();
        // The PL011's registers are 32-bit (narrower accesses see the low bits); an offset that
        // is not word-aligned reaches no register.
        let offset = access.offset;
        let value = if !offset.is_multiple_of(4) {
            0
        } else if let Some(data) = access.write {
            // Truncation intended: the registers are 32 bits wide.
            #[allow(clippy::cast_possible_truncation)]
            self.write_register(offset, data as u32, &mut effects);
            0
        } else {
            u64::from(self.read_register(offset))
        };
        let after = self.interrupt_level();
        if before != after {
            effects.irq_level = Some(after);
        }
        (value & access.size_mask(), effects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(uart: &mut Pl011, offset: u64) -> u64 {
        uart.access(Access::read(offset, 4)).0
    }

    fn write(uart: &mut Pl011, offset: u64, value: u64) -> DeviceEffects {
        uart.access(Access::write(offset, 4, value)).1
    }

    #[test]
    fn data_register_write_becomes_console_output() {
        let mut uart = Pl011::new();
        assert_eq!(
            write(&mut uart, reg::DR, u64::from(b'M')).console_out,
            Some(b'M')
        );
    }

    #[test]
    fn flags_report_transmit_fifo_empty_and_receive_fifo_empty() {
        let mut uart = Pl011::new();
        assert_eq!(read(&mut uart, reg::FR), u64::from(fr::TXFE | fr::RXFE));
    }

    #[test]
    fn received_bytes_are_read_in_order_then_fifo_reads_empty() {
        let mut uart = Pl011::new();
        assert!(uart.push_rx(b'a'));
        assert!(uart.push_rx(b'b'));
        assert_eq!(read(&mut uart, reg::FR) & u64::from(fr::RXFE), 0);
        assert_eq!(read(&mut uart, reg::DR), u64::from(b'a'));
        assert_eq!(read(&mut uart, reg::DR), u64::from(b'b'));
        assert_ne!(read(&mut uart, reg::FR) & u64::from(fr::RXFE), 0);
    }

    #[test]
    fn receive_fifo_holds_sixteen_bytes() {
        let mut uart = Pl011::new();
        for i in 0..16 {
            assert!(uart.push_rx(i));
        }
        assert!(!uart.push_rx(16));
        assert!(!uart.rx_has_room());
    }

    #[test]
    fn identification_registers_read_as_a_pl011_primecell() {
        let mut uart = Pl011::new();
        let ids: [u64; 8] = core::array::from_fn(|i| read(&mut uart, 0xFE0 + 4 * i as u64));
        assert_eq!(ids, [0x11, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1]);
    }

    #[test]
    fn control_register_resets_to_0x300_and_keeps_writes() {
        let mut uart = Pl011::new();
        assert_eq!(read(&mut uart, reg::CR), 0x300);
        write(&mut uart, reg::CR, 0x301);
        assert_eq!(read(&mut uart, reg::CR), 0x301);
    }

    #[test]
    fn unmasking_transmit_interrupt_raises_the_line() {
        let mut uart = Pl011::new();
        let effects = write(&mut uart, reg::IMSC, u64::from(int::TX));
        assert_eq!(effects.irq_level, Some(true));
        assert_eq!(read(&mut uart, reg::MIS), u64::from(int::TX));
    }

    #[test]
    fn reading_the_last_byte_lowers_an_unmasked_receive_interrupt() {
        let mut uart = Pl011::new();
        write(&mut uart, reg::IMSC, u64::from(int::RX));
        uart.push_rx(b'x');
        assert!(uart.interrupt_level());
        let (_, effects) = uart.access(Access::read(reg::DR, 4));
        assert_eq!(effects.irq_level, Some(false));
    }

    #[test]
    fn reserved_and_unaligned_offsets_read_zero_and_ignore_writes() {
        let mut uart = Pl011::new();
        assert_eq!(read(&mut uart, 0x100), 0);
        assert_eq!(read(&mut uart, 0x031), 0);
        assert_eq!(write(&mut uart, 0x101, 0x41), DeviceEffects::default());
    }

    #[test]
    fn byte_read_of_flags_sees_the_low_byte() {
        let mut uart = Pl011::new();
        assert_eq!(
            uart.access(Access::read(reg::FR, 1)).0,
            u64::from(fr::TXFE | fr::RXFE)
        );
    }

    /// One step of a guest or the host on a UART: a received byte offered, or an access.
    #[derive(Clone, Debug)]
    enum Step {
        Receive(u8),
        Access(Access),
    }

    /// An access anywhere in the window (the registers weighted), of any size, read or write.
    fn any_access() -> impl proptest::strategy::Strategy<Value = Access> {
        use proptest::prelude::*;
        let offset = prop_oneof![
            (0u64..0x13).prop_map(|r| r * 4),
            Just(0xFE0u64),
            0u64..0x1000,
        ];
        let size = prop_oneof![Just(1u8), Just(2), Just(4), Just(8)];
        (offset, size, any::<Option<u64>>()).prop_map(|(offset, size, write)| Access {
            offset,
            size,
            write: write.map(|v| v & Access::read(0, size).size_mask()),
        })
    }

    fn any_step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            1 => any::<u8>().prop_map(Step::Receive),
            4 => any_access().prop_map(Step::Access),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]
        /// `access`'s shortcuts (a write to `UARTDR`, a read of any other register) answer, and
        /// leave the state, exactly as the level-comparing path does, from any state reached.
        #[test]
        fn shortcut_accesses_are_the_level_comparing_access(
            steps in proptest::collection::vec(any_step(), 0..48),
        ) {
            let (mut fast, mut general) = (Pl011::new(), Pl011::new());
            for step in steps {
                match step {
                    Step::Receive(byte) => {
                        proptest::prop_assert_eq!(fast.push_rx(byte), general.push_rx(byte));
                    }
                    Step::Access(access) => {
                        proptest::prop_assert_eq!(
                            fast.access(access),
                            general.access_changing(access),
                            "{:?}", access
                        );
                    }
                }
                proptest::prop_assert_eq!(&fast, &general);
            }
        }
    }

    #[test]
    fn a_data_register_write_sends_its_low_byte_and_leaves_a_raised_line_alone() {
        let mut uart = Pl011::new();
        write(&mut uart, reg::IMSC, u64::from(int::TX));
        let before = uart.clone();
        let (data, effects) = uart.access(Access::write(reg::DR, 2, 0x1241));
        assert_eq!(data, 0);
        assert_eq!(
            effects,
            DeviceEffects {
                console_out: Some(0x41),
                ..DeviceEffects::default()
            }
        );
        assert_eq!(uart, before, "sending changes no register");
        assert!(uart.interrupt_level());
    }
}
