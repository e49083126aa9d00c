//! Tests of the stage-1 walkers: small guest page tables in a fake [`GuestMemory`], one test
//! per fact, named after it.

extern crate std;

mod aarch32;
mod aarch64;
mod faults;
mod props;

use super::{
    DescSize, FaultKind, GuestMemory, Outcome, Stage1Regs, WalkFault, WalkRead, WalkReport,
};
use moat_arm::addr::Ipa;
use moat_arm::fsc::Level;
use std::collections::BTreeMap;
use std::vec::Vec;

/// Guest memory: descriptors by IPA (absent ones read as 0) in RAM `[0, ram_end)` minus
/// `holes`; stored in the byte order of `big_endian`.
#[derive(Clone, Debug)]
struct FakeMemory {
    descriptors: BTreeMap<u64, u64>,
    ram_end: u64,
    holes: Vec<(u64, u64)>,
    big_endian: bool,
}

impl FakeMemory {
    /// 1TB of RAM, little-endian, no holes.
    fn new() -> Self {
        Self {
            descriptors: BTreeMap::new(),
            ram_end: 1 << 40,
            holes: Vec::new(),
            big_endian: false,
        }
    }

    /// Stores the descriptor `value` at `ipa`.
    fn set(&mut self, ipa: u64, value: u64) -> &mut Self {
        self.descriptors.insert(ipa, value);
        self
    }

    /// Makes `[start, end)` a hole.
    fn hole(&mut self, start: u64, end: u64) -> &mut Self {
        self.holes.push((start, end));
        self
    }
}

impl GuestMemory for FakeMemory {
    fn read_descriptor(&self, ipa: Ipa, size: DescSize) -> Result<u64, WalkRead> {
        let ipa = ipa.raw();
        assert_eq!(ipa % size.bytes(), 0, "descriptor reads are aligned");
        if ipa >= self.ram_end || self.holes.iter().any(|&(s, e)| (s..e).contains(&ipa)) {
            return Err(WalkRead::OutsideRam);
        }
        let value = self.descriptors.get(&ipa).copied().unwrap_or(0);
        // Memory holds the bytes in the guest's order; the walker reads them little-endian.
        Ok(match (size, self.big_endian) {
            (DescSize::Four, true) => u64::from((value as u32).swap_bytes()),
            (DescSize::Four, false) => value & 0xFFFF_FFFF,
            (DescSize::Eight, true) => value.swap_bytes(),
            (DescSize::Eight, false) => value,
        })
    }
}

/// The fault a report ends with (panics on a translation).
fn fault(report: &WalkReport) -> WalkFault {
    match report.outcome {
        Outcome::Fault(f) => f,
        Outcome::Translated(t) => panic!("expected a fault, got {t:?}"),
    }
}

/// The IPA a report translates to (panics on a fault).
fn ipa(report: &WalkReport) -> u64 {
    match report.outcome {
        Outcome::Translated(t) => t.ipa.raw(),
        Outcome::Fault(f) => panic!("expected a translation, got {f:?}"),
    }
}

/// The (level, IPA) of each read in the trace.
fn reads(report: &WalkReport) -> Vec<(i8, u64)> {
    report
        .trace
        .reads()
        .iter()
        .map(|r| (r.level.number(), r.ipa.raw()))
        .collect()
}

/// A fault of `kind` at level `n`.
fn at(kind: FaultKind, n: i8) -> WalkFault {
    WalkFault {
        kind,
        level: Level::from_number(n).expect("a level"),
    }
}

/// Registers with the MMU on.
fn mmu_on(tcr: u64, ttbr0: u64, ttbr1: u64) -> Stage1Regs {
    Stage1Regs {
        sctlr_el1: 1,
        tcr_el1: tcr,
        ttbr0_el1: ttbr0,
        ttbr1_el1: ttbr1,
    }
}

/// A long-descriptor table descriptor to `next`.
const fn table(next: u64) -> u64 {
    next | 0b11
}

/// The access flag of a long-descriptor leaf (`AF`, bit 10), set so descriptors look real.
const AF: u64 = 1 << 10;

/// A long-descriptor block descriptor for `oa`.
const fn block(oa: u64) -> u64 {
    oa | AF | 0b01
}

/// A long-descriptor page descriptor for `oa`.
const fn page(oa: u64) -> u64 {
    oa | AF | 0b11
}

/// A chain of long-descriptor tables for `va`: `tables[i]` is the table at level
/// `start + i`; each holds a table descriptor to the next, the last holds `leaf`. Returns the
/// descriptor IPAs written, by level. `granule_bits` 12/14/16; `input_bits` the region size.
fn chain(
    mem: &mut FakeMemory,
    granule_bits: u32,
    input_bits: u32,
    va: u64,
    start: u32,
    tables: &[u64],
    leaf: u64,
) -> Vec<u64> {
    let stride = granule_bits - 3;
    let mut written = Vec::new();
    for (i, &t) in tables.iter().enumerate() {
        let level = start + i as u32;
        let shift = granule_bits + stride * (3 - level);
        let width = stride.min(input_bits - shift);
        let slot = t + ((va >> shift) & ((1 << width) - 1)) * 8;
        let desc = tables.get(i + 1).map_or(leaf, |&next| table(next));
        mem.set(slot, desc);
        written.push(slot);
    }
    written
}
