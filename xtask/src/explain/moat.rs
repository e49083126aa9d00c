//! What Moat does with a guest abort: the decision of SPEC §2 (`moat_vcpu::abort::decide`)
//! and the exception it injects (`moat_vcpu::inject`, SPEC §3).

use super::args::{GuestKind, Request};
use super::render::{Out, entry_lines, syndrome_summary, vm_lines};
use moat_arm::addr::{Ipa, Va};
use moat_arm::esr::{DataAbortIss, Esr, Syndrome};
use moat_arm::fault_addr::{fault_ipa, hpfar_page};
use moat_arm::fsc::Level;
use moat_config::VmConfig;
use moat_vcpu::abort::{Decision, GuestAbort, GuestView, IpaRange, VmView, decide};
use moat_vcpu::align::El1Controls;
use moat_vcpu::entry::Entry;
use moat_vcpu::inject::{Abort, AbortAccess, AbortCause, at_fault_par, inject_abort};
use moat_vcpu::insn::memop::Instruction;
use moat_vcpu::s1walk::{FaultKind, Outcome, Trace, WalkFault, WalkReport};
use std::cell::Cell;

/// The IPA space's parts, as `[base, end)`.
pub(super) fn ranges(vm: &VmConfig) -> (Vec<IpaRange>, Vec<IpaRange>) {
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
pub(super) enum Place {
    BeyondPaRange,
    BeyondIpaSpace,
    Ram,
    Device(usize),
    Hole,
}

pub(super) fn place(req: &Request, view: &VmView<'_>, ipa: Ipa) -> Place {
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

pub(super) fn place_words(req: &Request, place: Place) -> String {
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
pub(super) const fn pa_cap(guest: GuestKind) -> u32 {
    match guest {
        GuestKind::A64 => 64,
        GuestKind::A32Lpae | GuestKind::A32Short => 40,
    }
}

/// The guest as the explainer knows it: no memory, so no walk. `walk` reports a stage-1
/// translation fault with no descriptor read, which no row of the decision can use: `decide`
/// answers such a walk with `Retry`, and the explainer, seeing that the walk was asked for,
/// explains the walk-dependent row instead.
#[derive(Default)]
pub(super) struct NoGuestMemory {
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

    fn instruction(&self) -> Option<Instruction> {
        None
    }

    fn controls(&self) -> El1Controls {
        El1Controls::default()
    }
}

/// What Moat decided for a guest abort, for the KVM section to set beside it.
pub(super) struct MoatVerdict {
    /// Where the IPA falls in the VM.
    pub(super) place: Option<Place>,
    /// The SPEC §2 decision.
    pub(super) decision: Decision,
    /// The exception Moat injects, if any, and whether it depends on the guest's walk.
    pub(super) entry: Option<(Entry, bool)>,
}

/// Moat's side of a guest abort; returns the verdict the KVM section compares with.
pub(super) fn explain_abort(out: &mut Out, req: &Request, abort: &GuestAbort) -> MoatVerdict {
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
    MoatVerdict {
        place,
        decision,
        entry: moat_entry.map(|e| (e, walk_level)),
    }
}

pub(super) fn address_lines(out: &mut Out, req: &Request, abort: &GuestAbort) {
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
    let note = req
        .hpfar_note
        .map_or_else(String::new, |n| format!(" ({n})"));
    let page = hpfar_page(req.hpfar).0;
    out.line(
        "HPFAR_EL2",
        format!("{:#x}  FIPA: IPA page {page:#x}{note}", req.hpfar),
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
pub(super) fn access_words(esr: Esr) -> String {
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

pub(super) fn data_access_words(iss: &DataAbortIss) -> String {
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

pub(super) fn cause_words(cause: AbortCause, access: AbortAccess) -> String {
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
        AbortCause::Alignment if matches!(access, AbortAccess::Instruction) => {
            "a PC alignment fault (EC 0x22)".to_owned()
        }
        AbortCause::Alignment => format!("an Alignment fault ({kind})"),
    }
}

/// The Arm ARM rule (or Moat policy) behind an injected cause in `place`.
pub(super) fn rule_words(
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
pub(super) fn decision_lines(
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

pub(super) fn decision_isv(esr: Esr) -> Option<bool> {
    match esr.decode() {
        Syndrome::DataAbortLower(iss) | Syndrome::DataAbortSame(iss) => Some(iss.isv),
        _ => None,
    }
}

/// The rows whose outcome is the level the guest's walk reports: the rule in words, and the
/// injection for each level the walk can report. Returns the first candidate's injection.
pub(super) fn walk_dependent(
    out: &mut Out,
    req: &Request,
    abort: &GuestAbort,
    place: Place,
) -> Option<Entry> {
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
