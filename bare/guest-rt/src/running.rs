//! The name failure lines are reported under: the running test's, or the guest's package name
//! outside of a test. A leaf, so that the test runner, the PSCI calls and the exception vectors
//! can all name the test without importing one another.

use crate::global::Global;

/// The test that is running, or the guest's package name outside of a test.
static CURRENT: Global<&'static str> = Global::new("moat-guest");

/// The name failure lines are reported under.
pub fn current() -> &'static str {
    CURRENT.get()
}

/// Reports later failures under `name`.
#[doc(hidden)]
pub fn set_current(name: &'static str) {
    CURRENT.set(name);
}
