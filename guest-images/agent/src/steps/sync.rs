//! Flushing ops: `fsync PATH`, `fdatasync PATH`, `syncfs PATH`, `sync`,
//! `sync_file_range PATH OFFSET LEN`.

use super::args;
use super::fileio::{end, file_offset};
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
    OpDef {
        name: "sync_file_range",
        usage: "sync_file_range PATH OFFSET LEN (LEN 0: to the end of the file)",
        parse: |a| {
            let [path, offset, len] = args::count(a)?;
            let (offset, len) = (file_offset(offset, "offset")?, file_offset(len, "length")?);
            end(offset, len)?;
            Ok(Box::new(SyncRange {
                path: path.to_string(),
                offset,
                len,
            }))
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

/// sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER) on PATH opened read-only.
#[derive(Debug)]
struct SyncRange {
    path: String,
    offset: u64,
    len: u64,
}

impl Action for SyncRange {
    fn run(&self, _cx: &mut Ctx) -> Result<String, StepError> {
        let SyncRange { path, offset, len } = self;
        let f = File::open(path).map_err(|e| StepError::io(format_args!("open {path}"), &e))?;
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        sys::sync_file_range(&f, *offset, *len, flags).map_err(|e| {
            StepError::io(
                format_args!("sync_file_range {path} at offset {offset} length {len}"),
                &e,
            )
        })?;
        Ok(String::new())
    }
}
