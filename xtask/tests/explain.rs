//! `./x explain` as a user runs it: the built binary, its output and its exit status.

use std::process::{Command, Output};

fn explain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("explain")
        .args(args)
        .output()
        .expect("the xtask binary runs")
}

/// The standard output of a successful run.
fn explained(args: &[&str]) -> String {
    let out = explain(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The one-line error of a run refused with exit status 2.
fn refused(args: &[&str]) -> String {
    let out = explain(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    assert!(out.stdout.is_empty(), "{args:?} printed an explanation");
    let stderr = String::from_utf8(out.stderr).expect("UTF-8 error");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

/// The value of the first line labelled `label`.
fn value<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| {
            l.trim_start()
                .strip_prefix(label)
                .filter(|r| r.starts_with(' '))
        })
        .unwrap_or_else(|| panic!("no line {label} in\n{text}"))
        .trim()
}

#[test]
fn load_from_2_pow_40_in_a_40_bit_vm_gets_a_synchronous_external_abort() {
    let t = explained(&[
        "--esr",
        "0x93800005",
        "--far",
        "0x10000000010",
        "--hpfar",
        "0x100000000",
    ]);
    assert_eq!(value(&t, "ESR_EL2"), "0x93800005");
    assert_eq!(
        value(&t, "IPA"),
        "0x10000000010  HPFAR_EL2.FIPA:FAR_EL2[11:0]"
    );
    assert_eq!(
        value(&t, "decision"),
        "inject a synchronous external abort (data abort)"
    );
    assert_eq!(value(&t, "ESR_EL1"), "0x96000010");
    assert!(value(&t, "outcome").starts_with("kvm_inject_dabt()"));
}

#[test]
fn store_from_el0_is_injected_with_wnr_and_kvm_drops_it() {
    let t = explained(&[
        "--esr",
        "0x92000046",
        "--far",
        "0x10000000008",
        "--from",
        "el0",
    ]);
    assert_eq!(value(&t, "WnR"), "1");
    assert_eq!(value(&t, "ESR_EL1"), "0x92000050");
    assert!(value(&t, "vector").starts_with("VBAR_EL1 + 0x400"));
    assert!(t.contains("WnR = 0; Moat 1"));
}

#[test]
fn hpfar_beyond_2_pow_p_is_an_address_size_fault() {
    let t = explained(&[
        "--esr",
        "0x92000046",
        "--far",
        "0x8",
        "--hpfar",
        "0x100000000",
        "--ipa-bits",
        "36",
        "--parange",
        "tight",
        "--mmu",
        "on",
    ]);
    assert!(value(&t, "IPA is").starts_with("at or above 2^P = 2^36"));
    assert!(value(&t, "rule").contains("stage-1 descriptor that holds the address"));
    assert!(value(&t, "level 2").contains("DFSC=0x02 (address size fault, level 2)"));
    let off = explained(&["--esr", "0x92000046", "--far", "0x1000000000000"]);
    assert_eq!(
        value(&off, "decision"),
        "inject an Address Size Fault, level 0 (data abort)"
    );
}

#[test]
fn s1ptw_fault_on_a_hole_is_an_external_abort_on_the_walk_at_each_possible_level() {
    let t = explained(&[
        "--esr",
        "0x92000087",
        "--far",
        "0x400000",
        "--hpfar",
        "0x10000",
        "--mmu",
        "on",
    ]);
    assert_eq!(value(&t, "S1PTW"), "1");
    assert!(value(&t, "decision").starts_with("depends on the guest's stage-1 tables"));
    for (level, esr) in [
        (0, "0x96000014"),
        (1, "0x96000015"),
        (2, "0x96000016"),
        (3, "0x96000017"),
    ] {
        assert!(
            value(&t, &format!("level {level}")).contains(esr),
            "level {level}"
        );
    }
    assert!(t.contains(
        "DFSC/IFSC 0x10 (synchronous external abort); Moat synchronous external abort on table walk"
    ));
}

#[test]
fn aarch32_prefetch_abort_reports_ifsr_ifar_and_lr_plus_4() {
    let t = explained(&[
        "--esr",
        "0x82000006",
        "--far",
        "0x8000",
        "--elr",
        "0x8000",
        "--guest",
        "a32-lpae",
        "--from",
        "el0",
        "--ipa-bits",
        "32",
    ]);
    assert!(value(&t, "IFSR").starts_with("0x210"));
    assert!(value(&t, "IFAR").starts_with("0x8000"));
    assert!(value(&t, "LR_abt").starts_with("0x8004"));
    assert!(value(&t, "CPSR").contains("Abort A32"));
}

#[test]
fn hvc_is_explained_as_a_psci_call() {
    let t = explained(&["--esr", "0x5a000000"]);
    assert!(value(&t, "decision").contains("PSCI 1.1"));
}

#[test]
fn bad_values_get_one_line_and_exit_status_2() {
    let cases: [(&[&str], &str); 7] = [
        (
            &["--esr", "0xZZ"],
            "--esr 0xZZ: not a 64-bit hexadecimal number",
        ),
        (
            &["--esr", "0x93800005", "--ipa-bits", "50"],
            "--ipa-bits 50: S must be 32..=48",
        ),
        (
            &["--esr", "0x93800005", "--parange", "41"],
            "--parange 41: not max, tight",
        ),
        (
            &["--esr", "0x93800005", "--far", "12g"],
            "--far 12g: not a 64-bit hexadecimal",
        ),
        (&["--esr", "0x5a010000"], "ISS bits 0x10000 are RES0"),
        (&["--esr", "0x92000046", "--mmu", "on"], "--hpfar is needed"),
        (
            &["--esr", "0x92000046", "--cpu", "cortex-a15"],
            "--cpu cortex-a15: unknown model",
        ),
    ];
    for (args, expected) in cases {
        let line = refused(args);
        assert!(line.starts_with("x: error: "), "{line}");
        assert!(line.contains(expected), "{args:?}: {line}");
    }
}

/// A system description of two VMs, "small" with a 32-bit IPA space and "big" with the
/// default 40, written where the test can name it.
fn two_vm_description() -> std::path::PathBuf {
    let vm = |name: &str, cpu: u32, extra: &str| {
        format!(
            "[[vm]]\nname = \"{name}\"\ncpus = [{cpu}]\nguest = \"hello\"\n{extra}\n\
             [[vm.ram]]\nbase = 0x4000_0000\nsize = \"16M\"\n\n\
             [[vm.device]]\nkind = \"pl011\"\nbase = 0x0900_0000\n\n\
             [[vm.device]]\nkind = \"gicv3-dist\"\nbase = 0x0800_0000\n\n\
             [[vm.device]]\nkind = \"gicv3-redist\"\nbase = 0x080A_0000\n"
        )
    };
    let dir = std::env::temp_dir().join(format!("moat-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let path = dir.join("two.toml");
    std::fs::write(&path, vm("small", 0, "ipa-bits = 32") + &vm("big", 1, "")).expect("written");
    path
}

#[test]
fn a_system_description_explains_the_trap_of_the_vm_named() {
    let path = two_vm_description();
    let config = path.to_str().expect("UTF-8 path");
    // A load at 4 GiB: beyond the IPA space of "small", a hole in that of "big".
    let trap = [
        "--esr",
        "0x93800005",
        "--far",
        "0x100000010",
        "--hpfar",
        "0x1000000",
    ];
    let small = explained(&[&trap[..], &["--config", config, "--vm", "small"]].concat());
    assert!(value(&small, "S").starts_with("32 "), "{small}");
    let big = explained(&[&trap[..], &["--config", config, "--vm", "big"]].concat());
    assert!(value(&big, "S").starts_with("40 "), "{big}");
    assert!(
        value(&small, "IPA is").contains("beyond the IPA space"),
        "{small}"
    );
    assert!(value(&big, "IPA is").contains("(a hole)"), "{big}");
    let unnamed = refused(&[&trap[..], &["--config", config]].concat());
    assert!(
        unnamed.contains("several VMs (small, big): name the trap's with --vm"),
        "{unnamed}"
    );
    let unknown = refused(&[&trap[..], &["--config", config, "--vm", "huge"]].concat());
    assert!(
        unknown.contains("--vm huge:") && unknown.contains("(it has small, big)"),
        "{unknown}"
    );
    let _ = std::fs::remove_dir_all(path.parent().expect("a directory"));
}
