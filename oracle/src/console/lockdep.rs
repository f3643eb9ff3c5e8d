//! Title rules for lockdep's and RCU-lockdep's reports (`WARNING: possible circular locking
//! dependency detected`, `INFO: inconsistent lock state`, `BUG: held lock freed!`, ...):
//! the function is the one lockdep says took or released the lock (its `at:` lines), or the
//! first frame of the call trace that is not locking code.

use super::frames::{at_frame, pc_frame};
use super::rules::{Func, Rule, PC_THEN_TRACE};
use super::stack::{self, stated, trace, Part, Stack};

static CIRCULAR: Stack = Stack {
    parts: &[Part::Frame(at_frame), Part::Frame(at_frame), Part::Trace],
    ..trace(&[
        "process_one_work",
        "flush_workqueue",
        "drain_workqueue",
        "destroy_workqueue",
    ])
};
static ACQUIRING: Stack = stated(&[Part::Line(trying_to_acquire), Part::Frame(at_frame)]);
static INVERSION: Stack = stated(&[Part::Line(changed_state), Part::Frame(at_frame)]);
static TAKES: Stack = stated(&[Part::Line(takes), Part::Frame(at_frame)]);
static SAFE_UNSAFE: Stack = Stack {
    parts: &[Part::Line(which_became), Part::Trace],
    ..trace(&[])
};
static HELD_FREED: Stack = stated(&[Part::Frame(at_frame)]);
static HELD_FREED_PC: Stack = stated(&[Part::Frame(pc_frame)]);
static RETURNING: Stack = stated(&[Part::Line(still_held), Part::Frame(at_frame)]);
static RCU: Stack = trace(&["rcu", "kmem", "slab"]);
static CALL_TRACE: Stack = trace(&[]);
static PLAIN_WARNING: Stack = stack::warning(&[]);
static NON_STATIC_KEY: Stack = trace(&["stack", "lock", "IRQ"]);
static SPINLOCK: Stack = trace(&["spin_", "_lock", "_unlock"]);
static WAIT_CONTEXT: Stack = trace(&["lock_sock", "release_sock"]);

fn trying_to_acquire(l: &str) -> bool {
    l.contains("is trying to acquire")
}
fn changed_state(l: &str) -> bool {
    l.contains("just changed the state of lock")
}
fn takes(l: &str) -> bool {
    l.contains("takes")
}
fn which_became(l: &str) -> bool {
    l.contains("which became ") && l.contains(" at:")
}
fn still_held(l: &str) -> bool {
    l.contains("leaving the kernel with locks still held")
}

/// `WARNING: <lockdep report>`.
pub(super) fn warning(rest: &str) -> Option<Rule> {
    let table: &[(&str, &str, &'static Stack)] = &[
        (
            "possible circular locking dependency detected",
            "possible deadlock",
            &CIRCULAR,
        ),
        (
            "possible irq lock inversion dependency detected",
            "possible deadlock",
            &INVERSION,
        ),
        (
            "possible recursive locking detected",
            "possible deadlock",
            &ACQUIRING,
        ),
        (
            "inconsistent lock state",
            "inconsistent lock state",
            &CALL_TRACE,
        ),
        (
            "suspicious RCU usage",
            "WARNING: suspicious RCU usage",
            &RCU,
        ),
        (
            "bad unlock balance detected!",
            "WARNING: bad unlock balance",
            &PC_THEN_TRACE,
        ),
        ("held lock freed!", "WARNING: held lock freed", &HELD_FREED),
        (
            "Nested lock was not taken",
            "WARNING: nested lock was not taken",
            &PLAIN_WARNING,
        ),
        (
            "lock held when returning to user space",
            "WARNING: lock held when returning to user space",
            &RETURNING,
        ),
    ];
    if let Some((_, base, stack)) = table.iter().find(|(h, _, _)| rest.starts_with(h)) {
        return Some(Rule::stack(*base, stack));
    }
    if rest.contains("still has locks held!") {
        return Some(Rule::stack("WARNING: still has locks held", &HELD_FREED));
    }
    if let Some((a, b)) = rest.split_once("-safe -> ") {
        if !a.contains(' ') && b.contains("-unsafe lock order detected") {
            return Some(Rule::stack("possible deadlock", &SAFE_UNSAFE));
        }
    }
    stack_check(rest)
}

/// The unwinder's complaints: `kernel stack regs at <addr> in <task> has bad '<reg>' value`
/// and `kernel stack frame pointer at <addr> in <task> has bad value`.
/// Without the address (hashed to "(ptrval)"), both are one title.
fn stack_check(rest: &str) -> Option<Rule> {
    let generic = "WARNING: kernel stack regs has bad value";
    let with_address = |r: &str| r.bytes().next().is_some_and(|c| c.is_ascii_hexdigit());
    if let Some(r) = rest.strip_prefix("kernel stack regs at ") {
        let reg = rest
            .split_once(" has bad '")
            .and_then(|(_, r)| r.split_once("' value"))
            .map(|(reg, _)| reg)?;
        return Some(Rule::fixed(if with_address(r) {
            format!("WARNING: kernel stack regs has bad '{reg}' value")
        } else {
            generic.to_string()
        }));
    }
    let r = rest.strip_prefix("kernel stack frame pointer at ")?;
    rest.contains(" has bad value").then(|| {
        Rule::fixed(if with_address(r) {
            "WARNING: kernel stack frame pointer has bad value"
        } else {
            generic
        })
    })
}

/// `INFO: <lockdep report>` (old kernels' form) and lockdep's other INFO reports.
pub(super) fn info(rest: &str) -> Option<Rule> {
    let table: &[(&str, &str, &'static Stack)] = &[
        (
            "possible circular locking dependency detected",
            "possible deadlock",
            &ACQUIRING,
        ),
        (
            "possible irq lock inversion dependency detected",
            "possible deadlock",
            &INVERSION,
        ),
        (
            "SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected",
            "possible deadlock",
            &ACQUIRING,
        ),
        (
            "possible recursive locking detected",
            "possible deadlock",
            &ACQUIRING,
        ),
        ("inconsistent lock state", "inconsistent lock state", &TAKES),
        (
            "trying to register non-static key",
            "INFO: trying to register non-static key",
            &NON_STATIC_KEY,
        ),
        ("suspicious RCU usage", "INFO: suspicious RCU usage", &RCU),
    ];
    table
        .iter()
        .find(|(h, _, _)| rest.starts_with(h))
        .map(|(_, base, stack)| Rule::stack(*base, stack))
}

/// `BUG: <lockdep or spinlock-debug report>`.
pub(super) fn bug(rest: &str) -> Option<Rule> {
    for lock in ["spinlock ", "rwlock "] {
        if let Some(what) = rest.strip_prefix(lock) {
            let kinds = [
                "lockup suspected",
                "already unlocked",
                "recursion",
                "cpu recursion",
                "bad magic",
                "wrong owner",
                "wrong CPU",
                "trylock failure on UP",
            ];
            if let Some(k) = kinds.iter().find(|k| what.starts_with(*k)) {
                return Some(Rule::stack(format!("BUG: {lock}{k}"), &SPINLOCK));
            }
        }
    }
    let table: &[(&str, &str, &'static Stack)] = &[
        (
            "lock held when returning to user space",
            "BUG: lock held when returning to user space",
            &RETURNING,
        ),
        (
            "bad unlock balance detected!",
            "BUG: bad unlock balance",
            &PC_THEN_TRACE,
        ),
        ("held lock freed!", "BUG: held lock freed", &HELD_FREED_PC),
        (
            "Invalid wait context",
            "WARNING: locking bug",
            &WAIT_CONTEXT,
        ),
    ];
    if let Some((_, base, stack)) = table.iter().find(|(h, _, _)| rest.starts_with(h)) {
        return Some(Rule::stack(*base, stack));
    }
    rest.contains("still has locks held!").then(|| Rule {
        base: "BUG: still has locks held".into(),
        func: Func::Stack(&HELD_FREED_PC),
        suffix: "",
    })
}
