//! Guest text on the user's terminal. The guest is untrusted: nothing it prints may drive the
//! terminal (move the cursor, retitle the window, answer back, switch character sets). Every
//! guest-derived byte or string that pinvm shows on a terminal goes through this one escape:
//! C0 controls but the tab (and, in multi-line text, newline and carriage return) become `^X`
//! (ESC is `^[`), DEL `^?`, and C1 controls (U+0080..=U+009F, e.g.
//! U+009B, a one-character CSI), whether UTF-8 encoded or raw bytes, become `M-^X` as `cat -v`
//! shows them. Other text, UTF-8 or not, is unchanged.

/// Which C0 controls are kept as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Newline, carriage return and tab: multi-line text such as the console.
    Lines,
    /// Tab only: text that must stay on one line (a line break or a carriage return in it
    /// could forge a line of pinvm's own).
    Tab,
}

/// `text` with its controls made visible (see the module doc).
pub fn visible(text: &[u8], keep: Keep) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for chunk in text.utf8_chunks() {
        for c in chunk.valid().chars() {
            let u = u32::from(c);
            match u {
                0x09 => out.push(b'\t'),
                0x0a | 0x0d if keep == Keep::Lines => out.push(u as u8),
                0..=0x1f => out.extend_from_slice(&[b'^', u as u8 + 0x40]),
                0x7f => out.extend_from_slice(b"^?"),
                0x80..=0x9f => out.extend_from_slice(&[b'M', b'-', b'^', (u - 0x80) as u8 + 0x40]),
                _ => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        for &b in chunk.invalid() {
            match b {
                0x80..=0x9f => out.extend_from_slice(&[b'M', b'-', b'^', b - 0x80 + 0x40]),
                _ => out.push(b),
            }
        }
    }
    out
}

/// `text` made visible and kept on one line, for a message pinvm prints about the guest (a
/// step's error, a console line, a crash title, a note).
pub fn visible_line(text: &str) -> String {
    // Valid UTF-8 in and whole characters replaced by ASCII: valid UTF-8 out.
    String::from_utf8_lossy(&visible(text.as_bytes(), Keep::Tab)).into_owned()
}

/// [`visible`] over a byte stream that arrives in pieces (the UART hands over one byte at a
/// time): a UTF-8 character split across pieces is held back until it is whole, so a
/// character such as U+2014 (E2 80 94) is not taken for a raw C1 byte, and U+009B (C2 9B) is
/// escaped whichever way it was split.
#[derive(Debug)]
pub struct VisibleStream {
    keep: Keep,
    held: Vec<u8>,
}

impl VisibleStream {
    /// A stream keeping `keep`.
    pub fn new(keep: Keep) -> VisibleStream {
        VisibleStream {
            keep,
            held: Vec::new(),
        }
    }

    /// The visible form of what arrived so far, but an unfinished character at its end.
    pub fn push(&mut self, piece: &[u8]) -> Vec<u8> {
        let mut data = std::mem::take(&mut self.held);
        data.extend_from_slice(piece);
        let whole = whole_prefix(&data);
        self.held = data.split_off(whole);
        visible(&data, self.keep)
    }
}

/// How much of `data` to show now: all of it, but a UTF-8 sequence at its end that is valid
/// so far and unfinished (at most 3 bytes).
fn whole_prefix(data: &[u8]) -> usize {
    let lead = (1..=3.min(data.len()))
        .map(|back| data.len() - back)
        .find(|&i| data[i] & 0xc0 != 0x80);
    match lead {
        Some(i) => match std::str::from_utf8(&data[i..]) {
            Err(e) if e.valid_up_to() == 0 && e.error_len().is_none() => i,
            _ => data.len(),
        },
        None => data.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c0_c1_and_del_are_shown_not_sent() {
        assert_eq!(
            visible(b"ok\tdone\n\x1b[2J\x1b]0;title\x07\x7f\r", Keep::Lines),
            b"ok\tdone\n^[[2J^[]0;title^G^?\r"
        );
        // U+009B (CSI in one character) and U+0090 (DCS), UTF-8 encoded and as raw bytes.
        assert_eq!(
            visible("a\u{9b}31mb\u{90}q".as_bytes(), Keep::Lines),
            b"aM-^[31mbM-^Pq"
        );
        assert_eq!(visible(b"a\x9b31m\x85", Keep::Lines), b"aM-^[31mM-^E");
        // Text is unchanged: UTF-8 (continuation bytes 0x80..0x9f included) and Latin-1.
        for text in ["é — “quoted” ā …", "plain"] {
            assert_eq!(visible(text.as_bytes(), Keep::Lines), text.as_bytes());
        }
        assert_eq!(visible(b"caf\xe9 \xff", Keep::Lines), b"caf\xe9 \xff");
        assert_eq!(
            visible_line("a\nfake\rline\t\u{1b}[1m"),
            "a^Jfake^Mline\t^[[1m"
        );
    }

    /// The UART delivers one byte at a time: split characters are whole on the other side,
    /// and a split C2 9B is still escaped.
    #[test]
    fn a_stream_in_single_bytes_escapes_the_same() {
        let text = "x — \u{9b}2J ā\u{1b}[m \u{10ffff}\n".as_bytes();
        let mut s = VisibleStream::new(Keep::Lines);
        let mut out = Vec::new();
        for b in text {
            out.extend(s.push(&[*b]));
        }
        assert_eq!(out, visible(text, Keep::Lines));
        assert_eq!(out, "x — M-^[2J ā^[[m \u{10ffff}\n".as_bytes());
        // Broken sequences are not held forever.
        let mut s = VisibleStream::new(Keep::Lines);
        assert_eq!(s.push(b"\xe2\x80"), b"");
        assert_eq!(s.push(b"A"), b"\xe2M-^@A");
        assert_eq!(s.push(b"\x80\x80\x80\x80"), b"M-^@M-^@M-^@M-^@");
    }

    /// A crash title with an escape sequence in a suite table or a bisect report (multi-line
    /// text pinvm prints) reaches the terminal escaped, with the lines and their ends kept.
    #[test]
    fn guest_text_in_reports_is_escaped_line_by_line() {
        let t = "S03  kernel_warning: WARNING in \x1b[2Jfoo\u{9b}31m\ttab\nnext line\nlast";
        let v = String::from_utf8(visible(t.as_bytes(), Keep::Lines)).unwrap();
        assert!(!v.contains('\x1b') && !v.contains('\u{9b}'), "{v:?}");
        assert_eq!(v.lines().count(), 3, "{v:?}");
        assert!(v.contains("\ttab\nnext line\nlast"), "{v:?}");
        assert!(v.contains("^[[2Jfoo"), "{v:?}");
        assert_eq!(visible(b"a\n", Keep::Lines), b"a\n");
        assert_eq!(visible(b"", Keep::Lines), b"");
    }
}
