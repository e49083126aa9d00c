//! The operations: generated from `(seed, vCPU, index)` alone by a counter-based generator
//! (splitmix64), executed through the scratch page, and turned into a [`Record`] that means the
//! same on bare QEMU and under Moat.
//!
//! Addresses are chosen by class and mapped to an address valid on the running side
//! ([`Layout`]): the vCPU's own data area (64 KiB of its own, never another vCPU's), the GIC
//! distributor registers of the vCPU's own SPIs and the global ones, its own redistributor
//! frames, the PL011 (loads only), holes that are holes on both sides (bare `virt` has flash,
//! an ITS, virtio-mmio and PCIe where the VM has nothing: those ranges are never used),
//! `[2^40, 2^P)` (above the VM's IPA size, a hole bare), and `[2^P, 2^(P+1))` with `P` this
//! side's `ID_AA64MMFR0_EL1.PARange` (Moat shows `P` = 48 on `max`, bare QEMU 52).
//!
//! Stores go only to the data area, holes, the ranges above, and (the GIC op) to the vCPU's own
//! GIC registers with values that cannot wedge the run (`GICD_CTLR`, `GICR_CTLR`, `WAKER` and
//! the LPI tables are never written). System-register writes write back the value just read,
//! never to the registers in [`never_written`] — `ICC_BPR0/1_EL1` among them: writing 8 to
//! `ICC_BPR1_EL1` kills QEMU itself (`docs/qemu-departures.md` §4), so it is out of the mix.

use crate::exec::{self, Ctx};

/// `ESR_EL1` of an UNDEFINED instruction (EC 0, IL = 1).
const ESR_UNDEFINED: u64 = 1 << 25;
/// `ESR_EL1` of a PC alignment fault (EC 0x22, IL = 1), from EL0 or EL1 alike.
const ESR_PC_ALIGNMENT: u64 = 0x22 << 26 | 1 << 25;
/// `RET`.
const RET: u32 = 0xd65f_03c0;
/// `ISB`.
const ISB: u32 = 0xd503_3fdf;

/// One operation's canonical outcome: equal on both sides when Moat behaves as bare QEMU.
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub struct Record {
    /// The operation: kind << 16 | class << 8 | variant.
    pub tag: u64,
    /// 0 completed, 1 exception, 2 SMCCC "not supported" (returned -1, or UNDEFINED).
    pub status: u64,
    /// The value read (0 for a write), or `ESR_EL1`.
    pub value: u64,
    /// `FAR_EL1` minus the operation's address, for an abort or PC alignment fault with a
    /// valid FAR; else 0.
    pub far: u64,
    /// `ELR_EL1` minus the address of the operation's instruction (or branch target).
    pub elr: u64,
    /// `SPSR_EL1`.
    pub spsr: u64,
    /// The vector offset, with `PSTATE.DAIF` on entry to the vector in bits [41:38].
    pub vector: u64,
}

impl Record {
    /// The words hashed and printed.
    pub fn words(&self) -> [u64; 7] {
        [
            self.tag,
            self.status,
            self.value,
            self.far,
            self.elr,
            self.spsr,
            self.vector,
        ]
    }
}

/// splitmix64: one step of the generator.
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The random stream of one operation: depends on the seed, the vCPU and the index only.
pub struct Rng(u64);

impl Rng {
    /// The stream of operation `index` of `cpu`.
    pub fn new(seed: u64, cpu: usize, index: u64) -> Self {
        Self(splitmix(seed ^ splitmix(((cpu as u64) << 48) ^ index)))
    }

    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 = splitmix(self.0);
        self.0
    }

    /// A value below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Where the address classes lie on this side.
#[derive(Clone, Copy)]
pub struct Layout {
    /// The vCPU's index.
    pub cpu: usize,
    /// Its data area (64 KiB).
    pub data: u64,
    /// Its scratch page.
    pub scratch: u64,
    /// `ID_AA64MMFR0_EL1.PARange` in bits.
    pub pa_bits: u32,
    /// The PL011.
    pub uart: u64,
    /// The vCPUs started.
    pub vcpus: usize,
    /// `chaos.full=1`: also the operations left out of the default mix because they differ
    /// by design (a branch to a device window, `DC ZVA`): for measuring those differences and
    /// for exercising the reducer.
    pub full: bool,
    /// `chaos.irq=1`: the GIC is enabled (Group 1, every vCPU's CPU interface) and half the
    /// GIC ops are interrupt probes ([`irq_probe`]); SPIs are routed only to their own vCPU or
    /// to none.
    pub irq: bool,
    /// `chaos.el0=1`: a quarter of the loads, stores, branches, cache/`AT`, system-register,
    /// SMCCC and instruction-word ops run at EL0, under EL0 access controls drawn per op
    /// ([`el0_controls`]).
    pub el0: bool,
    /// The PMU is implemented (`ID_AA64DFR0_EL1.PMUVer` neither 0 nor 0xF): its
    /// `PMUSERENR_EL0` is among the EL0 controls.
    pub pmu: bool,
    /// `SCXTNUM_EL0` exists (FEAT_CSV2_2, or FEAT_CSV2_1p2): `SCTLR_EL1.TSCXT` is among the
    /// EL0 controls.
    pub scxtnum: bool,
    /// The operation running now runs at EL0 (set per op by [`run`]).
    pub at_el0: bool,
    /// `CPACR_EL1.FPEN` for the EL0 operation running now ([`el0_controls`]).
    pub fpen: u64,
}

/// The data area's size.
pub const DATA_SIZE: u64 = 64 * 1024;
/// The GIC distributor and redistributors on `virt` (the VM uses the same map).
pub const GICD: u64 = 0x0800_0000;
pub const GICR: u64 = 0x080a_0000;
/// Holes on both sides: above the redistributors of up to 4 vCPUs up to the PL011; after
/// `virt`'s GPIO, secure UART, SMMU and ACPI devices up to virtio-mmio; RAM's end (128 MiB) up
/// to `2^32`.
const HOLES: [(u64, u64); 3] = [
    (0x0814_0000, 0x0900_0000),
    (0x090c_0000, 0x0a00_0000),
    (0x4800_0000, 0x1_0000_0000),
];
/// The VM's IPA size (the default, 40 bits): `[2^40, 2^P)` is above it.
const IPA_BITS: u32 = 40;

/// Address classes.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Class {
    Data = 0,
    Gicd = 1,
    Gicr = 2,
    Uart = 3,
    Hole = 4,
    AboveIpa = 5,
    BeyondPa = 6,
    Scratch = 7,
}

/// Encodings (`op0` 3: `op1`, `CRn`, `CRm`, `op2`) never written besides the runtime's
/// [`moat_guest_rt::sysreg::NEVER_WRITTEN`] (the translation regime, the vectors, the stack
/// pointers and masks, FP/SIMD trap control, `ICC_BPR0/1_EL1`: QEMU's assertion,
/// `docs/qemu-departures.md` §4): `CNTFRQ_EL0` (writable only at the highest EL, which EL1 is
/// bare and not under Moat), `ICC_IGRPEN0/1_EL1` and `ICC_PMR_EL1` (left as reset, so that
/// no interrupt is ever signalled).
const ALSO_NEVER_WRITTEN: [(u8, u8, u8, u8); 4] =
    [(3, 14, 0, 0), (0, 12, 12, 6), (0, 12, 12, 7), (0, 4, 6, 0)];

/// Whether the generator never writes `(op1, CRn, CRm, op2)` of `op0` 3.
fn never_written(enc: (u8, u8, u8, u8)) -> bool {
    ALSO_NEVER_WRITTEN.contains(&enc)
        || moat_guest_rt::sysreg::NEVER_WRITTEN
            .iter()
            .any(|n| (n.0, n.1, n.2, n.3, n.4) == (3, enc.0, enc.1, enc.2, enc.3))
}

/// Encodings not read either: `RVBAR_EL1` exists only at the highest EL (bare, not under Moat:
/// the sweep's "EL1 not the highest EL" category).
const NEVER_READ: [(u8, u8, u8, u8); 1] = [(0, 12, 0, 1)];
/// Values that follow time or chance (the sweep's `VOLATILE`), the registers whose reset
/// value is UNKNOWN and differs (`SCTLR_EL1`), and those that hold the last exception's or
/// `AT`'s address (`FAR_EL1`, `ELR_EL1`, `PAR_EL1`), which the per-side mapping of the
/// address classes makes differ, or its syndrome and PSTATE (`ESR_EL1`, `SPSR_EL1`), which
/// differ where the outcomes are compared by meaning (an SVE trap bare is UNDEFINED under
/// Moat, a bare SMC's UNDEFINED is an answer under Moat): read, but their value is not
/// compared.
const UNCOMPARED: [(u8, u8, u8, u8); 17] = [
    (0, 5, 2, 0),
    (0, 4, 0, 0),
    (0, 6, 0, 0),
    (0, 4, 0, 1),
    (0, 7, 4, 0),
    (3, 14, 0, 1),
    (3, 14, 0, 2),
    (3, 14, 0, 5),
    (3, 14, 0, 6),
    (3, 14, 2, 0),
    (3, 14, 3, 0),
    (3, 14, 2, 2),
    (3, 14, 3, 2),
    (3, 9, 13, 0),
    (3, 2, 4, 0),
    (3, 2, 4, 1),
    (0, 1, 0, 0),
];

/// Operation kinds.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Kind {
    Load = 0,
    Store = 1,
    Fetch = 2,
    CacheOrAt = 3,
    SysReg = 4,
    Smccc = 5,
    Word = 6,
    GicWrite = 7,
    IrqProbe = 8,
    TimerIrq = 9,
    // 10: a round every vCPU takes part in (`crate::cross::KIND`), chosen before `run`.
}

/// Runs operation `index` of this vCPU and returns its record.
pub fn run(seed: u64, layout: &Layout, index: u64) -> Record {
    let mut rng = Rng::new(seed, layout.cpu, index);
    let kind = match rng.below(100) {
        0..20 => Kind::Load,
        20..32 => Kind::Store,
        32..40 => Kind::Fetch,
        40..50 => Kind::CacheOrAt,
        50..68 => Kind::SysReg,
        68..78 => Kind::Smccc,
        78..90 => Kind::Word,
        _ if layout.irq => match rng.below(4) {
            0 | 1 => Kind::IrqProbe,
            2 => Kind::TimerIrq,
            _ => Kind::GicWrite,
        },
        _ => Kind::GicWrite,
    };
    // The draw is made only with `chaos.el0=1`, so that the default mix is unchanged by it.
    let at_el0 = layout.el0
        && !matches!(kind, Kind::GicWrite | Kind::IrqProbe | Kind::TimerIrq)
        && rng.below(4) == 0;
    let fpen = if at_el0 {
        el0_controls(&mut rng, layout)
    } else {
        0
    };
    let layout = &Layout {
        at_el0,
        fpen,
        ..*layout
    };
    let mut record = match kind {
        Kind::Load | Kind::Store => access(&mut rng, layout, kind),
        Kind::Fetch => fetch(&mut rng, layout),
        Kind::CacheOrAt => cache_or_at(&mut rng, layout),
        Kind::SysReg => sysreg(&mut rng, layout),
        Kind::Smccc => smccc(&mut rng, layout),
        Kind::Word => word(&mut rng, layout),
        Kind::GicWrite => gic_write(&mut rng, layout),
        Kind::IrqProbe => irq_probe(&mut rng, layout),
        Kind::TimerIrq => timer_irq(&mut rng, layout),
    };
    if at_el0 {
        if fpen != 0 {
            fp_trapped_again();
        }
        record.tag |= EL0_TAG;
    }
    record
}

/// The tag bit of an operation that ran at EL0 (the top bit of the kind's byte).
const EL0_TAG: u64 = 1 << 23;

/// The `SCTLR_EL1` bits that open an instruction to EL0: `UCI` (26, cache maintenance by VA),
/// `UCT` (15, `CTR_EL0`), `DZE` (14, `DC ZVA`), `UMA` (9, `DAIF`). `nTWI`/`nTWE` stay as they
/// are: no op executes `WFI` or `WFE` at EL0.
const SCTLR_EL0_BITS: u64 = 1 << 26 | 1 << 15 | 1 << 14 | 1 << 9;
/// The `CNTKCTL_EL1` bits that open the counters and timers to EL0: `EL0PCTEN` (0), `EL0VCTEN`
/// (1), `EL0VTEN` (8), `EL0PTEN` (9).
const CNTKCTL_EL0_BITS: u64 = 1 << 9 | 1 << 8 | 1 << 1 | 1;
/// `SCTLR_EL1.TSCXT` (20): EL0's `SCXTNUM_EL0` trapped to EL1. Where `SCXTNUM_EL0` does not
/// exist the bit is RES1, and it is left alone. Its reset value is UNKNOWN (bare QEMU's is 0,
/// Moat's 1, as a v8.0 RES1 bit): drawn, it is the same on both sides.
const SCTLR_TSCXT: u64 = 1 << 20;
/// `PMUSERENR_EL0`: `ER` (3), `CR` (2), `SW` (1), `EN` (0).
const PMUSERENR_EL0_BITS: u64 = 0xf;
/// `CPACR_EL1.FPEN` (bits [21:20]).
const CPACR_FPEN: u64 = 3 << 20;

/// Sets the bits `$mask` of the EL1 control register `$reg` to `$value` (read, modify, write,
/// `ISB`): only the fields an EL0 op's controls name.
macro_rules! set_bits {
    ($reg:literal, $mask:expr, $value:expr) => {
        // SAFETY: changes only the named fields of an EL1 control register: EL0 access
        // controls or FP/SIMD trap control, never the MMU, alignment checking or endianness
        // bits; no memory.
        unsafe {
            core::arch::asm!(
                concat!("mrs {t}, ", $reg),
                "bic {t}, {t}, {m}",
                "orr {t}, {t}, {v}",
                concat!("msr ", $reg, ", {t}"),
                "isb",
                t = out(reg) _,
                m = in(reg) $mask,
                v = in(reg) $value,
                options(nostack),
            );
        }
    };
}

/// Sets the EL0 access controls for one EL0 operation, each bit drawn from the op's stream:
/// the `SCTLR_EL1` bits of [`SCTLR_EL0_BITS`] (and [`SCTLR_TSCXT`]), the `CNTKCTL_EL1` bits of
/// [`CNTKCTL_EL0_BITS`], `PMUSERENR_EL0` (where there is a PMU), and `CPACR_EL1.FPEN` (any of
/// its four values: 0b01 traps EL0 only). What EL0 then gets — the instruction, or the trap to
/// EL1 the control gives (EC 0x18, 0x07, UNDEFINED) — is what both sides are compared on;
/// under Moat the `CPACR_EL1` write traps (`CPTR_EL2.TCPAC`) and switches `CPTR_EL2.TFP`.
/// Returns the `FPEN` set.
fn el0_controls(rng: &mut Rng, layout: &Layout) -> u64 {
    let bits = rng.next();
    let sctlr_bits = if layout.scxtnum {
        SCTLR_EL0_BITS | SCTLR_TSCXT
    } else {
        SCTLR_EL0_BITS
    };
    let sctlr = bits & sctlr_bits;
    let cntkctl = (bits >> 32) & CNTKCTL_EL0_BITS;
    let fpen = (bits >> 40) & 3;
    set_bits!("sctlr_el1", sctlr_bits, sctlr);
    set_bits!("cntkctl_el1", CNTKCTL_EL0_BITS, cntkctl);
    if fpen != 0 {
        // EL1 ops leave `FPEN` at 0b00: a write of 0b00 (trapped under Moat) would change nothing.
        set_bits!("cpacr_el1", CPACR_FPEN, fpen << 20);
    }
    if layout.pmu {
        let pmuserenr = (bits >> 48) & PMUSERENR_EL0_BITS;
        // SAFETY: PMUSERENR_EL0 (the PMU is implemented): EL0 access to the PMU; no memory.
        unsafe {
            core::arch::asm!("msr pmuserenr_el0, {}", "isb", in(reg) pmuserenr, options(nostack));
        }
    }
    fpen
}

/// `CPACR_EL1.FPEN` = 0b00 again after an EL0 operation: the EL1 operations run with FP/SIMD
/// trapped.
fn fp_trapped_again() {
    set_bits!("cpacr_el1", CPACR_FPEN, 0u64);
}

/// Writes `words` to the vCPU's scratch page and makes them executable. At EL0 each `RET`
/// becomes a `B` to `chaos_el0_return`: an FP/SIMD word that EL0 may execute can write X30.
fn place(layout: &Layout, words: &[u32]) -> u64 {
    let at = layout.scratch;
    for (i, w) in words.iter().enumerate() {
        let here = at + 4 * i as u64;
        let word = if layout.at_el0 && *w == RET {
            branch(here, exec::el0_return())
        } else {
            *w
        };
        // SAFETY: the vCPU's own scratch page (4 KiB; at most 4 words here).
        unsafe { core::ptr::write_volatile(here as *mut u32, word) };
    }
    // SAFETY: cache maintenance of the vCPU's own scratch page, then barriers: the new words
    // are what the next fetch of the page sees (Arm ARM "Concurrent modification and execution
    // of instructions"). No memory is written.
    unsafe {
        core::arch::asm!(
            "dc cvau, {a}", "dsb ish", "ic ivau, {a}", "dsb ish", "isb",
            a = in(reg) at,
            options(nostack, preserves_flags),
        );
    }
    at
}

/// `B target` at `from` (imm26: the offset in words, within ±128 MiB: the image is small).
fn branch(from: u64, target: u64) -> u32 {
    let words = (target.wrapping_sub(from) as i64) >> 2;
    0x1400_0000 | (words as u32 & 0x03ff_ffff)
}

/// Runs `words` from the scratch page; `addr` is the address the operation names (for FAR).
fn run_words(layout: &Layout, tag: u64, words: &[u32], input: [u64; 8], addr: u64) -> Record {
    let entry = place(layout, words);
    let ctx = exec::exec(layout.cpu, entry, input, layout.at_el0);
    outcome(tag, ctx, entry, addr)
}

/// The record of an operation at `pc` naming `addr`.
fn outcome(tag: u64, ctx: &Ctx, pc: u64, addr: u64) -> Record {
    if ctx.taken == 0 {
        return Record {
            tag,
            value: ctx.output[0],
            ..Record::default()
        };
    }
    let ec = (ctx.esr >> 26) & 0x3f;
    // SVE (0x19) and SME (0x1D) access traps: Moat hides both features (their ID fields read
    // 0), so it gives UNDEFINED where bare `max` has the feature and traps; bare `cortex-a72`
    // gives the SVE trap for an SVE encoding (QEMU 7.2 departure, `./x sweep`'s category).
    let esr = if ec == 0x19 || ec == 0x1d {
        ESR_UNDEFINED
    } else {
        ctx.esr
    };
    let far_valid = matches!(ec, 0x20 | 0x21 | 0x22 | 0x24 | 0x25) && ctx.esr & (1 << 10) == 0;
    Record {
        tag,
        status: 1,
        value: esr,
        far: if far_valid {
            ctx.far.wrapping_sub(addr)
        } else {
            0
        },
        elr: ctx.elr.wrapping_sub(pc),
        spsr: ctx.spsr,
        // PSTATE.DAIF on entry to the vector (all four set on any exception taken to EL1):
        // under Moat, part of the exception it injects.
        vector: ctx.vector | ctx.daif << 32,
    }
}

/// An address of `class` for an access of `size` bytes, aligned or not.
fn address(rng: &mut Rng, layout: &Layout, class: Class, size: u64) -> u64 {
    // Misaligned by 1..size-1 bytes at times: the access stays inside the register (and the
    // vCPU's own state) it was aligned to.
    let misalign = if size > 1 && rng.below(4) == 0 {
        1 + rng.below(size - 1)
    } else {
        0
    };
    let base = match class {
        Class::Data => layout.data + (rng.below(DATA_SIZE - 16) & !(size - 1)),
        Class::Gicd => GICD + gicd_offset(rng, layout, size),
        Class::Gicr => {
            let frame = GICR + 0x2_0000 * layout.cpu as u64;
            let offset = match rng.below(4) {
                0 => rng.below(0x2_0000 - 16),
                1 => rng.below(0x80),
                2 => 0xffd0 + rng.below(0x30),
                _ => 0x1_0000 + 0x80 + rng.below(0xc80),
            };
            frame + (offset & !(size - 1))
        }
        Class::Uart => layout.uart + (rng.below(0x1000) & !(size - 1)),
        Class::Hole => {
            let (lo, hi) = HOLES[rng.below(HOLES.len() as u64) as usize];
            lo + (rng.below(hi - lo - 16) & !(size - 1))
        }
        Class::AboveIpa => {
            let top = 1u64 << layout.pa_bits;
            let lo = 1u64 << IPA_BITS;
            lo + (rng.below(top - lo - 16) & !(size - 1))
        }
        Class::BeyondPa => {
            let top = 1u64 << layout.pa_bits;
            top + (rng.below(top) & !(size - 1))
        }
        Class::Scratch => layout.scratch + 0x800,
    };
    base + misalign
}

/// A GIC distributor offset this vCPU may read: a global register, or a register of its own
/// SPIs (`GICD` register index `1 + cpu` of the 1-bit arrays; Moat's distributor has 96 SPIs,
/// enough for three vCPUs; the others read only the global ones).
fn gicd_offset(rng: &mut Rng, layout: &Layout, size: u64) -> u64 {
    let n = 1 + layout.cpu as u64;
    let own = layout.cpu < 3 && rng.below(3) != 0;
    let offset = if own {
        match rng.below(5) {
            // IGROUPR, ISENABLER, ICENABLER, ISPENDR, ICPENDR, ISACTIVER, ICACTIVER, IGRPMODR
            0 => {
                [0x080, 0x100, 0x180, 0x200, 0x280, 0x300, 0x380, 0xd00][rng.below(8) as usize]
                    + 4 * n
            }
            1 => 0x400 + 32 * n + rng.below(32),
            2 => 0x800 + 32 * n + rng.below(32),
            3 => 0xc00 + 8 * n + rng.below(8),
            _ => 0x6000 + 8 * (32 * n + rng.below(32)),
        }
    } else if rng.below(2) == 0 {
        rng.below(0x80)
    } else {
        0xffd0 + rng.below(0x30)
    };
    offset & !(size - 1)
}

/// The classes a load may use.
const LOAD_CLASSES: [Class; 7] = [
    Class::Data,
    Class::Gicd,
    Class::Gicr,
    Class::Uart,
    Class::Hole,
    Class::AboveIpa,
    Class::BeyondPa,
];
/// The classes a store may use (no device: the GIC op writes the GIC).
const STORE_CLASSES: [Class; 4] = [Class::Data, Class::Hole, Class::AboveIpa, Class::BeyondPa];

fn pick_class(rng: &mut Rng, layout: &Layout, classes: &[Class]) -> Class {
    loop {
        let class = classes[rng.below(classes.len() as u64) as usize];
        if class != Class::AboveIpa || layout.pa_bits > IPA_BITS {
            return class;
        }
    }
}

/// A load or store of 1, 2, 4, 8 or 16 (a pair) bytes.
fn access(rng: &mut Rng, layout: &Layout, kind: Kind) -> Record {
    let classes: &[Class] = match kind {
        Kind::Load => &LOAD_CLASSES,
        _ => &STORE_CLASSES,
    };
    let class = pick_class(rng, layout, classes);
    let variant = rng.below(5);
    let size = 1u64 << variant.min(3);
    let addr = address(rng, layout, class, size);
    // LDRB/LDRH/LDR W/LDR X/LDP X0, X2 and the stores, all [X1].
    let loads = [
        0x3940_0020,
        0x7940_0020,
        0xb940_0020,
        0xf940_0020,
        0xa940_0820,
    ];
    let stores = [
        0x3900_0020,
        0x7900_0020,
        0xb900_0020,
        0xf900_0020,
        0xa900_0820,
    ];
    let insn = match kind {
        Kind::Load => loads[variant as usize],
        _ => stores[variant as usize],
    };
    let value = rng.next();
    let tag = tag(kind, class as u8, variant as u8);
    let mut record = run_words(
        layout,
        tag,
        &[insn, RET],
        [value, addr, !value, 0, 0, 0, 0, 0],
        addr,
    );
    if matches!(kind, Kind::Store) && record.status == 0 {
        record.value = 0;
    }
    let device = matches!(class, Class::Gicd | Class::Gicr | Class::Uart);
    // A synchronous external abort (DFSC 0x10), from EL1 (EC 0x25) or EL0 (EC 0x24).
    let external = record.status == 1
        && matches!(record.value >> 26, 0x24 | 0x25)
        && record.value & 0x3f == 0x10;
    if device && (record.status == 0 || external) && !supported_size(layout, class, addr, variant) {
        // An access size the device does not support (GICv3 "GIC memory-mapped register
        // access": CONSTRAINED UNPREDICTABLE; the PL011 is a 32-bit APB peripheral): QEMU's
        // models read or ignore the whole register (RAZ/WI for the GIC, split into 32-bit
        // accesses, byte lanes ignored by the PL011), Moat's take byte lanes or give an
        // external abort. Recorded as "not compared" (status 5) when it completed or aborted.
        return Record {
            tag,
            status: 5,
            ..Record::default()
        };
    }
    if matches!(kind, Kind::Load) && record.status == 0 {
        let frame = GICR + 0x2_0000 * layout.cpu as u64;
        for &(redistributor, offset, len, mask) in &BY_DESIGN {
            let base = if redistributor { frame } else { GICD };
            let window = if redistributor {
                Class::Gicr
            } else {
                Class::Gicd
            };
            if class == window {
                record.value &= !overlap_mask(addr, size.min(8), base + offset, len, mask);
            }
        }
    }
    record
}

/// Whether a device supports an aligned access of this size at `addr` (variant: 0..3 = 1, 2,
/// 4, 8 bytes, 4 = a pair of 8): 32-bit anywhere; bytes at the GIC's byte-accessible
/// `IPRIORITYR`/`ITARGETSR`; 64-bit at `GICD_IROUTER<n>` and `GICR_TYPER`.
fn supported_size(layout: &Layout, class: Class, addr: u64, variant: u64) -> bool {
    let offset = match class {
        Class::Gicd => addr - GICD,
        Class::Gicr => addr - (GICR + 0x2_0000 * layout.cpu as u64),
        _ => addr - layout.uart,
    };
    match (class, variant) {
        (_, 2) => true,
        (Class::Gicd, 0) => (0x400..0xc00).contains(&offset),
        (Class::Gicr, 0) => (0x1_0400..0x1_0420).contains(&offset),
        (Class::Gicd, 3) => (0x6100..0x7fe0).contains(&offset),
        (Class::Gicr, 3) => offset == 0x8,
        _ => false,
    }
}

/// Register fields that differ between QEMU's `virt` and the VM by design, not compared:
/// (in the vCPU's redistributor frame rather than the distributor, offset, length, mask).
/// `GICD_TYPER`: `ITLinesNumber` (96 SPIs in the VM, 256 bare), `num_LPIs`, `MBIS`, `LPIS`,
/// `IDbits` (the VM has no ITS and no LPIs), `CPUNumber` (QEMU reports 0 as its affinity
/// routing cannot be disabled, Moat the vCPUs - 1), `No1N` (Moat routes 1-of-N SPIs, QEMU
/// does not); `GICR_TYPER`: `PLPIS`, `VLPIS`, `DirectLPI`,
/// `DPGS`, `CommonLPIAff` (the same); `GICR_CTLR.CES`.
const BY_DESIGN: [(bool, u64, u64, u64); 3] = [
    (false, 0x4, 4, 0x02fb_f8ff),
    (true, 0x8, 8, 0x0300_002b),
    // GICR_CTLR.CES: whether EnableLPIs can be cleared (no LPIs in the VM).
    (true, 0x0, 4, 0x2),
];

/// The bits of a load of `size` bytes at `addr` that come from the masked bits of the
/// register of `len` bytes at `reg`.
fn overlap_mask(addr: u64, size: u64, reg: u64, len: u64, mask: u64) -> u64 {
    let mut out = 0;
    for byte in 0..size {
        let at = addr + byte;
        if (reg..reg + len).contains(&at) {
            let field = (mask >> (8 * (at - reg))) & 0xff;
            out |= field << (8 * byte);
        }
    }
    out
}

/// A branch to an address of a class (or to the scratch page's `RET`), misaligned at times.
fn fetch(rng: &mut Rng, layout: &Layout) -> Record {
    // Not device windows: bare QEMU executes from them (the register's value as an
    // instruction), Moat gives a prefetch external abort (SPEC §2) — an IMPDEF difference by
    // design (with the MMU off a fetch is a Normal read of the device), left out of the mix.
    let classes = [
        Class::Scratch,
        Class::Hole,
        Class::AboveIpa,
        Class::BeyondPa,
        Class::Uart,
        Class::Gicd,
    ];
    let n = if layout.full { 6 } else { 4 };
    let class = pick_class(rng, layout, &classes[..n]);
    let target = match class {
        // The identification registers: small constants, UNDEFINED as instructions.
        Class::Uart => layout.uart + 0xfe0 + 4 * rng.below(8),
        Class::Gicd => GICD + 0xffd0 + 4 * rng.below(12),
        _ => address(rng, layout, class, 4),
    };
    let tag = tag(Kind::Fetch, class as u8, (target & 3) as u8);
    let ctx = exec::exec(layout.cpu, target, [0; 8], layout.at_el0);
    let mut record = outcome(tag, ctx, target, target);
    // QEMU translates the code page before its PC alignment check
    // (`docs/qemu-departures.md` §2): bare, a misaligned branch beyond the PA size gets the
    // address size fault (IFSC 0b0000xx); the Arm ARM checks the PC first
    // (`AArch64.CheckPCAlignment()`), and so does Moat on `max`, where the guest's P (48) is
    // below QEMU's 52 and the hardware check comes first. Compared as the PC alignment fault.
    let address_size =
        record.status == 1 && matches!(record.value >> 26, 0x20 | 0x21) && record.value & 0x3c == 0;
    if target & 3 != 0 && address_size {
        record.value = ESR_PC_ALIGNMENT;
    }
    record
}

/// A cache maintenance instruction by VA, or `AT S1E1R/W` (then `PAR_EL1` is the value).
fn cache_or_at(rng: &mut Rng, layout: &Layout) -> Record {
    let class = pick_class(rng, layout, &LOAD_CLASSES);
    let mut addr = address(rng, layout, class, 1);
    // DC CIVAC, CVAC, CVAU, IVAC, CVAP, CVADP; IC IVAU; AT S1E1R, S1E1W; `DC ZVA` only with
    // `chaos.full=1`: with
    // the MMU off all memory is Device, where the Arm ARM gives it an Alignment fault however
    // aligned and QEMU 7.2 does not check (zeroes a device, or the bus's external abort on a
    // hole) — `docs/qemu-departures.md` §1, measured by `./x difftest`'s `dc_zva` kinds.
    let insns = [
        0xd50b_7e21,
        0xd50b_7a21,
        0xd50b_7b21,
        0xd508_7621,
        0xd50b_7c21,
        0xd50b_7d21,
        0xd50b_7521,
        0xd508_7801,
        0xd508_7821,
        0xd50b_7421,
    ];
    let n = if layout.full { 10 } else { 9 };
    let variant = rng.below(n) as usize;
    if variant == 9 && class == Class::Data {
        // DC ZVA of the data area would zero it where it does not fault.
        addr = address(rng, layout, Class::Hole, 1);
    }
    let tag = tag(Kind::CacheOrAt, class as u8, variant as u8);
    let mrs_par = 0xd538_7400;
    let at = matches!(variant, 7 | 8);
    if at && class == Class::BeyondPa {
        // `AT` is not trapped (`HCR_EL2.AT` needs FEAT_NV, which QEMU 7.2 lacks), so under
        // Moat on `max` (P = 48, QEMU's PA size 52) an MMU-off `AT` of `[2^48, 2^52)`
        // completes where the guest's P says address size fault (`docs/trap-outcomes.md`).
        // Beyond 52 bits both sides fault.
        addr = (1 << 52) + (addr & ((1 << 52) - 1));
    }
    let words: &[u32] = if at {
        &[insns[variant], ISB, mrs_par, RET]
    } else {
        &[insns[variant], RET]
    };
    let mut record = run_words(layout, tag, words, [0, addr, 0, 0, 0, 0, 0, 0], addr);
    if at && record.status == 0 && record.value & 1 == 0 {
        // PAR_EL1.PA [51:12] is the address, which each side maps from the class.
        record.value ^= addr & 0x000f_ffff_ffff_f000;
    }
    if !at && record.status == 0 {
        record.value = 0;
    }
    record
}

/// `MRS` of a random `op0` = 3 encoding, then `MSR` of the value read where that is safe.
fn sysreg(rng: &mut Rng, layout: &Layout) -> Record {
    let (op1, crn, crm, op2) = loop {
        let enc = (
            rng.below(8) as u8,
            rng.below(16) as u8,
            rng.below(16) as u8,
            rng.below(8) as u8,
        );
        if !NEVER_READ.contains(&enc) {
            break enc;
        }
    };
    let fields = (u32::from(op1) << 16)
        | (u32::from(crn) << 12)
        | (u32::from(crm) << 8)
        | (u32::from(op2) << 5);
    let tag = tag(Kind::SysReg, 0, 0) | u64::from(fields >> 5) << 24;
    let mut read = run_words(layout, tag, &[0xd538_0000 | fields, RET], [0; 8], 0);
    if read.status != 0 {
        return read;
    }
    let value = read.value;
    if ACKNOWLEDGE.contains(&(op1, crn, crm, op2)) {
        // The read acknowledged an interrupt (made it active, the running priority its
        // priority): end it, so that no op leaves the CPU interface at a raised running
        // priority that would mask every later interrupt of equal or lower priority (a timer
        // op would then wait for ever).
        end_acknowledged(crm, value);
    }
    let write = !never_written((op1, crn, crm, op2)) && rng.below(2) == 0;
    if (op1, crn) == (0, 0) || UNCOMPARED.contains(&(op1, crn, crm, op2)) {
        // The ID registers (Moat shows the sanitised values, by design) and volatile values.
        read.value = 0;
    }
    if !write {
        return read;
    }
    let wrote = run_words(
        layout,
        tag | 1,
        &[0xd518_0000 | fields, RET],
        [value, 0, 0, 0, 0, 0, 0, 0],
        0,
    );
    if wrote.status == 0 { read } else { wrote }
}

/// `ICC_IAR0_EL1` and `ICC_IAR1_EL1` (`op1`, `CRn`, `CRm`, `op2` of `op0` 3): a read
/// acknowledges the highest-priority pending interrupt of the group.
const ACKNOWLEDGE: [(u8, u8, u8, u8); 2] = [(0, 12, 8, 0), (0, 12, 12, 0)];

/// Ends the interrupt a read of `ICC_IAR0_EL1` (`crm` 8) or `ICC_IAR1_EL1` (`crm` 12)
/// returned: `ICC_EOIR0_EL1` or `ICC_EOIR1_EL1` (through [`end_interrupt`]), and `ICC_DIR_EL1`
/// under `EOImode` 1.
fn end_acknowledged(crm: u8, iar: u64) {
    let ctlr: u64;
    // SAFETY: reads ICC_CTLR_EL1; no memory.
    unsafe { core::arch::asm!("mrs {}, S3_0_C12_C12_4", out(reg) ctlr, options(nostack)) };
    if crm == 12 {
        end_interrupt(iar, ctlr);
    } else if iar < 1020 {
        // SAFETY: ends the acknowledged Group 0 interrupt at the CPU interface; no memory.
        unsafe {
            core::arch::asm!("msr S3_0_C12_C8_1, {}", "isb", in(reg) iar, options(nostack));
            if ctlr & 2 != 0 {
                core::arch::asm!("msr S3_0_C12_C11_1, {}", "isb", in(reg) iar, options(nostack));
            }
        }
    }
}

/// PSCI function numbers never called: they end, suspend or freeze the caller or the system
/// (`CPU_OFF` 2, `SYSTEM_OFF` 8, `SYSTEM_RESET` 9, `CPU_FREEZE` 0xB, `CPU_DEFAULT_SUSPEND`
/// 0xC, `SYSTEM_SUSPEND` 0xE, `SYSTEM_RESET2` 0x12, `MEM_PROTECT` 0x13). `CPU_SUSPEND` (1) is
/// called only with a `power_state` that has a reserved bit set ([`INVALID_POWER_STATE_BITS`]),
/// which PSCI refuses (`INVALID_PARAMETERS`); the timer op and the rounds suspend for real.
const PSCI_NEVER: [u32; 8] = [2, 8, 9, 0xb, 0xc, 0xe, 0x12, 0x13];

/// `CPU_SUSPEND`'s `power_state` bits reserved in the original format (DEN 0022): [23:17],
/// [31:26].
const INVALID_POWER_STATE_BITS: [u32; 13] = [17, 18, 19, 20, 21, 22, 23, 26, 27, 28, 29, 30, 31];

/// HVC or SMC with a random function ID and arguments, compared by SMCCC meaning:
///
/// - "not supported" is the value -1 or an UNDEFINED conduit: bare `virt` without EL3 has no
///   SMC service, and its HVC is QEMU's own PSCI with nothing else behind it;
/// - the Arm architecture calls (owner 0: `SMCCC_VERSION`, `SMCCC_ARCH_FEATURES`, the
///   workarounds) are served by Moat and unknown to QEMU 7.2's PSCI: their outcome is recorded
///   as "answered" whatever it is (a VM stop or a hang still shows);
/// - an SMC op makes the same call by HVC first, then by SMC, and records the HVC outcome and
///   whether SMC gave the same answer or none (UNDEFINED) — the one meaning both sides share.
fn smccc(rng: &mut Rng, layout: &Layout) -> Record {
    let fid = loop {
        let fid = match rng.below(5) {
            // PSCI, SMC32 and SMC64.
            0 | 1 => 0x8400_0000 | (rng.below(2) as u32) << 30 | rng.below(0x20) as u32,
            // The Arm architecture calls (SMCCC_VERSION, ARCH_FEATURES, ARCH_WORKAROUND_n).
            2 => 0x8000_0000 | [0, 1, 0x7fff, 0x8000, 0x3fff][rng.below(5) as usize],
            // Any owner, fast calls.
            3 => {
                0x8000_0000
                    | (rng.below(2) as u32) << 30
                    | (rng.below(64) as u32) << 24
                    | rng.below(0x100) as u32
            }
            _ => rng.next() as u32,
        };
        let psci = fid & 0xbfff_ffe0 == 0x8400_0000;
        if !(psci && PSCI_NEVER.contains(&(fid & 0x1f))) {
            break fid;
        }
    };
    let smc = rng.below(3) == 0;
    let imm = if rng.below(8) == 0 {
        rng.below(0x100) as u32
    } else {
        0
    };
    let mut args = [u64::from(fid), 0, 0, 0, 0, 0, 0, 0];
    let wide = fid & (1 << 30) != 0;
    for arg in &mut args[1..] {
        *arg = match rng.below(4) {
            0 => rng.below(layout.vcpus as u64 + 2),
            1 => layout.data,
            _ => rng.next(),
        };
        // An SMC32 call's arguments are W registers (SMCCC: the upper halves are ignored, as
        // Moat and KVM do); QEMU 7.2's PSCI reads X1..X3 whole, so the upper halves are 0.
        if !wide {
            *arg &= 0xffff_ffff;
        }
    }
    if fid & 0xbfff_ffff == 0x8400_0001 {
        // CPU_SUSPEND: never a valid power_state (it would wait for an interrupt that,
        // without `--irq`, never comes).
        let bit = INVALID_POWER_STATE_BITS[rng.below(13) as usize];
        args[1] |= 1 << bit;
    }
    let tag = tag(Kind::Smccc, u8::from(smc), 0) | u64::from(fid) << 24 | u64::from(imm) << 56;
    let hvc = call(layout, tag, 0xd400_0002 | imm << 5, args, fid);
    let hvc = by_design(hvc, args, imm);
    if !smc {
        return hvc;
    }
    let by_smc = by_design(
        call(layout, tag, 0xd400_0003 | imm << 5, args, fid),
        args,
        imm,
    );
    let agrees = by_smc.status == 2 || (by_smc.status, by_smc.value) == (hvc.status, hvc.value);
    Record {
        far: u64::from(!agrees),
        ..hvc
    }
}

/// PSCI answers that differ by design, recorded as "answered" (status 4) when the call
/// returned or was refused:
///
/// - `HVC`/`SMC` with an immediate other than 0: SMCCC reserves it; QEMU's PSCI ignores it;
/// - `AFFINITY_INFO` with `lowest_affinity_level` != 0: Moat supports level 0 only
///   (INVALID_PARAMETERS); QEMU answers ON for any higher level, even one above 3;
/// - `CPU_ON` with a misaligned entry: QEMU checks the entry first (INVALID_PARAMETERS), Moat
///   the target's state first (ALREADY_ON), as KVM does; PSCI orders neither.
fn by_design(record: Record, args: [u64; 8], imm: u32) -> Record {
    let function = args[0] as u32 & 0xbfff_ffff;
    let answered = matches!(record.status, 0 | 2);
    let reason = imm != 0
        || (function == 0x8400_0004 && args[2] != 0)
        || (function == 0x8400_0003 && args[2] & 3 != 0);
    if answered && reason {
        Record {
            status: 4,
            value: 0,
            ..record
        }
    } else {
        record
    }
}

/// One SMCCC call's canonical outcome (see [`smccc`]).
fn call(layout: &Layout, tag: u64, insn: u32, args: [u64; 8], fid: u32) -> Record {
    let mut record = run_words(layout, tag, &[insn, RET], args, 0);
    let wide = fid & (1 << 30) != 0;
    let arch = fid & 0xbf00_0000 == 0x8000_0000;
    if record.status == 0 {
        if !wide {
            record.value &= 0xffff_ffff;
        }
        if record.value as i32 == -1 && (!wide || record.value == u64::MAX) {
            record.status = 2;
            record.value = 0;
        }
    } else if record.value == ESR_UNDEFINED {
        record = Record {
            tag,
            status: 2,
            ..Record::default()
        };
    }
    if arch && record.status != 1 {
        record.status = 3;
        record.value = 0;
    }
    record
}

/// A random instruction word from the classes that cannot write memory or branch: the
/// reserved/UDF space, the unallocated top-level classes, SVE, FP/SIMD (trapped: the guest's
/// `CPACR_EL1.FPEN` = 0), and the exception-generating class but `HVC`/`SMC` (the SMCCC op
/// makes those).
fn word(rng: &mut Rng, layout: &Layout) -> Record {
    let variant = rng.below(6);
    let raw = rng.next() as u32;
    let word = match variant {
        0 => raw & !(0xf << 25),
        1 => (raw & !(0xf << 25)) | (0b0001 << 25),
        2 => (raw & !(0xf << 25)) | (0b0010 << 25),
        3 => (raw & !(0xf << 25)) | (0b0011 << 25),
        4 => (raw & !(0x7 << 25)) | (0b111 << 25),
        _ => {
            // 1101 0100 opc imm16 op2 LL: SVC, BRK, HLT, DCPS1..3, and the unallocated opc.
            let opc = [0u32, 1, 2, 3, 4, 5, 6, 7][rng.below(8) as usize];
            let ll = if opc == 0 { 1 } else { raw & 3 };
            0xd400_0000 | opc << 21 | (raw >> 8 & 0xffff) << 5 | (raw >> 4 & 7) << 2 | ll
        }
    };
    let tag = tag(Kind::Word, 0, variant as u8) | u64::from(word) << 24;
    let record = run_words(layout, tag, &[word, RET], [0; 8], 0);
    // An SVE- or SME-space word (op0 0b0010, or 0b0000 with bit 31 set) at EL0 while
    // `CPACR_EL1.FPEN` = 0b01 (EL0 trapped, EL1 not): a core without SVE and SME makes the
    // instruction UNDEFINED, bare `max` (with both) gives it the SVE or SME trap
    // (`CPACR_EL1.ZEN`/`SMEN`), and under Moat, which hides both by opening `ZEN`/`SMEN` and
    // trapping at EL2 (`CPTR_EL2.TZ`/`TSM`), the EL1 FP check that `CheckSVEEnabled()` and
    // `CheckSMEEnabled()` make before the EL2 checks gives the FP access trap (EC 0x07): no
    // control routes only EL0's FP trap to EL2 while leaving EL1's FP/SIMD open
    // (`docs/trap-outcomes.md`, "SVE and SME hidden"). Not compared (status 5) when it trapped
    // or was UNDEFINED.
    let fp_trap = record.value >> 26 == 0x07 || record.value == ESR_UNDEFINED;
    let sve_or_sme = variant == 2 || (variant == 0 && word >> 31 == 1);
    if sve_or_sme && layout.at_el0 && layout.fpen == 0b01 && record.status == 1 && fp_trap {
        return Record {
            tag,
            status: 5,
            ..Record::default()
        };
    }
    record
}

/// A write of the vCPU's own GIC state: its SPIs' enable, pending, active, group, priority,
/// configuration and routing in the distributor, its redistributor's SGI/PPI registers. The
/// distributor stays disabled (`GICD_CTLR` is never written) and the CPU interface's group
/// enables stay 0, so nothing is ever signalled to a CPU.
fn gic_write(rng: &mut Rng, layout: &Layout) -> Record {
    let n = 1 + layout.cpu as u64;
    let value = rng.next();
    let (addr, variant) = if layout.cpu < 3 && rng.below(2) == 0 {
        match rng.below(5) {
            0 => {
                let regs = [0x080, 0x100, 0x180, 0x200, 0x280, 0x300, 0x380];
                (GICD + regs[rng.below(7) as usize] + 4 * n, 2)
            }
            1 => (GICD + 0x400 + 32 * n + 4 * rng.below(8), 2),
            2 => (GICD + 0x400 + 32 * n + rng.below(32), 0),
            3 => (GICD + 0xc00 + 8 * n + 4 * rng.below(2), 2),
            _ => (GICD + 0x6000 + 8 * (32 * n + rng.below(32)), 3),
        }
    } else {
        let sgi = GICR + 0x2_0000 * layout.cpu as u64 + 0x1_0000;
        match rng.below(3) {
            0 => {
                let regs = [0x080, 0x100, 0x180, 0x200, 0x280, 0x300, 0x380, 0xc04];
                (sgi + regs[rng.below(8) as usize], 2)
            }
            1 => (sgi + 0x400 + 4 * rng.below(8), 2),
            _ => (sgi + 0x400 + rng.below(32), 0),
        }
    };
    // STRB, STR W, STR X.
    let insn = [0x3900_0020, 0, 0xb900_0020, 0xf900_0020][variant];
    let value = if variant == 3 && layout.irq {
        // GICD_IROUTER with the GIC enabled: this vCPU or one that does not exist, so that
        // what a vCPU sees depends on its own operations only.
        [layout.cpu as u64, 7][rng.below(2) as usize]
    } else if variant == 3 {
        // GICD_IROUTER: this vCPU, another, one that does not exist, or any (IRM).
        [0, 1, 7, 1 << 31][rng.below(4) as usize]
    } else {
        value
    };
    let value = defined_icfgr(layout, addr, value);
    let priority = (GICD + 0x400..GICD + 0x800).contains(&addr)
        || (addr & 0x1_ffff) >= 0x1_0400 && (addr & 0x1_ffff) < 0x1_0420 && addr >= GICR;
    let value = if layout.irq && priority {
        // The CPU interface implements 5 priority bits (`ICC_CTLR_EL1.PRIbits` = 4); QEMU's
        // distributor keeps all 8 and takes 0xff for "no interrupt" (`docs/qemu-departures.md`
        // §7): with interrupts delivered, priorities are written with bits [2:0] = 0.
        value & 0xf8f8_f8f8_f8f8_f8f8
    } else {
        value
    };
    let tag = tag(Kind::GicWrite, 0, variant as u8) | (addr & 0xff_ffff) << 24;
    let mut record = run_words(
        layout,
        tag,
        &[insn, RET],
        [value, addr, 0, 0, 0, 0, 0, 0],
        addr,
    );
    if record.status == 0 {
        record.value = 0;
    }
    record
}

const fn tag(kind: Kind, class: u8, variant: u8) -> u64 {
    (kind as u64) << 16 | (class as u64) << 8 | variant as u64
}

/// A write of `value` at `addr`, made architecturally defined if `addr` is a `GICD_ICFGR<n>` or
/// `GICR_ICFGR1`: GICv3 makes changing `Int_config` of an enabled interrupt UNPREDICTABLE
/// (IHI 0069, `GICD_ICFGR<n>`), so the fields of the interrupts enabled now keep their value.
fn defined_icfgr(layout: &Layout, addr: u64, value: u64) -> u64 {
    let sgi_frame = GICR + 0x2_0000 * layout.cpu as u64 + 0x1_0000;
    let (enabler, half) = if addr == sgi_frame + 0xc04 {
        (sgi_frame + 0x100, 1)
    } else if (GICD + 0xc08..GICD + 0xd00).contains(&addr) {
        let index = (addr - GICD - 0xc00) / 4;
        (GICD + 0x100 + 4 * (index / 2), index % 2)
    } else {
        return value;
    };
    // SAFETY: 32-bit reads of the vCPU's own ISENABLER and ICFGR registers; no side effects.
    let (enabled, current) = unsafe {
        (
            u64::from((enabler as *const u32).read_volatile()),
            u64::from((addr as *const u32).read_volatile()),
        )
    };
    let mut keep = 0u64;
    for i in 0..16 {
        if enabled >> (16 * half + i) & 1 != 0 {
            keep |= 3 << (2 * i);
        }
    }
    (value & !keep) | (current & keep)
}

/// An interrupt probe: one of the vCPU's own interrupts (an SGI, a PPI that is no timer or PMU
/// interrupt, or one of its SPIs) is put in Group 1 with a random priority, enabled (three
/// times in four) and made pending (an SGI to itself by `ICC_SGI1R_EL1`, or `ISPENDR`); then
/// `ICC_HPPIR1_EL1` and `ICC_IAR1_EL1` are read, and what was acknowledged is ended
/// (`ICC_EOIR1_EL1`, and `ICC_DIR_EL1` when `ICC_CTLR_EL1.EOImode` is 1). The value recorded
/// is `HPPIR1 | IAR1 << 32`: the GIC's choice among everything this vCPU left pending, active
/// or enabled before (GICv3 "Interrupt prioritization", IHI 0069), compared with bare QEMU's.
fn irq_probe(rng: &mut Rng, layout: &Layout) -> Record {
    let cpu = layout.cpu as u64;
    let sgi_frame = GICR + 0x2_0000 * cpu + 0x1_0000;
    let (intid, base) = match rng.below(3) {
        1 => (16 + rng.below(7), sgi_frame),
        2 if cpu < 3 => (32 * (1 + cpu) + rng.below(32), GICD),
        _ => (rng.below(16), sgi_frame),
    };
    let word = 4 * (intid / 32);
    let bit = 1u32 << (intid % 32);
    let priority = [0x00u8, 0x40, 0x80, 0xc0, 0xf0][rng.below(5) as usize];
    let enable = rng.below(4) != 0;
    let by_sgi1r = intid < 16 && rng.below(2) == 0;
    // SAFETY: the vCPU's own GIC registers (its redistributor's SGI frame, or the distributor
    // registers of its own SPIs), 32-bit and byte accesses the GIC supports.
    unsafe {
        let group = (base + 0x080 + word) as *mut u32;
        group.write_volatile(group.read_volatile() | bit);
        ((base + 0x400 + intid) as *mut u8).write_volatile(priority);
        if enable {
            ((base + 0x100 + word) as *mut u32).write_volatile(bit);
        }
        if !by_sgi1r {
            ((base + 0x200 + word) as *mut u32).write_volatile(bit);
        }
    }
    if by_sgi1r {
        // TargetList bit Aff0 = this vCPU (Aff1..3 = 0 on both sides).
        let sgi1r = intid << 24 | 1 << cpu;
        // SAFETY: ICC_SGI1R_EL1 write: an SGI to this vCPU; no memory.
        unsafe {
            core::arch::asm!("msr S3_0_C12_C11_5, {}", "isb", in(reg) sgi1r, options(nostack))
        };
    }
    let (hppir, iar, ctlr): (u64, u64, u64);
    // SAFETY: reads of ICC_HPPIR1_EL1, ICC_IAR1_EL1 (acknowledges what it returns) and
    // ICC_CTLR_EL1; no memory.
    unsafe {
        core::arch::asm!(
            "isb",
            "mrs {h}, S3_0_C12_C12_2",
            "mrs {i}, S3_0_C12_C12_0",
            "mrs {c}, S3_0_C12_C12_4",
            h = out(reg) hppir, i = out(reg) iar, c = out(reg) ctlr,
            options(nostack),
        );
    }
    end_interrupt(iar, ctlr);
    Record {
        tag: tag(Kind::IrqProbe, u8::from(by_sgi1r), u8::from(enable))
            | intid << 24
            | u64::from(priority) << 40,
        value: hppir & 0xff_ffff | (iar & 0xff_ffff) << 32,
        ..Record::default()
    }
}

core::arch::global_asm!(
    r#"
    .pushsection .text.chaos_timer_wait, "ax"
    .global chaos_timer_wait
chaos_timer_wait:                         // X0 = ticks; IRQs masked (PSTATE.I = 1)
    msr     cntv_tval_el0, x0
    mov     x1, #1                        // CNTV_CTL_EL0: ENABLE, IMASK = 0
    msr     cntv_ctl_el0, x1
    isb
1:  wfi                                   // wakes on a pending interrupt, I masked or not
    mrs     x1, isr_el1
    tbz     x1, #7, 1b                    // ISR_EL1.I: an IRQ is pending
    msr     daifclr, #2                   // the IRQ is taken here
    isb
    msr     daifset, #2                   // not reached: the exception resumes the executor
    ret

    .global chaos_timer_suspend
chaos_timer_suspend:                      // X0 = ticks; IRQs masked
    msr     cntv_tval_el0, x0
    mov     x1, #1
    msr     cntv_ctl_el0, x1
    isb
    // Falls through: waits in PSCI CPU_SUSPEND instead of WFI.

    .global chaos_suspend_wait
chaos_suspend_wait:                       // IRQs masked (PSTATE.I = 1)
    mov     x4, xzr                       // the OR of every CPU_SUSPEND result
1:  movz    x0, #0x0001
    movk    x0, #0xc400, lsl #16          // PSCI CPU_SUSPEND, SMC64
    mov     x1, xzr                       // power_state 0: standby (StateType 0), level 0
    mov     x2, xzr                       // entry_point_address: unused by a standby state
    mov     x3, xzr                       // context_id: likewise
    hvc     #0
    orr     x4, x4, x0
    mrs     x1, isr_el1
    tbz     x1, #7, 1b                    // ISR_EL1.I: returned with an IRQ pending
    mov     x3, x4                        // X3 at the exception: the executor's output[3]
    msr     daifclr, #2                   // the IRQ is taken here
    .global chaos_suspend_unmasked
chaos_suspend_unmasked:
    isb
    msr     daifset, #2                   // not reached: the exception resumes the executor
    ret
    .popsection
"#
);

unsafe extern "C" {
    /// The timer operation's words (above): arms the virtual timer, waits for its interrupt
    /// with IRQs masked, then unmasks them.
    fn chaos_timer_wait();
    /// The same, waiting in PSCI `CPU_SUSPEND` (a standby power state) instead of `WFI`.
    fn chaos_timer_suspend();
    /// Waits in PSCI `CPU_SUSPEND` with IRQs masked until an IRQ is pending (`ISR_EL1.I`),
    /// then unmasks them: the interrupt is taken at a fixed instruction, with X3 = the OR of
    /// every `CPU_SUSPEND` result (0: `SUCCESS` each time).
    pub fn chaos_suspend_wait();
    /// The instruction after its `MSR DAIFClr`.
    pub static chaos_suspend_unmasked: u8;
}

/// The virtual timer's PPI (`arm,armv8-timer`'s third interrupt on `virt`).
const VTIMER_PPI: u64 = 27;

/// An interrupt delivered as an exception, woken from `WFI` or (one time in two) from PSCI
/// `CPU_SUSPEND` with a standby power state, which PSCI (DEN0022, 5.4) makes return `SUCCESS`
/// when the core wakes, as from `WFI`: the vCPU's virtual timer fires after 1..200 ticks. First everything this vCPU's own interrupts left pending is cleared
/// (`GICR_ICPENDR0`, and `GICD_ICPENDR<n>` of its SPIs) and PPI 27 made deliverable (Group 1,
/// priority 0x80, not active, enabled), so that the timer's is the only interrupt that can
/// wake it: then `chaos_timer_wait` arms the timer, waits in `WFI` (with `PSTATE.I` set; a wake
/// without a pending IRQ, which the architecture allows, waits again) until `ISR_EL1.I`, and
/// unmasks IRQs, which takes the interrupt at a fixed instruction. The interrupt is then
/// acknowledged (`ICC_IAR1_EL1`), the timer disabled and the interrupt ended. The record is
/// the vector, `ELR_EL1` and `SPSR_EL1` of the exception and the INTID acknowledged (no
/// `ESR_EL1`: an interrupt has none); under Moat the `WFI` traps and the virtual timer is a
/// hardware interrupt its list registers forward.
fn timer_irq(rng: &mut Rng, layout: &Layout) -> Record {
    let cpu = layout.cpu as u64;
    let sgi_frame = GICR + 0x2_0000 * cpu + 0x1_0000;
    let bit = 1u32 << VTIMER_PPI;
    let ticks = 1 + rng.below(200);
    let suspend = rng.below(2) == 1;
    // SAFETY: the vCPU's own GIC registers (its redistributor's SGI frame, the distributor's
    // clear-pending word of its own SPIs), 32-bit and byte accesses the GIC supports.
    unsafe {
        ((sgi_frame + 0x280) as *mut u32).write_volatile(u32::MAX);
        if cpu < 3 {
            ((GICD + 0x280 + 4 * (1 + cpu)) as *mut u32).write_volatile(u32::MAX);
        }
        let group = (sgi_frame + 0x080) as *mut u32;
        group.write_volatile(group.read_volatile() | bit);
        ((sgi_frame + 0x400 + VTIMER_PPI) as *mut u8).write_volatile(0x80);
        ((sgi_frame + 0x380) as *mut u32).write_volatile(bit);
        ((sgi_frame + 0x100) as *mut u32).write_volatile(bit);
    }
    let entry = if suspend {
        chaos_timer_suspend as *const () as u64
    } else {
        chaos_timer_wait as *const () as u64
    };
    let mut input = [0; 8];
    input[0] = ticks;
    let ctx = exec::exec(layout.cpu, entry, input, false);
    // The CPU_SUSPEND results (X3 where the IRQ was taken), 0 when all were SUCCESS.
    let status = if suspend { ctx.output[3] } else { 0 };
    let (iar, ctlr): (u64, u64);
    // SAFETY: acknowledges the pending interrupt, disables the virtual timer (its output
    // drops), reads ICC_CTLR_EL1. No memory.
    unsafe {
        core::arch::asm!(
            "mrs {i}, S3_0_C12_C12_0",
            "msr cntv_ctl_el0, xzr",
            "isb",
            "mrs {c}, S3_0_C12_C12_4",
            i = out(reg) iar, c = out(reg) ctlr,
            options(nostack),
        );
    }
    end_interrupt(iar, ctlr);
    Record {
        tag: tag(Kind::TimerIrq, 0, u8::from(suspend)) | ticks << 24,
        status: ctx.taken,
        value: iar & 0xff_ffff | status << 32,
        far: 0,
        elr: ctx.elr.wrapping_sub(entry),
        spsr: ctx.spsr,
        vector: ctx.vector,
    }
}

/// Ends the interrupt `ICC_IAR1_EL1` returned as `iar`, if it is one (not a special INTID
/// 1020..1023): `ICC_EOIR1_EL1`, and `ICC_DIR_EL1` when `ICC_CTLR_EL1` (`ctlr`) has `EOImode`
/// = 1 (priority drop, then deactivation).
pub fn end_interrupt(iar: u64, ctlr: u64) {
    if iar >= 1020 {
        return;
    }
    // SAFETY: ends the acknowledged interrupt at the CPU interface; no memory.
    unsafe {
        core::arch::asm!("msr S3_0_C12_C12_1, {}", "isb", in(reg) iar, options(nostack));
        if ctlr & 2 != 0 {
            core::arch::asm!("msr S3_0_C12_C11_1, {}", "isb", in(reg) iar, options(nostack));
        }
    }
}

/// Enables the distributor's Group 1 with affinity routing for [`irq_probe`] (vCPU 0, before
/// the others start).
pub fn enable_distributor() {
    let ctlr = GICD as *mut u32;
    // SAFETY: GICD_CTLR: ARE_NS (bit 4) | EnableGrp1NS (bit 1); with one Security state DS
    // reads 1.
    unsafe { ctlr.write_volatile(ctlr.read_volatile() | 0x12) };
}

/// Enables this vCPU's redistributor (awake) and CPU interface (`ICC_SRE_EL1.SRE`,
/// `ICC_PMR_EL1` = 0xff, `ICC_IGRPEN1_EL1` = 1) for [`irq_probe`], after routing its own SPIs
/// to itself (`GICD_IROUTER` resets to 0, vCPU 0).
pub fn enable_gic(cpu: usize) {
    let rd = GICR + 0x2_0000 * cpu as u64;
    // SAFETY: the IROUTER registers of this vCPU's own SPIs, its GICR_WAKER; then CPU
    // interface registers, no memory.
    unsafe {
        if cpu < 3 {
            for spi in 0..32 {
                let irouter = (GICD + 0x6000 + 8 * (32 * (1 + cpu as u64) + spi)) as *mut u64;
                irouter.write_volatile(cpu as u64);
            }
        }
        let waker = (rd + 0x14) as *mut u32;
        waker.write_volatile(waker.read_volatile() & !2);
        for _ in 0..100_000 {
            if waker.read_volatile() & 4 == 0 {
                break;
            }
        }
        core::arch::asm!(
            "mrs {t}, S3_0_C12_C12_5",
            "orr {t}, {t}, #1",
            "msr S3_0_C12_C12_5, {t}",
            "isb",
            "mov {t}, #0xff",
            "msr S3_0_C4_C6_0, {t}",
            "mov {t}, #1",
            "msr S3_0_C12_C12_7, {t}",
            "isb",
            t = out(reg) _,
            options(nostack),
        );
    }
}
