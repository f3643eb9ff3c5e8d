//! Title rules for each kind of report header: the title's fixed words and where its
//! function comes from, following syzkaller's formats (its `pkg/report`) so that pinvm's
//! titles match syzbot's. Lockdep's reports are in `lockdep`.

use super::frames::{function_at, pc_frame};
use super::lockdep;
use super::pick::Pick;
use super::stack::{rip_then_trace, stated, trace, warning, Part, Stack};

/// How a title is made: `base`, then " in <function>" and `suffix` when a function is found.
#[derive(Debug)]
pub(super) struct Rule {
    pub(super) base: String,
    pub(super) func: Func,
    pub(super) suffix: &'static str,
}

/// Where a title's function comes from.
#[derive(Debug)]
pub(super) enum Func {
    /// The title has none.
    None,
    /// The header names it.
    Known(String),
    /// The report's stack, read by these rules.
    Stack(&'static Stack),
    /// The report's stack, else the function the header names (a WARNING without
    /// DEBUG_BUGVERBOSE's file and line: `WARNING: CPU: 0 PID: 1 at f+0x1/0x2`).
    StackOr(&'static Stack, String),
}

impl Rule {
    pub(super) fn fixed(base: impl Into<String>) -> Rule {
        Rule {
            base: base.into(),
            func: Func::None,
            suffix: "",
        }
    }
    pub(super) fn stack(base: impl Into<String>, stack: &'static Stack) -> Rule {
        Rule {
            base: base.into(),
            func: Func::Stack(stack),
            suffix: "",
        }
    }
}

/// The rule for a header line (from its keyword on), `None` for a line that is no header.
pub(super) fn rule(h: &str, lines: &[&str]) -> Option<Rule> {
    if let Some(rest) = h.strip_prefix("BUG: ") {
        return Some(bug(rest, h, lines));
    }
    if let Some(rest) = h.strip_prefix("WARNING: ") {
        return lockdep::warning(rest).or_else(|| warn_on(rest));
    }
    if let Some(rest) = h.strip_prefix("INFO: ") {
        return lockdep::info(rest).or_else(|| hang_or_stall(rest));
    }
    if let Some(msg) = h.strip_prefix("Kernel panic - not syncing: ") {
        return Some(panic(msg.trim()));
    }
    if let Some(rest) = h.strip_prefix("UBSAN: ") {
        return Some(ubsan(rest));
    }
    if let Some(rest) = h.strip_prefix("kernel BUG at ") {
        return Some(kernel_bug(rest));
    }
    if let Some(rest) = h.strip_prefix("Kernel BUG ") {
        return Some(Rule::fixed(format!("kernel BUG {rest}")));
    }
    oops(h)
}

static RIP_TRACE: Stack = rip_then_trace(&[], Pick::First);
static RIP_ONLY: Stack = Stack {
    parts: &[Part::Rip],
    ..RIP_TRACE
};
static STALL: Stack = rip_then_trace(&[], Pick::Stall);
static TRACE: Stack = trace(&[]);

/// x86 exceptions and the other one-line oops headers.
fn oops(h: &str) -> Option<Rule> {
    let h = h.trim_start_matches("Oops: ");
    let table: &[(&str, &str, &'static Stack)] = &[
        (
            "general protection fault",
            "general protection fault",
            &RIP_TRACE,
        ),
        ("stack segment: ", "stack segment fault", &RIP_TRACE),
        ("PANIC: double fault", "PANIC: double fault", &RIP_ONLY),
        ("divide error: ", "divide error", &RIP_ONLY),
        ("divide_error: ", "divide error", &RIP_ONLY),
        ("invalid opcode: ", "invalid opcode", &RIP_ONLY),
        ("int3: ", "int3", &RIP_TRACE),
    ];
    if let Some((_, base, stack)) = table.iter().find(|(p, _, _)| h.starts_with(p)) {
        return Some(Rule::stack(*base, stack));
    }
    let fixed: &[(&str, &str)] = &[
        (
            "unregister_netdevice: waiting for ",
            "unregister_netdevice: waiting for DEV to become free",
        ),
        (
            "VFS: Close: file count is 0",
            "VFS: Close: file count is zero (use-after-free)",
        ),
        (
            "VFS: Busy inodes after unmount",
            "VFS: Busy inodes after unmount (use-after-free)",
        ),
    ];
    if let Some((_, t)) = fixed.iter().find(|(p, _)| h.starts_with(p)) {
        return Some(Rule::fixed(*t));
    }
    // Any other oops ("Oops: 0002 [#1]"): its class and the faulting function.
    h.starts_with("Oops")
        .then(|| Rule::stack("Oops", &RIP_TRACE))
}

/// `kernel BUG at <file>:<line>!`: the function that hit BUG() (skb helpers' BUG_ONs are
/// their callers' bugs), or the checker's own class for the list and usercopy checks.
fn kernel_bug(rest: &str) -> Rule {
    static USERCOPY: Stack = trace(&["usercopy", "__check"]);
    static BUG_ON: Stack = rip_then_trace(&["^skb_"], Pick::First);
    if rest.starts_with("mm/usercopy.c") {
        Rule::stack("BUG: bad usercopy", &USERCOPY)
    } else if rest.starts_with("lib/list_debug.c") {
        Rule::stack("BUG: corrupted list", &TRACE)
    } else {
        Rule::stack("kernel BUG", &BUG_ON)
    }
}

/// `WARNING: CPU: 0 PID: 1 at fs/x.c:12 f+0x1/0x2` (and 6.18's `WARNING: fs/x.c:12 at
/// 0x1234, CPU#0: comm/1`): WARN_ON()s, with the class of the checker that warned when it is
/// one of the generic ones (refcount, kobject, debugobjects, ...).
fn warn_on(rest: &str) -> Option<Rule> {
    if !(rest.starts_with("CPU: ") || has_src_at(rest)) {
        return None;
    }
    static ODEBUG: Stack = warning(&[
        "debug_",
        "rcu",
        "hrtimer_",
        "timer_",
        "work_",
        "percpu_",
        "vunmap",
        "vfree",
        "__free_",
        "debug_check",
        "kobject_",
    ]);
    static USERCOPY: Stack = warning(&["usercopy", "__check"]);
    static KOBJECT: Stack = warning(&["kobject_"]);
    static PROC: Stack = warning(&["proc_"]);
    static REFCOUNT: Stack = warning(&["refcount", "kobject_"]);
    static LOCKDEP: Stack = warning(&["lock_sock", "release_sock"]);
    static KMALLOC: Stack = warning(&["kmalloc", "krealloc", "slab", "kmem"]);
    static URB: Stack = warning(&[
        "usb_submit_urb",
        "usb_start_wait_urb",
        "usb_bulk_msg",
        "usb_interrupt_msg",
        "usb_control_msg",
    ]);
    static PLAIN: Stack = warning(&[]);
    let checkers: &[(&str, &[&str], &str, &'static Stack)] = &[
        (
            "lib/debugobjects.c",
            &[" debug_print", " debug_check", " at"],
            "WARNING: ODEBUG bug",
            &ODEBUG,
        ),
        (
            "mm/usercopy.c",
            &[" usercopy_warn", " at"],
            "WARNING: bad usercopy",
            &USERCOPY,
        ),
        (
            "lib/kobject.c",
            &[" kobject_", " at"],
            "WARNING: kobject bug",
            &KOBJECT,
        ),
        (
            "fs/proc/generic.c",
            &[" proc_register", " at"],
            "WARNING: proc registration bug",
            &PROC,
        ),
        (
            "lib/refcount.c",
            &[" refcount_", " at"],
            "WARNING: refcount bug",
            &REFCOUNT,
        ),
        (
            "kernel/locking/lockdep.c",
            &["lock_"],
            "WARNING: locking bug",
            &LOCKDEP,
        ),
    ];
    for (file, then, base, stack) in checkers {
        if file_then(rest, file, then) {
            return Some(Rule::stack(*base, stack));
        }
    }
    if mm_kmalloc(rest) {
        return Some(Rule::stack("WARNING: kmalloc bug", &KMALLOC));
    }
    if file_then(rest, "mm/vmalloc.c", &["__vmalloc_node"]) {
        return Some(Rule::stack("WARNING: zero-size vmalloc", &PLAIN));
    }
    if rest.contains(" usb_submit_urb") {
        return Some(Rule {
            base: "WARNING".into(),
            func: Func::Stack(&URB),
            suffix: "/usb_submit_urb",
        });
    }
    let named = rest
        .split_once(" at ")
        .and_then(|(_, at)| function_at(at.trim_start()));
    Some(Rule {
        base: "WARNING".into(),
        func: match named {
            Some(f) if !has_src_at(rest) && !rest.contains(".c:") => {
                Func::StackOr(&PLAIN, f.to_string())
            }
            _ => Func::Stack(&PLAIN),
        },
        suffix: "",
    })
}

/// `file` occurs in `s`, and one of `then` after it.
fn file_then(s: &str, file: &str, then: &[&str]) -> bool {
    s.find(file)
        .is_some_and(|i| then.iter().any(|t| s[i + file.len()..].contains(t)))
}

/// A warning in `mm/*.c` raised by a kmalloc-family function (` kmalloc`, ` kvmalloc`,
/// ` vmalloc`, ...).
fn mm_kmalloc(s: &str) -> bool {
    let Some(mm) = s.find("mm/") else {
        return false;
    };
    let after = &s[mm..];
    let Some(c) = after.find(".c") else {
        return false;
    };
    // "malloc" after a space, an optional "k" and at most one more character.
    let malloc_soon = |w: &str| {
        w.starts_with("malloc")
            || w.char_indices()
                .nth(1)
                .is_some_and(|(j, _)| w[j..].starts_with("malloc"))
    };
    after[c..].match_indices(' ').any(|(i, _)| {
        let w = &after[c + i + 1..];
        malloc_soon(w) || w.strip_prefix('k').is_some_and(malloc_soon)
    })
}

/// `fs/x.c:12 at ...` or `[...] fs/x.c:12 at ...` at the start: the file and line of a
/// WARN_ON() in the newer formats that do not start with `CPU:`.
fn has_src_at(rest: &str) -> bool {
    let rest = match rest.strip_prefix('[') {
        Some(r) => r.split_once("] ").map_or(r, |(_, after)| after),
        None => rest,
    };
    let Some((src, _)) = rest.split_once(" at ") else {
        return false;
    };
    let Some((file, line)) = src.rsplit_once(':') else {
        return false;
    };
    !line.is_empty()
        && line.bytes().all(|c| c.is_ascii_digit())
        && file.contains('.')
        && file
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_/.".contains(&c))
}

/// `INFO: task X blocked for more than N seconds.`, `INFO: task X can't die ...` and RCU's
/// stall reports.
fn hang_or_stall(rest: &str) -> Option<Rule> {
    static HANG: Stack = Stack {
        pick: Pick::Hang,
        ..trace(&[])
    };
    static CANT_DIE: Stack = trace(&["schedule"]);
    static RCU: Stack = Stack {
        parts: &[Part::Line(timer_interrupt), Part::Rip, Part::Trace],
        fallback: &[Part::Line(stall_irq_entry), Part::Trace],
        skip: &["apic_timer_interrupt", "rcu"],
        pick: Pick::Stall,
        filtered: true,
    };
    if let Some(task) = rest.strip_prefix("task ") {
        if task.contains(" blocked for more than ")
            || task.contains(" blocked in I/O wait for more than ")
        {
            return Some(Rule::stack("INFO: task hung", &HANG));
        }
        if task.contains(" can't die for more than ") {
            return Some(Rule::stack("INFO: task can't die", &CANT_DIE));
        }
        return None;
    }
    let flavour = ["rcu_preempt ", "rcu_sched ", "rcu_bh ", "rcu_tasks "]
        .iter()
        .find_map(|f| rest.strip_prefix(f))?;
    let flavour = flavour.strip_prefix("self-").unwrap_or(flavour);
    (flavour.starts_with("detected stall") || flavour.starts_with("detected expedited stall"))
        .then(|| Rule::stack("INFO: rcu detected stall", &RCU))
}

fn timer_interrupt(line: &str) -> bool {
    line.contains("apic_timer_interrupt")
}

fn stall_irq_entry(line: &str) -> bool {
    timer_interrupt(line) || line.contains("Exception stack") || line.contains("el1h_64_irq")
}

/// `Kernel panic - not syncing: <msg>`.
fn panic(msg: &str) -> Rule {
    static STACK_CHK: Stack = trace(&["stack_chk"]);
    static STACK_END: Stack = Stack {
        pick: Pick::Stall,
        ..trace(&["schedule", "retint_kernel"])
    };
    static OVERFLOW: Stack = Stack {
        pick: Pick::Stall,
        ..trace(&["bad_stack"])
    };
    if let Some(r) = msg.strip_prefix("stack-protector: Kernel stack is corrupted in: ") {
        return match function_at(r) {
            Some(f) => Rule {
                base: "kernel panic: stack is corrupted".into(),
                func: Func::Known(f.to_string()),
                suffix: "",
            },
            None => Rule::stack("kernel panic: stack is corrupted", &STACK_CHK),
        };
    }
    if msg.starts_with("corrupted stack end") {
        return Rule::stack("kernel panic: corrupted stack end", &STACK_END);
    }
    if msg.starts_with("kernel stack overflow") {
        return Rule::stack("kernel stack overflow", &OVERFLOW);
    }
    for short in ["Attempted to kill init!", "Couldn't open N_TTY ldisc"] {
        if msg.starts_with(short) {
            return Rule::fixed(format!("kernel panic: {short}"));
        }
    }
    Rule::fixed(format!("kernel panic: {msg}"))
}

/// `UBSAN: <what> in <file>:<line>:<col>`: the function the check fired in.
fn ubsan(rest: &str) -> Rule {
    static UBSAN: Stack = trace(&["ubsan", "overflow"]);
    if rest.starts_with("Undefined behaviour in") {
        return Rule::stack("UBSAN: undefined-behaviour", &UBSAN);
    }
    match rest.split_once(" in") {
        Some((what, _)) => Rule::stack(format!("UBSAN: {what}"), &UBSAN),
        None => Rule::fixed(format!("UBSAN: {rest}")),
    }
}

/// `BUG: <what>`.
fn bug(rest: &str, h: &str, lines: &[&str]) -> Rule {
    if let Some(r) = sanitizer(rest, lines) {
        return r;
    }
    if let Some(r) = bad_access(rest) {
        return r;
    }
    if let Some(r) = lockdep::bug(rest) {
        return r;
    }
    bug_other(rest, h)
}

/// KASAN, KMSAN, KCSAN and KFENCE reports.
fn sanitizer(rest: &str, lines: &[&str]) -> Option<Rule> {
    if let Some(r) = rest.strip_prefix("KASAN: ") {
        return Some(super::sanitizers::kasan(r, lines));
    }
    if let Some(r) = rest.strip_prefix("KMSAN: ") {
        return Some(super::sanitizers::kmsan(r));
    }
    if let Some(r) = rest.strip_prefix("KCSAN: ") {
        return Some(Rule::fixed(format!("KCSAN: {r}")));
    }
    rest.strip_prefix("KFENCE: ").map(super::sanitizers::kfence)
}

/// Page faults in the kernel.
fn bad_access(rest: &str) -> Option<Rule> {
    let paging = [
        "unable to handle kernel paging request",
        "unable to handle page fault for address",
        "Unable to handle kernel data access",
    ];
    if paging.iter().any(|p| rest.starts_with(p)) {
        return Some(Rule::stack(
            "BUG: unable to handle kernel paging request",
            &RIP_TRACE,
        ));
    }
    let null = [
        "unable to handle kernel NULL pointer dereference",
        "kernel NULL pointer dereference",
        "Kernel NULL pointer dereference",
    ];
    if null.iter().any(|p| rest.starts_with(p)) {
        return Some(Rule::stack(
            "BUG: unable to handle kernel NULL pointer dereference",
            &RIP_TRACE,
        ));
    }
    (rest.starts_with("unable to handle kernel") || rest.starts_with("Unable to handle kernel"))
        .then(|| Rule::fixed("BUG: unable to handle kernel"))
}

/// The other `BUG: ` reports.
fn bug_other(rest: &str, h: &str) -> Rule {
    static SCHED: Stack = trace(&["schedule"]);
    static PREEMPT: Stack = trace(&[
        "dump_stack",
        "preemption",
        "preempt",
        "debug_",
        "processor_id",
        "this_cpu",
    ]);
    static BAD_PAGE: Stack = Stack {
        parts: &[Part::Line(page_last_allocated), Part::Trace],
        ..trace(&[
            "free_page",
            "put_page",
            "get_page",
            "update_page",
            "release_page",
            "free_unref",
            "^folio",
            "^_folio",
            "^__folio",
            "truncate_inode_pages",
            "page_frag_free",
            "alloc",
            "vmap",
            "page_owner",
        ])
    };
    static LEAK: Stack = Stack {
        parts: &[Part::Line(leak_backtrace), Part::Trace],
        ..trace(&[
            "kmemleak",
            "mmap",
            "kmem",
            "slab",
            "alloc",
            "create_object",
            "idr_get",
            "list_lru_init",
            "kasprintf",
            "kvasprintf",
            "pcpu_create",
            "strdup",
            "strndup",
            "memdup",
        ])
    };
    static LAST_FUNCTION: Stack = stated(&[Part::Frame(last_function)]);
    if rest.starts_with("soft lockup") {
        return Rule::stack("BUG: soft lockup", &STALL);
    }
    if rest.contains("stack guard page was hit at") {
        return Rule::stack("BUG: stack guard page was hit", &STALL);
    }
    if rest.starts_with("scheduling while atomic") {
        return Rule::stack("BUG: scheduling while atomic", &SCHED);
    }
    if rest.starts_with("sleeping function called from invalid context at ") {
        return Rule::stack("BUG: sleeping function called from invalid context", &TRACE);
    }
    if let Some(f) = rest
        .strip_prefix("using ")
        .and_then(|r| r.split_once("() in preemptible"))
    {
        if !f.0.is_empty() && f.0.bytes().all(|c| c.is_ascii_lowercase() || c == b'_') {
            return Rule::stack(
                format!("BUG: using {}() in preemptible code", f.0),
                &PREEMPT,
            );
        }
    }
    if rest.starts_with("Bad page state") || rest.starts_with("Bad page cache") {
        return Rule::stack(format!("BUG: {}", &rest[..14]), &BAD_PAGE);
    }
    if rest.starts_with("memory leak") {
        return Rule::stack("memory leak", &LEAK);
    }
    if rest.starts_with("workqueue leaked lock or atomic") {
        return Rule::stack("BUG: workqueue leaked lock or atomic", &LAST_FUNCTION);
    }
    if rest.starts_with("Dentry ")
        && rest.contains(" still in use")
        && rest.contains("[unmount of ")
    {
        return Rule::fixed("BUG: Dentry still in use in unmount");
    }
    let fixed = [
        "Bad rss-counter state",
        "non-zero nr_ptes on freeing mm",
        "non-zero nr_pmds on freeing mm",
        "Bad page map",
        "workqueue lockup",
    ];
    if let Some(f) = fixed.iter().find(|f| rest.starts_with(*f)) {
        return Rule::fixed(format!("BUG: {f}"));
    }
    if rest.trim().is_empty() {
        return Rule::fixed("BUG: corrupted");
    }
    Rule::fixed(h)
}

fn page_last_allocated(line: &str) -> bool {
    line.contains("page last allocated")
}

/// kmemleak's `backtrace:` / `backtrace (crc 1a2b):`.
fn leak_backtrace(line: &str) -> bool {
    line.match_indices("backtrace").any(|(i, _)| {
        let r = &line[i + "backtrace".len()..];
        r.starts_with(':')
            || r.strip_prefix(" (crc ").is_some_and(|c| {
                let n = c.bytes().take_while(u8::is_ascii_hexdigit).count();
                c[n..].starts_with("):")
            })
    })
}

/// `last function: foo` (the work item a workqueue ran when it leaked a lock).
fn last_function(line: &str) -> Option<&str> {
    let (_, f) = line.split_once("last function: ")?;
    let f = f.trim_end();
    (!f.is_empty() && f.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')).then_some(f)
}

/// The function after the first bracketed address (old lockdep's `[<ffffffff81234567>]
/// foo+0x1/0x2` lines), then the call trace.
pub(super) static PC_THEN_TRACE: Stack = Stack {
    parts: &[
        Part::Frame(pc_frame),
        Part::Line(super::stack::is_call_trace),
        Part::Trace,
    ],
    ..RIP_TRACE
};
