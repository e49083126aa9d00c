//! Debian's arm64 Linux for Moat's guests: fetches the cloud kernel (`linux-image-cloud-arm64`,
//! resolved to the versioned package it depends on) and `busybox-static` from the Debian
//! package registry, unpacks them into a cache and builds the initramfs around busybox.
//!
//! The machine's apt configuration is left alone: `apt-get` runs with private lists, cache,
//! status and source list under the cache directory (`$MOAT_CACHE`, else
//! `target/moat/linux-cache/`), `APT::Architecture=arm64`. The source list names the release
//! [`SUITE`] and its security suite (which carries the current kernel), at the mirror URIs this
//! machine's own apt sources already use (read, never written). What was fetched is recorded in
//! `current`; while that and its files exist, [`default_linux`] uses them without any network
//! access, and `./x linux-fetch --refresh` looks for newer packages. From the kernel package
//! the cache keeps the `Image` and the modules of Moat's virtio-net links (`modules`), which
//! the initramfs loads.

use crate::build;
use crate::error::{XResult, failed};
use crate::initramfs;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub mod modules;
pub mod rootfs;
pub(crate) mod sources;

/// The Debian release the guest's kernel and busybox come from.
pub const SUITE: &str = "bookworm";
/// The metapackage that depends on the newest cloud kernel.
pub const KERNEL_METAPACKAGE: &str = "linux-image-cloud-arm64";
/// The statically linked busybox.
pub const BUSYBOX_PACKAGE: &str = "busybox-static";
/// The keyring of Debian's archive, for source entries that name none.
const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// A Linux guest ready to boot: the kernel `Image` and an initramfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxGuest {
    /// The uncompressed arm64 `Image`.
    pub kernel: PathBuf,
    /// The gzip-compressed `newc` initramfs.
    pub initramfs: PathBuf,
    /// What was fetched, e.g. `linux-image-6.1.0-56-cloud-arm64 6.1.192-2`.
    pub kernel_package: String,
}

/// The command line a Linux guest gets without `--append`: the kernel console on the first
/// PL011 (`ttyAMA0`) and the early console on the same UART by address, so that the kernel's
/// first lines appear before its PL011 driver probes.
pub fn default_append(uart_base: u64) -> String {
    format!("console=ttyAMA0 earlycon=pl011,{uart_base:#x}")
}

/// Where fetched packages and the initramfs are kept.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("MOAT_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => build::out_dir().join("linux-cache"),
    }
}

/// The cached Debian kernel and a freshly built initramfs; fetches them first if the cache has
/// none (the only case that reaches the network).
///
/// # Errors
///
/// One line naming what failed: the fetch, the unpacking or writing the initramfs.
pub fn default_linux() -> XResult<LinuxGuest> {
    let cache = cache_dir();
    let fetched = match Fetched::load(&cache) {
        Some(fetched) => fetched,
        None => {
            // Another ./x may be fetching into the same cache: one fetch at a time, and what it
            // fetched is used once it is done.
            let _lock = fetch_lock(&cache)?;
            match Fetched::load(&cache) {
                Some(fetched) => fetched,
                None => fetch(&cache)?,
            }
        }
    };
    guest(&cache, &fetched)
}

/// The lock that serialises fetches into `cache` (apt's own locks would make a second fetch
/// fail instead of wait).
fn fetch_lock(cache: &Path) -> XResult<crate::scratch::FileLock> {
    create_dir(cache)?;
    crate::scratch::FileLock::exclusive(&cache.join("fetch.lock"), "another ./x fetching Linux")
}

/// `./x linux-fetch`: fetches the newest packages (with `refresh`, even when some are cached)
/// and builds the initramfs.
///
/// # Errors
///
/// As [`default_linux`].
pub fn prefetch(refresh: bool) -> XResult<LinuxGuest> {
    let cache = cache_dir();
    let _lock = fetch_lock(&cache)?;
    let fetched = match Fetched::load(&cache).filter(|_| !refresh) {
        Some(fetched) => fetched,
        None => fetch(&cache)?,
    };
    guest(&cache, &fetched)
}

/// The busybox of the cache (fetched first if the cache has none), for other initramfs images
/// (the KVM host's, `crate::kvm`).
///
/// # Errors
///
/// As [`default_linux`].
pub fn busybox() -> XResult<Vec<u8>> {
    let cache = cache_dir();
    let fetched = match Fetched::load(&cache) {
        Some(fetched) => fetched,
        None => fetch(&cache)?,
    };
    read(&fetched.busybox_path(&cache))
}

/// The arm64 package `name` at exactly `version`, unpacked into the cache (`<cache>/<name>_<version>/`)
/// with the same private apt state as the kernel; fetched only when that folder is missing.
///
/// # Errors
///
/// When the lists cannot be updated or the package at that version cannot be downloaded or
/// unpacked.
pub fn arm64_package(name: &str, version: &str) -> XResult<PathBuf> {
    let cache = cache_dir();
    let package = Package {
        name: name.into(),
        version: version.into(),
    };
    let dir = package.dir(&cache);
    if dir.is_dir() {
        return Ok(dir);
    }
    let apt = Apt::prepare(&cache)?;
    eprintln!("x: fetching Debian's arm64 package lists for {name} {version}");
    apt.update()?;
    let tree = apt.download_and_unpack(&package)?;
    fs::rename(&tree, &dir).map_err(|e| failed(format!("moving {}: {e}", tree.display())))?;
    remove_dir(&cache.join("unpack"))?;
    Ok(dir)
}

/// The guest from what was fetched; the initramfs is rebuilt every time (a fraction of a second)
/// so that it always has the current `/init`, and renamed into place so that runs side by side
/// never see half a file.
fn guest(cache: &Path, fetched: &Fetched) -> XResult<LinuxGuest> {
    let busybox = read(&fetched.busybox_path(cache))?;
    let modules = modules::load(&fetched.modules_dir(cache), &modules::WANTED)?;
    let entries = initramfs::entries(busybox, &modules);
    let initramfs = write_initramfs(&cache.join("initramfs.cpio.gz"), &entries)?;
    Ok(LinuxGuest {
        kernel: fetched.kernel_path(cache),
        initramfs,
        kernel_package: format!("{} {}", fetched.kernel.name, fetched.kernel.version),
    })
}

/// Debian's cloud kernel with the initramfs that boots a Debian root file system from a
/// virtio-blk disk on PCI (or, with `moat.stage2` on the command line, finishes making it):
/// [`initramfs::root_entries`] with the modules of [`modules::ROOT_WANTED`]. Fetched as
/// [`default_linux`] fetches.
///
/// # Errors
///
/// As [`default_linux`].
pub fn root_linux() -> XResult<LinuxGuest> {
    let cache = cache_dir();
    let guest = default_linux()?;
    let fetched = Fetched::load(&cache).ok_or_else(|| {
        failed(format!(
            "{}: the Linux cache is incomplete",
            cache.display()
        ))
    })?;
    let busybox = read(&fetched.busybox_path(&cache))?;
    let modules = modules::load(&fetched.modules_dir(&cache), &modules::ROOT_WANTED)?;
    let entries = initramfs::root_entries(busybox, &modules);
    let initramfs = write_initramfs(&cache.join("initramfs-root.cpio.gz"), &entries)?;
    Ok(LinuxGuest { initramfs, ..guest })
}

/// Writes the gzip-compressed archive of `entries` to `path` through a file of this process's
/// own, renamed into place.
fn write_initramfs(path: &Path, entries: &[initramfs::Entry]) -> XResult<PathBuf> {
    let archive = initramfs::newc_archive(entries);
    let compressed =
        initramfs::gzip(&archive).map_err(|e| failed(format!("compressing the initramfs: {e}")))?;
    crate::build::replace(path, |partial| write(partial, &compressed))?;
    Ok(path.to_path_buf())
}

/// A Debian package at one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Package {
    pub(crate) name: String,
    pub(crate) version: String,
}

impl Package {
    /// The cache folder of its unpacked files (`:` of an epoch is not wanted in paths).
    fn dir(&self, cache: &Path) -> PathBuf {
        cache.join(format!("{}_{}", self.name, self.version.replace(':', "_")))
    }
}

/// The first line of `<cache>/current`: the layout of the cache it describes. A record
/// without it (or with another) is from an older layout, whose kernel folder lacks what is kept
/// now (the modules), and makes the cache fetch again.
const RECORD_FORMAT: &str = "moat-linux-cache 2";

/// What the cache holds, as recorded in `<cache>/current`: [`RECORD_FORMAT`], then one
/// `name version` line for the kernel, one for busybox.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fetched {
    kernel: Package,
    busybox: Package,
}

impl Fetched {
    fn kernel_path(&self, cache: &Path) -> PathBuf {
        self.kernel.dir(cache).join("Image")
    }

    fn busybox_path(&self, cache: &Path) -> PathBuf {
        self.busybox.dir(cache).join("busybox")
    }

    /// The kernel's modules that the initramfs loads ([`modules::WANTED`] and what they need).
    fn modules_dir(&self, cache: &Path) -> PathBuf {
        self.kernel.dir(cache).join("modules")
    }

    /// Whether the kernel's files (its `Image` and modules) are in the cache.
    fn kernel_complete(&self, cache: &Path) -> bool {
        self.kernel_path(cache).is_file() && modules::complete(&self.modules_dir(cache))
    }

    /// The record, if it parses and its files exist.
    fn load(cache: &Path) -> Option<Self> {
        let text = fs::read_to_string(cache.join("current")).ok()?;
        let fetched = Self::parse(&text)?;
        let complete = fetched.kernel_complete(cache) && fetched.busybox_path(cache).is_file();
        complete.then_some(fetched)
    }

    fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()?.trim() != RECORD_FORMAT {
            return None;
        }
        let mut packages = lines.filter_map(|line| {
            let (name, version) = line.trim().split_once(' ')?;
            Some(Package {
                name: name.into(),
                version: version.trim().into(),
            })
        });
        Some(Self {
            kernel: packages.next()?,
            busybox: packages.next()?,
        })
    }

    fn record(&self) -> String {
        format!(
            "{RECORD_FORMAT}\n{} {}\n{} {}\n",
            self.kernel.name, self.kernel.version, self.busybox.name, self.busybox.version
        )
    }
}

/// Updates the private package lists, resolves and fetches both packages, records them.
fn fetch(cache: &Path) -> XResult<Fetched> {
    let apt = Apt::prepare(cache)?;
    eprintln!(
        "x: fetching Debian's arm64 package lists into {}",
        cache.display()
    );
    apt.update()?;
    let kernel_name = apt.kernel_package()?;
    let fetched = Fetched {
        kernel: apt.candidate(&kernel_name)?,
        busybox: apt.candidate(BUSYBOX_PACKAGE)?,
    };
    let kernel_dir = fetched.kernel.dir(cache);
    if !fetched.kernel_complete(cache) {
        let tree = apt.download_and_unpack(&fetched.kernel)?;
        write(&fetched.kernel_path(cache), &kernel_image(&tree)?)?;
        modules::store(&fetched.modules_dir(cache), &modules::from_package(&tree)?)?;
    }
    if !fetched.busybox_path(cache).is_file() {
        let tree = apt.download_and_unpack(&fetched.busybox)?;
        let busybox = read(&tree.join("bin").join("busybox"))?;
        write(&fetched.busybox_path(cache), &busybox)?;
    }
    remove_dir(&cache.join("unpack"))?;
    // Renamed into place: a run reading the record never sees half of it.
    let current = cache.join("current");
    crate::build::replace(&current, |partial| {
        write(partial, fetched.record().as_bytes())
    })?;
    eprintln!(
        "x: kernel {} {} in {}",
        fetched.kernel.name,
        fetched.kernel.version,
        kernel_dir.display()
    );
    Ok(fetched)
}

/// The kernel `Image` of an unpacked kernel package: `boot/vmlinuz-*`, decompressed if it is
/// gzip-compressed (Debian's arm64 packages ship it uncompressed; older ones did not).
fn kernel_image(tree: &Path) -> XResult<Vec<u8>> {
    let boot = tree.join("boot");
    let entries = fs::read_dir(&boot).map_err(|e| failed(format!("{}: {e}", boot.display())))?;
    let vmlinuz = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or_else(|| {
            failed(format!(
                "the kernel package has no {}/vmlinuz-*",
                boot.display()
            ))
        })?;
    let bytes = read(&vmlinuz)?;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut image = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut image)
        .map_err(|e| failed(format!("decompressing {}: {e}", vmlinuz.display())))?;
    Ok(image)
}

/// `apt-get`/`apt-cache` with private state under `<cache>/apt` (or another folder of the
/// cache), for one architecture.
pub(crate) struct Apt {
    cache: PathBuf,
    root: PathBuf,
    arch: String,
}

impl Apt {
    /// The arm64 guest packages' apt: [`SUITE`] and its security suite, state in `<cache>/apt`.
    fn prepare(cache: &Path) -> XResult<Self> {
        let mirrors = sources::system_mirrors()?;
        Self::prepare_in(cache, "apt", "arm64", &mirrors.source_list(SUITE))
    }

    /// Creates the private state folders under `<cache>/<state>` and writes `source_list`;
    /// `arch` is the only architecture apt then sees.
    pub(crate) fn prepare_in(
        cache: &Path,
        state: &str,
        arch: &str,
        source_list: &str,
    ) -> XResult<Self> {
        let root = cache.join(state);
        for dir in ["lists/partial", "cache/archives/partial", "sources.list.d"] {
            create_dir(&root.join(dir))?;
        }
        write(&root.join("status"), b"")?;
        write(&root.join("sources.list"), source_list.as_bytes())?;
        Ok(Self {
            cache: cache.into(),
            root,
            arch: arch.into(),
        })
    }

    fn options(&self) -> Vec<String> {
        let dir = |name: &str| self.root.join(name).display().to_string();
        [
            format!("APT::Architecture={}", self.arch),
            format!("APT::Architectures={}", self.arch),
            format!("Dir::State::Lists={}", dir("lists")),
            format!("Dir::State::status={}", dir("status")),
            format!("Dir::Cache={}", dir("cache")),
            format!("Dir::Etc::SourceList={}", dir("sources.list")),
            format!("Dir::Etc::SourceParts={}", dir("sources.list.d")),
            // The downloads land in the cache, which the unprivileged `_apt` may not reach.
            "APT::Sandbox::User=root".into(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    /// Runs `tool` with the private options in `dir`; its standard output, or one line with
    /// what it said went wrong.
    fn run_in(&self, dir: &Path, tool: &str, args: &[&str], what: &str) -> XResult<String> {
        let mut cmd = Command::new(tool);
        cmd.args(self.options()).args(args).env("LC_ALL", "C");
        let out = cmd
            .current_dir(dir)
            .output()
            .map_err(|e| failed(format!("{what}: cannot start {tool}: {e}")))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(failed(format!("{what} failed: {}", apt_error(&stderr))))
    }

    fn run(&self, tool: &str, args: &[&str], what: &str) -> XResult<String> {
        self.run_in(&self.cache, tool, args, what)
    }

    pub(crate) fn update(&self) -> XResult<()> {
        let what = format!(
            "apt-get update of the private Debian {} lists (is the network up?)",
            self.arch
        );
        let what = what.as_str();
        self.run("apt-get", &["update", "--error-on=any", "-q"], what)
            .map(|_| ())
    }

    /// The versioned kernel package the metapackage's candidate depends on.
    fn kernel_package(&self) -> XResult<String> {
        let show = self.show(KERNEL_METAPACKAGE)?;
        field(&show, "Depends")
            .and_then(|deps| {
                deps.split([',', '|'])
                    .map(|d| d.split_whitespace().next().unwrap_or(""))
                    .find(|d| d.starts_with("linux-image-"))
                    .map(String::from)
            })
            .ok_or_else(|| failed(format!("{KERNEL_METAPACKAGE} depends on no linux-image-*")))
    }

    /// The package at its candidate (newest) version.
    pub(crate) fn candidate(&self, name: &str) -> XResult<Package> {
        let show = self.show(name)?;
        let version = field(&show, "Version")
            .ok_or_else(|| failed(format!("apt-cache show {name} gave no Version")))?;
        Ok(Package {
            name: name.into(),
            version,
        })
    }

    fn show(&self, name: &str) -> XResult<String> {
        let what = format!("looking up Debian arm64 package {name}");
        self.run("apt-cache", &["show", "--no-all-versions", name], &what)
    }

    /// Downloads the package's `.deb` and unpacks it; returns the unpacked tree.
    fn download_and_unpack(&self, package: &Package) -> XResult<PathBuf> {
        let (work, deb) = self.download(package)?;
        let tree = work.join("tree");
        unpack(&deb, &tree)?;
        Ok(tree)
    }

    /// Downloads the package's `.deb` into `<cache>/unpack/<name>/`; returns that folder and
    /// the file.
    pub(crate) fn download(&self, package: &Package) -> XResult<(PathBuf, PathBuf)> {
        let work = self.cache.join("unpack").join(&package.name);
        remove_dir(&work)?;
        create_dir(&work)?;
        eprintln!("x: downloading {} {}", package.name, package.version);
        let spec = format!("{}={}", package.name, package.version);
        let what = format!("downloading {spec}");
        self.run_in(&work, "apt-get", &["download", "-q", &spec], &what)?;
        let deb = find_deb(&work)?;
        Ok((work, deb))
    }
}

/// Unpacks `deb`'s files into `tree` (`dpkg-deb -x`: no scripts run, nothing installed).
///
/// # Errors
///
/// When `dpkg-deb` fails.
pub(crate) fn unpack(deb: &Path, tree: &Path) -> XResult<()> {
    build::run_step(
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(tree),
        &format!("unpacking {}", deb.display()),
    )
}

/// The one `.deb` in `dir`.
fn find_deb(dir: &Path) -> XResult<PathBuf> {
    let entries = fs::read_dir(dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| {
            failed(format!(
                "apt-get download left no .deb in {}",
                dir.display()
            ))
        })
}

/// The line of apt's standard error that says what went wrong: its first error (`E:`), which
/// names the cause (the later ones summarise), else its last line.
fn apt_error(stderr: &str) -> &str {
    let lines = || stderr.lines().map(str::trim).filter(|l| !l.is_empty());
    let first_error = lines().find(|l| l.starts_with("E:"));
    first_error
        .or_else(|| lines().next_back())
        .unwrap_or("no message")
}

/// A field of the first stanza of `apt-cache show` output.
fn field(show: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}:");
    show.lines()
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_string())
}

fn read(path: &Path) -> XResult<Vec<u8>> {
    fs::read(path).map_err(|e| failed(format!("reading {}: {e}", path.display())))
}

pub(crate) fn write(path: &Path, bytes: &[u8]) -> XResult<()> {
    if let Some(dir) = path.parent() {
        create_dir(dir)?;
    }
    fs::write(path, bytes).map_err(|e| failed(format!("writing {}: {e}", path.display())))
}

pub(crate) fn create_dir(dir: &Path) -> XResult<()> {
    fs::create_dir_all(dir).map_err(|e| failed(format!("creating {}: {e}", dir.display())))
}

pub(crate) fn remove_dir(dir: &Path) -> XResult<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(failed(format!("removing {}: {e}", dir.display())))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = "Package: linux-image-cloud-arm64
Source: linux-signed-arm64 (6.1.192+2)
Version: 6.1.192-2
Depends: linux-image-6.1.0-56-cloud-arm64 (= 6.1.192-2)

Package: linux-image-cloud-arm64
Version: 6.1.176-1
";

    #[test]
    fn apt_runs_with_private_state_for_arm64_only() {
        let apt = Apt {
            cache: "/c".into(),
            root: "/c/apt".into(),
            arch: "arm64".into(),
        };
        let options = apt.options();
        assert!(options.chunks(2).all(|pair| pair[0] == "-o"));
        let values: Vec<&str> = options
            .iter()
            .skip(1)
            .step_by(2)
            .map(String::as_str)
            .collect();
        for expected in [
            "APT::Architecture=arm64",
            "Dir::State::Lists=/c/apt/lists",
            "Dir::State::status=/c/apt/status",
            "Dir::Cache=/c/apt/cache",
            "Dir::Etc::SourceList=/c/apt/sources.list",
            "Dir::Etc::SourceParts=/c/apt/sources.list.d",
        ] {
            assert!(
                values.contains(&expected),
                "{expected} missing from {values:?}"
            );
        }
    }

    #[test]
    fn fields_come_from_the_first_stanza_only() {
        assert_eq!(field(SHOW, "Version").as_deref(), Some("6.1.192-2"));
        assert_eq!(field(SHOW, "Maintainer"), None);
    }

    #[test]
    fn apt_errors_are_reported_by_their_first_error_line() {
        let stderr = "W: a warning\nE: Failed to fetch InRelease  Temporary failure resolving\n\
                      E: Some index files failed to download.\n";
        assert!(apt_error(stderr).ends_with("Temporary failure resolving"));
        assert_eq!(apt_error("oops\n\n"), "oops");
        assert_eq!(apt_error(""), "no message");
    }

    #[test]
    fn the_record_of_what_was_fetched_round_trips() {
        let fetched = Fetched {
            kernel: Package {
                name: "linux-image-6.1.0-56-cloud-arm64".into(),
                version: "6.1.192-2".into(),
            },
            busybox: Package {
                name: "busybox-static".into(),
                version: "1:1.35.0-4+deb12u1+b1".into(),
            },
        };
        assert_eq!(Fetched::parse(&fetched.record()), Some(fetched.clone()));
        // A record of the layout before the modules were kept: fetched again.
        let old = fetched
            .record()
            .replacen(&format!("{RECORD_FORMAT}\n"), "", 1);
        assert_eq!(Fetched::parse(&old), None);
        let dir = fetched.busybox.dir(Path::new("/c"));
        assert_eq!(dir, Path::new("/c/busybox-static_1_1.35.0-4+deb12u1+b1"));
        assert_eq!(Fetched::parse("only-one 1\n"), None);
    }

    #[test]
    fn the_default_command_line_names_the_uart_for_earlycon() {
        assert_eq!(
            default_append(0x900_0000),
            "console=ttyAMA0 earlycon=pl011,0x9000000"
        );
    }

    #[test]
    fn a_gzip_compressed_vmlinuz_is_decompressed() {
        let tree = std::env::temp_dir().join(format!("moat-vmlinuz-{}", std::process::id()));
        let image = b"MZ...ARM\x64 an Image".to_vec();
        write(
            &tree.join("boot/vmlinuz-6.1"),
            &initramfs::gzip(&image).unwrap(),
        )
        .unwrap();
        assert_eq!(kernel_image(&tree).unwrap(), image);
        write(&tree.join("boot/vmlinuz-6.1"), &image).unwrap();
        assert_eq!(kernel_image(&tree).unwrap(), image);
        remove_dir(&tree).unwrap();
    }
}
