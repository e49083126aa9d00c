//! Private working directories: everything one invocation of the host tool writes for a boot (a
//! VM bundle, an assembled test guest) goes into a directory of its own under
//! `target/moat/run/`, so that two `./x run` (or `./x test`) at the same time in one checkout
//! never share a file, and one can never boot the other's VM.
//!
//! A directory is named `<purpose>-<pid>-<start>-<n>`: the owner's process id, its start time
//! (`/proc/<pid>/stat` field 22, clock ticks since boot, which tells a live owner from a later
//! process that reuses the id) and a counter. It is removed when its [`Scratch`] is dropped,
//! which covers every return and every `?` error path. A run that was killed leaves its
//! directory behind; the next [`Scratch::new`] removes directories whose owner no longer runs,
//! and never one whose owner does. (A lock file held with `flock` would do the same without
//! `/proc`, but `File::lock` needs a newer Rust than the workspace's `rust-version`.)

use crate::error::{XResult, failed};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A directory private to this process, removed when dropped.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
}

/// The counter that tells apart the directories of one process.
static NEXT: AtomicU32 = AtomicU32::new(0);

impl Scratch {
    /// A new empty directory under `target/moat/run/` for `purpose` (a word: `run`, `test`...),
    /// after removing directories left by processes that no longer run.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created.
    pub fn new(purpose: &str) -> XResult<Self> {
        Self::new_in(&root(), purpose)
    }

    fn new_in(root: &Path, purpose: &str) -> XResult<Self> {
        std::fs::create_dir_all(root)
            .map_err(|e| failed(format!("creating {}: {e}", root.display())))?;
        remove_stale(root);
        let me = Owner::current()
            .ok_or_else(|| failed("reading this process's start time from /proc/self/stat"))?;
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = root.join(format!("{purpose}-{}-{}-{n}", me.pid, me.start));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Self { dir }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(failed(format!("creating {}: {e}", dir.display()))),
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A file name inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Nothing useful can be done if it fails: the next run's stale sweep retries.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where the private directories live.
pub fn root() -> PathBuf {
    crate::build::out_dir().join("run")
}

/// A process, identified beyond its reusable id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Owner {
    pid: u32,
    start: u64,
}

impl Owner {
    fn current() -> Option<Self> {
        let pid = std::process::id();
        Some(Self {
            pid,
            start: start_time(pid)?,
        })
    }

    /// The owner a directory's name records.
    fn from_dir_name(name: &str) -> Option<Self> {
        let mut parts = name.rsplitn(4, '-');
        let _n: u32 = parts.next()?.parse().ok()?;
        let start = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        parts.next()?;
        Some(Self { pid, start })
    }

    fn is_running(self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// The start time of process `pid` (`/proc/<pid>/stat` field 22), if it runs.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// Field 22 of a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses and may
/// hold spaces and parentheses itself, so fields are counted from its last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 is the first after the name: field 22 is the 20th.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Removes the directories under `root` whose owner no longer runs. Names that are not ours are
/// left alone.
fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let owner = name.to_str().and_then(Owner::from_dir_name);
        if owner.is_some_and(|o| !o.is_running()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// An exclusive `flock(2)` on a file, held until dropped; the kernel releases it if the
/// process dies, so a killed holder never leaves it stale. Serialises the writers of a shared
/// cache (the Linux fetch), where private directories do not apply.
#[derive(Debug)]
pub struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    /// Takes the lock on `path` (created if missing), saying on standard error that it waits
    /// when another process holds it.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or locked.
    pub fn exclusive(path: &Path, waiting_for: &str) -> XResult<Self> {
        use rustix::fs::{FlockOperation, flock};
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| failed(format!("opening {}: {e}", path.display())))?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            eprintln!("x: waiting for {waiting_for} ({})", path.display());
            flock(&file, FlockOperation::LockExclusive)
                .map_err(|e| failed(format!("locking {}: {e}", path.display())))?;
        }
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root of its own for one test, inside this process's own scratch directory.
    fn test_root() -> Scratch {
        Scratch::new("scratch-test").unwrap()
    }

    #[test]
    fn two_scratches_are_distinct_directories_and_each_is_removed_when_dropped() {
        let root = test_root();
        let a = Scratch::new_in(root.path(), "run").unwrap();
        let b = Scratch::new_in(root.path(), "run").unwrap();
        assert_ne!(a.path(), b.path());
        std::fs::write(a.join("vm.bundle"), b"a").unwrap();
        std::fs::write(b.join("vm.bundle"), b"b").unwrap();
        assert_eq!(std::fs::read(a.join("vm.bundle")).unwrap(), b"a");
        let (a_dir, b_dir) = (a.path().to_path_buf(), b.path().to_path_buf());
        drop(a);
        assert!(!a_dir.exists());
        assert!(b_dir.join("vm.bundle").exists());
        drop(b);
        assert!(!b_dir.exists());
    }

    #[test]
    fn an_error_path_removes_the_directory_too() {
        let root = test_root();
        let mut made = None;
        let refused = (|| -> XResult<()> {
            let s = Scratch::new_in(root.path(), "run")?;
            made = Some(s.path().to_path_buf());
            Err(crate::error::usage("a refused guest"))
        })();
        assert!(refused.is_err());
        assert!(!made.expect("created").exists());
    }

    #[test]
    fn a_dead_owners_directory_is_removed_and_a_live_ones_kept() {
        let root = test_root();
        let me = Owner::current().unwrap();
        // The same pid with another start time: a process that ended, its id reused by us.
        let dead = root.join(&format!("run-{}-{}-0", me.pid, me.start + 1));
        let live = root.join(&format!("run-{}-{}-999999", me.pid, me.start));
        let foreign = root.join("notes");
        for dir in [&dead, &live, &foreign] {
            std::fs::create_dir(dir).unwrap();
            std::fs::write(dir.join("vm.bundle"), b"x").unwrap();
        }
        let fresh = Scratch::new_in(root.path(), "run").unwrap();
        assert!(!dead.exists(), "the dead owner's directory is swept");
        assert!(live.join("vm.bundle").exists(), "a running owner's is kept");
        assert!(foreign.exists(), "names not ours are left alone");
        assert!(fresh.path().exists());
    }

    #[test]
    fn a_file_lock_is_exclusive_until_dropped() {
        use rustix::fs::{FlockOperation, flock};
        let root = test_root();
        let path = root.join("fetch.lock");
        let held = FileLock::exclusive(&path, "a test").unwrap();
        let other = std::fs::File::open(&path).unwrap();
        assert!(flock(&other, FlockOperation::NonBlockingLockExclusive).is_err());
        drop(held);
        assert!(flock(&other, FlockOperation::NonBlockingLockExclusive).is_ok());
    }

    #[test]
    fn the_start_time_is_field_22_even_when_the_name_has_spaces_and_parentheses() {
        let stat =
            "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 10 0 0 0 1 2 0 0 20 0 1 0 58165 3133440";
        assert_eq!(parse_start_time(stat), Some(58165));
        assert_eq!(parse_start_time("4242 (x) S 1"), None);
        assert_eq!(
            Owner::from_dir_name("run-4242-58165-3"),
            Some(Owner {
                pid: 4242,
                start: 58165
            })
        );
        assert_eq!(Owner::from_dir_name("my-notes"), None);
        assert_eq!(Owner::from_dir_name("4242-58165-3"), None);
    }
}
