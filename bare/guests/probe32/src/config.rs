//! The probe's bootargs (`/chosen/bootargs`): `probe.addrs=<hex>,...`,
//! `probe.mmu=off|lpae|short`, `probe.kinds=<kind>,...`, and the `SCTLR` flags `probe.hivecs`,
//! `probe.ee`, `probe.te`, `probe.span` and `probe.dssbs` (`0|1`).
//! Parsed without allocation: the lists stay `&str` and are walked again for every use.

use crate::kinds::{Kind, Shape};

/// The probe's translation regime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mmu {
    /// `SCTLR.M` = 0: every access goes to the address itself (32-bit: targets ≥ 2^32 skipped).
    Off,
    /// Long-descriptor tables (`TTBCR.EAE` = 1, 40-bit output addresses).
    Lpae,
    /// Short-descriptor tables (`TTBCR.EAE` = 0; supersections reach 40-bit addresses).
    Short,
}

impl Mmu {
    /// The shapes a run uses: none with the MMU off.
    pub const fn shapes(self) -> &'static [Shape] {
        match self {
            Self::Off => &[],
            Self::Lpae => &Shape::LPAE,
            Self::Short => &Shape::SHORT,
        }
    }

    /// The shapes of the address-dependent cases in output order: `None` alone with the MMU
    /// off.
    pub fn cases(self) -> impl Iterator<Item = Option<Shape>> {
        let unmapped = (self == Self::Off).then_some(None);
        unmapped
            .into_iter()
            .chain(self.shapes().iter().copied().map(Some))
    }

    /// The `probe.mmu` word.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Lpae => "lpae",
            Self::Short => "short",
        }
    }
}

/// What the bootargs asked for.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// The comma-separated target addresses (validated by [`parse`]).
    pub addrs: &'static str,
    /// The translation regime.
    pub mmu: Mmu,
    /// The comma-separated kinds to run, or `None` for all.
    pub kinds: Option<&'static str>,
    /// `SCTLR.V`: vectors at 0xffff0000 (needs the MMU on: nothing is there physically).
    pub hivecs: bool,
    /// `SCTLR.EE`: big-endian exception entry (`CPSR.E` = 1) and table walks.
    pub ee: bool,
    /// `SCTLR.TE`: exception handlers in T32 state (`CPSR.T` = 1 on entry).
    pub te: bool,
    /// `SCTLR.SPAN` (default 1): 0 sets `CPSR.PAN` on exception entry where FEAT_PAN exists.
    pub span: bool,
    /// `SCTLR.DSSBS` (default 0): the `CPSR.SSBS` exception entry sets, where FEAT_SSBS exists.
    pub dssbs: bool,
}

/// A bootargs value the probe does not accept (printed as `MOAT-PROBE-ERROR <message>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// `probe.addrs` has an entry that is not a hex number.
    Address(&'static str),
    /// `probe.mmu` is not `off`, `lpae` or `short`.
    Mmu(&'static str),
    /// A flag (`probe.hivecs`, `probe.ee`, ...) is neither `0` nor `1`.
    Flag(&'static str, &'static str),
    /// `probe.hivecs=1` with the MMU off.
    HivecsNeedMmu,
    /// `probe.kinds` names a kind the probe does not have.
    Kind(&'static str),
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Address(a) => write!(f, "probe.addrs: not a hex address: {a:?}"),
            Self::Mmu(v) => write!(f, "probe.mmu: want off, lpae or short, got {v:?}"),
            Self::Flag(key, v) => write!(f, "{key}: want 0 or 1, got {v:?}"),
            Self::HivecsNeedMmu => write!(
                f,
                "probe.hivecs=1 needs probe.mmu=lpae or short (nothing is at PA 0xffff0000)"
            ),
            Self::Kind(k) => write!(f, "probe.kinds: no kind named {k:?}"),
        }
    }
}

/// The value of the first `key=value` word of `bootargs`.
fn bootarg(bootargs: &'static str, key: &str) -> Option<&'static str> {
    bootargs
        .split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

/// Parses one address: hex, with or without `0x`.
fn parse_hex(text: &str) -> Option<u64> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    u64::from_str_radix(digits, 16).ok()
}

/// A `0|1` flag, `default` when absent.
fn flag(bootargs: &'static str, key: &'static str, default: bool) -> Result<bool, ConfigError> {
    match bootarg(bootargs, key) {
        None => Ok(default),
        Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(other) => Err(ConfigError::Flag(key, other)),
    }
}

/// Parses the probe's settings from `bootargs`.
///
/// # Errors
///
/// [`ConfigError`] for a value the probe cannot use.
pub fn parse(bootargs: &'static str) -> Result<Config, ConfigError> {
    let addrs = bootarg(bootargs, "probe.addrs").unwrap_or("");
    if let Some(bad) = list(addrs).find(|a| parse_hex(a).is_none()) {
        return Err(ConfigError::Address(bad));
    }
    let mmu = match bootarg(bootargs, "probe.mmu") {
        None | Some("off") => Mmu::Off,
        Some("lpae") => Mmu::Lpae,
        Some("short") => Mmu::Short,
        Some(other) => return Err(ConfigError::Mmu(other)),
    };
    let hivecs = flag(bootargs, "probe.hivecs", false)?;
    if hivecs && mmu == Mmu::Off {
        return Err(ConfigError::HivecsNeedMmu);
    }
    let ee = flag(bootargs, "probe.ee", false)?;
    let te = flag(bootargs, "probe.te", false)?;
    let span = flag(bootargs, "probe.span", true)?;
    let dssbs = flag(bootargs, "probe.dssbs", false)?;
    let kinds = bootarg(bootargs, "probe.kinds");
    if let Some(bad) =
        kinds.and_then(|k| list(k).find(|name| !Kind::all().any(|kind| kind.is_named(name))))
    {
        return Err(ConfigError::Kind(bad));
    }
    Ok(Config {
        addrs,
        mmu,
        kinds,
        hivecs,
        ee,
        te,
        span,
        dssbs,
    })
}

/// The non-empty entries of a comma-separated list.
fn list(text: &'static str) -> impl Iterator<Item = &'static str> {
    text.split(',').filter(|entry| !entry.is_empty())
}

impl Config {
    /// The target addresses, in bootargs order.
    pub fn addresses(&self) -> impl Iterator<Item = u64> {
        list(self.addrs).filter_map(parse_hex)
    }

    /// Whether `kind` is selected (`probe.kinds` names it, or is absent).
    pub fn wants(&self, kind: &Kind) -> bool {
        self.kinds
            .is_none_or(|kinds| list(kinds).any(|name| kind.is_named(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{Mode, Snippet};

    #[test]
    fn defaults_are_mmu_off_no_hivecs_no_ee_all_kinds_no_addresses() {
        let config = parse("console=ttyAMA0").unwrap();
        assert_eq!(config.mmu, Mmu::Off);
        assert!(!config.hivecs && !config.ee && !config.te && config.kinds.is_none());
        assert!(config.span && !config.dssbs);
        assert_eq!(config.addresses().count(), 0);
        assert!(Mmu::Off.shapes().is_empty());
        assert!(Mmu::Off.cases().eq([None]));
        assert!(Mmu::Short.cases().eq(Shape::SHORT.map(Some)));
    }

    #[test]
    fn addresses_are_64_bit_hex_in_order() {
        let config = parse("probe.addrs=0x50000000,10000000000,,0X10 probe.mmu=lpae").unwrap();
        let addresses: std::vec::Vec<u64> = config.addresses().collect();
        assert_eq!(addresses, [0x5000_0000, 0x100_0000_0000, 0x10]);
        assert_eq!(config.mmu.shapes(), Shape::LPAE);
    }

    #[test]
    fn bad_values_are_refused_with_the_offending_text() {
        assert_eq!(
            parse("probe.addrs=0xzz").unwrap_err(),
            ConfigError::Address("0xzz")
        );
        assert_eq!(parse("probe.mmu=on").unwrap_err(), ConfigError::Mmu("on"));
        assert_eq!(
            parse("probe.ee=2").unwrap_err(),
            ConfigError::Flag("probe.ee", "2")
        );
        assert_eq!(
            parse("probe.kinds=ldr_svc").unwrap_err(),
            ConfigError::Kind("ldr_svc")
        );
    }

    #[test]
    fn high_vectors_need_the_mmu() {
        assert_eq!(
            parse("probe.hivecs=1").unwrap_err(),
            ConfigError::HivecsNeedMmu
        );
        let config = parse("probe.hivecs=1 probe.mmu=short probe.ee=1 probe.span=0").unwrap();
        assert!(config.hivecs && config.ee && !config.span);
        assert_eq!(config.mmu.shapes(), Shape::SHORT);
    }

    #[test]
    fn kinds_filter_matches_whole_names_only() {
        let config = parse("probe.kinds=ldr_usr_section,bkpt_svc").unwrap();
        let ldr = |mode, shape| Kind {
            snippet: Snippet::Ldr,
            mode,
            shape,
        };
        assert!(config.wants(&ldr(Mode::Usr, Some(Shape::Section))));
        assert!(!config.wants(&ldr(Mode::Svc, Some(Shape::Section))));
        assert!(!config.wants(&ldr(Mode::Usr, None)));
        let bkpt = Kind {
            snippet: Snippet::Bkpt,
            mode: Mode::Svc,
            shape: None,
        };
        assert!(config.wants(&bkpt));
    }
}
