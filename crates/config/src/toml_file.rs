//! VM description files (`configs/*.toml`), read by the host tool: a single VM described by
//! top-level keys (below), or a system of several VMs in `[[vm]]` tables (see
//! [`crate::system_file`]).
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
//! on-poweroff = "power-off-machine"   # or "halt-vm"
//! on-reset = "power-off-machine"      # or "restart", "halt-vm"
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
    HolePolicy, OnPowerOff, OnReset, PL011_SIZE, ParangeMode, RamRegion, VmConfig, first_cpus,
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

    /// An error about the file as a whole, without a position.
    pub(crate) fn plain(message: String) -> Self {
        Self {
            location: String::new(),
            message,
        }
    }
}

impl VmConfig {
    /// Reads a VM description file. The result is not validated: apply command-line overrides,
    /// then call [`VmConfig::validate`].
    ///
    /// # Errors
    ///
    /// [`TomlError`] for a syntax error, an unknown key (a system description's `[[vm]]`
    /// tables included), a value of the wrong type, an unknown device kind, PARange mode, hole
    /// policy or lifecycle action, or a malformed size.
    pub fn from_toml_str(text: &str) -> Result<Self, TomlError> {
        Ok(parse::<VmFile>(text)?.into_config())
    }
}

/// Parses `text` as a `T`, errors with their position.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TomlError> {
    ::toml::from_str(text).map_err(|e| TomlError::new(text, &e))
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
    #[serde(default, deserialize_with = "named")]
    on_poweroff: OnPowerOff,
    #[serde(default, deserialize_with = "named")]
    on_reset: OnReset,
}

/// One `[[vm]]` table of a system description: a single-VM file's keys, with `cpus` the list
/// of the machine's CPUs, and the VM's images.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct VmTable {
    name: String,
    #[serde(default = "default_ipa_bits")]
    ipa_bits: u32,
    #[serde(default, deserialize_with = "named")]
    parange: ParangeMode,
    #[serde(default, deserialize_with = "named")]
    arch: GuestArch,
    #[serde(default, deserialize_with = "cpu_list")]
    cpus: Vec<u32>,
    #[serde(default, deserialize_with = "named")]
    hole_policy: HolePolicy,
    #[serde(default)]
    bootargs: String,
    #[serde(default)]
    ram: Vec<RamEntry>,
    #[serde(default)]
    device: Vec<DeviceEntry>,
    #[serde(default, deserialize_with = "named")]
    on_poweroff: OnPowerOff,
    #[serde(default = "default_vm_on_reset", deserialize_with = "named")]
    on_reset: OnReset,
    /// `kernel = "path"` or `"linux"`.
    pub(crate) kernel: Option<String>,
    /// `guest = "path"` or a built-in guest's name.
    pub(crate) guest: Option<String>,
    /// `initrd = "path"`.
    pub(crate) initrd: Option<String>,
}

/// A system description's top level: `[[vm]]` tables only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SystemToml {
    pub(crate) vm: Vec<VmTable>,
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

/// A VM of a system description restarts alone when it resets.
fn default_vm_on_reset() -> OnReset {
    OnReset::Restart
}

impl VmFile {
    fn into_config(self) -> VmConfig {
        let cpus = self.cpus;
        VmConfig {
            name: self.name,
            ipa_bits: self.ipa_bits,
            parange: self.parange,
            arch: self.arch,
            cpus,
            physical_cpus: first_cpus(cpus),
            hole_policy: self.hole_policy,
            ram: ram_regions(&self.ram),
            devices: device_windows(&self.device, cpus),
            bootargs: self.bootargs,
            on_poweroff: self.on_poweroff,
            on_reset: self.on_reset,
        }
    }
}

impl VmTable {
    /// The VM's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The VM's description (its images are the caller's).
    pub(crate) fn config(&self) -> VmConfig {
        let cpus = u32::try_from(self.cpus.len()).unwrap_or(u32::MAX);
        VmConfig {
            name: self.name.clone(),
            ipa_bits: self.ipa_bits,
            parange: self.parange,
            arch: self.arch,
            cpus,
            physical_cpus: self.cpus.clone(),
            hole_policy: self.hole_policy,
            ram: ram_regions(&self.ram),
            devices: device_windows(&self.device, cpus),
            bootargs: self.bootargs.clone(),
            on_poweroff: self.on_poweroff,
            on_reset: self.on_reset,
        }
    }
}

fn ram_regions(entries: &[RamEntry]) -> Vec<RamRegion> {
    let ram = entries.iter().map(|r| RamRegion {
        base: Ipa(r.base),
        size: r.size,
    });
    ram.collect()
}

fn device_windows(entries: &[DeviceEntry], cpus: u32) -> Vec<DeviceWindow> {
    let devices = entries.iter().map(|d| DeviceWindow {
        kind: d.kind,
        base: Ipa(d.base),
        size: d.size.unwrap_or_else(|| default_window_size(d.kind, cpus)),
    });
    devices.collect()
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

impl Named for OnPowerOff {
    const WHAT: &'static str = "on-poweroff action";
    const NAMES: &'static [&'static str] = &["halt-vm", "power-off-machine"];
    fn from_name(name: &str) -> Option<Self> {
        Self::from_name(name)
    }
}

impl Named for OnReset {
    const WHAT: &'static str = "on-reset action";
    const NAMES: &'static [&'static str] = &["restart", "halt-vm", "power-off-machine"];
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

fn cpu_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u32>, D::Error> {
    deserializer.deserialize_seq(CpuListVisitor)
}

/// Accepts a list of CPU numbers, and says so when given anything else.
struct CpuListVisitor;

impl<'de> Visitor<'de> for CpuListVisitor {
    type Value = Vec<u32>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of the machine's CPUs such as [2, 3] (vCPU n runs on the n-th listed)")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u32>, A::Error> {
        let mut cpus = Vec::new();
        while let Some(cpu) = seq.next_element()? {
            cpus.push(cpu);
        }
        Ok(cpus)
    }
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
