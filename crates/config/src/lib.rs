//! The VM description shared by the host tool and Moat: its schema, validation against the
//! IPA-space rules of the spec (§1), and the compact device-tree form in which the host tool
//! hands it to Moat.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
