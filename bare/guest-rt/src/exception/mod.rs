//! EL1 exception handling for test guests: every exception is captured as an
//! [`ExceptionRecord`], logged, and offered to the hook the current test installed.
//!
//! A test that expects an exception installs a hook ([`with_exception_hook`]) that checks the
//! record, optionally moves `ELR_EL1` on (e.g. past a BRK), and answers [`Resume::Yes`]. Any
//! exception nobody claims is a test failure: the runtime prints
//! `MOAT-TEST fail <test>: unexpected exception vector=0x.. ESR=0x.. FAR=0x.. ELR=0x.. SPSR=0x..`
//! and powers off.

mod record;
#[cfg(target_os = "none")]
mod vectors;

pub use record::{ExceptionFrame, ExceptionRecord, PstateAtEntry, VectorOffset, ec};

use crate::global::Global;

/// A hook's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Return to the (possibly edited) frame with `ERET`.
    Yes,
    /// Not an exception this hook expected: report it as unexpected and power off.
    No,
}

/// A test's exception handler. It runs at EL1 with all exceptions masked, on the exception
/// stack; it may edit the frame (registers, `elr`, `spsr`) that `ERET` will restore.
pub type ExceptionHook = fn(&ExceptionRecord, &mut ExceptionFrame) -> Resume;

/// The exceptions taken since the log was last taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExceptionLog {
    /// How many exceptions were taken.
    pub count: u32,
    /// The first of them (the one a test case usually provokes).
    pub first: Option<ExceptionRecord>,
}

static HOOK: Global<Option<ExceptionHook>> = Global::new(None);
static LOG: Global<ExceptionLog> = Global::new(ExceptionLog {
    count: 0,
    first: None,
});
/// How many handlers are running (more than one: an exception inside a handler).
static DEPTH: Global<u32> = Global::new(0);

/// Prepares exception recording (reads which PSTATE fields this CPU has).
#[cfg(target_os = "none")]
pub(crate) fn init() {
    record::detect_features();
}

/// Installs `hook` (or none) and returns the previous one.
pub fn set_exception_hook(hook: Option<ExceptionHook>) -> Option<ExceptionHook> {
    let previous = HOOK.get();
    HOOK.set(hook);
    previous
}

/// Runs `body` with `hook` installed and a fresh log, then restores the previous hook and
/// returns `body`'s result with the exceptions it took. The instruction in `body` that raises
/// the exception must not be an `asm!` declared `nomem` (or `readonly`): the handler writes
/// the log and the hook's state, and a `nomem` block may be moved out of the hook's span (it
/// was, once the guests were built with link-time optimisation).
pub fn with_exception_hook<R>(hook: ExceptionHook, body: impl FnOnce() -> R) -> (R, ExceptionLog) {
    let previous = set_exception_hook(Some(hook));
    take_exception_log();
    let result = body();
    let log = take_exception_log();
    set_exception_hook(previous);
    (result, log)
}

/// The exceptions taken since the last call, clearing the log.
pub fn take_exception_log() -> ExceptionLog {
    let log = LOG.get();
    LOG.set(ExceptionLog::default());
    log
}

/// Adds `record` to the log.
fn log(record: ExceptionRecord) {
    let mut log = LOG.get();
    log.count = log.count.saturating_add(1);
    log.first.get_or_insert(record);
    LOG.set(log);
}
