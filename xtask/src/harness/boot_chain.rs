//! Moat started by U-Boot's `booti` (`uboot.rs`) at two load addresses: the relocatable image
//! (issue 13 item 1) and a firmware boot chain (item 5) in one case per address; and U-Boot
//! finding Moat, the bundle and its boot script on a virtio disk by itself (item 5), loading
//! Moat at its own `kernel_addr_r`. Each boot must show Moat reporting its image where it was
//! put and the greeting guest powering off.

use super::{BOOT_LIMIT, Tally, expect_exit, expect_line};
use crate::build::Artifacts;
use crate::error::XResult;
use crate::qemu::{ConsoleMode, MoatExit};
use crate::scratch::Scratch;
use crate::uboot::{Boot, KERNEL_ADDR_R, Placement, UbootMachine};
use crate::vm::{self, VmRequest};

/// The CPU of these boots: the relocation does not depend on the model.
const CPU: &str = "cortex-a72";

/// Two placements: low in RAM (above U-Boot's early stack and QEMU's device tree at RAM base),
/// and 192 MiB higher, with the bundle on the other side of the image each time. Neither is
/// where QEMU's `-kernel` puts Moat (RAM base + 0x200000), which every other case uses.
const PLACEMENTS: [Placement; 2] = [
    Placement {
        moat: 0x4060_0000,
        bundle: 0x4800_0000,
    },
    Placement {
        moat: 0x4c20_0000,
        bundle: 0x4800_0000,
    },
];

/// `uboot_booti_places_moat_at_<address>_and_the_guest_powers_off`, one boot per placement,
/// and the disk boot.
pub(super) fn uboot_cases(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let request = VmRequest::default();
    let vm = vm::describe(&request, CPU)?;
    let dir = Scratch::new("test")?;
    let bundle = dir.join("hello.bundle");
    vm::write_bundle(&vm, &artifacts.guest("moat-guest-hello"), &bundle)?;
    let size = std::fs::metadata(&bundle).map(|m| m.len()).unwrap_or(0);
    // One boot: U-Boot's own line `first`, then Moat's image at `moat`, the guest's greeting
    // and its power-off.
    let mut boot = |name: &str, how: Boot, first: &str, moat: u64| -> XResult<()> {
        let machine = UbootMachine {
            cpu: CPU,
            mem_mib: vm::machine_mem_mib(&vm, size),
            smp: vm.cpus,
            moat: &artifacts.moat,
            bundle: &bundle,
            boot: how,
        };
        let outcome = machine.run(dir.path(), ConsoleMode::Captured, BOOT_LIMIT)?;
        let verdict = expect_line(&outcome, first)
            .and_then(|()| expect_line(&outcome, "starting at EL2"))
            .and_then(|()| expect_line(&outcome, &format!("image: [{moat:#x}, ")))
            .and_then(|()| expect_line(&outcome, "Hello from a Moat guest!"))
            .and_then(|()| expect_exit(&outcome, MoatExit::PowerOff));
        tally.record(name, CPU, Some(&outcome), verdict);
        Ok(())
    };
    for at in PLACEMENTS {
        boot(
            &format!(
                "uboot_booti_places_moat_at_{:#x}_and_the_guest_powers_off",
                at.moat
            ),
            Boot::Booti(at),
            "Starting kernel ...",
            at.moat,
        )?;
    }
    boot(
        "uboot_distro_boot_runs_the_disk_boot_script_that_loads_moat_and_the_bundle",
        Boot::Disk,
        "Found U-Boot script /boot.scr",
        KERNEL_ADDR_R,
    )
}
