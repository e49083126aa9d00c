//! Facts about the CPU Moat runs on, read from its ID registers.

use aarch64_cpu::registers::{
    CurrentEL, ID_AA64ISAR1_EL1, ID_AA64MMFR0_EL1, ID_AA64MMFR1_EL1, MIDR_EL1, Readable,
};
use moat_stage2::VmidBits;

/// The exception level Moat runs at (`CurrentEL.EL`).
pub fn current_el() -> u64 {
    CurrentEL.read(CurrentEL::EL)
}

/// The CPU's identity as Moat reports it.
pub struct CpuId {
    /// `MIDR_EL1`.
    pub midr: u64,
    /// A name for the part, where Moat knows it.
    pub name: &'static str,
    /// `ID_AA64MMFR0_EL1.PARange`, the raw field.
    pub parange: u8,
    /// The physical address size that field encodes.
    pub pa_bits: u32,
}

/// The VMID width this CPU's stage 2 offers (`ID_AA64MMFR1_EL1.VMIDBits`: 0b0010 is 16 bits).
/// The boot CPU's stands for the machine's, as its PARange does: Moat runs on CPUs of one kind.
pub fn vmid_bits() -> VmidBits {
    // Truncation intended: VMIDBits is a 4-bit field.
    VmidBits::of_cpus(&[ID_AA64MMFR1_EL1.read(ID_AA64MMFR1_EL1::VMIDBits) as u8])
}

/// Reads this CPU's identity.
pub fn identify() -> CpuId {
    let midr = MIDR_EL1.get();
    // Truncation intended: PARange is a 4-bit field.
    let parange = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange) as u8;
    CpuId {
        midr,
        name: part_name(midr),
        parange,
        pa_bits: moat_stage2::geometry::parange_bits(parange).unwrap_or(0),
    }
}

/// `MIDR_EL1.Implementer` and `PartNum` of the cores Moat is tested on.
fn part_name(midr: u64) -> &'static str {
    let implementer = (midr >> 24) & 0xff;
    let part = (midr >> 4) & 0xfff;
    match (implementer, part) {
        (0x41, 0xd03) => "Arm Cortex-A53",
        (0x41, 0xd07) => "Arm Cortex-A57",
        (0x41, 0xd08) => "Arm Cortex-A72",
        (0x41, 0xd0b) => "Arm Cortex-A76",
        (0x41, 0xd0c) => "Arm Neoverse-N1",
        (0x46, 0x001) => "Fujitsu A64FX",
        (0x00, _) => "QEMU 'max' (software-defined implementer)",
        _ => "unknown part",
    }
}

/// Whether the CPU implements pointer authentication (`ID_AA64ISAR1_EL1.APA`/`API`/`GPA`/`GPI`
/// non-zero; FEAT_PACQARMA3 in `ID_AA64ISAR2_EL1` is also reported through `GPI`/`GPA`-style
/// fields there, which QEMU 7.2 does not implement).
pub fn has_pointer_auth() -> bool {
    // APA [7:4], API [11:8], GPA [27:24], GPI [31:28].
    let isar1 = ID_AA64ISAR1_EL1.get();
    isar1 & 0xFF00_0FF0 != 0
}

/// Whether EL1 can run AArch32 (`ID_AA64PFR0_EL1.EL1` = 0b0010). Checked from the ID register,
/// not by writing `HCR_EL2.RW`: QEMU 7.2 lets RW = 0 stick on cores that have no AArch32 EL1
/// (TOOLCHAIN.md), where the Arm ARM makes it RAO/WI.
pub fn el1_supports_aarch32() -> bool {
    use crate::idregs::hardware_value;
    use moat_vcpu::idregs::ID_AA64PFR0_EL1;
    (hardware_value(ID_AA64PFR0_EL1) >> 4) & 0xF == 0b0010
}

/// The features exception entry follows: this CPU's (SPEC §3: an injected exception looks like
/// one the same CPU takes itself).
pub fn features() -> moat_vcpu::entry::CpuFeatures {
    use crate::idregs::hardware_value;
    use moat_vcpu::idregs::IdRegister;
    let read = |crm, op2| hardware_value(IdRegister { crm, op2 });
    let id = moat_vcpu::entry::IdRegisters {
        id_aa64pfr0_el1: read(4, 0),
        id_aa64pfr1_el1: read(4, 1),
        id_aa64mmfr1_el1: read(7, 1),
        id_aa64mmfr2_el1: read(7, 2),
        id_aa64dfr1_el1: read(5, 1),
    };
    moat_vcpu::entry::CpuFeatures::from_id_registers(&id, false)
}

/// Sends an event to every CPU (`SEV`): those waiting in `WFE` for their vCPU to be started
/// look again.
pub fn send_event() {
    // SAFETY: a barrier so the power-state change is visible, then an event; no memory is
    // accessed and no state changes besides the event registers.
    unsafe { core::arch::asm!("dsb ish", "sev", options(nomem, nostack)) };
}

/// Waits `ms` milliseconds by the physical counter (`CNTPCT_EL0` at `CNTFRQ_EL0` ticks a
/// second), e.g. the 100 ms a function needs after a Function Level Reset.
pub fn delay_ms(ms: u64) {
    use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};
    let ticks = CNTFRQ_EL0.get() * ms / 1000;
    let start = CNTPCT_EL0.get();
    while CNTPCT_EL0.get().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}
