//! Register reads answered without reading the list registers back: what lets the exit path
//! serve a guest's read of a GIC register in place (`bare/hyp/src/fastpath.rs`), the way it
//! serves a UART register, instead of syncing and refilling the list registers around it.
//!
//! Between two syncs of a vCPU the guest changes only the state of the interrupts in its list
//! registers, and only their pending and active state: a list register carries no enable,
//! group, priority, configuration or route (IHI 0069, `ICH_LR<n>_EL2`; IHI 0048B, `GICH_LRn`).
//! So every register but the pending and active ones reads the same before and after the sync:
//! the model answers those unsynced, and says `None` for the pending and active registers
//! (`GICD_ISPENDR<n>` .. `GICD_ICACTIVER<n>`, the redistributor's `GICR_ISPENDR0` ..
//! `GICR_ICACTIVER0`, a GICv2's `GICD_CPENDSGIR<n>`/`GICD_SPENDSGIR<n>`) and for every write,
//! which the caller serves after the sync, as usual.

use super::irq_regs::reads_pending_or_active;
use super::redistributor::SGI_BASE;
use super::regs_v2::gicd as v2;
use super::{Gic, REDISTRIBUTOR_STRIDE, VcpuSet};
use crate::Access;

/// A window of the GIC's registers, as a VM's bus maps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicWindow {
    /// The GICv3 distributor (`GICD_*`).
    Distributor,
    /// The GICv3 redistributors (`GICR_*`), one [`REDISTRIBUTOR_STRIDE`] per vCPU.
    Redistributors,
    /// The GICv2 distributor, banked per vCPU.
    V2Distributor,
}

impl<const SPIS: usize> Gic<SPIS> {
    /// The data of the read `access` to `window` by vCPU `vcpu`, when it is the same whether
    /// or not the list registers of any vCPU have been read back since its guest last ran;
    /// `None` for a write or a read of pending or active state (module documentation): the
    /// caller syncs `vcpu` and makes the access through the window's usual path. A read has
    /// no effect, so nothing else is returned.
    #[inline]
    pub fn read_unsynced(&mut self, window: GicWindow, vcpu: usize, access: Access) -> Option<u64> {
        if access.write.is_some() {
            return None;
        }
        let offset = access.offset;
        // The windows' own accesses (`distributor_access` and kin) without their effects: a
        // register they do not answer reads as zero.
        let (data, kick) = match window {
            GicWindow::Distributor if reads_pending_or_active(offset) => return None,
            GicWindow::Distributor => self.gicd(access),
            GicWindow::Redistributors
                if offset % REDISTRIBUTOR_STRIDE >= SGI_BASE
                    && reads_pending_or_active(offset % REDISTRIBUTOR_STRIDE - SGI_BASE) =>
            {
                return None;
            }
            GicWindow::Redistributors => self.gicr(access),
            GicWindow::V2Distributor
                if reads_pending_or_active(offset)
                    || (v2::CPENDSGIR..v2::SPENDSGIR + v2::PENDSGIR_LEN).contains(&offset) =>
            {
                return None;
            }
            GicWindow::V2Distributor => self
                .gicd_v2(vcpu, access)
                .map(|(data, kick)| (u64::from(data), kick)),
        }
        .unwrap_or((0, VcpuSet::EMPTY));
        debug_assert!(kick.is_empty(), "a GIC register read kicked a vCPU");
        Some(data & access.size_mask())
    }
}
