//! Report headers: which line starts a report, and what kind of report it is.

use super::rules::rule;
use super::CrashKind;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Header {
    /// `------------[ cut here ]------------`: the next header's report starts here.
    CutHere,
    /// A report of this kind starts here.
    Report(CrashKind),
    /// `Kernel panic - not syncing: <message>`: the message.
    Panic(String),
}

/// `BUG: ` lines that are not crash reports: the scheduler's complaint about the CPU topology
/// kvm_pvm shows the guest (a pr_err at every boot with more vCPUs than host CPUs).
const NOT_CRASHES: &[&str] = &["BUG: arch topology borken"];

/// Subsystem prefixes some reports carry.
const PREFIXES: &[&str] = &["watchdog: ", "NMI watchdog: ", "rcu: "];

/// A line's possible header: without leading blanks, a subsystem prefix, or old lockdep's
/// brackets (`[ BUG: held lock freed! ]`).
pub(super) fn header_text(text: &str) -> &str {
    let t = text.trim();
    let t = PREFIXES.iter().find_map(|p| t.strip_prefix(p)).unwrap_or(t);
    if let Some(inner) = t.strip_prefix("[ ").and_then(|r| r.strip_suffix(" ]")) {
        return inner;
    }
    merged_exception(t).unwrap_or(t)
}

/// An exception header printed onto the end of another message (two printk()s merged, e.g.
/// `kasan: GPF could be caused by ... accessgeneral protection fault: 0000 [#1] SMP`, or
/// 5.4's `segment-related general protection fault: beec [#2]`): the header.
fn merged_exception(t: &str) -> Option<&str> {
    let at = t.find("general protection fault")?;
    (at > 0 && t[at..].contains("[#")).then(|| &t[at..])
}

pub(super) fn header(text: &str) -> Option<Header> {
    if text.starts_with("------------[ cut here ]------------") {
        return Some(Header::CutHere);
    }
    let t = header_text(text);
    if let Some(msg) = t.strip_prefix("Kernel panic - not syncing: ") {
        return Some(Header::Panic(msg.trim().to_string()));
    }
    kind(t).map(Header::Report)
}

/// The kind of report a header line (without subsystem prefix) starts, if it starts one.
fn kind(t: &str) -> Option<CrashKind> {
    use CrashKind::*;
    if let Some(rest) = t.strip_prefix("BUG: ") {
        return (!NOT_CRASHES.iter().any(|n| t.starts_with(n))).then(|| bug_kind(rest));
    }
    if t.starts_with("WARNING: ") {
        // WARN_ON()s and the lockdep family only: drivers print "WARNING: " for other things.
        return rule(t, &[t]).map(|_| Warning);
    }
    if let Some(rest) = t.strip_prefix("INFO: ") {
        rule(t, &[t])?;
        return Some(if rest.starts_with("task ") {
            HungTask
        } else if rest.starts_with("rcu_") {
            RcuStall
        } else {
            Warning
        });
    }
    if t.starts_with("kernel BUG at ") || t.starts_with("Kernel BUG at ") {
        return Some(Bug);
    }
    if t.starts_with("UBSAN: ") {
        return Some(Ubsan);
    }
    if t.starts_with("PANIC: double fault") {
        return Some(Oops);
    }
    let lasting = [
        "VFS: Close: file count is 0",
        "VFS: Busy inodes after unmount",
    ];
    if lasting.iter().any(|p| t.starts_with(p))
        || (t.starts_with("unregister_netdevice: waiting for ") && t.contains(" to become free"))
    {
        return Some(Bug);
    }
    exception_kind(t)
}

fn bug_kind(rest: &str) -> CrashKind {
    use CrashKind::*;
    let page_fault = [
        "kernel NULL pointer dereference",
        "unable to handle",
        "Unable to handle",
        "Kernel NULL pointer dereference",
    ];
    if page_fault.iter().any(|p| rest.starts_with(p)) {
        PageFault
    } else if rest.starts_with("soft lockup") {
        SoftLockup
    } else if ["KASAN: ", "KFENCE: ", "KMSAN: ", "KCSAN: "]
        .iter()
        .any(|p| rest.starts_with(p))
    {
        Kasan
    } else {
        Bug
    }
}

/// x86 exception headers: "Oops: 0002 [#1] SMP", 6.12's "Oops: invalid opcode: 0000 [#1] SMP"
/// and "Oops: Oops: 0002 [#1] SMP", 6.1's "invalid opcode: 0000 [#1] SMP", "general
/// protection fault, probably for non-canonical address ...: 0000 [#1] SMP".
fn exception_kind(t: &str) -> Option<CrashKind> {
    let mut o = t;
    let mut oops = false;
    while let Some(r) = o.strip_prefix("Oops: ") {
        o = r;
        oops = true;
    }
    if !o.contains("[#") {
        return None;
    }
    if o.starts_with("general protection fault") {
        return Some(CrashKind::GeneralProtection);
    }
    let known = [
        "invalid opcode: ",
        "divide error: ",
        "divide_error: ",
        "stack segment: ",
        "int3: ",
        "alignment check: ",
        "Oops: ",
    ];
    (oops || known.iter().any(|k| o.starts_with(k))).then_some(CrashKind::Oops)
}

/// Does a header at this line start a new title region (see `region`)? Not the oopses that
/// follow a report of their own ("invalid opcode" after BUG(), "Oops" after a page fault),
/// panics, double faults or cut-here markers.
pub(super) fn starts_title_region(text: &str, h: &Header) -> bool {
    match h {
        Header::CutHere | Header::Panic(_) => false,
        Header::Report(CrashKind::Oops) => {
            ["divide error", "divide_error", "int3:", "stack segment:"]
                .iter()
                .any(|k| {
                    header_text(text)
                        .trim_start_matches("Oops: ")
                        .starts_with(k)
                })
        }
        // A device's reference leak, reported every 10 s in the middle of anything.
        Header::Report(_) => !header_text(text).starts_with("unregister_netdevice: "),
    }
}
