//! DMA log: one fixed-size binary record per DMA write the engine performed. Specified in
//! docs/dma-log-format.md (version 1); summary:
//!
//! ```text
//! header : magic "PINVMDLG" | u16 version=1 | u16 flags=0 | u32 record_len=64
//! record : u64 time_ns | u32 region | u32 page | u64 file_offset | u64 generation | u64 gpa
//!          | u32 bytes | u8 trigger | u8 0 | u16 page_offset | u64 block_seq | u64 0
//! ```
//!
//! Little endian. `time_ns` is CLOCK_MONOTONIC ([`crate::block::journal::monotonic_ns`], the
//! block journal's clock), taken just before the write, so the two logs merge by time.
//! A reader stops cleanly at a truncated last record (a crash mid-append).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// File magic.
pub const MAGIC: [u8; 8] = *b"PINVMDLG";
/// Format version.
pub const VERSION: u16 = 1;
/// Header length.
pub const HEADER_LEN: usize = 16;
/// Record length.
pub const RECORD_LEN: usize = 64;

/// What caused a DMA write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Burst,
    Rate,
    /// Injected from the block observer while OUT request `seq` was being copied.
    Writeback {
        seq: u64,
    },
    /// A trigger code this reader does not know.
    Unknown(u8),
}

impl Trigger {
    pub fn code(self) -> u8 {
        match self {
            Trigger::Burst => 1,
            Trigger::Rate => 2,
            Trigger::Writeback { .. } => 3,
            Trigger::Unknown(c) => c,
        }
    }
    fn from_parts(code: u8, seq: u64) -> Trigger {
        match code {
            1 => Trigger::Burst,
            2 => Trigger::Rate,
            3 => Trigger::Writeback { seq },
            c => Trigger::Unknown(c),
        }
    }
}

/// One DMA write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaRecord {
    pub time_ns: u64,
    pub region: u32,
    pub page: u32,
    /// File offset of the page (from the driver's header).
    pub file_offset: u64,
    pub generation: u64,
    /// Guest-physical address of the first byte written.
    pub gpa: u64,
    /// Bytes written (4096 for a whole page, 2048 for each half of a writeback injection).
    pub bytes: u32,
    /// Offset of `gpa` within the page.
    pub page_offset: u16,
    pub trigger: Trigger,
}

impl DmaRecord {
    pub fn to_bytes(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0..8].copy_from_slice(&self.time_ns.to_le_bytes());
        b[8..12].copy_from_slice(&self.region.to_le_bytes());
        b[12..16].copy_from_slice(&self.page.to_le_bytes());
        b[16..24].copy_from_slice(&self.file_offset.to_le_bytes());
        b[24..32].copy_from_slice(&self.generation.to_le_bytes());
        b[32..40].copy_from_slice(&self.gpa.to_le_bytes());
        b[40..44].copy_from_slice(&self.bytes.to_le_bytes());
        b[44] = self.trigger.code();
        b[46..48].copy_from_slice(&self.page_offset.to_le_bytes());
        let seq = match self.trigger {
            Trigger::Writeback { seq } => seq,
            _ => 0,
        };
        b[48..56].copy_from_slice(&seq.to_le_bytes());
        b
    }

    pub fn from_bytes(b: &[u8; RECORD_LEN]) -> DmaRecord {
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8"));
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4"));
        DmaRecord {
            time_ns: u64_at(0),
            region: u32_at(8),
            page: u32_at(12),
            file_offset: u64_at(16),
            generation: u64_at(24),
            gpa: u64_at(32),
            bytes: u32_at(40),
            page_offset: u16::from_le_bytes([b[46], b[47]]),
            trigger: Trigger::from_parts(b[44], u64_at(48)),
        }
    }
}

fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(RECORD_LEN as u32).to_le_bytes());
    h
}

/// Appends records to a DMA log file (buffered; call [`flush`](Self::flush)).
pub struct DmaLogWriter {
    out: BufWriter<File>,
    records: u64,
}

impl DmaLogWriter {
    /// Create (truncate) `path` and write the header.
    pub fn create(path: &Path) -> io::Result<DmaLogWriter> {
        let mut out = BufWriter::with_capacity(64 * 1024, File::create(path)?);
        out.write_all(&header())?;
        Ok(DmaLogWriter { out, records: 0 })
    }

    pub fn write(&mut self, r: &DmaRecord) -> io::Result<()> {
        self.out.write_all(&r.to_bytes())?;
        self.records += 1;
        Ok(())
    }

    pub fn records_written(&self) -> u64 {
        self.records
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DmaLogError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("not a DMA log (bad magic)")]
    Magic,
    #[error("unsupported DMA log version {0}")]
    Version(u16),
    #[error("unsupported record length {0}")]
    RecordLen(u32),
}

/// A DMA log opened for reading.
pub struct DmaLog {
    input: BufReader<File>,
}

impl DmaLog {
    pub fn open(path: &Path) -> Result<DmaLog, DmaLogError> {
        let mut input = BufReader::new(File::open(path)?);
        let mut h = [0u8; HEADER_LEN];
        input.read_exact(&mut h).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => DmaLogError::Magic,
            _ => DmaLogError::Io(e),
        })?;
        if h[..8] != MAGIC {
            return Err(DmaLogError::Magic);
        }
        let v = u16::from_le_bytes([h[8], h[9]]);
        if v != VERSION {
            return Err(DmaLogError::Version(v));
        }
        let rl = u32::from_le_bytes(h[12..16].try_into().expect("4"));
        if rl as usize != RECORD_LEN {
            return Err(DmaLogError::RecordLen(rl));
        }
        Ok(DmaLog { input })
    }

    /// Iterate over the records. A truncated last record ends the iteration and sets
    /// [`DmaRecords::truncated`].
    pub fn records(self) -> DmaRecords {
        DmaRecords {
            input: self.input,
            truncated: false,
            done: false,
        }
    }
}

/// Iterator over a DMA log's records; yields `Err` on I/O errors (then stops).
pub struct DmaRecords {
    input: BufReader<File>,
    truncated: bool,
    done: bool,
}

impl DmaRecords {
    /// Whether the log ended with a partial record (only meaningful once exhausted).
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

impl Iterator for DmaRecords {
    type Item = io::Result<DmaRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut b = [0u8; RECORD_LEN];
        let mut got = 0;
        while got < RECORD_LEN {
            match self.input.read(&mut b[got..]) {
                Ok(0) => {
                    self.done = true;
                    self.truncated = got > 0;
                    return None;
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        Some(Ok(DmaRecord::from_bytes(&b)))
    }
}

/// Print a DMA log readably (for `pinvm dma show`): one line per write. Returns the number of
/// records; a truncated last record is reported on its own line.
pub fn render_file(path: &Path, w: &mut impl std::io::Write) -> Result<u64, DmaLogError> {
    let mut records = DmaLog::open(path)?.records();
    let mut n = 0;
    writeln!(w, "pinvm DMA log v{VERSION}")?;
    for r in records.by_ref() {
        let r = r?;
        let trigger = match r.trigger {
            Trigger::Burst => "burst".to_string(),
            Trigger::Rate => "rate".to_string(),
            Trigger::Writeback { seq } => format!("writeback(blk #{seq})"),
            Trigger::Unknown(c) => format!("unknown({c})"),
        };
        writeln!(
            w,
            "{}.{:09} region={} page={} file_off={} gen={} gpa={:#x}+{} ({}) {}",
            r.time_ns / 1_000_000_000,
            r.time_ns % 1_000_000_000,
            r.region,
            r.page,
            r.file_offset,
            r.generation,
            r.gpa,
            r.page_offset,
            r.bytes,
            trigger
        )?;
        n += 1;
    }
    if records.truncated() {
        writeln!(w, "(truncated last record)")?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::tempdir::TempDir;

    fn rec(i: u64, trigger: Trigger) -> DmaRecord {
        DmaRecord {
            time_ns: 1000 + i,
            region: 3,
            page: i as u32,
            file_offset: i * 4096,
            generation: i + 1,
            gpa: 0x10_0000 + i * 4096,
            bytes: 4096,
            page_offset: 0,
            trigger,
        }
    }

    #[test]
    fn roundtrip_and_truncated_tail() {
        let dir = TempDir::new().unwrap();
        let path = dir.as_path().join("dma.log");
        let recs = vec![
            rec(0, Trigger::Burst),
            rec(1, Trigger::Rate),
            DmaRecord {
                bytes: 2048,
                page_offset: 2048,
                ..rec(2, Trigger::Writeback { seq: 77 })
            },
        ];
        let mut w = DmaLogWriter::create(&path).unwrap();
        for r in &recs {
            w.write(r).unwrap();
        }
        w.flush().unwrap();
        assert_eq!(w.records_written(), 3);
        let mut it = DmaLog::open(&path).unwrap().records();
        let got: Vec<_> = it.by_ref().map(|r| r.unwrap()).collect();
        assert_eq!(got, recs);
        assert!(!it.truncated());

        // Chop the last record in half: two records survive, the tail is reported.
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 30).unwrap();
        let mut it = DmaLog::open(&path).unwrap().records();
        let got: Vec<_> = it.by_ref().map(|r| r.unwrap()).collect();
        assert_eq!(got, recs[..2]);
        assert!(it.truncated());
    }

    #[test]
    fn bad_headers() {
        let dir = TempDir::new().unwrap();
        let path = dir.as_path().join("x");
        std::fs::write(&path, b"PINVMDL").unwrap();
        assert!(matches!(DmaLog::open(&path), Err(DmaLogError::Magic)));
        let mut h = header();
        h[8] = 9;
        std::fs::write(&path, h).unwrap();
        assert!(matches!(DmaLog::open(&path), Err(DmaLogError::Version(9))));
        // Header only: no records, not truncated.
        std::fs::write(&path, header()).unwrap();
        let mut it = DmaLog::open(&path).unwrap().records();
        assert!(it.next().is_none());
        assert!(!it.truncated());
    }
}
