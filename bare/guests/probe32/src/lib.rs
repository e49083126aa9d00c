//! The host-testable half of `moat-guest-probe32` (SPEC §6): the bootargs ([`config`]), the kinds
//! and their names ([`kinds`]), the stage-1 descriptor encoding for `probe.mmu=lpae|short`
//! ([`layout`]) and the result line the host harness parses ([`line`]). No asm and no `unsafe`:
//! the binary (`main.rs` and the ARM-only modules) does the hardware work with these values.
//!
//! Tests, from the repository root with the ordinary host toolchain:
//! `cargo test --manifest-path bare/guests/probe32/Cargo.toml --lib`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod config;
pub mod kinds;
pub mod layout;
pub mod line;
