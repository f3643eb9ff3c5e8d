//! `fiemap PATH [nosync|settled]`: reports where the file's data is on its device
//! (FS_IOC_FIEMAP).

use super::{Action, Ctx, OpDef, StepError};
use crate::sys::{self, FiemapExtent, FIEMAP_EXTENT_LAST, FIEMAP_FLAG_SYNC};
use proto::agent::StepReport;
use std::fs::File;

pub const OPS: &[OpDef] = &[OpDef {
    name: "fiemap",
    usage: "fiemap PATH [nosync|settled]",
    parse: |a| {
        let (path, mode) = match a {
            [path] => (path, Mode::Sync),
            [path, w] if *w == "nosync" => (path, Mode::NoSync),
            [path, w] if *w == "settled" => (path, Mode::Settled),
            [_, w] => return Err(format!("unknown word {w:?}: expected nosync or settled")),
            _ => return Err(format!("expected 1 or 2 arguments, found {}", a.len())),
        };
        Ok(Box::new(Fiemap {
            path: path.to_string(),
            mode,
        }))
    },
}];

/// Maps the whole file, FIEMAP_BATCH extents per call, and sends one `extent` message per
/// extent before the step's `ok extents=<count>` line.
#[derive(Debug)]
struct Fiemap {
    path: String,
    mode: Mode,
}

/// How the file is brought to the state that is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// FIEMAP_FLAG_SYNC: delayed allocations get their blocks first.
    Sync,
    /// Without: a file whose writeback fails can still be mapped as it is on disk.
    NoSync,
    /// sync(2) then map without FIEMAP_FLAG_SYNC, until two maps in a row agree (at most
    /// [`SETTLE_ROUNDS`]): a filesystem may move the file at its next writeback (6.1 btrfs
    /// rewrites pages dirtied behind its back to a new extent from its fix-up worker), and
    /// the map must describe what the disk holds when the guest stops.
    Settled,
}

/// Most sync + map rounds of `settled`.
const SETTLE_ROUNDS: u32 = 8;

/// The file's extents: (logical, physical, length, flags) is what is compared and reported.
fn map_file(f: &File, path: &str, sync_flag: bool) -> Result<Vec<FiemapExtent>, StepError> {
    let mut out = Vec::new();
    let mut start = 0u64;
    let mut flags = if sync_flag { FIEMAP_FLAG_SYNC } else { 0 };
    loop {
        let extents = sys::fiemap(f, start, flags)
            .map_err(|e| StepError::io(format_args!("FS_IOC_FIEMAP {path}"), &e))?;
        flags = 0; // synced by the first call
        let Some(last) = extents.last().copied() else {
            break;
        };
        out.extend_from_slice(&extents);
        let next = last.logical.saturating_add(last.length);
        if last.flags & FIEMAP_EXTENT_LAST != 0 || next <= start {
            break;
        }
        start = next;
    }
    Ok(out)
}

fn same_map(a: &[FiemapExtent], b: &[FiemapExtent]) -> bool {
    let key = |e: &FiemapExtent| (e.logical, e.physical, e.length, e.flags);
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| key(x) == key(y))
}

/// `extent <index> logical=<bytes> physical=<bytes> length=<bytes> flags=0x<hex>`
pub fn extent_line(index: u32, e: &FiemapExtent) -> String {
    StepReport::Extent {
        index,
        logical: e.logical,
        physical: e.physical,
        length: e.length,
        flags: e.flags,
    }
    .to_string()
}

impl Action for Fiemap {
    fn run(&self, cx: &mut Ctx) -> Result<String, StepError> {
        let path = &self.path;
        let f = File::open(path).map_err(|e| StepError::io(format_args!("open {path}"), &e))?;
        let (extents, detail) = match self.mode {
            Mode::Sync => (map_file(&f, path, true)?, String::new()),
            Mode::NoSync => (map_file(&f, path, false)?, String::new()),
            Mode::Settled => {
                sys::sync();
                let mut prev = map_file(&f, path, false)?;
                let mut rounds = 1;
                loop {
                    sys::sync();
                    let now = map_file(&f, path, false)?;
                    rounds += 1;
                    if same_map(&prev, &now) || rounds >= SETTLE_ROUNDS {
                        let settled = same_map(&prev, &now);
                        break (now, format!(" rounds={rounds} settled={settled}"));
                    }
                    prev = now;
                }
            }
        };
        for e in &extents {
            cx.report(&extent_line(cx.index(), e));
        }
        Ok(format!("extents={}{detail}", extents.len()))
    }
}
