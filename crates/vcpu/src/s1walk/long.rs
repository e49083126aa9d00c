//! The long-descriptor lookup shared by VMSAv8-64 (`AArch64.S1Walk()`) and the AArch32
//! long-descriptor format (`AArch32.TranslationTableWalkLD()`): from a `TTBRn` to a leaf, one
//! 8-byte descriptor per level, with the address size checks of `AArch64.OAOutOfRange()`.
//!
//! The two formats differ only in what the caller has already settled — the region, its input
//! size, the granule (AArch32: always 4KB) and the PA size (AArch32: at most 40 bits) — so one
//! loop serves both.

use super::granule::{FINAL_LEVEL, Granule};
use super::regs::{long_desc, ttbr};
use super::{
    DescSize, FaultKind, GuestMemory, Leaf, LeafKind, Outcome, Trace, Translation, WalkFault,
    WalkReport, fetch, level, out_of_range,
};
use moat_arm::addr::Ipa;
use moat_arm::field::Field;
use moat_arm::fsc::Level;

/// What the caller settled before the lookup.
#[derive(Clone, Copy, Debug)]
pub struct LongWalk {
    /// The region's granule.
    pub granule: Granule,
    /// The region's input address size in bits (`64 - TxSZ`, AArch32: `32 - TxSZ`).
    pub input_bits: u32,
    /// The effective PA size in bits: addresses at or above `2^pa_bits` are out of range.
    pub pa_bits: u32,
    /// `SCTLR_EL1.EE`: descriptors are big-endian.
    pub big_endian: bool,
}

/// A descriptor as `AArch64.DecodeDescriptorType()` classifies it at one level.
enum Descriptor {
    /// Invalid, or a block at a level that holds none: a translation fault.
    Invalid,
    /// A table descriptor and the next-level table address.
    Table(u64),
    /// A block or page descriptor.
    Leaf(LeafKind),
}

/// Where one lookup leaves the walk.
enum Step {
    /// At the next-level table at this address.
    Next(u64),
    /// Finished.
    Done(Outcome),
}

impl LongWalk {
    /// Walks the tables from `ttbr` for `va`, which the caller has checked lies in the region.
    pub fn run<M: GuestMemory + ?Sized>(&self, ttbr: u64, va: u64, mem: &M) -> WalkReport {
        let baddr = ttbr & ttbr::BADDR.mask();
        // The TTB address size check reports level 0 whatever the start level
        // (`AArch64.S1Walk()`; `AArch32.TranslationTableWalkLD()` checks `TTBR<47:40>`).
        if out_of_range(baddr, self.pa_bits) {
            return WalkReport::fault(FaultKind::AddressSize, Level::L0, Trace::new());
        }
        let start = self.granule.start_level(self.input_bits);
        let mut table = baddr & !low_mask(self.first_table_bits(start));
        let mut trace = Trace::new();
        for n in start..=FINAL_LEVEL {
            match self.step(mem, &mut trace, table, va, n) {
                Step::Next(next) => table = next,
                Step::Done(outcome) => return WalkReport::new(outcome, trace),
            }
        }
        unreachable!("a level-3 descriptor is a page or invalid, never a table")
    }

    /// The lookup at level `n` in `table`: read the descriptor and act on its type.
    fn step<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        trace: &mut Trace,
        table: u64,
        va: u64,
        n: u32,
    ) -> Step {
        let ipa = table + self.index(va, n) * DescSize::Eight.bytes();
        let fault = |kind| {
            let level = level(n);
            Step::Done(Outcome::Fault(WalkFault { kind, level }))
        };
        let desc = match fetch(mem, trace, level(n), ipa, DescSize::Eight, self.big_endian) {
            Ok(desc) => desc,
            Err(read) => return Step::Done(Outcome::Fault(read)),
        };
        match self.decode(desc, n) {
            Descriptor::Invalid => fault(FaultKind::Translation),
            // The table address size check is at the level of the table descriptor.
            Descriptor::Table(next) if out_of_range(next, self.pa_bits) => {
                fault(FaultKind::AddressSize)
            }
            Descriptor::Table(next) => Step::Next(next),
            Descriptor::Leaf(kind) => Step::Done(self.leaf(desc, kind, n, va)),
        }
    }

    /// The outcome of the leaf `desc` at level `n`: the output address, or an address size
    /// fault at the leaf's level when it is out of range.
    fn leaf(&self, desc: u64, kind: LeafKind, n: u32, va: u64) -> Outcome {
        let size_bits = self.granule.level_shift(n);
        let oa = address_field(desc, size_bits) | (va & low_mask(size_bits));
        if out_of_range(oa, self.pa_bits) {
            let level = level(n);
            return Outcome::Fault(WalkFault {
                kind: FaultKind::AddressSize,
                level,
            });
        }
        let leaf = Leaf {
            level: level(n),
            kind,
            descriptor: desc,
            size_bits,
        };
        Outcome::Translated(Translation {
            ipa: Ipa(oa),
            leaf: Some(leaf),
        })
    }

    /// `AArch64.DecodeDescriptorType()` for the 48-bit formats.
    fn decode(&self, desc: u64, n: u32) -> Descriptor {
        let valid = long_desc::VALID.is_set(desc);
        let table_or_page = long_desc::TABLE_OR_PAGE.is_set(desc);
        match (valid, table_or_page) {
            (false, _) => Descriptor::Invalid,
            (true, true) if n == FINAL_LEVEL => Descriptor::Leaf(LeafKind::Page),
            (true, true) => Descriptor::Table(address_field(desc, self.granule.bits())),
            (true, false) if self.granule.block_allowed(n) => Descriptor::Leaf(LeafKind::Block),
            (true, false) => Descriptor::Invalid,
        }
    }

    /// The index of `va`'s descriptor in the table at level `n`: the VA bits that level
    /// resolves, fewer at the start level when the input size does not fill a whole table.
    fn index(&self, va: u64, n: u32) -> u64 {
        let lsb = self.granule.level_shift(n);
        let width = self.granule.stride().min(self.input_bits - lsb);
        Field::new(lsb, width).get(va)
    }

    /// log2 of the size of the start level's table in bytes: `TTBRn` is aligned to it
    /// (`AArch64.S1TTBaseAddress()`; the pseudocode's `baselowerbound`).
    fn first_table_bits(&self, start: u32) -> u32 {
        let entries_bits = self.input_bits - self.granule.level_shift(start);
        entries_bits + DescSize::Eight.bytes().trailing_zeros()
    }
}

/// The address field of a long descriptor: bits \[47:`lsb`\].
fn address_field(desc: u64, lsb: u32) -> u64 {
    desc & Field::new(lsb, long_desc::ADDRESS_TOP + 1 - lsb).mask()
}

/// The bits below bit `bits`.
const fn low_mask(bits: u32) -> u64 {
    (1 << bits) - 1
}
