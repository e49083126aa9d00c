//! The device behind one trapped access, as the load/store emulator (`moat_vcpu::insn`) sees
//! it: element addresses are VAs on the faulting page, mapped to offsets in the device's
//! window. Console bytes go out as each element is written; the vCPUs to kick are gathered
//! for the caller to carry out once the instruction is done.

use crate::ram::{Backing, VmRam};
use moat_devices::Access;
use moat_devices::bus::Bus;
use moat_devices::gic::VcpuSet;
use moat_vcpu::insn::{BusError, DevicePort};

/// One device window, or read-as-zero/write-ignore.
pub struct Port<'a> {
    /// The VM whose device this is (its console lines are its own).
    pub vm: usize,
    /// The vCPU that accesses it (a GICv2 distributor's banked registers are its own).
    pub vcpu: usize,
    /// The VM's bus and the window accessed, or `None` for read-as-zero/write-ignore.
    pub device: Option<(&'a mut Bus, usize)>,
    /// The VM's RAM, which a network device reaches.
    pub ram: &'a [Backing],
    /// The faulting IPA.
    pub fault_ipa: u64,
    /// The faulting VA.
    pub far: u64,
    /// The window's first IPA and size.
    pub window: (u64, u64),
    /// The vCPUs the accesses so far asked to kick.
    pub kick: VcpuSet,
}

impl Port<'_> {
    fn offset(&self, addr: u64, size: u8) -> Result<u64, BusError> {
        const PAGE: u64 = 0xFFF;
        if addr & !PAGE != self.far & !PAGE {
            return Err(BusError);
        }
        let ipa = (self.fault_ipa & !PAGE) | (addr & PAGE);
        let offset = ipa.checked_sub(self.window.0).ok_or(BusError)?;
        if offset + u64::from(size) > self.window.1 {
            return Err(BusError);
        }
        Ok(offset)
    }

    fn access(&mut self, addr: u64, size: u8, value: Option<u64>) -> Result<u64, BusError> {
        let offset = match self.device {
            Some(_) => self.offset(addr, size)?,
            None => 0,
        };
        let Some((bus, index)) = &mut self.device else {
            return Ok(0);
        };
        let request = Access {
            offset,
            size,
            write: value,
        };
        let (data, effects) = bus.access_by(self.vcpu, *index, request, &mut VmRam(self.ram));
        if let Some(byte) = effects.console_out {
            crate::console::guest_byte(self.vm, byte);
        }
        self.kick |= effects.kick;
        Ok(data)
    }
}

impl DevicePort for Port<'_> {
    fn read(&mut self, addr: u64, size: u8) -> Result<u64, BusError> {
        self.access(addr, size, None)
    }

    fn write(&mut self, addr: u64, size: u8, value: u64) -> Result<(), BusError> {
        self.access(addr, size, Some(value)).map(|_| ())
    }
}
