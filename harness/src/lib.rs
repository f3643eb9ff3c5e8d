//! pinvm's scenario harness, over any machine (`machine::Machine`), never KVM itself.
//!
//! The data path of a case (`case::run_case`): a [`scenario`] file expands into workload steps
//! for one kernel and filesystem; [`prepare`] gets the kernel ([`kernel`]: built and cached),
//! the initramfs with the agent and the job, and the disks; the machine runs it and returns
//! its run record; [`analyze`] reads the records the devices kept (DMA log, block journal,
//! final disk) and lets the oracle judge; the case compares the verdicts with the scenario's
//! expectation. [`suite`] runs a matrix of cases, [`report`] writes the results (KTAP, JUnit,
//! kcidb JSON, tables), [`bench`] measures boots and disks, [`record`] renders run records, [`selftest`] runs the
//! kernel's own selftests in the guest.

#![warn(missing_docs)]

pub mod analyze;
pub mod bench;
pub mod bisect;
pub mod case;
pub mod kernel;
pub mod kernel_bench;
pub mod prepare;
pub mod record;
pub mod report;
pub mod scenario;
pub mod selftest;
pub mod suite;

pub use case::{run_case, Case};
pub use kernel::KernelChoice;
pub use report::{CaseResult, Outcome, SuiteResult};
