//! The command line of `./x explain`, checked: every bad value is a one-line usage error.

use crate::error::{XResult, usage};
use clap::Args;
use moat_arm::esr::{Esr, ExceptionClass, Syndrome};
use moat_arm::fault_addr::{HPFAR_FIPA, HPFAR_NS, hpfar_page};
use moat_arm::fsc::Fsc;
use moat_arm::sysreg::ttbcr;
use moat_config::parange::PARANGE_ENCODINGS;
use moat_config::{GuestArch, ParangeMode, VmConfig, guest_parange_bits};
use moat_vcpu::abort::{GuestAbort, GuestFormat, HolePolicy, IpaRange, VmView};
use moat_vcpu::entry::{CpuFeatures, GuestContext};
use std::path::PathBuf;

/// Options of `./x explain`. Values are checked by `explain` itself, so that a bad one gets a
/// one-line error (exit status 2).
#[derive(Args, Debug, Default)]
pub(crate) struct ExplainArgs {
    /// `ESR_EL2` at the trap (hexadecimal, `0x` optional).
    #[arg(long, value_name = "HEX")]
    pub(crate) esr: String,
    /// `FAR_EL2`: the faulting virtual address [default: 0].
    #[arg(long, value_name = "HEX")]
    pub(crate) far: Option<String>,
    /// `HPFAR_EL2` [default: FAR_EL2's page, with the MMU off (the IPA is the VA)].
    #[arg(long, value_name = "HEX")]
    pub(crate) hpfar: Option<String>,
    /// `ELR_EL2`: the address of the faulting instruction [default: 0].
    #[arg(long, value_name = "HEX")]
    pub(crate) elr: Option<String>,
    /// The VM's IPA size S in bits, 32..=L [default: the VM description's, 40].
    #[arg(long, value_name = "S")]
    pub(crate) ipa_bits: Option<String>,
    /// The PARange P the guest reads: a size in bits (32, 36, 40, 42, 44, 48), `tight` (the
    /// smallest covering S) or `max` (the IPA limit L) [default: the VM description's, max].
    #[arg(long, value_name = "P")]
    pub(crate) parange: Option<String>,
    /// The guest's EL1: `a64`, `a32-lpae` (TTBCR.EAE = 1) or `a32` (short descriptors)
    /// [default: a64, or a32-lpae for a VM description with arch = "aarch32"].
    #[arg(long, value_name = "KIND")]
    pub(crate) guest: Option<String>,
    /// Where the guest was: `el0`, `el0-a32` (AArch32 EL0 under an AArch64 EL1), `el1t`,
    /// `el1h` (AArch32 guests: `el0` is User, `el1` or `el1h` is Supervisor) [default: el1h].
    #[arg(long, value_name = "STATE")]
    pub(crate) from: Option<String>,
    /// The guest's stage 1 (`SCTLR_EL1.M`): `on` or `off` [default: off].
    #[arg(long, value_name = "on|off")]
    pub(crate) mmu: Option<String>,
    /// QEMU's CPU model, for the IPA limit L.
    #[arg(long, value_name = "NAME", default_value = "max")]
    pub(crate) cpu: String,
    /// A VM description (TOML; see configs/) for S, P, RAM and devices [default: QEMU virt];
    /// a system description of `[[vm]]` tables with `--vm`.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The VM of a system description (`--config` with `[[vm]]` tables) the trap came from,
    /// by its name.
    #[arg(long, value_name = "NAME", requires = "config")]
    pub(crate) vm: Option<String>,
}

/// The guest's EL1 translation regime, as `--guest` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GuestKind {
    A64,
    A32Lpae,
    A32Short,
}

impl GuestKind {
    pub(super) const fn format(self) -> GuestFormat {
        match self {
            Self::A64 => GuestFormat::Aarch64,
            Self::A32Lpae => GuestFormat::Aarch32Long,
            Self::A32Short => GuestFormat::Aarch32Short,
        }
    }

    pub(super) const fn name(self) -> &'static str {
        match self {
            Self::A64 => "AArch64",
            Self::A32Lpae => "AArch32, long descriptors (TTBCR.EAE = 1)",
            Self::A32Short => "AArch32, short descriptors (TTBCR.EAE = 0)",
        }
    }

    pub(super) const fn aarch32(self) -> bool {
        !matches!(self, Self::A64)
    }
}

/// What the user asked about, every value checked.
#[derive(Clone, Debug)]
pub(super) struct Request {
    pub(super) esr: Esr,
    pub(super) far: u64,
    pub(super) hpfar: u64,
    /// How `hpfar` was obtained, when the user did not give it.
    pub(super) hpfar_note: Option<&'static str>,
    pub(super) elr: u64,
    pub(super) vm: VmConfig,
    /// `P` and how it was chosen.
    pub(super) pa_bits: u32,
    pub(super) parange_how: String,
    /// `L` and the CPU model it comes from.
    pub(super) limit: u32,
    pub(super) cpu: String,
    pub(super) guest: GuestKind,
    /// `SPSR_EL2` at the trap, and the name of that state.
    pub(super) spsr: u64,
    pub(super) from: &'static str,
    pub(super) mmu_on: bool,
}

/// A hexadecimal register value (`0x` and `_` optional).
pub(super) fn parse_hex(flag: &str, text: &str) -> XResult<u64> {
    let digits = text.trim_start_matches("0x").trim_start_matches("0X");
    let digits = digits.replace('_', "");
    u64::from_str_radix(&digits, 16)
        .map_err(|_| usage(format!("--{flag} {text}: not a 64-bit hexadecimal number")))
}

pub(super) fn parse_opt_hex(flag: &str, text: Option<&String>) -> XResult<Option<u64>> {
    text.map(|t| parse_hex(flag, t)).transpose()
}

/// `S`: 32..=`L` (SPEC §1).
pub(super) fn parse_ipa_bits(text: &str, limit: u32, cpu: &str) -> XResult<u32> {
    let min = moat_config::validate::MIN_IPA_BITS;
    match text.parse::<u32>() {
        Ok(s) if (min..=limit).contains(&s) => Ok(s),
        _ => Err(usage(format!(
            "--ipa-bits {text}: S must be {min}..={limit} (the IPA limit L of -cpu {cpu})"
        ))),
    }
}

/// `P`: `max` (= `L`), `tight`, or a PARange encoding with `S <= P <= L` (SPEC §1).
pub(super) fn parse_parange(text: &str, s: u32, limit: u32) -> XResult<(u32, String)> {
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

pub(super) fn parse_guest(text: &str) -> XResult<GuestKind> {
    match text {
        "a64" => Ok(GuestKind::A64),
        "a32-lpae" => Ok(GuestKind::A32Lpae),
        "a32" => Ok(GuestKind::A32Short),
        _ => Err(usage(format!("--guest {text}: not a64, a32-lpae or a32"))),
    }
}

/// `SPSR_EL2` for the state the guest was in: `EL0t` 0x0, `EL1t` 0x3c4, `EL1h` 0x3c5 (D, A, I,
/// F masked at EL1); AArch32: User 0x10, Supervisor 0x1d3 (A, I, F masked).
pub(super) fn parse_from(text: &str, guest: GuestKind) -> XResult<(u64, &'static str)> {
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

pub(super) fn parse_mmu(text: &str) -> XResult<bool> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(usage(format!("--mmu {text}: not on or off"))),
    }
}

/// Refuses syndromes no CPU reports: RES0 bits set, an unallocated class or fault code, `IL`
/// = 0 where the Arm ARM makes it 1.
pub(super) fn check_esr(text: &str, esr: Esr) -> XResult<()> {
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
    pub(super) fn from_args(args: &ExplainArgs) -> XResult<Self> {
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
        let mut vm = load_vm(args.config.as_deref(), args.vm.as_deref())?;
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
    pub(super) fn view<'a>(&self, ram: &'a [IpaRange], devices: &'a [IpaRange]) -> VmView<'a> {
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
    pub(super) fn context(&self) -> GuestContext {
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
pub(super) fn check_aarch32_addresses(far: u64, hpfar: u64) -> XResult<()> {
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

pub(super) fn load_vm(path: Option<&std::path::Path>, name: Option<&str>) -> XResult<VmConfig> {
    let Some(path) = path else {
        return Ok(VmConfig::default_virt());
    };
    let file = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("--config {file}: {e}")))?;
    let mut system = moat_config::SystemConfig::from_toml_str(&text)
        .map_err(|e| usage(format!("--config {file}: {e}")))?;
    let names = || {
        let names: Vec<&str> = system.vms.iter().map(|vm| vm.name.as_str()).collect();
        names.join(", ")
    };
    let chosen = match name {
        Some(name) => system
            .vms
            .iter()
            .position(|vm| vm.name == name)
            .ok_or_else(|| {
                usage(format!(
                    "--vm {name}: --config {file} has no VM of that name (it has {})",
                    names()
                ))
            })?,
        None if system.vms.len() == 1 => 0,
        None => {
            return Err(usage(format!(
                "--config {file} describes several VMs ({}): name the trap's with --vm",
                names()
            )));
        }
    };
    Ok(system.vms.swap_remove(chosen))
}

/// `HPFAR_EL2` as given (bits outside `FIPA` and `NS` are RES0), or, with the MMU off, the page
/// of `FAR_EL2` (the IPA is the VA); required where the fault sets it and the VA is no guide.
pub(super) fn hpfar_of(
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
    let Some(abort) = GuestAbort::from_trap(esr.bits(), far, from_far, 0) else {
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
        Some("not given: FAR_EL2's page, the IPA being the VA with the MMU off"),
    ))
}
