//! A virtual CPU: the state that belongs to one vCPU rather than to its VM — its registers and
//! last trap, the system registers Moat shadows for it, its index in the VM.
//!
//! The VM (`vm.rs`) holds what its vCPUs share: the configuration, stage 2, RAM and the device
//! models (the GIC model keeps each vCPU's redistributor state by index). Every exit handler
//! takes both, so that one `Vm` can serve several `Vcpu`s, each run by its own physical CPU.

use moat_vcpu::frame::TrapFrame;
use moat_vcpu::idregs::IdValues;

/// One vCPU.
// `repr(C)`, the ID register table last: the fields the exit path reads stay within reach of
// a load's immediate offset from the vCPU.
#[repr(C)]
pub struct Vcpu {
    /// Its index: MPIDR `Aff0` as the guest sees it, the GIC model's vCPU number.
    pub index: usize,
    /// Its general-purpose registers, PC, PSTATE and the trap state of its last exit.
    pub frame: TrapFrame,
    /// `CPACR_EL1` as the guest wrote it (see `cpacr.rs`).
    pub cpacr: u64,
    /// What its trapped ID register reads return, read from its physical CPU when it starts
    /// (`Vm::configure_el2`).
    pub id_values: IdValues,
}

impl Vcpu {
    /// A vCPU in its reset state.
    pub fn new(index: usize) -> Self {
        Self {
            index,
            frame: TrapFrame::default(),
            cpacr: 0,
            id_values: IdValues::default(),
        }
    }
}
