//! pinvm's KVM machine: [`KvmMachine`] implements `machine::Machine` with our own VMM on
//! /dev/kvm.
//!
//! The data path of a run: `builder` creates the VM (`vm`, `arch::x86_64`), puts the devices
//! on its buses (the `devices` crate, built from the run description by
//! `machine::device_set`; `slots` for virtio-mmio), creates the vCPUs, loads the kernel
//! (`loader`) and starts one thread per vCPU (`vcpu`, with `quirks` completing what kvm_pvm's
//! emulator cannot run, `host` for what the host's KVM changes on the command line);
//! `run_control` watches the run through one channel and stops the vCPUs (`kick`); the
//! machine crate's watch and collector turn that into the run record.

#![warn(missing_docs)]

pub mod arch;
pub mod builder;
pub mod host;
pub mod kick;
mod kvm;
pub mod loader;
pub mod quirks;
pub mod run_control;
pub mod slots;
pub mod vcpu;
pub mod vm;

pub use kvm::{KvmMachine, NAME};
