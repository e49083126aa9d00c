//! PSCI `CPU_ON` raced by several vCPUs (issue 10, "What must work" 4): on a 4-vCPU VM, vCPU 0
//! starts vCPUs 1 and 2; the three then wait for one flag and all call `CPU_ON` for vCPU 3 at
//! the same moment. Exactly one call may succeed; the others must get `ALREADY_ON` (PSCI DEN 0022
//! allows `ON_PENDING` while an earlier call is pending, but KVM answers `ALREADY_ON` once one
//! has succeeded, and kvm-unit-tests' `psci` test accepts nothing else), and vCPU 3 must start
//! exactly once: it counts its entries in memory and then stays on (a `WFE` loop), so no later
//! call could start it again. No timing is involved: every wait is for a flag in memory.

use super::{Tally, assemble_guest, boot_config, expect_exit, expect_line};
use crate::build::Artifacts;
use crate::error::XResult;
use crate::qemu::MoatExit;
use crate::vm::VmRequest;

/// The guest (A64, GNU as syntax), loaded at RAM base + 0x80000 with the MMU off. Its data block
/// (`data`) holds, at these offsets: 0x00/0x04 the ready flags of vCPUs 1 and 2 (at 4 × index),
/// 0x10 the go flag, 0x18 vCPU 3's entry count, 0x20 + 8 × index each caller's `CPU_ON` result,
/// 0x40 + 4 × index each caller's done flag. It prints
/// `RACE success=<n> already_on=<n> entries=<n>` and powers off.
const RACE_GUEST: &str = r#"
    .equ PSCI_CPU_ON, 0xc4000003
    .equ PSCI_SYSTEM_OFF, 0x84000008
    .equ GO, 0x10
    .equ ENTRIES, 0x18
    .equ RESULTS, 0x20
    .equ DONE, 0x40
_start:
    adr x20, data
    mov x19, #1
1:  ldr x0, =PSCI_CPU_ON            // start vCPU 1, then vCPU 2, each at racer(x0 = index)
    mov x1, x19
    adr x2, racer
    mov x3, x19
    hvc #0
    cbnz x0, fail
    add x19, x19, #1
    cmp x19, #3
    b.ne 1b
2:  ldr w1, [x20, #4]               // both racers ready
    cbz w1, 2b
3:  ldr w1, [x20, #8]
    cbz w1, 3b
    mov w1, #1
    str w1, [x20, #GO]
    mov x21, #0
    bl race                         // vCPU 0 races too
4:  ldr w1, [x20, #DONE + 4]        // every caller has its answer
    cbz w1, 4b
5:  ldr w1, [x20, #DONE + 8]
    cbz w1, 5b
6:  ldr w1, [x20, #ENTRIES]         // vCPU 3 has run
    cbz w1, 6b
    mov x22, #0                     // SUCCESS count
    mov x23, #0                     // ALREADY_ON count
    mov x19, #0
7:  add x1, x20, #RESULTS
    ldr x1, [x1, x19, lsl #3]
    cmp w1, #0                      // PSCI returns an int32
    cinc x22, x22, eq
    cmn w1, #4                      // ALREADY_ON = -4
    cinc x23, x23, eq
    add x19, x19, #1
    cmp x19, #3
    b.ne 7b
    adr x0, msg_success
    bl puts
    mov x0, x22
    bl putdigit
    adr x0, msg_already
    bl puts
    mov x0, x23
    bl putdigit
    adr x0, msg_entries
    bl puts
    ldr w0, [x20, #ENTRIES]
    bl putdigit
    mov x0, #10                     // newline
    bl putc
off:
    ldr x0, =PSCI_SYSTEM_OFF
    hvc #0
    b .
fail:
    adr x0, msg_fail
    bl puts
    b off

racer:                              // vCPUs 1 and 2: x0 = the index
    adr x20, data
    mov x21, x0
    mov w1, #1
    str w1, [x20, x21, lsl #2]
1:  ldr w1, [x20, #GO]
    cbz w1, 1b
    bl race
park:
    wfe
    b park

race:                               // CPU_ON vCPU 3; result and done flag for caller x21
    mov x24, x30
    ldr x0, =PSCI_CPU_ON
    mov x1, #3
    adr x2, target
    mov x3, #3
    hvc #0
    add x1, x20, #RESULTS
    str x0, [x1, x21, lsl #3]
    mov w1, #1
    add x2, x20, #DONE
    str w1, [x2, x21, lsl #2]
    ret x24

target:                             // vCPU 3: count the entry, then stay on
    adr x20, data
    ldr w1, [x20, #ENTRIES]
    add w1, w1, #1
    str w1, [x20, #ENTRIES]
    b park

putc:                               // x0: one byte to the PL011
    movz x9, #0x0900, lsl #16
    str w0, [x9]
    ret
puts:                               // x0: a NUL-terminated string
    mov x10, x30
    mov x11, x0
1:  ldrb w0, [x11], #1
    cbz w0, 2f
    bl putc
    b 1b
2:  ret x10
putdigit:                           // x0: 0..9
    add x0, x0, #'0'
    b putc

msg_success: .asciz "RACE success="
msg_already: .asciz " already_on="
msg_entries: .asciz " entries="
msg_fail:    .asciz "RACE CPU_ON of vCPU 1 or 2 failed\n"
    .ltorg
    .balign 64
data:
    .space 0x80
"#;

/// Three vCPUs race `CPU_ON` of a fourth under Moat: one `SUCCESS`, two `ALREADY_ON`, one start.
pub(super) fn cpu_on_race(artifacts: &Artifacts, tally: &mut Tally) -> XResult<()> {
    let guest = assemble_guest("cpu_on_race", RACE_GUEST)?;
    let request = VmRequest {
        cpus: Some(4),
        ..VmRequest::default()
    };
    for cpu in super::CPUS {
        let vm = crate::vm::describe(&request, cpu)?;
        let outcome = boot_config(artifacts, &guest, cpu, &vm, "cpu_on_race")?;
        let verdict = expect_line(&outcome, "RACE success=1 already_on=2 entries=1\n")
            .and_then(|()| expect_exit(&outcome, MoatExit::PowerOff));
        tally.record(
            "psci_cpu_on_raced_by_three_vcpus_gives_one_success_and_starts_the_cpu_once",
            cpu,
            Some(&outcome),
            verdict,
        );
    }
    Ok(())
}
