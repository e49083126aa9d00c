//! Stage-2 translation for Moat's VMs: `VTCR_EL2` geometry for every VM IPA size, IPA → PA
//! tables with break-before-make updates, and walks.
//!
//! Hardware effects (table memory, frame allocation, TLB maintenance) sit behind small traits
//! ([`TableMemory`], [`FrameAllocator`], [`TlbMaintenance`]) so that the real descriptor encoding
//! and update order are tested on the host. Moat writes its own tables rather than using
//! `aarch64-paging`, which has no concatenated start tables (needed for IPA sizes such as 40 or
//! 43 bits at start level 1), no per-VM VMID (it uses VMID 0), only the 4K granule, and
//! requires a table to be inactive for any change that needs break-before-make, where a
//! hypervisor changes live tables while the guest runs.
//!
//! Module map: [`geometry`] (`VTCR_EL2`/`VTTBR_EL2`), `descriptor` (the stage-2 descriptor
//! format), `hw` (the traits), `ops` and `batch` (table updates and their TLB maintenance),
//! `stage2` (the public [`Stage2`]), `walk` (translation and walks).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod batch;
mod descriptor;
mod error;
pub mod geometry;
mod hw;
mod ops;
mod stage2;
mod walk;

pub use descriptor::{MemType, S2Access, S2Attrs};
pub use error::Stage2Error;
pub use geometry::{Geometry, ipa_limit_bits, parange_bits, vttbr_el2};
pub use hw::{FrameAllocator, TableMemory, TlbMaintenance};
pub use stage2::{MAX_VMID, Stage2};
pub use walk::{Leaf, Translation};
