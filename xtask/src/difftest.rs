//! `./x difftest`: the differential suite of SPEC §6. Each configuration runs the probe guest
//! (`bare/guests/probe`) twice — bare on QEMU, the probe itself at EL1 and QEMU's exceptions the
//! oracle, and under Moat — with the same target addresses, and compares every recorded field
//! of every case. The only differences accepted are those in [`ALLOWED`], each with its rule and
//! evidence; `docs/guest-aborts.md` lists the same table.

use crate::build::{self, Artifacts};
use crate::error::{XResult, failed};
use crate::qemu::{ConsoleMode, Machine, Outcome};
use crate::scratch::Scratch;
use crate::vm::{self, VmRequest};
use moat_config::ParangeMode;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// A boot of the probe takes well under a second; this bounds a hung one.
const LIMIT: Duration = Duration::from_secs(30);
/// RAM of the VM and of the bare machine: the same, so that the probe runs at the same
/// addresses in both and its records line up.
const RAM_MIB: u64 = 128;
/// A hole below every `2^S`: above the 128 MiB of RAM at 1 GiB, nothing there in the VM nor on
/// bare `virt` with `highmem=off`.
const HOLE: u64 = 0x5000_0000;

/// One configuration: a VM shape under Moat on one CPU, paired with a bare CPU.
#[derive(Clone, Debug)]
pub struct Config {
    /// A name for the table.
    pub name: String,
    /// The CPU Moat runs on.
    pub moat_cpu: &'static str,
    /// The CPU the bare reference runs on: one whose PARange is the VM's `P`.
    pub bare_cpu: &'static str,
    /// The VM's IPA size `S`.
    pub ipa_bits: u32,
    /// The VM's PARange mode.
    pub parange: ParangeMode,
    /// The guest-visible PARange `P` this gives (for the addresses).
    pub pa_bits: u32,
    /// `None`: MMU off; `Some(ips)`: the probe's stage 1 with `TCR_EL1.IPS` = ips.
    pub mmu_ips: Option<u32>,
    /// The guest's EL1 is AArch32 (the `probe32` configurations).
    pub aarch32: bool,
}

impl Config {
    fn new(
        moat_cpu: &'static str,
        bare_cpu: &'static str,
        s: u32,
        mode: ParangeMode,
        p: u32,
        mmu_ips: Option<u32>,
    ) -> Self {
        let mmu = mmu_ips.map_or_else(|| "mmu-off".to_owned(), |ips| format!("mmu-on-ips{ips}"));
        let cpu = moat_cpu.split(',').next().unwrap_or(moat_cpu);
        let bare = bare_cpu.split(',').next().unwrap_or(bare_cpu);
        Self {
            name: format!("{cpu}/S{s}/{}-P{p}/{mmu} vs bare {bare}", mode.name()),
            moat_cpu,
            bare_cpu,
            ipa_bits: s,
            parange: mode,
            pa_bits: p,
            mmu_ips,
            aarch32: false,
        }
    }

    /// The boundary addresses of SPEC §2 for this VM: a hole, `2^S − 4K`, `2^S`, `2^P − 4K`,
    /// `2^P`, and one page above.
    pub fn addresses(&self) -> Vec<u64> {
        let (s, p) = (1u64 << self.ipa_bits, 1u64 << self.pa_bits);
        let mut addrs = vec![HOLE, s - 0x1000, s, p - 0x1000, p, p + 0x1000];
        addrs.sort_unstable();
        addrs.dedup();
        addrs
    }

    fn bootargs(&self) -> String {
        let addrs: Vec<String> = self.addresses().iter().map(|a| format!("{a:#x}")).collect();
        let mmu = match self.mmu_ips {
            None => "probe.mmu=off".to_owned(),
            Some(ips) => format!("probe.mmu=on probe.ips={ips}"),
        };
        format!("probe.addrs={} {mmu}", addrs.join(","))
    }
}

/// The configurations of SPEC §6 / issue 5 on QEMU 7.2's CPU models.
pub fn configurations() -> Vec<Config> {
    use ParangeMode::{Max, Tight};
    const A72: &str = "cortex-a72";
    const A53: &str = "cortex-a53";
    const N1: &str = "neoverse-n1";
    const MAX: &str = "max,pauth-impdef=on";
    let mut configs = Vec::new();
    // Same core, P = L = 44: external aborts made by Moat; address size faults the hardware's
    // own (Moat must stay out of the way).
    for s in [32, 36, 39, 40, 42, 44] {
        configs.push(Config::new(A72, A72, s, Max, 44, None));
    }
    configs.push(Config::new(A72, A72, 40, Max, 44, Some(44)));
    // `max` (PARange 52, L = 48) shows P = 48: Moat makes the address size faults; the bare
    // reference is a core whose PARange is 48.
    for s in [40, 47, 48] {
        configs.push(Config::new(MAX, N1, s, Max, 48, None));
    }
    configs.push(Config::new(MAX, N1, 40, Max, 48, Some(48)));
    // Tight: P = 44 for S = 43..44, P = 40 for S = 37..40. With IPS = 48 > P and the MMU on,
    // Moat must walk the guest's tables to find the level.
    for s in [43, 44] {
        configs.push(Config::new(MAX, A72, s, Tight, 44, None));
    }
    configs.push(Config::new(MAX, A72, 43, Tight, 44, Some(48)));
    for s in [37, 40] {
        configs.push(Config::new(MAX, A53, s, Tight, 40, None));
    }
    configs.push(Config::new(MAX, A53, 40, Tight, 40, Some(48)));
    configs
}

/// The configurations on the ZCU102 model's cores (issue 13): the probe under Moat on
/// `-M xlnx-zcu102,virtualization=on` (Cortex-A53, PARange 40, so L = 40) against bare `virt
/// -cpu cortex-a53`, the same core, so no cross-core rule applies. The VM's address map is
/// Moat's on either machine (RAM at 1 GiB, the holes above it), so the probe's targets fall in
/// the same classes on both sides: the hole, `2^S` and `2^P` boundaries, beyond `P`.
pub fn zcu102_configurations() -> Vec<Config> {
    use ParangeMode::{Max, Tight};
    const A53: &str = "cortex-a53";
    let mut configs = Vec::new();
    for s in [32, 36, 39, 40] {
        configs.push(Config::new(A53, A53, s, Max, 40, None));
    }
    configs.push(Config::new(A53, A53, 40, Max, 40, Some(40)));
    configs.push(Config::new(A53, A53, 37, Tight, 40, None));
    for config in &mut configs {
        config.name = format!("zcu102 {}", config.name);
    }
    configs
}

/// The machine Moat runs on in the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Board {
    /// QEMU `virt` with a GICv3: every configuration of [`configurations`] and the AArch32
    /// half.
    Virt,
    /// QEMU's ZCU102 model: [`zcu102_configurations`], the VM given a GICv2 as the board's
    /// GIC-400 is one.
    Zcu102,
}

/// One recorded case: the fields after `MOAT-PROBE <kind> <addr>`.
pub type Record = BTreeMap<String, String>;

/// Parses a probe's console into its records by (kind, address), and the DONE count.
pub fn parse_records(console: &str) -> (BTreeMap<(String, String), Record>, Option<usize>) {
    let mut records = BTreeMap::new();
    let mut done = None;
    for line in console.lines() {
        if let Some(n) = line.strip_prefix("MOAT-PROBE-DONE ") {
            done = n.trim().parse().ok();
            continue;
        }
        let Some(rest) = line.strip_prefix("MOAT-PROBE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(kind), Some(addr)) = (words.next(), words.next()) else {
            continue;
        };
        let record: Record = words
            .map(|w| match w.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => ("outcome".to_owned(), w.to_owned()),
            })
            .collect();
        records.insert((kind.to_owned(), addr.to_owned()), record);
    }
    (records, done)
}

/// A difference the suite accepts, with why.
pub struct Allowed {
    /// The field.
    pub field: &'static str,
    /// Whether it applies to this configuration and case.
    pub applies: fn(&Config, &str, u64) -> bool,
    /// The rule and the evidence (also in `docs/guest-aborts.md`).
    pub reason: &'static str,
}

/// Fields that follow the core's features (SPEC §6, cross-core pairs): the packed `pstate`'s
/// feature-presence bits and the PSTATE bits of features one core has and the other lacks.
fn cross_core(config: &Config, _kind: &str, _addr: u64) -> bool {
    config.moat_cpu.split(',').next() != config.bare_cpu.split(',').next()
}

/// An `AT` whose result depends on the hardware's PARange: with the hardware's PARange above
/// `P`, `AT S1E1R` completes without a fault where a core of PARange `P` reports an address
/// size fault in `PAR_EL1`. AT executes without trapping to EL2 (no FEAT_FGT on QEMU 7.2), so
/// Moat cannot make it fault.
fn at_beyond_p_on_a_larger_core(config: &Config, kind: &str, addr: u64) -> bool {
    cross_core(config, kind, addr) && kind.starts_with("at_s1e1r") && addr >= 1 << config.pa_bits
}

/// `SPSR.BTYPE` of an exception taken right after an indirect branch: set on a core with
/// FEAT_BTI (QEMU `max`), always 0 on one without (the reference cores).
fn btype_on_a_bti_core(config: &Config, kind: &str, addr: u64) -> bool {
    cross_core(config, kind, addr)
        && config.moat_cpu.starts_with("max")
        && kind.starts_with("fetch_br")
}

/// An AArch32 guest's `SPSR_<mode>` as its handler reads it under a hypervisor on QEMU.
fn aarch32_spsr_on_qemu(config: &Config, _kind: &str, _addr: u64) -> bool {
    config.aarch32
}

/// `DC ZVA` with the MMU off where nothing backs the address: the Arm ARM gives an Alignment
/// fault (Device memory, `AccessType_DCZero`), which Moat injects; bare QEMU gives the bus's
/// external abort.
fn dc_zva_to_device_memory(config: &Config, kind: &str, _addr: u64) -> bool {
    config.mmu_ips.is_none() && !config.aarch32 && kind.starts_with("dc_zva")
}

/// A misaligned load or store with the MMU off below `2^P`: Device memory, so the Arm ARM gives
/// an Alignment fault, which Moat injects; bare QEMU 7.2 makes no memory-type alignment check and
/// gives the bus's external abort (10.0.2 gives the Alignment fault, as Moat does).
fn misaligned_with_the_mmu_off(config: &Config, kind: &str, addr: u64) -> bool {
    config.mmu_ips.is_none()
        && !config.aarch32
        && kind.contains("_misaligned")
        && addr < 1 << config.pa_bits
}

/// A misaligned load's `FAR_EL1` where bare QEMU 7.2 reports the bus's external abort: it splits a
/// misaligned load from I/O memory into aligned loads and reports the first one's address, which
/// lies below the bytes the instruction reads; the hardware (and Moat, from `FAR_EL2`) reports
/// the access's own address.
fn misaligned_load_split_by_qemu(_config: &Config, kind: &str, _addr: u64) -> bool {
    kind.starts_with("ldr_misaligned")
}

/// The accepted differences (SPEC §6).
pub const ALLOWED: &[Allowed] = &[
    Allowed {
        field: "spsr",
        applies: aarch32_spsr_on_qemu,
        reason: "QEMU departure (TOOLCHAIN.md, measured 2026-11-25 on QEMU 7.2 and 10.0.2): the \
                 current AArch32 mode's SPSR is not synchronised with its AArch64 view across \
                 EL2 <-> AArch32 EL1, so after an injected exception the guest's `MRS Rd, SPSR` \
                 returns a stale value however right Moat's `SPSR_abt`/`SPSR_und` write is; the \
                 value Moat writes is checked against `AArch32.EnterMode()` by the host tests of \
                 `moat_vcpu::entry`",
    },
    Allowed {
        field: "spsr",
        applies: btype_on_a_bti_core,
        reason: "cross-core pair: SPSR.BTYPE after `BR` is the branch type on a core with FEAT_BTI \
                 (`max`, SPSR 0x7c5) and 0 on the reference core without it (0x3c5); the same-core \
                 BRK reference checks the rest of PSTATE",
    },
    Allowed {
        field: "pstate",
        applies: cross_core,
        reason: "cross-core pair: PSTATE fields of features the bare core lacks (SSBS, PAN, UAO, DIT \
                 present on `max`, absent on the reference); compared instead against the same \
                 core's own BRK",
    },
    Allowed {
        field: "par",
        applies: at_beyond_p_on_a_larger_core,
        reason: "AT S1E1R is not trapped (no FEAT_FGT on QEMU 7.2): on a core whose PARange exceeds \
                 P it translates addresses a core of PARange P reports as address size faults",
    },
    Allowed {
        field: "esr",
        applies: misaligned_with_the_mmu_off,
        reason: "QEMU departure (docs/qemu-departures.md): a misaligned access to Device memory \
                 (every data access with the MMU off) is an Alignment fault \
                 (AArch64.S1HasAlignmentFault()), which Moat injects; bare QEMU 7.2 makes no \
                 such check and gives the bus's external abort (10.0.2 checks, as Moat does)",
    },
    Allowed {
        field: "far",
        applies: misaligned_load_split_by_qemu,
        reason: "QEMU departure (docs/qemu-departures.md): bare QEMU 7.2 splits a misaligned load \
                 from I/O memory into aligned loads and reports the external abort of the first \
                 at its aligned-down address, outside the bytes the LDUR reads; Moat reports the \
                 access's address (FAR_EL2), as FAR_ELx is defined",
    },
    Allowed {
        field: "esr",
        applies: dc_zva_to_device_memory,
        reason: "QEMU departure (docs/qemu-departures.md): DC ZVA of Device memory (every data \
                 access with the MMU off) is an Alignment fault (AArch64.S1HasAlignmentFault(), \
                 AccessType_DCZero); bare QEMU 7.2 gives the external abort of the bus instead",
    },
];

/// The verdict of one case.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every field equal.
    Same,
    /// Equal except for accepted differences.
    Allowed(Vec<&'static str>),
    /// A difference no rule accepts.
    Differs(String),
}

/// Compares one case's records.
pub fn compare(config: &Config, kind: &str, addr: &str, bare: &Record, moat: &Record) -> Verdict {
    let addr_value = u64::from_str_radix(addr.trim_start_matches("0x"), 16).unwrap_or(0);
    let mut allowed = Vec::new();
    let mut differs = String::new();
    let fields: std::collections::BTreeSet<&String> = bare.keys().chain(moat.keys()).collect();
    for field in fields {
        let (b, m) = (bare.get(field), moat.get(field));
        if b == m {
            continue;
        }
        match ALLOWED
            .iter()
            .find(|a| a.field == field && (a.applies)(config, kind, addr_value))
        {
            Some(rule) => allowed.push(rule.reason),
            None => {
                let _ = write!(differs, "{field}: bare {} moat {}; ", show(b), show(m));
            }
        }
    }
    if !differs.is_empty() {
        Verdict::Differs(differs)
    } else if allowed.is_empty() {
        Verdict::Same
    } else {
        Verdict::Allowed(allowed)
    }
}

fn show(v: Option<&String>) -> &str {
    v.map_or("(absent)", String::as_str)
}

/// The packed PSTATE of the same core's own `BRK` from the same mode: an injected abort must
/// leave the same PSTATE (SPEC §6, the same-core reference).
fn brk_reference<'a>(
    records: &'a BTreeMap<(String, String), Record>,
    kind: &str,
) -> Option<&'a String> {
    let mode = if kind.contains("_el0") {
        "brk_el0"
    } else if kind.contains("_el1t") {
        "brk_el1t"
    } else {
        "brk_el1h"
    };
    records
        .get(&(mode.to_owned(), "0x0".to_owned()))?
        .get("pstate")
}

/// Totals of a run.
#[derive(Default)]
pub struct Totals {
    /// Cases with no unaccepted difference.
    pub passed: usize,
    /// Cases with one.
    pub failed: usize,
}

/// Runs every configuration, prints the table and the mismatches, and returns the totals.
///
/// # Errors
///
/// When a boot cannot be started.
pub fn run(artifacts: &Artifacts, board: Board) -> XResult<Totals> {
    let mut totals = Totals::default();
    let mut table = String::new();
    let probe = artifacts.guest("moat-guest-probe");
    println!(
        "{:<69} {:>6} {:>6} {:>8} {:>6}",
        "configuration", "cases", "same", "allowed", "differ"
    );
    let configs = match board {
        Board::Virt => configurations(),
        Board::Zcu102 => zcu102_configurations(),
    };
    for config in configs {
        let bare = boot_bare(artifacts, &config)?;
        let moat = match board {
            Board::Virt => boot_moat(artifacts, &probe, &config)?,
            Board::Zcu102 => boot_moat_on_zcu102(artifacts, &probe, &config)?,
        };
        let row = compare_runs(&config, &bare, &moat, &mut table);
        print_row(&config.name, &row);
        totals.passed += row.same + row.allowed;
        totals.failed += row.differ + row.broken;
    }
    let name = match board {
        Board::Virt => {
            run32(artifacts, &mut totals, &mut table)?;
            "difftest-table.txt"
        }
        Board::Zcu102 => "difftest-table-zcu102.txt",
    };
    let path = build::out_dir().join(name);
    // Renamed into place: a difftest running beside this one never leaves half a table.
    build::replace(&path, |partial| {
        std::fs::write(partial, &table).map_err(|e| failed(format!("{}: {e}", path.display())))
    })?;
    println!("case × configuration × verdict table: {}", path.display());
    Ok(totals)
}

#[derive(Default)]
struct Row {
    cases: usize,
    same: usize,
    allowed: usize,
    differ: usize,
    broken: usize,
    report: Vec<String>,
}

fn compare_runs(config: &Config, bare: &Outcome, moat: &Outcome, table: &mut String) -> Row {
    let mut row = Row::default();
    let (bare_records, bare_done) = parse_records(&bare.console);
    let (moat_records, moat_done) = parse_records(&moat.console);
    for (name, done, outcome) in [("bare", bare_done, bare), ("moat", moat_done, moat)] {
        if done.is_none() {
            row.broken += 1;
            let tail: Vec<&str> = outcome.console.lines().rev().take(6).collect();
            row.report.push(format!(
                "{name} run did not finish (no MOAT-PROBE-DONE): {tail:?}"
            ));
        }
    }
    for ((kind, addr), b) in &bare_records {
        row.cases += 1;
        let verdict = match moat_records.get(&(kind.clone(), addr.clone())) {
            None => Verdict::Differs("no record under Moat".into()),
            Some(m) => same_core_pstate(&moat_records, kind, m)
                .map_or_else(|| compare(config, kind, addr, b, m), Verdict::Differs),
        };
        let word = match &verdict {
            Verdict::Same => {
                row.same += 1;
                "same".to_owned()
            }
            Verdict::Allowed(reasons) => {
                row.allowed += 1;
                format!("allowed ({} rule(s))", reasons.len())
            }
            Verdict::Differs(what) => {
                row.differ += 1;
                row.report.push(format!("DIFF {kind} {addr}: {what}"));
                format!("DIFF {what}")
            }
        };
        let _ = writeln!(table, "{kind}\t{addr}\t{}\t{word}", config.name);
    }
    row
}

/// An injected abort's PSTATE must equal the same core's own `BRK` from the same mode.
fn same_core_pstate(
    records: &BTreeMap<(String, String), Record>,
    kind: &str,
    moat: &Record,
) -> Option<String> {
    if kind.starts_with("brk_") || moat.get("outcome").is_some() {
        return None;
    }
    let reference = brk_reference(records, kind)?;
    let pstate = moat.get("pstate")?;
    (pstate != reference)
        .then(|| format!("pstate {pstate} differs from the same core's BRK {reference}"))
}

fn boot_bare(artifacts: &Artifacts, config: &Config) -> XResult<Outcome> {
    let machine = Machine {
        cpu: config.bare_cpu.into(),
        mem_mib: RAM_MIB,
        kernel: artifacts.guest("moat-guest-probe"),
        initrd: None,
        append: Some(config.bootargs()),
        el2: false,
        gic_version: 3,
        smp: 1,
    };
    machine.run(ConsoleMode::Captured, Some(LIMIT))
}

/// The probe's VM for `config`.
fn probe_request(config: &Config) -> VmRequest {
    VmRequest {
        ipa_bits: Some(config.ipa_bits),
        parange: Some(config.parange),
        mem: Some(RAM_MIB << 20),
        bootargs: Some(config.bootargs()),
        ..VmRequest::default()
    }
}

/// The probe under Moat on the ZCU102 model, its VM given a GICv2.
fn boot_moat_on_zcu102(
    artifacts: &Artifacts,
    probe: &std::path::Path,
    config: &Config,
) -> XResult<Outcome> {
    let request = VmRequest {
        gic_v2: true,
        ..probe_request(config)
    };
    let vm = vm::describe(&request, config.moat_cpu)?;
    let scratch = Scratch::new("difftest")?;
    let bundle = scratch.join("probe.bundle");
    vm::write_bundle(&vm, probe, &bundle)?;
    let dtb = crate::board::zcu102_dtb();
    crate::board::Zcu102 {
        moat: &artifacts.moat,
        bundle: &bundle,
        dtb: &dtb,
    }
    .run(ConsoleMode::Captured, Some(LIMIT))
}

fn boot_moat(artifacts: &Artifacts, probe: &std::path::Path, config: &Config) -> XResult<Outcome> {
    let vm = vm::describe(&probe_request(config), config.moat_cpu)?;
    let scratch = Scratch::new("difftest")?;
    let bundle = scratch.join("probe.bundle");
    vm::moat_machine(&vm, &artifacts.moat, probe, config.moat_cpu, &bundle)?
        .run(ConsoleMode::Captured, Some(LIMIT))
}

/// An AArch32 configuration: an `arch = "aarch32"` VM under Moat on `cpu`, against the same
/// core bare, where the AArch32 EL1 is entered through the EL2 shim with stage 2 off and
/// `HCR_EL2.RW` = 0 (SPEC §6: every exception is then the CPU's own).
#[derive(Clone, Debug)]
pub struct Config32 {
    /// A name for the table.
    pub name: String,
    /// The CPU, for both runs.
    pub cpu: &'static str,
    /// The VM's IPA size `S`.
    pub ipa_bits: u32,
    /// The probe's translation: `off`, `lpae` or `short`.
    pub mmu: &'static str,
    /// More probe options: `SCTLR` bits the injection must honour (`probe.hivecs=1` for
    /// `SCTLR.V`, `probe.ee=1`, `probe.te=1`, `probe.span=0`, `probe.dssbs=1`).
    pub options: &'static str,
}

impl Config32 {
    fn new(cpu: &'static str, ipa_bits: u32, mmu: &'static str, options: &'static str) -> Self {
        let short_cpu = cpu.split(',').next().unwrap_or(cpu);
        let extra = options.replace("probe.", "").replace(' ', ",");
        let extra = if extra.is_empty() {
            extra
        } else {
            format!("/{extra}")
        };
        let name = format!(
            "{short_cpu}/aarch32/S{ipa_bits}/mmu-{mmu}{extra} vs bare {short_cpu} (EL2 shim)"
        );
        Self {
            name,
            cpu,
            ipa_bits,
            mmu,
            options,
        }
    }

    /// Holes and the `2^S` boundary as far as an AArch32 guest can reach: 32 bits of output
    /// with the MMU off, 40 with LPAE or supersections (an AArch32 guest's PA size is
    /// min(`P`, 40), and `P` ≥ 40 on these cores: no address size fault is reachable).
    pub fn addresses(&self) -> Vec<u64> {
        let s = 1u64 << self.ipa_bits;
        let mut addrs = vec![HOLE, 0xFFFF_F000, s - 0x1000, s, (1 << 40) - 0x1000];
        let limit = if self.mmu == "off" {
            1u64 << 32
        } else {
            1 << 40
        };
        addrs.retain(|&a| a < limit);
        addrs.sort_unstable();
        addrs.dedup();
        addrs
    }

    fn bootargs(&self) -> String {
        let addrs: Vec<String> = self.addresses().iter().map(|a| format!("{a:#x}")).collect();
        format!(
            "probe.addrs={} probe.mmu={} {}",
            addrs.join(","),
            self.mmu,
            self.options
        )
    }
}

/// The AArch32 configurations: same-core pairs on a core with an AArch32 EL1.
pub fn configurations32() -> Vec<Config32> {
    let mut configs = Vec::new();
    for cpu in ["cortex-a72", "max,pauth-impdef=on"] {
        for (s, mmu) in [
            (32, "off"),
            (36, "lpae"),
            (40, "lpae"),
            (32, "short"),
            (36, "short"),
        ] {
            configs.push(Config32::new(cpu, s, mmu, ""));
        }
    }
    // The SCTLR bits AArch32.EnterMode() reads: hivecs (V), big-endian entry (EE), T32 handlers
    // (TE), PAN set on entry (SPAN = 0), SSBS from DSSBS; FEAT_PAN and FEAT_SSBS need `max`.
    const ALL_BITS: &str = "probe.hivecs=1 probe.ee=1 probe.te=1 probe.span=0 probe.dssbs=1";
    configs.push(Config32::new("max,pauth-impdef=on", 40, "lpae", ALL_BITS));
    configs.push(Config32::new(
        "max,pauth-impdef=on",
        32,
        "off",
        "probe.ee=1 probe.span=0",
    ));
    configs.push(Config32::new(
        "cortex-a53",
        32,
        "short",
        "probe.hivecs=1 probe.te=1",
    ));
    configs
}

/// Where QEMU's loader puts the AArch32 probe for the bare run (its link address).
const PROBE32_ADDRESS: &str = "0x40100000";

fn boot_bare32(artifacts: &Artifacts, config: &Config32) -> XResult<Outcome> {
    let machine = Machine {
        cpu: config.cpu.into(),
        mem_mib: RAM_MIB,
        kernel: artifacts.guest("moat-guest-shim32"),
        initrd: None,
        append: Some(config.bootargs()),
        el2: true,
        gic_version: 3,
        smp: 1,
    };
    let probe = artifacts.guests.join(format!("{}.bin", build::PROBE32));
    let loader = format!("loader,file={},addr={PROBE32_ADDRESS}", probe.display());
    machine.run_with(
        &["-device".into(), loader],
        ConsoleMode::Captured,
        Some(LIMIT),
    )
}

fn boot_moat32(artifacts: &Artifacts, config: &Config32) -> XResult<Outcome> {
    let mut vm = moat_config::VmConfig::default_virt();
    vm.arch = moat_config::GuestArch::Aarch32;
    vm.ipa_bits = config.ipa_bits;
    vm.bootargs = config.bootargs();
    let probe = artifacts.guests.join(format!("{}.elf", build::PROBE32));
    let scratch = Scratch::new("difftest")?;
    let bundle = scratch.join("probe32.bundle");
    vm::moat_machine(&vm, &artifacts.moat, &probe, config.cpu, &bundle)?
        .run(ConsoleMode::Captured, Some(LIMIT))
}

/// Runs the AArch32 configurations, adding to `totals` and the table.
fn run32(artifacts: &Artifacts, totals: &mut Totals, table: &mut String) -> XResult<()> {
    for config in configurations32() {
        let bare = boot_bare32(artifacts, &config)?;
        let moat = boot_moat32(artifacts, &config)?;
        let as64 = Config {
            name: config.name.clone(),
            moat_cpu: config.cpu,
            bare_cpu: config.cpu,
            ipa_bits: config.ipa_bits,
            parange: ParangeMode::Max,
            pa_bits: 40,
            mmu_ips: None,
            aarch32: true,
        };
        let row = compare_runs(&as64, &bare, &moat, table);
        print_row(&config.name, &row);
        totals.passed += row.same + row.allowed;
        totals.failed += row.differ + row.broken;
    }
    Ok(())
}

fn print_row(name: &str, row: &Row) {
    println!(
        "{name:<69} {:>6} {:>6} {:>8} {:>6}",
        row.cases, row.same, row.allowed, row.differ
    );
    for line in &row.report {
        println!("    {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_lines_parse_into_fields_by_kind_and_address() {
        let console = "probe: hello\nMOAT-PROBE ldr 0x50000000 vec=0x200 esr=0x96000010 far=0x50000000 elr=0 spsr=0x3c5 pstate=0x3c5\nMOAT-PROBE dc_civac 0x50000000 none\nMOAT-PROBE-DONE 2\n";
        let (records, done) = parse_records(console);
        assert_eq!(done, Some(2));
        let ldr = &records[&("ldr".to_owned(), "0x50000000".to_owned())];
        assert_eq!(ldr["esr"], "0x96000010");
        assert_eq!(
            records[&("dc_civac".to_owned(), "0x50000000".to_owned())]["outcome"],
            "none"
        );
    }

    #[test]
    fn a_different_esr_is_a_difference_no_rule_accepts() {
        let config = Config::new("cortex-a72", "cortex-a72", 40, ParangeMode::Max, 44, None);
        let bare = Record::from([("esr".to_owned(), "0x96000010".to_owned())]);
        let moat = Record::from([("esr".to_owned(), "0x96000000".to_owned())]);
        assert!(matches!(
            compare(&config, "ldr", "0x50000000", &bare, &moat),
            Verdict::Differs(_)
        ));
    }

    #[test]
    fn cross_core_pstate_difference_is_accepted_with_its_reason() {
        let config = Config::new("max", "neoverse-n1", 40, ParangeMode::Max, 48, None);
        let bare = Record::from([("pstate".to_owned(), "0xc01000000003c5".to_owned())]);
        let moat = Record::from([("pstate".to_owned(), "0x1c01000000003c5".to_owned())]);
        assert!(matches!(
            compare(&config, "ldr", "0x50000000", &bare, &moat),
            Verdict::Allowed(_)
        ));
    }

    #[test]
    fn boundary_addresses_straddle_2_pow_s_and_2_pow_p() {
        let config = Config::new("cortex-a72", "cortex-a72", 40, ParangeMode::Max, 44, None);
        assert_eq!(
            config.addresses(),
            vec![
                HOLE,
                (1 << 40) - 0x1000,
                1 << 40,
                (1 << 44) - 0x1000,
                1 << 44,
                (1 << 44) + 0x1000
            ]
        );
    }
}
