//! Finding a report's guilty frame: each report format says where its frames are (the `RIP:`
//! line, the call trace, a lockdep `at:` line, ...) as a sequence of [`Part`]s read in order
//! through the report, which frames never count, and how one is picked among the rest.

use super::frames::{canonical, demangle, is_stack_start, rip_frame, trace_frame};
use super::pick::{pick, Pick};
use super::skip::skipped;

/// One step through a report's lines.
#[derive(Clone, Copy, Debug)]
pub(super) enum Part {
    /// The next `RIP:` (`IP:`) line; its function is a frame.
    Rip,
    /// The next line the test accepts (e.g. `Call Trace:`); no frame.
    Line(fn(&str) -> bool),
    /// The next line the function finds a frame in; that frame.
    Frame(fn(&str) -> Option<&str>),
    /// A stack trace's frames, up to the next trace (or to a line the next part accepts).
    Trace,
}

impl Part {
    /// `None`: the line is not this part's; `Some(frame)`: it is, with the frame it names.
    fn accepts<'a>(&self, line: &'a str) -> Option<Option<&'a str>> {
        match self {
            Part::Rip => rip_frame(line),
            Part::Line(test) => test(line).then_some(None),
            Part::Frame(find) => find(line).map(Some),
            Part::Trace => None,
        }
    }
}

/// Where a report format's guilty frame is and how it is chosen.
#[derive(Clone, Copy, Debug)]
pub(super) struct Stack {
    /// The parts read in order from the report's first line.
    pub(super) parts: &'static [Part],
    /// Read instead when `parts` give no frame (empty: none).
    pub(super) fallback: &'static [Part],
    /// Patterns of frames this format skips besides the common ones (see `skip`).
    pub(super) skip: &'static [&'static str],
    /// How the frame is picked among those left.
    pub(super) pick: Pick,
    /// False for a frame the report states outright (lockdep's "at:" lines): no skipping, no
    /// syscall-prefix stripping.
    pub(super) filtered: bool,
}

/// `Call Trace:` (and `Backtrace:`), where most reports' stack starts.
pub(super) fn is_call_trace(line: &str) -> bool {
    line.contains("Call Trace:") || line.contains("Call trace:") || line.contains("Backtrace:")
}

/// The most common layout: the faulting instruction, then the call trace.
pub(super) const fn rip_then_trace(skip: &'static [&'static str], pick: Pick) -> Stack {
    Stack {
        parts: &[Part::Rip, Part::Line(is_call_trace), Part::Trace],
        fallback: &[],
        skip,
        pick,
        filtered: true,
    }
}

/// The call trace alone.
pub(super) const fn trace(skip: &'static [&'static str]) -> Stack {
    Stack {
        parts: &[Part::Line(is_call_trace), Part::Trace],
        fallback: &[],
        skip,
        pick: Pick::First,
        filtered: true,
    }
}

/// WARN(): the instruction that warned and the frames right after it, or else the call
/// trace.
pub(super) const fn warning(skip: &'static [&'static str]) -> Stack {
    Stack {
        parts: &[Part::Rip, Part::Trace],
        fallback: &[Part::Line(is_call_trace), Part::Trace],
        skip,
        pick: Pick::First,
        filtered: true,
    }
}

/// A frame the report names on a line of its own, found after the line `after` accepts.
pub(super) const fn stated(parts: &'static [Part]) -> Stack {
    Stack {
        parts,
        fallback: &[],
        skip: &[],
        pick: Pick::First,
        filtered: false,
    }
}

/// Most frames a report is read for (bounds the work on a hostile console).
const MAX_FRAMES: usize = 256;

/// The guilty frame of the report whose lines (header first) are `lines`, by `stack`'s rules.
pub(super) fn guilty(stack: &Stack, lines: &[&str]) -> Option<String> {
    run(stack, stack.parts, lines).or_else(|| {
        (!stack.fallback.is_empty())
            .then(|| run(stack, stack.fallback, lines))
            .flatten()
    })
}

/// Keep frame `f` unless `stack` skips it.
fn keep<'a>(stack: &Stack, f: Option<&'a str>, frames: &mut Vec<&'a str>) {
    if let Some(f) = f.map(demangle) {
        if frames.len() < MAX_FRAMES && !(stack.filtered && skipped(f, stack.skip)) {
            frames.push(f);
        }
    }
}

/// The guilty frame by `stack`'s rules on the frames the unwinder is sure of (`reliable`),
/// else — where syzkaller would call the report corrupted — the faulting instruction or the
/// first frame left (for a stall without a dispatcher on its stack), and then the same on
/// `all` frames (kernels whose unwinder is unsure of every frame).
pub(super) fn guilty_or_nearest<'a>(
    stack: &Stack,
    reliable: &[&'a str],
    all: impl FnOnce() -> Vec<&'a str>,
) -> Option<String> {
    let nearest = Stack {
        parts: &[Part::Rip],
        fallback: &[Part::Line(is_call_trace), Part::Trace],
        pick: Pick::First,
        ..*stack
    };
    let either = |lines: &[&str]| {
        guilty(stack, lines).or_else(|| stack.filtered.then(|| guilty(&nearest, lines)).flatten())
    };
    either(reliable).or_else(|| either(&all()))
}

fn run(stack: &Stack, parts: &[Part], lines: &[&str]) -> Option<String> {
    let mut frames: Vec<&str> = Vec::new();
    let mut rest = lines.iter();
    let mut p = 0;
    let mut traces = 0;
    while p < parts.len() {
        if let Part::Trace = parts[p] {
            if traces > 0 {
                // Only the first trace's frames name the report.
                break;
            }
            traces += 1;
            for line in rest.by_ref() {
                if is_stack_start(line) {
                    break;
                }
                if let Some(f) = parts.get(p + 1).and_then(|next| next.accepts(line)) {
                    keep(stack, f, &mut frames);
                    p += 1;
                    break;
                }
                keep(stack, trace_frame(line), &mut frames);
            }
        } else if let Some(f) = rest.by_ref().find_map(|line| parts[p].accepts(line)) {
            keep(stack, f, &mut frames);
        }
        p += 1;
    }
    if !stack.filtered {
        return frames.first().map(|f| f.to_string());
    }
    let names: Vec<&str> = frames.iter().map(|f| canonical(f)).collect();
    pick(stack.pick, &names)
}
