use super::*;

/// Granule and descriptor sizes as `AArch64.S2InconsistentSL()` names them.
const GRANULE_BITS: u32 = 12;
const STRIDE: u32 = GRANULE_BITS - 3;
const FINAL_LEVEL: u32 = 3;

/// `AArch64.S2InconsistentSL()`, written out from the Arm ARM pseudocode: the input size must
/// leave at least one bit and at most a full stride plus 4 concatenation bits to the start level.
fn arm_inconsistent_sl(start_level: u32, ia_bits: u32) -> bool {
    let levels = FINAL_LEVEL - start_level;
    let sl_min_iasize = levels * STRIDE + GRANULE_BITS + 1;
    let sl_max_iasize = sl_min_iasize + (STRIDE - 1) + 4;
    ia_bits < sl_min_iasize || ia_bits > sl_max_iasize
}

/// `AArch64.S2InvalidSL()` for the 4K granule without FEAT_TTST: SL0 = 0b10 (level 0) needs
/// `PAMax() >= 44`; SL0 = 0b11 (level 3) is reserved.
fn arm_invalid_sl(start_level: u32, pa_max: u32) -> bool {
    match start_level {
        0 => pa_max < 44,
        1 | 2 => false,
        _ => true,
    }
}

fn arm_legal(start_level: u32, ia_bits: u32, pa_max: u32) -> bool {
    !arm_inconsistent_sl(start_level, ia_bits) && !arm_invalid_sl(start_level, pa_max)
}

fn field(value: u64, shift: u32, width: u32) -> u64 {
    (value >> shift) & ((1 << width) - 1)
}

#[test]
fn every_ipa_size_32_to_48_gets_a_start_level_the_arm_arm_allows() {
    for s in 32..=48 {
        let g = Geometry::new(s, 48).unwrap();
        assert!(arm_legal(u32::from(g.start_level()), s, 48), "S={s}: {g:?}");
    }
}

#[test]
fn every_ipa_size_takes_the_legal_layout_with_fewest_levels() {
    for s in 32..=48 {
        let g = Geometry::new(s, 48).unwrap();
        for later in u32::from(g.start_level()) + 1..=FINAL_LEVEL {
            assert!(
                !arm_legal(later, s, 48),
                "S={s}: start level {later} would be legal"
            );
        }
    }
}

#[test]
fn concatenated_tables_cover_exactly_the_start_level_bits() {
    for s in 32..=48 {
        let g = Geometry::new(s, 48).unwrap();
        let start_bits = s - level_shift(g.start_level());
        let entries = u64::from(g.root_tables()) * ENTRIES_PER_TABLE as u64;
        assert!(g.root_tables() <= MAX_CONCATENATED_TABLES);
        assert!(g.root_tables().is_power_of_two());
        // A single table may have unused entries; concatenation never leaves a whole table spare.
        assert_eq!(
            entries,
            (1u64 << start_bits).max(ENTRIES_PER_TABLE as u64),
            "S={s}"
        );
    }
}

#[test]
fn table_of_start_levels_and_concatenation_for_4k_granule() {
    // (S, T0SZ, SL0, start level, concatenated tables)
    let expected = [
        (32, 32, 0, 2, 4),
        (33, 31, 0, 2, 8),
        (34, 30, 0, 2, 16),
        (35, 29, 1, 1, 1),
        (36, 28, 1, 1, 1),
        (37, 27, 1, 1, 1),
        (38, 26, 1, 1, 1),
        (39, 25, 1, 1, 1),
        (40, 24, 1, 1, 2),
        (41, 23, 1, 1, 4),
        (42, 22, 1, 1, 8),
        (43, 21, 1, 1, 16),
        (44, 20, 2, 0, 1),
        (45, 19, 2, 0, 1),
        (46, 18, 2, 0, 1),
        (47, 17, 2, 0, 1),
        (48, 16, 2, 0, 1),
    ];
    for (s, t0sz, sl0, level, tables) in expected {
        let g = Geometry::new(s, 48).unwrap();
        assert_eq!(
            (g.t0sz(), g.sl0(), g.start_level(), g.root_tables()),
            (t0sz, sl0, level, tables)
        );
    }
}

#[test]
fn start_level_0_is_only_chosen_where_the_pa_size_allows_it() {
    // AArch64.S2InvalidSL(): level 0 needs PAMax >= 44; S <= L keeps that true.
    for l in [32, 36, 40, 42, 44, 48] {
        for s in 32..=l {
            let g = Geometry::new(s, l).unwrap();
            assert!(
                !arm_invalid_sl(u32::from(g.start_level()), l),
                "S={s} L={l}"
            );
        }
    }
}

#[test]
fn vtcr_fields_decode_to_the_geometry() {
    for l in [44, 48] {
        for s in 32..=l {
            let g = Geometry::new(s, l).unwrap();
            let v = g.vtcr_el2();
            assert_eq!(64 - field(v, 0, 6), u64::from(s), "T0SZ");
            assert_eq!(field(v, 6, 2), 2 - u64::from(g.start_level()), "SL0");
            assert_eq!(field(v, 8, 2), 0b01, "IRGN0 write-back write-allocate");
            assert_eq!(field(v, 10, 2), 0b01, "ORGN0 write-back write-allocate");
            assert_eq!(field(v, 12, 2), 0b11, "SH0 inner shareable");
            assert_eq!(field(v, 14, 2), 0b00, "TG0 4K");
            assert_eq!(parange_bits(field(v, 16, 3) as u8), Some(l), "PS");
            assert_eq!(field(v, 19, 1), 0, "VS: 8-bit VMID");
            assert_eq!(field(v, 31, 1), 1, "RES1");
        }
    }
}

#[test]
fn vtcr_for_40_bit_vm_on_48_bit_limit_is_0x80053558() {
    assert_eq!(Geometry::new(40, 48).unwrap().vtcr_el2(), 0x8005_3558);
}

#[test]
fn ipa_size_below_32_is_refused_naming_the_size() {
    let err = Geometry::new(31, 48).unwrap_err();
    assert_eq!(
        err,
        Stage2Error::IpaSizeTooSmall {
            ipa_bits: 31,
            min_bits: 32
        }
    );
    assert_eq!(
        std::format!("{err}"),
        "VM IPA size 31 bits is below the minimum of 32 bits"
    );
}

#[test]
fn ipa_size_above_limit_is_refused_naming_both() {
    let err = Geometry::new(45, 44).unwrap_err();
    assert_eq!(
        err,
        Stage2Error::IpaSizeAboveLimit {
            ipa_bits: 45,
            limit_bits: 44
        }
    );
    assert!(std::format!("{err}").contains("45") && std::format!("{err}").contains("44"));
}

#[test]
fn limit_that_ps_cannot_encode_is_refused() {
    for l in [46, 52, 31] {
        assert_eq!(
            Geometry::new(32, l),
            Err(Stage2Error::UnsupportedPaLimit { pa_limit_bits: l })
        );
    }
}

#[test]
fn ipa_limit_is_the_smallest_parange_capped_at_48() {
    assert_eq!(ipa_limit_bits(&[6, 6]), Ok(48), "QEMU -cpu max: PARange 52");
    assert_eq!(
        ipa_limit_bits(&[5, 4, 5]),
        Ok(44),
        "one cortex-a57 among 48-bit CPUs"
    );
    assert_eq!(ipa_limit_bits(&[2]), Ok(40));
    assert_eq!(ipa_limit_bits(&[0, 1]), Ok(32));
}

#[test]
fn ipa_limit_refuses_reserved_parange_and_no_cpus() {
    assert_eq!(
        ipa_limit_bits(&[5, 8]),
        Err(Stage2Error::UnknownParange { cpu: 1, parange: 8 })
    );
    assert_eq!(ipa_limit_bits(&[]), Err(Stage2Error::NoCpus));
}

#[test]
fn vttbr_holds_vmid_in_bits_55_48_and_the_root() {
    let v = vttbr_el2(0xa5, Pa(0x4_0123_4000));
    assert_eq!(v >> 48, 0xa5);
    assert_eq!(v & 0x0000_ffff_ffff_ffff, 0x4_0123_4000);
    assert_eq!(v & 1, 0, "CnP");
}

#[test]
fn vtcr_values_for_every_ipa_size_under_limits_44_and_48() {
    // (S, VTCR_EL2 with L = 44 (0 where S > L), VTCR_EL2 with L = 48)
    let expected: [(u32, u64, u64); 17] = [
        (32, 0x8004_3520, 0x8005_3520),
        (33, 0x8004_351f, 0x8005_351f),
        (34, 0x8004_351e, 0x8005_351e),
        (35, 0x8004_355d, 0x8005_355d),
        (36, 0x8004_355c, 0x8005_355c),
        (37, 0x8004_355b, 0x8005_355b),
        (38, 0x8004_355a, 0x8005_355a),
        (39, 0x8004_3559, 0x8005_3559),
        (40, 0x8004_3558, 0x8005_3558),
        (41, 0x8004_3557, 0x8005_3557),
        (42, 0x8004_3556, 0x8005_3556),
        (43, 0x8004_3555, 0x8005_3555),
        (44, 0x8004_3594, 0x8005_3594),
        (45, 0, 0x8005_3593),
        (46, 0, 0x8005_3592),
        (47, 0, 0x8005_3591),
        (48, 0, 0x8005_3590),
    ];
    for (s, l44, l48) in expected {
        let with_44 = Geometry::new(s, 44).map_or(0, |g| g.vtcr_el2());
        assert_eq!(
            (with_44, Geometry::new(s, 48).unwrap().vtcr_el2()),
            (l44, l48),
            "S={s}"
        );
    }
}

#[test]
fn sixteen_bit_vmids_set_vtcr_vs_and_fill_vttbr_bits_63_48() {
    let g = Geometry::new(40, 48).unwrap();
    assert_eq!(g.vmid_bits(), VmidBits::Eight);
    let wide = g.with_vmid_bits(VmidBits::Sixteen);
    // VTCR_EL2.VS is bit 19; nothing else changes.
    assert_eq!(wide.vtcr_el2(), g.vtcr_el2() | 1 << 19);
    assert_eq!(wide.vtcr_el2(), 0x800d_3558);
    let v = vttbr_el2(0x1234, Pa(0x4_0123_4000));
    assert_eq!(v >> 48, 0x1234);
    assert_eq!(v & 0x0000_ffff_ffff_ffff, 0x4_0123_4000);
}

#[test]
fn the_vmid_width_is_sixteen_only_when_every_cpu_has_feat_vmid16() {
    assert_eq!(VmidBits::of_cpus(&[0b0010, 0b0010]), VmidBits::Sixteen);
    assert_eq!(VmidBits::of_cpus(&[0b0010, 0b0000]), VmidBits::Eight);
    // 0b0001 and the others are reserved: 8 bits.
    assert_eq!(VmidBits::of_cpus(&[0b0001]), VmidBits::Eight);
    assert_eq!(VmidBits::of_cpus(&[]), VmidBits::Eight);
    assert_eq!(VmidBits::Eight.max_vmid(), 255);
    assert_eq!(VmidBits::Sixteen.max_vmid(), 65535);
}
