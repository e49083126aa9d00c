//! One SMCCC call of a vCPU served end to end (Arm DEN 0028, PSCI DEN 0022): the call decoded
//! ([`crate::psci::handle_call`]), power-state changes made in the VM's [`PowerStates`], and
//! the registers the caller gets back — a pure function, so the EL2 binary only writes the
//! results into the trap frame and carries out what follows ([`After`]).

use crate::power::{PowerStates, SUCCESS, Start};
use crate::psci::{self, CallOutcome};

/// A trapped `HVC` or `SMC`, as the call's registers and syndrome give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// `X0`..`X3` (`R0`..`R3`).
    pub args: [u64; 4],
    /// The instruction's immediate (`ESR_EL2.ISS.imm16`; 0 for an AArch32 `SMC`).
    pub imm16: u16,
    /// The caller runs in AArch32: results are 32-bit registers.
    pub aarch32: bool,
}

/// What the vCPU does after the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum After {
    /// Returns to the guest.
    Resume,
    /// Returns to the guest once an interrupt is pending (`CPU_SUSPEND` as a standby).
    Wait,
    /// Returns to the guest, and vCPU `n`'s physical CPU must be woken: `CPU_ON` committed it.
    Start(usize),
    /// The caller is off (`CPU_OFF`): its physical CPU waits until a `CPU_ON` starts it again.
    Off,
    /// `SYSTEM_OFF`: the VM is over.
    SystemOff,
    /// `SYSTEM_RESET`: the VM is to be reset.
    SystemReset,
}

/// The call's outcome: the caller's result registers, and what follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Served {
    /// `X0`..`X3` to write back (already truncated to 32 bits for an AArch32 caller); `None`
    /// where the call does not return (`CPU_OFF`, `SYSTEM_OFF`, `SYSTEM_RESET`).
    pub results: Option<[u64; 4]>,
    /// What the vCPU does next.
    pub after: After,
}

/// Answers in place, in `x` (`X0`..`X3` of the caller), a call whose answer depends on no VM
/// state — every call that only returns values (`PSCI_VERSION`, `PSCI_FEATURES`,
/// `SMCCC_VERSION`, `MIGRATE_INFO_TYPE`, an unimplemented function's `NOT_SUPPORTED`, a call
/// with a non-zero immediate) — exactly as [`serve`] would; `false`, with `x` untouched, for
/// one that reads or changes the vCPUs' power states or ends the VM, which only [`serve`]
/// answers. The caller resumes the guest at once: such a call changes nothing another vCPU or
/// the interrupt controller sees.
#[inline]
pub fn answer_without_vm(x: &mut [u64; 4], imm16: u16, aarch32: bool) -> bool {
    let value = if imm16 == 0 {
        // Truncation intended: the function identifier is `W0`.
        #[allow(clippy::cast_possible_truncation)]
        let Some(value) = psci::value_call(x[0] as u32, x[1]) else {
            return false;
        };
        value
    } else {
        -1
    };
    // Reinterpretation intended: a negative status is returned sign-extended.
    x[0] = value as u64;
    if aarch32 {
        *x = truncate(*x, true);
    }
    true
}

/// What `call` asks for. A call with a non-zero immediate is not an SMCCC call (DEN 0028:
/// SMCCC function calls use immediate 0): it returns `NOT_SUPPORTED` (-1) in `X0` and the
/// other registers unchanged.
fn decode(call: Call) -> CallOutcome {
    let args = call.args;
    if call.imm16 == 0 {
        psci::handle_call(args)
    } else {
        CallOutcome::Return([u64::MAX, args[1], args[2], args[3]])
    }
}

/// Serves `call` made by vCPU `caller` of the VM whose vCPUs' power states are `power`.
pub fn serve(call: Call, caller: usize, power: &mut PowerStates) -> Served {
    let args = call.args;
    let outcome = decode(call);
    let returns = |regs: [u64; 4], after: After| Served {
        results: Some(truncate(regs, call.aarch32)),
        after,
    };
    let status = |status: i64, after: After| {
        // Reinterpretation intended: a negative status is returned sign-extended.
        returns([status as u64, args[1], args[2], args[3]], after)
    };
    match outcome {
        CallOutcome::Return(regs) => returns(regs, After::Resume),
        CallOutcome::CpuOn {
            target,
            entry,
            context,
        } => {
            let answer = power.cpu_on(target, Start::CpuOn { entry, context });
            let after = answer.start.map_or(After::Resume, After::Start);
            status(answer.status, after)
        }
        CallOutcome::AffinityInfo { target, level } => {
            status(power.affinity_info(target, level), After::Resume)
        }
        // Every power state is a standby here: the call returns SUCCESS once an interrupt
        // wakes the vCPU (DEN 0022 allows a powerdown request to return as a standby).
        CallOutcome::Suspend => status(SUCCESS, After::Wait),
        CallOutcome::CpuOff => {
            power.cpu_off(caller);
            Served {
                results: None,
                after: After::Off,
            }
        }
        CallOutcome::SystemOff => Served {
            results: None,
            after: After::SystemOff,
        },
        CallOutcome::SystemReset => Served {
            results: None,
            after: After::SystemReset,
        },
    }
}

/// An AArch32 caller's results are `R0`..`R3`: the low halves.
fn truncate(regs: [u64; 4], aarch32: bool) -> [u64; 4] {
    if aarch32 {
        regs.map(|r| r & 0xFFFF_FFFF)
    } else {
        regs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::{ALREADY_ON, INVALID_PARAMETERS, Power};
    use smccc::psci::{
        PSCI_AFFINITY_INFO_64, PSCI_CPU_OFF, PSCI_CPU_ON_64, PSCI_CPU_SUSPEND_64, PSCI_SYSTEM_OFF,
        PSCI_VERSION,
    };

    fn call(args: [u64; 4]) -> Call {
        Call {
            args,
            imm16: 0,
            aarch32: false,
        }
    }

    #[test]
    fn psci_version_returns_1_1_and_resumes() {
        let mut power = PowerStates::power_on(1);
        let served = serve(call([u64::from(PSCI_VERSION), 1, 2, 3]), 0, &mut power);
        assert_eq!(served.results, Some([0x1_0001, 1, 2, 3]));
        assert_eq!(served.after, After::Resume);
    }

    #[test]
    fn a_non_zero_immediate_is_not_an_smccc_call() {
        let mut power = PowerStates::power_on(1);
        let served = serve(
            Call {
                imm16: 1,
                ..call([u64::from(PSCI_VERSION), 1, 2, 3])
            },
            0,
            &mut power,
        );
        assert_eq!(served.results, Some([u64::MAX, 1, 2, 3]));
    }

    #[test]
    fn a_non_zero_immediate_is_answered_without_the_vm_as_serve_answers_it() {
        let mut power = PowerStates::power_on(1);
        let args = [u64::from(PSCI_CPU_OFF), 1, 2, 3];
        let served = serve(
            Call {
                imm16: 7,
                ..call(args)
            },
            0,
            &mut power,
        );
        let mut x = args;
        assert!(answer_without_vm(&mut x, 7, false));
        assert_eq!(Some(x), served.results);
    }

    #[test]
    fn an_aarch32_caller_gets_32_bit_results() {
        let mut power = PowerStates::power_on(1);
        let served = serve(
            Call {
                aarch32: true,
                ..call([0xC200_0000, 1 << 40, 2, 3])
            },
            0,
            &mut power,
        );
        assert_eq!(served.results, Some([0xFFFF_FFFF, 0, 2, 3]));
    }

    #[test]
    fn calls_that_only_return_values_are_answered_without_the_vm_as_serve_answers_them() {
        use smccc::psci::{PSCI_FEATURES, PSCI_MIGRATE_INFO_TYPE};
        for args in [
            [u64::from(PSCI_VERSION), 1, 2, 3],
            [u64::from(PSCI_FEATURES), u64::from(PSCI_CPU_ON_64), 0, 0],
            [u64::from(PSCI_MIGRATE_INFO_TYPE), 0, 0, 0],
            [0xC200_0000, 1, 2, 3],
        ] {
            for aarch32 in [false, true] {
                let call = Call {
                    args,
                    imm16: 0,
                    aarch32,
                };
                let mut power = PowerStates::power_on(2);
                let served = serve(call, 0, &mut power);
                let mut x = args;
                assert!(answer_without_vm(&mut x, 0, aarch32), "{args:x?}");
                assert_eq!(Some(x), served.results, "{args:x?}");
                assert_eq!(served.after, After::Resume);
            }
        }
    }

    #[test]
    fn power_state_calls_need_the_vm() {
        for fid in [
            PSCI_CPU_ON_64,
            PSCI_CPU_OFF,
            PSCI_AFFINITY_INFO_64,
            PSCI_CPU_SUSPEND_64,
            PSCI_SYSTEM_OFF,
        ] {
            let mut x = [u64::from(fid), 1, 0, 0];
            assert!(!answer_without_vm(&mut x, 0, false));
            assert_eq!(x, [u64::from(fid), 1, 0, 0], "left untouched");
        }
    }

    #[test]
    fn cpu_on_commits_the_target_and_asks_for_its_cpu_to_be_woken() {
        let mut power = PowerStates::power_on(2);
        let on = call([u64::from(PSCI_CPU_ON_64), 1, 0x4008_0000, 9]);
        let served = serve(on, 0, &mut power);
        assert_eq!(served.results, Some([0, 1, 0x4008_0000, 9]));
        assert_eq!(served.after, After::Start(1));
        let again = serve(on, 0, &mut power);
        assert_eq!(again.results.map(|r| r[0]), Some(ALREADY_ON as u64));
        assert_eq!(again.after, After::Resume);
        let missing = serve(call([u64::from(PSCI_CPU_ON_64), 2, 0, 0]), 0, &mut power);
        assert_eq!(
            missing.results.map(|r| r[0]),
            Some(INVALID_PARAMETERS as u64)
        );
    }

    #[test]
    fn affinity_info_reads_the_power_table() {
        let mut power = PowerStates::power_on(2);
        let info = call([u64::from(PSCI_AFFINITY_INFO_64), 1, 0, 0]);
        assert_eq!(serve(info, 0, &mut power).results.map(|r| r[0]), Some(1));
    }

    #[test]
    fn cpu_off_switches_the_caller_off_and_does_not_return() {
        let mut power = PowerStates::power_on(2);
        let _ = power.cpu_on(1, Start::Boot);
        let _ = power.take_start(1);
        let served = serve(call([u64::from(PSCI_CPU_OFF), 0, 0, 0]), 1, &mut power);
        assert_eq!(served.results, None);
        assert_eq!(served.after, After::Off);
        assert_eq!(power.state(1), Power::Off);
    }

    #[test]
    fn suspend_waits_then_returns_success_and_system_off_ends_the_vm() {
        let mut power = PowerStates::power_on(1);
        let suspend = serve(
            call([u64::from(PSCI_CPU_SUSPEND_64), 0, 0, 0]),
            0,
            &mut power,
        );
        assert_eq!(
            (suspend.results.map(|r| r[0]), suspend.after),
            (Some(0), After::Wait)
        );
        let off = serve(call([u64::from(PSCI_SYSTEM_OFF), 0, 0, 0]), 0, &mut power);
        assert_eq!((off.results, off.after), (None, After::SystemOff));
    }
}
