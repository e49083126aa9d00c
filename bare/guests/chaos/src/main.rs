//! `moat-guest-chaos`: the differential chaos guest (issue 10, item 2). On every vCPU it runs a
//! seeded stream of operations at EL1 — loads and stores of every size, aligned and not, by
//! address class; branches to addresses of each class; cache maintenance by VA and `AT`;
//! `MRS` of random `op0` = 3 encodings and `MSR` of the value read; HVC and SMC with random
//! function IDs and arguments; random instruction words; writes of the vCPU's own GIC state —
//! records every exception (vector, `ESR_EL1`, `FAR_EL1`, `ELR_EL1`, `SPSR_EL1`) and continues.
//! Operation `i` of vCPU `c` depends only on `(seed, c, i)` (`ops::Rng`). `./x chaos` runs it
//! bare on QEMU (EL1, the same CPU model) and under Moat and compares the block hashes.
//!
//! Bootargs: `chaos.seed=S` (decimal or 0x-hex), `chaos.ops=N` (per vCPU), `chaos.smp=N`
//! (the vCPUs to start, with PSCI `CPU_ON`), `chaos.block=B` (ops per hashed block, default
//! 1024), `chaos.detail=b,b,..` (at most 4 blocks whose every record is printed) or
//! `chaos.detail=all`, `chaos.only=a-b,c,..` (run only these op indices: the reducer's list),
//! `chaos.full=1` (also the operations that differ by design, left out of the default mix:
//! `ops.rs`), `chaos.el0=1` (a quarter of the loads, stores, branches, cache/`AT`,
//! system-register, SMCCC and instruction-word ops run at EL0 under EL0 access controls drawn
//! per op: `ops::el0_controls`), `chaos.irq=1` (the GIC enabled, interrupt probes (`ops::irq_probe`), timer
//! interrupts woken from `WFI` or PSCI `CPU_SUSPEND` (`ops::timer_irq`), and rounds that cross
//! vCPUs, checked by invariant (`cross.rs`)).
//! `chaos.seed=clock` takes the seed from the virtual counter at start (printed on the
//! `CHAOS-START` line, so the run can be repeated with `./x chaos --seed`), and
//! `chaos.end=reset` ends the run with PSCI `SYSTEM_RESET` instead of `SYSTEM_OFF`: with
//! `on-reset = "restart"` the VM runs round after round, each with a seed of its own
//! (`./x neighbour`, the hostile neighbour of issue 11).
//!
//! Output, once every vCPU is done (vCPU 0 prints for all, so lines never interleave):
//! `CHAOS-BLOCK <cpu> <block> <hash> <ops>` (FNV-1a over the block's records),
//! `CHAOS-OP <cpu> <index> <tag> <status> <value> <far> <elr> <spsr> <vector>` (hex, detail
//! blocks only), `CHAOS-EC <cpu> <ec> <count>` (exceptions taken, by class),
//! `CHAOS-ERROR <cpu> invariant: ...` for a vCPU that broke an invariant of the rounds,
//! `CHAOS-DONE <cpu> <ops>`, or `CHAOS-HANG <cpu> <ops done>` for a vCPU that stopped making
//! progress, then `CHAOS-END`.
#![no_std]
#![no_main]

mod cross;
mod exec;
mod ops;

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

use exec::MAX_CPUS;
use moat_guest_rt::{BootInfo, println, psci};
use ops::{Layout, Record};

moat_guest_rt::entry!(main);

/// Blocks hashed per vCPU, at most.
const MAX_BLOCKS: usize = 16 * 1024;
/// Detail records kept per vCPU.
const DETAIL_CAP: usize = 4096;
/// Detail blocks asked for, at most.
const MAX_DETAIL: usize = 4;
/// Ranges in `chaos.only`, at most.
const MAX_RANGES: usize = 1024;

/// A cell written by one vCPU and read by vCPU 0 after that vCPU said it is done.
struct PerCpu<T>(UnsafeCell<[T; MAX_CPUS]>);
// SAFETY: element `c` is written only by vCPU `c` before it sets `STATE[c]` = DONE (a store
// after a DSB), and read by vCPU 0 only after it saw DONE.
unsafe impl<T> Sync for PerCpu<T> {}

impl<T> PerCpu<T> {
    fn get(&self, cpu: usize) -> *mut T {
        (self.0.get() as *mut T).wrapping_add(cpu)
    }
}

#[repr(C, align(65536))]
struct Data([u8; ops::DATA_SIZE as usize]);
#[repr(C, align(4096))]
struct Page([u8; 4096]);
#[repr(C, align(16))]
struct Stack([u8; 16 * 1024]);

static DATA: PerCpu<Data> = PerCpu(UnsafeCell::new(
    [const { Data([0; ops::DATA_SIZE as usize]) }; MAX_CPUS],
));
static SCRATCH: PerCpu<Page> = PerCpu(UnsafeCell::new([const { Page([0; 4096]) }; MAX_CPUS]));
static STACKS: PerCpu<Stack> = PerCpu(UnsafeCell::new([const { Stack([0; 16 * 1024]) }; MAX_CPUS]));
static HASHES: PerCpu<[u64; MAX_BLOCKS]> = PerCpu(UnsafeCell::new([[0; MAX_BLOCKS]; MAX_CPUS]));
static COUNTS: PerCpu<[u32; MAX_BLOCKS]> = PerCpu(UnsafeCell::new([[0; MAX_BLOCKS]; MAX_CPUS]));
/// A detail entry: the op's index, its record, and what it executed (X0..X7, the address
/// called, the first instruction word there when it is the scratch page).
#[derive(Clone, Copy)]
struct Detail {
    index: u64,
    record: Record,
    input: [u64; 8],
    entry: u64,
    word: u32,
}
static DETAIL: PerCpu<[Detail; DETAIL_CAP]> = PerCpu(UnsafeCell::new(
    [[Detail {
        index: 0,
        record: Record {
            tag: 0,
            status: 0,
            value: 0,
            far: 0,
            elr: 0,
            spsr: 0,
            vector: 0,
        },
        input: [0; 8],
        entry: 0,
        word: 0,
    }; DETAIL_CAP]; MAX_CPUS],
));
static DETAIL_LEN: PerCpu<usize> = PerCpu(UnsafeCell::new([0; MAX_CPUS]));

/// Each vCPU's progress (ops done) and state.
static PROGRESS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static STATE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(OFFLINE) }; MAX_CPUS];
const OFFLINE: u64 = 0;
const READY: u64 = 1;
const GO: u64 = 2;
const DONE: u64 = 3;

/// The run's parameters (written by vCPU 0 before it starts the others).
#[derive(Clone, Copy)]
struct Params {
    seed: u64,
    ops: u64,
    smp: usize,
    block: u64,
    detail_all: bool,
    detail: [u64; MAX_DETAIL],
    detail_len: usize,
    only: [(u64, u64); MAX_RANGES],
    only_len: usize,
    only_given: bool,
    uart: u64,
    pa_bits: u32,
    full: bool,
    irq: bool,
    el0: bool,
    pmu: bool,
    scxtnum: bool,
    end_reset: bool,
}

struct Shared(UnsafeCell<Params>);
// SAFETY: written by vCPU 0 before any other vCPU runs, read-only afterwards.
unsafe impl Sync for Shared {}
static PARAMS: Shared = Shared(UnsafeCell::new(Params {
    seed: 0,
    ops: 0,
    smp: 1,
    block: 1024,
    detail_all: false,
    detail: [0; MAX_DETAIL],
    detail_len: 0,
    only: [(0, 0); MAX_RANGES],
    only_len: 0,
    only_given: false,
    uart: 0x0900_0000,
    pa_bits: 40,
    full: false,
    irq: false,
    el0: false,
    pmu: false,
    scxtnum: false,
    end_reset: false,
}));

fn params() -> &'static Params {
    // SAFETY: read-only once the vCPUs run (see `Shared`).
    unsafe { &*PARAMS.0.get() }
}

/// This vCPU's index: `MPIDR_EL1.Aff0`.
pub fn cpu_index() -> usize {
    let mpidr: u64;
    // SAFETY: reads MPIDR_EL1; no memory.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack)) };
    (mpidr & 0xff) as usize
}

/// The virtual counter and its frequency (at least 1).
pub fn counter() -> (u64, u64) {
    let (now, freq): (u64, u64);
    // SAFETY: reads the virtual counter and its frequency; no memory.
    unsafe {
        asm!("isb", "mrs {}, cntvct_el0", "mrs {}, cntfrq_el0", out(reg) now, out(reg) freq,
            options(nomem, nostack));
    }
    (now, freq.max(1))
}

fn main(boot: &BootInfo) {
    // SAFETY: no other vCPU runs yet.
    let p = unsafe { &mut *PARAMS.0.get() };
    if let Err(e) = parse(boot.bootargs, p) {
        println!("CHAOS-ERROR {e}");
        return;
    }
    p.uart = boot.uart.unwrap_or(0x0900_0000) as u64;
    let (mmfr0, dfr0, pfr0, pfr1): (u64, u64, u64, u64);
    // SAFETY: reads ID_AA64MMFR0_EL1, ID_AA64DFR0_EL1, ID_AA64PFR0_EL1, ID_AA64PFR1_EL1; no
    // memory.
    unsafe {
        asm!("mrs {}, id_aa64mmfr0_el1", "mrs {}, id_aa64dfr0_el1", "mrs {}, id_aa64pfr0_el1",
            "mrs {}, id_aa64pfr1_el1", out(reg) mmfr0, out(reg) dfr0, out(reg) pfr0,
            out(reg) pfr1, options(nomem, nostack));
    }
    // ID_AA64DFR0_EL1.PMUVer, bits [11:8]: 0 none, 0xF IMPLEMENTATION DEFINED (not the Arm PMU).
    p.pmu = !matches!((dfr0 >> 8) & 0xf, 0 | 0xf);
    // ID_AA64PFR0_EL1.CSV2 [59:56] >= 2 (FEAT_CSV2_2), or 1 with ID_AA64PFR1_EL1.CSV2_frac
    // [35:32] >= 2 (FEAT_CSV2_1p2): SCXTNUM_EL0 exists.
    let csv2 = (pfr0 >> 56) & 0xf;
    p.scxtnum = csv2 >= 2 || (csv2 == 1 && (pfr1 >> 32) & 0xf >= 2);
    p.pa_bits = match mmfr0 & 0xf {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        _ => 52,
    };
    let p = params();
    println!(
        "CHAOS-START seed={:#x} ops={} smp={} block={} pa_bits={}",
        p.seed, p.ops, p.smp, p.block, p.pa_bits
    );
    if p.irq {
        ops::enable_distributor();
    }
    for cpu in 1..p.smp {
        if let Err(e) = start(cpu) {
            println!("CHAOS-ERROR vCPU {cpu}: {e}");
            return;
        }
    }
    for state in STATE.iter().take(p.smp).skip(1) {
        state.store(GO, Ordering::SeqCst);
    }
    run_ops(0);
    let mut hung = [false; MAX_CPUS];
    for (cpu, hang) in hung.iter_mut().enumerate().take(p.smp).skip(1) {
        *hang = !wait_done(cpu);
    }
    report(&hung);
    if p.end_reset {
        psci::system_reset();
    }
}

/// PSCI `CPU_ON` of vCPU `cpu`, then waits until it is ready.
fn start(cpu: usize) -> Result<(), &'static str> {
    let entry = chaos_secondary_entry as *const () as u64;
    let stack_top = STACKS.get(cpu) as u64 + size_of::<Stack>() as u64;
    let status = psci::smccc_call(0xc400_0003, &[cpu as u64, entry, stack_top])[0];
    if status != 0 {
        return Err("PSCI CPU_ON failed");
    }
    let (start, freq) = counter();
    while STATE[cpu].load(Ordering::SeqCst) != READY {
        if counter().0 - start > 10 * freq {
            return Err("did not come up");
        }
        // SAFETY: a hint; no memory.
        unsafe { asm!("yield", options(nomem, nostack)) };
    }
    Ok(())
}

/// Waits for vCPU `cpu` to finish; false if it made no progress for 60 s of counter time.
fn wait_done(cpu: usize) -> bool {
    let (mut since, freq) = counter();
    let mut last = PROGRESS[cpu].load(Ordering::SeqCst);
    loop {
        if STATE[cpu].load(Ordering::SeqCst) == DONE {
            return true;
        }
        let now = PROGRESS[cpu].load(Ordering::SeqCst);
        let (t, _) = counter();
        if now != last {
            last = now;
            since = t;
        } else if t - since > 60 * freq {
            return false;
        }
        // SAFETY: a hint; no memory.
        unsafe { asm!("yield", options(nomem, nostack)) };
    }
}

global_asm!(
    r#"
    .pushsection .text.chaos_secondary, "ax"
    .global chaos_secondary_entry
chaos_secondary_entry:              // PSCI CPU_ON: EL1, MMU off, X0 = context_id = stack top
    msr     daifset, #0xf
    msr     spsel, #1
    mov     sp, x0
    mrs     x1, sctlr_el1
    orr     x1, x1, #(1 << 1)       // SCTLR_EL1.A, as the runtime sets it on vCPU 0
    msr     sctlr_el1, x1
    isb
    mov     x29, xzr
    mov     x30, xzr
    bl      chaos_secondary_main
1:  wfe
    b       1b
    .popsection
"#
);

unsafe extern "C" {
    fn chaos_secondary_entry();
}

#[unsafe(no_mangle)]
extern "C" fn chaos_secondary_main() -> ! {
    let cpu = cpu_index();
    exec::install_vectors();
    STATE[cpu].store(READY, Ordering::SeqCst);
    while STATE[cpu].load(Ordering::SeqCst) != GO {
        // SAFETY: a hint; no memory.
        unsafe { asm!("yield", options(nomem, nostack)) };
    }
    run_ops(cpu);
    // Waits in WFI (nothing is ever signalled: interrupts are masked and the GIC stays
    // disabled), so that its host thread does not spin while vCPU 0 prints. Not CPU_OFF: the
    // other vCPUs' `CPU_ON` ops would start it at a random entry point.
    loop {
        // SAFETY: waits for an interrupt; no memory.
        unsafe { asm!("wfi", options(nomem, nostack)) };
    }
}

/// Runs this vCPU's operations, hashing each block and keeping the detail asked for.
fn run_ops(cpu: usize) {
    let p = params();
    exec::install_vectors();
    if p.irq {
        ops::enable_gic(cpu);
    }
    let scratch = SCRATCH.get(cpu) as u64;
    // The branch target of the fetch op's scratch class: a RET at scratch + 0x800.
    // SAFETY: the vCPU's own scratch page.
    unsafe { core::ptr::write_volatile((scratch + 0x800) as *mut u32, 0xd65f_03c0) };
    let layout = Layout {
        cpu,
        data: DATA.get(cpu) as u64,
        scratch,
        pa_bits: p.pa_bits,
        uart: p.uart,
        vcpus: p.smp,
        full: p.full,
        irq: p.irq,
        el0: p.el0,
        pmu: p.pmu,
        scxtnum: p.scxtnum,
        at_el0: false,
        fpen: 0,
    };
    // SAFETY: this vCPU's own elements (see `PerCpu`).
    let (hashes, counts, detail, detail_len) = unsafe {
        (
            &mut *HASHES.get(cpu),
            &mut *COUNTS.get(cpu),
            &mut *DETAIL.get(cpu),
            &mut *DETAIL_LEN.get(cpu),
        )
    };
    let blocks = p.ops.div_ceil(p.block).min(MAX_BLOCKS as u64) as usize;
    for block in 0..blocks {
        let mut hash = FNV_OFFSET;
        let lo = block as u64 * p.block;
        let hi = (lo + p.block).min(p.ops);
        let keep = p.detail_all || p.detail[..p.detail_len].contains(&(block as u64));
        for index in lo..hi {
            if p.only_given
                && !p.only[..p.only_len]
                    .iter()
                    .any(|&(a, b)| a <= index && index <= b)
            {
                continue;
            }
            // SAFETY: this vCPU's own executor state, between operations: an op that calls
            // no words (the interrupt probe) leaves it empty in its detail record.
            unsafe {
                (*exec::ctx(cpu)).entry = 0;
                (*exec::ctx(cpu)).input = [0; 8];
            }
            let record = if p.irq && cross::is_round(p.seed, index) {
                cross::round(p.seed, &layout, index)
            } else {
                ops::run(p.seed, &layout, index)
            };
            hash = fnv1a(hash, &record.words());
            counts[block] += 1;
            if keep && *detail_len < DETAIL_CAP {
                // SAFETY: this vCPU's own executor state, between operations.
                let (input, entry) = unsafe { ((*exec::ctx(cpu)).input, (*exec::ctx(cpu)).entry) };
                let word = if entry == scratch {
                    // SAFETY: the vCPU's own scratch page.
                    unsafe { core::ptr::read_volatile(scratch as *const u32) }
                } else {
                    0
                };
                detail[*detail_len] = Detail {
                    index,
                    record,
                    input,
                    entry,
                    word,
                };
                *detail_len += 1;
            }
            PROGRESS[cpu].store(index + 1, Ordering::Relaxed);
        }
        hashes[block] = hash;
    }
    // SAFETY: a barrier; the records above are visible before DONE.
    unsafe { asm!("dsb sy", options(nostack)) };
    STATE[cpu].store(DONE, Ordering::SeqCst);
}

/// Prints every vCPU's results.
fn report(hung: &[bool; MAX_CPUS]) {
    let p = params();
    let blocks = p.ops.div_ceil(p.block).min(MAX_BLOCKS as u64) as usize;
    for cpu in 0..p.smp {
        if hung[cpu] {
            println!("CHAOS-HANG {cpu} {}", PROGRESS[cpu].load(Ordering::SeqCst));
            continue;
        }
        // SAFETY: vCPU `cpu` is done (see `PerCpu`).
        let (hashes, counts, detail, detail_len) = unsafe {
            (
                &*HASHES.get(cpu),
                &*COUNTS.get(cpu),
                &*DETAIL.get(cpu),
                *DETAIL_LEN.get(cpu),
            )
        };
        let mut total = 0u64;
        for block in 0..blocks {
            if counts[block] > 0 {
                total += u64::from(counts[block]);
                println!(
                    "CHAOS-BLOCK {cpu} {block} {:016x} {}",
                    hashes[block], counts[block]
                );
            }
        }
        for d in &detail[..detail_len] {
            let r = &d.record;
            println!(
                "CHAOS-OP {cpu} {} {:x} {:x} {:x} {:x} {:x} {:x} {:x} entry={:x} word={:08x} in={:x},{:x},{:x},{:x},{:x},{:x},{:x},{:x}",
                d.index,
                r.tag,
                r.status,
                r.value,
                r.far,
                r.elr,
                r.spsr,
                r.vector,
                d.entry,
                d.word,
                d.input[0],
                d.input[1],
                d.input[2],
                d.input[3],
                d.input[4],
                d.input[5],
                d.input[6],
                d.input[7]
            );
        }
        // SAFETY: vCPU `cpu`'s executor state; it is done.
        let ec_counts = unsafe { (*exec::ctx(cpu)).ec_counts };
        for (ec, n) in ec_counts.iter().enumerate() {
            if *n > 0 {
                println!("CHAOS-EC {cpu} {ec:#04x} {n}");
            }
        }
        if let Some((count, index, code)) = cross::violations(cpu) {
            println!(
                "CHAOS-ERROR {cpu} invariant: {count} rounds broken, the first op {index}: {}",
                cross::Broken::describe(code)
            );
        }
        println!("CHAOS-DONE {cpu} {total}");
    }
    println!("CHAOS-END");
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a (64-bit) continued over `words`, little-endian.
fn fnv1a(mut hash: u64, words: &[u64]) -> u64 {
    for word in words {
        for byte in word.to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

fn number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Reads the bootargs into `p`.
fn parse(bootargs: &'static str, p: &mut Params) -> Result<(), &'static str> {
    for word in bootargs.split_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        match key {
            "chaos.seed" if value == "clock" => p.seed = counter().0,
            "chaos.seed" => p.seed = number(value).ok_or("chaos.seed: not a number")?,
            "chaos.end" => {
                p.end_reset = match value {
                    "reset" => true,
                    "off" => false,
                    _ => return Err("chaos.end: want reset or off"),
                };
            }
            "chaos.ops" => p.ops = number(value).ok_or("chaos.ops: not a number")?,
            "chaos.smp" => {
                p.smp = number(value)
                    .filter(|&n| (1..=MAX_CPUS as u64).contains(&n))
                    .ok_or("chaos.smp: want 1..4")? as usize;
            }
            "chaos.block" => {
                p.block = number(value)
                    .filter(|&n| n > 0)
                    .ok_or("chaos.block: want a positive number")?;
            }
            "chaos.detail" if value == "all" => p.detail_all = true,
            "chaos.full" => p.full = value == "1",
            "chaos.el0" => p.el0 = value == "1",
            "chaos.irq" => p.irq = value == "1",
            "chaos.detail" => {
                for item in value.split(',') {
                    if p.detail_len == MAX_DETAIL {
                        return Err("chaos.detail: at most 4 blocks");
                    }
                    p.detail[p.detail_len] = number(item).ok_or("chaos.detail: not a number")?;
                    p.detail_len += 1;
                }
            }
            "chaos.only" => {
                p.only_given = true;
                for item in value.split(',').filter(|s| !s.is_empty()) {
                    if p.only_len == MAX_RANGES {
                        return Err("chaos.only: too many ranges");
                    }
                    let (a, b) = item.split_once('-').unwrap_or((item, item));
                    let range = (
                        number(a).ok_or("chaos.only: not a number")?,
                        number(b).ok_or("chaos.only: not a number")?,
                    );
                    p.only[p.only_len] = range;
                    p.only_len += 1;
                }
            }
            _ => {}
        }
    }
    if p.ops.div_ceil(p.block) > MAX_BLOCKS as u64 {
        return Err("chaos.ops / chaos.block: more than 16384 blocks");
    }
    Ok(())
}
