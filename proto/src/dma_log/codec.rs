//! The DMA log's byte layout: header and record as `#[repr(C)]` little-endian structs.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{DmaRecord, Trigger, HEADER_LEN, MAGIC, RECORD_LEN, VERSION};

/// The 16-byte file header.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub(super) struct FileHeader {
    pub magic: [u8; 8],
    pub version: U16,
    pub flags: U16,
    pub record_len: U32,
}

/// The header a writer starts the file with.
pub(super) fn header() -> [u8; HEADER_LEN] {
    let h = FileHeader {
        magic: MAGIC,
        version: VERSION.into(),
        flags: 0.into(),
        record_len: (RECORD_LEN as u32).into(),
    };
    h.as_bytes().try_into().expect("HEADER_LEN bytes")
}

/// One 64-byte record.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
struct RawRecord {
    time_ns: U64,
    region: U32,
    page: U32,
    file_offset: U64,
    generation: U64,
    gpa: U64,
    bytes: U32,
    trigger: u8,
    reserved: u8,
    page_offset: U16,
    block_seq: U64,
    reserved2: U64,
}

pub(super) fn encode(r: &DmaRecord) -> [u8; RECORD_LEN] {
    let raw = RawRecord {
        time_ns: r.time_ns.into(),
        region: r.region.into(),
        page: r.page.into(),
        file_offset: r.file_offset.into(),
        generation: r.generation.into(),
        gpa: r.gpa.into(),
        bytes: r.bytes.into(),
        trigger: r.trigger.code(),
        reserved: 0,
        page_offset: r.page_offset.into(),
        block_seq: r.trigger.block_seq().into(),
        reserved2: 0.into(),
    };
    raw.as_bytes().try_into().expect("RECORD_LEN bytes")
}

pub(super) fn decode(b: &[u8; RECORD_LEN]) -> DmaRecord {
    let raw = RawRecord::ref_from_bytes(&b[..]).expect("RECORD_LEN bytes");
    DmaRecord {
        time_ns: raw.time_ns.get(),
        region: raw.region.get(),
        page: raw.page.get(),
        file_offset: raw.file_offset.get(),
        generation: raw.generation.get(),
        gpa: raw.gpa.get(),
        bytes: raw.bytes.get(),
        page_offset: raw.page_offset.get(),
        trigger: Trigger::from_parts(raw.trigger, raw.block_seq.get()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// The layout of the module documentation of [`super::super`].
    #[test]
    fn layouts() {
        assert_eq!(size_of::<FileHeader>(), HEADER_LEN);
        assert_eq!(offset_of!(FileHeader, version), 8);
        assert_eq!(offset_of!(FileHeader, flags), 10);
        assert_eq!(offset_of!(FileHeader, record_len), 12);
        assert_eq!(size_of::<RawRecord>(), RECORD_LEN);
        assert_eq!(offset_of!(RawRecord, region), 8);
        assert_eq!(offset_of!(RawRecord, page), 12);
        assert_eq!(offset_of!(RawRecord, file_offset), 16);
        assert_eq!(offset_of!(RawRecord, generation), 24);
        assert_eq!(offset_of!(RawRecord, gpa), 32);
        assert_eq!(offset_of!(RawRecord, bytes), 40);
        assert_eq!(offset_of!(RawRecord, trigger), 44);
        assert_eq!(offset_of!(RawRecord, page_offset), 46);
        assert_eq!(offset_of!(RawRecord, block_seq), 48);
        assert_eq!(offset_of!(RawRecord, reserved2), 56);
        assert_eq!(header(), *b"PINVMDLG\x01\x00\x00\x00\x40\x00\x00\x00",);
    }

    #[test]
    fn golden_record() {
        let r = DmaRecord {
            time_ns: 0x0102,
            region: 3,
            page: 4,
            file_offset: 0x1000,
            generation: 5,
            gpa: 0x0a0b,
            bytes: 2048,
            page_offset: 2048,
            trigger: Trigger::Writeback { seq: 9 },
        };
        let b = encode(&r);
        assert_eq!(b[..16], [2, 1, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0]);
        assert_eq!(b[40..56], [0, 8, 0, 0, 3, 0, 0, 8, 9, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(b[56..], [0; 8]);
        assert_eq!(decode(&b), r);
        let mut u = b;
        u[44] = 200;
        assert_eq!(decode(&u).trigger, Trigger::Unknown(200));
    }
}
