//! The distributor (`GICD_*`, IHI 0069 "The Distributor register map"), register-exact for what
//! Linux's GICv3 driver and a careful guest read: one Security state (`GICD_CTLR.DS` = 1),
//! affinity routing always enabled (`ARE` RAO/WI), no LPIs, no message-based SPIs, and
//! register writes that take effect at once (`GICD_CTLR.RWP` always 0).
//!
//! With affinity routing the SGI and PPI parts of the distributor's registers are RAZ/WI (the
//! redistributors hold those interrupts), so are `GICD_ITARGETSR<n>`, `GICD_SGIR` and the
//! `GICD_[CS]PENDSGIR<n>`. Reserved and unimplemented offsets read as zero and ignore writes,
//! as do accesses of a size or alignment the spec does not allow for the register.

use super::irq_regs::{Bank, Width};
use super::{Affinity, Gic, IrqRef, PRIVATE_COUNT, VcpuSet};
use crate::{Access, DeviceEffects};

/// Register offsets from the distributor's base (IHI 0069, "The GIC Distributor register map").
mod reg {
    pub const CTLR: u64 = 0x0000;
    pub const TYPER: u64 = 0x0004;
    pub const IIDR: u64 = 0x0008;
    pub const TYPER2: u64 = 0x000C;
    pub const STATUSR: u64 = 0x0010;
    /// `GICD_IROUTER<n>`, 8 bytes each for n = 0..1019 (n < 32 reserved).
    pub const IROUTER: u64 = 0x6000;
    pub const IROUTER_END: u64 = 0x6000 + 8 * 1020;
    /// `GICD_PIDR4` .. `GICD_CIDR3`, one byte per word.
    pub const ID_START: u64 = 0xFFD0;
    pub const ID_END: u64 = 0x1_0000;
}

/// `GICD_CTLR` fields as they are laid out when `GICD_CTLR.DS` == 1.
mod ctlr {
    /// `EnableGrp0`.
    pub const ENABLE_GRP0: u32 = 1 << 0;
    /// `EnableGrp1` (called `EnableGrp1NS` in the Non-secure view Linux's headers use).
    pub const ENABLE_GRP1: u32 = 1 << 1;
    /// `ARE`: affinity routing enabled, RAO/WI here.
    pub const ARE: u32 = 1 << 4;
    /// `DS`: security disabled, RAO/WI in a GIC with one Security state.
    pub const DS: u32 = 1 << 6;
}

/// `GICD_TYPER` fields.
mod typer {
    /// `ITLinesNumber`, bits \[4:0\]: 32 * (N + 1) INTIDs are implemented.
    pub const IT_LINES_NUMBER_MASK: u32 = 0x1F;
    /// `CPUNumber`, bits \[7:5\]: number of PEs minus 1.
    pub const CPU_NUMBER_SHIFT: u32 = 5;
    /// `IDbits`, bits \[23:19\]: number of INTID bits minus 1.
    pub const ID_BITS_SHIFT: u32 = 19;
    /// 10 INTID bits (INTIDs 0–1023: no LPIs).
    pub const ID_BITS_10: u32 = 0b1001;
    /// `A3V`: affinity level 3 values other than 0 are supported.
    pub const A3V: u32 = 1 << 24;
}

/// `GICD_IROUTER<n>` fields.
mod irouter {
    /// `Interrupt_Routing_Mode`: 1 routes the SPI to any one participating PE.
    pub const IRM: u64 = 1 << 31;
    /// `Aff2:Aff1:Aff0`, bits \[23:0\].
    pub const AFF_LOW: u64 = 0x00FF_FFFF;
    /// `Aff3`, bits \[39:32\].
    pub const AFF3: u64 = 0xFF << 32;
    /// Every bit that is not RES0.
    pub const WRITABLE: u64 = IRM | AFF_LOW | AFF3;
}

/// `GICD_IIDR`: `Implementer` 0x43B (Arm, JEP106), revision, variant and product 0, as QEMU's
/// GICv3 (an r0p0 GIC-500) reports.
const IIDR: u32 = 0x43B;

/// `GICD_PIDR4..7`, `GICD_PIDR0..3`, `GICD_CIDR0..3` in address order: an Arm GICv3
/// distributor (`PIDR2.ArchRev` = 3, so `PIDR2` = 0x3B), as QEMU reports.
const ID_BYTES: [u8; 12] = [
    0x44, 0x00, 0x00, 0x00, 0x92, 0xB4, 0x3B, 0x00, 0x0D, 0xF0, 0x05, 0xB1,
];

/// Whether a `GICD_IROUTER<n>` value asks for 1-of-N routing (`Interrupt_Routing_Mode` = 1).
pub(crate) const fn irouter_irm(value: u64) -> bool {
    value & irouter::IRM != 0
}

/// The `GICD_IROUTER<n>` value that routes to `affinity` (`Interrupt_Routing_Mode` = 0).
#[must_use]
pub const fn irouter_for(affinity: Affinity) -> u64 {
    affinity.mpidr() & irouter::WRITABLE
}

/// The identification byte for `offset` in `reg::ID_START..reg::ID_END`.
pub(crate) fn id_register(offset: u64, start: u64, bytes: &[u8; 12]) -> u32 {
    let index = usize::try_from((offset - start) / 4).unwrap_or(usize::MAX);
    bytes.get(index).map_or(0, |&b| u32::from(b))
}

/// Truncates a written value to the 32 bits of a word register.
pub(crate) fn low_word(value: u64) -> u32 {
    // Truncation intended: the caller has checked the access is at most 32 bits wide.
    #[allow(clippy::cast_possible_truncation)]
    let word = value as u32;
    word
}

impl<const SPIS: usize> Gic<SPIS> {
    /// Performs one guest access at `access.offset` in the distributor's 64 KiB window and
    /// returns the read data (0 for a write) and the effects: the vCPUs to kick.
    pub fn distributor_access(&mut self, access: Access) -> (u64, DeviceEffects) {
        let (data, kick) = self.gicd(access).unwrap_or((0, VcpuSet::EMPTY));
        let effects = DeviceEffects {
            kick,
            ..DeviceEffects::default()
        };
        (data & access.size_mask(), effects)
    }

    /// `GICD_TYPER`.
    #[must_use]
    pub fn gicd_typer(&self) -> u32 {
        // INTIDs 0 .. 32 + SPIS, rounded up to whole 32-interrupt lines.
        let lines = Self::intid_limit().div_ceil(32) - 1;
        // Truncation impossible: vcpus <= MAX_VCPUS = 8.
        #[allow(clippy::cast_possible_truncation)]
        let cpus = self.vcpus as u32 - 1;
        (lines & typer::IT_LINES_NUMBER_MASK)
            | (cpus << typer::CPU_NUMBER_SHIFT)
            | (typer::ID_BITS_10 << typer::ID_BITS_SHIFT)
            | typer::A3V
    }

    /// `GICD_CTLR` as the guest reads it.
    fn gicd_ctlr(&self) -> u32 {
        self.group_enable_bits() | ctlr::ARE | ctlr::DS
    }

    /// `GICD_CTLR.EnableGrp0` (bit 0) and `EnableGrp1` (bit 1): where a GICv3 with
    /// `GICD_CTLR.DS` = 1 and a GICv2 without the Security Extensions both keep them.
    pub(crate) fn group_enable_bits(&self) -> u32 {
        let grp0 = if self.enables.grp0 {
            ctlr::ENABLE_GRP0
        } else {
            0
        };
        let grp1 = if self.enables.grp1 {
            ctlr::ENABLE_GRP1
        } else {
            0
        };
        grp0 | grp1
    }

    pub(super) fn gicd(&mut self, access: Access) -> Option<(u64, VcpuSet)> {
        let offset = access.offset;
        if !matches!(access.size, 1 | 4 | 8) || !offset.is_multiple_of(u64::from(access.size)) {
            return None;
        }
        if (reg::IROUTER..reg::IROUTER_END).contains(&offset) {
            return self.irouter_access(offset - reg::IROUTER, access);
        }
        let write = access.write.map(low_word);
        let (data, kick) = match access.size {
            1 => self.irq_block_access(Bank::Distributor, offset, Width::Byte, write)?,
            4 => self.gicd_word(offset, write)?,
            _ => return None,
        };
        Some((u64::from(data), kick))
    }

    fn gicd_word(&mut self, offset: u64, write: Option<u32>) -> Option<(u32, VcpuSet)> {
        match (offset, write) {
            (reg::CTLR, None) => Some((self.gicd_ctlr(), VcpuSet::EMPTY)),
            (reg::CTLR, Some(value)) => Some((0, self.write_gicd_ctlr(value))),
            (reg::TYPER, None) => Some((self.gicd_typer(), VcpuSet::EMPTY)),
            (reg::IIDR, None) => Some((IIDR, VcpuSet::EMPTY)),
            // GICD_TYPER2: no vPEIDs, no extended features; GICD_STATUSR: no errors to report.
            (reg::TYPER2 | reg::STATUSR, _) => None,
            (reg::ID_START..reg::ID_END, None) => Some((
                id_register(offset, reg::ID_START, &ID_BYTES),
                VcpuSet::EMPTY,
            )),
            _ => self.irq_block_access(Bank::Distributor, offset, Width::Word, write),
        }
    }

    /// Writes `GICD_CTLR`: only the group enables are writable (bits 0 and 1, see
    /// [`Gic::group_enable_bits`]). A change may make interrupts deliverable or withdraw them:
    /// every vCPU's list registers are stale, and every vCPU with work is kicked.
    pub(crate) fn write_gicd_ctlr(&mut self, value: u32) -> VcpuSet {
        let before = self.enables;
        self.enables.grp0 = value & ctlr::ENABLE_GRP0 != 0;
        self.enables.grp1 = value & ctlr::ENABLE_GRP1 != 0;
        if self.enables == before {
            VcpuSet::EMPTY
        } else {
            self.resummarise()
        }
    }

    /// `GICD_IROUTER<n>`: 64-bit, or either 32-bit half.
    fn irouter_access(&mut self, relative: u64, access: Access) -> Option<(u64, VcpuSet)> {
        let n = u32::try_from(relative / 8).ok()?;
        let IrqRef::Spi(index) = self.lookup(Bank::Distributor, n)? else {
            return None;
        };
        let (shift, mask) = match access.size {
            8 => (0, u64::MAX),
            4 => (8 * (relative % 8), u64::from(u32::MAX)),
            _ => return None,
        };
        let Some(data) = access.write else {
            return Some(((self.routes[index] >> shift) & mask, VcpuSet::EMPTY));
        };
        let merged = (self.routes[index] & !(mask << shift)) | ((data & mask) << shift);
        let route = merged & irouter::WRITABLE;
        if route == self.routes[index] {
            return Some((0, VcpuSet::EMPTY));
        }
        self.routes[index] = route;
        // A list register holding the SPI gives it back at the next sync, to its new target.
        let irq = IrqRef::Spi(index);
        let record = *self.irq(irq);
        Some((0, self.changed(irq, &record, true)))
    }

    /// The `GICD_IROUTER<n>` value of SPI `intid`, or `None` for an INTID that is not an
    /// implemented SPI.
    #[must_use]
    pub fn spi_route(&self, intid: u32) -> Option<u64> {
        let index = usize::try_from(intid.checked_sub(PRIVATE_COUNT)?).ok()?;
        self.routes.get(index).copied()
    }
}

#[cfg(test)]
mod tests;
