//! Encodings checked by hand against IHI 0070's field positions (5.2 STE, 4.3.1, 4.3.6,
//! 4.4.3.2, 4.4.4.1, 4.7.3 commands, 7.3 events, 6.3.19 `SMMU_GERROR`); each expected word
//! is worked out in the comment above it.

use super::*;
use moat_arm::addr::Pa;
use moat_stage2::geometry::Geometry;

/// VM 1: a 40-bit IPA space on CPUs with a 48-bit PA limit, tables at 0x4010_0000, behind
/// QEMU's SMMU (OAS = IAS = 44 bits).
fn vm1_ste(geometry: &Geometry) -> Stage2Ste<'_> {
    Stage2Ste {
        vmid: 1,
        geometry,
        root: Pa(0x4010_0000),
        oas_bits: 44,
        ias_bits: 44,
    }
}

#[test]
fn stage2_ste_of_a_40_bit_vm_behind_a_44_bit_smmu_encodes_word_by_word() {
    let g = Geometry::new(40, 48).unwrap();
    let ste = vm1_ste(&g).encode().unwrap();
    // Word 0: V (bit 0) = 1, Config [3:1] = 0b110 → 0b1101.
    // Word 1: MEV (83 → bit 19) = 1; SHCFG [109:108] (→ 45:44) = 0b01.
    // Word 2: S2VMID [143:128] = 1; S2T0SZ [165:160] (→ 37:32) = 64 − 40 = 24;
    //   S2SL0 [167:166] (→ 39:38) = 0b01 (start at level 1, as VTCR_EL2.SL0);
    //   S2IR0/S2OR0 (→ 41:40, 43:42) = 0b01; S2SH0 (→ 45:44) = 0b11; S2TG = 0b00;
    //   S2PS [178:176] (→ 50:48) = 0b100 (44 bits: the SMMU's OAS is below the CPUs' 48);
    //   S2AA64 (179 → 51) = 1; S2R (186 → 58) = 1.
    // Word 3: S2TTB [243:196] (→ 51:4) = the root's bits [51:4], i.e. the root itself.
    assert_eq!(
        ste.0,
        [
            0xd,
            0x0000_1000_0008_0000,
            0x040c_3558_0000_0001,
            0x0000_0000_4010_0000,
            0,
            0,
            0,
            0
        ]
    );
}

#[test]
fn stage2_ste_fields_read_back_by_name() {
    let g = Geometry::new(44, 48).unwrap();
    let ste = Stage2Ste {
        vmid: 0xab,
        root: Pa(0xfff_ffff_f000),
        ..vm1_ste(&g)
    }
    .encode()
    .unwrap();
    assert_eq!(ste.get(ste::V), 1);
    assert_eq!(ste.get(ste::CONFIG), 0b110);
    assert_eq!(ste.get(ste::S2VMID), 0xab);
    assert_eq!(ste.get(ste::S2T0SZ), 20);
    // 44 bits with 4 KiB pages start at level 0 (S2SL0 0b10), as VTCR_EL2.SL0 would.
    assert_eq!(ste.get(ste::S2SL0), g.sl0());
    assert_eq!(ste.get(ste::S2SL0), 0b10);
    assert_eq!(ste.get(ste::S2TTB) << 4, 0xfff_ffff_f000);
    assert_eq!(ste.get(ste::S2S), 0, "faults terminate, never stall");
    assert_eq!(ste.get(ste::S2AFFD), 0);
    assert_eq!(ste.get(ste::EATS), 0, "no ATS");
}

#[test]
fn a_vm_larger_than_the_smmus_input_size_gets_no_ste() {
    // QEMU's SMMU: IAS 44. A 45-bit VM would need S2T0SZ = 19 < 64 − 44: ILLEGAL.
    let g = Geometry::new(45, 48).unwrap();
    assert_eq!(
        vm1_ste(&g).encode(),
        Err(SteError::IpaTooLarge {
            ipa_bits: 45,
            ias_bits: 44
        })
    );
}

#[test]
fn a_misaligned_or_unreachable_root_and_an_unknown_oas_are_refused() {
    let g = Geometry::new(40, 48).unwrap();
    let bad = |root| Stage2Ste {
        root: Pa(root),
        ..vm1_ste(&g)
    };
    assert_eq!(
        bad(0x4010_0800).encode(),
        Err(SteError::BadRoot(Pa(0x4010_0800)))
    );
    assert_eq!(
        bad(1 << 44).encode(),
        Err(SteError::BadRoot(Pa(1 << 44))),
        "beyond S2PS (44 bits)"
    );
    let odd = Stage2Ste {
        oas_bits: 38,
        ias_bits: 40,
        ..vm1_ste(&g)
    };
    assert_eq!(odd.encode(), Err(SteError::UnknownOas(38)));
}

#[test]
fn s2ps_is_the_cpus_pa_limit_when_the_smmu_outputs_more() {
    let g = Geometry::new(40, 40).unwrap();
    let ste = Stage2Ste {
        oas_bits: 48,
        ias_bits: 48,
        ..vm1_ste(&g)
    }
    .encode()
    .unwrap();
    assert_eq!(ste.get(ste::S2PS), 0b010, "40 bits");
}

#[test]
fn abort_ste_is_valid_with_config_0_and_nothing_else() {
    assert_eq!(Ste::abort().0, [1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(Ste::INVALID.get(ste::V), 0);
}

#[test]
fn commands_encode_opcode_and_operands() {
    // CMD_CFGI_STE (0x03), StreamID [63:32] = 8 (00:01.0), Leaf [64] = 1.
    assert_eq!(Command::cfgi_ste(8).0, [0x0000_0008_0000_0003, 1]);
    // CMD_CFGI_ALL = CMD_CFGI_STE_RANGE (0x04) with Range [68:64] = 31.
    assert_eq!(Command::cfgi_all().0, [0x04, 0x1f]);
    // CMD_TLBI_S12_VMALL (0x28), VMID [47:32] = 5.
    assert_eq!(Command::tlbi_s12_vmall(5).0, [0x0000_0005_0000_0028, 0]);
    // CMD_TLBI_NSNH_ALL (0x30).
    assert_eq!(Command::tlbi_nsnh_all().0, [0x30, 0]);
    // CMD_SYNC (0x46), CS [13:12]: SIG_NONE 0b00, SIG_IRQ 0b01, SIG_SEV 0b10.
    let sync = |signal| Command::sync(CmdSync { signal }).0;
    assert_eq!(sync(CompletionSignal::None), [0x46, 0]);
    assert_eq!(sync(CompletionSignal::Irq), [0x1046, 0]);
    assert_eq!(sync(CompletionSignal::Sev), [0x2046, 0]);
    assert_eq!(
        Command::cfgi_ste(0xffff_ffff).get(cmd::STREAM_ID),
        0xffff_ffff
    );
}

#[test]
fn f_translation_of_a_stage_2_write_decodes_stream_access_and_addresses() {
    // Word 0: event 0x10, StreamID 8. Word 1: RnW (99 → 35) = 0 (write), S2 (103 → 39) = 1,
    // CLASS [105:104] (→ 41:40) = 0b10 (IN). Word 2: InputAddr. Word 3: IPA[55:12] at
    // [251:204] (→ 59:12).
    let record = [
        0x0000_0008_0000_0010,
        0x0000_0280_0000_0000,
        0x8000_0123,
        0x8000_0000,
    ];
    let e = Event::decode(&record);
    assert_eq!(e.kind, EventKind::Translation);
    assert_eq!(e.stream_id, 8);
    assert_eq!(e.substream_id, None);
    assert_eq!(
        e.fault,
        Some(FaultRecord {
            stall: false,
            stag: 0,
            privileged: false,
            instruction: false,
            read: false,
            stage2: true,
            class: Class::In,
            table_read: None,
            input_addr: 0x8000_0123,
            ipa: 0x8000_0000,
        })
    );
    assert_eq!(
        e.to_string(),
        "F_TRANSLATION stream 0x8: stage 2 write at 0x80000123 (IPA 0x80000000)"
    );
}

#[test]
fn f_permission_on_a_table_walk_reports_ttrnw_and_the_access_bits() {
    // Word 1: STAG [79:64] = 0x77, Stall (95 → 31), PnU (97 → 33), InD (98 → 34),
    // RnW (99 → 35), S2 (→ 39), CLASS = 0b01 TT (→ 40), TTRnW (108 → 44).
    let word1 = 0x77 | 1 << 31 | 1 << 33 | 1 << 34 | 1 << 35 | 1 << 39 | 1 << 40 | 1 << 44;
    let e = Event::decode(&[0x0000_0010_0000_0013, word1, 0x1000, 0x0040_0000]);
    assert_eq!(e.kind, EventKind::Permission);
    let f = e.fault.unwrap();
    assert_eq!(
        (f.stag, f.stall, f.privileged, f.instruction, f.read),
        (0x77, true, true, true, true)
    );
    assert_eq!(
        (f.class, f.table_read, f.ipa),
        (Class::Ttd, Some(true), 0x40_0000)
    );
}

#[test]
fn c_bad_streamid_and_c_bad_ste_carry_the_stream_and_substream_only() {
    // SSV (bit 11) = 1, SubstreamID [31:12] = 5, StreamID = 0x1234.
    let e = Event::decode(&[0x0000_1234_0000_5802, 0, 0, 0]);
    assert_eq!(e.kind, EventKind::BadStreamId);
    assert_eq!((e.stream_id, e.substream_id), (0x1234, Some(5)));
    assert_eq!((e.fault, e.fetch_addr), (None, None));
    assert_eq!(e.to_string(), "C_BAD_STREAMID stream 0x1234 substream 0x5");
    assert_eq!(
        Event::decode(&[0x0000_0010_0000_0004, 0, 0, 0]).kind,
        EventKind::BadSte
    );
}

#[test]
fn f_ste_fetch_reports_its_fetch_address() {
    // FetchAddr[55:3] at [247:195] (→ word 3 bits 55:3).
    let e = Event::decode(&[0x0000_0008_0000_0003, 0, 0, 0x4020_0040]);
    assert_eq!(e.fetch_addr, Some(0x4020_0040));
    assert_eq!(e.to_string(), "F_STE_FETCH stream 0x8: fetch at 0x40200040");
}

#[test]
fn every_event_number_decodes_and_unknown_ones_are_kept_by_number() {
    for n in 0..=u8::MAX {
        let e = Event::decode(&[u64::from(n), u64::MAX, u64::MAX, u64::MAX]);
        match e.kind {
            EventKind::Other(m) => assert_eq!(m, n),
            kind => assert_eq!(EventKind::from_number(n), kind),
        }
    }
    assert_eq!(
        Event::decode(&[0x0000_0001_0000_00e0, 0, 0, 0]).to_string(),
        "event 0xe0 stream 0x1"
    );
}

#[test]
fn global_errors_are_gerror_xor_gerrorn_named_as_in_smmu_gerror() {
    let active = GlobalErrors::active(0b1_0000_0101, 0b0_0000_0001);
    assert!(active.has(GlobalErrors::EVENTQ_ABT_ERR));
    assert!(active.has(GlobalErrors::SFM_ERR));
    assert!(!active.has(GlobalErrors::CMDQ_ERR), "acknowledged");
    assert_eq!(active.to_string(), "EVENTQ_ABT_ERR|SFM_ERR");
    assert_eq!(GlobalErrors(0).to_string(), "none");
    assert_eq!(GlobalErrors(1 | 1 << 20).to_string(), "CMDQ_ERR|0x100000");
    assert_eq!(
        GlobalErrors::active(0b101, GlobalErrors::acknowledge(0b101)),
        GlobalErrors(0)
    );
}

#[test]
fn idr_fields_decode_to_features() {
    // IDR0: S2P (0), S1P (1), TTF (3:2) = 0b10, COHACC (4), VMID16 (18), ST_LEVEL (28:27) =
    // 0b01.
    let idr0 = 1 | 1 << 1 | 0b10 << 2 | 1 << 4 | 1 << 18 | 0b01 << 27;
    // IDR1: SIDSIZE (5:0) = 16, EVENTQS (20:16) = 19, CMDQS (25:21) = 19.
    let idr1 = 16 | 19 << 16 | 19 << 21;
    // IDR5: OAS (2:0) = 0b100 (44 bits), GRAN4K (4).
    let idr5 = 0b100 | 1 << 4;
    let f = SmmuFeatures::decode(idr0, idr1, idr5);
    assert_eq!(
        f,
        SmmuFeatures {
            stage1: true,
            stage2: true,
            aarch64_tables: true,
            aarch32_tables: false,
            coherent: true,
            vmid16: true,
            two_level_stream_table: true,
            sid_bits: 16,
            cmdq_log2: 19,
            eventq_log2: 19,
            oas_bits: Some(44),
            gran4k: true,
        }
    );
    assert_eq!(f.ias_bits(), Some(44));
    assert_eq!(f.cannot_assign(), None);
    assert_eq!(
        f.to_string(),
        "stage 1 yes, stage 2 yes, OAS 44 bits, 16-bit stream IDs"
    );
}

#[test]
fn an_smmu_without_stage_2_cannot_take_a_vms_devices() {
    // QEMU 7.2's virt SMMUv3: stage 1 only (S1P, TTF AArch64).
    let f = SmmuFeatures::decode(1 << 1 | 0b10 << 2 | 1 << 4, 16, 0b100 | 1 << 4);
    assert_eq!(
        f.cannot_assign(),
        Some("it has no stage 2 translation (SMMU_IDR0.S2P = 0)")
    );
    let no_4k = SmmuFeatures::decode(1 | 0b10 << 2 | 1 << 4, 16, 0b100);
    assert!(no_4k.cannot_assign().unwrap().contains("GRAN4K"));
    let reserved = SmmuFeatures::decode(1 | 0b10 << 2 | 1 << 4, 16, 0b111 | 1 << 4);
    assert_eq!(reserved.oas_bits, None);
    assert!(reserved.cannot_assign().is_some());
}

#[test]
fn an_smmu_that_does_not_snoop_the_caches_cannot_take_a_vms_devices() {
    // Stage 2, VMSAv8-64, 4 KiB, OAS 44 bits, but COHACC = 0: it would walk stage-2 tables and
    // read STEs and commands that Moat wrote through its caches, stale.
    let f = SmmuFeatures::decode(1 | 0b10 << 2, 16, 0b100 | 1 << 4);
    assert!(!f.coherent);
    assert!(f.cannot_assign().unwrap().contains("SMMU_IDR0.COHACC = 0"));
}

#[test]
fn ias_is_40_bits_at_least_where_aarch32_tables_are_read() {
    // TTF = 0b11, OAS 36 bits: IAS = max(40, 36).
    let f = SmmuFeatures::decode(1 | 0b11 << 2, 16, 0b001 | 1 << 4);
    assert_eq!((f.oas_bits, f.ias_bits()), (Some(36), Some(40)));
}

/// QEMU's SMMUv3: 16-bit stream IDs, queues of up to 2^19 entries.
fn qemu_smmu() -> SmmuFeatures {
    SmmuFeatures::decode(
        1 | 1 << 1 | 0b10 << 2 | 1 << 4,
        16 | 19 << 16 | 19 << 21,
        0b100 | 1 << 4,
    )
}

#[test]
fn the_stream_table_covers_the_bridges_stream_ids_within_sidsize_and_moats_bound() {
    use regs::Layout;
    // QEMU virt, 16 buses: stream IDs up to 0x0fff → 12 bits, 4096 STEs, 256 KiB.
    let l = Layout::new(&qemu_smmu(), 0x0fff);
    assert_eq!(
        (l.stream_table_log2, l.cmdq_log2, l.eventq_log2),
        (12, 8, 8)
    );
    assert_eq!(l.stream_table_bytes(), 256 << 10);
    assert_eq!((l.cmdq_bytes(), l.eventq_bytes()), (4096, 8192));
    // 256 buses: all 16 bits. One bus: 8 bits.
    assert_eq!(Layout::new(&qemu_smmu(), 0xffff).stream_table_log2, 16);
    assert_eq!(Layout::new(&qemu_smmu(), 0xff).stream_table_log2, 8);
    // An SMMU of 32-bit stream IDs behind a bridge that sends more: Moat's bound.
    let mut wide = qemu_smmu();
    wide.sid_bits = 32;
    assert_eq!(Layout::new(&wide, u32::MAX).stream_table_log2, 16);
    // An SMMU of 6-bit stream IDs and tiny queues: its limits.
    let mut small = qemu_smmu();
    (small.sid_bits, small.cmdq_log2, small.eventq_log2) = (6, 1, 0);
    let l = Layout::new(&small, 0xfff);
    assert_eq!((l.stream_table_log2, l.cmdq_log2, l.eventq_log2), (6, 1, 0));
    assert_eq!(l.cmdq_bytes(), 32, "at least 32 bytes");
}

#[test]
fn base_registers_place_address_size_and_allocation_hints() {
    let l = regs::Layout::new(&qemu_smmu(), 0x0fff);
    // STRTAB_BASE: ADDR [51:6] = the address's bits, RA (62).
    assert_eq!(l.strtab_base(0x4100_0000), 1 << 62 | 0x4100_0000);
    // STRTAB_BASE_CFG: FMT [17:16] = 0 (linear), LOG2SIZE [5:0] = 12.
    assert_eq!(l.strtab_base_cfg(), 12);
    // CMDQ_BASE: RA (62), ADDR [51:5], LOG2SIZE [4:0] = 8.
    assert_eq!(l.cmdq_base(0x4200_0000), 1 << 62 | 0x4200_0000 | 8);
    assert_eq!(l.eventq_base(0x4200_2000), 1 << 62 | 0x4200_2000 | 8);
    // CR1: every IC/OC 0b01, SH 0b11: 0b11_01_01_11_01_01.
    assert_eq!(regs::cr1(), 0b1101_0111_0101);
}

#[test]
fn queue_indexes_wrap_with_their_flag_and_tell_empty_from_full() {
    use regs::QueueIndex;
    let q = |v| QueueIndex::from_register(2, v);
    // Four entries: index bits [1:0], wrap bit 2; OVFLG (31) and other bits dropped.
    assert_eq!(q(1 << 31 | 0b101).value, 0b101);
    assert_eq!(
        q(0b011).next(),
        q(0b100),
        "index 3 wraps to 0 with the flag set"
    );
    assert_eq!(q(0b111).next(), q(0b000));
    assert!(q(0b010).is_empty(q(0b010)));
    assert!(q(0b110).is_full(q(0b010)));
    assert!(!q(0b011).is_full(q(0b010)) && !q(0b011).is_empty(q(0b010)));
    assert_eq!(q(0b110).slot(), 2);
    assert_eq!(regs::command_error_name(1), "CERROR_ILL");
}

#[test]
fn events_of_one_transfer_into_one_page_are_the_same_fault() {
    let write_at = |addr: u64| {
        Event::decode(&[
            0x0000_0008_0000_0010,
            0x0000_0280_0000_0000,
            addr,
            addr & !0xfff,
        ])
    };
    let first = write_at(0x4800_11e8);
    assert!(first.same_fault(&write_at(0x4800_11fc)));
    assert!(!first.same_fault(&write_at(0x4800_2000)), "another page");
    let other_stream = Event::decode(&[
        0x0000_0010_0000_0010,
        0x0000_0280_0000_0000,
        0x4800_11e8,
        0x4800_1000,
    ]);
    assert!(!first.same_fault(&other_stream));
    let read = Event::decode(&[
        0x0000_0008_0000_0010,
        0x0000_0288_0000_0000,
        0x4800_11e8,
        0x4800_1000,
    ]);
    assert!(!first.same_fault(&read), "a read is another access");
    let bad_ste = Event::decode(&[0x0000_0008_0000_0004, 0, 0, 0]);
    assert!(bad_ste.same_fault(&bad_ste) && !bad_ste.same_fault(&first));
}
