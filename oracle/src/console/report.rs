//! Report extents: where each report starts and ends, and which reports fold into which.

use super::excerpt::excerpt;
use super::frames::symbol;
use super::headers::{header, starts_title_region, Header};
use super::lines::{split_console, Line};
use super::region::{title_region, Frames};
use super::title::title;
use super::{CrashKind, CrashReport};

/// The register dump of an oops: each line leaves no doubt that a report goes on.
const REGISTER_DUMP: &[&str] = &[
    "RIP: ", "Code: ", "RSP: ", "RAX: ", "RBX: ", "RDX: ", "RBP: ", "R10: ", "R13: ", "FS: ",
    "CS: ", "CR2: ", "DR0: ", "DR3: ", "DR6: ",
];

/// Lines besides the register dump that belong to the report that is open: stack frames and
/// the other parts of oops/KASAN/UBSAN/hung-task/stall reports.
const BODY_PREFIXES: &[&str] = &[
    "Modules linked in:",
    "CPU: ",
    "Hardware name:",
    "Tainted:",
    "Workqueue:",
    "PKRU: ",
    "Call Trace:",
    "Call trace:",
    "<TASK>",
    "</TASK>",
    "<IRQ>",
    "</IRQ>",
    "<NMI>",
    "</NMI>",
    "Stack:",
    "#PF: ",
    "PGD ",
    "P4D ",
    "PUD ",
    "PMD ",
    "PTE ",
    "Kernel Offset:",
    "Dumping ftrace buffer",
    "Rebooting in ",
    "---[",
    "Read of size",
    "Write of size",
    "Free of addr",
    "page:",
    "page_type:",
    "flags:",
    "raw: ",
    "head: ",
    "page dumped because:",
    "The buggy address",
    "Memory state around",
    "Allocated by task",
    "Freed by task",
    "Last potentially related work",
    "Second to last potentially related work",
    "addr ",
    "kasan_save",
    "KASAN: ",
    "index ",
    "shift exponent",
    "load of value",
    "signed integer overflow",
    "division by zero",
    "member access within",
    "task:",
    "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\"",
    "Showing all locks",
    "no locks held",
    "irq event stamp:",
    "hardirqs last",
    "softirqs last",
    "in_atomic()",
    "preempt_count:",
    "Preemption disabled at:",
    "Task dump for CPU",
    "Sending NMI",
    "NMI backtrace",
    "rcu: ",
    "=====",
];

fn is_body(text: &str) -> bool {
    text.starts_with([' ', '\t', '>', '<'])
        || REGISTER_DUMP
            .iter()
            .chain(BODY_PREFIXES)
            .any(|p| text.starts_with(p))
}

/// Body lines that leave no doubt that a report goes on (used to step over interleaved lines).
fn is_strong_body(text: &str) -> bool {
    let t = text.trim_start();
    symbol(t.trim_start_matches("? ")).is_some()
        || REGISTER_DUMP
            .iter()
            .chain(&[
                "Call Trace:",
                "<TASK>",
                "</TASK>",
                "<IRQ>",
                "</IRQ>",
                "---[ end",
            ])
            .any(|p| t.starts_with(p))
}

/// The kernel's oops: the exception after a report of its own, or a report by itself.
fn is_oops(k: CrashKind) -> bool {
    matches!(k, CrashKind::Oops | CrashKind::GeneralProtection)
}

/// A header's kind (a cut-here marker's is the warning it announces).
fn kind_of(h: &Header) -> CrashKind {
    match h {
        Header::CutHere => CrashKind::Warning,
        Header::Report(k) => *k,
        Header::Panic(_) => CrashKind::Panic,
    }
}

fn is_separator(text: &str) -> bool {
    text.len() >= 20 && text.trim_end().bytes().all(|c| c == b'=')
}

/// Kernel panics that are only the consequence of an earlier report.
const SECONDARY_PANICS: &[&str] = &[
    "Fatal exception",
    "Attempted to kill init",
    "Attempted to kill the idle task",
    "Aiee, killing interrupt handler",
    "panic_on_warn set",
    "kernel: panic_on_warn set",
    "hung_task: blocked tasks",
    "softlockup: hung tasks",
    "RCU Stall",
    "Oops",
    "BUG",
];

/// A secondary panic folds into the previous report when it comes at most this many console
/// lines after that report's end (an oops prints its registers again after "---[ end trace").
const FOLD_WINDOW: usize = 80;

/// Every crash report in a console, in order. A report that is a consequence of the previous
/// one (e.g. "Oops:" after "BUG: kernel NULL pointer dereference", "Kernel panic - not syncing:
/// Fatal exception" after an oops) is folded into it, not reported twice.
pub fn parse(console: &str) -> Vec<CrashReport> {
    let lines = split_console(console);
    // When the kernel stamps its lines, an unstamped line is a user program's output: it can
    // say "BUG: ..." without being a crash.
    let stamped = lines.iter().any(|l| l.time.is_some());
    let header_at = |i: usize| -> Option<Header> {
        let l = &lines[i];
        if stamped && l.time.is_none() {
            return None;
        }
        header(l.text)
    };

    let mut reports = Vec::new();
    // Where the last report ended (exclusive), for folding late secondary panics.
    let mut last_end: Option<usize> = None;
    // Hangs already reported (see below).
    let mut keys: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(mut h) = header_at(i) else {
            i += 1;
            continue;
        };
        let start = i;
        let mut head = i;
        if h == Header::CutHere {
            // The report is the next header within a few lines; a lone marker is nothing.
            let next = (i + 1..lines.len().min(i + 4)).find_map(|j| {
                header_at(j)
                    .filter(|h| *h != Header::CutHere)
                    .map(|h| (j, h))
            });
            match next {
                Some((j, nh)) => {
                    head = j;
                    h = nh;
                }
                None => {
                    i += 1;
                    continue;
                }
            }
        }
        if let Header::Panic(msg) = &h {
            let secondary = SECONDARY_PANICS.iter().any(|p| msg.starts_with(p));
            if secondary && last_end.is_some_and(|e| start <= e + FOLD_WINDOW) {
                // Fold: skip the panic's own lines.
                let end = extent(&lines, head, &h, &header_at).0;
                last_end = Some(end);
                i = end;
                continue;
            }
        }
        let (end, included) = extent(&lines, head, &h, &header_at);
        let mut idx: Vec<usize> = (start..head).collect();
        idx.extend(included);
        let texts: Vec<&str> = idx.iter().map(|&j| lines[j].text.trim_end()).collect();
        let kind = kind_of(&h);
        let new_report =
            |j: usize| header_at(j).is_some_and(|nh| starts_title_region(lines[j].text, &nh));
        let title = title(
            &title_region(&lines, head, &new_report, Frames::Reliable),
            || title_region(&lines, head, &new_report, Frames::All),
        );
        // The hung-task, soft-lockup and RCU-stall detectors report the same hang again and
        // again while it lasts: one report per hang (per task for hung tasks).
        let key = match kind {
            CrashKind::HungTask => Some(format!("{title}\0{}", hung_task_name(lines[head].text))),
            CrashKind::SoftLockup | CrashKind::RcuStall => Some(title.clone()),
            _ => None,
        };
        if let Some(k) = &key {
            if keys.contains(k) {
                last_end = Some(end);
                i = end.max(head + 1);
                continue;
            }
            keys.push(k.clone());
        }
        reports.push(CrashReport {
            kind,
            title,
            line: start,
            time_s: lines[start].time.or(lines[head].time),
            excerpt: excerpt(&texts, head - start),
        });
        last_end = Some(end);
        i = end.max(head + 1);
    }
    reports
}

/// "INFO: task sh:36 blocked for more than 5 seconds." → "sh:36".
fn hung_task_name(text: &str) -> &str {
    text.split_once("INFO: task ")
        .and_then(|(_, r)| r.split_once(" blocked for more than"))
        .map_or("", |(t, _)| t)
}

/// The extent of the report whose header is at `head`: (the first line after it, the indices
/// of its lines from `head` on). Interleaved lines (another caller id, or an unrelated line
/// followed closely by more of the report) are stepped over and left out.
fn extent(
    lines: &[Line<'_>],
    head: usize,
    h: &Header,
    header_at: &dyn Fn(usize) -> Option<Header>,
) -> (usize, Vec<usize>) {
    let mut inc = vec![head];
    let caller = lines[head].caller;
    let kind = kind_of(h);
    let mut seen_oops = matches!(h, Header::Report(k) if is_oops(*k));
    let mut seen_panic = matches!(h, Header::Panic(_));
    let mut j = head + 1;
    while j < lines.len() {
        let l = &lines[j];
        let t = l.text;
        if let Some(nh) = header_at(j) {
            let fold = match &nh {
                Header::Report(k) if is_oops(*k) => {
                    !seen_oops
                        && matches!(
                            kind,
                            CrashKind::Bug | CrashKind::PageFault | CrashKind::Kasan
                        )
                }
                Header::Panic(msg) => {
                    !seen_panic && SECONDARY_PANICS.iter().any(|p| msg.starts_with(p))
                }
                _ => false,
            };
            if !fold {
                break;
            }
            seen_oops |= matches!(nh, Header::Report(k) if is_oops(k));
            seen_panic |= matches!(nh, Header::Panic(_));
            inc.push(j);
            j += 1;
            continue;
        }
        if caller.is_some() && l.caller.is_some() && l.caller != caller && !t.starts_with("---[") {
            j += 1;
            continue;
        }
        if t.starts_with("---[ end trace") || t.starts_with("---[ end Kernel panic") {
            inc.push(j);
            return (j + 1, inc);
        }
        if is_separator(t) {
            if matches!(kind, CrashKind::Kasan | CrashKind::Ubsan) {
                inc.push(j);
                return (j + 1, inc);
            }
            break;
        }
        if t.trim().is_empty() && l.time.is_none() {
            // A bare empty line (no printk prefix) says nothing either way.
            j += 1;
            continue;
        }
        // KASAN separates its sections with empty printk lines.
        if t.trim().is_empty() || is_body(t) {
            inc.push(j);
            j += 1;
            continue;
        }
        // Unrelated: step over it when the report clearly goes on right after.
        let goes_on = (j + 1..lines.len().min(j + 4)).any(|k| {
            header_at(k).is_none()
                && lines[k].caller.is_none_or(|c| Some(c) == caller)
                && is_strong_body(lines[k].text)
        });
        if !goes_on {
            break;
        }
        j += 1;
    }
    (j, inc)
}
