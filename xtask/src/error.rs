//! The host tool's errors: each is one line naming what is wrong, and an exit status.

use std::fmt;

/// A failure of the host tool.
#[derive(Debug)]
pub enum XError {
    /// The user asked for something impossible or gave a bad value: exit status 2.
    Usage(String),
    /// A build, a tool or the environment failed: exit status 1.
    Failed(String),
}

impl XError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Failed(_) => 1,
        }
    }
}

impl XError {
    /// The same kind of error with its message rewritten by `f`.
    #[must_use]
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Self::Usage(m) => Self::Usage(f(m)),
            Self::Failed(m) => Self::Failed(f(m)),
        }
    }
}

impl fmt::Display for XError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(m) | Self::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for XError {}

/// A usage error (exit status 2).
pub fn usage(message: impl Into<String>) -> XError {
    XError::Usage(message.into())
}

/// A failure (exit status 1).
pub fn failed(message: impl Into<String>) -> XError {
    XError::Failed(message.into())
}

/// The host tool's result type.
pub type XResult<T> = Result<T, XError>;
