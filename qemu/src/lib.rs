//! QEMU as a pinvm machine: `qemu-system-x86_64` (TCG, or KVM when asked) boots the guest,
//! and pinvm's own devices (the journaled copy-on-write disk, the DMA device) are served to it
//! as vhost-user backends from the pinvm process, from the same device code our VMM uses.
//! The agent reports over a serial port instead of the control page. docs/qemu.md.

#![warn(missing_docs)]

pub mod command;
pub mod find;
mod machine;
pub mod qmp;
pub mod serial_channel;

pub use command::Accel;
pub use machine::{bzimage_for, QemuMachine};
