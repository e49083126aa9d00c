//! The KVM sides of `./x bench exits --kvm` (issue 9, item 2): Debian's cloud kernel (Linux
//! 6.1, with KVM) booted at EL2 in the same QEMU under the same `-icount shift=0,sleep=off`,
//! running the same benchmark image through Moat's KVM runner (`kvm-runner/`) on a VM of the
//! same shape (RAM, vCPUs, 40-bit IPA space, the device tree Moat's bundle would carry, the same
//! command line), with KVM's in-kernel vGICv3 — in nVHE mode (`kvm-arm.mode=nvhe`) and in VHE
//! mode where the CPU model has FEAT_VHE.
//!
//! Beside the main table, each KVM mode also runs without the in-kernel vGIC (`--no-vgic`, how
//! issue 9's first KVM figures were measured): its figures go into a note, for the operations
//! the guest reaches before its first GIC access, which ends such a run (the runner emulates
//! no GIC).

use super::report::{Cell, OPERATIONS, parse};
use super::{Context, Group, Report, Side, bootargs, guest};
use crate::error::{XResult, failed};
use crate::kvm::{self, KvmOptions, KvmRun, Mode};
use crate::qemu::Outcome;
use moat_config::VmConfig;

/// What the guest's SMC check says under KVM 6.1 (`bare/guests/exitbench`, `Expect::PsciVersion`).
const SMC_NO_VERSION: &str = "PSCI_VERSION did not answer a version >= 1.0";

/// Why the SMC row has no KVM figure.
const SMC_WHY: &str = "KVM 6.1 neither forwards a guest's SMC to its VMM nor answers PSCI on it: \
    the trapped SMC (HCR_EL2.TSC) is stepped over with x0 = -1, SMCCC NOT_SUPPORTED \
    (`handle_smc`); the guest saw no exception and no PSCI version";

/// The two KVM columns.
pub fn sides() -> Vec<Side> {
    vec![
        Side {
            name: "KVM nVHE",
            boot: |ctx, cpu, group| boot(ctx, cpu, group, Mode::Nvhe),
            unavailable: |cpu| unavailable(cpu, Mode::Nvhe),
            interpret,
        },
        Side {
            name: "KVM VHE",
            boot: |ctx, cpu, group| boot(ctx, cpu, group, Mode::Vhe),
            unavailable: |cpu| unavailable(cpu, Mode::Vhe),
            interpret,
        },
    ]
}

/// Why KVM cannot run in `mode` on `cpu`: VHE needs FEAT_VHE (Armv8.1), which QEMU's
/// `cortex-a72` (Armv8.0) lacks; the kernel then stays in nVHE mode.
fn unavailable(cpu: &str, mode: Mode) -> Option<&'static str> {
    let vhe = cpu.starts_with("max");
    (mode == Mode::Vhe && !vhe).then_some(
        "the CPU model has no FEAT_VHE (an Armv8.1 feature; cortex-a72 is Armv8.0), \
         so Linux runs KVM in nVHE mode only",
    )
}

/// The SMC row: KVM 6.1's answer is no PSCI call at all, so it has no figure.
fn interpret(report: &mut Report) {
    if let Some(cell) = report.cells.get_mut("smc_psci_version")
        && *cell == Cell::Failed(SMC_NO_VERSION.into())
    {
        *cell = Cell::Skipped(SMC_WHY.into());
    }
}

/// The VM Moat's side runs for `group`, as the KVM runner builds it.
fn vm(ctx: &Context, group: Group) -> VmConfig {
    let mut config = VmConfig::default_virt();
    config.set_cpus(group.cpus());
    config.bootargs = bootargs(ctx.params, group);
    config
}

fn run(ctx: &Context, cpu: &str, group: Group, mode: Mode, options: KvmOptions) -> XResult<KvmRun> {
    let artifacts = ctx
        .kvm
        .as_ref()
        .ok_or_else(|| failed("the KVM runner was not built (`--kvm`)"))?;
    let image = guest(&ctx.artifacts);
    kvm::run_on(artifacts, cpu, &vm(ctx, group), &image, mode, options)
}

/// One benchmark boot under KVM in `mode`, with the in-kernel vGIC.
fn boot(ctx: &Context, cpu: &str, group: Group, mode: Mode) -> XResult<Outcome> {
    let run = run(ctx, cpu, group, mode, KvmOptions::default())?;
    match run.status {
        Some(0) => Ok(Outcome {
            console: run.outcome.console,
            exit: None,
            timed_out: false,
            elapsed: run.outcome.elapsed,
        }),
        Some(status) => Err(failed(format!(
            "KVM {} on {cpu}: the runner ended with status {status}: {}",
            mode.name(),
            run.stderr.join(" / ")
        ))),
        None => Ok(Outcome {
            console: run.outcome.console,
            exit: None,
            timed_out: run.timed_out,
            elapsed: run.outcome.elapsed,
        }),
    }
}

/// Per KVM mode that runs on `cpu`, a note with its figures without the in-kernel vGIC.
///
/// # Errors
///
/// None of its own: a run that fails is a note saying so.
pub fn no_vgic_notes(ctx: &Context, cpu: &str) -> XResult<Vec<String>> {
    let options = KvmOptions {
        vgic: false,
        ..KvmOptions::default()
    };
    let mut notes = Vec::new();
    for mode in Mode::ALL {
        if unavailable(cpu, mode).is_some() {
            continue;
        }
        let name = mode.name();
        let note = match run(ctx, cpu, Group::Single, mode, options) {
            Ok(run) => match parse(&run.outcome.console) {
                Ok(report) => no_vgic_note(name, &report, &run.stderr),
                Err(e) => format!("KVM {name} without its vGIC: unreadable output: {e}"),
            },
            Err(e) => format!("KVM {name} without its vGIC: not measured: {e}"),
        };
        println!("{note}");
        notes.push(note);
    }
    Ok(notes)
}

/// The note of one mode's run without the vGIC: the medians it measured, and where it ended.
fn no_vgic_note(mode: &str, report: &Report, stderr: &[String]) -> String {
    let figures: Vec<String> = OPERATIONS
        .iter()
        .filter_map(|(name, label)| match report.cells.get(*name) {
            Some(Cell::Figure(f)) => Some(format!("{label} {:.1}", f.median)),
            _ => None,
        })
        .collect();
    let ended = if report.done {
        "the guest finished".to_string()
    } else {
        format!(
            "the run ends at the guest's first GIC access, which nothing answers without the \
             vGIC (runner: {})",
            stderr.first().map_or("no message", String::as_str)
        )
    };
    format!(
        "KVM {mode} without its in-kernel vGIC (`--no-vgic`, as issue 9's first KVM figures \
         were measured), medians: {}; {ended}",
        if figures.is_empty() {
            "none".to_string()
        } else {
            figures.join(", ")
        }
    )
}

/// What the KVM columns mean, appended to the method text.
pub fn method() -> String {
    " \"KVM nVHE\", \"KVM VHE\": Debian's cloud kernel (Linux 6.1) booted at EL2 in the same \
     QEMU under the same `-icount`, running the same guest image through Moat's KVM runner \
     (`kvm-runner/`) on a VM of the same shape and device tree, with KVM's in-kernel vGICv3 and \
     in-kernel PSCI; the PL011 is answered in the runner's process (an exit to the VMM, as \
     every KVM VMM answers an emulated device), `GICD_TYPER` in the kernel. The in-kernel vGIC \
     is the like-for-like comparison: Moat models its GIC at EL2 too, and every KVM VM in \
     practice has the vGIC; KVM without it (`--no-vgic`, issue 9's first KVM figures, in the \
     notes) is slower, not faster. \"KVM / Moat\" over 1 means Moat runs fewer instructions."
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhe_is_left_out_where_the_cpu_model_has_no_feat_vhe_and_nvhe_runs_everywhere() {
        assert!(unavailable("cortex-a72", Mode::Vhe).is_some());
        assert_eq!(unavailable("cortex-a72", Mode::Nvhe), None);
        assert_eq!(unavailable("max,pauth-impdef=on", Mode::Vhe), None);
    }

    #[test]
    fn kvms_answer_to_an_smc_becomes_a_skip_with_its_reason_and_other_failures_stay() {
        let mut report = Report::default();
        report.cells.insert(
            "smc_psci_version".into(),
            Cell::Failed(SMC_NO_VERSION.into()),
        );
        report
            .cells
            .insert("brk".into(), Cell::Failed("something else".into()));
        interpret(&mut report);
        assert_eq!(
            report.cells.get("smc_psci_version"),
            Some(&Cell::Skipped(SMC_WHY.into()))
        );
        assert_eq!(
            report.cells.get("brk"),
            Some(&Cell::Failed("something else".into()))
        );
    }

    #[test]
    fn the_no_vgic_note_lists_the_medians_measured_and_why_the_run_ended() {
        let report = parse(
            "MOAT-BENCH calibrate instructions=16 ticks=1\n\
             MOAT-BENCH op hvc_psci_version n=1 op=123 base=0\n",
        )
        .unwrap();
        let note = no_vgic_note("VHE", &report, &["moat-kvm-runner: MMIO read".into()]);
        assert!(note.contains("HVC `PSCI_VERSION` 1968.0"), "{note}");
        assert!(note.contains("first GIC access") && note.contains("MMIO read"));
    }
}
