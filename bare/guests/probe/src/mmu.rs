//! The probe's stage-1 tables for `probe.mmu=on` (encoding in `moat_guest_probe::layout`): a pool
//! of 4K tables in BSS, the identity map of RAM and the UART, and the per-case window mapping,
//! replaced with break-before-make and a full EL1&0 TLB invalidation around every change.

use core::cell::UnsafeCell;
use core::ptr;

use moat_guest_probe::layout::{
    self, DEVICE_ATTRIBUTES, KIB4, MAIR, MIB2, OA_MASK, RAM_ATTRIBUTES, Shape, WINDOW,
};

use crate::regs;

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
    if layout::index(address, 0) != 0 {
        return Err(MapError::OutOfReach);
    }
    let l1 = layout::index(address, 1);
    if entry(ID_L1, l1) == 0 {
        if *next_l2 >= WIN_L1 {
            return Err(MapError::PoolExhausted);
        }
        set_entry(ID_L1, l1, layout::table(table_address(*next_l2)));
        *next_l2 += 1;
    }
    let l2_table = ((entry(ID_L1, l1) & OA_MASK) - table_address(0)) / KIB4;
    let block = layout::block_2m(address, attributes);
    set_entry(l2_table as usize, layout::index(address, 2), block);
    Ok(())
}

/// Builds the identity map of `ram` (base, size) and the UART, points the window's level-0
/// entry at its level-1 table, and turns the MMU on: `TCR_EL1.IPS` = `ips` (an encoding),
/// `SCTLR_EL1` = `sctlr` with M set.
///
/// # Errors
///
/// [`MapError`] when RAM or the UART cannot be mapped with the pool's tables.
pub fn enable(ram: (u64, u64), uart: u64, ips: u64, sctlr: u64) -> Result<(), MapError> {
    let mut next_l2 = FIRST_ID_L2;
    set_entry(L0, 0, layout::table(table_address(ID_L1)));
    let (base, size) = ram;
    let mut block = base & !(MIB2 - 1);
    while block < base + size {
        identity_2m(block, RAM_ATTRIBUTES, &mut next_l2)?;
        block += MIB2;
    }
    identity_2m(uart, DEVICE_ATTRIBUTES, &mut next_l2)?;
    set_entry(
        L0,
        layout::index(WINDOW, 0),
        layout::table(table_address(WIN_L1)),
    );
    // SAFETY: The tables just built map all of RAM (code, stack, data, device tree) and the
    // console by identity, so the running code finds everything where it was when `M` turns on.
    unsafe {
        regs::set_translation(MAIR, layout::tcr(ips), table_address(L0));
        regs::set_sctlr_el1(sctlr | 1);
    }
    Ok(())
}

/// Maps `target` at the window in `shape`, for EL0 or EL1 access, replacing the previous case's
/// mapping.
pub fn map_window(shape: Shape, target: u64, el0: bool) {
    let l1 = layout::index(WINDOW, 1);
    // Break: the old mapping leaves the tables and the TLBs before the new one appears.
    set_entry(WIN_L1, l1, 0);
    set_entry(WIN_L2, 0, 0);
    set_entry(WIN_L3, 0, 0);
    regs::flush_tlb();
    let entries = shape.window_entries(target, el0, table_address(WIN_L2), table_address(WIN_L3));
    // Make: the lower levels first, the level-1 entry that makes them reachable last.
    if let Some(l3) = entries.l3 {
        set_entry(WIN_L3, 0, l3);
    }
    if let Some(l2) = entries.l2 {
        set_entry(WIN_L2, 0, l2);
    }
    set_entry(WIN_L1, l1, entries.l1);
    regs::flush_tlb();
}
