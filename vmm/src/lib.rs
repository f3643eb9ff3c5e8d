//! pinvm's VMM: KVM VM, memory, vCPUs, boot, run control.
//!
//! The data path: `runner` builds a machine (`vm`, `arch::x86_64`, `loader`) with the devices
//! from the `devices` crate, runs its vCPUs (`vcpu`, `quirks` for kvm_pvm, `kick` to stop
//! them), and `outcome` turns what happened into the exit status.

pub mod arch;
pub mod crash;
pub mod host;
pub mod kick;
pub mod loader;
pub mod outcome;
pub mod quirks;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod symbols;
pub mod vcpu;
pub mod vm;
