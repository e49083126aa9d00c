//! The interrupt registers that the distributor and a redistributor's `SGI_base` frame share,
//! at the same offsets in both (IHI 0069, `GICD_IGROUPR<n>` and `GICR_IGROUPR0` onwards): one
//! bit per interrupt (`IGROUPR`, `ISENABLER`/`ICENABLER`, `ISPENDR`/`ICPENDR`,
//! `ISACTIVER`/`ICACTIVER`), a byte per interrupt (`IPRIORITYR`), two bits per interrupt
//! (`ICFGR`), and the registers a single Security state makes RAZ/WI (`IGRPMODR`, `NSACR`).
//!
//! A bank decides which interrupts a register word reaches: the distributor reaches the SPIs
//! (with affinity routing its SGI and PPI words are RAZ/WI), a redistributor its own vCPU's SGIs
//! and PPIs. Bits for interrupts a bank does not reach read as zero and ignore writes.

use super::{Gic, IrqRef, PRIVATE_COUNT, SGI_COUNT, VcpuSet};

/// Offsets of the shared registers, from the distributor's base or from `SGI_base`.
mod reg {
    pub const IGROUPR: u64 = 0x0080;
    pub const ISENABLER: u64 = 0x0100;
    pub const ICENABLER: u64 = 0x0180;
    pub const ISPENDR: u64 = 0x0200;
    pub const ICPENDR: u64 = 0x0280;
    pub const ISACTIVER: u64 = 0x0300;
    pub const ICACTIVER: u64 = 0x0380;
    /// Each bit register is 32 words long (1024 INTIDs).
    pub const BIT_REGISTER_LEN: u64 = 0x80;
    pub const IPRIORITYR: u64 = 0x0400;
    /// One byte for each of INTIDs 0–1019.
    pub const IPRIORITYR_END: u64 = 0x07FC;
    pub const ICFGR: u64 = 0x0C00;
    pub const ICFGR_END: u64 = 0x0D00;
    pub const IGRPMODR: u64 = 0x0D00;
    pub const IGRPMODR_END: u64 = 0x0D80;
    pub const NSACR: u64 = 0x0E00;
    pub const NSACR_END: u64 = 0x0F00;
}

/// Whether `offset` (from the distributor's base or from `SGI_base`) is in one of the pending
/// or active registers (`ISPENDR` .. `ICACTIVER`): the state a guest changes in its list
/// registers without an exit (`unsynced`).
pub(crate) fn reads_pending_or_active(offset: u64) -> bool {
    (reg::ISPENDR..reg::ICACTIVER + reg::BIT_REGISTER_LEN).contains(&offset)
}

/// Which interrupts a register word reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bank {
    /// The distributor: SPIs only (affinity routing is always enabled).
    Distributor,
    /// The redistributor of a vCPU: its SGIs and PPIs.
    Redistributor(usize),
    /// A GICv2 distributor as vCPU `n` accesses it: its own (banked) SGIs and PPIs, and the
    /// SPIs. An SGI's pending bit is read-only here (IHI 0048B, `GICD_ISPENDRn`: SGIs are made
    /// pending by `GICD_SGIR` and `GICD_SPENDSGIRn`).
    BankedDistributor(usize),
}

/// The one-bit-per-interrupt registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BitReg {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

impl BitReg {
    /// The register at `offset` and the INTID of its bit 0.
    fn at(offset: u64) -> Option<(Self, u32)> {
        let regs = [
            (reg::IGROUPR, Self::Group),
            (reg::ISENABLER, Self::SetEnable),
            (reg::ICENABLER, Self::ClearEnable),
            (reg::ISPENDR, Self::SetPending),
            (reg::ICPENDR, Self::ClearPending),
            (reg::ISACTIVER, Self::SetActive),
            (reg::ICACTIVER, Self::ClearActive),
        ];
        let (base, which) = regs
            .into_iter()
            .find(|&(base, _)| (base..base + reg::BIT_REGISTER_LEN).contains(&offset))?;
        let first = u32::try_from((offset - base) / 4 * 32).ok()?;
        Some((which, first))
    }
}

/// The width of an access to the block, once checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Width {
    /// An 8-bit access.
    Byte,
    /// A 32-bit access.
    Word,
}

/// `ICFGR` `Int_config\[1\]` of the field at `slot` (0–15) of a word: edge-triggered when set.
const fn icfgr_edge_bit(slot: u32) -> u32 {
    1 << (2 * slot + 1)
}

/// Whether `which` is an SGI's pending bit in a GICv2 distributor, read-only there.
fn sgi_pending_read_only(bank: Bank, which: BitReg, intid: u32) -> bool {
    matches!(bank, Bank::BankedDistributor(_))
        && matches!(which, BitReg::SetPending | BitReg::ClearPending)
        && intid < SGI_COUNT
}

impl<const SPIS: usize> Gic<SPIS> {
    /// The interrupt that INTID `intid` names in `bank`, if the bank reaches it.
    pub(crate) fn lookup(&self, bank: Bank, intid: u32) -> Option<IrqRef> {
        match bank {
            Bank::Distributor => self.spi_ref(intid),
            Bank::Redistributor(vcpu) if intid < PRIVATE_COUNT && vcpu < self.vcpus => {
                Some(IrqRef::Private { vcpu, intid })
            }
            Bank::Redistributor(_) => None,
            Bank::BankedDistributor(vcpu) if intid < PRIVATE_COUNT && vcpu < self.vcpus => {
                Some(IrqRef::Private { vcpu, intid })
            }
            Bank::BankedDistributor(_) => self.spi_ref(intid),
        }
    }

    /// Performs an access to the shared interrupt registers at `offset` (aligned to `width`);
    /// `None` when `offset` is not one of them. Returns the read data and the vCPUs to kick.
    pub(crate) fn irq_block_access(
        &mut self,
        bank: Bank,
        offset: u64,
        width: Width,
        write: Option<u32>,
    ) -> Option<(u32, VcpuSet)> {
        if (reg::IPRIORITYR..reg::IPRIORITYR_END).contains(&offset) {
            return Some(self.priority_access(bank, offset - reg::IPRIORITYR, width, write));
        }
        if width != Width::Word {
            // Only IPRIORITYR (and ITARGETSR, RAZ/WI here) are byte-accessible.
            return Self::in_block(offset).then_some((0, VcpuSet::EMPTY));
        }
        if let Some((which, first)) = BitReg::at(offset) {
            return Some(self.bit_word(bank, which, first, write));
        }
        if (reg::ICFGR..reg::ICFGR_END).contains(&offset) {
            let first = u32::try_from((offset - reg::ICFGR) / 4 * 16).ok()?;
            return Some(self.config_word(bank, first, write));
        }
        // IGRPMODR and NSACR: RAZ/WI when GICD_CTLR.DS == 1, as here.
        Self::in_block(offset).then_some((0, VcpuSet::EMPTY))
    }

    fn in_block(offset: u64) -> bool {
        (reg::IGROUPR..reg::IPRIORITYR_END).contains(&offset)
            || (reg::ICFGR..reg::ICFGR_END).contains(&offset)
            || (reg::IGRPMODR..reg::IGRPMODR_END).contains(&offset)
            || (reg::NSACR..reg::NSACR_END).contains(&offset)
    }

    fn bit_word(
        &mut self,
        bank: Bank,
        which: BitReg,
        first: u32,
        write: Option<u32>,
    ) -> (u32, VcpuSet) {
        let mut value = 0;
        let mut kick = VcpuSet::EMPTY;
        for bit in 0..32 {
            let Some(irq) = self.lookup(bank, first + bit) else {
                continue;
            };
            match write {
                None => value |= u32::from(self.read_bit(which, irq)) << bit,
                Some(_) if sgi_pending_read_only(bank, which, first + bit) => {}
                Some(data) => {
                    let set = data & (1 << bit) != 0;
                    if set || which == BitReg::Group {
                        kick |= self.write_bit(which, irq, set);
                    }
                }
            }
        }
        (value, kick)
    }

    /// A bit as the guest reads it; an interrupt in a list register reads in the state it
    /// was loaded with (the holder's last sync).
    fn read_bit(&self, which: BitReg, irq: IrqRef) -> bool {
        let state = &self.visible(irq);
        match which {
            BitReg::Group => state.group1,
            BitReg::SetEnable | BitReg::ClearEnable => state.enabled,
            BitReg::SetPending | BitReg::ClearPending => state.pending(),
            BitReg::SetActive | BitReg::ClearActive => state.active,
        }
    }

    /// Writes one bit; for the set/clear registers `set` is always true (a 0 has no effect).
    /// Returns the vCPUs to kick.
    fn write_bit(&mut self, which: BitReg, irq: IrqRef, set: bool) -> VcpuSet {
        self.update(irq, |state| match which {
            BitReg::Group => state.group1 = set,
            BitReg::SetEnable => state.enabled = true,
            BitReg::ClearEnable => state.enabled = false,
            // ICPENDR clears the latch only: a level-sensitive interrupt stays pending while
            // its line is asserted.
            BitReg::SetPending => state.write_latch(true),
            BitReg::ClearPending => state.write_latch(false),
            BitReg::SetActive => state.write_active(true),
            BitReg::ClearActive => state.write_active(false),
        })
    }

    /// `IPRIORITYR`: one byte per interrupt, byte- or word-accessible.
    fn priority_access(
        &mut self,
        bank: Bank,
        byte: u64,
        width: Width,
        write: Option<u32>,
    ) -> (u32, VcpuSet) {
        let count = if width == Width::Byte { 1 } else { 4 };
        let Ok(first) = u32::try_from(byte) else {
            return (0, VcpuSet::EMPTY);
        };
        let mut value = 0;
        let mut kick = VcpuSet::EMPTY;
        for index in 0..count {
            let Some(irq) = self.lookup(bank, first + index) else {
                continue;
            };
            match write {
                None => value |= u32::from(self.irq(irq).priority) << (8 * index),
                Some(data) => {
                    let priority = data.to_le_bytes()[index as usize] & self.priority_mask();
                    kick |= self.update(irq, |state| state.priority = priority);
                }
            }
        }
        (value, kick)
    }

    /// `ICFGR`: two bits per interrupt, `Int_config\[1\]` set for edge-triggered; `Int_config\[0\]`
    /// is RES0. SGIs are always edge-triggered (`GICR_ICFGR0` is read-only); PPI and SPI
    /// configurations are programmable.
    fn config_word(&mut self, bank: Bank, first: u32, write: Option<u32>) -> (u32, VcpuSet) {
        let mut value = 0;
        let mut kick = VcpuSet::EMPTY;
        for slot in 0..16 {
            let intid = first + slot;
            let Some(irq) = self.lookup(bank, intid) else {
                continue;
            };
            match write {
                None if self.irq(irq).edge => value |= icfgr_edge_bit(slot),
                None => {}
                Some(_) if intid < SGI_COUNT => {}
                Some(data) => {
                    let edge = data & icfgr_edge_bit(slot) != 0;
                    kick |= self.update(irq, |state| state.edge = edge);
                }
            }
        }
        (value, kick)
    }
}
