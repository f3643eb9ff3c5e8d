//! pinvm's guest-visible devices: the 16550 console ([`serial`]), the i8042 reset line
//! ([`i8042`]), the agent's control page ([`control`]), virtio-blk over a copy-on-write disk
//! with a write journal ([`block`]) and the dmapin DMA device with its log ([`dmapin`]).
//!
//! The virtio devices are transport-neutral ([`virtio::VirtioDevice`], the device thread in
//! [`virtio::worker`]); [`virtio`] also holds the two transports they sit behind: virtio-mmio
//! for our VMM and vhost-user for QEMU. [`bus`] dispatches port I/O and MMIO exits to devices;
//! [`clock`] is the clock every log is stamped with. The formats the devices write are in
//! `proto`.

#![warn(missing_docs)]

pub mod block;
pub mod bus;
pub mod clock;
pub mod control;
pub mod dmapin;
pub mod i8042;
pub mod serial;
pub mod terminal;
pub mod virtio;
