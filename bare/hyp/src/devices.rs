//! The VM's emulated devices: each window of the configuration and the model behind it. The
//! GICv3's two windows (distributor, redistributors) share one model, which also takes the
//! interrupt lines of the other devices.

use crate::gic::UART_INTID;
use alloc::vec::Vec;
use moat_config::{DeviceKind, DeviceWindow};
use moat_devices::gic::VirtGic;
use moat_devices::pl011::Pl011;
use moat_devices::{Access, DeviceEffects, MmioDevice};
use moat_vcpu::abort::IpaRange;

/// A device window and what answers it.
pub enum Device {
    /// A PL011 UART; its interrupt is SPI 1 (INTID 33), as on QEMU virt.
    Pl011(Pl011),
    /// The GICv3 distributor window of [`Devices::gic`].
    GicDistributor,
    /// The GICv3 redistributor window of [`Devices::gic`].
    GicRedistributors,
    /// A device the configuration asks for but Moat does not emulate yet: an access stops
    /// the VM with a diagnostic naming it (the guest was promised a device that is not there).
    Missing(DeviceKind),
}

impl Device {
    /// The device's name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pl011(_) => "PL011",
            Self::GicDistributor => "GICv3 distributor",
            Self::GicRedistributors => "GICv3 redistributors",
            Self::Missing(kind) => kind.name(),
        }
    }
}

/// Every device window of a VM, in configuration order, and the interrupt controller.
pub struct Devices {
    /// The models, by window.
    pub list: Vec<Device>,
    /// The windows, in the order of `list`.
    pub windows: Vec<IpaRange>,
    /// The virtual GICv3, when the configuration has its windows.
    pub gic: Option<VirtGic>,
}

impl Devices {
    /// The devices of `windows` for a VM of `vcpus` vCPUs.
    pub fn new(windows: &[DeviceWindow], vcpus: usize) -> Self {
        let has_gic = windows
            .iter()
            .any(|w| w.kind == DeviceKind::GicV3Distributor);
        let gic = if has_gic {
            VirtGic::new(vcpus).ok()
        } else {
            None
        };
        let list = windows
            .iter()
            .map(|w| match w.kind {
                DeviceKind::Pl011 => Device::Pl011(Pl011::new()),
                DeviceKind::GicV3Distributor if gic.is_some() => Device::GicDistributor,
                DeviceKind::GicV3Redistributors if gic.is_some() => Device::GicRedistributors,
                kind => Device::Missing(kind),
            })
            .collect();
        let windows = windows
            .iter()
            .map(|w| IpaRange {
                base: w.base,
                size: w.size,
            })
            .collect();
        Self { list, windows, gic }
    }

    /// One access to window `index`; `None` for a device without a model. A device's new
    /// interrupt line level goes to the GIC model here; console output is the caller's.
    pub fn access(&mut self, index: usize, request: Access) -> Option<(u64, DeviceEffects)> {
        let gic = &mut self.gic;
        let (data, effects) = match self.list.get_mut(index)? {
            Device::Pl011(uart) => uart.access(request),
            Device::GicDistributor => gic.as_mut()?.distributor_access(request),
            Device::GicRedistributors => gic.as_mut()?.redistributor_access(request),
            Device::Missing(_) => return None,
        };
        if let (Some(level), Some(gic)) = (effects.irq_level, gic.as_mut()) {
            gic.set_spi_level(UART_INTID, level);
        }
        Some((data, effects))
    }

    /// The first PL011, to take received bytes.
    pub fn uart(&mut self) -> Option<&mut Pl011> {
        self.list.iter_mut().find_map(|d| match d {
            Device::Pl011(uart) => Some(uart),
            _ => None,
        })
    }
}
