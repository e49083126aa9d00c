//! `./x run` given bad input, as a user gives it: every refusal is exit status 2 and one line
//! on standard error naming the option, the file and the problem; never a backtrace, a panic or
//! a wait. Each case is refused before anything is built, fetched or booted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A directory of files for one test, removed at the end.
struct Files(PathBuf);

impl Files {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("moat-refusals-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A raw binary guest: one `b .` instruction.
    fn guest(&self) -> PathBuf {
        self.file("guest.bin", &0x1400_0000u32.to_le_bytes())
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

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the xtask binary runs")
}

/// The one-line error of a run refused with exit status 2; it must contain every `needle`.
fn refused(args: &[&str], needles: &[&str]) -> String {
    let out = run(args);
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

/// An ELF64 AArch64 header with one program header at `phoff` of `phdr` (56 bytes).
fn elf64(phoff: u64, phdr: Option<[u64; 7]>) -> Vec<u8> {
    let mut file = vec![0u8; 64];
    file[..4].copy_from_slice(b"\x7fELF");
    file[4] = 2;
    file[5] = 1;
    file[6] = 1;
    file[18..20].copy_from_slice(&183u16.to_le_bytes());
    file[24..32].copy_from_slice(&0x4008_0000u64.to_le_bytes());
    file[32..40].copy_from_slice(&phoff.to_le_bytes());
    file[54..56].copy_from_slice(&56u16.to_le_bytes());
    file[56..58].copy_from_slice(&1u16.to_le_bytes());
    if let Some(fields) = phdr {
        // p_type | p_flags, then p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align.
        for field in fields {
            file.extend_from_slice(&field.to_le_bytes());
        }
    }
    file
}

#[test]
fn a_kernel_that_is_not_an_arm64_image_is_refused() {
    let f = Files::new("kernel");
    let text = f.file("vmlinux.txt", b"this is not a kernel\n");
    refused(
        &["--kernel", s(&text)],
        &["--kernel", s(&text), "not an arm64 Image"],
    );
    let elf = f.file(
        "vmlinux",
        &elf64(64, Some([1, 120, 0, 0x4008_0000, 8, 8, 0])),
    );
    refused(&["--kernel", s(&elf)], &[s(&elf), "not an arm64 Image"]);
    let empty = f.file("empty", b"");
    refused(&["--kernel", s(&empty)], &[s(&empty), "empty"]);
}

#[test]
fn a_truncated_elf_is_refused_naming_what_is_missing() {
    let f = Files::new("truncated");
    let whole = elf64(64, Some([1, 120, 0, 0x4008_0000, 8, 8, 0]));
    let cut = f.file("cut.elf", &whole[..40]);
    refused(
        &["--guest", s(&cut)],
        &["--guest", s(&cut), "truncated", "ELF header"],
    );
    let no_phdr = f.file("no-phdr.elf", &whole[..100]);
    refused(&["--guest", s(&no_phdr)], &["program header 0"]);
    let no_data = f.file("no-data.elf", &whole);
    refused(&["--guest", s(&no_data)], &["truncated", "segment 0"]);
}

#[test]
fn program_headers_or_segments_outside_the_file_or_overflowing_are_refused() {
    let f = Files::new("phdrs");
    let far = f.file("far.elf", &elf64(u64::MAX - 8, None));
    refused(&["--guest", s(&far)], &["program header 0", "truncated"]);
    let overflow = elf64(64, Some([1, u64::MAX - 4, 0, 0x4008_0000, 16, 16, 0]));
    let overflow = f.file("overflow.elf", &overflow);
    refused(&["--guest", s(&overflow)], &["segment 0", "truncated"]);
    let wrap = elf64(64, Some([1, 120, 0, u64::MAX - 4, 0, 16, 0]));
    let wrap = f.file("wrap.elf", &wrap);
    refused(
        &["--guest", s(&wrap)],
        &["segment 0", "not inside the VM's RAM"],
    );
}

#[test]
fn a_directory_given_as_a_file_is_refused() {
    let f = Files::new("dir");
    let dir = f.path("");
    let guest = f.guest();
    for option in ["--guest", "--kernel"] {
        refused(&[option, s(&dir)], &[option, "is a directory"]);
    }
    refused(
        &["--guest", s(&guest), "--initrd", s(&dir)],
        &["--initrd", "is a directory"],
    );
    refused(
        &["--guest", s(&guest), "--config", s(&dir)],
        &["--config", "is a directory"],
    );
}

#[test]
fn files_that_cannot_be_read_are_refused_without_waiting() {
    // Tests run as root, for whom mode 000 does not stop a read: the unreadable files here are
    // a FIFO (opening it would wait for a writer forever; refused by its type, unopened) and
    // /proc/self/mem (any process may open it, but reading its offset 0 fails with EIO).
    let f = Files::new("unreadable");
    let fifo = f.path("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let guest = f.guest();
    refused(&["--guest", s(&fifo)], &["--guest", "is a FIFO"]);
    refused(
        &["--guest", s(&guest), "--initrd", s(&fifo)],
        &["--initrd", "is a FIFO"],
    );
    refused(
        &["--guest", s(&guest), "--config", s(&fifo)],
        &["--config", "is a FIFO"],
    );
    refused(
        &["--guest", "/proc/self/mem"],
        &["--guest /proc/self/mem", "cannot be read"],
    );
    let missing = f.path("missing.bin");
    refused(&["--guest", s(&missing)], &[s(&missing), "no such file"]);
    let below = guest.join("below");
    refused(&["--guest", s(&below)], &[s(&below), "cannot be looked up"]);
}

#[test]
fn an_unknown_cpu_model_is_refused() {
    let f = Files::new("cpu");
    let guest = f.guest();
    refused(
        &["--guest", s(&guest), "--cpu", "cortex-z99"],
        &["--cpu cortex-z99", "no CPU model 'cortex-z99'"],
    );
    refused(
        &["--guest", s(&guest), "--cpu", ",pauth=on"],
        &["--cpu ,pauth=on"],
    );
}

#[test]
fn sizes_out_of_range_or_overflowing_are_refused() {
    let f = Files::new("sizes");
    let guest = f.guest();
    let g = s(&guest);
    refused(
        &["--guest", g, "--mem", "99999999999999999999G"],
        &["--mem", "does not fit in 64 bits"],
    );
    refused(
        &["--guest", g, "--mem", "17179869184G"],
        &["--mem", "does not fit in 64 bits"],
    );
    refused(&["--guest", g, "--mem", "0"], &["has size 0"]);
    refused(&["--guest", g, "--mem", "1T"], &["IPA"]);
    // A valid VM, but more than QEMU's board (highmem=off) can give the machine.
    refused(
        &["--guest", g, "--mem", "4G"],
        &["--mem", "4096 MiB of RAM", "at most 3072 MiB"],
    );
    refused(&["--guest", g, "--ipa-bits", "300"], &["ipa-bits = 300"]);
    refused(&["--guest", g, "--ipa-bits", "4294967296"], &["--ipa-bits"]);
    refused(&["--guest", g, "--smp", "0"], &["cpus = 0", "1 to 8"]);
    refused(&["--guest", g, "--smp", "99"], &["cpus = 99", "1 to 8"]);
    refused(&["--guest", g, "--smp", "-1"], &["--smp"]);
    refused(&["--guest", g, "--timeout", "1e9"], &["--timeout"]);
}

#[test]
fn a_truncated_or_corrupt_vm_description_is_refused() {
    let f = Files::new("config");
    let guest = f.guest();
    let whole = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/tight44.toml"),
    )
    .unwrap();
    // Cut inside a value, and cut inside a table header.
    let cut = whole.find("0x").map_or(whole.len() / 2, |at| at + 3);
    for (name, text) in [
        ("cut-value.toml", &whole[..cut]),
        ("cut-header.toml", "[[ram]\nbase = 0x4000_0000\n"),
        ("unterminated.toml", "name = \"tight\n"),
        (
            "big.toml",
            "[[ram]]\nbase = 0x4000_0000\nsize = \"99999999999999999999G\"\n",
        ),
        ("cpus.toml", "cpus = 99999999999\n"),
    ] {
        let path = f.file(name, text.as_bytes());
        refused(
            &["--guest", s(&guest), "--config", s(&path)],
            &["--config", name],
        );
    }
    let binary = f.file("binary.toml", b"name = \"\xff\xfe\"\n");
    refused(
        &["--guest", s(&guest), "--config", s(&binary)],
        &["--config", "not UTF-8"],
    );
}

#[test]
fn an_initrd_too_large_for_ram_is_refused_unread() {
    let f = Files::new("initrd");
    let guest = f.guest();
    // 200 MiB, sparse: refused by its size against the 128 MiB VM without being read.
    let big = f.path("big.cpio");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(200 << 20)
        .unwrap();
    refused(
        &["--guest", s(&guest), "--initrd", s(&big)],
        &["--initrd", s(&big), "does not fit in RAM"],
    );
    refused(
        &["--hello", "--initrd", s(&big)],
        &["--initrd needs --guest, --kernel or --linux"],
    );
}

#[test]
fn an_unknown_option_is_one_line() {
    refused(&["--frobnicate"], &["--frobnicate"]);
}

// A system description (`[[vm]]` tables): the options that describe one VM, the rules between
// VMs, and images it cannot find.

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

#[test]
fn options_that_describe_one_vm_are_refused_with_a_system_description() {
    let f = Files::new("options");
    let file = f.file("two.toml", two_vms().as_bytes());
    let guest = f.file("guest.bin", b"");
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
    let file = f.file("two.toml", two_vms().as_bytes());
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
        let file = f.file(&format!("case{i}.toml"), text.as_bytes());
        refused(&["--config", s(&file)], &[s(&file), needle]);
    }
    let big = "guest = \"hello\"\n[[vm.ram]]\nbase = 0x1_0000_0000\nsize = \"1536M\"";
    let file = f.file(
        "ram.toml",
        (vm("a", "[0]", big) + &vm("b", "[1]", big)).as_bytes(),
    );
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
        b"cpus = 1\n[[ram]]\nbase = 0x4000_0000\nsize = \"16M\"\n",
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
    let file = f.file("ipa.toml", text.as_bytes());
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
        (vm("a", "[0]", "kernel = \"boot/Image\"") + &vm("b", "[1]", "guest = \"hello\""))
            .as_bytes(),
    );
    let expected = f.path("boot/Image");
    refused(
        &["--config", s(&file)],
        &["VM 'a' kernel ", s(&expected), "no such file"],
    );
    let file = f.file(
        "initrd.toml",
        vm("a", "[0]", "guest = \"hello\"\ninitrd = \"none.cpio\"").as_bytes(),
    );
    refused(
        &["--config", s(&file)],
        &["VM 'a' initrd ", "none.cpio", "no such file"],
    );
    let file = f.file(
        "builtin.toml",
        vm("a", "[0]", "guest = \"helo\"").as_bytes(),
    );
    refused(
        &["--config", s(&file)],
        &[
            "VM 'a': guest = \"helo\" is not a built-in guest (hello, ",
            "\"./helo\"",
        ],
    );
    let file = f.file(
        "kernel.toml",
        vm("a", "[0]", "kernel = \"Image\"").as_bytes(),
    );
    refused(
        &["--config", s(&file)],
        &["kernel = \"Image\" is neither a path nor a built-in kernel (\"linux\", \"debian\";"],
    );
    f.file("vmlinux", b"not an arm64 Image");
    let file = f.file(
        "bad.toml",
        vm("a", "[0]", "kernel = \"./vmlinux\"").as_bytes(),
    );
    refused(
        &["--config", s(&file)],
        &["VM 'a' kernel ", "not an arm64 Image"],
    );
}
