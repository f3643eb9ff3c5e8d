//! Reading a journal back: [`Journal::open`] checks the header, [`Journal::records`] iterates.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use zerocopy::FromBytes;

use super::codec::{self, FileHeader};
use super::{JournalError, JournalHeader, JournalRecord, HEADER_LEN, MAGIC, VERSION};

/// A journal opened for reading.
pub struct Journal {
    header: JournalHeader,
    input: BufReader<File>,
}

impl Journal {
    /// Opens `path` and checks its magic and version.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let mut input = BufReader::new(File::open(path)?);
        let mut h = [0u8; HEADER_LEN as usize];
        input.read_exact(&mut h).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => JournalError::BadMagic,
            _ => e.into(),
        })?;
        let h = FileHeader::ref_from_bytes(&h[..]).expect("HEADER_LEN bytes");
        if h.magic != MAGIC {
            return Err(JournalError::BadMagic);
        }
        let header = h.parsed();
        if header.version != VERSION {
            return Err(JournalError::Version(header.version));
        }
        Ok(Journal { header, input })
    }

    /// The file's header.
    pub fn header(&self) -> JournalHeader {
        self.header
    }

    /// Iterate over the records. A record whose body does not parse yields
    /// [`JournalError::Corrupt`]; a length prefix that runs past the end of the file yields
    /// [`JournalError::Corrupt`] too when records follow, else [`JournalError::Truncated`] (the
    /// writer stopped mid-append). After either, the reader looks for the next record (a
    /// plausible head, a higher sequence number, counts that add up to the length) and goes
    /// on from there, so one damaged record hides no other.
    pub fn records(self) -> Records {
        let file_len = self
            .input
            .get_ref()
            .metadata()
            .map_or(u64::MAX, |m| m.len());
        Records {
            input: self.input,
            offset: HEADER_LEN,
            file_len,
            last_seq: None,
            resync: false,
            done: false,
        }
    }
}

/// Iterator returned by [`Journal::records`].
pub struct Records {
    input: BufReader<File>,
    /// File offset of the next record's length prefix.
    offset: u64,
    /// The file's length when it was opened.
    file_len: u64,
    /// Sequence number of the last record returned.
    last_seq: Option<u64>,
    /// The record at `offset` was damaged: find the next one before reading on.
    resync: bool,
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

impl Records {
    /// The next record's offset after `from` (exclusive), or None; moves the input there.
    fn skip_to_next(&mut self, from: u64) -> io::Result<Option<u64>> {
        let found = super::resync::next_record(
            self.input.get_ref(),
            from + 1,
            self.file_len,
            self.last_seq,
        )?;
        if let Some(o) = found {
            self.input.seek(SeekFrom::Start(o))?;
            self.offset = o;
        }
        Ok(found)
    }

    fn fail(&mut self, e: impl Into<JournalError>) -> Option<Result<JournalRecord, JournalError>> {
        self.done = true;
        Some(Err(e.into()))
    }
}

impl Iterator for Records {
    type Item = Result<JournalRecord, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.resync {
            self.resync = false;
            match self.skip_to_next(self.offset) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Err(e) => return self.fail(e),
            }
        }
        let offset = self.offset;
        let mut len = [0u8; 4];
        let got = match read_full(&mut self.input, &mut len) {
            Ok(n) => n,
            Err(e) => return self.fail(e),
        };
        if got == 0 {
            self.done = true;
            return None;
        }
        if got < 4 {
            return self.fail(JournalError::Truncated {
                offset,
                needed: 4,
                available: got as u64,
            });
        }
        let len = u32::from_le_bytes(len);
        let end = offset + 4 + u64::from(len);
        if end > self.file_len {
            // A damaged length prefix, or the writer stopped mid-append: records after it
            // tell the two apart.
            return match self.skip_to_next(offset) {
                Ok(Some(_)) => Some(Err(JournalError::Corrupt {
                    offset,
                    reason: "length runs past the end of the file",
                })),
                Ok(None) => self.fail(JournalError::Truncated {
                    offset,
                    needed: 4 + u64::from(len),
                    available: self.file_len.saturating_sub(offset),
                }),
                Err(e) => self.fail(e),
            };
        }
        // At most the rest of the file (checked above), read in bounded steps.
        let mut body = Vec::new();
        let limited = (&mut self.input)
            .take(u64::from(len))
            .read_to_end(&mut body);
        if let Err(e) = limited {
            return self.fail(e);
        }
        if body.len() < len as usize {
            return self.fail(JournalError::Truncated {
                offset,
                needed: 4 + u64::from(len),
                available: 4 + body.len() as u64,
            });
        }
        self.offset = end;
        match codec::decode(&body) {
            Ok(r) => {
                self.last_seq = Some(r.seq);
                Some(Ok(r))
            }
            Err(reason) => {
                self.offset = offset;
                self.resync = true;
                Some(Err(JournalError::Corrupt { offset, reason }))
            }
        }
    }
}
