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

/// The registers `x19`..`x30` and the zero register, each the target of one `MRS`.
const TARGETS: usize = 13;

/// An `MRS` of an ID register writes exactly its target register, whichever it is: each of
/// `x19`..`x30` (which Moat's exit vector keeps in the CPU while it serves a trap in place,
/// and must save first when the trap writes one of them) and `xzr`, with every other of those
/// registers holding a canary, reads what `x0` reads and leaves the canaries alone.
pub fn id_register_reads_write_only_their_target() -> TestResult {
    let expected = read_id!("ID_AA64MMFR0_EL1");
    // Row `n`: x19..x30 after `MRS` into target `n` (x19 + n, the zero register last).
    let mut rows = [[0u64; 12]; TARGETS];
    let mut saved = [0u64; 12];
    // SAFETY: saves x19..x30 to `saved` and restores them before the block ends, so the
    // compiler's values in them (x19 LLVM's, x29 the frame pointer, x30 the link register)
    // survive; between, it writes only `rows` (13 rows of 12 registers, through x0) and the
    // registers it restores. No stack is used.
    unsafe {
        core::arch::asm!(
            "stp x19, x20, [x1, #0]",
            "stp x21, x22, [x1, #16]",
            "stp x23, x24, [x1, #32]",
            "stp x25, x26, [x1, #48]",
            "stp x27, x28, [x1, #64]",
            "stp x29, x30, [x1, #80]",
            ".irp n, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, zr",
            ".irp m, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30",
            "mov x\\m, #(0xC00 + \\m)",
            ".endr",
            "mrs x\\n, ID_AA64MMFR0_EL1",
            ".irp m, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30",
            "str x\\m, [x0], #8",
            ".endr",
            ".endr",
            "ldp x19, x20, [x1, #0]",
            "ldp x21, x22, [x1, #16]",
            "ldp x23, x24, [x1, #32]",
            "ldp x25, x26, [x1, #48]",
            "ldp x27, x28, [x1, #64]",
            "ldp x29, x30, [x1, #80]",
            inout("x0") rows.as_mut_ptr() => _,
            in("x1") saved.as_mut_ptr(),
            options(nostack)
        );
    }
    println!("ID_AA64MMFR0_EL1 = {expected:#x}");
    for (target, row) in rows.iter().enumerate() {
        for (index, &value) in row.iter().enumerate() {
            let want = if index == target {
                expected
            } else {
                0xC00 + 19 + index as u64
            };
            if value != want {
                println!(
                    "MRS into target {target}: x{} = {value:#x}, not {want:#x}",
                    19 + index
                );
                return Err("an MRS wrote other than its target register");
            }
        }
    }
    Ok(())
}
