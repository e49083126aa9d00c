//! Stage-2 translation for Moat's VMs: `VTCR_EL2` geometry for every VM IPA size, IPA → PA
//! tables with break-before-make updates, and walks.
//!
//! Hardware effects (table memory, TLB maintenance) sit behind small traits so that the real
//! descriptor encoding is tested on the host. Moat writes its own tables rather than using
//! `aarch64-paging`, which has no concatenated start tables and no per-VM VMID.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
