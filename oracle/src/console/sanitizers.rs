//! Title rules for the memory sanitizers' reports: `BUG: KASAN: <type> in f`, `BUG: KMSAN:
//! <type> in f`, `BUG: KFENCE: <type> in f` — the bug type, the access (KASAN), and the first
//! frame outside the sanitizer and the allocator.

use super::frames::function_at;
use super::rules::Rule;
use super::stack::{is_call_trace, trace, Part, Stack};

/// `<what> in f+0x1/0x2` → (what, f).
fn what_in(r: &str) -> Option<(&str, &str)> {
    let (what, f) = r.split_once(" in ")?;
    Some((what, function_at(f)?))
}

/// The function a sanitizer header names (`BUG: KASAN: use-after-free in f+0x1/0x2`).
fn header_function(line: &str) -> Option<&str> {
    let (_, r) = line.split_once("BUG: ")?;
    let (_, r) = r.split_once(": ")?;
    what_in(r).map(|(_, f)| f)
}

static KASAN: Stack = Stack {
    parts: &[
        Part::Frame(header_function),
        Part::Line(is_call_trace),
        Part::Trace,
    ],
    ..trace(&["kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_"])
};
static KASAN_FREE: Stack = Stack {
    parts: &[
        Part::Frame(header_function),
        Part::Line(is_call_trace),
        Part::Trace,
    ],
    ..trace(&["slab_", "kfree", "vunmap", "vfree"])
};

/// KASAN's access: "Read" or "Write", from `Read of size 8 at addr ...` (or old kernels'
/// `Write at addr ...`).
fn access(lines: &[&str]) -> Option<&'static str> {
    lines.iter().skip(1).find_map(|l| {
        ["Read", "Write"].into_iter().find(|a| {
            l.match_indices(a).any(|(i, _)| {
                let r = &l[i + a.len()..];
                let r = r
                    .strip_prefix(" of size ")
                    .or_else(|| r.strip_prefix(" at addr "));
                r.is_some_and(|r| r.bytes().next().is_some_and(|c| c.is_ascii_hexdigit()))
            })
        })
    })
}

/// A KASAN bug type: lower-case words joined by dashes.
fn bug_type(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_lowercase() || c == b'-')
}

/// `BUG: KASAN: <r>`.
pub(super) fn kasan(r: &str, lines: &[&str]) -> Rule {
    if let Some((what, _)) = what_in(r) {
        if bug_type(what) {
            if let Some(a) = access(lines) {
                return Rule::stack(format!("KASAN: {what} {a}"), &KASAN);
            }
        }
        if ["double-free or invalid-free", "double-free", "invalid-free"].contains(&what) {
            return Rule::stack("KASAN: invalid-free", &KASAN_FREE);
        }
    }
    if let Some((what, _)) = r.split_once(" on address") {
        if let (true, Some(a)) = (bug_type(what), access(lines)) {
            return Rule::fixed(format!("KASAN: {what} {a}"));
        }
    }
    Rule::fixed(format!("KASAN: {r}"))
}

fn uninit_origin(l: &str) -> bool {
    (l.contains("Local variable ") && l.contains(" created at:"))
        || l.contains("Uninit was created at:")
}

/// `BUG: KMSAN: <r>`: the first frame of the report's first stack.
pub(super) fn kmsan(r: &str) -> Rule {
    static USB: Stack = Stack {
        parts: &[Part::Trace, Part::Line(uninit_origin), Part::Trace],
        ..trace(&[
            "alloc_skb",
            "usb_submit_urb",
            "usb_start_wait_urb",
            "usb_bulk_msg",
            "usb_interrupt_msg",
            "usb_control_msg",
        ])
    };
    static OTHER: Stack = Stack {
        parts: &[Part::Trace, Part::Line(uninit_origin), Part::Trace],
        ..trace(&[
            "alloc_skb",
            "netlink_ack",
            "netlink_rcv_skb",
            "_encrypt$",
            "^crypto_",
            "^cipher_",
            "^drbg_",
            "^rng_",
        ])
    };
    match what_in(r) {
        Some(("kernel-usb-infoleak", _)) => Rule::stack("KMSAN: kernel-usb-infoleak", &USB),
        Some((what, _)) if bug_type(what) => Rule::stack(format!("KMSAN: {what}"), &OTHER),
        _ => Rule::fixed(format!("BUG: KMSAN: {r}")),
    }
}

/// `BUG: KFENCE: <r>`.
pub(super) fn kfence(r: &str) -> Rule {
    static KFENCE: Stack = Stack {
        parts: &[Part::Frame(header_function), Part::Trace],
        ..trace(&[])
    };
    let known = [
        "use-after-free read",
        "use-after-free write",
        "out-of-bounds read",
        "out-of-bounds write",
        "invalid free",
        "invalid read",
        "invalid write",
        "memory corruption",
    ];
    match what_in(r) {
        Some((what, _)) if known.contains(&what) => Rule::stack(format!("KFENCE: {what}"), &KFENCE),
        _ => Rule::fixed(format!("BUG: KFENCE: {r}")),
    }
}
