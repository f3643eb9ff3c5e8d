//! The `stamp` file data pattern: written and verified by the guest agent (step pattern
//! `stamp:<TAG>`), recognised by the host in disk images and block-write journals. Only
//! `core` is used by the codec and it allocates nothing.
//!
//! Layout (docs/control-protocol.md, "The stamp pattern"): the file is a sequence of 512-byte
//! sectors; the sector at file byte offset `off` (a multiple of 512) is
//!
//! ```text
//! PINVM-FILE <TAG> off=<off in decimal, no leading zeros>\n
//! ```
//!
//! followed, up to the end of the sector, by the fill byte `0xa5 ^ ((off / 512) as u8)`.
//! TAG is 1 to 64 bytes of printable ASCII without spaces (0x21..=0x7e). A file whose size is
//! not a multiple of 512 ends with a prefix of its last sector.

/// Version of the pattern described above. Not carried in the sectors ([`MAGIC`] identifies
/// the pattern): a change of the pattern must change this constant and
/// docs/control-protocol.md.
pub const VERSION: u32 = 1;
/// Size of one stamped sector.
pub const SECTOR: usize = 512;
/// Every stamped sector starts with these bytes.
pub const MAGIC: &[u8] = b"PINVM-FILE ";
/// Longest tag.
pub const MAX_TAG_LEN: usize = 64;

/// Whether `tag` can be used: 1..=64 bytes, each printable ASCII other than space.
pub fn valid_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.len() <= MAX_TAG_LEN && tag.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The byte filling the sector at file offset `offset` after its header.
pub fn fill_byte(offset: u64) -> u8 {
    0xa5 ^ ((offset / SECTOR as u64) as u8)
}

/// Writes the whole sector at file offset `offset` into `out`. Returns the header length
/// (including its `\n`). A tag longer than [`MAX_TAG_LEN`] is cut to that length; tags that
/// are not [`valid_tag`] give sectors that [`decode`] does not recognise.
pub fn write_sector(tag: &str, offset: u64, out: &mut [u8; SECTOR]) -> usize {
    let tag = &tag.as_bytes()[..tag.len().min(MAX_TAG_LEN)];
    out.fill(fill_byte(offset));
    let mut n = 0;
    for part in [MAGIC, tag, b" off="] {
        out[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    let mut digits = [0u8; 20];
    let mut d = digits.len();
    let mut v = offset;
    loop {
        d -= 1;
        digits[d] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out[n..n + digits.len() - d].copy_from_slice(&digits[d..]);
    n += digits.len() - d;
    out[n] = b'\n';
    n + 1
}

/// The sector at file offset `offset` (a multiple of 512) of a stamp file tagged `tag`.
pub fn stamp_sector(tag: &str, offset: u64) -> [u8; SECTOR] {
    let mut s = [0u8; SECTOR];
    write_sector(tag, offset, &mut s);
    s
}

/// Fills `buf` with the bytes at file offsets `pos..pos + buf.len()` of a stamp file (any
/// alignment).
pub fn fill(tag: &str, pos: u64, buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        let p = pos + done as u64;
        let within = (p % SECTOR as u64) as usize;
        let n = (SECTOR - within).min(buf.len() - done);
        let dst = &mut buf[done..done + n];
        match <&mut [u8; SECTOR]>::try_from(&mut *dst) {
            Ok(whole) => {
                write_sector(tag, p, whole);
            }
            Err(_) => {
                dst.copy_from_slice(&stamp_sector(tag, p - within as u64)[within..within + n])
            }
        }
        done += n;
    }
}

/// Compares `data` with the bytes at file offsets `pos..pos + data.len()` of a stamp file.
/// Returns the index in `data` of the first difference and the expected byte there.
pub fn first_mismatch(tag: &str, pos: u64, data: &[u8]) -> Option<(usize, u8)> {
    let mut done = 0;
    let mut expected = [0u8; SECTOR];
    while done < data.len() {
        let p = pos + done as u64;
        let within = (p % SECTOR as u64) as usize;
        let n = (SECTOR - within).min(data.len() - done);
        write_sector(tag, p - within as u64, &mut expected);
        let want = &expected[within..within + n];
        let got = &data[done..done + n];
        if want != got {
            let i = want.iter().zip(got).position(|(a, b)| a != b).unwrap_or(0);
            return Some((done + i, want[i]));
        }
        done += n;
    }
    None
}

/// Recognises a complete stamped sector: returns its tag and file offset when `sector` is
/// exactly 512 bytes and equal, byte for byte, to [`stamp_sector`] of that tag and offset.
pub fn decode(sector: &[u8]) -> Option<(&str, u64)> {
    if sector.len() != SECTOR {
        return None;
    }
    let rest = sector.strip_prefix(MAGIC)?;
    let tag_len = rest.iter().position(|&b| b == b' ')?;
    let tag = core::str::from_utf8(&rest[..tag_len]).ok()?;
    if !valid_tag(tag) {
        return None;
    }
    let rest = rest[tag_len..].strip_prefix(b" off=")?;
    let digits = rest.iter().position(|&b| b == b'\n')?;
    if digits == 0 || digits > 20 || (digits > 1 && rest[0] == b'0') {
        return None;
    }
    let mut offset: u64 = 0;
    for &b in &rest[..digits] {
        if !b.is_ascii_digit() {
            return None;
        }
        offset = offset.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    if !offset.is_multiple_of(SECTOR as u64) || stamp_sector(tag, offset)[..] != *sector {
        return None;
    }
    Some((tag, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The golden sector: pins the layout documented in docs/control-protocol.md.
    #[test]
    fn golden_sector() {
        let s = stamp_sector("t1", 1024);
        let header = b"PINVM-FILE t1 off=1024\n";
        assert_eq!(&s[..header.len()], header);
        assert!(s[header.len()..].iter().all(|&b| b == 0xa7));
        assert_eq!(decode(&s), Some(("t1", 1024)));

        let s = stamp_sector("disk-A", 0);
        assert_eq!(&s[..24], b"PINVM-FILE disk-A off=0\n");
        assert_eq!(s[24], 0xa5);
        assert_eq!(s[511], 0xa5);
        // Sector 256 wraps the fill byte back to 0xa5; sector 257 gives 0xa4.
        assert_eq!(fill_byte(256 * 512), 0xa5);
        assert_eq!(fill_byte(257 * 512), 0xa4);
        assert_eq!(fill_byte(511), 0xa5);
        let big = stamp_sector("x", u64::MAX - 511);
        assert_eq!(&big[..38], b"PINVM-FILE x off=18446744073709551104\n");
        assert_eq!(decode(&big), Some(("x", u64::MAX - 511)));
    }

    #[test]
    fn fill_matches_sectors_at_any_alignment() {
        let mut whole = [0u8; 4 * SECTOR];
        fill("abc", 0, &mut whole);
        for k in 0..4 {
            assert_eq!(
                whole[k * SECTOR..(k + 1) * SECTOR],
                stamp_sector("abc", (k * SECTOR) as u64)
            );
        }
        for (pos, len) in [
            (0, 1),
            (1, 511),
            (100, 1000),
            (511, 2),
            (512, 1536),
            (3, 2045),
        ] {
            let mut part = [0u8; 4 * SECTOR];
            fill("abc", pos as u64, &mut part[..len]);
            assert_eq!(part[..len], whole[pos..pos + len], "pos {pos} len {len}");
            assert_eq!(
                first_mismatch("abc", pos as u64, &whole[pos..pos + len]),
                None
            );
        }
        let mut bad = whole;
        bad[700] ^= 1;
        assert_eq!(first_mismatch("abc", 0, &bad), Some((700, whole[700])));
        assert_eq!(
            first_mismatch("abc", 600, &bad[600..]),
            Some((100, whole[700]))
        );
        assert_eq!(first_mismatch("abd", 0, &whole), Some((13, b'd')));
        assert_eq!(first_mismatch("abc", 512, &whole), Some((19, b'5')));
    }

    #[test]
    fn decode_rejects_anything_else() {
        let good = stamp_sector("tag", 512);
        assert_eq!(decode(&good), Some(("tag", 512)));
        assert_eq!(decode(&good[..511]), None);
        assert_eq!(decode(&[0u8; 512]), None);
        let mut s = good;
        s[300] ^= 0xff; // body
        assert_eq!(decode(&s), None);
        // header says another offset than the fill byte
        let mut s = stamp_sector("tag", 512);
        s[..21].copy_from_slice(b"PINVM-FILE tag off=0\n");
        assert_eq!(decode(&s), None);
        // unaligned, leading zero, empty tag, too long tag
        let mut s = stamp_sector("tag", 512);
        s[19..23].copy_from_slice(b"513\n");
        assert_eq!(decode(&s), None);
        let mut s = [0xa5u8; 512];
        s[..21].copy_from_slice(b"PINVM-FILE t off=00\n\xa5");
        assert_eq!(decode(&s), None);
        let s = stamp_sector("", 0);
        assert_eq!(decode(&s), None);
        let long = "y".repeat(65);
        let s = stamp_sector(&long, 0);
        assert_eq!(decode(&s), Some((&long[..64], 0)));
        assert_eq!(decode(&stamp_sector("sp ace", 0)), None);
        assert!(valid_tag("a#b~!") && !valid_tag("a b") && !valid_tag("é") && !valid_tag(""));
    }

    /// The pattern as the host uses it: whole sectors, a file's bytes, the first mismatch.
    #[test]
    fn host_api() {
        let s = stamp_sector("job-1", 4096);
        assert_eq!(&s[..26], b"PINVM-FILE job-1 off=4096\n");
        assert!(s[26..].iter().all(|&b| b == 0xa5 ^ 8));
        assert_eq!(decode(&s), Some(("job-1", 4096)));
        assert_eq!(decode(&[0; 512]), None);
        let mut file = vec![0; 3000];
        fill("job-1", 0, &mut file);
        assert_eq!(file[..512], stamp_sector("job-1", 0));
        assert_eq!(file[2560..], stamp_sector("job-1", 2560)[..440]);
        assert_eq!(decode(&file[1024..1536]), Some(("job-1", 1024)));
        assert_eq!(first_mismatch("job-1", 100, &file[100..]), None);
        let mut bad = file.clone();
        bad[2999] = 0;
        assert_eq!(first_mismatch("job-1", 0, &bad), Some((2999, 0xa5 ^ 5)));
    }
}
