//! What Linux 6.1 KVM would do with the same abort (SPEC §5), mirrored as a pure function, and
//! each difference from Moat with the Arm ARM rule that decides it.

use super::args::{GuestKind, Request};
use super::moat::{Place, decision_isv};
use super::render::{Out, hex};
use moat_arm::esr::Esr;
use moat_arm::fsc::Fsc;
use moat_arm::fsr32::Fsr32;
use moat_vcpu::abort::{Decision, GuestAbort};
use moat_vcpu::entry::Entry;
use moat_vcpu::inject::AbortAccess;

/// What Linux 6.1 KVM does with a guest's stage-2 abort (`kvm_handle_guest_abort()`), as
/// SPEC §5 and the seed patch describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kvm {
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
pub(super) fn kvm_61(abort: &GuestAbort, isv: bool, in_ram: bool, s: u32, limit: u32) -> Kvm {
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
pub(super) fn kvm_registers(
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

pub(super) fn kvm_outcome_words(kvm: Kvm, instruction: bool) -> &'static str {
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

pub(super) fn kvm_section(
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

pub(super) fn register_words(name: &str, value: u64) -> String {
    match name {
        "ESR_EL1" => format!("{value:#x}  {}", Esr::new(value & 0xFFFF_FFFF)),
        "DFSR" | "IFSR" => format!("{value:#x}  {}", Fsr32::decode(value as u32)),
        _ => hex(value),
    }
}

/// Field-by-field differences between KVM's registers and Moat's injection, each with the
/// Arm ARM rule that decides it.
pub(super) fn register_differences(
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
pub(super) struct Compared<'a> {
    name: &'a str,
    kvm: u64,
    moat: u64,
    walk_level: bool,
}

pub(super) fn field_differences(
    req: &Request,
    abort: &GuestAbort,
    c: &Compared<'_>,
) -> Vec<String> {
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
pub(super) fn kvm_far_is_ipa(abort: &GuestAbort, req: &Request) -> bool {
    matches!(abort.fsc, Fsc::Translation { .. })
        && abort.ipa.is_some_and(|i| i.0 >> req.vm.ipa_bits != 0)
}

pub(super) fn flag_differences(k: u64, m: u64, wnr: u32, cm: u32) -> Vec<String> {
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

pub(super) fn status_difference(k: u64, m: u64, walk_level: bool) -> Option<String> {
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
pub(super) fn outcome_difference(
    decision: &Decision,
    kvm: Kvm,
    moat_injects: bool,
) -> Option<String> {
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
