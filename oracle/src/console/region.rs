//! The lines a report's title is read from: from its header on, the lines of the same
//! printk context (caller id when the kernel prints it; stamped lines when it stamps them),
//! without the frames the unwinder is unsure of ("? foo"), up to the next report — the report
//! as syzkaller reads it, which goes on past lines that end pinvm's evidence excerpt.

use super::lines::Line;

/// Most lines one report's title is read from (bounds the work on a hostile console).
const MAX_REGION: usize = 4000;

/// Most other reports a region reads past when the kernel prints caller ids.
const MAX_OTHER_REPORTS: usize = 8;

/// After this many lines, a `Kernel panic` (panic_on_warn) or a lockdep report the crash
/// itself caused ends the region: their stacks repeat the report's or mislead.
fn enough_lines(header: &str) -> usize {
    if header.contains("KMSAN:") {
        16
    } else {
        22
    }
}

/// A frame line the unwinder is not sure of, ` ? foo+0x1/0x2` (outside an `<EOI>` marker):
/// the frame after the `?`.
fn unreliable(text: &str) -> Option<&str> {
    let at = text.find(" ? ")?;
    (!text.contains("<EOI>")).then(|| &text[at + 3..])
}

/// Which frames a title region keeps.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) enum Frames {
    /// Only those the unwinder is sure of (syzkaller's rule).
    Reliable,
    /// Also the unsure ones, without their `?`: for kernels whose unwinder marks every frame
    /// unsure (pinvm's guests without frame pointers), where syzkaller's title would say
    /// "corrupted".
    All,
}

/// The title region of the report whose header is line `head`; `new_report(j)` says whether
/// line `j` starts another report, which ends the region unless the kernel prints caller ids.
pub(super) fn title_region<'a>(
    lines: &[Line<'a>],
    head: usize,
    new_report: &dyn Fn(usize) -> bool,
    frames: Frames,
) -> Vec<&'a str> {
    let first = &lines[head];
    let caller = first.caller;
    let stamped = first.time.is_some();
    let enough = enough_lines(first.text);
    let mut out = vec![first.text];
    let mut all_cpus = false;
    let mut seen = 1;
    let mut others = 0;
    for (j, l) in lines.iter().enumerate().skip(head + 1).take(MAX_REGION) {
        if new_report(j) {
            // With caller ids the next report does not end this one (its lines are left out
            // by their ids, or are the same task's report going on); a few do, so that every
            // line is read for a bounded number of reports.
            others += 1;
            if caller.is_none() || others > MAX_OTHER_REPORTS {
                break;
            }
        }
        let same_context = match (caller, l.caller) {
            (Some(c), Some(lc)) => c == lc || all_cpus && lc.starts_with('C'),
            (Some(_), None) => false,
            (None, _) => !stamped || l.time.is_some(),
        };
        if !same_context {
            continue;
        }
        seen += 1;
        let t = l.text;
        if t.contains("Sending NMI from CPU") {
            all_cpus = true;
        }
        if (t.contains("Kernel panic - not syncing")
            || t.contains("WARNING: possible circular locking dependency detected"))
            && seen > enough
        {
            break;
        }
        if t.contains("Disabling lock debugging due to kernel taint") {
            continue;
        }
        match (stamped, unreliable(t), frames) {
            (true, Some(_), Frames::Reliable) => {}
            (_, Some(frame), Frames::All) => out.push(frame),
            _ => out.push(t),
        }
    }
    out
}
