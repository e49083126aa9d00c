//! The guest's own EL1 vectors take its synchronous exceptions, with the syndrome and return
//! address the Arm ARM gives (`ESR_EL1`, `ELR_EL1`, "Exception vectors"). Under Moat this shows
//! that BRK and SVC from EL1 stay in the guest (they are not trapped to EL2).

use core::arch::asm;

use moat_guest_rt::exception::{ec, with_exception_hook};
use moat_guest_rt::{
    ExceptionFrame, ExceptionLog, ExceptionRecord, Resume, TestResult, VectorOffset, check_eq,
};

/// `SPSR_EL1.M[3:0]` for EL1 using SP_EL1.
const MODE_EL1H: u8 = 0b0101;

/// Claims a BRK and resumes after it (BRK's preferred return address is the BRK itself).
fn skip_brk(record: &ExceptionRecord, frame: &mut ExceptionFrame) -> Resume {
    if record.ec() != ec::BRK64 {
        return Resume::No;
    }
    frame.skip_instruction();
    Resume::Yes
}

/// Claims an SVC (its preferred return address is already the next instruction).
fn resume_svc(record: &ExceptionRecord, _frame: &mut ExceptionFrame) -> Resume {
    if record.ec() == ec::SVC64 {
        Resume::Yes
    } else {
        Resume::No
    }
}

/// Executes `BRK #0x42` and returns its address.
fn brk_0x42() -> u64 {
    let brk_address: u64;
    // SAFETY: BRK raises a Breakpoint exception, which the installed hook claims and resumes
    // after; the hook touches only the saved frame (ELR). No memory or stack of this function is
    // involved, and the vector code restores every register, so the asm's only output is the
    // address it declares.
    unsafe { asm!("adr {0}, 2f", "2: brk #0x42", out(reg) brk_address, options(nostack)) };
    brk_address
}

/// Executes `SVC #0x7` and returns the address of the instruction after it.
fn svc_0x7() -> u64 {
    let next: u64;
    // SAFETY: SVC raises a Supervisor Call exception to EL1, which the installed hook claims;
    // the vector code restores every register and returns after the SVC. The asm touches no
    // memory or stack; its only output is the address it declares.
    unsafe { asm!("adr {0}, 2f", "svc #0x7", "2:", out(reg) next, options(nostack)) };
    next
}

/// Checks that exactly one exception was taken, at the current-EL/SP_ELx synchronous vector
/// (0x200) from EL1h, with `ESR_EL1.{EC,IL,ISS}` and `ELR_EL1` as given.
fn check_one_sync(log: ExceptionLog, ec: u8, iss: u32, elr: u64) -> TestResult {
    check_eq!(log.count, 1, "not exactly one exception was taken")?;
    let record = log.first.ok_or("no exception was recorded")?;
    check_eq!(
        record.vector.0,
        VectorOffset::CURRENT_SPX_SYNC.0,
        "wrong vector (want 0x200)"
    )?;
    check_eq!(record.ec(), ec, "wrong ESR_EL1.EC")?;
    check_eq!(
        record.il(),
        true,
        "ESR_EL1.IL is not 1 (32-bit instruction)"
    )?;
    check_eq!(record.iss(), iss, "wrong ESR_EL1.ISS (the immediate)")?;
    check_eq!(record.elr, elr, "wrong ELR_EL1")?;
    check_eq!(record.spsr_mode(), MODE_EL1H, "SPSR_EL1.M is not EL1h")
}

/// `BRK #0x42` at EL1 is taken by the guest's vectors at offset 0x200 with `ESR_EL1.EC` = 0x3C
/// (BRK64), ISS = the immediate, `ELR_EL1` = the BRK itself; the hook resumes after it.
pub fn brk_is_taken_by_guest_vectors() -> TestResult {
    let (brk_address, log) = with_exception_hook(skip_brk, brk_0x42);
    check_one_sync(log, ec::BRK64, 0x42, brk_address)
}

/// `SVC #0x7` at EL1 is taken by the guest's vectors at offset 0x200 with `ESR_EL1.EC` = 0x15
/// (SVC64), ISS = the immediate, `ELR_EL1` = the next instruction.
pub fn svc_is_taken_by_guest_vectors() -> TestResult {
    let (next, log) = with_exception_hook(resume_svc, svc_0x7);
    check_one_sync(log, ec::SVC64, 0x7, next)
}
