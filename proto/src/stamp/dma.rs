//! Stamped DMA sectors: every 512-byte sector the DMA engine writes is self-describing, so any
//! sector (or 4 KiB block) found on disk or in a write request decodes to "sector `s` of
//! generation `g` of page `p` of region `r`" or to "not ours".
//!
//! Layout (all integers little endian):
//!
//! ```text
//! off  len  field
//!   0    8  magic "PINVMDMA"
//!   8    4  region id
//!  12    4  page index (in the region's posting order)
//!  16    4  sector index within the page (0..=7)
//!  20    4  format version (1)
//!  24    8  generation (per page, starts at 1)
//!  32    8  write timestamp, CLOCK_MONOTONIC ns
//!  40    8  checksum: sector_hash() of the 512 bytes with this field zeroed
//!  48  464  fill: 58 u64 words of a xorshift64* stream seeded from
//!           (region, page, sector, generation)
//! ```

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Bytes per stamped sector.
pub const SECTOR: usize = 512;
/// Bytes per page (8 sectors).
pub const PAGE: usize = 4096;
/// Sectors per page.
pub const SECTORS_PER_PAGE: u32 = (PAGE / SECTOR) as u32;
/// Sector magic.
pub const MAGIC: [u8; 8] = *b"PINVMDMA";
/// Stamp format version, carried in every sector and checked by [`decode`].
pub const STAMP_VERSION: u32 = 1;
/// Offset of the checksum field.
const CSUM_OFF: usize = std::mem::offset_of!(SectorHeader, checksum);
/// Offset of the fill (the end of the header).
const FILL_OFF: usize = size_of::<SectorHeader>();

/// The first 48 bytes of a stamped sector, as laid out on the wire.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
pub struct SectorHeader {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// Region id.
    pub region: U32,
    /// Page index in the region's posting order.
    pub page: U32,
    /// Sector index within the page (0..=7).
    pub sector: U32,
    /// [`STAMP_VERSION`].
    pub version: U32,
    /// Generation of the page (starts at 1).
    pub generation: U64,
    /// Write timestamp, CLOCK_MONOTONIC ns.
    pub timestamp_ns: U64,
    /// [`sector_hash`] of the whole sector with this field zeroed.
    pub checksum: U64,
}

/// The decoded header of one stamped sector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaStamp {
    /// Region id.
    pub region: u32,
    /// Page index in the region's posting order.
    pub page: u32,
    /// Sector index within the page.
    pub sector: u32,
    /// Generation of the page.
    pub generation: u64,
    /// Write timestamp, CLOCK_MONOTONIC ns.
    pub timestamp_ns: u64,
}

/// 64-bit hash used as the sector checksum (word-wise multiply/rotate mixing, finalised with
/// an avalanche step). Not cryptographic; detects any corruption a test could plausibly cause.
pub fn sector_hash(data: &[u8]) -> u64 {
    const K1: u64 = 0x9e37_79b9_7f4a_7c15;
    const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;
    let mut h = K2 ^ (data.len() as u64);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h ^ w.wrapping_mul(K1)).rotate_left(29).wrapping_mul(K2);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

fn fill_seed(region: u32, page: u32, sector: u32, generation: u64) -> u64 {
    let a = (u64::from(region) << 32) | u64::from(page);
    let b = generation.rotate_left(17) ^ u64::from(sector).wrapping_mul(0x1000_0000_01b3);
    let s = a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b;
    if s == 0 {
        0x2545_f491_4f6c_dd1d
    } else {
        s
    }
}

/// Encode one stamped sector.
pub fn encode(
    region: u32,
    page: u32,
    sector: u32,
    generation: u64,
    timestamp_ns: u64,
) -> [u8; SECTOR] {
    let mut b = [0u8; SECTOR];
    encode_into(&mut b, region, page, sector, generation, timestamp_ns);
    b
}

/// [`encode`] into a caller-provided 512-byte buffer.
pub fn encode_into(
    b: &mut [u8; SECTOR],
    region: u32,
    page: u32,
    sector: u32,
    generation: u64,
    timestamp_ns: u64,
) {
    let header = SectorHeader {
        magic: MAGIC,
        region: region.into(),
        page: page.into(),
        sector: sector.into(),
        version: STAMP_VERSION.into(),
        generation: generation.into(),
        timestamp_ns: timestamp_ns.into(),
        checksum: 0.into(),
    };
    b[..FILL_OFF].copy_from_slice(header.as_bytes());
    let mut x = fill_seed(region, page, sector, generation);
    for w in b[FILL_OFF..].chunks_exact_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        w.copy_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    let c = sector_hash(&b[..]);
    b[CSUM_OFF..FILL_OFF].copy_from_slice(&c.to_le_bytes());
}

/// Encode the 8 sectors of one page generation (all with the same timestamp).
pub fn encode_page(region: u32, page: u32, generation: u64, timestamp_ns: u64) -> [u8; PAGE] {
    let mut p = [0u8; PAGE];
    for (s, chunk) in p.chunks_exact_mut(SECTOR).enumerate() {
        let chunk: &mut [u8; SECTOR] = chunk.try_into().expect("512 bytes");
        encode_into(chunk, region, page, s as u32, generation, timestamp_ns);
    }
    p
}

/// Decode a stamped sector (the first 512 bytes of `b`). Strict: magic, version, sector index
/// and checksum must all be right, otherwise `None` ("not ours").
pub fn decode(b: &[u8]) -> Option<DmaStamp> {
    let b = b.get(..SECTOR)?;
    let (h, _) = SectorHeader::ref_from_prefix(b).ok()?;
    if h.magic != MAGIC || h.version.get() != STAMP_VERSION {
        return None;
    }
    let sector = h.sector.get();
    if sector >= SECTORS_PER_PAGE {
        return None;
    }
    let mut tmp = [0u8; SECTOR];
    tmp.copy_from_slice(b);
    tmp[CSUM_OFF..FILL_OFF].fill(0);
    if sector_hash(&tmp) != h.checksum.get() {
        return None;
    }
    Some(DmaStamp {
        region: h.region.get(),
        page: h.page.get(),
        sector,
        generation: h.generation.get(),
        timestamp_ns: h.timestamp_ns.get(),
    })
}

/// What a 4 KiB block holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockClass {
    /// All 8 sectors are sectors 0..=7 (in order) of one generation of one page.
    Uniform {
        /// Region id.
        region: u32,
        /// Page index.
        page: u32,
        /// The generation all 8 sectors carry.
        generation: u64,
    },
    /// All 8 sectors are sectors 0..=7 (in order) of one page, but not all of the same
    /// generation: a torn block. `generations[i]` is sector i's generation.
    Mixed {
        /// Region id.
        region: u32,
        /// Page index.
        page: u32,
        /// Generation of each sector.
        generations: [u64; 8],
    },
    /// Anything else (a sector that does not decode, sectors of different pages, or sectors
    /// out of place).
    Foreign,
}

/// Classify a 4 KiB block.
pub fn classify_block(block: &[u8; PAGE]) -> BlockClass {
    let mut gens = [0u64; 8];
    let mut id = None;
    for (i, s) in block.chunks_exact(SECTOR).enumerate() {
        let Some(st) = decode(s) else {
            return BlockClass::Foreign;
        };
        if st.sector as usize != i {
            return BlockClass::Foreign;
        }
        match id {
            None => id = Some((st.region, st.page)),
            Some(x) if x != (st.region, st.page) => return BlockClass::Foreign,
            Some(_) => {}
        }
        gens[i] = st.generation;
    }
    let (region, page) = id.expect("8 sectors");
    if gens.iter().all(|&g| g == gens[0]) {
        BlockClass::Uniform {
            region,
            page,
            generation: gens[0],
        }
    } else {
        BlockClass::Mixed {
            region,
            page,
            generations: gens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// The header layout of the module documentation.
    #[test]
    fn header_layout() {
        assert_eq!(size_of::<SectorHeader>(), 48);
        assert_eq!(offset_of!(SectorHeader, region), 8);
        assert_eq!(offset_of!(SectorHeader, page), 12);
        assert_eq!(offset_of!(SectorHeader, sector), 16);
        assert_eq!(offset_of!(SectorHeader, version), 20);
        assert_eq!(offset_of!(SectorHeader, generation), 24);
        assert_eq!(offset_of!(SectorHeader, timestamp_ns), 32);
        assert_eq!(offset_of!(SectorHeader, checksum), 40);
        let s = encode(7, 3, 5, 9, 42);
        assert_eq!(&s[..8], b"PINVMDMA");
        assert_eq!(s[8..24], [7, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(s[24..40], [9, 0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn roundtrip() {
        let s = encode(7, 3, 5, 0x1234_5678_9abc, 42);
        assert_eq!(
            decode(&s),
            Some(DmaStamp {
                region: 7,
                page: 3,
                sector: 5,
                generation: 0x1234_5678_9abc,
                timestamp_ns: 42
            })
        );
        // Deterministic fill: same fields, same bytes (timestamp only changes the header and
        // checksum).
        let t = encode(7, 3, 5, 0x1234_5678_9abc, 43);
        assert_eq!(s[FILL_OFF..], t[FILL_OFF..]);
        assert_ne!(encode(7, 3, 5, 2, 42)[FILL_OFF..], s[FILL_OFF..]);
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let s = encode(1, 2, 3, 4, 5);
        for bit in 0..SECTOR * 8 {
            let mut c = s;
            c[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode(&c), None, "bit {bit}");
        }
    }

    #[test]
    fn foreign_and_short_data() {
        assert_eq!(decode(&[0u8; SECTOR]), None);
        assert_eq!(decode(&encode(1, 2, 3, 4, 5)[..511]), None);
        let mut s = encode(1, 2, 3, 4, 5);
        s[16] = 9; // sector index out of range (checksum also breaks)
        assert_eq!(decode(&s), None);
        // A sector with a valid-looking header but a zeroed body.
        let mut z = encode(1, 2, 3, 4, 5);
        z[FILL_OFF..].fill(0);
        assert_eq!(decode(&z), None);
    }

    #[test]
    fn classify_uniform_mixed_foreign() {
        let a = encode_page(9, 4, 10, 1);
        assert_eq!(
            classify_block(&a),
            BlockClass::Uniform {
                region: 9,
                page: 4,
                generation: 10
            }
        );
        // Torn: first half generation 10, second half generation 11.
        let b = encode_page(9, 4, 11, 2);
        let mut torn = a;
        torn[2048..].copy_from_slice(&b[2048..]);
        assert_eq!(
            classify_block(&torn),
            BlockClass::Mixed {
                region: 9,
                page: 4,
                generations: [10, 10, 10, 10, 11, 11, 11, 11]
            }
        );
        // A corrupted sector makes the block foreign.
        let mut bad = a;
        bad[1000] ^= 0x80;
        assert_eq!(classify_block(&bad), BlockClass::Foreign);
        // Sectors of another page, or out of place.
        let mut other = a;
        other[..SECTOR].copy_from_slice(&encode(9, 5, 0, 10, 1));
        assert_eq!(classify_block(&other), BlockClass::Foreign);
        let mut swapped = a;
        swapped[..SECTOR].copy_from_slice(&a[SECTOR..2 * SECTOR]);
        assert_eq!(classify_block(&swapped), BlockClass::Foreign);
        assert_eq!(classify_block(&[0u8; PAGE]), BlockClass::Foreign);
    }
}
