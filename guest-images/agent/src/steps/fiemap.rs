//! `fiemap PATH [nosync]`: reports where the file's data is on its device (FS_IOC_FIEMAP).

use super::{Action, Ctx, OpDef, StepError};
use crate::sys::{self, FiemapExtent, FIEMAP_EXTENT_LAST, FIEMAP_FLAG_SYNC};
use proto::agent::StepReport;
use std::fs::File;

pub const OPS: &[OpDef] = &[OpDef {
    name: "fiemap",
    usage: "fiemap PATH [nosync]",
    parse: |a| {
        let (path, sync) = match a {
            [path] => (path, true),
            [path, w] if *w == "nosync" => (path, false),
            [_, w] => return Err(format!("unknown word {w:?}: expected nosync")),
            _ => return Err(format!("expected 1 or 2 arguments, found {}", a.len())),
        };
        Ok(Box::new(Fiemap {
            path: path.to_string(),
            sync,
        }))
    },
}];

/// Maps the whole file with FIEMAP_FLAG_SYNC (so delayed allocations get their blocks first;
/// `nosync`: without, so a file whose writeback fails can still be mapped as it is on disk),
/// FIEMAP_BATCH extents per call, and sends one `extent` message per extent before the step's
/// `ok extents=<count>` line.
#[derive(Debug)]
struct Fiemap {
    path: String,
    sync: bool,
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
        let mut start = 0u64;
        let mut flags = if self.sync { FIEMAP_FLAG_SYNC } else { 0 };
        let mut count = 0u64;
        loop {
            let extents = sys::fiemap(&f, start, flags)
                .map_err(|e| StepError::io(format_args!("FS_IOC_FIEMAP {path}"), &e))?;
            flags = 0; // synced by the first call
            let Some(last) = extents.last().copied() else {
                break;
            };
            for e in &extents {
                cx.report(&extent_line(cx.index(), e));
            }
            count += extents.len() as u64;
            let next = last.logical.saturating_add(last.length);
            if last.flags & FIEMAP_EXTENT_LAST != 0 || next <= start {
                break;
            }
            start = next;
        }
        Ok(format!("extents={count}"))
    }
}
