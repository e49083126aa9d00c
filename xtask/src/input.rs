//! Files the user names on the command line (`--guest`, `--kernel`, `--initrd`, `--config`),
//! checked before anything is built or booted: each refusal is one line naming the option, the
//! file and the problem (exit status 2).
//!
//! A FIFO or a device is refused by its type before it is opened: opening a FIFO for reading
//! would wait for a writer forever. A file's size is checked before it is read where the VM
//! bounds it (an initrd must fit the VM's RAM), so that a huge file is refused without reading it.

use crate::error::{XResult, usage};
use std::fmt;
use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// A file and the option that named it, as messages name them: `--initrd FILE`.
#[derive(Clone, Copy, Debug)]
pub struct Named<'a> {
    /// The option (or, for files the host tool picked itself, what the file is).
    pub option: &'a str,
    /// The file.
    pub path: &'a Path,
}

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.option, self.path.display())
    }
}

impl<'a> Named<'a> {
    /// `path` as named by `option`.
    pub fn new(option: &'a str, path: &'a Path) -> Self {
        Self { option, path }
    }

    /// A usage error about this file.
    pub fn refuse(&self, problem: impl fmt::Display) -> crate::error::XError {
        usage(format!("{self}: {problem}"))
    }

    /// Checks that the file exists and is a regular file; returns its length.
    ///
    /// # Errors
    ///
    /// A usage error for a missing file, a directory, a FIFO, socket or device, or a path that
    /// cannot be looked up (a component that is not a directory, no search permission).
    pub fn check(&self) -> XResult<u64> {
        let meta = std::fs::metadata(self.path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => self.refuse("no such file"),
            _ => self.refuse(format_args!("cannot be looked up: {e}")),
        })?;
        let kind = meta.file_type();
        let other = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_block_device() || kind.is_char_device() {
            "a device"
        } else {
            return Ok(meta.len());
        };
        Err(self.refuse(format_args!("is {other}, not a regular file")))
    }

    /// Reads the whole (regular) file.
    ///
    /// # Errors
    ///
    /// As [`Named::check`], and a usage error when reading fails.
    pub fn read(&self) -> XResult<Vec<u8>> {
        self.check()?;
        std::fs::read(self.path).map_err(|e| self.refuse(format_args!("cannot be read: {e}")))
    }

    /// Reads the whole (regular) file as UTF-8 text.
    ///
    /// # Errors
    ///
    /// As [`Named::read`], and a usage error when the file is not UTF-8.
    pub fn read_text(&self) -> XResult<String> {
        String::from_utf8(self.read()?).map_err(|e| {
            self.refuse(format_args!(
                "is not UTF-8 text (byte {} is not valid)",
                e.utf8_error().valid_up_to()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;

    fn message(result: XResult<impl fmt::Debug>) -> String {
        let err = result.expect_err("refused");
        assert_eq!(err.exit_code(), 2, "{err}");
        let text = err.to_string();
        assert_eq!(text.lines().count(), 1, "{text}");
        text
    }

    #[test]
    fn missing_files_directories_and_fifos_are_refused_by_name() {
        let dir = Scratch::new("input-test").unwrap();
        let missing = dir.path().join("missing.bin");
        assert_eq!(
            message(Named::new("--guest", &missing).read()),
            format!("--guest {}: no such file", missing.display())
        );
        assert!(
            message(Named::new("--kernel", dir.path()).read())
                .ends_with(": is a directory, not a regular file")
        );
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Refused by its type: reading would block until a writer came.
        assert!(
            message(Named::new("--initrd", &fifo).read())
                .ends_with("is a FIFO, not a regular file")
        );
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let below = file.join("below");
        assert!(message(Named::new("--config", &below).check()).contains("cannot be looked up"));
    }

    #[test]
    fn a_file_whose_reading_fails_is_refused_with_the_system_error() {
        // /proc/self/mem is a regular file that anyone may open, root included, but reading
        // its offset 0 (an unmapped address) fails: an unreadable file that no permission
        // bit (which root bypasses) is needed for.
        let text = message(Named::new("--guest", Path::new("/proc/self/mem")).read());
        assert!(
            text.starts_with("--guest /proc/self/mem: cannot be read: "),
            "{text}"
        );
    }

    #[test]
    fn a_config_that_is_not_utf8_is_refused() {
        let dir = Scratch::new("input-test").unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, b"name = \"\xff\"").unwrap();
        assert!(
            message(Named::new("--config", &file).read_text())
                .ends_with("is not UTF-8 text (byte 8 is not valid)")
        );
    }
}
