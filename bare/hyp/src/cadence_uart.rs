//! The Cadence UART (`cdns,uart-r1p12`, `xlnx,xuartps`) of the Xilinx Zynq and ZynqMP, as
//! Moat's console on the ZCU102: register names and fields from the Zynq UltraScale+ Device
//! TRM (UG1085), "UART" and the register reference (`Control_reg0`, `Channel_sts_reg0`, ...).
//!
//! Moat keeps the line settings (baud rate, character format) the firmware chose and only
//! makes sure the transmitter and receiver are on: `Control_reg0` resets with both disabled
//! (`TXDIS`, `RXDIS` set), and a byte written to the FIFO while `TXEN` is clear is never sent.

use core::ptr::NonNull;
use safe_mmio::fields::{ReadPure, ReadPureWrite, WriteOnly};
use safe_mmio::{UniqueMmioPointer, field};

/// The registers Moat uses, at their offsets.
#[repr(C, align(4))]
pub struct CadenceRegisters {
    /// 0x00 `Control_reg0`.
    control: ReadPureWrite<u32>,
    /// 0x04 `mode_reg0`.
    _mode: ReadPureWrite<u32>,
    /// 0x08 `Intrpt_en_reg0`: writing 1 unmasks an interrupt.
    interrupt_enable: WriteOnly<u32>,
    /// 0x0C `Intrpt_dis_reg0`: writing 1 masks an interrupt.
    interrupt_disable: WriteOnly<u32>,
    /// 0x10 `Intrpt_mask_reg0`.
    _interrupt_mask: ReadPure<u32>,
    /// 0x14 `Chnl_int_sts_reg0`: raw interrupt status, each bit cleared by writing 1.
    interrupt_status: ReadPureWrite<u32>,
    /// 0x18 `Baud_rate_gen_reg0`.
    _baud_rate_gen: ReadPureWrite<u32>,
    /// 0x1C `Rcvr_timeout_reg0`: the receive timeout in 4-bit-period units, 0 = off.
    receive_timeout: ReadPureWrite<u32>,
    /// 0x20 `Rcvr_FIFO_trigger_level0`: `RTRIG` is raised at this many received bytes.
    receive_trigger: ReadPureWrite<u32>,
    /// 0x24 `Modem_ctrl_reg0`.
    _modem_control: ReadPureWrite<u32>,
    /// 0x28 `Modem_sts_reg0`.
    _modem_status: ReadPure<u32>,
    /// 0x2C `Channel_sts_reg0`.
    channel_status: ReadPure<u32>,
    /// 0x30 `TX_RX_FIFO0`: a write queues a byte, a read takes one.
    fifo: ReadPureWrite<u32>,
}

/// `Control_reg0` fields.
mod control {
    /// `RXEN`: receiver enable (effective only with `RXDIS` clear).
    pub const RXEN: u32 = 1 << 2;
    /// `RXDIS`: receiver disable.
    pub const RXDIS: u32 = 1 << 3;
    /// `TXEN`: transmitter enable (effective only with `TXDIS` clear).
    pub const TXEN: u32 = 1 << 4;
    /// `TXDIS`: transmitter disable.
    pub const TXDIS: u32 = 1 << 5;
}

/// `Channel_sts_reg0` fields.
mod channel_status {
    /// `REMPTY`: the receive FIFO is empty.
    pub const REMPTY: u32 = 1 << 1;
    /// `TFUL`: the transmit FIFO is full.
    pub const TFUL: u32 = 1 << 4;
}

/// Interrupt fields, the same in `Intrpt_en_reg0`, `Intrpt_dis_reg0`, `Intrpt_mask_reg0` and
/// `Chnl_int_sts_reg0`.
mod interrupt {
    /// `RTRIG`: the receive FIFO reached its trigger level.
    pub const RTRIG: u32 = 1 << 0;
    /// `TIMEOUT`: received bytes have waited for the receive timeout.
    pub const TIMEOUT: u32 = 1 << 8;
}

/// `Control_reg0` with the transmitter and receiver on and every other field as it was.
pub const fn enabled_control(control: u32) -> u32 {
    (control & !(control::TXDIS | control::RXDIS)) | control::TXEN | control::RXEN
}

/// A Cadence UART driven by Moat.
pub struct CadenceUart<'a> {
    regs: UniqueMmioPointer<'a, CadenceRegisters>,
}

impl CadenceUart<'static> {
    /// The UART whose registers are at `base`, its transmitter and receiver enabled.
    ///
    /// # Safety
    ///
    /// `base` must be the address of a Cadence UART's register block that nothing else drives
    /// (or, on the fault path, only code that may interleave bytes with this), mapped as
    /// device memory (or reached with the MMU off) whenever the UART is used.
    pub unsafe fn new(base: usize) -> Option<Self> {
        let regs = NonNull::new(base as *mut CadenceRegisters)?;
        // SAFETY: the caller guarantees `base` is a Cadence UART's register block used by
        // nothing else.
        let regs = unsafe { UniqueMmioPointer::new(regs) };
        let mut uart = Self { regs };
        let control = field!(uart.regs, control).read();
        field!(uart.regs, control).write(enabled_control(control));
        // One byte raises `RTRIG`; a receive timeout is not needed for single keystrokes.
        field!(uart.regs, receive_trigger).write(1);
        field!(uart.regs, receive_timeout).write(0);
        Some(uart)
    }
}

impl CadenceUart<'_> {
    /// Sends `byte`, waiting while the transmit FIFO is full.
    pub fn write_byte(&mut self, byte: u8) {
        while field!(self.regs, channel_status).read() & channel_status::TFUL != 0 {
            core::hint::spin_loop();
        }
        field!(self.regs, fifo).write(u32::from(byte));
    }

    /// A received byte, if one waits. Taking the last one clears the receive interrupt's
    /// status, which the UART raises again for the next byte.
    pub fn read_byte(&mut self) -> Option<u8> {
        if field!(self.regs, channel_status).read() & channel_status::REMPTY != 0 {
            field!(self.regs, interrupt_status).write(interrupt::RTRIG | interrupt::TIMEOUT);
            return None;
        }
        // The FIFO's low 8 bits are the character.
        Some(field!(self.regs, fifo).read() as u8)
    }

    /// Unmasks or masks the receive interrupt (`RTRIG`).
    pub fn set_receive_interrupt(&mut self, enabled: bool) {
        let rx = interrupt::RTRIG;
        if enabled {
            field!(self.regs, interrupt_enable).write(rx);
        } else {
            field!(self.regs, interrupt_disable).write(rx);
        }
    }
}
