//! The guest console, read like syzkaller reads it: kernel crash reports with stable titles
//! ([`parse`]) and the filesystems' own errors and warnings ([`fs_messages`]).
//!
//! Titles follow syzkaller's rules (its `pkg/report` package, github.com/google/syzkaller), so
//! that a pinvm report can be matched against syzbot's: the header names the crash class
//! (with the checker's own class for generic checkers: "WARNING: refcount bug", "BUG:
//! corrupted list", ...); the "guilty" function is the first frame of the faulting
//! instruction and the call trace that is not a reporting, allocation, locking, string,
//! user-copy or other generic helper (lockdep: the function its `at:` lines name; stalls and
//! hung tasks: a representative frame, see `pick`); nothing that changes between builds
//! (line numbers, addresses, offsets, PIDs, CPU numbers) is kept. Measured against
//! syzkaller's own report corpus by `tests/syzkaller_titles.rs`. Deliberate differences,
//! where syzkaller would call a report "corrupted" or count what pinvm does not: a report
//! without any reliable frame is titled by its faulting instruction, else by the unwinder's
//! unsure ("? ") frames (pinvm's guests mark every frame unsure); a `WARNING:` line that is
//! neither a WARN_ON() nor lockdep's is driver chatter, not a report; the decompressor's
//! "Booting the kernel." is no "unexpected kernel reboot" (pinvm sees reboots itself).

mod bugs;
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
mod stalls;
mod title;
mod warnings;

pub use fs::{fs_messages, FsMessage, FsSeverity};
pub use report::parse;

use serde::Serialize;

/// What kind of report a console shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashKind {
    /// `WARNING: CPU: N PID: P at file:line func+...` (WARN_ON and friends; 6.18's `WARNING:
    /// file:line at ...`) and lockdep's family (`WARNING: possible circular locking dependency
    /// detected`, `INFO: inconsistent lock state`, `INFO: trying to register non-static key`,
    /// ...).
    Warning,
    /// `kernel BUG at file:line!` and the other `BUG: ...` reports (except those below), e.g.
    /// kmemleak's `BUG: memory leak`.
    Bug,
    /// An oops with no more specific header (`Oops: 0000 [#1]`, `invalid opcode:`,
    /// `divide error:`, `stack segment:`, `PANIC: double fault`).
    Oops,
    /// `general protection fault` (`Oops: general protection fault` on 6.12).
    GeneralProtection,
    /// `BUG: unable to handle page fault`, `BUG: kernel NULL pointer dereference`.
    PageFault,
    /// `BUG: KASAN: ...` (and `BUG: KFENCE: ...`, `BUG: KMSAN: ...`).
    Kasan,
    /// `UBSAN: ... in file:line:col`.
    Ubsan,
    /// `INFO: task X blocked for more than N seconds.` (and `INFO: task X can't die ...`).
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
    /// The title syzkaller gives the report, e.g. "WARNING in ext4_dirty_folio", "kernel BUG
    /// in ext4_writepages", "BUG: unable to handle kernel paging request in foo", "general
    /// protection fault in foo", "KASAN: use-after-free Read in foo", "WARNING: refcount bug in
    /// foo", "UBSAN: array-index-out-of-bounds in foo", "INFO: task hung in foo", "INFO: rcu
    /// detected stall in foo", "BUG: soft lockup in foo", "kernel panic: sysrq triggered
    /// crash". No line numbers, addresses, offsets or PIDs, so titles are stable across builds
    /// and versions.
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
