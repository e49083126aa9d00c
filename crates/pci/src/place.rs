//! Where Moat puts the physical BARs of the functions it assigns: inside a memory window of
//! the host bridge, each aligned to its size (PCI 3.0, 6.2.5.1: a BAR's address is a multiple
//! of its size) and at least to a page, and each alone in its pages — a BAR below 4 KiB
//! still takes a whole page — so that stage 2 can map every BAR to its own VM and nothing
//! else.
//!
//! Largest first, upward from the window's start: with power-of-two sizes, each placed at a
//! multiple of its size, no space is lost to alignment.

use crate::Bdf;
use crate::bar::{Bar, BarKind};
use crate::filter::PAGE;
use alloc::vec::Vec;

/// A host bridge memory window: bus addresses `[pci, pci + size)` at CPU physical addresses
/// from `cpu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostWindow {
    /// Its first bus address.
    pub pci: u64,
    /// Where the CPU reaches it.
    pub cpu: u64,
    /// Its length.
    pub size: u64,
    /// Whether it is a 64-bit window (bus addresses may be at or above 4 GiB).
    pub wide: bool,
}

/// A BAR as placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The function.
    pub bdf: Bdf,
    /// The BAR (the lower of a 64-bit pair).
    pub index: u8,
    /// Its space.
    pub kind: BarKind,
    /// Its size as the function declares it.
    pub size: u64,
    /// The bus address to program.
    pub pci: u64,
    /// Where the CPU reaches it.
    pub pa: u64,
}

/// Why the BARs do not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRoom {
    /// The BAR that did not fit.
    pub bdf: Bdf,
    /// Its index.
    pub index: u8,
    /// Its size.
    pub size: u64,
}

impl core::fmt::Display for NoRoom {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "BAR {} of PCI function {} ({:#x} bytes) does not fit the host bridge's memory windows",
            self.index, self.bdf, self.size
        )
    }
}

/// Places the memory BARs `bars` (function, BAR) in `windows`: a 32-bit BAR in a window whose
/// bus addresses stay below 4 GiB, a 64-bit one in any (a wide window first). I/O BARs are
/// left out: Moat hides them from its guests (`crate::filter`).
///
/// # Errors
///
/// [`NoRoom`] for the first BAR (largest first) that fits no window.
pub fn place_bars(windows: &[HostWindow], bars: &[(Bdf, Bar)]) -> Result<Vec<Placed>, NoRoom> {
    let mut order: Vec<&(Bdf, Bar)> = bars.iter().filter(|(_, b)| b.kind != BarKind::Io).collect();
    order.sort_by(|(da, a), (db, b)| b.size.cmp(&a.size).then((da, a.index).cmp(&(db, b.index))));
    // The next free bus address of each window.
    let mut next: Vec<u64> = windows.iter().map(|w| w.pci).collect();
    let mut placed = Vec::new();
    for &&(bdf, bar) in &order {
        let span = bar.size.max(PAGE);
        let fits = |(i, w): (usize, &HostWindow)| {
            let start = next[i].checked_next_multiple_of(span)?;
            let end = start.checked_add(span)?;
            let below_4g = end <= 1 << 32;
            let allowed = bar.kind.is_64bit() || below_4g;
            (allowed && end <= w.pci + w.size).then_some((i, start))
        };
        let mut candidates: Vec<(usize, &HostWindow)> = windows.iter().enumerate().collect();
        // A 64-bit BAR goes to a wide window first, keeping the 32-bit space for 32-bit BARs.
        candidates.sort_by_key(|(_, w)| !(bar.kind.is_64bit() && w.wide));
        let Some((i, start)) = candidates.into_iter().find_map(fits) else {
            return Err(NoRoom {
                bdf,
                index: bar.index,
                size: bar.size,
            });
        };
        next[i] = start + span;
        placed.push(Placed {
            bdf,
            index: bar.index,
            kind: bar.kind,
            size: bar.size,
            pci: start,
            pa: windows[i].cpu + (start - windows[i].pci),
        });
    }
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOW: HostWindow = HostWindow {
        pci: 0x1000_0000,
        cpu: 0x1000_0000,
        size: 0x2eff_0000,
        wide: false,
    };

    fn bar(index: u8, kind: BarKind, size: u64) -> Bar {
        Bar {
            index,
            kind,
            address: 0,
            size,
        }
    }

    fn f(device: u8) -> Bdf {
        Bdf::new(0, device, 0).unwrap()
    }

    #[test]
    fn virtio_blk_bars_are_placed_largest_first_aligned_and_alone_in_their_pages() {
        // QEMU's modern virtio-blk-pci: BAR1 4 KiB (MSI-X), BAR4 16 KiB 64-bit prefetchable.
        let mem64 = BarKind::Mem64 { prefetchable: true };
        let mem32 = BarKind::Mem32 {
            prefetchable: false,
        };
        let bars = [
            (f(1), bar(1, mem32, 0x1000)),
            (f(1), bar(4, mem64, 0x4000)),
            (f(2), bar(0, mem32, 0x100)),
            (f(2), bar(2, BarKind::Io, 0x20)),
        ];
        let placed = place_bars(&[LOW], &bars).unwrap();
        let at: Vec<(u8, u8, u64)> = placed
            .iter()
            .map(|p| (p.bdf.device, p.index, p.pci))
            .collect();
        // 16 KiB at the window's start; then the 4 KiB BAR; then the 256-byte BAR alone in a
        // page. The I/O BAR is not placed.
        assert_eq!(
            at,
            [
                (1, 4, 0x1000_0000),
                (1, 1, 0x1000_4000),
                (2, 0, 0x1000_5000)
            ]
        );
        assert!(placed.iter().all(|p| p.pa == p.pci));
    }

    #[test]
    fn alignment_follows_the_size_and_cpu_addresses_follow_the_window() {
        let window = HostWindow {
            pci: 0x1000_1000,
            cpu: 0x80_0000_1000,
            size: 0x100_0000,
            wide: false,
        };
        let mem = BarKind::Mem32 {
            prefetchable: false,
        };
        let placed = place_bars(&[window], &[(f(3), bar(0, mem, 0x10_0000))]).unwrap();
        assert_eq!(placed[0].pci, 0x1010_0000, "1 MiB aligned");
        assert_eq!(placed[0].pa, 0x80_0010_0000);
    }

    #[test]
    fn bars_that_do_not_fit_are_named_and_64_bit_ones_prefer_the_wide_window() {
        let small = HostWindow {
            size: 0x2000,
            ..LOW
        };
        let mem = BarKind::Mem32 {
            prefetchable: false,
        };
        let bars = [(f(1), bar(0, mem, 0x1000)), (f(1), bar(1, mem, 0x4000))];
        assert_eq!(
            place_bars(&[small], &bars),
            Err(NoRoom {
                bdf: f(1),
                index: 1,
                size: 0x4000
            })
        );
        let high = HostWindow {
            pci: 0x80_0000_0000,
            cpu: 0x80_0000_0000,
            size: 0x80_0000_0000,
            wide: true,
        };
        let mem64 = BarKind::Mem64 {
            prefetchable: false,
        };
        let placed = place_bars(
            &[LOW, high],
            &[(f(1), bar(0, mem64, 0x4000)), (f(2), bar(0, mem, 0x1000))],
        )
        .unwrap();
        assert_eq!(
            (placed[0].pci, placed[1].pci),
            (0x80_0000_0000, 0x1000_0000)
        );
        // A 32-bit BAR never lands in a window above 4 GiB.
        assert!(place_bars(&[high], &[(f(2), bar(0, mem, 0x1000))]).is_err());
    }
}
