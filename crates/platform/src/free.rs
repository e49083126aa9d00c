//! The RAM Moat may hand out: every RAM range of the device tree, less exactly what is in use
//! when Moat starts — its own image, the device tree, the initrd that carries the VM bundle —
//! and what the tree reserves for the firmware (its memory reservation block and
//! `/reserved-memory`, e.g. TF-A's or OP-TEE's RAM on a ZynqMP). Nothing else is kept back: the
//! RAM a loader used before it jumped to Moat is free (QEMU's boot stub, U-Boot itself; the
//! arm64 boot protocol, Linux `Documentation/arm64/booting.rst`, gives the kernel all memory
//! but what the tree reserves, and a loader that leaves code behind for later, as a
//! spin-table's release address, must reserve it with `/memreserve/`).
//!
//! [`PhysAllocator`] hands that RAM out top-down in aligned blocks: guest RAM, stage-2 tables
//! and Moat's heap all come from it. Pure, so the EL2 binary's allocator is host-tested here.

use crate::{PhysRange, Platform};
use core::fmt;

/// Upper bound on distinct free ranges after the reservations are cut out.
pub const MAX_FREE_RANGES: usize = 32;

/// Physical RAM left after the boot reservations, handed out top-down.
#[derive(Clone, Debug)]
pub struct PhysAllocator {
    free: [PhysRange; MAX_FREE_RANGES],
    count: usize,
}

/// Why physical memory could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory {
    /// Bytes asked for.
    pub size: u64,
    /// Alignment asked for.
    pub align: u64,
}

impl fmt::Display for OutOfMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no free {:#x} bytes of RAM aligned to {:#x}",
            self.size, self.align
        )
    }
}

impl Platform {
    /// The RAM in use when Moat starts, whose image the loader placed at `image`: the image,
    /// the device tree and the initrd (an absent one is an empty range). The firmware's
    /// reservations are [`Platform::reserved`].
    pub fn boot_reservations(&self, image: PhysRange) -> [PhysRange; 3] {
        [image, self.dtb, self.initrd.unwrap_or_default()]
    }
}

impl PhysAllocator {
    /// All RAM of `platform` but [`Platform::boot_reservations`] of Moat's `image` and the
    /// firmware's reservations ([`Platform::reserved`]).
    pub fn new(platform: &Platform, image: PhysRange) -> Self {
        let mut this = Self {
            free: [PhysRange::default(); MAX_FREE_RANGES],
            count: 0,
        };
        for ram in platform.memory() {
            this.add(*ram);
        }
        let boot = platform.boot_reservations(image);
        for r in boot.iter().chain(platform.reserved()) {
            this.remove(*r);
        }
        this
    }

    fn add(&mut self, range: PhysRange) {
        if range.size != 0 && self.count < MAX_FREE_RANGES {
            self.free[self.count] = range;
            self.count += 1;
        }
    }

    /// Cuts `hole` out of every free range (splitting one in two where needed).
    fn remove(&mut self, hole: PhysRange) {
        let mut kept = [PhysRange::default(); MAX_FREE_RANGES];
        let mut n = 0;
        for r in &self.free[..self.count] {
            let lower_end = hole.base.clamp(r.base, r.end());
            let upper_base = hole.end().clamp(r.base, r.end());
            let lower = PhysRange {
                base: r.base,
                size: lower_end - r.base,
            };
            let upper = PhysRange {
                base: upper_base,
                size: r.end() - upper_base,
            };
            for piece in [lower, upper] {
                if piece.size != 0 && n < MAX_FREE_RANGES {
                    kept[n] = piece;
                    n += 1;
                }
            }
        }
        self.free = kept;
        self.count = n;
    }

    /// `size` bytes aligned to `align` (a power of two), from the top of the highest range
    /// that fits.
    ///
    /// # Errors
    ///
    /// [`OutOfMemory`] when no free range holds such a block.
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<u64, OutOfMemory> {
        let best = self.free[..self.count]
            .iter()
            .filter_map(|r| {
                let base = r.end().checked_sub(size)? & !(align - 1);
                (base >= r.base).then_some(base)
            })
            .max()
            .ok_or(OutOfMemory { size, align })?;
        self.remove(PhysRange { base: best, size });
        Ok(best)
    }

    /// The free ranges.
    pub fn free_ranges(&self) -> &[PhysRange] {
        &self.free[..self.count]
    }

    /// Total free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free[..self.count].iter().map(|r| r.size).sum()
    }
}
