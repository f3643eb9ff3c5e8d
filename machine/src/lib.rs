//! The machine boundary: a run description ([`RunSpec`]) goes in, a run record ([`RunReport`])
//! comes out. A [`Machine`] is whatever boots the guest kernel with pinvm's devices: today our
//! own VMM on KVM (`vmm::KvmMachine`), next QEMU with the same devices served as vhost-user
//! backends. The harness only ever talks to `&dyn Machine`.
//!
//! Besides the types of the boundary, this crate holds what every machine shares, so that a
//! second one does not rewrite it:
//! - [`device_set`]: the devices a [`RunSpec`] asks for (copy-on-write disks with their write
//!   journals, the DMA device with its log and its observer on disk 0), and collecting them
//!   after the run (flush, `--keep-disk`);
//! - [`console`]: capturing the guest console (record, log file, echo while the command runs);
//! - [`agent`] and [`watch`]: the guest agent's events, whatever channel carried them, and the
//!   run's clock (deadline, panic grace, reboot grace) that turns them into a [`RunReport`];
//! - [`outcome`], [`crash`], [`symbols`]: judging a run record (exit code + reason) and naming
//!   where stopped vCPUs were.

#![warn(missing_docs)]

pub mod agent;
pub mod cmdline;
pub mod console;
pub mod crash;
pub mod device_set;
mod error;
pub mod outcome;
mod record;
pub mod spec;
pub mod symbols;
pub mod watch;

pub use error::MachineError;
pub use record::{RecordPaths, RunReport, Timings, VmEnd};
pub use spec::{DiskSpec, DmaSpec, RunSpec};

/// Something that can boot a guest kernel with pinvm's devices and report what happened.
///
/// An implementation owns everything between the run description and the run record: how
/// the guest is started and stopped, how devices reach it (transport), how the agent's events
/// travel, and how a hang is detected and described. It does not interpret the run: judging
/// ([`outcome::judge`]) and the oracle work on the [`RunReport`] alone.
pub trait Machine: Send + Sync {
    /// Short name recorded in every run record, e.g. `"kvm"`.
    fn name(&self) -> &'static str;

    /// Whether this machine boots a compressed `bzImage` (QEMU's `-kernel`) rather than the
    /// uncompressed vmlinux (pinvm's VMM): a kernel built for it must include one.
    fn boots_bzimage(&self) -> bool {
        false
    }

    /// Boot `spec.kernel` with `spec`'s initramfs and devices, watch the guest until it ends,
    /// times out or crashes, stop it, collect the devices' records and return the run record.
    ///
    /// A guest that crashes, hangs or never boots is a successful *run* (its record says so);
    /// `Err` means the run could not be set up at all (see [`MachineError`]).
    fn run(&self, spec: &RunSpec) -> Result<RunReport, MachineError>;
}
