//! Arm architecture facts as pure data and functions: exception syndromes (`ESR_ELx` and the
//! per-class ISS), fault status codes, PSTATE/SPSR for AArch64 and AArch32, vector offsets,
//! `PARange` encodings and the `Ipa`/`Pa`/`Va` address types.
//!
//! Everything here is a transcription of the Arm Architecture Reference Manual (DDI 0487, see
//! `docs/references.md`); items cite the register, field or pseudocode function they implement.
//! No hardware access and no `unsafe`: the crate is tested on the host and linked into the EL2
//! binary unchanged.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod addr;
pub mod banked;
pub mod esr;
pub mod fault_addr;
pub mod field;
pub mod fsc;
pub mod fsr32;
pub mod par;
pub mod parange;
pub mod pstate;
pub mod sysreg;
pub mod vector;
