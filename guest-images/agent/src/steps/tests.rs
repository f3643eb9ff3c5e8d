use super::*;
use proto::dmapin::ioctl as dmapin_abi;
use proto::stamp::file as stamp;
use std::path::{Path, PathBuf};

fn parse_err(text: &str) -> String {
    parse(text).unwrap_err()
}

fn ops(steps: &[Step]) -> Vec<(u32, &str)> {
    steps.iter().map(|s| (s.index, s.op)).collect()
}

#[test]
fn op_names_are_unique() {
    let names: Vec<&str> = FAMILIES
        .iter()
        .flat_map(|f| f.iter())
        .map(|d| d.name)
        .collect();
    for (i, n) in names.iter().enumerate() {
        assert!(!names[i + 1..].contains(n), "op {n} defined twice");
        assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    }
}

#[test]
fn parses_words_comments_and_blank_lines() {
    let text = "# setup\n\n  write /mnt/f 1M stamp:run-1   # 2048 sectors\nfsync\t/mnt/f\n\
                sync\nfiemap /mnt/f\nverify /mnt/f 1M stamp:run-1\nsyncfs /mnt\n\
                fdatasync /mnt/f\ndrop_caches 3\nsleep 10\n#write x 1 byte:0x00\n";
    let steps = parse(text).unwrap();
    assert_eq!(
        ops(&steps),
        vec![
            (1, "write"),
            (2, "fsync"),
            (3, "sync"),
            (4, "fiemap"),
            (5, "verify"),
            (6, "syncfs"),
            (7, "fdatasync"),
            (8, "drop_caches"),
            (9, "sleep"),
        ]
    );
    let first = format!("{:?}", steps[0].action);
    assert!(
        first.contains("size: 1048576") && first.contains("Stamp(\"run-1\")"),
        "{first}"
    );
    assert!(parse("").unwrap().is_empty());
    assert!(parse("# only\n   \n").unwrap().is_empty());
    // '#' inside a word is part of it
    let s = parse("write /tmp/a#b 1 stamp:t#1").unwrap();
    assert!(format!("{:?}", s[0].action).contains("/tmp/a#b"));
}

#[test]
fn sizes() {
    assert_eq!(args::size("0"), Ok(0));
    assert_eq!(args::size("4096"), Ok(4096));
    assert_eq!(args::size("4K"), Ok(4096));
    assert_eq!(args::size("3M"), Ok(3 << 20));
    assert_eq!(args::size("2G"), Ok(2 << 30));
    for bad in ["", "K", "4k", "1.5M", "-1", "0x10", "4KB", " 4"] {
        assert!(args::size(bad).is_err(), "{bad:?}");
    }
    assert!(args::size("18446744073709551615").is_ok());
    assert!(args::size("18446744073709551615K")
        .unwrap_err()
        .contains("too large"));
    assert!(args::size("99999999999999999999")
        .unwrap_err()
        .contains("too large"));
}

#[test]
fn patterns() {
    use args::Pattern;
    assert_eq!(Pattern::parse("byte:0x00"), Ok(Pattern::Byte(0)));
    assert_eq!(Pattern::parse("byte:0xA5"), Ok(Pattern::Byte(0xa5)));
    assert_eq!(Pattern::parse("byte:0xf"), Ok(Pattern::Byte(0xf)));
    assert_eq!(Pattern::parse("stamp:x"), Ok(Pattern::Stamp("x".into())));
    for bad in [
        "byte:0x",
        "byte:0x100",
        "byte:0xg0",
        "byte:12",
        "byte:0x+1",
        "stamp:",
        "stamp:é",
        &format!("stamp:{}", "t".repeat(65)),
        "zero",
    ] {
        assert!(Pattern::parse(bad).is_err(), "{bad:?}");
    }
    let p = Pattern::Byte(7);
    assert_eq!(p.first_mismatch(0, &[7, 7, 8]), Some((2, 7)));
    assert_eq!(p.first_mismatch(0, &[7, 7]), None);
    let p = Pattern::Stamp("t".into());
    let mut buf = [0u8; 1000];
    p.fill(300, &mut buf);
    assert_eq!(buf[212..724], stamp::stamp_sector("t", 512));
    assert_eq!(p.first_mismatch(300, &buf), None);
}

#[test]
fn bad_lines_name_the_line() {
    assert_eq!(
        parse_err("sync\n\nfrob /x\n"),
        "/pinvm/steps line 3: unknown op \"frob\""
    );
    assert_eq!(
        parse_err("write /mnt/f 4K\n"),
        "/pinvm/steps line 1: write: expected 3 arguments, found 2 (usage: write PATH SIZE PATTERN)"
    );
    assert_eq!(
        parse_err("# c\nverify /f 12Q byte:0x00"),
        "/pinvm/steps line 2: verify: bad size \"12Q\": expected a decimal number with an optional \
         K, M or G (usage: verify PATH SIZE PATTERN)"
    );
    let e = parse_err("write /f 1 byte:0xzz");
    assert!(
        e.starts_with("/pinvm/steps line 1: write: bad pattern \"byte:0xzz\""),
        "{e}"
    );
    assert_eq!(
        parse_err("sync now"),
        "/pinvm/steps line 1: sync: expected 0 arguments, found 1 (usage: sync)"
    );
    assert!(
        parse_err("fsync").starts_with("/pinvm/steps line 1: fsync: expected 1 argument, found 0")
    );
    assert!(parse_err("fiemap a b").contains("unknown word \"b\": expected nosync"));
    assert!(parse_err("fiemap a nosync c").contains("expected 1 or 2 arguments, found 3"));
    assert!(parse("fiemap a nosync").is_ok());
    assert!(parse_err("drop_caches 4").contains("bad value \"4\": expected 1, 2 or 3"));
    assert!(parse_err("drop_caches 0").contains("line 1: drop_caches: bad value"));
    assert!(parse_err("sleep 1s").contains("bad duration \"1s\""));
    assert!(parse_err("WRITE /f 1 byte:0x00").contains("unknown op \"WRITE\""));
}

#[test]
fn line_formats() {
    assert_eq!(
        ok_line(1, "write", "bytes=4096"),
        "step 1 write ok bytes=4096"
    );
    assert_eq!(ok_line(3, "sync", ""), "step 3 sync ok");
    let e = StepError::io("open /mnt/x", &io::Error::from_raw_os_error(libc::ENOENT));
    assert_eq!(
        err_line(4, "fsync", &e),
        "step 4 fsync err 2 open /mnt/x: No such file or directory"
    );
    let e = StepError::new(5, "a\nb".into());
    assert_eq!(err_line(2, "verify", &e), "step 2 verify err 5 a b");
    let e = StepError::io("write", &io::Error::from(io::ErrorKind::WriteZero));
    assert_eq!(e.errno, libc::EIO);
    let mut ext = crate::sys::FiemapExtent::default();
    ext.physical = 137_363_456;
    ext.length = 1_048_576;
    ext.flags = 1;
    assert_eq!(
        fiemap::extent_line(7, &ext),
        "extent 7 logical=0 physical=137363456 length=1048576 flags=0x1"
    );
}

/// A scratch directory on a filesystem that supports FIEMAP (the temp dir, or /var/tmp if the
/// temp dir is a tmpfs without it).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        for base in [std::env::temp_dir(), PathBuf::from("/var/tmp")] {
            let dir = base.join(format!("pinvm-agent-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let probe = dir.join("probe");
            std::fs::write(&probe, b"x").unwrap();
            let f = std::fs::File::open(&probe).unwrap();
            match crate::sys::fiemap(&f, 0, 0) {
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    std::fs::remove_dir_all(&dir).unwrap();
                }
                _ => return Scratch(dir),
            }
        }
        panic!("no filesystem with FIEMAP for the test");
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_text(text: &str) -> (Result<(), u32>, Vec<(u32, String)>) {
    let steps = parse(text).unwrap();
    let mut events = Vec::new();
    let r = run(&steps, false, false, &mut |status, line: &str| {
        events.push((status, line.to_string()))
    });
    (r, events)
}

/// Parses `extent` lines the way the host does (the host's parser lives in devices).
fn extent_fields(line: &str) -> (u32, u64, u64, u64, u32) {
    let w: Vec<&str> = line.split(' ').collect();
    assert_eq!(w.len(), 6, "{line}");
    assert_eq!(w[0], "extent");
    let num = |i: usize, key: &str| w[i].strip_prefix(key).unwrap().parse::<u64>().unwrap();
    let flags = u32::from_str_radix(w[5].strip_prefix("flags=0x").unwrap(), 16).unwrap();
    (
        w[1].parse().unwrap(),
        num(2, "logical="),
        num(3, "physical="),
        num(4, "length="),
        flags,
    )
}

#[test]
fn write_verify_sync_fiemap_on_a_real_file() {
    let dir = Scratch::new("steps");
    let f = dir.path("data");
    let b = dir.path("bytes");
    let size = 200 * 1024 + 100; // not a multiple of the chunk or of a sector
    let text = format!(
        "write {f} {size} stamp:host-test\nfsync {f}\nverify {f} {size} stamp:host-test\n\
         fdatasync {f}\nsyncfs {d}\nsync\nfiemap {f}\nwrite {b} 64K byte:0x5a\n\
         verify {b} 64K byte:0x5a\nfiemap {b}\nsleep 1\nfsync {d}\n",
        d = dir.0.display()
    );
    let (r, events) = run_text(&text);
    assert_eq!(r, Ok(()), "{events:?}");
    assert!(events.iter().all(|(s, _)| *s == 0));
    let lines: Vec<&str> = events.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(lines[0], format!("step 1 write ok bytes={size}"));
    assert_eq!(lines[1], "step 2 fsync ok");
    assert_eq!(lines[2], format!("step 3 verify ok bytes={size}"));
    assert_eq!(
        &lines[3..6],
        ["step 4 fdatasync ok", "step 5 syncfs ok", "step 6 sync ok"]
    );

    // The file really holds the stamp pattern: every whole sector decodes to its offset.
    let data = std::fs::read(&f).unwrap();
    assert_eq!(data.len(), size);
    for (k, sector) in data.chunks(512).enumerate() {
        if sector.len() == 512 {
            assert_eq!(stamp::decode(sector), Some(("host-test", k as u64 * 512)));
        } else {
            assert_eq!(
                sector,
                &stamp::stamp_sector("host-test", k as u64 * 512)[..sector.len()]
            );
        }
    }

    // fiemap: extent lines for step 7, then its ok line with the count; they cover the file.
    let done7 = lines.iter().position(|l| l.starts_with("step 7 ")).unwrap();
    let extents: Vec<_> = lines[6..done7].iter().map(|l| extent_fields(l)).collect();
    assert!(!extents.is_empty());
    assert_eq!(
        lines[done7],
        format!("step 7 fiemap ok extents={}", extents.len())
    );
    let mut next = 0;
    for &(index, logical, physical, length, _) in &extents {
        assert_eq!(index, 7);
        assert_eq!(
            logical, next,
            "contiguous extents of a freshly written file"
        );
        assert!(physical > 0 && length > 0);
        next = logical + length;
    }
    assert!(next >= size as u64);
    assert_ne!(
        extents.last().unwrap().4 & crate::sys::FIEMAP_EXTENT_LAST,
        0
    );
    assert!(lines[done7 + 1..].contains(&"step 12 fsync ok"));
    assert_eq!(std::fs::read(&b).unwrap(), vec![0x5a; 65536]);
    assert_eq!(lines.last().unwrap(), &"step 12 fsync ok");
}

#[test]
fn fiemap_loops_over_many_extents() {
    let dir = Scratch::new("sparse");
    let f = dir.path("sparse");
    // 40 separate 4 KiB extents (holes between them): more than one FS_IOC_FIEMAP batch.
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::create(&f).unwrap();
        for i in 0..40u64 {
            file.write_all_at(&[0xab; 4096], i * 65536).unwrap();
        }
    }
    let (r, events) = run_text(&format!("fiemap {f}\n"));
    assert_eq!(r, Ok(()));
    let (last, extents) = events.split_last().unwrap();
    assert!(
        extents.len() > crate::sys::FIEMAP_BATCH,
        "{} extents",
        extents.len()
    );
    assert_eq!(
        last.1,
        format!("step 1 fiemap ok extents={}", extents.len())
    );
    let mut covered = 0;
    let mut prev_end = 0;
    for (_, l) in extents {
        let (_, logical, _, length, _) = extent_fields(l);
        assert!(logical >= prev_end, "extents in order, reported once");
        prev_end = logical + length;
        covered += length;
    }
    assert!(covered >= 40 * 4096);
    assert!(extent_fields(&extents.last().unwrap().1).4 & crate::sys::FIEMAP_EXTENT_LAST != 0);
}

#[test]
fn a_failing_step_stops_the_run() {
    let dir = Scratch::new("fail");
    let f = dir.path("f");
    let text = format!(
        "write {f} 8K byte:0x11\nverify {f} 8K byte:0x11\nverify {f} 8K stamp:other\n\
         sync\nfsync {f}\n"
    );
    let (r, events) = run_text(&text);
    assert_eq!(r, Err(3));
    assert_eq!(
        events.len(),
        3,
        "nothing after the failing step: {events:?}"
    );
    assert_eq!(
        events[2],
        (
            libc::EIO as u32,
            format!("step 3 verify err 5 {f}: mismatch at offset 0: expected 0x50, found 0x11")
        )
    );

    // Short file, and a mismatch deep inside a chunk.
    let mut data = vec![0x22u8; 100_000];
    data[70_001] = 0x23;
    std::fs::write(&f, &data).unwrap();
    let (r, events) = run_text(&format!(
        "verify {f} 70001 byte:0x22\nverify {f} 1M byte:0x22\n"
    ));
    assert_eq!(r, Err(2));
    assert_eq!(events[0].1, "step 1 verify ok bytes=70001");
    assert_eq!(
        events[1].1,
        format!("step 2 verify err 5 {f}: mismatch at offset 70001: expected 0x22, found 0x23")
    );
    let (_, events) = run_text(&format!("verify {f} 1M byte:0x22\n").replace("1M", "100001"));
    assert!(events[0]
        .1
        .ends_with("mismatch at offset 70001: expected 0x22, found 0x23"));
    data[70_001] = 0x22;
    std::fs::write(&f, &data).unwrap();
    let (_, events) = run_text(&format!("verify {f} 100001 byte:0x22\n"));
    assert_eq!(
        events[0].1,
        format!("step 1 verify err 5 {f}: file ends at offset 100000, expected 100001 bytes")
    );

    // Missing files: the errno of open.
    let missing = dir.path("missing/x");
    for op in ["fsync", "fdatasync", "syncfs", "fiemap"] {
        let (r, events) = run_text(&format!("{op} {missing}\n"));
        assert_eq!(r, Err(1));
        assert_eq!(
            events,
            vec![(
                libc::ENOENT as u32,
                format!("step 1 {op} err 2 open {missing}: No such file or directory")
            )]
        );
    }
    let (_, events) = run_text(&format!("write {missing} 1 byte:0x00\n"));
    assert_eq!(events[0].0, libc::ENOENT as u32);
    assert!(Path::new(&f).exists());
}

#[test]
fn parses_mapping_and_dmapin_steps() {
    let text = "mmap m1 /mnt/f 64K\ntouch m1\nmsync m1\nmadvise m1 pageout\nmadvise m1 dontneed\n\
                pin r1 m1 gup rw\npin r2 m1 gup_fast ro\npin r3 m1 pin rw expect=0\n\
                pin r4 m1 pin_fast ro expect=EFAULT\npin r5 m1 pin_longterm rw expect=14\n\
                pin r6 m1 pin_fast_longterm rw # comment\npost r1 0\npost r2 1M\n\
                dma_start r1 burst 4\ndma_start r1 rate 100 2000\ndma_start r1 writeback 0\n\
                dma_start r1 burst\ndma_start r1 rate 1 2 3 4\ndma_stop r1\nquery r1\n\
                release r1 dirty_lock\nrelease r2 dirty_nolock\nrelease r3 no_dirty\nmunmap m1\n";
    let steps = parse(text).unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s.op).collect();
    assert_eq!(
        names,
        [
            "mmap",
            "touch",
            "msync",
            "madvise",
            "madvise",
            "pin",
            "pin",
            "pin",
            "pin",
            "pin",
            "pin",
            "post",
            "post",
            "dma_start",
            "dma_start",
            "dma_start",
            "dma_start",
            "dma_start",
            "dma_stop",
            "query",
            "release",
            "release",
            "release",
            "munmap"
        ]
    );
    assert_eq!(steps.last().unwrap().index, 24);
    let dbg = |i: usize| format!("{:?}", steps[i].action);
    assert!(dbg(0).contains("size: 65536"), "{}", dbg(0));
    assert!(dbg(3).contains("Pageout") && dbg(4).contains("Dontneed"));
    assert!(
        dbg(5).contains("method: 0, write: true, expect: None"),
        "{}",
        dbg(5)
    );
    assert!(dbg(6).contains("method: 1, write: false"), "{}", dbg(6));
    assert!(
        dbg(7).contains("method: 2, write: true, expect: Some(0)"),
        "{}",
        dbg(7)
    );
    assert!(dbg(8).contains("method: 3, write: false, expect: Some(14)"));
    assert!(dbg(9).contains("method: 4, write: true, expect: Some(14)"));
    assert!(dbg(10).contains("method: 5, write: true, expect: None"));
    assert!(dbg(12).contains("file_offset: 1048576"));
    assert!(
        dbg(13).contains("schedule: 1, params: [4, 0, 0, 0]"),
        "{}",
        dbg(13)
    );
    assert!(dbg(14).contains("schedule: 2, params: [100, 2000, 0, 0]"));
    assert!(dbg(15).contains("schedule: 3, params: [0, 0, 0, 0]"));
    assert!(dbg(17).contains("params: [1, 2, 3, 4]"));
    assert!(dbg(18).contains("start: false, schedule: 0"));
    assert!(dbg(20).contains("method: 0") && dbg(21).contains("method: 1"));
    assert!(dbg(22).contains("method: 2"));
}

#[test]
fn bad_mapping_and_dmapin_lines_name_the_line() {
    let cases = [
        ("mmap m1 /f", "line 1: mmap: expected 3 arguments, found 2 (usage: mmap NAME PATH SIZE"),
        ("sync\nmmap m1 /f 100", "line 2: mmap: bad size 100: expected a non-zero multiple of 4096"),
        ("mmap m1 /f 0", "line 1: mmap: bad size 0: expected a non-zero multiple of 4096"),
        ("mmap m1 /f 4Q", "line 1: mmap: bad size \"4Q\""),
        ("mmap m/1 /f 4K", "line 1: mmap: bad name \"m/1\""),
        ("mmap a=b /f 4K", "bad name \"a=b\""),
        ("\n\ntouch", "line 3: touch: expected 1 argument, found 0 (usage: touch NAME)"),
        ("touch m1 m2", "line 1: touch: expected 1 argument, found 2"),
        ("msync", "line 1: msync: expected 1 argument"),
        ("munmap a b", "line 1: munmap: expected 1 argument, found 2"),
        ("madvise m1", "line 1: madvise: expected 2 arguments, found 1"),
        ("madvise m1 willneed", "line 1: madvise: bad advice \"willneed\": expected pageout or dontneed"),
        ("pin r1 m1 gup", "line 1: pin: expected 4 arguments, found 3 (usage: pin REGION NAME METHOD rw|ro [expect=ERRNO]"),
        ("pin r1 m1 pin_slow rw", "line 1: pin: bad method \"pin_slow\""),
        ("pin r1 m1 pin wr", "line 1: pin: bad access \"wr\": expected rw or ro"),
        ("pin r1 m1 pin rw expect=EWHAT", "line 1: pin: bad errno \"EWHAT\""),
        ("pin r1 m1 pin rw expect=", "line 1: pin: bad errno \"\""),
        ("pin r1 m1 pin rw expect=99999", "bad errno \"99999\""),
        ("pin r1 m1 pin rw extra", "line 1: pin: expected 4 arguments, found 5"),
        ("pin r1 m1 pin expect=0", "line 1: pin: expected 4 arguments, found 3"),
        ("post r1", "line 1: post: expected 2 arguments, found 1 (usage: post REGION FILE_OFFSET)"),
        ("post r1 x", "line 1: post: bad size \"x\""),
        ("dma_start r1", "line 1: dma_start: expected 2 to 6 arguments, found 1"),
        ("dma_start r1 burst 1 2 3 4 5", "line 1: dma_start: expected 2 to 6 arguments, found 7"),
        ("dma_start r1 flood 1", "line 1: dma_start: bad schedule \"flood\": expected burst, rate or writeback"),
        ("dma_start r1 rate 10 1s", "line 1: dma_start: bad P1 \"1s\": expected a decimal number"),
        ("dma_stop", "line 1: dma_stop: expected 1 argument, found 0"),
        ("dma_stop r1 burst", "line 1: dma_stop: expected 1 argument, found 2"),
        ("query", "line 1: query: expected 1 argument, found 0"),
        ("release r1", "line 1: release: expected 2 arguments, found 1"),
        ("release r1 dirty", "line 1: release: bad release method \"dirty\""),
    ];
    for (text, want) in cases {
        let e = parse_err(text);
        assert!(e.contains(want), "{text:?}: {e}");
        assert!(e.starts_with("/pinvm/steps line "), "{e}");
    }
}

#[test]
fn errno_words() {
    assert_eq!(args::errno("0"), Ok(0));
    assert_eq!(args::errno("EFAULT"), Ok(libc::EFAULT));
    assert_eq!(args::errno("14"), Ok(14));
    assert_eq!(args::errno("ENOSPC"), Ok(libc::ENOSPC));
    assert!(args::errno("efault").is_err());
    assert!(args::errno("-14").is_err());
    assert_eq!(args::errno_name(0), "0");
    assert_eq!(args::errno_name(libc::EFAULT), "EFAULT");
    assert_eq!(args::errno_name(libc::ETIMEDOUT), "ETIMEDOUT");
    assert_eq!(args::errno_name(4000), "4000");
}

#[test]
fn query_detail_format() {
    let q = dmapin_abi::DmapinQuery {
        region_id: 3,
        method: dmapin_abi::DMAPIN_PIN_FAST_LONGTERM,
        flags: dmapin_abi::DMAPIN_WRITE,
        npages: 16,
        npinned: 16,
        inflight: 2,
        addr: 0x7f00_0000_0000,
        posted: 16,
        completed: 14,
        dma_writes: 40,
        used_bytes: 57344,
        nr_dirty: 5,
        nr_writeback: 1,
        nr_private: 16,
        nr_no_mapping: 0,
        nr_maybe_pinned: 16,
        reserved: 0,
    };
    assert_eq!(
        dmapin::query_detail(&q),
        "method=pin_fast_longterm flags=0x1 npages=16 npinned=16 inflight=2 \
         addr=0x7f0000000000 posted=16 completed=14 dma_writes=40 used_bytes=57344 nr_dirty=5 \
         nr_writeback=1 nr_private=16 nr_no_mapping=0 nr_maybe_pinned=16"
    );
}

/// A scratch directory in /var/tmp (a disk filesystem on the build host, unlike a tmpfs /tmp).
struct VarTmp(PathBuf);

impl VarTmp {
    fn new(name: &str) -> VarTmp {
        let dir =
            PathBuf::from("/var/tmp").join(format!("pinvm-agent-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        VarTmp(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for VarTmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn lines(events: &[(u32, String)]) -> Vec<&str> {
    events.iter().map(|(_, l)| l.as_str()).collect()
}

#[test]
fn mmap_touch_msync_madvise_munmap_on_a_real_file() {
    let dir = VarTmp::new("mmap");
    let f = dir.path("data");
    let text = format!(
        "write {f} 64K stamp:map-1\nmmap m {f} 64K\ntouch m\nmsync m\nmadvise m pageout\n\
         madvise m dontneed\ntouch m\nmsync m\nmunmap m\nverify {f} 64K stamp:map-1\n\
         mmap m {f} 32K\ntouch m\n"
    );
    let (r, events) = run_text(&text);
    assert_eq!(r, Ok(()), "{events:?}");
    let l = lines(&events);
    assert_eq!(
        l,
        [
            "step 1 write ok bytes=65536",
            "step 2 mmap ok bytes=65536 pages=16",
            "step 3 touch ok pages=16",
            "step 4 msync ok",
            "step 5 madvise ok",
            "step 6 madvise ok",
            "step 7 touch ok pages=16",
            "step 8 msync ok",
            "step 9 munmap ok",
            "step 10 verify ok bytes=65536",
            "step 11 mmap ok bytes=32768 pages=8",
            "step 12 touch ok pages=8",
        ]
    );
    // touch stored back the bytes that were there: the data is unchanged.
    let mut want = vec![0u8; 65536];
    stamp::fill("map-1", 0, &mut want);
    assert_eq!(std::fs::read(&f).unwrap(), want);

    // The mapping shares the file's pages: a write() shows through it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&f)
        .unwrap();
    let m = crate::sys::Mapping::new(file, 8192).unwrap();
    std::fs::write(&f, vec![0x33u8; 8192]).unwrap();
    assert_eq!(m.to_vec(), vec![0x33u8; 8192]);
    assert_eq!(m.touch_pages(), 2);
    m.unmap().unwrap();
}

#[test]
fn mapping_step_errors() {
    let dir = VarTmp::new("mmap-err");
    let f = dir.path("f");
    let missing = dir.path("missing");
    let cases: [(String, &str); 7] = [
        (
            format!("mmap m {missing} 4K\n"),
            "step 1 mmap err 2 open MISSING: No such file or directory",
        ),
        (
            format!("write {f} 4K byte:0x01\nmmap m {f} 8K\n"),
            "step 2 mmap err 22 F: file is 4096 bytes, shorter than the mapping (8192 bytes)",
        ),
        (
            "touch m\n".into(),
            "step 1 touch err 2 no mapping named m (no earlier mmap step made it, or it was \
             unmapped)",
        ),
        (
            format!("write {f} 4K byte:0x01\nmmap m {f} 4K\nmunmap m\nmsync m\n"),
            "step 4 msync err 2 no mapping named m",
        ),
        (
            format!("write {f} 4K byte:0x01\nmmap m {f} 4K\nmmap m {f} 4K\n"),
            "step 3 mmap err 17 mapping m exists already",
        ),
        (
            // the file shrank under the mapping: touch refuses instead of dying of SIGBUS
            format!("write {f} 8K byte:0x01\nmmap m {f} 8K\nwrite {f} 4K byte:0x01\ntouch m\n"),
            "step 4 touch err 22 touch m: the file is now 4096 bytes, shorter than the mapping \
             (8192 bytes)",
        ),
        (
            "post r 0\n".into(),
            "step 1 post err 2 no region named r (no earlier pin step made it, or it was \
             released)",
        ),
    ];
    for (text, want) in cases {
        let want = want
            .replace("MISSING", &missing)
            .replace("F:", &format!("{f}:"));
        let (r, events) = run_text(&text);
        assert!(r.is_err(), "{text}");
        let last = &events.last().unwrap().1;
        assert!(last.starts_with(&want), "{text}: {last}");
    }
    for op in [
        "dma_stop r",
        "query r",
        "release r no_dirty",
        "dma_start r burst 1",
    ] {
        let (_, events) = run_text(&format!("{op}\n"));
        assert!(
            events[0].1.contains(" err 2 no region named r "),
            "{events:?}"
        );
    }
}

#[test]
fn pin_without_the_device_is_a_clear_step_error() {
    if Path::new(dmapin_abi::DEVICE).exists() {
        eprintln!("skipped: {} exists on this host", dmapin_abi::DEVICE);
        return;
    }
    let dir = VarTmp::new("nodev");
    let f = dir.path("f");
    for expect in ["", " expect=EFAULT", " expect=ENOENT"] {
        let text = format!(
            "write {f} 8K stamp:nodev\nmmap m {f} 8K\ntouch m\npin r m pin_longterm rw{expect}\n\
             sync\n"
        );
        let (r, events) = run_text(&text);
        assert_eq!(r, Err(4));
        assert_eq!(
            events.last().unwrap(),
            &(
                libc::ENOENT as u32,
                "step 4 pin err 2 cannot open /dev/dmapin: No such file or directory".to_string()
            )
        );
    }
    let (_, events) = run_text("pin r m gup ro\n");
    assert_eq!(
        events[0].1,
        "step 1 pin err 2 no mapping named m (no earlier mmap step made it, or it was unmapped)"
    );
}

#[test]
fn pin_outcomes_and_expect() {
    use dmapin::pin_verdict;
    use dmapin_abi::DmapinPin;
    let how = "pin_longterm rw of m1";
    let asked = DmapinPin {
        addr: 0x7f00_0000_0000,
        len: 16 * 4096,
        method: 4,
        flags: 1,
        ..DmapinPin::default()
    };
    let pinned = DmapinPin {
        region_id: 3,
        npinned: 16,
        npages: 16,
        ..asked
    };
    let partial = DmapinPin {
        npinned: 3,
        ..pinned
    };
    let refused = DmapinPin {
        err: -libc::EFAULT,
        npages: 16,
        ..asked
    };
    let nothing = DmapinPin {
        npages: 16,
        ..asked
    };
    let v = |errno, arg: &DmapinPin, expect| pin_verdict("r1", how, errno, arg, expect);
    let err = |errno: i32, msg: &str| Err(StepError::new(errno, msg.to_string()));

    // Without expect=: faithful.
    assert_eq!(
        v(None, &pinned, None),
        Ok("region=3 pinned=16 pages=16".into())
    );
    assert_eq!(
        v(None, &partial, None),
        Ok("region=3 pinned=3 pages=16".into())
    );
    assert_eq!(
        v(None, &refused, None),
        err(
            libc::EFAULT,
            "pin r1: pin_longterm rw of m1: Bad address (region=0 pinned=0 pages=16)"
        )
    );
    assert_eq!(
        v(None, &nothing, None),
        err(
            libc::EIO,
            "pin r1: pin_longterm rw of m1: the kernel pinned nothing (region=0 pinned=0 pages=16)"
        )
    );
    assert_eq!(
        v(Some(libc::ENOSPC), &asked, None),
        err(
            libc::ENOSPC,
            "DMAPIN_IOC_PIN r1 (pin_longterm rw of m1): No space left on device"
        )
    );

    // With expect=: the outcome decides.
    assert_eq!(
        v(None, &refused, Some(libc::EFAULT)),
        Ok("region=0 pinned=0 pages=16 got=EFAULT".into())
    );
    assert_eq!(
        v(None, &pinned, Some(0)),
        Ok("region=3 pinned=16 pages=16 got=0".into())
    );
    assert_eq!(
        v(Some(libc::EINVAL), &asked, Some(libc::EINVAL)),
        Ok("region=0 pinned=0 pages=16 got=EINVAL".into())
    );
    assert_eq!(
        v(None, &pinned, Some(libc::EFAULT)),
        err(
            libc::EIO,
            "pin r1: pin_longterm rw of m1: expected EFAULT, got=0 region=3 pinned=16 pages=16"
        )
    );
    assert_eq!(
        v(None, &refused, Some(0)),
        err(
            libc::EFAULT,
            "pin r1: pin_longterm rw of m1: expected 0, got=EFAULT region=0 pinned=0 pages=16"
        )
    );
    assert_eq!(
        v(Some(libc::ENOSPC), &asked, Some(libc::EFAULT)),
        err(
            libc::ENOSPC,
            "pin r1: pin_longterm rw of m1: expected EFAULT, got=ENOSPC region=0 pinned=0 pages=16"
        )
    );
}

#[test]
fn parses_file_race_and_setting_steps() {
    let text = "read /mnt/f\ntruncate /mnt/f 8K\npunch /mnt/f 4096 1M\n\
                pwrite /mnt/f 100 3000 stamp:a\npwrite /mnt/f 4K 64K byte:0x5a direct\n\
                sync_file_range /mnt/f 0 0\nsync_file_range /mnt/f 4K 8K\n\
                sysctl vm.dirty_writeback_centisecs 0\n\
                sysfs /sys/block/vda/queue/stable_writes 1\ndio_read_race m /mnt/src 20\n\
                pvm_race m /mnt/f 2000\ntruncate /mnt/f 0\ndio_write_from m /mnt/dst 3\n";
    let steps = parse(text).unwrap();
    assert_eq!(
        ops(&steps),
        vec![
            (1, "read"),
            (2, "truncate"),
            (3, "punch"),
            (4, "pwrite"),
            (5, "pwrite"),
            (6, "sync_file_range"),
            (7, "sync_file_range"),
            (8, "sysctl"),
            (9, "sysfs"),
            (10, "dio_read_race"),
            (11, "pvm_race"),
            (12, "truncate"),
            (13, "dio_write_from"),
        ]
    );
    let dbg: Vec<String> = steps.iter().map(|s| format!("{:?}", s.action)).collect();
    let has = |i: usize, want: &str| assert!(dbg[i].contains(want), "{want} in {}", dbg[i]);
    has(0, "ReadFile(\"/mnt/f\")");
    has(1, "path: \"/mnt/f\", size: 8192");
    has(2, "offset: 4096, len: 1048576");
    has(
        3,
        "offset: 100, size: 3000, pattern: Stamp(\"a\"), direct: false",
    );
    has(
        4,
        "offset: 4096, size: 65536, pattern: Byte(90), direct: true",
    );
    has(5, "offset: 0, len: 0");
    has(6, "offset: 4096, len: 8192");
    has(
        7,
        "path: \"/proc/sys/vm/dirty_writeback_centisecs\", value: \"0\"",
    );
    has(
        8,
        "path: \"/sys/block/vda/queue/stable_writes\", value: \"1\"",
    );
    has(9, "name: \"m\", src: \"/mnt/src\", rounds: 20");
    has(10, "name: \"m\", path: \"/mnt/f\", ms: 2000");
    has(11, "size: 0");
}

#[test]
fn bad_file_race_and_setting_lines_name_the_line() {
    let cases = [
        ("read", "line 1: read: expected 1 argument, found 0 (usage: read PATH)"),
        ("read /a /b", "line 1: read: expected 1 argument, found 2"),
        ("sync\ntruncate /f", "line 2: truncate: expected 2 arguments, found 1 (usage: truncate PATH SIZE)"),
        ("truncate /f 1x", "line 1: truncate: bad size \"1x\""),
        ("truncate /f 9223372036854775808", "bad size \"9223372036854775808\": larger than the largest file offset"),
        ("punch /f 0", "line 1: punch: expected 3 arguments, found 2 (usage: punch PATH OFFSET LEN"),
        ("punch /f 0 0", "line 1: punch: bad length \"0\": the hole must not be empty"),
        ("punch /f 4K -1", "line 1: punch: bad size \"-1\""),
        ("punch /f 9223372036854775807 1", "offset 9223372036854775807 + length 1 is beyond the largest file offset"),
        ("pwrite /f 0 4K", "line 1: pwrite: expected 4 or 5 arguments, found 3 (usage: pwrite PATH OFFSET SIZE PATTERN [direct]"),
        ("pwrite /f 0 4K byte:0x00 direct x", "expected 4 or 5 arguments, found 6"),
        ("pwrite /f 0 4K byte:0x00 sync", "line 1: pwrite: bad flag \"sync\": expected direct or nothing"),
        ("pwrite /f 0 4K zero", "line 1: pwrite: bad pattern \"zero\""),
        ("pwrite /f 512 4K byte:0x00 direct", "line 1: pwrite: bad offset \"512\": with direct it must be a multiple of 4096"),
        ("pwrite /f 8K 100 stamp:x direct", "line 1: pwrite: bad size \"100\": with direct it must be a multiple of 4096"),
        ("pwrite /f x 4K byte:0x00", "line 1: pwrite: bad size \"x\""),
        ("sync_file_range /f 0", "line 1: sync_file_range: expected 3 arguments, found 2 (usage: sync_file_range PATH OFFSET LEN"),
        ("sync_file_range /f 0 1Q", "bad size \"1Q\""),
        ("sysctl vm.dirty_ratio", "line 1: sysctl: expected 2 arguments, found 1 (usage: sysctl KEY VALUE"),
        ("sysctl vm/dirty_ratio 5", "line 1: sysctl: bad key \"vm/dirty_ratio\": expected dot-separated words"),
        ("sysctl VM.dirty_ratio 5", "bad key \"VM.dirty_ratio\""),
        ("sysctl vm..dirty_ratio 5", "bad key \"vm..dirty_ratio\""),
        ("sysctl .vm 5", "bad key \".vm\""),
        ("sysctl vm. 5", "bad key \"vm.\""),
        ("sysfs /proc/sys/vm/x 1", "line 1: sysfs: bad path \"/proc/sys/vm/x\": expected a path under /sys/"),
        ("sysfs /sys/../etc/x 1", "bad path \"/sys/../etc/x\""),
        ("sysfs /sys 1", "bad path \"/sys\""),
        ("sysfs /sys/x", "line 1: sysfs: expected 2 arguments, found 1 (usage: sysfs PATH VALUE"),
        ("dio_write_from m /f 0", "line 1: dio_write_from: bad rounds \"0\""),
        ("dio_read_race m /f", "line 1: dio_read_race: expected 3 arguments, found 2 (usage: dio_read_race NAME SRC ROUNDS"),
        ("dio_read_race m /f 0", "line 1: dio_read_race: bad rounds \"0\": expected at least 1"),
        ("dio_read_race m /f 1K", "line 1: dio_read_race: bad rounds \"1K\": expected a decimal number"),
        ("dio_read_race m/x /f 1", "line 1: dio_read_race: bad name \"m/x\""),
        ("pvm_race m /f", "line 1: pvm_race: expected 3 arguments, found 2 (usage: pvm_race NAME PATH MS)"),
        ("pvm_race m /f 2s", "line 1: pvm_race: bad duration \"2s\": expected a decimal number"),
        ("pvm_race = /f 2", "line 1: pvm_race: bad name \"=\""),
    ];
    for (text, want) in cases {
        let e = parse_err(text);
        assert!(e.contains(want), "{text:?}: {e}");
        assert!(e.starts_with("/pinvm/steps line "), "{e}");
    }
}

#[test]
fn pwrite_read_truncate_punch_sync_file_range_on_a_real_file() {
    let dir = VarTmp::new("fileio");
    let f = dir.path("f");
    let text = format!(
        "write {f} 64K stamp:a\nfsync {f}\npwrite {f} 4096 8192 stamp:a direct\n\
         verify {f} 64K stamp:a\npwrite {f} 100 1000 stamp:b\npwrite {f} 60K 8K byte:0x7e direct\n\
         read {f}\nsync_file_range {f} 0 0\nsync_file_range {f} 4K 4K\npunch {f} 8K 4K\n\
         truncate {f} 66K\nread {f}\n"
    );
    let (r, events) = run_text(&text);
    assert_eq!(r, Ok(()), "{events:?}");
    assert_eq!(
        lines(&events),
        [
            "step 1 write ok bytes=65536",
            "step 2 fsync ok",
            "step 3 pwrite ok bytes=8192",
            "step 4 verify ok bytes=65536",
            "step 5 pwrite ok bytes=1000",
            "step 6 pwrite ok bytes=8192",
            "step 7 read ok bytes=69632",
            "step 8 sync_file_range ok",
            "step 9 sync_file_range ok",
            "step 10 punch ok",
            "step 11 truncate ok",
            "step 12 read ok bytes=67584",
        ]
    );
    let mut want = vec![0u8; 68 * 1024];
    stamp::fill("a", 0, &mut want);
    // pwrite puts the bytes of the same file offsets: stamp:b from 100 to 1100.
    stamp::fill("b", 100, &mut want[100..1100]);
    want[60 * 1024..].fill(0x7e);
    want[8192..12288].fill(0); // the hole
    want.truncate(66 * 1024);
    let got = std::fs::read(&f).unwrap();
    assert_eq!(got.len(), want.len());
    let first = got.iter().zip(&want).position(|(a, b)| a != b);
    assert_eq!(first, None, "first difference");

    // pwrite does not create (or truncate) files; run-time errors name the call.
    let missing = dir.path("missing");
    let cases = [
        (
            format!("pwrite {missing} 0 4K byte:0x00\n"),
            format!("step 1 pwrite err 2 open {missing}: No such file or directory"),
        ),
        (
            format!("pwrite {missing} 0 4K byte:0x00 direct\n"),
            format!("step 1 pwrite err 2 open {missing}: No such file or directory"),
        ),
        (
            format!("read {missing}\n"),
            format!("step 1 read err 2 open {missing}: No such file or directory"),
        ),
        (
            format!("truncate {missing} 0\n"),
            format!("step 1 truncate err 2 truncate {missing} to 0: No such file or directory"),
        ),
        (
            format!("punch {missing} 0 1\n"),
            format!("step 1 punch err 2 open {missing}: No such file or directory"),
        ),
        (
            format!("sync_file_range {missing} 0 0\n"),
            format!("step 1 sync_file_range err 2 open {missing}: No such file or directory"),
        ),
        (
            format!("read {}\n", dir.0.display()),
            format!(
                "step 1 read err 21 read {} at offset 0: Is a directory",
                dir.0.display()
            ),
        ),
        (
            "sysctl vm.pinvm_no_such_knob 1\n".into(),
            "step 1 sysctl err 2 open /proc/sys/vm/pinvm_no_such_knob: No such file or directory"
                .into(),
        ),
        (
            "sysfs /sys/pinvm_no_such_file 1\n".into(),
            "step 1 sysfs err 2 open /sys/pinvm_no_such_file: No such file or directory".into(),
        ),
    ];
    for (text, want) in cases {
        let (r, events) = run_text(&text);
        assert_eq!(r, Err(1), "{text}");
        assert_eq!(events.last().unwrap().1, want);
    }
    assert!(!Path::new(&missing).exists());
}

#[test]
fn races_on_a_real_file() {
    let dir = VarTmp::new("races");
    let f = dir.path("f");
    let src = dir.path("src");
    let text = format!(
        "write {f} 64K stamp:f\nwrite {src} 64K stamp:s\nfsync {src}\nmmap m {f} 64K\n\
         dio_read_race m {src} 3\nmunmap m\nverify {f} 64K stamp:s\nmmap m {f} 16K\n\
         pvm_race m {f} 200\nmunmap m\n"
    );
    // (No msync or fsync after pvm_race: when a DIO write could not invalidate a page the
    // mapping holds, the kernel prints "Page cache invalidation failure on direct I/O" and
    // records EIO on the file, which the next msync/fsync reports.)
    let (r, events) = run_text(&text);
    assert_eq!(r, Ok(()), "{events:?}");
    let l = lines(&events);
    let dio = l[4].strip_prefix("step 5 dio_read_race ok rounds=3 pageouts=");
    assert!(
        dio.is_some_and(|n| n.parse::<u64>().unwrap() >= 1),
        "{}",
        l[4]
    );
    assert_eq!(l[6], "step 7 verify ok bytes=65536");
    let pvm: Vec<u64> = l[8]
        .strip_prefix("step 9 pvm_race ok pvm_writes=")
        .unwrap()
        .split(" dio_writes=")
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(pvm[0] > 0 && pvm[1] > 0, "{}", l[8]);
    // Every page now holds one writer's stamp (whole sectors of pvm or dio).
    let data = std::fs::read(&f).unwrap();
    for (k, sector) in data[..16384].chunks(512).enumerate() {
        let tag = stamp::decode(sector).map(|(t, off)| (t.to_string(), off));
        assert!(
            matches!(&tag, Some((t, off)) if (t == "pvm" || t == "dio") && *off == k as u64 * 512),
            "sector {k}: {tag:?}"
        );
    }

    let (_, events) = run_text(&format!("dio_read_race m {src} 1\n"));
    assert!(events[0]
        .1
        .starts_with("step 1 dio_read_race err 2 no mapping named m"));
    let (_, events) = run_text(&format!(
        "mmap m {f} 4K\ndio_read_race m {}/missing 1\npvm_race m {}/missing 1\n",
        dir.0.display(),
        dir.0.display()
    ));
    assert_eq!(
        events[1].1,
        format!(
            "step 2 dio_read_race err 2 open {}/missing (O_DIRECT): No such file or directory",
            dir.0.display()
        )
    );
}

#[test]
fn enosys_names_the_missing_kernel_option() {
    let e = StepError::io(
        "madvise(MADV_PAGEOUT) m",
        &io::Error::from_raw_os_error(libc::ENOSYS),
    );
    assert_eq!(
        err_line(3, "madvise", &e.enosys_needs(mapping::MADVISE_CONFIG)),
        "step 3 madvise err 38 madvise(MADV_PAGEOUT) m: Function not implemented (the kernel \
         lacks CONFIG_ADVISE_SYSCALLS)"
    );
    let e = StepError::io("x", &io::Error::from_raw_os_error(libc::EFAULT)).enosys_needs("C");
    assert_eq!(e.message, "x: Bad address");
}

#[test]
fn keep_going_runs_every_step_and_returns_the_first_failure() {
    let steps = parse("munmap nope\nsleep 0\nmunmap nope2\nsleep 0\n").unwrap();
    let mut events = Vec::new();
    let r = run(&steps, false, true, &mut |status, line: &str| {
        events.push((status, line.to_string()))
    });
    assert_eq!(r, Err(1));
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(events[1].1.starts_with("step 2 sleep ok"), "{events:?}");
    assert_ne!(events[2].0, 0);
    // Without keep_going the first failure stops the run.
    let mut n = 0;
    assert_eq!(run(&steps, false, false, &mut |_, _| n += 1), Err(1));
    assert_eq!(n, 1);
}
