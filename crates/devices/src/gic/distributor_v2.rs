//! The GICv2 distributor (`GICD_*`, IHI 0048B, 4.3 "Distributor register descriptions"), as a
//! GIC without the Security Extensions shows it: one distributor for every vCPU, whose words
//! for INTIDs 0–31 (`GICD_IGROUPR0`, `GICD_ISENABLER0`, ..., `GICD_IPRIORITYR0..7`,
//! `GICD_ITARGETSR0..7`, `GICD_ICFGR1`) are banked: each vCPU reaches its own SGIs and PPIs
//! there. SPIs name their targets by CPU mask (`GICD_ITARGETSRn`), SGIs are sent through
//! `GICD_SGIR` and carry their source CPU, pending per source (`GICD_SPENDSGIRn`).
//!
//! The registers the two architectures share sit at the same offsets and are served by the
//! same code (`irq_regs`), through the banked view. Reserved offsets read as zero and ignore
//! writes, as do accesses of a size the spec does not allow (GICv2 allows word accesses, and
//! byte accesses to `GICD_IPRIORITYRn`, `GICD_ITARGETSRn`, `GICD_[CS]PENDSGIRn`).

use super::distributor::{id_register, low_word};
use super::irq_regs::{Bank, Width};
use super::regs_v2::gicd as reg;
use super::{Gic, IrqRef, PRIVATE_COUNT, SGI_COUNT, VcpuSet};
use crate::{Access, DeviceEffects};

/// The size of a GICv2 distributor's register map: 4 KiB (a window may be larger; the rest
/// is reserved).
pub const DISTRIBUTOR_V2_SIZE: u64 = 0x1000;

/// `GICD_IIDR`: `Implementer` 0x43B (Arm, JEP106), product and revision 0, as the GICv3 side.
const IIDR: u32 = 0x43B;

/// `GICD_PIDR4..7`, `GICD_PIDR0..3`, `GICD_CIDR0..3` in address order: an Arm GICv2
/// distributor (`PIDR2.ArchRev` = 2, so `PIDR2` = 0x2B), as the GIC-400 reports.
const ID_BYTES: [u8; 12] = [
    0x04, 0x00, 0x00, 0x00, 0x90, 0xB4, 0x2B, 0x00, 0x0D, 0xF0, 0x05, 0xB1,
];

/// The vCPUs a `GICD_SGIR` write from `sender` targets, in a VM of `vcpus` vCPUs.
#[must_use]
pub fn sgir_targets(value: u32, sender: usize, vcpus: usize) -> VcpuSet {
    let all = VcpuSet::first(vcpus);
    let bits = match (value >> reg::SGIR_FILTER_SHIFT) & reg::SGIR_FILTER_MASK {
        0 => (value >> reg::SGIR_TARGET_LIST_SHIFT) & 0xFF,
        1 => all.without(sender).bits(),
        2 => VcpuSet::single(sender).bits(),
        // 0b11 is reserved: no SGI.
        _ => 0,
    };
    VcpuSet::from_bits(bits & all.bits())
}

impl<const SPIS: usize> Gic<SPIS> {
    /// Performs one access of vCPU `vcpu` at `access.offset` in a GICv2 distributor's window
    /// and returns the read data (0 for a write) and the effects: the vCPUs to kick. An access
    /// of a vCPU the GIC does not serve reads as zero and is ignored.
    pub fn distributor_v2_access(&mut self, vcpu: usize, access: Access) -> (u64, DeviceEffects) {
        let (data, kick) = self.gicd_v2(vcpu, access).unwrap_or((0, VcpuSet::EMPTY));
        let effects = DeviceEffects {
            kick,
            ..DeviceEffects::default()
        };
        (u64::from(data) & access.size_mask(), effects)
    }

    /// `GICD_TYPER` of a GICv2.
    #[must_use]
    pub fn gicd_v2_typer(&self) -> u32 {
        let lines = Self::intid_limit().div_ceil(32) - 1;
        // Truncation impossible: vcpus <= MAX_VCPUS = 8.
        #[allow(clippy::cast_possible_truncation)]
        let cpus = self.vcpus as u32 - 1;
        (lines & reg::TYPER_IT_LINES_NUMBER_MASK) | (cpus << reg::TYPER_CPU_NUMBER_SHIFT)
    }

    pub(super) fn gicd_v2(&mut self, vcpu: usize, access: Access) -> Option<(u32, VcpuSet)> {
        let offset = access.offset;
        let width = match access.size {
            1 => Width::Byte,
            4 => Width::Word,
            _ => return None,
        };
        if vcpu >= self.vcpus || !offset.is_multiple_of(u64::from(access.size)) {
            return None;
        }
        let write = access.write.map(low_word);
        let bytes = if width == Width::Byte { 1 } else { 4 };
        match offset {
            reg::ITARGETSR..reg::ITARGETSR_END => {
                Some(self.targets_access(vcpu, offset - reg::ITARGETSR, bytes, write))
            }
            reg::CPENDSGIR..reg::ID_START => self.pendsgir_access(vcpu, offset, bytes, write),
            _ if width == Width::Byte => {
                self.irq_block_access(Bank::BankedDistributor(vcpu), offset, width, write)
            }
            _ => self.gicd_v2_word(vcpu, offset, write),
        }
    }

    fn gicd_v2_word(
        &mut self,
        vcpu: usize,
        offset: u64,
        write: Option<u32>,
    ) -> Option<(u32, VcpuSet)> {
        let read = |value| Some((value, VcpuSet::EMPTY));
        match (offset, write) {
            // GICD_CTLR: EnableGrp0 and EnableGrp1, the same bits as the GICv3's.
            (reg::CTLR, None) => read(self.group_enable_bits()),
            (reg::CTLR, Some(value)) => Some((0, self.write_gicd_ctlr(value))),
            (reg::TYPER, None) => read(self.gicd_v2_typer()),
            (reg::IIDR, None) => read(IIDR),
            (reg::SGIR, Some(value)) => Some((0, self.send_sgi_v2(vcpu, value))),
            (reg::ID_START..reg::ID_END, None) => {
                read(id_register(offset, reg::ID_START, &ID_BYTES))
            }
            _ => self.irq_block_access(Bank::BankedDistributor(vcpu), offset, Width::Word, write),
        }
    }

    /// `GICD_ITARGETSRn`, `bytes` of them from INTID `first`: an SGI's or PPI's reads as the
    /// accessing vCPU's own bit and ignores writes (IHI 0048B, 4.3.12); an SPI's holds its CPU
    /// mask, of which the bits of vCPUs the VM has are writable.
    fn targets_access(
        &mut self,
        vcpu: usize,
        first: u64,
        bytes: u32,
        write: Option<u32>,
    ) -> (u32, VcpuSet) {
        let implemented = VcpuSet::first(self.vcpus).bits();
        let mut value = 0;
        let mut kick = VcpuSet::EMPTY;
        for byte in 0..bytes {
            let Ok(intid) = u32::try_from(first + u64::from(byte)) else {
                continue;
            };
            let shift = 8 * byte;
            if intid < PRIVATE_COUNT {
                value |= VcpuSet::single(vcpu).bits() << shift;
                continue;
            }
            let Some(IrqRef::Spi(index)) = self.spi_ref(intid) else {
                continue;
            };
            let Some(data) = write else {
                // Truncation impossible: a target mask is one byte.
                #[allow(clippy::cast_possible_truncation)]
                let mask = self.routes[index] as u32;
                value |= mask << shift;
                continue;
            };
            let mask = u64::from((data >> shift) & 0xFF & implemented);
            if mask != self.routes[index] {
                self.routes[index] = mask;
                self.multi_target.set(intid, mask.count_ones() > 1);
                let irq = IrqRef::Spi(index);
                let record = *self.irq(irq);
                kick |= self.changed(irq, &record, true);
            }
        }
        (value, kick)
    }

    /// `GICD_CPENDSGIRn`/`GICD_SPENDSGIRn`, `bytes` bytes at `offset`: one byte per SGI of the
    /// accessing vCPU, bit `n` its pending state from vCPU `n`; writing 1 clears or sets it.
    fn pendsgir_access(
        &mut self,
        vcpu: usize,
        offset: u64,
        bytes: u32,
        write: Option<u32>,
    ) -> Option<(u32, VcpuSet)> {
        let (base, set) = match offset {
            reg::CPENDSGIR..reg::SPENDSGIR => (reg::CPENDSGIR, false),
            reg::SPENDSGIR..0xF30 => (reg::SPENDSGIR, true),
            _ => return Some((0, VcpuSet::EMPTY)),
        };
        debug_assert!(offset - base < reg::PENDSGIR_LEN);
        let first = u32::try_from(offset - base).ok()?;
        let implemented = VcpuSet::first(self.vcpus).bits();
        let mut value = 0;
        let mut kick = VcpuSet::EMPTY;
        for byte in 0..bytes {
            let irq = IrqRef::Private {
                vcpu,
                intid: first + byte,
            };
            let shift = 8 * byte;
            let Some(data) = write else {
                value |= u32::from(self.visible(irq).sgi_sources) << shift;
                continue;
            };
            // Truncation intended: the byte of this SGI.
            #[allow(clippy::cast_possible_truncation)]
            let sources = ((data >> shift) & implemented) as u8;
            if sources == 0 {
                continue;
            }
            kick |= self.update(irq, |record| {
                if set {
                    record.sgi_sources |= sources;
                } else {
                    record.sgi_sources &= !sources;
                }
                record.write_latch(record.sgi_sources != 0);
            });
        }
        Some((value, kick))
    }

    /// A `GICD_SGIR` write by vCPU `sender`: SGI `SGIINTID` becomes pending from `sender` on
    /// every target (`TargetListFilter`, `CPUTargetList`), whatever its group (no Security
    /// Extensions, so `NSATT` is not implemented). Like an edge, it does not override what a
    /// list register holding the same SGI says. Returns the vCPUs to kick.
    fn send_sgi_v2(&mut self, sender: usize, value: u32) -> VcpuSet {
        let intid = value & reg::SGIR_INTID_MASK;
        debug_assert!(intid < SGI_COUNT);
        let Ok(source) = u8::try_from(sender) else {
            return VcpuSet::EMPTY;
        };
        let mut kick = VcpuSet::EMPTY;
        for vcpu in sgir_targets(value, sender, self.vcpus).iter() {
            kick |= self.update(IrqRef::Private { vcpu, intid }, |record| {
                record.sgi_sources |= 1 << source;
                record.latch = true;
            });
        }
        kick
    }
}

#[cfg(test)]
mod tests;
