//! pinvm's shared formats: every byte layout or text format that two sides of pinvm write and
//! read, defined once. The guest agent, the devices and the oracle all depend on this crate,
//! so a format cannot drift between its writer and its reader.
//!
//! In data-path order:
//!
//! - [`control`]: the control page's register map, event codes and mailbox packing (agent →
//!   VMM), docs/control-protocol.md.
//! - [`agent`]: the STEP messages the agent sends through the mailbox, formatted and parsed
//!   here.
//! - [`stamp`]: the two self-describing 512-byte sector formats: [`stamp::file`] (file data
//!   the agent writes) and [`stamp::dma`] (generations the dmapin device writes).
//! - [`dmapin`]: the dmapin driver's virtqueue structs (driver ↔ device) and its ioctl ABI
//!   (agent ↔ driver), matching `guest-images/driver/virtio_dmapin.h`.
//! - [`journal`]: the block write journal (virtio-blk device → oracle), docs/journal-format.md.
//! - [`dma_log`]: the DMA log (dmapin device → oracle), docs/dma-log-format.md.
//!
//! Every format has a version constant; readers check it where the format carries it.
//! Fixed layouts are `#[repr(C)]` structs with zerocopy derives and layout tests. This crate
//! uses no KVM or virtio crate: it builds for the static musl agent.

#![warn(missing_docs)]

pub mod agent;
pub mod control;
pub mod dma_log;
pub mod dmapin;
pub mod journal;
pub mod stamp;

#[cfg(test)]
mod testdir;
