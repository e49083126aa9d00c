//! The platform reader (Moat reads its loader's device tree at boot, before it has a heap, with
//! `moat-platform`'s own tree walker): any bytes parse or are refused, never a panic; a tree
//! that parses claims no more bytes than it has, its GICv2 interfaces are 8 KiB inside
//! their frames, and the buses a PCIe host bridge's ECAM region is scanned for fit in it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_platform::{Gic, Platform};

fuzz_target!(|data: &[u8]| {
    let Ok(platform) = Platform::parse(data, 0x4000_0000) else {
        return;
    };
    assert!(
        platform.dtb.size as usize <= data.len(),
        "the tree claims {:#x} bytes of {:#x}",
        platform.dtb.size,
        data.len()
    );
    if let Some(host) = platform.pci {
        if let Some((first, last)) = host.ecam_buses() {
            let buses = u64::from(last - first) + 1;
            assert!(
                buses << 20 <= host.ecam.size,
                "buses {first}..={last} beyond {}",
                host.ecam
            );
        }
        for device in 0..32 {
            let _ = host.intx_intid(0, device, 1);
        }
        let _ = host.stream_id(u16::MAX);
    }
    if let Some(Gic::V2(gic)) = platform.gic {
        let frames = [
            (gic.cpu, Some(gic.cpu_interface())),
            (gic.vcpu.unwrap_or_default(), gic.vcpu_interface()),
        ];
        for (frame, interface) in frames {
            let Some(interface) = interface else { continue };
            assert_eq!(interface.size, 0x2000);
            if frame.size >= 0x2000 {
                assert!(
                    frame.base <= interface.base && interface.end() <= frame.end(),
                    "interface {interface} outside its frame {frame}"
                );
            }
        }
    }
});
