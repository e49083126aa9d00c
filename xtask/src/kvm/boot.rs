//! The KVM host: Debian's cloud kernel booted at EL2 on QEMU (`virtualization=on`), with an
//! initramfs of busybox, the runner, the guest image and its device tree, and an `/init` that
//! reports how KVM initialised, runs the guest once and powers off.
//!
//! `/init` frames what it says on the console with `MOAT-KVM` lines, so that the guest's own
//! console output can be told apart from the host's: the kernel's KVM lines
//! (`MOAT-KVM host: ...`), `MOAT-KVM begin`, the guest's output, `MOAT-KVM end <status>`, and
//! the runner's stderr (`MOAT-KVM stderr: ...`). The kernel's console is quiet (`quiet`, then
//! `dmesg -n 1`) so that nothing else lands in between.

use crate::initramfs::Entry;

/// Where the files are in the initramfs.
pub const RUNNER_PATH: &str = "bin/moat-kvm-runner";
/// The guest image.
pub const IMAGE_PATH: &str = "guest.bin";
/// The guest's device tree.
pub const DTB_PATH: &str = "guest.dtb";

/// The line before the guest's output.
const BEGIN: &str = "MOAT-KVM begin";
/// The start of the line after it, followed by the runner's exit status.
const END: &str = "MOAT-KVM end ";
/// The prefix of the kernel's KVM lines.
const HOST: &str = "MOAT-KVM host: ";
/// The prefix of the runner's stderr lines.
const STDERR: &str = "MOAT-KVM stderr: ";

/// How KVM runs in the host kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The kernel at EL2 (`HCR_EL2.E2H` = 1, FEAT_VHE): the default on `-cpu max`.
    Vhe,
    /// The kernel at EL1 and KVM's hypervisor at EL2 (`kvm-arm.mode=nvhe`).
    Nvhe,
}

impl Mode {
    /// Both, in the order the benchmark prints them.
    pub const ALL: [Self; 2] = [Self::Nvhe, Self::Vhe];

    /// The kernel command line's part that selects the mode (Linux 6.1 `early_kvm_mode_cfg`
    /// accepts `none`, `nvhe` and `protected`; VHE is the default where the CPU has it).
    pub fn cmdline(self) -> &'static str {
        match self {
            Self::Vhe => "",
            Self::Nvhe => "kvm-arm.mode=nvhe",
        }
    }

    /// What the kernel logs when KVM initialised in this mode (`kvm [1]: ...`).
    pub fn initialised_line(self) -> &'static str {
        match self {
            Self::Vhe => "VHE mode initialized successfully",
            Self::Nvhe => "Hyp mode initialized successfully",
        }
    }

    /// A short name for tables and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vhe => "VHE",
            Self::Nvhe => "nVHE",
        }
    }
}

/// The host kernel's command line in `mode`.
pub fn kernel_cmdline(mode: Mode) -> String {
    let mut line = String::from("console=ttyAMA0 quiet");
    if !mode.cmdline().is_empty() {
        line.push(' ');
        line.push_str(mode.cmdline());
    }
    line
}

/// The `/init` script: mount the kernel's file systems, silence the kernel console, report
/// the kernel's KVM lines, run the runner with `runner_args`, report its status and stderr, and
/// power off.
pub fn init_script(runner_args: &str) -> String {
    format!(
        "#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /tmp
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
$B dmesg -n 1
$B dmesg | $B grep -i kvm | $B sed 's/^/{HOST}/'
echo '{BEGIN}'
/{RUNNER_PATH} {runner_args} 2>/tmp/runner.err
status=$?
echo
echo \"{END}$status\"
$B sed 's/^/{STDERR}/' /tmp/runner.err
$B poweroff -f
"
    )
}

/// What the runner adds to the VM besides its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvmOptions {
    /// vCPUs with KVM's virtual PMUv3, as QEMU gives a KVM guest by default (measured: +16
    /// instructions per HVC round trip in both modes).
    pub pmu: bool,
    /// KVM's in-kernel vGICv3 (on by default). Off, KVM 6.1's HVC round trip costs 1468
    /// instructions (VHE) and 1966 (nVHE) instead of 1051 and 1526: the figures of issue 9's
    /// first table, which were measured without it.
    pub vgic: bool,
}

impl Default for KvmOptions {
    fn default() -> Self {
        Self {
            pmu: false,
            vgic: true,
        }
    }
}

/// The runner's arguments for a VM of `mem` bytes, `smp` vCPUs, an `ipa_bits` IPA space and
/// its device tree at `dtb_addr`, with `options`.
pub fn runner_args(
    mem: u64,
    smp: u32,
    ipa_bits: u32,
    dtb_addr: u64,
    options: KvmOptions,
) -> String {
    format!(
        "--image /{IMAGE_PATH} --dtb /{DTB_PATH} --dtb-addr {dtb_addr:#x} --mem {}K --smp {smp} \
         --ipa-bits {ipa_bits}{}{}",
        mem >> 10,
        if options.pmu { " --pmu" } else { "" },
        if options.vgic { "" } else { " --no-vgic" },
    )
}

/// The initramfs's entries.
pub fn entries(
    busybox: Vec<u8>,
    runner: Vec<u8>,
    image: Vec<u8>,
    dtb: Vec<u8>,
    init: String,
) -> Vec<Entry> {
    let dir = |path: &str| Entry::Dir { path: path.into() };
    let file = |path: &str, perm: u32, data: Vec<u8>| Entry::File {
        path: path.into(),
        perm,
        data,
    };
    let mut entries: Vec<Entry> = ["dev", "proc", "sys", "bin", "tmp"]
        .into_iter()
        .map(dir)
        .collect();
    entries.push(Entry::CharDev {
        path: "dev/console".into(),
        major: 5,
        minor: 1,
    });
    entries.push(file("bin/busybox", 0o755, busybox));
    entries.push(file(RUNNER_PATH, 0o755, runner));
    entries.push(file(IMAGE_PATH, 0o644, image));
    entries.push(file(DTB_PATH, 0o644, dtb));
    entries.push(file("init", 0o755, init.into_bytes()));
    entries
}

/// What the host's console said, taken apart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The kernel's KVM lines.
    pub host: Vec<String>,
    /// The guest's console output, exactly as it printed it.
    pub guest: String,
    /// The runner's exit status, if it ran to the end.
    pub status: Option<i32>,
    /// The runner's stderr lines.
    pub stderr: Vec<String>,
}

/// Takes the host's console output apart (`\r` already removed).
pub fn parse(console: &str) -> Report {
    let mut report = Report {
        host: prefixed(console, HOST),
        stderr: prefixed(console, STDERR),
        ..Report::default()
    };
    let Some(begin) = console.find(&format!("{BEGIN}\n")) else {
        return report;
    };
    let after = &console[begin + BEGIN.len() + 1..];
    // `/init` prints an empty line before the end line, so that the end line stands alone
    // even when the guest's last line has no newline.
    let Some(end) = after.rfind(&format!("\n{END}")) else {
        report.guest = after.to_string();
        return report;
    };
    report.guest = after[..end].to_string();
    let status = after[end + 1 + END.len()..].lines().next().unwrap_or("");
    report.status = status.trim().parse().ok();
    report
}

fn prefixed(console: &str, prefix: &str) -> Vec<String> {
    console
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvhe_is_asked_for_on_the_command_line_and_vhe_is_the_default() {
        assert_eq!(
            kernel_cmdline(Mode::Nvhe),
            "console=ttyAMA0 quiet kvm-arm.mode=nvhe"
        );
        assert_eq!(kernel_cmdline(Mode::Vhe), "console=ttyAMA0 quiet");
    }

    #[test]
    fn the_runner_is_given_the_vm_shape_and_the_device_tree_address() {
        assert_eq!(
            runner_args(128 << 20, 2, 40, 0x47e0_0000, KvmOptions::default()),
            "--image /guest.bin --dtb /guest.dtb --dtb-addr 0x47e00000 --mem 131072K --smp 2 \
             --ipa-bits 40"
        );
        let pmu = KvmOptions {
            pmu: true,
            vgic: true,
        };
        assert!(runner_args(128 << 20, 1, 40, 0x47e0_0000, pmu).ends_with(" --pmu"));
        let no_vgic = KvmOptions {
            pmu: false,
            vgic: false,
        };
        assert!(runner_args(128 << 20, 1, 40, 0x47e0_0000, no_vgic).ends_with(" --no-vgic"));
    }

    #[test]
    fn init_runs_the_runner_between_the_markers_and_powers_off() {
        let script = init_script("--image /guest.bin");
        let begin = script.find("echo 'MOAT-KVM begin'").unwrap();
        let run = script
            .find("/bin/moat-kvm-runner --image /guest.bin")
            .unwrap();
        let end = script.find("MOAT-KVM end $status").unwrap();
        assert!(begin < run && run < end);
        assert!(
            script.contains("mount -t devtmpfs"),
            "/dev/kvm needs devtmpfs"
        );
        assert!(script.trim_end().ends_with("poweroff -f"));
    }

    #[test]
    fn the_initramfs_holds_the_runner_guest_dtb_and_init_as_executables_where_needed() {
        let entries = entries(vec![1], vec![2], vec![3], vec![4], "#!".into());
        let mode = |name: &str| {
            entries.iter().find_map(|e| match e {
                Entry::File { path, perm, .. } if path == name => Some(*perm),
                _ => None,
            })
        };
        assert_eq!(mode(RUNNER_PATH), Some(0o755));
        assert_eq!(mode("init"), Some(0o755));
        assert_eq!(mode("bin/busybox"), Some(0o755));
        assert_eq!(mode(IMAGE_PATH), Some(0o644));
        assert_eq!(mode(DTB_PATH), Some(0o644));
    }

    #[test]
    fn the_console_is_taken_apart_into_host_guest_status_and_stderr() {
        let console = "Booting Linux\n\
            MOAT-KVM host: [    0.5] kvm [1]: VHE mode initialized successfully\n\
            MOAT-KVM begin\n\
            line one\nno newline\n\
            MOAT-KVM end 1\n\
            MOAT-KVM stderr: moat-kvm-runner: vCPU 0: unexpected exit\n\
            reboot: Power down\n";
        let report = parse(console);
        assert_eq!(
            report.host,
            ["[    0.5] kvm [1]: VHE mode initialized successfully"]
        );
        assert_eq!(report.guest, "line one\nno newline");
        assert_eq!(report.status, Some(1));
        assert_eq!(report.stderr, ["moat-kvm-runner: vCPU 0: unexpected exit"]);
    }

    #[test]
    fn a_host_that_never_ran_the_runner_has_no_status() {
        let report = parse("Kernel panic - not syncing\n");
        assert_eq!(report.status, None);
        assert!(report.guest.is_empty());
    }
}
