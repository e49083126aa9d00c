//! PCI Express as Moat sees it: configuration space through ECAM, the functions found by
//! scanning it, their Base Address Registers, the config-space filter that shows a VM only
//! the functions assigned to it, and the SMMUv3 table encodings that confine their DMA.
//!
//! Specifications, cited by section and register name: the PCI Local Bus Specification 3.0
//! ("PCI 3.0": the type 0 header, 6.1–6.2; BARs, 6.2.5.1), the PCI Express Base Specification
//! 4.0 ("PCIe 4.0": ECAM, 7.2.2; the header as PCIe defines it, 7.5.1), and the Arm System
//! Memory Management Unit Architecture Specification, SMMU architecture version 3 (IHI 0070,
//! "SMMUv3": STE, commands and events, by their field names).
//!
//! Pure: configuration space is reached through [`ConfigSpace`], which the EL2 binary
//! implements over the ECAM window and the tests over a fake bus; the filter returns the
//! accesses and stage-2 mappings it wants as `#[must_use]` effects.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bar;
pub mod ecam;
pub mod filter;
pub mod header;
pub mod place;
pub mod quiesce;
pub mod scan;
pub mod smmu;

#[cfg(test)]
mod fake;

use core::fmt;
use core::str::FromStr;

/// A function's address on the bus: bus, device (0..32), function (0..8) — its requester ID
/// (PCIe 4.0, 2.2.6.2: bus[15:8], device[7:3], function[2:0]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    /// Bus number.
    pub bus: u8,
    /// Device number, below 32.
    pub device: u8,
    /// Function number, below 8.
    pub function: u8,
}

impl Bdf {
    /// The function at `bus:device.function`, if `device` < 32 and `function` < 8.
    #[must_use]
    pub const fn new(bus: u8, device: u8, function: u8) -> Option<Self> {
        if device < 32 && function < 8 {
            Some(Self {
                bus,
                device,
                function,
            })
        } else {
            None
        }
    }

    /// The function whose requester ID is `rid`.
    #[must_use]
    pub const fn from_requester_id(rid: u16) -> Self {
        Self {
            bus: (rid >> 8) as u8,
            device: (rid >> 3 & 0x1f) as u8,
            function: (rid & 7) as u8,
        }
    }

    /// The requester ID: the stream ID an SMMU sees for this function's DMA when the
    /// host bridge's `iommu-map` is the identity (QEMU `virt`).
    #[must_use]
    pub const fn requester_id(self) -> u16 {
        (self.bus as u16) << 8 | (self.device as u16) << 3 | self.function as u16
    }
}

/// `bus:device.function` in hexadecimal, as `lspci` writes it: `00:01.0`.
impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{:x}",
            self.bus, self.device, self.function
        )
    }
}

/// Why a `bus:device.function` string was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadBdf;

impl fmt::Display for BadBdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a PCI function address bus:device.function (hex, device < 0x20, function < 8), e.g. 00:01.0")
    }
}

impl FromStr for Bdf {
    type Err = BadBdf;

    /// Reads `BB:DD.F` (hexadecimal; one or two digits for bus and device).
    fn from_str(s: &str) -> Result<Self, BadBdf> {
        let (bus, rest) = s.split_once(':').ok_or(BadBdf)?;
        let (device, function) = rest.split_once('.').ok_or(BadBdf)?;
        let hex = |t: &str, digits: usize| {
            if t.is_empty() || t.len() > digits || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(BadBdf);
            }
            u8::from_str_radix(t, 16).map_err(|_| BadBdf)
        };
        Self::new(hex(bus, 2)?, hex(device, 2)?, hex(function, 1)?).ok_or(BadBdf)
    }
}

/// The width of a configuration access: 1, 2 or 4 bytes, naturally aligned (PCIe 4.0, 7.2.2:
/// an ECAM access must not cross a DWORD boundary).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// One byte.
    Byte,
    /// Two bytes.
    Word,
    /// Four bytes (a DWORD).
    Dword,
}

impl Width {
    /// The width of a `size`-byte access, if 1, 2 or 4.
    #[must_use]
    pub const fn from_size(size: u8) -> Option<Self> {
        match size {
            1 => Some(Self::Byte),
            2 => Some(Self::Word),
            4 => Some(Self::Dword),
            _ => None,
        }
    }

    /// Its size in bytes.
    #[must_use]
    pub const fn bytes(self) -> u16 {
        match self {
            Self::Byte => 1,
            Self::Word => 2,
            Self::Dword => 4,
        }
    }

    /// The access's bits set: 0xff, 0xffff or 0xffff_ffff.
    #[must_use]
    pub const fn mask(self) -> u32 {
        match self {
            Self::Byte => 0xff,
            Self::Word => 0xffff,
            Self::Dword => 0xffff_ffff,
        }
    }
}

/// Configuration space of the machine's functions, one DWORD at a time.
///
/// The EL2 binary implements it over the ECAM window (a DWORD access at
/// [`ecam::offset`]); reading a function that does not exist returns all-ones, as the host
/// bridge completes an Unsupported Request to a configuration read (PCIe 4.0, 2.3.2 and
/// 7.2.2: "the Root Complex must return all 1's").
pub trait ConfigSpace {
    /// The DWORD at `offset` (a multiple of 4, below 4096) of `bdf`'s configuration space.
    fn read32(&self, bdf: Bdf, offset: u16) -> u32;
    /// Writes the DWORD at `offset` (a multiple of 4, below 4096).
    fn write32(&mut self, bdf: Bdf, offset: u16, value: u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdf_reads_and_writes_as_lspci_does() {
        let bdf: Bdf = "00:01.0".parse().unwrap();
        assert_eq!(bdf, Bdf::new(0, 1, 0).unwrap());
        assert_eq!(bdf.to_string(), "00:01.0");
        assert_eq!("1f:1f.7".parse::<Bdf>().unwrap().to_string(), "1f:1f.7");
        assert_eq!("0:2.1".parse::<Bdf>(), Ok(Bdf::new(0, 2, 1).unwrap()));
    }

    #[test]
    fn bdf_refuses_device_32_function_8_and_malformed_text() {
        for bad in [
            "00:20.0", "00:01.8", "00:01", "0001.0", "100:01.0", "00:01.0 ", "+0:01.0", "",
        ] {
            assert_eq!(bad.parse::<Bdf>(), Err(BadBdf), "{bad:?}");
        }
    }

    #[test]
    fn requester_id_is_bus_device_function_in_bits_15_8_7_3_2_0() {
        assert_eq!(Bdf::new(0, 1, 0).unwrap().requester_id(), 0x0008);
        assert_eq!(Bdf::new(0x12, 0x1f, 7).unwrap().requester_id(), 0x12ff);
        for rid in [0u16, 8, 0x12ff, 0xffff] {
            assert_eq!(Bdf::from_requester_id(rid).requester_id(), rid);
        }
    }
}
