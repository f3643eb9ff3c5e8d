//! Block write journal: a compact binary log of the requests the block device served.
//! The format is specified in docs/journal-format.md (version 1); summary:
//!
//! ```text
//! header  : magic "PINVMJNL" | u16 version=1 | u16 flags | u32 hash_block=4096
//! record* : u32 body_len | body (body_len bytes)
//! body    : u64 seq | u32 type | u8 status | u8 rflags | u16 0 | u64 submit_ns | u64 complete_ns
//!           | u64 sector | u64 sectors | u32 nseg | nseg*(u64 gpa, u32 len)
//!           | u32 nhash | nhash*(u64 sector, u32 len, [u8;16] sha256[..16])
//!           | if rflags&1: u64 data_len | data
//! ```
//!
//! All integers little endian. Times are CLOCK_MONOTONIC nanoseconds ([`monotonic_ns`]).
//! Hashes cover consecutive 4 KiB blocks of the request's data buffer (the concatenation of
//! its segments in chain order); block `k` starts at sector `sector + 8k`, and the last block
//! may be shorter (a multiple of 512 bytes).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::request::{status, RequestKind, Segment};

/// File magic.
pub const MAGIC: [u8; 8] = *b"PINVMJNL";
/// Format version written by this code.
pub const VERSION: u16 = 1;
/// Bytes of data per hash.
pub const HASH_BLOCK: u32 = 4096;
/// Bytes of SHA-256 kept per block.
pub const HASH_LEN: usize = 16;
/// Header flag: data of written blocks is recorded.
pub const FLAG_RECORD_DATA: u16 = 1;
/// Header flag: IN requests are recorded too.
pub const FLAG_RECORD_READS: u16 = 2;
/// Record flag: the record carries the request's data.
const RFLAG_DATA: u8 = 1;

/// What the journal records beyond the default (OUT and FLUSH with hashes only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalOptions {
    /// Store the full data of each recorded request.
    pub record_data: bool,
    /// Also record IN requests.
    pub record_reads: bool,
}

/// CLOCK_MONOTONIC in nanoseconds (the clock every pinvm log uses, so logs can be merged).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass, which is valid and exclusively
    // borrowed; CLOCK_MONOTONIC is always available on Linux, so it cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Truncated SHA-256 of one block.
pub fn block_hash(data: &[u8]) -> [u8; HASH_LEN] {
    let full = Sha256::digest(data);
    full[..HASH_LEN].try_into().expect("sha256 is 32 bytes")
}

/// Hash of one block of a request's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHash {
    /// Disk sector where this block starts.
    pub sector: u64,
    /// Block length in bytes (4096, or less for the last block).
    pub len: u32,
    pub hash: [u8; HASH_LEN],
}

/// One journaled request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalRecord {
    /// Per-device request sequence number (every parsed request gets one, journaled or not).
    pub seq: u64,
    pub kind: RequestKind,
    /// Status byte returned to the guest.
    pub status: u8,
    pub submit_ns: u64,
    pub complete_ns: u64,
    pub sector: u64,
    pub sectors: u64,
    pub segments: Vec<Segment>,
    pub hashes: Vec<BlockHash>,
    /// Full data, when [`JournalOptions::record_data`] was set.
    pub data: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("not a pinvm journal (bad magic)")]
    BadMagic,
    #[error("unsupported journal version {0}")]
    Version(u16),
    #[error("truncated record at offset {offset}: {available} of {needed} bytes present")]
    Truncated {
        offset: u64,
        needed: u64,
        available: u64,
    },
    #[error("corrupt record at offset {offset}: {reason}")]
    Corrupt { offset: u64, reason: &'static str },
}

/// Buffered journal writer.
pub struct JournalWriter {
    out: BufWriter<File>,
    options: JournalOptions,
}

impl JournalWriter {
    /// Create (truncate) `path` and write the header.
    pub fn create(path: &Path, options: JournalOptions) -> io::Result<JournalWriter> {
        let mut out = BufWriter::with_capacity(256 << 10, File::create(path)?);
        let mut flags = 0;
        if options.record_data {
            flags |= FLAG_RECORD_DATA;
        }
        if options.record_reads {
            flags |= FLAG_RECORD_READS;
        }
        out.write_all(&MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        out.write_all(&flags.to_le_bytes())?;
        out.write_all(&HASH_BLOCK.to_le_bytes())?;
        Ok(JournalWriter { out, options })
    }

    pub fn options(&self) -> JournalOptions {
        self.options
    }

    /// Whether requests of `kind` are journaled.
    pub fn wants(&self, kind: RequestKind) -> bool {
        match kind {
            RequestKind::Out | RequestKind::Flush => true,
            RequestKind::In => self.options.record_reads,
            _ => false,
        }
    }

    /// Append one record (buffered).
    pub fn write(&mut self, r: &JournalRecord) -> io::Result<()> {
        let mut b = Vec::with_capacity(
            64 + r.segments.len() * 12
                + r.hashes.len() * (12 + HASH_LEN)
                + r.data.as_ref().map_or(0, |d| d.len() + 8),
        );
        b.extend_from_slice(&r.seq.to_le_bytes());
        b.extend_from_slice(&r.kind.code().to_le_bytes());
        b.push(r.status);
        b.push(if r.data.is_some() { RFLAG_DATA } else { 0 });
        b.extend_from_slice(&0u16.to_le_bytes());
        for v in [r.submit_ns, r.complete_ns, r.sector, r.sectors] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&(r.segments.len() as u32).to_le_bytes());
        for s in &r.segments {
            b.extend_from_slice(&s.addr.to_le_bytes());
            b.extend_from_slice(&s.len.to_le_bytes());
        }
        b.extend_from_slice(&(r.hashes.len() as u32).to_le_bytes());
        for h in &r.hashes {
            b.extend_from_slice(&h.sector.to_le_bytes());
            b.extend_from_slice(&h.len.to_le_bytes());
            b.extend_from_slice(&h.hash);
        }
        if let Some(d) = &r.data {
            b.extend_from_slice(&(d.len() as u64).to_le_bytes());
            b.extend_from_slice(d);
        }
        let len = u32::try_from(b.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "journal record > 4 GiB"))?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&b)
    }

    /// Push buffered records to the file (no fsync).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

/// Parsed journal header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalHeader {
    pub version: u16,
    pub options: JournalOptions,
    pub hash_block: u32,
}

/// Header size in bytes.
pub const HEADER_LEN: u64 = 16;

/// A journal opened for reading.
pub struct Journal {
    header: JournalHeader,
    input: BufReader<File>,
}

impl Journal {
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let mut input = BufReader::new(File::open(path)?);
        let mut h = [0u8; HEADER_LEN as usize];
        input.read_exact(&mut h).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => JournalError::BadMagic,
            _ => e.into(),
        })?;
        if h[..8] != MAGIC {
            return Err(JournalError::BadMagic);
        }
        let version = u16::from_le_bytes([h[8], h[9]]);
        if version != VERSION {
            return Err(JournalError::Version(version));
        }
        let flags = u16::from_le_bytes([h[10], h[11]]);
        Ok(Journal {
            header: JournalHeader {
                version,
                options: JournalOptions {
                    record_data: flags & FLAG_RECORD_DATA != 0,
                    record_reads: flags & FLAG_RECORD_READS != 0,
                },
                hash_block: u32::from_le_bytes(h[12..16].try_into().unwrap()),
            },
            input,
        })
    }

    pub fn header(&self) -> JournalHeader {
        self.header
    }

    /// Iterate over the records. A truncated last record yields one
    /// [`JournalError::Truncated`] and ends the iteration; a record whose body does not
    /// parse yields [`JournalError::Corrupt`] and iteration continues with the next one.
    pub fn records(self) -> Records {
        Records {
            input: self.input,
            offset: HEADER_LEN,
            done: false,
        }
    }
}

/// Iterator returned by [`Journal::records`].
pub struct Records {
    input: BufReader<File>,
    offset: u64,
    done: bool,
}

/// Read until `buf` is full or EOF; returns the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Iterator for Records {
    type Item = Result<JournalRecord, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let offset = self.offset;
        let mut len = [0u8; 4];
        let got = match read_full(&mut self.input, &mut len) {
            Ok(n) => n,
            Err(e) => {
                self.done = true;
                return Some(Err(e.into()));
            }
        };
        if got == 0 {
            self.done = true;
            return None;
        }
        if got < 4 {
            self.done = true;
            return Some(Err(JournalError::Truncated {
                offset,
                needed: 4,
                available: got as u64,
            }));
        }
        let len = u32::from_le_bytes(len);
        // Read the body in bounded steps so a garbage length cannot allocate gigabytes up front.
        let mut body = Vec::new();
        let limited = (&mut self.input)
            .take(u64::from(len))
            .read_to_end(&mut body);
        if let Err(e) = limited {
            self.done = true;
            return Some(Err(e.into()));
        }
        if body.len() < len as usize {
            self.done = true;
            return Some(Err(JournalError::Truncated {
                offset,
                needed: 4 + u64::from(len),
                available: 4 + body.len() as u64,
            }));
        }
        self.offset += 4 + u64::from(len);
        Some(decode(&body).map_err(|reason| JournalError::Corrupt { offset, reason }))
    }
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], &'static str> {
        if self.0.len() < n {
            return Err("record body too short");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, &'static str> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
}

fn decode(body: &[u8]) -> Result<JournalRecord, &'static str> {
    let mut c = Cursor(body);
    let seq = c.u64()?;
    let kind = RequestKind::from_code(c.u32()?);
    let status = c.u8()?;
    let rflags = c.u8()?;
    let _reserved = c.u16()?;
    let (submit_ns, complete_ns, sector, sectors) = (c.u64()?, c.u64()?, c.u64()?, c.u64()?);
    let nseg = c.u32()? as usize;
    if nseg > c.0.len() / 12 {
        return Err("segment count exceeds record");
    }
    let mut segments = Vec::with_capacity(nseg);
    for _ in 0..nseg {
        segments.push(Segment {
            addr: c.u64()?,
            len: c.u32()?,
        });
    }
    let nhash = c.u32()? as usize;
    if nhash > c.0.len() / (12 + HASH_LEN) {
        return Err("hash count exceeds record");
    }
    let mut hashes = Vec::with_capacity(nhash);
    for _ in 0..nhash {
        hashes.push(BlockHash {
            sector: c.u64()?,
            len: c.u32()?,
            hash: c.take(HASH_LEN)?.try_into().unwrap(),
        });
    }
    let data = if rflags & RFLAG_DATA != 0 {
        let n = usize::try_from(c.u64()?).map_err(|_| "data length too large")?;
        Some(c.take(n)?.to_vec())
    } else {
        None
    };
    if !c.0.is_empty() {
        return Err("trailing bytes in record");
    }
    Ok(JournalRecord {
        seq,
        kind,
        status,
        submit_ns,
        complete_ns,
        sector,
        sectors,
        segments,
        hashes,
        data,
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::tempdir::TempDir;

    fn rec(seq: u64, data: Option<Vec<u8>>) -> JournalRecord {
        JournalRecord {
            seq,
            kind: RequestKind::Out,
            status: 0,
            submit_ns: 1_000_000_123,
            complete_ns: 1_000_020_123,
            sector: 16,
            sectors: 9,
            segments: vec![
                Segment {
                    addr: 0x1000,
                    len: 4096,
                },
                Segment {
                    addr: 0x8000,
                    len: 512,
                },
            ],
            hashes: vec![
                BlockHash {
                    sector: 16,
                    len: 4096,
                    hash: block_hash(&[1; 4096]),
                },
                BlockHash {
                    sector: 24,
                    len: 512,
                    hash: block_hash(&[2; 512]),
                },
            ],
            data,
        }
    }

    #[test]
    fn roundtrip_truncation_and_render() {
        let dir = TempDir::new().unwrap();
        let p = dir.as_path().join("j.bin");
        let opts = JournalOptions {
            record_data: true,
            record_reads: false,
        };
        let mut w = JournalWriter::create(&p, opts).unwrap();
        let recs = [rec(1, None), rec(2, Some(vec![7; 4608])), rec(3, None)];
        for r in &recs {
            w.write(r).unwrap();
        }
        drop(w);

        let j = Journal::open(&p).unwrap();
        assert_eq!(j.header().options, opts);
        let got: Vec<_> = j.records().map(|r| r.unwrap()).collect();
        assert_eq!(got, recs);

        // Chop the last record in half: the first two still read, then one Truncated.
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 20]).unwrap();
        let got: Vec<_> = Journal::open(&p).unwrap().records().collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].as_ref().unwrap(), &recs[1]);
        assert!(matches!(got[2], Err(JournalError::Truncated { .. })));

        // A partial length prefix is also a truncation.
        let first_len = 4 + u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
        std::fs::write(&p, &bytes[..16 + first_len + 2]).unwrap();
        let got: Vec<_> = Journal::open(&p).unwrap().records().collect();
        assert_eq!(got.len(), 2);
        assert!(matches!(
            got[1],
            Err(JournalError::Truncated { needed: 4, .. })
        ));

        // Corrupt body (claims more segments than fit): reported, the next record still reads.
        let mut bad = bytes.clone();
        bad[16 + 4 + 48..16 + 4 + 52].copy_from_slice(&1000u32.to_le_bytes());
        std::fs::write(&p, &bad).unwrap();
        let got: Vec<_> = Journal::open(&p).unwrap().records().collect();
        assert!(matches!(got[0], Err(JournalError::Corrupt { .. })));
        assert_eq!(got[1].as_ref().unwrap(), &recs[1]);
        assert_eq!(got.len(), 3);

        std::fs::write(&p, b"NOTAJRNL\x01\x00\x00\x00\x00\x10\x00\x00").unwrap();
        assert!(matches!(Journal::open(&p), Err(JournalError::BadMagic)));

        let mut out = Vec::new();
        render(&recs[1], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "#2 OUT OK sector=16 sectors=9 submit=1.000000123 took=20.0us"
        );
        assert_eq!(lines[1], "  seg gpa=0x1000 len=4096");
        assert!(lines[3].starts_with("  hash sector=16 len=4096 "));
        assert_eq!(lines[5], "  data 4608 bytes");
    }

    #[test]
    fn monotonic_clock_advances() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }
}
