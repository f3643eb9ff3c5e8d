//! Finding the next record after a damaged one. The format has no record marker, so the
//! reader looks, byte by byte from the damage on, for an offset where a record this writer
//! could have written starts: a plausible fixed head (`codec::plausible_start`), a sequence
//! number above the last good record's (the device numbers requests in order), counts that
//! add up to exactly the length prefix, and behind it the end of the file or another such
//! record with a higher sequence number (a lone match inside damaged bytes is rarely followed
//! by a second one exactly where it ends). The file is scanned in windows of
//! [`WINDOW`] bytes, with three small positioned reads per candidate, so the work is linear
//! in the bytes skipped.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::codec::{self, Start, START_LEN};

/// Bytes scanned per read.
const WINDOW: usize = 64 << 10;

/// The offset of the first record starting at or after `from`, before `file_len`.
pub(super) fn next_record(
    file: &File,
    from: u64,
    file_len: u64,
    last_seq: Option<u64>,
) -> io::Result<Option<u64>> {
    let mut buf = vec![0u8; WINDOW + START_LEN];
    let mut pos = from;
    while pos.saturating_add(START_LEN as u64) <= file_len {
        let n = read_at_full(file, &mut buf, pos)?;
        if n < START_LEN {
            break;
        }
        for i in 0..=n - START_LEN {
            let Ok(start) = <&[u8; START_LEN]>::try_from(&buf[i..i + START_LEN]) else {
                continue;
            };
            let Some(s) = codec::plausible_start(start) else {
                continue;
            };
            let o = pos + i as u64;
            if last_seq.is_none_or(|l| s.seq > l)
                && adds_up(file, o, &s, file_len)?
                && followed_well(file, o + 4 + u64::from(s.len), s.seq, file_len)?
            {
                return Ok(Some(o));
            }
        }
        pos += (n - START_LEN + 1) as u64;
    }
    Ok(None)
}

/// Whether the record ending at `end` is followed by the end of the file, or by a plausible
/// record with a sequence number above `seq` whose counts add up. (A good record followed by a
/// cut-off one is not found this way; the cut-off one is lost anyway.)
fn followed_well(file: &File, end: u64, seq: u64, file_len: u64) -> io::Result<bool> {
    if end == file_len {
        return Ok(true);
    }
    let mut b = [0u8; START_LEN];
    if read_at_full(file, &mut b, end)? < START_LEN {
        return Ok(false);
    }
    match codec::plausible_start(&b) {
        Some(next) if next.seq > seq => adds_up(file, end, &next, file_len),
        _ => Ok(false),
    }
}

/// Whether the counts of the record at `o` add up to its length prefix, inside the file.
fn adds_up(file: &File, o: u64, s: &Start, file_len: u64) -> io::Result<bool> {
    let body = o + 4;
    let end = body + u64::from(s.len);
    let field = |at: u64, b: &mut [u8]| -> io::Result<bool> {
        let at = body + at;
        if at + b.len() as u64 > end || end > file_len {
            return Ok(false);
        }
        Ok(read_at_full(file, b, at)? == b.len())
    };
    let mut nhash = [0u8; 4];
    if !field(codec::hash_count_at(s.nseg), &mut nhash)? {
        return Ok(false);
    }
    let mut want = codec::after_hashes(s.nseg, u32::from_le_bytes(nhash));
    if s.data {
        let mut n = [0u8; 8];
        if !field(want, &mut n)? {
            return Ok(false);
        }
        match want
            .checked_add(8)
            .and_then(|w| w.checked_add(u64::from_le_bytes(n)))
        {
            Some(w) => want = w,
            None => return Ok(false),
        }
    }
    Ok(want == u64::from(s.len))
}

/// Positioned read until `buf` is full or EOF; returns the bytes read.
fn read_at_full(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], at + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
