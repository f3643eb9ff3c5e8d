//! QEMU as a pinvm machine (see docs/architecture.md).

#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod command;
pub mod qmp;
