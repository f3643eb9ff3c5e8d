//! The journal's byte layout: the file header and the record body as `#[repr(C)]`
//! little-endian structs, and the body's encoder and decoder.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{
    BlockHash, JournalHeader, JournalOptions, JournalRecord, RequestKind, Segment, HASH_BLOCK,
    HASH_LEN, MAGIC, VERSION,
};

/// Record flag: the record carries the request's data.
const RFLAG_DATA: u8 = 1;

/// The 16-byte file header.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub(super) struct FileHeader {
    pub magic: [u8; 8],
    pub version: U16,
    pub flags: U16,
    pub hash_block: U32,
}

impl FileHeader {
    /// The header a writer with `options` starts the file with.
    pub fn new(options: JournalOptions) -> Self {
        FileHeader {
            magic: MAGIC,
            version: VERSION.into(),
            flags: options.flags().into(),
            hash_block: HASH_BLOCK.into(),
        }
    }

    /// The parsed form (magic and version are the reader's to check).
    pub fn parsed(&self) -> JournalHeader {
        JournalHeader {
            version: self.version.get(),
            options: JournalOptions::from_flags(self.flags.get()),
            hash_block: self.hash_block.get(),
        }
    }
}

/// The fixed start of a record body.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
struct RecordHead {
    seq: U64,
    kind: U32,
    status: u8,
    rflags: u8,
    reserved: U16,
    submit_ns: U64,
    complete_ns: U64,
    sector: U64,
    sectors: U64,
}

/// One `(u64 gpa, u32 len)` segment entry.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
struct SegmentEntry {
    gpa: U64,
    len: U32,
}

/// One `(u64 sector, u32 len, [u8; 16] hash)` hash entry.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
struct HashEntry {
    sector: U64,
    len: U32,
    hash: [u8; HASH_LEN],
}

/// The body of `r` (without its length prefix).
#[cfg(test)]
pub(super) fn encode(r: &JournalRecord) -> Vec<u8> {
    let mut b = encode_head(r);
    if let Some(d) = &r.data {
        b.extend_from_slice(d);
    }
    b
}

/// The body of `r` up to its data bytes (the data length included when there is data): the
/// writer appends the data itself, so a record is never copied whole.
pub(super) fn encode_head(r: &JournalRecord) -> Vec<u8> {
    let mut b = Vec::with_capacity(
        size_of::<RecordHead>()
            + 8
            + r.segments.len() * size_of::<SegmentEntry>()
            + r.hashes.len() * size_of::<HashEntry>()
            + 8,
    );
    let head = RecordHead {
        seq: r.seq.into(),
        kind: r.kind.code().into(),
        status: r.status,
        rflags: if r.data.is_some() { RFLAG_DATA } else { 0 },
        reserved: 0.into(),
        submit_ns: r.submit_ns.into(),
        complete_ns: r.complete_ns.into(),
        sector: r.sector.into(),
        sectors: r.sectors.into(),
    };
    b.extend_from_slice(head.as_bytes());
    b.extend_from_slice(&(r.segments.len() as u32).to_le_bytes());
    for s in &r.segments {
        let e = SegmentEntry {
            gpa: s.addr.into(),
            len: s.len.into(),
        };
        b.extend_from_slice(e.as_bytes());
    }
    b.extend_from_slice(&(r.hashes.len() as u32).to_le_bytes());
    for h in &r.hashes {
        let e = HashEntry {
            sector: h.sector.into(),
            len: h.len.into(),
            hash: h.hash,
        };
        b.extend_from_slice(e.as_bytes());
    }
    if let Some(d) = &r.data {
        b.extend_from_slice(&(d.len() as u64).to_le_bytes());
    }
    b
}

/// Bytes of a record's length prefix, fixed head and segment count: what
/// [`plausible_start`] looks at.
pub(super) const START_LEN: usize = 4 + size_of::<RecordHead>() + 4;

/// What the first [`START_LEN`] bytes of a record say, when they can start one.
pub(super) struct Start {
    /// The length prefix.
    pub len: u32,
    /// The record's sequence number.
    pub seq: u64,
    /// The segment count.
    pub nseg: u32,
    /// The data flag.
    pub data: bool,
}

/// Whether `b` can start a record this writer wrote: a type it journals (IN, OUT, FLUSH), a
/// status byte it returns, no unknown flag, a zero reserved field, completion not before
/// submission, a body long enough for its fixed parts.
pub(super) fn plausible_start(b: &[u8; START_LEN]) -> Option<Start> {
    let (len, rest) = U32::read_from_prefix(&b[..]).ok()?;
    let (head, rest) = RecordHead::read_from_prefix(rest).ok()?;
    let (nseg, _) = U32::read_from_prefix(rest).ok()?;
    let plausible = matches!(head.kind.get(), 0 | 1 | 4)
        && head.status <= 2
        && head.rflags & !RFLAG_DATA == 0
        && head.reserved.get() == 0
        && head.complete_ns.get() >= head.submit_ns.get()
        && len.get() as usize >= size_of::<RecordHead>() + 8;
    plausible.then(|| Start {
        len: len.get(),
        seq: head.seq.get(),
        nseg: nseg.get(),
        data: head.rflags & RFLAG_DATA != 0,
    })
}

/// Offset in a body of the hash count, after `nseg` segments.
pub(super) fn hash_count_at(nseg: u32) -> u64 {
    (size_of::<RecordHead>() + 4) as u64 + u64::from(nseg) * size_of::<SegmentEntry>() as u64
}

/// Offset in a body of what follows `nhash` hashes (the data length, or the end).
pub(super) fn after_hashes(nseg: u32, nhash: u32) -> u64 {
    hash_count_at(nseg) + 4 + u64::from(nhash) * size_of::<HashEntry>() as u64
}

/// Reads a record body front to back.
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

    fn read<T: FromBytes>(&mut self) -> Result<T, &'static str> {
        let (v, rest) = T::read_from_prefix(self.0).map_err(|_| "record body too short")?;
        self.0 = rest;
        Ok(v)
    }

    /// A count of `T` entries that must fit in the rest of the body.
    fn count<T>(&mut self, what: &'static str) -> Result<usize, &'static str> {
        let n = self.read::<U32>()?.get() as usize;
        if n > self.0.len() / size_of::<T>() {
            return Err(what);
        }
        Ok(n)
    }
}

/// Parses a record body; the error says what is wrong with it.
pub(super) fn decode(body: &[u8]) -> Result<JournalRecord, &'static str> {
    let mut c = Cursor(body);
    let head: RecordHead = c.read()?;
    let nseg = c.count::<SegmentEntry>("segment count exceeds record")?;
    let mut segments = Vec::with_capacity(nseg);
    for _ in 0..nseg {
        let e: SegmentEntry = c.read()?;
        segments.push(Segment {
            addr: e.gpa.get(),
            len: e.len.get(),
        });
    }
    let nhash = c.count::<HashEntry>("hash count exceeds record")?;
    let mut hashes = Vec::with_capacity(nhash);
    for _ in 0..nhash {
        let e: HashEntry = c.read()?;
        hashes.push(BlockHash {
            sector: e.sector.get(),
            len: e.len.get(),
            hash: e.hash,
        });
    }
    let data = if head.rflags & RFLAG_DATA != 0 {
        let n = usize::try_from(c.read::<U64>()?.get()).map_err(|_| "data length too large")?;
        Some(c.take(n)?.to_vec())
    } else {
        None
    };
    if !c.0.is_empty() {
        return Err("trailing bytes in record");
    }
    Ok(JournalRecord {
        seq: head.seq.get(),
        kind: RequestKind::from_code(head.kind.get()),
        status: head.status,
        submit_ns: head.submit_ns.get(),
        complete_ns: head.complete_ns.get(),
        sector: head.sector.get(),
        sectors: head.sectors.get(),
        segments,
        hashes,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// The layout of the module documentation of [`super::super`].
    #[test]
    fn layouts() {
        assert_eq!(size_of::<FileHeader>() as u64, super::super::HEADER_LEN);
        assert_eq!(offset_of!(FileHeader, version), 8);
        assert_eq!(offset_of!(FileHeader, flags), 10);
        assert_eq!(offset_of!(FileHeader, hash_block), 12);
        assert_eq!(size_of::<RecordHead>(), 48);
        assert_eq!(offset_of!(RecordHead, kind), 8);
        assert_eq!(offset_of!(RecordHead, status), 12);
        assert_eq!(offset_of!(RecordHead, rflags), 13);
        assert_eq!(offset_of!(RecordHead, reserved), 14);
        assert_eq!(offset_of!(RecordHead, submit_ns), 16);
        assert_eq!(offset_of!(RecordHead, complete_ns), 24);
        assert_eq!(offset_of!(RecordHead, sector), 32);
        assert_eq!(offset_of!(RecordHead, sectors), 40);
        assert_eq!(size_of::<SegmentEntry>(), 12);
        assert_eq!(size_of::<HashEntry>(), 12 + HASH_LEN);
        assert_eq!(offset_of!(HashEntry, hash), 12);
    }

    #[test]
    fn golden_body() {
        let r = JournalRecord {
            seq: 7,
            kind: RequestKind::Out,
            status: 1,
            submit_ns: 0x0102,
            complete_ns: 0x0304,
            sector: 16,
            sectors: 8,
            segments: vec![Segment {
                addr: 0x1000,
                len: 4096,
            }],
            hashes: vec![],
            data: Some(vec![0xab; 2]),
        };
        let b = encode(&r);
        let mut want = vec![7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0];
        want.extend_from_slice(&[2, 1, 0, 0, 0, 0, 0, 0, 4, 3, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[16, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[1, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0]);
        want.extend_from_slice(&[0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xab]);
        assert_eq!(b, want);
        assert_eq!(decode(&b), Ok(r));
        assert_eq!(decode(&b[..b.len() - 1]), Err("record body too short"));
        let mut long = b.clone();
        long.push(0);
        assert_eq!(decode(&long), Err("trailing bytes in record"));
    }
}
