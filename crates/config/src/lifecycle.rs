//! What follows the end of one VM's run, and when the machine's run ends.
//!
//! Each VM's description says what its power-off and its reset do (`on-poweroff`, `on-reset`):
//! the VM halts alone, restarts alone, or takes the machine down. A VM Moat stops (an exit it
//! has no outcome for) halts alone. The machine powers off when the last VM has halted, or at
//! once when a VM's action says so.
//!
//! Moat prints one line per VM as it ends, `MOAT-VM: <name> <word>` ([`VmEnd::word`]; a VM
//! that restarts prints `restart`, and every VM still running when the machine powers off
//! prints `machine-off`), then the machine's `MOAT-EXIT: <word>`: the word of the VM that
//! powered the machine off, or — when every VM halted — `vm-stopped` if Moat stopped any of
//! them, else the word of the last to end. The host tool's exit status follows from the
//! `MOAT-EXIT` line alone (0 for `poweroff`/`reset`, 1 for `vm-stopped`).

use crate::schema::{OnPowerOff, OnReset, VmConfig};

/// How one VM's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmEnd {
    /// The guest called PSCI `SYSTEM_OFF`.
    PowerOff,
    /// The guest called PSCI `SYSTEM_RESET`.
    Reset,
    /// Moat stopped the VM: an exit it has no outcome for.
    Stopped,
}

impl VmEnd {
    /// The word on the VM's `MOAT-VM:` line, and on `MOAT-EXIT:` when it ends the machine.
    #[must_use]
    pub const fn word(self) -> &'static str {
        match self {
            Self::PowerOff => "poweroff",
            Self::Reset => "reset",
            Self::Stopped => "vm-stopped",
        }
    }
}

/// What follows a VM's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The VM halts; the others run on.
    Halt,
    /// The VM starts again from its images; the others run on.
    Restart,
    /// The machine powers off (or resets, for a VM's `SYSTEM_RESET`), ending every VM.
    EndMachine,
}

/// What follows `end` for the VM described by `vm`.
#[must_use]
pub const fn action(vm: &VmConfig, end: VmEnd) -> Action {
    match end {
        VmEnd::PowerOff => match vm.on_poweroff {
            OnPowerOff::HaltVm => Action::Halt,
            OnPowerOff::PowerOffMachine => Action::EndMachine,
        },
        VmEnd::Reset => match vm.on_reset {
            OnReset::Restart => Action::Restart,
            OnReset::HaltVm => Action::Halt,
            OnReset::PowerOffMachine => Action::EndMachine,
        },
        // A VM Moat stops goes alone, whatever its description says of its own power-off.
        VmEnd::Stopped => Action::Halt,
    }
}

/// The machine's account of its VMs' ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ledger {
    running: usize,
    any_stopped: bool,
}

impl Ledger {
    /// A machine running `vms` VMs.
    #[must_use]
    pub const fn new(vms: usize) -> Self {
        Self {
            running: vms,
            any_stopped: false,
        }
    }

    /// VMs still running (not halted).
    #[must_use]
    pub const fn running(&self) -> usize {
        self.running
    }

    /// A VM ended with `end` and its action was `action`: returns how the machine's run ends,
    /// when it does now.
    pub fn record(&mut self, end: VmEnd, action: Action) -> Option<VmEnd> {
        self.any_stopped |= end == VmEnd::Stopped;
        match action {
            Action::Restart => None,
            Action::EndMachine => Some(end),
            Action::Halt => {
                self.running = self.running.saturating_sub(1);
                (self.running == 0).then_some(if self.any_stopped {
                    VmEnd::Stopped
                } else {
                    end
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(on_poweroff: OnPowerOff, on_reset: OnReset) -> VmConfig {
        VmConfig {
            on_poweroff,
            on_reset,
            ..VmConfig::default_virt()
        }
    }

    #[test]
    fn a_single_vm_description_ends_the_machine_as_before() {
        let single = VmConfig::default_virt();
        assert_eq!(action(&single, VmEnd::PowerOff), Action::EndMachine);
        assert_eq!(action(&single, VmEnd::Reset), Action::EndMachine);
        let mut ledger = Ledger::new(1);
        assert_eq!(
            ledger.record(VmEnd::Stopped, action(&single, VmEnd::Stopped)),
            Some(VmEnd::Stopped)
        );
    }

    #[test]
    fn each_description_value_gives_its_action() {
        let halting = vm(OnPowerOff::HaltVm, OnReset::HaltVm);
        assert_eq!(action(&halting, VmEnd::PowerOff), Action::Halt);
        assert_eq!(action(&halting, VmEnd::Reset), Action::Halt);
        let restarting = vm(OnPowerOff::HaltVm, OnReset::Restart);
        assert_eq!(action(&restarting, VmEnd::Reset), Action::Restart);
        let machine = vm(OnPowerOff::PowerOffMachine, OnReset::PowerOffMachine);
        assert_eq!(action(&machine, VmEnd::Reset), Action::EndMachine);
        for config in [&halting, &restarting, &machine] {
            assert_eq!(action(config, VmEnd::Stopped), Action::Halt);
        }
    }

    #[test]
    fn the_machine_runs_until_its_last_vm_halts() {
        let mut ledger = Ledger::new(2);
        assert_eq!(ledger.record(VmEnd::PowerOff, Action::Halt), None);
        assert_eq!(ledger.record(VmEnd::Reset, Action::Restart), None);
        assert_eq!(ledger.running(), 1);
        assert_eq!(
            ledger.record(VmEnd::PowerOff, Action::Halt),
            Some(VmEnd::PowerOff)
        );
    }

    #[test]
    fn a_stopped_vm_makes_the_machine_end_stopped_even_if_the_last_powered_off() {
        let mut ledger = Ledger::new(2);
        assert_eq!(ledger.record(VmEnd::Stopped, Action::Halt), None);
        assert_eq!(
            ledger.record(VmEnd::PowerOff, Action::Halt),
            Some(VmEnd::Stopped)
        );
    }

    #[test]
    fn a_vm_that_ends_the_machine_ends_it_at_once_with_its_own_word() {
        let mut ledger = Ledger::new(3);
        assert_eq!(
            ledger.record(VmEnd::Reset, Action::EndMachine),
            Some(VmEnd::Reset)
        );
    }
}
