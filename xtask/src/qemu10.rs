//! QEMU 10 for the cases that need an SMMUv3 with stage 2 (PCI assignment, issue 12): Debian
//! 12's own QEMU (7.2, the project's baseline) implements only stage 1 of the `virt` board's
//! SMMUv3; bookworm-backports' 10.0 implements both. It is fetched like the guest kernel
//! (`crate::linux`): `apt-get download` of `qemu-system-arm`, `qemu-system-common` and
//! `qemu-system-data` from the release mirror's backports suite, with private apt state under
//! `<cache>/qemu/` (the machine's apt configuration is read, never written), unpacked with
//! `dpkg-deb -x` — nothing is installed. Its libraries are those of the installed 7.2.
//!
//! It runs from its folder with `-L <its data>` (its firmware and option ROMs, not 7.2's) and
//! `-audio none` (without it QEMU loads the installed 7.2's audio modules, and aborts).

use crate::error::{XResult, failed};
use crate::linux::{self, Apt, Package, sources};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The packages whose files make a runnable `qemu-system-aarch64`.
const PACKAGES: [&str; 3] = ["qemu-system-arm", "qemu-system-common", "qemu-system-data"];

/// The least QEMU major version taken: the first whose `virt` SMMUv3 has stage 2 on the
/// current machine type (measured: 10.0.2; 7.2 has stage 1 only).
const MIN_MAJOR: u32 = 10;

/// The first line of `<cache>/qemu/current`, then the version unpacked.
const RECORD_FORMAT: &str = "moat-qemu-cache 1";

/// A QEMU unpacked in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qemu {
    /// The folder its packages were unpacked into.
    root: PathBuf,
    /// The Debian version, e.g. `1:10.0.2+ds-2+deb13u1~bpo12+1`.
    pub version: String,
}

impl Qemu {
    /// Its `qemu-system-aarch64`.
    pub fn binary(&self) -> PathBuf {
        self.root.join("usr/bin/qemu-system-aarch64")
    }

    /// The arguments every run of it takes before the machine's: its own data, no audio.
    pub fn base_args(&self) -> Vec<String> {
        vec![
            "-L".into(),
            self.root.join("usr/share/qemu").display().to_string(),
            "-audio".into(),
            "none".into(),
        ]
    }
}

/// The QEMU of the cache; fetched first if the cache has none (the only case that reaches the
/// network).
///
/// # Errors
///
/// One line naming what failed: the lists, the download, the unpacking, or a backports QEMU
/// older than [`MIN_MAJOR`].
pub fn qemu() -> XResult<Qemu> {
    let cache = linux::cache_dir().join("qemu");
    if let Some(q) = load(&cache) {
        return Ok(q);
    }
    linux::create_dir(&cache)?;
    let _lock = crate::scratch::FileLock::exclusive(
        &cache.join("fetch.lock"),
        "another ./x fetching QEMU",
    )?;
    match load(&cache) {
        Some(q) => Ok(q),
        None => fetch(&cache),
    }
}

/// The recorded QEMU, if its binary is there.
fn load(cache: &Path) -> Option<Qemu> {
    let text = std::fs::read_to_string(cache.join("current")).ok()?;
    let version = parse_record(&text)?;
    let q = Qemu {
        root: cache.join(dir_name(&version)),
        version,
    };
    q.binary().is_file().then_some(q)
}

fn parse_record(text: &str) -> Option<String> {
    let mut lines = text.lines();
    (lines.next()?.trim() == RECORD_FORMAT).then_some(())?;
    let version = lines.next()?.trim();
    (!version.is_empty()).then(|| version.to_string())
}

/// The unpacked tree's folder for `version` (`:` of an epoch is not wanted in paths).
fn dir_name(version: &str) -> String {
    format!("qemu_{}", version.replace(':', "_"))
}

/// The upstream major version of a Debian version `[epoch:]major.minor...`.
fn major(version: &str) -> Option<u32> {
    let upstream = version.split_once(':').map_or(version, |(_, v)| v);
    upstream.split('.').next()?.parse().ok()
}

/// The Debian architecture of this machine (`dpkg --print-architecture`).
fn host_arch() -> XResult<String> {
    let out = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .map_err(|e| failed(format!("cannot run dpkg --print-architecture: {e}")))?;
    let arch = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if arch.is_empty() {
        return Err(failed("dpkg --print-architecture named no architecture"));
    }
    Ok(arch)
}

fn fetch(cache: &Path) -> XResult<Qemu> {
    let arch = host_arch()?;
    let list = sources::system_mirrors()?.backports_list(&arch, linux::SUITE);
    let apt = Apt::prepare_in(cache, "apt", &arch, &list)?;
    eprintln!(
        "x: fetching Debian's {}-backports {arch} package lists into {}",
        linux::SUITE,
        cache.display()
    );
    apt.update()?;
    let packages = PACKAGES
        .iter()
        .map(|name| apt.candidate(name))
        .collect::<XResult<Vec<Package>>>()?;
    let version = packages[0].version.clone();
    if major(&version).is_none_or(|m| m < MIN_MAJOR) {
        return Err(failed(format!(
            "{}-backports has qemu-system-arm {version}: the SMMUv3 cases need QEMU {MIN_MAJOR} or newer",
            linux::SUITE
        )));
    }
    let root = cache.join(dir_name(&version));
    linux::remove_dir(&root)?;
    for package in &packages {
        let (_, deb) = apt.download(package)?;
        linux::unpack(&deb, &root)?;
    }
    linux::remove_dir(&cache.join("unpack"))?;
    let q = Qemu { root, version };
    if !q.binary().is_file() {
        return Err(failed(format!(
            "qemu-system-arm {} has no {}",
            q.version,
            q.binary().display()
        )));
    }
    let record = format!("{RECORD_FORMAT}\n{}\n", q.version);
    crate::build::replace(&cache.join("current"), |partial| {
        linux::write(partial, record.as_bytes())
    })?;
    eprintln!("x: QEMU {} in {}", q.version, q.root.display());
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_major_version_skips_the_epoch() {
        assert_eq!(major("1:10.0.2+ds-2+deb13u1~bpo12+1"), Some(10));
        assert_eq!(major("7.2+dfsg-7+deb12u18"), Some(7));
        assert_eq!(major("1:x"), None);
    }

    #[test]
    fn the_record_names_the_version_after_its_format_line() {
        let v = "1:10.0.2+ds-2+deb13u1~bpo12+1";
        assert_eq!(
            parse_record(&format!("{RECORD_FORMAT}\n{v}\n")).as_deref(),
            Some(v)
        );
        assert_eq!(parse_record(&format!("{v}\n")), None);
        assert_eq!(parse_record(&format!("{RECORD_FORMAT}\n\n")), None);
        assert_eq!(dir_name(v), "qemu_1_10.0.2+ds-2+deb13u1~bpo12+1");
    }

    #[test]
    fn runs_take_their_own_data_and_no_audio() {
        let q = Qemu {
            root: "/c/qemu/q".into(),
            version: "1:10.0.2".into(),
        };
        assert_eq!(
            q.binary(),
            Path::new("/c/qemu/q/usr/bin/qemu-system-aarch64")
        );
        assert_eq!(
            q.base_args(),
            ["-L", "/c/qemu/q/usr/share/qemu", "-audio", "none"]
        );
    }
}
