//! Titles: the report's rule (`rules`), its guilty function (`stack`), made stable
//! (`normalize`).

use super::headers::header_text;
use super::normalize::normalize;
use super::rules::{rule, Func};
use super::stack::{guilty, guilty_or_nearest};

/// Longest header read (a title keeps at most 120 characters of it; a guest's line can be
/// any length).
const MAX_HEADER: usize = 1024;

/// The title of the report whose title region (see `region`) is `lines`, header first;
/// `all_frames` gives the region with the unwinder's unsure frames too, read when the sure
/// ones name no function.
pub(super) fn title<'a>(lines: &[&'a str], all_frames: impl FnOnce() -> Vec<&'a str>) -> String {
    let first = lines.first().copied().unwrap_or("");
    let h = header_text(first);
    let h = match h.char_indices().nth(MAX_HEADER) {
        Some((cut, _)) => &h[..cut],
        None => h,
    };
    let Some(r) = rule(h, lines) else {
        return normalize(h);
    };
    let func = match &r.func {
        Func::None => None,
        Func::Known(f) => Some(f.clone()),
        Func::Stack(s) => guilty_or_nearest(s, lines, all_frames),
        Func::StackOr(s, f) => guilty(s, lines).or_else(|| Some(f.clone())),
    };
    let t = match func {
        Some(f) => format!("{} in {f}{}", r.base, r.suffix),
        None => r.base,
    };
    normalize(&t)
}
