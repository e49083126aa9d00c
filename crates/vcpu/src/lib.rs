//! The virtual CPU's logic: trap classification (syndrome → exit), exception entry into the
//! guest (`AArch64.TakeException()`, `AArch32.EnterMode()`), instruction skip, system-register
//! and ID-register emulation, and PSCI.
//!
//! The EL2 binary captures the trap state into a frame; everything here is a pure function of
//! that frame and the VM's configuration.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod abort;
pub mod align;
pub mod cond;
pub mod entry;
pub mod flat_entry;
pub mod frame;
pub mod idregs;
pub mod inject;
pub mod insn;
pub mod mmio;
pub mod plain_abort;
pub mod power;
pub mod psci;
pub mod s1walk;
pub mod smccc;
