//! A64 decode and emulation tests. Instruction words were assembled with GNU as 2.40
//! (`aarch64-linux-gnu-as -march=armv8.8-a+memtag+ls64+mops`) and checked against the
//! encoding diagrams; the listing's mnemonic is beside each word.

use super::*;
use crate::insn::emulate::{A64Context, Abort, Completed, emulate_a64};
use crate::insn::testutil::{DEFAULT_READ, Port, Regs64};
use Direction::{Load, Store};

/// A one-register access with the fields the tables vary.
fn one(
    direction: Direction,
    size: u8,
    signed: bool,
    width: RegWidth,
    rt: Reg,
    addressing: Addressing,
) -> A64Access {
    A64Access {
        direction,
        size,
        signed,
        width,
        rt,
        rt2: None,
        addressing,
        ordering: Ordering::Plain,
    }
}

const fn at(n: u8, imm: i64) -> Addressing {
    Addressing::Offset {
        base: Reg::X(n),
        offset: Offset::Imm(imm),
    }
}

const fn reg_off(n: u8, m: u8, extend: Extend, shift: u8) -> Addressing {
    Addressing::Offset {
        base: Reg::X(n),
        offset: Offset::Reg {
            rm: Reg::X(m),
            extend,
            shift,
        },
    }
}

#[test]
fn single_register_loads_and_stores_decode_every_size_sign_and_offset_form() {
    use Reg::X;
    use RegWidth::{W, X as Xw};
    let table: &[(u32, &str, A64Access)] = &[
        (
            0xf940_0441,
            "ldr x1, [x2, #8]",
            one(Load, 8, false, Xw, X(1), at(2, 8)),
        ),
        (
            0xb940_0441,
            "ldr w1, [x2, #4]",
            one(Load, 4, false, W, X(1), at(2, 4)),
        ),
        (
            0x3940_0483,
            "ldrb w3, [x4, #1]",
            one(Load, 1, false, W, X(3), at(4, 1)),
        ),
        (
            0x7940_0483,
            "ldrh w3, [x4, #2]",
            one(Load, 2, false, W, X(3), at(4, 2)),
        ),
        (
            0x3980_0cc5,
            "ldrsb x5, [x6, #3]",
            one(Load, 1, true, Xw, X(5), at(6, 3)),
        ),
        (
            0x39c0_0cc5,
            "ldrsb w5, [x6, #3]",
            one(Load, 1, true, W, X(5), at(6, 3)),
        ),
        (
            0x7980_00c5,
            "ldrsh x5, [x6]",
            one(Load, 2, true, Xw, X(5), at(6, 0)),
        ),
        (
            0x79c0_00c5,
            "ldrsh w5, [x6]",
            one(Load, 2, true, W, X(5), at(6, 0)),
        ),
        (
            0xb980_0507,
            "ldrsw x7, [x8, #4]",
            one(Load, 4, true, Xw, X(7), at(8, 4)),
        ),
        (
            0xf900_0841,
            "str x1, [x2, #16]",
            one(Store, 8, false, Xw, X(1), at(2, 16)),
        ),
        (
            0x3900_0041,
            "strb w1, [x2]",
            one(Store, 1, false, W, X(1), at(2, 0)),
        ),
        (
            0x7900_0041,
            "strh w1, [x2]",
            one(Store, 2, false, W, X(1), at(2, 0)),
        ),
        (
            0xb900_0041,
            "str w1, [x2]",
            one(Store, 4, false, W, X(1), at(2, 0)),
        ),
        (
            0xf85f_8041,
            "ldur x1, [x2, #-8]",
            one(Load, 8, false, Xw, X(1), at(2, -8)),
        ),
        (
            0xb81f_f041,
            "stur w1, [x2, #-1]",
            one(Store, 4, false, W, X(1), at(2, -1)),
        ),
        (0xb940_07e0, "ldr w0, [sp, #4]", {
            let sp = Addressing::Offset {
                base: Reg::Sp,
                offset: Offset::Imm(4),
            };
            one(Load, 4, false, W, X(0), sp)
        }),
        (
            0xf900_005f,
            "str xzr, [x2]",
            one(Store, 8, false, Xw, Reg::Zr, at(2, 0)),
        ),
        (
            0xf940_005f,
            "ldr xzr, [x2]",
            one(Load, 8, false, Xw, Reg::Zr, at(2, 0)),
        ),
    ];
    for &(word, text, expected) in table {
        assert_eq!(decode(word), Ok(expected), "{text} ({word:#010x})");
    }
}

#[test]
fn pre_and_post_index_forms_decode_with_their_signed_immediate_and_base() {
    use RegWidth::X as Xw;
    let table: &[(u32, &str, Addressing, Direction)] = &[
        (
            0xf841_0c41,
            "ldr x1, [x2, #16]!",
            Addressing::PreIndex {
                base: Reg::X(2),
                imm: 16,
            },
            Load,
        ),
        (
            0xf85f_0441,
            "ldr x1, [x2], #-16",
            Addressing::PostIndex {
                base: Reg::X(2),
                imm: -16,
            },
            Load,
        ),
        (
            0xf81f_0fe1,
            "str x1, [sp, #-16]!",
            Addressing::PreIndex {
                base: Reg::Sp,
                imm: -16,
            },
            Store,
        ),
        (
            0xf841_07e1,
            "ldr x1, [sp], #16",
            Addressing::PostIndex {
                base: Reg::Sp,
                imm: 16,
            },
            Load,
        ),
    ];
    for &(word, text, addressing, dir) in table {
        let expected = one(dir, 8, false, Xw, Reg::X(1), addressing);
        assert_eq!(decode(word), Ok(expected), "{text}");
    }
}

#[test]
fn register_offsets_decode_extend_type_and_shift_by_the_access_size() {
    use super::Extend::{Sxtw, Sxtx, Uxtw, Uxtx};
    let table: &[(u32, &str, u8, Addressing)] = &[
        (0xf863_6841, "ldr x1, [x2, x3]", 8, reg_off(2, 3, Uxtx, 0)),
        (
            0xf863_7841,
            "ldr x1, [x2, x3, lsl #3]",
            8,
            reg_off(2, 3, Uxtx, 3),
        ),
        (
            0xb863_5841,
            "ldr w1, [x2, w3, uxtw #2]",
            4,
            reg_off(2, 3, Uxtw, 2),
        ),
        (
            0xb863_c841,
            "ldr w1, [x2, w3, sxtw]",
            4,
            reg_off(2, 3, Sxtw, 0),
        ),
        (
            0x3863_e841,
            "ldrb w1, [x2, x3, sxtx]",
            1,
            reg_off(2, 3, Sxtx, 0),
        ),
        (
            0x7863_d841,
            "ldrh w1, [x2, w3, sxtw #1]",
            2,
            reg_off(2, 3, Sxtw, 1),
        ),
    ];
    for &(word, text, size, addressing) in table {
        let access = decode(word).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        assert_eq!(
            (access.size, access.addressing),
            (size, addressing),
            "{text}"
        );
    }
}

#[test]
fn pairs_decode_both_registers_scaled_offset_mode_and_ldpsw_sign() {
    let table: &[(u32, &str, Direction, u8, bool, Addressing, Ordering)] = &[
        (
            0xa941_0861,
            "ldp x1, x2, [x3, #16]",
            Load,
            8,
            false,
            at(3, 16),
            Ordering::Plain,
        ),
        (
            0x297f_0861,
            "ldp w1, w2, [x3, #-8]",
            Load,
            4,
            false,
            at(3, -8),
            Ordering::Plain,
        ),
        (
            0x6941_0861,
            "ldpsw x1, x2, [x3, #8]",
            Load,
            4,
            true,
            at(3, 8),
            Ordering::Plain,
        ),
        (
            0xa840_0861,
            "ldnp x1, x2, [x3]",
            Load,
            8,
            false,
            at(3, 0),
            Ordering::NonTemporal,
        ),
        (
            0x2800_8861,
            "stnp w1, w2, [x3, #4]",
            Store,
            4,
            false,
            at(3, 4),
            Ordering::NonTemporal,
        ),
        (
            0x2881_0861,
            "stp w1, w2, [x3], #8",
            Store,
            4,
            false,
            Addressing::PostIndex {
                base: Reg::X(3),
                imm: 8,
            },
            Ordering::Plain,
        ),
    ];
    for &(word, text, dir, size, signed, addressing, ordering) in table {
        let access = decode(word).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        assert_eq!(access.direction, dir, "{text}");
        assert_eq!((access.size, access.signed), (size, signed), "{text}");
        assert_eq!(
            (access.rt, access.rt2),
            (Reg::X(1), Some(Reg::X(2))),
            "{text}"
        );
        assert_eq!(
            (access.addressing, access.ordering),
            (addressing, ordering),
            "{text}"
        );
    }
    let push = decode(0xa9bf_7bfd).unwrap(); // stp x29, x30, [sp, #-16]!
    assert_eq!(
        push.addressing,
        Addressing::PreIndex {
            base: Reg::Sp,
            imm: -16
        }
    );
    assert_eq!((push.rt, push.rt2), (Reg::X(29), Some(Reg::X(30))));
    let zero_pair = decode(0xa900_7c5f).unwrap(); // stp xzr, xzr, [x2]
    assert_eq!((zero_pair.rt, zero_pair.rt2), (Reg::Zr, Some(Reg::Zr)));
}

/// (word, listing, direction, size, signed, width, offset, ordering)
type OrderedRow = (
    u32,
    &'static str,
    Direction,
    u8,
    bool,
    RegWidth,
    i64,
    Ordering,
);

#[test]
fn ordered_and_unprivileged_loads_decode_as_plain_accesses_with_their_ordering() {
    use RegWidth::{W, X as Xw};
    let table: &[OrderedRow] = &[
        (
            0xc8df_fc41,
            "ldar x1, [x2]",
            Load,
            8,
            false,
            Xw,
            0,
            Ordering::Acquire,
        ),
        (
            0x88df_fc41,
            "ldar w1, [x2]",
            Load,
            4,
            false,
            W,
            0,
            Ordering::Acquire,
        ),
        (
            0x08df_fc41,
            "ldarb w1, [x2]",
            Load,
            1,
            false,
            W,
            0,
            Ordering::Acquire,
        ),
        (
            0xc89f_fc41,
            "stlr x1, [x2]",
            Store,
            8,
            false,
            Xw,
            0,
            Ordering::Release,
        ),
        (
            0x489f_fc41,
            "stlrh w1, [x2]",
            Store,
            2,
            false,
            W,
            0,
            Ordering::Release,
        ),
        (
            0xc8df_7c41,
            "ldlar x1, [x2]",
            Load,
            8,
            false,
            Xw,
            0,
            Ordering::LoAcquire,
        ),
        (
            0x889f_7c41,
            "stllr w1, [x2]",
            Store,
            4,
            false,
            W,
            0,
            Ordering::LoRelease,
        ),
        (
            0xf8bf_c041,
            "ldapr x1, [x2]",
            Load,
            8,
            false,
            Xw,
            0,
            Ordering::AcquirePc,
        ),
        (
            0xb8bf_c041,
            "ldapr w1, [x2]",
            Load,
            4,
            false,
            W,
            0,
            Ordering::AcquirePc,
        ),
        (
            0x38bf_c041,
            "ldaprb w1, [x2]",
            Load,
            1,
            false,
            W,
            0,
            Ordering::AcquirePc,
        ),
        (
            0x995f_c041,
            "ldapur w1, [x2, #-4]",
            Load,
            4,
            false,
            W,
            -4,
            Ordering::AcquirePc,
        ),
        (
            0xd900_8041,
            "stlur x1, [x2, #8]",
            Store,
            8,
            false,
            Xw,
            8,
            Ordering::Release,
        ),
        (
            0xf840_8841,
            "ldtr x1, [x2, #8]",
            Load,
            8,
            false,
            Xw,
            8,
            Ordering::Unprivileged,
        ),
        (
            0x3800_0841,
            "sttrb w1, [x2]",
            Store,
            1,
            false,
            W,
            0,
            Ordering::Unprivileged,
        ),
        (
            0xb89f_c841,
            "ldtrsw x1, [x2, #-4]",
            Load,
            4,
            true,
            Xw,
            -4,
            Ordering::Unprivileged,
        ),
    ];
    for &(word, text, dir, size, signed, width, imm, ordering) in table {
        let expected = A64Access {
            ordering,
            ..one(dir, size, signed, width, Reg::X(1), at(2, imm))
        };
        assert_eq!(decode(word), Ok(expected), "{text}");
    }
}

#[test]
fn literal_loads_decode_a_pc_relative_word_offset() {
    let table: &[(u32, &str, u8, bool, RegWidth, i64)] = &[
        (0x5800_0041, "ldr x1, .+8", 8, false, RegWidth::X, 8),
        (0x9800_0021, "ldrsw x1, .+4", 4, true, RegWidth::X, 4),
        (0x1800_0001, "ldr w1, .", 4, false, RegWidth::W, 0),
        (0x58ff_ffe1, "ldr x1, .-4", 8, false, RegWidth::X, -4),
    ];
    for &(word, text, size, signed, width, offset) in table {
        let expected = one(
            Load,
            size,
            signed,
            width,
            Reg::X(1),
            Addressing::Literal { offset },
        );
        assert_eq!(decode(word), Ok(expected), "{text}");
    }
}

#[test]
fn every_not_emulated_class_is_named() {
    use NotEmulated as N;
    let table: &[(u32, &str, NotEmulated)] = &[
        (0xc85f_7c41, "ldxr x1, [x2]", N::Exclusive),
        (0xc803_7c41, "stxr w3, x1, [x2]", N::Exclusive),
        (0x885f_fc41, "ldaxr w1, [x2]", N::Exclusive),
        (0xc87f_0861, "ldxp x1, x2, [x3]", N::Exclusive),
        (0xc824_8861, "stlxp w4, x1, x2, [x3]", N::Exclusive),
        (0xf821_0062, "ldadd x1, x2, [x3]", N::Atomic),
        (0xb8e1_0062, "ldaddal w1, w2, [x3]", N::Atomic),
        (0xc8a1_7c62, "cas x1, x2, [x3]", N::Atomic),
        (0x4820_7c82, "casp x0, x1, x2, x3, [x4]", N::Atomic),
        (0xf821_8062, "swp x1, x2, [x3]", N::Atomic),
        (0x3dc0_0020, "ldr q0, [x1]", N::SimdFp),
        (0xfd40_0420, "ldr d0, [x1, #8]", N::SimdFp),
        (0xad40_0420, "ldp q0, q1, [x1]", N::SimdFp),
        (0x4c40_7020, "ld1 {v0.16b}, [x1]", N::SimdFp),
        (0x1cff_fdc0, "ldr s0, lbl", N::SimdFp),
        (0xf980_0020, "prfm pldl1keep, [x1]", N::Prefetch),
        (0xd8ff_fd80, "prfm pldl1keep, lbl", N::Prefetch),
        (0xf89f_f020, "prfum pldl1keep, [x1, #-1]", N::Prefetch),
        (0xf8a2_6820, "prfm pldl1keep, [x1, x2]", N::Prefetch),
        (0xf83f_d020, "ld64b x0, [x1]", N::Atomic64Byte),
        (0xf83f_9020, "st64b x0, [x1]", N::Atomic64Byte),
        (0xf822_b020, "st64bv x2, x0, [x1]", N::Atomic64Byte),
        (0xf822_a020, "st64bv0 x2, x0, [x1]", N::Atomic64Byte),
        (0xd960_0020, "ldg x0, [x1]", N::MemoryTags),
        (0xd920_0820, "stg x0, [x1]", N::MemoryTags),
        (0x6900_0440, "stgp x0, x1, [x2]", N::MemoryTags),
        (0xf820_0420, "ldraa x0, [x1]", N::PointerAuth),
        (0xf8a0_1c20, "ldrab x0, [x1, #8]!", N::PointerAuth),
        (0x1901_0440, "cpyfp [x0]!, [x1]!, x2!", N::MemoryCopy),
        (0x19c2_0420, "setp [x0]!, x1!, x2", N::MemoryCopy),
        (0xa940_0441, "ldp x1, x1, [x2]", N::Unpredictable),
        (0xa840_0441, "ldnp x1, x1, [x2]", N::Unpredictable),
        (0xf840_8c21, "ldr x1, [x1, #8]!", N::Unpredictable),
        (0xf800_8421, "str x1, [x1], #8", N::Unpredictable),
        (0xa9c1_0821, "ldp x1, x2, [x1, #16]!", N::Unpredictable),
        (
            0xf863_0841,
            "ldr x1, [x2, w3, uxtb] (option<1> = 0)",
            N::Unallocated,
        ),
        (
            0xf8c0_0441,
            "ldrsw-sized post-index with size 11 (opc 11)",
            N::Unallocated,
        ),
        (0xd503_201f, "nop", N::NotLoadStore),
        (0x8b02_0020, "add x0, x1, x2", N::NotLoadStore),
        (0x1400_0000, "b .", N::NotLoadStore),
    ];
    for &(word, text, reason) in table {
        assert_eq!(decode(word), Err(reason), "{text} ({word:#010x})");
    }
}

#[test]
fn should_be_one_fields_of_ordered_accesses_are_taken_as_ones() {
    // LDAR X0, [X0] with Rs = 3 and LDAPR W1, [X2] with Rs = 0: the CPU executed them as the
    // access (it took a data abort), so Moat does too.
    assert_eq!(
        decode(0xc8c3_fc00).map(|a| a.ordering),
        Ok(Ordering::Acquire)
    );
    assert_eq!(
        decode(0xb8a0_c041).map(|a| a.ordering),
        Ok(Ordering::AcquirePc)
    );
}

#[test]
fn sp_as_base_with_xzr_as_transfer_register_is_no_writeback_overlap() {
    // STR XZR, [SP, #-16]! : n == 31 means SP, t == 31 means XZR; they do not overlap.
    let word = 0xf81f_0fff;
    let access = decode(word).unwrap();
    assert_eq!(access.rt, Reg::Zr);
    assert_eq!(
        access.addressing,
        Addressing::PreIndex {
            base: Reg::Sp,
            imm: -16
        }
    );
}

// --- emulation ----------------------------------------------------------------------------

fn run(word: u32, regs: &mut Regs64, port: &mut Port, far: u64) -> Result<Completed, Abort> {
    let ctx = A64Context {
        pc: 0x8_0000,
        far,
        big_endian: false,
    };
    emulate_a64(word, &ctx, regs, port)
}

#[test]
fn each_addressing_mode_accesses_its_address_and_writes_back_only_pre_and_post_index() {
    // (word, text, base, expected address, expected base afterwards)
    let table: &[(u32, &str, u64, u64, u64)] = &[
        (0xf940_0441, "ldr x1, [x2, #8]", 0x9000, 0x9008, 0x9000),
        (0xf85f_8041, "ldur x1, [x2, #-8]", 0x9000, 0x8ff8, 0x9000),
        (0xf841_0c41, "ldr x1, [x2, #16]!", 0x9000, 0x9010, 0x9010),
        (0xf85f_0441, "ldr x1, [x2], #-16", 0x9000, 0x9000, 0x8ff0),
        (0xf840_8841, "ldtr x1, [x2, #8]", 0x9000, 0x9008, 0x9000),
    ];
    for &(word, text, base, address, after) in table {
        let mut regs = Regs64::marked();
        regs.x[2] = base;
        let mut port = Port::default();
        let done = run(word, &mut regs, &mut port, address).unwrap();
        assert_eq!(done, Completed { address, length: 4 }, "{text}");
        assert_eq!(port.reads(), vec![(address, 8)], "{text}");
        assert_eq!(regs.x[1], DEFAULT_READ, "{text}");
        assert_eq!(regs.x[2], after, "{text}");
    }
}

#[test]
fn register_offset_extends_and_shifts_the_index_register() {
    // (word, text, x3, expected address) with x2 = 0x10_0000
    let table: &[(u32, &str, u64, u64)] = &[
        (0xf863_7841, "ldr x1, [x2, x3, lsl #3]", 2, 0x10_0010),
        (
            0xb863_5841,
            "ldr w1, [x2, w3, uxtw #2]",
            0xffff_ffff_0000_0004,
            0x10_0010,
        ),
        (
            0xb863_c841,
            "ldr w1, [x2, w3, sxtw]",
            0x0000_0000_ffff_fff0,
            0x0f_fff0,
        ),
        (
            0x3863_e841,
            "ldrb w1, [x2, x3, sxtx]",
            (-1i64) as u64,
            0x0f_ffff,
        ),
        (
            0x7863_d841,
            "ldrh w1, [x2, w3, sxtw #1]",
            0xffff_fffe,
            0x0f_fffc,
        ),
    ];
    for &(word, text, index, address) in table {
        let mut regs = Regs64::marked();
        regs.x[2] = 0x10_0000;
        regs.x[3] = index;
        let mut port = Port::default();
        let done = run(word, &mut regs, &mut port, address).unwrap();
        assert_eq!(done.address, address, "{text}");
    }
}

#[test]
fn sp_base_is_read_and_written_back_through_the_stack_pointer() {
    let mut regs = Regs64::marked();
    regs.sp = 0x4_0010;
    regs.x[29] = 0x29;
    regs.x[30] = 0x30;
    let mut port = Port::default();
    // stp x29, x30, [sp, #-16]!
    run(0xa9bf_7bfd, &mut regs, &mut port, 0x4_0000).unwrap();
    assert_eq!(
        port.writes(),
        vec![(0x4_0000, 8, 0x29), (0x4_0008, 8, 0x30)]
    );
    assert_eq!(regs.sp, 0x4_0000);
    // ldp x29, x30, [sp], #16
    let mut port = Port::default();
    run(0xa8c1_7bfd, &mut regs, &mut port, 0x4_0000).unwrap();
    assert_eq!(port.reads(), vec![(0x4_0000, 8), (0x4_0008, 8)]);
    assert_eq!(regs.sp, 0x4_0010);
}

#[test]
fn loads_sign_or_zero_extend_into_w_and_x_exactly_as_the_pseudocode() {
    // (word, text, device value, expected X1)
    let table: &[(u32, &str, u64, u64)] = &[
        (0x3940_0441, "ldrb w1, [x2, #1]", 0x80, 0x80),
        (
            0x3980_0441,
            "ldrsb x1, [x2, #1]",
            0x80,
            0xffff_ffff_ffff_ff80,
        ),
        (
            0x39c0_0441,
            "ldrsb w1, [x2, #1]",
            0x80,
            0x0000_0000_ffff_ff80,
        ),
        (
            0x7980_0441,
            "ldrsh x1, [x2, #2]",
            0x8001,
            0xffff_ffff_ffff_8001,
        ),
        (
            0x79c0_0441,
            "ldrsh w1, [x2, #2]",
            0x8001,
            0x0000_0000_ffff_8001,
        ),
        (
            0xb980_0441,
            "ldrsw x1, [x2, #4]",
            0x8000_0000,
            0xffff_ffff_8000_0000,
        ),
        (
            0xb940_0441,
            "ldr w1, [x2, #4]",
            0xffff_ffff_8000_0000,
            0x8000_0000,
        ),
        (0x3980_0441, "ldrsb x1 of a positive byte", 0x7f, 0x7f),
    ];
    for &(word, text, value, expected) in table {
        let mut regs = Regs64::marked();
        regs.x[2] = 0x1000;
        let address = decode(word).map(|a| match a.addressing {
            Addressing::Offset {
                offset: Offset::Imm(i),
                ..
            } => 0x1000 + i as u64,
            _ => unreachable!(),
        });
        let address = address.unwrap();
        let mut port = Port::with_value(address, value);
        run(word, &mut regs, &mut port, address).unwrap();
        assert_eq!(regs.x[1], expected, "{text}");
    }
}

#[test]
fn stores_write_the_low_bytes_of_the_register_and_xzr_as_zero() {
    let table: &[(u32, &str, u8, u64)] = &[
        (0xf900_0041, "str x1, [x2]", 8, 0x1122_3344_5566_7788),
        (0xb900_0041, "str w1, [x2]", 4, 0x5566_7788),
        (0x7900_0041, "strh w1, [x2]", 2, 0x7788),
        (0x3900_0041, "strb w1, [x2]", 1, 0x88),
        (0xf900_005f, "str xzr, [x2]", 8, 0),
    ];
    for &(word, text, size, value) in table {
        let mut regs = Regs64::marked();
        regs.x[1] = 0x1122_3344_5566_7788;
        regs.x[2] = 0x2000;
        let mut port = Port::default();
        run(word, &mut regs, &mut port, 0x2000).unwrap();
        assert_eq!(port.writes(), vec![(0x2000, size, value)], "{text}");
    }
}

#[test]
fn load_into_xzr_reads_the_device_and_discards_the_value() {
    let mut regs = Regs64::marked();
    regs.x[2] = 0x2000;
    let before = regs.clone();
    let mut port = Port::default();
    run(0xf940_005f, &mut regs, &mut port, 0x2000).unwrap(); // ldr xzr, [x2]
    assert_eq!(port.reads(), vec![(0x2000, 8)]);
    assert_eq!(regs, before);
}

#[test]
fn pairs_access_two_consecutive_elements_in_order() {
    let mut regs = Regs64::marked();
    regs.x[3] = 0x3000;
    let mut port = Port::with_values(&[(0x3010, 0x1111), (0x3018, 0x2222)]);
    run(0xa941_0861, &mut regs, &mut port, 0x3010).unwrap(); // ldp x1, x2, [x3, #16]
    assert_eq!(port.reads(), vec![(0x3010, 8), (0x3018, 8)]);
    assert_eq!((regs.x[1], regs.x[2]), (0x1111, 0x2222));

    let mut port = Port::default();
    run(0x2881_0861, &mut regs, &mut port, 0x3000).unwrap(); // stp w1, w2, [x3], #8
    assert_eq!(
        port.writes(),
        vec![(0x3000, 4, 0x1111), (0x3004, 4, 0x2222)]
    );
    assert_eq!(regs.x[3], 0x3008);
}

#[test]
fn ldpsw_sign_extends_both_words_into_x_registers() {
    let mut regs = Regs64::marked();
    regs.x[3] = 0x3000;
    let mut port = Port::with_values(&[(0x3008, 0xffff_fffe), (0x300c, 0x7fff_ffff)]);
    run(0x6941_0861, &mut regs, &mut port, 0x300c).unwrap(); // ldpsw x1, x2, [x3, #8]
    assert_eq!(regs.x[1], (-2i64) as u64);
    assert_eq!(regs.x[2], 0x7fff_ffff);
}

#[test]
fn big_endian_reverses_each_element_within_its_size() {
    let ctx = A64Context {
        pc: 0,
        far: 0x3000,
        big_endian: true,
    };
    let mut regs = Regs64::marked();
    regs.x[3] = 0x3000;
    let mut port = Port::with_values(&[(0x3000, 0x1122_3344), (0x3004, 0x5566_7788)]);
    emulate_a64(0x2940_0861, &ctx, &mut regs, &mut port).unwrap(); // ldp w1, w2, [x3]
    assert_eq!((regs.x[1], regs.x[2]), (0x4433_2211, 0x8877_6655));

    regs.x[1] = 0x0102;
    let mut port = Port::default();
    emulate_a64(0x7900_0061, &ctx, &mut regs, &mut port).unwrap(); // strh w1, [x3]
    assert_eq!(port.writes(), vec![(0x3000, 2, 0x0201)]);

    let mut port = Port::with_value(0x3000, 0x80);
    emulate_a64(0x3980_0061, &ctx, &mut regs, &mut port).unwrap(); // ldrsb x1, [x3]
    assert_eq!(
        regs.x[1], 0xffff_ffff_ffff_ff80,
        "a byte has no order to reverse"
    );
}

#[test]
fn failing_second_element_of_a_pair_leaves_registers_and_base_untouched() {
    let mut regs = Regs64::marked();
    regs.x[3] = 0x3000;
    let before = regs.clone();
    let mut port = Port {
        fail_at: Some(0x3018),
        ..Port::default()
    };
    // ldp x1, x2, [x3, #16]! (pre-index, writeback)
    let word = 0xa9c1_0861;
    let result = run(word, &mut regs, &mut port, 0x3010);
    assert_eq!(result, Err(Abort::Bus { address: 0x3018 }));
    assert_eq!(regs, before);
    assert_eq!(port.reads(), vec![(0x3010, 8)]);
}

#[test]
fn failing_store_leaves_the_base_unwritten() {
    let mut regs = Regs64::marked();
    regs.sp = 0x4_0010;
    let before = regs.clone();
    let mut port = Port {
        fail_at: Some(0x4_0000),
        ..Port::default()
    };
    let result = run(0xa9bf_7bfd, &mut regs, &mut port, 0x4_0000); // stp x29, x30, [sp, #-16]!
    assert_eq!(result, Err(Abort::Bus { address: 0x4_0000 }));
    assert_eq!(regs, before);
}

#[test]
fn address_not_covering_far_is_refused_before_any_access() {
    let mut regs = Regs64::marked();
    regs.x[2] = 0x9000;
    let before = regs.clone();
    let mut port = Port::default();
    let result = run(0xf940_0441, &mut regs, &mut port, 0x7000); // ldr x1, [x2, #8]
    assert_eq!(
        result,
        Err(Abort::AddressMismatch {
            computed: 0x9008,
            far: 0x7000
        })
    );
    assert!(port.log.is_empty());
    assert_eq!(regs, before);
}

#[test]
fn far_anywhere_inside_a_pair_or_only_differing_in_the_tag_byte_matches() {
    for far in [0x3010, 0x3017, 0x3018, 0x301f, 0x5600_0000_0000_3018] {
        let mut regs = Regs64::marked();
        regs.x[3] = 0x3000;
        let mut port = Port::default();
        let done = run(0xa941_0861, &mut regs, &mut port, far); // ldp x1, x2, [x3, #16]
        assert!(done.is_ok(), "far {far:#x}: {done:?}");
    }
    let mut regs = Regs64::marked();
    regs.x[3] = 0x3000;
    let done = run(0xa941_0861, &mut regs, &mut Port::default(), 0x3020);
    assert!(matches!(done, Err(Abort::AddressMismatch { .. })));
}

#[test]
fn literal_load_addresses_relative_to_the_instruction() {
    let mut regs = Regs64::marked();
    let mut port = Port::default();
    // ldr x1, .+8 at pc 0x8_0000
    let done = run(0x5800_0041, &mut regs, &mut port, 0x8_0008).unwrap();
    assert_eq!(done.address, 0x8_0008);
    assert_eq!(regs.x[1], DEFAULT_READ);
}

#[test]
fn not_emulated_instruction_makes_no_access() {
    let mut regs = Regs64::marked();
    let before = regs.clone();
    let mut port = Port::default();
    let result = run(0xc85f_7c41, &mut regs, &mut port, 0); // ldxr x1, [x2]
    assert_eq!(result, Err(Abort::NotEmulated(NotEmulated::Exclusive)));
    assert!(port.log.is_empty());
    assert_eq!(regs, before);
}
