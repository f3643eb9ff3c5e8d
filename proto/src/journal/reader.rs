//! Reading a journal back: [`Journal::open`] checks the header, [`Journal::records`] iterates.

use std::fs::File;
use std::io::{self, BufReader, Read};
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
        Some(codec::decode(&body).map_err(|reason| JournalError::Corrupt { offset, reason }))
    }
}
