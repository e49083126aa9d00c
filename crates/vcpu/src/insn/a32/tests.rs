//! A32 decode and emulation tests. Instruction words were assembled with GNU as
//! (`arm-none-eabi-as -march=armv8-a`, binutils 2.40) and checked against the encoding
//! diagrams; words marked "by hand" are encodings the assembler refuses (UNPREDICTABLE or
//! obsolete), built from the diagram.

use super::*;
use crate::insn::aarch32::Shift::{Asr, Lsl, Lsr, Ror, Rrx};
use crate::insn::emulate::{Aarch32Context, Abort, Completed, emulate_a32};
use crate::insn::testutil::{Port, Regs32};
use Direction::{Load, Store};

/// The fields a table row varies: direction, size, signed, Rt, Rn, offset, add, index, wback.
type Fields = (Direction, u8, bool, u8, u8, Offset32, bool, bool, bool);

fn expected(fields: Fields) -> Aarch32Access {
    let (direction, size, signed, rt, rn, offset, add, index, wback) = fields;
    Aarch32Access {
        direction,
        size,
        signed,
        rt,
        rt2: None,
        rn,
        offset,
        add,
        index,
        wback,
        ordering: Ordering32::Plain,
        instr_set: InstrSet::A32,
        length: 4,
        cond: 0b1110,
    }
}

const fn imm(i: u32) -> Offset32 {
    Offset32::Imm(i)
}

const fn reg(rm: u8, shift: Shift, amount: u8) -> Offset32 {
    Offset32::Reg { rm, shift, amount }
}

#[test]
fn word_and_byte_loads_and_stores_decode_offset_pre_and_post_index() {
    let table: &[(u32, &str, Fields)] = &[
        (
            0xe592_1008,
            "ldr r1, [r2, #8]",
            (Load, 4, false, 1, 2, imm(8), true, true, false),
        ),
        (
            0xe512_1008,
            "ldr r1, [r2, #-8]",
            (Load, 4, false, 1, 2, imm(8), false, true, false),
        ),
        (
            0xe5b2_1008,
            "ldr r1, [r2, #8]!",
            (Load, 4, false, 1, 2, imm(8), true, true, true),
        ),
        (
            0xe492_1008,
            "ldr r1, [r2], #8",
            (Load, 4, false, 1, 2, imm(8), true, false, true),
        ),
        (
            0xe5d2_1001,
            "ldrb r1, [r2, #1]",
            (Load, 1, false, 1, 2, imm(1), true, true, false),
        ),
        (
            0xe5c2_1001,
            "strb r1, [r2, #1]",
            (Store, 1, false, 1, 2, imm(1), true, true, false),
        ),
        (
            0xe582_1000,
            "str r1, [r2]",
            (Store, 4, false, 1, 2, imm(0), true, true, false),
        ),
        (
            0xe522_1004,
            "str r1, [r2, #-4]!",
            (Store, 4, false, 1, 2, imm(4), false, true, true),
        ),
        (
            0xe402_1004,
            "str r1, [r2], #-4",
            (Store, 4, false, 1, 2, imm(4), false, false, true),
        ),
        (
            0xe59f_1004,
            "ldr r1, [pc, #4]",
            (Load, 4, false, 1, 15, imm(4), true, true, false),
        ),
        (
            0xe51f_1004,
            "ldr r1, [pc, #-4]",
            (Load, 4, false, 1, 15, imm(4), false, true, false),
        ),
        (
            0xe582_f000,
            "str pc, [r2]",
            (Store, 4, false, 15, 2, imm(0), true, true, false),
        ),
    ];
    for &(word, text, fields) in table {
        assert_eq!(decode(word), Ok(expected(fields)), "{text} ({word:#010x})");
    }
}

#[test]
fn register_offsets_decode_every_shift_type_and_sign() {
    let table: &[(u32, &str, Offset32, bool, bool, bool)] = &[
        (
            0xe792_1003,
            "ldr r1, [r2, r3]",
            reg(3, Lsl, 0),
            true,
            true,
            false,
        ),
        (
            0xe712_1003,
            "ldr r1, [r2, -r3]",
            reg(3, Lsl, 0),
            false,
            true,
            false,
        ),
        (
            0xe792_1103,
            "ldr r1, [r2, r3, lsl #2]",
            reg(3, Lsl, 2),
            true,
            true,
            false,
        ),
        (
            0xe792_1023,
            "ldr r1, [r2, r3, lsr #32]",
            reg(3, Lsr, 32),
            true,
            true,
            false,
        ),
        (
            0xe792_10c3,
            "ldr r1, [r2, r3, asr #1]",
            reg(3, Asr, 1),
            true,
            true,
            false,
        ),
        (
            0xe792_1263,
            "ldr r1, [r2, r3, ror #4]",
            reg(3, Ror, 4),
            true,
            true,
            false,
        ),
        (
            0xe792_1063,
            "ldr r1, [r2, r3, rrx]",
            reg(3, Rrx, 1),
            true,
            true,
            false,
        ),
        (
            0xe7b2_1003,
            "ldr r1, [r2, r3]!",
            reg(3, Lsl, 0),
            true,
            true,
            true,
        ),
        (
            0xe692_1003,
            "ldr r1, [r2], r3",
            reg(3, Lsl, 0),
            true,
            false,
            true,
        ),
    ];
    for &(word, text, offset, add, index, wback) in table {
        let fields = (Load, 4, false, 1, 2, offset, add, index, wback);
        assert_eq!(decode(word), Ok(expected(fields)), "{text}");
    }
}

#[test]
fn extra_loads_and_stores_decode_halfword_signed_and_unprivileged_forms() {
    let table: &[(u32, &str, Fields, Ordering32)] = &[
        (
            0xe1d2_10b2,
            "ldrh r1, [r2, #2]",
            (Load, 2, false, 1, 2, imm(2), true, true, false),
            Ordering32::Plain,
        ),
        (
            0xe172_10b2,
            "ldrh r1, [r2, #-2]!",
            (Load, 2, false, 1, 2, imm(2), false, true, true),
            Ordering32::Plain,
        ),
        (
            0xe0c2_10b6,
            "strh r1, [r2], #6",
            (Store, 2, false, 1, 2, imm(6), true, false, true),
            Ordering32::Plain,
        ),
        (
            0xe192_10b3,
            "ldrh r1, [r2, r3]",
            (Load, 2, false, 1, 2, reg(3, Lsl, 0), true, true, false),
            Ordering32::Plain,
        ),
        (
            0xe1d2_10d1,
            "ldrsb r1, [r2, #1]",
            (Load, 1, true, 1, 2, imm(1), true, true, false),
            Ordering32::Plain,
        ),
        (
            0xe1d2_10f2,
            "ldrsh r1, [r2, #2]",
            (Load, 2, true, 1, 2, imm(2), true, true, false),
            Ordering32::Plain,
        ),
        (
            0xe112_10d3,
            "ldrsb r1, [r2, -r3]",
            (Load, 1, true, 1, 2, reg(3, Lsl, 0), false, true, false),
            Ordering32::Plain,
        ),
        (
            0xe0f2_10b2,
            "ldrht r1, [r2], #2",
            (Load, 2, false, 1, 2, imm(2), true, false, true),
            Ordering32::Unprivileged,
        ),
        (
            0xe0f2_10d1,
            "ldrsbt r1, [r2], #1",
            (Load, 1, true, 1, 2, imm(1), true, false, true),
            Ordering32::Unprivileged,
        ),
        (
            0xe4b2_1004,
            "ldrt r1, [r2], #4",
            (Load, 4, false, 1, 2, imm(4), true, false, true),
            Ordering32::Unprivileged,
        ),
        (
            0xe4e2_1001,
            "strbt r1, [r2], #1",
            (Store, 1, false, 1, 2, imm(1), true, false, true),
            Ordering32::Unprivileged,
        ),
    ];
    for &(word, text, fields, ordering) in table {
        let want = Aarch32Access {
            ordering,
            ..expected(fields)
        };
        assert_eq!(decode(word), Ok(want), "{text}");
    }
}

#[test]
fn dual_loads_and_stores_decode_the_register_pair_t_and_t_plus_1() {
    let table: &[(u32, &str, Fields)] = &[
        (
            0xe1c4_20d8,
            "ldrd r2, r3, [r4, #8]",
            (Load, 4, false, 2, 4, imm(8), true, true, false),
        ),
        (
            0xe044_20d8,
            "ldrd r2, r3, [r4], #-8",
            (Load, 4, false, 2, 4, imm(8), false, false, true),
        ),
        (
            0xe1e4_21f0,
            "strd r2, r3, [r4, #16]!",
            (Store, 4, false, 2, 4, imm(16), true, true, true),
        ),
        (
            0xe184_20d5,
            "ldrd r2, r3, [r4, r5]",
            (Load, 4, false, 2, 4, reg(5, Lsl, 0), true, true, false),
        ),
        (
            0xe104_20f5,
            "strd r2, r3, [r4, -r5]",
            (Store, 4, false, 2, 4, reg(5, Lsl, 0), false, true, false),
        ),
        (
            0xe1cf_20d8,
            "ldrd r2, r3, [pc, #8]",
            (Load, 4, false, 2, 15, imm(8), true, true, false),
        ),
    ];
    for &(word, text, fields) in table {
        let want = Aarch32Access {
            rt2: Some(3),
            ..expected(fields)
        };
        assert_eq!(decode(word), Ok(want), "{text}");
    }
}

#[test]
fn load_acquire_and_store_release_decode_as_zero_offset_accesses() {
    let table: &[(u32, &str, Direction, u8, Ordering32)] = &[
        (0xe192_1c9f, "lda r1, [r2]", Load, 4, Ordering32::Acquire),
        (0xe1d2_1c9f, "ldab r1, [r2]", Load, 1, Ordering32::Acquire),
        (0xe1f2_1c9f, "ldah r1, [r2]", Load, 2, Ordering32::Acquire),
        (0xe182_fc91, "stl r1, [r2]", Store, 4, Ordering32::Release),
        (0xe1c2_fc91, "stlb r1, [r2]", Store, 1, Ordering32::Release),
        (0xe1e2_fc91, "stlh r1, [r2]", Store, 2, Ordering32::Release),
    ];
    for &(word, text, dir, size, ordering) in table {
        let want = Aarch32Access {
            ordering,
            ..expected((dir, size, false, 1, 2, imm(0), true, true, false))
        };
        assert_eq!(decode(word), Ok(want), "{text}");
    }
}

#[test]
fn should_be_zero_bits_of_the_extra_register_form_are_taken_as_zeros() {
    // ldrsb r3, [r4, -r6]! with bits [11:8] = 1000 (GNU objdump shows a TEQ): the CPU took a
    // data abort on it, so it executed the load, and Moat does too.
    let fields = (Load, 1, true, 3, 4, reg(6, Lsl, 0), false, true, true);
    assert_eq!(decode(0xe134_38d6), Ok(expected(fields)));
}

#[test]
fn condition_field_is_kept_but_not_evaluated() {
    // ldreq r1, [r2]; strne r1, [r2]: an aborting instruction passed its condition.
    assert_eq!(decode(0x0592_1000).map(|a| a.cond), Ok(0b0000));
    assert_eq!(decode(0x1582_1000).map(|a| a.cond), Ok(0b0001));
}

#[test]
fn every_not_emulated_class_is_named() {
    use NotEmulated as N;
    let table: &[(u32, &str, NotEmulated)] = &[
        (0xe592_f000, "ldr pc, [r2]", N::LoadsPc),
        (0xe5b1_1004, "ldr r1, [r1, #4]!", N::Unpredictable),
        (0xe481_1004, "str r1, [r1], #4", N::Unpredictable),
        (0xe1e2_20d8, "ldrd r2, r3, [r2, #8]!", N::Unpredictable),
        (0xe5d2_f000, "ldrb pc, [r2] (by hand)", N::Unpredictable),
        (
            0xe1c4_10d0,
            "ldrd r1, r2, [r4] (odd Rt, by hand)",
            N::Unpredictable,
        ),
        (0xe792_100f, "ldr r1, [r2, pc] (by hand)", N::Unpredictable),
        (0xe5bf_1004, "ldr r1, [pc, #4]! (by hand)", N::Unpredictable),
        (
            0xe0e4_20d8,
            "ldrd r2, r3, [r4], #8 with W=1 (by hand)",
            N::Unpredictable,
        ),
        (0xe192_1f9f, "ldrex r1, [r2]", N::Exclusive),
        (0xe182_3f91, "strex r3, r1, [r2]", N::Exclusive),
        (0xe192_1e9f, "ldaex r1, [r2]", N::Exclusive),
        (0xe1b4_2f9f, "ldrexd r2, r3, [r4]", N::Exclusive),
        (0xe103_1092, "swp r1, r2, [r3] (by hand)", N::Atomic),
        (0xe891_000c, "ldm r1, {r2, r3}", N::Multiple),
        (0xe92d_4010, "push {r4, lr}", N::Multiple),
        (0xf96d_0513, "srsdb sp!, #19", N::Multiple),
        (0xed91_0b00, "vldr d0, [r1]", N::SimdFp),
        (0xed91_0a01, "vldr s0, [r1, #4]", N::SimdFp),
        (0xec81_0b04, "vstmia r1, {d0-d1}", N::SimdFp),
        (0xf421_070f, "vld1.8 {d0}, [r1]", N::SimdFp),
        (0xed91_5e00, "ldc p14, c5, [r1]", N::Coprocessor),
        (
            0x5d9a_59f9,
            "vldrpl.16 s10, [r10, #498] (coprocessor 9)",
            N::SimdFp,
        ),
        (
            0xede5_52ab,
            "sfm f5, 2, [r5, #684]! (FPA, coprocessor 2)",
            N::Unallocated,
        ),
        (0xf5d1_f000, "pld [r1]", N::Prefetch),
        (0xf4d1_f004, "pli [r1, #4]", N::Prefetch),
        (0xf791_f002, "pldw [r1, r2]", N::Prefetch),
        (0xe1a0_0001, "mov r0, r1", N::NotLoadStore),
        (0xe081_0002, "add r0, r1, r2", N::NotLoadStore),
        (0xe000_0291, "mul r0, r1, r2", N::NotLoadStore),
        (0xe12f_ff1e, "bx lr", N::NotLoadStore),
        (0xec41_0f02, "mcrr p15, 0, r0, r1, c2", N::NotLoadStore),
    ];
    for &(word, text, reason) in table {
        assert_eq!(decode(word), Err(reason), "{text} ({word:#010x})");
    }
}

// --- emulation ----------------------------------------------------------------------------

const PC_AT: u32 = 0x8000;

fn run(word: u32, regs: &mut Regs32, port: &mut Port, far: u32) -> Result<Completed, Abort> {
    let ctx = Aarch32Context {
        pc: PC_AT,
        far,
        big_endian: false,
        carry: false,
    };
    emulate_a32(word, &ctx, regs, port)
}

fn regs() -> Regs32 {
    let mut regs = Regs32::default();
    for (n, r) in regs.r.iter_mut().enumerate() {
        *r = 0xA5A5_0000 | n as u32;
    }
    regs
}

#[test]
fn addressing_modes_access_the_offset_or_base_address_and_write_back_the_offset_address() {
    // (word, text, address, R2 afterwards) with R2 = 0x1000, R3 = 0x10
    let table: &[(u32, &str, u32, u32)] = &[
        (0xe592_1008, "ldr r1, [r2, #8]", 0x1008, 0x1000),
        (0xe512_1008, "ldr r1, [r2, #-8]", 0x0ff8, 0x1000),
        (0xe5b2_1008, "ldr r1, [r2, #8]!", 0x1008, 0x1008),
        (0xe492_1008, "ldr r1, [r2], #8", 0x1000, 0x1008),
        (0xe712_1003, "ldr r1, [r2, -r3]", 0x0ff0, 0x1000),
        (0xe792_1103, "ldr r1, [r2, r3, lsl #2]", 0x1040, 0x1000),
        (0xe692_1003, "ldr r1, [r2], r3", 0x1000, 0x1010),
        (0xe172_10b2, "ldrh r1, [r2, #-2]!", 0x0ffe, 0x0ffe),
    ];
    for &(word, text, address, after) in table {
        let mut regs = regs();
        regs.r[2] = 0x1000;
        regs.r[3] = 0x10;
        let mut port = Port::default();
        let done = run(word, &mut regs, &mut port, address).unwrap();
        assert_eq!(
            done,
            Completed {
                address: u64::from(address),
                length: 4
            },
            "{text}"
        );
        assert_eq!(regs.r[2], after, "{text}");
    }
}

#[test]
fn pc_as_base_reads_as_the_instruction_address_plus_8() {
    let mut regs = regs();
    let mut port = Port::default();
    let done = run(0xe51f_1004, &mut regs, &mut port, PC_AT + 8 - 4).unwrap(); // ldr r1, [pc, #-4]
    assert_eq!(done.address, u64::from(PC_AT + 4));
}

#[test]
fn store_of_the_pc_writes_the_instruction_address_plus_8() {
    let mut regs = regs();
    regs.r[2] = 0x2000;
    let mut port = Port::default();
    run(0xe582_f000, &mut regs, &mut port, 0x2000).unwrap(); // str pc, [r2]
    assert_eq!(port.writes(), vec![(0x2000, 4, u64::from(PC_AT + 8))]);
}

#[test]
fn signed_loads_sign_extend_to_32_bits() {
    let table: &[(u32, &str, u64, u32)] = &[
        (0xe1d2_10d1, "ldrsb r1, [r2, #1]", 0x80, 0xffff_ff80),
        (0xe1d2_10f2, "ldrsh r1, [r2, #2]", 0x8000, 0xffff_8000),
        (0xe1d2_10b2, "ldrh r1, [r2, #2]", 0x8000, 0x0000_8000),
        (0xe5d2_1001, "ldrb r1, [r2, #1]", 0xff, 0xff),
    ];
    for &(word, text, value, result) in table {
        let mut regs = regs();
        regs.r[2] = 0x1000;
        let address = match decode(word).unwrap().offset {
            Offset32::Imm(i) => 0x1000 + i,
            Offset32::Reg { .. } => unreachable!(),
        };
        let mut port = Port::with_value(u64::from(address), value);
        run(word, &mut regs, &mut port, address).unwrap();
        assert_eq!(regs.r[1], result, "{text}");
    }
}

#[test]
fn rrx_offset_shifts_in_the_carry_flag() {
    let mut regs = regs();
    regs.r[2] = 0x1000;
    regs.r[3] = 0x20;
    let ctx = Aarch32Context {
        pc: PC_AT,
        far: 0x8000_1010,
        big_endian: false,
        carry: true,
    };
    let mut port = Port::default();
    let done = emulate_a32(0xe792_1063, &ctx, &mut regs, &mut port).unwrap(); // ldr r1, [r2, r3, rrx]
    assert_eq!(done.address, 0x8000_1010);
}

#[test]
fn aligned_ldrd_is_one_doubleword_access_split_by_endianness() {
    for (big_endian, r2, r3) in [
        (false, 0x4433_2211, 0x8877_6655),
        (true, 0x1122_3344, 0x5566_7788),
    ] {
        let mut regs = regs();
        regs.r[4] = 0x1000;
        let ctx = Aarch32Context {
            pc: PC_AT,
            far: 0x1008,
            big_endian,
            carry: false,
        };
        let mut port = Port::with_value(0x1008, 0x8877_6655_4433_2211);
        emulate_a32(0xe1c4_20d8, &ctx, &mut regs, &mut port).unwrap(); // ldrd r2, r3, [r4, #8]
        assert_eq!(port.reads(), vec![(0x1008, 8)]);
        assert_eq!((regs.r[2], regs.r[3]), (r2, r3), "big-endian {big_endian}");
    }
}

#[test]
fn unaligned_ldrd_is_two_word_accesses_each_reversed_for_big_endian() {
    let mut regs = regs();
    regs.r[4] = 0x1004;
    let ctx = Aarch32Context {
        pc: PC_AT,
        far: 0x100c,
        big_endian: true,
        carry: false,
    };
    let mut port = Port::with_values(&[(0x100c, 0x1122_3344), (0x1010, 0x5566_7788)]);
    emulate_a32(0xe1c4_20d8, &ctx, &mut regs, &mut port).unwrap(); // ldrd r2, r3, [r4, #8]
    assert_eq!(port.reads(), vec![(0x100c, 4), (0x1010, 4)]);
    assert_eq!((regs.r[2], regs.r[3]), (0x4433_2211, 0x8877_6655));
}

#[test]
fn strd_writes_r_t_at_the_lower_address_in_either_endianness() {
    for big_endian in [false, true] {
        let mut regs = regs();
        regs.r[2] = 0x1122_3344;
        regs.r[3] = 0x5566_7788;
        regs.r[4] = 0x1000;
        let ctx = Aarch32Context {
            pc: PC_AT,
            far: 0x1010,
            big_endian,
            carry: false,
        };
        let mut port = Port::default();
        emulate_a32(0xe1e4_21f0, &ctx, &mut regs, &mut port).unwrap(); // strd r2, r3, [r4, #16]!
        let bytes = port.writes()[0].2.to_le_bytes();
        let expected: [u8; 8] = if big_endian {
            [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
        } else {
            [0x44, 0x33, 0x22, 0x11, 0x88, 0x77, 0x66, 0x55]
        };
        assert_eq!(bytes, expected, "big-endian {big_endian}");
        assert_eq!(regs.r[4], 0x1010);
    }
}

#[test]
fn failing_second_word_of_an_unaligned_ldrd_leaves_registers_untouched() {
    let mut regs = regs();
    regs.r[4] = 0x1004;
    let before = regs.clone();
    let mut port = Port {
        fail_at: Some(0x1010),
        ..Port::default()
    };
    // ldrd r2, r3, [r4, #8]
    let result = run(0xe1c4_20d8, &mut regs, &mut port, 0x100c);
    assert_eq!(result, Err(Abort::Bus { address: 0x1010 }));
    assert_eq!(regs, before);
}

#[test]
fn address_not_covering_far_is_refused_before_any_access() {
    let mut regs = regs();
    regs.r[2] = 0x1000;
    let mut port = Port::default();
    let result = run(0xe592_1008, &mut regs, &mut port, 0x2000); // ldr r1, [r2, #8]
    assert_eq!(
        result,
        Err(Abort::AddressMismatch {
            computed: 0x1008,
            far: 0x2000
        })
    );
    assert!(port.log.is_empty());
}

#[test]
fn addresses_wrap_at_4_gib() {
    let mut regs = regs();
    regs.r[2] = 0xffff_fffc;
    let mut port = Port::default();
    let done = run(0xe592_1008, &mut regs, &mut port, 4).unwrap(); // ldr r1, [r2, #8]
    assert_eq!(done.address, 4);
}
