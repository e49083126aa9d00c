//! `./x explain`: a guest trap explained the way Moat handles it.
//!
//! Given the syndrome registers of a trap (`ESR_EL2`, `FAR_EL2`, `HPFAR_EL2`) and the VM's shape,
//! it prints the syndrome field by field, the decision of SPEC §2 made by the real decision
//! function (`moat_vcpu::abort::decide`), the exception Moat injects made by the real injection
//! code (`moat_vcpu::inject`, SPEC §3), and what Linux 6.1 KVM would do instead (SPEC §5), each
//! difference with the Arm ARM rule that decides it.
//!
//! The explainer has no guest memory. Where the decision needs the guest's stage-1 walk (an
//! address size fault with the MMU on, a fault on the walk), `decide` is asked with a guest
//! view whose walk cannot say, and the explainer prints the rule and the outcome for each level
//! the walk could report, never a made-up level.

use crate::cli::ExplainArgs;
use crate::error::{XResult, usage};
use moat_arm::addr::{Ipa, Va};
use moat_arm::esr::{DataAbortIss, Esr, ExceptionClass, Syndrome};
use moat_arm::fault_addr::{HPFAR_FIPA, HPFAR_NS, fault_ipa, hpfar_page};
use moat_arm::fsc::{Fsc, Level};
use moat_arm::fsr32::Fsr32;
use moat_arm::pstate::SavedPsr;
use moat_arm::sysreg::ttbcr;
use moat_config::parange::PARANGE_ENCODINGS;
use moat_config::{GuestArch, ParangeMode, VmConfig, guest_parange_bits};
use moat_vcpu::abort::{
    Decision, GuestAbort, GuestFormat, GuestView, HolePolicy, IpaRange, VmView, decide,
};
use moat_vcpu::entry::{Aarch32Target, CpuFeatures, Entry, GuestContext};
use moat_vcpu::idregs::IdRegister;
use moat_vcpu::inject::{Abort, AbortAccess, AbortCause, at_fault_par, inject_abort};
use moat_vcpu::s1walk::{FaultKind, Outcome, Trace, WalkFault, WalkReport};
use std::cell::Cell;
use std::fmt::Write as _;
use std::process::ExitCode;

/// Carries out `./x explain`: prints the explanation.
///
/// # Errors
///
/// A usage error (exit status 2) for a bad value, one line naming it.
pub fn run(args: &ExplainArgs) -> XResult<ExitCode> {
    let request = Request::from_args(args)?;
    print!("{}", explain(&request));
    Ok(ExitCode::SUCCESS)
}

/// The guest's EL1 translation regime, as `--guest` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GuestKind {
    A64,
    A32Lpae,
    A32Short,
}

impl GuestKind {
    const fn format(self) -> GuestFormat {
        match self {
            Self::A64 => GuestFormat::Aarch64,
            Self::A32Lpae => GuestFormat::Aarch32Long,
            Self::A32Short => GuestFormat::Aarch32Short,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::A64 => "AArch64",
            Self::A32Lpae => "AArch32, long descriptors (TTBCR.EAE = 1)",
            Self::A32Short => "AArch32, short descriptors (TTBCR.EAE = 0)",
        }
    }

    const fn aarch32(self) -> bool {
        !matches!(self, Self::A64)
    }
}

/// What the user asked about, every value checked.
#[derive(Clone, Debug)]
struct Request {
    esr: Esr,
    far: u64,
    hpfar: u64,
    /// How `hpfar` was obtained, when the user did not give it.
    hpfar_note: Option<&'static str>,
    elr: u64,
    vm: VmConfig,
    /// `P` and how it was chosen.
    pa_bits: u32,
    parange_how: String,
    /// `L` and the CPU model it comes from.
    limit: u32,
    cpu: String,
    guest: GuestKind,
    /// `SPSR_EL2` at the trap, and the name of that state.
    spsr: u64,
    from: &'static str,
    mmu_on: bool,
}

/// A hexadecimal register value (`0x` and `_` optional).
fn parse_hex(flag: &str, text: &str) -> XResult<u64> {
    let digits = text.trim_start_matches("0x").trim_start_matches("0X");
    let digits = digits.replace('_', "");
    u64::from_str_radix(&digits, 16)
        .map_err(|_| usage(format!("--{flag} {text}: not a 64-bit hexadecimal number")))
}

fn parse_opt_hex(flag: &str, text: Option<&String>) -> XResult<Option<u64>> {
    text.map(|t| parse_hex(flag, t)).transpose()
}

/// `S`: 32..=`L` (SPEC §1).
fn parse_ipa_bits(text: &str, limit: u32, cpu: &str) -> XResult<u32> {
    let min = moat_config::validate::MIN_IPA_BITS;
    match text.parse::<u32>() {
        Ok(s) if (min..=limit).contains(&s) => Ok(s),
        _ => Err(usage(format!(
            "--ipa-bits {text}: S must be {min}..={limit} (the IPA limit L of -cpu {cpu})"
        ))),
    }
}

/// `P`: `max` (= `L`), `tight`, or a PARange encoding with `S <= P <= L` (SPEC §1).
fn parse_parange(text: &str, s: u32, limit: u32) -> XResult<(u32, String)> {
    let p = match text {
        "max" => return Ok((limit, String::from("max: the IPA limit L"))),
        "tight" => {
            let p = guest_parange_bits(ParangeMode::Tight, s, limit);
            return Ok((p, String::from("tight: the smallest encoding covering S")));
        }
        bits => bits
            .parse::<u32>()
            .ok()
            .filter(|b| PARANGE_ENCODINGS.contains(b)),
    };
    let Some(p) = p else {
        return Err(usage(format!(
            "--parange {text}: not max, tight or a PARange size in bits ({PARANGE_ENCODINGS:?})"
        )));
    };
    if p < s {
        return Err(usage(format!("--parange {text}: P must cover S = {s}")));
    }
    if p > limit {
        return Err(usage(format!(
            "--parange {text}: P is never above the IPA limit L = {limit}"
        )));
    }
    Ok((p, String::from("given")))
}

fn parse_guest(text: &str) -> XResult<GuestKind> {
    match text {
        "a64" => Ok(GuestKind::A64),
        "a32-lpae" => Ok(GuestKind::A32Lpae),
        "a32" => Ok(GuestKind::A32Short),
        _ => Err(usage(format!("--guest {text}: not a64, a32-lpae or a32"))),
    }
}

/// `SPSR_EL2` for the state the guest was in: `EL0t` 0x0, `EL1t` 0x3c4, `EL1h` 0x3c5 (D, A, I,
/// F masked at EL1); AArch32: User 0x10, Supervisor 0x1d3 (A, I, F masked).
fn parse_from(text: &str, guest: GuestKind) -> XResult<(u64, &'static str)> {
    let a32 = guest.aarch32();
    match (text, a32) {
        ("el0", false) => Ok((0x0, "EL0t")),
        ("el0-a32", false) => Ok((0x10, "AArch32 EL0 (User)")),
        ("el1t", false) => Ok((0x3C4, "EL1t")),
        ("el1h" | "el1", false) => Ok((0x3C5, "EL1h")),
        ("el0" | "el0-a32", true) => Ok((0x10, "User")),
        ("el1" | "el1h", true) => Ok((0x1D3, "Supervisor")),
        ("el1t", true) => Err(usage(
            "--from el1t: an AArch32 EL1 has no SP_EL0 selection (use el1 or el0)",
        )),
        _ => Err(usage(format!(
            "--from {text}: not el0, el0-a32, el1t or el1h"
        ))),
    }
}

fn parse_mmu(text: &str) -> XResult<bool> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(usage(format!("--mmu {text}: not on or off"))),
    }
}

/// Refuses syndromes no CPU reports: RES0 bits set, an unallocated class or fault code, `IL`
/// = 0 where the Arm ARM makes it 1.
fn check_esr(text: &str, esr: Esr) -> XResult<()> {
    let bad = |why: String| Err(usage(format!("--esr {text}: {why}")));
    if esr.bits() >> 56 != 0 {
        return bad(String::from("bits [63:56] are RES0"));
    }
    let syndrome = esr.decode();
    if let ExceptionClass::Unallocated(ec) = esr.ec() {
        return bad(format!("EC {ec:#04x} is not an allocated exception class"));
    }
    let res0 = esr.iss() & !syndrome.defined_iss_bits();
    if res0 != 0 {
        return bad(format!("ISS bits {res0:#x} are RES0 for EC {}", esr.ec()));
    }
    let (fsc, isv) = match syndrome {
        Syndrome::DataAbortLower(iss) | Syndrome::DataAbortSame(iss) => (iss.dfsc, iss.isv),
        Syndrome::InstrAbortLower(iss) | Syndrome::InstrAbortSame(iss) => (iss.ifsc, false),
        _ => return Ok(()),
    };
    // With ISV = 0, SAS, SRT and AR are RES0 (bit 21 is TopLevel, bit 15 FnP).
    const ISV0_RES0: u32 = (0b11 << 22) | (0b1_1111 << 16) | (1 << 14);
    if !isv && esr.iss() & ISV0_RES0 != 0 && matches!(esr.ec().code(), 0x24 | 0x25) {
        return bad(String::from(
            "ISV=0 but SAS, SRT or AR is set (RES0 without a valid syndrome)",
        ));
    }
    if let Fsc::Reserved(code) = fsc {
        return bad(format!("fault status code {code:#04x} is not allocated"));
    }
    if !isv && !esr.il() {
        return bad(String::from(
            "IL=0, but IL is 1 for instruction aborts and for data aborts with ISV=0",
        ));
    }
    Ok(())
}

impl Request {
    fn from_args(args: &ExplainArgs) -> XResult<Self> {
        let esr = Esr::new(parse_hex("esr", &args.esr)?);
        check_esr(&args.esr, esr)?;
        let far = parse_opt_hex("far", args.far.as_ref())?.unwrap_or(0);
        let elr = parse_opt_hex("elr", args.elr.as_ref())?.unwrap_or(0);
        let mmu_on = parse_mmu(args.mmu.as_deref().unwrap_or("off"))?;
        let cpu = args.cpu.clone();
        let limit = crate::qemu::cpu_pa_bits(&cpu)
            .map(|pa| pa.min(moat_config::validate::MAX_IPA_BITS))
            .ok_or_else(|| {
                usage(format!(
                    "--cpu {cpu}: unknown model (known: cortex-a53, cortex-a57, cortex-a72, \
                     neoverse-n1, max)"
                ))
            })?;
        let mut vm = load_vm(args.config.as_deref())?;
        if let Some(text) = &args.ipa_bits {
            vm.ipa_bits = parse_ipa_bits(text, limit, &cpu)?;
        }
        let parange = args
            .parange
            .clone()
            .unwrap_or_else(|| String::from(vm.parange.name()));
        let (pa_bits, parange_how) = parse_parange(&parange, vm.ipa_bits, limit)?;
        vm.validate(Some(limit))
            .map_err(|e| usage(format!("VM '{}' on -cpu {cpu}: {e}", vm.name)))?;
        let default_guest = match vm.arch {
            GuestArch::Aarch64 => "a64",
            GuestArch::Aarch32 => "a32-lpae",
        };
        let guest = parse_guest(args.guest.as_deref().unwrap_or(default_guest))?;
        let (spsr, from) = parse_from(args.from.as_deref().unwrap_or("el1h"), guest)?;
        let (hpfar, hpfar_note) = hpfar_of(esr, far, args.hpfar.as_ref(), mmu_on)?;
        if guest.aarch32() {
            check_aarch32_addresses(far, hpfar)?;
        }
        Ok(Self {
            esr,
            far,
            hpfar,
            hpfar_note,
            elr,
            vm,
            pa_bits,
            parange_how,
            limit,
            cpu,
            guest,
            spsr,
            from,
            mmu_on,
        })
    }

    /// The VM view the decision takes.
    fn view<'a>(&self, ram: &'a [IpaRange], devices: &'a [IpaRange]) -> VmView<'a> {
        VmView {
            ipa_bits: self.vm.ipa_bits,
            pa_bits: self.pa_bits,
            ram,
            devices,
            hole_policy: match self.vm.hole_policy {
                moat_config::HolePolicy::Abort => HolePolicy::Abort,
                moat_config::HolePolicy::ReadAsZeroWriteIgnore => HolePolicy::ReadAsZeroWriteIgnore,
            },
            format: self.guest.format(),
            mmu_on: self.mmu_on,
        }
    }

    /// The guest state exception entry reads: `VBAR_EL1` = 0 (only the vector offset matters),
    /// `SCTLR_EL1` = 0, no optional CPU features, `TTBCR.EAE` from `--guest`.
    fn context(&self) -> GuestContext {
        GuestContext {
            pc: self.elr,
            spsr_el2: self.spsr,
            tcr_el1: ttbcr::EAE.with_flag(0, self.guest == GuestKind::A32Lpae),
            features: CpuFeatures {
                el1_aarch32: self.guest.aarch32(),
                ..CpuFeatures::default()
            },
            ..GuestContext::default()
        }
    }
}

/// An AArch32 EL1's VAs have 32 bits and its IPAs at most 40 (LPAE output addresses).
fn check_aarch32_addresses(far: u64, hpfar: u64) -> XResult<()> {
    if far >> 32 != 0 {
        return Err(usage(format!(
            "--far {far:#x}: an AArch32 guest's virtual addresses have 32 bits"
        )));
    }
    if hpfar_page(hpfar).0 >> 40 != 0 {
        return Err(usage(format!(
            "--hpfar {hpfar:#x}: an AArch32 guest's IPAs have at most 40 bits (LPAE output)"
        )));
    }
    Ok(())
}

fn load_vm(path: Option<&std::path::Path>) -> XResult<VmConfig> {
    let Some(path) = path else {
        return Ok(VmConfig::default_virt());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("--config {}: {e}", path.display())))?;
    VmConfig::from_toml_str(&text).map_err(|e| usage(format!("--config {}: {e}", path.display())))
}

/// `HPFAR_EL2` as given (bits outside `FIPA` and `NS` are RES0), or, with the MMU off, the page
/// of `FAR_EL2` (the IPA is the VA); required where the fault sets it and the VA is no guide.
fn hpfar_of(
    esr: Esr,
    far: u64,
    given: Option<&String>,
    mmu_on: bool,
) -> XResult<(u64, Option<&'static str>)> {
    if let Some(text) = given {
        let hpfar = parse_hex("hpfar", text)?;
        if hpfar & !(HPFAR_FIPA.mask() | HPFAR_NS.mask()) != 0 {
            return Err(usage(format!(
                "--hpfar {text}: bits [62:48] and [3:0] are RES0 (FIPA is [47:4])"
            )));
        }
        return Ok((hpfar, None));
    }
    let from_far = HPFAR_FIPA.insert(0, far >> 12);
    let Some(abort) = GuestAbort::from_trap(esr.bits(), far, from_far) else {
        return Ok((0, None));
    };
    if !abort.fsc.hpfar_valid(abort.s1ptw) {
        return Ok((0, None));
    }
    if mmu_on || abort.s1ptw {
        return Err(usage(
            "--hpfar is needed: with the MMU on (or S1PTW = 1) the IPA is not the VA",
        ));
    }
    Ok((
        from_far,
        Some("not given: FAR_EL2's page (MMU off: the IPA is the VA)"),
    ))
}

/// The text of the explanation.
fn explain(req: &Request) -> String {
    let mut out = Out::default();
    syndrome_fields(&mut out, req.esr);
    match GuestAbort::from_trap(req.esr.bits(), req.far, req.hpfar) {
        Some(_) if matches!(req.esr.ec().code(), 0x21 | 0x25) => {
            out.blank();
            out.line(
                "note",
                "EC 0x21/0x25 in ESR_EL2 is an abort taken from EL2, in Moat itself: guest \
                 aborts arrive as 0x20/0x24",
            );
        }
        Some(abort) => explain_abort(&mut out, req, &abort),
        None => explain_other(&mut out, req),
    }
    out.text
}

/// Aligned output: a label column, then the value.
#[derive(Default)]
struct Out {
    text: String,
    indent: usize,
}

impl Out {
    const LABEL: usize = 12;

    fn line(&mut self, label: &str, value: impl std::fmt::Display) {
        let pad = " ".repeat(self.indent);
        let width = Self::LABEL.saturating_sub(self.indent);
        let _ = writeln!(self.text, "{pad}{label:<width$} {value}");
    }

    fn heading(&mut self, text: &str) {
        self.indent = 0;
        let _ = writeln!(self.text, "{text}");
        self.indent = 2;
    }

    fn blank(&mut self) {
        self.indent = 0;
        self.text.push('\n');
    }
}

/// `NAME=value` pairs of a register's `Display` (values may hold spaces: `0b10 (word)`).
fn fields(display: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for token in display.split_whitespace() {
        let starts_field = token.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric())
        });
        match (starts_field, out.last_mut()) {
            (false, Some((_, value))) => {
                value.push(' ');
                value.push_str(token);
            }
            _ => {
                let (name, value) = token.split_once('=').unwrap_or((token, ""));
                out.push((name.to_owned(), value.to_owned()));
            }
        }
    }
    out
}

fn syndrome_fields(out: &mut Out, esr: Esr) {
    out.indent = 0;
    out.line("ESR_EL2", hex(esr.bits()));
    out.indent = 2;
    for (name, value) in fields(&esr.to_string()) {
        out.line(&name, value);
    }
}

fn hex(value: u64) -> String {
    format!("{value:#x}")
}

/// The IPA space's parts, as `[base, end)`.
fn ranges(vm: &VmConfig) -> (Vec<IpaRange>, Vec<IpaRange>) {
    let ram = vm.ram.iter().map(|r| IpaRange {
        base: r.base,
        size: r.size,
    });
    let devices = vm.devices.iter().map(|d| IpaRange {
        base: d.base,
        size: d.size,
    });
    (ram.collect(), devices.collect())
}

/// Where an IPA lies, for the explanation's words (the decision itself is `decide`'s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    BeyondPaRange,
    BeyondIpaSpace,
    Ram,
    Device(usize),
    Hole,
}

fn place(req: &Request, view: &VmView<'_>, ipa: Ipa) -> Place {
    let above = |bits: u32| bits < 64 && ipa.0 >> bits != 0;
    if above(view.effective_pa_bits()) {
        Place::BeyondPaRange
    } else if above(req.vm.ipa_bits) {
        Place::BeyondIpaSpace
    } else if view.ram.iter().any(|r| r.offset_of(ipa).is_some()) {
        Place::Ram
    } else if let Some(i) = view.devices.iter().position(|d| d.offset_of(ipa).is_some()) {
        Place::Device(i)
    } else {
        Place::Hole
    }
}

fn place_words(req: &Request, place: Place) -> String {
    let (s, p) = (req.vm.ipa_bits, req.pa_bits.min(pa_cap(req.guest)));
    match place {
        Place::BeyondPaRange => format!("at or above 2^P = 2^{p} ({:#x})", 1u64 << p),
        Place::BeyondIpaSpace => format!(
            "in [2^S, 2^P) = [{:#x}, {:#x}): beyond the IPA space, inside the PA size",
            1u64 << s,
            1u64 << p
        ),
        Place::Ram => String::from("inside RAM"),
        Place::Device(i) => {
            let d = &req.vm.devices[i];
            format!("inside the {} window at {:#x}", d.kind.name(), d.base.0)
        }
        Place::Hole => format!("below 2^S = {:#x} with nothing there (a hole)", 1u64 << s),
    }
}

/// The PA size of the guest's translation format: LPAE output addresses have 40 bits.
const fn pa_cap(guest: GuestKind) -> u32 {
    match guest {
        GuestKind::A64 => 64,
        GuestKind::A32Lpae | GuestKind::A32Short => 40,
    }
}

fn vm_lines(out: &mut Out, req: &Request) {
    let vm = &req.vm;
    out.heading("VM");
    out.line(
        "S",
        format!(
            "{} (IPA space [0, {:#x}))",
            vm.ipa_bits,
            1u64 << vm.ipa_bits
        ),
    );
    out.line(
        "P",
        format!(
            "{} ({}; ID_AA64MMFR0_EL1.PARange)",
            req.pa_bits, req.parange_how
        ),
    );
    out.line(
        "L",
        format!("{} (-cpu {}: min(PA size, 48))", req.limit, req.cpu),
    );
    for r in &vm.ram {
        out.line(
            "ram",
            format!("[{:#x}, {:#x})", r.base.0, r.base.0 + r.size),
        );
    }
    for d in &vm.devices {
        out.line(
            d.kind.name(),
            format!("[{:#x}, {:#x})", d.base.0, d.base.0 + d.size),
        );
    }
    out.line("holes", format!("data accesses: {}", vm.hole_policy.name()));
    out.line("guest", req.guest.name());
    out.line("MMU", if req.mmu_on { "on" } else { "off" });
    out.line("from", format!("{} (SPSR_EL2 {:#x})", req.from, req.spsr));
}

/// The guest as the explainer knows it: no memory, so no walk. `walk` reports a stage-1
/// translation fault with no descriptor read, which no row of the decision can use: `decide`
/// answers such a walk with `Retry`, and the explainer, seeing that the walk was asked for,
/// explains the walk-dependent row instead.
#[derive(Default)]
struct NoGuestMemory {
    walked: Cell<bool>,
}

impl GuestView for NoGuestMemory {
    fn walk(&self, _va: Va) -> WalkReport {
        self.walked.set(true);
        let unknown = WalkFault {
            kind: FaultKind::Translation,
            level: Level::L0,
        };
        WalkReport {
            outcome: Outcome::Fault(unknown),
            trace: Trace::new(),
        }
    }

    fn is_address_translation(&self) -> bool {
        false
    }
}

fn explain_abort(out: &mut Out, req: &Request, abort: &GuestAbort) {
    address_lines(out, req, abort);
    out.blank();
    vm_lines(out, req);
    out.blank();
    let (ram, devices) = ranges(&req.vm);
    let view = req.view(&ram, &devices);
    let guest = NoGuestMemory::default();
    let decision = decide(abort, &view, &guest);
    out.heading("Moat (SPEC §2, moat_vcpu::abort::decide; SPEC §3, moat_vcpu::inject)");
    let place = abort.ipa.map(|ipa| place(req, &view, ipa));
    if let Some(p) = place {
        out.line("IPA is", place_words(req, p));
    }
    let walk_level = guest.walked.get() && decision == Decision::Retry;
    let moat_entry = if walk_level {
        walk_dependent(out, req, abort, place.unwrap_or(Place::Hole))
    } else {
        decision_lines(out, req, abort, place, &decision)
    };
    out.blank();
    let moat = moat_entry.as_ref().map(|e| (e, walk_level));
    kvm_section(out, req, abort, place, &decision, moat);
}

fn address_lines(out: &mut Out, req: &Request, abort: &GuestAbort) {
    out.indent = 0;
    out.line("FAR_EL2", format!("{:#x}  the faulting VA", req.far));
    let Some(ipa) = abort.ipa else {
        out.line(
            "HPFAR_EL2",
            format!(
                "not valid for {} (written for translation, access flag and address size \
                 faults, and permission faults on a walk): no IPA",
                abort.fsc.kind_name()
            ),
        );
        out.line("access", access_words(req.esr));
        return;
    };
    let note = req.hpfar_note.unwrap_or("");
    let page = hpfar_page(req.hpfar).0;
    out.line(
        "HPFAR_EL2",
        format!("{:#x}  FIPA: IPA page {page:#x} {note}", req.hpfar),
    );
    let what = if abort.s1ptw {
        "the stage-1 descriptor being read (S1PTW = 1)"
    } else {
        "HPFAR_EL2.FIPA:FAR_EL2[11:0]"
    };
    debug_assert_eq!(fault_ipa(req.hpfar, req.far), ipa);
    out.line("IPA", format!("{:#x}  {what}", ipa.0));
    out.line("access", access_words(req.esr));
    if !req.mmu_on && !abort.s1ptw && ipa.0 != req.far {
        out.line(
            "note",
            "with the MMU off the IPA is the VA, but FAR_EL2 and HPFAR_EL2 disagree",
        );
    }
    if !req.mmu_on && abort.s1ptw {
        out.line(
            "note",
            "S1PTW = 1 means a stage-1 walk: the guest's MMU is on",
        );
    }
}

/// What the faulting access was, from the syndrome.
fn access_words(esr: Esr) -> String {
    let walk = |s1ptw: bool| {
        if s1ptw {
            ", on its stage-1 walk (S1PTW = 1)"
        } else {
            ""
        }
    };
    match esr.decode() {
        Syndrome::InstrAbortLower(iss) | Syndrome::InstrAbortSame(iss) => {
            format!("instruction fetch{}", walk(iss.s1ptw))
        }
        Syndrome::DataAbortLower(iss) | Syndrome::DataAbortSame(iss) => {
            format!("{}{}", data_access_words(&iss), walk(iss.s1ptw))
        }
        _ => String::new(),
    }
}

fn data_access_words(iss: &DataAbortIss) -> String {
    let dir = if iss.wnr { "store" } else { "load" };
    if iss.cm {
        return String::from("cache maintenance or AT instruction (CM = 1)");
    }
    if !iss.isv {
        return format!(
            "{dir} without an instruction syndrome (ISV = 0: pair, writeback, SIMD...)"
        );
    }
    let reg = match (iss.sf, iss.srt) {
        (true, 31) => String::from("XZR"),
        (false, 31) => String::from("WZR"),
        (true, n) => format!("X{n}"),
        (false, n) => format!("W{n}"),
    };
    let prep = if iss.wnr { "from" } else { "into" };
    let sign = if iss.sse { ", sign-extended" } else { "" };
    let ar = if iss.ar { ", acquire/release" } else { "" };
    format!(
        "{}-byte {dir} {prep} {reg}{sign}{ar} (ISV = 1)",
        iss.sas.bytes()
    )
}

fn cause_words(cause: AbortCause, access: AbortAccess) -> String {
    let kind = match access {
        AbortAccess::Instruction => "instruction abort",
        AbortAccess::Data { .. } => "data abort",
    };
    match cause {
        AbortCause::External => format!("a synchronous external abort ({kind})"),
        AbortCause::ExternalOnWalk { level } => {
            format!(
                "a synchronous external abort on translation table walk, level {level} ({kind})"
            )
        }
        AbortCause::AddressSize { level } => {
            format!("an Address Size Fault, level {level} ({kind})")
        }
    }
}

/// The Arm ARM rule (or Moat policy) behind an injected cause in `place`.
fn rule_words(
    req: &Request,
    abort: &GuestAbort,
    place: Option<Place>,
    cause: AbortCause,
) -> &'static str {
    let instruction = matches!(abort.access, AbortAccess::Instruction);
    match (place, cause) {
        (_, _) if abort.fsc.is_external_abort() => {
            "a real external abort from the bus, reflected as the same synchronous abort"
        }
        (Some(Place::BeyondPaRange), AbortCause::AddressSize { .. }) => {
            "AArch64.TranslateAddressS1Off(): an address at or above 2^PAMax() (the P the guest \
             reads) is an address size fault, level 0"
        }
        (Some(Place::BeyondPaRange), AbortCause::External) if req.guest == GuestKind::A32Short => {
            "short-descriptor DFSR/IFSR have no address size fault: external abort (SPEC §2)"
        }
        (Some(Place::Device(_)), _) if instruction => {
            "Moat does not fetch from device windows: prefetch external abort (SPEC §2 policy)"
        }
        (Some(Place::BeyondIpaSpace | Place::Hole | Place::Device(_)), _) => {
            "nothing answers at that address: a bus decode error, a synchronous external abort"
        }
        _ => "SPEC §2",
    }
}

/// Prints a decision that does not depend on the guest's walk; returns the injection, if any.
fn decision_lines(
    out: &mut Out,
    req: &Request,
    abort: &GuestAbort,
    place: Option<Place>,
    decision: &Decision,
) -> Option<Entry> {
    let words = match *decision {
        Decision::Inject(fault) => {
            out.line(
                "decision",
                format!("inject {}", cause_words(fault.cause, fault.access)),
            );
            out.line("rule", rule_words(req, abort, place, fault.cause));
            let entry = inject_abort(&req.context(), &fault);
            entry_lines(out, req, &entry);
            return Some(entry);
        }
        Decision::MapRam => String::from(
            "map the page and let the guest retry (Moat maps all RAM at boot: its EL2 binary \
             reports a lost mapping and stops the VM)",
        ),
        Decision::Emulate { device, offset } => {
            let kind = req.vm.devices[device].kind.name();
            let how = if matches!(decision_isv(req.esr), Some(true)) {
                "from the syndrome"
            } else {
                "by decoding the instruction at ELR_EL2 (ISV = 0); one it cannot emulate gets a \
                 synchronous external abort"
            };
            format!(
                "emulate the access to {kind} at offset {offset:#x}, {how}; PC advanced (SPEC §4)"
            )
        }
        Decision::ReadAsZeroWriteIgnore => {
            String::from("complete it read-as-zero/write-ignore (hole policy raz-wi); PC advanced")
        }
        Decision::SkipInstruction => String::from(
            "complete the cache maintenance as a no-op, PC advanced: nothing is behind the \
             address (SPEC §2, as bare QEMU, which does not translate DC CIVAC)",
        ),
        Decision::AddressTranslationFault(cause) => format!(
            "the AT completes with PAR_EL1 = {:#x} ({}); PC advanced",
            at_fault_par(&req.context(), cause),
            cause_words(cause, abort.access)
        ),
        Decision::Retry => String::from("resume: the hardware retries the access"),
        Decision::Unexpected(why) => {
            format!("stop the VM: {why} (no mapping Moat makes causes it)")
        }
    };
    out.line("decision", words);
    None
}

fn decision_isv(esr: Esr) -> Option<bool> {
    match esr.decode() {
        Syndrome::DataAbortLower(iss) | Syndrome::DataAbortSame(iss) => Some(iss.isv),
        _ => None,
    }
}

/// The rows whose outcome is the level the guest's walk reports: the rule in words, and the
/// injection for each level the walk can report. Returns the first candidate's injection.
fn walk_dependent(out: &mut Out, req: &Request, abort: &GuestAbort, place: Place) -> Option<Entry> {
    let (rule, levels, address_size): (&str, &[Level], bool) =
        if abort.s1ptw && place == Place::BeyondPaRange {
            (
                "the walk met a table address at or above 2^P: an Address Size Fault at the level \
             of the table descriptor that held it, 0 when it came from TTBRn (AArch64.S1Walk(), \
             AArch64.OAOutOfRange())",
                &[Level::L0, Level::L1, Level::L2],
                true,
            )
        } else if abort.s1ptw {
            (
                "nothing answers the descriptor read: a synchronous external abort on translation \
             table walk at the level of the lookup that read it (Fault_SyncExternalOnWalk)",
                match req.guest {
                    GuestKind::A64 => &[Level::L0, Level::L1, Level::L2, Level::L3],
                    GuestKind::A32Lpae => &[Level::L1, Level::L2, Level::L3],
                    GuestKind::A32Short => &[Level::L1, Level::L2],
                },
                false,
            )
        } else {
            (
                "with the MMU on, the level of the address size fault is that of the guest's \
             stage-1 descriptor that holds the address (AArch64.S1Walk(), AArch64.OAOutOfRange())",
                &[Level::L1, Level::L2, Level::L3],
                true,
            )
        };
    out.line(
        "decision",
        "depends on the guest's stage-1 tables: Moat walks them (moat_vcpu::s1walk) to find \
         the level; the explainer has no guest memory",
    );
    out.line("rule", rule);
    if address_size && !abort.s1ptw {
        out.line(
            "seen when",
            "the hardware's PARange is above P and the guest's TCR_EL1.IPS too; with IPS <= P \
             the hardware reports the stage-1 fault itself and Moat never sees it",
        );
        if req.guest == GuestKind::A64 && req.pa_bits >= 48 {
            out.line(
                "note",
                "with P = 48 no descriptor format Moat shows holds an address >= 2^48: with the \
                 MMU on this fault cannot come from the guest's tables",
            );
        }
    }
    let cause = |level| match (address_size, req.guest) {
        (true, GuestKind::A32Short) => AbortCause::External,
        (true, _) => AbortCause::AddressSize { level },
        (false, _) => AbortCause::ExternalOnWalk { level },
    };
    let at =
        abort.s1ptw && address_size && matches!(abort.access, AbortAccess::Data { cm: true, .. });
    let fault = |level| Abort {
        access: abort.access,
        cause: cause(level),
        va: abort.va,
    };
    let entries: Vec<(Level, Entry)> = levels
        .iter()
        .map(|&level| (level, inject_abort(&req.context(), &fault(level))))
        .collect();
    let one = entries.windows(2).all(|w| w[0].1 == w[1].1);
    for (level, entry) in &entries {
        let label = if one {
            String::from("any level")
        } else {
            format!("level {level}")
        };
        out.line(&label, format!("inject {}", syndrome_summary(entry)));
        if at {
            let par = at_fault_par(&req.context(), fault(*level).cause);
            out.line(
                "",
                format!("(an AT instead completes with PAR_EL1 = {par:#x})"),
            );
        }
        if one {
            break;
        }
    }
    let first = entries.first().map(|&(_, entry)| entry);
    if let Some(entry) = &first {
        if !one {
            out.line(
                "each",
                "the rest of the entry does not depend on the level:",
            );
        }
        entry_lines(out, req, entry);
    }
    first
}

/// The fault status register of an entry, one line.
fn syndrome_summary(entry: &Entry) -> String {
    match entry {
        Entry::Aarch64(e) => {
            let esr = Esr::new(e.esr_el1);
            let fsc = fields(&esr.to_string())
                .pop()
                .map(|(n, v)| format!("{n}={v}"));
            format!("ESR_EL1 = {:#x}, {}", e.esr_el1, fsc.unwrap_or_default())
        }
        Entry::Aarch32(e) => match (e.dfsr, e.ifsr) {
            (Some(dfsr), _) => format!("DFSR = {dfsr:#x}, {}", Fsr32::decode(dfsr)),
            (None, Some(ifsr)) => format!("IFSR = {ifsr:#x}, {}", Fsr32::decode(ifsr)),
            (None, None) => String::new(),
        },
    }
}

/// The registers an injection writes, decoded (`VBAR` = 0 assumed: the offset is what matters).
fn entry_lines(out: &mut Out, req: &Request, entry: &Entry) {
    match entry {
        Entry::Aarch64(e) => {
            out.line("ESR_EL1", format!("{:#x}", e.esr_el1));
            out.line("", Esr::new(e.esr_el1));
            if let Some(far) = e.far_el1 {
                out.line("FAR_EL1", format!("{far:#x}  (FAR_EL2: the faulting VA)"));
            }
            out.line(
                "ELR_EL1",
                format!("{:#x}  (ELR_EL2: the faulting instruction)", e.elr_el1),
            );
            out.line(
                "SPSR_EL1",
                format!("{:#x}  {}", e.spsr_el1, SavedPsr::from_spsr(e.spsr_el1)),
            );
            let group = match e.elr_el2 & 0x600 {
                0x000 => "current EL with SP_EL0",
                0x200 => "current EL with SP_ELx",
                0x400 => "lower EL, AArch64",
                _ => "lower EL, AArch32",
            };
            out.line(
                "vector",
                format!(
                    "VBAR_EL1 + {:#05x}  (synchronous, {group}; VBAR_EL1 = 0 assumed)",
                    e.elr_el2
                ),
            );
            out.line(
                "PSTATE",
                format!("{:#x}  {}", e.spsr_el2, SavedPsr::from_spsr(e.spsr_el2)),
            );
        }
        Entry::Aarch32(e) => {
            let far = e.far_el1.unwrap_or(0);
            if let Some(dfsr) = e.dfsr {
                out.line("DFSR", format!("{dfsr:#x}  {}", Fsr32::decode(dfsr)));
                out.line(
                    "DFAR",
                    format!("{:#x}  (the faulting VA)", far & 0xFFFF_FFFF),
                );
            }
            if let Some(ifsr) = e.ifsr {
                out.line("IFSR", format!("{ifsr:#x}  {}", Fsr32::decode(ifsr)));
                out.line("IFAR", format!("{:#x}  (the faulting VA)", far >> 32));
            }
            let offset = e.lr.wrapping_sub(req.elr);
            let mode = match e.target {
                Aarch32Target::Abort => "abt",
                Aarch32Target::Undefined => "und",
            };
            out.line(
                &format!("LR_{mode}"),
                format!("{:#x}  (the faulting instruction + {offset})", e.lr),
            );
            out.line(
                &format!("SPSR_{mode}"),
                format!("{:#x}  (the interrupted CPSR)", e.spsr),
            );
            out.line(
                "vector",
                format!("VBAR + {:#04x}  (SCTLR.V = 0, VBAR = 0 assumed)", e.elr_el2),
            );
            out.line(
                "CPSR",
                format!("{:#x}  {}", e.spsr_el2, SavedPsr::from_spsr(e.spsr_el2)),
            );
        }
    }
}

/// What Linux 6.1 KVM does with a guest's stage-2 abort (`kvm_handle_guest_abort()`), as
/// SPEC §5 and the seed patch describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kvm {
    /// `kvm_inject_dabt()`/`kvm_inject_pabt()`: FSC 0x10 (`size`: `kvm_inject_size_fault()`,
    /// FSC 0x00), `WnR` = `CM` = 0, `IL` from `ESR_EL2`, `ESR_EL1[63:32]` = 0xffffffff, and
    /// `far` in `FAR_EL1` (`DFAR`/`IFAR`).
    Inject { size: bool, far: u64 },
    /// The IPA is in a memslot: `user_mem_abort()` maps it.
    Map,
    /// Cache maintenance outside every memslot: the instruction is skipped.
    Skip,
    /// `KVM_EXIT_MMIO` to the VMM (`ISV` = 1), which decides what the guest sees.
    MmioExit,
    /// `ISV` = 0 outside every memslot: `KVM_RUN` fails with ENOSYS unless the VMM enabled
    /// `KVM_CAP_ARM_NISV_TO_USER`.
    NoSyndrome,
    /// An external abort: `kvm_inject_vabt()`, a virtual SError, unless the host's RAS code
    /// claims it.
    VirtualSError,
    /// Any other fault status: "Unsupported FSC", `KVM_RUN` fails with EFAULT.
    Unsupported,
}

/// Linux 6.1's handling of `abort` in a VM of IPA size `s` on a host whose IPA limit is
/// `limit`; `in_ram` says whether the IPA is in a memslot.
fn kvm_61(abort: &GuestAbort, isv: bool, in_ram: bool, s: u32, limit: u32) -> Kvm {
    let ipa = abort.ipa.map_or(0, |i| i.0);
    match abort.fsc {
        Fsc::Translation { .. } if ipa >> limit != 0 => {
            return Kvm::Inject {
                size: true,
                far: ipa,
            };
        }
        Fsc::Translation { .. } if ipa >> s != 0 => {
            return Kvm::Inject {
                size: false,
                far: ipa,
            };
        }
        Fsc::Translation { .. } => {}
        Fsc::AccessFlag { .. } | Fsc::Permission { .. } => return Kvm::Map,
        f if f.is_external_abort() => return Kvm::VirtualSError,
        Fsc::SyncParity | Fsc::SyncParityOnWalk { .. } => return Kvm::VirtualSError,
        _ => return Kvm::Unsupported,
    }
    let far = abort.va.0;
    match abort.access {
        _ if in_ram => Kvm::Map,
        // -ENOEXEC from the memslot lookup becomes kvm_inject_pabt(FAR_EL2).
        AbortAccess::Instruction => Kvm::Inject { size: false, far },
        AbortAccess::Data { .. } if abort.s1ptw => Kvm::Inject { size: false, far },
        AbortAccess::Data { cm: true, .. } => Kvm::Skip,
        AbortAccess::Data { .. } if isv => Kvm::MmioExit,
        AbortAccess::Data { .. } => Kvm::NoSyndrome,
    }
}

/// The registers KVM's injection writes, as (name, value) pairs.
fn kvm_registers(
    req: &Request,
    abort: &GuestAbort,
    size: bool,
    far: u64,
) -> Vec<(&'static str, u64)> {
    let instruction = matches!(abort.access, AbortAccess::Instruction);
    if !req.guest.aarch32() {
        let lower = req.spsr & 0x1F == 0 || req.spsr & 0x10 != 0;
        let ec: u64 = match (instruction, lower) {
            (true, true) => 0x20,
            (true, false) => 0x21,
            (false, true) => 0x24,
            (false, false) => 0x25,
        };
        let fsc = if size { 0x00 } else { 0x10 };
        let esr = 0xFFFF_FFFF_0000_0000 | ec << 26 | u64::from(req.esr.il()) << 25 | fsc;
        return vec![("ESR_EL1", esr), ("FAR_EL1", far)];
    }
    let lpae = req.guest == GuestKind::A32Lpae;
    let fsr = if lpae { 0x210 } else { 0x008 };
    let far32 = far & 0xFFFF_FFFF;
    match (instruction, size && lpae) {
        (false, size) => vec![("DFSR", if size { 0x200 } else { fsr }), ("DFAR", far32)],
        (true, false) => vec![("IFSR", fsr), ("IFAR", far32)],
        // kvm_inject_size_fault() clears ESR_EL1[5:0] after injecting a prefetch abort: the
        // guest's DFSR loses its STATUS, IFSR keeps the external abort.
        (true, true) => vec![("IFSR", fsr), ("IFAR", far32), ("DFSR", 0)],
    }
}

fn kvm_outcome_words(kvm: Kvm, instruction: bool) -> &'static str {
    match (kvm, instruction) {
        (Kvm::Inject { size: true, .. }, _) => {
            "kvm_inject_size_fault(): address size fault, level 0"
        }
        (Kvm::Inject { .. }, false) => "kvm_inject_dabt(): synchronous external abort",
        (Kvm::Inject { .. }, true) => "kvm_inject_pabt(): synchronous external abort",
        (Kvm::Map, _) => "user_mem_abort(): the IPA is in a memslot, mapped",
        (Kvm::Skip, _) => "cache maintenance outside every memslot: instruction skipped",
        (Kvm::MmioExit, _) => "KVM_EXIT_MMIO: the VMM decides what the guest sees",
        (Kvm::NoSyndrome, _) => {
            "KVM_RUN fails with ENOSYS (ISV = 0 outside memslots) unless the VMM enabled \
             KVM_CAP_ARM_NISV_TO_USER"
        }
        (Kvm::VirtualSError, _) => "kvm_inject_vabt(): a virtual SError, unless host RAS claims it",
        (Kvm::Unsupported, _) => "\"Unsupported FSC\": KVM_RUN fails with EFAULT",
    }
}

fn kvm_section(
    out: &mut Out,
    req: &Request,
    abort: &GuestAbort,
    place: Option<Place>,
    decision: &Decision,
    moat: Option<(&Entry, bool)>,
) {
    out.heading("KVM (Linux 6.1, SPEC §5)");
    let in_ram = place == Some(Place::Ram);
    let isv = decision_isv(req.esr).unwrap_or(false);
    let kvm = kvm_61(abort, isv, in_ram, req.vm.ipa_bits, req.limit);
    let instruction = matches!(abort.access, AbortAccess::Instruction);
    out.line("outcome", kvm_outcome_words(kvm, instruction));
    let hw = crate::qemu::cpu_pa_bits(&req.cpu).unwrap_or(req.limit);
    let mut diffs = Vec::new();
    if !req.guest.aarch32() {
        out.line(
            "PARange",
            format!(
                "the guest reads {hw} (the hardware's); Moat shows P = {}",
                req.pa_bits
            ),
        );
    }
    if !req.guest.aarch32() && (hw != req.limit || req.pa_bits != req.limit) {
        diffs.push(format!(
            "PARange: KVM shows {hw} but faults from 2^L = 2^{}; Moat shows {p} and faults from \
             2^{p}: an address size fault means at or above 2^PAMax(), the PARange the CPU \
             reports (AArch64.OAOutOfRange())",
            req.limit,
            p = req.pa_bits
        ));
    }
    if let Kvm::Inject { size, far } = kvm {
        let regs = kvm_registers(req, abort, size, far);
        for (name, value) in &regs {
            out.line(name, register_words(name, *value));
        }
        if let Some((entry, walk_level)) = moat {
            diffs.extend(register_differences(req, abort, &regs, entry, walk_level));
        }
    }
    diffs.extend(outcome_difference(decision, kvm, moat.is_some()));
    if diffs.is_empty() {
        out.line("same", "as Moat");
    }
    for d in diffs {
        out.line("differs", d);
    }
}

fn register_words(name: &str, value: u64) -> String {
    match name {
        "ESR_EL1" => format!("{value:#x}  {}", Esr::new(value & 0xFFFF_FFFF)),
        "DFSR" | "IFSR" => format!("{value:#x}  {}", Fsr32::decode(value as u32)),
        _ => hex(value),
    }
}

/// Field-by-field differences between KVM's registers and Moat's injection, each with the
/// Arm ARM rule that decides it.
fn register_differences(
    req: &Request,
    abort: &GuestAbort,
    kvm: &[(&'static str, u64)],
    moat: &Entry,
    walk_level: bool,
) -> Vec<String> {
    let mut diffs = Vec::new();
    let moat_value = |name: &str| -> Option<u64> {
        match (moat, name) {
            (Entry::Aarch64(e), "ESR_EL1") => Some(e.esr_el1),
            (Entry::Aarch64(e), "FAR_EL1") => e.far_el1,
            (Entry::Aarch32(e), "DFSR") => e.dfsr.map(u64::from),
            (Entry::Aarch32(e), "IFSR") => e.ifsr.map(u64::from),
            (Entry::Aarch32(e), "DFAR") => e.far_el1.map(|f| f & 0xFFFF_FFFF),
            (Entry::Aarch32(e), "IFAR") => e.far_el1.map(|f| f >> 32),
            _ => None,
        }
    };
    for &(name, k) in kvm {
        let Some(m) = moat_value(name) else {
            if name == "DFSR" {
                diffs.push(String::from(
                    "DFSR's STATUS cleared and IFSR left as an external abort; Moat writes the \
                     address size fault to IFSR only (AArch32.ReportPrefetchAbort())",
                ));
            }
            continue;
        };
        let compared = Compared {
            name,
            kvm: k,
            moat: m,
            walk_level,
        };
        diffs.extend(field_differences(req, abort, &compared));
    }
    diffs
}

/// One register as KVM and Moat write it; `walk_level`: Moat's level is the walk's, shown
/// for the first level the walk can report.
struct Compared<'a> {
    name: &'a str,
    kvm: u64,
    moat: u64,
    walk_level: bool,
}

fn field_differences(req: &Request, abort: &GuestAbort, c: &Compared<'_>) -> Vec<String> {
    let (name, k, m) = (c.name, c.kvm, c.moat);
    let mut diffs = Vec::new();
    let bit = |v: u64, b: u32| v >> b & 1;
    match name {
        "FAR_EL1" | "DFAR" | "IFAR" if k != m => diffs.push(format!(
            "{name} = {k:#x}, the IPA; Moat {m:#x}: the fault address register holds the faulting \
             VA (AArch64.ReportException(), AArch32.ReportDataAbort())"
        )),
        "FAR_EL1" | "DFAR" | "IFAR" if kvm_far_is_ipa(abort, req) => diffs.push(format!(
            "{name}: KVM reports the IPA, equal to the VA here only because the MMU is off \
             (the fault address register holds the faulting VA: AArch64.ReportException())"
        )),
        "ESR_EL1" => {
            if k >> 32 != m >> 32 {
                diffs.push(format!(
                    "ESR_EL1[63:32] = {:#x}; Moat {:#x}: RES0 (ISS2 holds no field for this abort)",
                    k >> 32,
                    m >> 32
                ));
            }
            if bit(k, 25) != bit(m, 25) {
                diffs.push(String::from(
                    "IL copied from ESR_EL2; Moat 1: IL is 1 for a data abort with ISV = 0 (ESR_ELx.IL)",
                ));
            }
            diffs.extend(flag_differences(k, m, 6, 8));
            diffs.extend(status_difference(k & 0x3F, m & 0x3F, c.walk_level));
        }
        "DFSR" | "IFSR" => {
            diffs.extend(flag_differences(k, m, 11, 13));
            let status = |v: u64| Fsr32::decode(v as u32).fault;
            if status(k) != status(m) {
                diffs.push(format!(
                    "{name} {}; Moat {}: the fault status names the fault (SPEC §2)",
                    status(k).kind_name(),
                    status(m).kind_name()
                ));
            }
        }
        _ => {}
    }
    diffs
}

/// Whether KVM reports the IPA in the fault address register: for a translation fault
/// beyond the IPA space.
fn kvm_far_is_ipa(abort: &GuestAbort, req: &Request) -> bool {
    matches!(abort.fsc, Fsc::Translation { .. })
        && abort.ipa.is_some_and(|i| i.0 >> req.vm.ipa_bits != 0)
}

fn flag_differences(k: u64, m: u64, wnr: u32, cm: u32) -> Vec<String> {
    [("WnR", wnr), ("CM", cm)]
        .into_iter()
        .filter(|&(_, b)| k >> b & 1 != m >> b & 1)
        .map(|(name, b)| {
            format!(
                "{name} = {}; Moat {}: {name} describes the access that faulted (ISS encoding \
                 for a Data Abort)",
                k >> b & 1,
                m >> b & 1
            )
        })
        .collect()
}

fn status_difference(k: u64, m: u64, walk_level: bool) -> Option<String> {
    let (kf, mf) = (Fsc::from_code(k as u8), Fsc::from_code(m as u8));
    let same_kind = kf.kind_name() == mf.kind_name();
    let level_only = same_kind && matches!(kf, Fsc::AddressSize { .. });
    if k == m && !walk_level || walk_level && same_kind && !level_only {
        return None;
    }
    let rule = match (kf, mf) {
        (Fsc::SyncExternal, Fsc::SyncExternalOnWalk { .. }) => {
            "the fault was on the stage-1 walk: FSC 0x14-0x17 by lookup level \
             (Fault_SyncExternalOnWalk, AArch64.S1Walk())"
        }
        (Fsc::AddressSize { .. }, Fsc::AddressSize { .. }) => {
            "with the MMU on the level is that of the descriptor holding the address \
             (AArch64.S1Walk(), AArch64.OAOutOfRange())"
        }
        (Fsc::SyncExternal, Fsc::AddressSize { .. }) => {
            "KVM's address size faults start at 2^L, Moat's at 2^P, the PARange its guest reads \
             (AArch64.OAOutOfRange())"
        }
        _ => "SPEC §2",
    };
    let moat = if walk_level {
        format!("{} at the level the walk reports", mf.kind_name())
    } else {
        mf.to_string()
    };
    Some(format!("DFSC/IFSC {kf}; Moat {moat}: {rule}"))
}

/// Differences in what happens, where one side injects nothing.
fn outcome_difference(decision: &Decision, kvm: Kvm, moat_injects: bool) -> Option<String> {
    let text = match (decision, kvm) {
        (Decision::Emulate { .. }, Kvm::NoSyndrome) => {
            "Moat decodes the instruction and emulates it (SPEC §4): a load/store without a \
             syndrome is architecturally valid on a device"
        }
        (Decision::SkipInstruction, Kvm::Inject { .. }) => {
            "Moat completes cache maintenance with nothing behind it as a no-op also beyond 2^S \
             (SPEC §2); KVM does so only inside the IPA space"
        }
        (_, Kvm::VirtualSError) if moat_injects => {
            "Moat reflects the abort as the synchronous external abort the bus reported; KVM \
             turns it into an asynchronous SError"
        }
        (_, Kvm::MmioExit) if moat_injects => {
            "Moat answers a hole like a bus decode error; under KVM the VMM decides"
        }
        (_, Kvm::Unsupported) if moat_injects => {
            "KVM 6.1 handles only translation, access flag and permission faults at stage 2"
        }
        (Decision::Unexpected(_), Kvm::Map) => {
            "KVM handles permission and access flag faults in its memory code; Moat never maps \
             anything that causes them"
        }
        _ => return None,
    };
    Some(String::from(text))
}

/// A trap that is no guest abort: what the dispatcher (`bare/hyp/src/exits.rs`) does with it.
fn explain_other(out: &mut Out, req: &Request) {
    out.blank();
    out.heading("Moat (the trap dispatcher, bare/hyp/src/exits.rs)");
    let smccc = "an SMCCC call (imm16 = 0): PSCI 1.1 (PSCI_VERSION, PSCI_FEATURES, SYSTEM_OFF, \
                 SYSTEM_RESET) and SMCCC_VERSION answered in X0..X3, any other function \
                 NOT_SUPPORTED (-1); imm16 != 0: X0 = NOT_SUPPORTED";
    let words = match req.esr.decode() {
        Syndrome::Hvc64(_) | Syndrome::Hvc32(_) => {
            format!("{smccc}; ELR_EL2 already points past the HVC")
        }
        Syndrome::Smc64(_) => format!("trapped SMC (HCR_EL2.TSC): {smccc}; PC advanced past it"),
        Syndrome::Wfx(_) => String::from(
            "completes at once, PC advanced: no interrupt can wake the vCPU yet, and WFI/WFE may \
             complete at any time",
        ),
        Syndrome::SysReg(iss) => {
            let name = format!(
                "S{}_{}_C{}_C{}_{}",
                iss.op0, iss.op1, iss.crn, iss.crm, iss.op2
            );
            let id = IdRegister::from_encoding(iss.op0, iss.op1, iss.crn, iss.crm, iss.op2);
            match (id, iss.direction.name()) {
                (Some(_), "read") => format!(
                    "MRS X{}, {name}: an ID register (HCR_EL2.TID3), answered with the \
                     hardware's value sanitised (PARange = P; SVE, SME, MTE, EL2... absent); PC \
                     advanced",
                    iss.rt
                ),
                (_, dir) => {
                    format!("{dir} of {name}: not emulated; Moat stops the VM with this syndrome")
                }
            }
        }
        Syndrome::SveAccess | Syndrome::SmeAccess(_) => {
            out.line(
                "decision",
                "inject an undefined instruction: SVE and SME are trapped (CPTR_EL2) and \
                 reported absent, so the instruction is UNDEFINED",
            );
            let entry = moat_vcpu::inject::inject_undefined(&req.context());
            entry_lines(out, req, &entry);
            return;
        }
        _ => String::from("not handled: Moat stops the VM with this syndrome (\"unhandled trap\")"),
    };
    out.line("decision", words);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(esr: &str, options: &[(&str, &str)]) -> ExplainArgs {
        let mut a = ExplainArgs {
            esr: esr.to_owned(),
            cpu: String::from("max"),
            ..ExplainArgs::default()
        };
        for &(flag, value) in options {
            if flag == "cpu" {
                a.cpu = value.to_owned();
                continue;
            }
            let value = Some(value.to_owned());
            match flag {
                "far" => a.far = value,
                "hpfar" => a.hpfar = value,
                "elr" => a.elr = value,
                "ipa-bits" => a.ipa_bits = value,
                "parange" => a.parange = value,
                "guest" => a.guest = value,
                "from" => a.from = value,
                "mmu" => a.mmu = value,
                other => panic!("no option --{other}"),
            }
        }
        a
    }

    fn request(esr: &str, options: &[(&str, &str)]) -> Request {
        Request::from_args(&args(esr, options)).expect("a valid request")
    }

    fn error(esr: &str, options: &[(&str, &str)]) -> String {
        let e = Request::from_args(&args(esr, options)).expect_err("a usage error");
        assert_eq!(e.exit_code(), 2, "{e}");
        let text = e.to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        text
    }

    fn text(esr: &str, options: &[(&str, &str)]) -> String {
        explain(&request(esr, options))
    }

    /// The value after `label` on the first line that starts with it (after indentation).
    fn value<'a>(text: &'a str, label: &str) -> &'a str {
        text.lines()
            .find_map(|l| {
                l.trim_start()
                    .strip_prefix(label)
                    .filter(|r| r.starts_with(' '))
            })
            .unwrap_or_else(|| panic!("no line {label} in\n{text}"))
            .trim()
    }

    const LOAD_2_40: &str = "0x93800005";
    const FAR_2_40: (&str, &str) = ("far", "0x10000000010");
    const HPFAR_2_40: (&str, &str) = ("hpfar", "0x100000000");

    #[test]
    fn hex_values_take_an_optional_0x_and_underscores() {
        assert_eq!(parse_hex("esr", "0x9380_0005").ok(), Some(0x9380_0005));
        assert_eq!(parse_hex("esr", "93800005").ok(), Some(0x9380_0005));
        assert!(error("0x93G", &[]).starts_with("--esr 0x93G: not a 64-bit hexadecimal"));
        assert!(error("0x1_0000_0000_0000_0000", &[]).contains("not a 64-bit"));
    }

    #[test]
    fn ipa_bits_are_32_to_the_cpu_limit() {
        assert_eq!(request(LOAD_2_40, &[("ipa-bits", "48")]).vm.ipa_bits, 48);
        let e = error(LOAD_2_40, &[("ipa-bits", "50")]);
        assert_eq!(
            e,
            "--ipa-bits 50: S must be 32..=48 (the IPA limit L of -cpu max)"
        );
        assert!(error(LOAD_2_40, &[("ipa-bits", "44"), ("cpu", "cortex-a53")]).contains("32..=40"));
        assert!(error(LOAD_2_40, &[("ipa-bits", "31")]).starts_with("--ipa-bits 31"));
    }

    #[test]
    fn parange_is_an_encoding_between_s_and_l() {
        assert!(error(LOAD_2_40, &[("parange", "41")]).starts_with("--parange 41: not max, tight"));
        assert!(error(LOAD_2_40, &[("parange", "36")]).contains("P must cover S = 40"));
        assert!(
            error(LOAD_2_40, &[("parange", "52")]).contains("never above the IPA limit L = 48")
        );
        assert_eq!(request(LOAD_2_40, &[("parange", "44")]).pa_bits, 44);
    }

    #[test]
    fn parange_max_is_the_cpu_ipa_limit_and_tight_the_smallest_cover_of_s() {
        let cases = [
            ("max", 48),
            ("cortex-a72", 44),
            ("cortex-a53", 40),
            ("neoverse-n1", 48),
        ];
        for (cpu, limit) in cases {
            let r = request(LOAD_2_40, &[("cpu", cpu)]);
            assert_eq!((r.limit, r.pa_bits), (limit, limit), "{cpu}");
        }
        let tight = request(LOAD_2_40, &[("ipa-bits", "41"), ("parange", "tight")]);
        assert_eq!(tight.pa_bits, 42);
    }

    #[test]
    fn syndromes_with_res0_or_unallocated_values_are_refused() {
        assert!(error("0x5a010000", &[]).contains("ISS bits 0x10000 are RES0"));
        assert!(error("0x100000093800005", &[]).contains("bits [63:56] are RES0"));
        assert!(error("0xfc000000", &[]).contains("EC 0x3f is not an allocated"));
        assert!(error("0x9200003f", &[]).contains("fault status code 0x3f"));
        assert!(error("0x92010046", &[]).contains("ISV=0 but SAS, SRT or AR"));
        assert!(error("0x90000046", &[]).contains("IL=0"));
    }

    #[test]
    fn guest_state_options_give_the_arm_arm_spsr_values() {
        let spsr =
            |guest: &str, from: &str| request(LOAD_2_40, &[("guest", guest), ("from", from)]).spsr;
        assert_eq!(spsr("a64", "el0"), 0x0);
        assert_eq!(spsr("a64", "el0-a32"), 0x10);
        assert_eq!(spsr("a64", "el1t"), 0x3C4);
        assert_eq!(spsr("a64", "el1h"), 0x3C5);
        assert_eq!(spsr("a32", "el0"), 0x10);
        assert_eq!(spsr("a32-lpae", "el1"), 0x1D3);
        assert!(error(LOAD_2_40, &[("guest", "a32"), ("from", "el1t")]).contains("no SP_EL0"));
        assert!(error(LOAD_2_40, &[("guest", "x86")]).starts_with("--guest x86"));
        assert!(error(LOAD_2_40, &[("mmu", "maybe")]).starts_with("--mmu maybe"));
        assert!(error(LOAD_2_40, &[("cpu", "cortex-a15")]).starts_with("--cpu cortex-a15"));
    }

    #[test]
    fn hpfar_defaults_to_the_far_page_only_with_the_mmu_off() {
        let r = request(LOAD_2_40, &[FAR_2_40]);
        assert_eq!(r.hpfar, 0x1_0000_0000);
        assert!(error(LOAD_2_40, &[FAR_2_40, ("mmu", "on")]).starts_with("--hpfar is needed"));
        assert!(
            error("0x92000087", &[FAR_2_40]).starts_with("--hpfar is needed"),
            "S1PTW"
        );
        assert!(error(LOAD_2_40, &[("hpfar", "0x100000001")]).contains("RES0"));
    }

    #[test]
    fn aarch32_guests_have_32_bit_vas_and_40_bit_ipas() {
        let a32 = [("guest", "a32-lpae")];
        assert!(error(LOAD_2_40, &[a32[0], ("far", "0x100000000")]).contains("32 bits"));
        assert!(error(LOAD_2_40, &[a32[0], HPFAR_2_40]).contains("at most 40 bits"));
    }

    #[test]
    fn fields_split_a_display_into_arm_named_fields() {
        let f = fields(
            "EC=0x24 (data abort from a lower EL) IL=1 SAS=0b10 (word) DFSC=0x07 (x, level 3)",
        );
        let names: Vec<&str> = f.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["EC", "IL", "SAS", "DFSC"]);
        assert_eq!(f[0].1, "0x24 (data abort from a lower EL)");
        assert_eq!(f[3].1, "0x07 (x, level 3)");
    }

    #[test]
    fn load_from_2_pow_40_with_s_40_is_an_external_abort_at_the_va() {
        let t = text(LOAD_2_40, &[FAR_2_40, HPFAR_2_40]);
        assert_eq!(value(&t, "DFSC"), "0x05 (translation fault, level 1)");
        assert_eq!(value(&t, "access"), "4-byte load into W0 (ISV = 1)");
        assert!(value(&t, "IPA is").starts_with("in [2^S, 2^P)"));
        assert_eq!(
            value(&t, "decision"),
            "inject a synchronous external abort (data abort)"
        );
        assert_eq!(value(&t, "ESR_EL1"), "0x96000010");
        assert!(value(&t, "FAR_EL1").starts_with("0x10000000010"));
        assert!(value(&t, "vector").starts_with("VBAR_EL1 + 0x200"));
    }

    #[test]
    fn store_beyond_2_pow_p_with_the_mmu_off_is_an_address_size_fault_at_level_0() {
        let t = text("0x92000046", &[("far", "0x1000000000008"), ("from", "el0")]);
        assert!(value(&t, "IPA is").starts_with("at or above 2^P = 2^48"));
        assert_eq!(
            value(&t, "decision"),
            "inject an Address Size Fault, level 0 (data abort)"
        );
        assert!(value(&t, "rule").starts_with("AArch64.TranslateAddressS1Off()"));
        assert_eq!(value(&t, "ESR_EL1"), "0x92000040", "EC 0x24 from EL0, WnR");
        assert!(value(&t, "vector").starts_with("VBAR_EL1 + 0x400"));
    }

    #[test]
    fn tight_parange_moves_the_address_size_fault_down_to_2_pow_p() {
        let t = text(
            "0x92000046",
            &[("far", "0x10000000000"), ("parange", "tight")],
        );
        assert_eq!(
            value(&t, "decision"),
            "inject an Address Size Fault, level 0 (data abort)"
        );
        let t = text("0x92000046", &[("far", "0x10000000000")]);
        assert_eq!(
            value(&t, "decision"),
            "inject a synchronous external abort (data abort)"
        );
    }

    #[test]
    fn walk_fault_on_a_hole_lists_each_level_instead_of_guessing_one() {
        let t = text(
            "0x92000087",
            &[("far", "0x400000"), ("hpfar", "0x10000"), ("mmu", "on")],
        );
        assert!(value(&t, "IPA is").contains("a hole"));
        assert!(value(&t, "decision").starts_with("depends on the guest's stage-1 tables"));
        assert!(value(&t, "level 0").contains("ESR_EL1 = 0x96000014"));
        assert!(value(&t, "level 3").contains("ESR_EL1 = 0x96000017"));
    }

    #[test]
    fn mmu_on_address_size_fault_names_the_rule_and_leaf_levels() {
        let opts = [
            ("far", "0x400000"),
            ("hpfar", "0x1000000000"),
            ("mmu", "on"),
            ("parange", "tight"),
        ];
        let t = text("0x92000046", &opts);
        assert!(value(&t, "rule").contains("stage-1 descriptor that holds the address"));
        assert!(value(&t, "level 1").contains("DFSC=0x01"));
        assert!(
            !t.contains("level 0 "),
            "no leaf at level 0 without FEAT_LPA2"
        );
    }

    #[test]
    fn short_descriptor_guest_gets_an_external_abort_for_the_address_size_case() {
        let opts = [
            ("guest", "a32"),
            ("far", "0x1000"),
            ("hpfar", "0x40000000"),
            ("mmu", "on"),
        ];
        let t = text(
            "0x92000046",
            &[
                opts[0],
                opts[1],
                opts[2],
                opts[3],
                ("ipa-bits", "36"),
                ("parange", "tight"),
            ],
        );
        assert!(value(&t, "IPA is").starts_with("at or above 2^P = 2^36"));
        assert!(value(&t, "any level").starts_with("inject DFSR = 0x808"));
        assert!(value(&t, "DFSR").starts_with("0x808"));
        assert!(value(&t, "LR_abt").contains("+ 8"));
        assert!(value(&t, "vector").starts_with("VBAR + 0x10"));
    }

    #[test]
    fn device_access_without_a_syndrome_is_emulated_by_decoding() {
        let t = text("0x92000046", &[("far", "0x9000000")]);
        assert!(
            value(&t, "decision")
                .starts_with("emulate the access to pl011 at offset 0x0, by decoding")
        );
        assert!(value(&t, "outcome").starts_with("KVM_RUN fails with ENOSYS"));
        assert!(t.contains("differs    Moat decodes the instruction"));
    }

    #[test]
    fn kvm_differences_are_marked_with_their_rule() {
        let t = text(
            "0x92000046",
            &[("far", "0xffff000000401008"), HPFAR_2_40, ("mmu", "on")],
        );
        assert_eq!(
            value(&t, "outcome"),
            "kvm_inject_dabt(): synchronous external abort"
        );
        assert!(t.contains("ESR_EL1[63:32] = 0xffffffff; Moat 0x0: RES0"));
        assert!(t.contains("WnR = 0; Moat 1"));
        assert!(t.contains("FAR_EL1 = 0x10000000008, the IPA; Moat 0xffff000000401008"));
        assert!(t.contains("PARange: KVM shows 52 but faults from 2^L = 2^48"));
    }

    fn abort(esr: u64, far: u64, hpfar: u64) -> GuestAbort {
        GuestAbort::from_trap(esr, far, hpfar).expect("an abort")
    }

    #[test]
    fn kvm_injects_a_size_fault_from_2_pow_l_and_an_external_abort_from_2_pow_s() {
        let at = |hpfar| kvm_61(&abort(0x9200_0046, 0x8, hpfar), false, false, 40, 48);
        assert_eq!(
            at((1 << 48) >> 8),
            Kvm::Inject {
                size: true,
                far: 1 << 48 | 8
            }
        );
        assert_eq!(
            at((1 << 40) >> 8),
            Kvm::Inject {
                size: false,
                far: 1 << 40 | 8
            }
        );
        assert_eq!(
            at(0x4000_0000 >> 8),
            Kvm::NoSyndrome,
            "a hole below 2^S, ISV = 0"
        );
    }

    #[test]
    fn kvm_handles_faults_inside_the_ipa_space_by_memslot() {
        let hole = 0x1000_0000 >> 8;
        let walk = abort(0x9200_0087, 0xDEAD_0000, hole);
        assert_eq!(
            kvm_61(&walk, false, false, 40, 48),
            Kvm::Inject {
                size: false,
                far: 0xDEAD_0000
            }
        );
        let fetch = abort(0x8200_0006, 0xBEEF_0000, hole);
        assert_eq!(
            kvm_61(&fetch, false, false, 40, 48),
            Kvm::Inject {
                size: false,
                far: 0xBEEF_0000
            }
        );
        let cmo = abort(0x9200_0146, 0x1000_0000, hole);
        assert_eq!(kvm_61(&cmo, false, false, 40, 48), Kvm::Skip);
        let load = abort(0x9380_0006, 0x1000_0000, hole);
        assert_eq!(kvm_61(&load, true, false, 40, 48), Kvm::MmioExit);
        assert_eq!(kvm_61(&load, true, true, 40, 48), Kvm::Map);
        let sea = abort(0x9200_0010, 0, 0);
        assert_eq!(kvm_61(&sea, false, false, 40, 48), Kvm::VirtualSError);
        let stage2_asf = abort(0x9200_0000, 0, 0);
        assert_eq!(kvm_61(&stage2_asf, false, false, 40, 48), Kvm::Unsupported);
    }

    #[test]
    fn kvm_injected_syndrome_has_the_upper_half_set_and_no_wnr() {
        let r = request("0x92000046", &[("far", "0x10000000008"), ("from", "el0")]);
        let a = abort(0x9200_0046, 0x100_0000_0008, 0x1_0000_0000);
        let regs = kvm_registers(&r, &a, false, 0x100_0000_0008);
        assert_eq!(
            regs,
            [
                ("ESR_EL1", 0xFFFF_FFFF_9200_0010),
                ("FAR_EL1", 0x100_0000_0008)
            ]
        );
    }

    #[test]
    fn kvm_aarch32_lpae_prefetch_size_fault_keeps_ifsr_and_clobbers_dfsr() {
        let r = request("0x82000006", &[("guest", "a32-lpae"), ("far", "0x1000")]);
        let a = abort(0x8200_0006, 0x1000, 0x10);
        let regs = kvm_registers(&r, &a, true, 0x1000);
        assert_eq!(regs, [("IFSR", 0x210), ("IFAR", 0x1000), ("DFSR", 0)]);
        let short = request("0x92000046", &[("guest", "a32"), ("far", "0x1000")]);
        let d = abort(0x9200_0046, 0x1000, 0x10);
        assert_eq!(
            kvm_registers(&short, &d, true, 0x1000),
            [("DFSR", 0x008), ("DFAR", 0x1000)]
        );
    }

    #[test]
    fn hvc_is_explained_as_an_smccc_call_and_sve_as_undefined() {
        let hvc = text("0x5a000000", &[]);
        assert!(value(&hvc, "EC").starts_with("0x16 (HVC from AArch64)"));
        assert!(value(&hvc, "decision").starts_with("an SMCCC call (imm16 = 0): PSCI 1.1"));
        let sve = text("0x66000000", &[]);
        assert!(value(&sve, "decision").starts_with("inject an undefined instruction"));
        assert_eq!(value(&sve, "ESR_EL1"), "0x2000000");
        let idreg = text("0x6230002f", &[]);
        assert!(value(&idreg, "decision").starts_with("MRS X1, S3_0_C0_C7_0: an ID register"));
    }

    #[test]
    fn an_ec_0x25_syndrome_is_named_an_abort_of_el2_itself() {
        let t = text("0x96000010", &[]);
        assert!(
            value(&t, "note").starts_with("EC 0x21/0x25 in ESR_EL2 is an abort taken from EL2")
        );
    }
}
