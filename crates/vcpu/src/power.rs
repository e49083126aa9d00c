//! The PSCI power states of a VM's vCPUs (Arm DEN 0022: `CPU_ON`, `CPU_OFF`, `AFFINITY_INFO`)
//! and the answers the firmware interface gives from them, as a pure table: the EL2 binary
//! starts the physical CPU of a vCPU this table says to start, and parks the one it says is
//! off.
//!
//! A vCPU's name in PSCI calls is its virtual MPIDR: vCPU `n` has `Aff0` = `n` and the other
//! affinity levels 0, whatever physical CPU runs it (`VMPIDR_EL2`), so a VM has no name for a
//! CPU that is not its own: any other MPIDR is `INVALID_PARAMETERS`.
//!
//! `CPU_ON` is synchronous here: when the call is accepted the target is committed to start (no
//! later step can fail), so a second `CPU_ON` of the same vCPU, racing the first or after it,
//! finds it on and gets `ALREADY_ON`, while `AFFINITY_INFO` reports `ON_PENDING` until the
//! target runs its first instruction. DEN 0022 allows `ON_PENDING` as `CPU_ON`'s answer only
//! while an earlier call "has not completed"; ours completes at once. This is also what KVM
//! answers, and what kvm-unit-tests' `psci` test accepts: of racing callers exactly one gets
//! `SUCCESS`, the others `ALREADY_ON`, and the vCPU starts once.

/// The most vCPUs a VM has (one per physical CPU Moat runs on).
pub const MAX_VCPUS: usize = 8;

/// PSCI status `SUCCESS`.
pub const SUCCESS: i64 = 0;
/// PSCI status `INVALID_PARAMETERS`.
pub const INVALID_PARAMETERS: i64 = -2;
/// PSCI status `ALREADY_ON`.
pub const ALREADY_ON: i64 = -4;

/// A vCPU's power state; `AFFINITY_INFO` answers with its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    /// Running (0, `ON`).
    On,
    /// Off (1, `OFF`).
    Off,
    /// Committed to start, not yet running its first instruction (2, `ON_PENDING`).
    Pending(Start),
}

impl Power {
    /// The `AFFINITY_INFO` answer for a vCPU in this state.
    #[must_use]
    pub const fn affinity_info(self) -> i64 {
        match self {
            Self::On => 0,
            Self::Off => 1,
            Self::Pending(_) => 2,
        }
    }
}

/// How a vCPU starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The boot vCPU, at the image's entry with the device tree.
    Boot,
    /// A PSCI `CPU_ON` target.
    CpuOn {
        /// Its first instruction.
        entry: u64,
        /// Its `X0` (`R0`).
        context: u64,
    },
}

/// The answer to a `CPU_ON`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct CpuOnAnswer {
    /// The PSCI status for the caller's `X0`.
    pub status: i64,
    /// The vCPU whose physical CPU must be woken to start it (only with `SUCCESS`).
    pub start: Option<usize>,
}

/// The power states of one VM's vCPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PowerStates {
    states: [Power; MAX_VCPUS],
    vcpus: usize,
}

impl PowerStates {
    /// A VM of `vcpus` vCPUs (at most [`MAX_VCPUS`]) at power-on: vCPU 0 about to boot, every
    /// other one off until the guest's `CPU_ON`.
    #[must_use]
    pub fn power_on(vcpus: usize) -> Self {
        let mut states = [Power::Off; MAX_VCPUS];
        states[0] = Power::Pending(Start::Boot);
        Self {
            states,
            vcpus: vcpus.clamp(1, MAX_VCPUS),
        }
    }

    /// A VM of `vcpus` vCPUs whose run is over: every vCPU off, none to start until the VM is
    /// powered on again.
    #[must_use]
    pub fn all_off(vcpus: usize) -> Self {
        Self {
            states: [Power::Off; MAX_VCPUS],
            vcpus: vcpus.clamp(1, MAX_VCPUS),
        }
    }

    /// The number of vCPUs.
    #[must_use]
    pub const fn vcpus(&self) -> usize {
        self.vcpus
    }

    /// vCPU `vcpu`'s state (`Off` for an index the VM does not have).
    #[must_use]
    pub fn state(&self, vcpu: usize) -> Power {
        if vcpu < self.vcpus {
            self.states[vcpu]
        } else {
            Power::Off
        }
    }

    /// The vCPU whose virtual MPIDR has the affinity fields of `mpidr` (`Aff3`..`Aff0`; the
    /// other bits are not affinity and are ignored, as DEN 0022 asks of `target_cpu`).
    #[must_use]
    pub fn vcpu_of(&self, mpidr: u64) -> Option<usize> {
        // MPIDR_EL1.Aff3 [39:32], Aff2 [23:16], Aff1 [15:8], Aff0 [7:0].
        const AFFINITY: u64 = 0xFF_00FF_FFFF;
        let index = usize::try_from(mpidr & AFFINITY).ok()?;
        (index < self.vcpus).then_some(index)
    }

    /// `CPU_ON` of the vCPU named `target`: an off vCPU is committed to start at `start`;
    /// one that is on or committed already answers `ALREADY_ON`.
    pub fn cpu_on(&mut self, target: u64, start: Start) -> CpuOnAnswer {
        let Some(vcpu) = self.vcpu_of(target) else {
            return CpuOnAnswer {
                status: INVALID_PARAMETERS,
                start: None,
            };
        };
        match self.states[vcpu] {
            Power::On | Power::Pending(_) => CpuOnAnswer {
                status: ALREADY_ON,
                start: None,
            },
            Power::Off => {
                self.states[vcpu] = Power::Pending(start);
                CpuOnAnswer {
                    status: SUCCESS,
                    start: Some(vcpu),
                }
            }
        }
    }

    /// `AFFINITY_INFO` of `target` at `lowest_affinity_level` = `level`: only level 0 (one
    /// vCPU) is supported, as DEN 0022 allows from PSCI 1.0.
    #[must_use]
    pub fn affinity_info(&self, target: u64, level: u64) -> i64 {
        match (self.vcpu_of(target), level) {
            (Some(vcpu), 0) => self.states[vcpu].affinity_info(),
            _ => INVALID_PARAMETERS,
        }
    }

    /// `CPU_OFF` by `vcpu`: it is off, and a later `CPU_ON` may start it again.
    pub fn cpu_off(&mut self, vcpu: usize) {
        if vcpu < self.vcpus {
            self.states[vcpu] = Power::Off;
        }
    }

    /// The physical CPU of `vcpu` takes it up: a committed start becomes `On` and is returned;
    /// `None` while the vCPU is off (or already on).
    pub fn take_start(&mut self, vcpu: usize) -> Option<Start> {
        match self.states.get(vcpu) {
            Some(&Power::Pending(start)) if vcpu < self.vcpus => {
                self.states[vcpu] = Power::On;
                Some(start)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: Start = Start::CpuOn {
        entry: 0x4008_0000,
        context: 7,
    };

    #[test]
    fn at_power_on_only_the_boot_vcpu_is_committed_to_start() {
        let mut power = PowerStates::power_on(4);
        assert_eq!(power.state(0), Power::Pending(Start::Boot));
        assert!((1..4).all(|v| power.state(v) == Power::Off));
        assert_eq!(power.take_start(0), Some(Start::Boot));
        assert_eq!(power.state(0), Power::On);
        assert_eq!(power.take_start(1), None);
    }

    #[test]
    fn cpu_on_of_an_off_vcpu_succeeds_once_and_names_the_vcpu_to_start() {
        let mut power = PowerStates::power_on(2);
        let answer = power.cpu_on(1, START);
        assert_eq!(
            answer,
            CpuOnAnswer {
                status: SUCCESS,
                start: Some(1)
            }
        );
        assert_eq!(power.affinity_info(1, 0), 2, "ON_PENDING until it runs");
        assert_eq!(power.take_start(1), Some(START));
        assert_eq!(power.affinity_info(1, 0), 0, "ON");
    }

    #[test]
    fn racing_cpu_on_calls_give_one_success_and_already_on_to_the_rest() {
        let mut power = PowerStates::power_on(4);
        let answers: Vec<_> = (0..5).map(|_| power.cpu_on(3, START)).collect();
        assert_eq!(answers.iter().filter(|a| a.status == SUCCESS).count(), 1);
        assert!(answers[1..].iter().all(|a| a.status == ALREADY_ON));
        assert_eq!(answers.iter().filter_map(|a| a.start).count(), 1);
        assert_eq!(power.take_start(3), Some(START));
        assert_eq!(power.take_start(3), None, "the vCPU starts once");
        assert_eq!(power.cpu_on(3, START).status, ALREADY_ON);
    }

    #[test]
    fn a_halted_vm_starts_nothing_until_its_guest_is_powered_on_again() {
        let mut power = PowerStates::all_off(2);
        assert_eq!(power.take_start(0), None);
        assert_eq!(power.take_start(1), None);
        assert_eq!(power.affinity_info(0, 0), Power::Off.affinity_info());
    }

    #[test]
    fn a_vcpu_switched_off_can_be_started_again() {
        let mut power = PowerStates::power_on(2);
        let _ = power.cpu_on(1, START);
        let _ = power.take_start(1);
        power.cpu_off(1);
        assert_eq!(power.affinity_info(1, 0), 1, "OFF");
        assert_eq!(power.cpu_on(1, START).status, SUCCESS);
    }

    #[test]
    fn an_mpidr_that_is_not_one_of_the_vms_vcpus_is_invalid_parameters() {
        let mut power = PowerStates::power_on(2);
        for mpidr in [2, 0x100, 0x1_0000, 0x1_0000_0000, 0x101] {
            assert_eq!(power.cpu_on(mpidr, START).status, INVALID_PARAMETERS);
            assert_eq!(power.affinity_info(mpidr, 0), INVALID_PARAMETERS);
        }
        assert_eq!(power.affinity_info(1, 1), INVALID_PARAMETERS, "level 1");
    }

    #[test]
    fn non_affinity_bits_of_the_target_are_ignored() {
        let power = PowerStates::power_on(2);
        // MPIDR_EL1 bit 31 (RES1), U (30) and MT (24) are not affinity fields.
        assert_eq!(
            power.vcpu_of((1 << 31) | (1 << 30) | (1 << 24) | 1),
            Some(1)
        );
    }
}
