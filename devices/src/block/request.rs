//! Strict parsing of virtio-blk request descriptor chains (virtio 1.2 §5.2.6).
//!
//! The chain comes from [`crate::virtio::chain`] (at most `max_descriptors + 1` descriptors).
//! Layout accepted: descriptor 0 is the device-readable header (≥ 16 bytes; only the first 16
//! are used: a [`RequestHeader`]), descriptors 1..n-1 are data, and the last descriptor is
//! the device-writable status buffer (≥ 1 byte; the status is written to its **last** byte,
//! which for Linux's 1-byte status descriptor is its only byte).
//!
//! Every buffer must lie inside guest memory. Data rules per type:
//! - IN / OUT: at least one data descriptor, each non-empty, device-writable for IN and
//!   device-readable for OUT, at most `seg_max` of them, total length a multiple of 512, and
//!   `sector + total/512 <= capacity` (overflow-checked).
//! - FLUSH: no data descriptors (the sector field is ignored).
//! - GET_ID: at least one non-empty device-writable data descriptor.
//! - any other type: parsed as [`RequestKind::Other`] without data checks; the executor
//!   answers UNSUPP.
//!
//! A chain that is cut short (the last descriptor still has NEXT set: a loop, an index
//! outside the table, or a chain longer than the queue, all of which virtio-queue's iterator
//! stops at `queue size` descriptors) or whose last descriptor cannot hold a status byte has
//! no trustworthy status byte: [`Malformed::status_addr`] is `None` and the caller completes
//! the chain with length 0. Every other violation yields `Some(status_addr)` so the caller
//! can answer IOERR.

use proto::journal::{RequestKind, Segment};
use vm_memory::{Bytes, GuestAddress, GuestMemory, Permissions};

use super::layout::RequestHeader;
use crate::virtio::chain::{in_memory, is_complete, Desc};

/// Size of the request header ([`RequestHeader`]).
pub const HEADER_SIZE: u32 = std::mem::size_of::<RequestHeader>() as u32;
/// Length of the GET_ID answer.
pub const ID_BYTES: usize = 20;

/// A validated request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Request type from the header (`le32 type`).
    pub kind: RequestKind,
    /// Header sector (meaningful for IN and OUT).
    pub sector: u64,
    /// Data buffers in chain order (empty for FLUSH).
    pub segments: Vec<Segment>,
    /// Sum of the segment lengths.
    pub data_len: u64,
    /// GPA of the status byte.
    pub status_addr: u64,
}

impl Request {
    /// Number of 512-byte sectors covered (IN/OUT), else 0.
    pub fn sectors(&self) -> u64 {
        match self.kind {
            RequestKind::In | RequestKind::Out => self.data_len / 512,
            _ => 0,
        }
    }
}

/// What is wrong with a chain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The chain has no descriptor at all (no status byte).
    #[error("empty descriptor chain")]
    Empty,
    /// The last descriptor still has NEXT set; the value is the chain length limit
    /// ([`Limits::max_descriptors`]). No status byte.
    #[error("descriptor chain cut short (loop, bad index or longer than {0} descriptors)")]
    Truncated(usize),
    /// The chain has fewer than two descriptors, or its last one is not device-writable or
    /// not writable guest memory. No status byte.
    #[error("last descriptor is not a usable status buffer")]
    NoStatus,
    /// Descriptor 0 is device-writable or shorter than the 16-byte header.
    #[error("header descriptor is device-writable or shorter than 16 bytes")]
    BadHeader,
    /// The header's 16 bytes are not in guest memory.
    #[error("header not readable from guest memory")]
    HeaderUnreadable,
    /// The data descriptor at this index in the chain (1 is the first after the header) is
    /// device-readable where the type needs device-writable, or the other way round.
    #[error("data descriptor {0} has the wrong direction")]
    WrongDirection(usize),
    /// The data descriptor at this index in the chain has length 0.
    #[error("data descriptor {0} is empty")]
    EmptySegment(usize),
    /// The data descriptor at this index in the chain is not (wholly) in guest memory with
    /// the access the request needs.
    #[error("data descriptor {0} is outside guest memory")]
    OutOfMemory(usize),
    /// An IN, OUT or GET_ID request without data descriptors.
    #[error("request needs data descriptors and has none")]
    NoData,
    /// A FLUSH request with data descriptors.
    #[error("request must not carry data")]
    UnexpectedData,
    /// More data descriptors (the value) than [`Limits::seg_max`].
    #[error("{0} data descriptors exceed seg_max")]
    TooManySegments(usize),
    /// An IN or OUT request whose data length in bytes (the value) is not whole sectors.
    #[error("data length {0} is not a multiple of 512")]
    Unaligned(u64),
    /// An IN or OUT request that reaches past the end of the disk (or overflows u64).
    #[error("sectors {sector}+{sectors} exceed capacity {capacity}")]
    OutOfDisk {
        /// The header's first sector.
        sector: u64,
        /// Sectors the data covers.
        sectors: u64,
        /// Disk size in sectors ([`Limits::capacity`]).
        capacity: u64,
    },
}

/// A chain that was rejected, with the status byte address if one can be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed {
    /// The first rule the chain broke.
    pub error: ParseError,
    /// Guest-physical address of the status byte, to answer IOERR at; `None` when the chain
    /// has no trustworthy status byte (complete it with used length 0).
    pub status_addr: Option<u64>,
}

/// Limits the parser enforces.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Disk size in sectors.
    pub capacity: u64,
    /// Maximum number of data descriptors (the advertised seg_max).
    pub seg_max: u32,
    /// Maximum chain length; longer chains are rejected as truncated.
    pub max_descriptors: usize,
}

/// Validate a chain (see the module documentation for the rules). The checks run in the
/// order the rules are listed: the status byte first, so that every later violation can be
/// answered with IOERR.
pub fn parse<M: GuestMemory + ?Sized>(
    descs: &[Desc],
    mem: &M,
    limits: Limits,
) -> Result<Request, Malformed> {
    let status_addr =
        status_byte(descs, mem, limits.max_descriptors).map_err(|error| Malformed {
            error,
            status_addr: None,
        })?;
    let fail = |error| Malformed {
        error,
        status_addr: Some(status_addr),
    };
    let (kind, sector) = read_header(&descs[0], mem).map_err(fail)?;
    let data = &descs[1..descs.len() - 1];
    let Some(want_writable) = data_direction(kind, data).map_err(fail)? else {
        return Ok(Request {
            kind,
            sector,
            segments: Vec::new(),
            data_len: 0,
            status_addr,
        });
    };
    let (segments, data_len) =
        data_segments(data, mem, want_writable, limits.seg_max).map_err(fail)?;
    check_extent(kind, sector, &segments, data_len, limits.capacity).map_err(fail)?;
    Ok(Request {
        kind,
        sector,
        segments,
        data_len,
        status_addr,
    })
}

/// Address of the status byte: the last byte of the last descriptor, which must end a whole
/// chain of at least two descriptors and be device-writable inside guest memory.
fn status_byte<M: GuestMemory + ?Sized>(
    descs: &[Desc],
    mem: &M,
    max_descriptors: usize,
) -> Result<u64, ParseError> {
    let last = descs.last().ok_or(ParseError::Empty)?;
    if !is_complete(descs, max_descriptors) {
        return Err(ParseError::Truncated(max_descriptors));
    }
    if !last.writable || descs.len() < 2 {
        return Err(ParseError::NoStatus);
    }
    match last.last_byte() {
        Some(a) if in_memory(mem, a, 1, Permissions::Write) => Ok(a),
        _ => Err(ParseError::NoStatus),
    }
}

/// Request type and sector from the device-readable header descriptor.
fn read_header<M: GuestMemory + ?Sized>(
    header: &Desc,
    mem: &M,
) -> Result<(RequestKind, u64), ParseError> {
    if header.writable || header.len < HEADER_SIZE {
        return Err(ParseError::BadHeader);
    }
    let raw: RequestHeader = mem
        .read_obj(GuestAddress(header.addr))
        .map_err(|_| ParseError::HeaderUnreadable)?;
    Ok((
        RequestKind::from_code(raw.request_type.to_native()),
        raw.sector.to_native(),
    ))
}

/// Direction the data descriptors of a `kind` request must have (`true`: device-writable);
/// `None` for types answered UNSUPP, whose data is not looked at.
fn data_direction(kind: RequestKind, data: &[Desc]) -> Result<Option<bool>, ParseError> {
    match kind {
        RequestKind::In | RequestKind::GetId => Ok(Some(true)),
        RequestKind::Out => Ok(Some(false)),
        RequestKind::Flush if data.is_empty() => Ok(Some(false)),
        RequestKind::Flush => Err(ParseError::UnexpectedData),
        RequestKind::Other(_) => Ok(None),
    }
}

/// The data descriptors as segments (at most `seg_max`; each non-empty, in the wanted
/// direction and inside guest memory) and their total length. Errors name the descriptor's
/// index in the chain.
fn data_segments<M: GuestMemory + ?Sized>(
    data: &[Desc],
    mem: &M,
    want_writable: bool,
    seg_max: u32,
) -> Result<(Vec<Segment>, u64), ParseError> {
    if data.len() > seg_max as usize {
        return Err(ParseError::TooManySegments(data.len()));
    }
    let perm = if want_writable {
        Permissions::Write
    } else {
        Permissions::Read
    };
    let mut segments = Vec::with_capacity(data.len());
    let mut data_len = 0u64;
    for (i, d) in (1..).zip(data) {
        if d.writable != want_writable {
            return Err(ParseError::WrongDirection(i));
        }
        if d.len == 0 {
            return Err(ParseError::EmptySegment(i));
        }
        if !d.in_memory(mem, perm) {
            return Err(ParseError::OutOfMemory(i));
        }
        segments.push(Segment {
            addr: d.addr,
            len: d.len,
        });
        // Cannot overflow: at most u32::MAX segments of at most u32::MAX bytes each.
        data_len += u64::from(d.len);
    }
    Ok((segments, data_len))
}

/// The rules on a request's data as a whole: IN, OUT and GET_ID carry some; IN and OUT carry
/// whole sectors that end on the disk (overflow-checked).
fn check_extent(
    kind: RequestKind,
    sector: u64,
    segments: &[Segment],
    data_len: u64,
    capacity: u64,
) -> Result<(), ParseError> {
    let sectors_io = matches!(kind, RequestKind::In | RequestKind::Out);
    if (sectors_io || kind == RequestKind::GetId) && segments.is_empty() {
        return Err(ParseError::NoData);
    }
    if !sectors_io {
        return Ok(());
    }
    if !data_len.is_multiple_of(512) {
        return Err(ParseError::Unaligned(data_len));
    }
    let sectors = data_len / 512;
    if sector.checked_add(sectors).is_none_or(|end| end > capacity) {
        return Err(ParseError::OutOfDisk {
            sector,
            sectors,
            capacity,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::testing::guest_memory;

    const LIMITS: Limits = Limits {
        capacity: 64,
        seg_max: 4,
        max_descriptors: 8,
    };

    fn d(addr: u64, len: u32, writable: bool) -> Desc {
        Desc {
            addr,
            len,
            writable,
            has_next: true,
        }
    }

    fn chain(mut v: Vec<Desc>) -> Vec<Desc> {
        if let Some(l) = v.last_mut() {
            l.has_next = false;
        }
        v
    }

    fn setup(kind: u32, sector: u64) -> vm_memory::GuestMemoryMmap {
        let mem = guest_memory(0x10000);
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&kind.to_le_bytes());
        h[8..].copy_from_slice(&sector.to_le_bytes());
        mem.write_slice(&h, GuestAddress(0x1000)).unwrap();
        mem
    }

    fn err(r: Result<Request, Malformed>) -> (ParseError, Option<u64>) {
        let m = r.unwrap_err();
        (m.error, m.status_addr)
    }

    #[test]
    fn good_requests() {
        let mem = setup(1, 8);
        let c = chain(vec![
            d(0x1000, 16, false),
            d(0x2000, 1024, false),
            d(0x3000, 512, false),
            d(0x4000, 1, true),
        ]);
        let r = parse(&c, &mem, LIMITS).unwrap();
        assert_eq!(r.kind, RequestKind::Out);
        assert_eq!((r.sector, r.data_len, r.sectors()), (8, 1536, 3));
        assert_eq!(r.status_addr, 0x4000);
        assert_eq!(r.segments.len(), 2);

        let mem = setup(4, 12345);
        let c = chain(vec![d(0x1000, 16, false), d(0x4000, 4, true)]);
        let r = parse(&c, &mem, LIMITS).unwrap();
        assert_eq!((r.kind, r.status_addr), (RequestKind::Flush, 0x4003));

        let mem = setup(99, 0);
        let c = chain(vec![
            d(0x1000, 16, false),
            d(0x2000, 3, true),
            d(0x4000, 1, true),
        ]);
        assert_eq!(
            parse(&c, &mem, LIMITS).unwrap().kind,
            RequestKind::Other(99)
        );
    }

    #[test]
    fn no_status_cases() {
        let mem = setup(0, 0);
        assert_eq!(err(parse(&[], &mem, LIMITS)), (ParseError::Empty, None));
        // Header only / readable last descriptor / zero-length status / status outside memory.
        for c in [
            chain(vec![d(0x1000, 16, false)]),
            chain(vec![
                d(0x1000, 16, false),
                d(0x2000, 512, true),
                d(0x4000, 1, false),
            ]),
            chain(vec![d(0x1000, 16, false), d(0x4000, 0, true)]),
            chain(vec![d(0x1000, 16, false), d(0x10_0000, 1, true)]),
            chain(vec![d(0x1000, 16, false), d(u64::MAX, 2, true)]),
        ] {
            assert_eq!(err(parse(&c, &mem, LIMITS)), (ParseError::NoStatus, None));
        }
        // Cut-short chain (last still has NEXT) and over-long chain.
        let c = vec![d(0x1000, 16, false), d(0x4000, 1, true)];
        assert!(matches!(
            err(parse(&c, &mem, LIMITS)),
            (ParseError::Truncated(_), None)
        ));
        let c = chain(vec![d(0x4000, 1, true); 9]);
        assert!(matches!(
            err(parse(&c, &mem, LIMITS)),
            (ParseError::Truncated(_), None)
        ));
    }

    #[test]
    fn ioerr_cases() {
        let st = Some(0x4000);
        let mem = setup(0, 0);
        let case =
            |c: Vec<Desc>, mem: &vm_memory::GuestMemoryMmap| err(parse(&chain(c), mem, LIMITS));
        let s = d(0x4000, 1, true);
        assert_eq!(
            case(vec![d(0x1000, 15, false), s], &mem),
            (ParseError::BadHeader, st)
        );
        assert_eq!(
            case(vec![d(0x1000, 16, true), s], &mem),
            (ParseError::BadHeader, st)
        );
        assert_eq!(
            case(vec![d(0xfff8, 16, false), s], &mem),
            (ParseError::HeaderUnreadable, st)
        );
        assert_eq!(
            case(vec![d(0x1000, 16, false), s], &mem),
            (ParseError::NoData, st)
        );
        // IN with device-readable data.
        assert_eq!(
            case(vec![d(0x1000, 16, false), d(0x2000, 512, false), s], &mem),
            (ParseError::WrongDirection(1), st)
        );
        assert_eq!(
            case(vec![d(0x1000, 16, false), d(0x2000, 0, true), s], &mem),
            (ParseError::EmptySegment(1), st)
        );
        assert_eq!(
            case(vec![d(0x1000, 16, false), d(0xfe00, 1024, true), s], &mem),
            (ParseError::OutOfMemory(1), st)
        );
        assert_eq!(
            case(vec![d(0x1000, 16, false), d(0x2000, 100, true), s], &mem),
            (ParseError::Unaligned(100), st)
        );
        let many: Vec<Desc> = [d(0x1000, 16, false)]
            .into_iter()
            .chain(std::iter::repeat_n(d(0x2000, 512, true), 5))
            .chain([s])
            .collect();
        assert_eq!(case(many, &mem), (ParseError::TooManySegments(5), st));
        // Sector range: end exactly at capacity is fine, one past is not, overflow is caught.
        let mem = setup(0, 63);
        assert!(parse(
            &chain(vec![d(0x1000, 16, false), d(0x2000, 512, true), s]),
            &mem,
            LIMITS
        )
        .is_ok());
        let mem = setup(0, 64);
        assert!(matches!(
            case(vec![d(0x1000, 16, false), d(0x2000, 512, true), s], &mem).0,
            ParseError::OutOfDisk { .. }
        ));
        let mem = setup(1, u64::MAX);
        assert!(matches!(
            case(vec![d(0x1000, 16, false), d(0x2000, 512, false), s], &mem).0,
            ParseError::OutOfDisk { .. }
        ));
        // FLUSH with data, GET_ID with readable data.
        let mem = setup(4, 0);
        assert_eq!(
            case(vec![d(0x1000, 16, false), d(0x2000, 512, true), s], &mem),
            (ParseError::UnexpectedData, st)
        );
        let mem = setup(8, 0);
        assert_eq!(
            case(vec![d(0x1000, 16, false), d(0x2000, 20, false), s], &mem),
            (ParseError::WrongDirection(1), st)
        );
    }
}
