//! The runner's command line, parsed without a crate (six options; clap would double the build
//! time of a binary that xtask builds on demand): what to load, where, and the VM's shape.

use crate::layout::{self, Layout};
use std::fmt;

/// What the user asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    /// The raw guest image, loaded at RAM base + [`layout::IMAGE_OFFSET`].
    pub image: String,
    /// The device tree blob the guest finds in `x0`.
    pub dtb: String,
    /// Where the device tree goes; `None`: Moat's rule ([`layout::default_dtb_addr`]).
    pub dtb_addr: Option<u64>,
    /// The guest RAM's size in bytes.
    pub mem: u64,
    /// The number of vCPUs; vCPU 0 starts, the others wait for PSCI `CPU_ON`.
    pub smp: u32,
    /// The VM's IPA size in bits (`KVM_VM_TYPE_ARM_IPA_SIZE`).
    pub ipa_bits: u32,
    /// Whether the vCPUs have KVM's virtual PMU (`KVM_ARM_VCPU_PMU_V3`), as QEMU gives a KVM
    /// guest by default; KVM then switches the PMU's state on every entry and exit.
    pub pmu: bool,
    /// Whether the VM has KVM's in-kernel vGICv3 (the default). Without it KVM runs the
    /// vCPUs with a userspace interrupt controller that the runner does not provide: a guest
    /// access to the GIC's windows is then an MMIO exit the runner reports, and the PL011's
    /// interrupt goes nowhere. It exists to measure what the vGIC changes in KVM's exit path.
    pub vgic: bool,
}

/// The defaults: 128 MiB, one vCPU, a 40-bit IPA space (QEMU virt's map as Moat builds it).
pub const DEFAULT_MEM: u64 = 128 << 20;
/// The default IPA size, Moat's default VM's.
pub const DEFAULT_IPA_BITS: u32 = 40;
/// The most vCPUs: the redistributor window of QEMU virt's map (0x080A_0000..0x0900_0000)
/// holds 123 frame pairs; Moat's VMs have at most 8.
pub const MAX_SMP: u32 = 8;

/// The usage text, printed for `--help` and after a usage error.
pub const USAGE: &str = "usage: moat-kvm-runner --image FILE --dtb FILE [--dtb-addr HEX] \
[--mem SIZE] [--smp N] [--ipa-bits N] [--pmu] [--no-vgic]
  --image FILE     raw guest image, loaded at 0x40080000 (RAM base + 0x80000)
  --dtb FILE       device tree blob; its address is in x0 at entry
  --dtb-addr HEX   where the device tree goes [default: the last 2 MiB block of RAM]
  --mem SIZE       guest RAM at 0x40000000, e.g. 128M [default: 128M]
  --smp N          vCPUs, 1..=8 [default: 1]
  --ipa-bits N     the VM's IPA size, 32..=48 [default: 40]
  --pmu            give the vCPUs KVM's virtual PMUv3 (its interrupt: PPI 7, INTID 23)
  --no-vgic        no in-kernel vGICv3 (guest GIC accesses end the run)";

/// Why the command line was refused: one line for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgsError {
    /// `--help` was asked for.
    Help,
    /// An option the runner does not know.
    Unknown(String),
    /// An option without its value.
    MissingValue(&'static str),
    /// A required option not given.
    Missing(&'static str),
    /// A value that does not parse or is out of range.
    Bad {
        /// The option.
        option: &'static str,
        /// What was wrong.
        why: String,
    },
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Help => f.write_str(USAGE),
            Self::Unknown(o) => write!(f, "unknown option {o}"),
            Self::MissingValue(o) => write!(f, "{o} needs a value"),
            Self::Missing(o) => write!(f, "{o} is required"),
            Self::Bad { option, why } => write!(f, "{option}: {why}"),
        }
    }
}

/// The options that take a value, by name.
const OPTIONS: [&str; 6] = [
    "--image",
    "--dtb",
    "--dtb-addr",
    "--mem",
    "--smp",
    "--ipa-bits",
];

impl Args {
    /// Parses the arguments after the program name.
    ///
    /// # Errors
    ///
    /// [`ArgsError`] naming the option at fault.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Self, ArgsError> {
        let mut values: [Option<String>; 6] = Default::default();
        let (mut pmu, mut vgic) = (false, true);
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--help" | "-h" => return Err(ArgsError::Help),
                "--pmu" => pmu = true,
                "--no-vgic" => vgic = false,
                _ => {}
            }
            if matches!(arg.as_str(), "--pmu" | "--no-vgic") {
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (arg.clone(), None),
            };
            let index = OPTIONS
                .iter()
                .position(|o| *o == name)
                .ok_or(ArgsError::Unknown(arg))?;
            let value = inline
                .or_else(|| args.next())
                .ok_or(ArgsError::MissingValue(OPTIONS[index]))?;
            values[index] = Some(value);
        }
        let [image, dtb, dtb_addr, mem, smp, ipa_bits] = values;
        let parsed = Self {
            image: image.ok_or(ArgsError::Missing("--image"))?,
            dtb: dtb.ok_or(ArgsError::Missing("--dtb"))?,
            dtb_addr: dtb_addr
                .map(|v| parse_hex(&v).map_err(|why| bad("--dtb-addr", why)))
                .transpose()?,
            mem: mem.map_or(Ok(DEFAULT_MEM), |v| {
                parse_size(&v).map_err(|why| bad("--mem", why))
            })?,
            smp: smp.map_or(Ok(1), |v| parse_in("--smp", &v, 1, MAX_SMP))?,
            ipa_bits: ipa_bits
                .map_or(Ok(DEFAULT_IPA_BITS), |v| parse_in("--ipa-bits", &v, 32, 48))?,
            pmu,
            vgic,
        };
        if parsed.pmu && !parsed.vgic {
            return Err(bad(
                "--pmu",
                "the virtual PMU's interrupt needs the in-kernel vGIC",
            ));
        }
        Ok(parsed)
    }

    /// The VM's memory layout for images of the given sizes.
    ///
    /// # Errors
    ///
    /// [`ArgsError::Bad`] when the RAM is too small for them, or does not fit the IPA space.
    pub fn layout(&self, image_len: u64, dtb_len: u64) -> Result<Layout, ArgsError> {
        layout::Layout::new(self.mem, self.ipa_bits, image_len, self.dtb_addr, dtb_len)
            .map_err(|why| bad("--mem/--dtb-addr", why.to_string()))
    }
}

fn bad(option: &'static str, why: impl Into<String>) -> ArgsError {
    ArgsError::Bad {
        option,
        why: why.into(),
    }
}

fn parse_in(option: &'static str, text: &str, min: u32, max: u32) -> Result<u32, ArgsError> {
    let n: u32 = text
        .parse()
        .map_err(|_| bad(option, format!("{text:?} is not a number")))?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(bad(option, format!("{n} is not in {min}..={max}")))
    }
}

/// A hexadecimal number, `0x` optional, `_` allowed between digits.
fn parse_hex(text: &str) -> Result<u64, String> {
    let digits = text.strip_prefix("0x").unwrap_or(text).replace('_', "");
    u64::from_str_radix(&digits, 16).map_err(|_| format!("{text:?} is not a hexadecimal number"))
}

/// A size in bytes with an optional `K`, `M` or `G` suffix (binary units).
fn parse_size(text: &str) -> Result<u64, String> {
    let (digits, shift) = match text.chars().last() {
        Some('K' | 'k') => (&text[..text.len() - 1], 10),
        Some('M' | 'm') => (&text[..text.len() - 1], 20),
        Some('G' | 'g') => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 128M)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, ArgsError> {
        Args::parse(args.iter().map(|s| (*s).to_string()))
    }

    #[test]
    fn image_and_dtb_alone_give_128_mib_one_vcpu_and_40_bit_ipa() {
        let args = parse(&["--image", "g.bin", "--dtb", "g.dtb"]).unwrap();
        assert_eq!(
            args,
            Args {
                image: "g.bin".into(),
                dtb: "g.dtb".into(),
                dtb_addr: None,
                mem: 128 << 20,
                smp: 1,
                ipa_bits: 40,
                pmu: false,
                vgic: true,
            }
        );
    }

    #[test]
    fn every_option_is_read_with_a_space_or_an_equals_sign() {
        let args = parse(&[
            "--image=g.bin",
            "--dtb",
            "g.dtb",
            "--dtb-addr=0x47e0_0000",
            "--mem",
            "256M",
            "--smp=4",
            "--ipa-bits",
            "44",
            "--pmu",
        ])
        .unwrap();
        assert!(args.pmu);
        assert_eq!(args.dtb_addr, Some(0x47e0_0000));
        assert_eq!(args.mem, 256 << 20);
        assert_eq!((args.smp, args.ipa_bits), (4, 44));
    }

    #[test]
    fn missing_image_or_dtb_is_named() {
        assert_eq!(parse(&["--dtb", "d"]), Err(ArgsError::Missing("--image")));
        assert_eq!(parse(&["--image", "i"]), Err(ArgsError::Missing("--dtb")));
    }

    #[test]
    fn an_option_at_the_end_without_its_value_is_refused() {
        assert_eq!(
            parse(&["--image", "i", "--dtb"]),
            Err(ArgsError::MissingValue("--dtb"))
        );
    }

    #[test]
    fn no_vgic_is_read_and_refused_with_the_pmu_whose_interrupt_needs_it() {
        let args = parse(&["--image", "i", "--dtb", "d", "--no-vgic"]).unwrap();
        assert!(!args.vgic);
        let err = parse(&["--no-vgic", "--image", "i", "--dtb", "d", "--pmu"]).unwrap_err();
        assert!(
            matches!(
                err,
                ArgsError::Bad {
                    option: "--pmu",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_options_and_help_are_reported() {
        assert_eq!(
            parse(&["--image", "i", "--dtb", "d", "--fast"]),
            Err(ArgsError::Unknown("--fast".into()))
        );
        assert_eq!(parse(&["--help"]), Err(ArgsError::Help));
    }

    #[test]
    fn smp_and_ipa_bits_outside_their_ranges_are_refused() {
        for (option, value) in [
            ("--smp", "0"),
            ("--smp", "9"),
            ("--ipa-bits", "31"),
            ("--ipa-bits", "49"),
        ] {
            let err = parse(&["--image", "i", "--dtb", "d", option, value]).unwrap_err();
            assert!(
                matches!(err, ArgsError::Bad { option: o, .. } if o == option),
                "{option} {value}: {err:?}"
            );
        }
    }

    #[test]
    fn sizes_take_binary_suffixes_and_refuse_garbage() {
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}
