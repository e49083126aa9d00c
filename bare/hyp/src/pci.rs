//! The machine's PCIe host bridge and SMMUv3, as Moat finds them at boot (issue 12, its first
//! EL2 steps): the ECAM region scanned for functions, the SMMU's ID registers read for what it
//! can translate, both reported on the console; the VMs' PCI functions checked against them.
//! The functions given to VMs are readied here: decode and bus mastering off, BARs placed
//! (`Found::prepare`); the VM's side is `vmpci`.
//!
//! The hardware side only: [`Ecam`] is the `moat_pci::ConfigSpace` over the ECAM window; the
//! scan, the decoding and the report's contents come from `moat-pci` and `moat-platform`.

use alloc::string::String;
use alloc::vec::Vec;
use moat_config::assign::IntxRoute;
use moat_config::{SystemConfig, SystemError};
use moat_pci::bar::{self, Bar};
use moat_pci::filter::{Assigned, HostBar};
use moat_pci::header::{BAR0, COMMAND};
use moat_pci::place::{HostWindow, Placed, place_bars};
use moat_pci::scan::{Function, scan};
use moat_pci::smmu::SmmuFeatures;
use moat_pci::{Bdf, ConfigSpace, Width, ecam};
use moat_platform::pci::WindowKind;
use moat_platform::{PciHost, PhysRange, SmmuV3};

use crate::console::log;
use crate::mm::PhysAllocator;

/// `SMMU_IDR0`, `SMMU_IDR1` and `SMMU_IDR5`: offsets in register page 0 (IHI 0070, 6.2
/// "SMMU registers").
const SMMU_IDR0: usize = 0x00;
const SMMU_IDR1: usize = 0x04;
const SMMU_IDR5: usize = 0x14;

/// An ECAM window: configuration space of buses `first..=last` from `base`.
#[derive(Clone, Copy, Debug)]
pub struct Ecam {
    base: usize,
    first: u8,
    last: u8,
}

impl Ecam {
    /// The address of `offset` of `bdf`'s configuration space, inside the window.
    fn address(&self, bdf: Bdf, offset: u16) -> Option<usize> {
        (bdf.bus <= self.last && offset.is_multiple_of(4))
            .then(|| ecam::offset(self.first, bdf, offset))
            .flatten()
            .map(|at| self.base + at as usize)
    }
}

impl Ecam {
    /// Writes `value` at `offset` of `bdf`, `width` wide (an ECAM access of that size:
    /// PCIe 4.0, 7.2.2, so that a write to `Command` leaves the RW1C bits of `Status` alone).
    pub fn write(&mut self, bdf: Bdf, offset: u16, width: Width, value: u32) {
        let Some(at) = self
            .address(bdf, offset & !3)
            .map(|a| a + usize::from(offset & 3))
        else {
            return;
        };
        // SAFETY: `at` lies in the DWORD `Ecam::address` found inside the ECAM region,
        // identity-mapped as device memory; the caller's `offset` is `width`-aligned (the
        // filter passes only aligned accesses), so the access stays in the DWORD. Moat owns the
        // function; the write is what the VM that owns it asked for, filtered.
        unsafe {
            match width {
                Width::Byte => core::ptr::write_volatile(at as *mut u8, value as u8),
                Width::Word => core::ptr::write_volatile(at as *mut u16, value as u16),
                Width::Dword => core::ptr::write_volatile(at as *mut u32, value),
            }
        }
    }
}

impl ConfigSpace for Ecam {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        let Some(at) = self.address(bdf, offset) else {
            return u32::MAX;
        };
        // SAFETY: `at` is a 4-byte-aligned address inside the ECAM region the device tree
        // names (`Ecam::address` keeps to its buses), identity-mapped as device memory by
        // `device_ranges`; a configuration read has no side effect on a function (PCIe 4.0,
        // 7.2.2), and one that does not exist reads all-ones.
        unsafe { core::ptr::read_volatile(at as *const u32) }
    }

    fn write32(&mut self, bdf: Bdf, offset: u16, value: u32) {
        if let Some(at) = self.address(bdf, offset) {
            // SAFETY: as for `read32`; Moat owns every function at boot, before any VM runs.
            unsafe { core::ptr::write_volatile(at as *mut u32, value) };
        }
    }
}

/// A function ready to be given to a VM: its BARs as placed, its stream ID at the SMMU, the
/// ECAM window it is reached through.
#[derive(Clone, Debug)]
pub struct HostFunction {
    /// The function and its placed BARs.
    pub assigned: Assigned,
    /// Its BARs as placed, with their bus addresses.
    pub placed: Vec<Placed>,
    /// Its stream ID (through the host bridge's `iommu-map`; the requester ID without one).
    pub stream: u32,
    /// The machine's ECAM window.
    pub ecam: Ecam,
}

/// A VM's PCI functions as Moat readied them, and its INTx lines.
#[derive(Default)]
pub struct VmFunctions {
    /// The functions, in description order.
    pub functions: Vec<HostFunction>,
    /// Each physical INTx line the functions interrupt on, with the guest's SPI for it.
    pub intx: Vec<IntxRoute>,
}

/// Writes the placed BARs' bus addresses into their registers (at boot, and again after a
/// Function Level Reset cleared them).
pub fn program_bars(ecam: &mut Ecam, placed: &[Placed]) {
    for p in placed {
        let at = BAR0 + 4 * u16::from(p.index);
        ecam.write32(p.bdf, at, p.pci as u32 | p.kind.flags());
        if p.kind.is_64bit() {
            ecam.write32(p.bdf, at + 4, (p.pci >> 32) as u32);
        }
    }
}

/// The ranges Moat maps for itself to reach the bridge and the SMMU: the ECAM region and the
/// SMMU's register pages (empty where the machine has none).
pub fn device_ranges(host: Option<PciHost>, smmu: Option<SmmuV3>) -> [PhysRange; 2] {
    [
        host.map(|h| h.ecam).unwrap_or_default(),
        smmu.map(|s| s.regs).unwrap_or_default(),
    ]
}

/// What Moat found at boot.
pub struct Found {
    host: Option<PciHost>,
    ecam: Option<Ecam>,
    functions: Vec<Function>,
    smmu: Option<SmmuFeatures>,
    smmu_regs: Option<SmmuV3>,
}

impl Found {
    /// Checks the VMs' PCI functions against the machine
    /// (`SystemConfig::check_pci_at_boot`).
    ///
    /// # Errors
    ///
    /// The line to report.
    pub fn check(&self, system: &SystemConfig) -> Result<(), String> {
        system
            .check_pci_at_boot(self.smmu, |b| self.pin_of(b), |b, p| self.intid_of(b, p))
            .map_err(|e: SystemError| alloc::format!("{e}"))
    }

    /// The `Interrupt Pin` of the scanned function `bdf`; `None` when the scan found none.
    fn pin_of(&self, bdf: Bdf) -> Option<u8> {
        let f = self.functions.iter().find(|f| f.bdf == bdf)?;
        Some(f.interrupt_pin)
    }

    /// The physical INTID pin `pin` of `bdf` reaches through the host bridge's `interrupt-map`.
    fn intid_of(&self, bdf: Bdf, pin: u8) -> Option<u32> {
        self.host?.intx_intid(bdf.bus, bdf.device, u32::from(pin))
    }

    /// Readies the VMs' functions for assignment: each one's decode and bus mastering off,
    /// its memory BARs placed in the host bridge's memory windows (`moat_pci::place`) and
    /// programmed. Returns each VM's functions, in description order, with their stream IDs,
    /// the ECAM window they are reached through, and the VM's INTx lines
    /// (`VmConfig::intx_routes`). Needs [`Found::check`] passed.
    ///
    /// # Errors
    ///
    /// The line to report when the BARs do not fit the windows.
    pub fn prepare(&self, system: &SystemConfig) -> Result<Vec<VmFunctions>, String> {
        let (Some(host), Some(mut ecam)) = (self.host, self.ecam) else {
            return Ok(system.vms.iter().map(|_| VmFunctions::default()).collect());
        };
        let mut bars: Vec<(Bdf, Bar)> = Vec::new();
        for vm in &system.vms {
            for &bdf in &vm.pci {
                // Nothing decodes or masters until the VM's guest says so.
                ecam.write(bdf, COMMAND, Width::Word, 0);
                bars.extend(
                    bar::probe(&mut ecam, bdf)
                        .into_iter()
                        .flatten()
                        .map(|b| (bdf, b)),
                );
            }
        }
        let windows: Vec<HostWindow> = host
            .windows()
            .filter_map(|w| {
                let wide = match w.kind {
                    WindowKind::Io => return None,
                    WindowKind::Mem32 { .. } => false,
                    WindowKind::Mem64 { .. } => true,
                };
                Some(HostWindow {
                    pci: w.pci,
                    cpu: w.cpu.base,
                    size: w.cpu.size,
                    wide,
                })
            })
            .collect();
        let placed = place_bars(&windows, &bars).map_err(|e| alloc::format!("{e}"))?;
        program_bars(&mut ecam, &placed);
        for p in &placed {
            log!(
                "PCI {} BAR {}: {:#x} bytes at {:#x}",
                p.bdf,
                p.index,
                p.size,
                p.pa
            );
        }
        let function = |bdf: Bdf| {
            let mut bars = [None; moat_pci::header::BAR_COUNT];
            for p in placed.iter().filter(|p| p.bdf == bdf) {
                bars[usize::from(p.index)] = Some(HostBar {
                    kind: p.kind,
                    size: p.size,
                    pa: p.pa,
                });
            }
            let rid = bdf.requester_id();
            HostFunction {
                assigned: Assigned { bdf, bars },
                placed: placed.iter().filter(|p| p.bdf == bdf).copied().collect(),
                stream: host.stream_id(rid).unwrap_or(u32::from(rid)),
                ecam,
            }
        };
        system
            .vms
            .iter()
            .map(|vm| {
                let intx = vm
                    .intx_routes(|b| self.pin_of(b), |b, p| self.intid_of(b, p))
                    .map_err(|e| alloc::format!("{e}"))?;
                Ok(VmFunctions {
                    functions: vm.pci.iter().map(|&bdf| function(bdf)).collect(),
                    intx,
                })
            })
            .collect()
    }
}

impl Found {
    /// The SMMU's features, if the machine has one.
    pub fn smmu(&self) -> Option<SmmuFeatures> {
        self.smmu
    }

    /// Takes the SMMU for Moat (`smmu::take`): every stream aborts until a function is given
    /// to a VM. The table covers the stream IDs of the host bridge's buses (through its
    /// `iommu-map`; all of `SIDSIZE`, within Moat's bound, without one). Returns the SMMU's
    /// event queue and global error interrupts, to be enabled once the GIC is Moat's.
    pub fn take_smmu(&self, phys: &mut PhysAllocator) -> [Option<u32>; 2] {
        let (Some(regs), Some(features)) = (self.smmu_regs, self.smmu) else {
            return [None; 2];
        };
        let last_rid = self
            .host
            .and_then(|h| h.ecam_buses())
            .and_then(|(_, last)| Bdf::new(last, 31, 7))
            .map(Bdf::requester_id);
        let max_stream_id = last_rid
            .and_then(|rid| self.host?.stream_id(rid))
            .unwrap_or(u32::MAX);
        match crate::smmu::take(regs, &features, max_stream_id, phys) {
            Ok(intids) => intids,
            Err(e) => panic!("SMMUv3: no memory for its tables and queues: {e}"),
        }
    }
}

/// Reports the host bridge, the functions found on it and the SMMU, and returns them. Needs
/// [`device_ranges`] mapped.
pub fn report(host: Option<PciHost>, smmu: Option<SmmuV3>) -> Found {
    let mut found = Found {
        host,
        ecam: None,
        functions: Vec::new(),
        smmu: smmu.map(report_smmu),
        smmu_regs: smmu,
    };
    let Some(host) = host else {
        log!("PCIe: no host bridge in the device tree");
        return found;
    };
    let Some((first, last)) = host.ecam_buses() else {
        log!("PCIe: ECAM {} holds not one bus: not scanned", host.ecam);
        return found;
    };
    log!("PCIe: ECAM {}, buses {first:02x}-{last:02x}", host.ecam);
    for w in host.windows() {
        log!("PCIe: window {} bus {:#x} at {}", w.kind, w.pci, w.cpu);
    }
    let ecam = Ecam {
        base: host.ecam.base as usize,
        first,
        last,
    };
    for function in scan(&ecam, first, last) {
        report_function(&host, &function);
        found.functions.push(function);
    }
    found.ecam = Some(ecam);
    let count = found.functions.len();
    log!("PCI: {count} functions on buses {first:02x}-{last:02x}");
    found
}

fn report_function(host: &PciHost, f: &Function) {
    let pin = f.interrupt_pin;
    let intx = match (
        pin,
        host.intx_intid(f.bdf.bus, f.bdf.device, u32::from(pin)),
    ) {
        (0, _) => alloc::string::String::from("no INTx"),
        (1..=4, Some(intid)) => alloc::format!("INT{} INTID {intid}", char::from(b'A' + pin - 1)),
        _ => alloc::format!("pin {pin}, not in the interrupt-map"),
    };
    let stream = host
        .stream_id(f.bdf.requester_id())
        .map_or(alloc::string::String::from("no stream ID"), |s| {
            alloc::format!("stream {s:#x}")
        });
    log!(
        "PCI {}: {:04x}:{:04x} class {:06x}, {intx}, {stream}",
        f.bdf,
        f.vendor,
        f.device,
        f.class
    );
}

fn report_smmu(smmu: SmmuV3) -> SmmuFeatures {
    let read = |offset: usize| {
        // SAFETY: the ID registers lie in register page 0 of the SMMU the device tree names,
        // identity-mapped as device memory by `device_ranges`; reading them has no effect.
        unsafe { core::ptr::read_volatile((smmu.regs.base as usize + offset) as *const u32) }
    };
    let features = SmmuFeatures::decode(read(SMMU_IDR0), read(SMMU_IDR1), read(SMMU_IDR5));
    log!("SMMUv3: registers {}, {features}", smmu.regs);
    match features.cannot_assign() {
        Some(why) => log!("SMMUv3: cannot confine assigned devices: {why}"),
        None => log!("SMMUv3: can confine assigned devices at stage 2"),
    }
    features
}
