//! Operations that cross vCPUs (issue 10 item 2), compared by invariant rather than by timing.
//!
//! With `chaos.irq=1`, about one op index in 33 is a *round*: chosen from `(seed, index)` alone
//! ([`is_round`]), so every vCPU meets it at the same index and takes part. A round's plan
//! ([`plan`], the same on every vCPU) names a sender, a variant and the vCPUs that must receive
//! an interrupt:
//!
//! | variant | the sender | who receives |
//! | --- | --- | --- |
//! | 0 | an SGI to itself by `ICC_SGI1R_EL1` (`TargetList` = its own `Aff0` bit) | the sender |
//! | 1 | an SGI to one other vCPU (`TargetList`) | that vCPU (the sender alone on 1 vCPU) |
//! | 2 | an SGI to all but itself (`IRM` = 1) | every other vCPU (none on 1 vCPU) |
//! | 3 | an SGI to a random `TargetList` (possibly empty, possibly with itself) | the listed vCPUs |
//! | 4 | an SPI of the target's (its own SPIs, `GICD` word `1 + target`) made Group 1, edge-triggered, not active, routed to the target (`GICD_IROUTER`) and enabled, then pended (`GICD_ISPENDR`) | the target |
//! | 5 | random masks written to the target's SPI word of `GICD_I[SC]ENABLER`, `I[SC]PENDR`, `I[SC]ACTIVER`, then the three set-registers read back | nobody: every vCPU reads the same three words |
//! | 6 | an SGI to the target, which waits in PSCI `CPU_SUSPEND` (standby) with IRQs masked until one is pending, then unmasks them | the target (the sender itself one time in three) |
//!
//! The protocol: each vCPU first *quiesces* (IRQs masked: clears everything its own interrupts
//! left pending, `GICR_ICPENDR0` and its SPIs' `GICD_ICPENDR`, and makes the round's SGI INTID
//! Group 1, of the round's priority, not active and enabled on its own redistributor), then all
//! meet at barrier A; the sender acts; every vCPU that must receive waits with `PSTATE.I` clear
//! in a loop of loads, compares and branches ([`chaos_cross_wait`]) until the interrupt is taken
//! — asynchronously, at whatever instruction of the loop — acknowledges it (`ICC_IAR1_EL1`) and
//! ends it; then all meet at barrier B, waiting there with IRQs unmasked too, so that a second
//! delivery, or one to a vCPU that was not named, is taken and counted. Last, with IRQs masked,
//! `ICC_HPPIR1_EL1` must read 1023 (nothing left pending). The barriers are per-vCPU stamps
//! in memory (no read-modify-write: with the MMU off all memory is Device), each wait bounded
//! by [`TIMEOUT_S`] of the virtual counter.
//!
//! The invariants, checked on each side by the guest itself ([`check`]): every barrier met;
//! each vCPU named took the round's INTID exactly once and every other vCPU never; no other
//! INTID was taken; each interrupt was taken at the IRQ vector of the current EL with SP_ELx
//! (offset 0x280), with `SPSR_EL1.I` = 0 and `M` = EL1h (the interrupted loop ran unmasked),
//! `PSTATE.I` = 1 on entry (the exception masked it), and `ELR_EL1` inside the loop's window;
//! `CPU_SUSPEND` returned `SUCCESS`; in variant 5 every vCPU read what the sender read after
//! its writes. A violation is reported (`CHAOS-ERROR ... invariant`) whatever the other side
//! did. The record hashed (and so compared with the other side) holds only what the
//! invariants make timing-free: the counts, the vector, `SPSR_EL1.{I, M}`, `DAIF` on entry,
//! whether `ELR_EL1` was in the window, `HPPIR1`, the words read in variant 5, and for
//! variant 6 the exact `ELR_EL1` (the IRQ is taken at a fixed instruction there).

use crate::counter;
use crate::exec::{self, Ctx, MAX_CPUS};
use crate::ops::{GICD, GICR, Layout, Record, Rng, chaos_suspend_wait, end_interrupt};
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

/// A round's kind in its record's tag (`kind << 16 | variant << 8 | role`), after the kinds
/// of `ops::run`.
pub const KIND: u64 = 10;
/// Rounds per 100 op indices.
const ROUNDS_PER_100: u64 = 3;
/// The generator stream of the rounds' plans (a `cpu` no vCPU has).
const ROUND_STREAM: usize = 0xff;
/// A barrier or a delivery waits at most this long (virtual counter seconds).
const TIMEOUT_S: u64 = 10;
/// Interrupts taken in one round, at most (a storm ends the round).
const MAX_TAKEN: u32 = 8;
/// `ICC_HPPIR1_EL1` with nothing pending.
const SPURIOUS: u64 = 1023;
/// The vector offset of an IRQ from the current EL with SP_ELx.
const IRQ_VECTOR: u64 = 0x280;

/// Each vCPU's last barrier stamp ([`stamp`]), written by that vCPU only (read by the others
/// and by [`chaos_cross_wait`]).
#[unsafe(no_mangle)]
static CHAOS_ARRIVE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Variant 5: what the sender read back after its writes (enable, pending, active).
static SEEN: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
/// Invariant violations per vCPU (written by that vCPU only).
static VIOLATIONS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// The first violation per vCPU: op index << 8 | [`Broken`] code.
static FIRST: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// What a round found wrong.
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
pub enum Broken {
    /// A barrier timed out: a vCPU did not arrive.
    Barrier = 1,
    /// A vCPU named took the round's interrupt other than once, or one not named took it.
    Count = 2,
    /// Another INTID (or a special one) was taken.
    Other = 3,
    /// The interrupt was not taken at the IRQ vector.
    Vector = 4,
    /// `SPSR_EL1` does not show the unmasked EL1h loop.
    Spsr = 5,
    /// `PSTATE.I` was not set on entry.
    Daif = 6,
    /// `ELR_EL1` outside the waiting loop.
    Elr = 7,
    /// Something still pending afterwards.
    Pending = 8,
    /// Variant 5: a vCPU read other values than the sender.
    Shared = 9,
    /// `CPU_SUSPEND` returned other than `SUCCESS`.
    Suspend = 10,
}

impl Broken {
    /// For the report.
    pub fn describe(code: u64) -> &'static str {
        match code {
            1 => "a barrier timed out",
            2 => "the round's interrupt was not taken exactly once by each vCPU named",
            3 => "another interrupt was taken",
            4 => "the interrupt was not taken at the IRQ vector",
            5 => "SPSR_EL1 is not the unmasked EL1h loop",
            6 => "PSTATE.I was clear on entry",
            7 => "ELR_EL1 outside the waiting loop",
            8 => "ICC_HPPIR1_EL1 is not 1023 afterwards",
            9 => "GICD state read differs from the sender's",
            10 => "CPU_SUSPEND did not return SUCCESS",
            _ => "?",
        }
    }
}

/// vCPU `cpu`'s violations: (count, first op index, first code), if any.
pub fn violations(cpu: usize) -> Option<(u64, u64, u64)> {
    let n = VIOLATIONS[cpu].load(Ordering::SeqCst);
    let first = FIRST[cpu].load(Ordering::SeqCst);
    (n > 0).then_some((n, first >> 8, first & 0xff))
}

fn round_rng(seed: u64, index: u64) -> Rng {
    Rng::new(seed, ROUND_STREAM, index)
}

/// Whether op `index` is a round (the same answer on every vCPU).
pub fn is_round(seed: u64, index: u64) -> bool {
    round_rng(seed, index).below(100) < ROUNDS_PER_100
}

/// A round's plan: the same on every vCPU.
#[derive(Clone, Copy, Debug)]
struct Plan {
    variant: u8,
    sender: usize,
    /// The vCPUs that must take the interrupt (a bit per vCPU).
    targets: u64,
    /// The SPI's target (variants 4 and 5).
    target: usize,
    intid: u64,
    priority: u8,
    /// The `ICC_SGI1R_EL1` value (SGI variants).
    sgi1r: u64,
    /// Variant 5: the ISENABLER, ICENABLER, ISPENDR, ICPENDR, ISACTIVER, ICACTIVER masks.
    masks: [u32; 6],
}

fn plan(seed: u64, index: u64, n: usize) -> Plan {
    let mut rng = round_rng(seed, index);
    rng.below(100);
    let n64 = n as u64;
    let variant = rng.below(7) as u8;
    let sender = rng.below(n64) as usize;
    let sgi = rng.below(16);
    let priority = [0x00u8, 0x40, 0x80, 0xc0, 0xf0][rng.below(5) as usize];
    let other = if n > 1 {
        (sender + 1 + rng.below(n64 - 1) as usize) % n
    } else {
        sender
    };
    let all = (1u64 << n) - 1;
    let spi_target = rng.below(n64.min(3)) as usize;
    let mut p = Plan {
        variant,
        sender,
        targets: 0,
        target: spi_target,
        intid: sgi,
        priority,
        sgi1r: sgi << 24,
        masks: [0; 6],
    };
    match variant {
        0 => {
            p.targets = 1 << sender;
            p.sgi1r |= 1 << sender;
        }
        1 => {
            p.targets = 1 << other;
            p.sgi1r |= 1 << other;
        }
        2 => {
            p.targets = all & !(1 << sender);
            p.sgi1r |= 1 << 40; // IRM: every PE but the sender
        }
        3 => {
            p.targets = rng.below(all + 1);
            p.sgi1r |= p.targets;
        }
        4 => {
            p.intid = 32 * (1 + spi_target as u64) + rng.below(32);
            p.targets = 1 << spi_target;
        }
        5 => {
            for m in &mut p.masks {
                *m = rng.next() as u32;
            }
        }
        _ => {
            let t = if rng.below(3) == 0 { sender } else { other };
            p.targets = 1 << t;
            p.sgi1r |= 1 << t;
        }
    }
    p
}

/// The stamp of a barrier: increasing with the op index and the phase.
fn stamp(index: u64, phase: u64) -> u64 {
    (index + 1) << 2 | phase
}

/// The end of a wait: [`TIMEOUT_S`] from now, or a tenth of it on a vCPU that has already
/// broken an invariant (its run is failed already; the rest of it should not take the run's
/// time limit).
fn deadline() -> u64 {
    let (now, freq) = counter();
    let broken = VIOLATIONS.iter().any(|v| v.load(Ordering::SeqCst) != 0);
    let ticks = TIMEOUT_S * freq;
    now + if broken { ticks / 10 } else { ticks }
}

/// Arrives at barrier `(index, phase)` and waits, IRQs masked, until every vCPU has; false on
/// the time-out.
fn barrier(cpu: usize, n: usize, index: u64, phase: u64) -> bool {
    let s = stamp(index, phase);
    CHAOS_ARRIVE[cpu].store(s, Ordering::SeqCst);
    let end = deadline();
    loop {
        if CHAOS_ARRIVE[..n]
            .iter()
            .all(|a| a.load(Ordering::SeqCst) >= s)
        {
            return true;
        }
        if counter().0 > end {
            return false;
        }
        // SAFETY: a hint; no memory.
        unsafe { asm!("yield", options(nomem, nostack)) };
    }
}

global_asm!(
    r#"
    .pushsection .text.chaos_cross_wait, "ax"
    .global chaos_cross_wait
chaos_cross_wait:       // X0 = CHAOS_ARRIVE, X1 = stamp, X2 = vCPUs, X3 = deadline; I masked
    msr     daifclr, #2                   // IRQs unmasked: taken anywhere in the window
    .global chaos_cross_window
chaos_cross_window:
1:  mov     x4, xzr
2:  ldr     x5, [x0, x4, lsl #3]
    cmp     x5, x1
    b.lo    3f
    add     x4, x4, #1
    cmp     x4, x2
    b.lo    2b
    msr     daifset, #2                   // every vCPU has arrived
    mov     x0, xzr
    ret
3:  mrs     x5, cntvct_el0
    cmp     x5, x3
    b.lo    1b
    msr     daifset, #2                   // the deadline passed
    mov     x0, #1
    ret
    .global chaos_cross_window_end
chaos_cross_window_end:
    .popsection
"#
);

unsafe extern "C" {
    /// Waits with IRQs unmasked until every vCPU's stamp is at least X1, or the deadline;
    /// returns (X0) 1 on the deadline. An IRQ ends it through the chaos vectors.
    fn chaos_cross_wait();
    static chaos_cross_window: u8;
    static chaos_cross_window_end: u8;
}

/// What one vCPU took during a round.
#[derive(Default)]
struct Taken {
    /// The round's INTID taken.
    expected: u32,
    /// Other INTIDs taken.
    other: u32,
    /// The first interrupt's vector, `SPSR_EL1.{D,A,I,F,M}`, `DAIF` on entry, `ELR_EL1`.
    first: Option<(u64, u64, u64, u64)>,
    broken: Option<Broken>,
}

impl Taken {
    fn flag(&mut self, what: Broken) {
        self.broken.get_or_insert(what);
    }

    /// Acknowledges and ends the interrupt `ctx` took, and checks how it was taken.
    fn take(&mut self, ctx: &Ctx, intid: u64, window: (u64, u64)) {
        let (iar, ctlr): (u64, u64);
        // SAFETY: acknowledges the highest-priority pending interrupt and reads ICC_CTLR_EL1;
        // no memory.
        unsafe {
            asm!(
                "mrs {i}, S3_0_C12_C12_0",
                "mrs {c}, S3_0_C12_C12_4",
                i = out(reg) iar, c = out(reg) ctlr,
                options(nostack),
            );
        }
        end_interrupt(iar, ctlr);
        if iar & 0xff_ffff == intid {
            self.expected += 1;
        } else {
            self.other += 1;
            self.flag(Broken::Other);
        }
        if ctx.vector != IRQ_VECTOR {
            self.flag(Broken::Vector);
        }
        // SPSR_EL1.I (bit 7) clear, M[4:0] = EL1h (0b00101).
        if ctx.spsr & 0x80 != 0 || ctx.spsr & 0x1f != 0x5 {
            self.flag(Broken::Spsr);
        }
        if ctx.daif & 0x80 == 0 {
            self.flag(Broken::Daif);
        }
        if !(window.0..window.1).contains(&ctx.elr) {
            self.flag(Broken::Elr);
        }
        self.first
            .get_or_insert((ctx.vector, ctx.spsr & 0x3df, ctx.daif, ctx.elr));
    }
}

/// The cross wait: X0..X3 as [`chaos_cross_wait`] takes them.
fn wait(cpu: usize, n: usize, until: u64) -> &'static Ctx {
    let mut input = [0; 8];
    input[0] = CHAOS_ARRIVE.as_ptr() as u64;
    input[1] = until;
    input[2] = n as u64;
    input[3] = deadline();
    exec::exec(cpu, chaos_cross_wait as *const () as u64, input, false)
}

/// Where the IRQ of [`chaos_suspend_wait`] can be taken: once `MSR DAIFClr` has unmasked it,
/// before the `ISB` or after it (its context synchronization bounds when the unmasking takes
/// effect), never after the `MSR DAIFSet`.
fn suspend_window() -> (u64, u64) {
    let at = &raw const crate::ops::chaos_suspend_unmasked as u64;
    (at, at + 8)
}

fn window() -> (u64, u64) {
    (
        &raw const chaos_cross_window as u64,
        &raw const chaos_cross_window_end as u64,
    )
}

/// Clears what this vCPU's own interrupts left pending and makes the round's SGI INTID
/// deliverable on its redistributor (IRQs masked).
fn quiesce(cpu: usize, p: &Plan) {
    let sgi_frame = GICR + 0x2_0000 * cpu as u64 + 0x1_0000;
    let bit = 1u32 << (p.intid % 32);
    // SAFETY: the vCPU's own GIC registers (its redistributor's SGI frame, the distributor's
    // clear-pending word of its own SPIs), 32-bit and byte accesses the GIC supports.
    unsafe {
        ((sgi_frame + 0x280) as *mut u32).write_volatile(u32::MAX);
        if cpu < 3 {
            ((GICD + 0x280 + 4 * (1 + cpu as u64)) as *mut u32).write_volatile(u32::MAX);
        }
        if p.intid < 16 {
            let group = (sgi_frame + 0x080) as *mut u32;
            group.write_volatile(group.read_volatile() | bit);
            ((sgi_frame + 0x400 + p.intid) as *mut u8).write_volatile(p.priority);
            ((sgi_frame + 0x380) as *mut u32).write_volatile(bit);
            ((sgi_frame + 0x100) as *mut u32).write_volatile(bit);
        }
    }
}

/// The sender's action (after barrier A).
fn act(p: &Plan) {
    let word = 4 * (1 + p.target as u64);
    // SAFETY: ICC_SGI1R_EL1 (an SGI to the vCPUs the plan names), or the target's SPI
    // registers in the distributor (32-bit, byte and 64-bit IROUTER accesses the GIC
    // supports); the SPIs are routed to their own vCPU only, as every op of `--irq` keeps them.
    unsafe {
        match p.variant {
            4 => {
                let spi = p.intid;
                let bit = 1u32 << (spi % 32);
                ((GICD + 0x180 + word) as *mut u32).write_volatile(bit);
                let cfg = (GICD + 0xc00 + 4 * (spi / 16)) as *mut u32;
                cfg.write_volatile(cfg.read_volatile() | 2 << (2 * (spi % 16)));
                let group = (GICD + 0x080 + word) as *mut u32;
                group.write_volatile(group.read_volatile() | bit);
                ((GICD + 0x400 + spi) as *mut u8).write_volatile(p.priority);
                ((GICD + 0x6000 + 8 * spi) as *mut u64).write_volatile(p.target as u64);
                ((GICD + 0x380 + word) as *mut u32).write_volatile(bit);
                ((GICD + 0x280 + word) as *mut u32).write_volatile(bit);
                ((GICD + 0x100 + word) as *mut u32).write_volatile(bit);
                ((GICD + 0x200 + word) as *mut u32).write_volatile(bit);
            }
            5 => {
                let regs = [0x100, 0x180, 0x200, 0x280, 0x300, 0x380];
                for (reg, mask) in regs.iter().zip(p.masks) {
                    ((GICD + reg + word) as *mut u32).write_volatile(mask);
                }
                for (seen, reg) in SEEN.iter().zip([0x100, 0x200, 0x300]) {
                    seen.store(
                        u64::from(((GICD + reg + word) as *const u32).read_volatile()),
                        Ordering::SeqCst,
                    );
                }
            }
            _ => asm!("msr S3_0_C12_C11_5, {}", "isb", in(reg) p.sgi1r, options(nostack)),
        }
    }
}

/// Runs round `index` on this vCPU and returns its record.
pub fn round(seed: u64, layout: &Layout, index: u64) -> Record {
    let (cpu, n) = (layout.cpu, layout.vcpus);
    let p = plan(seed, index, n);
    let mine = p.targets >> cpu & 1 != 0;
    let mut taken = Taken::default();
    let mut suspend_status = 0;
    let mut suspend_elr = 0;
    quiesce(cpu, &p);
    if !barrier(cpu, n, index, 1) {
        taken.flag(Broken::Barrier);
    }
    if cpu == p.sender {
        act(&p);
    }
    if mine && p.variant == 6 {
        let entry = chaos_suspend_wait as *const () as u64;
        let ctx = exec::exec(cpu, entry, [0; 8], false);
        if ctx.taken == 0 {
            taken.flag(Broken::Count);
        } else {
            suspend_status = ctx.output[3];
            suspend_elr = ctx.elr.wrapping_sub(entry);
            if suspend_status != 0 {
                taken.flag(Broken::Suspend);
            }
            taken.take(ctx, p.intid, suspend_window());
        }
    } else if mine {
        // Until the interrupt: no vCPU stamps u64::MAX, so only an IRQ or the deadline ends
        // the wait.
        for _ in 0..MAX_TAKEN {
            let ctx = wait(cpu, n, u64::MAX);
            if ctx.taken == 0 {
                taken.flag(Broken::Count);
                break;
            }
            taken.take(ctx, p.intid, window());
            if taken.expected > 0 {
                break;
            }
        }
    }
    let mut shared = [0u64; 3];
    if p.variant == 5 {
        if !barrier(cpu, n, index, 2) {
            taken.flag(Broken::Barrier);
        }
        let word = 4 * (1 + p.target as u64);
        for (value, (reg, seen)) in shared
            .iter_mut()
            .zip([0x100, 0x200, 0x300].iter().zip(&SEEN))
        {
            // SAFETY: a 32-bit read of a distributor register: no side effect.
            *value = u64::from(unsafe { ((GICD + reg + word) as *const u32).read_volatile() });
            if *value != seen.load(Ordering::SeqCst) {
                taken.flag(Broken::Shared);
            }
        }
        // Barrier C: the target changes its own SPIs again only once every vCPU has read them.
        if !barrier(cpu, n, index, 3) {
            taken.flag(Broken::Barrier);
        }
    } else {
        // Barrier B, IRQs unmasked: a second delivery, or one to a vCPU not named, is taken.
        CHAOS_ARRIVE[cpu].store(stamp(index, 2), Ordering::SeqCst);
        for _ in 0..MAX_TAKEN {
            let ctx = wait(cpu, n, stamp(index, 2));
            if ctx.taken == 0 {
                if ctx.output[0] != 0 {
                    taken.flag(Broken::Barrier);
                }
                break;
            }
            taken.take(ctx, p.intid, window());
        }
        if taken.expected != u32::from(mine) {
            taken.flag(Broken::Count);
        }
    }
    let hppir: u64;
    // SAFETY: reads ICC_HPPIR1_EL1; no memory, no side effect.
    unsafe { asm!("isb", "mrs {}, S3_0_C12_C12_2", out(reg) hppir, options(nostack)) };
    let hppir = hppir & 0xff_ffff;
    if p.variant != 5 && hppir != SPURIOUS {
        taken.flag(Broken::Pending);
    }
    if let Some(what) = taken.broken {
        // Plain loads and stores (this vCPU's own counter): no read-modify-write atomics on
        // Device memory.
        let count = VIOLATIONS[cpu].load(Ordering::SeqCst);
        if count == 0 {
            FIRST[cpu].store(index << 8 | what as u64, Ordering::SeqCst);
        }
        VIOLATIONS[cpu].store(count + 1, Ordering::SeqCst);
    }
    let (vector, spsr, daif, elr) = taken.first.unwrap_or_default();
    let (lo, hi) = if p.variant == 6 && mine {
        suspend_window()
    } else {
        window()
    };
    let in_window = u64::from((lo..hi).contains(&elr));
    let role = u8::from(cpu == p.sender) | u8::from(mine) << 1;
    Record {
        tag: KIND << 16
            | u64::from(p.variant) << 8
            | u64::from(role)
            | p.intid << 24
            | (p.sender as u64) << 40
            | p.targets << 44
            | u64::from(p.priority) << 48,
        status: taken.broken.map_or(0, |b| b as u64),
        value: u64::from(taken.expected)
            | u64::from(taken.other) << 8
            | hppir << 16
            | suspend_status << 32,
        far: shared[0] | shared[1] << 32,
        elr: if p.variant == 6 && mine {
            suspend_elr
        } else {
            shared[2] | in_window << 32
        },
        spsr: spsr | daif << 16,
        vector,
    }
}
