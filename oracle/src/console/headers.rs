//! Report headers: which line starts a report, and what kind of report it is.

use super::normalize::normalize;
use super::CrashKind;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Header {
    /// `------------[ cut here ]------------`: the next header's report starts here.
    CutHere,
    /// `WARNING: CPU: ...` with the function of its `at ...` part, when it has one.
    Warning(Option<String>),
    /// Lockdep and RCU-lockdep warnings: the title's text before " in f".
    WarningNamed(&'static str),
    /// `kernel BUG at <file>:<line>!`
    KernelBug(String),
    /// `BUG: kernel NULL pointer dereference` / `BUG: unable to handle ...`: title text.
    PageFault(&'static str),
    /// `BUG: KASAN: <type> in f+...`: ("KASAN: <type>", f).
    Kasan(String, Option<String>),
    SoftLockup,
    /// Any other `BUG: <what>`: the title's text.
    Bug(String),
    /// An oops header: the title's text ("Oops", "invalid opcode", ...).
    Oops(String),
    Gpf,
    /// `UBSAN: <what> in <file>`: the title.
    Ubsan(String),
    HungTask,
    RcuStall,
    /// `Kernel panic - not syncing: <message>`: the message.
    Panic(String),
}

/// `BUG: ` lines that are not crash reports: the scheduler's complaint about the CPU topology
/// kvm_pvm shows the guest (a pr_err at every boot with more vCPUs than host CPUs).
const NOT_CRASHES: &[&str] = &["BUG: arch topology borken"];

/// Lockdep-style warnings: (header text after "WARNING: ", title text).
const NAMED_WARNINGS: &[(&str, &str)] = &[
    (
        "possible circular locking dependency detected",
        "possible deadlock",
    ),
    ("possible recursive locking detected", "possible deadlock"),
    (
        "possible irq lock inversion dependency",
        "possible deadlock",
    ),
    ("inconsistent lock state", "inconsistent lock state"),
    ("suspicious RCU usage", "WARNING: suspicious RCU usage"),
    ("bad unlock balance detected", "WARNING: bad unlock balance"),
    ("held lock freed", "WARNING: held lock freed"),
    (
        "lock held when returning to user space",
        "WARNING: lock held when returning to user space",
    ),
    (
        "nested lock was not taken",
        "WARNING: nested lock was not taken",
    ),
];

pub(super) fn header(text: &str) -> Option<Header> {
    if text.starts_with("------------[ cut here ]------------") {
        return Some(Header::CutHere);
    }
    // Subsystem prefixes some reports carry.
    let t = text
        .strip_prefix("watchdog: ")
        .or_else(|| text.strip_prefix("rcu: "))
        .unwrap_or(text);
    if let Some(rest) = t.strip_prefix("WARNING: ") {
        if let Some(rest) = rest.strip_prefix("CPU: ") {
            // "WARNING: CPU: 1 PID: 57 at fs/ext4/inode.c:3587 ext4_dirty_folio+0x3d/0x60"
            // or, without DEBUG_BUGVERBOSE's file and line, "... at ext4_dirty_folio+0x3d/0x60".
            let func = rest
                .split_once(" at ")
                .and_then(|(_, at)| at.split_whitespace().find_map(symbol));
            return Some(Header::Warning(func));
        }
        return NAMED_WARNINGS
            .iter()
            .find(|(h, _)| rest.starts_with(h))
            .map(|(_, title)| Header::WarningNamed(title));
    }
    if let Some(rest) = t
        .strip_prefix("kernel BUG at ")
        .or_else(|| t.strip_prefix("Kernel BUG at "))
    {
        let rest = rest.trim_end().trim_end_matches('!');
        let file = strip_line_number(rest.split_whitespace().next().unwrap_or(""));
        return Some(Header::KernelBug(file.to_string()));
    }
    if let Some(rest) = t.strip_prefix("BUG: ") {
        if NOT_CRASHES.iter().any(|n| t.starts_with(n)) {
            return None;
        }
        if rest.starts_with("kernel NULL pointer dereference")
            || rest.starts_with("unable to handle kernel NULL pointer dereference")
        {
            return Some(Header::PageFault(
                "BUG: unable to handle kernel NULL pointer dereference",
            ));
        }
        if rest.starts_with("unable to handle page fault") {
            return Some(Header::PageFault("BUG: unable to handle page fault"));
        }
        if rest.starts_with("unable to handle kernel paging request") {
            return Some(Header::PageFault(
                "BUG: unable to handle kernel paging request",
            ));
        }
        if rest.starts_with("soft lockup") {
            return Some(Header::SoftLockup);
        }
        for tool in ["KASAN: ", "KFENCE: ", "KMSAN: ", "KCSAN: "] {
            if let Some(r) = rest.strip_prefix(tool) {
                // "use-after-free in ext4_foo+0x12/0x34"
                let (what, func) = match r.split_once(" in ") {
                    Some((w, f)) => (w, f.split_whitespace().next().and_then(symbol)),
                    None => (r, None),
                };
                return Some(Header::Kasan(
                    format!("{tool}{}", normalize(what.trim())),
                    func,
                ));
            }
        }
        return Some(Header::Bug(bug_phrase(rest)));
    }
    if let Some(rest) = t.strip_prefix("UBSAN: ") {
        // "UBSAN: array-index-out-of-bounds in drivers/misc/lkdtm/bugs.c:399:16"
        let title = match rest.split_once(" in ") {
            Some((what, loc)) => format!(
                "UBSAN: {} in {}",
                what.trim(),
                strip_line_number(loc.split_whitespace().next().unwrap_or(""))
            ),
            None => format!("UBSAN: {}", normalize(rest.trim())),
        };
        return Some(Header::Ubsan(title));
    }
    if let Some(rest) = t.strip_prefix("INFO: ") {
        if rest.starts_with("task ") && rest.contains(" blocked for more than ") {
            return Some(Header::HungTask);
        }
        if rest.starts_with("rcu_")
            && (rest.contains("detected stall") || rest.contains("detected expedited stall"))
        {
            return Some(Header::RcuStall);
        }
        return None;
    }
    if let Some(msg) = t.strip_prefix("Kernel panic - not syncing: ") {
        return Some(Header::Panic(msg.trim().to_string()));
    }
    if t.starts_with("PANIC: double fault") {
        return Some(Header::Oops("PANIC: double fault".into()));
    }
    // x86 oops headers: "Oops: 0002 [#1] SMP", 6.12's "Oops: invalid opcode: 0000 [#1] SMP"
    // and "Oops: Oops: 0002 [#1] SMP", 6.1's "invalid opcode: 0000 [#1] SMP".
    let mut o = t;
    let mut oops = false;
    while let Some(r) = o.strip_prefix("Oops: ") {
        o = r;
        oops = true;
    }
    if o.starts_with("general protection fault") && o.contains("[#") {
        return Some(Header::Gpf);
    }
    for what in [
        "invalid opcode",
        "divide error",
        "stack segment",
        "int3",
        "alignment check",
        "Oops",
    ] {
        if o.starts_with(&format!("{what}: ")) && o.contains("[#") {
            return Some(Header::Oops(what.into()));
        }
    }
    if oops && o.contains("[#") {
        return Some(Header::Oops("Oops".into()));
    }
    None
}

/// The title words of a generic `BUG: <what>` header: up to the first detail (":", " at ",
/// " in process", a number ...). "sleeping function called from invalid context at
/// kernel/x.c:1" → "BUG: sleeping function called from invalid context".
fn bug_phrase(rest: &str) -> String {
    let mut words = Vec::new();
    for w in rest.split_whitespace() {
        if matches!(w, "at" | "in" | "on" | "for" | "-" | "mm:" | "pfn:") || w.starts_with('(') {
            break;
        }
        let has_digit = w.bytes().any(|c| c.is_ascii_digit());
        if let Some(head) = w.strip_suffix(':').or_else(|| w.strip_suffix(',')) {
            if !head.is_empty() && !head.bytes().any(|c| c.is_ascii_digit()) {
                words.push(head);
            }
            break;
        }
        if has_digit || w.contains(':') || w.contains('=') || w.contains('/') {
            break;
        }
        words.push(w.trim_end_matches(['!', '.']));
    }
    format!("BUG: {}", words.join(" "))
}

/// "fs/ext4/inode.c:2620" → "fs/ext4/inode.c" (also "file.c:12:4"); an absolute path (UBSAN
/// prints the compiler's, e.g. "/root/.cache/pinvm/build/<hash>/src/drivers/x.c:1:2") loses
/// everything before its first top-level kernel directory, so titles do not depend on where
/// the kernel was built.
fn strip_line_number(loc: &str) -> &str {
    let file = match loc.find(':') {
        Some(i) => &loc[..i],
        None => loc,
    };
    if file.starts_with('/') {
        let mut at = 0;
        for part in file.split('/') {
            if KERNEL_TOP_DIRS.contains(&part) && at > 0 {
                return &file[at..];
            }
            at += part.len() + 1;
        }
    }
    file
}

/// The top-level directories of a kernel tree.
const KERNEL_TOP_DIRS: &[&str] = &[
    "arch", "block", "certs", "crypto", "drivers", "fs", "include", "init", "io_uring", "ipc",
    "kernel", "lib", "mm", "net", "rust", "samples", "security", "sound", "virt",
];

/// The function of a symbolised address, `ext4_dirty_folio+0x3d/0x60` or `foo.isra.0+0x1/0x2`
/// → `ext4_dirty_folio` / `foo`; `None` for anything else (raw addresses, `0x0`).
pub(super) fn symbol(s: &str) -> Option<String> {
    let s = s.trim().trim_start_matches("? ");
    // Old kernels print "[<ffffffff81234567>] foo+0x..": take what follows.
    let s = match s.rfind("] ") {
        Some(i) if s.starts_with("[<") => &s[i + 2..],
        _ => s,
    };
    let plus = s.find("+0x")?;
    let name = &s[..plus];
    let name = name.split('.').next().unwrap_or("");
    let ok = !name.is_empty()
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !name.bytes().next().is_some_and(|c| c.is_ascii_digit())
        && !name.starts_with("0x");
    ok.then(|| name.to_string())
}

pub(super) fn kind_of(h: &Header) -> CrashKind {
    match h {
        Header::CutHere => CrashKind::Warning,
        Header::Warning(_) | Header::WarningNamed(_) => CrashKind::Warning,
        Header::KernelBug(_) | Header::Bug(_) => CrashKind::Bug,
        Header::PageFault(_) => CrashKind::PageFault,
        Header::Kasan(..) => CrashKind::Kasan,
        Header::SoftLockup => CrashKind::SoftLockup,
        Header::Oops(_) => CrashKind::Oops,
        Header::Gpf => CrashKind::GeneralProtection,
        Header::Ubsan(_) => CrashKind::Ubsan,
        Header::HungTask => CrashKind::HungTask,
        Header::RcuStall => CrashKind::RcuStall,
        Header::Panic(_) => CrashKind::Panic,
    }
}
