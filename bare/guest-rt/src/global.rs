//! [`Global`]: a mutable static for the runtime's few pieces of shared state (console base,
//! PSCI conduit, exception hook, current test name).
//!
//! Why not atomics: with the MMU off every data access is to Device-nGnRnE memory, where
//! load/store-exclusive and LSE atomics are not guaranteed to work (Arm ARM, "Load-Exclusive and
//! Store-Exclusive instruction usage restrictions"); plain loads and stores always do. Why this is
//! sound: the guest runs on one CPU with interrupts masked (see the crate docs), so the only code
//! that can run in the middle of [`Global::get`] or [`Global::set`] is a synchronous exception
//! handler, and neither method contains an instruction that can raise one (they copy a `Copy`
//! value to or from the image's own RAM).

use core::cell::UnsafeCell;

/// A value shared between the guest's code and its exception handlers, accessed only by copy.
pub(crate) struct Global<T: Copy>(UnsafeCell<T>);

// SAFETY: Sharing a `Global` between "threads" is sound because there is only one: one CPU runs
// the guest with interrupts masked, and a synchronous exception handler can only start at an
// instruction that can fault, which `get`/`set` do not contain (module docs). No reference into
// the cell ever escapes, so no access overlaps another.
unsafe impl<T: Copy + Send> Sync for Global<T> {}

impl<T: Copy> Global<T> {
    /// A global holding `value`.
    pub(crate) const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// A copy of the current value.
    pub(crate) fn get(&self) -> T {
        // SAFETY: No `&mut` to the contents exists (none escapes `set`), and no other access can
        // run concurrently with this copy (module docs), so reading through the pointer is a
        // plain, unaliased read of a valid `T`.
        unsafe { *self.0.get() }
    }

    /// Replaces the value.
    pub(crate) fn set(&self, value: T) {
        // SAFETY: No reference to the contents exists outside this call (`get` copies), and no
        // other access can run concurrently (module docs), so this write is exclusive.
        unsafe { *self.0.get() = value }
    }
}
