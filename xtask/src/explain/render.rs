//! The explanation's layout: aligned label/value lines, registers decoded by their Arm names.

use super::args::Request;
use moat_arm::esr::Esr;
use moat_arm::fsr32::Fsr32;
use moat_arm::pstate::SavedPsr;
use moat_vcpu::entry::{Aarch32Target, Entry};
use std::fmt::Write as _;

/// What the explainer assumes of the CPU: exception entry sets these bits as the hardware does
/// for its own exceptions (SPEC §3), so they depend on the real CPU.
const FEATURES_ASSUMED: &str =
    "no PAN, SSBS, MTE, BTI assumed: on a CPU with them PAN, SSBS, TCO, BTYPE follow SPEC §3";

/// Aligned output: a label column, then the value.
#[derive(Default)]
pub(super) struct Out {
    pub(super) text: String,
    pub(super) indent: usize,
}

impl Out {
    const LABEL: usize = 14;

    pub(super) fn line(&mut self, label: &str, value: impl std::fmt::Display) {
        let pad = " ".repeat(self.indent);
        let width = Self::LABEL.saturating_sub(self.indent);
        let _ = writeln!(self.text, "{pad}{label:<width$} {value}");
    }

    pub(super) fn heading(&mut self, text: &str) {
        self.indent = 0;
        let _ = writeln!(self.text, "{text}");
        self.indent = 2;
    }

    pub(super) fn blank(&mut self) {
        self.indent = 0;
        self.text.push('\n');
    }
}

/// `NAME=value` pairs of a register's `Display` (values may hold spaces: `0b10 (word)`).
pub(super) fn fields(display: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for token in display.split_whitespace() {
        let starts_field = token.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric())
        });
        match (starts_field, out.last_mut()) {
            (false, Some((_, value))) => {
                value.push(' ');
                value.push_str(token);
            }
            _ => {
                let (name, value) = token.split_once('=').unwrap_or((token, ""));
                out.push((name.to_owned(), value.to_owned()));
            }
        }
    }
    out
}

pub(super) fn syndrome_fields(out: &mut Out, esr: Esr) {
    out.indent = 0;
    out.line("ESR_EL2", hex(esr.bits()));
    out.indent = 2;
    for (name, value) in fields(&esr.to_string()) {
        out.line(&name, value);
    }
}

pub(super) fn hex(value: u64) -> String {
    format!("{value:#x}")
}

pub(super) fn vm_lines(out: &mut Out, req: &Request) {
    let vm = &req.vm;
    out.heading("VM");
    out.line(
        "S",
        format!(
            "{} (IPA space [0, {:#x}))",
            vm.ipa_bits,
            1u64 << vm.ipa_bits
        ),
    );
    out.line(
        "P",
        format!(
            "{} ({}; ID_AA64MMFR0_EL1.PARange)",
            req.pa_bits, req.parange_how
        ),
    );
    out.line(
        "L",
        format!("{} (-cpu {}: min(PA size, 48))", req.limit, req.cpu),
    );
    for r in &vm.ram {
        out.line(
            "ram",
            format!("[{:#x}, {:#x})", r.base.0, r.base.0 + r.size),
        );
    }
    for d in &vm.devices {
        out.line(
            d.kind.name(),
            format!("[{:#x}, {:#x})", d.base.0, d.base.0 + d.size),
        );
    }
    out.line("holes", format!("data accesses: {}", vm.hole_policy.name()));
    out.line("guest", req.guest.name());
    out.line("MMU", if req.mmu_on { "on" } else { "off" });
    out.line("from", format!("{} (SPSR_EL2 {:#x})", req.from, req.spsr));
}

/// The fault status register of an entry, one line.
pub(super) fn syndrome_summary(entry: &Entry) -> String {
    match entry {
        Entry::Aarch64(e) => {
            let esr = Esr::new(e.esr_el1);
            let fsc = fields(&esr.to_string())
                .pop()
                .map(|(n, v)| format!("{n}={v}"));
            format!("ESR_EL1 = {:#x}, {}", e.esr_el1, fsc.unwrap_or_default())
        }
        Entry::Aarch32(e) => match (e.dfsr, e.ifsr) {
            (Some(dfsr), _) => format!("DFSR = {dfsr:#x}, {}", Fsr32::decode(dfsr)),
            (None, Some(ifsr)) => format!("IFSR = {ifsr:#x}, {}", Fsr32::decode(ifsr)),
            (None, None) => String::new(),
        },
    }
}

/// The registers an injection writes, decoded (`VBAR` = 0 assumed: the offset is what matters).
pub(super) fn entry_lines(out: &mut Out, req: &Request, entry: &Entry) {
    match entry {
        Entry::Aarch64(e) => {
            out.line("ESR_EL1", format!("{:#x}", e.esr_el1));
            out.line("", Esr::new(e.esr_el1));
            if let Some(far) = e.far_el1 {
                out.line("FAR_EL1", format!("{far:#x}  (FAR_EL2: the faulting VA)"));
            }
            out.line(
                "ELR_EL1",
                format!("{:#x}  (ELR_EL2: the faulting instruction)", e.elr_el1),
            );
            out.line(
                "SPSR_EL1",
                format!("{:#x}  {}", e.spsr_el1, SavedPsr::from_spsr(e.spsr_el1)),
            );
            let group = match e.elr_el2 & 0x600 {
                0x000 => "current EL with SP_EL0",
                0x200 => "current EL with SP_ELx",
                0x400 => "lower EL, AArch64",
                _ => "lower EL, AArch32",
            };
            out.line(
                "vector",
                format!(
                    "VBAR_EL1 + {:#05x}  (synchronous, {group}; VBAR_EL1 = 0 assumed)",
                    e.elr_el2
                ),
            );
            out.line(
                "PSTATE",
                format!("{:#x}  {}", e.spsr_el2, SavedPsr::from_spsr(e.spsr_el2)),
            );
            out.line("", FEATURES_ASSUMED);
        }
        Entry::Aarch32(e) => {
            let far = e.far_el1.unwrap_or(0);
            if let Some(dfsr) = e.dfsr {
                out.line("DFSR", format!("{dfsr:#x}  {}", Fsr32::decode(dfsr)));
                out.line(
                    "DFAR",
                    format!("{:#x}  (the faulting VA)", far & 0xFFFF_FFFF),
                );
            }
            if let Some(ifsr) = e.ifsr {
                out.line("IFSR", format!("{ifsr:#x}  {}", Fsr32::decode(ifsr)));
                out.line("IFAR", format!("{:#x}  (the faulting VA)", far >> 32));
            }
            let offset = e.lr.wrapping_sub(req.elr);
            let mode = match e.target {
                Aarch32Target::Abort => "abt",
                Aarch32Target::Undefined => "und",
            };
            out.line(
                &format!("LR_{mode}"),
                format!("{:#x}  (the faulting instruction + {offset})", e.lr),
            );
            out.line(
                &format!("SPSR_{mode}"),
                format!("{:#x}  (the interrupted CPSR)", e.spsr),
            );
            out.line(
                "vector",
                format!("VBAR + {:#04x}  (SCTLR.V = 0, VBAR = 0 assumed)", e.elr_el2),
            );
            out.line(
                "CPSR",
                format!("{:#x}  {}", e.spsr_el2, SavedPsr::from_spsr(e.spsr_el2)),
            );
            out.line(
                "",
                format!("SCTLR = 0 assumed (T from TE, E from EE); {FEATURES_ASSUMED}"),
            );
        }
    }
}
