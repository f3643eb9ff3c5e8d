//! Messages of the guest agent that the host interprets: STEP events (control event code 6,
//! format version [`STEP_FORMAT_VERSION`]) and the `stamp` file pattern the agent writes.
//! Everything here is pure; see docs/control-protocol.md ("Steps", "STEP messages",
//! "The stamp pattern").
//!
//! The stamp pattern is defined once, in the agent's `guest-images/agent/src/stamp.rs`, which
//! this crate compiles as [`stamp`] through `#[path]` (the agent cannot depend on this crate,
//! and keeping the file in the agent's tree means the agent's staleness check, which scans only
//! `guest-images/agent`, sees changes to it). The functions below are the host's API.

#[path = "../../guest-images/agent/src/stamp.rs"]
pub mod stamp;

/// Version of the STEP message format described in docs/control-protocol.md.
pub const STEP_FORMAT_VERSION: u32 = 1;

/// FIEMAP extent flags (`fe_flags`, linux/fiemap.h) as reported in `extent` messages.
pub mod fiemap_flags {
    pub const LAST: u32 = 0x0000_0001;
    pub const UNKNOWN: u32 = 0x0000_0002;
    pub const DELALLOC: u32 = 0x0000_0004;
    pub const ENCODED: u32 = 0x0000_0008;
    pub const DATA_ENCRYPTED: u32 = 0x0000_0080;
    pub const NOT_ALIGNED: u32 = 0x0000_0100;
    pub const DATA_INLINE: u32 = 0x0000_0200;
    pub const DATA_TAIL: u32 = 0x0000_0400;
    pub const UNWRITTEN: u32 = 0x0000_0800;
    pub const MERGED: u32 = 0x0000_1000;
    pub const SHARED: u32 = 0x0000_2000;
}

/// One STEP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepReport {
    /// `step <index> <op> ok[ <detail>]`: the step succeeded.
    Done {
        index: u32,
        op: String,
        /// Op-specific `key=value` words separated by spaces (may be empty).
        detail: String,
    },
    /// `step <index> <op> err <errno> <message>`: the step failed; no later step ran.
    Failed {
        index: u32,
        op: String,
        errno: i32,
        message: String,
    },
    /// `extent <index> logical=<u64> physical=<u64> length=<u64> flags=0x<hex>`: one FIEMAP
    /// extent of the file of `fiemap` step `index` (all byte values; sent before that step's
    /// `Done`).
    Extent {
        index: u32,
        logical: u64,
        physical: u64,
        length: u64,
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

/// A STEP message that does not follow the format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed STEP message ({reason}): {message:?}")]
pub struct StepParseError {
    /// The whole message.
    pub message: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses the mailbox text of one STEP event (a single line; one trailing `\n` is tolerated).
pub fn parse_step(msg: &str) -> Result<StepReport, StepParseError> {
    let fail = |reason| StepParseError {
        message: msg.to_string(),
        reason,
    };
    let line = msg.strip_suffix('\n').unwrap_or(msg);
    if line.contains('\n') {
        return Err(fail("more than one line"));
    }
    let (kind, rest) = word(line);
    let (index, rest) = word(rest);
    let index: u32 = number(index).ok_or_else(|| fail("bad step index"))?;
    match kind {
        "step" => {
            let (op, rest) = word(rest);
            if op.is_empty() {
                return Err(fail("missing op"));
            }
            let op = op.to_string();
            match word(rest) {
                ("ok", detail) => Ok(StepReport::Done {
                    index,
                    op,
                    detail: detail.to_string(),
                }),
                ("err", rest) => {
                    let (errno, message) = word(rest);
                    let errno = errno.parse().map_err(|_| fail("bad errno"))?;
                    Ok(StepReport::Failed {
                        index,
                        op,
                        errno,
                        message: message.to_string(),
                    })
                }
                _ => Err(fail("expected ok or err after the op")),
            }
        }
        "extent" => {
            let mut fields = rest.split(' ');
            let mut field = |key: &str| {
                fields
                    .next()
                    .and_then(|w| w.strip_prefix(key))
                    .ok_or_else(|| fail("extent fields must be logical= physical= length= flags="))
            };
            let logical = field("logical=")?;
            let physical = field("physical=")?;
            let length = field("length=")?;
            let flags = field("flags=0x")?;
            if fields.next().is_some() {
                return Err(fail("trailing words after flags="));
            }
            let flags = u32::from_str_radix(flags, 16)
                .ok()
                .filter(|_| !flags.is_empty() && flags.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| fail("bad extent flags"))?;
            Ok(StepReport::Extent {
                index,
                logical: number(logical).ok_or_else(|| fail("bad extent logical"))?,
                physical: number(physical).ok_or_else(|| fail("bad extent physical"))?,
                length: number(length).ok_or_else(|| fail("bad extent length"))?,
                flags,
            })
        }
        _ => Err(fail("expected step or extent")),
    }
}

/// Splits off the first space-separated word (the rest is empty when there is no space).
fn word(s: &str) -> (&str, &str) {
    s.split_once(' ').unwrap_or((s, ""))
}

/// A plain decimal number (no sign, no spaces).
fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The sector at file offset `offset` (a multiple of 512) of a file the agent wrote with
/// pattern `stamp:<tag>`.
pub fn stamp_sector(tag: &str, offset: u64) -> [u8; 512] {
    stamp::stamp_sector(tag, offset)
}

/// Recognises a complete sector of a stamp file: its tag and the file offset it belongs at.
/// None for anything that is not exactly `stamp_sector(tag, offset)` (including the partial
/// last sector of a file whose size is not a multiple of 512; see [`stamp_first_mismatch`]).
pub fn decode_stamp(sector: &[u8]) -> Option<(String, u64)> {
    stamp::decode(sector).map(|(tag, off)| (tag.to_string(), off))
}

/// The bytes at file offsets `pos..pos + len` of a stamp file tagged `tag`.
pub fn stamp_bytes(tag: &str, pos: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    stamp::fill(tag, pos, &mut v);
    v
}

/// Compares `data` with the stamp file bytes at `pos..`: the index in `data` of the first
/// difference and the byte expected there, or None when all of `data` matches.
pub fn stamp_first_mismatch(tag: &str, pos: u64, data: &[u8]) -> Option<(usize, u8)> {
    stamp::first_mismatch(tag, pos, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(index: u32, op: &str, detail: &str) -> StepReport {
        StepReport::Done {
            index,
            op: op.into(),
            detail: detail.into(),
        }
    }

    /// These lines are the ones the agent's unit tests expect it to produce.
    #[test]
    fn display_is_the_wire_line() {
        for line in [
            "step 1 write ok bytes=1048576",
            "step 3 sync ok",
            "step 2 verify err 5 mismatch at offset 4096",
            "extent 7 logical=0 physical=8913920 length=262144 flags=0x1",
        ] {
            let r = parse_step(line).unwrap();
            assert_eq!(r.to_string(), line);
            assert_eq!(parse_step(&r.to_string()).unwrap(), r);
        }
    }

    #[test]
    fn good_lines() {
        assert_eq!(
            parse_step("step 1 write ok bytes=1048576").unwrap(),
            done(1, "write", "bytes=1048576")
        );
        assert_eq!(parse_step("step 3 sync ok").unwrap(), done(3, "sync", ""));
        assert_eq!(parse_step("step 3 sync ok\n").unwrap(), done(3, "sync", ""));
        let r = parse_step("step 7 fiemap ok extents=2").unwrap();
        assert_eq!(r.detail_field("extents"), Some("2"));
        assert_eq!(r.detail_field("extent"), None);
        assert_eq!(r.index(), 7);
        assert_eq!(
            parse_step("step 2 verify err 5 mismatch at offset 4096: expected 0xa5, found 0x00")
                .unwrap(),
            StepReport::Failed {
                index: 2,
                op: "verify".into(),
                errno: 5,
                message: "mismatch at offset 4096: expected 0xa5, found 0x00".into()
            }
        );
        assert_eq!(
            parse_step("step 4 fsync err 2 open /mnt/x: No such file or directory").unwrap(),
            StepReport::Failed {
                index: 4,
                op: "fsync".into(),
                errno: 2,
                message: "open /mnt/x: No such file or directory".into()
            }
        );
        let e =
            parse_step("extent 7 logical=0 physical=137363456 length=1048576 flags=0x1").unwrap();
        assert_eq!(
            e,
            StepReport::Extent {
                index: 7,
                logical: 0,
                physical: 137_363_456,
                length: 1_048_576,
                flags: fiemap_flags::LAST
            }
        );
        assert_eq!(e.index(), 7);
        assert_eq!(e.detail_field("extents"), None);
        let e = parse_step(&format!(
            "extent 0 logical={} physical=0 length=4096 flags=0x80a",
            u64::MAX
        ))
        .unwrap();
        assert!(matches!(
            e,
            StepReport::Extent {
                logical: u64::MAX,
                flags: 0x80a,
                ..
            }
        ));
    }

    #[test]
    fn malformed_lines() {
        for bad in [
            "",
            "step",
            "step x write ok",
            "step -1 write ok",
            "step 1",
            "step 1 write",
            "step 1 write done",
            "step 1  ok",
            "step 1 write err",
            "step 1 write err x msg",
            "step 99999999999 write ok",
            "step 1 sync ok\nstep 2 sync ok",
            "Step 1 sync ok",
            "extent 1",
            "extent 1 logical=0 physical=0 length=0",
            "extent 1 logical=0 physical=0 length=0 flags=1",
            "extent 1 logical=0 physical=0 length=0 flags=0x",
            "extent 1 logical=0 physical=0 length=0 flags=0x+1",
            "extent 1 logical=0 physical=0 length=0 flags=0x100000000",
            "extent 1 physical=0 logical=0 length=0 flags=0x0",
            "extent 1 logical=-1 physical=0 length=0 flags=0x0",
            "extent 1 logical=0 physical=0 length=18446744073709551616 flags=0x0",
            "extent 1 logical=0 physical=0 length=0 flags=0x0 extra",
            "extent 1 logical=0  physical=0 length=0 flags=0x0",
            "log something",
        ] {
            let e = parse_step(bad).expect_err(bad);
            assert_eq!(e.message, bad);
            assert!(e.to_string().starts_with("malformed STEP message ("), "{e}");
        }
    }

    #[test]
    fn stamp_api() {
        let s = stamp_sector("job-1", 4096);
        assert_eq!(&s[..26], b"PINVM-FILE job-1 off=4096\n");
        assert!(s[26..].iter().all(|&b| b == 0xa5 ^ 8));
        assert_eq!(decode_stamp(&s), Some(("job-1".to_string(), 4096)));
        assert_eq!(decode_stamp(&[0; 512]), None);
        let file = stamp_bytes("job-1", 0, 3000);
        assert_eq!(file[..512], stamp_sector("job-1", 0));
        assert_eq!(file[2560..], stamp_sector("job-1", 2560)[..440]);
        assert_eq!(
            decode_stamp(&file[1024..1536]),
            Some(("job-1".to_string(), 1024))
        );
        assert_eq!(stamp_first_mismatch("job-1", 100, &file[100..]), None);
        let mut bad = file.clone();
        bad[2999] = 0;
        assert_eq!(
            stamp_first_mismatch("job-1", 0, &bad),
            Some((2999, 0xa5 ^ 5))
        );
    }
}
