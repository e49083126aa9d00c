//! The GIC model's own invariants, checked against definitions rather than the model's code:
//! every vCPU's summary of the interrupts wanting its list registers is the full recomputation,
//! `has_deliverable` agrees with a scan of every interrupt, and every interrupt marked as held
//! by a vCPU's list registers is in that vCPU's shadow and no other. Compiled for the unit
//! tests and, with the `invariants` feature, for the fuzz targets (`fuzz/`), which call
//! [`Gic::check_invariants`] after every input.

use super::{DEFAULT_SPIS, Gic, IrqRef, MAX_VCPUS, PRIVATE_COUNT, VirtGic, list_regs};
use alloc::vec::Vec;

impl Gic<DEFAULT_SPIS> {
    /// Checks every invariant above.
    ///
    /// # Panics
    ///
    /// When one is broken, with a message naming the vCPU and interrupt: for tests only.
    pub fn check_invariants(&self) {
        check_list_register_ownership(self);
        check_summary(self);
        for vcpu in 0..self.vcpus {
            assert_eq!(
                self.has_deliverable(vcpu),
                deliverable_by_scan(self, vcpu),
                "has_deliverable of vCPU {vcpu}"
            );
        }
    }
}

/// The interrupt `intid` names for `vcpu` (a list register's `vINTID`).
fn vcpu_irq(gic: &VirtGic, vcpu: usize, intid: u32) -> IrqRef {
    if intid < PRIVATE_COUNT {
        IrqRef::Private { vcpu, intid }
    } else {
        match gic.spi_ref(intid) {
            Some(spi) => spi,
            None => panic!("vCPU {vcpu}'s shadow holds INTID {intid}, no implemented SPI"),
        }
    }
}

/// Whether `irq` wants a list register of `vcpu`, from the definition (`summary`'s module
/// documentation) rather than from the model's code.
pub(crate) fn wants_list_register(gic: &VirtGic, vcpu: usize, irq: IrqRef) -> bool {
    let record = gic.irq(irq);
    let acknowledged_active = record.active && record.active_on() == Some(vcpu);
    let deliverable = !record.active && gic.pending_enabled(irq);
    record.lr_of().is_none() && gic.owner(irq) == Some(vcpu) && (acknowledged_active || deliverable)
}

/// The interrupts vCPU `vcpu` owns: its private ones, then the SPIs, in INTID order.
pub(crate) fn vcpu_irqs(vcpu: usize) -> impl Iterator<Item = IrqRef> {
    (0..PRIVATE_COUNT)
        .map(move |intid| IrqRef::Private { vcpu, intid })
        .chain((0..DEFAULT_SPIS).map(IrqRef::Spi))
}

/// Every vCPU's summary is the full recomputation of the interrupts that want its list
/// registers, and no vCPU the VM lacks has one.
pub(crate) fn check_summary(gic: &VirtGic) {
    for vcpu in 0..MAX_VCPUS {
        let summarised: Vec<IrqRef> = if vcpu < gic.vcpus {
            gic.wanted_irqs(vcpu).collect()
        } else {
            assert!(gic.wanted[vcpu].is_empty(), "vCPU {vcpu} the VM lacks");
            continue;
        };
        let recomputed: Vec<IrqRef> = vcpu_irqs(vcpu)
            .filter(|&irq| wants_list_register(gic, vcpu, irq))
            .collect();
        assert_eq!(summarised, recomputed, "vCPU {vcpu}");
    }
}

/// What `has_deliverable` must say: vCPU `vcpu`'s list registers taken back as loaded, whether
/// any interrupt it owns is deliverable (the scan the summary replaced).
pub(crate) fn deliverable_by_scan(gic: &VirtGic, vcpu: usize) -> bool {
    let mut taken_back = gic.clone();
    taken_back.mark_stale(vcpu);
    let _ = taken_back.sync_from_list_registers(vcpu, &[]);
    vcpu_irqs(vcpu).any(|irq| {
        let record = taken_back.irq(irq);
        taken_back.owner(irq) == Some(vcpu) && taken_back.deliverable(record)
    })
}

/// Every interrupt marked as held by a vCPU's list registers is in exactly that vCPU's shadow.
pub(crate) fn check_list_register_ownership(gic: &VirtGic) {
    let mut held = 0;
    for (vcpu, shadow) in gic.shadows.iter().enumerate() {
        for &value in shadow.loaded() {
            let intid = list_regs::ListRegister::decode(value).vintid;
            let irq = vcpu_irq(gic, vcpu, intid);
            assert_eq!(
                gic.irq(irq).lr_of(),
                Some(vcpu),
                "INTID {intid} of vCPU {vcpu}"
            );
            held += 1;
        }
    }
    let private = gic.private.iter().flatten();
    let marked = private.chain(&gic.spis).filter(|irq| irq.lr_of().is_some());
    assert_eq!(marked.count(), held);
}
