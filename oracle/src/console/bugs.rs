//! Title rules for `BUG: ...` reports: sanitizers, kernel page faults, soft lockups, bad
//! pages, kmemleak, preemption and scheduling checks, and the fixed-text ones.

use super::lockdep;
use super::rules::{Rule, RIP_TRACE, STALL, TRACE};
use super::stack::{stated, trace, Part, Stack};

/// `BUG: <what>`.
pub(super) fn bug(rest: &str, h: &str, lines: &[&str]) -> Rule {
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
