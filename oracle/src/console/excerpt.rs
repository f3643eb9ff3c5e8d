//! A report's evidence excerpt, in the order a kernel developer reads it: the header, then the
//! call trace (every frame the kernel printed, unsure ones and pinvm's own test code
//! included), then the rest of the report (registers, `Code:` bytes, lock and memory dumps) in
//! console order.

use super::stack::is_call_trace;
use super::MAX_EXCERPT;

/// A line of a call trace after its `Call Trace:` line: an indented frame or a `<TASK>` /
/// `<IRQ>` marker.
fn in_trace(line: &str) -> bool {
    line.starts_with([' ', '\t', '<'])
}

/// `lines` (the report's, `header` of them before and including its header line) reordered
/// as the module doc says, at most [`MAX_EXCERPT`] of them.
pub(super) fn excerpt(lines: &[&str], header: usize) -> Vec<String> {
    let head = (header + 1).min(lines.len());
    let trace = lines[head..]
        .iter()
        .position(|l| is_call_trace(l))
        .map(|i| {
            let from = head + i;
            let len = lines[from + 1..].iter().take_while(|l| in_trace(l)).count();
            from..from + 1 + len
        });
    let mut order: Vec<&str> = lines[..head].to_vec();
    match trace {
        Some(t) => {
            order.extend(&lines[t.clone()]);
            order.extend(&lines[head..t.start]);
            order.extend(&lines[t.end..]);
        }
        None => order.extend(&lines[head..]),
    }
    order
        .into_iter()
        .take(MAX_EXCERPT)
        .map(str::to_string)
        .collect()
}
