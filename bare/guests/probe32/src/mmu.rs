//! The probe's stage-1 tables (`probe.mmu=lpae|short`) and the per-case window mapping.
//!
//! Identity maps: RAM (Normal, PL0 read/write so that USR cases can run the snippets, executable)
//! and the UART (Device, PL1 only, never executable); with `probe.hivecs=1` also the vector page
//! at `0xffff0000`. The vector page in use is PL1-only wherever it is mapped: with `SCTLR.SPAN`
//! = 0 an exception sets `CPSR.PAN`, and QEMU (departing from the Arm ARM, which exempts
//! instruction fetches from PAN) then refuses privileged fetches from PL0-accessible LPAE pages;
//! the stubs clear PAN before touching anything else. Each case then maps its target at the window VA (`layout::WINDOW`) in its
//! shape, PL1-only for SVC cases and PL0 read/write for USR cases, executable, with a break:
//! the old window entries are cleared, the TLB invalidated, the new ones written, the TLB
//! invalidated again. With `probe.ee=1` every descriptor is stored big-endian (`SCTLR.EE` sets
//! the endianness of table walks). Tables live in the probe's BSS; walks are Non-cacheable and
//! `SCTLR.C` stays 0.

use core::cell::UnsafeCell;

use crate::regs;
use moat_guest_probe32::config::Mmu;
use moat_guest_probe32::kinds::Shape;
use moat_guest_probe32::layout::{self as l, GIB1, KIB4, MIB1, MIB2};

/// `SCTLR` bits: M (0), C (2), TRE (28), AFE (29).
const SCTLR_M: u32 = 1 << 0;
const SCTLR_C: u32 = 1 << 2;
const SCTLR_TRE: u32 = 1 << 28;
const SCTLR_AFE: u32 = 1 << 29;

/// A 4 KiB-aligned long-format table.
#[repr(C, align(4096))]
struct LdTable([u64; 512]);

/// The 16 KiB-aligned short-format level-1 table (`TTBCR.N` = 0).
#[repr(C, align(16384))]
struct SdL1([u32; 4096]);

/// A 1 KiB-aligned short-format level-2 table.
#[repr(C, align(1024))]
struct SdL2([u32; 256]);

/// Every table the probe may use.
#[repr(C)]
struct Tables {
    sd_l1: SdL1,
    sd_window: SdL2,
    sd_high: SdL2,
    sd_image: SdL2,
    ld_l1: LdTable,
    ld_low: LdTable,
    ld_ram: LdTable,
    ld_window: LdTable,
    ld_window_l3: LdTable,
    ld_high: LdTable,
    ld_high_l3: LdTable,
    ld_image_l3: LdTable,
}

/// The tables and how they are written.
struct State {
    tables: Tables,
    mmu: Mmu,
    ee: bool,
}

struct Slot(UnsafeCell<State>);

// SAFETY: one CPU, interrupts masked; only this module touches the state, never re-entrantly.
unsafe impl Sync for Slot {}

static STATE: Slot = Slot(UnsafeCell::new(State {
    tables: Tables {
        sd_l1: SdL1([0; 4096]),
        sd_window: SdL2([0; 256]),
        sd_high: SdL2([0; 256]),
        sd_image: SdL2([0; 256]),
        ld_l1: LdTable([0; 512]),
        ld_low: LdTable([0; 512]),
        ld_ram: LdTable([0; 512]),
        ld_window: LdTable([0; 512]),
        ld_window_l3: LdTable([0; 512]),
        ld_high: LdTable([0; 512]),
        ld_high_l3: LdTable([0; 512]),
        ld_image_l3: LdTable([0; 512]),
    },
    mmu: Mmu::Off,
    ee: false,
}));

/// The state, borrowed for one operation.
fn state() -> &'static mut State {
    // SAFETY: single CPU, interrupts masked, and no caller holds the borrow across a call back
    // into this module: each public function takes it once.
    unsafe { &mut *STATE.0.get() }
}

/// Stores a long descriptor (big-endian with `SCTLR.EE`).
fn ld(ee: bool, slot: &mut u64, value: u64) {
    let value = if ee { value.swap_bytes() } else { value };
    // SAFETY: `slot` is a valid, aligned table entry; volatile so the walk sees the store.
    unsafe { core::ptr::write_volatile(slot, value) };
}

/// Stores a short descriptor (big-endian with `SCTLR.EE`).
fn sd(ee: bool, slot: &mut u32, value: u32) {
    let value = if ee { value.swap_bytes() } else { value };
    // SAFETY: as in `ld`.
    unsafe { core::ptr::write_volatile(slot, value) };
}

fn address_of<T>(table: &T) -> u64 {
    core::ptr::from_ref(table) as usize as u64
}

/// Builds the identity map (and the high vectors: `vectors`, the vector page in use) in `mmu`'s
/// format and turns the MMU on.
///
/// # Errors
///
/// When RAM does not lie in \[1 GiB, 2 GiB) or the UART not below 1 GiB (what the tables map).
pub fn enable(
    mmu: Mmu,
    ram: Region,
    uart: u64,
    ee: bool,
    vectors: u64,
) -> Result<(), &'static str> {
    if ram.base < GIB1 || ram.base + ram.size > 2 * GIB1 || uart >= GIB1 {
        return Err("RAM or UART beyond what the probe's tables map");
    }
    let s = state();
    s.mmu = mmu;
    s.ee = ee;
    match mmu {
        Mmu::Off => return Ok(()),
        Mmu::Lpae => build_lpae(&mut s.tables, ee, ram, uart, vectors),
        Mmu::Short => build_short(&mut s.tables, ee, ram, uart, vectors),
    }
    let sctlr = regs::sctlr() & !(SCTLR_C | SCTLR_TRE | SCTLR_AFE);
    // SAFETY: the tables just built map all of RAM (code, data, stacks, tables, device tree)
    // and the UART at their own addresses, so turning the MMU on changes no address the probe
    // uses; the EE bit the walks will use is set by the caller before any further table read,
    // so with probe.ee=1 the MMU is enabled together with EE (see `run::set_up`).
    unsafe {
        if mmu == Mmu::Lpae {
            regs::set_mair0(l::MAIR0);
            regs::set_mair1(0);
            regs::set_ttbcr(l::TTBCR_LPAE);
            regs::set_ttbr0(address_of(&s.tables.ld_l1));
        } else {
            regs::set_dacr(l::DACR_CLIENT);
            regs::set_ttbcr(0);
            regs::set_ttbr0(address_of(&s.tables.sd_l1));
        }
        regs::tlb_invalidate_all();
        let ee_bit = if ee { 1 << 25 } else { 0 };
        regs::set_sctlr(sctlr | SCTLR_M | ee_bit);
    }
    Ok(())
}

fn build_lpae(t: &mut Tables, ee: bool, ram: Region, uart: u64, vectors: u64) {
    ld(ee, &mut t.ld_l1.0[0], l::ld_table(address_of(&t.ld_low)));
    ld(ee, &mut t.ld_l1.0[1], l::ld_table(address_of(&t.ld_ram)));
    let uart_block = uart & !(MIB2 - 1);
    let index = l::ld_index(uart_block as u32, 2);
    ld(
        ee,
        &mut t.ld_low.0[index],
        l::ld_block(uart_block, l::LD_DEVICE_ATTRS),
    );
    let mut block = ram.base & !(MIB2 - 1);
    while block < ram.base + ram.size {
        let index = l::ld_index(block as u32, 2);
        ld(
            ee,
            &mut t.ld_ram.0[index],
            l::ld_block(block, l::ld_normal(true)),
        );
        block += MIB2;
    }
    // The 2 MiB holding the vector page in pages, the vector page PL1-only (see the module doc).
    let block = vectors & !(MIB2 - 1);
    for (i, slot) in t.ld_image_l3.0.iter_mut().enumerate() {
        let page = block + i as u64 * KIB4;
        ld(ee, slot, l::ld_page(page, l::ld_normal(page != vectors)));
    }
    let index = l::ld_index(block as u32, 2);
    ld(
        ee,
        &mut t.ld_ram.0[index],
        l::ld_table(address_of(&t.ld_image_l3)),
    );
    ld(ee, &mut t.ld_l1.0[3], l::ld_table(address_of(&t.ld_high)));
    ld(
        ee,
        &mut t.ld_high.0[l::ld_index(l::HIVECS, 2)],
        l::ld_table(address_of(&t.ld_high_l3)),
    );
    let vectors = l::ld_page(vectors, l::ld_normal(false));
    ld(ee, &mut t.ld_high_l3.0[l::ld_index(l::HIVECS, 3)], vectors);
}

fn build_short(t: &mut Tables, ee: bool, ram: Region, uart: u64, vectors: u64) {
    let uart_section = uart & !(MIB1 - 1);
    let device = l::sd_section(uart_section, l::SD_SECTION_DEVICE);
    sd(ee, &mut t.sd_l1.0[(uart_section >> 20) as usize], device);
    let mut section = ram.base & !(MIB1 - 1);
    while section < ram.base + ram.size {
        let normal = l::sd_section(section, l::sd_section_normal(true));
        sd(ee, &mut t.sd_l1.0[(section >> 20) as usize], normal);
        section += MIB1;
    }
    // The 1 MiB holding the vector page in small pages, the vector page PL1-only.
    let section = vectors & !(MIB1 - 1);
    for (i, slot) in t.sd_image.0.iter_mut().enumerate() {
        let page = section + i as u64 * KIB4;
        sd(
            ee,
            slot,
            l::sd_small_page(page, l::sd_page_normal(page != vectors)),
        );
    }
    let image = l::sd_page_table(address_of(&t.sd_image));
    sd(ee, &mut t.sd_l1.0[(section >> 20) as usize], image);
    let high = l::sd_page_table(address_of(&t.sd_high));
    sd(ee, &mut t.sd_l1.0[(l::HIVECS >> 20) as usize], high);
    let vectors = l::sd_small_page(vectors, l::sd_page_normal(false));
    sd(
        ee,
        &mut t.sd_high.0[((l::HIVECS >> 12) & 0xff) as usize],
        vectors,
    );
}

/// Whether the current format can map `address` in `shape` (and the window VA differs from it).
pub fn can_map(shape: Shape, address: u64) -> bool {
    l::can_map(shape, address, state().mmu == Mmu::Lpae)
        && u64::from(l::window_va(shape, address)) != address
}

/// Maps `address` at the window in `shape` (for a USR case if `pl0`); returns the VA to use.
pub fn map_window(shape: Shape, address: u64, pl0: bool) -> u32 {
    let s = state();
    let (ee, mmu) = (s.ee, s.mmu);
    let t = &mut s.tables;
    let window = l::ld_index(l::WINDOW, 1);
    let first = (l::WINDOW >> 20) as usize;
    let long = mmu == Mmu::Lpae;
    // Break: no window mapping, no TTBR1 split, then no cached translation.
    match mmu {
        Mmu::Lpae => ld(ee, &mut t.ld_l1.0[window], 0),
        _ => (first..first + 16).for_each(|i| sd(ee, &mut t.sd_l1.0[i], 0)),
    }
    // SAFETY: the default TTBCR of `enable`: TTBR0 alone translates everything again.
    unsafe { regs::set_ttbcr(if long { l::TTBCR_LPAE } else { 0 }) };
    regs::tlb_invalidate_all();
    let ld_attrs = l::ld_normal(pl0);
    match (mmu, shape) {
        (_, Shape::TtbrAt) => {
            let (table, _) = l::ttbr_at(address, long);
            let split = if long {
                l::TTBCR_LPAE_SPLIT
            } else {
                l::TTBCR_SHORT_SPLIT
            };
            // SAFETY: the split gives TTBR1 the VAs from 2^31 only: the window, the unused
            // rest of that half and, with probe.hivecs=1, the high vectors, which is why
            // `run::skip` skips this shape then. The image, RAM and UART lie below 2^31.
            unsafe {
                regs::set_ttbr1(table);
                regs::set_ttbcr(split);
            }
        }
        (Mmu::Lpae, Shape::TableAtL2) => {
            ld(ee, &mut t.ld_window.0[0], l::ld_table(address));
            ld(
                ee,
                &mut t.ld_l1.0[window],
                l::ld_table(address_of(&t.ld_window)),
            );
        }
        (Mmu::Lpae, Shape::Block1g) => {
            ld(ee, &mut t.ld_l1.0[window], l::ld_block(address, ld_attrs))
        }
        (Mmu::Lpae, Shape::TableAt) => ld(ee, &mut t.ld_l1.0[window], l::ld_table(address)),
        (Mmu::Lpae, Shape::Block2m) => {
            ld(ee, &mut t.ld_window.0[0], l::ld_block(address, ld_attrs));
            ld(
                ee,
                &mut t.ld_l1.0[window],
                l::ld_table(address_of(&t.ld_window)),
            );
        }
        (Mmu::Lpae, _) => {
            ld(ee, &mut t.ld_window_l3.0[0], l::ld_page(address, ld_attrs));
            ld(
                ee,
                &mut t.ld_window.0[0],
                l::ld_table(address_of(&t.ld_window_l3)),
            );
            ld(
                ee,
                &mut t.ld_l1.0[window],
                l::ld_table(address_of(&t.ld_window)),
            );
        }
        (_, Shape::Supersection) => {
            let descriptor = l::sd_supersection(address, l::sd_section_normal(pl0));
            (first..first + 16).for_each(|i| sd(ee, &mut t.sd_l1.0[i], descriptor));
        }
        (_, Shape::TableAt) => sd(ee, &mut t.sd_l1.0[first], l::sd_page_table(address)),
        (_, Shape::Page) => {
            let page = l::sd_small_page(address, l::sd_page_normal(pl0));
            sd(ee, &mut t.sd_window.0[0], page);
            sd(
                ee,
                &mut t.sd_l1.0[first],
                l::sd_page_table(address_of(&t.sd_window)),
            );
        }
        (_, _) => {
            let section = l::sd_section(address, l::sd_section_normal(pl0));
            sd(ee, &mut t.sd_l1.0[first], section);
        }
    }
    regs::tlb_invalidate_all();
    l::window_va(shape, address)
}

/// A range of physical memory, `[base, base + size)`.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Region {
    /// Whether `[address, address + len)` shares a byte with the region.
    pub fn touches(&self, address: u64, len: u64) -> bool {
        address < self.base + self.size && self.base < address.saturating_add(len)
    }
}
