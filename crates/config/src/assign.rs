//! PCI functions assigned to VMs (`pci = ["00:01.0"]`): the rules a description keeps before
//! boot, and those only the machine can answer, which Moat checks at boot against its ECAM
//! scan.
//!
//! Before boot: a VM lists a function once; a function belongs to one VM; a VM with functions
//! has an IPA space the SMMU can translate (the SMMU walks the VM's own stage-2 tables, and
//! QEMU's SMMUv3 takes input addresses of at most [`SMMU_IPA_BITS`]); and devices of different
//! VMs do not share an INTx line. The four INTx lines of a host bridge are shared between its
//! slots: pin `p` of slot `d` drives line `(d + p − 1) mod 4` (the swizzle of the PCI-to-PCI
//! Bridge Architecture Specification 1.2, 9.1, which QEMU `virt`'s `interrupt-map` follows),
//! and a line is one level-sensitive interrupt, which one VM's guest acknowledges. Before boot
//! the pins are unknown, so every function is taken to use INTA (what single-function devices,
//! virtio-pci among them, use); at boot the functions' own `Interrupt Pin` and the host
//! bridge's `interrupt-map` decide ([`SystemConfig::check_pci_against_scan`]).
//!
//! At boot only: that each function exists. The description names addresses; what sits at
//! them is known once Moat has scanned ECAM.

use alloc::string::String;

use moat_pci::Bdf;
use moat_pci::smmu::SmmuFeatures;

use crate::schema::VmConfig;
pub use crate::schema::{
    GUEST_ECAM_IPA, GUEST_INTX_INTID, GUEST_LAST_BUS, GUEST_PCI_MEMORY_IPA, GUEST_PCI_MEMORY_SIZE,
    SMMU_IPA_BITS,
};
pub use crate::system::IntxRoute;
use crate::system::{SystemConfig, SystemError};
use crate::validate::{ConfigError, Region, RegionId};
use moat_arm::addr::Ipa;

/// The ECAM window of a VM with PCI functions: IPA and length.
#[must_use]
pub const fn guest_ecam() -> (u64, u64) {
    (GUEST_ECAM_IPA, (GUEST_LAST_BUS as u64 + 1) << 20)
}

/// The memory window of a VM with PCI functions: IPA (= bus address) and length.
#[must_use]
pub const fn guest_pci_memory() -> (u64, u64) {
    (GUEST_PCI_MEMORY_IPA, GUEST_PCI_MEMORY_SIZE)
}

/// The INTx line, 0..4, that pin `pin` (1 = INTA .. 4 = INTD) of `bdf` drives on its host
/// bridge: `(device + pin − 1) mod 4`.
#[must_use]
pub fn intx_line(bdf: Bdf, pin: u8) -> u8 {
    (bdf.device + pin.wrapping_sub(1)) % 4
}

/// The pin taken before boot, when the functions' `Interrupt Pin` is not known yet: INTA.
const ASSUMED_PIN: u8 = 1;

impl VmConfig {
    /// The VM's own PCI rules: no function twice; an IPA space of at most [`SMMU_IPA_BITS`]
    /// when it has functions.
    pub(crate) fn check_pci(&self) -> Result<(), ConfigError> {
        for (i, &bdf) in self.pci.iter().enumerate() {
            if self.pci[..i].contains(&bdf) {
                return Err(ConfigError::PciFunctionTwice { bdf });
            }
            if bdf.bus > GUEST_LAST_BUS {
                return Err(ConfigError::PciBusBeyondBridge { bdf });
            }
        }
        if !self.pci.is_empty() && self.ipa_bits > SMMU_IPA_BITS {
            return Err(ConfigError::PciIpaBits {
                ipa_bits: self.ipa_bits,
            });
        }
        Ok(())
    }
}

impl VmConfig {
    /// The PCIe host bridge's windows in the VM's IPA space, when it has PCI functions:
    /// checked like its other regions (inside `2^S`, overlapping nothing).
    pub(crate) fn pci_regions(&self) -> impl Iterator<Item = Region> + '_ {
        let (ecam, ecam_size) = guest_ecam();
        let (memory, memory_size) = guest_pci_memory();
        let windows = [
            (RegionId::PciEcam, ecam, ecam_size),
            (RegionId::PciMemory, memory, memory_size),
        ];
        windows
            .into_iter()
            .filter(|_| !self.pci.is_empty())
            .map(|(id, base, size)| Region {
                id,
                base: Ipa(base),
                size,
            })
    }
}

/// Every (VM name, function) of the description, VMs in order.
fn functions(system: &SystemConfig) -> impl Iterator<Item = (&String, Bdf)> {
    system
        .vms
        .iter()
        .flat_map(|vm| vm.pci.iter().map(move |&bdf| (&vm.name, bdf)))
}

impl SystemConfig {
    /// The PCI rules between VMs: a function given to one VM only; no two VMs' functions on
    /// one INTx line, taking every function to use INTA.
    pub(crate) fn check_pci(&self) -> Result<(), SystemError> {
        let all: alloc::vec::Vec<(&String, Bdf)> = functions(self).collect();
        for (i, &(vm, bdf)) in all.iter().enumerate() {
            let earlier = all[..i].iter().filter(|(other, _)| *other != vm);
            if let Some(&(first, _)) = earlier.clone().find(|(_, b)| *b == bdf) {
                return Err(SystemError::SharedPciFunction {
                    bdf,
                    first: first.clone(),
                    second: vm.clone(),
                });
            }
            let line = intx_line(bdf, ASSUMED_PIN);
            if let Some(&(first, first_bdf)) = earlier
                .clone()
                .find(|(_, b)| intx_line(*b, ASSUMED_PIN) == line)
            {
                return Err(SystemError::SharedIntxLine {
                    first_bdf,
                    first: first.clone(),
                    second_bdf: bdf,
                    second: vm.clone(),
                    line,
                });
            }
        }
        Ok(())
    }

    /// At boot: [`SystemConfig::check_pci_against_scan`], then the SMMU (`smmu`, `None` when
    /// the machine has none) can confine the functions' DMA through each owning VM's stage 2:
    /// it translates at stage 2 ([`SmmuFeatures::cannot_assign`]) and takes the VM's IPAs
    /// (its input size at least the VM's `S`). Nothing to check without functions.
    ///
    /// # Errors
    ///
    /// The scan's refusals, then [`SystemError::NoSmmu`], [`SystemError::SmmuCannotConfine`],
    /// [`SystemError::SmmuInputTooSmall`].
    pub fn check_pci_at_boot(
        &self,
        smmu: Option<SmmuFeatures>,
        pin_of: impl Fn(Bdf) -> Option<u8>,
        intid_of: impl Fn(Bdf, u8) -> Option<u32>,
    ) -> Result<(), SystemError> {
        let Some((vm, bdf)) = functions(self).next() else {
            return Ok(());
        };
        self.check_pci_against_scan(pin_of, intid_of)?;
        let Some(smmu) = smmu else {
            return Err(SystemError::NoSmmu {
                vm: vm.clone(),
                bdf,
            });
        };
        if let Some(why) = smmu.cannot_assign() {
            return Err(SystemError::SmmuCannotConfine {
                vm: vm.clone(),
                bdf,
                why,
            });
        }
        let ias_bits = smmu.ias_bits().unwrap_or(0);
        let too_large = self
            .vms
            .iter()
            .find(|v| !v.pci.is_empty() && v.ipa_bits > ias_bits);
        match too_large {
            Some(v) => Err(SystemError::SmmuInputTooSmall {
                vm: v.name.clone(),
                ipa_bits: v.ipa_bits,
                ias_bits,
            }),
            None => Ok(()),
        }
    }

    /// At boot, against the machine's scan: every assigned function exists (`pin_of` gives
    /// its `Interrupt Pin`, `None` where the scan found no function), and no two VMs'
    /// functions interrupt on one INTID (`intid_of` maps a function's pin to its INTID
    /// through the host bridge's `interrupt-map`; pin 0, no interrupt, is skipped).
    ///
    /// # Errors
    ///
    /// [`SystemError::AbsentPciFunction`] for the first function the scan did not find,
    /// then [`SystemError::SharedIntxAtBoot`], then [`SystemError::IntxNotOneToOne`]
    /// ([`VmConfig::intx_routes`]).
    pub fn check_pci_against_scan(
        &self,
        pin_of: impl Fn(Bdf) -> Option<u8>,
        intid_of: impl Fn(Bdf, u8) -> Option<u32>,
    ) -> Result<(), SystemError> {
        let mut lines: alloc::vec::Vec<(&String, Bdf, u32)> = alloc::vec::Vec::new();
        for (vm, bdf) in functions(self) {
            let Some(pin) = pin_of(bdf) else {
                return Err(SystemError::AbsentPciFunction {
                    vm: vm.clone(),
                    bdf,
                });
            };
            let Some(intid) = intid_of(bdf, pin).filter(|_| pin != 0) else {
                continue;
            };
            if let Some(&(first, first_bdf, _)) = lines
                .iter()
                .find(|(other, _, i)| *other != vm && *i == intid)
            {
                return Err(SystemError::SharedIntxAtBoot {
                    first_bdf,
                    first: first.clone(),
                    second_bdf: bdf,
                    second: vm.clone(),
                    intid,
                });
            }
            lines.push((vm, bdf, intid));
        }
        for vm in &self.vms {
            vm.intx_routes(&pin_of, &intid_of)?;
        }
        Ok(())
    }
}

impl VmConfig {
    /// The VM's INTx lines, once each, in the order of their first function: for each
    /// function with an interrupt pin (`pin_of`, 1–4) that reaches the machine's GIC
    /// (`intid_of`, through the host bridge's `interrupt-map`), its physical SPI and the
    /// guest's SPI of its line. One physical SPI is forwarded to one guest SPI, so the two
    /// must pair one to one across the VM's functions: always so on a host bridge with the
    /// standard swizzle, which the guest's bridge has.
    ///
    /// # Errors
    ///
    /// [`SystemError::IntxNotOneToOne`] when two of the VM's functions share a guest line but
    /// not a physical SPI, or the reverse.
    pub fn intx_routes(
        &self,
        pin_of: impl Fn(Bdf) -> Option<u8>,
        intid_of: impl Fn(Bdf, u8) -> Option<u32>,
    ) -> Result<alloc::vec::Vec<IntxRoute>, SystemError> {
        let mut routes: alloc::vec::Vec<(Bdf, IntxRoute)> = alloc::vec::Vec::new();
        for &bdf in &self.pci {
            let Some(pin) = pin_of(bdf).filter(|pin| (1..=4).contains(pin)) else {
                continue;
            };
            let Some(physical) = intid_of(bdf, pin) else {
                continue;
            };
            let route = IntxRoute {
                physical,
                guest: GUEST_INTX_INTID + u32::from(intx_line(bdf, pin)),
            };
            match routes
                .iter()
                .find(|(_, r)| r.physical == physical || r.guest == route.guest)
            {
                Some((_, r)) if *r == route => {}
                Some(&(first_bdf, first)) => {
                    return Err(SystemError::IntxNotOneToOne {
                        vm: self.name.clone(),
                        first_bdf,
                        first,
                        second_bdf: bdf,
                        second: route,
                    });
                }
                None => routes.push((bdf, route)),
            }
        }
        Ok(routes.into_iter().map(|(_, r)| r).collect())
    }
}

#[cfg(test)]
#[path = "assign_tests.rs"]
mod tests;
