//! Title rules for each kind of report header: the title's fixed words and where its
//! function comes from, following syzkaller's formats (its `pkg/report`) so that pinvm's
//! titles match syzbot's. This module: the dispatch, oopses, `kernel BUG at`, panics and UBSAN;
//! the others are in `bugs` (`BUG: ...`), `warnings` (WARN_ON), `stalls` (hangs and RCU
//! stalls), `lockdep` and `sanitizers`.

use super::frames::{function_at, pc_frame};
use super::pick::Pick;
use super::stack::{rip_then_trace, trace, Part, Stack};
use super::{bugs, lockdep, stalls, warnings};

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
        return Some(bugs::bug(rest, h, lines));
    }
    if let Some(rest) = h.strip_prefix("WARNING: ") {
        return lockdep::warning(rest).or_else(|| warnings::warn_on(rest));
    }
    if let Some(rest) = h.strip_prefix("INFO: ") {
        return lockdep::info(rest).or_else(|| stalls::hang_or_stall(rest));
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

pub(super) static RIP_TRACE: Stack = rip_then_trace(&[], Pick::First);
static RIP_ONLY: Stack = Stack {
    parts: &[Part::Rip],
    ..RIP_TRACE
};
pub(super) static STALL: Stack = rip_then_trace(&[], Pick::Stall);
pub(super) static TRACE: Stack = trace(&[]);

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
