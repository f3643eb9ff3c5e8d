//! The agent's events over a serial line (machines without a control page, e.g. QEMU): the
//! same events as the control page (code, status, message), one per line:
//!
//! ```text
//! PINVM1 <code> <status> <message as lowercase hex>\n
//! ```
//!
//! Hex keeps every message byte (newlines, NULs, invalid UTF-8) out of the framing, and a
//! line is complete or it is nothing: the host acts on an event only when its newline arrived.
//! The host timestamps each line on arrival. Lines that are not frames (a corrupt byte, a
//! guest writing garbage) are counted and reported, never acted on; the decoder holds at most
//! [`MAX_LINE`] bytes, whatever the guest writes.

/// The line prefix, with the protocol version.
pub const FRAME_PREFIX: &str = "PINVM1";
/// Longest message carried (as on the control page: the mailbox size).
pub const MAX_MESSAGE: usize = 0x800;
/// Longest line the host accepts: prefix, two decimal u32s, the hex message, separators.
pub const MAX_LINE: usize = FRAME_PREFIX.len() + 2 * 11 + 2 * MAX_MESSAGE + 4;

/// One event as it travels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Event code (the control page's EVENT values).
    pub code: u32,
    /// The event's argument (exit status, errno, ...).
    pub status: u32,
    /// The message bytes (at most [`MAX_MESSAGE`]).
    pub message: Vec<u8>,
}

/// The line for one event, newline included. Messages longer than [`MAX_MESSAGE`] are cut
/// at a UTF-8 boundary, as the control page's mailbox cuts them.
pub fn encode(code: u32, status: u32, message: &str) -> String {
    let mut end = message.len().min(MAX_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut line = format!("{FRAME_PREFIX} {code} {status} ");
    for b in &message.as_bytes()[..end] {
        line.push(char::from_digit(u32::from(b >> 4), 16).expect("nibble"));
        line.push(char::from_digit(u32::from(b & 15), 16).expect("nibble"));
    }
    line.push('\n');
    line
}

/// Parse one line (without its newline; a trailing CR is ignored).
pub fn decode(line: &[u8]) -> Option<Frame> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split(' ');
    if words.next()? != FRAME_PREFIX {
        return None;
    }
    let code = words.next()?.parse().ok()?;
    let status = words.next()?.parse().ok()?;
    let hex = words.next()?;
    if words.next().is_some() || hex.len() % 2 != 0 || hex.len() > 2 * MAX_MESSAGE {
        return None;
    }
    let message = hex
        .as_bytes()
        .chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect::<Option<Vec<u8>>>()?;
    Some(Frame {
        code,
        status,
        message,
    })
}

/// What one chunk of serial bytes held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Complete frames, in order.
    pub frames: Vec<Frame>,
    /// Complete lines that were not frames (overlong ones included).
    pub bad_lines: u64,
}

/// Splits a byte stream into frames, holding at most [`MAX_LINE`] bytes of a partial line.
#[derive(Debug, Default)]
pub struct Decoder {
    partial: Vec<u8>,
    /// The current line went past [`MAX_LINE`]: skip to its newline.
    overlong: bool,
}

impl Decoder {
    /// Take the next bytes from the line.
    pub fn feed(&mut self, bytes: &[u8]) -> Decoded {
        let mut out = Decoded::default();
        for &b in bytes {
            if b == b'\n' {
                if self.overlong {
                    out.bad_lines += 1;
                } else if !self.partial.is_empty() {
                    match decode(&self.partial) {
                        Some(f) => out.frames.push(f),
                        None => out.bad_lines += 1,
                    }
                }
                self.partial.clear();
                self.overlong = false;
            } else if self.partial.len() >= MAX_LINE {
                self.partial.clear();
                self.overlong = true;
            } else if !self.overlong {
                self.partial.push(b);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_any_message() {
        let msg = "step 3 fsync /mnt/f ok\n\0é";
        let line = encode(6, 5, msg);
        assert!(line.starts_with("PINVM1 6 5 ") && line.ends_with('\n'));
        let f = decode(line.trim_end_matches('\n').as_bytes()).unwrap();
        assert_eq!((f.code, f.status), (6, 5));
        assert_eq!(f.message, msg.as_bytes());
        assert_eq!(decode(b"PINVM1 3 0 \r").unwrap().message, b"");
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        let msg = "é".repeat(MAX_MESSAGE);
        let f = decode(encode(4, 0, &msg).trim_end().as_bytes()).unwrap();
        assert_eq!(f.message.len(), MAX_MESSAGE);
        assert!(std::str::from_utf8(&f.message).is_ok());
        assert!(encode(4, 0, &msg).len() <= MAX_LINE + 1);
    }

    #[test]
    fn garbage_is_counted_never_acted_on() {
        for bad in [
            &b"PINVM2 1 0 "[..],
            b"PINVM1 1",
            b"PINVM1 x 0 ",
            b"PINVM1 1 0 abc",
            b"PINVM1 1 0 zz",
            b"PINVM1 1 0 00 extra",
            b"PINVM1 99999999999 0 ",
            b"\xff\xfe",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Whatever a guest writes to its port, in whatever chunks: no panic, never more than
        /// one line held, and every frame that comes out is one that could have gone in.
        #[test]
        fn any_bytes_any_chunks(chunks in proptest::collection::vec(
            proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), 0..20)) {
            let mut d = Decoder::default();
            for c in &chunks {
                for f in d.feed(c).frames {
                    proptest::prop_assert!(f.message.len() <= MAX_MESSAGE);
                }
                proptest::prop_assert!(d.partial.len() <= MAX_LINE);
            }
        }

        /// Every message survives the trip, whatever its bytes.
        #[test]
        fn any_message_roundtrips(code in 0u32..100, status: u32, msg in ".{0,300}") {
            let line = encode(code, status, &msg);
            let got = Decoder::default().feed(line.as_bytes()).frames;
            proptest::prop_assert_eq!(got.len(), 1);
            proptest::prop_assert_eq!(&got[0].message, msg.as_bytes());
        }
    }

    #[test]
    fn decoder_splits_chunks_and_bounds_memory() {
        let mut d = Decoder::default();
        let line = encode(1, 0, "");
        let (a, b) = line.split_at(4);
        assert!(d.feed(a.as_bytes()).frames.is_empty());
        let got = d.feed(format!("{b}junk\n\n{}", encode(3, 7, "x")).as_bytes());
        assert_eq!(got.frames.len(), 2);
        assert_eq!(got.bad_lines, 1);
        assert_eq!(got.frames[1].status, 7);
        // A flood without newlines never holds more than MAX_LINE bytes, then resyncs.
        let flood = vec![b'A'; 10 * MAX_LINE];
        assert_eq!(d.feed(&flood), Decoded::default());
        assert!(d.partial.len() <= MAX_LINE);
        let got = d.feed(format!("\n{}", encode(2, 0, "")).as_bytes());
        assert_eq!(got.bad_lines, 1);
        assert_eq!(got.frames.len(), 1);
    }
}
