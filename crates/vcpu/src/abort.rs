//! The guest-abort decision (SPEC §2): what Moat does with an instruction or data abort the
//! guest took to EL2, as one pure function of the captured trap state, the VM's IPA space and
//! — for the rows that need it — the guest's own stage-1 walk.
//!
//! The rows, tried in order for a stage-2 translation fault (or a stage-2 address size fault,
//! which the hardware gives for an IPA beyond what stage 2 can hold):
//!
//! | case | outcome |
//! | --- | --- |
//! | `S1PTW` = 1, descriptor at or above `2^P` | Address Size Fault at the level of the table descriptor (or `TTBRn`) that held the address |
//! | `S1PTW` = 1, descriptor in `[2^S, 2^P)`, a hole or a device | external abort on the walk, at the level of the lookup that read it |
//! | `ipa >= 2^P` | Address Size Fault: level 0 with the MMU off, the level of the stage-1 descriptor whose output is out of range with it on; external abort for a short-descriptor AArch32 guest |
//! | `2^S <= ipa < 2^P` | synchronous external abort |
//! | RAM | map it and retry |
//! | device, data access | emulate |
//! | device, instruction fetch | external abort |
//! | hole below `2^S` | external abort, or read-as-zero/write-ignore for data by policy |
//!
//! Cache maintenance by VA (`CM` = 1, or recognised by its instruction: QEMU reports `DC CVAP`
//! and `DC CVADP` with `CM` = 0) with nothing behind its address, or a device window, completes
//! as a no-op; an `AT` instruction never takes a data abort for a stage-1 fault, so an address
//! size fault on its walk becomes its `PAR_EL1` result.
//!
//! Faults the architecture checks before stage 2 come first, because a hypervisor below QEMU
//! sees the stage-2 fault where QEMU's translation came first (docs/qemu-departures.md):
//!
//! - a fetch from a misaligned PC is a PC alignment fault (`AArch64.PCAlignmentFault()`,
//!   `AArch32.CheckPCAlignment()`), whatever lies behind the address;
//! - a data access that must be aligned whatever the memory type and is not
//!   (`AArch64.UnalignedAccessFaults()`), and one to Device memory not aligned to its element
//!   (`AArch64.S1HasAlignmentFault()`: every data access with the MMU off, and pages the guest's
//!   stage 1 makes Device), and `DC ZVA` of Device memory however aligned
//!   (`AccessType_DCZero`), is an Alignment fault — except that an address size fault at
//!   `2^P` comes before the memory-type check, as in `AArch64.S1DisabledOutput()` (see
//!   `crate::align`).

use crate::align::{self, El1Controls, MemType};
use crate::inject::{Abort, AbortAccess, AbortCause};
use crate::insn::memop::{self, AlignRule, Always, Instruction, MemOp};
use crate::s1walk::{FaultKind, LeafKind, Outcome, WalkReport, level_reading};
use moat_arm::addr::{Ipa, Va};
use moat_arm::esr::{DataAbortIss, Esr, ExceptionClass, InstrAbortIss};
use moat_arm::fault_addr::fault_ipa;
use moat_arm::fsc::{Fsc, Level};

/// An instruction or data abort from the guest, as `ESR_EL2`, `FAR_EL2` and `HPFAR_EL2`
/// reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestAbort {
    /// Data (with `WnR`, `CM`) or instruction.
    pub access: AbortAccess,
    /// The stage-2 fault status code.
    pub fsc: Fsc,
    /// `S1PTW`: the fault was on the guest's stage-1 table walk.
    pub s1ptw: bool,
    /// The faulting IPA (`HPFAR_EL2.FIPA` with `FAR_EL2[11:0]`); on a walk, in the page of the
    /// descriptor being read. `None` where `HPFAR_EL2` is not valid for this fault.
    pub ipa: Option<Ipa>,
    /// The faulting virtual address (`FAR_EL2`), what the guest sees in `FAR_EL1`.
    pub va: Va,
    /// The instruction set the guest was executing (`SPSR_EL2.M[4]` and `T`).
    pub isa: InstrSet,
    /// The access a valid instruction syndrome (`ISV` = 1) describes: a single register of
    /// `SAS` bytes, ordered when `AR` = 1. `None` without one.
    pub syndrome_rule: Option<AlignRule>,
}

/// The instruction set of the interrupted guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstrSet {
    /// AArch64.
    A64,
    /// AArch32, A32 (ARM) state.
    A32,
    /// AArch32, T32 (Thumb) state.
    T32,
}

impl InstrSet {
    /// The instruction set of a guest whose PSTATE `SPSR_EL2` holds: `M[4]` = 1 is AArch32,
    /// where `T` (bit 5) selects T32.
    #[must_use]
    pub const fn from_spsr(spsr_el2: u64) -> Self {
        const M4_AARCH32: u64 = 1 << 4;
        const T: u64 = 1 << 5;
        if spsr_el2 & M4_AARCH32 == 0 {
            Self::A64
        } else if spsr_el2 & T == 0 {
            Self::A32
        } else {
            Self::T32
        }
    }

    /// Whether `pc` is misaligned for this instruction set: `AArch64.CheckPCAlignment()` (bits
    /// \[1:0\]), `AArch32.CheckPCAlignment()` (`pc<0>`, and `pc<1>` in A32).
    #[must_use]
    pub const fn pc_misaligned(self, pc: u64) -> bool {
        match self {
            Self::A64 | Self::A32 => pc & 0b11 != 0,
            Self::T32 => pc & 1 != 0,
        }
    }
}

impl GuestAbort {
    /// The abort in `esr`/`far`/`hpfar`, taken from the PSTATE in `spsr`, or `None` for
    /// another exception class.
    #[must_use]
    pub fn from_trap(esr: u64, far: u64, hpfar: u64, spsr: u64) -> Option<Self> {
        let esr = Esr::new(esr);
        let access = AbortAccess::from_esr_el2(esr)?;
        // Only the abort's own ISS is decoded: this runs on every guest abort.
        let (fsc, s1ptw, syndrome_rule) = match esr.ec() {
            ExceptionClass::DataAbortLower | ExceptionClass::DataAbortSame => {
                let iss = DataAbortIss::decode(esr.iss());
                (iss.dfsc, iss.s1ptw, syndrome_rule(&iss))
            }
            ExceptionClass::InstrAbortLower | ExceptionClass::InstrAbortSame => {
                let iss = InstrAbortIss::decode(esr.iss());
                (iss.ifsc, iss.s1ptw, None)
            }
            _ => return None,
        };
        let ipa = fsc.hpfar_valid(s1ptw).then(|| fault_ipa(hpfar, far));
        Some(Self {
            access,
            fsc,
            s1ptw,
            ipa,
            va: Va(far),
            isa: InstrSet::from_spsr(spsr),
            syndrome_rule,
        })
    }

    const fn is_instruction(&self) -> bool {
        matches!(self.access, AbortAccess::Instruction)
    }

    const fn is_cache_maintenance(&self) -> bool {
        matches!(self.access, AbortAccess::Data { cm: true, .. })
    }

    /// The memory operation of the faulting instruction: from the syndrome when it has one,
    /// else decoded from the instruction at the PC.
    fn mem_op(&self, guest: &impl GuestView) -> MemOp {
        match self.syndrome_rule {
            Some(rule) => MemOp::Access(rule),
            None => guest.instruction().map_or(MemOp::Unknown, memop::classify),
        }
    }
}

/// The single-register access of a valid instruction syndrome.
fn syndrome_rule(iss: &DataAbortIss) -> Option<AlignRule> {
    if !iss.isv {
        return None;
    }
    let element = iss.sas.bytes();
    let always = if iss.ar {
        Always::Ordered { bytes: element }
    } else {
        Always::Nothing
    };
    Some(AlignRule { element, always })
}

/// A range of IPAs `[base, base + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpaRange {
    /// First IPA.
    pub base: Ipa,
    /// Length in bytes.
    pub size: u64,
}

impl IpaRange {
    /// The offset of `ipa` in the range, when it lies inside.
    #[must_use]
    pub const fn offset_of(&self, ipa: Ipa) -> Option<u64> {
        match ipa.0.checked_sub(self.base.0) {
            Some(offset) if offset < self.size => Some(offset),
            _ => None,
        }
    }
}

/// What a data access to an IPA below `2^S` with nothing behind it does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HolePolicy {
    /// A synchronous external abort, like a bus decode error on a real machine.
    #[default]
    Abort,
    /// Reads return zero, writes are ignored (instruction fetches still abort).
    ReadAsZeroWriteIgnore,
}

/// The guest's translation format, which decides the PA size and whether an Address Size
/// Fault can be expressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestFormat {
    /// An AArch64 EL1 (VMSAv8-64).
    Aarch64,
    /// An AArch32 EL1 using the long-descriptor format (`TTBCR.EAE` = 1): 40-bit output.
    Aarch32Long,
    /// An AArch32 EL1 using the short-descriptor format: no address size fault encoding.
    Aarch32Short,
}

/// The VM as the decision sees it.
#[derive(Clone, Copy, Debug)]
pub struct VmView<'a> {
    /// The VM's IPA size `S`.
    pub ipa_bits: u32,
    /// The guest-visible PARange `P`, in bits.
    pub pa_bits: u32,
    /// RAM regions.
    pub ram: &'a [IpaRange],
    /// Emulated device windows, by index.
    pub devices: &'a [IpaRange],
    /// What a data access to a hole does.
    pub hole_policy: HolePolicy,
    /// The guest's translation format.
    pub format: GuestFormat,
    /// The guest's stage 1 is on (`SCTLR_EL1.M`).
    pub mmu_on: bool,
}

impl VmView<'_> {
    /// The PA size the guest's translations are checked against: `P`, and at most 40 bits for
    /// an AArch32 long-descriptor guest (SPEC §2).
    #[must_use]
    pub fn effective_pa_bits(&self) -> u32 {
        effective_pa_bits(self.pa_bits, self.format != GuestFormat::Aarch64)
    }

    /// The VM's IPA space, as [`VmView::place`] and the plain-abort decision read it.
    #[must_use]
    pub fn layout(&self) -> IpaLayout<'_> {
        IpaLayout {
            ipa_bits: self.ipa_bits,
            pa_bits: self.effective_pa_bits(),
            ram: self.ram,
            devices: self.devices,
            hole_policy: self.hole_policy,
        }
    }

    fn place(&self, ipa: Ipa) -> Place {
        self.layout().place(ipa)
    }
}

/// The PA size an AArch64 guest's (`aarch32` false) or an AArch32 guest's translations are
/// checked against, when its visible PARange is `pa_bits`: an AArch32 guest's output
/// addresses have at most 40 bits (LPAE), so min(`P`, 40) for it (SPEC §2).
#[must_use]
pub const fn effective_pa_bits(pa_bits: u32, aarch32: bool) -> u32 {
    if aarch32 && pa_bits > 40 { 40 } else { pa_bits }
}

/// The VM's IPA space: fixed for the VM's life, and all the plain-abort decision
/// (`crate::plain_abort`) needs of the VM.
#[derive(Clone, Copy, Debug)]
pub struct IpaLayout<'a> {
    /// The VM's IPA size `S`.
    pub ipa_bits: u32,
    /// The PA size the guest's accesses are checked against ([`VmView::effective_pa_bits`]).
    pub pa_bits: u32,
    /// RAM regions.
    pub ram: &'a [IpaRange],
    /// Emulated device windows, by index.
    pub devices: &'a [IpaRange],
    /// What a data access to a hole does.
    pub hole_policy: HolePolicy,
}

impl IpaLayout<'_> {
    const fn at_or_above(ipa: Ipa, bits: u32) -> bool {
        bits < 64 && ipa.0 >> bits != 0
    }

    /// Where `ipa` lies: beyond `2^P`, in `[2^S, 2^P)`, in RAM, in a device window or in a hole.
    pub(crate) fn place(&self, ipa: Ipa) -> Place {
        if Self::at_or_above(ipa, self.pa_bits) {
            Place::BeyondPaRange
        } else if Self::at_or_above(ipa, self.ipa_bits) {
            Place::BeyondIpaSpace
        } else if let Some((device, offset)) = self.device_at(ipa) {
            // Device windows and RAM never overlap (the configuration is refused otherwise), so
            // the order is free: the windows first, where most exits that ask land.
            Place::Device { device, offset }
        } else if self.ram.iter().any(|r| r.offset_of(ipa).is_some()) {
            Place::Ram
        } else {
            Place::Hole
        }
    }

    fn device_at(&self, ipa: Ipa) -> Option<(usize, u64)> {
        self.devices
            .iter()
            .enumerate()
            .find_map(|(i, d)| Some((i, d.offset_of(ipa)?)))
    }
}

/// Where an IPA lies in the VM's address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    BeyondPaRange,
    BeyondIpaSpace,
    Ram,
    Device { device: usize, offset: u64 },
    Hole,
}

/// The guest-side facts the decision asks for only in the rows that need them.
pub trait GuestView {
    /// The guest's stage-1 walk of `va`, against the effective PA size (SPEC §2).
    fn walk(&self, va: Va) -> WalkReport;
    /// The instruction at the faulting PC, read through the guest's stage 1, or `None` when
    /// it cannot be read (asked for data aborts without an instruction syndrome).
    fn instruction(&self) -> Option<Instruction>;
    /// The guest's EL1 controls the alignment rules read (`SCTLR_EL1`, `MAIR_EL1`).
    fn controls(&self) -> El1Controls;
}

/// What Moat does with the abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The IPA is RAM: (re)map it and let the guest retry the access.
    MapRam,
    /// Emulate the data access in device window `device`, at `offset` into it.
    Emulate {
        /// Index into [`VmView::devices`].
        device: usize,
        /// Offset of the access in the window.
        offset: u64,
    },
    /// Complete the data access as read-as-zero/write-ignore and advance the PC.
    ReadAsZeroWriteIgnore,
    /// Complete the instruction as a no-op and advance the PC.
    SkipInstruction,
    /// Inject this abort into the guest.
    Inject(Abort),
    /// The `AT` instruction completes with this stage-1 fault in `PAR_EL1`; advance the PC.
    AddressTranslationFault(AbortCause),
    /// Re-execute the instruction: the guest's tables changed between the fault and Moat's
    /// walk, so the hardware will report whatever is true now.
    Retry,
    /// A fault that Moat's own mappings cannot cause (Moat maps RAM with full permissions and
    /// the access flag set): stop the VM with this reason.
    Unexpected(&'static str),
}

/// Decides the outcome of a guest abort (SPEC §2).
#[must_use]
pub fn decide(abort: &GuestAbort, vm: &VmView<'_>, guest: &impl GuestView) -> Decision {
    // The PC is checked before the fetch (`AArch64.CheckPCAlignment()`), so no fault of the
    // fetch itself can come first.
    if abort.is_instruction() && abort.isa.pc_misaligned(abort.va.0) {
        return inject(abort, AbortCause::Alignment);
    }
    match abort.fsc {
        Fsc::Translation { .. } | Fsc::AddressSize { .. } => {}
        Fsc::SyncExternal | Fsc::SyncExternalOnWalk { .. } | Fsc::SyncParity => {
            // A real external abort from the bus: reflected as the same abort.
            return inject(abort, AbortCause::External);
        }
        Fsc::TlbConflict => return Decision::Unexpected("TLB conflict abort at stage 2"),
        Fsc::AccessFlag { .. } => return Decision::Unexpected("stage-2 access flag fault"),
        Fsc::Permission { .. } => return Decision::Unexpected("stage-2 permission fault"),
        _ => return Decision::Unexpected("stage-2 fault of a kind Moat never causes"),
    }
    let Some(ipa) = abort.ipa else {
        return Decision::Unexpected("stage-2 fault without a valid HPFAR_EL2");
    };
    let op = if abort.is_instruction() {
        MemOp::Unknown
    } else {
        abort.mem_op(guest)
    };
    // `AArch64.UnalignedAccessFaults()` is checked before translation, so before the walk too.
    if let MemOp::Access(rule) = op
        && align::misaligned(rule, abort.va.0)
        && align::faults_before_translation(rule, abort.va.0, &guest.controls())
    {
        return inject(abort, AbortCause::Alignment);
    }
    if abort.s1ptw {
        return on_walk(abort, ipa, vm, guest, op);
    }
    on_access(abort, ipa, vm, guest, op)
}

/// Rows 1 and 2: a stage-2 fault while the hardware read a guest stage-1 descriptor at `ipa`.
fn on_walk(
    abort: &GuestAbort,
    ipa: Ipa,
    vm: &VmView<'_>,
    guest: &impl GuestView,
    op: MemOp,
) -> Decision {
    let place = vm.place(ipa);
    if place == Place::Ram {
        return Decision::MapRam;
    }
    let report = guest.walk(abort.va);
    let cause = if place == Place::BeyondPaRange {
        // The walk, checked against P, meets the out-of-range table address first.
        match report.outcome {
            Outcome::Fault(f) if f.kind == FaultKind::AddressSize => address_size(vm, f.level),
            _ => return Decision::Retry,
        }
    } else {
        match level_reading(&report, ipa) {
            Some(level) => AbortCause::ExternalOnWalk { level },
            None => return Decision::Retry,
        }
    };
    if abort.is_cache_maintenance() && op == MemOp::AddressTranslation {
        return at_result(abort, cause);
    }
    inject(abort, cause)
}

/// An `AT` never takes a data abort for a stage-1 fault: an address size fault goes to
/// `PAR_EL1`; an external abort on its walk is still a data abort (`CM` = 1, `WnR` = 1).
fn at_result(abort: &GuestAbort, cause: AbortCause) -> Decision {
    match cause {
        AbortCause::AddressSize { .. } => Decision::AddressTranslationFault(cause),
        AbortCause::External | AbortCause::ExternalOnWalk { .. } | AbortCause::Alignment => {
            inject(abort, cause)
        }
    }
}

/// Rows 3 to 8: the access itself faulted at stage 2.
fn on_access(
    abort: &GuestAbort,
    ipa: Ipa,
    vm: &VmView<'_>,
    guest: &impl GuestView,
    op: MemOp,
) -> Decision {
    let place = vm.place(ipa);
    match place {
        Place::BeyondPaRange => return address_size_of_access(abort, vm, guest),
        Place::Ram => return Decision::MapRam,
        _ if abort.is_instruction() => return inject(abort, AbortCause::External),
        _ => {}
    }
    // Cache maintenance by VA of a hole, `[2^S, 2^P)` or a device: a no-op (SPEC §2).
    if abort.is_cache_maintenance() || op == MemOp::CacheMaintenance {
        return Decision::SkipInstruction;
    }
    let device_alignment = match op {
        MemOp::Access(rule) => align::faults_on(MemType::Device, rule, abort.va.0),
        // `DC ZVA` of Device memory faults however aligned (`AccessType_DCZero`).
        MemOp::ZeroBlock => true,
        _ => false,
    };
    if device_alignment && memory_type(abort, ipa, vm, guest) == Some(MemType::Device) {
        return inject(abort, AbortCause::Alignment);
    }
    match place {
        Place::Device { device, offset } => Decision::Emulate { device, offset },
        Place::Hole if vm.hole_policy == HolePolicy::ReadAsZeroWriteIgnore => {
            Decision::ReadAsZeroWriteIgnore
        }
        _ => inject(abort, AbortCause::External),
    }
}

/// The memory type the guest's stage 1 gives the data access: Device-nGnRnE with the MMU off
/// (`AArch64.S1DisabledOutput()`), else the leaf's attributes. `None` when the walk no longer
/// reaches the faulting page (the guest changed its tables): no alignment fault is claimed,
/// and the other rows decide.
fn memory_type(
    abort: &GuestAbort,
    ipa: Ipa,
    vm: &VmView<'_>,
    guest: &impl GuestView,
) -> Option<MemType> {
    if !vm.mmu_on {
        return Some(MemType::Device);
    }
    let translation = guest.walk(abort.va).translation()?;
    let page = |a: Ipa| a.0 >> crate::s1walk::HPFAR_PAGE_SHIFT;
    if page(translation.ipa) != page(ipa) {
        return None;
    }
    let Some(leaf) = translation.leaf else {
        return Some(MemType::Device);
    };
    Some(match (vm.format, leaf.kind) {
        (
            GuestFormat::Aarch32Short,
            LeafKind::Section | LeafKind::Supersection | LeafKind::LargePage | LeafKind::SmallPage,
        ) => align::short_descriptor_type(&leaf, &guest.controls()),
        _ => align::long_descriptor_type(&leaf, guest.controls().mair),
    })
}

/// Row 3: `ipa >= 2^P`. With the MMU off, level 0 (`AArch64.TranslateAddressS1Off()`); with it
/// on, the level of the stage-1 descriptor that produced the address, found by walking.
fn address_size_of_access(abort: &GuestAbort, vm: &VmView<'_>, guest: &impl GuestView) -> Decision {
    if !vm.mmu_on {
        return inject(abort, address_size(vm, Level::L0));
    }
    match guest.walk(abort.va).outcome {
        Outcome::Fault(f) if f.kind == FaultKind::AddressSize => {
            inject(abort, address_size(vm, f.level))
        }
        _ => Decision::Retry,
    }
}

/// An address size fault at `level`, or the external abort a short-descriptor guest gets
/// instead (it has no encoding for one).
fn address_size(vm: &VmView<'_>, level: Level) -> AbortCause {
    match vm.format {
        GuestFormat::Aarch32Short => AbortCause::External,
        GuestFormat::Aarch64 | GuestFormat::Aarch32Long => AbortCause::AddressSize { level },
    }
}

fn inject(abort: &GuestAbort, cause: AbortCause) -> Decision {
    Decision::Inject(Abort {
        access: abort.access,
        cause,
        va: abort.va,
    })
}

#[cfg(test)]
#[path = "abort_tests.rs"]
mod tests;
