//! The command line of `./x`.

use crate::build::{self, Artifacts};
use crate::error::{XResult, usage};
use crate::explain::args::ExplainArgs;
use crate::harness;
use crate::input::Named;
use crate::linux;
use crate::qemu::{ConsoleMode, Machine};
use crate::scratch::Scratch;
use crate::vm::{self, GuestKind, VmRequest};
use clap::{Args, Parser, Subcommand, ValueEnum};
use moat_config::ParangeMode;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Moat, a type-1 hypervisor for AArch64: build it, boot VMs under it in QEMU, test it.
#[derive(Parser, Debug)]
#[command(name = "./x", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build Moat's EL2 image and the test guests (bare/), and the host tool.
    Build,
    /// Boot a VM under Moat in QEMU and attach its console (Ctrl-A X quits QEMU).
    ///
    /// Exits 0 when the guest powers off (or resets), 1 when Moat stopped the VM for an
    /// unhandled trap, 2 for a refused configuration, 3 when Moat itself failed.
    Run(RunArgs),
    /// Run every test: formatting, lints, host unit tests, the bare-metal build, and the
    /// guest tests under Moat in QEMU; ends with an `N passed, N failed` line.
    Test(TestArgs),
    /// The differential suite (SPEC §6): the probe guest bare on QEMU and under Moat, every
    /// recorded exception field compared; ends with an `N passed, N failed` line.
    Difftest(DifftestArgs),
    /// The system-register sweep (issue 10): every `op0` 1..3 encoding read and written by the
    /// `sysregsweep` guest, bare on QEMU and under Moat, compared encoding by encoding; prints
    /// per CPU the accesses, those equal, and those differing by category.
    Sweep(SweepArgs),
    /// The differential chaos run (issue 10): the `chaos` guest's seeded operations on every
    /// vCPU, bare on QEMU and under Moat, compared by block hashes; a differing block is run
    /// again op by op. Prints the differences, VM stops, hangs and per-EC exception counts.
    Chaos(ChaosArgs),
    /// The hostile neighbour (issue 11): a Linux VM beside a VM running rounds of the `chaos`
    /// guest, each ending with a reset that restarts that VM alone; passes when Linux's
    /// checksums never changed, its shell answers and no chaos vCPU hung or was stopped.
    Neighbour(NeighbourArgs),
    /// Fetch Debian's arm64 cloud kernel and busybox into the cache (`$MOAT_CACHE`, else
    /// target/moat/linux-cache) and build the initramfs; prints the paths `./x run --linux`
    /// boots. Without `--refresh`, a complete cache is used without network access. With
    /// `--rootfs`, also the Debian 12 root file system image (made once; long).
    LinuxFetch(LinuxFetchArgs),
    /// Fetch QEMU 10 from Debian's bookworm-backports into the cache (unpacked, not installed)
    /// and print where it is: the PCI cases need its SMMUv3 with stage 2 (Debian 12's QEMU 7.2
    /// has stage 1 only). `./x test` and `./x run` fetch it themselves when they need it.
    QemuFetch,
    /// Boot Debian 12 from its disk (the image of `./x linux-fetch --rootfs`, made first if
    /// missing) with virtio-blk-pci and virtio-net-pci, and test it on the console: log in as
    /// root, DHCP on QEMU's user network, fetch a file from an HTTP server on the host's
    /// loopback, write a file, reboot, read it back. On bare QEMU; `--moat` boots
    /// configs/debian.toml under Moat instead (on QEMU 10, the SMMUv3 in front of the functions).
    Debian(DebianArgs),
    /// Run a benchmark and print its figures: `exits` (instructions per exit-causing operation
    /// under `-icount`, Moat and bare, per CPU model), `stage2` (Moat's stage-2 tables against
    /// google's aarch64-paging on the same work), `boot` (Linux's virtual time to `/init` under
    /// `-icount`, bare and under Moat, on 1 and 2 CPUs). Without a name: all of them, and
    /// BENCHMARKS.md regenerated from their output.
    Bench(BenchArgs),
    /// Run a bare guest under Linux KVM in the same QEMU (Debian's cloud kernel at EL2, Moat's
    /// own small VMM in `kvm-runner/`), nVHE and VHE, under `-icount shift=0,sleep=off`; prints
    /// the guest's console. Without `--guest` it runs the check guest and prints the HVC
    /// `PSCI_VERSION` round trip in instructions.
    KvmRun(KvmRunArgs),
    /// Explain a guest trap: the syndrome decoded, what Moat does with it (SPEC §2), the
    /// exception it injects (SPEC §3), and what Linux 6.1 KVM would do instead (SPEC §5).
    Explain(ExplainArgs),
    /// Run the coverage-guided fuzz targets (fuzz/, cargo-fuzz and libFuzzer; cargo-fuzz is
    /// installed into target/moat/tools on first use): every target, or one, for `--time`
    /// seconds each. Corpora grow in target/fuzz/corpus, findings go to target/fuzz/artifacts;
    /// ends with an `N passed, N failed` line.
    Fuzz(FuzzArgs),
    /// Run the tests of a kvm-unit-tests build (its `unittests.cfg`) under Moat and bare on
    /// QEMU, both under `-icount shift=0,sleep=off`, and print a table: each test's result on
    /// each side and, for tests known not to pass under Moat yet, why. Fails when a test passes
    /// bare but not under Moat and is not listed.
    Kut(KutArgs),
}

/// Options of `./x fuzz`.
#[derive(Args, Debug)]
struct FuzzArgs {
    /// One target: esr, insn, devices, smccc, config or bundle [default: all of them].
    #[arg(value_name = "TARGET")]
    target: Option<String>,
    /// Seconds per target.
    #[arg(long, value_name = "S", default_value_t = crate::fuzz::DEFAULT_SECONDS)]
    time: u64,
    /// Build with AddressSanitizer (`-s address`, with RUSTC_BOOTSTRAP=1 on stable Rust).
    #[arg(long)]
    asan: bool,
}

/// Options of `./x kut`.
#[derive(Args, Debug)]
struct KutArgs {
    /// A kvm-unit-tests build: a directory with `unittests.cfg` and the `.flat` images (`arm`
    /// runs as AArch32), or one holding `arm64/` and `arm/` [default: ../shared/kvm-unit-tests].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Only these tests (`unittests.cfg` section names).
    #[arg(long, value_name = "NAME", num_args = 1..)]
    only: Vec<String>,
    /// Run each test this many times.
    #[arg(long, value_name = "N", default_value_t = 1)]
    runs: u32,
}

/// Options of `./x kvm-run`.
#[derive(Args, Debug)]
struct KvmRunArgs {
    /// A raw AArch64 image, loaded and entered at RAM base + 0x80000 with `x0` = its device
    /// tree (the one Moat would give it) [default: the check guest].
    #[arg(long, value_name = "FILE")]
    guest: Option<PathBuf>,
    /// The number of vCPUs (1..=8); vCPU 0 starts, PSCI `CPU_ON` starts the others.
    #[arg(long, value_name = "N", default_value_t = 1)]
    smp: u32,
    /// The guest's RAM at 0x4000_0000, e.g. 128M.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    mem: Option<u64>,
    /// How the host runs KVM: `nvhe` (`kvm-arm.mode=nvhe`), `vhe`, or `both`.
    #[arg(long, value_enum, default_value = "both")]
    mode: KvmMode,
    /// The guest's command line (`/chosen/bootargs` of its device tree), e.g. `moat.test=NAME`.
    #[arg(long, value_name = "ARGS")]
    append: Option<String>,
    /// Give the vCPUs KVM's virtual PMUv3, as QEMU does for a KVM guest by default.
    #[arg(long)]
    pmu: bool,
    /// Leave out KVM's in-kernel vGICv3 (as issue 9's first KVM figures were measured); a
    /// guest's access to the GIC then ends the run.
    #[arg(long, conflicts_with = "pmu")]
    no_vgic: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum KvmMode {
    Vhe,
    Nvhe,
    Both,
}

/// Options of `./x linux-fetch`.
#[derive(Args, Debug)]
struct LinuxFetchArgs {
    /// Look for newer packages even when the cache is complete.
    #[arg(long)]
    refresh: bool,
    /// Also make the Debian 12 arm64 root file system image when the cache has none:
    /// debootstrap on the host, its second stage in bare QEMU (tens of minutes under TCG).
    #[arg(long)]
    rootfs: bool,
}

/// Options of `./x debian`.
#[derive(Args, Debug)]
struct DebianArgs {
    /// Under Moat (configs/debian.toml, the two PCI functions assigned) instead of bare QEMU.
    #[arg(long)]
    moat: bool,
    /// Attach the console instead of running the test (Ctrl-A X quits QEMU).
    #[arg(long)]
    interactive: bool,
}

/// Options of `./x sweep`.
#[derive(Args, Debug)]
struct SweepArgs {
    /// The CPU model, for both runs [default: cortex-a72, then max].
    #[arg(long)]
    cpu: Option<String>,
    /// Only blocks LO-HI (a block is one `op0`/`op1`/`CRn`: block = (op0-1)*128 + op1*16 + CRn).
    #[arg(long, value_name = "LO-HI")]
    blocks: Option<String>,
    /// Print every differing access with its category, not only the unexplained ones.
    #[arg(long)]
    list: bool,
}

/// Options of `./x neighbour`.
#[derive(Args, Debug)]
struct NeighbourArgs {
    /// Chaos operations in all (over every round and both chaos vCPUs).
    #[arg(long, default_value_t = 10_000_000)]
    ops: u64,
    /// Rounds: the chaos VM resets and restarts after each.
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    /// The CPU model.
    #[arg(long, default_value = "max")]
    cpu: String,
}

/// Options of `./x chaos`.
#[derive(Args, Debug)]
struct ChaosArgs {
    /// Operations per vCPU.
    #[arg(long, default_value_t = 10_000)]
    ops: u64,
    /// The seed (decimal or 0x-hex).
    #[arg(long, default_value = "1", value_parser = parse_seed)]
    seed: u64,
    /// vCPUs (1..=4).
    #[arg(long, default_value_t = 2)]
    smp: u32,
    /// The CPU model, for both runs [default: cortex-a72, then max].
    #[arg(long)]
    cpu: Option<String>,
    /// Run the guest bare on QEMU only and print its block hashes.
    #[arg(long)]
    bare: bool,
    /// Operations per hashed block.
    #[arg(long, default_value_t = 1024)]
    block: u64,
    /// Run only these op indices (`a-b,c,...`), with every record compared.
    #[arg(long, value_name = "LIST")]
    only: Option<String>,
    /// Reduce the first failure to a minimal op list (delta debugging) and print the command.
    #[arg(long)]
    reduce: bool,
    /// Also the operations left out of the default mix because they differ by design (a
    /// branch to a device window, `DC ZVA` with the MMU off): docs/chaos.md.
    #[arg(long)]
    full: bool,
    /// Enable the GIC and put interrupt probes among the ops (an own SGI, PPI or SPI made
    /// pending, then ICC_HPPIR1_EL1/ICC_IAR1_EL1 read and the interrupt ended), timer
    /// interrupts woken from WFI or PSCI CPU_SUSPEND, and rounds that cross vCPUs (SGIs, SPIs,
    /// shared distributor state) checked by invariant: docs/chaos.md.
    #[arg(long)]
    irq: bool,
    /// Run a quarter of the loads, stores, branches, cache/AT, system-register, SMCCC and
    /// instruction-word ops at EL0, under EL0 access controls drawn per op (SCTLR_EL1.UCI, UCT,
    /// DZE, UMA; CNTKCTL_EL1; PMUSERENR_EL0; CPACR_EL1.FPEN): docs/chaos.md.
    #[arg(long)]
    el0: bool,
}

fn parse_seed(text: &str) -> Result<u64, String> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .map_err(|e| format!("{text:?}: {e}"))
}

/// Options of `./x bench`.
#[derive(Args, Debug)]
struct BenchArgs {
    /// Which benchmark [default: all, and BENCHMARKS.md rewritten].
    #[arg(value_enum)]
    which: Option<Bench>,
    /// `stage2`: repetitions per operation (the median is reported).
    #[arg(long, default_value_t = 9)]
    reps: u32,
    /// `exits`: a few short batches only (the smoke run of `./x test`; figures are rough).
    #[arg(long)]
    quick: bool,
    /// `exits`: also Linux KVM (nVHE, and VHE where the CPU model has it) in the same QEMU,
    /// running the same guest through Moat's KVM runner (`./x bench` always includes it).
    #[arg(long)]
    kvm: bool,
    /// `exits`: this CPU model only (QEMU's `-cpu`, e.g. `cortex-a72`) instead of each of the
    /// repository's; the tables are printed, `BENCHMARKS.md` is not touched.
    #[arg(long, value_name = "MODEL")]
    cpu: Option<String>,
    /// `trace`: the operation whose exit is traced.
    #[arg(long, value_name = "OP",
        value_parser = clap::builder::PossibleValuesParser::new(crate::exittrace::OPS))]
    op: Option<String>,
    /// `pci`: under Moat (configs/debian.toml) instead of bare QEMU.
    #[arg(long)]
    moat: bool,
    /// `pci`: bare QEMU and Moat alternately, RUNS boots each, then the means and Moat / bare.
    #[arg(long, value_name = "RUNS", conflicts_with = "moat")]
    compare: Option<u32>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Bench {
    Exits,
    Stage2,
    Boot,
    /// 64 MiB through busybox nc between the two Linux VMs of configs/two-linux.toml.
    Net,
    /// fio and iperf3 in Debian 12 on virtio-blk-pci and virtio-net-pci (bare QEMU, `--moat`,
    /// or `--compare RUNS` for both); `./x bench` without a name runs `--compare 3` (making the
    /// root file system image first if the cache has none).
    Pci,
    /// One exit of an `exits` operation (`--op`) traced instruction by instruction through
    /// QEMU's gdb stub, by function (`--cpu`, default cortex-a72); not part of `./x bench`.
    Trace,
}

/// Options of `./x run`.
#[derive(Args, Debug)]
struct RunArgs {
    /// The guest to boot: an ELF file (by its program headers), an arm64 `Image` (at RAM
    /// base + its text offset) or a raw binary (at RAM base + 0x80000). Default: the greeting
    /// guest.
    #[arg(long, value_name = "FILE")]
    guest: Option<PathBuf>,
    /// A Linux kernel (an arm64 `Image`), booted by the Linux boot protocol; without
    /// `--append` its command line is `console=ttyAMA0 earlycon=pl011,<UART base>`.
    #[arg(long, value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// An initrd or initramfs for `--kernel`, `--linux` or `--guest` (as QEMU's `-initrd`):
    /// placed in guest RAM at RAM base + min(RAM / 2, 128 MiB), or at the first 2 MiB boundary
    /// after the image if it does not fit there, and named in the device tree's `/chosen`.
    #[arg(long, value_name = "FILE")]
    initrd: Option<PathBuf>,
    /// Boot Debian's arm64 cloud kernel with a busybox initramfs (fetched into the cache on
    /// first use; see `./x linux-fetch`). This is the default when no guest is named, on 2
    /// vCPUs unless `--smp` or `--config` says otherwise.
    #[arg(long)]
    linux: bool,
    /// Boot the small greeting guest instead of Linux.
    #[arg(long)]
    hello: bool,
    /// Boot the kernel directly on QEMU, without Moat (a reference for `--kernel`/`--linux`).
    #[arg(long)]
    bare: bool,
    /// A VM description (TOML); see configs/. Options below override it. A system description
    /// (`[[vm]]` tables) names every VM's images and CPUs itself: the options that describe one
    /// VM are refused with it, and QEMU gets CPUs 0 to the highest one a VM names.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The VM's IPA size S in bits (32..=48, at most the CPU's IPA limit).
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    ipa_bits: Option<u32>,
    /// The PARange the guest reads: `max` (the IPA limit L) or `tight` (the smallest that
    /// covers S).
    #[arg(long, value_enum)]
    parange: Option<Parange>,
    /// QEMU's CPU model.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_CPU)]
    cpu: String,
    /// The size of the VM's RAM, e.g. 128M or 1G.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    mem: Option<u64>,
    /// The number of vCPUs (1..=8), each run by its own CPU of the machine; overrides the VM
    /// description's `cpus`.
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    smp: Option<u32>,
    /// The guest's command line (`/chosen/bootargs`). For a Linux kernel without `--config`,
    /// the default is `console=ttyAMA0 earlycon=pl011,<UART base>`.
    #[arg(long, value_name = "ARGS")]
    append: Option<String>,
    /// Stop QEMU after this many seconds (default: no limit).
    #[arg(long, allow_negative_numbers = true, value_name = "SECONDS")]
    timeout: Option<u64>,
    /// Moat's own command line (its `/chosen/bootargs`): `moat.self-test=stop-vm:N` stops VM
    /// N (description order, from 0) at its next trap as Moat stops a VM it has no outcome
    /// for; `moat.self-test=el2-stack-overflow` overflows Moat's stack (a Moat bug's report).
    #[arg(long, value_name = "ARGS")]
    moat_append: Option<String>,
    /// One more argument for QEMU (repeat it for several), e.g. the PCI device a description's
    /// `pci = ["00:01.0"]` assigns: `--qemu-arg=-device --qemu-arg=virtio-blk-pci,addr=01.0,
    /// disable-legacy=on,iommu_platform=on,drive=d`. A description with PCI functions runs on
    /// QEMU 10 (fetched into the cache, `./x qemu-fetch`) with `-M iommu=smmuv3 -nic none`.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    qemu_arg: Vec<String>,
    /// The machine Moat runs on: QEMU's `virt` (GICv3, PL011), `virt-gicv2` (the same with a
    /// GICv2 and its virtualization extension, `gic-version=2`: the VM gets a GICv2, its CPU
    /// interface the hardware's), or QEMU's model of the Xilinx ZCU102 board (4 Cortex-A53s,
    /// 2 GiB, GIC-400, Cadence UART, Debian's device tree of the board; the VM gets a GICv2,
    /// its CPU interface the GIC-400's GICV at frame base + 0xF000).
    #[arg(long, value_enum, default_value = "virt")]
    board: Board,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Board {
    Virt,
    VirtGicv2,
    Zcu102,
}

/// Options of `./x difftest`.
#[derive(Args, Debug)]
struct DifftestArgs {
    /// The machine Moat runs on: QEMU's `virt` (every configuration, AArch64 and AArch32),
    /// or the ZCU102 model (`xlnx-zcu102,virtualization=on`: the probe in a GICv2 VM on the
    /// board's Cortex-A53s, PARange 40, against bare `virt -cpu cortex-a53`).
    #[arg(long, value_enum, default_value = "virt")]
    board: DifftestBoard,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DifftestBoard {
    Virt,
    Zcu102,
}

/// Options of `./x test`.
#[derive(Args, Debug)]
struct TestArgs {
    /// Only the guest tests (skip formatting, lints and host unit tests).
    #[arg(long)]
    guests_only: bool,
    /// Only the QEMU cases of several VMs side by side (system descriptions, lifecycle,
    /// isolation, virtio-net links, the shipped two-VM configurations): no static checks.
    #[arg(long, conflicts_with = "guests_only")]
    systems_only: bool,
    /// Only the PCI cases on QEMU 10 (the scan, assignment, DMA isolation, INTx): no static
    /// checks.
    #[arg(long, conflicts_with_all = ["guests_only", "systems_only"])]
    pci_only: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Parange {
    Max,
    Tight,
}

fn parse_size(text: &str) -> Result<u64, String> {
    moat_config::parse_size(text).map_err(|e| e.to_string())
}

impl Cli {
    /// Carries out the command.
    ///
    /// # Errors
    ///
    /// Usage errors (exit status 2) and failures (exit status 1), each one line.
    pub fn run(self) -> XResult<ExitCode> {
        match self.command {
            Command::Build => build::build_bare().map(|_| ExitCode::SUCCESS),
            Command::Run(args) => run(&args),
            Command::Test(args) if args.systems_only => harness::test_systems(),
            Command::Test(args) if args.pci_only => harness::test_pci(),
            Command::Test(args) => harness::test_all(args.guests_only),
            Command::Bench(args) => bench(&args),
            Command::Explain(args) => crate::explain::run(&args),
            Command::Fuzz(args) => {
                crate::fuzz::command(args.target.as_deref(), args.time, args.asan)
            }
            Command::KvmRun(args) => {
                let modes: &[crate::kvm::Mode] = match args.mode {
                    KvmMode::Vhe => &[crate::kvm::Mode::Vhe],
                    KvmMode::Nvhe => &[crate::kvm::Mode::Nvhe],
                    KvmMode::Both => &crate::kvm::Mode::ALL,
                };
                let options = crate::kvm::KvmOptions {
                    pmu: args.pmu,
                    vgic: !args.no_vgic,
                };
                let request = VmRequest {
                    cpus: Some(args.smp),
                    mem: args.mem,
                    bootargs: args.append.clone(),
                    ..VmRequest::default()
                };
                crate::kvm::command(args.guest.as_deref(), &request, modes, options)
            }
            Command::LinuxFetch(args) => {
                let guest = linux::prefetch(args.refresh)?;
                println!(
                    "kernel {} ({})",
                    guest.kernel.display(),
                    guest.kernel_package
                );
                println!("initramfs {}", guest.initramfs.display());
                if args.rootfs {
                    let root = linux::root_linux()?;
                    println!("root initramfs {}", root.initramfs.display());
                    println!("rootfs {}", linux::rootfs::image()?.display());
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::QemuFetch => {
                let qemu = crate::qemu10::qemu()?;
                println!("qemu {} ({})", qemu.binary().display(), qemu.version);
                Ok(ExitCode::SUCCESS)
            }
            Command::Debian(args) => {
                let side = side(args.moat);
                if args.interactive {
                    let mode = crate::debian::DiskMode::Persistent;
                    let outcome =
                        crate::debian::boot(side, ConsoleMode::Interactive, None, mode, false)?;
                    return Ok(if side == crate::debian::Side::Moat {
                        outcome.run_exit_code(None)
                    } else {
                        ExitCode::SUCCESS
                    });
                }
                crate::debian::check(side)
            }
            Command::Sweep(args) => sweep(&args),
            Command::Chaos(args) => chaos(&args),
            Command::Neighbour(args) => {
                crate::qemu::check_cpu(&args.cpu)?;
                crate::neighbour::command(&crate::neighbour::Params {
                    ops: args.ops,
                    rounds: args.rounds,
                    cpu: args.cpu,
                })
            }
            Command::Kut(args) => {
                let dir = args
                    .dir
                    .unwrap_or_else(|| build::repo_root().join("../shared/kvm-unit-tests"));
                let selection = crate::kut::Selection {
                    only: args.only,
                    runs: args.runs,
                };
                let artifacts = build::build_bare()?;
                Ok(if crate::kut::command(&artifacts, &dir, &selection)? {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            Command::Difftest(args) => {
                let board = match args.board {
                    DifftestBoard::Virt => crate::difftest::Board::Virt,
                    DifftestBoard::Zcu102 => crate::difftest::Board::Zcu102,
                };
                let totals = crate::difftest::run(&build::build_bare()?, board)?;
                println!("{} passed, {} failed", totals.passed, totals.failed);
                Ok(if totals.failed == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
        }
    }
}

fn sweep(args: &SweepArgs) -> XResult<ExitCode> {
    let (lo, hi) = match &args.blocks {
        None => (0, crate::sweep::BLOCKS - 1),
        Some(text) => text
            .split_once('-')
            .and_then(|(lo, hi)| Some((lo.parse().ok()?, hi.parse().ok()?)))
            .filter(|&(lo, hi)| lo <= hi && hi < crate::sweep::BLOCKS)
            .ok_or_else(|| usage(format!("--blocks: want LO-HI below 384, got {text:?}")))?,
    };
    let cpus: Vec<String> = match &args.cpu {
        Some(cpu) => vec![cpu.clone()],
        None => harness::CPUS.iter().map(|c| (*c).to_owned()).collect(),
    };
    let artifacts = build::build_bare()?;
    let mut clean = true;
    for cpu in &cpus {
        let summary = crate::sweep::sweep(&artifacts, cpu, lo, hi)?;
        crate::sweep::print(cpu, &summary, args.list);
        clean &= summary.clean();
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn chaos(args: &ChaosArgs) -> XResult<ExitCode> {
    if !(1..=4).contains(&args.smp) {
        return Err(usage(format!("--smp: want 1..=4, got {}", args.smp)));
    }
    if args.block == 0 || args.ops.div_ceil(args.block) > 16 * 1024 {
        return Err(usage("--block: want at most 16384 blocks of at least 1 op"));
    }
    let only = match &args.only {
        None => None,
        Some(text) => Some(
            crate::chaos::parse_ranges(text)
                .filter(|l| !l.is_empty())
                .ok_or_else(|| usage(format!("--only: want a list like 1-5,9, got {text:?}")))?,
        ),
    };
    let cpus: Vec<String> = match &args.cpu {
        Some(cpu) => {
            crate::qemu::check_cpu(cpu)?;
            vec![cpu.clone()]
        }
        None => harness::CPUS.iter().map(|c| (*c).to_owned()).collect(),
    };
    let artifacts = build::build_bare()?;
    println!("{}", crate::chaos::qemu_version());
    let mut clean = true;
    for cpu in cpus {
        let params = crate::chaos::Params {
            cpu,
            seed: args.seed,
            ops: args.ops,
            smp: args.smp,
            block: args.block,
            only: only.clone(),
            full: args.full,
            irq: args.irq,
            el0: args.el0,
        };
        println!(
            "chaos -cpu {}, {} vCPUs, seed {:#x}, {} ops per vCPU",
            params.cpu, params.smp, params.seed, params.ops
        );
        if args.bare {
            clean &= crate::chaos::bare_only(&artifacts, &params)?;
            continue;
        }
        let summary = crate::chaos::compare(&artifacts, &params)?;
        crate::chaos::print(&params, &summary);
        clean &= summary.clean();
        if args.reduce && !summary.clean() {
            crate::chaos::reduce(&artifacts, &params, &summary)?;
        }
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The side `--moat` picks for the Debian VM.
fn side(moat: bool) -> crate::debian::Side {
    if moat {
        crate::debian::Side::Moat
    } else {
        crate::debian::Side::Bare
    }
}

fn bench(args: &BenchArgs) -> XResult<ExitCode> {
    let which = match args.which {
        None => return crate::benchmarks::run_all(),
        Some(Bench::Exits) => {
            return crate::exitbench::run(args.quick, args.kvm, args.cpu.as_deref());
        }
        Some(Bench::Trace) => {
            let Some(op) = args.op.as_deref() else {
                return Err(usage(format!(
                    "bench trace needs --op (one of: {})",
                    crate::exittrace::OPS.join(", ")
                )));
            };
            return crate::exittrace::run(op, args.cpu.as_deref().unwrap_or("cortex-a72"));
        }
        Some(Bench::Stage2) => "stage2",
        Some(Bench::Boot) => return crate::bootbench::run(),
        Some(Bench::Net) => return crate::netbench::run(),
        Some(Bench::Pci) => {
            return match args.compare {
                Some(runs) => crate::iobench::compare(runs.max(1)),
                None => crate::iobench::run(side(args.moat)),
            };
        }
    };
    let reps = args.reps.to_string();
    build::run_step(
        build::host_cargo().args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "moat-bench",
            "--",
            which,
            &reps,
        ]),
        "the benchmark",
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The CPU model of the run: `--cpu` on `virt`; the board's Cortex-A53 on the ZCU102, where
/// `--cpu` (and `--bare`, which boots on `virt`) are refused.
fn board_cpu(args: &RunArgs) -> XResult<&str> {
    match args.board {
        Board::Virt | Board::VirtGicv2 => Ok(&args.cpu),
        Board::Zcu102 if args.bare => Err(usage(
            "--bare: the bare reference boots on virt, not with --board zcu102",
        )),
        Board::Zcu102 if args.cpu != DEFAULT_CPU && args.cpu != ZCU102_CPU => Err(usage(format!(
            "--cpu {}: the ZCU102's cores are Cortex-A53s ({ZCU102_CPU}); --board zcu102 takes no other",
            args.cpu
        ))),
        Board::Zcu102 => Ok(ZCU102_CPU),
    }
}

/// `--cpu`'s default.
const DEFAULT_CPU: &str = "max,pauth-impdef=on";
/// The ZCU102's cores.
const ZCU102_CPU: &str = "cortex-a53";

/// Refuses a VM that, with Moat and its bundle, does not fit the ZCU102 model's 2 GiB.
fn check_fits_zcu102(config: &moat_config::VmConfig, bundle_bytes: u64) -> XResult<()> {
    let need = vm::machine_mem_mib(config, bundle_bytes);
    let board = crate::board::ZCU102_MEM_MIB;
    if need <= board {
        return Ok(());
    }
    let guest: u64 = config.ram.iter().map(|r| r.size >> 20).sum();
    Err(usage(format!(
        "--mem: the VM's {guest} MiB of RAM need a {need} MiB machine (with Moat and the bundle), but the ZCU102 model runs with {board} MiB"
    )))
}

fn run(args: &RunArgs) -> XResult<ExitCode> {
    if let Some(path) = &args.config {
        let file = Named::new("--config", path);
        let dir = path.parent().unwrap_or_else(|| std::path::Path::new(""));
        let parsed = moat_config::SystemFile::from_toml_str(&file.read_text()?, dir)
            .map_err(|e| file.refuse(e))?;
        if let Some(images) = parsed.images {
            crate::system::refuse_single_vm_options(path, &single_vm_options(args))?;
            let run = crate::system::SystemRun {
                path,
                system: parsed.system,
                images,
                cpu: &args.cpu,
                timeout: args.timeout,
                moat_append: args.moat_append.as_deref(),
                qemu_args: &args.qemu_arg,
            };
            return run.run();
        }
    }
    // Without a guest named, `./x run` boots Debian's Linux on 2 vCPUs.
    let default_linux = args.guest.is_none() && args.kernel.is_none() && !args.hello;
    let default_cpus = (default_linux && args.config.is_none()).then_some(2);
    let request = VmRequest {
        config: args.config.clone(),
        ipa_bits: args.ipa_bits,
        parange: args.parange.map(|p| match p {
            Parange::Max => ParangeMode::Max,
            Parange::Tight => ParangeMode::Tight,
        }),
        mem: args.mem,
        bootargs: args.append.clone(),
        cpus: args.smp.or(default_cpus),
        // The ZCU102's GIC-400 is a GICv2: so is the VM's.
        gic_v2: matches!(args.board, Board::VirtGicv2 | Board::Zcu102),
    };
    // The VM and the files named are checked before anything is fetched or built.
    let cpu = board_cpu(args)?;
    crate::qemu::check_cpu(cpu)?;
    let mut config = vm::describe(&request, cpu)?;
    let choice = guest_choice(args, &config, default_linux)?;
    let (guest, initrd) = match choice {
        GuestChoice::Linux(boot) => {
            if args.append.is_none() && args.config.is_none() {
                config.bootargs = default_linux_append(&config);
            }
            if args.bare {
                return run_bare(args, &config, &boot);
            }
            (Some(boot.kernel), boot.initrd)
        }
        GuestChoice::Other { image, initrd } => (image, initrd),
    };
    let kind = if args.kernel.is_some() || default_linux || args.linux {
        GuestKind::LinuxKernel
    } else {
        GuestKind::Any
    };
    let option = match kind {
        GuestKind::LinuxKernel if args.kernel.is_some() => "--kernel",
        GuestKind::LinuxKernel => "kernel",
        GuestKind::Any => "--guest",
    };
    // Without --initrd, `--linux` boots the cache's initramfs, which the messages name so.
    let initrd_option = if args.initrd.is_some() {
        "--initrd"
    } else {
        "initramfs"
    };
    let initrd_file = initrd.as_deref().map(|p| Named::new(initrd_option, p));
    // A guest the user named is loaded (and refused) before the build.
    let early = match &guest {
        Some(path) => Some(vm::bundle(
            &config,
            Named::new(option, path),
            kind,
            initrd_file,
        )?),
        None => None,
    };
    if let Some(bytes) = &early {
        vm::checked_machine_mem_mib(&config, bytes.len() as u64)?;
    }
    let artifacts: Artifacts = build::build_bare()?;
    let bundle_bytes = match early {
        Some(bytes) => bytes,
        None => {
            let hello = artifacts.guest("moat-guest-hello");
            vm::bundle(&config, Named::new("guest image", &hello), kind, None)?
        }
    };
    if args.board == Board::Zcu102 {
        check_fits_zcu102(&config, bundle_bytes.len() as u64)?;
    }
    // Everything this run writes is in a directory of its own, removed when the run ends.
    let scratch = Scratch::new("run")?;
    let bundle = scratch.join("vm.bundle");
    vm::write_file(&bundle, &bundle_bytes)?;
    let machine = Machine {
        cpu: args.cpu.clone(),
        mem_mib: vm::checked_machine_mem_mib(&config, bundle_bytes.len() as u64)?,
        kernel: artifacts.moat,
        initrd: Some(bundle.clone()),
        append: args.moat_append.clone(),
        el2: true,
        gic_version: if config.has_gic_v2() { 2 } else { 3 },
        smp: config.cpus,
    };
    drop(bundle_bytes);
    let limit = args.timeout.map(Duration::from_secs);
    let outcome = match args.board {
        Board::Virt | Board::VirtGicv2 => machine.run_for_pci(
            !config.pci.is_empty(),
            &args.qemu_arg,
            ConsoleMode::Interactive,
            limit,
        )?,
        Board::Zcu102 => {
            let dtb = crate::board::zcu102_dtb();
            let board = crate::board::Zcu102 {
                moat: &machine.kernel,
                bundle: &bundle,
                dtb: &dtb,
            };
            board.run(ConsoleMode::Interactive, limit)?
        }
    };
    drop(scratch);
    Ok(outcome.run_exit_code(args.timeout))
}

/// The options of `./x run` that describe one VM (refused with a system description).
fn single_vm_options(args: &RunArgs) -> crate::system::SingleVmOptions {
    crate::system::SingleVmOptions {
        given: vec![
            ("--guest", args.guest.is_some()),
            ("--kernel", args.kernel.is_some()),
            ("--initrd", args.initrd.is_some()),
            ("--linux", args.linux),
            ("--hello", args.hello),
            ("--bare", args.bare),
            ("--ipa-bits", args.ipa_bits.is_some()),
            ("--parange", args.parange.is_some()),
            ("--mem", args.mem.is_some()),
            ("--append", args.append.is_some()),
        ],
        smp: args.smp.is_some(),
    }
}

/// A Linux kernel to boot, with its initrd.
struct LinuxBoot {
    kernel: PathBuf,
    initrd: Option<PathBuf>,
}

/// The guest a run boots.
enum GuestChoice {
    /// A Linux kernel (`--kernel`, `--linux`, or the default).
    Linux(LinuxBoot),
    /// `--guest FILE` (or the greeting guest, `None`), with `--initrd` if given.
    Other {
        image: Option<PathBuf>,
        initrd: Option<PathBuf>,
    },
}

/// What `--kernel`/`--linux`/`--initrd`/`--guest`/`--bare` ask for, checked: one guest at
/// most, files that exist and are regular files, a kernel that is an arm64 `Image`.
fn guest_choice(
    args: &RunArgs,
    config: &moat_config::VmConfig,
    default_linux: bool,
) -> XResult<GuestChoice> {
    for (path, option) in [
        (&args.guest, "--guest"),
        (&args.kernel, "--kernel"),
        (&args.initrd, "--initrd"),
    ] {
        if let Some(path) = path {
            Named::new(option, path).check()?;
        }
    }
    let chosen = [
        args.guest.is_some(),
        args.kernel.is_some(),
        args.linux,
        args.hello,
    ];
    if chosen.iter().filter(|&&c| c).count() > 1 {
        return Err(usage(
            "--guest, --kernel, --linux and --hello each name the guest: give one of them",
        ));
    }
    if let Some(kernel) = &args.kernel {
        if args.bare {
            // QEMU boots it directly: checked here, as under Moat, for the same message.
            let file = Named::new("--kernel", kernel);
            let ram = config
                .ram
                .first()
                .ok_or_else(|| usage("the VM has no RAM"))?;
            moat_config::load_linux_kernel(&file.read()?, ram.base, ram.size)
                .map_err(|e| file.refuse(e))?;
        }
        return Ok(GuestChoice::Linux(LinuxBoot {
            kernel: kernel.clone(),
            initrd: args.initrd.clone(),
        }));
    }
    if args.linux || default_linux {
        let guest = linux::default_linux()?;
        let initrd = args.initrd.clone().unwrap_or(guest.initramfs);
        return Ok(GuestChoice::Linux(LinuxBoot {
            kernel: guest.kernel,
            initrd: Some(initrd),
        }));
    }
    if args.bare {
        return Err(usage("--bare needs --kernel or --linux"));
    }
    if args.initrd.is_some() && args.hello {
        return Err(usage("--initrd needs --guest, --kernel or --linux"));
    }
    Ok(GuestChoice::Other {
        image: args.guest.clone(),
        initrd: args.initrd.clone(),
    })
}

/// The default Linux command line for the VM's console UART.
fn default_linux_append(config: &moat_config::VmConfig) -> String {
    let uart = config.devices_of(moat_config::DeviceKind::Pl011).next();
    uart.map_or_else(
        || "console=ttyAMA0".into(),
        |u| linux::default_append(u.base.raw()),
    )
}

/// `--bare`: the kernel on QEMU alone, with the VM's RAM size and command line.
fn run_bare(args: &RunArgs, config: &moat_config::VmConfig, boot: &LinuxBoot) -> XResult<ExitCode> {
    let ram: u64 = config.ram.iter().map(|r| r.size).sum();
    let mem_mib = (ram >> 20).max(64);
    if mem_mib > vm::MACHINE_MEM_MAX_MIB {
        return Err(usage(format!(
            "--mem: {mem_mib} MiB of RAM, but QEMU's virt board (highmem=off) addresses at most {} MiB",
            vm::MACHINE_MEM_MAX_MIB
        )));
    }
    let machine = Machine {
        cpu: args.cpu.clone(),
        mem_mib,
        kernel: boot.kernel.clone(),
        initrd: boot.initrd.clone(),
        append: Some(config.bootargs.clone()),
        el2: false,
        gic_version: 3,
        smp: 1,
    };
    let outcome = machine.run(
        ConsoleMode::Interactive,
        args.timeout.map(Duration::from_secs),
    )?;
    Ok(if outcome.timed_out {
        ExitCode::from(124)
    } else {
        ExitCode::SUCCESS
    })
}
