//! The GICv2 distributor as a guest's driver programs it, and SGIs with their sources through
//! the list registers in `GICH_LR<n>` layout.

use super::*;
use crate::gic::list_regs::gich::{from_gich_lr, gich_vtr, to_gich_lr};
use crate::gic::list_regs::{ListRegister, LrState};
use crate::gic::{VirtGic, list_regs::IchVtr};

/// The GIC-400's `GICH_VTR` (4 list registers, 5 priority bits), as QEMU's model reports it.
fn gic400() -> IchVtr {
    gich_vtr(0x9000_0003)
}

const GICD_CTLR: u64 = 0x000;
const GICD_TYPER: u64 = 0x004;
const GICD_ISENABLER0: u64 = 0x100;
const GICD_ISPENDR0: u64 = 0x200;
const GICD_ITARGETSR0: u64 = 0x800;
const GICD_SGIR: u64 = 0xF00;
const GICD_CPENDSGIR0: u64 = 0xF10;
const GICD_SPENDSGIR0: u64 = 0xF20;
const GICD_PIDR2: u64 = 0xFE8;

fn read(gic: &mut VirtGic, vcpu: usize, offset: u64, size: u8) -> u64 {
    gic.distributor_v2_access(vcpu, Access::read(offset, size))
        .0
}

fn write(gic: &mut VirtGic, vcpu: usize, offset: u64, size: u8, value: u64) -> VcpuSet {
    gic.distributor_v2_access(vcpu, Access::write(offset, size, value))
        .1
        .kick
}

/// A GICv2 as Linux's driver leaves it: Group 0 enabled (`GICD_CTLR` = 1), every SGI enabled
/// on every vCPU (`GICD_ISENABLER0`, banked).
fn linux_v2(vcpus: usize) -> VirtGic {
    let mut gic = VirtGic::new_v2(vcpus).unwrap();
    let _ = write(&mut gic, 0, GICD_CTLR, 4, 1);
    for vcpu in 0..vcpus {
        let _ = write(&mut gic, vcpu, GICD_ISENABLER0, 4, 0xFFFF);
    }
    gic
}

/// The list registers vCPU `vcpu` gets, as the hardware's `GICH_LR<n>` would hold them.
fn fill(gic: &mut VirtGic, vcpu: usize) -> Vec<u32> {
    let mut lrs = Vec::new();
    let _ = gic.fill_list_registers_with(vcpu, gic400(), |_, value| lrs.push(to_gich_lr(value)));
    lrs
}

/// (VirtualID, CPUID, State) of a valid `GICH_LR<n>`.
fn sgi_of(lr: u32) -> (u32, u32, u32) {
    (lr & 0x3FF, (lr >> 10) & 0b111, (lr >> 28) & 0b11)
}

#[test]
fn gicd_typer_counts_the_lines_and_cpu_interfaces_without_security_extensions() {
    let mut gic = VirtGic::new_v2(4).unwrap();
    // 128 INTIDs: ITLinesNumber 3; CPUNumber 3; SecurityExtn (bit 10) 0.
    assert_eq!(read(&mut gic, 0, GICD_TYPER, 4), 3 | 3 << 5);
    assert_eq!(read(&mut gic, 0, GICD_PIDR2, 4), 0x2B, "ArchRev 2");
}

#[test]
fn itargetsr0_to_7_read_as_the_accessing_vcpus_own_bit_and_ignore_writes() {
    let mut gic = VirtGic::new_v2(2).unwrap();
    assert_eq!(read(&mut gic, 0, GICD_ITARGETSR0, 4), 0x0101_0101);
    assert_eq!(read(&mut gic, 1, GICD_ITARGETSR0 + 28, 4), 0x0202_0202);
    assert_eq!(read(&mut gic, 1, GICD_ITARGETSR0 + 27, 1), 0x02);
    let _ = write(&mut gic, 1, GICD_ITARGETSR0, 4, 0);
    assert_eq!(read(&mut gic, 1, GICD_ITARGETSR0, 4), 0x0202_0202);
}

#[test]
fn an_spi_goes_to_the_vcpu_its_itargetsr_names_and_to_none_at_reset() {
    let mut gic = linux_v2(2);
    let spi = 40;
    let _ = write(&mut gic, 0, GICD_ISENABLER0 + 4, 4, 1 << (spi - 32));
    let kick = gic.set_spi_level(spi, true);
    assert!(kick.is_empty(), "GICD_ITARGETSRn resets to 0: no target");
    // Target byte of INTID 40: vCPU 1 only; the bit of a vCPU the VM lacks is not kept.
    let kick = write(&mut gic, 0, GICD_ITARGETSR0 + u64::from(spi), 1, 0b110);
    assert_eq!(kick, VcpuSet::single(1));
    assert_eq!(read(&mut gic, 0, GICD_ITARGETSR0 + u64::from(spi), 1), 0b10);
    let lrs = fill(&mut gic, 1);
    assert_eq!(
        sgi_of(lrs[0]),
        (spi & 0x3FF, 0, 0b01),
        "pending in vCPU 1's LR0"
    );
    assert!(fill(&mut gic, 0).iter().all(|&lr| lr == 0));
}

#[test]
fn private_registers_are_banked_per_vcpu() {
    let mut gic = VirtGic::new_v2(2).unwrap();
    let _ = write(&mut gic, 1, GICD_ISENABLER0, 4, 1 << 27);
    assert_eq!(read(&mut gic, 1, GICD_ISENABLER0, 4), 1 << 27);
    assert_eq!(read(&mut gic, 0, GICD_ISENABLER0, 4), 0);
}

#[test]
fn gicd_sgir_pends_the_sgi_from_the_sender_on_each_target() {
    let mut gic = linux_v2(3);
    // TargetListFilter 0, CPUTargetList 0b110, SGIINTID 3, from vCPU 0.
    let kick = write(&mut gic, 0, GICD_SGIR, 4, 0b110 << 16 | 3);
    assert_eq!(kick.iter().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        read(&mut gic, 1, GICD_SPENDSGIR0, 4),
        0b1 << 24,
        "SGI 3 from CPU 0"
    );
    assert_eq!(read(&mut gic, 0, GICD_SPENDSGIR0, 4), 0);
    // The list register carries the source in GICH_LR<n>.CPUID: GICC_IAR says who sent it.
    let _ = write(&mut gic, 2, GICD_SGIR, 4, 0b01 << 16 | 3);
    assert_eq!(sgi_of(fill(&mut gic, 0)[0]), (3, 2, 0b01));
}

#[test]
fn gicd_sgir_filters_target_all_but_the_sender_or_the_sender_alone() {
    let targets = |value, sender| -> Vec<usize> { sgir_targets(value, sender, 4).iter().collect() };
    assert_eq!(targets(1 << 24, 2), [0, 1, 3]);
    assert_eq!(targets(2 << 24 | 0xFF << 16, 2), [2]);
    assert_eq!(targets(3 << 24 | 0xFF << 16, 2), [] as [usize; 0]);
    assert_eq!(
        targets(0xFF << 16, 2),
        [0, 1, 2, 3],
        "bits of absent CPUs ignored"
    );
}

#[test]
fn an_sgi_from_two_sources_is_delivered_twice_each_with_its_source() {
    let mut gic = linux_v2(3);
    let _ = write(&mut gic, 0, GICD_SGIR, 4, 0b010 << 16 | 5);
    let _ = write(&mut gic, 2, GICD_SGIR, 4, 0b010 << 16 | 5);
    let lrs = fill(&mut gic, 1);
    assert_eq!(sgi_of(lrs[0]), (5, 0, 0b01), "the lowest source first");
    assert_eq!(
        read(&mut gic, 1, GICD_SPENDSGIR0 + 4, 4) >> 8,
        0b101,
        "both sources still pending as the guest reads them"
    );
    // The guest acknowledges and completes it: the LR comes back invalid.
    let done: Vec<u64> = lrs
        .iter()
        .map(|&lr| from_gich_lr(lr & !(0b11 << 28)))
        .collect();
    let _ = gic.sync_from_list_registers(1, &done);
    let lrs = fill(&mut gic, 1);
    assert_eq!(sgi_of(lrs[0]), (5, 2, 0b01), "then the other source's");
    let _ = gic.sync_from_list_registers(1, &[from_gich_lr(lrs[0] & !(0b11 << 28))]);
    assert_eq!(read(&mut gic, 1, GICD_SPENDSGIR0 + 4, 4), 0);
    assert!(!gic.has_deliverable(1));
}

#[test]
fn an_sgi_left_pending_in_a_list_register_keeps_its_source() {
    let mut gic = linux_v2(2);
    let _ = write(&mut gic, 1, GICD_SGIR, 4, 0b01 << 16 | 7);
    let lrs = fill(&mut gic, 0);
    // Another SGI makes the list registers stale; the untouched one comes back pending.
    let _ = write(&mut gic, 0, GICD_SGIR, 4, 2 << 24 | 6);
    let _ = gic.sync_from_list_registers(0, &[from_gich_lr(lrs[0])]);
    assert_eq!(
        read(&mut gic, 0, GICD_SPENDSGIR0 + 4, 4),
        0b10 << 24 | 0b01 << 16
    );
    let loaded: Vec<_> = fill(&mut gic, 0).into_iter().map(sgi_of).collect();
    assert!(loaded.contains(&(7, 1, 0b01)) && loaded.contains(&(6, 0, 0b01)));
}

#[test]
fn sgi_pending_bits_are_read_only_in_ispendr0_and_written_through_pendsgir() {
    let mut gic = linux_v2(2);
    let _ = write(&mut gic, 0, GICD_ISPENDR0, 4, 0xFFFF);
    assert_eq!(
        read(&mut gic, 0, GICD_ISPENDR0, 4),
        0,
        "ISPENDR0 SGI bits are WI"
    );
    let _ = write(&mut gic, 0, GICD_SPENDSGIR0, 1, 0b11);
    assert_eq!(
        read(&mut gic, 0, GICD_ISPENDR0, 4),
        1,
        "SGI 0 pending from 2 sources"
    );
    let _ = write(&mut gic, 0, GICD_CPENDSGIR0, 1, 0b01);
    assert_eq!(read(&mut gic, 0, GICD_SPENDSGIR0, 1), 0b10);
    let _ = write(&mut gic, 0, GICD_CPENDSGIR0, 4, 0b10);
    assert_eq!(read(&mut gic, 0, GICD_ISPENDR0, 4), 0);
}

#[test]
fn group_enables_are_gicd_ctlr_bits_0_and_1() {
    let mut gic = VirtGic::new_v2(1).unwrap();
    let _ = write(&mut gic, 0, GICD_CTLR, 4, 0xFFFF_FFFF);
    assert_eq!(read(&mut gic, 0, GICD_CTLR, 4), 0b11);
}

#[test]
fn a_loaded_sgi_reads_back_as_loaded_through_the_gich_translation() {
    let mut gic = linux_v2(2);
    let _ = write(&mut gic, 1, GICD_SGIR, 4, 0b01 << 16 | 1);
    let lrs = fill(&mut gic, 0);
    let decoded = ListRegister::decode(from_gich_lr(lrs[0]));
    assert_eq!((decoded.source, decoded.state), (1, LrState::Pending));
    // Unchanged: the sync keeps it, the next fill writes nothing.
    let _ = gic.sync_from_list_registers(0, &[from_gich_lr(lrs[0])]);
    assert!(fill(&mut gic, 0).is_empty());
}

const GICD_ISACTIVER0: u64 = 0x300;
const GICD_IPRIORITYR0: u64 = 0x400;

/// `lr` with its `State` field replaced by `state` (0b01 pending, 0b10 active), as the
/// hardware's `GICH_LR<n>` would hold it after the guest's work, in the model's layout.
fn with_state(lr: u32, state: u32) -> u64 {
    from_gich_lr((lr & !(0b11 << 28)) | state << 28)
}

/// vCPU `vcpu` takes SGI `sgi` from vCPU `from` and leaves it active (acknowledged, not yet
/// deactivated): its list register comes back active.
fn acknowledge_sgi(gic: &mut VirtGic, vcpu: usize, from: usize, sgi: u64) {
    let _ = write(gic, from, GICD_SGIR, 4, (1 << vcpu) << 16 | sgi);
    let lrs = fill(gic, vcpu);
    let n = lrs
        .iter()
        .position(|&lr| u64::from(lr & 0x3FF) == sgi)
        .expect("the SGI is loaded");
    let back: Vec<u64> = lrs
        .iter()
        .enumerate()
        .map(|(i, &lr)| {
            if i == n {
                with_state(lr, 0b10)
            } else {
                from_gich_lr(lr)
            }
        })
        .collect();
    let _ = gic.sync_from_list_registers(vcpu, &back);
}

/// A GICv2 whose SPI `spi` is enabled and targets the vCPUs of `mask`.
fn spi_to(vcpus: usize, spi: u32, mask: u64) -> VirtGic {
    let mut gic = linux_v2(vcpus);
    let _ = write(&mut gic, 0, GICD_ISENABLER0 + 4, 4, 1 << (spi - 32));
    let _ = write(&mut gic, 0, GICD_ITARGETSR0 + u64::from(spi), 1, mask);
    gic
}

#[test]
fn an_spi_targeting_several_vcpus_goes_to_the_first_that_is_not_busy() {
    let spi = 40;
    let mut gic = spi_to(3, spi, 0b011);
    // vCPU 0 is handling an SGI (acknowledged, active): busy.
    acknowledge_sgi(&mut gic, 0, 2, 1);
    let kick = gic.set_spi_level(spi, true);
    assert_eq!(
        kick,
        VcpuSet::single(1),
        "offered to vCPU 1, not the busy vCPU 0"
    );
    assert_eq!(sgi_of(fill(&mut gic, 1)[0]), (spi, 0, 0b01));
    let on_0: Vec<_> = fill(&mut gic, 0).into_iter().map(sgi_of).collect();
    assert!(!on_0.iter().any(|&(id, _, _)| id == spi), "{on_0:?}");
}

#[test]
fn an_spi_offered_to_a_vcpu_that_becomes_busy_moves_to_an_idle_target() {
    let spi = 41;
    let mut gic = spi_to(2, spi, 0b011);
    let _ = gic.set_spi_level(spi, true);
    let lrs = fill(&mut gic, 0);
    assert_eq!(
        sgi_of(lrs[0]),
        (spi, 0, 0b01),
        "both idle: the first target"
    );
    // vCPU 0 now acknowledges an SGI sent to it; its list registers hold the SPI, still
    // pending. The sync that sees it busy takes the SPI back and offers it to vCPU 1.
    let _ = write(&mut gic, 1, GICD_SGIR, 4, 0b01 << 16 | 2);
    let lrs = fill(&mut gic, 0);
    let back: Vec<u64> = lrs
        .iter()
        .map(|&lr| {
            if lr & 0x3FF == 2 {
                with_state(lr, 0b10)
            } else {
                from_gich_lr(lr)
            }
        })
        .collect();
    let kick = gic.sync_from_list_registers(0, &back);
    assert!(kick.contains(1), "vCPU 1 is kicked to take the SPI");
    assert_eq!(sgi_of(fill(&mut gic, 1)[0]), (spi, 0, 0b01));
    let on_0: Vec<_> = fill(&mut gic, 0)
        .into_iter()
        .filter(|&lr| lr != 0)
        .map(sgi_of)
        .collect();
    assert_eq!(on_0, [(2, 1, 0b10)], "vCPU 0 keeps only its active SGI");
}

#[test]
fn an_spi_whose_targets_are_all_busy_goes_to_the_first_and_one_target_is_kept_busy_or_not() {
    let spi = 42;
    let mut gic = spi_to(2, spi, 0b011);
    acknowledge_sgi(&mut gic, 0, 1, 1);
    acknowledge_sgi(&mut gic, 1, 0, 1);
    assert_eq!(gic.set_spi_level(spi, true), VcpuSet::single(0));
    // A single target is the target, busy or not.
    let _ = write(&mut gic, 0, GICD_ITARGETSR0 + u64::from(spi), 1, 0b10);
    let _ = fill(&mut gic, 0);
    let on_1: Vec<_> = fill(&mut gic, 1).into_iter().map(sgi_of).collect();
    assert!(on_1.contains(&(spi, 0, 0b01)), "{on_1:?}");
}

#[test]
fn an_sgi_active_from_one_source_and_pending_from_another_shows_both() {
    let mut gic = linux_v2(3);
    // vCPU 1 acknowledged SGI 5 from vCPU 0; then vCPU 2 sends SGI 5 too.
    acknowledge_sgi(&mut gic, 1, 0, 5);
    let _ = write(&mut gic, 2, GICD_SGIR, 4, 0b010 << 16 | 5);
    assert_eq!(read(&mut gic, 1, GICD_ISACTIVER0, 4), 1 << 5, "active");
    assert_eq!(
        read(&mut gic, 1, GICD_SPENDSGIR0 + 4, 4) >> 8,
        0b100,
        "pending from vCPU 2 only"
    );
    // The list register keeps the active SGI's own source, which the guest's EOI names; the
    // other source's waits until it is deactivated.
    let lrs = fill(&mut gic, 1);
    assert_eq!(lrs.len(), 1);
    assert_eq!(sgi_of(lrs[0]), (5, 0, 0b10));
    let _ = gic.sync_from_list_registers(1, &[with_state(lrs[0], 0b00)]);
    assert_eq!(read(&mut gic, 1, GICD_ISACTIVER0, 4), 0);
    assert_eq!(sgi_of(fill(&mut gic, 1)[0]), (5, 2, 0b01), "then vCPU 2's");
}

#[test]
fn an_sgi_sent_again_by_its_active_source_is_pending_and_active_with_that_source() {
    let mut gic = linux_v2(2);
    acknowledge_sgi(&mut gic, 1, 0, 3);
    let _ = write(&mut gic, 0, GICD_SGIR, 4, 0b10 << 16 | 3);
    let lrs = fill(&mut gic, 1);
    assert_eq!(sgi_of(lrs[0]), (3, 0, 0b11));
    assert_eq!(read(&mut gic, 1, GICD_SPENDSGIR0, 4) >> 24, 0b01);
}

#[test]
fn priority_fields_keep_the_gic_400s_five_bits_or_the_virtual_interfaces() {
    let mut gic = linux_v2(2);
    // IHI 0048B 3.3: the unimplemented low bits of a priority field are RAZ/WI.
    let _ = write(&mut gic, 1, GICD_IPRIORITYR0 + 24, 4, 0xFFA7_5F03);
    assert_eq!(read(&mut gic, 1, GICD_IPRIORITYR0 + 24, 4), 0xF8A0_5800);
    let _ = write(&mut gic, 0, GICD_IPRIORITYR0 + 40, 1, 0x4F);
    assert_eq!(read(&mut gic, 0, GICD_IPRIORITYR0 + 40, 1), 0x48);
    // A virtual CPU interface of 4 priority bits: the distributor follows it.
    gic.set_priority_bits(4);
    assert_eq!(read(&mut gic, 1, GICD_IPRIORITYR0 + 24, 4), 0xF0A0_5000);
    let _ = write(&mut gic, 0, GICD_IPRIORITYR0 + 40, 1, 0x4F);
    assert_eq!(read(&mut gic, 0, GICD_IPRIORITYR0 + 40, 1), 0x40);
    // A GICv3 keeps all 8 (QEMU virt's distributor implements them).
    let mut v3 = VirtGic::new(1).unwrap();
    v3.set_priority_bits(4);
    let _ = v3.distributor_access(Access::write(0x400 + 40, 1, 0x4F));
    assert_eq!(v3.distributor_access(Access::read(0x400 + 40, 1)).0, 0x4F);
}
