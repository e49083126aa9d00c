//! What the guest reads in its ID registers under Moat (SPEC §1): `ID_AA64MMFR0_EL1.PARange`
//! is the PARange `P` of the VM (the host passes the expected value as `moat.parange=<bits>`),
//! and the features Moat does not virtualise are absent.

use moat_guest_rt::{TestResult, boot, check_eq, println, test};

/// `MRS` of an ID register.
macro_rules! read_id {
    ($reg:literal) => {{
        let value: u64;
        // SAFETY: reads an ID register, which exists on every Armv8-A CPU and has no side
        // effects; MRS writes only the output register.
        unsafe {
            core::arch::asm!(concat!("mrs {}, ", $reg), out(reg) value,
                             options(nomem, nostack, preserves_flags))
        };
        value
    }};
}

/// `ID_AA64MMFR0_EL1.PARange` decoded to bits (Arm ARM: 0b0000 32 .. 0b0110 52).
fn parange_bits(mmfr0: u64) -> Option<u32> {
    [32, 36, 40, 42, 44, 48, 52]
        .get((mmfr0 & 0xF) as usize)
        .copied()
}

/// The guest reads the PARange the VM was given, not the hardware's.
pub fn parange_is_the_vm_parange() -> TestResult {
    let bootargs = boot::info().bootargs;
    let Some(expected) =
        test::bootarg(bootargs, "moat.parange").and_then(|v| v.parse::<u32>().ok())
    else {
        return Err("needs moat.parange=<bits> in the bootargs");
    };
    let mmfr0 = read_id!("ID_AA64MMFR0_EL1");
    println!("ID_AA64MMFR0_EL1 = {mmfr0:#x}");
    check_eq!(
        parange_bits(mmfr0),
        Some(expected),
        "PARange is not the VM's"
    )
}

/// SVE, SME and EL2 read as absent (`ID_AA64PFR0_EL1.SVE`, `.EL2`, `ID_AA64PFR1_EL1.SME`,
/// `ID_AA64ZFR0_EL1`): Moat neither switches their state nor offers nested virtualisation.
pub fn moat_hides_sve_sme_and_el2() -> TestResult {
    let pfr0 = read_id!("ID_AA64PFR0_EL1");
    let pfr1 = read_id!("ID_AA64PFR1_EL1");
    let zfr0 = read_id!("S3_0_C0_C4_4");
    println!(
        "ID_AA64PFR0_EL1 = {pfr0:#x}, ID_AA64PFR1_EL1 = {pfr1:#x}, ID_AA64ZFR0_EL1 = {zfr0:#x}"
    );
    check_eq!((pfr0 >> 32) & 0xF, 0, "SVE is visible")?;
    check_eq!((pfr0 >> 8) & 0xF, 0, "EL2 is visible")?;
    check_eq!((pfr1 >> 24) & 0xF, 0, "SME is visible")?;
    check_eq!(zfr0, 0, "ID_AA64ZFR0_EL1 is not zero")
}

/// `ESR_EL1.EC` of an instruction the CPU does not implement (Unknown reason).
const EC_UNKNOWN: u8 = 0x00;

/// Claims the UNDEFINED exception of the probing instruction and resumes after it.
fn skip_undefined(
    record: &moat_guest_rt::ExceptionRecord,
    frame: &mut moat_guest_rt::ExceptionFrame,
) -> moat_guest_rt::Resume {
    if record.ec() != EC_UNKNOWN {
        return moat_guest_rt::Resume::No;
    }
    frame.skip_instruction();
    moat_guest_rt::Resume::Yes
}

/// An SVE instruction (`RDVL X0, #1`) is UNDEFINED, as on a CPU whose `ID_AA64PFR0_EL1.SVE` is
/// 0 — which is what the guest reads, even where the hardware has SVE (Moat traps it with
/// `CPTR_EL2.TZ` and injects the exception).
pub fn sve_is_undefined_as_the_id_registers_say() -> TestResult {
    // As an OS that uses FP/SIMD does, enable it first (`CPACR_EL1.FPEN` = 0b11): SVE
    // instructions are also subject to FPEN, and this test is about SVE.
    // SAFETY: a system register write (trapped and emulated under Moat); no memory.
    unsafe {
        core::arch::asm!("msr cpacr_el1, {}", "isb", in(reg) 3u64 << 20, options(nomem, nostack))
    };
    let ((), log) = moat_guest_rt::exception::with_exception_hook(skip_undefined, || {
        // SAFETY: RDVL either executes (writing X0, declared clobbered) or raises an UNDEFINED
        // exception that the hook claims and skips; no stack is touched. Not `nomem`: the
        // exception's handler writes the log, so the compiler must keep the instruction inside
        // the hook's span.
        unsafe { core::arch::asm!(".inst 0x04bf5020", out("x0") _, options(nostack)) };
    });
    check_eq!(log.count, 1, "RDVL did not raise exactly one exception")?;
    let record = log.first.ok_or("no exception recorded")?;
    check_eq!(
        record.ec(),
        EC_UNKNOWN,
        "RDVL raised something other than UNDEFINED"
    )?;
    check_eq!(
        record.vector.0,
        0x200,
        "UNDEFINED not taken at the current-EL SP_ELx vector"
    )
}
