//! The A64, A32 and T32 load/store decoders and their emulation, against fake registers and a
//! fake device port. For any instruction word, registers, PC, FAR and device behaviour:
//! decoding never panics; an emulation at the address the registers compute touches exactly
//! the elements the decoded access describes (addresses, sizes, count, direction) — all of
//! them unless the device refuses one, then none after it; an abort leaves every register as
//! it was; a completion changes only the loaded registers and the written-back base, and
//! reports the instruction's length (2 only for a 16-bit T32 instruction).
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use moat_vcpu::insn::a64::{self, Addressing, Reg};
use moat_vcpu::insn::emulate::{
    A64Context, Aarch32Context, Abort, BusError, DevicePort, Elements, GuestRegs, GuestRegs32,
    a64_elements, aarch32_elements, perform_a64, perform_aarch32,
};
use moat_vcpu::insn::{Direction, a32, emulate_a32, emulate_a64, emulate_t32, t32};

/// `X0`..`X30` and `SP`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Regs64 {
    x: [u64; 31],
    sp: u64,
}

impl GuestRegs for Regs64 {
    fn read(&self, r: Reg) -> u64 {
        match r {
            Reg::X(n) => self.x[usize::from(n)],
            Reg::Sp => self.sp,
            Reg::Zr => panic!("the emulator asked its registers for XZR"),
        }
    }
    fn write(&mut self, r: Reg, value: u64) {
        match r {
            Reg::X(n) => self.x[usize::from(n)] = value,
            Reg::Sp => self.sp = value,
            Reg::Zr => panic!("the emulator wrote XZR"),
        }
    }
}

/// `R0`..`R14`: the emulator must never ask for the PC (15).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Regs32([u32; 15]);

impl GuestRegs32 for Regs32 {
    fn read(&self, r: u8) -> u32 {
        self.0[usize::from(r)]
    }
    fn write(&mut self, r: u8, value: u32) {
        self.0[usize::from(r)] = value;
    }
}

/// A device that logs every access, answers reads with a value derived from the address, and
/// refuses the access numbered `fail_at`.
struct Port {
    log: Vec<(u64, u8, bool)>,
    fail_at: Option<usize>,
    seed: u64,
}

impl Port {
    fn access(&mut self, addr: u64, size: u8, write: bool) -> Result<(), BusError> {
        assert!(matches!(size, 1 | 2 | 4 | 8), "access of {size} bytes");
        let n = self.log.len();
        self.log.push((addr, size, write));
        if self.fail_at == Some(n) {
            Err(BusError)
        } else {
            Ok(())
        }
    }
}

impl DevicePort for Port {
    fn read(&mut self, addr: u64, size: u8) -> Result<u64, BusError> {
        self.access(addr, size, false)?;
        Ok(addr.rotate_left(13) ^ self.seed)
    }
    fn write(&mut self, addr: u64, size: u8, _value: u64) -> Result<(), BusError> {
        self.access(addr, size, true)
    }
}

/// What the port saw against the described elements.
fn check_accesses(port: &Port, elements: &Elements, direction: Direction, done: bool) {
    let expected: Vec<(u64, u8, bool)> = (0..elements.count)
        .map(|i| {
            (
                elements.address(i),
                elements.size,
                direction == Direction::Store,
            )
        })
        .collect();
    match port.fail_at {
        Some(k) if !done => {
            assert!(k < expected.len(), "bus error beyond the elements");
            assert_eq!(port.log, expected[..=k], "accesses up to the refused one");
        }
        _ => assert_eq!(port.log, expected, "accesses of a completed emulation"),
    }
}

fn a64_case(u: &mut Unstructured<'_>, word: u32) -> Result<()> {
    let Ok(access) = a64::decode(word) else {
        return Ok(());
    };
    let before = Regs64 {
        x: u.arbitrary()?,
        sp: u.arbitrary()?,
    };
    let pc: u64 = u.arbitrary()?;
    let elements = a64_elements(&access, &before, pc);
    let far = if u.arbitrary()? {
        u.arbitrary()?
    } else {
        elements.address(u.int_in_range(0..=1)?)
    };
    let ctx = A64Context {
        pc,
        far,
        big_endian: u.arbitrary()?,
    };
    let mut port = Port {
        log: vec![],
        fail_at: u.arbitrary::<Option<u8>>()?.map(usize::from),
        seed: u.arbitrary()?,
    };
    let mut regs = before.clone();
    let outcome = perform_a64(&access, &ctx, &mut regs, &mut port);
    // The whole path (decode, then perform) gives the same.
    let mut regs2 = before.clone();
    let mut port2 = Port {
        log: vec![],
        fail_at: port.fail_at,
        seed: port.seed,
    };
    assert_eq!(emulate_a64(word, &ctx, &mut regs2, &mut port2), outcome);
    match outcome {
        Err(Abort::AddressMismatch { computed, .. }) => {
            assert!(!elements.contains(far) && computed == elements.first);
            assert!(port.log.is_empty(), "an access despite the mismatch");
            assert_eq!(regs, before);
        }
        Err(Abort::Bus { address }) => {
            check_accesses(&port, &elements, access.direction, false);
            assert_eq!(port.log.last().map(|a| a.0), Some(address));
            assert_eq!(regs, before, "registers changed by an aborted emulation");
        }
        Err(Abort::NotEmulated(_)) => panic!("perform refused a decoded access"),
        Ok(done) => {
            assert!(elements.contains(far));
            assert_eq!((done.address, done.length), (elements.first, 4));
            check_accesses(&port, &elements, access.direction, true);
            let mut changeable = vec![];
            if access.direction == Direction::Load {
                changeable.extend([Some(access.rt), access.rt2].into_iter().flatten());
            }
            if let Addressing::PreIndex { base, .. } | Addressing::PostIndex { base, .. } =
                access.addressing
            {
                changeable.push(base);
            }
            for n in 0..31u8 {
                if !changeable.contains(&Reg::X(n)) {
                    assert_eq!(
                        regs.x[usize::from(n)],
                        before.x[usize::from(n)],
                        "X{n} changed"
                    );
                }
            }
            if !changeable.contains(&Reg::Sp) {
                assert_eq!(regs.sp, before.sp, "SP changed");
            }
        }
    }
    Ok(())
}

fn aarch32_case(u: &mut Unstructured<'_>, word: u32, thumb: bool) -> Result<()> {
    let (hw1, hw2) = ((word & 0xFFFF) as u16, (word >> 16) as u16);
    let decoded = if thumb {
        t32::decode(hw1, hw2)
    } else {
        a32::decode(word)
    };
    let Ok(access) = decoded else {
        return Ok(());
    };
    let expected_length = if thumb && !t32::is_32bit(hw1) { 2 } else { 4 };
    assert_eq!(access.length, expected_length, "length of {word:#x}");
    let before = Regs32(u.arbitrary()?);
    let align = if thumb { !1 } else { !3 };
    let pc = u.arbitrary::<u32>()? & align;
    let mut ctx = Aarch32Context {
        pc,
        far: 0,
        big_endian: u.arbitrary()?,
        carry: u.arbitrary()?,
    };
    let (elements, _) = aarch32_elements(&access, &before, &ctx);
    ctx.far = if u.arbitrary()? {
        u.arbitrary()?
    } else {
        elements.address(u.int_in_range(0..=1)?) as u32
    };
    let mut port = Port {
        log: vec![],
        fail_at: u.arbitrary::<Option<u8>>()?.map(usize::from),
        seed: u.arbitrary()?,
    };
    let mut regs = before.clone();
    let outcome = perform_aarch32(&access, &ctx, &mut regs, &mut port);
    let mut regs2 = before.clone();
    let mut port2 = Port {
        log: vec![],
        fail_at: port.fail_at,
        seed: port.seed,
    };
    let again = if thumb {
        emulate_t32(hw1, hw2, &ctx, &mut regs2, &mut port2)
    } else {
        emulate_a32(word, &ctx, &mut regs2, &mut port2)
    };
    assert_eq!(again, outcome);
    match outcome {
        Err(Abort::AddressMismatch { .. }) => {
            assert!(port.log.is_empty());
            assert_eq!(regs, before);
        }
        Err(Abort::Bus { .. }) => {
            check_accesses(&port, &elements, access.direction, false);
            assert_eq!(regs, before, "registers changed by an aborted emulation");
        }
        Err(Abort::NotEmulated(_)) => panic!("perform refused a decoded access"),
        Ok(done) => {
            assert!(elements.contains(u64::from(ctx.far)));
            assert!(elements.address(0) < 1 << 32 && elements.address(1) < 1 << 32);
            assert_eq!(
                (done.address, done.length),
                (elements.first, expected_length)
            );
            check_accesses(&port, &elements, access.direction, true);
            for n in 0..15u8 {
                let loaded = access.direction == Direction::Load
                    && (n == access.rt || Some(n) == access.rt2);
                if !loaded && !(access.wback && n == access.rn) {
                    assert_eq!(
                        regs.0[usize::from(n)],
                        before.0[usize::from(n)],
                        "R{n} changed"
                    );
                }
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(which) = u.int_in_range(0u8..=2) else {
        return;
    };
    let Ok(word) = u.arbitrary::<u32>() else {
        return;
    };
    let _ = match which {
        0 => a64_case(&mut u, word),
        1 => aarch32_case(&mut u, word, false),
        _ => aarch32_case(&mut u, word, true),
    };
});
