//! Aborts whose architectural answer comes before any stage-2 fault (issue 10, failures 3–5):
//! what the guest must see for an access Moat's stage 2 has nothing behind, or a device window.
//!
//! - A misaligned load or store with the MMU off is an access to Device-nGnRnE memory, which
//!   takes an Alignment fault at stage 1 (`AArch64.S1DisabledOutput()`,
//!   `AArch64.S1HasAlignmentFault()`: DFSC 0b100001), whether a device or nothing lies behind it.
//!   The runtime sets `SCTLR_EL1.A` (which QEMU checks before any translation); these tests clear
//!   it, so that only the memory type decides.
//! - A branch to a misaligned address is a PC alignment fault (`AArch64.PCAlignmentFault()`:
//!   EC 0x22, `FAR_EL1` = `ELR_EL1` = the misaligned PC), checked before the fetch, so a hole or
//!   a device behind the address does not matter.
//! - Data-cache maintenance by VA (every `DC` by VA but `DC ZVA`) of an address with nothing
//!   behind it, or of a device window, completes without an exception (SPEC §2), `DC CVAP` and
//!   `DC CVADP` included (QEMU reports their stage-2 faults with `CM` = 0).

use core::arch::asm;

use moat_guest_rt::exception::with_exception_hook;
use moat_guest_rt::{
    ExceptionFrame, ExceptionLog, ExceptionRecord, Resume, TestResult, VectorOffset, boot,
    check_eq, println, sysreg,
};

/// `ESR_EL1.EC` of a PC alignment fault.
const EC_PC_ALIGNMENT: u8 = 0x22;
/// `ESR_EL1.EC` of a data abort from the current EL.
const EC_DABT_CUR: u8 = 0x25;
/// `DFSC` of an Alignment fault.
const DFSC_ALIGNMENT: u32 = 0b10_0001;
/// `ESR_EL1.ISS.WnR`.
const ISS_WNR: u32 = 1 << 6;
/// `SCTLR_EL1.A`.
const SCTLR_A: u64 = 1 << 1;

/// An address with nothing behind it, in the VM and on bare `virt`: 1 GiB above the start of
/// RAM, beyond the RAM the tests run with (at most 512 MiB) and below every `2^S`.
fn hole() -> Result<u64, &'static str> {
    let ram = boot::info().ram.ok_or("no RAM in the device tree")?;
    let hole = ram.base as u64 + (1 << 30);
    if (ram.end() as u64) > hole {
        return Err("RAM reaches the hole at RAM base + 1 GiB");
    }
    Ok(hole)
}

/// The PL011's base: an emulated device window under Moat.
fn uart() -> Result<u64, &'static str> {
    boot::info()
        .uart
        .map(|u| u as u64)
        .ok_or("no UART in the device tree")
}

/// Runs `body` with `SCTLR_EL1.A` clear: only the memory type decides alignment.
fn without_strict_alignment<R>(body: impl FnOnce() -> R) -> R {
    let sctlr = sysreg::sctlr_el1();
    write_sctlr(sctlr & !SCTLR_A);
    let result = body();
    write_sctlr(sctlr);
    result
}

fn write_sctlr(value: u64) {
    // SAFETY: only `SCTLR_EL1.A` changes (the caller passes the register's own value with that
    // bit set or clear); the MMU, caches and endianness stay as they are, and the ISB makes
    // the change take effect before the next access. No memory is touched.
    unsafe { asm!("msr sctlr_el1, {0}", "isb", in(reg) value, options(nostack)) };
}

/// Claims a data abort and resumes after the instruction.
fn skip_data_abort(record: &ExceptionRecord, frame: &mut ExceptionFrame) -> Resume {
    if record.ec() != EC_DABT_CUR {
        return Resume::No;
    }
    frame.skip_instruction();
    Resume::Yes
}

/// Claims a PC alignment fault and resumes at the link register the branch left (`BLR`).
fn return_from_pc_alignment(record: &ExceptionRecord, frame: &mut ExceptionFrame) -> Resume {
    if record.ec() != EC_PC_ALIGNMENT {
        return Resume::No;
    }
    frame.elr = frame.x[30];
    Resume::Yes
}

/// Checks the one exception in `log`: at the current-EL/SP_ELx synchronous vector, with
/// `ESR_EL1` = `esr`, `FAR_EL1` = `far` and `ELR_EL1` = `elr`.
fn check_one(log: ExceptionLog, esr: u64, far: u64, elr: u64) -> TestResult {
    check_eq!(log.count, 1, "not exactly one exception was taken")?;
    let record = log.first.ok_or("no exception was recorded")?;
    println!(
        "  ESR_EL1={:#x} FAR_EL1={:#x} ELR_EL1={:#x}",
        record.esr, record.far, record.elr
    );
    check_eq!(
        record.vector.0,
        VectorOffset::CURRENT_SPX_SYNC.0,
        "wrong vector (want 0x200)"
    )?;
    check_eq!(record.esr, esr, "wrong ESR_EL1")?;
    check_eq!(record.far, far, "wrong FAR_EL1")?;
    check_eq!(record.elr, elr, "wrong ELR_EL1")
}

/// `ESR_EL1` of an Alignment fault on a data access from EL1 (`IL` = 1, `ISV` = 0).
const fn alignment_esr(write: bool) -> u64 {
    let wnr = if write { ISS_WNR } else { 0 };
    ((EC_DABT_CUR as u64) << 26) | (1 << 25) | (wnr | DFSC_ALIGNMENT) as u64
}

/// `LDR W0, [address]`; returns the instruction's address.
fn load_word(address: u64) -> u64 {
    let pc: u64;
    // SAFETY: the load faults (the hook resumes after it) or reads a device register; either
    // way only X0 (declared clobbered) and the declared output change, and no Rust object is
    // at `address`.
    unsafe {
        asm!("adr {pc}, 2f", "2: ldr w0, [{a}]", pc = out(reg) pc, a = in(reg) address,
             out("x0") _, options(nostack))
    };
    pc
}

/// `STR WZR, [address]`; returns the instruction's address.
fn store_word(address: u64) -> u64 {
    let pc: u64;
    // SAFETY: as `load_word`: the store faults or reaches a device; no Rust object is at
    // `address`.
    unsafe {
        asm!("adr {pc}, 2f", "2: str wzr, [{a}]", pc = out(reg) pc, a = in(reg) address,
             options(nostack))
    };
    pc
}

/// `LDP X0, X1, [address]`; returns the instruction's address.
fn load_pair(address: u64) -> u64 {
    let pc: u64;
    // SAFETY: as `load_word`; X0 and X1 are declared clobbered.
    unsafe {
        asm!("adr {pc}, 2f", "2: ldp x0, x1, [{a}]", pc = out(reg) pc, a = in(reg) address,
             out("x0") _, out("x1") _, options(nostack))
    };
    pc
}

/// A misaligned `LDR` from the PL011 (an emulated device window) with the MMU off is an
/// Alignment fault: `ESR_EL1` 0x96000021, `FAR_EL1` the address, `ELR_EL1` the load.
pub fn misaligned_load_from_a_device_is_an_alignment_fault() -> TestResult {
    let address = uart()? + 2;
    let (pc, log) = with_exception_hook(skip_data_abort, || {
        without_strict_alignment(|| load_word(address))
    });
    check_one(log, alignment_esr(false), address, pc)
}

/// A misaligned `STR` and `LDP` to a hole with the MMU off are Alignment faults (with `WnR` for
/// the store), not external aborts: the stage-1 check comes before the bus.
pub fn misaligned_access_to_a_hole_is_an_alignment_fault() -> TestResult {
    let address = hole()? + 4;
    let (pc, log) = with_exception_hook(skip_data_abort, || {
        without_strict_alignment(|| store_word(address + 1))
    });
    check_one(log, alignment_esr(true), address + 1, pc)?;
    // LDP of doublewords checks each doubleword: 4-aligned is misaligned.
    let (pc, log) = with_exception_hook(skip_data_abort, || {
        without_strict_alignment(|| load_pair(address))
    });
    check_one(log, alignment_esr(false), address, pc)
}

/// `BLR` to `target`; returns the address after the `BLR` (where the hook resumes).
fn branch_to(target: u64) -> u64 {
    let after: u64;
    // SAFETY: the branch's target faults with a PC alignment fault before any instruction
    // there runs; the hook resumes at X30, the address after the BLR. X30 is declared clobbered.
    unsafe {
        asm!("adr {after}, 2f", "blr {t}", "2:", after = out(reg) after, t = in(reg) target,
             out("x30") _, options(nostack))
    };
    after
}

/// `ESR_EL1` of a PC alignment fault: EC 0x22, `IL` = 1, ISS 0.
const PC_ALIGNMENT_ESR: u64 = ((EC_PC_ALIGNMENT as u64) << 26) | (1 << 25);

/// A branch to a misaligned address in a hole, or in a device window, is a PC alignment fault:
/// `ESR_EL1` 0x8a000000, `FAR_EL1` and `ELR_EL1` the misaligned target.
pub fn branch_to_a_misaligned_address_is_a_pc_alignment_fault() -> TestResult {
    for target in [hole()? + 2, uart()? + 1] {
        println!("BLR to {target:#x}");
        let (_, log) = with_exception_hook(return_from_pc_alignment, || branch_to(target));
        check_one(log, PC_ALIGNMENT_ESR, target, target)?;
    }
    Ok(())
}

/// `DC <op>, X<address>` for each data-cache maintenance by VA this CPU has.
macro_rules! dc_each {
    ($address:expr, $($op:literal),*) => {$(
        // SAFETY: cache maintenance by VA of an address no Rust object occupies (a hole or a
        // device window): no data changes, and no register but the input is involved.
        unsafe { asm!(concat!("sys #3, c7, ", $op, ", #1, {0}"), in(reg) $address, options(nostack)) };
    )*};
}

/// `ID_AA64ISAR1_EL1.DPB`: 1 = `DC CVAP`, 2 = `DC CVADP` as well.
fn dpb() -> u64 {
    let isar1: u64;
    // SAFETY: MRS of an ID register: no memory, stack or flags.
    unsafe { asm!("mrs {0}, s3_0_c0_c6_1", out(reg) isar1, options(nomem, nostack)) };
    isar1 & 0xf
}

/// Data-cache maintenance by VA (`DC CIVAC`, `CVAC`, `CVAU`, and `CVAP`/`CVADP` where
/// `ID_AA64ISAR1_EL1.DPB` says they exist) of a hole and of a device window completes without
/// an exception.
pub fn cache_maintenance_by_va_of_a_hole_or_device_completes() -> TestResult {
    let dpb = dpb();
    println!("ID_AA64ISAR1_EL1.DPB = {dpb}");
    for address in [hole()?, uart()?] {
        let ((), log) = with_exception_hook(skip_data_abort, || {
            dc_each!(address, "c14", "c10", "c11");
            if dpb >= 1 {
                dc_each!(address, "c12");
            }
            if dpb >= 2 {
                dc_each!(address, "c13");
            }
        });
        if let Some(record) = log.first {
            println!(
                "  at {address:#x}: ESR_EL1={:#x} FAR_EL1={:#x}",
                record.esr, record.far
            );
        }
        check_eq!(log.count, 0, "cache maintenance by VA took an exception")?;
    }
    Ok(())
}
