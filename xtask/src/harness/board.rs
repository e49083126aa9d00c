//! Moat on the ZCU102 board model (`board.rs`, issue 13 item 2): its device tree, its Cadence
//! UART as Moat's console, RAM from address 0, and a guest greeting there. The board's GIC-400
//! is not driven yet, so the guest runs without interrupts (the greeting guest needs none).

use super::{BOOT_LIMIT, Tally, expect_exit, expect_line};
use crate::board::{self, Zcu102};
use crate::build::Artifacts;
use crate::error::XResult;
use crate::qemu::{ConsoleMode, MoatExit};
use crate::scratch::Scratch;
use crate::vm::{self, VmRequest};

/// The board's cores.
const CPU: &str = "cortex-a53";

/// `zcu102_moat_reports_on_the_cadence_uart_and_the_guest_powers_off`.
pub(super) fn zcu102_cases(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let vm = vm::describe(&VmRequest::default(), CPU)?;
    let dir = Scratch::new("test")?;
    let bundle = dir.join("hello.bundle");
    vm::write_bundle(&vm, &artifacts.guest("moat-guest-hello"), &bundle)?;
    let dtb = board::zcu102_dtb();
    let machine = Zcu102 {
        moat: &artifacts.moat,
        bundle: &bundle,
        dtb: &dtb,
    };
    let outcome = machine.run(ConsoleMode::Captured, Some(BOOT_LIMIT))?;
    let verdict = expect_line(&outcome, "starting at EL2")
        .and_then(|()| expect_line(&outcome, "image: [0x200000, "))
        .and_then(|()| expect_line(&outcome, "CPU: Arm Cortex-A53"))
        .and_then(|()| expect_line(&outcome, "memory: [0x0, 0x80000000)"))
        .and_then(|()| expect_line(&outcome, "console: Cadence UART at 0xff000000"))
        .and_then(|()| expect_line(&outcome, "Hello from a Moat guest!"))
        .and_then(|()| expect_exit(&outcome, MoatExit::PowerOff));
    tally.record(
        "zcu102_moat_reports_on_the_cadence_uart_and_the_guest_powers_off",
        CPU,
        Some(&outcome),
        verdict,
    );
    Ok(())
}
