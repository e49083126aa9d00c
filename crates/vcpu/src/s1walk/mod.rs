//! A software walker of the guest's own stage-1 translation tables (SPEC.md §2).
//!
//! Why Moat walks in software: when a guest access faults at stage 2, the hardware tells Moat
//! the IPA (`HPFAR_EL2`) but not what the guest's stage-1 walk did, and in two cases Moat must
//! know it to inject the exception a real machine of the VM's shape would take:
//!
//! - **Address size faults.** The hardware's PARange can be larger than the PARange `P` Moat
//!   shows the guest. When the guest sets `TCR_EL1.IPS` above `P` (or runs with its MMU off), a
//!   stage-1 output address at or above `2^P` is no stage-1 fault on the hardware — it reaches
//!   stage 2 and faults there — while a machine of PARange `P` reports an Address Size Fault at
//!   the level of the descriptor that holds the address. Only a walk finds that level.
//! - **Faults on the walk itself** (`ESR_EL2.S1PTW` = 1). `HPFAR_EL2` gives the page of the
//!   descriptor being read, not the lookup level, which the injected "external abort on
//!   translation table walk" must carry. The walk says which level reads a given IPA.
//!
//! The walker is pure: it reads guest memory through [`GuestMemory`], never faults, never
//! loops (one read per level, at most the architectural number of levels) and reports the
//! outcome together with a [`Trace`] of the descriptor reads up to it.
//!
//! Formats read (with the pseudocode functions they follow):
//!
//! - AArch64 EL1&0 stage 1, VMSAv8-64 ([`walk_aarch64`]): `AArch64.S1Translate()`,
//!   `AArch64.S1Walk()`, `AArch64.S1StartLevel()`, `AArch64.OAOutOfRange()`, and
//!   `AArch64.TranslateAddressS1Off()` with the MMU off; 4K, 16K and 64K granules with 48-bit
//!   output addresses.
//! - AArch32 PL1&0 stage 1 ([`walk_aarch32`]): the long-descriptor format
//!   (`AArch32.TranslationTableWalkLD()`, `TTBCR.EAE` = 1) and the short-descriptor format
//!   (`AArch32.TranslationTableWalkSD()`, `TTBCR.EAE` = 0).
//!
//! How the abort path uses it, for a guest in tight mode (`P` = 44) whose `TCR_EL1.IPS` is 48
//! and whose 2MB block maps VA 0x1000 to IPA `2^44`: the hardware faults at stage 2, a machine
//! of PARange 44 would report an address size fault at level 2.
//!
//! ```
//! use std::collections::BTreeMap;
//! use moat_arm::addr::{Ipa, Va};
//! use moat_arm::fsc::{Fsc, Level};
//! use moat_arm::parange::PaRange;
//! use moat_vcpu::s1walk::{
//!     Access, DescSize, GuestMemory, Stage1Regs, WalkRead, level_reading, walk_aarch64,
//! };
//!
//! /// The VM's RAM by IPA, as the EL2 binary reads it.
//! struct Ram(BTreeMap<u64, u64>);
//! impl GuestMemory for Ram {
//!     fn read_descriptor(&self, ipa: Ipa, _: DescSize) -> Result<u64, WalkRead> {
//!         self.0.get(&ipa.raw()).copied().ok_or(WalkRead::OutsideRam)
//!     }
//! }
//! // 4KB granule, T0SZ = 25 (the walk starts at level 1), IPS = 48; MMU on.
//! let regs = Stage1Regs {
//!     sctlr_el1: 1,
//!     tcr_el1: 25 | 0b101 << 32,
//!     ttbr0_el1: 0x8000_0000,
//!     ttbr1_el1: 0,
//! };
//! let ram = Ram(BTreeMap::from([
//!     (0x8000_0000, 0x8000_1003),     // level 1: table at 0x8000_1000
//!     (0x8000_1000, 1 << 44 | 0x401), // level 2: 2MB block at 2^44
//! ]));
//! let report = walk_aarch64(&regs, PaRange::Bits44, Va(0x1000), Access::Data, &ram);
//! let fault = report.fault_record().expect("a fault");
//! assert_eq!(fault.fsc(), Fsc::AddressSize { level: Level::L2 });
//! // Had HPFAR_EL2 named the page of the level-2 table (S1PTW = 1), the walk read it at level 2.
//! assert_eq!(level_reading(&report, Ipa(0x8000_1000)), Some(Level::L2));
//! ```
//!
//! # The levels reported
//!
//! `PS` is the effective PA size: min(`TCR_EL1.IPS`, `P`) for AArch64 (an IPS above the
//! implemented size acts as the implemented size), min(`P`, 40) for AArch32 long descriptors.
//!
//! What the walk meets, and the fault and level it reports:
//!
//! - MMU off and `VA<AddrTop:P>` ≠ 0 (`AArch64.TranslateAddressS1Off()`): address size,
//!   level 0. (An AArch32 VA is always in range.)
//! - `TxSZ` outside 16..=39 (AArch64): translation, level 0.
//! - A VA in no region (`AArch64.VAIsOutOfRange()`), or `EPDn`/`PDn` set: translation, level 0
//!   for AArch64, level 1 for AArch32 (both formats).
//! - A `TTBRn` address ≥ `2^PS`: address size, level 0, before any read (long descriptors).
//! - A read [`GuestMemory`] refuses: walk read, at the level that reads.
//! - An invalid descriptor, a block at a level without blocks, or `0b01` at level 3:
//!   translation, at the descriptor's level.
//! - A table descriptor whose next-level table address is ≥ `2^PS`: address size, at the
//!   table descriptor's level (long descriptors).
//! - A block or page whose output address is ≥ `2^PS`: address size, at the leaf's level (long
//!   descriptors). Short descriptors have no address size fault.
//!
//! The level-0 faults hold whatever the start level: `AArch64.S1Translate()` and
//! `AArch64.S1Walk()` set the level to 0 for them before the walk starts, and
//! `AArch32.TranslationTableWalkLD()` reports the region faults at level 1 ("AArch64 reports
//! this as a level 0 fault") but the `TTBR` address size fault at level 0.
//!
//! Not modelled, because Moat hides the features from guests (SPEC.md §2): the 52-bit formats
//! (FEAT_LPA with 64K, FEAT_LPA2 and `TCR_EL1.DS`), FEAT_LVA/FEAT_TTST input sizes, FEAT_D128.
//! Not modelled because the hardware reports them itself and they never need a walk: access
//! flag, permission, domain and alignment checks (the leaf descriptor is reported raw), `E0PDx`
//! and `NFDx` (they fault before any walk).

mod aarch32;
mod aarch64;
mod granule;
mod long;
mod regs;
mod short;

#[cfg(test)]
mod tests;

pub use aarch32::walk_aarch32;
pub use aarch64::{Access, walk_aarch64};

use moat_arm::addr::{Ipa, Va};
use moat_arm::fsc::{Fsc, Level};
use moat_arm::fsr32::Fault32;
use moat_arm::parange::PaRange;

/// The registers of the guest's EL1&0 (AArch32: PL1&0) stage-1 regime, as Moat reads them.
/// An AArch32 guest's registers live in their AArch64 homes: `TTBCR` in `TCR_EL1[31:0]`,
/// `SCTLR` in `SCTLR_EL1[31:0]`, the 64-bit `TTBR0`/`TTBR1` in `TTBR0_EL1`/`TTBR1_EL1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stage1Regs {
    /// `SCTLR_EL1` (AArch32: `SCTLR`): `M` enables the walk, `EE` makes it big-endian.
    pub sctlr_el1: u64,
    /// `TCR_EL1` (AArch32: `TTBCR`).
    pub tcr_el1: u64,
    /// `TTBR0_EL1` (AArch32: `TTBR0`).
    pub ttbr0_el1: u64,
    /// `TTBR1_EL1` (AArch32: `TTBR1`).
    pub ttbr1_el1: u64,
}

/// The size of one descriptor read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DescSize {
    /// 4 bytes: AArch32 short-descriptor tables.
    Four,
    /// 8 bytes: VMSAv8-64 and AArch32 long-descriptor tables.
    Eight,
}

impl DescSize {
    /// The number of bytes read.
    #[must_use]
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Four => 4,
            Self::Eight => 8,
        }
    }
}

/// Why a descriptor could not be read. The walker only reports it; whether the read is a hole,
/// a device window or beyond `2^S` — and so which exception the guest gets — is the caller's
/// decision (SPEC.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WalkRead {
    /// Nothing of the VM's RAM at that IPA (a hole, or at or above `2^S`).
    OutsideRam,
    /// The IPA lies in an emulated device window; Moat does not walk tables in devices.
    DeviceWindow,
}

/// Guest memory as the walker reads it: by IPA, without stage-2 faults.
pub trait GuestMemory {
    /// Reads the `size`-byte descriptor at `ipa` (aligned to `size`) as a **little-endian**
    /// value: the byte at `ipa` is bits \[7:0\]. The walker applies `SCTLR_EL1.EE` itself.
    ///
    /// # Errors
    ///
    /// [`WalkRead`] when the IPA holds no RAM the walker may read.
    fn read_descriptor(&self, ipa: Ipa, size: DescSize) -> Result<u64, WalkRead>;
}

/// The log2 of the page `HPFAR_EL2.FIPA` names: IPA\[51:12\], whatever the granules.
pub const HPFAR_PAGE_SHIFT: u32 = 12;

/// The most descriptor reads of one walk: one per level, levels 0..=3.
pub const MAX_READS: usize = 4;

/// One descriptor read of the walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Read {
    /// The lookup level that read it.
    pub level: Level,
    /// The descriptor's IPA.
    pub ipa: Ipa,
    /// The descriptor as the walk interpreted it (after `EE`), or `None` when the read failed.
    pub descriptor: Option<u64>,
}

/// The descriptor reads of one walk, in order (at most [`MAX_READS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trace {
    reads: [Read; MAX_READS],
    len: usize,
}

impl Trace {
    const EMPTY: Read = Read {
        level: Level::L0,
        ipa: Ipa(0),
        descriptor: None,
    };

    /// A trace without reads.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            reads: [Self::EMPTY; MAX_READS],
            len: 0,
        }
    }

    /// The reads, first first.
    #[must_use]
    pub fn reads(&self) -> &[Read] {
        &self.reads[..self.len]
    }

    /// Appends a read.
    ///
    /// # Panics
    ///
    /// When a walk reads more than [`MAX_READS`] descriptors: the walkers read one per level,
    /// so this is a broken invariant of this module.
    fn push(&mut self, read: Read) {
        assert!(
            self.len < MAX_READS,
            "a walk reads one descriptor per level"
        );
        self.reads[self.len] = read;
        self.len += 1;
    }
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

/// What kind of leaf ended the walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeafKind {
    /// A block descriptor (long-descriptor formats, levels 1–2).
    Block,
    /// A page descriptor (long-descriptor formats, level 3).
    Page,
    /// A 1MB section (short-descriptor, level 1).
    Section,
    /// A 16MB supersection (short-descriptor, level 1); its output may have 40 bits.
    Supersection,
    /// A 64KB large page (short-descriptor, level 2).
    LargePage,
    /// A 4KB small page (short-descriptor, level 2).
    SmallPage,
}

/// The leaf descriptor that translated the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// Its lookup level.
    pub level: Level,
    /// Its kind.
    pub kind: LeafKind,
    /// The descriptor, raw (after `EE`): its attributes are for the caller to decode.
    pub descriptor: u64,
    /// The log2 of the size of the block or page it maps.
    pub size_bits: u32,
}

/// A successful stage-1 translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The output address (the guest's "physical" address).
    pub ipa: Ipa,
    /// The leaf, or `None` when stage 1 is off (`SCTLR_EL1.M` = 0) and the IPA is the VA.
    pub leaf: Option<Leaf>,
}

/// The kind of stage-1 fault the walk ends with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Translation fault: an invalid descriptor, an input address outside the regions, a
    /// disabled walk (`EPDx`, `PDx`) or an unusable `TxSZ`.
    Translation,
    /// Address size fault: an output, table or `TTBRn` address at or above the PA size.
    AddressSize,
    /// The descriptor at `ipa` could not be read; the guest gets an external abort on the walk
    /// (or another outcome of the caller's choosing) at the fault's level.
    WalkRead {
        /// The descriptor's IPA.
        ipa: Ipa,
        /// Why [`GuestMemory`] could not read it.
        why: WalkRead,
    },
}

/// A stage-1 fault at a lookup level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WalkFault {
    /// What went wrong.
    pub kind: FaultKind,
    /// The lookup level the Arm ARM reports it at.
    pub level: Level,
}

impl WalkFault {
    /// The AArch64 (and AArch32 long-descriptor) fault status code: a read that failed
    /// becomes a synchronous external abort on the walk.
    #[must_use]
    pub const fn fsc(self) -> Fsc {
        let level = self.level;
        match self.kind {
            FaultKind::Translation => Fsc::Translation { level },
            FaultKind::AddressSize => Fsc::AddressSize { level },
            FaultKind::WalkRead { .. } => Fsc::SyncExternalOnWalk { level },
        }
    }

    /// The fault as AArch32 `DFSR`/`IFSR` name it (both formats).
    #[must_use]
    pub const fn fault32(self) -> Fault32 {
        let level = self.level;
        match self.kind {
            FaultKind::Translation => Fault32::Translation { level },
            FaultKind::AddressSize => Fault32::AddressSize { level },
            FaultKind::WalkRead { .. } => Fault32::SyncExternalOnWalk { level },
        }
    }
}

/// How the walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The VA translates.
    Translated(Translation),
    /// The walk faults.
    Fault(WalkFault),
}

/// The result of a walk: its outcome and the reads that led to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkReport {
    /// How the walk ended.
    pub outcome: Outcome,
    /// The descriptor reads, in order, up to and including the one that ended the walk.
    pub trace: Trace,
}

impl WalkReport {
    /// A report of `outcome` after `trace`.
    const fn new(outcome: Outcome, trace: Trace) -> Self {
        Self { outcome, trace }
    }

    /// A fault of `kind` at `level` after `trace`.
    const fn fault(kind: FaultKind, level: Level, trace: Trace) -> Self {
        Self::failed(WalkFault { kind, level }, trace)
    }

    /// The report of `fault` after `trace`.
    const fn failed(fault: WalkFault, trace: Trace) -> Self {
        Self::new(Outcome::Fault(fault), trace)
    }

    /// The fault, if the walk ended with one.
    #[must_use]
    pub const fn fault_record(&self) -> Option<WalkFault> {
        match self.outcome {
            Outcome::Fault(fault) => Some(fault),
            Outcome::Translated(_) => None,
        }
    }

    /// The translation, if the walk succeeded.
    #[must_use]
    pub const fn translation(&self) -> Option<Translation> {
        match self.outcome {
            Outcome::Translated(t) => Some(t),
            Outcome::Fault(_) => None,
        }
    }
}

/// The lookup level that reads a descriptor in the 4K page of `ipa` (as `HPFAR_EL2` names it),
/// for an external abort on the walk (SPEC.md §2, `S1PTW` = 1). Where several levels read from
/// that page, the first: the hardware faults on the first access to it.
///
/// `None` when the walk never reads from that page — the guest's tables changed between the
/// fault and the walk, or the fault was not on this walk; the caller decides (a retry is what
/// the hardware would do on a changed table).
#[must_use]
pub fn level_reading(report: &WalkReport, ipa: Ipa) -> Option<Level> {
    let page = ipa.raw() >> HPFAR_PAGE_SHIFT;
    report
        .trace
        .reads()
        .iter()
        .find(|read| read.ipa.raw() >> HPFAR_PAGE_SHIFT == page)
        .map(|read| read.level)
}

/// The PA size in bits for a PARange Moat shows (`P`).
///
/// # Panics
///
/// On a reserved encoding: Moat only ever shows one of the allocated sizes (SPEC.md §1).
fn pa_bits(p: PaRange) -> u32 {
    u32::from(p.bits().expect("Moat shows an allocated PARange"))
}

/// Whether `address` lies at or above `2^bits`.
const fn out_of_range(address: u64, bits: u32) -> bool {
    bits < u64::BITS && address >> bits != 0
}

/// The lookup level numbered `n` (0..=3).
///
/// # Panics
///
/// For `n` > 3: the walkers never go past level 3.
const fn level(n: u32) -> Level {
    match n {
        0 => Level::L0,
        1 => Level::L1,
        2 => Level::L2,
        3 => Level::L3,
        _ => panic!("lookup levels end at 3"),
    }
}

/// The outcome of a walk with stage 1 off: the VA is the IPA.
const fn untranslated(ipa: u64) -> WalkReport {
    WalkReport::new(
        Outcome::Translated(Translation {
            ipa: Ipa(ipa),
            leaf: None,
        }),
        Trace::new(),
    )
}

/// The VA as the AArch32 walkers see it: `FAR_EL2[31:0]`.
const fn va32(va: Va) -> u32 {
    va.raw() as u32
}

/// Reads the descriptor at `ipa` for the lookup at `level`, records the read in `trace`, and
/// applies `SCTLR_EL1.EE` (`BigEndianReverse()` of the fetched bytes when `big_endian`).
///
/// # Errors
///
/// A [`FaultKind::WalkRead`] fault at `level` when the read fails.
fn fetch<M: GuestMemory + ?Sized>(
    mem: &M,
    trace: &mut Trace,
    level: Level,
    ipa: u64,
    size: DescSize,
    big_endian: bool,
) -> Result<u64, WalkFault> {
    let ipa = Ipa(ipa);
    let descriptor = mem.read_descriptor(ipa, size).map(|raw| match size {
        DescSize::Four if big_endian => u64::from((raw as u32).swap_bytes()),
        DescSize::Four => u64::from(raw as u32),
        DescSize::Eight if big_endian => raw.swap_bytes(),
        DescSize::Eight => raw,
    });
    trace.push(Read {
        level,
        ipa,
        descriptor: descriptor.ok(),
    });
    descriptor.map_err(|why| WalkFault {
        kind: FaultKind::WalkRead { ipa, why },
        level,
    })
}
