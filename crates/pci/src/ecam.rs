//! The Enhanced Configuration Access Mechanism (PCIe 4.0, 7.2.2, table 7-1 "Enhanced
//! Configuration Address Mapping"): every function's 4 KiB of configuration space at a fixed
//! offset of one memory region, `A[27:20]` the bus (relative to the first bus the region
//! decodes), `A[19:15]` the device, `A[14:12]` the function, `A[11:0]` the register.

use crate::Bdf;

/// Bytes of ECAM per bus.
pub const BUS_SIZE: u64 = 1 << 20;

/// The offset of register `register` of `bdf` from the start of an ECAM region whose first
/// bus is `first_bus`, or `None` below that bus or for a register beyond 4 KiB.
#[must_use]
pub fn offset(first_bus: u8, bdf: Bdf, register: u16) -> Option<u64> {
    let bus = bdf.bus.checked_sub(first_bus)?;
    (register < 0x1000).then(|| {
        u64::from(bus) << 20
            | u64::from(bdf.device) << 15
            | u64::from(bdf.function) << 12
            | u64::from(register)
    })
}

/// The function and register an access at `offset` into the ECAM region reaches, or `None`
/// beyond the 256 buses an ECAM region can decode.
#[must_use]
pub fn decode(first_bus: u8, offset: u64) -> Option<(Bdf, u16)> {
    if offset >= 256 * BUS_SIZE {
        return None;
    }
    let bus = first_bus.checked_add((offset >> 20) as u8)?;
    let bdf = Bdf {
        bus,
        device: (offset >> 15 & 0x1f) as u8,
        function: (offset >> 12 & 0x7) as u8,
    };
    Some((bdf, (offset & 0xfff) as u16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_00_01_0_register_0x10_is_at_0x8010() {
        let bdf = Bdf::new(0, 1, 0).unwrap();
        assert_eq!(offset(0, bdf, 0x10), Some(0x8010));
        assert_eq!(decode(0, 0x8010), Some((bdf, 0x10)));
    }

    #[test]
    fn bus_device_function_sit_in_bits_27_20_19_15_14_12() {
        let bdf = Bdf::new(0x12, 0x1f, 7).unwrap();
        assert_eq!(offset(0, bdf, 0xffc), Some(0x12f_fffc));
        assert_eq!(offset(0x10, bdf, 0), Some(0x02f_f000));
        assert_eq!(offset(0x13, bdf, 0), None, "below the region's first bus");
        assert_eq!(offset(0, bdf, 0x1000), None);
    }

    #[test]
    fn decode_inverts_offset_and_refuses_beyond_256_buses() {
        for raw in [0u64, 0x8000, 0x7f_f004, 0xfff_fffc] {
            let (bdf, reg) = decode(0, raw).unwrap();
            assert_eq!(offset(0, bdf, reg), Some(raw));
        }
        assert_eq!(decode(0, 0x1000_0000), None);
        assert_eq!(decode(0xf0, 0x100_0000), None, "bus 0xf0 + 16 overflows");
    }
}
