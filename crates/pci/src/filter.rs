//! The configuration space a VM sees: only the functions assigned to it, their BARs virtual.
//!
//! The guest's accesses to its ECAM window trap to Moat (the window is not mapped in stage
//! 2) and come here as (function, register, width). A function that is not the VM's reads
//! all-ones and ignores writes, as a host bridge answers a configuration request to an empty
//! slot (PCIe 4.0, 2.3.2 and 7.2.2: Unsupported Request, completed with all-ones). For the
//! VM's own functions:
//!
//! - **BARs are virtual.** The guest sizes and programs them as on hardware (the register
//!   keeps only the address bits the BAR's size allows, PCI 3.0, 6.2.5.1), but the physical
//!   BAR stays where Moat placed it; the BAR's guest address is mapped in stage 2 to it while
//!   the guest's `Memory Space Enable` is set and the BAR lies inside one of the VM's windows.
//!   A BAR the guest moves outside its windows (or onto another of its BARs) is mapped
//!   nowhere: like a real bridge, which forwards only the addresses of its windows, Moat
//!   passes nothing there, and the device never decodes an address the guest chose. The
//!   register still reads back what was written, as the device's own would.
//! - **Memory BARs smaller than a page look a page long**, so that each can be mapped alone
//!   (Moat places the physical BAR alone in its page).
//! - **I/O BARs are hidden** (read 0, keep nothing: a BAR not implemented, PCI 3.0, 6.2.5.1):
//!   I/O ports are not page-sized, and PCIe devices must work without them. `I/O Space
//!   Enable` is kept at 0.
//! - **`Command`**: `Memory Space Enable`, `Bus Master Enable`, `Parity Error Response`,
//!   `SERR# Enable` and `Interrupt Disable` reach the device; the others are PCI-only and
//!   read-only 0 on PCIe (PCIe 4.0, 7.5.1.1.3). **`Status`** is the device's, its RW1C bits
//!   cleared by the guest's writes.
//! - **`Interrupt Line`** is a scratch register (PCI 3.0, 6.2.4) kept per VM; `Interrupt
//!   Pin` is the device's. **`Expansion ROM Base Address`** reads 0: no ROM (PCI 3.0, 6.2.5.2).
//! - Everything else — identification, capabilities, the extended space — is the device's,
//!   read and written through.

use crate::bar::BarKind;
use crate::header::{
    BAR_COUNT, BAR0, COMMAND, CONFIG_SPACE_SIZE, Command, EXPANSION_ROM_BASE, INTERRUPT_LINE,
    lane_shift,
};
use crate::{Bdf, ConfigSpace, Width};
use alloc::vec::Vec;

/// The page a stage-2 mapping covers at least.
pub const PAGE: u64 = 0x1000;

/// The `Command` bits a guest's write reaches the device with.
pub const GUEST_COMMAND: u16 = Command::MEMORY_SPACE
    | Command::BUS_MASTER
    | Command::PARITY_ERROR_RESPONSE
    | Command::SERR
    | Command::INTERRUPT_DISABLE;

/// A memory window of the VM's host bridge (a `ranges` entry of its device tree): bus
/// addresses `[pci, pci + size)` at IPAs from `ipa`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestWindow {
    /// The first bus address.
    pub pci: u64,
    /// Where the guest reaches it.
    pub ipa: u64,
    /// Its length.
    pub size: u64,
    /// A prefetchable window holds only prefetchable BARs (PCI-to-PCI Bridge Architecture
    /// 1.2, the `Prefetchable Memory Base`/`Limit` registers: non-prefetchable memory is
    /// forwarded through the non-prefetchable range only).
    pub prefetchable: bool,
}

/// A BAR of an assigned function as Moat placed it on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostBar {
    /// Its space.
    pub kind: BarKind,
    /// Its size.
    pub size: u64,
    /// The physical address the CPU reaches it at (page-aligned, alone in its pages).
    pub pa: u64,
}

impl HostBar {
    /// The size the guest sees: memory BARs at least a page, I/O BARs none (hidden).
    #[must_use]
    pub fn guest_size(&self) -> Option<u64> {
        match self.kind {
            BarKind::Io => None,
            _ => Some(self.size.max(PAGE)),
        }
    }
}

/// A function assigned to the VM, at the same address as on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assigned {
    /// Its address.
    pub bdf: Bdf,
    /// Its BARs as [`crate::bar::probe`] found them, by index.
    pub bars: [Option<HostBar>; BAR_COUNT],
}

/// A BAR's guest address mapped to its physical one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The function.
    pub bdf: Bdf,
    /// Its BAR.
    pub bar: u8,
    /// The IPA the guest reaches it at.
    pub ipa: u64,
    /// The physical BAR.
    pub pa: u64,
    /// Its length (a whole number of pages).
    pub size: u64,
}

/// What a guest's configuration write needs done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Write `value` (`width` wide) at `offset` of the device's configuration space.
    HostWrite {
        /// The function.
        bdf: Bdf,
        /// The register.
        offset: u16,
        /// The access width.
        width: Width,
        /// The value, in the access's low bits.
        value: u32,
    },
    /// Remove the stage-2 mapping of a BAR (before any [`Effect::Map`] of the same write).
    Unmap(Mapping),
    /// Map a BAR's guest address to the device, as device memory.
    Map(Mapping),
}

/// The guest's view of one of its functions.
#[derive(Clone, Debug)]
struct Function {
    host: Assigned,
    /// The BAR registers as the guest last wrote them (flags included).
    bars: [u32; BAR_COUNT],
    command: u16,
    interrupt_line: u8,
}

impl Function {
    fn new(host: Assigned) -> Self {
        let mut bars = [0; BAR_COUNT];
        for (i, bar) in host.bars.iter().enumerate() {
            if let Some(bar) = bar.filter(|b| b.guest_size().is_some()) {
                bars[i] = bar.kind.flags();
            }
        }
        Self {
            host,
            bars,
            command: 0,
            interrupt_line: 0,
        }
    }

    /// The BAR whose register (lower or upper half) is BAR `index`, and whether `index` is
    /// its upper half.
    fn bar_of(&self, index: usize) -> Option<(usize, HostBar, bool)> {
        if let Some(bar) = self.host.bars[index] {
            return Some((index, bar, false));
        }
        let lower = index.checked_sub(1)?;
        let bar = self.host.bars[lower]?;
        bar.kind.is_64bit().then_some((lower, bar, true))
    }

    /// BAR register `index` after the guest wrote `merged` to it: only the address bits the
    /// guest-visible size allows stick, the kind's flags read as they are.
    fn store_bar(&mut self, index: usize, merged: u32) {
        let Some((_, bar, upper)) = self.bar_of(index) else {
            return;
        };
        let Some(size) = bar.guest_size() else {
            return;
        };
        let keep = !(size - 1);
        self.bars[index] = if upper {
            merged & (keep >> 32) as u32
        } else {
            merged & keep as u32 & !((1 << bar.kind.flag_bits()) - 1) | bar.kind.flags()
        };
    }

    /// The bus address BAR `index` (a lower half) holds.
    fn bar_address(&self, index: usize, kind: BarKind) -> u64 {
        let low = u64::from(self.bars[index] & !((1 << kind.flag_bits()) - 1));
        let high = if kind.is_64bit() {
            self.bars.get(index + 1).copied().unwrap_or(0)
        } else {
            0
        };
        u64::from(high) << 32 | low
    }
}

/// The VM's host bridge: its windows and its functions.
#[derive(Clone, Debug)]
pub struct GuestBridge {
    windows: Vec<GuestWindow>,
    functions: Vec<Function>,
    /// The mappings in force, in the order [`GuestBridge::wanted`] gives them.
    mapped: Vec<Mapping>,
}

impl GuestBridge {
    /// The bridge with `windows` and `functions`, every BAR unmapped and decode off (as after
    /// reset: PCI 3.0, 6.2.2, `Command` reads 0 after reset).
    #[must_use]
    pub fn new(windows: Vec<GuestWindow>, functions: Vec<Assigned>) -> Self {
        Self {
            windows,
            functions: functions.into_iter().map(Function::new).collect(),
            mapped: Vec::new(),
        }
    }

    /// The mappings in force.
    #[must_use]
    pub fn mappings(&self) -> &[Mapping] {
        &self.mapped
    }

    fn function(&self, bdf: Bdf) -> Option<&Function> {
        self.functions.iter().find(|f| f.host.bdf == bdf)
    }

    /// What the guest reads at `offset` of `bdf`, `width` wide; `host` reads the device's
    /// registers.
    #[must_use]
    pub fn read(&self, bdf: Bdf, offset: u16, width: Width, host: &impl ConfigSpace) -> u32 {
        let Some(f) = self.function(bdf).filter(|_| aligned(offset, width)) else {
            return width.mask();
        };
        let dword = offset & !3;
        let value = match dword {
            d if is_bar(d) => f.bars[bar_index(d)],
            EXPANSION_ROM_BASE => 0,
            d if d == INTERRUPT_LINE & !3 => {
                host.read32(bdf, d) & !0xff | u32::from(f.interrupt_line)
            }
            d => host.read32(bdf, d),
        };
        value >> lane_shift(offset) & width.mask()
    }

    /// The guest writes `value` at `offset` of `bdf`, `width` wide.
    #[must_use = "the effects are the write: carry them out"]
    pub fn write(&mut self, bdf: Bdf, offset: u16, width: Width, value: u32) -> Vec<Effect> {
        let Some(i) = self.functions.iter().position(|f| f.host.bdf == bdf) else {
            return Vec::new();
        };
        if !aligned(offset, width) {
            return Vec::new();
        }
        let dword = offset & !3;
        let shift = lane_shift(offset);
        let lanes = width.mask() << shift;
        let value = (value & width.mask()) << shift;
        let f = &mut self.functions[i];
        let mut effects = Vec::new();
        match dword {
            d if is_bar(d) => {
                let merged = f.bars[bar_index(d)] & !lanes | value;
                f.store_bar(bar_index(d), merged);
            }
            EXPANSION_ROM_BASE => {}
            d if d == INTERRUPT_LINE & !3 => {
                if lanes & 0xff != 0 {
                    f.interrupt_line = value as u8;
                }
            }
            COMMAND => {
                // The Status half (RW1C) goes through as written; Command keeps its guest bits.
                let written = value & (u32::from(GUEST_COMMAND) | 0xffff_0000);
                let command_lanes = lanes & 0xffff;
                f.command =
                    (u32::from(f.command) & !command_lanes | written & command_lanes) as u16;
                effects.push(Effect::HostWrite {
                    bdf,
                    offset,
                    width,
                    value: written >> shift,
                });
            }
            _ => effects.push(Effect::HostWrite {
                bdf,
                offset,
                width,
                value: value >> shift,
            }),
        }
        effects.extend(self.remap());
        effects
    }

    /// The mappings the guest's registers ask for now: every memory BAR of a function with
    /// `Memory Space Enable` set, wholly inside a window that may hold it and overlapping no
    /// BAR before it (in function, then BAR order).
    fn wanted(&self) -> Vec<Mapping> {
        let mut wanted: Vec<Mapping> = Vec::new();
        for f in &self.functions {
            if !Command(f.command).has(Command::MEMORY_SPACE) {
                continue;
            }
            for (index, bar) in f.host.bars.iter().enumerate() {
                let Some((bar, size)) = bar.and_then(|b| Some((b, b.guest_size()?))) else {
                    continue;
                };
                let address = f.bar_address(index, bar.kind);
                let Some(ipa) = self.place(address, size, bar.kind) else {
                    continue;
                };
                let overlaps = wanted
                    .iter()
                    .any(|m| ipa < m.ipa + m.size && m.ipa < ipa + size);
                if !overlaps {
                    wanted.push(Mapping {
                        bdf: f.host.bdf,
                        bar: index as u8,
                        ipa,
                        pa: bar.pa,
                        size,
                    });
                }
            }
        }
        wanted
    }

    /// The IPA of bus address `address` when `[address, address + size)` lies inside one
    /// window that may hold a BAR of `kind`.
    fn place(&self, address: u64, size: u64, kind: BarKind) -> Option<u64> {
        let end = address.checked_add(size)?;
        self.windows
            .iter()
            .filter(|w| kind.is_prefetchable() || !w.prefetchable)
            .find(|w| address >= w.pci && end <= w.pci + w.size)
            .map(|w| w.ipa + (address - w.pci))
    }

    /// Brings the mappings in force to [`GuestBridge::wanted`]: unmaps what changed or went,
    /// then maps what changed or came.
    fn remap(&mut self) -> Vec<Effect> {
        let wanted = self.wanted();
        let old = core::mem::replace(&mut self.mapped, wanted);
        let unmaps = old
            .iter()
            .filter(|m| !self.mapped.contains(m))
            .map(|m| Effect::Unmap(*m));
        let maps = self
            .mapped
            .iter()
            .filter(|m| !old.contains(m))
            .map(|m| Effect::Map(*m));
        unmaps.chain(maps).collect()
    }
}

/// Whether an access of `width` at `offset` is naturally aligned and inside the function's
/// 4 KiB (PCIe 4.0, 7.2.2: ECAM accesses do not cross a DWORD). A misaligned one reaches no
/// function: it reads all-ones and writes nothing.
fn aligned(offset: u16, width: Width) -> bool {
    offset.is_multiple_of(width.bytes()) && offset < CONFIG_SPACE_SIZE
}

fn is_bar(dword: u16) -> bool {
    (BAR0..BAR0 + 4 * BAR_COUNT as u16).contains(&dword)
}

fn bar_index(dword: u16) -> usize {
    usize::from((dword - BAR0) / 4)
}

#[cfg(test)]
mod tests;
