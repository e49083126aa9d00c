//! The guest as the trap handlers see it: its EL1 system registers, its memory read by IPA, its
//! stage-1 walk, its instruction at the PC, and its registers for the load/store emulator.
//!
//! Moat runs one vCPU per physical CPU and does not use EL1 itself, so the guest's EL1 system
//! registers are live in the hardware while Moat handles a trap: reading them is an `MRS`.

use crate::ram::Backing;
use aarch64_cpu::registers::{
    ELR_EL1, ESR_EL1, FAR_EL1, ID_AA64MMFR2_EL1, MAIR_EL1, PAR_EL1, Readable, SCTLR_EL1, SP_EL0,
    SP_EL1, SPSR_EL1, TCR_EL1, TTBR0_EL1, TTBR1_EL1, VBAR_EL1, Writeable,
};
use moat_arm::addr::{Ipa, Va};
use moat_arm::parange::PaRange;
use moat_config::GuestArch;
use moat_vcpu::abort::{GuestView, IpaRange};
use moat_vcpu::align::El1Controls;
use moat_vcpu::entry::{Aarch64Entry, CpuFeatures, Entry, GuestContext, SysregWrites};
use moat_vcpu::frame::TrapFrame;
pub use moat_vcpu::insn::memop::Instruction;
use moat_vcpu::s1walk::{
    Access, DescSize, GuestMemory, Stage1Regs, WalkRead, WalkReport, walk_aarch32, walk_aarch64,
};

/// The guest's EL1 registers that abort handling reads.
#[derive(Clone, Copy, Debug)]
pub struct El1Regs {
    /// `SCTLR_EL1`.
    pub sctlr: u64,
    /// `TCR_EL1`.
    pub tcr: u64,
    /// `TTBR0_EL1`.
    pub ttbr0: u64,
    /// `TTBR1_EL1`.
    pub ttbr1: u64,
    /// `VBAR_EL1`.
    pub vbar: u64,
    /// `FAR_EL1`.
    pub far: u64,
    /// `MAIR_EL1` (AArch32: `MAIR0`/`PRRR` and `MAIR1`/`NMRR`).
    pub mair: u64,
}

impl El1Regs {
    /// Reads them from the hardware (they are the guest's while it is trapped).
    pub fn read() -> Self {
        Self {
            sctlr: SCTLR_EL1.get(),
            tcr: TCR_EL1.get(),
            ttbr0: TTBR0_EL1.get(),
            ttbr1: TTBR1_EL1.get(),
            vbar: VBAR_EL1.get(),
            far: FAR_EL1.get(),
            mair: MAIR_EL1.get(),
        }
    }

    /// `SCTLR_EL1.M`: the guest's stage 1 is on.
    pub const fn mmu_on(&self) -> bool {
        self.sctlr & 1 != 0
    }

    fn stage1(&self) -> Stage1Regs {
        Stage1Regs {
            sctlr_el1: self.sctlr,
            tcr_el1: self.tcr,
            ttbr0_el1: self.ttbr0,
            ttbr1_el1: self.ttbr1,
        }
    }

    /// The state exception entry depends on, at the trap in `frame`.
    pub fn context(&self, frame: &TrapFrame, features: CpuFeatures) -> GuestContext {
        GuestContext {
            pc: frame.pc,
            spsr_el2: frame.pstate,
            sctlr_el1: self.sctlr,
            vbar_el1: self.vbar,
            tcr_el1: self.tcr,
            far_el1: self.far,
            features,
        }
    }
}

/// The state exception entry depends on, at the trap in `frame`, read from the hardware: the
/// registers of [`El1Regs::context`] an entry reads (`SCTLR_EL1`, `VBAR_EL1`; `TCR_EL1` and
/// `FAR_EL1` only for an AArch32 EL1, whose fault status format and `DFAR`/`IFAR` halves
/// depend on them).
pub fn entry_context(frame: &TrapFrame, features: CpuFeatures) -> GuestContext {
    let (tcr_el1, far_el1) = if features.el1_aarch32 {
        (TCR_EL1.get(), FAR_EL1.get())
    } else {
        (0, 0)
    };
    GuestContext {
        pc: frame.pc,
        spsr_el2: frame.pstate,
        sctlr_el1: SCTLR_EL1.get(),
        vbar_el1: VBAR_EL1.get(),
        tcr_el1,
        far_el1,
        features,
    }
}

/// Carries out the exception entry `entry` of the guest trapped in `frame`: its new PC and
/// PSTATE in the frame, its EL1 registers written (an AArch64 EL1's four straight from the
/// entry: the most frequent case, every injected abort of an AArch64 guest).
pub fn enter(frame: &mut TrapFrame, entry: &Entry) {
    if let Entry::Aarch64(e) = entry {
        return enter_aarch64(frame, e);
    }
    entry.apply_to_frame(frame);
    write_el1(&entry.sysreg_writes());
}

/// Carries out the exception entry `e` into an AArch64 EL1 of the guest trapped in `frame`.
#[inline]
pub fn enter_aarch64(frame: &mut TrapFrame, e: &Aarch64Entry) {
    frame.pc = e.elr_el2;
    frame.pstate = e.spsr_el2;
    ESR_EL1.set(e.esr_el1);
    if let Some(far) = e.far_el1 {
        FAR_EL1.set(far);
    }
    ELR_EL1.set(e.elr_el1);
    SPSR_EL1.set(e.spsr_el1);
}

/// `MSR` to an AArch32 EL1 register's AArch64 home, which `aarch64-cpu` does not name.
macro_rules! write_aarch32_home {
    ($reg:literal, $value:expr) => {
        // SAFETY: writes a register of the guest's AArch32 EL1 state (`SPSR_abt`, `SPSR_und`,
        // `IFSR32_EL2`); Moat itself never reads them and no memory is accessed.
        unsafe { core::arch::asm!(concat!("msr ", $reg, ", {}"), in(reg) $value, options(nostack)) }
    };
}

/// Performs the EL1 register writes of an exception entry.
fn write_el1(writes: &SysregWrites) {
    if let Some(v) = writes.esr_el1 {
        ESR_EL1.set(v);
    }
    if let Some(v) = writes.far_el1 {
        FAR_EL1.set(v);
    }
    if let Some(v) = writes.elr_el1 {
        ELR_EL1.set(v);
    }
    if let Some(v) = writes.spsr_el1 {
        SPSR_EL1.set(v);
    }
    if let Some(v) = writes.spsr_abt {
        write_aarch32_home!("spsr_abt", v);
    }
    if let Some(v) = writes.spsr_und {
        write_aarch32_home!("spsr_und", v);
    }
    if let Some(v) = writes.ifsr32_el2 {
        write_aarch32_home!("ifsr32_el2", v);
    }
}

/// `SCTLR_EL1` of the trapped guest (its data endianness, for an access Moat completes).
pub fn sctlr_el1() -> u64 {
    SCTLR_EL1.get()
}

/// The guest's `VBAR_EL1`.
pub fn vbar_el1() -> u64 {
    VBAR_EL1.get()
}

/// Writes `PAR_EL1`, the result of a guest `AT` that Moat completed.
pub fn write_par(value: u64) {
    PAR_EL1.set(value);
}

/// The guest's RAM, read by IPA through Moat's identity map of the backing memory.
pub struct GuestRam<'a> {
    /// The VM's RAM regions and their machine memory.
    pub ram: &'a [Backing],
    /// The emulated device windows (walks never read them).
    pub devices: &'a [IpaRange],
}

impl GuestRam<'_> {
    /// Reads `size` bytes (2, 4 or 8, aligned) at `ipa`, little-endian.
    pub fn read(&self, ipa: Ipa, size: u64) -> Option<u64> {
        let pa = self.ram.iter().find_map(|b| b.pa_of(ipa, size))?;
        // SAFETY: `pa_of` checked the whole access lies in this VM's backing memory, which Moat
        // owns and identity-maps; the access is naturally aligned (descriptors and
        // instructions are), so it is a single-copy-atomic load.
        let value = unsafe {
            match size {
                2 => u64::from(core::ptr::read_volatile(pa as *const u16)),
                4 => u64::from(core::ptr::read_volatile(pa as *const u32)),
                8 => core::ptr::read_volatile(pa as *const u64),
                _ => return None,
            }
        };
        Some(value)
    }
}

impl GuestMemory for GuestRam<'_> {
    fn read_descriptor(&self, ipa: Ipa, size: DescSize) -> Result<u64, WalkRead> {
        if self.devices.iter().any(|d| d.offset_of(ipa).is_some()) {
            return Err(WalkRead::DeviceWindow);
        }
        self.read(ipa, size.bytes()).ok_or(WalkRead::OutsideRam)
    }
}

/// Everything the abort decision may ask about the trapped guest.
pub struct TrappedGuest<'a> {
    /// The guest's memory.
    pub mem: GuestRam<'a>,
    /// Its EL1 registers (read once per exit; not copied).
    pub el1: &'a El1Regs,
    /// The PARange it is shown.
    pub parange: PaRange,
    /// The faulting instruction's address (`ELR_EL2`).
    pub pc: u64,
    /// The guest's PSTATE at the fault (`SPSR_EL2`): its T bit says A32 or T32.
    pub pstate: u64,
    /// The fault was an instruction fetch.
    pub fetch: bool,
    /// The guest's EL1 execution state.
    pub arch: GuestArch,
}

/// `SPSR_EL2.T` (bit 5) of an AArch32 PSTATE: T32.
const PSTATE_T: u64 = 1 << 5;

impl TrappedGuest<'_> {
    /// The guest's walk of `va` for an access of kind `access`.
    fn walk_as(&self, va: Va, access: Access) -> WalkReport {
        let regs = self.el1.stage1();
        match self.arch {
            GuestArch::Aarch64 => walk_aarch64(&regs, self.parange, va, access, &self.mem),
            GuestArch::Aarch32 => walk_aarch32(&regs, self.parange, va, &self.mem),
        }
    }

    /// The IPA of `va` for an access of kind `access`: the VA itself with the MMU off.
    fn translate(&self, va: Va, access: Access) -> Option<Ipa> {
        if !self.el1.mmu_on() {
            return Some(Ipa(va.0));
        }
        self.walk_as(va, access).translation().map(|t| t.ipa)
    }

    /// The `bytes`-byte instruction word at `va`, read through the guest's stage 1.
    fn fetch(&self, va: u64, bytes: u64) -> Option<u64> {
        let ipa = self.translate(Va(va), Access::InstructionFetch)?;
        self.mem.read(ipa, bytes)
    }

    /// The instruction at the faulting PC, in the guest's instruction set. Instruction fetches
    /// are little-endian whatever the data endianness (`SCTLR.EE` does not apply to them).
    pub fn instruction(&self) -> Option<Instruction> {
        // Truncations intended: 4- and 2-byte reads.
        match self.arch {
            GuestArch::Aarch64 => self.fetch(self.pc, 4).map(|w| Instruction::A64(w as u32)),
            GuestArch::Aarch32 if self.pstate & PSTATE_T == 0 => {
                self.fetch(self.pc, 4).map(|w| Instruction::A32(w as u32))
            }
            GuestArch::Aarch32 => {
                let hw1 = self.fetch(self.pc, 2)? as u16;
                let hw2 = if moat_vcpu::insn::t32::is_32bit(hw1) {
                    self.fetch(self.pc.wrapping_add(2), 2)? as u16
                } else {
                    0
                };
                Some(Instruction::T32(hw1, hw2))
            }
        }
    }
}

impl GuestView for TrappedGuest<'_> {
    fn walk(&self, va: Va) -> WalkReport {
        let access = if self.fetch {
            Access::InstructionFetch
        } else {
            Access::Data
        };
        self.walk_as(va, access)
    }

    fn instruction(&self) -> Option<Instruction> {
        TrappedGuest::instruction(self)
    }

    fn controls(&self) -> El1Controls {
        El1Controls {
            sctlr: self.el1.sctlr,
            mair: self.el1.mair,
            lse2: cpu_has_lse2(),
        }
    }
}

/// Whether this CPU implements FEAT_LSE2 (`ID_AA64MMFR2_EL1.AT` = 1): how the hardware itself
/// treats misaligned atomics and ordered accesses, whatever the guest is shown.
fn cpu_has_lse2() -> bool {
    ID_AA64MMFR2_EL1.read(ID_AA64MMFR2_EL1::AT) != 0
}

/// The stack pointer an AArch64 guest was using when it trapped: `SP_EL1` in EL1h
/// (`SPSR_EL2.M` = 0b0101), `SP_EL0` otherwise.
pub fn current_sp(pstate: u64) -> u64 {
    if uses_sp_el1(pstate) {
        SP_EL1.get()
    } else {
        SP_EL0.get()
    }
}

/// Sets the stack pointer the trapped AArch64 guest was using (a writeback to SP).
pub fn set_current_sp(pstate: u64, value: u64) {
    if uses_sp_el1(pstate) {
        SP_EL1.set(value);
    } else {
        SP_EL0.set(value);
    }
}

const fn uses_sp_el1(pstate: u64) -> bool {
    pstate & 0b1111 == 0b0101
}
