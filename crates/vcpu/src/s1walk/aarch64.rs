//! The AArch64 EL1&0 stage-1 walk (VMSAv8-64): region selection and the checks made before
//! any descriptor is read (`AArch64.S1Translate()`, `AArch64.VAIsOutOfRange()`), then the
//! long-descriptor lookup; with the MMU off, `AArch64.TranslateAddressS1Off()`.

use super::granule::Granule;
use super::long::LongWalk;
use super::regs::tcr_el1::{self, TcrHalf};
use super::{
    FaultKind, GuestMemory, Stage1Regs, Trace, WalkReport, out_of_range, pa_bits, untranslated,
};
use moat_arm::addr::Va;
use moat_arm::field::Field;
use moat_arm::fsc::Level;
use moat_arm::parange::PaRange;
use moat_arm::sysreg::sctlr_el1;

/// The kind of access being translated: `TCR_EL1.TBIDn` makes the top byte count again for
/// instruction fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// A load, store, cache maintenance or `AT`.
    Data,
    /// An instruction fetch.
    InstructionFetch,
}

/// The smallest `TxSZ` without FEAT_LVA (a 48-bit input address).
const MIN_TXSZ: u64 = 16;
/// The largest `TxSZ` without FEAT_TTST (a 25-bit input address).
const MAX_TXSZ: u64 = 39;
/// `VA<55>` selects the region in the EL1&0 regime (`AArch64.GetVARange()`).
const VA_RANGE_SELECT: Field = Field::bit(55);
/// The top address bit when the top byte is ignored (`AArch64.AddrTop()`).
const TOP_WITH_TBI: u32 = 55;
/// The top address bit otherwise.
const TOP_WITHOUT_TBI: u32 = 63;

/// Walks the guest's AArch64 stage-1 tables for `va`, on a machine whose PARange is `p`
/// (the PARange Moat shows the guest).
///
/// With `SCTLR_EL1.M` = 1 the PA size is min(`TCR_EL1.IPS`, `p`): an IPS above the
/// implemented size behaves as the implemented size. With `SCTLR_EL1.M` = 0 the IPA is the VA,
/// or an address size fault at level 0 when `VA<AddrTop:P>` is not zero.
///
/// The caller must only use this while `HCR_EL2.{DC,TGE}` are 0 (as Moat runs guests).
///
/// # Panics
///
/// When `p` is a reserved `PARange` encoding.
#[must_use]
pub fn walk_aarch64<M: GuestMemory + ?Sized>(
    regs: &Stage1Regs,
    p: PaRange,
    va: Va,
    access: Access,
    mem: &M,
) -> WalkReport {
    let region = Region::of(regs, va.raw(), access);
    if !sctlr_el1::M.is_set(regs.sctlr_el1) {
        return translate_s1_off(va.raw(), region.top, pa_bits(p));
    }
    match region.long_walk(regs, p, va.raw()) {
        Ok(walk) => walk.run(region.ttbr, va.raw(), mem),
        Err(kind) => level0_fault(kind),
    }
}

/// The VA region (`AArch64.GetVARange()`) an address falls in, with its controls.
struct Region {
    /// Selected by `VA<55>`: the TTBR1 region.
    upper: bool,
    /// The `TCR_EL1` fields of that region.
    half: &'static TcrHalf,
    /// `AArch64.AddrTop()` for this access.
    top: u32,
    /// The region's `TTBRn_EL1`.
    ttbr: u64,
}

impl Region {
    /// The region of `va` for `access`.
    fn of(regs: &Stage1Regs, va: u64, access: Access) -> Self {
        let upper = VA_RANGE_SELECT.is_set(va);
        let (half, ttbr) = if upper {
            (&tcr_el1::HALF1, regs.ttbr1_el1)
        } else {
            (&tcr_el1::HALF0, regs.ttbr0_el1)
        };
        let top = addr_top(regs.tcr_el1, half, access);
        Self {
            upper,
            half,
            top,
            ttbr,
        }
    }

    /// The checks of `AArch64.S1Translate()` before any descriptor is read — `TxSZ` in range,
    /// `AArch64.VAIsOutOfRange()`, `EPDn` — all translation faults at level 0; then the walk's
    /// parameters.
    ///
    /// # Errors
    ///
    /// The kind of the level-0 fault.
    fn long_walk(&self, regs: &Stage1Regs, p: PaRange, va: u64) -> Result<LongWalk, FaultKind> {
        let tcr = regs.tcr_el1;
        let txsz = self.half.txsz.get(tcr);
        // A TxSZ out of range is a level-0 translation fault: one of the behaviours the Arm
        // ARM allows (the other treats it as the nearest limit), and QEMU's.
        if !(MIN_TXSZ..=MAX_TXSZ).contains(&txsz) {
            return Err(FaultKind::Translation);
        }
        let input_bits = u64::BITS - txsz as u32;
        if va_out_of_range(va, self.top, input_bits, self.upper) || self.half.epd.is_set(tcr) {
            return Err(FaultKind::Translation);
        }
        Ok(LongWalk {
            granule: self.granule(tcr),
            input_bits,
            pa_bits: ips_bits(tcr).min(pa_bits(p)),
            big_endian: sctlr_el1::EE.is_set(regs.sctlr_el1),
        })
    }

    /// The region's granule: `TG0` and `TG1` encode it differently.
    fn granule(&self, tcr: u64) -> Granule {
        let tg = self.half.tg.get(tcr);
        if self.upper {
            Granule::from_tg1(tg)
        } else {
            Granule::from_tg0(tg)
        }
    }
}

/// `AArch64.TranslateAddressS1Off()`: an address size fault at level 0 when `VA<top:P>` is
/// not zero, otherwise the IPA is the VA (below `2^P` after the check).
fn translate_s1_off(va: u64, top: u32, pa_bits: u32) -> WalkReport {
    if out_of_range(va & Field::new(0, top + 1).mask(), pa_bits) {
        return level0_fault(FaultKind::AddressSize);
    }
    untranslated(va & Field::new(0, pa_bits).mask())
}

/// `AArch64.AddrTop()` for the EL1&0 regime: 55 when `TBIn` applies to this access (for
/// instruction fetches only without `TBIDn`), else 63.
fn addr_top(tcr: u64, half: &TcrHalf, access: Access) -> u32 {
    let tbi = half.tbi.is_set(tcr);
    let tbid = half.tbid.is_set(tcr);
    if tbi && !(tbid && access == Access::InstructionFetch) {
        TOP_WITH_TBI
    } else {
        TOP_WITHOUT_TBI
    }
}

/// `AArch64.VAIsOutOfRange()`: `VA<top:iasize>` must be all zeros in the lower region and
/// all ones in the upper one.
fn va_out_of_range(va: u64, top: u32, input_bits: u32, upper: bool) -> bool {
    let bits = Field::new(input_bits, top + 1 - input_bits);
    let want = if upper { bits.max() } else { 0 };
    bits.get(va) != want
}

/// The PA size `TCR_EL1.IPS` encodes (all eight 3-bit values are allocated).
fn ips_bits(tcr: u64) -> u32 {
    let ips = PaRange::from_field(tcr_el1::IPS.get(tcr) as u8);
    pa_bits(ips)
}

/// A fault of `kind` at level 0, before any descriptor is read.
const fn level0_fault(kind: FaultKind) -> WalkReport {
    WalkReport::fault(kind, Level::L0, Trace::new())
}
