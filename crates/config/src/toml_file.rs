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
//! pci = ["00:01.0"]      # the machine's PCI functions the VM owns
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
use core::ops::Range;

use moat_arm::addr::Ipa;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use crate::schema::{
    DEFAULT_IPA_BITS, DeviceKind, DeviceWindow, GICC_SIZE, GICD_SIZE, GICR_SIZE_PER_CPU, GuestArch,
    HolePolicy, OnPowerOff, OnReset, PL011_SIZE, ParangeMode, RamRegion, VIRTIO_NET_SIZE, VmConfig,
    first_cpus,
};
use crate::size::parse_size;
use moat_pci::Bdf;

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
        let location = error
            .span()
            .map_or_else(String::new, |span| location(text, &span));
        let message = error.message().trim().replace('\n', "; ");
        Self { location, message }
    }

    /// An error about what stands at `span` of `text`.
    pub(crate) fn at(text: &str, span: Range<usize>, message: String) -> Self {
        Self {
            location: location(text, &span),
            message,
        }
    }

    /// An error about the file as a whole, without a position.
    pub(crate) fn plain(message: String) -> Self {
        Self {
            location: String::new(),
            message,
        }
    }
}

/// `line L, column C: ` of the start of `span`.
fn location(text: &str, span: &Range<usize>) -> String {
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("line {line}, column {column}: ")
}

impl VmConfig {
    /// Reads a VM description file. The result is not validated: apply command-line overrides,
    /// then call [`VmConfig::validate`].
    ///
    /// # Errors
    ///
    /// [`TomlError`] for a syntax error, an unknown key (a system description's `[[vm]]`
    /// tables included), a value of the wrong type (`cpus` is a count here), an image key
    /// (`kernel`, `guest`, `initrd`: the command line names a single VM's images), an unknown
    /// device kind, PARange mode, hole policy or lifecycle action, or a malformed size.
    pub fn from_toml_str(text: &str) -> Result<Self, TomlError> {
        parse::<VmKeys>(text)?.single(text)
    }
}

/// Parses `text` as a `T`, errors with their position.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TomlError> {
    ::toml::from_str(text).map_err(|e| TomlError::new(text, &e))
}

/// The keys of one VM: the top level of a single-VM file, or one `[[vm]]` table of a system
/// description. The keys whose meaning depends on the form (`name`, `cpus`, `on-reset`, the
/// images) are kept as written, with their position, for [`VmKeys::single`] and
/// [`VmKeys::table`] to check.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct VmKeys {
    name: Option<String>,
    #[serde(default = "default_ipa_bits")]
    ipa_bits: u32,
    #[serde(default, deserialize_with = "named")]
    parange: ParangeMode,
    #[serde(default, deserialize_with = "named")]
    arch: GuestArch,
    cpus: Option<Spanned<Cpus>>,
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
    #[serde(default, deserialize_with = "optional_named")]
    on_reset: Option<OnReset>,
    #[serde(default, deserialize_with = "bdf_list")]
    pci: Vec<Bdf>,
    /// `kernel = "path"` or `"linux"` (`[[vm]]` tables only).
    pub(crate) kernel: Option<Spanned<String>>,
    /// `guest = "path"` or a built-in guest's name (`[[vm]]` tables only).
    pub(crate) guest: Option<Spanned<String>>,
    /// `initrd = "path"` (`[[vm]]` tables only).
    pub(crate) initrd: Option<Spanned<String>>,
}

/// `cpus` as written: a vCPU count (a single-VM file) or a list of machine CPUs (a `[[vm]]`
/// table).
enum Cpus {
    Count(u32),
    List(Vec<u32>),
}

/// A system description's top level: `[[vm]]` tables only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SystemToml {
    pub(crate) vm: Vec<Spanned<VmKeys>>,
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
    /// A virtio-net device's peer VM.
    #[serde(default)]
    link: Option<String>,
}

fn default_ipa_bits() -> u32 {
    DEFAULT_IPA_BITS
}

impl VmKeys {
    /// The VM of a single-VM file: `cpus` is its vCPU count (1 if absent), on the machine's
    /// CPUs `0..cpus`; it names no image (the command line does); a reset ends the machine
    /// unless `on-reset` says otherwise.
    fn single(self, text: &str) -> Result<VmConfig, TomlError> {
        let images = [
            ("kernel", &self.kernel),
            ("guest", &self.guest),
            ("initrd", &self.initrd),
        ];
        if let Some((key, Some(value))) = images.into_iter().find(|(_, v)| v.is_some()) {
            return Err(TomlError::at(
                text,
                value.span(),
                format!(
                    "`{key}` belongs in a [[vm]] table: a single-VM file takes its images from the command line (--{key})"
                ),
            ));
        }
        let cpus = match &self.cpus {
            None => 1,
            Some(cpus) => match cpus.get_ref() {
                Cpus::Count(count) => *count,
                Cpus::List(_) => {
                    return Err(TomlError::at(
                        text,
                        cpus.span(),
                        "a single-VM file's `cpus` is its vCPU count, such as 2, on the machine's CPUs 0 to cpus - 1; a list of the machine's CPUs belongs in a [[vm]] table".into(),
                    ));
                }
            },
        };
        let name = self.name.clone().unwrap_or_else(|| "vm".into());
        let on_reset = self.on_reset.unwrap_or(OnReset::PowerOffMachine);
        Ok(self.config(name, cpus, first_cpus(cpus), on_reset))
    }

    /// The VM of a `[[vm]]` table at `span` of `text` (its images are the caller's): it needs
    /// a name; `cpus` lists the machine's CPUs (none if absent: refused by validation); a reset
    /// restarts it unless `on-reset` says otherwise.
    pub(crate) fn table(&self, text: &str, span: Range<usize>) -> Result<VmConfig, TomlError> {
        let Some(name) = self.name.clone() else {
            return Err(TomlError::at(
                text,
                span,
                "a [[vm]] table needs a `name`".into(),
            ));
        };
        let physical_cpus = match &self.cpus {
            None => Vec::new(),
            Some(cpus) => match cpus.get_ref() {
                Cpus::List(list) => list.clone(),
                Cpus::Count(_) => {
                    return Err(TomlError::at(
                        text,
                        cpus.span(),
                        format!("VM '{name}': {CPU_LIST}"),
                    ));
                }
            },
        };
        let cpus = u32::try_from(physical_cpus.len()).unwrap_or(u32::MAX);
        let on_reset = self.on_reset.unwrap_or(OnReset::Restart);
        Ok(self.config(name, cpus, physical_cpus, on_reset))
    }

    fn config(
        &self,
        name: String,
        cpus: u32,
        physical_cpus: Vec<u32>,
        on_reset: OnReset,
    ) -> VmConfig {
        VmConfig {
            name,
            ipa_bits: self.ipa_bits,
            parange: self.parange,
            arch: self.arch,
            cpus,
            physical_cpus,
            hole_policy: self.hole_policy,
            ram: ram_regions(&self.ram),
            devices: device_windows(&self.device, cpus),
            bootargs: self.bootargs.clone(),
            on_poweroff: self.on_poweroff,
            on_reset,
            pci: self.pci.clone(),
        }
    }
}

/// What a `[[vm]]` table's `cpus` is.
const CPU_LIST: &str = "a [[vm]] table's `cpus` is a list of the machine's CPUs such as [2, 3] (vCPU n runs on the n-th listed)";

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
        link: d.link.clone(),
    });
    devices.collect()
}

/// The window a device of `kind` needs in a VM of `cpus` vCPUs, when the file gives no size.
fn default_window_size(kind: DeviceKind, cpus: u32) -> u64 {
    match kind {
        DeviceKind::Pl011 => PL011_SIZE,
        DeviceKind::GicV3Distributor => GICD_SIZE,
        DeviceKind::GicV3Redistributors => GICR_SIZE_PER_CPU * u64::from(cpus.max(1)),
        DeviceKind::GicV2Distributor => GICD_SIZE,
        DeviceKind::GicV2CpuInterface => GICC_SIZE,
        DeviceKind::VirtioNet => VIRTIO_NET_SIZE,
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
    const NAMES: &'static [&'static str] = &["pl011", "gicv3-dist", "gicv3-redist", "virtio-net"];
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

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CpusVisitor)
    }
}

/// Accepts a vCPU count or a list of CPU numbers, and says which when given anything else.
struct CpusVisitor;

impl<'de> Visitor<'de> for CpusVisitor {
    type Value = Cpus;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a vCPU count such as 2, or in a [[vm]] table a list of the machine's CPUs such as [2, 3]",
        )
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Cpus, E> {
        let count = u32::try_from(value);
        count
            .map(Cpus::Count)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(value), &self))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Cpus, E> {
        let count = u32::try_from(value);
        count
            .map(Cpus::Count)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Cpus, A::Error> {
        let mut cpus = Vec::new();
        while let Some(cpu) = seq.next_element()? {
            cpus.push(cpu);
        }
        Ok(Cpus::List(cpus))
    }
}

/// `pci = ["00:01.0", ...]`: PCI function addresses as `lspci` writes them.
fn bdf_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Bdf>, D::Error> {
    let names = Vec::<String>::deserialize(deserializer)?;
    names
        .iter()
        .map(|name| {
            name.parse()
                .map_err(|e| de::Error::custom(format!("pci {name:?}: {e}")))
        })
        .collect()
}

fn optional_named<'de, D: Deserializer<'de>, T: Named>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    named(deserializer).map(Some)
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
