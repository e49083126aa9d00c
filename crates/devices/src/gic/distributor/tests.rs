//! Distributor register tests: one per register fact, offsets as IHI 0069 gives them.

use super::*;
use crate::gic::tests::{enable, gicd_read, gicd_write, linux_gic};
use crate::gic::{GroupEnables, VirtGic};

const ISENABLER1: u64 = 0x104;
const ICENABLER1: u64 = 0x184;
const ISPENDR1: u64 = 0x204;
const ICPENDR1: u64 = 0x284;
const ISACTIVER1: u64 = 0x304;
const ICACTIVER1: u64 = 0x384;
const IGROUPR1: u64 = 0x084;
const IPRIORITYR_32: u64 = 0x420;
const ICFGR2: u64 = 0xC08;
const IROUTER_32: u64 = 0x6100;

fn reset_gic() -> VirtGic {
    VirtGic::new(4).unwrap()
}

#[test]
fn gicd_typer_reports_itlines_for_the_configured_spis() {
    // ITLinesNumber N: INTIDs up to 32 * (N + 1) - 1.
    assert_eq!(Gic::<0>::new(1).unwrap().gicd_typer() & 0x1F, 0);
    assert_eq!(Gic::<32>::new(1).unwrap().gicd_typer() & 0x1F, 1);
    assert_eq!(Gic::<64>::new(1).unwrap().gicd_typer() & 0x1F, 2);
    assert_eq!(VirtGic::new(1).unwrap().gicd_typer() & 0x1F, 3);
    assert_eq!(Gic::<256>::new(1).unwrap().gicd_typer() & 0x1F, 8);
    assert_eq!(Gic::<988>::new(1).unwrap().gicd_typer() & 0x1F, 31);
}

#[test]
fn gicd_typer_reports_cpus_ten_id_bits_a3v_and_no_lpis_mbis_or_security() {
    let mut gic = reset_gic();
    // CPUNumber 3 (4 vCPUs) at [7:5], IDbits 0b1001 at [23:19], A3V at 24; LPIS [17],
    // MBIS [16], SecurityExtn [10], No1N [25], RSS [26] all 0.
    assert_eq!(gicd_read(&mut gic, reg::TYPER), 0x0148_0063);
}

#[test]
fn gicd_ctlr_has_are_and_ds_set_and_keeps_only_the_group_enables() {
    let mut gic = reset_gic();
    assert_eq!(gicd_read(&mut gic, reg::CTLR), 0x50);
    gicd_write(&mut gic, reg::CTLR, 0xFFFF_FFFF);
    // RWP (bit 31) reads 0: writes take effect at once.
    assert_eq!(gicd_read(&mut gic, reg::CTLR), 0x53);
    gicd_write(&mut gic, reg::CTLR, 0);
    assert_eq!(gicd_read(&mut gic, reg::CTLR), 0x50);
}

#[test]
fn identification_registers_read_as_an_arm_gicv3_distributor() {
    let mut gic = reset_gic();
    let cases = [
        (0xFFE8, 0x3B), // GICD_PIDR2: ArchRev 3
        (0xFFE0, 0x92), // GICD_PIDR0
        (0xFFE4, 0xB4), // GICD_PIDR1
        (0xFFD0, 0x44), // GICD_PIDR4
        (0xFFF0, 0x0D), // GICD_CIDR0
        (0xFFFC, 0xB1), // GICD_CIDR3
        (reg::IIDR, 0x43B),
        (reg::TYPER2, 0),
        (reg::STATUSR, 0),
    ];
    for (offset, value) in cases {
        assert_eq!(gicd_read(&mut gic, offset), value, "offset {offset:#x}");
    }
}

#[test]
fn set_and_clear_registers_change_only_the_bits_written_as_one() {
    let mut gic = reset_gic();
    let cases = [
        (ISENABLER1, ICENABLER1, ISENABLER1),
        (ISPENDR1, ICPENDR1, ISPENDR1),
        (ISACTIVER1, ICACTIVER1, ISACTIVER1),
    ];
    for (set, clear, read) in cases {
        gicd_write(&mut gic, set, 0x8000_0011);
        gicd_write(&mut gic, set, 0x0000_0100);
        assert_eq!(gicd_read(&mut gic, read), 0x8000_0111, "set at {set:#x}");
        assert_eq!(
            gicd_read(&mut gic, clear),
            0x8000_0111,
            "clear reads the same"
        );
        gicd_write(&mut gic, clear, 0x0000_0011);
        assert_eq!(
            gicd_read(&mut gic, read),
            0x8000_0100,
            "clear at {clear:#x}"
        );
    }
}

#[test]
fn igroupr_bits_are_written_as_given() {
    let mut gic = reset_gic();
    gicd_write(&mut gic, IGROUPR1, 0xFFFF_FFFF);
    gicd_write(&mut gic, IGROUPR1, 0xF0F0_F0F0);
    assert_eq!(gicd_read(&mut gic, IGROUPR1), 0xF0F0_F0F0);
}

#[test]
fn sgi_and_ppi_words_of_the_distributor_read_as_zero_and_ignore_writes() {
    let mut gic = reset_gic();
    for offset in [0x080, 0x100, 0x200, 0x300, 0x400, 0x41C, 0xC00, 0xC04] {
        gicd_write(&mut gic, offset, 0xFFFF_FFFF);
        assert_eq!(gicd_read(&mut gic, offset), 0, "offset {offset:#x}");
    }
    assert!(!gic.irq(IrqRef::Private { vcpu: 0, intid: 0 }).enabled);
}

#[test]
fn words_past_the_implemented_spis_read_as_zero() {
    let mut gic = reset_gic();
    // INTIDs 128..159 do not exist with 96 SPIs.
    gicd_write(&mut gic, 0x110, 0xFFFF_FFFF);
    assert_eq!(gicd_read(&mut gic, 0x110), 0);
    assert_eq!(gicd_read(&mut gic, 0x480), 0);
}

#[test]
fn ipriorityr_is_byte_and_word_accessible() {
    let mut gic = reset_gic();
    gicd_write(&mut gic, IPRIORITYR_32, 0x4030_2010);
    let byte = |gic: &mut VirtGic, offset| gic.distributor_access(Access::read(offset, 1)).0;
    assert_eq!(byte(&mut gic, IPRIORITYR_32 + 2), 0x30);
    gic.distributor_access(Access::write(IPRIORITYR_32 + 1, 1, 0xA0));
    assert_eq!(gicd_read(&mut gic, IPRIORITYR_32), 0x4030_A010);
}

#[test]
fn registers_that_affinity_routing_or_one_security_state_disable_are_raz_wi() {
    let mut gic = reset_gic();
    let cases = [
        0x0820, // GICD_ITARGETSR8
        0x0F00, // GICD_SGIR
        0x0F10, // GICD_CPENDSGIR0
        0x0F20, // GICD_SPENDSGIR0
        0x0D04, // GICD_IGRPMODR1
        0x0E08, // GICD_NSACR2
        0x0040, // GICD_SETSPI_NSR (no MBIS)
    ];
    for offset in cases {
        gicd_write(&mut gic, offset, 0xFFFF_FFFF);
        assert_eq!(gicd_read(&mut gic, offset), 0, "offset {offset:#x}");
    }
    assert!(gic.spis.iter().all(|irq| !irq.pending() && !irq.group1));
}

#[test]
fn icfgr_programs_the_spi_trigger_mode_in_int_config_bit_1() {
    let mut gic = reset_gic();
    // INTIDs 32..47; bit 0 of each field is RES0.
    gicd_write(&mut gic, ICFGR2, 0xFFFF_FFFF);
    assert_eq!(gicd_read(&mut gic, ICFGR2), 0xAAAA_AAAA);
    assert!(gic.spis[0].edge);
    gicd_write(&mut gic, ICFGR2, 0x0000_0008);
    assert_eq!(gicd_read(&mut gic, ICFGR2), 0x0000_0008);
    assert!(gic.spis[1].edge && !gic.spis[0].edge);
}

#[test]
fn irouter_is_64_bit_with_32_bit_halves_and_res0_bits_clear() {
    let mut gic = reset_gic();
    gic.distributor_access(Access::write(IROUTER_32, 8, u64::MAX));
    assert_eq!(
        gic.distributor_access(Access::read(IROUTER_32, 8)).0,
        0xFF_80FF_FFFF
    );
    gic.distributor_access(Access::write(IROUTER_32 + 4, 4, 0x12));
    gic.distributor_access(Access::write(IROUTER_32, 4, 0x0000_0203));
    assert_eq!(gicd_read(&mut gic, IROUTER_32), 0x203);
    assert_eq!(gicd_read(&mut gic, IROUTER_32 + 4), 0x12);
    assert_eq!(gic.spi_route(32), Some(0x12_0000_0203));
}

#[test]
fn irouter_of_sgis_ppis_and_missing_spis_is_raz_wi() {
    let mut gic = reset_gic();
    for offset in [0x6000, 0x60F8, 0x6000 + 8 * 128] {
        gic.distributor_access(Access::write(offset, 8, 0xFF));
        assert_eq!(gic.distributor_access(Access::read(offset, 8)).0, 0);
    }
}

#[test]
fn irouter_write_moves_a_pending_spi_and_kicks_its_new_vcpu() {
    let mut gic = linux_gic(4);
    enable(&mut gic, 0, 32);
    assert_eq!(gic.set_spi_level(32, true), VcpuSet::single(0));
    let route = irouter_for(Affinity::of_vcpu(3));
    let kick = gic
        .distributor_access(Access::write(IROUTER_32, 8, route))
        .1
        .kick;
    assert_eq!(kick, VcpuSet::single(3));
    assert!(gic.has_deliverable(3) && !gic.has_deliverable(0));
}

#[test]
fn accesses_of_the_wrong_size_or_alignment_read_zero_and_ignore_writes() {
    let mut gic = reset_gic();
    let cases = [
        Access::write(ISENABLER1, 2, 0xFFFF),
        Access::write(ISENABLER1 + 1, 4, 0xFFFF_FFFF),
        Access::write(ISENABLER1, 1, 0xFF),
        Access::write(ISENABLER1, 8, u64::MAX),
        Access::write(reg::CTLR, 8, 3),
        Access::write(IROUTER_32 + 2, 4, 0xFF),
        Access::write(IROUTER_32, 2, 0xFF),
        Access::write(IROUTER_32, 3, 0xFF),
        Access::write(0x1_0000, 4, 0xFF),
    ];
    for access in cases {
        let (_, effects) = gic.distributor_access(access);
        assert_eq!(effects, DeviceEffects::default(), "{access:?}");
    }
    assert_eq!(gicd_read(&mut gic, ISENABLER1), 0);
    assert_eq!(gicd_read(&mut gic, reg::CTLR), 0x50);
    assert_eq!(gic.spi_route(32), Some(0));
    assert_eq!(gic.distributor_access(Access::read(reg::TYPER, 2)).0, 0);
}

#[test]
fn enabling_a_group_kicks_the_vcpus_with_pending_interrupts_of_it() {
    let mut gic = linux_gic(2);
    gic.enables = GroupEnables::default();
    let _ = gic.resummarise();
    enable(&mut gic, 1, 20);
    gic.set_ppi_level(1, 20, true);
    assert_eq!(gicd_write(&mut gic, reg::CTLR, 0x2), VcpuSet::single(1));
    assert_eq!(gicd_write(&mut gic, reg::CTLR, 0x2), VcpuSet::EMPTY);
}

#[test]
fn icpendr_leaves_a_level_spi_pending_while_its_line_is_high() {
    let mut gic = linux_gic(1);
    gic.set_spi_level(33, true);
    gicd_write(&mut gic, ICPENDR1, 0x2);
    assert_eq!(gicd_read(&mut gic, ISPENDR1), 0x2);
    gic.set_spi_level(33, false);
    assert_eq!(gicd_read(&mut gic, ISPENDR1), 0);
}

#[test]
fn ispendr_latches_a_level_spi_until_icpendr() {
    let mut gic = linux_gic(1);
    gicd_write(&mut gic, ISPENDR1, 0x4);
    assert_eq!(gicd_read(&mut gic, ISPENDR1), 0x4);
    gicd_write(&mut gic, ICPENDR1, 0x4);
    assert_eq!(gicd_read(&mut gic, ISPENDR1), 0);
}

#[test]
fn enabling_a_pending_spi_kicks_its_vcpu() {
    let mut gic = linux_gic(2);
    gic.set_spi_level(32, true);
    assert_eq!(gicd_write(&mut gic, ISENABLER1, 0x1), VcpuSet::single(0));
}
