//! Stopping a function before its VM's memory is scrubbed or reused: `Command` cleared (no
//! bus mastering, no decode: PCI 3.0, 6.2.2), then a Function Level Reset where the function
//! has one (PCIe 4.0, 6.6.2: `Function Level Reset Capability` in the PCI Express
//! Capability's `Device Capabilities`, bit 28; started by `Initiate Function Level Reset`,
//! `Device Control` bit 15).

use crate::header::{CAPABILITIES_POINTER, COMMAND, STATUS};
use crate::{Bdf, ConfigSpace};

/// The PCI Express Capability's ID (PCIe 4.0, 7.5.3.1).
pub const CAP_ID_PCIE: u8 = 0x10;
/// `Status.Capabilities List`, bit 4: the function has a capability list.
const STATUS_CAP_LIST: u32 = 1 << 4;
/// `Device Capabilities` at capability + 4; `Function Level Reset Capability`, bit 28.
const DEVCAP: u16 = 4;
const DEVCAP_FLR: u32 = 1 << 28;
/// `Device Control` at capability + 8 (its low half); `Initiate FLR`, bit 15.
const DEVCTL: u16 = 8;
const DEVCTL_INITIATE_FLR: u32 = 1 << 15;
/// The most capabilities followed: a list longer than the space's 48 DWORDs is a loop.
const MAX_CAPABILITIES: usize = 48;

/// The offset of `bdf`'s capability `id`, following the list from `Capabilities Pointer`
/// (PCI 3.0, 6.7); `None` without one.
#[must_use]
pub fn find_capability(cfg: &impl ConfigSpace, bdf: Bdf, id: u8) -> Option<u16> {
    let status = cfg.read32(bdf, COMMAND & !3) >> (8 * (STATUS & 3));
    if status & STATUS_CAP_LIST == 0 {
        return None;
    }
    let mut at = (cfg.read32(bdf, CAPABILITIES_POINTER & !3) & 0xfc) as u16;
    for _ in 0..MAX_CAPABILITIES {
        if at < 0x40 {
            return None;
        }
        let header = cfg.read32(bdf, at);
        if header & 0xff == u32::from(id) {
            return Some(at);
        }
        at = (header >> 8 & 0xfc) as u16;
    }
    None
}

/// What quiescing did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quiesced {
    /// `Command` cleared and a Function Level Reset started: the function is not to be touched
    /// for 100 ms (PCIe 4.0, 6.6.2).
    Reset,
    /// `Command` cleared; the function has no Function Level Reset.
    CommandCleared,
}

/// Clears `bdf`'s `Command` (bus mastering and decode off) and starts a Function Level Reset
/// where it has one.
pub fn quiesce(cfg: &mut impl ConfigSpace, bdf: Bdf) -> Quiesced {
    let cap = find_capability(cfg, bdf, CAP_ID_PCIE);
    // The Status half is written as zeros: its RW1C bits stay as they are.
    cfg.write32(bdf, COMMAND & !3, 0);
    let Some(cap) = cap else {
        return Quiesced::CommandCleared;
    };
    if cfg.read32(bdf, cap + DEVCAP) & DEVCAP_FLR == 0 {
        return Quiesced::CommandCleared;
    }
    // Device Status (the upper half) is RW1C: written as zeros.
    let control = cfg.read32(bdf, cap + DEVCTL) & 0xffff;
    cfg.write32(bdf, cap + DEVCTL, control | DEVCTL_INITIATE_FLR);
    Quiesced::Reset
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    /// One function's configuration space, DWORD by DWORD.
    #[derive(Default)]
    struct Space(BTreeMap<u16, u32>);

    impl ConfigSpace for Space {
        fn read32(&self, _: Bdf, offset: u16) -> u32 {
            self.0.get(&offset).copied().unwrap_or(0)
        }
        fn write32(&mut self, _: Bdf, offset: u16, value: u32) {
            self.0.insert(offset, value);
        }
    }

    const F: Bdf = Bdf {
        bus: 0,
        device: 1,
        function: 0,
    };

    fn with_caps(devcap: u32) -> Space {
        let mut s = Space::default();
        // Command: memory + bus master; Status: capability list.
        s.0.insert(0x04, 0x0010_0006);
        s.0.insert(0x34, 0x40);
        // 0x40: MSI-X (0x11) → 0x50: PCI Express (0x10), end.
        s.0.insert(0x40, 0x0000_5011);
        s.0.insert(0x50, 0x0002_0010);
        s.0.insert(0x54, devcap);
        s.0.insert(0x58, 0x0000_2810);
        s
    }

    #[test]
    fn a_function_with_flr_is_stopped_and_reset() {
        let mut s = with_caps(DEVCAP_FLR);
        assert_eq!(find_capability(&s, F, CAP_ID_PCIE), Some(0x50));
        assert_eq!(quiesce(&mut s, F), Quiesced::Reset);
        assert_eq!(s.0[&0x04], 0, "Command cleared, Status written as zeros");
        assert_eq!(s.0[&0x58], 0x0000_a810, "Initiate FLR set, the rest kept");
    }

    #[test]
    fn a_function_without_flr_or_capabilities_only_has_command_cleared() {
        let mut s = with_caps(0);
        assert_eq!(quiesce(&mut s, F), Quiesced::CommandCleared);
        assert_eq!(s.0[&0x58], 0x0000_2810);
        let mut bare = Space::default();
        bare.0.insert(0x04, 0x0000_0006);
        assert_eq!(find_capability(&bare, F, CAP_ID_PCIE), None);
        assert_eq!(quiesce(&mut bare, F), Quiesced::CommandCleared);
        assert_eq!(bare.0[&0x04], 0);
    }

    #[test]
    fn a_capability_list_that_loops_ends() {
        let mut s = with_caps(0);
        s.0.insert(0x50, 0x0000_4011);
        assert_eq!(find_capability(&s, F, CAP_ID_PCIE), None);
    }
}
