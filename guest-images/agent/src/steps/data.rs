//! Data file ops: `write PATH SIZE PATTERN`, `verify PATH SIZE PATTERN`, `read PATH`.

use super::args::{self, Pattern};
use super::{Action, Ctx, OpDef, StepError};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;

pub const OPS: &[OpDef] = &[
    OpDef {
        name: "write",
        usage: "write PATH SIZE PATTERN",
        parse: |a| parse(a, true),
    },
    OpDef {
        name: "verify",
        usage: "verify PATH SIZE PATTERN",
        parse: |a| parse(a, false),
    },
    OpDef {
        name: "read",
        usage: "read PATH",
        parse: |a| {
            let [path] = args::count(a)?;
            Ok(Box::new(ReadFile(path.to_string())))
        },
    },
];

fn parse(a: &[&str], write: bool) -> Result<Box<dyn Action>, String> {
    let [path, size, pattern] = args::count(a)?;
    let f = FileData {
        path: path.to_string(),
        size: args::size(size)?,
        pattern: Pattern::parse(pattern)?,
    };
    Ok(if write {
        Box::new(WriteFile(f))
    } else {
        Box::new(VerifyFile(f))
    })
}

#[derive(Debug)]
struct FileData {
    path: String,
    size: u64,
    pattern: Pattern,
}

/// Creates or truncates the file and writes it in IO_CHUNK write() calls.
#[derive(Debug)]
struct WriteFile(FileData);

impl Action for WriteFile {
    fn run(&self, cx: &mut Ctx) -> Result<String, StepError> {
        let FileData {
            path,
            size,
            pattern,
        } = &self.0;
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(path)
            .map_err(|e| StepError::io(format_args!("open {path}"), &e))?;
        let buf = cx.buffer();
        let mut pos = 0u64;
        let mut filled = 0; // bytes of `buf` already holding a uniform pattern
        while pos < *size {
            let n = (*size - pos).min(buf.len() as u64) as usize;
            if !pattern.is_uniform() || filled < n {
                pattern.fill(pos, &mut buf[..n]);
                filled = n;
            }
            f.write_all(&buf[..n])
                .map_err(|e| StepError::io(format_args!("write {path} at offset {pos}"), &e))?;
            pos += n as u64;
        }
        Ok(format!("bytes={size}"))
    }
}

/// Reads the first SIZE bytes back in IO_CHUNK read() calls and compares them.
#[derive(Debug)]
struct VerifyFile(FileData);

impl Action for VerifyFile {
    fn run(&self, cx: &mut Ctx) -> Result<String, StepError> {
        let FileData {
            path,
            size,
            pattern,
        } = &self.0;
        let mut f = File::open(path).map_err(|e| StepError::io(format_args!("open {path}"), &e))?;
        let buf = cx.buffer();
        let mut pos = 0u64;
        while pos < *size {
            let n = (*size - pos).min(buf.len() as u64) as usize;
            let got = read_full(&mut f, &mut buf[..n])
                .map_err(|e| StepError::io(format_args!("read {path} at offset {pos}"), &e))?;
            if let Some((i, want)) = pattern.first_mismatch(pos, &buf[..got]) {
                return Err(StepError::new(
                    libc::EIO,
                    format!(
                        "{path}: mismatch at offset {}: expected 0x{want:02x}, found 0x{:02x}",
                        pos + i as u64,
                        buf[i]
                    ),
                ));
            }
            if got < n {
                return Err(StepError::new(
                    libc::EIO,
                    format!(
                        "{path}: file ends at offset {}, expected {size} bytes",
                        pos + got as u64
                    ),
                ));
            }
            pos += n as u64;
        }
        Ok(format!("bytes={size}"))
    }
}

/// Reads the whole file in IO_CHUNK read() calls (the data is not looked at: the point is the
/// read's errno, e.g. EIO from a checksum failure).
#[derive(Debug)]
struct ReadFile(String);

impl Action for ReadFile {
    fn run(&self, cx: &mut Ctx) -> Result<String, StepError> {
        let path = &self.0;
        let mut f = File::open(path).map_err(|e| StepError::io(format_args!("open {path}"), &e))?;
        let buf = cx.buffer();
        let mut pos = 0u64;
        loop {
            match f.read(buf) {
                Ok(0) => break,
                Ok(n) => pos += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(StepError::io(
                        format_args!("read {path} at offset {pos}"),
                        &e,
                    ))
                }
            }
        }
        Ok(format!("bytes={pos}"))
    }
}

/// Reads until `buf` is full or end of file; returns the bytes read.
fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
