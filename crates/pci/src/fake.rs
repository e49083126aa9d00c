//! A fake bus for the tests: functions whose BARs keep only the address bits their size
//! allows (PCI 3.0, 6.2.5.1), whose Status error bits are RW1C, and that read all-ones where
//! nothing is (PCIe 4.0, 7.2.2).

use crate::bar::BarKind;
use crate::header::{BAR_COUNT, BAR0, COMMAND, Command, HEADER_TYPE};
use crate::{Bdf, ConfigSpace};
use std::collections::BTreeMap;

/// One function's configuration space and its BARs' hardware.
#[derive(Clone, Debug)]
pub struct FakeFunction {
    pub regs: [u32; 1024],
    /// Each implemented BAR's kind and size (64-bit ones at their lower index).
    pub bars: [Option<(BarKind, u64)>; BAR_COUNT],
    /// Set when a BAR was written while its decode was enabled in Command.
    pub bar_written_while_decoding: bool,
}

impl FakeFunction {
    /// A function with `vendor`, `device`, `class` (24 bits) and `header_type`.
    pub fn new(vendor: u16, device: u16, class: u32, header_type: u8) -> Self {
        let mut regs = [0; 1024];
        regs[0] = u32::from(device) << 16 | u32::from(vendor);
        regs[2] = class << 8 | 1;
        regs[usize::from(HEADER_TYPE / 4)] = u32::from(header_type) << 16;
        Self {
            regs,
            bars: [None; BAR_COUNT],
            bar_written_while_decoding: false,
        }
    }

    /// Gives it BAR `index` of `kind` and `size` at `address`.
    pub fn with_bar(mut self, index: usize, kind: BarKind, size: u64, address: u64) -> Self {
        self.bars[index] = Some((kind, size));
        let value = address | u64::from(kind.flags());
        self.regs[usize::from(BAR0 / 4) + index] = value as u32;
        if kind.is_64bit() {
            self.regs[usize::from(BAR0 / 4) + index + 1] = (value >> 32) as u32;
        }
        self
    }

    /// Sets the 32 bits at byte `offset`.
    pub fn with_dword(mut self, offset: u16, value: u32) -> Self {
        self.regs[usize::from(offset / 4)] = value;
        self
    }

    fn command(&self) -> u16 {
        self.regs[usize::from(COMMAND / 4)] as u16
    }

    /// The BAR (kind, size, which half) that the DWORD at `offset` is part of.
    fn bar_at(&self, offset: u16) -> Option<(BarKind, u64, bool)> {
        let index = usize::from(offset.checked_sub(BAR0)? / 4);
        if index >= BAR_COUNT {
            return None;
        }
        if let Some((kind, size)) = self.bars[index] {
            return Some((kind, size, false));
        }
        let (kind, size) = self.bars[index.checked_sub(1)?]?;
        kind.is_64bit().then_some((kind, size, true))
    }

    fn write(&mut self, offset: u16, value: u32) {
        let slot = usize::from(offset / 4);
        if offset == COMMAND {
            let status = (self.regs[slot] >> 16) as u16 & !((value >> 16) as u16 & 0xf900);
            self.regs[slot] = u32::from(status) << 16 | value & 0xffff;
        } else if let Some((kind, size, upper)) = self.bar_at(offset) {
            let enable = match kind {
                BarKind::Io => Command::IO_SPACE,
                _ => Command::MEMORY_SPACE,
            };
            self.bar_written_while_decoding |= self.command() & enable != 0;
            let keep = !(size - 1);
            self.regs[slot] = if upper {
                value & (keep >> 32) as u32
            } else {
                value & keep as u32 & !((1 << kind.flag_bits()) - 1) | kind.flags()
            };
        } else if (BAR0..BAR0 + 24).contains(&offset) {
            // A BAR the function does not implement: read-only zero.
        } else if offset != 0 {
            self.regs[slot] = value;
        }
    }
}

/// Functions by address.
#[derive(Clone, Debug, Default)]
pub struct FakeBus {
    pub functions: BTreeMap<Bdf, FakeFunction>,
    /// Every DWORD read, in order.
    pub reads: std::cell::Cell<usize>,
}

impl FakeBus {
    pub fn with(mut self, bdf: Bdf, function: FakeFunction) -> Self {
        self.functions.insert(bdf, function);
        self
    }
}

impl ConfigSpace for FakeBus {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        assert_eq!(offset % 4, 0, "a DWORD access");
        self.reads.set(self.reads.get() + 1);
        self.functions
            .get(&bdf)
            .map_or(0xffff_ffff, |f| f.regs[usize::from(offset / 4)])
    }

    fn write32(&mut self, bdf: Bdf, offset: u16, value: u32) {
        assert_eq!(offset % 4, 0, "a DWORD access");
        if let Some(f) = self.functions.get_mut(&bdf) {
            f.write(offset, value);
        }
    }
}

/// `00:dd.f`.
pub fn bdf(device: u8, function: u8) -> Bdf {
    Bdf::new(0, device, function).unwrap()
}

/// A virtio-blk-pci (modern only) as QEMU 7.2 shows it: vendor 0x1af4, device 0x1042, class
/// 01:00:00 (mass storage, SCSI), BAR1 4 KiB 32-bit (MSI-X), BAR4 16 KiB 64-bit
/// prefetchable (the virtio structures), INTA.
pub fn virtio_blk() -> FakeFunction {
    FakeFunction::new(0x1af4, 0x1042, 0x01_0000, 0)
        .with_bar(
            1,
            BarKind::Mem32 {
                prefetchable: false,
            },
            0x1000,
            0x1000_1000,
        )
        .with_bar(
            4,
            BarKind::Mem64 { prefetchable: true },
            0x4000,
            0x80_0000_0000,
        )
        .with_dword(0x3c, 0x0000_0100)
}
