//! Journals for people: `pinvm journal show`.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use super::{status, Journal, JournalError, JournalRecord, HASH_LEN};

fn status_name(s: u8) -> String {
    match s {
        status::OK => "OK".into(),
        status::IOERR => "IOERR".into(),
        status::UNSUPP => "UNSUPP".into(),
        s => format!("STATUS{s}"),
    }
}

/// Print one record: a summary line, then indented `seg`, `hash` and `data` lines.
///
/// ```text
/// #7 OUT OK sector=2048 sectors=16 submit=12.345678901 took=18.2us
///   seg gpa=0x3a2f000 len=8192
///   hash sector=2048 len=4096 00112233445566778899aabbccddeeff
///   data 8192 bytes
/// ```
pub fn render(r: &JournalRecord, w: &mut impl Write) -> io::Result<()> {
    let took = r.complete_ns.saturating_sub(r.submit_ns);
    writeln!(
        w,
        "#{} {} {} sector={} sectors={} submit={}.{:09} took={:.1}us",
        r.seq,
        r.kind.name(),
        status_name(r.status),
        r.sector,
        r.sectors,
        r.submit_ns / 1_000_000_000,
        r.submit_ns % 1_000_000_000,
        took as f64 / 1000.0
    )?;
    for s in &r.segments {
        writeln!(w, "  seg gpa={:#x} len={}", s.addr, s.len)?;
    }
    for h in &r.hashes {
        let mut hex = String::with_capacity(2 * HASH_LEN);
        for b in h.hash {
            let _ = write!(hex, "{b:02x}");
        }
        writeln!(w, "  hash sector={} len={} {hex}", h.sector, h.len)?;
    }
    if let Some(d) = &r.data {
        writeln!(w, "  data {} bytes", d.len())?;
    }
    Ok(())
}

/// `pinvm journal show FILE`: print the header and every record; a truncated or corrupt
/// record is reported inline. Returns the number of records printed.
pub fn render_file(path: &Path, w: &mut impl Write) -> Result<u64, JournalError> {
    let j = Journal::open(path)?;
    let h = j.header();
    writeln!(
        w,
        "pinvm journal v{} record_data={} record_reads={} hash_block={}",
        h.version, h.options.record_data, h.options.record_reads, h.hash_block
    )?;
    let mut n = 0;
    for r in j.records() {
        match r {
            Ok(r) => {
                render(&r, w)?;
                n += 1;
            }
            Err(JournalError::Io(e)) => return Err(e.into()),
            Err(e) => writeln!(w, "!! {e}")?,
        }
    }
    Ok(n)
}
