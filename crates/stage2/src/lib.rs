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
//! # Building a VM's stage 2
//!
//! The EL2 binary implements the three traits over identity-mapped RAM and the TLB
//! instructions (hidden here: host fakes), then:
//!
//! ```
//! use moat_arm::addr::{Ipa, Pa};
//! use moat_stage2::{FrameAllocator, Geometry, S2Attrs, Stage2, TableMemory, TlbMaintenance};
//! # use std::{cell::RefCell, collections::HashMap, rc::Rc};
//! # #[derive(Clone, Default)]
//! # struct Ram(Rc<RefCell<(HashMap<u64, [u64; 512]>, u64)>>);
//! # impl TableMemory for Ram {
//! #     fn read(&self, t: Pa, i: usize) -> u64 { self.0.borrow().0[&t.0][i] }
//! #     fn write(&mut self, t: Pa, i: usize, d: u64) {
//! #         self.0.borrow_mut().0.get_mut(&t.0).unwrap()[i] = d;
//! #     }
//! # }
//! # impl FrameAllocator for Ram {
//! #     fn alloc_zeroed_table(&mut self) -> Option<Pa> { self.alloc_zeroed_tables(1, 4096) }
//! #     fn alloc_zeroed_tables(&mut self, n: usize, align: u64) -> Option<Pa> {
//! #         let mut ram = self.0.borrow_mut();
//! #         let first = (ram.1 + 0x1000_0000).next_multiple_of(align);
//! #         for i in 0..n as u64 { ram.0.insert(first + i * 4096, [0; 512]); }
//! #         ram.1 = first + n as u64 * 4096 - 0x1000_0000;
//! #         Some(Pa(first))
//! #     }
//! #     fn free_table(&mut self, t: Pa) { self.0.borrow_mut().0.remove(&t.0); }
//! #     fn free_tables(&mut self, t: Pa, n: usize) {
//! #         for i in 0..n as u64 { self.free_table(Pa(t.0 + i * 4096)) }
//! #     }
//! # }
//! # struct Tlb;
//! # impl TlbMaintenance for Tlb {
//! #     fn barrier(&mut self) {}
//! #     fn invalidate_ipa(&mut self, _: u16, _: Ipa, _: Option<u8>) {}
//! #     fn invalidate_combined(&mut self, _: u16) {}
//! #     fn invalidate_vmid(&mut self, _: u16) {}
//! # }
//! # let mut mem = Ram::default();
//! # let (mut alloc, mut tlb) = (mem.clone(), Tlb);
//! // L from every CPU's ID_AA64MMFR0_EL1.PARange (here a 48-bit and a 44-bit CPU): 44.
//! let limit = moat_stage2::ipa_limit_bits(&[0b0101, 0b0100])?;
//! // S = 40: start level 1 with 2 concatenated tables.
//! let geometry = Geometry::new(40, limit)?;
//! let mut s2 = Stage2::new(geometry, 1, &mut alloc)?;
//! // 64 MiB of guest RAM at IPA 0x4000_0000 from PA 0x8_0000_0000: 32 blocks of 2 MiB.
//! let (ram_ipa, ram_pa) = (Ipa(0x4000_0000), Pa(0x8_0000_0000));
//! s2.map(&mut mem, &mut alloc, &mut tlb, ram_ipa, ram_pa, 64 << 20, S2Attrs::RAM)?;
//! assert_eq!(s2.translate(&mem, Ipa(0x4000_1234)).unwrap().pa, Pa(0x8_0000_1234));
//! let (vtcr, vttbr) = (s2.vtcr_el2(), s2.vttbr_el2()); // for VTCR_EL2 and VTTBR_EL2
//! # assert_eq!(vtcr, 0x8004_3558);
//! # let _ = vttbr;
//! s2.destroy(&mut mem, &mut alloc, &mut tlb);
//! # Ok::<(), moat_stage2::Stage2Error>(())
//! ```
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
pub use geometry::{Geometry, VmidBits, ipa_limit_bits, parange_bits, vttbr_el2};
pub use hw::{FrameAllocator, TableMemory, TlbMaintenance};
pub use stage2::{MAX_VMID, Stage2};
pub use walk::{Escape, Leaf, Translation};
