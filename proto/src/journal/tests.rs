use super::*;
use crate::testdir::TempDir;

fn rec(seq: u64, data: Option<Vec<u8>>) -> JournalRecord {
    JournalRecord {
        seq,
        kind: RequestKind::Out,
        status: 0,
        submit_ns: 1_000_000_123,
        complete_ns: 1_000_020_123,
        sector: 16,
        sectors: 9,
        segments: vec![
            Segment {
                addr: 0x1000,
                len: 4096,
            },
            Segment {
                addr: 0x8000,
                len: 512,
            },
        ],
        hashes: vec![
            BlockHash {
                sector: 16,
                len: 4096,
                hash: block_hash(&[1; 4096]),
            },
            BlockHash {
                sector: 24,
                len: 512,
                hash: block_hash(&[2; 512]),
            },
        ],
        data,
    }
}

#[test]
fn roundtrip_truncation_and_render() {
    let dir = TempDir::new().unwrap();
    let p = dir.as_path().join("j.bin");
    let opts = JournalOptions {
        record_data: true,
        record_reads: false,
    };
    let mut w = JournalWriter::create(&p, opts).unwrap();
    let recs = [rec(1, None), rec(2, Some(vec![7; 4608])), rec(3, None)];
    for r in &recs {
        w.write(r).unwrap();
    }
    drop(w);

    let j = Journal::open(&p).unwrap();
    assert_eq!(j.header().options, opts);
    let got: Vec<_> = j.records().map(|r| r.unwrap()).collect();
    assert_eq!(got, recs);

    // Chop the last record in half: the first two still read, then one Truncated.
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 20]).unwrap();
    let got: Vec<_> = Journal::open(&p).unwrap().records().collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[1].as_ref().unwrap(), &recs[1]);
    assert!(matches!(got[2], Err(JournalError::Truncated { .. })));

    // A partial length prefix is also a truncation.
    let first_len = 4 + u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    std::fs::write(&p, &bytes[..16 + first_len + 2]).unwrap();
    let got: Vec<_> = Journal::open(&p).unwrap().records().collect();
    assert_eq!(got.len(), 2);
    assert!(matches!(
        got[1],
        Err(JournalError::Truncated { needed: 4, .. })
    ));

    // Corrupt body (claims more segments than fit): reported, the next record still reads.
    let mut bad = bytes.clone();
    bad[16 + 4 + 48..16 + 4 + 52].copy_from_slice(&1000u32.to_le_bytes());
    std::fs::write(&p, &bad).unwrap();
    let got: Vec<_> = Journal::open(&p).unwrap().records().collect();
    assert!(matches!(got[0], Err(JournalError::Corrupt { .. })));
    assert_eq!(got[1].as_ref().unwrap(), &recs[1]);
    assert_eq!(got.len(), 3);

    std::fs::write(&p, b"NOTAJRNL\x01\x00\x00\x00\x00\x10\x00\x00").unwrap();
    assert!(matches!(Journal::open(&p), Err(JournalError::BadMagic)));

    let mut out = Vec::new();
    render(&recs[1], &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "#2 OUT OK sector=16 sectors=9 submit=1.000000123 took=20.0us"
    );
    assert_eq!(lines[1], "  seg gpa=0x1000 len=4096");
    assert!(lines[3].starts_with("  hash sector=16 len=4096 "));
    assert_eq!(lines[5], "  data 4608 bytes");
}

/// Four records; returns the file's bytes and the offset of each record's length prefix.
fn four_records(p: &std::path::Path) -> (Vec<JournalRecord>, Vec<u8>, Vec<usize>) {
    let opts = JournalOptions {
        record_data: true,
        record_reads: false,
    };
    let mut w = JournalWriter::create(p, opts).unwrap();
    let recs = vec![
        rec(1, None),
        rec(2, Some(vec![7; 4608])),
        rec(3, None),
        rec(5, Some(vec![9; 512])),
    ];
    for r in &recs {
        w.write(r).unwrap();
    }
    drop(w);
    let bytes = std::fs::read(p).unwrap();
    let mut offsets = vec![HEADER_LEN as usize];
    while offsets.len() < recs.len() {
        let o = *offsets.last().unwrap();
        offsets.push(o + 4 + u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) as usize);
    }
    (recs, bytes, offsets)
}

/// A damaged length prefix used to hide every record after it (a huge length: "truncated",
/// reading stopped; a short one: the next reads were misframed). The reader now finds the
/// next record and goes on.
#[test]
fn a_damaged_record_hides_no_other() {
    let dir = TempDir::new().unwrap();
    let p = dir.as_path().join("j.bin");
    let (recs, bytes, offsets) = four_records(&p);
    for len in [u32::MAX, 1 << 20, 100, 8, 0] {
        let mut bad = bytes.clone();
        bad[offsets[1]..offsets[1] + 4].copy_from_slice(&len.to_le_bytes());
        std::fs::write(&p, &bad).unwrap();
        let got: Vec<_> = Journal::open(&p).unwrap().records().collect();
        let good: Vec<&JournalRecord> = got.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(
            good,
            [&recs[0], &recs[2], &recs[3]],
            "length {len}: {got:?}"
        );
        assert!(
            matches!(got[1], Err(JournalError::Corrupt { offset, .. }) if offset == offsets[1] as u64),
            "length {len}: {got:?}"
        );
    }
    // Garbage over a whole record and into the next one's head: the records after it read.
    let mut bad = bytes.clone();
    for b in &mut bad[offsets[1]..offsets[2] + 10] {
        *b = 0xa5;
    }
    std::fs::write(&p, &bad).unwrap();
    let got: Vec<_> = Journal::open(&p).unwrap().records().collect();
    let good: Vec<&JournalRecord> = got.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(good, [&recs[0], &recs[3]], "{got:?}");
    // A cut file still ends in one Truncated: nothing follows the damage.
    std::fs::write(&p, &bytes[..offsets[3] + 30]).unwrap();
    let got: Vec<_> = Journal::open(&p).unwrap().records().collect();
    assert_eq!(got.len(), 4);
    assert!(matches!(got[3], Err(JournalError::Truncated { .. })));
}

/// The scan is linear: a megabyte of garbage between two records is skipped quickly.
#[test]
fn resync_over_a_large_damage_is_fast() {
    let dir = TempDir::new().unwrap();
    let p = dir.as_path().join("j.bin");
    let (recs, bytes, offsets) = four_records(&p);
    let mut bad = bytes[..offsets[1]].to_vec();
    bad.extend((0..8u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    bad.extend_from_slice(&bytes[offsets[3]..]);
    std::fs::write(&p, &bad).unwrap();
    let t = std::time::Instant::now();
    let got: Vec<_> = Journal::open(&p).unwrap().records().collect();
    let good: Vec<&JournalRecord> = got.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(good, [&recs[0], &recs[3]]);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        t.elapsed()
    );
}
