//! `./x run --config FILE` with a system description (`[[vm]]` tables), given what it must
//! refuse: the options that describe one VM, the rules between VMs, and images it cannot find.
//! Every refusal is exit status 2 and one line naming what is wrong, before anything is built,
//! fetched or booted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A directory of files for one test, removed at the end.
struct Files(PathBuf);

impl Files {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("moat-system-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// One `[[vm]]` table: `name` on `cpus` with `extra` keys and 16 MiB of RAM.
fn vm(name: &str, cpus: &str, extra: &str) -> String {
    format!(
        "[[vm]]\nname = \"{name}\"\ncpus = {cpus}\n{extra}\n[[vm.ram]]\nbase = 0x4000_0000\nsize = \"16M\"\n"
    )
}

/// Two greeting-guest VMs on CPUs 0 and 1: a description every rule accepts.
fn two_vms() -> String {
    vm("a", "[0]", "guest = \"hello\"") + &vm("b", "[1]", "guest = \"hello\"")
}

/// The one-line error of `./x run ARGS` refused with exit status 2; it must contain every
/// `needle`.
fn refused(args: &[&str], needles: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the xtask binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: one line, got {stderr}"
    );
    assert!(stderr.starts_with("x: error: "), "{stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
    }
    stderr
}

#[test]
fn options_that_describe_one_vm_are_refused_with_a_system_description() {
    let f = Files::new("options");
    let file = f.file("two.toml", &two_vms());
    let guest = f.file("guest.bin", "");
    let cases: [&[&str]; 10] = [
        &["--mem", "64M"],
        &["--kernel", s(&guest)],
        &["--guest", s(&guest)],
        &["--initrd", s(&guest)],
        &["--linux"],
        &["--hello"],
        &["--bare"],
        &["--ipa-bits", "36"],
        &["--parange", "tight"],
        &["--append", "quiet"],
    ];
    for extra in cases {
        let mut args = vec!["--config", s(&file)];
        args.extend_from_slice(extra);
        refused(
            &args,
            &[extra[0], "describes one VM", s(&file), "[[vm]] tables"],
        );
    }
}

#[test]
fn smp_is_refused_with_a_system_description_which_names_the_cpus() {
    let f = Files::new("smp");
    let file = f.file("two.toml", &two_vms());
    refused(
        &["--config", s(&file), "--smp", "2"],
        &["--smp: ", s(&file), "cpus = [...]"],
    );
}

#[test]
fn the_rules_between_vms_are_checked_before_anything_is_built() {
    let f = Files::new("rules");
    let hello = "guest = \"hello\"";
    let cases = [
        (
            vm("a", "[0, 1]", hello) + &vm("b", "[1]", hello),
            "CPU 1 is given to both VM 'a' and VM 'b'",
        ),
        (
            vm("a", "[0]", hello) + &vm("b", "[9]", hello),
            "VM 'b' names CPU 9, but the machine has 8 CPUs (0-7)",
        ),
        (
            vm("a", "[0]", hello) + &vm("a", "[1]", hello),
            "VMs 0 and 1 are both named 'a'",
        ),
        (vm("a", "[]", hello), "VM 'a' has no CPU"),
        ("vm = []\n".to_owned(), "the system description has no VM"),
        (
            "name = \"x\"\n".to_owned() + &two_vms(),
            "top-level keys (name) beside [[vm]] tables",
        ),
        (
            vm("a", "[0]", "guest = \"hello\"\nkernel = \"linux\""),
            "VM 'a': both kernel and guest are given",
        ),
        (
            vm("a", "[0]", "guest = \"hello\"\n[[vm.net]]\npeer = \"b\""),
            "unknown field `net`",
        ),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let file = f.file(&format!("case{i}.toml"), text);
        refused(&["--config", s(&file)], &[s(&file), needle]);
    }
    let big = "guest = \"hello\"\n[[vm.ram]]\nbase = 0x1_0000_0000\nsize = \"1536M\"";
    let file = f.file("ram.toml", &(vm("a", "[0]", big) + &vm("b", "[1]", big)));
    refused(
        &["--config", s(&file)],
        &[
            "the VMs' RAM together (VM 'a' 1552 MiB, VM 'b' 1552 MiB: 3104 MiB in all) exceeds the 2816 MiB the machine has for VMs",
        ],
    );
}

#[test]
fn a_file_without_vm_tables_keeps_todays_single_vm_form_and_options() {
    // Without [[vm]] tables a file is today's single-VM form, where the options still apply.
    let f = Files::new("single");
    let file = f.file(
        "single.toml",
        "cpus = 1\n[[ram]]\nbase = 0x4000_0000\nsize = \"16M\"\n",
    );
    refused(&["--config", s(&file), "--smp", "9"], &["cpus = 9"]);
    refused(
        &["--config", s(&file), "--ipa-bits", "31", "--hello"],
        &["ipa-bits = 31 is below 32"],
    );
}

#[test]
fn the_ipa_limit_of_the_cpu_model_applies_to_every_vm() {
    let f = Files::new("ipa");
    let text = vm("a", "[0]", "guest = \"hello\"")
        + &vm("wide", "[1]", "guest = \"hello\"\nipa-bits = 48");
    let file = f.file("ipa.toml", &text);
    refused(
        &["--config", s(&file), "--cpu", "cortex-a72"],
        &["VM 'wide': ipa-bits = 48 is above this machine's IPA limit L = 44"],
    );
}

#[test]
fn images_are_looked_up_relative_to_the_file_and_named_with_their_vm() {
    let f = Files::new("images");
    let file = f.file(
        "missing.toml",
        &(vm("a", "[0]", "kernel = \"boot/Image\"") + &vm("b", "[1]", "guest = \"hello\"")),
    );
    let expected = f.0.join("boot/Image");
    refused(
        &["--config", s(&file)],
        &["VM 'a' kernel ", s(&expected), "no such file"],
    );
    let file = f.file(
        "initrd.toml",
        &vm("a", "[0]", "guest = \"hello\"\ninitrd = \"none.cpio\""),
    );
    refused(
        &["--config", s(&file)],
        &["VM 'a' initrd ", "none.cpio", "no such file"],
    );
    let file = f.file("builtin.toml", &vm("a", "[0]", "guest = \"helo\""));
    refused(
        &["--config", s(&file)],
        &[
            "VM 'a': guest = \"helo\" is not a built-in guest (hello, ",
            "\"./helo\"",
        ],
    );
    let file = f.file("kernel.toml", &vm("a", "[0]", "kernel = \"Image\""));
    refused(
        &["--config", s(&file)],
        &["kernel = \"Image\" is neither a path nor the built-in \"linux\""],
    );
    let text = "not an arm64 Image";
    f.file("vmlinux", text);
    let file = f.file("bad.toml", &vm("a", "[0]", "kernel = \"./vmlinux\""));
    refused(
        &["--config", s(&file)],
        &["VM 'a' kernel ", "not an arm64 Image"],
    );
}
