//! The KVM runner's pure parts, tested on any host: the command line, the guest's memory
//! layout, and the MMIO bus with Moat's PL011 model. The program (`main.rs`) adds the KVM side,
//! which builds for aarch64 Linux only.

pub mod args;
pub mod layout;
pub mod mmio;
