//! Writing a DMA log: the header at creation, then one record per DMA write.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::{codec, DmaRecord};

/// Appends records to a DMA log file (buffered; call [`flush`](Self::flush)).
pub struct DmaLogWriter {
    out: BufWriter<File>,
    records: u64,
}

impl DmaLogWriter {
    /// Create (truncate) `path` and write the header.
    pub fn create(path: &Path) -> io::Result<DmaLogWriter> {
        let mut out = BufWriter::with_capacity(64 * 1024, File::create(path)?);
        out.write_all(&codec::header())?;
        Ok(DmaLogWriter { out, records: 0 })
    }

    /// Append one record (buffered).
    pub fn write(&mut self, r: &DmaRecord) -> io::Result<()> {
        self.out.write_all(&r.to_bytes())?;
        self.records += 1;
        Ok(())
    }

    /// Records appended so far.
    pub fn records_written(&self) -> u64 {
        self.records
    }

    /// Push buffered records to the file and fdatasync it.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}
