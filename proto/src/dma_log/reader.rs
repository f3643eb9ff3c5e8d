//! Reading a DMA log back: [`DmaLog::open`] checks the header, [`DmaLog::records`] iterates.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use zerocopy::FromBytes;

use super::codec::FileHeader;
use super::{DmaRecord, HEADER_LEN, MAGIC, RECORD_LEN, VERSION};

/// Why a DMA log cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DmaLogError {
    /// Reading the file failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The file does not start with the magic.
    #[error("not a DMA log (bad magic)")]
    Magic,
    /// A version this code does not read.
    #[error("unsupported DMA log version {0}")]
    Version(u16),
    /// A record length this code does not read.
    #[error("unsupported record length {0}")]
    RecordLen(u32),
}

/// A DMA log opened for reading.
pub struct DmaLog {
    input: BufReader<File>,
}

impl DmaLog {
    /// Opens `path` and checks its magic, version and record length.
    pub fn open(path: &Path) -> Result<DmaLog, DmaLogError> {
        let mut input = BufReader::new(File::open(path)?);
        let mut h = [0u8; HEADER_LEN];
        input.read_exact(&mut h).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => DmaLogError::Magic,
            _ => DmaLogError::Io(e),
        })?;
        let h = FileHeader::ref_from_bytes(&h[..]).expect("HEADER_LEN bytes");
        if h.magic != MAGIC {
            return Err(DmaLogError::Magic);
        }
        if h.version.get() != VERSION {
            return Err(DmaLogError::Version(h.version.get()));
        }
        if h.record_len.get() as usize != RECORD_LEN {
            return Err(DmaLogError::RecordLen(h.record_len.get()));
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
