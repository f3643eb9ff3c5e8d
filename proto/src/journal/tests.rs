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
