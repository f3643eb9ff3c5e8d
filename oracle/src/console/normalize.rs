//! Titles made stable across builds and runs, the way syzkaller does it: addresses → `ADDR`,
//! `file.c:12` → `file.c:LINE`, `f+0x1/0x2` → `f`, `CPU#3` → `CPU`, other numbers → `NUM`;
//! then at most 120 printable ASCII characters with single spaces.

/// Longest title (syzkaller's limit).
const MAX_TITLE: usize = 120;

fn word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn lower_hex(c: u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
}

/// Rewrite `s` left to right: at each byte, `at(s, i)` may return (bytes consumed,
/// replacement); other bytes are copied.
fn rewrite(s: &str, at: impl Fn(&[u8], usize) -> Option<(usize, &'static str)>) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if let Some((n, with)) = at(b, i) {
            out.extend_from_slice(with.as_bytes());
            i += n.max(1);
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `[0x]` and six or more lower-case hex digits after a byte that is not a letter or digit.
fn address(b: &[u8], i: usize) -> Option<(usize, &'static str)> {
    if i == 0 || b[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    let hex_from = |j: usize| b[j..].iter().take_while(|&&c| lower_hex(c)).count();
    if b[i..].starts_with(b"0x") && hex_from(i + 2) >= 6 {
        return Some((2 + hex_from(i + 2), "ADDR"));
    }
    let n = hex_from(i);
    (n >= 6).then_some((n, "ADDR"))
}

/// `:12` and `:12:5` right after a `.ext` (a file name's line and column).
fn line_number(b: &[u8], i: usize) -> Option<(usize, &'static str)> {
    if b[i] != b':' || !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let ext = b[..i].iter().rev().take_while(|&&c| word(c)).count();
    if ext == 0 || i < ext + 1 || b[i - ext - 1] != b'.' {
        return None;
    }
    let mut j = i;
    while j < b.len() && b[j] == b':' && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
        j += 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
    }
    Some((j - i, ":LINE"))
}

/// `+0x1d/0x50` after a symbol name.
fn offset(b: &[u8], i: usize) -> Option<(usize, &'static str)> {
    if b[i] != b'+' || i < 2 || !(word(b[i - 1]) || b[i - 1] == b'.') {
        return None;
    }
    let alnum = |j: usize| {
        b[j.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric())
            .count()
    };
    let mut j = i + 1;
    if !b[j..].starts_with(b"0x") || alnum(j + 2) == 0 {
        return None;
    }
    j += 2 + alnum(j + 2);
    if !b[j..].starts_with(b"/0x") || alnum(j + 3) == 0 {
        return None;
    }
    j += 3 + alnum(j + 3);
    Some((j - i, ""))
}

/// `#3` after `CPU`.
fn cpu_number(b: &[u8], i: usize) -> Option<(usize, &'static str)> {
    if b[i] != b'#' || !b[..i].ends_with(b"CPU") {
        return None;
    }
    let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
    (n > 0).then_some((n + 1, ""))
}

/// A number standing alone (between non-word bytes), or seven digits or more anywhere.
fn number(b: &[u8], i: usize) -> Option<(usize, &'static str)> {
    if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_digit()) {
        return None;
    }
    let n = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let alone = i > 0 && !word(b[i - 1]) && b.get(i + n).is_none_or(|&c| !word(c));
    (alone || n >= 7).then_some((n, "NUM"))
}

/// At most [`MAX_TITLE`] bytes of `s`, printable ASCII only, tabs as spaces, no double or
/// outer spaces.
fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_TITLE));
    for &c in s.as_bytes().iter().take(MAX_TITLE) {
        let c = if c == b'\t' { b' ' } else { c };
        if !(0x20..0x7f).contains(&c) || (c == b' ' && out.ends_with(' ')) {
            continue;
        }
        out.push(c as char);
    }
    out.trim().to_string()
}

/// A title made stable (see the module doc).
pub(super) fn normalize(title: &str) -> String {
    let t = rewrite(title, address);
    let t = rewrite(&t, line_number);
    let t = rewrite(&t, offset);
    let t = rewrite(&t, cpu_number);
    let t = rewrite(&t, number);
    sanitize(&t)
}
