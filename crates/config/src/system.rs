//! The system description: the VMs that share one machine, each on CPUs of its own
//! ([`VmConfig::physical_cpus`]) and in RAM of its own, and the rules they must satisfy
//! together. The host tool builds it from a TOML file (`SystemConfig::from_toml_str`, with the
//! `host` feature) and checks it against the machine it will give QEMU; Moat reads it from the
//! bundle and checks it against the machine its device tree describes.
//!
//! Each VM has its own IPA space, so two VMs may both put RAM at the same IPA: what they must
//! not share is the machine's CPUs, and their RAM together must fit the machine's.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use moat_pci::Bdf;

use crate::schema::VmConfig;
use crate::validate::ConfigError;

/// The most CPUs of a machine Moat drives (its per-CPU state is a fixed array).
pub const MAX_MACHINE_CPUS: u32 = 8;

/// What the VMs share: the machine as Moat sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// The machine's CPUs, numbered 0.. in the order of its device tree's `/cpus`.
    pub cpus: u32,
    /// The RAM that can back the VMs' RAM: in Moat, what is left after its own boot
    /// reservations (its image, heap, the device tree and the bundle); on the host, what QEMU
    /// gets less the room the host tool leaves for Moat and the bundle.
    pub ram_bytes: u64,
}

/// The VMs of one machine, in the order they are listed (and numbered in the bundle).
/// Build it from TOML or with [`SystemConfig::single`], then [`validate`](Self::validate) it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemConfig {
    /// The VMs.
    pub vms: Vec<VmConfig>,
}

/// Shows a byte count as `N MiB`, or in hexadecimal when it is not a whole number of MiB.
struct Size(u128);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1 << 20) {
            write!(f, "{} MiB", self.0 >> 20)
        } else {
            write!(f, "{} bytes", crate::hex::Hex(self.0))
        }
    }
}

/// The VMs and their RAM sizes, as `VM 'a' 256 MiB, VM 'b' 64 MiB`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RamShares(pub Vec<(String, u64)>);

impl fmt::Display for RamShares {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, bytes)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}VM '{name}' {}", Size(u128::from(*bytes)))?;
        }
        Ok(())
    }
}

/// The machine's CPU numbers, as `0-3` (or `0` for one CPU).
struct CpuRange(u32);

impl fmt::Display for CpuRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("none"),
            1 => f.write_str("0"),
            n => write!(f, "0-{}", n - 1),
        }
    }
}

/// One INTx line of a VM's PCI functions: the physical SPI the functions' pins reach through
/// the host bridge's `interrupt-map`, and the SPI the VM's guest sees for it
/// (`GUEST_INTX_INTID` + `intx_line`, the guest's own `interrupt-map`). Moat takes the
/// physical one and forwards it to the guest's (`VmConfig::intx_routes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntxRoute {
    /// The physical SPI's INTID.
    pub physical: u32,
    /// The guest's SPI's INTID.
    pub guest: u32,
}

/// Why a system description was refused: one line naming the VMs and the resource.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SystemError {
    /// Nothing to run.
    #[error("the system description has no VM: give it at least one [[vm]] table")]
    NoVm,
    /// A VM without a CPU to run on.
    #[error("VM '{vm}' has no CPU: list the machine's CPUs that run its vCPUs, e.g. cpus = [0]")]
    NoCpu {
        /// The VM.
        vm: String,
    },
    /// A VM breaking one of its own rules.
    #[error("VM '{vm}': {error}")]
    Vm {
        /// The VM.
        vm: String,
        /// The rule it breaks.
        error: ConfigError,
    },
    /// Two VMs of one name (names tell VMs apart in messages and on the console).
    #[error("VMs {first} and {second} are both named '{name}': each VM needs a name of its own")]
    DuplicateName {
        /// The name.
        name: String,
        /// The first VM's index in the description.
        first: usize,
        /// The second one's.
        second: usize,
    },
    /// A machine CPU given to two VMs.
    #[error(
        "CPU {cpu} is given to both VM '{first}' and VM '{second}': a machine CPU runs the vCPU of one VM only"
    )]
    SharedCpu {
        /// The CPU.
        cpu: u32,
        /// The VM listed first.
        first: String,
        /// The VM listed later.
        second: String,
    },
    /// A link to a VM the description does not have.
    #[error("VM '{vm}' has a virtio-net link to '{peer}', but no VM is named '{peer}'")]
    UnknownLinkPeer {
        /// The VM.
        vm: String,
        /// The name its link gives.
        peer: String,
    },
    /// A link from a VM to itself.
    #[error("VM '{vm}' has a virtio-net link to itself: a link joins two VMs")]
    LinkToItself {
        /// The VM.
        vm: String,
    },
    /// Two links between the same two VMs.
    #[error("VM '{vm}' has two virtio-net devices linked to VM '{peer}': two VMs share one link")]
    DuplicateLink {
        /// The VM.
        vm: String,
        /// The peer named twice.
        peer: String,
    },
    /// A link its other end does not name back.
    #[error(
        "VM '{vm}' has a virtio-net link to VM '{peer}', but VM '{peer}' has no virtio-net device with link = \"{vm}\""
    )]
    LinkNotReturned {
        /// The VM.
        vm: String,
        /// Its peer.
        peer: String,
    },
    /// A PCI function given to two VMs.
    #[error(
        "PCI function {bdf} is given to both VM '{first}' and VM '{second}': a device belongs to one VM"
    )]
    SharedPciFunction {
        /// The function.
        bdf: Bdf,
        /// The VM listed first.
        first: String,
        /// The VM listed later.
        second: String,
    },
    /// Two VMs' PCI functions on one INTx line, before boot (each taken to use INTA).
    #[error(
        "PCI functions {first_bdf} of VM '{first}' and {second_bdf} of VM '{second}' would share INTx line {line} (INTA of slots {} and {}, equal mod 4): the four INTx lines are shared between slots, and devices of different VMs must not share one",
        first_bdf.device,
        second_bdf.device
    )]
    SharedIntxLine {
        /// The first VM's function.
        first_bdf: Bdf,
        /// The first VM.
        first: String,
        /// The later VM's function.
        second_bdf: Bdf,
        /// The later VM.
        second: String,
        /// The line, 0..4.
        line: u8,
    },
    /// An assigned PCI function the machine's scan did not find (at boot).
    #[error(
        "VM '{vm}' is given PCI function {bdf}, but the machine's PCI scan found no function there"
    )]
    AbsentPciFunction {
        /// The VM.
        vm: String,
        /// The function.
        bdf: Bdf,
    },
    /// Two VMs' PCI functions on one INTID, by their real pins (at boot).
    #[error(
        "PCI functions {first_bdf} of VM '{first}' and {second_bdf} of VM '{second}' both interrupt on INTID {intid} (their INTx pins meet on one line): devices of different VMs must not share an INTx line"
    )]
    SharedIntxAtBoot {
        /// The first VM's function.
        first_bdf: Bdf,
        /// The first VM.
        first: String,
        /// The later VM's function.
        second_bdf: Bdf,
        /// The later VM.
        second: String,
        /// The INTID.
        intid: u32,
    },
    /// Two functions of one VM whose INTx lines pair its guest's SPIs and the machine's
    /// physical SPIs other than one to one (at boot; `VmConfig::intx_routes`).
    #[error(
        "VM '{vm}': PCI functions {first_bdf} and {second_bdf} interrupt on guest INTIDs {} and {} but on physical INTIDs {} and {}: Moat forwards one physical INTx line to one guest line, and the host bridge's interrupt-map does not pair them so",
        first.guest, second.guest, first.physical, second.physical
    )]
    IntxNotOneToOne {
        /// The VM.
        vm: String,
        /// The first function.
        first_bdf: Bdf,
        /// Its line.
        first: IntxRoute,
        /// The later function.
        second_bdf: Bdf,
        /// Its line.
        second: IntxRoute,
    },
    /// PCI functions on a machine without an SMMUv3 (at boot).
    #[error(
        "VM '{vm}' is given PCI function {bdf}, but the machine has no SMMUv3 to confine its DMA"
    )]
    NoSmmu {
        /// The first VM with functions.
        vm: String,
        /// Its first function.
        bdf: Bdf,
    },
    /// PCI functions behind an SMMU that cannot translate them through a VM's stage 2 (at
    /// boot).
    #[error("VM '{vm}' is given PCI function {bdf}, but the SMMUv3 cannot confine its DMA: {why}")]
    SmmuCannotConfine {
        /// The first VM with functions.
        vm: String,
        /// Its first function.
        bdf: Bdf,
        /// What the SMMU lacks.
        why: &'static str,
    },
    /// A VM with PCI functions whose IPAs the SMMU cannot take (at boot).
    #[error(
        "VM '{vm}' has PCI functions and ipa-bits = {ipa_bits}, but the SMMUv3 takes input addresses of {ias_bits} bits"
    )]
    SmmuInputTooSmall {
        /// The VM.
        vm: String,
        /// Its `S`.
        ipa_bits: u32,
        /// The SMMU's input size.
        ias_bits: u32,
    },
    /// A CPU the machine does not have.
    #[error("VM '{vm}' names CPU {cpu}, but the machine has {machine_cpus} CPUs ({})", CpuRange(*machine_cpus))]
    AbsentCpu {
        /// The VM.
        vm: String,
        /// The CPU it names.
        cpu: u32,
        /// The machine's CPU count.
        machine_cpus: u32,
    },
    /// More RAM asked for than the machine has for VMs.
    #[error(
        "the VMs' RAM together ({shares}: {} in all) exceeds the {} the machine has for VMs",
        Size(*total),
        Size(u128::from(*available))
    )]
    RamExceedsMachine {
        /// Each VM's RAM.
        shares: RamShares,
        /// Their sum.
        total: u128,
        /// [`Machine::ram_bytes`].
        available: u64,
    },
}

impl SystemConfig {
    /// A system of one VM: what a single-VM description means.
    #[must_use]
    pub fn single(vm: VmConfig) -> Self {
        Self { vms: vec![vm] }
    }

    /// The number of CPUs a machine needs to run every VM: the highest CPU named, plus one
    /// (0 without any).
    #[must_use]
    pub fn machine_cpus_needed(&self) -> u32 {
        let highest = self.vms.iter().flat_map(|vm| vm.physical_cpus.iter());
        highest.max().map_or(0, |&cpu| cpu.saturating_add(1))
    }

    /// The VMs' RAM together, in bytes.
    #[must_use]
    pub fn ram_bytes(&self) -> u128 {
        let regions = self.vms.iter().flat_map(|vm| vm.ram.iter());
        regions.map(|r| u128::from(r.size)).sum()
    }

    /// Checks each VM against its own rules ([`VmConfig::validate`] with `ipa_limit`), then
    /// the rules between VMs, and, where the machine is known, against the machine.
    ///
    /// # Errors
    ///
    /// The first rule broken, in this order: no VM; per VM in order, no CPU, then its own
    /// rules; two VMs of one name; a link to an unknown VM, to itself, twice to one VM, or not
    /// named back; a CPU given to two VMs; a PCI function given to two VMs, or two VMs'
    /// functions on one INTx line; a CPU the machine lacks; the VMs' RAM together above the
    /// machine's.
    pub fn validate(
        &self,
        machine: Option<Machine>,
        ipa_limit: Option<u32>,
    ) -> Result<(), SystemError> {
        if self.vms.is_empty() {
            return Err(SystemError::NoVm);
        }
        for vm in &self.vms {
            if vm.cpus == 0 || vm.physical_cpus.is_empty() {
                return Err(SystemError::NoCpu {
                    vm: vm.name.clone(),
                });
            }
            vm.validate(ipa_limit).map_err(|error| SystemError::Vm {
                vm: vm.name.clone(),
                error,
            })?;
        }
        self.check_names()?;
        self.check_links()?;
        self.check_shared_cpus()?;
        self.check_pci()?;
        match machine {
            Some(machine) => self.check_machine(machine),
            None => Ok(()),
        }
    }

    fn check_names(&self) -> Result<(), SystemError> {
        for (second, vm) in self.vms.iter().enumerate() {
            if let Some(first) = self.vms[..second].iter().position(|v| v.name == vm.name) {
                return Err(SystemError::DuplicateName {
                    name: vm.name.clone(),
                    first,
                    second,
                });
            }
        }
        Ok(())
    }

    /// Each virtio-net link names another VM of the description, once, and that VM names this
    /// one back: a link has exactly two ends.
    fn check_links(&self) -> Result<(), SystemError> {
        for vm in &self.vms {
            let peers: Vec<&str> = vm.links().collect();
            for (i, &peer) in peers.iter().enumerate() {
                let error = |make: fn(String, String) -> SystemError| {
                    Err(make(vm.name.clone(), peer.into()))
                };
                if peer == vm.name {
                    return Err(SystemError::LinkToItself {
                        vm: vm.name.clone(),
                    });
                }
                if peers[..i].contains(&peer) {
                    return error(|vm, peer| SystemError::DuplicateLink { vm, peer });
                }
                let Some(other) = self.vms.iter().find(|v| v.name == peer) else {
                    return error(|vm, peer| SystemError::UnknownLinkPeer { vm, peer });
                };
                if !other.links().any(|back| back == vm.name) {
                    return error(|vm, peer| SystemError::LinkNotReturned { vm, peer });
                }
            }
        }
        Ok(())
    }

    fn check_shared_cpus(&self) -> Result<(), SystemError> {
        for (i, vm) in self.vms.iter().enumerate() {
            for &cpu in &vm.physical_cpus {
                let earlier = self.vms[..i].iter();
                if let Some(first) = earlier.into_iter().find(|v| v.physical_cpus.contains(&cpu)) {
                    return Err(SystemError::SharedCpu {
                        cpu,
                        first: first.name.clone(),
                        second: vm.name.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    fn check_machine(&self, machine: Machine) -> Result<(), SystemError> {
        for vm in &self.vms {
            if let Some(&cpu) = vm.physical_cpus.iter().find(|&&c| c >= machine.cpus) {
                return Err(SystemError::AbsentCpu {
                    vm: vm.name.clone(),
                    cpu,
                    machine_cpus: machine.cpus,
                });
            }
        }
        let total = self.ram_bytes();
        if total > u128::from(machine.ram_bytes) {
            let shares = self.vms.iter().map(|vm| {
                let ram = vm
                    .ram
                    .iter()
                    .fold(0u64, |sum, r| sum.saturating_add(r.size));
                (vm.name.clone(), ram)
            });
            return Err(SystemError::RamExceedsMachine {
                shares: RamShares(shares.collect()),
                total,
                available: machine.ram_bytes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "system_tests.rs"]
mod tests;
