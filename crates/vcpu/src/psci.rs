//! The guest's firmware interface: SMCCC calls (`HVC #0` or a trapped `SMC #0`) answered by
//! Moat as a PSCI 1.1 implementation (Arm DEN 0022, SMCCC Arm DEN 0028).
//!
//! A pure function from the call's registers to an outcome; the EL2 binary writes the returned
//! registers back or carries out the power-state change. Function identifiers and error codes
//! come from the `smccc` crate.

use smccc::arch::{SMCCC_ARCH_FEATURES, SMCCC_VERSION};
use smccc::psci::error::{INVALID_PARAMETERS, NOT_SUPPORTED};
use smccc::psci::{
    PSCI_AFFINITY_INFO_32, PSCI_AFFINITY_INFO_64, PSCI_CPU_OFF, PSCI_CPU_ON_32, PSCI_CPU_ON_64,
    PSCI_CPU_SUSPEND_32, PSCI_CPU_SUSPEND_64, PSCI_FEATURES, PSCI_MIGRATE_INFO_TYPE,
    PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET, PSCI_VERSION,
};

/// PSCI version 1.1, as `PSCI_VERSION` returns it (major in bits [30:16], minor in [15:0]).
pub const PSCI_VERSION_1_1: u32 = 0x0001_0001;
/// SMCCC version 1.1, as `SMCCC_VERSION` returns it.
pub const SMCCC_VERSION_1_1: u32 = 0x0001_0001;

/// What a guest's SMCCC call asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// Return to the guest with these values in `X0`..`X3` (`X1`..`X3` unchanged where the call
    /// defines no result: the array holds the values to write back).
    Return([u64; 4]),
    /// `PSCI_SYSTEM_OFF`: the VM is powered off and never resumes.
    SystemOff,
    /// `PSCI_SYSTEM_RESET`: the VM is reset.
    SystemReset,
    /// `CPU_ON`: start the vCPU whose MPIDR is `target` at `entry` with `context` in `X0`/`R0`;
    /// the caller answers with the PSCI status (SUCCESS, ALREADY_ON, ON_PENDING,
    /// INVALID_PARAMETERS).
    CpuOn {
        /// The target's MPIDR affinity fields.
        target: u64,
        /// Its first instruction.
        entry: u64,
        /// Its `X0` (`R0`).
        context: u64,
    },
    /// `CPU_OFF`: the calling vCPU stops; it never returns from the call.
    CpuOff,
    /// `AFFINITY_INFO` of the vCPU whose MPIDR is `target`: the caller answers ON (0), OFF (1),
    /// ON_PENDING (2) or INVALID_PARAMETERS.
    AffinityInfo {
        /// The target's MPIDR affinity fields.
        target: u64,
        /// `lowest_affinity_level`: only 0 is supported.
        level: u64,
    },
    /// `CPU_SUSPEND`: Moat makes every power state a `WFI` (the vCPU resumes at the next
    /// instruction when an interrupt arrives), which PSCI allows for standby states and the
    /// caller must cope with for powerdown ones (it may return at once).
    Suspend,
}

/// PSCI `MIGRATE_INFO_TYPE`: 2, "Trusted OS is either not present or does not require
/// migration".
pub const MIGRATE_INFO_TYPE_NOT_PRESENT: i64 = 2;

/// The power-state functions: the calls whose answer reads or changes the vCPUs' power states
/// or ends the VM ([`value_call`] answers every other one).
pub const POWER_FUNCTIONS: [u32; 9] = [
    PSCI_SYSTEM_OFF,
    PSCI_SYSTEM_RESET,
    PSCI_CPU_ON_32,
    PSCI_CPU_ON_64,
    PSCI_CPU_OFF,
    PSCI_AFFINITY_INFO_32,
    PSCI_AFFINITY_INFO_64,
    PSCI_CPU_SUSPEND_32,
    PSCI_CPU_SUSPEND_64,
];

/// The functions that only return a value and are implemented (not merely `NOT_SUPPORTED`).
const VALUE_FUNCTIONS: [u32; 4] = [
    PSCI_VERSION,
    PSCI_FEATURES,
    PSCI_MIGRATE_INFO_TYPE,
    SMCCC_VERSION,
];

/// The functions this implementation offers, as `PSCI_FEATURES` reports them.
const IMPLEMENTED: [u32; 13] = {
    let mut all = [0; 13];
    let mut i = 0;
    while i < POWER_FUNCTIONS.len() {
        all[i] = POWER_FUNCTIONS[i];
        i += 1;
    }
    while i < all.len() {
        all[i] = VALUE_FUNCTIONS[i - POWER_FUNCTIONS.len()];
        i += 1;
    }
    all
};

/// Answers one SMCCC call whose argument registers are `X0`..`X3`.
///
/// The function identifier is `W0` (SMCCC: the upper half of `X0` is ignored for both calling
/// conventions). A result that is a signed 32-bit PSCI status is returned sign-extended, as a
/// 64-bit read of a negative `W0` shows it.
#[must_use]
pub fn handle_call(args: [u64; 4]) -> CallOutcome {
    // Truncation intended: the function identifier is `W0`.
    #[allow(clippy::cast_possible_truncation)]
    let function = args[0] as u32;
    match function {
        PSCI_SYSTEM_OFF => CallOutcome::SystemOff,
        PSCI_SYSTEM_RESET => CallOutcome::SystemReset,
        // SMC32 callers pass 32-bit arguments: the upper halves are ignored.
        PSCI_CPU_ON_32 => CallOutcome::CpuOn {
            target: args[1] & 0xFFFF_FFFF,
            entry: args[2] & 0xFFFF_FFFF,
            context: args[3] & 0xFFFF_FFFF,
        },
        PSCI_CPU_ON_64 => CallOutcome::CpuOn {
            target: args[1],
            entry: args[2],
            context: args[3],
        },
        PSCI_CPU_OFF => CallOutcome::CpuOff,
        PSCI_AFFINITY_INFO_32 => CallOutcome::AffinityInfo {
            target: args[1] & 0xFFFF_FFFF,
            level: args[2] & 0xFFFF_FFFF,
        },
        PSCI_AFFINITY_INFO_64 => CallOutcome::AffinityInfo {
            target: args[1],
            level: args[2],
        },
        PSCI_CPU_SUSPEND_32 | PSCI_CPU_SUSPEND_64 if !valid_power_state(args[1]) => {
            // Reinterpretation intended: a negative status is returned sign-extended.
            CallOutcome::Return([
                i64::from(INVALID_PARAMETERS) as u64,
                args[1],
                args[2],
                args[3],
            ])
        }
        PSCI_CPU_SUSPEND_32 | PSCI_CPU_SUSPEND_64 => CallOutcome::Suspend,
        // `value_call` answers every function not matched above.
        _ => {
            let value = value_call(function, args[1]).unwrap_or(i64::from(NOT_SUPPORTED));
            // Reinterpretation intended: a negative status is returned sign-extended.
            CallOutcome::Return([value as u64, args[1], args[2], args[3]])
        }
    }
}

/// The fields of `CPU_SUSPEND`'s `power_state` in the original format (DEN 0022, "power_state
/// parameter"), which `PSCI_FEATURES(CPU_SUSPEND)` = 0 (bit 1, the extended format, clear)
/// announces: `StateID` [15:0], `StateType` [16], `PowerLevel` [25:24]; bits [23:17] and
/// [31:26] are reserved, must be zero.
const POWER_STATE_FIELDS: u32 = 0xffff | 1 << 16 | 0b11 << 24;

/// Whether `CPU_SUSPEND`'s `power_state` (`W1`: a 32-bit parameter for both calling
/// conventions) is one this implementation accepts: no reserved bit set. A `power_state` with
/// a reserved bit set is not a valid state, which PSCI answers with `INVALID_PARAMETERS`
/// ("the power_state parameter is invalid"); every valid one is entered as a standby.
#[must_use]
pub fn valid_power_state(x1: u64) -> bool {
    // Truncation intended: power_state is a 32-bit parameter.
    #[allow(clippy::cast_possible_truncation)]
    let state = x1 as u32;
    state & !POWER_STATE_FIELDS == 0
}

/// The `X0` result of function `function` (with `X1` = `arg1`) when the call only returns a
/// value, leaving `X1`..`X3` as they are; `None` for the power-state functions, whose answer
/// [`handle_call`] gives as a [`CallOutcome`] for the caller to act on.
#[must_use]
#[inline]
pub fn value_call(function: u32, arg1: u64) -> Option<i64> {
    Some(match function {
        PSCI_VERSION => i64::from(PSCI_VERSION_1_1),
        SMCCC_VERSION => i64::from(SMCCC_VERSION_1_1),
        PSCI_FEATURES => features(arg1),
        PSCI_MIGRATE_INFO_TYPE => MIGRATE_INFO_TYPE_NOT_PRESENT,
        // SMCCC_ARCH_FEATURES: no architectural workaround is offered or needed.
        SMCCC_ARCH_FEATURES => i64::from(NOT_SUPPORTED),
        PSCI_SYSTEM_OFF
        | PSCI_SYSTEM_RESET
        | PSCI_CPU_ON_32
        | PSCI_CPU_ON_64
        | PSCI_CPU_OFF
        | PSCI_AFFINITY_INFO_32
        | PSCI_AFFINITY_INFO_64
        | PSCI_CPU_SUSPEND_32
        | PSCI_CPU_SUSPEND_64 => return None,
        _ => i64::from(NOT_SUPPORTED),
    })
}

/// `PSCI_FEATURES`: 0 (no feature flags) for an implemented function, `NOT_SUPPORTED` otherwise.
fn features(queried: u64) -> i64 {
    let implemented = u32::try_from(queried).is_ok_and(|fid| IMPLEMENTED.contains(&fid));
    if implemented {
        0
    } else {
        i64::from(NOT_SUPPORTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOT_SUPPORTED_X0: u64 = u64::MAX; // -1 sign-extended

    #[test]
    fn psci_version_reports_1_1() {
        assert_eq!(
            handle_call([u64::from(PSCI_VERSION), 7, 8, 9]),
            CallOutcome::Return([0x1_0001, 7, 8, 9])
        );
    }

    #[test]
    fn function_id_is_w0_so_upper_bits_of_x0_are_ignored() {
        let x0 = 0xffff_ffff_0000_0000 | u64::from(PSCI_VERSION);
        assert_eq!(
            handle_call([x0, 0, 0, 0]),
            CallOutcome::Return([0x1_0001, 0, 0, 0])
        );
    }

    #[test]
    fn features_reports_implemented_functions_as_zero() {
        for fid in IMPLEMENTED {
            let out = handle_call([u64::from(PSCI_FEATURES), u64::from(fid), 0, 0]);
            assert_eq!(
                out,
                CallOutcome::Return([0, u64::from(fid), 0, 0]),
                "{fid:#x}"
            );
        }
    }

    #[test]
    fn features_reports_migrate_as_not_supported() {
        let out = handle_call([u64::from(PSCI_FEATURES), 0xC400_0005, 0, 0]);
        assert_eq!(
            out,
            CallOutcome::Return([NOT_SUPPORTED_X0, 0xC400_0005, 0, 0])
        );
    }

    #[test]
    fn cpu_on_64_names_target_entry_and_context_in_x1_to_x3() {
        let out = handle_call([u64::from(PSCI_CPU_ON_64), 1, 0x4008_0000, 0xdead_beef_0000]);
        let expected = CallOutcome::CpuOn {
            target: 1,
            entry: 0x4008_0000,
            context: 0xdead_beef_0000,
        };
        assert_eq!(out, expected);
    }

    #[test]
    fn cpu_on_32_ignores_the_upper_halves_of_its_arguments() {
        let args = [
            u64::from(PSCI_CPU_ON_32),
            0xffff_0000_0000_0001,
            0xffff_0000_4000_0000,
            7,
        ];
        let out = handle_call(args);
        assert_eq!(
            out,
            CallOutcome::CpuOn {
                target: 1,
                entry: 0x4000_0000,
                context: 7
            }
        );
    }

    #[test]
    fn cpu_off_affinity_info_and_suspend_are_power_outcomes() {
        assert_eq!(
            handle_call([u64::from(PSCI_CPU_OFF), 0, 0, 0]),
            CallOutcome::CpuOff
        );
        let info = handle_call([u64::from(PSCI_AFFINITY_INFO_64), 0x100, 0, 0]);
        assert_eq!(
            info,
            CallOutcome::AffinityInfo {
                target: 0x100,
                level: 0
            }
        );
        assert_eq!(
            handle_call([u64::from(PSCI_CPU_SUSPEND_64), 0, 0, 0]),
            CallOutcome::Suspend
        );
    }

    #[test]
    fn cpu_suspend_with_a_reserved_power_state_bit_is_invalid_parameters() {
        for fid in [PSCI_CPU_SUSPEND_32, PSCI_CPU_SUSPEND_64] {
            for bit in (17..24).chain(26..32) {
                assert_eq!(
                    handle_call([u64::from(fid), 1 << bit, 0x4000_0000, 7]),
                    CallOutcome::Return([(-2i64) as u64, 1 << bit, 0x4000_0000, 7]),
                    "power_state bit {bit}"
                );
            }
            // StateID, StateType (powerdown, entered as a standby) and PowerLevel are fields.
            for state in [0, 0xffff, 1 << 16, 3 << 24, 0x0301_ffff] {
                assert_eq!(
                    handle_call([u64::from(fid), state, 0, 0]),
                    CallOutcome::Suspend
                );
            }
            // The upper half of X1 is not part of the 32-bit parameter.
            assert_eq!(
                handle_call([u64::from(fid), 0xffff_ffff_0000_0000, 0, 0]),
                CallOutcome::Suspend
            );
        }
    }

    #[test]
    fn migrate_info_type_says_no_trusted_os_needs_migration() {
        let out = handle_call([u64::from(PSCI_MIGRATE_INFO_TYPE), 0, 0, 0]);
        assert_eq!(out, CallOutcome::Return([2, 0, 0, 0]));
    }

    #[test]
    fn system_off_and_reset_are_power_state_outcomes() {
        assert_eq!(
            handle_call([u64::from(PSCI_SYSTEM_OFF), 0, 0, 0]),
            CallOutcome::SystemOff
        );
        assert_eq!(
            handle_call([u64::from(PSCI_SYSTEM_RESET), 0, 0, 0]),
            CallOutcome::SystemReset
        );
    }

    #[test]
    fn value_calls_are_exactly_the_calls_handle_call_answers_with_values() {
        let power = POWER_FUNCTIONS;
        let others = IMPLEMENTED
            .iter()
            .chain(&[SMCCC_ARCH_FEATURES, 0xC200_0000, 0x8400_00FF]);
        for &fid in power.iter().chain(others) {
            let outcome = handle_call([u64::from(fid), 3, 4, 5]);
            match value_call(fid, 3) {
                Some(v) => assert_eq!(outcome, CallOutcome::Return([v as u64, 3, 4, 5])),
                None => assert!(
                    power.contains(&fid) && !matches!(outcome, CallOutcome::Return(_)),
                    "{fid:#x}"
                ),
            }
        }
    }

    #[test]
    fn unknown_function_returns_not_supported_sign_extended() {
        assert_eq!(
            handle_call([0xC200_0000, 1, 2, 3]),
            CallOutcome::Return([NOT_SUPPORTED_X0, 1, 2, 3])
        );
    }
}
