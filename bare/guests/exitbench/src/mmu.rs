//! An identity stage-1 map for the abort with the MMU on: the load at `2^S` then goes through a
//! stage-1 walk first, as it does in an operating system (Arm ARM, "The VMSAv8-64 translation
//! table format", 4 KiB granule).
//!
//! 42-bit virtual addresses (`TCR_EL1.T0SZ` = 22), so the walk starts at level 0; three 1 GiB
//! level-1 blocks: the devices below RAM (Device-nGnRnE), the first GiB of RAM (Normal), and the
//! GiB at the abort address (Device-nGnRnE, nothing behind it). Caches stay off
//! (`SCTLR_EL1.C` = `I` = 0, walks Non-cacheable), so turning the MMU off again needs no cache
//! maintenance.

use core::arch::asm;
use core::cell::UnsafeCell;

/// Entries of one table (4 KiB granule).
const ENTRIES: usize = 512;
/// One level-1 block: 1 GiB.
const L1_BLOCK: usize = 1 << 30;
/// One level-0 entry's reach: 512 GiB.
const L0_REACH: usize = 1 << 39;

/// Descriptor bits \[1:0\]: a table (levels 0 to 2).
const TABLE: u64 = 0b11;
/// Descriptor bits \[1:0\]: a block (levels 1 and 2).
const BLOCK: u64 = 0b01;
/// Block `AttrIndx`, bits \[4:2\]: the `MAIR_EL1` attribute.
const fn attr_indx(index: u64) -> u64 {
    index << 2
}
/// Block `SH`, bits \[9:8\]: Inner Shareable.
const SH_INNER: u64 = 0b11 << 8;
/// Block `AF`, bit 10: the access flag, set so no access flag fault is taken.
const AF: u64 = 1 << 10;

/// `MAIR_EL1` attribute 0: Device-nGnRnE (0x00); attribute 1: Normal, Write-Back (0xFF).
const MAIR: u64 = 0xFF << 8;
const ATTR_DEVICE: u64 = 0;
const ATTR_NORMAL: u64 = 1;

/// `TCR_EL1`: T0SZ (bits \[5:0\]) = 22, 4 KiB granule (TG0 = 0), Non-cacheable walks
/// (IRGN0 = ORGN0 = 0), no TTBR1 walks (EPD1, bit 23); IPS (bits \[34:32\]) is added at run time.
const TCR_T0SZ: u64 = 22;
const TCR_EPD1: u64 = 1 << 23;
const TCR_IPS_SHIFT: u32 = 32;
/// `TCR_EL1.IPS` for 48 bits: the largest without FEAT_LPA (52-bit needs TCR_EL1.DS or 64K).
const IPS_48: u64 = 0b101;

/// `SCTLR_EL1.M` (bit 0), `C` (bit 2), `I` (bit 12).
const SCTLR_M: u64 = 1;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_I: u64 = 1 << 12;

/// The three tables, each 4 KiB-aligned.
#[repr(C, align(4096))]
struct Tables {
    l0: [u64; ENTRIES],
    low: [u64; ENTRIES],
    high: [u64; ENTRIES],
}

/// Written only by [`on`] with the MMU off and read only by the table walker.
struct TableCell(UnsafeCell<Tables>);
// SAFETY: only the boot CPU uses it, and only from `on`, which is not re-entrant.
unsafe impl Sync for TableCell {}

static TABLES: TableCell = TableCell(UnsafeCell::new(Tables {
    l0: [0; ENTRIES],
    low: [0; ENTRIES],
    high: [0; ENTRIES],
}));

/// Builds the identity map for RAM at `ram` and the abort address `abort_at`, and turns the
/// MMU on. Returns the `SCTLR_EL1` value to restore with [`off`].
pub fn on(ram: usize, abort_at: usize) -> u64 {
    let tables = TABLES.0.get();
    // SAFETY: the MMU is off and nothing else refers to the tables (see `TableCell`).
    let t = unsafe { &mut *tables };
    let block = |pa: usize, attr: u64| (pa as u64) | BLOCK | attr_indx(attr) | AF;
    let devices = 0usize;
    t.low[devices / L1_BLOCK] = block(devices, ATTR_DEVICE);
    t.low[ram / L1_BLOCK] = block(ram & !(L1_BLOCK - 1), ATTR_NORMAL) | SH_INNER;
    let high = abort_at % L0_REACH / L1_BLOCK;
    t.high[high] = block(abort_at & !(L1_BLOCK - 1), ATTR_DEVICE);
    t.l0[0] = (&raw const t.low) as u64 | TABLE;
    t.l0[abort_at / L0_REACH] = (&raw const t.high) as u64 | TABLE;
    let parange = moat_guest_rt::sysreg::field(mmfr0(), 0, 4);
    let tcr = TCR_T0SZ | TCR_EPD1 | (parange.min(IPS_48) << TCR_IPS_SHIFT);
    let sctlr = moat_guest_rt::sysreg::sctlr_el1();
    let on = (sctlr | SCTLR_M) & !(SCTLR_C | SCTLR_I);
    // SAFETY: the map is the identity on everything the guest touches (its image and stack in
    // RAM, the devices), so execution continues at the next instruction with the MMU on.
    unsafe {
        asm!(
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {ttbr}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            "msr sctlr_el1, {on}",
            "isb",
            mair = in(reg) MAIR,
            tcr = in(reg) tcr,
            ttbr = in(reg) tables as u64,
            on = in(reg) on,
            options(nostack),
        );
    }
    sctlr
}

/// Restores `SCTLR_EL1` (the MMU off) as [`on`] found it.
pub fn off(sctlr: u64) {
    // SAFETY: identity map, so the next instruction is where it was; caches were off, so memory
    // holds everything written with the MMU on.
    unsafe {
        asm!(
            "msr sctlr_el1, {}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            in(reg) sctlr,
            options(nostack),
        );
    }
}

/// `ID_AA64MMFR0_EL1`: PARange in bits \[3:0\].
fn mmfr0() -> u64 {
    let value: u64;
    // SAFETY: MRS of an ID register; no memory, stack or flags.
    unsafe { asm!("mrs {}, id_aa64mmfr0_el1", out(reg) value, options(nomem, nostack)) };
    value
}
