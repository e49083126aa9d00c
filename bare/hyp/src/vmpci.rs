//! A VM's PCI functions (issue 12): their DMA confined by the SMMU through the VM's own
//! stage 2, the guest's configuration accesses trapped at its ECAM window and filtered
//! (`moat_pci::filter::GuestBridge`), the BAR mappings the filter asks for carried out in
//! stage 2 as device memory, and the functions quiesced when the VM resets or stops.
//!
//! The hardware side only: the filter, the STE and the quiesce sequence come from `moat_pci`.

use crate::console::log;
use crate::gic;
use crate::mm::{OutOfMemory, PhysAllocator};
use crate::pci::{HostFunction, VmFunctions};
use crate::s2hw::{FramePool, IdentityTables, Tlb};
use alloc::vec::Vec;
use moat_arm::addr::{Ipa, Pa};
use moat_config::assign::{IntxRoute, guest_pci_memory};
use moat_devices::gic::{HwIrq, HwMapError, VcpuSet, VirtGic};
use moat_pci::filter::{Effect, GuestBridge, GuestWindow};
use moat_pci::quiesce::{Quiesced, quiesce};
use moat_pci::smmu::{SmmuFeatures, Stage2Ste, SteError};
use moat_pci::{Bdf, Width};
use moat_stage2::{S2Attrs, Stage2};

/// Stage-2 table frames kept per VM for its BAR mappings: one level-2 table for the memory
/// window's gigabyte and, per BAR, up to two level-3 tables (a BAR below 2 MiB may straddle a
/// 2 MiB boundary only if it is larger than a page, and each is size-aligned, so one suffices;
/// two leave room for the guest moving BARs about before the old tables come back).
const FRAMES_PER_BAR: usize = 2;

/// A VM's PCI side.
pub struct VmPci {
    functions: Vec<HostFunction>,
    /// Its functions' INTx lines.
    pub intx: IntxLines,
    bridge: GuestBridge,
    pool: FramePool,
    /// The index of the ECAM window among the VM's device windows.
    pub ecam_index: usize,
}

impl VmPci {
    /// The PCI side of a VM given `functions`, its ECAM window at device window `ecam_index`.
    ///
    /// # Errors
    ///
    /// When there is no memory for the stage-2 frames its BARs may need.
    pub fn new(
        functions: VmFunctions,
        ecam_index: usize,
        phys: &mut PhysAllocator,
    ) -> Result<Self, OutOfMemory> {
        let VmFunctions { functions, intx } = functions;
        let bars = functions
            .iter()
            .map(|f| f.assigned.bars.iter().flatten().count())
            .sum::<usize>();
        let pool = FramePool::new(phys, 1 + FRAMES_PER_BAR * bars)?;
        Ok(Self {
            bridge: bridge(&functions),
            functions,
            intx: IntxLines {
                routes: intx,
                held: 0,
            },
            pool,
            ecam_index,
        })
    }

    /// Points each function's STE at the VM's stage 2 (`Config` = stage 2 only, its VMID),
    /// so that the SMMU translates the function's DMA as the VM's CPUs' accesses are.
    ///
    /// # Errors
    ///
    /// When the SMMU cannot take the VM's stage 2 (`SteError`).
    pub fn attach(&self, stage2: &Stage2, vmid: u16, smmu: &SmmuFeatures) -> Result<(), SteError> {
        for f in &self.functions {
            let ste = Stage2Ste {
                vmid,
                geometry: stage2.geometry(),
                root: stage2.root(),
                oas_bits: smmu.oas_bits.unwrap_or(0),
                ias_bits: smmu.ias_bits().unwrap_or(0),
            }
            .encode()?;
            crate::smmu::set_ste(f.stream, &ste, Some(vmid));
        }
        Ok(())
    }

    /// The functions, for the VM's report.
    pub fn functions(&self) -> impl Iterator<Item = &HostFunction> {
        self.functions.iter()
    }

    /// The physical ranges the VM may map besides its RAM: its functions' BARs.
    pub fn owned(&self) -> impl Iterator<Item = (Pa, u64)> + '_ {
        self.functions.iter().flat_map(|f| {
            f.assigned
                .bars
                .iter()
                .flatten()
                .filter_map(|b| Some((Pa(b.pa), b.guest_size()?)))
        })
    }

    /// A guest access of `size` bytes at `offset` of the ECAM window (a write when `write`);
    /// returns what a read reads. Accesses of 8 bytes reach no function (ECAM accesses are at
    /// most a DWORD, PCIe 4.0 7.2.2): all-ones, writes ignored.
    pub fn access(
        &mut self,
        stage2: &mut Stage2,
        offset: u64,
        size: u8,
        write: Option<u64>,
    ) -> u64 {
        let Some(width) = Width::from_size(size) else {
            return u64::MAX >> (64 - 8 * u32::from(size.min(8)));
        };
        let bdf = Bdf::new(
            (offset >> 20) as u8,
            (offset >> 15 & 0x1f) as u8,
            (offset >> 12 & 7) as u8,
        )
        .expect("a device below 32 and a function below 8");
        let register = (offset & 0xfff) as u16;
        let Some(ecam) = self.functions.first().map(|f| f.ecam) else {
            return u64::from(width.mask());
        };
        let Some(value) = write else {
            return u64::from(self.bridge.read(bdf, register, width, &ecam));
        };
        let effects = self.bridge.write(bdf, register, width, value as u32);
        self.carry_out(stage2, ecam, effects);
        0
    }

    /// Carries out the filter's effects: the device's registers written, BARs unmapped (and
    /// the SMMU's cached translations of the VM dropped) and mapped.
    fn carry_out(&mut self, stage2: &mut Stage2, mut ecam: crate::pci::Ecam, effects: Vec<Effect>) {
        let mut unmapped = false;
        for effect in effects {
            match effect {
                Effect::HostWrite {
                    bdf,
                    offset,
                    width,
                    value,
                } => ecam.write(bdf, offset, width, value),
                Effect::Unmap(m) => {
                    let mut tlb = Tlb {
                        vttbr: stage2.vttbr_el2(),
                    };
                    let unmap = stage2.unmap(
                        &mut IdentityTables,
                        &mut self.pool,
                        &mut tlb,
                        Ipa(m.ipa),
                        m.size,
                    );
                    if let Err(e) = unmap {
                        panic!(
                            "unmapping BAR {} of {} at IPA {:#x}: {e}",
                            m.bar, m.bdf, m.ipa
                        );
                    }
                    unmapped = true;
                }
                Effect::Map(m) => {
                    let mut tlb = Tlb {
                        vttbr: stage2.vttbr_el2(),
                    };
                    let map = stage2.map(
                        &mut IdentityTables,
                        &mut self.pool,
                        &mut tlb,
                        Ipa(m.ipa),
                        Pa(m.pa),
                        m.size,
                        S2Attrs::DEVICE,
                    );
                    if let Err(e) = map {
                        // The pool is sized for every BAR; a guest that moves BARs about
                        // faster than frames come back finds the BAR unmapped, as a bridge
                        // that does not forward it.
                        log!(
                            "PCI {}: BAR {} not mapped at IPA {:#x}: {e}",
                            m.bdf,
                            m.bar,
                            m.ipa
                        );
                    }
                }
            }
        }
        if unmapped {
            crate::smmu::invalidate_vm(stage2.vmid());
        }
    }

    /// Stops every function (bus mastering and decode off, a Function Level Reset where it
    /// has one), unmaps its BARs and gives the guest a bridge as after reset: before the VM's
    /// RAM is scrubbed or given up, no DMA of its functions is under way.
    pub fn quiesce(&mut self, stage2: &mut Stage2, vm: &str) {
        let mut reset = false;
        for f in &self.functions {
            let mut ecam = f.ecam;
            let bdf = f.assigned.bdf;
            if quiesce(&mut ecam, bdf) == Quiesced::Reset {
                reset = true;
                log!("VM '{vm}': PCI {bdf} stopped and reset (FLR)");
            } else {
                log!("VM '{vm}': PCI {bdf} stopped (bus mastering and decode off)");
            }
        }
        if reset {
            // PCIe 4.0, 6.6.2: software waits 100 ms after an FLR before touching the function.
            crate::cpu::delay_ms(100);
        }
        let old = core::mem::replace(&mut self.bridge, bridge(&self.functions));
        let unmaps = old.mappings().iter().map(|m| Effect::Unmap(*m)).collect();
        if let Some(ecam) = self.functions.first().map(|f| f.ecam) {
            self.carry_out(stage2, ecam, unmaps);
        }
        // The placed BARs again, which an FLR cleared.
        for f in &self.functions {
            let mut ecam = f.ecam;
            crate::pci::program_bars(&mut ecam, &f.placed);
        }
    }
}

/// The guest's bridge over `functions`: one memory window, bus addresses = IPAs.
fn bridge(functions: &[HostFunction]) -> GuestBridge {
    let (ipa, size) = guest_pci_memory();
    let window = GuestWindow {
        pci: ipa,
        ipa,
        size,
        prefetchable: false,
    };
    GuestBridge::new(
        alloc::vec![window],
        functions.iter().map(|f| f.assigned.clone()).collect(),
    )
}

/// A VM's INTx lines (issue 12): each physical SPI its functions interrupt on, forwarded to the
/// guest's SPI of the same line with `HW` = 1 (`gic::lines`). The CPU of vCPU 0 takes the
/// physical SPIs; one that fires is acknowledged and left active while the model pends the
/// virtual SPI ([`IntxLines::fired`]); the guest's deactivation deactivates it, and the device
/// asserting its line still makes it fire again. Moat deactivates one itself only where the
/// model says no guest deactivation will ([`IntxLines::settle`]).
pub struct IntxLines {
    routes: Vec<IntxRoute>,
    /// Bit `n`: route `n`'s physical SPI fired and is active for the guest (`MAX_HW_SPIS`
    /// routes at most, `map` checks).
    held: u32,
}

impl IntxLines {
    /// Backs each guest SPI by its physical SPI in the VM's (new) GIC model.
    ///
    /// # Errors
    ///
    /// The model's refusal: more lines than it maps, or a pairing it already holds otherwise.
    pub fn map(&self, gic: &mut VirtGic) -> Result<(), HwMapError> {
        self.routes
            .iter()
            .try_for_each(|r| gic.map_hw_spi(r.guest, r.physical))
    }

    /// Whether the VM's functions have no INTx line.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Whether Moat holds any line active for the guest (one test on the entry path).
    pub fn holds_any(&self) -> bool {
        self.held != 0
    }

    /// Takes the physical SPIs on the calling CPU, that of vCPU 0, as that vCPU starts.
    pub fn take_here(&self, vm: &str) {
        for r in &self.routes {
            if !gic::take_spi_here(r.physical) {
                log!(
                    "VM '{vm}': INTx INTID {} not taken: its guest SPI {} stays silent",
                    r.physical,
                    r.guest
                );
            }
        }
    }

    /// The physical SPI `intid` fired (acknowledged, left active): when it is one of the VM's
    /// lines, the model pends its guest SPI and Moat holds it; returns the vCPUs to kick, or
    /// `None` when `intid` is no line of this VM.
    pub fn fired(&mut self, intid: u32, model: &mut VirtGic) -> Option<VcpuSet> {
        let n = self.routes.iter().position(|r| r.physical == intid)?;
        self.held |= 1 << n;
        Some(model.raise_hw_spi(self.routes[n].guest))
    }

    /// Lets the model settle each line Moat holds (`VirtGic::settle_hw_spi`), with the line's
    /// level read from the distributor: one still in the guest's hands stays held; one the
    /// guest deactivated is released; one no guest deactivation will reach (the guest cleared
    /// its pending or active state, or its line fell before it was delivered) is deactivated
    /// here. Returns the vCPUs to kick. One test when nothing is held.
    pub fn settle(&mut self, model: &mut VirtGic) -> VcpuSet {
        let mut kick = VcpuSet::EMPTY;
        let mut held = self.held;
        while held != 0 {
            let n = held.trailing_zeros() as usize;
            held &= held - 1;
            let r = self.routes[n];
            let (settled, k) = model.settle_hw_spi(r.guest, gic::spi_pending(r.physical));
            kick |= k;
            if let HwIrq::Released { deactivate } = settled {
                self.held &= !(1 << n);
                if deactivate {
                    gic::deactivate_spi(r.physical);
                }
            }
        }
        kick
    }

    /// The VM halted or restarts: its lines are switched off at the distributor (its functions
    /// are quiesced; a function without a reset may still assert its line) and those Moat held
    /// deactivated. [`IntxLines::take_here`] takes them again when vCPU 0 starts.
    pub fn release(&mut self) {
        for (n, r) in self.routes.iter().enumerate() {
            gic::disable_spi(r.physical);
            if self.held & 1 << n != 0 {
                gic::deactivate_spi(r.physical);
            }
        }
        self.held = 0;
    }
}
