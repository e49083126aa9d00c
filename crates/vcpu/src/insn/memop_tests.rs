//! Each class of instruction gets the alignment rule the Arm ARM gives it; the words were
//! assembled with GNU as (`aarch64-linux-gnu-as`, `arm-none-eabi-as`).

use super::*;

fn a64(word: u32) -> MemOp {
    classify(Instruction::A64(word))
}

fn a32(word: u32) -> MemOp {
    classify(Instruction::A32(word))
}

fn t32(hw1: u16, hw2: u16) -> MemOp {
    classify(Instruction::T32(hw1, hw2))
}

#[test]
fn a64_single_register_loads_check_their_own_size_on_device_memory_only() {
    assert_eq!(a64(0xb940_0020), plain(4), "LDR W0, [X1]");
    assert_eq!(a64(0x7940_0420), plain(2), "LDRH W0, [X1, #2]");
    assert_eq!(a64(0x3dc0_0020), plain(16), "LDR Q0, [X1]");
    assert_eq!(a64(0x5800_0020), plain(8), "LDR X0, literal");
}

#[test]
fn a64_pairs_check_each_register_not_the_pair() {
    assert_eq!(a64(0xa940_0440), plain(8), "LDP X0, X1");
    assert_eq!(a64(0xad40_0440), plain(16), "LDP Q0, Q1");
}

#[test]
fn a64_exclusives_and_atomics_must_be_aligned_to_the_whole_access() {
    let atomic = |element, bytes| with(element, Always::Atomic { bytes });
    assert_eq!(a64(0xc85f_7c20), atomic(8, 8), "LDXR X0");
    assert_eq!(a64(0xc87f_0440), atomic(8, 16), "LDXP X0, X1");
    assert_eq!(a64(0xf820_0041), atomic(8, 8), "LDADD X0, X1");
    assert_eq!(a64(0x4820_7c82), atomic(8, 16), "CASP X0, X1, X2, X3");
}

#[test]
fn a64_acquire_release_accesses_are_ordered() {
    assert_eq!(
        a64(0x88df_fc20),
        with(4, Always::Ordered { bytes: 4 }),
        "LDAR W0"
    );
    assert_eq!(
        a64(0xd940_0020),
        with(8, Always::Ordered { bytes: 8 }),
        "LDAPUR X0"
    );
}

#[test]
fn a64_ld64b_is_always_64_byte_aligned() {
    assert_eq!(a64(0xf83f_d020), with(8, Always::Aligned { bytes: 64 }));
}

#[test]
fn a64_simd_structures_check_their_elements() {
    assert_eq!(a64(0x4c40_7820), plain(4), "LD1 {{V0.4S}}");
    assert_eq!(a64(0x0d40_4820), plain(2), "LD1 {{V0.H}}[1]");
}

#[test]
fn a64_prefetch_makes_no_access() {
    assert_eq!(a64(0xf980_0020), MemOp::Unknown, "PRFM");
}

#[test]
fn a64_dc_by_va_but_zva_and_ic_ivau_are_cache_maintenance() {
    for (word, name) in [
        (0xd50b_7e20, "DC CIVAC"),
        (0xd50b_7c20, "DC CVAP"),
        (0xd50b_7d20, "DC CVADP"),
        (0xd508_7620, "DC IVAC"),
        (0xd50b_7520, "IC IVAU"),
    ] {
        assert_eq!(a64(word), MemOp::CacheMaintenance, "{name}");
    }
    assert_eq!(a64(0xd50b_7420), MemOp::ZeroBlock, "DC ZVA");
    assert_eq!(a64(0xd508_7e40), MemOp::Unknown, "DC CISW is by set/way");
}

#[test]
fn a64_at_is_address_translation() {
    assert_eq!(a64(0xd508_7800), MemOp::AddressTranslation, "AT S1E1R");
    assert_eq!(a64(0xd508_7920), MemOp::AddressTranslation, "AT S1E1RP");
}

#[test]
fn a32_mema_accesses_are_always_word_aligned() {
    let words = with(4, Always::Aligned { bytes: 4 });
    assert_eq!(a32(0xe1c2_00d0), words, "LDRD R0, R1, [R2]");
    assert_eq!(a32(0xe890_0006), words, "LDM R0, {{R1, R2}}");
    assert_eq!(a32(0xed91_0b00), words, "VLDR D0, [R1]");
    assert_eq!(t32(0xe9d2, 0x0100), words, "LDRD (T32)");
    assert_eq!(t32(0xc806, 0), words, "LDMIA R0!, {{R1, R2}} (T16)");
}

#[test]
fn a32_memu_accesses_check_their_size_on_device_memory_only() {
    assert_eq!(a32(0xe1d1_00b0), plain(2), "LDRH");
    assert_eq!(t32(0x6808, 0), plain(4), "LDR (T16)");
    assert_eq!(a32(0xf421_078f), plain(4), "VLD1.32 {{D0}}");
    assert_eq!(t32(0xf9a1, 0x044f), plain(2), "VLD1.16 {{D0[1]}}");
}

#[test]
fn a32_exclusives_and_swp_are_aligned_to_their_size() {
    let atomic = |bytes| with(bytes, Always::Atomic { bytes });
    assert_eq!(a32(0xe191_0f9f), atomic(4), "LDREX");
    assert_eq!(a32(0xe1b2_0f9f), atomic(8), "LDREXD");
    assert_eq!(a32(0xe1f1_0f9f), atomic(2), "LDREXH");
    assert_eq!(t32(0xe851, 0x0f00), atomic(4), "LDREX (T32)");
    assert_eq!(t32(0xe8d1, 0x0f4f), atomic(1), "LDREXB (T32)");
    assert_eq!(t32(0xe8d2, 0x017f), atomic(8), "LDREXD (T32)");
    assert_eq!(
        a32(0xe142_0091),
        with(1, Always::Aligned { bytes: 1 }),
        "SWPB"
    );
}

#[test]
fn a32_load_acquire_is_ordered() {
    assert_eq!(
        a32(0xe191_0c9f),
        with(4, Always::Ordered { bytes: 4 }),
        "LDA"
    );
}

#[test]
fn a32_mcr_p15_c7_by_mva_is_cache_maintenance_and_c8_is_translation() {
    assert_eq!(a32(0xee07_0f3e), MemOp::CacheMaintenance, "DCCIMVAC");
    assert_eq!(
        t32(0xee07, 0x0f3b),
        MemOp::CacheMaintenance,
        "DCCMVAU (T32)"
    );
    assert_eq!(a32(0xee07_0f18), MemOp::AddressTranslation, "ATS1CPR");
}
