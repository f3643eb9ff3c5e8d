use super::*;
use crate::testdir::TempDir;

fn rec(i: u64, trigger: Trigger) -> DmaRecord {
    DmaRecord {
        time_ns: 1000 + i,
        region: 3,
        page: i as u32,
        file_offset: i * 4096,
        generation: i + 1,
        gpa: 0x10_0000 + i * 4096,
        bytes: 4096,
        page_offset: 0,
        trigger,
    }
}

#[test]
fn roundtrip_and_truncated_tail() {
    let dir = TempDir::new().unwrap();
    let path = dir.as_path().join("dma.log");
    let recs = vec![
        rec(0, Trigger::Burst),
        rec(1, Trigger::Rate),
        DmaRecord {
            bytes: 2048,
            page_offset: 2048,
            ..rec(2, Trigger::Writeback { seq: 77 })
        },
    ];
    let mut w = DmaLogWriter::create(&path).unwrap();
    for r in &recs {
        w.write(r).unwrap();
    }
    w.flush().unwrap();
    assert_eq!(w.records_written(), 3);
    let mut it = DmaLog::open(&path).unwrap().records();
    let got: Vec<_> = it.by_ref().map(|r| r.unwrap()).collect();
    assert_eq!(got, recs);
    assert!(!it.truncated());

    // Chop the last record in half: two records survive, the tail is reported.
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 30).unwrap();
    let mut it = DmaLog::open(&path).unwrap().records();
    let got: Vec<_> = it.by_ref().map(|r| r.unwrap()).collect();
    assert_eq!(got, recs[..2]);
    assert!(it.truncated());
}

#[test]
fn bad_headers() {
    let dir = TempDir::new().unwrap();
    let path = dir.as_path().join("x");
    std::fs::write(&path, b"PINVMDL").unwrap();
    assert!(matches!(DmaLog::open(&path), Err(DmaLogError::Magic)));
    let mut h = codec::header();
    h[8] = 9;
    std::fs::write(&path, h).unwrap();
    assert!(matches!(DmaLog::open(&path), Err(DmaLogError::Version(9))));
    // Header only: no records, not truncated.
    std::fs::write(&path, codec::header()).unwrap();
    let mut it = DmaLog::open(&path).unwrap().records();
    assert!(it.next().is_none());
    assert!(!it.truncated());
}
