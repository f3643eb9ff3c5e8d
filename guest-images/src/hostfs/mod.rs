//! Host files in the guest: `--put HOST[:GUEST]` copies files or directories into the run's
//! initramfs ([`put`]), `--share DIR[:GUEST]` attaches a read-only ext4 image made from a
//! directory and mounted in the guest ([`share`]). [`spec`] parses the arguments and checks
//! the guest paths against pinvm's own (`/init`, `/pinvm`, `/tools`, ...).
//!
//! Costs (docs/boot-time.md): every initramfs byte is unpacked by the guest kernel before
//! `/init` runs, ~2 s per MiB on kvm_pvm, so `--put` is for small things (a reproducer, a
//! selftest binary) and is capped at [`put::MAX_PUT_BYTES`]; a share costs one disk and is
//! read on demand.

pub mod put;
pub mod share;
pub mod spec;

pub use spec::{HostPath, PathKind};
