//! A VM's device bus: its emulated device windows, in the order of its configuration, and the
//! virtual GIC that takes the other devices' interrupt lines.
//!
//! The bus routes one access to the model behind a window, feeds a device's new interrupt
//! level into the GIC model, and returns everything the hypervisor must then do as
//! [`BusEffects`]: bytes for the console, and the vCPUs that must look at their list registers
//! again. Every set of vCPUs a model returns ends up there, so a vCPU waiting in `WFI` is
//! woken by an interrupt another vCPU's access raised.

use crate::gic::{GicError, GicWindow, VcpuSet, VirtGic};
use crate::pl011::Pl011;
use crate::virtio_net::{GuestMemory, VirtioEffects, VirtioNet};
use crate::{Access, DeviceEffects, MmioDevice};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// What answers a device window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// An Arm PL011 UART.
    Pl011,
    /// The GICv3 distributor (`GICD_*`) of the bus's GIC.
    GicDistributor,
    /// The GICv3 redistributors (`GICR_*`) of the bus's GIC, one per vCPU.
    GicRedistributors,
    /// The GICv2 distributor (`GICD_*`, banked per vCPU) of the bus's GIC.
    GicV2Distributor,
    /// A GICv2 CPU interface: the hardware's virtual CPU interface (`GICV_*`), mapped at
    /// stage 2 by the hypervisor, so the bus never sees an access to it (one it is handed
    /// reads as zero and is ignored).
    GicV2CpuInterface,
    /// A virtio-net device reporting `mac`, its interrupt line wired to INTID `intid`.
    VirtioNet {
        /// The INTID of its interrupt (an SPI).
        intid: u32,
        /// Its MAC address.
        mac: [u8; 6],
    },
}

/// A window's model.
#[derive(Clone, Debug)]
enum Model {
    Pl011(Pl011),
    GicDistributor,
    GicRedistributors,
    GicV2Distributor,
    GicV2CpuInterface,
    VirtioNet { net: VirtioNet, intid: u32 },
}

/// What the hypervisor must carry out after the bus served an access or an input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct BusEffects {
    /// A byte the guest wrote to its console.
    pub console_out: Option<u8>,
    /// The vCPUs whose virtual interrupt state changed: each must leave the guest or `WFI`
    /// and have its list registers synced and filled again.
    pub kick: VcpuSet,
    /// A network device transmitted frames: [`Bus::take_sent`] has them for the links.
    pub frames_sent: bool,
}

impl BusEffects {
    /// Both effects together; `later`'s console byte follows `self`'s (at most one access's
    /// byte is carried, so `self` must have none when `later` has one).
    pub fn then(self, later: Self) -> Self {
        debug_assert!(self.console_out.is_none() || later.console_out.is_none());
        Self {
            console_out: self.console_out.or(later.console_out),
            kick: self.kick.union(later.kick),
            frames_sent: self.frames_sent || later.frames_sent,
        }
    }
}

/// A window the exit path may serve in place ([`Bus::in_place`]).
#[derive(Debug)]
pub enum InPlace<'a> {
    /// A UART, for an access made by the caller: its new interrupt level (if it changed) is
    /// not given to the GIC, so that the caller brings the GIC model up to date with the guest
    /// first and then hands the level over with [`Bus::uart_line`]. [`Bus::access`] is the
    /// two together.
    Uart(&'a mut Pl011),
    /// A window of the GIC, whose reads of registers that do not depend on the list registers
    /// are answered by [`VirtGic::read_unsynced`] as [`Bus::access_by`] would answer them
    /// after the reading vCPU's sync.
    Gic(&'a mut VirtGic, GicWindow),
}

/// Why a bus could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusError {
    /// The GIC model refused the VM's vCPU count.
    Gic(GicError),
    /// A GICv3 window without the other one (a distributor needs redistributors), a GICv2
    /// distributor without its CPU interface or the other way round, or windows of both.
    IncompleteGic,
}

impl core::fmt::Display for BusError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Gic(crate::gic::GicError::VcpuCount(n)) => {
                write!(
                    f,
                    "the GIC model serves 1 to {} vCPUs, not {n}",
                    crate::gic::MAX_VCPUS
                )
            }
            Self::IncompleteGic => {
                write!(
                    f,
                    "a GICv3 needs both its distributor and its redistributors, a GICv2 its distributor and its CPU interface, and a VM has one GIC"
                )
            }
        }
    }
}

/// The devices of one VM.
#[derive(Clone, Debug)]
pub struct Bus {
    models: Vec<Model>,
    /// Boxed: the model is several KiB, and moving it through the VM's construction on a
    /// small EL2 stack would cost stack for every copy.
    gic: Option<Box<VirtGic>>,
    /// The INTID of the UARTs' interrupt line.
    uart_intid: u32,
    /// Frames the network devices transmitted, with their windows, not yet taken.
    sent: Vec<(usize, Vec<u8>)>,
}

impl Bus {
    /// The bus of a VM of `vcpus` vCPUs whose windows hold `kinds`, its UARTs' interrupt line
    /// wired to INTID `uart_intid` of the GIC.
    ///
    /// # Errors
    ///
    /// [`BusError`] when the GIC cannot serve `vcpus` vCPUs, or has only one of its windows.
    pub fn new(
        kinds: impl IntoIterator<Item = ModelKind>,
        vcpus: usize,
        uart_intid: u32,
    ) -> Result<Self, BusError> {
        let mut bus = Self {
            models: Vec::new(),
            gic: None,
            uart_intid,
            sent: Vec::new(),
        };
        let (mut dist, mut redist, mut dist_v2, mut cpu_v2) = (false, false, false, false);
        for kind in kinds {
            bus.models.push(match kind {
                ModelKind::Pl011 => Model::Pl011(Pl011::new()),
                ModelKind::GicDistributor => {
                    dist = true;
                    Model::GicDistributor
                }
                ModelKind::GicRedistributors => {
                    redist = true;
                    Model::GicRedistributors
                }
                ModelKind::GicV2Distributor => {
                    dist_v2 = true;
                    Model::GicV2Distributor
                }
                ModelKind::GicV2CpuInterface => {
                    cpu_v2 = true;
                    Model::GicV2CpuInterface
                }
                ModelKind::VirtioNet { intid, mac } => Model::VirtioNet {
                    net: VirtioNet::new(mac),
                    intid,
                },
            });
        }
        let gic = match (dist, redist, dist_v2, cpu_v2) {
            (true, true, false, false) => VirtGic::new(vcpus),
            (false, false, true, true) => VirtGic::new_v2(vcpus),
            (false, false, false, false) => return Ok(bus),
            _ => return Err(BusError::IncompleteGic),
        };
        bus.gic = Some(Box::new(gic.map_err(BusError::Gic)?));
        Ok(bus)
    }

    /// The number of windows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether the bus has no window.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// The kind of window `index`.
    #[must_use]
    pub fn kind(&self, index: usize) -> Option<ModelKind> {
        Some(match self.models.get(index)? {
            Model::Pl011(_) => ModelKind::Pl011,
            Model::GicDistributor => ModelKind::GicDistributor,
            Model::GicRedistributors => ModelKind::GicRedistributors,
            Model::GicV2Distributor => ModelKind::GicV2Distributor,
            Model::GicV2CpuInterface => ModelKind::GicV2CpuInterface,
            Model::VirtioNet { net, intid } => ModelKind::VirtioNet {
                intid: *intid,
                mac: net.mac(),
            },
        })
    }

    /// The virtual GIC, when the VM has one.
    pub fn gic(&mut self) -> Option<&mut VirtGic> {
        self.gic.as_deref_mut()
    }

    /// The virtual GIC, to read.
    #[must_use]
    pub fn gic_ref(&self) -> Option<&VirtGic> {
        self.gic.as_deref()
    }

    /// Window `index`'s model when the exit path may serve an access to it in place, without
    /// reading back the list registers first ([`InPlace`]); `None` for any other window.
    #[inline]
    pub fn in_place(&mut self, index: usize) -> Option<InPlace<'_>> {
        let window = match self.models.get_mut(index)? {
            Model::Pl011(uart) => return Some(InPlace::Uart(uart)),
            Model::GicDistributor => GicWindow::Distributor,
            Model::GicRedistributors => GicWindow::Redistributors,
            Model::GicV2Distributor => GicWindow::V2Distributor,
            Model::GicV2CpuInterface | Model::VirtioNet { .. } => return None,
        };
        Some(InPlace::Gic(self.gic.as_deref_mut()?, window))
    }

    /// Drives the UART's interrupt line to `level` in the GIC model (see [`InPlace::Uart`]);
    /// returns the vCPUs to kick.
    pub fn uart_line(&mut self, level: bool) -> VcpuSet {
        match self.gic.as_mut() {
            Some(gic) => gic.set_spi_level(self.uart_intid, level),
            None => VcpuSet::EMPTY,
        }
    }

    /// One access to window `index` by vCPU 0 (see [`Bus::access_by`]).
    pub fn access(
        &mut self,
        index: usize,
        access: Access,
        mem: &mut impl GuestMemory,
    ) -> (u64, BusEffects) {
        self.access_by(0, index, access, mem)
    }

    /// One access of vCPU `vcpu` to window `index` (an index past the last window reads as
    /// zero and ignores writes: the caller's decision named a window this bus has, so that is
    /// a caller bug the guest cannot cause). A UART's or network device's new interrupt level
    /// goes to the GIC here; a network device reaches the VM's RAM through `mem`. Only a GICv2
    /// distributor's answer depends on `vcpu` (its banked registers).
    pub fn access_by(
        &mut self,
        vcpu: usize,
        index: usize,
        access: Access,
        mem: &mut impl GuestMemory,
    ) -> (u64, BusEffects) {
        let gic = &mut self.gic;
        let Some(model) = self.models.get_mut(index) else {
            return (0, BusEffects::default());
        };
        if let Model::VirtioNet { net, intid } = model {
            let intid = *intid;
            let (data, effects) = net.access(access, mem);
            return (data, self.net_effects(index, intid, effects));
        }
        let (data, effects) = match (model, gic.as_mut()) {
            (Model::Pl011(uart), _) => uart.access(access),
            (Model::GicDistributor, Some(gic)) => gic.distributor_access(access),
            (Model::GicRedistributors, Some(gic)) => gic.redistributor_access(access),
            (Model::GicV2Distributor, Some(gic)) => gic.distributor_v2_access(vcpu, access),
            (Model::GicV2CpuInterface, _) => (0, DeviceEffects::default()),
            // `new` builds the GIC whenever one of its windows exists.
            (Model::GicDistributor | Model::GicRedistributors | Model::GicV2Distributor, None) => {
                unreachable!("a GIC window without its GIC")
            }
            (Model::VirtioNet { .. }, _) => unreachable!("served above"),
        };
        (data, self.effects(effects))
    }

    /// Puts `frame` into the receive queue of network window `index` through `mem`; returns
    /// whether it was delivered (a window that is not a network device drops it).
    pub fn deliver(
        &mut self,
        index: usize,
        frame: &[u8],
        mem: &mut impl GuestMemory,
    ) -> (bool, BusEffects) {
        let Some(Model::VirtioNet { net, intid }) = self.models.get_mut(index) else {
            return (false, BusEffects::default());
        };
        let intid = *intid;
        let (delivered, effects) = net.deliver(frame, mem);
        (delivered, self.net_effects(index, intid, effects))
    }

    /// The frames the network devices transmitted since the last call, with their windows'
    /// indices, in order.
    pub fn take_sent(&mut self) -> Vec<(usize, Vec<u8>)> {
        core::mem::take(&mut self.sent)
    }

    /// A network device's effects: its frames wait in the bus, its line drives its SPI.
    fn net_effects(&mut self, index: usize, intid: u32, effects: VirtioEffects) -> BusEffects {
        let frames_sent = !effects.frames.is_empty();
        self.sent
            .extend(effects.frames.into_iter().map(|frame| (index, frame)));
        let kick = match (effects.irq_level, self.gic.as_mut()) {
            (Some(level), Some(gic)) => gic.set_spi_level(intid, level),
            _ => VcpuSet::EMPTY,
        };
        BusEffects {
            console_out: None,
            kick,
            frames_sent,
        }
    }

    /// Turns a model's effects into the bus's: a new interrupt level drives the UART line.
    fn effects(&mut self, effects: DeviceEffects) -> BusEffects {
        let mut kick = effects.kick;
        if let Some(level) = effects.irq_level {
            kick |= self.uart_line(level);
        }
        BusEffects {
            console_out: effects.console_out,
            kick,
            frames_sent: false,
        }
    }

    /// Moves received console bytes from `next` into the first UART while its receive FIFO
    /// has room (none are taken from `next` when it has none), and raises its interrupt line.
    pub fn console_input(&mut self, mut next: impl FnMut() -> Option<u8>) -> ConsoleInput {
        let Some(uart) = self.uart() else {
            return ConsoleInput {
                effects: BusEffects::default(),
                room: false,
            };
        };
        let mut level = None;
        while uart.rx_has_room() {
            let Some(byte) = next() else {
                break;
            };
            if uart.push_rx(byte) {
                level = Some(uart.interrupt_level());
            }
        }
        let room = uart.rx_has_room();
        let kick = match (level, self.gic.as_mut()) {
            (Some(level), Some(gic)) => gic.set_spi_level(self.uart_intid, level),
            _ => VcpuSet::EMPTY,
        };
        ConsoleInput {
            effects: BusEffects {
                console_out: None,
                kick,
                frames_sent: false,
            },
            room,
        }
    }

    /// Whether the first UART could take another received byte.
    #[must_use]
    pub fn console_has_room(&self) -> bool {
        self.models.iter().find_map(|m| match m {
            Model::Pl011(uart) => Some(uart.rx_has_room()),
            _ => None,
        }) == Some(true)
    }

    fn uart(&mut self) -> Option<&mut Pl011> {
        self.models.iter_mut().find_map(|m| match m {
            Model::Pl011(uart) => Some(uart),
            _ => None,
        })
    }
}

/// The outcome of [`Bus::console_input`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct ConsoleInput {
    /// What to carry out (the vCPU the UART's interrupt is routed to, when it became pending).
    pub effects: BusEffects,
    /// Whether the UART can take more: the console's receive interrupt should stay enabled
    /// only while it can.
    pub room: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gic::REDISTRIBUTOR_STRIDE;
    use crate::virtio_net::OutsideRam;

    /// A VM without RAM a device could reach.
    struct NoRam;

    impl GuestMemory for NoRam {
        fn read(&self, _: u64, _: &mut [u8]) -> Result<(), OutsideRam> {
            Err(OutsideRam)
        }
        fn write(&mut self, _: u64, _: &[u8]) -> Result<(), OutsideRam> {
            Err(OutsideRam)
        }
        fn check(&self, _: u64, _: u64) -> Result<(), OutsideRam> {
            Err(OutsideRam)
        }
    }

    /// QEMU `virt`'s PL011 SPI (INTID 33).
    const UART_INTID: u32 = 33;
    const VIRT: [ModelKind; 3] = [
        ModelKind::Pl011,
        ModelKind::GicDistributor,
        ModelKind::GicRedistributors,
    ];
    const UARTDR: u64 = 0x000;
    const UARTIMSC: u64 = 0x038;
    /// `UARTIMSC.RXIM`.
    const RXIM: u64 = 1 << 4;

    fn bus(vcpus: usize) -> Bus {
        Bus::new(VIRT, vcpus, UART_INTID).expect("the virt devices make a bus")
    }

    /// Makes the UART's SPI an enabled Group 1 interrupt routed to `vcpu`, with the
    /// distributor's Group 1 enabled, as a guest's GIC driver would.
    fn route_uart_to(bus: &mut Bus, vcpu: u64) {
        const GICD_CTLR: u64 = 0x0000;
        const GICD_IGROUPR1: u64 = 0x0084;
        const GICD_ISENABLER1: u64 = 0x0104;
        const GICD_IROUTER33: u64 = 0x6000 + 8 * 33;
        let bit = 1 << (UART_INTID - 32);
        for (offset, size, value) in [
            (GICD_CTLR, 4, 0b10),
            (GICD_IGROUPR1, 4, bit),
            (GICD_IROUTER33, 8, vcpu),
            (GICD_ISENABLER1, 4, bit),
        ] {
            let _ = bus.access(1, Access::write(offset, size, value), &mut NoRam);
        }
        // Wake the redistributors (GICR_WAKER.ProcessorSleep = 0), as Linux does.
        for v in 0..2 {
            let waker = v * REDISTRIBUTOR_STRIDE + 0x0014;
            let _ = bus.access(2, Access::write(waker, 4, 0), &mut NoRam);
        }
    }

    #[test]
    fn a_write_to_the_uart_data_register_is_a_console_byte() {
        let mut bus = bus(1);
        let (_, effects) = bus.access(0, Access::write(UARTDR, 4, u64::from(b'm')), &mut NoRam);
        assert_eq!(effects.console_out, Some(b'm'));
    }

    #[test]
    fn a_uart_interrupt_routed_to_another_vcpu_kicks_that_vcpu() {
        let mut bus = bus(2);
        route_uart_to(&mut bus, 1);
        let _ = bus.access(0, Access::write(UARTIMSC, 4, RXIM), &mut NoRam);
        let mut once = Some(b'x');
        let input = bus.console_input(|| once.take());
        assert_eq!(input.effects.kick, VcpuSet::single(1));
        assert!(input.room);
    }

    #[test]
    fn a_uart_access_then_its_line_is_the_access_the_bus_makes() {
        let (mut split, mut whole) = (bus(2), bus(2));
        route_uart_to(&mut split, 1);
        route_uart_to(&mut whole, 1);
        let mut once = (Some(b'a'), Some(b'a'));
        let _ = split.console_input(|| once.0.take());
        let _ = whole.console_input(|| once.1.take());
        for access in [
            Access::read(0x018, 4),
            Access::write(UARTDR, 4, u64::from(b'z')),
            Access::write(UARTIMSC, 4, RXIM),
            Access::read(UARTDR, 4),
        ] {
            let Some(InPlace::Uart(uart)) = split.in_place(0) else {
                panic!("window 0 is the UART");
            };
            let (data, effects) = uart.access(access);
            let kick = effects
                .irq_level
                .map_or(VcpuSet::EMPTY, |l| split.uart_line(l));
            let (want, bus_effects) = whole.access(0, access, &mut NoRam);
            assert_eq!(data, want);
            assert_eq!(effects.console_out, bus_effects.console_out);
            assert_eq!(effects.kick.union(kick), bus_effects.kick);
        }
        assert!(
            matches!(
                split.in_place(1),
                Some(InPlace::Gic(_, GicWindow::Distributor))
            ),
            "window 1 is the GIC's distributor"
        );
        let typer = Access::read(0x004, 4);
        let Some(InPlace::Gic(gic, window)) = split.in_place(1) else {
            unreachable!()
        };
        let unsynced = gic.read_unsynced(window, 0, typer);
        assert_eq!(unsynced, Some(whole.access(1, typer, &mut NoRam).0));
        let Some(InPlace::Gic(gic, window)) = split.in_place(1) else {
            unreachable!()
        };
        assert_eq!(
            gic.read_unsynced(window, 0, Access::read(0x200, 4)),
            None,
            "GICD_ISPENDR0 is pending state"
        );
    }

    #[test]
    fn unmasking_a_pending_uart_interrupt_kicks_its_vcpu() {
        let mut bus = bus(2);
        route_uart_to(&mut bus, 1);
        let mut once = Some(b'a');
        let input = bus.console_input(|| once.take());
        assert_eq!(input.effects.kick, VcpuSet::EMPTY, "RXIM is still masked");
        let (_, effects) = bus.access(0, Access::write(UARTIMSC, 4, RXIM), &mut NoRam);
        assert_eq!(effects.kick, VcpuSet::single(1));
    }

    #[test]
    fn console_input_stops_taking_bytes_when_the_fifo_is_full() {
        let mut bus = bus(1);
        let mut offered = 0;
        let input = bus.console_input(|| {
            offered += 1;
            Some(b'z')
        });
        assert_eq!(offered, 16, "the PL011's receive FIFO holds 16 bytes");
        assert!(!input.room);
        assert!(!bus.console_has_room());
        let (data, _) = bus.access(0, Access::read(UARTDR, 4), &mut NoRam);
        assert_eq!(data & 0xFF, u64::from(b'z'));
        assert!(bus.console_has_room());
    }

    #[test]
    fn a_gic_needs_both_of_its_windows() {
        let only_dist = Bus::new([ModelKind::GicDistributor], 1, UART_INTID);
        assert_eq!(only_dist.err(), Some(BusError::IncompleteGic));
        let too_many = Bus::new(VIRT, 9, UART_INTID);
        assert!(matches!(too_many, Err(BusError::Gic(_))));
    }

    #[test]
    fn gic_windows_reach_the_model() {
        const GICD_TYPER: u64 = 0x0004;
        let mut bus = bus(2);
        let (typer, _) = bus.access(1, Access::read(GICD_TYPER, 4), &mut NoRam);
        // ITLinesNumber [4:0] = 32 * (N + 1) - 1 INTIDs: 128 with the default 96 SPIs.
        assert_eq!(typer & 0x1F, 3);
        assert_eq!(bus.kind(2), Some(ModelKind::GicRedistributors));
    }

    #[test]
    fn an_access_past_the_last_window_reads_as_zero() {
        let mut bus = bus(1);
        let (data, effects) = bus.access(7, Access::write(0, 4, 1), &mut NoRam);
        assert_eq!((data, effects), (0, BusEffects::default()));
    }

    #[test]
    fn a_network_device_line_drives_its_spi_and_frames_wait_in_the_bus() {
        const NET_INTID: u32 = 48;
        const QUEUE_NOTIFY: u64 = 0x50;
        const STATUS: u64 = 0x70;
        let kinds = [
            ModelKind::Pl011,
            ModelKind::GicDistributor,
            ModelKind::GicRedistributors,
            ModelKind::VirtioNet {
                intid: NET_INTID,
                mac: [2, 0, 0, 0, 0, 1],
            },
        ];
        let mut bus = Bus::new(kinds, 2, UART_INTID).unwrap();
        assert_eq!(
            bus.kind(3),
            Some(ModelKind::VirtioNet {
                intid: NET_INTID,
                mac: [2, 0, 0, 0, 0, 1]
            })
        );
        // Route INTID 48 (GICD_IGROUPR1/ISENABLER1 bit 16, GICD_IROUTER48) to vCPU 1.
        let bit = 1 << (NET_INTID - 32);
        for (offset, size, value) in [
            (0x0000, 4, 0b10),
            (0x0084, 4, bit),
            (0x6000 + 8 * u64::from(NET_INTID), 8, 1),
            (0x0104, 4, bit),
        ] {
            let _ = bus.access(1, Access::write(offset, size, value), &mut NoRam);
        }
        for v in 0..2 {
            let waker = v * REDISTRIBUTOR_STRIDE + 0x0014;
            let _ = bus.access(2, Access::write(waker, 4, 0), &mut NoRam);
        }
        // A notification before the queue is ready: DEVICE_NEEDS_RESET and a configuration
        // change interrupt, which reaches vCPU 1.
        let (_, effects) = bus.access(3, Access::write(QUEUE_NOTIFY, 4, 1), &mut NoRam);
        assert_eq!(effects.kick, VcpuSet::single(1));
        assert!(!effects.frames_sent);
        assert!(bus.take_sent().is_empty());
        let (status, _) = bus.access(3, Access::read(STATUS, 4), &mut NoRam);
        assert_eq!(status & 64, 64);
        let (delivered, _) = bus.deliver(0, b"not a network window", &mut NoRam);
        assert!(!delivered);
    }
}
