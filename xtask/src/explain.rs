//! `./x explain`: a guest trap explained the way Moat handles it.
//!
//! Given the syndrome registers of a trap (`ESR_EL2`, `FAR_EL2`, `HPFAR_EL2`) and the VM's shape,
//! it prints the syndrome field by field, the decision of SPEC §2 made by the real decision
//! function (`moat_vcpu::abort::decide`), the exception Moat injects made by the real injection
//! code (`moat_vcpu::inject`, SPEC §3), and what Linux 6.1 KVM would do instead (SPEC §5), each
//! difference with the Arm ARM rule that decides it.
//!
//! The explainer has no guest memory. Where the decision needs the guest's stage-1 walk (an
//! address size fault with the MMU on, a fault on the walk), `decide` is asked with a guest
//! view whose walk cannot say, and the explainer prints the rule and the outcome for each level
//! the walk could report, never a made-up level.
//!
//! `args` checks the command line, `moat` explains Moat's handling of an abort, `kvm` mirrors
//! KVM's, `render` lays the lines out.

pub(crate) mod args;
mod kvm;
mod moat;
mod render;

use crate::error::XResult;
use args::ExplainArgs;
use args::Request;
use moat::explain_abort;
use moat_arm::esr::Syndrome;
use moat_vcpu::abort::GuestAbort;
use moat_vcpu::idregs::IdRegister;
use render::{Out, entry_lines, syndrome_fields};
use std::process::ExitCode;

/// Carries out `./x explain`: prints the explanation.
///
/// # Errors
///
/// A usage error (exit status 2) for a bad value, one line naming it.
pub fn run(args: &ExplainArgs) -> XResult<ExitCode> {
    let request = Request::from_args(args)?;
    print!("{}", explain(&request));
    Ok(ExitCode::SUCCESS)
}

/// The text of the explanation.
fn explain(req: &Request) -> String {
    let mut out = Out::default();
    syndrome_fields(&mut out, req.esr);
    match GuestAbort::from_trap(req.esr.bits(), req.far, req.hpfar, req.spsr) {
        Some(_) if matches!(req.esr.ec().code(), 0x21 | 0x25) => {
            out.blank();
            out.line(
                "note",
                "EC 0x21/0x25 in ESR_EL2 is an abort taken from EL2, in Moat itself: guest \
                 aborts arrive as 0x20/0x24",
            );
        }
        Some(abort) => {
            let moat = explain_abort(&mut out, req, &abort);
            let entry = moat.entry.as_ref().map(|(e, walk)| (e, *walk));
            kvm::kvm_section(&mut out, req, &abort, moat.place, &moat.decision, entry);
        }
        None => explain_other(&mut out, req),
    }
    out.text
}

/// A trap that is no guest abort: what the dispatcher (`bare/hyp/src/exits.rs`) does with it.
fn explain_other(out: &mut Out, req: &Request) {
    out.blank();
    out.heading("Moat (the trap dispatcher, bare/hyp/src/exits.rs)");
    let smccc = "an SMCCC call (imm16 = 0): PSCI 1.1 (PSCI_VERSION, PSCI_FEATURES, SYSTEM_OFF, \
                 SYSTEM_RESET) and SMCCC_VERSION answered in X0..X3, any other function \
                 NOT_SUPPORTED (-1); imm16 != 0: X0 = NOT_SUPPORTED";
    let words = match req.esr.decode() {
        Syndrome::Hvc64(_) | Syndrome::Hvc32(_) => {
            format!("{smccc}; ELR_EL2 already points past the HVC")
        }
        Syndrome::Smc64(_) => format!("trapped SMC (HCR_EL2.TSC): {smccc}; PC advanced past it"),
        Syndrome::Wfx(_) => String::from(
            "completes at once, PC advanced: no interrupt can wake the vCPU yet, and WFI/WFE may \
             complete at any time",
        ),
        Syndrome::SysReg(iss) => {
            let name = format!(
                "S{}_{}_C{}_C{}_{}",
                iss.op0, iss.op1, iss.crn, iss.crm, iss.op2
            );
            let id = IdRegister::from_encoding(iss.op0, iss.op1, iss.crn, iss.crm, iss.op2);
            match (id, iss.direction.name()) {
                (Some(_), "read") => format!(
                    "MRS X{}, {name}: an ID register (HCR_EL2.TID3), answered with the \
                     hardware's value sanitised (PARange = P; SVE, SME, MTE, EL2... absent); PC \
                     advanced",
                    iss.rt
                ),
                (_, dir) => {
                    format!("{dir} of {name}: not emulated; Moat stops the VM with this syndrome")
                }
            }
        }
        Syndrome::SveAccess | Syndrome::SmeAccess(_) => {
            out.line(
                "decision",
                "inject an undefined instruction: SVE and SME are trapped (CPTR_EL2) and \
                 reported absent, so the instruction is UNDEFINED",
            );
            let entry = moat_vcpu::inject::inject_undefined(&req.context());
            entry_lines(out, req, &entry);
            return;
        }
        _ => String::from("not handled: Moat stops the VM with this syndrome (\"unhandled trap\")"),
    };
    out.line("decision", words);
}

#[cfg(test)]
mod tests;
