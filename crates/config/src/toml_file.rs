//! VM description files (`configs/*.toml`), read by the host tool.
//!
//! Keys are kebab-case like the host tool's options (`ipa-bits` for `--ipa-bits`); unknown keys
//! are refused, so a typo never silently falls back to a default. Sizes and addresses are TOML
//! integers (`0x4000_0000`) or strings (`"128M"`, `"0x1000"`, see [`parse_size`]). A device's
//! `size` may be left out: it then defaults to its kind's architectural window size.
//!
//! ```toml
//! name = "default"
//! ipa-bits = 40          # S, 32..=48
//! parange = "max"        # or "tight"
//! cpus = 1
//! hole-policy = "abort"  # or "raz-wi"
//! bootargs = "console=ttyAMA0"
//!
//! [[ram]]
//! base = 0x4000_0000
//! size = "128M"
//!
//! [[device]]
//! kind = "pl011"         # or "gicv3-dist", "gicv3-redist"
//! base = 0x0900_0000
//! ```

use core::fmt;

use moat_arm::addr::Ipa;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::schema::{
    DEFAULT_IPA_BITS, DeviceKind, DeviceWindow, GICD_SIZE, GICR_SIZE_PER_CPU, GuestArch,
    HolePolicy, PL011_SIZE, ParangeMode, RamRegion, VmConfig,
};
use crate::size::parse_size;

/// A VM description file that is not valid TOML or does not follow the schema: one line with
/// the line and column of the offending key or value and `toml`'s message.
#[derive(Debug, thiserror::Error)]
#[error("{location}{message}")]
pub struct TomlError {
    location: String,
    message: String,
}

impl TomlError {
    fn new(text: &str, error: &::toml::de::Error) -> Self {
        let location = error.span().map_or_else(String::new, |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: ")
        });
        let message = error.message().trim().replace('\n', "; ");
        Self { location, message }
    }
}

impl VmConfig {
    /// Reads a VM description file. The result is not validated: apply command-line overrides,
    /// then call [`VmConfig::validate`].
    ///
    /// # Errors
    ///
    /// [`TomlError`] for a syntax error, an unknown key, a value of the wrong type, an unknown
    /// device kind, PARange mode or hole policy, or a malformed size.
    pub fn from_toml_str(text: &str) -> Result<Self, TomlError> {
        let file: VmFile = ::toml::from_str(text).map_err(|e| TomlError::new(text, &e))?;
        Ok(file.into_config())
    }
}

/// The file's top level, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct VmFile {
    #[serde(default = "default_name")]
    name: String,
    #[serde(default = "default_ipa_bits")]
    ipa_bits: u32,
    #[serde(default, deserialize_with = "named")]
    parange: ParangeMode,
    #[serde(default, deserialize_with = "named")]
    arch: GuestArch,
    #[serde(default = "default_cpus")]
    cpus: u32,
    #[serde(default, deserialize_with = "named")]
    hole_policy: HolePolicy,
    #[serde(default)]
    bootargs: String,
    #[serde(default)]
    ram: Vec<RamEntry>,
    #[serde(default)]
    device: Vec<DeviceEntry>,
}

/// One `[[ram]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RamEntry {
    #[serde(deserialize_with = "number")]
    base: u64,
    #[serde(deserialize_with = "number")]
    size: u64,
}

/// One `[[device]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceEntry {
    #[serde(deserialize_with = "named")]
    kind: DeviceKind,
    #[serde(deserialize_with = "number")]
    base: u64,
    #[serde(default, deserialize_with = "optional_number")]
    size: Option<u64>,
}

fn default_name() -> String {
    "vm".into()
}

fn default_ipa_bits() -> u32 {
    DEFAULT_IPA_BITS
}

fn default_cpus() -> u32 {
    1
}

impl VmFile {
    fn into_config(self) -> VmConfig {
        let cpus = self.cpus;
        let ram = self.ram.iter().map(|r| RamRegion {
            base: Ipa(r.base),
            size: r.size,
        });
        let devices = self.device.iter().map(|d| DeviceWindow {
            kind: d.kind,
            base: Ipa(d.base),
            size: d.size.unwrap_or_else(|| default_window_size(d.kind, cpus)),
        });
        VmConfig {
            name: self.name,
            ipa_bits: self.ipa_bits,
            parange: self.parange,
            arch: self.arch,
            cpus,
            physical_cpus: (0..cpus).collect(),
            on_poweroff: crate::schema::OnPowerOff::PowerOffMachine,
            on_reset: crate::schema::OnReset::PowerOffMachine,
            hole_policy: self.hole_policy,
            ram: ram.collect(),
            devices: devices.collect(),
            bootargs: self.bootargs,
        }
    }
}

/// The window a device of `kind` needs in a VM of `cpus` vCPUs, when the file gives no size.
fn default_window_size(kind: DeviceKind, cpus: u32) -> u64 {
    match kind {
        DeviceKind::Pl011 => PL011_SIZE,
        DeviceKind::GicV3Distributor => GICD_SIZE,
        DeviceKind::GicV3Redistributors => GICR_SIZE_PER_CPU * u64::from(cpus.max(1)),
    }
}

/// The enums written as names in the file.
trait Named: Sized {
    /// What the value is, for messages.
    const WHAT: &'static str;
    /// Every accepted name, for messages.
    const NAMES: &'static [&'static str];
    fn from_name(name: &str) -> Option<Self>;
}

impl Named for ParangeMode {
    const WHAT: &'static str = "parange mode";
    const NAMES: &'static [&'static str] = &["max", "tight"];
    fn from_name(name: &str) -> Option<Self> {
        Self::from_name(name)
    }
}

impl Named for GuestArch {
    const WHAT: &'static str = "guest architecture";
    const NAMES: &'static [&'static str] = &["aarch64", "aarch32"];
    fn from_name(name: &str) -> Option<Self> {
        Self::from_name(name)
    }
}

impl Named for HolePolicy {
    const WHAT: &'static str = "hole policy";
    const NAMES: &'static [&'static str] = &["abort", "raz-wi"];
    fn from_name(name: &str) -> Option<Self> {
        Self::from_name(name)
    }
}

impl Named for DeviceKind {
    const WHAT: &'static str = "device kind";
    const NAMES: &'static [&'static str] = &["pl011", "gicv3-dist", "gicv3-redist"];
    fn from_name(name: &str) -> Option<Self> {
        Self::from_name(name)
    }
}

fn named<'de, D: Deserializer<'de>, T: Named>(deserializer: D) -> Result<T, D::Error> {
    let name = String::deserialize(deserializer)?;
    T::from_name(&name).ok_or_else(|| {
        let expected = T::NAMES.join(", ");
        de::Error::custom(format!(
            "unknown {} {name:?}: expected one of {expected}",
            T::WHAT
        ))
    })
}

fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(NumberVisitor)
}

fn optional_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    number(deserializer).map(Some)
}

/// Accepts a non-negative integer or a size string.
struct NumberVisitor;

impl Visitor<'_> for NumberVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer or a size string such as \"128M\" or \"0x1000\"")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        Ok(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
        u64::try_from(value).map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
        parse_size(text).map_err(E::custom)
    }
}

#[cfg(test)]
#[path = "toml_file_tests.rs"]
mod tests;
