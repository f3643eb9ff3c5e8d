//! Free text made stable across builds (no addresses, numbers or line numbers).

/// Make free text stable: hex numbers and long hex words → ADDR, other numbers → NUM,
/// `file.c:123` → `file.c`, `CPU#3` → `CPU`.
pub(super) fn normalize(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let word_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let c = b[i];
        let at_word_start = i == 0 || !word_char(b[i - 1]);
        if c == b':' && i + 1 < b.len() && b[i + 1].is_ascii_digit() && out.contains('.') {
            // "file.c:123" → "file.c" (only right after a file name).
            let prev_word = out.rsplit([' ', '(']).next().unwrap_or("");
            if prev_word.contains('.') && prev_word.contains('/') || prev_word.ends_with(".c") {
                i += 1;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b':') {
                    i += 1;
                }
                continue;
            }
        }
        if c == b'#' && out.ends_with("CPU") {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            continue;
        }
        if at_word_start && c.is_ascii_hexdigit() {
            let mut j = i;
            while j < b.len() && word_char(b[j]) {
                j += 1;
            }
            let w = &s[i..j];
            let hex = w
                .strip_prefix("0x")
                .is_some_and(|h| !h.is_empty() && h.bytes().all(|c| c.is_ascii_hexdigit()))
                || (w.len() >= 8
                    && w.bytes().all(|c| c.is_ascii_hexdigit())
                    && w.bytes().any(|c| c.is_ascii_digit()));
            if hex {
                out.push_str("ADDR");
                i = j;
                continue;
            }
            if w.bytes().all(|c| c.is_ascii_digit()) {
                out.push_str("NUM");
                i = j;
                continue;
            }
            out.push_str(w);
            i = j;
            continue;
        }
        // Any other character as it is (multi-byte ones whole).
        let ch = s[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}
