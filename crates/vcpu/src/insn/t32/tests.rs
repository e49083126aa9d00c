//! T32 decode and emulation tests. Instruction halfwords were assembled with GNU as
//! (`arm-none-eabi-as -march=armv8-a`, binutils 2.40) and checked against the encoding
//! diagrams; words marked "by hand" are encodings the assembler refuses, built from the
//! diagram. A 16-bit instruction is written `(hw1, 0)`.

use super::*;
use crate::insn::emulate::{Aarch32Context, Abort, Completed, emulate_t32};
use crate::insn::testutil::{Port, Regs32};
use Direction::{Load, Store};

/// The fields a table row varies: direction, size, signed, Rt, Rn, offset, add, index, wback.
type Fields = (Direction, u8, bool, u8, u8, Offset32, bool, bool, bool);

fn expected(length: u8, fields: Fields) -> Aarch32Access {
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
        instr_set: InstrSet::T32,
        length,
        cond: COND_AL,
    }
}

const fn imm(i: u32) -> Offset32 {
    Offset32::Imm(i)
}

const fn reg(rm: u8, amount: u8) -> Offset32 {
    Offset32::Reg {
        rm,
        shift: Shift::Lsl,
        amount,
    }
}

#[test]
fn sixteen_bit_loads_and_stores_decode_immediate_register_sp_and_literal_forms() {
    let table: &[(u16, &str, Fields)] = &[
        (
            0x6851,
            "ldr r1, [r2, #4]",
            (Load, 4, false, 1, 2, imm(4), true, true, false),
        ),
        (
            0x67d1,
            "str r1, [r2, #124]",
            (Store, 4, false, 1, 2, imm(124), true, true, false),
        ),
        (
            0x7fd1,
            "ldrb r1, [r2, #31]",
            (Load, 1, false, 1, 2, imm(31), true, true, false),
        ),
        (
            0x7011,
            "strb r1, [r2]",
            (Store, 1, false, 1, 2, imm(0), true, true, false),
        ),
        (
            0x8fd1,
            "ldrh r1, [r2, #62]",
            (Load, 2, false, 1, 2, imm(62), true, true, false),
        ),
        (
            0x8051,
            "strh r1, [r2, #2]",
            (Store, 2, false, 1, 2, imm(2), true, true, false),
        ),
        (
            0x99ff,
            "ldr r1, [sp, #1020]",
            (Load, 4, false, 1, 13, imm(1020), true, true, false),
        ),
        (
            0x9101,
            "str r1, [sp, #4]",
            (Store, 4, false, 1, 13, imm(4), true, true, false),
        ),
        (
            0x58d1,
            "ldr r1, [r2, r3]",
            (Load, 4, false, 1, 2, reg(3, 0), true, true, false),
        ),
        (
            0x50d1,
            "str r1, [r2, r3]",
            (Store, 4, false, 1, 2, reg(3, 0), true, true, false),
        ),
        (
            0x52d1,
            "strh r1, [r2, r3]",
            (Store, 2, false, 1, 2, reg(3, 0), true, true, false),
        ),
        (
            0x54d1,
            "strb r1, [r2, r3]",
            (Store, 1, false, 1, 2, reg(3, 0), true, true, false),
        ),
        (
            0x56d1,
            "ldrsb r1, [r2, r3]",
            (Load, 1, true, 1, 2, reg(3, 0), true, true, false),
        ),
        (
            0x5ad1,
            "ldrh r1, [r2, r3]",
            (Load, 2, false, 1, 2, reg(3, 0), true, true, false),
        ),
        (
            0x5cd1,
            "ldrb r1, [r2, r3]",
            (Load, 1, false, 1, 2, reg(3, 0), true, true, false),
        ),
        (
            0x5ed1,
            "ldrsh r1, [r2, r3]",
            (Load, 2, true, 1, 2, reg(3, 0), true, true, false),
        ),
        (
            0x4902,
            "ldr r1, [pc, #8]",
            (Load, 4, false, 1, 15, imm(8), true, true, false),
        ),
    ];
    for &(hw1, text, fields) in table {
        assert!(!is_32bit(hw1), "{text}");
        assert_eq!(
            decode(hw1, 0),
            Ok(expected(2, fields)),
            "{text} ({hw1:#06x})"
        );
    }
}

#[test]
fn thirty_two_bit_single_loads_and_stores_decode_every_offset_form() {
    let table: &[(u16, u16, &str, Fields)] = &[
        (
            0xf8d2,
            0x1004,
            "ldr.w r1, [r2, #4]",
            (Load, 4, false, 1, 2, imm(4), true, true, false),
        ),
        (
            0xf8d2,
            0x1fff,
            "ldr.w r1, [r2, #4095]",
            (Load, 4, false, 1, 2, imm(4095), true, true, false),
        ),
        (
            0xf852,
            0x1c04,
            "ldr r1, [r2, #-4]",
            (Load, 4, false, 1, 2, imm(4), false, true, false),
        ),
        (
            0xf852,
            0x1f04,
            "ldr r1, [r2, #4]!",
            (Load, 4, false, 1, 2, imm(4), true, true, true),
        ),
        (
            0xf852,
            0x1904,
            "ldr r1, [r2], #-4",
            (Load, 4, false, 1, 2, imm(4), false, false, true),
        ),
        (
            0xf852,
            0x1023,
            "ldr.w r1, [r2, r3, lsl #2]",
            (Load, 4, false, 1, 2, reg(3, 2), true, true, false),
        ),
        (
            0xf8c2,
            0x1008,
            "str.w r1, [r2, #8]",
            (Store, 4, false, 1, 2, imm(8), true, true, false),
        ),
        (
            0xf842,
            0x1d08,
            "str r1, [r2, #-8]!",
            (Store, 4, false, 1, 2, imm(8), false, true, true),
        ),
        (
            0xf882,
            0x1001,
            "strb.w r1, [r2, #1]",
            (Store, 1, false, 1, 2, imm(1), true, true, false),
        ),
        (
            0xf8a2,
            0x1002,
            "strh.w r1, [r2, #2]",
            (Store, 2, false, 1, 2, imm(2), true, true, false),
        ),
        (
            0xf992,
            0x1001,
            "ldrsb.w r1, [r2, #1]",
            (Load, 1, true, 1, 2, imm(1), true, true, false),
        ),
        (
            0xf9b2,
            0x1002,
            "ldrsh.w r1, [r2, #2]",
            (Load, 2, true, 1, 2, imm(2), true, true, false),
        ),
        (
            0xf912,
            0x1c01,
            "ldrsb r1, [r2, #-1]",
            (Load, 1, true, 1, 2, imm(1), false, true, false),
        ),
        (
            0xf832,
            0x1013,
            "ldrh.w r1, [r2, r3, lsl #1]",
            (Load, 2, false, 1, 2, reg(3, 1), true, true, false),
        ),
        (
            0xf8df,
            0x1008,
            "ldr.w r1, [pc, #8]",
            (Load, 4, false, 1, 15, imm(8), true, true, false),
        ),
        (
            0xf85f,
            0x1008,
            "ldr.w r1, [pc, #-8]",
            (Load, 4, false, 1, 15, imm(8), false, true, false),
        ),
        (
            0xf89f,
            0x1003,
            "ldrb.w r1, [pc, #3]",
            (Load, 1, false, 1, 15, imm(3), true, true, false),
        ),
    ];
    for &(hw1, hw2, text, fields) in table {
        assert!(is_32bit(hw1), "{text}");
        assert_eq!(decode(hw1, hw2), Ok(expected(4, fields)), "{text}");
    }
    let ldrt = decode(0xf852, 0x1e04).unwrap(); // ldrt r1, [r2, #4]
    assert_eq!(ldrt.ordering, Ordering32::Unprivileged);
    assert_eq!((ldrt.offset, ldrt.index, ldrt.wback), (imm(4), true, false));
}

#[test]
fn dual_loads_and_stores_decode_both_registers_and_the_word_scaled_offset() {
    let table: &[(u16, u16, &str, Fields, u8)] = &[
        (
            0xe9d4,
            0x2302,
            "ldrd r2, r3, [r4, #8]",
            (Load, 4, false, 2, 4, imm(8), true, true, false),
            3,
        ),
        (
            0xe874,
            0x2302,
            "ldrd r2, r3, [r4], #-8",
            (Load, 4, false, 2, 4, imm(8), false, false, true),
            3,
        ),
        (
            0xe9e4,
            0x2304,
            "strd r2, r3, [r4, #16]!",
            (Store, 4, false, 2, 4, imm(16), true, true, true),
            3,
        ),
        (
            0xe9df,
            0x2302,
            "ldrd r2, r3, [pc, #8]",
            (Load, 4, false, 2, 15, imm(8), true, true, false),
            3,
        ),
        (
            0xe9c2,
            0x1100,
            "strd r1, r1, [r2]",
            (Store, 4, false, 1, 2, imm(0), true, true, false),
            1,
        ),
    ];
    for &(hw1, hw2, text, fields, rt2) in table {
        let want = Aarch32Access {
            rt2: Some(rt2),
            ..expected(4, fields)
        };
        assert_eq!(decode(hw1, hw2), Ok(want), "{text}");
    }
}

#[test]
fn load_acquire_and_store_release_decode_as_zero_offset_accesses() {
    let table: &[(u16, u16, &str, Direction, u8, Ordering32)] = &[
        (0xe8d2, 0x1faf, "lda r1, [r2]", Load, 4, Ordering32::Acquire),
        (
            0xe8d2,
            0x1f8f,
            "ldab r1, [r2]",
            Load,
            1,
            Ordering32::Acquire,
        ),
        (
            0xe8d2,
            0x1f9f,
            "ldah r1, [r2]",
            Load,
            2,
            Ordering32::Acquire,
        ),
        (
            0xe8c2,
            0x1faf,
            "stl r1, [r2]",
            Store,
            4,
            Ordering32::Release,
        ),
        (
            0xe8c2,
            0x1f8f,
            "stlb r1, [r2]",
            Store,
            1,
            Ordering32::Release,
        ),
    ];
    for &(hw1, hw2, text, dir, size, ordering) in table {
        let want = Aarch32Access {
            ordering,
            ..expected(4, (dir, size, false, 1, 2, imm(0), true, true, false))
        };
        assert_eq!(decode(hw1, hw2), Ok(want), "{text}");
    }
}

#[test]
fn every_not_emulated_class_is_named() {
    use NotEmulated as N;
    let table: &[(u16, u16, &str, NotEmulated)] = &[
        (0xf8d2, 0xf000, "ldr.w pc, [r2]", N::LoadsPc),
        (0xe8d1, 0xf002, "tbb [r1, r2]", N::LoadsPc),
        (0xe8d1, 0xf012, "tbh [r1, r2, lsl #1]", N::LoadsPc),
        (
            0xf851,
            0x1f04,
            "ldr r1, [r1, #4]! (by hand)",
            N::Unpredictable,
        ),
        (
            0xe9f2,
            0x2302,
            "ldrd r2, r3, [r2, #8]! (by hand)",
            N::Unpredictable,
        ),
        (
            0xe9d4,
            0x2200,
            "ldrd r2, r2, [r4] (by hand)",
            N::Unpredictable,
        ),
        (
            0xf852,
            0x100f,
            "ldr.w r1, [r2, pc] (by hand)",
            N::Unpredictable,
        ),
        (
            0xf852,
            0x100d,
            "ldr.w r1, [r2, sp] (by hand)",
            N::Unpredictable,
        ),
        (
            0xf8c2,
            0xf008,
            "str.w pc, [r2, #8] (by hand)",
            N::Unpredictable,
        ),
        (
            0xf8cf,
            0x1008,
            "str.w r1, [pc, #8] (by hand, UNDEFINED)",
            N::Unallocated,
        ),
        (
            0xf852,
            0x1804,
            "ldr r1, [r2], #4 with P=0 W=0 (by hand, UNDEFINED)",
            N::Unallocated,
        ),
        (0xe852, 0x1f00, "ldrex r1, [r2]", N::Exclusive),
        (0xe842, 0x1300, "strex r3, r1, [r2]", N::Exclusive),
        (0xe8d2, 0x1f4f, "ldrexb r1, [r2]", N::Exclusive),
        (0xe8d2, 0x1fef, "ldaex r1, [r2]", N::Exclusive),
        (0xb510, 0, "push {r4, lr}", N::Multiple),
        (0xbd10, 0, "pop {r4, pc}", N::Multiple),
        (0xc90c, 0, "ldmia r1!, {r2, r3}", N::Multiple),
        (0xc10c, 0, "stmia r1!, {r2, r3}", N::Multiple),
        (0xe891, 0x000c, "ldmia.w r1, {r2, r3}", N::Multiple),
        (0xe92d, 0x0030, "stmdb sp!, {r4, r5}", N::Multiple),
        (0xed91, 0x0b00, "vldr d0, [r1]", N::SimdFp),
        (0xed81, 0x0a01, "vstr s0, [r1, #4]", N::SimdFp),
        (0xf921, 0x070f, "vld1.8 {d0}, [r1]", N::SimdFp),
        (0xed91, 0x5e00, "ldc p14, c5, [r1]", N::Coprocessor),
        (
            0xed47,
            0xb963,
            "vstr.16 s23, [r7, #-198] (coprocessor 9)",
            N::SimdFp,
        ),
        (
            0xf9d0,
            0x2e25,
            "a signed word load (no such instruction)",
            N::Unallocated,
        ),
        (
            0xf852,
            0x1055,
            "ldr.w r1, [r2, r5, lsl #1] with bits [10:6] != 0",
            N::Unallocated,
        ),
        (0xf891, 0xf000, "pld [r1]", N::Prefetch),
        (0xf811, 0xfc04, "pld [r1, #-4]", N::Prefetch),
        (0xf991, 0xf004, "pli [r1, #4]", N::Prefetch),
        (0xf811, 0xf002, "pld [r1, r2]", N::Prefetch),
        (0xec41, 0x0f02, "mcrr p15, 0, r0, r1, c2", N::NotLoadStore),
        (0x0008, 0, "movs r0, r1", N::NotLoadStore),
        (0x1888, 0, "adds r0, r1, r2", N::NotLoadStore),
        (0x4770, 0, "bx lr", N::NotLoadStore),
        (0xbf00, 0, "nop", N::NotLoadStore),
        (0xeb01, 0x0002, "add.w r0, r1, r2", N::NotLoadStore),
        (0xf7ff, 0xfffe, "bl .", N::NotLoadStore),
    ];
    for &(hw1, hw2, text, reason) in table {
        assert_eq!(
            decode(hw1, hw2),
            Err(reason),
            "{text} ({hw1:#06x} {hw2:#06x})"
        );
    }
}

// --- emulation ----------------------------------------------------------------------------

const PC_AT: u32 = 0x8002;

fn run(hw1: u16, hw2: u16, regs: &mut Regs32, far: u32) -> (Result<Completed, Abort>, Port) {
    let ctx = Aarch32Context {
        pc: PC_AT,
        far,
        big_endian: false,
        carry: false,
    };
    let mut port = Port::default();
    (emulate_t32(hw1, hw2, &ctx, regs, &mut port), port)
}

#[test]
fn sixteen_bit_instruction_completes_with_length_2() {
    let mut regs = Regs32::default();
    regs.r[2] = 0x1000;
    let (done, port) = run(0x6851, 0xffff, &mut regs, 0x1004); // ldr r1, [r2, #4]
    assert_eq!(
        done,
        Ok(Completed {
            address: 0x1004,
            length: 2
        })
    );
    assert_eq!(port.reads(), vec![(0x1004, 4)]);
}

#[test]
fn literal_base_is_the_word_aligned_instruction_address_plus_4() {
    // At 0x8002 the PC reads 0x8006; Align(PC, 4) = 0x8004.
    let mut regs = Regs32::default();
    let (done, _) = run(0x4902, 0, &mut regs, 0x800c); // ldr r1, [pc, #8]
    assert_eq!(done.map(|d| d.address), Ok(0x800c));
    let (done, _) = run(0xf85f, 0x1008, &mut regs, 0x7ffc); // ldr.w r1, [pc, #-8]
    assert_eq!(
        done,
        Ok(Completed {
            address: 0x7ffc,
            length: 4
        })
    );
}

#[test]
fn writeback_forms_update_the_base_after_the_access() {
    // (hw1, hw2, text, address, R2 afterwards) with R2 = 0x1000
    let table: &[(u16, u16, &str, u32, u32)] = &[
        (0xf852, 0x1f04, "ldr r1, [r2, #4]!", 0x1004, 0x1004),
        (0xf852, 0x1904, "ldr r1, [r2], #-4", 0x1000, 0x0ffc),
        (0xf842, 0x1d08, "str r1, [r2, #-8]!", 0x0ff8, 0x0ff8),
    ];
    for &(hw1, hw2, text, address, after) in table {
        let mut regs = Regs32::default();
        regs.r[2] = 0x1000;
        let (done, _) = run(hw1, hw2, &mut regs, address);
        assert_eq!(done.map(|d| d.address), Ok(u64::from(address)), "{text}");
        assert_eq!(regs.r[2], after, "{text}");
    }
}

#[test]
fn signed_halfword_register_load_sign_extends() {
    let mut regs = Regs32::default();
    regs.r[2] = 0x1000;
    regs.r[3] = 0x10;
    let ctx = Aarch32Context {
        pc: PC_AT,
        far: 0x1010,
        big_endian: true,
        carry: false,
    };
    let mut port = Port::with_value(0x1010, 0x0080);
    emulate_t32(0x5ed1, 0, &ctx, &mut regs, &mut port).unwrap(); // ldrsh r1, [r2, r3]
    assert_eq!(
        regs.r[1], 0xffff_8000,
        "big-endian halfword 80 00 is 0x8000"
    );
}
