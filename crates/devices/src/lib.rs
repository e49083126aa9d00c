//! Emulated devices: the MMIO bus and device models as pure state machines.
//!
//! A model sees only an offset into its window and returns what should happen (data for a
//! read, bytes for the console, interrupt lines to raise); the EL2 binary carries the effects
//! out, so every model is tested on the host.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
