//! Messages of the guest agent that the host interprets: STEP events (control event code 6,
//! [`crate::control::ControlEventKind::Step`], format version [`STEP_FORMAT_VERSION`]). The
//! agent formats its messages with [`StepReport`]'s `Display` and the host parses them with
//! [`parse_step`]: one definition for both sides. See docs/control-protocol.md ("Steps",
//! "STEP messages").

mod parse;

pub use parse::{parse_step, StepParseError};

/// Version of the STEP message format described in docs/control-protocol.md.
pub const STEP_FORMAT_VERSION: u32 = 1;

/// FIEMAP extent flags (`fe_flags`, linux/fiemap.h) as reported in `extent` messages.
pub mod fiemap_flags {
    /// The last extent of the file.
    pub const LAST: u32 = 0x0000_0001;
    /// Location not known yet.
    pub const UNKNOWN: u32 = 0x0000_0002;
    /// Delayed allocation: no blocks yet (implies UNKNOWN).
    pub const DELALLOC: u32 = 0x0000_0004;
    /// Data is compressed or otherwise encoded.
    pub const ENCODED: u32 = 0x0000_0008;
    /// Data is encrypted.
    pub const DATA_ENCRYPTED: u32 = 0x0000_0080;
    /// Offsets are not block aligned.
    pub const NOT_ALIGNED: u32 = 0x0000_0100;
    /// Data is inline with metadata.
    pub const DATA_INLINE: u32 = 0x0000_0200;
    /// Data is packed into a block with other files' tails.
    pub const DATA_TAIL: u32 = 0x0000_0400;
    /// Allocated but unwritten: reads as zeros.
    pub const UNWRITTEN: u32 = 0x0000_0800;
    /// Merged from several file-system extents.
    pub const MERGED: u32 = 0x0000_1000;
    /// Shared with another file (reflink, snapshot).
    pub const SHARED: u32 = 0x0000_2000;
}

/// One STEP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepReport {
    /// `step <index> <op> ok[ <detail>]`: the step succeeded.
    Done {
        /// The step's index (1 for the first step).
        index: u32,
        /// The op name, e.g. `write`.
        op: String,
        /// Op-specific `key=value` words separated by spaces (may be empty).
        detail: String,
    },
    /// `step <index> <op> err <errno> <message>`: the step failed; no later step ran.
    Failed {
        /// The step's index.
        index: u32,
        /// The op name.
        op: String,
        /// The errno the step failed with (never 0).
        errno: i32,
        /// What went wrong, one line.
        message: String,
    },
    /// `extent <index> logical=<u64> physical=<u64> length=<u64> flags=0x<hex>`: one FIEMAP
    /// extent of the file of `fiemap` step `index` (all byte values; sent before that step's
    /// `Done`).
    Extent {
        /// The index of the `fiemap` step.
        index: u32,
        /// File offset of the extent.
        logical: u64,
        /// Where the extent starts on the device, as FIEMAP reports it.
        physical: u64,
        /// Length of the extent.
        length: u64,
        /// [`fiemap_flags`].
        flags: u32,
    },
}

/// The wire line the report was parsed from (`parse_step(&r.to_string()) == Ok(r)`).
impl std::fmt::Display for StepReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepReport::Done { index, op, detail } if detail.is_empty() => {
                write!(f, "step {index} {op} ok")
            }
            StepReport::Done { index, op, detail } => write!(f, "step {index} {op} ok {detail}"),
            StepReport::Failed {
                index,
                op,
                errno,
                message,
            } => write!(f, "step {index} {op} err {errno} {message}"),
            StepReport::Extent {
                index,
                logical,
                physical,
                length,
                flags,
            } => write!(
                f,
                "extent {index} logical={logical} physical={physical} length={length} \
                 flags={flags:#x}"
            ),
        }
    }
}

impl StepReport {
    /// A `Failed` report whose message is made one line (line breaks become spaces), as the
    /// wire format needs.
    pub fn failed(index: u32, op: &str, errno: i32, message: &str) -> Self {
        StepReport::Failed {
            index,
            op: op.to_string(),
            errno,
            message: message.replace(['\n', '\r'], " "),
        }
    }

    /// The index of the step the message belongs to.
    pub fn index(&self) -> u32 {
        match self {
            Self::Done { index, .. } | Self::Failed { index, .. } | Self::Extent { index, .. } => {
                *index
            }
        }
    }

    /// The value of `key=value` in the detail of a `Done` report (e.g. `extents` of `fiemap`).
    pub fn detail_field(&self, key: &str) -> Option<&str> {
        let Self::Done { detail, .. } = self else {
            return None;
        };
        detail
            .split(' ')
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    }
}

#[cfg(test)]
mod tests;
