//! The configuration-space header every function has (PCI 3.0, 6.1 "Configuration Space
//! Organization", figure 6-1; PCIe 4.0, 7.5.1 "PCI-Compatible Configuration Registers"): the
//! registers' offsets by their PCI names, and the fields of Command, Status and Header Type.

/// `Vendor ID` (16 bits). 0xFFFF is never a vendor: an empty slot reads all-ones.
pub const VENDOR_ID: u16 = 0x00;
/// `Device ID` (16 bits).
pub const DEVICE_ID: u16 = 0x02;
/// `Command` (16 bits, [`Command`]).
pub const COMMAND: u16 = 0x04;
/// `Status` (16 bits, [`Status`]).
pub const STATUS: u16 = 0x06;
/// `Revision ID` (8 bits).
pub const REVISION_ID: u16 = 0x08;
/// `Class Code` (24 bits: programming interface, sub-class, base class, from 0x09 up).
pub const CLASS_CODE: u16 = 0x09;
/// `Cache Line Size` (8 bits).
pub const CACHE_LINE_SIZE: u16 = 0x0c;
/// `Latency Timer` (8 bits; hardwired to 0 on PCIe).
pub const LATENCY_TIMER: u16 = 0x0d;
/// `Header Type` (8 bits, [`HeaderType`]).
pub const HEADER_TYPE: u16 = 0x0e;
/// `BIST` (8 bits).
pub const BIST: u16 = 0x0f;
/// `Base Address Register 0`; BAR n is at `BAR0 + 4 n`, n < 6 in a type 0 header.
pub const BAR0: u16 = 0x10;
/// How many BARs a type 0 header has.
pub const BAR_COUNT: usize = 6;
/// `CardBus CIS Pointer` (type 0).
pub const CARDBUS_CIS_POINTER: u16 = 0x28;
/// `Subsystem Vendor ID` (type 0).
pub const SUBSYSTEM_VENDOR_ID: u16 = 0x2c;
/// `Subsystem ID` (type 0).
pub const SUBSYSTEM_ID: u16 = 0x2e;
/// `Expansion ROM Base Address` (type 0).
pub const EXPANSION_ROM_BASE: u16 = 0x30;
/// `Capabilities Pointer` (8 bits; valid when `Status.Capabilities List`).
pub const CAPABILITIES_POINTER: u16 = 0x34;
/// `Interrupt Line` (8 bits): a scratch register for software, no effect on the device
/// (PCI 3.0, 6.2.4).
pub const INTERRUPT_LINE: u16 = 0x3c;
/// `Interrupt Pin` (8 bits, read-only): 0 none, 1..=4 INTA#..INTD#.
pub const INTERRUPT_PIN: u16 = 0x3d;
/// `Min_Gnt` (type 0; 0 on PCIe).
pub const MIN_GNT: u16 = 0x3e;
/// `Max_Lat` (type 0; 0 on PCIe).
pub const MAX_LAT: u16 = 0x3f;
/// The end of the header; device-specific registers and capabilities follow, up to 256
/// bytes, then the PCIe extended space up to 4096.
pub const HEADER_END: u16 = 0x40;
/// A function's configuration space through ECAM.
pub const CONFIG_SPACE_SIZE: u16 = 0x1000;

/// The `Command` register (PCI 3.0, 6.2.2; PCIe 4.0, 7.5.1.1.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Command(pub u16);

impl Command {
    /// `I/O Space Enable` (bit 0): the function decodes its I/O BARs.
    pub const IO_SPACE: u16 = 1 << 0;
    /// `Memory Space Enable` (bit 1): the function decodes its memory BARs.
    pub const MEMORY_SPACE: u16 = 1 << 1;
    /// `Bus Master Enable` (bit 2): the function may issue memory requests (DMA, MSI).
    pub const BUS_MASTER: u16 = 1 << 2;
    /// `Special Cycle Enable` (bit 3; RO 0 on PCIe).
    pub const SPECIAL_CYCLE: u16 = 1 << 3;
    /// `Memory Write and Invalidate` (bit 4; RO 0 on PCIe).
    pub const MEMORY_WRITE_INVALIDATE: u16 = 1 << 4;
    /// `VGA Palette Snoop` (bit 5; RO 0 on PCIe).
    pub const VGA_PALETTE_SNOOP: u16 = 1 << 5;
    /// `Parity Error Response` (bit 6).
    pub const PARITY_ERROR_RESPONSE: u16 = 1 << 6;
    /// `IDSEL Stepping/Wait Cycle Control` (bit 7; RO 0 on PCIe).
    pub const STEPPING: u16 = 1 << 7;
    /// `SERR# Enable` (bit 8).
    pub const SERR: u16 = 1 << 8;
    /// `Fast Back-to-Back Transactions Enable` (bit 9; RO 0 on PCIe).
    pub const FAST_BACK_TO_BACK: u16 = 1 << 9;
    /// `Interrupt Disable` (bit 10): the function does not assert its INTx pin.
    pub const INTERRUPT_DISABLE: u16 = 1 << 10;

    /// Whether the `bit` (one of the constants) is set.
    #[must_use]
    pub const fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
}

/// The `Status` register (PCI 3.0, 6.2.3; PCIe 4.0, 7.5.1.1.4). Its error bits are RW1C:
/// writing 1 clears them, writing 0 leaves them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status(pub u16);

impl Status {
    /// `Interrupt Status` (bit 3, RO): the function's INTx is asserted (before `Interrupt
    /// Disable`).
    pub const INTERRUPT_STATUS: u16 = 1 << 3;
    /// `Capabilities List` (bit 4, RO): `Capabilities Pointer` is valid.
    pub const CAPABILITIES_LIST: u16 = 1 << 4;
    /// `Master Data Parity Error` (bit 8, RW1C).
    pub const MASTER_DATA_PARITY_ERROR: u16 = 1 << 8;
    /// `Signaled Target Abort` (bit 11, RW1C).
    pub const SIGNALED_TARGET_ABORT: u16 = 1 << 11;
    /// `Received Target Abort` (bit 12, RW1C).
    pub const RECEIVED_TARGET_ABORT: u16 = 1 << 12;
    /// `Received Master Abort` (bit 13, RW1C).
    pub const RECEIVED_MASTER_ABORT: u16 = 1 << 13;
    /// `Signaled System Error` (bit 14, RW1C).
    pub const SIGNALED_SYSTEM_ERROR: u16 = 1 << 14;
    /// `Detected Parity Error` (bit 15, RW1C).
    pub const DETECTED_PARITY_ERROR: u16 = 1 << 15;
}

/// The `Header Type` register (PCI 3.0, 6.2.1): the layout of bytes 0x10..0x40 in bits 6:0,
/// and in bit 7 whether the device has functions other than 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderType(pub u8);

impl HeaderType {
    /// Bit 7: `Multi-Function Device`.
    pub const MULTI_FUNCTION: u8 = 1 << 7;

    /// Bits 6:0: 0 for an endpoint (type 0), 1 for a PCI-to-PCI bridge (type 1).
    #[must_use]
    pub const fn layout(self) -> u8 {
        self.0 & 0x7f
    }

    /// Whether the device has more functions than 0.
    #[must_use]
    pub const fn is_multi_function(self) -> bool {
        self.0 & Self::MULTI_FUNCTION != 0
    }
}

/// The byte offset `offset` of a register within its DWORD, as a shift in bits.
#[must_use]
pub const fn lane_shift(offset: u16) -> u32 {
    (offset as u32 & 3) * 8
}
