//! Writing a journal: the header at creation, then one length-prefixed record per request.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use zerocopy::IntoBytes;

use super::codec::{self, FileHeader};
use super::{JournalOptions, JournalRecord, RequestKind};

/// Buffered journal writer.
pub struct JournalWriter {
    out: BufWriter<File>,
    options: JournalOptions,
    /// Bytes written so far (header included).
    bytes: u64,
}

impl JournalWriter {
    /// Create (truncate) `path` and write the header.
    pub fn create(path: &Path, options: JournalOptions) -> io::Result<JournalWriter> {
        let mut out = BufWriter::with_capacity(256 << 10, File::create(path)?);
        out.write_all(FileHeader::new(options).as_bytes())?;
        Ok(JournalWriter {
            out,
            options,
            bytes: super::HEADER_LEN,
        })
    }

    /// The options the header announces.
    pub fn options(&self) -> JournalOptions {
        self.options
    }

    /// Whether requests of `kind` are journaled (what the header's flags promise a reader).
    pub fn wants(&self, kind: RequestKind) -> bool {
        match kind {
            RequestKind::Out | RequestKind::Flush => true,
            RequestKind::In => self.options.record_reads,
            _ => false,
        }
    }

    /// Append one record (buffered; its data is written from `r`, not copied first).
    pub fn write(&mut self, r: &JournalRecord) -> io::Result<()> {
        let head = codec::encode_head(r);
        let data: &[u8] = r.data.as_deref().unwrap_or_default();
        let len = u32::try_from(head.len() + data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "journal record > 4 GiB"))?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&head)?;
        self.out.write_all(data)?;
        self.bytes += 4 + u64::from(len);
        Ok(())
    }

    /// Bytes of the file so far (header and records, buffered ones included).
    pub fn bytes_written(&self) -> u64 {
        self.bytes
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
