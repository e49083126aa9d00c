//! The probe's own stage-1 translation for `probe.mmu=on` (Arm ARM "VMSAv8-64 translation
//! table format descriptors", 4K granule, `TCR_EL1.T0SZ` = 16, so walks start at level 0).
//!
//! The tables live in the image's BSS (RAM). They map, by identity and with 2 MiB blocks, the
//! probe's RAM (Normal, EL1 read/write, EL0 execute-only so that EL0 cases can run the snippets)
//! and the 2 MiB around the PL011 (Device-nGnRnE). Each case then maps its target at one fixed
//! *window* VA, [`WINDOW`] (≠ any sensible target, so `FAR_EL1` = VA ≠ IPA shows which one a
//! fault reports), in one of four [`Shape`]s, with break-before-make and a full EL1&0 TLB
//! invalidation around every change.

use core::cell::UnsafeCell;
use core::ptr;

use crate::regs;

/// The VA every case's target is mapped at (plus the target's offset within a 4K page): 1 GiB
/// aligned, level-0 index 0xb4, so that it shares no table with the identity map.
pub const WINDOW: u64 = 0x0000_5a5a_4000_0000;

const KIB4: u64 = 1 << 12;
const MIB2: u64 = 1 << 21;
const GIB1: u64 = 1 << 30;
/// Descriptors hold output address bits \[47:12\] (4K granule without FEAT_LPA2).
const OA_MASK: u64 = 0x0000_ffff_ffff_f000;

// Descriptor bits (stage 1, VMSAv8-64).
const VALID_TABLE: u64 = 0b11; // table descriptor (levels 0-2) or page descriptor (level 3)
const VALID_BLOCK: u64 = 0b01; // block descriptor (levels 1-2)
const ATTR_NORMAL: u64 = 0 << 2; // AttrIndx = 0: MAIR_EL1.Attr0
const ATTR_DEVICE: u64 = 1 << 2; // AttrIndx = 1: MAIR_EL1.Attr1
const AP_EL0_RW: u64 = 1 << 6; // AP[2:1] = 0b01: read/write at EL1 and EL0
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

/// `MAIR_EL1`: Attr0 = Normal, Inner/Outer Write-Back RW-allocate; Attr1 = Device-nGnRnE.
const MAIR: u64 = 0xff;
/// `TCR_EL1` without IPS: T0SZ = 16, TG0 = 4K, EPD1 = 1 (no TTBR1 walks), TG1 = 4K (0b10), table
/// walks Non-cacheable (IRGN0 = ORGN0 = 0; `SCTLR_EL1.C` stays 0, so all data is Non-cacheable).
const TCR_BASE: u64 = 16 | (1 << 23) | (0b10 << 30);

/// How a case maps its target (one kind per shape: `<kind>_page`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A level-3 page descriptor.
    Page,
    /// A level-2 block descriptor (the target must be 2 MiB aligned).
    Block2m,
    /// A level-1 block descriptor (the target must be 1 GiB aligned).
    Block1g,
    /// A level-1 *table* descriptor whose next-level (level-2) table is at the target, so the
    /// walk itself reads the target (must be 4K aligned).
    TableAt,
}

impl Shape {
    /// All shapes, in output order.
    pub const ALL: [Self; 4] = [Self::Page, Self::Block2m, Self::Block1g, Self::TableAt];

    /// The kind-name suffix.
    pub const fn suffix(self) -> &'static str {
        match self {
            Self::Page => "_page",
            Self::Block2m => "_block2m",
            Self::Block1g => "_block1g",
            Self::TableAt => "_table_at",
        }
    }

    /// The alignment the target needs for this shape.
    const fn alignment(self) -> u64 {
        match self {
            Self::Page => 1,
            Self::Block2m => MIB2,
            Self::Block1g => GIB1,
            Self::TableAt => KIB4,
        }
    }

    /// The VA at which a case accesses `target` mapped in this shape.
    pub const fn va(self, target: u64) -> u64 {
        match self {
            Self::Page => WINDOW + (target & (KIB4 - 1)),
            _ => WINDOW,
        }
    }

    /// Whether `target` can be mapped in this shape: aligned, and encodable in a descriptor.
    pub const fn can_map(self, target: u64) -> bool {
        target & !OA_MASK & !(KIB4 - 1) == 0
            && target.is_multiple_of(self.alignment())
            && self.va(target) != target
    }
}

/// One 4K translation table.
#[repr(C, align(4096))]
struct Table([u64; 512]);

/// How many tables the pool holds: L0, the identity L1, up to 5 identity L2s, the window's L1,
/// L2 and L3.
const POOL_TABLES: usize = 10;
const L0: usize = 0;
const ID_L1: usize = 1;
const FIRST_ID_L2: usize = 2;
const WIN_L1: usize = POOL_TABLES - 3;
const WIN_L2: usize = POOL_TABLES - 2;
const WIN_L3: usize = POOL_TABLES - 1;

/// The tables, in BSS (so zeroed at boot: all entries invalid).
struct Pool(UnsafeCell<[Table; POOL_TABLES]>);

// SAFETY: One CPU runs the probe with interrupts masked; the exception handlers never touch the
// pool, so its entries are never accessed concurrently. No reference into it escapes.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool(UnsafeCell::new([const { Table([0; 512]) }; POOL_TABLES]));

/// The physical (= identity) address of table `table`.
fn table_address(table: usize) -> u64 {
    assert!(table < POOL_TABLES, "table index within the pool");
    POOL.0.get() as u64 + (table as u64) * KIB4
}

/// Writes entry `index` of table `table`.
fn set_entry(table: usize, index: u64, descriptor: u64) {
    assert!(index < 512, "a 4K table has 512 entries");
    let entry = (table_address(table) + index * 8) as *mut u64;
    // SAFETY: `entry` is inside the pool (both indices checked), which nothing else references;
    // volatile, so the walker (which the compiler does not see) reads what is written here.
    unsafe { ptr::write_volatile(entry, descriptor) };
}

/// Reads entry `index` of table `table`.
fn entry(table: usize, index: u64) -> u64 {
    assert!(index < 512, "a 4K table has 512 entries");
    // SAFETY: as in `set_entry`, a read inside the pool.
    unsafe { ptr::read_volatile((table_address(table) + index * 8) as *const u64) }
}

/// The index of `va` in a table at `level` (4K granule: 9 bits per level from bit 39 down).
const fn index(va: u64, level: u32) -> u64 {
    (va >> (39 - 9 * level)) & 511
}

/// Why the identity map could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// RAM or the UART lies above the first 512 GiB (the identity map uses level-0 entry 0).
    OutOfReach,
    /// RAM spans more GiB than the pool has level-2 tables for.
    PoolExhausted,
}

/// Identity-maps the 2 MiB block at `address` with `attributes`, allocating level-2 tables.
fn identity_2m(address: u64, attributes: u64, next_l2: &mut usize) -> Result<(), MapError> {
    if index(address, 0) != 0 {
        return Err(MapError::OutOfReach);
    }
    let l1 = index(address, 1);
    if entry(ID_L1, l1) == 0 {
        if *next_l2 >= WIN_L1 {
            return Err(MapError::PoolExhausted);
        }
        set_entry(ID_L1, l1, table_address(*next_l2) | VALID_TABLE);
        *next_l2 += 1;
    }
    let l2 = (entry(ID_L1, l1) & OA_MASK) as usize;
    let l2_table = (l2 - table_address(0) as usize) / KIB4 as usize;
    let block = (address & !(MIB2 - 1)) | attributes | VALID_BLOCK;
    set_entry(l2_table, index(address, 2), block);
    Ok(())
}

/// Builds the identity map of `ram` (base, size) and the UART, points the window's level-0
/// entry at its level-1 table, and turns the MMU on with `TCR_EL1.IPS` = `ips`.
///
/// # Errors
///
/// [`MapError`] when RAM or the UART cannot be mapped with the pool's tables.
pub fn enable(ram: (u64, u64), uart: u64, ips: u64, sctlr: u64) -> Result<(), MapError> {
    let mut next_l2 = FIRST_ID_L2;
    set_entry(L0, 0, table_address(ID_L1) | VALID_TABLE);
    let (base, size) = ram;
    let mut block = base & !(MIB2 - 1);
    while block < base + size {
        identity_2m(block, ATTR_NORMAL | SH_INNER | AF, &mut next_l2)?;
        block += MIB2;
    }
    identity_2m(uart, ATTR_DEVICE | AF | PXN | UXN, &mut next_l2)?;
    set_entry(L0, index(WINDOW, 0), table_address(WIN_L1) | VALID_TABLE);
    let tcr = TCR_BASE | (ips << 32);
    // SAFETY: The tables just built map all of RAM (code, stack, data, device tree) and the
    // console by identity, so the running code finds everything where it was when `M` turns on.
    unsafe {
        regs::set_translation(MAIR, tcr, table_address(L0));
        regs::set_sctlr_el1(sctlr | 1);
    }
    Ok(())
}

/// Maps `target` at the window in `shape`, for EL0 access (read/write, executable at EL0) or EL1
/// only (read/write, executable at EL1), replacing the previous case's mapping.
pub fn map_window(shape: Shape, target: u64, el0: bool) {
    let permissions = if el0 { AP_EL0_RW | PXN } else { UXN };
    let leaf = ATTR_NORMAL | SH_INNER | AF | permissions;
    let l1 = index(WINDOW, 1);
    // Break: the old mapping is gone from the tables and the TLBs before the new one appears.
    set_entry(WIN_L1, l1, 0);
    set_entry(WIN_L2, 0, 0);
    set_entry(WIN_L3, 0, 0);
    regs::flush_tlb();
    let page = target & OA_MASK;
    let descriptor = match shape {
        Shape::Page => {
            set_entry(WIN_L3, 0, page | leaf | VALID_TABLE);
            set_entry(WIN_L2, 0, table_address(WIN_L3) | VALID_TABLE);
            table_address(WIN_L2) | VALID_TABLE
        }
        Shape::Block2m => {
            set_entry(WIN_L2, 0, page | leaf | VALID_BLOCK);
            table_address(WIN_L2) | VALID_TABLE
        }
        Shape::Block1g => page | leaf | VALID_BLOCK,
        Shape::TableAt => page | VALID_TABLE,
    };
    // Make: the new level-1 entry last, then DSB + TLBI + ISB before the case runs.
    set_entry(WIN_L1, l1, descriptor);
    regs::flush_tlb();
}

/// The `TCR_EL1.IPS` encoding for a PA size in bits (32, 36, 40, 42, 44, 48, 52).
pub const fn ips_encoding(bits: u32) -> Option<u64> {
    match bits {
        32 => Some(0),
        36 => Some(1),
        40 => Some(2),
        42 => Some(3),
        44 => Some(4),
        48 => Some(5),
        52 => Some(6),
        _ => None,
    }
}
