//! MMIO accesses decoded from a data abort's instruction syndrome (`ESR_EL2.ISV` = 1), and
//! their completion into the guest's registers.
//!
//! With `ISV` = 1 the syndrome says everything a single load or store needs: `SAS` (size),
//! `SSE` (sign-extend), `SRT` (register), `SF` (64-bit register) and `WnR` (direction). The
//! access for the device model is built from those fields and the guest's registers; a read's
//! data is written back following the pseudocode of the load (`X[t] = SignExtend/ZeroExtend(
//! data, regsize)`). Accesses with `ISV` = 0 need the instruction itself (a later module).

use crate::frame::TrapFrame;
use moat_arm::esr::DataAbortIss;

/// A data access decoded from a valid instruction syndrome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyndromeAccess {
    /// Access size in bytes (`SAS`): 1, 2, 4 or 8.
    pub size: u8,
    /// The value a store writes (already truncated to `size`), or `None` for a load.
    pub write: Option<u64>,
    /// `SRT`: the transfer register (31 is `XZR`/`WZR` for data transfers).
    pub register: u8,
    /// `SSE`: sign-extend the loaded value.
    pub sign_extend: bool,
    /// `SF`: the destination is a 64-bit `X` register; otherwise a `W` register whose upper
    /// 32 bits the load clears.
    pub sixty_four: bool,
}

/// The access described by `iss`, or `None` when the syndrome holds no valid instruction
/// syndrome (`ISV` = 0).
#[must_use]
pub fn decode_syndrome_access(iss: &DataAbortIss, frame: &TrapFrame) -> Option<SyndromeAccess> {
    if !iss.isv {
        return None;
    }
    let size = iss.sas.bytes();
    let write = iss.wnr.then(|| frame.reg(iss.srt) & size_mask(size));
    Some(SyndromeAccess {
        size,
        write,
        register: iss.srt,
        sign_extend: iss.sse,
        sixty_four: iss.sf,
    })
}

/// A mask of `size` bytes.
#[must_use]
pub const fn size_mask(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * size as u32)) - 1
    }
}

/// Writes a load's `data` into its register: sign- or zero-extended from the access size to
/// the register size, a 32-bit register's upper half cleared.
pub fn complete_load(frame: &mut TrapFrame, access: &SyndromeAccess, data: u64) {
    // The access's bytes moved to the top of the register, then back down: arithmetically
    // (replicating the access's sign bit) or logically (the bits above it cleared). `size` is
    // 1, 2, 4 or 8, so the shift is 56, 48, 32 or 0, never 64.
    let shift = 64 - 8 * u32::from(access.size);
    let top = data << shift;
    let extended = if access.sign_extend {
        // Reinterpretation intended: an arithmetic shift replicates the access's sign bit.
        ((top as i64) >> shift) as u64
    } else {
        top >> shift
    };
    let value = if access.sixty_four {
        extended
    } else {
        extended & 0xFFFF_FFFF
    };
    frame.set_reg(access.register, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use moat_arm::esr::Esr;
    use moat_arm::esr::Syndrome;

    fn iss(esr: u64) -> DataAbortIss {
        match Esr::new(esr).decode() {
            Syndrome::DataAbortLower(iss) => iss,
            other => panic!("not a lower-EL data abort: {other:?}"),
        }
    }

    // ESR_EL2 = EC 0x24, IL=1, ISV=1, SAS=word, SRT=2, WnR=1, DFSC=translation level 3.
    const STR_W2: u64 = 0x9382_0047;
    // ESR_EL2 = EC 0x24, IL=1, ISV=1, SAS=byte, SSE=1, SRT=5, SF=1, DFSC=translation level 3.
    const LDRSB_X5: u64 = 0x9125_8007;
    // ESR_EL2 = EC 0x24, IL=1, ISV=1, SAS=halfword, SSE=1, SRT=7, SF=0: LDRSH W7.
    const LDRSH_W7: u64 = 0x9167_0007;

    #[test]
    fn store_takes_the_value_of_srt_truncated_to_the_access_size() {
        let mut frame = TrapFrame::default();
        frame.x[2] = 0xdead_beef_cafe_f00d;
        let access = decode_syndrome_access(&iss(STR_W2), &frame).unwrap();
        assert_eq!(access.size, 4);
        assert_eq!(access.write, Some(0xcafe_f00d));
    }

    #[test]
    fn store_from_register_31_writes_zero() {
        let frame = TrapFrame::default();
        let esr = STR_W2 | (31 << 16);
        let access = decode_syndrome_access(&iss(esr), &frame).unwrap();
        assert_eq!(access.write, Some(0));
    }

    #[test]
    fn signed_byte_load_into_x_register_sign_extends_to_64_bits() {
        let mut frame = TrapFrame::default();
        let access = decode_syndrome_access(&iss(LDRSB_X5), &frame).unwrap();
        assert_eq!(access.write, None);
        complete_load(&mut frame, &access, 0x80);
        assert_eq!(frame.x[5], 0xffff_ffff_ffff_ff80);
    }

    #[test]
    fn signed_halfword_load_into_w_register_clears_the_upper_half() {
        let mut frame = TrapFrame::default();
        frame.x[7] = u64::MAX;
        let access = decode_syndrome_access(&iss(LDRSH_W7), &frame).unwrap();
        complete_load(&mut frame, &access, 0x8001);
        assert_eq!(frame.x[7], 0x0000_0000_ffff_8001);
    }

    #[test]
    fn unsigned_load_zero_extends_and_ignores_device_bits_beyond_the_size() {
        let mut frame = TrapFrame::default();
        let esr = 0x9383_0007; // ISV, SAS=word, SRT=3, SF=0, load
        let access = decode_syndrome_access(&iss(esr), &frame).unwrap();
        complete_load(&mut frame, &access, 0x1_8000_0000);
        assert_eq!(frame.x[3], 0x8000_0000);
    }

    proptest::proptest! {
        /// Every size, extension and register width against the definition: the value cut to
        /// the access size, sign- or zero-extended, cut again to a W register.
        #[test]
        fn a_load_is_extended_as_its_syndrome_says(
            data: u64,
            sas in 0u8..4,
            sign_extend: bool,
            sixty_four: bool,
            register in 0u8..32,
        ) {
            let size = 1u8 << sas;
            let access = SyndromeAccess { size, write: None, register, sign_extend, sixty_four };
            let mut frame = TrapFrame { x: [0x5a5a; 31], ..TrapFrame::default() };
            complete_load(&mut frame, &access, data);
            let bits = 8 * u32::from(size);
            let cut = data & size_mask(size);
            let sign = bits < 64 && cut >> (bits - 1) & 1 == 1;
            let extended = if sign_extend && sign { cut | !size_mask(size) } else { cut };
            let want = if sixty_four { extended } else { extended & 0xFFFF_FFFF };
            if register < 31 {
                proptest::prop_assert_eq!(frame.x[usize::from(register)], want);
            } else {
                proptest::prop_assert!(frame.x.iter().all(|&x| x == 0x5a5a));
            }
        }
    }

    #[test]
    fn no_instruction_syndrome_means_no_access() {
        let frame = TrapFrame::default();
        assert_eq!(decode_syndrome_access(&iss(0x9200_0007), &frame), None);
    }
}
