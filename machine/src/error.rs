//! Why a machine could not run a [`crate::RunSpec`] at all.

/// A run that could not be set up. Each variant says whose problem it is: the host's
/// ([`MachineError::Unavailable`]: try another machine), the caller's
/// ([`MachineError::Invalid`]: fix the description), or the set-up's
/// ([`MachineError::Setup`]: a file, an ioctl, a thread).
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// This machine cannot run on this host (no usable /dev/kvm, an old KVM, ...); another
    /// machine may.
    #[error("the {machine} machine is not available here: {why}")]
    Unavailable {
        /// [`crate::Machine::name`] of the machine.
        machine: &'static str,
        /// What is missing and what to do about it.
        why: String,
    },
    /// The run description asks for something this machine cannot do (no vCPU, too many
    /// devices, a command line the boot protocol cannot carry).
    #[error("{0}")]
    Invalid(String),
    /// Setting up the run failed: a disk image, a log file, a KVM ioctl, a thread. The chain
    /// of causes is part of the message.
    #[error("{0:#}")]
    Setup(anyhow::Error),
}

impl From<anyhow::Error> for MachineError {
    fn from(e: anyhow::Error) -> Self {
        MachineError::Setup(e)
    }
}

impl From<std::io::Error> for MachineError {
    fn from(e: std::io::Error) -> Self {
        MachineError::Setup(e.into())
    }
}
