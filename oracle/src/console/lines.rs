//! Console lines: the printk prefix (timestamp, caller id) taken apart.

/// One console line with its printk prefix taken apart.
#[derive(Clone, Copy, Debug)]
pub(super) struct Line<'a> {
    /// The message, without the `[    1.234567]` / `[  T123]` prefix and the space after it.
    pub(super) text: &'a str,
    pub(super) time: Option<f64>,
    /// `T123` / `C0` (CONFIG_PRINTK_CALLER), when present.
    pub(super) caller: Option<&'a str>,
}

/// `[ *digits.digits]` at the start of `s`: (seconds, length, digits after the point).
fn timestamp_at(s: &str) -> Option<(f64, usize, usize)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'[') {
        return None;
    }
    let close = s.find(']')?;
    let inner = s[1..close].trim_start_matches(' ');
    let (secs, frac) = inner.split_once('.')?;
    if secs.is_empty()
        || frac.is_empty()
        || !secs.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    Some((inner.parse().ok()?, close + 1, frac.len()))
}

/// `[ *T123]` / `[ *C0]` at the start of `s`: (the id, length).
fn caller_at(s: &str) -> Option<(&str, usize)> {
    let rest = s.strip_prefix('[')?;
    let close = rest.find(']')?;
    let id = rest[..close].trim_start_matches(' ');
    let digits = id.strip_prefix('T').or_else(|| id.strip_prefix('C'))?;
    (!digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())).then_some((id, close + 2))
}

/// A log writer's `2018/01/09 14:28:48 ` before a line (Go's log package, as syzkaller's tools
/// write the consoles they collect): its length.
fn log_date_at(s: &str) -> Option<usize> {
    const FORM: &[u8] = b"dddd/dd/dd dd:dd:dd ";
    let b = s.as_bytes().get(..FORM.len())?;
    let ok = b.iter().zip(FORM).all(|(&c, &f)| match f {
        b'd' => c.is_ascii_digit(),
        _ => c == f,
    });
    ok.then_some(FORM.len())
}

pub(super) fn split_line(raw: &str) -> Line<'_> {
    let raw = raw.trim_end_matches(['\r', '\n']);
    // A printk prefix at the start (after an optional syslog "<N>"), or in the middle of a
    // line when a user program's output and the kernel's got mixed ("foo[    1.234567] BUG:");
    // mid-line only in the kernel's exact six-digit form.
    let mut start = 0;
    if raw.starts_with('<') {
        if let Some(end) = raw.find('>') {
            if end > 1 && raw[1..end].bytes().all(|c| c.is_ascii_digit()) {
                start = end + 1;
            }
        }
    }
    start += log_date_at(&raw[start..]).unwrap_or(0);
    let mut found = timestamp_at(&raw[start..]).map(|(t, len, _)| (start, t, len));
    if found.is_none() {
        found = raw.match_indices('[').find_map(|(i, _)| {
            timestamp_at(&raw[i..]).and_then(|(t, len, frac)| (frac == 6).then_some((i, t, len)))
        });
    }
    let Some((at, time, len)) = found else {
        return Line {
            text: &raw[start..],
            time: None,
            caller: None,
        };
    };
    let mut rest = &raw[at + len..];
    let mut caller = None;
    let after_space = rest.strip_prefix(' ').unwrap_or(rest);
    if let Some((id, len)) = caller_at(after_space) {
        caller = Some(id);
        rest = &after_space[len..];
    }
    Line {
        text: rest.strip_prefix(' ').unwrap_or(rest),
        time: Some(time),
        caller,
    }
}

pub(super) fn split_console(console: &str) -> Vec<Line<'_>> {
    console.split('\n').map(split_line).collect()
}
