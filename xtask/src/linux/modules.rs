//! The kernel modules a Linux guest needs for Moat's virtio-net links ([`WANTED`]) and for the
//! Debian root file system on virtio-pci devices ([`ROOT_WANTED`]), taken from Debian's kernel
//! package and loaded by the initramfs's `/init` in dependency order.
//!
//! Debian's cloud kernel builds the virtio transport and network driver as modules
//! (`virtio_mmio`, `virtio_net` and what they need) and its package ships no `modules.dep`
//! (`depmod` makes it at install time), so the order is derived here, as `modinfo` would find
//! it: every module object's `.modinfo` section holds NUL-separated `key=value` strings, among
//! them `name=` and `depends=` (a comma-separated list of module names, written by the kernel's
//! `modpost`). Module file names may use `-` where module names use `_`.
//!
//! The files are kept uncompressed, because busybox's `insmod` passes the file to the kernel
//! as it is: a gzip-compressed module (`.ko.gz`) is decompressed here; `xz` and `zstd` ones,
//! which Debian's 6.1 packages do not use, are refused by name rather than carried broken.

use crate::error::{XResult, failed};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The modules the busybox guest asks for (Moat's virtio-mmio links); their dependencies come
/// along.
pub const WANTED: [&str; 2] = ["virtio_mmio", "virtio_net"];

/// The modules the Debian root file system's initramfs asks for: the virtio PCI transport, the
/// disk and the network card (their dependencies come along: `virtio`, `virtio_ring`,
/// `virtio_pci_modern_dev`, `virtio_pci_legacy_dev`, `net_failover`, `failover` in Debian's
/// 6.1 cloud kernel). ext4 and the generic ECAM host bridge are built in
/// (`CONFIG_EXT4_FS=y`, `CONFIG_PCI_HOST_GENERIC=y` in its `config-*`), so they are not here.
pub const ROOT_WANTED: [&str; 3] = ["virtio_pci", "virtio_blk", "virtio_net"];

/// Every module the cache keeps.
fn all_wanted() -> impl Iterator<Item = &'static str> {
    WANTED.into_iter().chain(ROOT_WANTED)
}

/// One kernel module: its name and its uncompressed ELF object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// The module's name (`name=` of its `.modinfo`), e.g. `virtio_net`.
    pub name: String,
    /// The `.ko` file's bytes.
    pub object: Vec<u8>,
}

/// What a module's `.modinfo` says about loading it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// `name=`, when present.
    pub name: Option<String>,
    /// `depends=`: the modules that must be loaded first.
    pub depends: Vec<String>,
}

/// The `.modinfo` of an ELF64 little-endian module object.
///
/// # Errors
///
/// One line saying what is wrong when `object` is not such an ELF file or has no `.modinfo`.
pub fn modinfo(object: &[u8]) -> Result<ModInfo, String> {
    let section = elf_section(object, ".modinfo")?;
    let mut info = ModInfo::default();
    for field in section.split(|&b| b == 0) {
        let field = String::from_utf8_lossy(field);
        if let Some(name) = field.strip_prefix("name=") {
            info.name = Some(name.to_string());
        } else if let Some(depends) = field.strip_prefix("depends=") {
            info.depends = depends
                .split(',')
                .filter(|d| !d.is_empty())
                .map(module_name)
                .collect();
        }
    }
    Ok(info)
}

/// A module's name from a file stem or a `depends=` entry (`-` and `_` are the same to the
/// kernel's module loader).
fn module_name(raw: &str) -> String {
    raw.replace('-', "_")
}

/// The bytes of section `wanted` of an ELF64 little-endian file, found through the section
/// header table (`e_shoff`, `e_shnum`, `e_shentsize`) and its names (`e_shstrndx`).
fn elf_section<'a>(elf: &'a [u8], wanted: &str) -> Result<&'a [u8], String> {
    if elf.get(..6) != Some(b"\x7fELF\x02\x01") {
        return Err("not an ELF64 little-endian file".into());
    }
    let shoff = read_u64(elf, 40)?;
    let shentsize = u64::from(read_u16(elf, 58)?);
    let shnum = u64::from(read_u16(elf, 60)?);
    let shstrndx = u64::from(read_u16(elf, 62)?);
    let header = |index: u64| -> Result<(u32, &'a [u8]), String> {
        let at = index
            .checked_mul(shentsize)
            .and_then(|off| off.checked_add(shoff))
            .ok_or("a section header beyond the file")?;
        let name = read_u32(elf, at)?;
        let offset = read_u64(elf, at + 24)?;
        let size = read_u64(elf, at + 32)?;
        Ok((name, slice(elf, offset, size)?))
    };
    let (_, names) = header(shstrndx)?;
    for index in 0..shnum {
        let (name, bytes) = header(index)?;
        let name = names
            .get(name as usize..)
            .and_then(|rest| rest.split(|&b| b == 0).next())
            .ok_or("a section name beyond the name table")?;
        if name == wanted.as_bytes() {
            return Ok(bytes);
        }
    }
    Err(format!("no {wanted} section"))
}

fn slice(bytes: &[u8], offset: u64, size: u64) -> Result<&[u8], String> {
    let start = usize::try_from(offset).map_err(|_| "an offset beyond the file")?;
    let len = usize::try_from(size).map_err(|_| "a size beyond the file")?;
    start
        .checked_add(len)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| format!("{len} bytes at {start:#x} run past the file's end"))
}

fn read_u16(bytes: &[u8], at: u64) -> Result<u16, String> {
    let raw = slice(bytes, at, 2)?;
    Ok(u16::from_le_bytes([raw[0], raw[1]]))
}

fn read_u32(bytes: &[u8], at: u64) -> Result<u32, String> {
    let raw = slice(bytes, at, 4)?;
    Ok(u32::from_le_bytes(raw.try_into().expect("4 bytes")))
}

fn read_u64(bytes: &[u8], at: u64) -> Result<u64, String> {
    let raw = slice(bytes, at, 8)?;
    Ok(u64::from_le_bytes(raw.try_into().expect("8 bytes")))
}

/// `modules` ordered so that each comes after everything its `depends=` names (a module
/// named twice is loaded once); ties keep the order given.
///
/// # Errors
///
/// When a module depends on one that is not among `modules`, or the dependencies form a
/// cycle, or a module's `.modinfo` cannot be read.
pub fn load_order(modules: Vec<Module>) -> Result<Vec<Module>, String> {
    let mut pending: BTreeMap<String, (Module, Vec<String>)> = BTreeMap::new();
    let mut given = Vec::new();
    for module in modules {
        let info = modinfo(&module.object).map_err(|e| format!("module {}: {e}", module.name))?;
        given.push(module.name.clone());
        pending.insert(module.name.clone(), (module, info.depends));
    }
    for (name, (_, depends)) in &pending {
        if let Some(missing) = depends.iter().find(|d| !pending.contains_key(*d)) {
            return Err(format!(
                "module {name} depends on {missing}, which is not there"
            ));
        }
    }
    let mut ordered: Vec<Module> = Vec::new();
    while !pending.is_empty() {
        let loaded = |d: &String| ordered.iter().any(|m| &m.name == d);
        let next = given
            .iter()
            .find(|name| {
                pending
                    .get(*name)
                    .is_some_and(|(_, depends)| depends.iter().all(loaded))
            })
            .cloned();
        let Some(name) = next else {
            let stuck: Vec<&str> = pending.keys().map(String::as_str).collect();
            return Err(format!("modules {} depend on each other", stuck.join(", ")));
        };
        let (module, _) = pending.remove(&name).expect("the module is pending");
        ordered.push(module);
    }
    Ok(ordered)
}

/// [`WANTED`], [`ROOT_WANTED`] and every module they need, transitively, from the unpacked kernel package
/// `tree` (`lib/modules/<release>/kernel/**`), uncompressed.
///
/// # Errors
///
/// One line naming the module when one is not in the package, is compressed in a way not
/// handled, or cannot be read.
pub fn from_package(tree: &Path) -> XResult<Vec<Module>> {
    // Debian's 6.1 packages put them under /lib; merged-/usr packages under /usr/lib.
    let roots = [tree.join("lib/modules"), tree.join("usr/lib/modules")];
    let mut index = BTreeMap::new();
    for root in roots.iter().filter(|r| r.is_dir()) {
        index.extend(index_objects(root)?);
    }
    let mut found: Vec<Module> = Vec::new();
    let mut wanted: Vec<String> = all_wanted().map(String::from).collect();
    while let Some(name) = wanted.pop() {
        if found.iter().any(|m| m.name == name) {
            continue;
        }
        let path = index.get(&name).ok_or_else(|| {
            failed(format!(
                "the kernel package has no module {name} under {}/{{,usr/}}lib/modules",
                tree.display()
            ))
        })?;
        let object = uncompressed(path)?;
        let info = modinfo(&object).map_err(|e| failed(format!("{}: {e}", path.display())))?;
        wanted.extend(info.depends);
        found.push(Module { name, object });
    }
    Ok(found)
}

/// Every module file under `dir`, by module name.
fn index_objects(dir: &Path) -> XResult<BTreeMap<String, PathBuf>> {
    let mut index = BTreeMap::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Some(stem) = module_stem(&path) {
                index.insert(module_name(stem), path);
            }
        }
    }
    Ok(index)
}

/// The name part of `x.ko`, `x.ko.gz`, `x.ko.xz`, `x.ko.zst`.
fn module_stem(path: &Path) -> Option<&str> {
    let file = path.file_name()?.to_str()?;
    [".ko", ".ko.gz", ".ko.xz", ".ko.zst"]
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))
}

/// The module object at `path`, decompressed when it is gzip-compressed.
fn uncompressed(path: &Path) -> XResult<Vec<u8>> {
    let bytes = fs::read(path).map_err(|e| failed(format!("reading {}: {e}", path.display())))?;
    let name = path.display();
    match path.extension().and_then(|x| x.to_str()) {
        Some("ko") => Ok(bytes),
        Some("gz") => {
            let mut object = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut object)
                .map_err(|e| failed(format!("decompressing {name}: {e}")))?;
            Ok(object)
        }
        _ => Err(failed(format!(
            "{name}: compressed modules other than gzip are not handled (busybox's insmod \
             passes the file to the kernel as it is)"
        ))),
    }
}

/// Writes `modules` into `dir` as `<name>.ko`.
///
/// # Errors
///
/// When a file cannot be written.
pub fn store(dir: &Path, modules: &[Module]) -> XResult<()> {
    fs::create_dir_all(dir).map_err(|e| failed(format!("creating {}: {e}", dir.display())))?;
    for module in modules {
        let path = dir.join(format!("{}.ko", module.name));
        fs::write(&path, &module.object)
            .map_err(|e| failed(format!("writing {}: {e}", path.display())))?;
    }
    Ok(())
}

/// The modules kept in `dir` that `wanted` needs (each of them and, transitively, what its
/// `depends=` names), in load order.
///
/// # Errors
///
/// When the folder cannot be read, one of `wanted` or of their dependencies is missing, or
/// [`load_order`] fails.
pub fn load(dir: &Path, wanted: &[&str]) -> XResult<Vec<Module>> {
    let entries = fs::read_dir(dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ko"))
        .collect();
    paths.sort();
    let mut kept = BTreeMap::new();
    for path in paths {
        let object =
            fs::read(&path).map_err(|e| failed(format!("reading {}: {e}", path.display())))?;
        let name = module_stem(&path).map(module_name).unwrap_or_default();
        kept.insert(name, object);
    }
    let mut modules: Vec<Module> = Vec::new();
    let mut pending: Vec<String> = wanted.iter().map(|w| (*w).to_string()).collect();
    while let Some(name) = pending.pop() {
        if modules.iter().any(|m| m.name == name) {
            continue;
        }
        let object = kept
            .get(&name)
            .ok_or_else(|| failed(format!("{}: no {name}.ko", dir.display())))?
            .clone();
        let info = modinfo(&object).map_err(|e| failed(format!("{name}.ko: {e}")))?;
        pending.extend(info.depends);
        modules.push(Module { name, object });
    }
    // The order found is that of the search; load_order keeps the given order among modules
    // whose dependencies are loaded, so sort by name first for a stable result.
    modules.sort_by(|a, b| a.name.cmp(&b.name));
    load_order(modules).map_err(|e| failed(format!("{}: {e}", dir.display())))
}

/// Whether `dir` holds every module of [`WANTED`] and [`ROOT_WANTED`].
pub fn complete(dir: &Path) -> bool {
    all_wanted().all(|w| dir.join(format!("{w}.ko")).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 little-endian object with a null section, `.modinfo` holding `info`,
    /// and the section-name table.
    fn object(info: &str) -> Vec<u8> {
        let names = b"\0.modinfo\0.shstrtab\0";
        let info = info.as_bytes();
        let data_at = 64u64;
        let names_at = data_at + info.len() as u64;
        let shoff = (names_at + names.len() as u64).next_multiple_of(8);
        let mut elf = vec![0u8; shoff as usize];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[40..48].copy_from_slice(&shoff.to_le_bytes());
        elf[58..60].copy_from_slice(&64u16.to_le_bytes());
        elf[60..62].copy_from_slice(&3u16.to_le_bytes());
        elf[62..64].copy_from_slice(&2u16.to_le_bytes());
        elf[data_at as usize..names_at as usize].copy_from_slice(info);
        elf[names_at as usize..names_at as usize + names.len()].copy_from_slice(names);
        for (name, offset, size) in [
            (0u32, 0u64, 0u64),
            (1, data_at, info.len() as u64),
            (10, names_at, names.len() as u64),
        ] {
            let mut header = [0u8; 64];
            header[..4].copy_from_slice(&name.to_le_bytes());
            header[24..32].copy_from_slice(&offset.to_le_bytes());
            header[32..40].copy_from_slice(&size.to_le_bytes());
            elf.extend_from_slice(&header);
        }
        elf
    }

    fn module(name: &str, depends: &str) -> Module {
        let info =
            format!("license=GPL\0depends={depends}\0retpoline=Y\0name={name}\0vermagic=6.1\0");
        Module {
            name: name.into(),
            object: object(&info),
        }
    }

    fn names(modules: &[Module]) -> Vec<&str> {
        modules.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn modinfo_gives_the_name_and_the_dependencies_with_dashes_as_underscores() {
        let info = modinfo(&module("virtio_net", "net-failover,virtio,virtio_ring").object);
        assert_eq!(
            info,
            Ok(ModInfo {
                name: Some("virtio_net".into()),
                depends: vec!["net_failover".into(), "virtio".into(), "virtio_ring".into()],
            })
        );
        let none = modinfo(&module("virtio", "").object).unwrap();
        assert!(none.depends.is_empty());
    }

    #[test]
    fn modinfo_refuses_what_is_not_an_elf64_module() {
        assert_eq!(
            modinfo(b"\x7fELF\x01\x01 32-bit"),
            Err("not an ELF64 little-endian file".into())
        );
        let mut truncated = module("virtio", "").object;
        truncated.truncate(100);
        assert!(
            modinfo(&truncated)
                .unwrap_err()
                .contains("past the file's end")
        );
    }

    #[test]
    fn debian_6_1_virtio_modules_load_after_what_they_depend_on() {
        // As in linux-image-6.1.0-*-cloud-arm64: the order of the input is arbitrary.
        let given = vec![
            module("virtio_net", "net_failover,virtio,virtio_ring"),
            module("virtio_mmio", "virtio,virtio_ring"),
            module("net_failover", "failover"),
            module("virtio_ring", "virtio"),
            module("failover", ""),
            module("virtio", ""),
        ];
        let ordered = load_order(given).unwrap();
        assert_eq!(
            names(&ordered),
            [
                "failover",
                "net_failover",
                "virtio",
                "virtio_ring",
                "virtio_net",
                "virtio_mmio"
            ]
        );
    }

    #[test]
    fn a_missing_dependency_or_a_cycle_is_named() {
        let missing = load_order(vec![module("virtio_net", "virtio")]);
        assert_eq!(
            missing,
            Err("module virtio_net depends on virtio, which is not there".into())
        );
        let cycle = load_order(vec![module("a", "b"), module("b", "a"), module("c", "")]);
        assert_eq!(cycle, Err("modules a, b depend on each other".into()));
    }

    #[test]
    fn module_files_are_recognised_compressed_or_not() {
        assert_eq!(
            module_stem(Path::new("d/virtio_net.ko")),
            Some("virtio_net")
        );
        assert_eq!(
            module_stem(Path::new("d/net-failover.ko.xz")),
            Some("net-failover")
        );
        assert_eq!(module_stem(Path::new("d/modules.order")), None);
        assert_eq!(module_stem(Path::new("d/x.ko.bak")), None);
        assert_eq!(module_stem(Path::new("d/a.kobj.ko")), Some("a.kobj"));
    }

    #[test]
    fn the_closure_of_the_wanted_modules_is_taken_from_a_package_tree() {
        let tree = std::env::temp_dir().join(format!("moat-modules-{}", std::process::id()));
        let kernel = tree.join("usr/lib/modules/6.1.0-cloud-arm64/kernel");
        let put = |path: &str, m: &Module| {
            let path = kernel.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, &m.object).unwrap();
        };
        for (path, name, depends) in [
            ("drivers/virtio/virtio.ko", "virtio", ""),
            ("drivers/virtio/virtio_ring.ko", "virtio_ring", "virtio"),
            (
                "drivers/virtio/virtio_mmio.ko",
                "virtio_mmio",
                "virtio,virtio_ring",
            ),
            (
                "drivers/net/virtio_net.ko",
                "virtio_net",
                "net_failover,virtio,virtio_ring",
            ),
            ("drivers/net/net_failover.ko", "net_failover", "failover"),
            ("drivers/net/dummy.ko", "dummy", ""),
            // As linux-image-6.1.0-57-cloud-arm64 6.1.192-3 has them.
            (
                "drivers/virtio/virtio_pci.ko",
                "virtio_pci",
                "virtio_ring,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio",
            ),
            (
                "drivers/virtio/virtio_pci_modern_dev.ko",
                "virtio_pci_modern_dev",
                "",
            ),
            (
                "drivers/virtio/virtio_pci_legacy_dev.ko",
                "virtio_pci_legacy_dev",
                "",
            ),
            (
                "drivers/block/virtio_blk.ko",
                "virtio_blk",
                "virtio,virtio_ring",
            ),
        ] {
            put(path, &module(name, depends));
        }
        let gz = crate::initramfs::gzip(&module("failover", "").object).unwrap();
        // One module under /lib, the rest under /usr/lib: both are searched.
        let path = tree.join("lib/modules/6.1.0-cloud-arm64/kernel/net/core/failover.ko.gz");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, gz).unwrap();
        let found = from_package(&tree).unwrap();
        let mut found_names = names(&found);
        found_names.sort_unstable();
        assert_eq!(
            found_names,
            [
                "failover",
                "net_failover",
                "virtio",
                "virtio_blk",
                "virtio_mmio",
                "virtio_net",
                "virtio_pci",
                "virtio_pci_legacy_dev",
                "virtio_pci_modern_dev",
                "virtio_ring"
            ]
        );
        let kept = tree.join("kept");
        store(&kept, &found).unwrap();
        assert!(complete(&kept));
        let loaded = load(&kept, &WANTED).unwrap();
        let position = |n: &str| loaded.iter().position(|m| m.name == n).unwrap();
        assert!(position("failover") < position("net_failover"));
        assert!(position("net_failover") < position("virtio_net"));
        assert!(position("virtio_ring") < position("virtio_mmio"));
        assert!(!loaded.iter().any(|m| m.name.starts_with("virtio_pci")));
        // The root file system's set: the PCI transport after its two halves, no virtio_mmio.
        let root = load(&kept, &ROOT_WANTED).unwrap();
        assert_eq!(
            names(&root),
            [
                "failover",
                "net_failover",
                "virtio",
                "virtio_pci_legacy_dev",
                "virtio_pci_modern_dev",
                "virtio_ring",
                "virtio_blk",
                "virtio_net",
                "virtio_pci"
            ]
        );
        fs::remove_file(kept.join("virtio_net.ko")).unwrap();
        assert!(!complete(&kept));
        fs::remove_dir_all(&tree).unwrap();
    }
}
