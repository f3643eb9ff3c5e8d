//! Changes to existing files in place: `pwrite PATH OFFSET SIZE PATTERN [direct]`,
//! `truncate PATH SIZE`, `punch PATH OFFSET LEN`.

use super::args::{self, Pattern};
use super::{Action, Ctx, OpDef, StepError, DIRECT_ALIGN};
use crate::sys;
use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

pub const OPS: &[OpDef] = &[
    OpDef {
        name: "pwrite",
        usage: "pwrite PATH OFFSET SIZE PATTERN [direct] (with direct, OFFSET and SIZE multiples \
                of 4096)",
        parse: parse_pwrite,
    },
    OpDef {
        name: "truncate",
        usage: "truncate PATH SIZE",
        parse: |a| {
            let [path, size] = args::count(a)?;
            Ok(Box::new(Truncate {
                path: path.to_string(),
                size: file_offset(size, "size")?,
            }))
        },
    },
    OpDef {
        name: "punch",
        usage: "punch PATH OFFSET LEN (LEN not 0)",
        parse: |a| {
            let [path, offset, len] = args::count(a)?;
            let (offset, len) = (file_offset(offset, "offset")?, file_offset(len, "length")?);
            if len == 0 {
                return Err("bad length \"0\": the hole must not be empty".into());
            }
            end(offset, len)?;
            Ok(Box::new(Punch {
                path: path.to_string(),
                offset,
                len,
            }))
        },
    },
];

/// A SIZE word that is a valid file offset or length (at most i64::MAX, the largest loff_t).
pub fn file_offset(word: &str, what: &str) -> Result<u64, String> {
    let v = args::size(word)?;
    if v > i64::MAX as u64 {
        return Err(format!(
            "bad {what} {word:?}: larger than the largest file offset"
        ));
    }
    Ok(v)
}

/// Checks that `offset + len` is still a file offset.
pub fn end(offset: u64, len: u64) -> Result<u64, String> {
    offset
        .checked_add(len)
        .filter(|&e| e <= i64::MAX as u64)
        .ok_or_else(|| format!("offset {offset} + length {len} is beyond the largest file offset"))
}

fn parse_pwrite(a: &[&str]) -> Result<Box<dyn Action>, String> {
    let (fixed, direct) = match a {
        [p, o, s, pat] => ([*p, *o, *s, *pat], false),
        [p, o, s, pat, flag] => {
            if *flag != "direct" {
                return Err(format!("bad flag {flag:?}: expected direct or nothing"));
            }
            ([*p, *o, *s, *pat], true)
        }
        _ => return Err(format!("expected 4 or 5 arguments, found {}", a.len())),
    };
    let [path, offset_word, size_word, pattern] = fixed;
    let offset = file_offset(offset_word, "offset")?;
    let size = file_offset(size_word, "size")?;
    end(offset, size)?;
    if direct {
        for (v, word, what) in [(offset, offset_word, "offset"), (size, size_word, "size")] {
            if v % DIRECT_ALIGN as u64 != 0 {
                return Err(format!(
                    "bad {what} {word:?}: with direct it must be a multiple of {DIRECT_ALIGN}"
                ));
            }
        }
    }
    Ok(Box::new(Pwrite {
        path: path.to_string(),
        offset,
        size,
        pattern: Pattern::parse(pattern)?,
        direct,
    }))
}

/// Opens an existing file O_WRONLY (no O_CREAT, no O_TRUNC; O_DIRECT with `direct`) and writes
/// SIZE bytes of the pattern's bytes for file offsets OFFSET.. in IO_CHUNK pwrite() calls.
#[derive(Debug)]
struct Pwrite {
    path: String,
    offset: u64,
    size: u64,
    pattern: Pattern,
    direct: bool,
}

impl Action for Pwrite {
    fn run(&self, cx: &mut Ctx) -> Result<String, StepError> {
        let Pwrite {
            path,
            offset,
            size,
            pattern,
            direct,
        } = self;
        let mut opts = OpenOptions::new();
        opts.write(true);
        if *direct {
            opts.custom_flags(libc::O_DIRECT);
        }
        let f = opts
            .open(path)
            .map_err(|e| StepError::io(format_args!("open {path}"), &e))?;
        // The shared buffer is DIRECT_ALIGN-aligned and IO_CHUNK (a multiple of DIRECT_ALIGN)
        // long, so with `direct` every chunk is aligned in memory, in the file and in length.
        let buf = cx.buffer();
        let mut done = 0u64;
        let mut filled = 0; // bytes of `buf` already holding a uniform pattern
        while done < *size {
            let pos = offset + done;
            let n = (*size - done).min(buf.len() as u64) as usize;
            if !pattern.is_uniform() || filled < n {
                pattern.fill(pos, &mut buf[..n]);
                filled = n;
            }
            let mut k = 0;
            while k < n {
                match f.write_at(&buf[k..n], pos + k as u64) {
                    Ok(0) => {
                        let e = io::Error::from(io::ErrorKind::WriteZero);
                        let at = pos + k as u64;
                        return Err(StepError::io(
                            format_args!("pwrite {path} at offset {at}"),
                            &e,
                        ));
                    }
                    Ok(w) => k += w,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let at = pos + k as u64;
                        return Err(StepError::io(
                            format_args!("pwrite {path} at offset {at}"),
                            &e,
                        ));
                    }
                }
            }
            done += n as u64;
        }
        Ok(format!("bytes={size}"))
    }
}

/// The path as a C string (a NUL byte in it cannot name a file: EINVAL).
pub fn c_path(path: &str) -> Result<CString, StepError> {
    CString::new(path)
        .map_err(|_| StepError::new(libc::EINVAL, format!("{path:?}: NUL byte in the path")))
}

/// truncate(2) to SIZE.
#[derive(Debug)]
struct Truncate {
    path: String,
    size: u64,
}

impl Action for Truncate {
    fn run(&self, _cx: &mut Ctx) -> Result<String, StepError> {
        let path = &self.path;
        sys::truncate(&c_path(path)?, self.size)
            .map_err(|e| StepError::io(format_args!("truncate {path} to {}", self.size), &e))?;
        Ok(String::new())
    }
}

/// fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) of OFFSET..OFFSET+LEN.
#[derive(Debug)]
struct Punch {
    path: String,
    offset: u64,
    len: u64,
}

impl Action for Punch {
    fn run(&self, _cx: &mut Ctx) -> Result<String, StepError> {
        let Punch { path, offset, len } = self;
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| StepError::io(format_args!("open {path}"), &e))?;
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        sys::fallocate(&f, mode, *offset, *len).map_err(|e| {
            StepError::io(
                format_args!("fallocate(PUNCH_HOLE) {path} at offset {offset} length {len}"),
                &e,
            )
        })?;
        Ok(String::new())
    }
}
