//! Flushing ops: `fsync PATH`, `fdatasync PATH`, `syncfs PATH`, `sync`.

use super::args;
use super::{Action, Ctx, OpDef, StepError};
use crate::sys;
use std::fs::File;

pub const OPS: &[OpDef] = &[
    OpDef {
        name: "fsync",
        usage: "fsync PATH",
        parse: |a| on_file(a, How::Fsync),
    },
    OpDef {
        name: "fdatasync",
        usage: "fdatasync PATH",
        parse: |a| on_file(a, How::Fdatasync),
    },
    OpDef {
        name: "syncfs",
        usage: "syncfs PATH",
        parse: |a| on_file(a, How::Syncfs),
    },
    OpDef {
        name: "sync",
        usage: "sync",
        parse: |a| {
            args::count::<0>(a)?;
            Ok(Box::new(Sync))
        },
    },
];

#[derive(Clone, Copy, Debug)]
enum How {
    Fsync,
    Fdatasync,
    Syncfs,
}

fn on_file(a: &[&str], how: How) -> Result<Box<dyn Action>, String> {
    let [path] = args::count(a)?;
    Ok(Box::new(SyncFile {
        path: path.to_string(),
        how,
    }))
}

/// Opens PATH read-only (files and directories alike) and flushes it or its filesystem.
#[derive(Debug)]
struct SyncFile {
    path: String,
    how: How,
}

impl Action for SyncFile {
    fn run(&self, _cx: &mut Ctx) -> Result<String, StepError> {
        let path = &self.path;
        let f = File::open(path).map_err(|e| StepError::io(format_args!("open {path}"), &e))?;
        let (name, r) = match self.how {
            How::Fsync => ("fsync", f.sync_all()),
            How::Fdatasync => ("fdatasync", f.sync_data()),
            How::Syncfs => ("syncfs", sys::syncfs(&f)),
        };
        r.map_err(|e| StepError::io(format_args!("{name} {path}"), &e))?;
        Ok(String::new())
    }
}

#[derive(Debug)]
struct Sync;

impl Action for Sync {
    fn run(&self, _cx: &mut Ctx) -> Result<String, StepError> {
        sys::sync();
        Ok(String::new())
    }
}
