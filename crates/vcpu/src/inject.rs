//! The exceptions Moat injects into a guest (SPEC.md §2–3): synchronous external aborts,
//! address size faults, external aborts on a translation table walk, undefined instructions,
//! virtual SErrors, and the `PAR_EL1` result of a faulting `AT`.
//!
//! Each injection builds the syndrome the Arm ARM prescribes for the guest's execution state
//! and translation format, then enters the guest through `crate::entry`. Choices the Arm ARM
//! leaves IMPLEMENTATION DEFINED are Moat's documented policy: `EA` = 0, `SET` = 0 (FEAT_RAS),
//! AArch32 `ExT` = 0 — what bare QEMU reports. An injection replaces the guest's PC: the EL2
//! binary must not also advance it past the trapped instruction.
//!
//! How the EL2 binary uses it, for a guest store that hit nothing (SPEC.md §2):
//!
//! ```
//! use moat_arm::{addr::Va, esr::Esr};
//! use moat_vcpu::entry::{CpuFeatures, GuestContext};
//! use moat_vcpu::frame::TrapFrame;
//! use moat_vcpu::inject::{Abort, AbortAccess, AbortCause, inject_abort};
//!
//! let mut frame = TrapFrame { pc: 0x4008_0000, pstate: 0x3C5, esr: 0x9200_0046, ..Default::default() };
//! frame.far = 0xFFFF_0000_0000_1000;
//! // The EL1 registers and CPU features, as the EL2 binary reads them.
//! let ctx = GuestContext {
//!     pc: frame.pc,
//!     spsr_el2: frame.pstate,
//!     vbar_el1: 0x4010_0000,
//!     features: CpuFeatures { has_pan: true, ..Default::default() },
//!     ..Default::default()
//! };
//! let access = AbortAccess::from_esr_el2(Esr::new(frame.esr)).expect("an abort");
//! let abort = Abort { access, cause: AbortCause::External, va: Va(frame.far) };
//! let entry = inject_abort(&ctx, &abort);
//! entry.apply_to_frame(&mut frame);
//! let writes = entry.sysreg_writes();
//! assert_eq!(frame.pc, 0x4010_0200);
//! assert_eq!(writes.esr_el1, Some(0x9600_0050)); // EC 0x25, IL, WnR, DFSC 0x10
//! assert_eq!(writes.far_el1, Some(0xFFFF_0000_0000_1000));
//! ```

use crate::entry::{
    Aarch32Exception, Aarch64Exception, CpuFeatures, Entry, GuestContext, enter_mode_aarch32,
    take_exception_aarch64,
};
use moat_arm::addr::Va;
use moat_arm::esr::{
    AccessSize, AsyncErrorType, DataAbortIss, Esr, ExceptionClass, FpAccessIss, InstrAbortIss,
    SErrorIss, SyncErrorType, Syndrome,
};
use moat_arm::fsc::{Fsc, Level};
use moat_arm::fsr32::{Fault32, Fsr32, Fsr32Format};
use moat_arm::par::{par_el1_stage1_fault, par32_stage1_fault};
use moat_arm::pstate::{Spsr64, is_aarch32};
use moat_arm::sysreg::vsesr_el2;
use moat_arm::vector::VectorKind;

/// What the faulting access was, as `ESR_EL2` reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AbortAccess {
    /// A data access: `WnR` and `CM` are copied into the injected syndrome.
    Data {
        /// `WnR`: a write (also 1 for cache maintenance and `AT`).
        wnr: bool,
        /// `CM`: a cache maintenance or address translation instruction.
        cm: bool,
    },
    /// An instruction fetch.
    Instruction,
}

impl AbortAccess {
    /// The access of a guest abort with syndrome `esr_el2`, or `None` when it is not an
    /// instruction or data abort.
    #[must_use]
    pub fn from_esr_el2(esr_el2: Esr) -> Option<Self> {
        match esr_el2.ec() {
            ExceptionClass::DataAbortLower | ExceptionClass::DataAbortSame => {
                let iss = DataAbortIss::decode(esr_el2.iss());
                Some(Self::Data {
                    wnr: iss.wnr,
                    cm: iss.cm,
                })
            }
            ExceptionClass::InstrAbortLower | ExceptionClass::InstrAbortSame => {
                Some(Self::Instruction)
            }
            _ => None,
        }
    }
}

/// Why the access aborts (SPEC.md §2's outcomes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AbortCause {
    /// Synchronous external abort, not on a walk (`0x10`).
    External,
    /// Synchronous external abort on the stage-1 walk, at the level of the descriptor read.
    ExternalOnWalk {
        /// The lookup level.
        level: Level,
    },
    /// Address size fault at `level` (0 for a `TTBRn` or an MMU-off access); a
    /// short-descriptor AArch32 guest has no encoding and gets `External` instead.
    AddressSize {
        /// The lookup level.
        level: Level,
    },
    /// Alignment fault (0x21), checked at stage 1 before any stage-2 fault. For an
    /// instruction fetch this is the PC alignment fault: `AArch64.PCAlignmentFault()` (EC 0x22,
    /// ISS 0), AArch32 `AArch32.CheckPCAlignment()` (a prefetch abort, `IFSR` alignment fault).
    Alignment,
}

impl AbortCause {
    /// The AArch64 (and LPAE) fault status code.
    const fn fsc(self) -> Fsc {
        match self {
            Self::External => Fsc::SyncExternal,
            Self::ExternalOnWalk { level } => Fsc::SyncExternalOnWalk { level },
            Self::AddressSize { level } => Fsc::AddressSize { level },
            Self::Alignment => Fsc::Alignment,
        }
    }

    /// The AArch32 fault in `format`, falling back to an external abort where the format
    /// cannot express the cause (address size faults and unencodable levels in the short
    /// format, levels outside 1..=3 of a walk in LPAE).
    fn fault32(self, format: Fsr32Format) -> Fault32 {
        let fault = match self {
            Self::External => Fault32::SyncExternal,
            Self::ExternalOnWalk { level } => Fault32::SyncExternalOnWalk { level },
            Self::AddressSize { level } => Fault32::AddressSize { level },
            Self::Alignment => Fault32::Alignment,
        };
        match fault.code(format) {
            Some(_) => fault,
            None => Fault32::SyncExternal,
        }
    }
}

/// An abort to inject: the access, the cause and the faulting virtual address (`FAR_EL2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Abort {
    /// Data or instruction, with `WnR`/`CM`.
    pub access: AbortAccess,
    /// The fault.
    pub cause: AbortCause,
    /// The faulting virtual address, reported in `FAR_EL1` (`DFAR`/`IFAR`).
    pub va: Va,
}

/// Injects `abort` into the guest whose trap state is `ctx`.
#[must_use]
#[inline]
pub fn inject_abort(ctx: &GuestContext, abort: &Abort) -> Entry {
    if ctx.features.el1_aarch32 {
        Entry::Aarch32(enter_mode_aarch32(ctx, &aarch32_abort(ctx, abort)))
    } else {
        let exception = Aarch64Exception {
            kind: VectorKind::Synchronous,
            esr: aarch64_abort_syndrome(ctx.spsr_el2, abort),
            far: Some(abort.va.raw()),
        };
        Entry::Aarch64(take_exception_aarch64(ctx, &exception))
    }
}

/// Injects an undefined instruction exception (AArch64: `EC` 0x00, `IL` = 1).
#[must_use]
pub fn inject_undefined(ctx: &GuestContext) -> Entry {
    if ctx.features.el1_aarch32 {
        return Entry::Aarch32(enter_mode_aarch32(ctx, &Aarch32Exception::Undefined));
    }
    let exception = Aarch64Exception {
        kind: VectorKind::Synchronous,
        esr: Syndrome::Unknown.to_esr(true),
        far: None,
    };
    Entry::Aarch64(take_exception_aarch64(ctx, &exception))
}

/// Reflects a SIMD/FP access trap (`EC` 0x07) that reached EL2 through `CPTR_EL2.TFP` into
/// the guest's EL1, as the guest's own `CPACR_EL1.FPEN` would have taken it there
/// (`AArch64.AdvSIMDFPAccessTrap(EL1)`): the same `ISS` and `IL`, `FAR_EL1` unchanged. An AArch32
/// EL1 takes the Undefined Instruction exception instead (AArch32 `CPACR.cp10/cp11` traps are
/// UNDEFINED), though Moat never traps FP for an AArch32 guest.
#[must_use]
pub fn inject_fp_access(ctx: &GuestContext, iss: FpAccessIss, il: bool) -> Entry {
    if ctx.features.el1_aarch32 {
        return Entry::Aarch32(enter_mode_aarch32(ctx, &Aarch32Exception::Undefined));
    }
    let exception = Aarch64Exception {
        kind: VectorKind::Synchronous,
        esr: Syndrome::FpAccess(iss).to_esr(il),
        far: None,
    };
    Entry::Aarch64(take_exception_aarch64(ctx, &exception))
}

/// Whether the exception comes from EL0 (a lower EL than the target EL1).
fn from_el0(spsr_el2: u64) -> bool {
    is_aarch32(spsr_el2) || Spsr64::new(spsr_el2).el() == 0
}

/// The AArch64 abort syndrome (SPEC.md §3): `EC` 0x20/0x24 from EL0, 0x21/0x25 from EL1;
/// `IL` = 1; `ISV` = 0; `WnR`, `CM` from the access; `S1PTW`, `EA`, `SET`, `FnV` = 0;
/// `ESR_EL1[63:32]` = 0.
fn aarch64_abort_syndrome(spsr_el2: u64, abort: &Abort) -> Esr {
    let lower = from_el0(spsr_el2);
    let fsc = abort.cause.fsc();
    // Each class's ISS encoded alone, straight into the ESR (no `Syndrome` built and matched
    // again: this runs on every injected abort).
    let (class, iss) = match abort.access {
        AbortAccess::Data { wnr, cm } => {
            let iss = DataAbortIss {
                wnr,
                cm,
                ..data_abort_iss(fsc)
            };
            let class = if lower {
                ExceptionClass::DataAbortLower
            } else {
                ExceptionClass::DataAbortSame
            };
            (class, iss.encode())
        }
        // `AArch64.PCAlignmentFault()`: `ExceptionSyndrome(Exception_PCAlignment)`, no ISS.
        AbortAccess::Instruction if abort.cause == AbortCause::Alignment => {
            (ExceptionClass::PcAlignment, 0)
        }
        AbortAccess::Instruction => {
            let iss = InstrAbortIss {
                toplevel: false,
                pfv: false,
                set: SyncErrorType::Recoverable,
                fnv: false,
                ea: false,
                s1ptw: false,
                ifsc: fsc,
            };
            let class = if lower {
                ExceptionClass::InstrAbortLower
            } else {
                ExceptionClass::InstrAbortSame
            };
            (class, iss.encode())
        }
    };
    Esr::from_parts(class, true, iss)
}

/// A data abort ISS with no instruction syndrome and every optional field 0.
const fn data_abort_iss(dfsc: Fsc) -> DataAbortIss {
    DataAbortIss {
        isv: false,
        sas: AccessSize::Byte,
        sse: false,
        srt: 0,
        sf: false,
        ar: false,
        vncr: false,
        set: SyncErrorType::Recoverable,
        fnv: false,
        ea: false,
        cm: false,
        s1ptw: false,
        wnr: false,
        dfsc,
    }
}

/// The AArch32 abort (SPEC.md §3): `DFSR`/`IFSR` in the format of `TTBCR.EAE`, `WnR`/`CM`
/// from the access, `ExT` = 0, the 32-bit VA in `DFAR`/`IFAR`.
fn aarch32_abort(ctx: &GuestContext, abort: &Abort) -> Aarch32Exception {
    let format = Fsr32Format::from_ttbcr(ctx.tcr_el1);
    let fsr = Fsr32::new(format, abort.cause.fault32(format));
    let va = abort.va.raw() as u32;
    match abort.access {
        AbortAccess::Data { wnr, cm } => {
            let dfsr = Fsr32 { wnr, cm, ..fsr }.encode().unwrap_or_default();
            Aarch32Exception::DataAbort { dfsr, dfar: va }
        }
        AbortAccess::Instruction => {
            let ifsr = fsr.encode().unwrap_or_default();
            Aarch32Exception::PrefetchAbort { ifsr, ifar: va }
        }
    }
}

/// A virtual SError to pend: set `HCR_EL2.VSE` and, where the CPU has FEAT_RAS, write
/// `VSESR_EL2`. The hardware takes it when `PSTATE.A` allows; Moat never enters it by software.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VirtualSError {
    /// `HCR_EL2.VSE` = 1 (always).
    pub hcr_el2_vse: bool,
    /// The value for `VSESR_EL2`, or `None` without FEAT_RAS (the guest then sees an
    /// IMPLEMENTATION DEFINED syndrome).
    pub vsesr_el2: Option<u64>,
}

/// Pends a virtual SError whose AArch64 syndrome would be `iss` (for an AArch32 EL1, its
/// `AET` and `EA` become `DFSR.AET`/`ExT`).
#[must_use]
pub fn pend_virtual_serror(features: &CpuFeatures, iss: SErrorIss) -> VirtualSError {
    let vsesr = if features.el1_aarch32 {
        let aet = vsesr_el2::AET.insert(0, aet32(iss.aet));
        vsesr_el2::EXT.with_flag(aet, iss.ea)
    } else {
        let ids = vsesr_el2::IDS.with_flag(0, iss.ids);
        vsesr_el2::ISS.insert(ids, u64::from(iss.encode()))
    };
    VirtualSError {
        hcr_el2_vse: true,
        vsesr_el2: features.has_ras.then_some(vsesr),
    }
}

/// The AArch32 `DFSR.AET` encoding of an AArch64 `AET` (no AArch32 encoding for CE or the
/// reserved values: reported as UC, the most severe).
const fn aet32(aet: AsyncErrorType) -> u64 {
    match aet {
        AsyncErrorType::Unrecoverable => 0b01,
        AsyncErrorType::Restartable => 0b10,
        AsyncErrorType::Recoverable => 0b11,
        _ => 0b00,
    }
}

/// The `PAR_EL1` value for an `AT` whose stage-1 walk Moat resolves to `cause` (SPEC.md §2:
/// the `AT` completes with `F` = 1; only an external abort on its walk is a data abort instead,
/// injected with `inject_abort` and `AbortAccess::Data { wnr: true, cm: true }`).
///
/// For an AArch32 EL1 the format follows `TTBCR.EAE`; a short-descriptor `PAR` has no address
/// size or plain external abort code and reports an external abort on the walk at level 1 or 2.
#[must_use]
pub fn at_fault_par(ctx: &GuestContext, cause: AbortCause) -> u64 {
    if !ctx.features.el1_aarch32 {
        return par_el1_stage1_fault(cause.fsc());
    }
    let format = Fsr32Format::from_ttbcr(ctx.tcr_el1);
    let fault = match (format, cause) {
        (
            Fsr32Format::Short,
            AbortCause::AddressSize { level } | AbortCause::ExternalOnWalk { level },
        ) => Fault32::SyncExternalOnWalk {
            level: short_walk_level(level),
        },
        (Fsr32Format::Short, AbortCause::Alignment) => Fault32::Alignment,
        (Fsr32Format::Short, AbortCause::External) => {
            Fault32::SyncExternalOnWalk { level: Level::L1 }
        }
        (Fsr32Format::Lpae, cause) => cause.fault32(format),
    };
    par32_stage1_fault(fault, format).unwrap_or_default()
}

/// A short-descriptor walk has levels 1 and 2 only.
const fn short_walk_level(level: Level) -> Level {
    match level {
        Level::L2 | Level::L3 => Level::L2,
        _ => Level::L1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Aarch32Entry, Aarch64Entry};
    use moat_arm::esr::SERROR_DFSC_ASYNC;
    use moat_arm::sysreg::ttbcr;

    const VA: Va = Va(0xFFFF_0000_DEAD_BEE8);
    const PC: u64 = 0x4008_0000;
    const VBAR: u64 = 0x4010_0000;
    const EL0_A64: u64 = 0x0;
    const EL0_A32: u64 = 0x10;
    const EL1H: u64 = 0x3C5;
    const LOAD: AbortAccess = AbortAccess::Data {
        wnr: false,
        cm: false,
    };
    const STORE: AbortAccess = AbortAccess::Data {
        wnr: true,
        cm: false,
    };
    const AT_OR_CMO: AbortAccess = AbortAccess::Data {
        wnr: true,
        cm: true,
    };

    fn ctx(spsr_el2: u64, features: CpuFeatures) -> GuestContext {
        GuestContext {
            pc: PC,
            spsr_el2,
            vbar_el1: VBAR,
            features,
            ..Default::default()
        }
    }

    fn a64(entry: Entry) -> Aarch64Entry {
        match entry {
            Entry::Aarch64(e) => e,
            Entry::Aarch32(e) => panic!("AArch32 entry {e:?}"),
        }
    }

    fn a32(entry: Entry) -> Aarch32Entry {
        match entry {
            Entry::Aarch32(e) => e,
            Entry::Aarch64(e) => panic!("AArch64 entry {e:?}"),
        }
    }

    fn abort(access: AbortAccess, cause: AbortCause) -> Abort {
        Abort {
            access,
            cause,
            va: VA,
        }
    }

    #[test]
    fn aarch64_abort_syndromes_match_the_arm_arm_for_each_source_access_and_cause() {
        let walk2 = AbortCause::ExternalOnWalk { level: Level::L2 };
        let walk_m1 = AbortCause::ExternalOnWalk {
            level: Level::Minus1,
        };
        let asf1 = AbortCause::AddressSize { level: Level::L1 };
        let asf_m1 = AbortCause::AddressSize {
            level: Level::Minus1,
        };
        // (source SPSR, access, cause, ESR_EL1, vector offset)
        let table = [
            (EL1H, STORE, AbortCause::External, 0x9600_0050, 0x200),
            (EL1H, LOAD, AbortCause::External, 0x9600_0010, 0x200),
            (EL0_A64, LOAD, AbortCause::External, 0x9200_0010, 0x400),
            (EL0_A32, STORE, AbortCause::External, 0x9200_0050, 0x600),
            (
                EL1H,
                AbortAccess::Instruction,
                AbortCause::External,
                0x8600_0010,
                0x200,
            ),
            (
                EL0_A64,
                AbortAccess::Instruction,
                AbortCause::External,
                0x8200_0010,
                0x400,
            ),
            (EL1H, LOAD, asf1, 0x9600_0001, 0x200),
            (EL1H, LOAD, asf_m1, 0x9600_0029, 0x200),
            (EL0_A64, AbortAccess::Instruction, asf1, 0x8200_0001, 0x400),
            (EL1H, LOAD, walk2, 0x9600_0016, 0x200),
            (EL1H, LOAD, walk_m1, 0x9600_0013, 0x200),
            (EL1H, AT_OR_CMO, walk2, 0x9600_0156, 0x200),
            (EL1H, LOAD, AbortCause::Alignment, 0x9600_0021, 0x200),
            (EL0_A64, STORE, AbortCause::Alignment, 0x9200_0061, 0x400),
        ];
        for (spsr, access, cause, esr, vector) in table {
            let entry = a64(inject_abort(
                &ctx(spsr, CpuFeatures::default()),
                &abort(access, cause),
            ));
            assert_eq!(entry.esr_el1, esr, "{spsr:#x} {access:?} {cause:?}");
            assert_eq!(
                entry.elr_el2,
                VBAR + vector,
                "{spsr:#x} {access:?} {cause:?}"
            );
        }
    }

    #[test]
    fn pc_alignment_fault_is_ec_0x22_with_il_and_no_iss_from_el0_and_el1() {
        let pc_alignment = abort(AbortAccess::Instruction, AbortCause::Alignment);
        for (spsr, vector) in [(EL1H, 0x200), (EL0_A64, 0x400), (EL0_A32, 0x600)] {
            let entry = a64(inject_abort(
                &ctx(spsr, CpuFeatures::default()),
                &pc_alignment,
            ));
            assert_eq!(entry.esr_el1, 0x8a00_0000, "{spsr:#x}");
            assert_eq!(entry.far_el1, Some(VA.raw()), "FAR = the misaligned PC");
            assert_eq!(entry.elr_el1, PC);
            assert_eq!(entry.elr_el2, VBAR + vector);
        }
    }

    #[test]
    fn aarch32_pc_alignment_is_a_prefetch_abort_with_ifsr_alignment_fault() {
        let pc_alignment = abort(AbortAccess::Instruction, AbortCause::Alignment);
        let short = a32(inject_abort(&aarch32_ctx(false), &pc_alignment));
        assert_eq!((short.dfsr, short.ifsr), (None, Some(0b00001)));
        let lpae = a32(inject_abort(&aarch32_ctx(true), &pc_alignment));
        assert_eq!((lpae.dfsr, lpae.ifsr), (None, Some(0x221)));
        assert_eq!(lpae.elr_el2, VBAR + 0x0C, "prefetch abort vector");
        let data = a32(inject_abort(
            &aarch32_ctx(false),
            &abort(STORE, AbortCause::Alignment),
        ));
        assert_eq!(data.dfsr, Some(0x801), "WnR, FS 0b00001");
    }

    #[test]
    fn aarch64_abort_reports_the_faulting_va_and_returns_to_the_faulting_pc() {
        let entry = a64(inject_abort(
            &ctx(EL1H, CpuFeatures::default()),
            &abort(LOAD, AbortCause::External),
        ));
        assert_eq!(entry.far_el1, Some(VA.raw()));
        assert_eq!(entry.elr_el1, PC, "not advanced");
        assert_eq!(entry.esr_el1 >> 32, 0, "ESR_EL1[63:32] is RES0");
    }

    #[test]
    fn injection_replaces_the_pc_with_the_vector() {
        let entry = inject_abort(
            &ctx(EL1H, CpuFeatures::default()),
            &abort(STORE, AbortCause::External),
        );
        assert_eq!(entry.new_pc(), VBAR + 0x200);
        assert_ne!(entry.new_pc(), PC + 4);
    }

    #[test]
    fn wnr_and_cm_are_copied_from_esr_el2() {
        // A stage-2 fault on a DC CIVAC (CM=1, WnR=1) and on a load with a valid syndrome.
        let cmo = Esr::new(0x9200_0146);
        let load = Esr::new(0x9383_0006);
        assert_eq!(AbortAccess::from_esr_el2(cmo), Some(AT_OR_CMO));
        assert_eq!(AbortAccess::from_esr_el2(load), Some(LOAD));
        assert_eq!(
            AbortAccess::from_esr_el2(Esr::new(0x8200_0006)),
            Some(AbortAccess::Instruction)
        );
        assert_eq!(AbortAccess::from_esr_el2(Esr::new(0x5A00_0000)), None);
    }

    #[test]
    fn aarch64_undefined_is_ec_0_with_il_and_far_unchanged() {
        for (spsr, vector) in [(EL1H, 0x200), (EL0_A64, 0x400), (EL0_A32, 0x600)] {
            let entry = a64(inject_undefined(&ctx(spsr, CpuFeatures::default())));
            assert_eq!(entry.esr_el1, 0x0200_0000);
            assert_eq!(entry.far_el1, None);
            assert_eq!(entry.elr_el2, VBAR + vector);
        }
    }

    #[test]
    fn a_reflected_fp_access_trap_keeps_ec_7_and_its_iss_on_the_guests_vector() {
        // QEMU's EL1 FP trap from AArch64: CV = 1, COND = 0xE (ESR 0x1fe00000).
        let iss = FpAccessIss::decode(0x01E0_0000);
        for (spsr, vector) in [(EL1H, 0x200), (EL0_A64, 0x400)] {
            let entry = a64(inject_fp_access(
                &ctx(spsr, CpuFeatures::default()),
                iss,
                true,
            ));
            assert_eq!(entry.esr_el1, 0x1FE0_0000);
            assert_eq!(entry.far_el1, None);
            assert_eq!(entry.elr_el2, VBAR + vector);
        }
    }

    fn aarch32_ctx(lpae: bool) -> GuestContext {
        let features = CpuFeatures {
            el1_aarch32: true,
            ..Default::default()
        };
        let mut c = ctx(0x10, features);
        c.tcr_el1 = ttbcr::EAE.with_flag(0, lpae);
        c
    }

    #[test]
    fn aarch32_fault_status_follows_ttbcr_eae() {
        let asf1 = AbortCause::AddressSize { level: Level::L1 };
        let walk1 = AbortCause::ExternalOnWalk { level: Level::L1 };
        let walk2 = AbortCause::ExternalOnWalk { level: Level::L2 };
        // (LPAE, access, cause, DFSR, IFSR)
        let table = [
            (true, STORE, AbortCause::External, Some(0xA10), None),
            (true, LOAD, asf1, Some(0x201), None),
            (true, LOAD, walk2, Some(0x216), None),
            (true, AbortAccess::Instruction, asf1, None, Some(0x201)),
            (true, AT_OR_CMO, walk1, Some(0x2A15), None),
            (false, STORE, AbortCause::External, Some(0x808), None),
            (false, LOAD, asf1, Some(0x008), None),
            (false, LOAD, walk1, Some(0x00C), None),
            (false, LOAD, walk2, Some(0x00E), None),
            (
                false,
                AbortAccess::Instruction,
                AbortCause::External,
                None,
                Some(0x008),
            ),
        ];
        for (lpae, access, cause, dfsr, ifsr) in table {
            let entry = a32(inject_abort(&aarch32_ctx(lpae), &abort(access, cause)));
            assert_eq!(
                (entry.dfsr, entry.ifsr),
                (dfsr, ifsr),
                "LPAE {lpae} {access:?} {cause:?}"
            );
        }
    }

    #[test]
    fn aarch32_abort_reports_the_low_32_bits_of_the_va() {
        let entry = a32(inject_abort(
            &aarch32_ctx(true),
            &abort(LOAD, AbortCause::External),
        ));
        assert_eq!(entry.far_el1, Some(0xDEAD_BEE8));
        assert_eq!(entry.lr, PC + 8);
    }

    #[test]
    fn aarch32_undefined_enters_undefined_mode() {
        let entry = a32(inject_undefined(&aarch32_ctx(false)));
        assert_eq!(entry.target.lr_x(), 22);
        assert_eq!(entry.elr_el2, VBAR + 0x04);
    }

    #[test]
    fn virtual_serror_sets_vse_and_vsesr_only_with_ras() {
        let iss = SErrorIss::decode(u32::from(SERROR_DFSC_ASYNC));
        let ras = CpuFeatures {
            has_ras: true,
            ..Default::default()
        };
        let pending = pend_virtual_serror(&ras, iss);
        assert!(pending.hcr_el2_vse);
        assert_eq!(pending.vsesr_el2, Some(0x11));
        assert_eq!(
            pend_virtual_serror(&CpuFeatures::default(), iss).vsesr_el2,
            None
        );
    }

    #[test]
    fn aarch32_virtual_serror_puts_aet_in_bits_15_14_and_ea_in_ext() {
        let features = CpuFeatures {
            has_ras: true,
            el1_aarch32: true,
            ..Default::default()
        };
        let iss = SErrorIss {
            aet: AsyncErrorType::Recoverable,
            ea: true,
            ..SErrorIss::decode(0x11)
        };
        assert_eq!(pend_virtual_serror(&features, iss).vsesr_el2, Some(0xD000));
    }

    #[test]
    fn at_fault_writes_par_with_f_and_the_fault_for_each_format() {
        let asf1 = AbortCause::AddressSize { level: Level::L1 };
        let asf2 = AbortCause::AddressSize { level: Level::L2 };
        assert_eq!(
            at_fault_par(&ctx(EL1H, CpuFeatures::default()), asf1),
            0x803
        );
        let lpae = AbortCause::AddressSize { level: Level::L0 };
        assert_eq!(at_fault_par(&aarch32_ctx(true), lpae), 0x801);
        assert_eq!(at_fault_par(&aarch32_ctx(false), asf2), (0b01110 << 1) | 1);
    }

    fn level() -> impl proptest::strategy::Strategy<Value = Level> {
        proptest::sample::select(Level::ALL)
    }

    fn cause() -> impl proptest::strategy::Strategy<Value = AbortCause> {
        use proptest::prelude::*;
        prop_oneof![
            Just(AbortCause::External),
            level().prop_map(|level| AbortCause::ExternalOnWalk { level }),
            level().prop_map(|level| AbortCause::AddressSize { level }),
            Just(AbortCause::Alignment),
        ]
    }

    proptest::proptest! {
        #[test]
        fn any_injection_into_any_state_lands_on_a_vector_without_panicking(
            regs in proptest::array::uniform6(proptest::prelude::any::<u64>()),
            flags in proptest::array::uniform4(proptest::prelude::any::<bool>()),
            cause in cause(),
        ) {
            let features = CpuFeatures { el1_aarch32: flags[0], has_ras: flags[1], ..Default::default() };
            let ctx = GuestContext {
                pc: regs[0], spsr_el2: regs[1], sctlr_el1: regs[2], vbar_el1: regs[3],
                tcr_el1: regs[4], far_el1: regs[5], features,
            };
            let access = if flags[2] { AbortAccess::Instruction } else { AbortAccess::Data { wnr: flags[3], cm: false } };
            let entry = inject_abort(&ctx, &Abort { access, cause, va: Va(regs[5]) });
            let undef = inject_undefined(&ctx);
            let _ = at_fault_par(&ctx, cause);
            if features.el1_aarch32 {
                proptest::prop_assert!(matches!(entry, Entry::Aarch32(_)));
                proptest::prop_assert_eq!(entry.new_pc() & 0x1F, if flags[2] { 0x0C } else { 0x10 });
                proptest::prop_assert_eq!(undef.new_pc() & 0x1F, 0x04);
            } else {
                let Entry::Aarch64(e) = entry else { panic!("AArch64 EL1 entered as AArch32") };
                proptest::prop_assert_eq!(e.esr_el1 >> 32, 0);
                proptest::prop_assert!(Esr::new(e.esr_el1).il());
                proptest::prop_assert_eq!(entry.new_pc() & 0x7F, 0);
            }
        }
    }
}
