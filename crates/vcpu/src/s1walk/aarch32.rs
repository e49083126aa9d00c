//! The AArch32 PL1&0 stage-1 walk for an AArch32 EL1 guest: the format `TTBCR.EAE` selects,
//! and for the long-descriptor format the region selection of
//! `AArch32.TranslationTableWalkLD()` before the shared lookup.

use super::granule::Granule;
use super::long::LongWalk;
use super::regs::ttbcr;
use super::{
    FaultKind, GuestMemory, Stage1Regs, Trace, WalkReport, pa_bits, short, untranslated, va32,
};
use moat_arm::addr::Va;
use moat_arm::field::Field;
use moat_arm::fsc::Level;
use moat_arm::parange::PaRange;
use moat_arm::sysreg::sctlr;

/// The output address size of the long-descriptor format: descriptors hold OA\[39:12\].
const LPAE_OA_BITS: u32 = 40;
/// The AArch32 VA size.
const VA_BITS: u32 = 32;

/// Walks an AArch32 guest's stage-1 tables for `va` (`FAR_EL2[31:0]`; `DFAR`/`IFAR`), on a
/// machine whose PARange is `p`. This is the walk of an AArch32 EL1 (`HCR_EL2.RW` = 0); an
/// AArch32 EL0 under an AArch64 EL1 is translated by the AArch64 regime: use
/// [`walk_aarch64`](super::walk_aarch64).
///
/// Long-descriptor walks have a PA size of min(`p`, 40) (SPEC.md §2). Short-descriptor walks
/// have no address size fault (their `FS` has no encoding for one): a supersection may output
/// up to 40 bits and the caller compares the IPA with `2^p`. With `SCTLR.M` = 0 the IPA is the
/// VA (`AArch32.TranslateAddressS1Off()`: a 32-bit VA is always in range).
///
/// # Panics
///
/// When `p` is a reserved `PARange` encoding.
#[must_use]
pub fn walk_aarch32<M: GuestMemory + ?Sized>(
    regs: &Stage1Regs,
    p: PaRange,
    va: Va,
    mem: &M,
) -> WalkReport {
    let va = va32(va);
    if !sctlr::M.is_set(regs.sctlr_el1) {
        return untranslated(u64::from(va));
    }
    let big_endian = sctlr::EE.is_set(regs.sctlr_el1);
    if ttbcr::EAE.is_set(regs.tcr_el1) {
        walk_long(regs, pa_bits(p).min(LPAE_OA_BITS), va, big_endian, mem)
    } else {
        short::walk(regs, va, big_endian, mem)
    }
}

/// The long-descriptor region a VA falls in: its `TTBRn`, input size and whether walks from
/// it are disabled (`EPDn`).
struct Region {
    ttbr: u64,
    input_bits: u32,
    disabled: bool,
}

/// `AArch32.TranslationTableWalkLD()` for stage 1: select the region, then walk it. A VA in
/// neither region, or in a disabled one, is a translation fault at level 1 (where AArch64
/// reports level 0).
fn walk_long<M: GuestMemory + ?Sized>(
    regs: &Stage1Regs,
    pa_bits: u32,
    va: u32,
    big_endian: bool,
    mem: &M,
) -> WalkReport {
    let region = match select_region(regs, va) {
        Some(region) if !region.disabled => region,
        _ => return WalkReport::fault(FaultKind::Translation, Level::L1, Trace::new()),
    };
    let walk = LongWalk {
        granule: Granule::K4,
        input_bits: region.input_bits,
        pa_bits,
        big_endian,
    };
    walk.run(region.ttbr, u64::from(va), mem)
}

/// The region of `va`, as the pseudocode picks it: TTBR0 when `T0SZ` is 0 or `VA<31:32-T0SZ>`
/// is zero; then TTBR1 — overriding TTBR0 — when `T1SZ` is non-zero and `VA<31:32-T1SZ>` is
/// all ones, or when `T1SZ` is 0 and TTBR0 did not match. `None` in the gap between them.
fn select_region(regs: &Stage1Regs, va: u32) -> Option<Region> {
    let tcr = regs.tcr_el1;
    let t0sz = ttbcr::T0SZ.get(tcr) as u32;
    let t1sz = ttbcr::T1SZ.get(tcr) as u32;
    let in_ttbr0 = t0sz == 0 || top_bits(va, t0sz) == 0;
    let in_ttbr1 = if t1sz == 0 {
        !in_ttbr0
    } else {
        top_bits(va, t1sz) == Field::new(0, t1sz).max()
    };
    if in_ttbr1 {
        return Some(Region {
            ttbr: regs.ttbr1_el1,
            input_bits: VA_BITS - t1sz,
            disabled: ttbcr::EPD1.is_set(tcr),
        });
    }
    in_ttbr0.then(|| Region {
        ttbr: regs.ttbr0_el1,
        input_bits: VA_BITS - t0sz,
        disabled: ttbcr::EPD0.is_set(tcr),
    })
}

/// `VA<31:32-n>` (`n` ≥ 1).
fn top_bits(va: u32, n: u32) -> u64 {
    Field::new(VA_BITS - n, n).get(u64::from(va))
}
