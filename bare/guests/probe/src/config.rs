//! The probe's bootargs (`/chosen/bootargs`): `probe.addrs=<hex>,...`, `probe.mmu=off|on`,
//! `probe.ips=<bits>`, `probe.kinds=<kind>,...` and `probe.span=0|1`. Parsed without allocation:
//! the lists stay `&str` and are walked again for every use.

use crate::kinds::Kind;
use crate::layout;

/// What the bootargs asked for.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// The comma-separated target addresses (validated by [`parse`]).
    pub addrs: &'static str,
    /// Whether to run with the probe's own stage-1 tables.
    pub mmu: bool,
    /// `TCR_EL1.IPS` as its encoding (from `probe.ips`, default 48 bits).
    pub ips: u64,
    /// The PA size in bits that `ips` encodes (for the diagnostic line).
    pub ips_bits: u32,
    /// The comma-separated kinds to run, or `None` for all.
    pub kinds: Option<&'static str>,
    /// `SCTLR_EL1.SPAN` (default 1: PSTATE.PAN unchanged on exception entry).
    pub span: bool,
}

/// A bootargs value the probe does not accept (printed as `MOAT-PROBE-ERROR <message>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// `probe.addrs` has an entry that is not a hex number.
    Address(&'static str),
    /// `probe.mmu` is neither `off` nor `on`.
    Mmu(&'static str),
    /// `probe.ips` is not one of 32, 36, 40, 42, 44, 48, 52.
    Ips(&'static str),
    /// `probe.span` is neither `0` nor `1`.
    Span(&'static str),
    /// `probe.kinds` names a kind the probe does not have.
    Kind(&'static str),
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Address(a) => write!(f, "probe.addrs: not a hex address: {a:?}"),
            Self::Mmu(v) => write!(f, "probe.mmu: want off or on, got {v:?}"),
            Self::Ips(v) => write!(f, "probe.ips: want 32|36|40|42|44|48|52, got {v:?}"),
            Self::Span(v) => write!(f, "probe.span: want 0 or 1, got {v:?}"),
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
        None | Some("off") => false,
        Some("on") => true,
        Some(other) => return Err(ConfigError::Mmu(other)),
    };
    let ips_text = bootarg(bootargs, "probe.ips").unwrap_or("48");
    let ips_bits = ips_text.parse::<u32>().ok();
    let ips = ips_bits
        .and_then(layout::ips_encoding)
        .ok_or(ConfigError::Ips(ips_text))?;
    let span = match bootarg(bootargs, "probe.span") {
        None | Some("1") => true,
        Some("0") => false,
        Some(other) => return Err(ConfigError::Span(other)),
    };
    let kinds = bootarg(bootargs, "probe.kinds");
    if let Some(bad) =
        kinds.and_then(|k| list(k).find(|name| !Kind::all().any(|kind| kind.is_named(name))))
    {
        return Err(ConfigError::Kind(bad));
    }
    Ok(Config {
        addrs,
        mmu,
        ips,
        ips_bits: ips_bits.unwrap_or(48),
        kinds,
        span,
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
    use crate::layout::Shape;

    #[test]
    fn defaults_are_mmu_off_ips_48_span_1_all_kinds_no_addresses() {
        let config = parse("console=ttyAMA0").unwrap();
        assert!(!config.mmu && config.span && config.kinds.is_none());
        assert_eq!((config.ips, config.ips_bits), (5, 48));
        assert_eq!(config.addresses().count(), 0);
    }

    #[test]
    fn addresses_are_hex_with_or_without_0x_in_order() {
        let config = parse("probe.addrs=0x50000000,fffffffff000,,0X10 probe.mmu=on").unwrap();
        let mut addresses = config.addresses();
        assert_eq!(addresses.next(), Some(0x5000_0000));
        assert_eq!(addresses.next(), Some(0xffff_ffff_f000));
        assert_eq!(addresses.next(), Some(0x10));
        assert_eq!(addresses.next(), None);
        assert!(config.mmu);
    }

    #[test]
    fn bad_values_are_refused_with_the_offending_text() {
        assert_eq!(
            parse("probe.addrs=0x1,0xzz").unwrap_err(),
            ConfigError::Address("0xzz")
        );
        assert_eq!(parse("probe.mmu=yes").unwrap_err(), ConfigError::Mmu("yes"));
        assert_eq!(parse("probe.ips=41").unwrap_err(), ConfigError::Ips("41"));
        assert_eq!(parse("probe.span=2").unwrap_err(), ConfigError::Span("2"));
        assert_eq!(
            parse("probe.kinds=ldr,ldr_pages").unwrap_err(),
            ConfigError::Kind("ldr_pages")
        );
    }

    #[test]
    fn kinds_filter_matches_whole_names_only() {
        let config = parse("probe.kinds=ldr_page,brk_el0").unwrap();
        let ldr = |shape| Kind {
            snippet: Snippet::Ldr,
            mode: Mode::El1h,
            shape,
        };
        assert!(config.wants(&ldr(Some(Shape::Page))));
        assert!(!config.wants(&ldr(None)));
        assert!(!config.wants(&ldr(Some(Shape::Block2m))));
        assert!(config.wants(&Kind::brk(Mode::El0)));
        assert!(!config.wants(&Kind::brk(Mode::El1h)));
    }
}
