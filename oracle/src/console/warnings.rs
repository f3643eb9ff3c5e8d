//! Title rules for WARN_ON() reports: `WARNING in f`, or the class of the generic checker
//! that warned (refcount, kobject, debugobjects, usercopy, lockdep, kmalloc, vmalloc).

use super::frames::function_at;
use super::rules::{Func, Rule};
use super::stack::{warning, Stack};

/// `WARNING: CPU: 0 PID: 1 at fs/x.c:12 f+0x1/0x2` (and 6.18's `WARNING: fs/x.c:12 at
/// 0x1234, CPU#0: comm/1`): WARN_ON()s, with the class of the checker that warned when it is
/// one of the generic ones (refcount, kobject, debugobjects, ...).
pub(super) fn warn_on(rest: &str) -> Option<Rule> {
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
