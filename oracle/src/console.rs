//! The guest console, read like syzkaller reads it: kernel crash reports with stable titles
//! ([`parse`]) and the filesystems' own errors and warnings ([`fs_messages`]).
//!
//! Titles follow syzkaller's conventions (`pkg/report`, summarised in
//! `shared/research/peers.md` §3): the report's header names the crash class, the "guilty"
//! function is the one in the header (WARNING, KASAN) or else the first frame of `RIP:` / the
//! call trace that is not a reporting, locking, scheduling or interrupt helper, and nothing
//! that changes between builds (line numbers, addresses, offsets, PIDs, CPU numbers) is kept.
//! One difference: `kernel BUG at fs/ext4/inode.c:2620!` keeps its file ("kernel BUG at
//! fs/ext4/inode.c"), which for the pinned-page problem says more than the function.

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
    /// ("---[ end trace" or the next unrelated message), at most [`MAX_EXCERPT`] lines.
    pub excerpt: Vec<String>,
}

/// At most this many lines of a report are kept in [`CrashReport::excerpt`].
pub const MAX_EXCERPT: usize = 60;

/// Longest title (syzkaller truncates at 120 characters too).
const MAX_TITLE: usize = 120;

// ---------------------------------------------------------------------------------------------
// Console lines

/// One console line with its printk prefix taken apart.
#[derive(Clone, Copy, Debug)]
struct Line<'a> {
    /// The message, without the `[    1.234567]` / `[  T123]` prefix and the space after it.
    text: &'a str,
    time: Option<f64>,
    /// `T123` / `C0` (CONFIG_PRINTK_CALLER), when present.
    caller: Option<&'a str>,
}

/// `[ *digits.digits]` at the start of `s`: (seconds, length, digits after the point).
fn timestamp_at(s: &str) -> Option<(f64, usize, usize)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'[') {
        return None;
    }
    let close = s.find(']')?;
    let inner = s[1..close].trim_start_matches(' ');
    let (secs, frac) = inner.split_once('.')?;
    if secs.is_empty()
        || frac.is_empty()
        || !secs.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    Some((inner.parse().ok()?, close + 1, frac.len()))
}

/// `[ *T123]` / `[ *C0]` at the start of `s`: (the id, length).
fn caller_at(s: &str) -> Option<(&str, usize)> {
    let rest = s.strip_prefix('[')?;
    let close = rest.find(']')?;
    let id = rest[..close].trim_start_matches(' ');
    let digits = id.strip_prefix('T').or_else(|| id.strip_prefix('C'))?;
    (!digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())).then_some((id, close + 2))
}

fn split_line(raw: &str) -> Line<'_> {
    let raw = raw.trim_end_matches(['\r', '\n']);
    // A printk prefix at the start (after an optional syslog "<N>"), or in the middle of a
    // line when a user program's output and the kernel's got mixed ("foo[    1.234567] BUG:");
    // mid-line only in the kernel's exact six-digit form.
    let mut start = 0;
    if raw.starts_with('<') {
        if let Some(end) = raw.find('>') {
            if end > 1 && raw[1..end].bytes().all(|c| c.is_ascii_digit()) {
                start = end + 1;
            }
        }
    }
    let mut found = timestamp_at(&raw[start..]).map(|(t, len, _)| (start, t, len));
    if found.is_none() {
        found = raw.match_indices('[').find_map(|(i, _)| {
            timestamp_at(&raw[i..]).and_then(|(t, len, frac)| (frac == 6).then_some((i, t, len)))
        });
    }
    let Some((at, time, len)) = found else {
        return Line {
            text: raw,
            time: None,
            caller: None,
        };
    };
    let mut rest = &raw[at + len..];
    let mut caller = None;
    let after_space = rest.strip_prefix(' ').unwrap_or(rest);
    if let Some((id, len)) = caller_at(after_space) {
        caller = Some(id);
        rest = &after_space[len..];
    }
    Line {
        text: rest.strip_prefix(' ').unwrap_or(rest),
        time: Some(time),
        caller,
    }
}

fn split_console(console: &str) -> Vec<Line<'_>> {
    console.split('\n').map(split_line).collect()
}

// ---------------------------------------------------------------------------------------------
// Report headers

#[derive(Clone, Debug, PartialEq)]
enum Header {
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

fn header(text: &str) -> Option<Header> {
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
fn symbol(s: &str) -> Option<String> {
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

// ---------------------------------------------------------------------------------------------
// The guilty frame

/// Functions that report, dispatch or wait rather than cause: never the "guilty" frame.
const SKIP_EXACT: &[&str] = &[
    "panic",
    "vpanic",
    "__panic",
    "nmi_panic",
    "report_bug",
    "handle_bug",
    "__warn",
    "__warn_printk",
    "warn_slowpath_fmt",
    "warn_slowpath_null",
    "die",
    "__die",
    "__die_body",
    "die_addr",
    "oops_end",
    "do_trap",
    "do_error_trap",
    "page_fault_oops",
    "kernelmode_fixup_or_oops",
    "no_context",
    "bad_area_nosemaphore",
    "__bad_area_nosemaphore",
    "__bad_area",
    "bad_area",
    "do_user_addr_fault",
    "do_kern_addr_fault",
    "handle_page_fault",
    "fixup_exception",
    "show_stack",
    "show_regs",
    "__show_regs",
    "show_trace_log_lvl",
    "show_stack_log_lvl",
    "sched_show_task",
    "dump_stack",
    "dump_stack_lvl",
    "print_modules",
    "printk",
    "_printk",
    "__schedule",
    "schedule",
    "schedule_timeout",
    "schedule_hrtimeout",
    "schedule_hrtimeout_range",
    "schedule_preempt_disabled",
    "io_schedule",
    "io_schedule_timeout",
    "preempt_schedule",
    "preempt_schedule_common",
    "preempt_schedule_irq",
    "preempt_schedule_notrace",
    "_cond_resched",
    "__cond_resched",
    "cpu_relax",
    "copy_to_user",
    "copy_from_user",
    "_copy_to_user",
    "_copy_from_user",
    "rep_movs_alternative",
    "kfree",
    "lock_acquire",
    "lock_release",
    "__lock_acquire",
    "queued_spin_lock_slowpath",
    "native_queued_spin_lock_slowpath",
    "update_process_times",
    "watchdog_timer_fn",
    "irq_exit",
    "irq_exit_rcu",
    "__irq_exit_rcu",
    "__do_softirq",
    "handle_softirqs",
    "do_softirq",
    "native_safe_halt",
    "default_idle",
    "ret_from_fork",
    "ret_from_fork_asm",
    "entry_SYSCALL_64_after_hwframe",
    "do_syscall_64",
    "x64_sys_call",
];

/// Prefixes of functions that are never the guilty frame.
const SKIP_PREFIX: &[&str] = &[
    "asm_exc_",
    "exc_",
    "asm_sysvec_",
    "sysvec_",
    "__sysvec_",
    "asm_common_interrupt",
    "common_interrupt",
    "kasan_",
    "__kasan_",
    "__asan_",
    "kmsan_",
    "kcsan_",
    "kfence_",
    "__ubsan_",
    "ubsan_",
    "check_memory_region",
    "dump_stack",
    "vprintk",
    "console_",
    "mem",
    "__mem",
    "str",
    "__str",
    "list_add",
    "list_del",
    "__list_",
    "mutex_",
    "__mutex_",
    "down",
    "__down",
    "up_",
    "rwsem_",
    "_raw_spin",
    "_raw_read",
    "_raw_write",
    "do_raw_spin",
    "spin_",
    "rt_spin",
    "wait_for_completion",
    "__wait_",
    "bit_wait",
    "out_of_line_wait_on_bit",
    "kmalloc",
    "__kmalloc",
    "kmem_cache_",
    "slab_",
    "___slab_",
    "__slab_",
    "refcount_",
    "hrtimer_",
    "__hrtimer_",
    "__run_hrtimer",
    "tick_",
    "rcu_",
    "__rcu_",
    "print_cpu_stall",
    "check_cpu_stall",
    "nmi_",
    "arch_trigger_",
    "trigger_",
    "smp_call_function",
    "__x64_sys_",
];

fn skipped(f: &str) -> bool {
    SKIP_EXACT.contains(&f) || SKIP_PREFIX.iter().any(|p| f.starts_with(p))
}

/// The report's guilty function: the first `RIP:` that is not a helper, else the first
/// reliable call-trace frame that is not one, else the first unreliable ("? ") one.
fn guilty(excerpt: &[&str]) -> Option<String> {
    for l in excerpt {
        if let Some(rip) = l.trim_start().strip_prefix("RIP: ") {
            // "RIP: 0010:lkdtm_BUG+0x5/0x10"; user mode is "RIP: 0033:0x7f...".
            let at = rip.split_once(':').map_or(rip, |(_, f)| f);
            if let Some(f) = symbol(at) {
                if !skipped(&f) {
                    return Some(f);
                }
            }
        }
    }
    let mut unreliable = None;
    let mut in_trace = false;
    for l in excerpt {
        let t = l.trim();
        if t.starts_with("Call Trace:") || t.starts_with("Call trace:") {
            in_trace = true;
            continue;
        }
        if !in_trace {
            continue;
        }
        let (reliable, frame) = match t.strip_prefix("? ") {
            Some(f) => (false, f),
            None => (true, t),
        };
        let Some(f) = symbol(frame) else { continue };
        if skipped(&f) {
            continue;
        }
        if reliable {
            return Some(f);
        }
        unreliable.get_or_insert(f);
    }
    unreliable
}

// ---------------------------------------------------------------------------------------------
// Report extents

/// Lines that belong to the report that is open: stack frames, register dumps and the other
/// parts of oops/KASAN/UBSAN/hung-task/stall reports.
const BODY_PREFIXES: &[&str] = &[
    "Modules linked in:",
    "CPU: ",
    "Hardware name:",
    "Tainted:",
    "Workqueue:",
    "RIP: ",
    "Code: ",
    "RSP: ",
    "RAX: ",
    "RBX: ",
    "RDX: ",
    "RBP: ",
    "R10: ",
    "R13: ",
    "FS: ",
    "CS: ",
    "CR2: ",
    "DR0: ",
    "DR3: ",
    "DR6: ",
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
    text.starts_with([' ', '\t', '>', '<']) || BODY_PREFIXES.iter().any(|p| text.starts_with(p))
}

/// Body lines that leave no doubt that a report goes on (used to step over interleaved lines).
fn is_strong_body(text: &str) -> bool {
    let t = text.trim_start();
    symbol(t.trim_start_matches("? ")).is_some()
        || [
            "RIP: ",
            "Code: ",
            "RSP: ",
            "RAX: ",
            "RDX: ",
            "RBP: ",
            "R10: ",
            "R13: ",
            "FS: ",
            "CS: ",
            "CR2: ",
            "Call Trace:",
            "<TASK>",
            "</TASK>",
            "<IRQ>",
            "</IRQ>",
            "---[ end",
        ]
        .iter()
        .any(|p| t.starts_with(p))
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

fn kind_of(h: &Header) -> CrashKind {
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
        let title = title(&h, &texts);
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
            excerpt: texts
                .iter()
                .take(MAX_EXCERPT)
                .map(|s| s.to_string())
                .collect(),
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
    let mut seen_oops = matches!(h, Header::Oops(_) | Header::Gpf);
    let mut seen_panic = matches!(h, Header::Panic(_));
    let mut j = head + 1;
    while j < lines.len() {
        let l = &lines[j];
        let t = l.text;
        if let Some(nh) = header_at(j) {
            let fold = match &nh {
                Header::Oops(_) | Header::Gpf => {
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
            seen_oops |= matches!(nh, Header::Oops(_) | Header::Gpf);
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

fn title(h: &Header, excerpt: &[&str]) -> String {
    let with_func = |base: &str, f: Option<String>| match f {
        Some(f) => format!("{base} in {f}"),
        None => base.to_string(),
    };
    let t = match h {
        Header::CutHere => "WARNING".to_string(),
        Header::Warning(f) => with_func("WARNING", f.clone().or_else(|| guilty(excerpt))),
        Header::WarningNamed(base) => with_func(base, guilty(excerpt)),
        Header::KernelBug(file) => format!("kernel BUG at {file}"),
        Header::PageFault(base) => with_func(base, guilty(excerpt)),
        Header::Kasan(what, f) => {
            let access = excerpt.iter().find_map(|l| {
                let l = l.trim_start();
                if l.starts_with("Read of size") {
                    Some(" Read")
                } else if l.starts_with("Write of size") {
                    Some(" Write")
                } else {
                    None
                }
            });
            let f = f
                .clone()
                .filter(|f| !skipped(f))
                .or_else(|| guilty(excerpt));
            with_func(&format!("{what}{}", access.unwrap_or("")), f)
        }
        Header::SoftLockup => with_func("BUG: soft lockup", guilty(excerpt)),
        Header::Bug(base) => with_func(base, guilty(excerpt)),
        Header::Oops(what) => with_func(what, guilty(excerpt)),
        Header::Gpf => with_func("general protection fault", guilty(excerpt)),
        Header::Ubsan(t) => t.clone(),
        Header::HungTask => with_func("INFO: task hung", guilty(excerpt)),
        Header::RcuStall => with_func("INFO: rcu detected stall", guilty(excerpt)),
        Header::Panic(msg) => format!("kernel panic: {}", normalize(msg)),
    };
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    match t.char_indices().nth(MAX_TITLE) {
        Some((i, _)) => t[..i].to_string(),
        None => t,
    }
}

/// Make free text stable: hex numbers and long hex words → ADDR, other numbers → NUM,
/// `file.c:123` → `file.c`, `CPU#3` → `CPU`.
fn normalize(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let word_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let c = b[i];
        let at_word_start = i == 0 || !word_char(b[i - 1]);
        if c == b':' && i + 1 < b.len() && b[i + 1].is_ascii_digit() && out.contains('.') {
            // "file.c:123" → "file.c" (only right after a file name).
            let prev_word = out.rsplit([' ', '(']).next().unwrap_or("");
            if prev_word.contains('.') && prev_word.contains('/') || prev_word.ends_with(".c") {
                i += 1;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b':') {
                    i += 1;
                }
                continue;
            }
        }
        if c == b'#' && out.ends_with("CPU") {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            continue;
        }
        if at_word_start && c.is_ascii_hexdigit() {
            let mut j = i;
            while j < b.len() && word_char(b[j]) {
                j += 1;
            }
            let w = &s[i..j];
            let hex = w
                .strip_prefix("0x")
                .is_some_and(|h| !h.is_empty() && h.bytes().all(|c| c.is_ascii_hexdigit()))
                || (w.len() >= 8
                    && w.bytes().all(|c| c.is_ascii_hexdigit())
                    && w.bytes().any(|c| c.is_ascii_digit()));
            if hex {
                out.push_str("ADDR");
                i = j;
                continue;
            }
            if w.bytes().all(|c| c.is_ascii_digit()) {
                out.push_str("NUM");
                i = j;
                continue;
            }
            out.push_str(w);
            i = j;
            continue;
        }
        // Any other character as it is (multi-byte ones whole).
        let ch = s[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Filesystem messages

/// How bad a filesystem message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FsSeverity {
    Error,
    Warning,
    Critical,
}

/// One filesystem (or block layer) error or warning the guest kernel printed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FsMessage {
    /// "ext4", "jbd2", "xfs", "btrfs" or "block".
    pub fs: String,
    pub severity: FsSeverity,
    /// True for data/metadata checksum failures ("csum failed", "checksum", "Invalid
    /// checksum", CRC errors).
    pub checksum: bool,
    pub line: usize,
    pub time_s: Option<f64>,
    /// The line without its timestamp.
    pub text: String,
}

/// (fs, severity) of one console message, or `None` when it is not a filesystem problem.
fn classify_fs(t: &str) -> Option<(&'static str, FsSeverity)> {
    use FsSeverity::*;
    let lower = t.to_ascii_lowercase();
    let has = |w: &str| lower.contains(w);
    if t.starts_with("EXT4-fs error") {
        return Some(("ext4", Error));
    }
    if t.starts_with("EXT4-fs warning") {
        return Some(("ext4", Warning));
    }
    if t.starts_with("EXT4-fs critical") {
        return Some(("ext4", Critical));
    }
    if t.starts_with("EXT4-fs (") || t.starts_with("EXT4-fs: ") {
        // ext4_msg(): mostly mount chatter; these are its failures.
        if has("data will be lost") || has("delayed block allocation failed") {
            return Some(("ext4", Critical));
        }
        if has("remounting filesystem read-only")
            || has("i/o error")
            || has("checksum")
            || has("corrupt")
            || has("failed to convert unwritten")
            || has("error count since last fsck")
        {
            return Some(("ext4", Error));
        }
        return None;
    }
    if t.starts_with("JBD2: ") || t.starts_with("jbd2: ") || t.starts_with("jbd2_") {
        if has("invalid") || has("error") || has("fail") || has("corrupt") || has("checksum") {
            return Some(("jbd2", Error));
        }
        return Some(("jbd2", Warning));
    }
    if t.starts_with("Aborting journal on device") {
        return Some(("jbd2", Error));
    }
    if t.starts_with("BTRFS error") || t.starts_with("BTRFS: error") {
        return Some(("btrfs", Error));
    }
    if t.starts_with("BTRFS warning") || t.starts_with("BTRFS: warning") {
        return Some(("btrfs", Warning));
    }
    if t.starts_with("BTRFS critical")
        || t.starts_with("BTRFS alert")
        || t.starts_with("BTRFS emerg")
        || t.starts_with("BTRFS: Transaction aborted")
    {
        return Some(("btrfs", Critical));
    }
    if t.starts_with("XFS (") || t.starts_with("XFS: ") {
        // xfs_alert/xfs_crit/xfs_err/xfs_warn do not print their level: go by the words.
        if has("assertion failed")
            || has("corruption of in-memory data")
            || has("shutting down filesystem")
            || has("please unmount the filesystem")
            || has("please umount the filesystem")
            || has("log i/o error")
            || has("force_shutdown")
        {
            return Some(("xfs", Critical));
        }
        if has("corruption warning") {
            return Some(("xfs", Warning));
        }
        if has("corrupt")
            || has("crc error")
            || has("checksum")
            || has("i/o error")
            || has("internal error")
            || has("xfs_repair")
            || has("metadata") && (has("error") || has("corrupt") || has("verifier") || has("bad"))
        {
            return Some(("xfs", Error));
        }
        return None;
    }
    if t.starts_with("blk_update_request: ")
        || t.starts_with("Buffer I/O error on dev")
        || t.starts_with("I/O error, dev ")
        || t.starts_with("critical medium error, dev ")
        || t.starts_with("critical target error, dev ")
        || t.starts_with("critical space allocation error, dev ")
        || t.starts_with("protection error, dev ")
    {
        return Some(("block", Error));
    }
    // dio_warn_stale_pagecache(): a direct write could not invalidate the page cache over its
    // range (pr_crit); the kernel also records EIO on the file.
    if t.starts_with("Page cache invalidation failure on direct I/O") {
        return Some(("vfs", Critical));
    }
    None
}

fn is_checksum(t: &str) -> bool {
    let l = t.to_ascii_lowercase();
    l.contains("checksum")
        || l.contains("csum failed")
        || l.contains("csum mismatch")
        || l.contains("bad csum")
        || l.contains("crc error")
        || l.contains("crc mismatch")
        || l.contains("bad crc")
        || l.contains("csum 0x") && l.contains("expected csum")
}

/// Filesystem errors and warnings the guest kernel printed: "EXT4-fs error (device vda):
/// ...", "EXT4-fs warning (device vda): ...", "BTRFS error/warning/critical (device vda): ...",
/// "XFS (vda): Metadata corruption detected ...", "JBD2: Invalid checksum ...", and the block
/// layer's "I/O error, dev vda, sector N" (fs = "block"), and the VFS' "Page cache invalidation
/// failure on direct I/O" (fs = "vfs").
pub fn fs_messages(console: &str) -> Vec<FsMessage> {
    let lines = split_console(console);
    let stamped = lines.iter().any(|l| l.time.is_some());
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if stamped && l.time.is_none() {
            continue;
        }
        let t = l.text.trim_end();
        let Some((fs, severity)) = classify_fs(t) else {
            continue;
        };
        out.push(FsMessage {
            fs: fs.to_string(),
            severity,
            checksum: is_checksum(t),
            line: i,
            time_s: l.time,
            text: t.to_string(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(console: &str) -> CrashReport {
        let r = parse(console);
        assert_eq!(r.len(), 1, "{r:#?}");
        r.into_iter().next().unwrap()
    }

    #[test]
    fn stale_page_cache_after_direct_io_is_critical() {
        let m = fs_messages("[    6.077047] Page cache invalidation failure on direct I/O.  Possible data corruption due to collision with buffered I/O!\n");
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].fs.as_str(), m[0].severity),
            ("vfs", FsSeverity::Critical)
        );
    }

    #[test]
    fn line_prefixes() {
        let l = split_line("[    1.234567] hello\r");
        assert_eq!((l.text, l.time, l.caller), ("hello", Some(1.234567), None));
        let l = split_line("[   12.000001][  T123] BUG: x");
        assert_eq!((l.text, l.caller), ("BUG: x", Some("T123")));
        let l = split_line("[    0.100000] [    C0] x");
        assert_eq!((l.text, l.caller), ("x", Some("C0")));
        let l = split_line("<4>[    2.5] y");
        assert_eq!((l.text, l.time), ("y", Some(2.5)));
        // Mixed with a user program's output on the same line.
        let l = split_line("# [    3.250000] WARNING: CPU: 0");
        assert_eq!((l.text, l.time), ("WARNING: CPU: 0", Some(3.25)));
        // "[1.5]" in a user program's output is not a printk stamp.
        assert_eq!(split_line("score [1.5] ok").time, None);
        assert_eq!(split_line("no prefix").text, "no prefix");
    }

    #[test]
    fn warn_with_file_and_line() {
        let c = "\
[    9.100000] ------------[ cut here ]------------\n\
[    9.100001] WARNING: CPU: 1 PID: 57 at fs/ext4/inode.c:3587 ext4_dirty_folio+0x3d/0x60\n\
[    9.100002] Modules linked in:\n\
[    9.100003] CPU: 1 UID: 0 PID: 57 Comm: t Not tainted 6.12.17 #1\n\
[    9.100004] RIP: 0010:ext4_dirty_folio+0x3d/0x60\n\
[    9.100005] Call Trace:\n\
[    9.100006]  <TASK>\n\
[    9.100007]  ? __warn+0x7c/0x120\n\
[    9.100008]  folio_mark_dirty+0x2a/0x50\n\
[    9.100009]  </TASK>\n\
[    9.100010] ---[ end trace 0000000000000000 ]---\n\
[    9.200000] EXT4-fs (vda): mounted filesystem\n";
        let r = one(c);
        assert_eq!(r.kind, CrashKind::Warning);
        assert_eq!(r.title, "WARNING in ext4_dirty_folio");
        assert_eq!(r.line, 0);
        assert_eq!(r.time_s, Some(9.1));
        assert_eq!(r.excerpt.len(), 11);
        assert_eq!(r.excerpt[0], "------------[ cut here ]------------");
        assert!(r.excerpt[10].starts_with("---[ end trace"));
    }

    #[test]
    fn warn_without_file_and_line() {
        let c = "[ 1.0] WARNING: CPU: 0 PID: 1 at foo_bar.isra.0+0x1/0x2\n\
                 [ 1.1] ---[ end trace 0 ]---\n";
        assert_eq!(one(c).title, "WARNING in foo_bar");
        // No symbol at all: the RIP names it.
        let c = "[ 1.0] WARNING: CPU: 0 PID: 1 at 0x0\n[ 1.1] RIP: 0010:baz+0x1/0x2\n";
        assert_eq!(one(c).title, "WARNING in baz");
    }

    #[test]
    fn crlf_and_interleaved_lines() {
        let c = "[    5.000000] ------------[ cut here ]------------\r\n\
[    5.000001] WARNING: CPU: 1 PID: 57 at mm/gup.c:100 try_grab_folio+0x1/0x2\r\n\
[    5.000002] virtio_blk virtio0: [vda] 2048 512-byte logical blocks\r\n\
[    5.000003] RIP: 0010:try_grab_folio+0x1/0x2\r\n\
[    5.000004] Call Trace:\r\n\
[    5.000005]  gup_fast+0x1/0x2\r\n\
[    5.000006] ---[ end trace 0000000000000000 ]---\r\n";
        let r = one(c);
        assert_eq!(r.title, "WARNING in try_grab_folio");
        assert_eq!(r.excerpt.len(), 6, "{:?}", r.excerpt);
        assert!(r
            .excerpt
            .iter()
            .all(|l| !l.contains('\r') && !l.contains("virtio")));
        // With caller ids, another task's lines are left out even when they look like a body.
        let c =
            "[ 1.000000][  T57] BUG: kernel NULL pointer dereference, address: 0000000000000000\n\
                 [ 1.000001][  T12]  other_task_line+0x1/0x2\n\
                 [ 1.000002][  T57] RIP: 0010:lkdtm_EXCEPTION+0x1/0x2\n\
                 [ 1.000003][  T57] Oops: 0002 [#1] SMP\n";
        let r = one(c);
        assert_eq!(
            r.title,
            "BUG: unable to handle kernel NULL pointer dereference in lkdtm_EXCEPTION"
        );
        assert_eq!(r.excerpt.len(), 3);
    }

    #[test]
    fn kernel_bug_keeps_its_file() {
        let c = "[ 2.0] ------------[ cut here ]------------\n\
                 [ 2.0] kernel BUG at fs/ext4/inode.c:2620!\n\
                 [ 2.0] Oops: invalid opcode: 0000 [#1] SMP\n\
                 [ 2.0] RIP: 0010:mpage_prepare_extent_to_map+0x1/0x2\n\
                 [ 2.0] ---[ end trace 0000000000000000 ]---\n\
                 [ 2.0] RIP: 0010:mpage_prepare_extent_to_map+0x1/0x2\n\
                 [ 2.1] Kernel panic - not syncing: Fatal exception\n\
                 [ 2.1] ---[ end Kernel panic - not syncing: Fatal exception ]---\n";
        let r = one(c);
        assert_eq!(
            (r.kind, r.title.as_str()),
            (CrashKind::Bug, "kernel BUG at fs/ext4/inode.c")
        );
        // 6.1's form of the oops line.
        let c = "[ 2.0] kernel BUG at mm/filemap.c:1500!\n[ 2.0] invalid opcode: 0000 [#1] SMP\n";
        assert_eq!(one(c).title, "kernel BUG at mm/filemap.c");
    }

    #[test]
    fn page_faults_and_gpf() {
        let c = "[ 3.0] BUG: unable to handle page fault for address: ffffffffff600000\n\
                 [ 3.0] #PF: supervisor read access in kernel mode\n\
                 [ 3.0] Oops: 0000 [#1] SMP\n\
                 [ 3.0] RIP: 0010:topology_unit_count+0x10/0x40\n";
        let r = one(c);
        assert_eq!(r.kind, CrashKind::PageFault);
        assert_eq!(
            r.title,
            "BUG: unable to handle page fault in topology_unit_count"
        );
        let c = "[ 3.0] Oops: general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP\n\
                 [ 3.0] RIP: 0010:list_del+0x1/0x2\n\
                 [ 3.0] Call Trace:\n\
                 [ 3.0]  folio_end_writeback+0x1/0x2\n";
        let r = one(c);
        assert_eq!(r.kind, CrashKind::GeneralProtection);
        assert_eq!(r.title, "general protection fault in folio_end_writeback");
        let c = "[ 3.0] general protection fault: 0000 [#1] SMP\n[ 3.0] RIP: 0010:f+0x1/0x2\n";
        assert_eq!(one(c).title, "general protection fault in f");
        let c = "[ 3.0] Oops: divide error: 0000 [#1] SMP\n[ 3.0] RIP: 0010:g+0x1/0x2\n";
        assert_eq!(
            (one(c).kind, one(c).title),
            (CrashKind::Oops, "divide error in g".into())
        );
    }

    #[test]
    fn sanitizers() {
        let c = "[ 4.0] ==================================================================\n\
                 [ 4.0] BUG: KASAN: slab-use-after-free in ext4_foo+0x12/0x34\n\
                 [ 4.0] Read of size 8 at addr ffff888003a1b2c8 by task sh/57\n\
                 [ 4.0] Call Trace:\n\
                 [ 4.0]  kasan_report+0x1/0x2\n\
                 [ 4.0]  ext4_foo+0x12/0x34\n\
                 [ 4.0] ==================================================================\n\
                 [ 4.1] next\n";
        let r = one(c);
        assert_eq!((r.kind, r.line), (CrashKind::Kasan, 1));
        assert_eq!(r.title, "KASAN: slab-use-after-free Read in ext4_foo");
        assert_eq!(r.excerpt.len(), 6);
        let c = "[ 4.0] UBSAN: array-index-out-of-bounds in /root/.cache/pinvm/build/ab12/src/drivers/misc/lkdtm/bugs.c:406:16\n";
        assert_eq!(
            one(c).title,
            "UBSAN: array-index-out-of-bounds in drivers/misc/lkdtm/bugs.c"
        );
        let c = "[ 4.0] UBSAN: array-index-out-of-bounds in fs/x.c:12:5\n\
                 [ 4.0] index 8 is out of range for type 'char [8]'\n\
                 [ 4.0] ---[ end trace ]---\n";
        let r = one(c);
        assert_eq!(
            (r.kind, r.title.as_str()),
            (
                CrashKind::Ubsan,
                "UBSAN: array-index-out-of-bounds in fs/x.c"
            )
        );
    }

    #[test]
    fn hangs_and_stalls() {
        let c = "[ 20.0] INFO: task sh:57 blocked for more than 5 seconds.\n\
                 [ 20.0]       Not tainted 6.12.17 #1\n\
                 [ 20.0] \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.\n\
                 [ 20.0] task:sh state:D stack:0 pid:57\n\
                 [ 20.0] Call Trace:\n\
                 [ 20.0]  __schedule+0x1/0x2\n\
                 [ 20.0]  schedule+0x1/0x2\n\
                 [ 20.0]  folio_wait_bit_common+0x1/0x2\n\
                 [ 20.0]  folio_wait_writeback+0x1/0x2\n";
        let r = one(c);
        assert_eq!(
            (r.kind, r.title.as_str()),
            (
                CrashKind::HungTask,
                "INFO: task hung in folio_wait_bit_common"
            )
        );
        let c = "[ 30.0] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [sh:57]\n\
                 [ 30.0] RIP: 0010:spin+0x1/0x2\n\
                 [ 31.0] rcu: INFO: rcu_sched self-detected stall on CPU\n\
                 [ 31.0] rcu: \t1-....: (2100 ticks this GP)\n\
                 [ 31.0] RIP: 0010:spin+0x1/0x2\n";
        let r = parse(c);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].kind, r[0].title.as_str()),
            (CrashKind::SoftLockup, "BUG: soft lockup in spin")
        );
        assert_eq!(
            (r[1].kind, r[1].title.as_str()),
            (CrashKind::RcuStall, "INFO: rcu detected stall in spin")
        );
    }

    #[test]
    fn repeated_hang_reports_are_one() {
        let c = "[ 25.0] INFO: task sh:36 blocked for more than 5 seconds.\n\
                 [ 25.0] \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.\n\
                 [ 30.0] INFO: task sh:36 blocked for more than 10 seconds.\n\
                 [ 30.0] \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.\n\
                 [ 30.0] INFO: task kworker/0:1:12 blocked for more than 10 seconds.\n";
        let r = parse(c);
        assert_eq!(r.len(), 2, "{r:#?}");
        assert_eq!((r[0].line, r[0].excerpt.len(), r[1].line), (0, 2, 4));
        let c = "[ 30.0] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [sh:57]\n\
                 [ 30.0] RIP: 0010:spin+0x1/0x2\n\
                 [ 58.0] watchdog: BUG: soft lockup - CPU#1 stuck for 48s! [sh:57]\n\
                 [ 58.0] RIP: 0010:spin+0x1/0x2\n";
        assert_eq!(parse(c).len(), 1);
    }

    #[test]
    fn panics_fold_or_stand_alone() {
        let c = "[ 5.0] sysrq: Trigger a crash\n\
                 [ 5.0] Kernel panic - not syncing: sysrq triggered crash\n\
                 [ 5.0] CPU: 0 PID: 57 Comm: sh\n\
                 [ 5.0] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---\n";
        let r = one(c);
        assert_eq!(
            (r.kind, r.title.as_str()),
            (CrashKind::Panic, "kernel panic: sysrq triggered crash")
        );
        assert_eq!(r.line, 1);
        let c = "[ 5.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n";
        assert_eq!(
            one(c).title,
            "kernel panic: Attempted to kill init! exitcode=ADDR"
        );
        let c = "[ 5.0] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n";
        assert_eq!(
            one(c).title,
            "kernel panic: VFS: Unable to mount root fs on unknown-block(NUM,NUM)"
        );
    }

    #[test]
    fn not_crashes() {
        assert!(parse("[ 0.1] BUG: arch topology borken\n[ 0.1]      the SMT domain not a subset of the MC domain\n").is_empty());
        assert!(parse("DEBUG: value\nDEBUGGING BUG\n").is_empty());
        // A user program printing "BUG: " on a console the kernel stamps.
        assert!(parse("[ 1.0] hello\nBUG: not the kernel\n").is_empty());
        assert!(parse("[ 1.0] WARNING: this is deprecated\n").is_empty());
        assert!(parse("[ 1.0] ------------[ cut here ]------------\n[ 1.0] x\n").is_empty());
        assert!(parse("").is_empty());
    }

    #[test]
    fn other_bugs_and_lockdep() {
        let c = "[ 1.0] BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580\n\
                 [ 1.0] in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 57, name: sh\n\
                 [ 1.0] Call Trace:\n\
                 [ 1.0]  __might_resched+0x1/0x2\n";
        assert_eq!(
            one(c).title,
            "BUG: sleeping function called from invalid context in __might_resched"
        );
        let c = "[ 1.0] BUG: scheduling while atomic: sh/57/0x00000002\n";
        assert_eq!(one(c).title, "BUG: scheduling while atomic");
        let c = "[ 1.0] BUG: Bad page state in process sh  pfn:01234\n[ 1.0] RIP: 0010:free_pages_prepare+0x1/0x2\n";
        assert_eq!(one(c).title, "BUG: Bad page state in free_pages_prepare");
        let c = "[ 1.0] WARNING: possible circular locking dependency detected\n\
                 [ 1.0] Call Trace:\n[ 1.0]  ext4_writepages+0x1/0x2\n";
        assert_eq!(
            (one(c).kind, one(c).title),
            (
                CrashKind::Warning,
                "possible deadlock in ext4_writepages".into()
            )
        );
    }

    #[test]
    fn excerpt_is_capped() {
        let mut c = String::from("[ 1.0] WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2\n");
        for _ in 0..100 {
            c.push_str("[ 1.0]  g+0x1/0x2\n");
        }
        assert_eq!(one(&c).excerpt.len(), MAX_EXCERPT);
    }

    #[test]
    fn normalization() {
        assert_eq!(
            normalize("CPU#3 stuck at fs/x.c:12 0xffff 12345678abc"),
            "CPU stuck at fs/x.c ADDR ADDR"
        );
        assert_eq!(normalize("dumptest"), "dumptest");
        assert_eq!(normalize("é 12 ü"), "é NUM ü");
        assert_eq!(
            normalize("Fatal exception in interrupt"),
            "Fatal exception in interrupt"
        );
    }

    #[test]
    fn filesystem_messages() {
        let c = "\
[    7.000000] EXT4-fs (vda): mounted filesystem 1234 r/w with ordered data mode\r\n\
[    7.100000] EXT4-fs warning (device vda): mpage_prepare_extent_to_map:2526: inode #12: comm x: page 3 does not have buffers attached\r\n\
[    7.200000] EXT4-fs error (device vda): ext4_validate_block_bitmap:421: comm x: bg 0: bad block bitmap checksum\n\
[    7.300000] Aborting journal on device vda-8.\n\
[    7.400000] JBD2: Invalid checksum recovering data block 1234 in log\n\
[    7.500000] BTRFS warning (device vda): csum failed root 5 ino 257 off 0 csum 0x8941f998 expected csum 0x1234 mirror 1\n\
[    7.600000] BTRFS error (device vda): bdev /dev/vda errs: wr 0, rd 0, flush 0, corrupt 1, gen 0\n\
[    7.700000] BTRFS critical (device vda): corrupt leaf: root=1 block=30408704 slot=0\n\
[    7.750000] BTRFS info (device vda): first mount of filesystem\n\
[    7.800000] XFS (vda): Metadata corruption detected at xfs_buf_ioend+0x1/0x2, xfs_inode block 0x20\n\
[    7.810000] XFS (vda): Metadata CRC error detected at xfs_dir3_block_read_verify+0x1/0x2, xfs_dir3_block block 0x40\n\
[    7.820000] XFS (vda): Corruption of in-memory data (0x8) detected at xfs_trans_cancel+0x1/0x2. Shutting down filesystem.\n\
[    7.830000] XFS (vda): Mounting V5 Filesystem\n\
[    7.900000] I/O error, dev vda, sector 2048 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 0\n\
[    7.910000] blk_update_request: I/O error, dev vda, sector 8 op 0x0:(READ) flags 0x0\n\
EXT4-fs error printed by a user program\n";
        let m = fs_messages(c);
        let got: Vec<(&str, FsSeverity, bool, usize)> = m
            .iter()
            .map(|m| (m.fs.as_str(), m.severity, m.checksum, m.line))
            .collect();
        use FsSeverity::*;
        assert_eq!(
            got,
            vec![
                ("ext4", Warning, false, 1),
                ("ext4", Error, true, 2),
                ("jbd2", Error, false, 3),
                ("jbd2", Error, true, 4),
                ("btrfs", Warning, true, 5),
                ("btrfs", Error, false, 6),
                ("btrfs", Critical, false, 7),
                ("xfs", Error, false, 9),
                ("xfs", Error, true, 10),
                ("xfs", Critical, false, 11),
                ("block", Error, false, 13),
                ("block", Error, false, 14),
            ]
        );
        assert_eq!(m[0].time_s, Some(7.1));
        assert!(m[0]
            .text
            .starts_with("EXT4-fs warning (device vda): mpage_prepare_extent_to_map"));
        assert!(!m[0].text.ends_with('\r'));
    }
}
