//! What several targets share: a scratch folder per test binary and valid records to mutate.

#![allow(dead_code)] // each test binary uses its own part

use std::path::PathBuf;
use std::sync::OnceLock;

use proptest::prelude::*;
use proto::dma_log::{DmaRecord, Trigger};
use proto::journal::{BlockHash, JournalRecord, RequestKind, Segment};

/// A folder of this test process: under `PINVM_FUZZ_DIR` (ci/fuzz.sh makes one and removes
/// it), else in memory (/dev/shm) where there is one, as the targets rewrite small files
/// thousands of times and a disk filesystem flushes a truncated file's data on close. It
/// holds a few KiB.
pub fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let base = match std::env::var_os("PINVM_FUZZ_DIR") {
            Some(d) => PathBuf::from(d),
            None if shm.is_dir() => shm,
            None => std::env::temp_dir(),
        };
        let d = base.join(format!("pinvm-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("creating the scratch folder in the temp dir");
        d
    })
}

/// A scratch file name unique to the calling thread.
pub fn scratch_file(name: &str) -> PathBuf {
    let t = format!("{:?}", std::thread::current().id());
    let t: String = t.chars().filter(char::is_ascii_digit).collect();
    scratch().join(format!("{name}-{t}"))
}

/// A well-formed journal record.
pub fn journal_record() -> impl Strategy<Value = JournalRecord> {
    let kind = prop_oneof![
        Just(RequestKind::Out),
        Just(RequestKind::Flush),
        Just(RequestKind::In),
        any::<u32>().prop_map(RequestKind::from_code),
    ];
    (
        (
            any::<u64>(),
            kind,
            0u8..3,
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            0u64..64,
        ),
        proptest::collection::vec((any::<u64>(), any::<u32>()), 0..4),
        proptest::collection::vec((any::<u64>(), any::<u32>(), any::<[u8; 16]>()), 0..4),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..96)),
    )
        .prop_map(
            |((seq, kind, status, t0, t1, sector, sectors), segs, hashes, data)| JournalRecord {
                seq,
                kind,
                status,
                submit_ns: t0,
                complete_ns: t1,
                sector,
                sectors,
                segments: segs
                    .into_iter()
                    .map(|(addr, len)| Segment { addr, len })
                    .collect(),
                hashes: hashes
                    .into_iter()
                    .map(|(sector, len, hash)| BlockHash { sector, len, hash })
                    .collect(),
                data,
            },
        )
}

/// A DMA log record.
pub fn dma_record() -> impl Strategy<Value = DmaRecord> {
    (
        (any::<u64>(), any::<u32>(), any::<u32>(), any::<u64>()),
        (any::<u64>(), any::<u64>(), any::<u32>(), any::<u16>()),
        prop_oneof![
            Just(Trigger::Burst),
            Just(Trigger::Rate),
            any::<u64>().prop_map(|seq| Trigger::Writeback { seq }),
            any::<u8>().prop_map(Trigger::Unknown),
        ],
    )
        .prop_map(
            |(
                (time_ns, region, page, file_offset),
                (generation, gpa, bytes, page_offset),
                trigger,
            )| {
                DmaRecord {
                    time_ns,
                    region,
                    page,
                    file_offset,
                    generation,
                    gpa,
                    bytes,
                    page_offset,
                    trigger,
                }
            },
        )
}
