//! The redistributors (`GICR_*`, IHI 0069 "The GIC Redistributor register map"): one per vCPU,
//! each two 64 KiB frames — `RD_base` (control, identification, power management) and
//! `SGI_base` (the vCPU's SGIs and PPIs) — laid out one after another from the start of the
//! redistributor region, as Linux's driver walks them (`GICR_TYPER.Last` on the last one).
//!
//! No LPIs: `GICR_TYPER.PLPIS` = 0, so `GICR_CTLR.EnableLPIs`, `GICR_PROPBASER` and
//! `GICR_PENDBASER` are RAZ/WI. Writes take effect at once (`GICR_CTLR.RWP` = 0).

use super::distributor::{id_register, low_word};
use super::irq_regs::{Bank, Width};
use super::{Affinity, Gic, VcpuSet};
use crate::{Access, DeviceEffects};

/// The size of one vCPU's redistributor: `RD_base` and `SGI_base`, 64 KiB each.
pub const REDISTRIBUTOR_STRIDE: u64 = 0x2_0000;

/// Register offsets in the `RD_base` frame.
mod reg {
    pub const CTLR: u64 = 0x0000;
    pub const IIDR: u64 = 0x0004;
    /// `GICR_TYPER`, 64 bits.
    pub const TYPER: u64 = 0x0008;
    pub const TYPER_HIGH: u64 = 0x000C;
    pub const STATUSR: u64 = 0x0010;
    pub const WAKER: u64 = 0x0014;
    /// `GICR_PIDR4` .. `GICR_CIDR3`, one byte per word.
    pub const ID_START: u64 = 0xFFD0;
    pub const ID_END: u64 = 0x1_0000;
    /// Start of the `SGI_base` frame.
    pub const SGI_BASE: u64 = 0x1_0000;
}

/// The start of a redistributor's `SGI_base` frame, from its `RD_base`.
pub(super) use reg::SGI_BASE;

/// `GICR_TYPER` fields.
mod typer {
    /// `Last`: this is the last redistributor of the region.
    pub const LAST: u64 = 1 << 4;
    /// `Processor_Number`, bits \[23:8\].
    pub const PROCESSOR_NUMBER_SHIFT: u32 = 8;
    /// `Affinity_Value`, bits \[63:32\].
    pub const AFFINITY_SHIFT: u32 = 32;
}

/// `GICR_WAKER` fields.
mod waker {
    /// `ProcessorSleep`.
    pub const PROCESSOR_SLEEP: u32 = 1 << 1;
    /// `ChildrenAsleep`, read-only.
    pub const CHILDREN_ASLEEP: u32 = 1 << 2;
}

/// `GICR_IIDR`: as `GICD_IIDR` (Arm, r0p0).
const IIDR: u32 = 0x43B;

/// `GICR_PIDR4..7`, `GICR_PIDR0..3`, `GICR_CIDR0..3`: an Arm GICv3 redistributor (`PIDR0` =
/// 0x93, `PIDR2` = 0x3B: `ArchRev` 3), as QEMU reports.
const ID_BYTES: [u8; 12] = [
    0x44, 0x00, 0x00, 0x00, 0x93, 0xB4, 0x3B, 0x00, 0x0D, 0xF0, 0x05, 0xB1,
];

impl<const SPIS: usize> Gic<SPIS> {
    /// Performs one guest access at `access.offset` in the redistributor region (vCPU `n`'s
    /// redistributor at `n` * [`REDISTRIBUTOR_STRIDE`]) and returns the read data (0 for a
    /// write) and the effects: the vCPUs to kick. Offsets past the last vCPU's redistributor
    /// read as zero and ignore writes.
    pub fn redistributor_access(&mut self, access: Access) -> (u64, DeviceEffects) {
        let (data, kick) = self.gicr(access).unwrap_or((0, VcpuSet::EMPTY));
        let effects = DeviceEffects {
            kick,
            ..DeviceEffects::default()
        };
        (data & access.size_mask(), effects)
    }

    /// `GICR_TYPER` of vCPU `vcpu`'s redistributor.
    #[must_use]
    pub fn gicr_typer(&self, vcpu: usize) -> u64 {
        let last = if vcpu + 1 == self.vcpus {
            typer::LAST
        } else {
            0
        };
        let affinity = u64::from(Affinity::of_vcpu(vcpu).packed());
        (affinity << typer::AFFINITY_SHIFT)
            | ((vcpu as u64) << typer::PROCESSOR_NUMBER_SHIFT)
            | last
    }

    pub(super) fn gicr(&mut self, access: Access) -> Option<(u64, VcpuSet)> {
        let vcpu = usize::try_from(access.offset / REDISTRIBUTOR_STRIDE).ok()?;
        let offset = access.offset % REDISTRIBUTOR_STRIDE;
        if vcpu >= self.vcpus
            || !matches!(access.size, 1 | 4 | 8)
            || !offset.is_multiple_of(u64::from(access.size))
        {
            return None;
        }
        if offset >= reg::SGI_BASE {
            return self.sgi_frame(vcpu, offset - reg::SGI_BASE, access);
        }
        match access.size {
            8 if offset == reg::TYPER && access.write.is_none() => {
                Some((self.gicr_typer(vcpu), VcpuSet::EMPTY))
            }
            4 => self.rd_word(vcpu, offset, access.write.map(low_word)),
            _ => None,
        }
    }

    fn rd_word(&mut self, vcpu: usize, offset: u64, write: Option<u32>) -> Option<(u64, VcpuSet)> {
        let read = |value: u64| Some((value, VcpuSet::EMPTY));
        match (offset, write) {
            (reg::IIDR, None) => read(u64::from(IIDR)),
            (reg::TYPER, None) => read(self.gicr_typer(vcpu) & u64::from(u32::MAX)),
            (reg::TYPER_HIGH, None) => read(self.gicr_typer(vcpu) >> u32::BITS),
            (reg::WAKER, None) => read(u64::from(self.gicr_waker(vcpu))),
            (reg::WAKER, Some(value)) => Some((0, self.write_gicr_waker(vcpu, value))),
            (reg::ID_START..reg::ID_END, None) => {
                read(u64::from(id_register(offset, reg::ID_START, &ID_BYTES)))
            }
            // GICR_CTLR: no LPIs, no group-disable hints (GICR_TYPER.DPGS = 0), nothing
            // asynchronous (RWP, UWP = 0); GICR_STATUSR: no errors to report.
            (reg::CTLR | reg::STATUSR, _) => None,
            _ => None,
        }
    }

    /// `GICR_WAKER`: `ChildrenAsleep` follows `ProcessorSleep` at once, which is what Linux
    /// polls for after clearing `ProcessorSleep`.
    fn gicr_waker(&self, vcpu: usize) -> u32 {
        if self.redists[vcpu].processor_sleep {
            waker::PROCESSOR_SLEEP | waker::CHILDREN_ASLEEP
        } else {
            0
        }
    }

    /// Writes `GICR_WAKER.ProcessorSleep`. Waking or sleeping a redistributor can change the
    /// target of 1-of-N SPIs: on a change every vCPU's list registers are stale, and every vCPU
    /// with work is kicked.
    fn write_gicr_waker(&mut self, vcpu: usize, value: u32) -> VcpuSet {
        let sleep = value & waker::PROCESSOR_SLEEP != 0;
        if self.redists[vcpu].processor_sleep == sleep {
            return VcpuSet::EMPTY;
        }
        self.redists[vcpu].processor_sleep = sleep;
        self.resummarise()
    }

    /// The `SGI_base` frame: the vCPU's SGI and PPI registers, shared in layout with the
    /// distributor; everything else in the frame is reserved.
    fn sgi_frame(&mut self, vcpu: usize, offset: u64, access: Access) -> Option<(u64, VcpuSet)> {
        let width = match access.size {
            1 => Width::Byte,
            4 => Width::Word,
            _ => return None,
        };
        let write = access.write.map(low_word);
        let (data, kick) =
            self.irq_block_access(Bank::Redistributor(vcpu), offset, width, write)?;
        Some((u64::from(data), kick))
    }

    /// Whether vCPU `vcpu`'s redistributor is awake (`GICR_WAKER.ProcessorSleep` = 0).
    #[must_use]
    pub fn redistributor_awake(&self, vcpu: usize) -> bool {
        self.redists.get(vcpu).is_some_and(|r| !r.processor_sleep)
    }
}

#[cfg(test)]
mod tests;
