//! Properties over arbitrary registers and table contents: the walkers never panic, read at
//! most one descriptor per level with the levels rising, and report what they read.

use super::FakeMemory;
use super::aarch64::{IPS_48, TG0_4K, TG0_16K, TG0_64K, TG1_4K, tcr};
use crate::s1walk::{
    Access, DescSize, FaultKind, GuestMemory, Outcome, Stage1Regs, WalkRead, WalkReport,
    level_reading, walk_aarch32, walk_aarch64,
};
use moat_arm::addr::{Ipa, Va};
use moat_arm::parange::PaRange;
use proptest::prelude::*;

/// Memory whose every descriptor is a pseudo-random function of its IPA and a seed, biased
/// towards valid descriptors pointing at low addresses so walks go deep; some IPAs fail.
#[derive(Clone, Copy, Debug)]
struct NoiseMemory {
    seed: u64,
}

/// SplitMix64's finaliser: a well-mixed hash of `x`.
const fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl GuestMemory for NoiseMemory {
    fn read_descriptor(&self, ipa: Ipa, size: DescSize) -> Result<u64, WalkRead> {
        let h = mix(self.seed ^ ipa.raw());
        match h % 16 {
            0 => Err(WalkRead::OutsideRam),
            1 => Ok(mix(h)),
            // A table/page/block descriptor to a low address, low bits from the hash.
            _ => Ok((mix(h) & 0xF_FFFF_F000) | ((h >> 8) % 4)),
        }
        .map(|d| {
            if size == DescSize::Four {
                d & 0xFFFF_FFFF
            } else {
                d
            }
        })
    }
}

/// The invariants every report keeps.
fn check(report: &WalkReport, max_reads: usize) {
    let reads = report.trace.reads();
    assert!(reads.len() <= max_reads, "{report:?}");
    for pair in reads.windows(2) {
        assert!(pair[0].level < pair[1].level, "levels rise: {report:?}");
        assert!(pair[0].descriptor.is_some(), "only the last read may fail");
    }
    for read in reads {
        assert!(level_reading(report, read.ipa).is_some_and(|l| l <= read.level));
    }
    match report.outcome {
        Outcome::Fault(f) => {
            if let FaultKind::WalkRead { ipa, .. } = f.kind {
                let last = reads.last().expect("a failed read is traced");
                assert_eq!(
                    (last.ipa, last.descriptor, last.level),
                    (ipa, None, f.level)
                );
            }
        }
        Outcome::Translated(t) => {
            if let Some(leaf) = t.leaf {
                let last = reads.last().expect("a leaf was read");
                assert_eq!(
                    (last.level, last.descriptor),
                    (leaf.level, Some(leaf.descriptor))
                );
            }
        }
    }
}

/// `TCR_EL1.{T1SZ, T0SZ}` and `EPD1`, `EPD0`, cleared before the biased values go in.
const TXSZ_AND_EPD: u64 = 0xBF_00BF;

fn regs() -> impl Strategy<Value = Stage1Regs> {
    // Bias TTBRs to low addresses, TxSZ to the valid range and EPDn to 0, leaving all other
    // bits free.
    let ttbr = prop_oneof![any::<u64>(), (0..0x10_0000_0000u64)];
    let tcr = prop_oneof![
        1 => any::<u64>(),
        3 => (any::<u64>(), 16..=39u64, 16..=39u64)
            .prop_map(|(t, t0, t1)| (t & !TXSZ_AND_EPD) | t0 | t1 << 16),
    ];
    (any::<u64>(), tcr, ttbr.clone(), ttbr).prop_map(|(sctlr, tcr, ttbr0, ttbr1)| Stage1Regs {
        sctlr_el1: sctlr | u64::from(sctlr & 0b110 != 0), // mostly MMU on
        tcr_el1: tcr,
        ttbr0_el1: ttbr0,
        ttbr1_el1: ttbr1,
    })
}

/// VAs biased to the smallest regions both TTBRs can cover (25 bits at the bottom and top).
fn va() -> impl Strategy<Value = u64> {
    let small = 0..1u64 << 25;
    prop_oneof![any::<u64>(), small.clone(), small.prop_map(|v| !v)]
}

fn parange() -> impl Strategy<Value = PaRange> {
    prop::sample::select(&PaRange::ALL[..6])
}

proptest! {
    // Deep walks are a small share of random tables: run enough cases to meet them.
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn aarch64_walks_of_arbitrary_tables_end_within_four_reads(
        regs in regs(), p in parange(), va in va(), seed in any::<u64>(), fetch in any::<bool>(),
    ) {
        let access = if fetch { Access::InstructionFetch } else { Access::Data };
        let report = walk_aarch64(&regs, p, Va(va), access, &NoiseMemory { seed });
        check(&report, 4);
    }

    #[test]
    fn aarch32_walks_of_arbitrary_tables_end_within_three_reads(
        regs in regs(), p in parange(), va in any::<u32>(), seed in any::<u64>(),
    ) {
        let report = walk_aarch32(&regs, p, Va(u64::from(va)), &NoiseMemory { seed });
        let short = regs.tcr_el1 & (1 << 31) == 0;
        check(&report, if short { 2 } else { 3 });
    }

    #[test]
    fn zeroed_tables_never_translate_with_the_mmu_on(regs in regs(), va in va()) {
        let report = walk_aarch64(&regs, PaRange::Bits48, Va(va), Access::Data, &FakeMemory::new());
        check(&report, 4);
        if regs.sctlr_el1 & 1 == 1 {
            prop_assert!(report.fault_record().is_some(), "{report:?}");
            prop_assert!(report.trace.reads().len() <= 1, "{report:?}");
        }
    }
}

/// A random valid mapping: granule bits, T0SZ, VA in the TTBR0 region, leaf level, output
/// address aligned to the leaf's size, and the PARange shown.
fn mapping() -> impl Strategy<Value = (u32, u64, u64, u32, u64, PaRange)> {
    (prop::sample::select(&[12u32, 14, 16][..]), 16..=39u64)
        .prop_flat_map(|(bits, t0sz)| {
            let input_bits = 64 - t0sz as u32;
            let start = 3 - (input_bits - 1 - bits) / (bits - 3);
            let first_block = if bits == 12 { 1 } else { 2 };
            let leaf = start.max(first_block)..=3;
            (
                Just(bits),
                Just(t0sz),
                0..1u64 << input_bits,
                leaf,
                any::<u64>(),
                parange(),
            )
        })
        .prop_map(|(bits, t0sz, va, leaf, oa, p)| {
            let leaf_bits = bits + (bits - 3) * (3 - leaf);
            let oa = oa & ((1 << 48) - 1) & !((1 << leaf_bits) - 1);
            (bits, t0sz, va, leaf, oa, p)
        })
}

proptest! {
    #[test]
    fn valid_mappings_translate_or_fault_at_the_leaf_level_beyond_p(m in mapping()) {
        let (bits, t0sz, va, leaf, oa, p) = m;
        let input_bits = 64 - t0sz as u32;
        let start = 3 - (input_bits - 1 - bits) / (bits - 3);
        let tables: std::vec::Vec<u64> =
            (start..=leaf).map(|i| 0x1000_0000 + u64::from(i) * 0x10_0000).collect();
        let desc = if leaf == 3 { super::page(oa) } else { super::block(oa) };
        let mut mem = FakeMemory::new();
        super::chain(&mut mem, bits, input_bits, va, start, &tables, desc);
        let tg0 = match bits {
            12 => TG0_4K,
            14 => TG0_16K,
            _ => TG0_64K,
        };
        let regs = super::mmu_on(tcr(t0sz, tg0, 16, TG1_4K, IPS_48), tables[0], 0);
        let report = walk_aarch64(&regs, p, Va(va), Access::Data, &mem);
        let leaf_bits = bits + (bits - 3) * (3 - leaf);
        let ipa = oa | (va & ((1 << leaf_bits) - 1));
        let p_bits = u32::from(p.bits().expect("allocated"));
        if ipa >> p_bits != 0 {
            let expected = super::at(FaultKind::AddressSize, leaf as i8);
            prop_assert_eq!(report.fault_record(), Some(expected));
        } else {
            prop_assert_eq!(report.translation().map(|t| t.ipa.raw()), Some(ipa));
        }
        prop_assert_eq!(report.trace.reads().len(), tables.len());
    }
}
