//! Emulation of a decoded load or store against the guest's registers and a device.
//!
//! The order is the pseudocode's, with one Moat rule on top so that a failed access has no
//! visible effect on the registers: compute the address from the registers (never from
//! `FAR_EL2`), check that the faulting address lies inside the access (else the word in memory
//! is not what faulted), perform the element accesses in architectural order, and only when
//! every one completed write the loaded registers and then the base (`if wback then X[n] =
//! address`). A failed element makes the whole instruction abort: registers and base keep
//! their values, as when the hardware takes a synchronous external abort on that element.
//!
//! Data endianness: a big-endian guest (`SCTLR_EL1.EE` at EL1, `SCTLR_EL1.E0E` at EL0,
//! `PSTATE.E` in AArch32) sees each element byte-reversed within its size
//! (`BigEndianReverse()` in `Mem[]`). Port values are bus data in little-endian lane order:
//! the byte at `addr` is bits `[7:0]`.

use super::a64::{self, A64Access, Addressing, Extend, Offset, Reg, RegWidth};
use super::aarch32::{self, Aarch32Access, Offset32, PC};
use super::{Direction, NotEmulated, a32, bytes_mask, reverse_bytes, sign_extend, t32};

/// The guest's AArch64 general-purpose registers and current stack pointer.
///
/// The emulator resolves `XZR` itself: implementations only see [`Reg::X`] (0..=30) and
/// [`Reg::Sp`] (the SP of the exception level and `PSTATE.SP` the guest trapped from).
pub trait GuestRegs {
    /// The value of `r`.
    fn read(&self, r: Reg) -> u64;
    /// Sets `r` to `value`.
    fn write(&mut self, r: Reg, value: u64);
}

/// The guest's AArch32 registers `R0`..`R14` of its current mode (the caller maps them to
/// their AArch64 homes, `moat_arm::banked::aarch64_home`). The emulator resolves the PC
/// itself and never passes 15.
pub trait GuestRegs32 {
    /// The value of `R<r>`.
    fn read(&self, r: u8) -> u32;
    /// Sets `R<r>` to `value`.
    fn write(&mut self, r: u8, value: u32);
}

/// The device did not complete an access (a decode error on the bus or a device's refusal):
/// the guest gets a synchronous external abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusError;

/// The device behind the faulting address. Addresses are the guest virtual addresses the
/// instruction computes; the implementation maps them to the device (the faulting page's IPA
/// is in `HPFAR_EL2`; an element on another page needs its own translation or a
/// [`BusError`]).
pub trait DevicePort {
    /// Reads `size` bytes (1, 2, 4 or 8) at `addr`.
    ///
    /// # Errors
    ///
    /// [`BusError`] when the access cannot complete.
    fn read(&mut self, addr: u64, size: u8) -> Result<u64, BusError>;
    /// Writes the low `size` bytes of `value` at `addr`.
    ///
    /// # Errors
    ///
    /// [`BusError`] when the access cannot complete.
    fn write(&mut self, addr: u64, size: u8, value: u64) -> Result<(), BusError>;
}

/// A completed emulation: registers and the device are updated; the caller advances the PC by
/// `length`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completed {
    /// The address of the first element, as computed from the registers.
    pub address: u64,
    /// The instruction's length in bytes (4, or 2 for a 16-bit T32 instruction). `ESR_ELx.IL`
    /// cannot say: it is 1 for every data abort without a valid syndrome.
    pub length: u8,
}

/// Why the instruction was not performed. In every case the guest's registers are unchanged
/// and Moat injects a synchronous external abort at the faulting instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abort {
    /// The instruction is not one Moat emulates.
    NotEmulated(NotEmulated),
    /// The address computed from the registers does not cover the faulting address: the guest
    /// changed the instruction or its translation since the fault. No access was made.
    AddressMismatch {
        /// The first element's address from the registers.
        computed: u64,
        /// The faulting virtual address (`FAR_EL2`).
        far: u64,
    },
    /// The device did not complete the element at `address`; the elements before it were
    /// performed (a device cannot take them back), nothing was written to registers.
    Bus {
        /// The element's address.
        address: u64,
    },
}

impl From<NotEmulated> for Abort {
    fn from(reason: NotEmulated) -> Self {
        Self::NotEmulated(reason)
    }
}

/// The trap state an AArch64 emulation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct A64Context {
    /// The faulting instruction's address (`ELR_EL2`).
    pub pc: u64,
    /// The faulting virtual address (`FAR_EL2`).
    pub far: u64,
    /// Big-endian data accesses (`SCTLR_EL1.EE`, or `E0E` at EL0).
    pub big_endian: bool,
}

/// The trap state an AArch32 emulation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aarch32Context {
    /// The faulting instruction's address (`ELR_EL2[31:0]`).
    pub pc: u32,
    /// The faulting virtual address (`FAR_EL2[31:0]`).
    pub far: u32,
    /// Big-endian data accesses (`PSTATE.E`).
    pub big_endian: bool,
    /// `PSTATE.C`, which an `RRX` register offset shifts in.
    pub carry: bool,
}

/// The element accesses of one instruction: `count` elements of `size` bytes from `first`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elements {
    /// The first element's address.
    pub first: u64,
    /// Bytes per element.
    pub size: u8,
    /// 1 or 2.
    pub count: u8,
    /// Addresses wrap at 2^32 (AArch32) rather than 2^64.
    pub wrap32: bool,
}

/// Address bits compared with `FAR_EL2` for AArch64: [55:0], since with top-byte-ignore the
/// tag in bits `[63:56]` need not reach the FAR, and bit 55 still selects the translation regime
/// half.
const A64_COMPARED_BITS: u64 = (1 << 56) - 1;

impl Elements {
    /// The address of element `i`.
    #[must_use]
    pub fn address(&self, i: u8) -> u64 {
        let a = self.first.wrapping_add(u64::from(i) * u64::from(self.size));
        if self.wrap32 {
            a & u64::from(u32::MAX)
        } else {
            a
        }
    }

    /// Whether `far` is one of the bytes the elements access.
    #[must_use]
    pub fn contains(&self, far: u64) -> bool {
        let total = u64::from(self.size) * u64::from(self.count);
        let mask = if self.wrap32 {
            u64::from(u32::MAX)
        } else {
            A64_COMPARED_BITS
        };
        (far.wrapping_sub(self.first) & mask) < total
    }
}

/// Decodes and performs the AArch64 instruction `insn` that took a data abort without a
/// valid syndrome.
///
/// # Errors
///
/// [`Abort`]: the guest gets a synchronous external abort and its registers are unchanged.
pub fn emulate_a64(
    insn: u32,
    ctx: &A64Context,
    regs: &mut impl GuestRegs,
    port: &mut impl DevicePort,
) -> Result<Completed, Abort> {
    let access = a64::decode(insn)?;
    perform_a64(&access, ctx, regs, port)
}

/// Performs a decoded AArch64 access (see [`emulate_a64`]).
///
/// # Errors
///
/// [`Abort`] when the computed address misses `FAR_EL2` or an element fails.
pub fn perform_a64(
    access: &A64Access,
    ctx: &A64Context,
    regs: &mut impl GuestRegs,
    port: &mut impl DevicePort,
) -> Result<Completed, Abort> {
    let elements = a64_elements(access, regs, ctx.pc);
    if !elements.contains(ctx.far) {
        return Err(Abort::AddressMismatch {
            computed: elements.first,
            far: ctx.far,
        });
    }
    let writeback = a64_writeback(access, regs);
    let rts = [Some(access.rt), access.rt2];
    match access.direction {
        Direction::Store => {
            // STR/STP: data = X[t, datasize] (both read before any writeback).
            let data = rts.map(|rt| rt.map_or(0, |r| read_x(regs, r)));
            store(port, &elements, &data, ctx.big_endian)?;
        }
        Direction::Load => {
            let data = load(port, &elements, ctx.big_endian)?;
            for (rt, raw) in rts.into_iter().zip(data) {
                if let Some(Reg::X(n)) = rt {
                    regs.write(Reg::X(n), extend_a64(access, raw));
                }
            }
        }
    }
    if let Some((base, address)) = writeback {
        regs.write(base, address);
    }
    Ok(Completed {
        address: elements.first,
        length: 4,
    })
}

/// The elements `access` touches with the guest's current registers.
#[must_use]
pub fn a64_elements(access: &A64Access, regs: &impl GuestRegs, pc: u64) -> Elements {
    let first = match access.addressing {
        Addressing::Offset { base, offset } => {
            read_x(regs, base).wrapping_add(offset_value(regs, offset))
        }
        // LDR (immediate, pre-index): address = X[n] + offset.
        Addressing::PreIndex { base, imm } => read_x(regs, base).wrapping_add_signed(imm),
        // LDR (immediate, post-index): address = X[n]; the offset is added at writeback.
        Addressing::PostIndex { base, .. } => read_x(regs, base),
        Addressing::Literal { offset } => pc.wrapping_add_signed(offset),
    };
    Elements {
        first,
        size: access.size,
        count: access.elements(),
        wrap32: false,
    }
}

/// The base register and the value written back to it, if the addressing mode writes back.
fn a64_writeback(access: &A64Access, regs: &impl GuestRegs) -> Option<(Reg, u64)> {
    match access.addressing {
        Addressing::PreIndex { base, imm } | Addressing::PostIndex { base, imm } => {
            Some((base, read_x(regs, base).wrapping_add_signed(imm)))
        }
        Addressing::Offset { .. } | Addressing::Literal { .. } => None,
    }
}

/// `ExtendReg(m, extend_type, shift)` or the immediate.
fn offset_value(regs: &impl GuestRegs, offset: Offset) -> u64 {
    match offset {
        Offset::Imm(imm) => imm as u64, // Two's complement: added with wrapping.
        Offset::Reg { rm, extend, shift } => {
            let value = read_x(regs, rm);
            let low32 = value & u64::from(u32::MAX);
            let extended = match extend {
                Extend::Uxtw => low32,
                Extend::Sxtw => sign_extend(low32, 32) as u64,
                Extend::Uxtx | Extend::Sxtx => value,
            };
            extended << shift
        }
    }
}

/// `X[r]`, with `XZR` reading as zero.
fn read_x(regs: &impl GuestRegs, r: Reg) -> u64 {
    match r {
        Reg::Zr => 0,
        _ => regs.read(r),
    }
}

/// The register value of a loaded element: `X[t, 64] = ZeroExtend(data, 64)`, or
/// `X[t, regsize] = SignExtend(data, regsize)` where a 32-bit write clears bits [63:32].
fn extend_a64(access: &A64Access, data: u64) -> u64 {
    let bits = 8 * u32::from(access.size);
    let value = if access.signed {
        sign_extend(data, bits) as u64
    } else {
        data
    };
    match access.width {
        RegWidth::X => value,
        RegWidth::W => value & u64::from(u32::MAX),
    }
}

/// Writes each element in order, byte-reversed for a big-endian guest.
fn store(
    port: &mut impl DevicePort,
    elements: &Elements,
    data: &[u64],
    big_endian: bool,
) -> Result<(), Abort> {
    for (i, &value) in (0..elements.count).zip(data) {
        let address = elements.address(i);
        let value = to_bus(value, elements.size, big_endian);
        port.write(address, elements.size, value)
            .map_err(|BusError| Abort::Bus { address })?;
    }
    Ok(())
}

/// Reads each element in order; the values are in register order (reversed for big-endian).
fn load(
    port: &mut impl DevicePort,
    elements: &Elements,
    big_endian: bool,
) -> Result<[u64; 2], Abort> {
    let mut data = [0; 2];
    for (i, slot) in (0..elements.count).zip(&mut data) {
        let address = elements.address(i);
        let value = port
            .read(address, elements.size)
            .map_err(|BusError| Abort::Bus { address })?;
        *slot = to_bus(value, elements.size, big_endian);
    }
    Ok(data)
}

/// Converts between register order and bus order (the conversion is its own inverse).
fn to_bus(value: u64, size: u8, big_endian: bool) -> u64 {
    if big_endian {
        reverse_bytes(value, size)
    } else {
        value & bytes_mask(size)
    }
}

/// Decodes and performs the A32 instruction `insn`.
///
/// # Errors
///
/// [`Abort`]: the guest gets a synchronous external abort and its registers are unchanged.
pub fn emulate_a32(
    insn: u32,
    ctx: &Aarch32Context,
    regs: &mut impl GuestRegs32,
    port: &mut impl DevicePort,
) -> Result<Completed, Abort> {
    let access = a32::decode(insn)?;
    perform_aarch32(&access, ctx, regs, port)
}

/// Decodes and performs the T32 instruction whose first halfword is `hw1` (and second `hw2`,
/// ignored for a 16-bit instruction: see [`t32::is_32bit`]).
///
/// # Errors
///
/// [`Abort`]: the guest gets a synchronous external abort and its registers are unchanged.
pub fn emulate_t32(
    hw1: u16,
    hw2: u16,
    ctx: &Aarch32Context,
    regs: &mut impl GuestRegs32,
    port: &mut impl DevicePort,
) -> Result<Completed, Abort> {
    let access = t32::decode(hw1, hw2)?;
    perform_aarch32(&access, ctx, regs, port)
}

/// Performs a decoded AArch32 access (see [`emulate_a32`]).
///
/// # Errors
///
/// [`Abort`] when the computed address misses `FAR_EL2` or an element fails.
pub fn perform_aarch32(
    access: &Aarch32Access,
    ctx: &Aarch32Context,
    regs: &mut impl GuestRegs32,
    port: &mut impl DevicePort,
) -> Result<Completed, Abort> {
    let (elements, offset_addr) = aarch32_elements(access, regs, ctx);
    if !elements.contains(u64::from(ctx.far)) {
        return Err(Abort::AddressMismatch {
            computed: elements.first,
            far: u64::from(ctx.far),
        });
    }
    let pc_read = ctx.pc.wrapping_add(access.instr_set.pc_offset());
    let read_r = |r: u8| if r == PC { pc_read } else { regs.read(r) };
    let rt = read_r(access.rt);
    let rt2 = access.rt2.map(read_r);
    match access.direction {
        Direction::Store => {
            let data = match rt2 {
                // STRD (aligned): MemA[address, 8] = if BigEndian() then R[t]:R[t2] else
                // R[t2]:R[t]; as register order in one 8-byte element.
                Some(rt2) if elements.count == 1 => [dual_value(rt, rt2, ctx.big_endian), 0],
                Some(rt2) => [u64::from(rt), u64::from(rt2)],
                None => [u64::from(rt), 0],
            };
            store(port, &elements, &data, ctx.big_endian)?;
        }
        Direction::Load => {
            let data = load(port, &elements, ctx.big_endian)?;
            let (first, second) = match access.rt2 {
                Some(_) if elements.count == 1 => split_dual(data[0], ctx.big_endian),
                _ => (data[0], data[1]),
            };
            regs.write(access.rt, extend_a32(access, first));
            if let Some(t2) = access.rt2 {
                regs.write(t2, extend_a32(access, second));
            }
        }
    }
    if access.wback {
        regs.write(access.rn, offset_addr);
    }
    Ok(Completed {
        address: elements.first,
        length: access.length,
    })
}

/// The elements `access` touches, and its `offset_addr` (the writeback value):
/// `offset_addr = if add then R[n] + offset else R[n] - offset; address = if index then
/// offset_addr else R[n]`. An `LDRD`/`STRD` whose address is doubleword-aligned is one 8-byte
/// access (`if address == Align(address, 8) then MemA[address, 8]`), else two word accesses.
#[must_use]
pub fn aarch32_elements(
    access: &Aarch32Access,
    regs: &impl GuestRegs32,
    ctx: &Aarch32Context,
) -> (Elements, u32) {
    let pc_read = ctx.pc.wrapping_add(access.instr_set.pc_offset());
    // PC as the base: Align(PC, 4) (the literal forms; a no-op for A32's aligned PC).
    let base = if access.rn == PC {
        pc_read & !0b11
    } else {
        regs.read(access.rn)
    };
    let offset = match access.offset {
        Offset32::Imm(imm) => imm,
        Offset32::Reg { rm, shift, amount } => {
            aarch32::shift(regs.read(rm), shift, amount, ctx.carry)
        }
    };
    let offset_addr = if access.add {
        base.wrapping_add(offset)
    } else {
        base.wrapping_sub(offset)
    };
    let address = if access.index { offset_addr } else { base };
    let (size, count) = match access.rt2 {
        Some(_) if address % 8 == 0 => (8, 1),
        Some(_) => (4, 2),
        None => (access.size, 1),
    };
    let elements = Elements {
        first: u64::from(address),
        size,
        count,
        wrap32: true,
    };
    (elements, offset_addr)
}

/// `R[t]`/`R[t2]` as one 8-byte element in register order (`to_bus` byte-reverses it whole
/// for a big-endian guest).
fn dual_value(rt: u32, rt2: u32, big_endian: bool) -> u64 {
    let (high, low) = if big_endian { (rt, rt2) } else { (rt2, rt) };
    (u64::from(high) << 32) | u64::from(low)
}

/// LDRD (aligned): `if BigEndian() then R[t] = data<63:32>; R[t2] = data<31:0> else R[t] =
/// data<31:0>; R[t2] = data<63:32>`.
fn split_dual(data: u64, big_endian: bool) -> (u64, u64) {
    let (high, low) = (data >> 32, data & u64::from(u32::MAX));
    if big_endian { (high, low) } else { (low, high) }
}

/// `R[t] = ZeroExtend(data, 32)` or `SignExtend(data, 32)`.
fn extend_a32(access: &Aarch32Access, data: u64) -> u32 {
    let value = if access.signed {
        sign_extend(data, 8 * u32::from(access.size)) as u64
    } else {
        data
    };
    // Truncation intended: an AArch32 register holds 32 bits.
    value as u32
}
