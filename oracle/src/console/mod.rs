//! The guest console, read like syzkaller reads it: kernel crash reports with stable titles
//! ([`parse`]) and the filesystems' own errors and warnings ([`fs_messages`]).
//!
//! Titles follow syzkaller's conventions (its `pkg/report` package, github.com/google/syzkaller):
//! the report's header names the crash class, the "guilty"
//! function is the one in the header (WARNING, KASAN) or else the first frame of `RIP:` / the
//! call trace that is not a reporting, locking, scheduling or interrupt helper, and nothing
//! that changes between builds (line numbers, addresses, offsets, PIDs, CPU numbers) is kept.
//! One difference: `kernel BUG at fs/ext4/inode.c:2620!` keeps its file ("kernel BUG at
//! fs/ext4/inode.c"), which for the pinned-page problem says more than the function.

mod excerpt;
mod frames;
mod fs;
mod headers;
mod lines;
mod lockdep;
mod normalize;
mod pick;
mod region;
mod report;
mod rules;
mod sanitizers;
mod skip;
mod stack;
mod title;

pub use fs::{fs_messages, FsMessage, FsSeverity};
pub use report::parse;

use serde::Serialize;

/// What kind of report a console shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashKind {
    /// `WARNING: CPU: N PID: P at file:line func+...` (WARN_ON and friends) and lockdep's
    /// `WARNING: possible circular locking dependency detected` family.
    Warning,
    /// `kernel BUG at file:line!` and the other `BUG: ...` reports (except those below).
    Bug,
    /// An oops with no more specific header (`Oops: 0000 [#1]`, `invalid opcode:`,
    /// `divide error:`, `PANIC: double fault`).
    Oops,
    /// `general protection fault` (`Oops: general protection fault` on 6.12).
    GeneralProtection,
    /// `BUG: unable to handle page fault`, `BUG: kernel NULL pointer dereference`.
    PageFault,
    /// `BUG: KASAN: ...` (and `BUG: KFENCE: ...`, `BUG: KMSAN: ...`).
    Kasan,
    /// `UBSAN: ... in file:line:col`.
    Ubsan,
    /// `INFO: task X blocked for more than N seconds.`
    HungTask,
    /// `rcu: INFO: rcu_sched self-detected stall on CPU` / `... detected stalls on CPUs/tasks`.
    RcuStall,
    /// `watchdog: BUG: soft lockup - CPU#N stuck for Ns!`
    SoftLockup,
    /// `Kernel panic - not syncing: ...` that is not the consequence of an earlier report.
    Panic,
}

/// One crash report found in a console.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CrashReport {
    /// The report's class, from its header.
    pub kind: CrashKind,
    /// Stable syzkaller-style title, e.g. "WARNING in ext4_dirty_folio", "kernel BUG at
    /// fs/ext4/inode.c", "BUG: unable to handle page fault in foo", "general protection fault
    /// in foo", "KASAN: use-after-free Read in foo", "UBSAN: array-index-out-of-bounds in
    /// fs/x.c", "INFO: task hung in foo", "INFO: rcu detected stall in foo", "BUG: soft lockup
    /// in foo", "kernel panic: sysrq triggered crash". No line numbers, addresses, offsets or
    /// PIDs, so titles are stable across builds and versions.
    pub title: String,
    /// 0-based index of the report's first console line.
    pub line: usize,
    /// printk timestamp of that line in seconds, when the console has one.
    pub time_s: Option<f64>,
    /// The report's lines (timestamps stripped), from its first line to its end marker
    /// ("---[ end trace" or the next unrelated message), at most [`MAX_EXCERPT`] lines, in
    /// reading order: the header, then the call trace, then the rest (registers, `Code:`,
    /// lock and memory dumps) as the console had them.
    pub excerpt: Vec<String>,
}

/// At most this many lines of a report are kept in [`CrashReport::excerpt`].
pub const MAX_EXCERPT: usize = 60;

#[cfg(test)]
mod tests;
