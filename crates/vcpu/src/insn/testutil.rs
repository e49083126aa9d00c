//! Fakes for the emulation seams: registers in arrays and a device port that logs every
//! access, answers reads from a table and can refuse one address.

use super::a64::Reg;
use super::emulate::{BusError, DevicePort, GuestRegs, GuestRegs32};

/// `X0`..`X30` and `SP`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Regs64 {
    pub x: [u64; 31],
    pub sp: u64,
}

impl Regs64 {
    /// Registers whose `Xn` holds a recognisable `0xA5A5_0000_0000_0000 | n` (SP: `0x5000`).
    pub fn marked() -> Self {
        let mut x = [0; 31];
        for (n, slot) in x.iter_mut().enumerate() {
            *slot = 0xA5A5_0000_0000_0000 | n as u64;
        }
        Self { x, sp: 0x5000 }
    }
}

impl GuestRegs for Regs64 {
    fn read(&self, r: Reg) -> u64 {
        match r {
            Reg::X(n) => self.x[usize::from(n)],
            Reg::Sp => self.sp,
            Reg::Zr => panic!("the emulator resolves XZR itself"),
        }
    }

    fn write(&mut self, r: Reg, value: u64) {
        match r {
            Reg::X(n) => self.x[usize::from(n)] = value,
            Reg::Sp => self.sp = value,
            Reg::Zr => panic!("the emulator never writes XZR"),
        }
    }
}

/// `R0`..`R14`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Regs32 {
    pub r: [u32; 15],
}

impl GuestRegs32 for Regs32 {
    fn read(&self, r: u8) -> u32 {
        self.r[usize::from(r)]
    }

    fn write(&mut self, r: u8, value: u32) {
        self.r[usize::from(r)] = value;
    }
}

/// One access the port saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub write: bool,
    pub addr: u64,
    pub size: u8,
    pub value: u64,
}

/// A device that logs accesses; reads return the value listed for the address (or
/// `0x8877_6655_4433_2211` truncated to the size), and `fail_at` refuses one address.
#[derive(Clone, Debug, Default)]
pub struct Port {
    pub log: Vec<Seen>,
    pub values: Vec<(u64, u64)>,
    pub fail_at: Option<u64>,
}

/// What [`Port`] reads where no value is listed.
pub const DEFAULT_READ: u64 = 0x8877_6655_4433_2211;

impl Port {
    pub fn with_value(addr: u64, value: u64) -> Self {
        Self::with_values(&[(addr, value)])
    }

    pub fn with_values(values: &[(u64, u64)]) -> Self {
        Self {
            values: values.to_vec(),
            ..Self::default()
        }
    }

    pub fn reads(&self) -> Vec<(u64, u8)> {
        self.log
            .iter()
            .filter(|s| !s.write)
            .map(|s| (s.addr, s.size))
            .collect()
    }

    pub fn writes(&self) -> Vec<(u64, u8, u64)> {
        self.log
            .iter()
            .filter(|s| s.write)
            .map(|s| (s.addr, s.size, s.value))
            .collect()
    }
}

impl DevicePort for Port {
    fn read(&mut self, addr: u64, size: u8) -> Result<u64, BusError> {
        if self.fail_at == Some(addr) {
            return Err(BusError);
        }
        let value = self
            .values
            .iter()
            .find(|(a, _)| *a == addr)
            .map_or(DEFAULT_READ, |(_, v)| *v);
        self.log.push(Seen {
            write: false,
            addr,
            size,
            value,
        });
        Ok(value & super::bytes_mask(size))
    }

    fn write(&mut self, addr: u64, size: u8, value: u64) -> Result<(), BusError> {
        if self.fail_at == Some(addr) {
            return Err(BusError);
        }
        self.log.push(Seen {
            write: true,
            addr,
            size,
            value,
        });
        Ok(())
    }
}
