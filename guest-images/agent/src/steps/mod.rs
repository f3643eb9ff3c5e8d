//! In-process workload steps: `/pinvm/steps` (docs/control-protocol.md, "Steps").
//!
//! In the guest every syscall and page fault is slow and a new process costs about half a
//! second, so test workloads run inside the agent as a list of steps. The whole file is parsed
//! before anything runs (a typo is reported as a job error, not half-way through a test).
//!
//! Growing the engine: each family of ops is one module exporting `OPS`, a table of [`OpDef`]
//! (name, usage, parse function). A parse function checks the op's arguments and returns a
//! boxed [`Action`]; its `run` does the work and returns the detail of the `ok` line, or a
//! [`StepError`]. State that must live from one step to a later one (mappings, open files)
//! belongs in [`Ctx`].

mod args;
mod data;
mod dmapin;
mod dmapin_ioctl;
mod fiemap;
mod fileio;
mod mapping;
mod misc;
mod races;
mod sync;

use crate::sys::Mapping;
use proto::agent::StepReport;
use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;

pub const STEPS_PATH: &str = "/pinvm/steps";

/// Checks an op's arguments (the words after its name) and builds the step's action.
pub type ParseFn = fn(&[&str]) -> Result<Box<dyn Action>, String>;

/// An op: its name in /pinvm/steps, its arguments for error messages, and its parser.
pub struct OpDef {
    pub name: &'static str,
    pub usage: &'static str,
    pub parse: ParseFn,
}

/// All op families; the first definition of a name wins (names are unique, see the test).
const FAMILIES: [&[OpDef]; 8] = [
    data::OPS,
    fileio::OPS,
    sync::OPS,
    fiemap::OPS,
    mapping::OPS,
    races::OPS,
    dmapin::OPS,
    misc::OPS,
];

fn lookup(name: &str) -> Option<&'static OpDef> {
    FAMILIES
        .iter()
        .flat_map(|f| f.iter())
        .find(|d| d.name == name)
}

/// What a parsed step does.
pub trait Action: fmt::Debug {
    /// Runs the step. Ok carries the detail of the `ok` line (`key=value` words or empty).
    fn run(&self, cx: &mut Ctx) -> Result<String, StepError>;
}

/// A failed step: errno (never 0) and a one-line message.
#[derive(Debug, PartialEq, Eq)]
pub struct StepError {
    pub errno: i32,
    pub message: String,
}

impl StepError {
    pub fn new(errno: i32, message: String) -> Self {
        StepError { errno, message }
    }

    /// `<what>: <strerror>` with the error's errno (EIO for errors that carry none, such as a
    /// short write).
    pub fn io(what: impl fmt::Display, e: &io::Error) -> Self {
        let errno = e.raw_os_error().filter(|&n| n != 0).unwrap_or(libc::EIO);
        StepError::new(errno, format!("{what}: {}", crate::describe(e)))
    }

    /// Names the kernel option a system call needs when it failed with ENOSYS (the guest
    /// kernel was built without it): appends ` (the kernel lacks <config>)`.
    pub fn enosys_needs(mut self, config: &str) -> Self {
        if self.errno == libc::ENOSYS {
            self.message
                .push_str(&format!(" (the kernel lacks {config})"));
        }
        self
    }
}

/// One line of /pinvm/steps.
#[derive(Debug)]
pub struct Step {
    /// 1 for the first step, counting steps only (not blank or comment lines).
    pub index: u32,
    pub op: &'static str,
    pub action: Box<dyn Action>,
}

/// Parses /pinvm/steps: one step per line, whitespace-separated words, a word starting with
/// `#` starts a comment. Errors name the line.
pub fn parse(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let words: Vec<&str> = line
            .split_ascii_whitespace()
            .take_while(|w| !w.starts_with('#'))
            .collect();
        let Some((&op, args)) = words.split_first() else {
            continue;
        };
        let at = format!("{STEPS_PATH} line {}", n + 1);
        let def = lookup(op).ok_or_else(|| format!("{at}: unknown op {op:?}"))?;
        let action =
            (def.parse)(args).map_err(|e| format!("{at}: {op}: {e} (usage: {})", def.usage))?;
        steps.push(Step {
            index: steps.len() as u32 + 1,
            op: def.name,
            action,
        });
    }
    Ok(steps)
}

/// Size of the I/O buffer shared by the data steps (one allocation for the whole run).
pub const IO_CHUNK: usize = 64 * 1024;

/// Alignment O_DIRECT asks of buffers (a page covers every logical block size we use).
pub const DIRECT_ALIGN: usize = 4096;

/// A zeroed heap buffer of `len` bytes starting at a DIRECT_ALIGN-aligned address (a Vec with
/// room to spare, used from the first aligned byte on: no unsafe allocation code).
#[derive(Debug, Default)]
pub struct AlignedBuf {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize) -> AlignedBuf {
        let bytes = vec![0u8; len + DIRECT_ALIGN];
        let start = bytes.as_ptr().align_offset(DIRECT_ALIGN);
        AlignedBuf { bytes, start, len }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.start + self.len]
    }
}

/// A pinned region of /dev/dmapin (`pin` step).
#[derive(Clone, Copy, Debug)]
pub struct Region {
    /// The driver's region id (never 0).
    pub id: u32,
    pub npinned: u32,
}

/// What steps share while they run. When the run ends, fields drop in this order: first
/// /dev/dmapin is closed (the driver releases the regions still pinned, with DIRTY_LOCK), then
/// the mappings are unmapped.
pub struct Ctx<'a> {
    index: u32,
    sink: &'a mut dyn FnMut(u32, &str),
    buf: AlignedBuf,
    /// /dev/dmapin, opened by the first `pin` step.
    dmapin: Option<File>,
    /// Regions by name (`pin` adds, `release` removes).
    regions: HashMap<String, Region>,
    /// Mappings by name (`mmap` adds, `munmap` removes).
    maps: HashMap<String, Mapping>,
}

impl Ctx<'_> {
    /// Index of the running step.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Sends an extra STEP message (status 0) for the running step, e.g. an extent.
    pub fn report(&mut self, line: &str) {
        (self.sink)(0, line);
    }

    /// The I/O buffer: IO_CHUNK bytes at a DIRECT_ALIGN-aligned address (usable for
    /// O_DIRECT), allocated on first use and kept for later steps (pages already touched stay
    /// mapped: no new page faults).
    pub fn buffer(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = AlignedBuf::new(IO_CHUNK);
        }
        self.buf.as_mut_slice()
    }

    /// The mapping named `name` by an earlier `mmap` step.
    pub fn map(&self, name: &str) -> Result<&Mapping, StepError> {
        self.maps.get(name).ok_or_else(|| {
            StepError::new(
                libc::ENOENT,
                format!(
                    "no mapping named {name} (no earlier mmap step made it, or it was unmapped)"
                ),
            )
        })
    }

    /// /dev/dmapin, opened read-write on first use.
    pub fn dmapin(&mut self) -> Result<&File, StepError> {
        if self.dmapin.is_none() {
            let dev = proto::dmapin::ioctl::DEVICE;
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(dev)
                .map_err(|e| StepError::io(format_args!("cannot open {dev}"), &e))?;
            self.dmapin = Some(f);
        }
        Ok(self.dmapin.as_ref().expect("opened above"))
    }

    /// The open /dev/dmapin and the region named `name` by an earlier `pin` step.
    pub fn region(&self, name: &str) -> Result<(&File, Region), StepError> {
        match (&self.dmapin, self.regions.get(name)) {
            (Some(dev), Some(r)) => Ok((dev, *r)),
            _ => Err(StepError::new(
                libc::ENOENT,
                format!("no region named {name} (no earlier pin step made it, or it was released)"),
            )),
        }
    }
}

/// `step <index> <op> ok[ <detail>]` (formatted by [`StepReport`], which the host parses).
pub fn ok_line(index: u32, op: &str, detail: &str) -> String {
    StepReport::Done {
        index,
        op: op.to_string(),
        detail: detail.to_string(),
    }
    .to_string()
}

/// `step <index> <op> err <errno> <message>` (line breaks in the message become spaces).
pub fn err_line(index: u32, op: &str, e: &StepError) -> String {
    StepReport::failed(index, op, e.errno, &e.message).to_string()
}

/// Runs the steps in order, sending one STEP message per step to `sink(status, line)` (plus
/// any a step sends itself, before its own), and printing each step's line on the console
/// when `verbose`. Stops at the first failure and returns its index.
/// Runs the steps in order, reporting each. The first failure stops the run, unless
/// `keep_going`: then every step runs and the first failure is returned at the end.
pub fn run(
    steps: &[Step],
    verbose: bool,
    keep_going: bool,
    sink: &mut dyn FnMut(u32, &str),
) -> Result<(), u32> {
    let mut cx = Ctx {
        index: 0,
        sink,
        buf: AlignedBuf::default(),
        dmapin: None,
        regions: HashMap::new(),
        maps: HashMap::new(),
    };
    let mut first_failure = None;
    for step in steps {
        cx.index = step.index;
        let result = step.action.run(&mut cx);
        let (status, line) = match &result {
            Ok(detail) => (0, ok_line(step.index, step.op, detail)),
            Err(e) => (e.errno as u32, err_line(step.index, step.op, e)),
        };
        (cx.sink)(status, &line);
        if verbose {
            say!("{line}");
        }
        if result.is_err() {
            if !keep_going {
                return Err(step.index);
            }
            first_failure.get_or_insert(step.index);
        }
    }
    first_failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests;
