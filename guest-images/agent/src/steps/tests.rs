use super::*;
use crate::stamp;
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
    assert!(parse_err("fiemap a b").contains("expected 1 argument, found 2"));
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
    let r = run(&steps, false, &mut |status, line: &str| {
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
