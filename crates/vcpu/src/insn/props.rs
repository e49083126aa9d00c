//! Properties over arbitrary instruction words: the decoders never panic, and every word that
//! decodes as emulatable touches, against a fake device, exactly the addresses its
//! description names — computed here by an independent model of the addressing modes — and
//! changes no register but its transfer registers and (for writeback) its base.

use super::a64::{self, A64Access, Addressing, Extend, Offset, Reg};
use super::aarch32::{Aarch32Access, Offset32, PC, Shift};
use super::emulate::{A64Context, Aarch32Context, perform_a64, perform_aarch32};
use super::testutil::{Port, Regs32, Regs64};
use super::{Direction, a32, t32};
use proptest::prelude::*;

/// The model's value of a base or offset register.
fn model_x(regs: &Regs64, r: Reg) -> u64 {
    match r {
        Reg::X(n) => regs.x[usize::from(n)],
        Reg::Sp => regs.sp,
        Reg::Zr => 0,
    }
}

/// The model's first address and written-back base for an A64 access.
fn model_a64(access: &A64Access, regs: &Regs64, pc: u64) -> (u64, Option<(Reg, u64)>) {
    let add = |a: u64, b: i64| a.wrapping_add(b as u64);
    match access.addressing {
        Addressing::Offset { base, offset } => {
            let off = match offset {
                Offset::Imm(i) => i as u64,
                Offset::Reg { rm, extend, shift } => {
                    let v = model_x(regs, rm);
                    let v = match extend {
                        Extend::Uxtw => u64::from(v as u32),
                        Extend::Sxtw => i64::from(v as u32 as i32) as u64,
                        Extend::Uxtx | Extend::Sxtx => v,
                    };
                    v << shift
                }
            };
            (model_x(regs, base).wrapping_add(off), None)
        }
        Addressing::PreIndex { base, imm } => {
            let a = add(model_x(regs, base), imm);
            (a, Some((base, a)))
        }
        Addressing::PostIndex { base, imm } => {
            let a = model_x(regs, base);
            (a, Some((base, add(a, imm))))
        }
        Addressing::Literal { offset } => (add(pc, offset), None),
    }
}

fn a64_regs(values: &[u64; 32]) -> Regs64 {
    let mut regs = Regs64::default();
    regs.x.copy_from_slice(&values[..31]);
    regs.sp = values[31];
    regs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn a64_words_never_panic_and_emulation_touches_exactly_the_described_addresses(
        word: u32,
        values: [u64; 32],
        pc: u64,
        big_endian: bool,
    ) {
        let Ok(access) = a64::decode(word) else { return Ok(()) };
        let regs_before = a64_regs(&values);
        let mut regs = regs_before.clone();
        let (first, writeback) = model_a64(&access, &regs, pc);
        let size = u64::from(access.size);
        let expected: Vec<(u64, u8)> = (0..u64::from(access.elements()))
            .map(|i| (first.wrapping_add(i * size), access.size))
            .collect();
        let ctx = A64Context { pc, far: first, big_endian };
        let mut port = Port::default();
        let done = perform_a64(&access, &ctx, &mut regs, &mut port);
        prop_assert_eq!(done.map(|d| d.address), Ok(first));
        let seen: Vec<(u64, u8)> = port.log.iter().map(|s| (s.addr, s.size)).collect();
        prop_assert_eq!(seen, expected);
        prop_assert!(port.log.iter().all(|s| s.write == (access.direction == Direction::Store)));
        // Only the loaded registers and the base may change.
        let mut changeable = vec![];
        if access.direction == Direction::Load {
            changeable.extend([Some(access.rt), access.rt2].into_iter().flatten());
        }
        let mut model = regs_before.clone();
        if let Some((base, value)) = writeback {
            changeable.push(base);
            match base {
                Reg::X(n) => model.x[usize::from(n)] = value,
                Reg::Sp => model.sp = value,
                Reg::Zr => {}
            }
        }
        for n in 0..31u8 {
            if !changeable.contains(&Reg::X(n)) {
                prop_assert_eq!(regs.x[usize::from(n)], regs_before.x[usize::from(n)]);
            }
        }
        if writeback.is_some() {
            prop_assert_eq!(model_x(&regs, writeback.unwrap().0), model_x(&model, writeback.unwrap().0));
        } else {
            prop_assert_eq!(regs.sp, regs_before.sp);
        }
    }

    #[test]
    fn a32_words_never_panic_and_emulation_touches_exactly_the_described_addresses(
        word: u32,
        values: [u32; 15],
        pc: u32,
        big_endian: bool,
        carry: bool,
    ) {
        if let Ok(access) = a32::decode(word) {
            check_aarch32(&access, values, pc & !0b11, big_endian, carry)?;
        }
    }

    #[test]
    fn t32_halfwords_never_panic_and_emulation_touches_exactly_the_described_addresses(
        hw1: u16,
        hw2: u16,
        values: [u32; 15],
        pc: u32,
        big_endian: bool,
        carry: bool,
    ) {
        if let Ok(access) = t32::decode(hw1, hw2) {
            prop_assert_eq!(access.length, if t32::is_32bit(hw1) { 4 } else { 2 });
            check_aarch32(&access, values, pc & !0b1, big_endian, carry)?;
        }
    }
}

/// The model of an AArch32 access: address, writeback, the element list, and the registers
/// that may change.
fn check_aarch32(
    access: &Aarch32Access,
    values: [u32; 15],
    pc: u32,
    big_endian: bool,
    carry: bool,
) -> Result<(), TestCaseError> {
    let regs_before = Regs32 { r: values };
    let pc_read = pc.wrapping_add(match access.instr_set {
        super::aarch32::InstrSet::A32 => 8,
        super::aarch32::InstrSet::T32 => 4,
    });
    let base = if access.rn == PC {
        pc_read & !3
    } else {
        values[usize::from(access.rn)]
    };
    let offset = match access.offset {
        Offset32::Imm(i) => i,
        Offset32::Reg { rm, shift, amount } => {
            let v = values[usize::from(rm)];
            let n = u32::from(amount);
            match shift {
                Shift::Lsl => u32::try_from(u64::from(v) << n & 0xffff_ffff).unwrap(),
                Shift::Lsr => u32::try_from(u64::from(v) >> n).unwrap(),
                Shift::Asr => u32::try_from((i64::from(v as i32) >> n) & 0xffff_ffff).unwrap(),
                Shift::Ror => v.rotate_right(n),
                Shift::Rrx => (v >> 1) | (u32::from(carry) << 31),
            }
        }
    };
    let offset_addr = if access.add {
        base.wrapping_add(offset)
    } else {
        base.wrapping_sub(offset)
    };
    let address = if access.index { offset_addr } else { base };
    let expected: Vec<(u64, u8)> = match access.rt2 {
        Some(_) if address % 8 == 0 => vec![(u64::from(address), 8)],
        Some(_) => vec![
            (u64::from(address), 4),
            (u64::from(address.wrapping_add(4)), 4),
        ],
        None => vec![(u64::from(address), access.size)],
    };
    let ctx = Aarch32Context {
        pc,
        far: address,
        big_endian,
        carry,
    };
    let mut regs = regs_before.clone();
    let mut port = Port::default();
    let done = perform_aarch32(access, &ctx, &mut regs, &mut port);
    prop_assert_eq!(done.map(|d| d.address), Ok(u64::from(address)));
    let seen: Vec<(u64, u8)> = port.log.iter().map(|s| (s.addr, s.size)).collect();
    prop_assert_eq!(seen, expected);
    let mut changeable = vec![];
    if access.direction == Direction::Load {
        changeable.extend([Some(access.rt), access.rt2].into_iter().flatten());
    }
    if access.wback {
        prop_assert_eq!(regs.r[usize::from(access.rn)], offset_addr);
        changeable.push(access.rn);
    }
    for n in 0..15u8 {
        if !changeable.contains(&n) {
            prop_assert_eq!(regs.r[usize::from(n)], values[usize::from(n)]);
        }
    }
    Ok(())
}
