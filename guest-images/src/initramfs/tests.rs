use super::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::process::Stdio;

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "pinvm-initramfs-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs GNU cpio with `args` in `dir`, feeding it `archive`; returns stdout.
fn cpio(dir: &Path, args: &[&str], archive: &[u8]) -> String {
    let mut child = Command::new("cpio")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("GNU cpio must be installed");
    child.stdin.take().unwrap().write_all(archive).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "cpio {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// One parsed newc entry.
#[derive(Debug)]
struct Entry {
    name: String,
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
    rdev: (u32, u32),
    check: u32,
    data: Vec<u8>,
}

/// A strict newc parser for checking our output: returns the entries of one archive (without
/// the trailer) and the number of bytes consumed.
fn parse(buf: &[u8]) -> (Vec<Entry>, usize) {
    let mut pos = 0;
    let mut entries = Vec::new();
    loop {
        assert_eq!(pos % 4, 0, "header at unaligned offset {pos}");
        let h = &buf[pos..pos + HEADER_LEN];
        assert_eq!(&h[..6], b"070701");
        let field = |i: usize| {
            let s = std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).unwrap();
            u32::from_str_radix(s, 16).unwrap()
        };
        let namesize = field(11) as usize;
        let filesize = field(6) as usize;
        let name_start = pos + HEADER_LEN;
        let name = &buf[name_start..name_start + namesize];
        assert_eq!(name.last(), Some(&0), "name not NUL-terminated");
        let name = String::from_utf8(name[..namesize - 1].to_vec()).unwrap();
        let data_start = (name_start + namesize).next_multiple_of(4);
        assert!(buf[name_start + namesize..data_start]
            .iter()
            .all(|&b| b == 0));
        let data = buf[data_start..data_start + filesize].to_vec();
        let next = (data_start + filesize).next_multiple_of(4);
        assert!(buf[data_start + filesize..next].iter().all(|&b| b == 0));
        pos = next;
        if name == TRAILER {
            return (entries, pos);
        }
        entries.push(Entry {
            name,
            ino: field(0),
            mode: field(1),
            uid: field(2),
            gid: field(3),
            nlink: field(4),
            mtime: field(5),
            rdev: (field(9), field(10)),
            check: field(12),
            data,
        });
        assert_eq!((field(7), field(8)), (0, 0), "devmajor/devminor");
    }
}

fn sample() -> Vec<u8> {
    let mut w = CpioWriter::new();
    w.dir("/etc", 0o755).unwrap();
    w.dir("data", 0o700).unwrap();
    w.file("/etc/hostname", 0o644, b"pinvm\n").unwrap();
    w.file("data/exe", 0o755, &[0x7f, b'E', b'L', b'F', 0, 1, 2])
        .unwrap();
    w.file("data/empty", 0o600, b"").unwrap();
    w.file("data/abc", 0o640, b"abc").unwrap();
    w.symlink("data/link", "/etc/hostname").unwrap();
    w.symlink("data/rel", "exe").unwrap();
    w.finish()
}

#[test]
fn gnu_cpio_lists_exactly_what_was_written() {
    let tmp = TempDir::new("list");
    let mut w = CpioWriter::new();
    w.dir("dev", 0o755).unwrap();
    w.char_dev("/dev/console", 0o600, 5, 1).unwrap();
    w.char_dev("dev/null", 0o666, 1, 3).unwrap();
    w.file("init", 0o755, b"#!/bin/sh\n").unwrap();
    w.symlink("sh", "/bin/busybox").unwrap();
    let archive = w.finish();
    let list = cpio(&tmp.0, &["-it"], &archive);
    assert_eq!(
        list.lines().collect::<Vec<_>>(),
        ["dev", "dev/console", "dev/null", "init", "sh"]
    );
    let verbose = cpio(&tmp.0, &["-itv"], &archive);
    let lines: Vec<&str> = verbose.lines().collect();
    assert!(lines[0].starts_with("drwxr-xr-x"), "{verbose}");
    assert!(
        lines[1].starts_with("crw-------") && lines[1].contains("5,"),
        "{verbose}"
    );
    assert!(
        lines[2].starts_with("crw-rw-rw-") && lines[2].contains("1,"),
        "{verbose}"
    );
    assert!(lines[3].starts_with("-rwxr-xr-x"), "{verbose}");
    assert!(lines[4].starts_with("lrwxrwxrwx") && lines[4].ends_with("sh -> /bin/busybox"));
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" root ") || l.contains(" 0 ")),
        "{verbose}"
    );
}

#[test]
fn gnu_cpio_extracts_bytes_links_and_modes() {
    let tmp = TempDir::new("extract");
    let archive = sample();
    assert_eq!(
        cpio(&tmp.0, &["-it"], &archive).lines().collect::<Vec<_>>(),
        [
            "etc",
            "data",
            "etc/hostname",
            "data/exe",
            "data/empty",
            "data/abc",
            "data/link",
            "data/rel"
        ]
    );
    cpio(
        &tmp.0,
        &["-idm", "--no-absolute-filenames", "--quiet"],
        &archive,
    );
    let root = &tmp.0;
    assert_eq!(
        std::fs::read(root.join("etc/hostname")).unwrap(),
        b"pinvm\n"
    );
    assert_eq!(
        std::fs::read(root.join("data/exe")).unwrap(),
        b"\x7fELF\0\x01\x02"
    );
    assert_eq!(std::fs::read(root.join("data/empty")).unwrap(), b"");
    assert_eq!(std::fs::read(root.join("data/abc")).unwrap(), b"abc");
    assert_eq!(
        std::fs::read_link(root.join("data/link")).unwrap(),
        Path::new("/etc/hostname")
    );
    assert_eq!(
        std::fs::read_link(root.join("data/rel")).unwrap(),
        Path::new("exe")
    );
    let mode = |p: &str| {
        std::fs::symlink_metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
    };
    assert_eq!(mode("etc/hostname"), S_IFREG | 0o644);
    assert_eq!(mode("data/exe"), S_IFREG | 0o755);
    assert_eq!(mode("data/empty"), S_IFREG | 0o600);
    assert_eq!(mode("data/abc"), S_IFREG | 0o640);
    assert_eq!(mode("data"), S_IFDIR | 0o700);
    assert_eq!(mode("data/link") & S_IFLNK, S_IFLNK);
}

#[test]
fn header_fields_and_padding() {
    // Name and data lengths covering every residue mod 4.
    let mut w = CpioWriter::new();
    for n in 1..=8 {
        let name = "n".repeat(n);
        w.file(&name, 0o644, &vec![b'x'; n]).unwrap();
    }
    w.char_dev("mem", 0o640, 1, 1).unwrap();
    w.dir("d", 0o755).unwrap();
    let archive = w.finish();
    assert_eq!(archive.len() % 4, 0);
    let (entries, used) = parse(&archive);
    assert_eq!(used, archive.len());
    assert_eq!(entries.len(), 10);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.ino, i as u32 + 1);
        assert_eq!((e.uid, e.gid, e.mtime, e.check), (0, 0, 0, 0));
    }
    assert_eq!(entries[3].data, b"xxxx");
    assert_eq!((entries[3].mode, entries[3].nlink), (S_IFREG | 0o644, 1));
    assert_eq!(entries[8].mode, S_IFCHR | 0o640);
    assert_eq!(entries[8].rdev, (1, 1));
    assert_eq!((entries[9].mode, entries[9].nlink), (S_IFDIR | 0o755, 2));
    // The trailer is the standard one.
    let tail = &archive[archive.len() - 124..];
    assert!(tail.starts_with(b"070701"));
    assert_eq!(&tail[110..121], b"TRAILER!!!\0");
}

#[test]
fn output_is_deterministic() {
    assert_eq!(sample(), sample());
    let a = base_initramfs(b"agent", false).unwrap();
    assert_eq!(a, base_initramfs(b"agent", false).unwrap());
}

#[test]
fn malformed_entries_are_rejected() {
    let mut w = CpioWriter::new();
    let bad = |r: Result<(), CpioError>| match r {
        Err(CpioError::InvalidPath { reason, .. }) => reason,
        other => panic!("expected InvalidPath, got {other:?}"),
    };
    assert_eq!(bad(w.file("a\0b", 0o644, b"")), "contains NUL");
    assert_eq!(bad(w.file("", 0o644, b"")), "empty");
    assert_eq!(bad(w.dir("/", 0o755)), "empty");
    assert_eq!(
        bad(w.file("../etc/passwd", 0o644, b"")),
        "'.' or '..' component"
    );
    assert_eq!(bad(w.file("a/../b", 0o644, b"")), "'.' or '..' component");
    assert_eq!(bad(w.file("a/..", 0o644, b"")), "'.' or '..' component");
    assert_eq!(bad(w.file("./a", 0o644, b"")), "'.' or '..' component");
    assert!(bad(w.file("a//b", 0o644, b"")).starts_with("empty component"));
    assert!(bad(w.dir("a/", 0o755)).starts_with("empty component"));
    assert_eq!(
        bad(w.file("TRAILER!!!", 0o644, b"")),
        "reserved for the trailer"
    );
    let e = w.file("x/../y", 0o644, b"").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid archive path \"x/../y\": '.' or '..' component"
    );

    w.file("a", 0o644, b"").unwrap();
    assert_eq!(
        w.file("/a", 0o644, b""),
        Err(CpioError::Duplicate("a".into()))
    );
    assert!(matches!(
        w.symlink("l", ""),
        Err(CpioError::InvalidTarget { .. })
    ));
    assert!(matches!(
        w.symlink("l", "a\0b"),
        Err(CpioError::InvalidTarget { .. })
    ));
    // Rejected entries leave no trace.
    let (entries, _) = parse(&w.finish());
    assert_eq!(entries.len(), 1);
}

#[test]
fn base_without_busybox() {
    let archive = base_initramfs(b"\x7fELF-agent", false).unwrap();
    assert_eq!(archive.len() % 4, 0);
    let (entries, used) = parse(&archive);
    assert_eq!(used, archive.len());
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "dev",
            "proc",
            "sys",
            "tmp",
            "mnt",
            "root",
            "pinvm",
            "bin",
            "usr",
            "usr/bin",
            "dev/console",
            "dev/null",
            "dev/mem",
            "init"
        ]
    );
    let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
    assert_eq!(
        (get("dev/console").mode & !0o7777, get("dev/console").rdev),
        (S_IFCHR, (5, 1))
    );
    assert_eq!(get("dev/null").rdev, (1, 3));
    assert_eq!(get("dev/mem").rdev, (1, 1));
    assert_eq!(get("init").mode, S_IFREG | 0o755);
    assert_eq!(get("init").data, b"\x7fELF-agent");
    assert_eq!(get("tmp").mode, S_IFDIR | 0o1777);

    let tmp = TempDir::new("base");
    let list = cpio(&tmp.0, &["-it"], &archive);
    assert_eq!(list.lines().collect::<Vec<_>>(), names);
}

#[test]
fn base_with_tools_links() {
    let archive = base_initramfs(b"agent", true).unwrap();
    assert_eq!(archive.len() % 4, 0);
    let (entries, used) = parse(&archive);
    assert_eq!(used, archive.len());
    let get = |n: &str| entries.iter().find(|e| e.name == n);
    assert_eq!(get("init").unwrap().data, b"agent");
    assert_eq!(get("tools").unwrap().mode, S_IFDIR | 0o755);
    let sh = get("bin/sh").expect("bin/sh link");
    assert_eq!(
        (sh.mode, sh.data.as_slice()),
        (S_IFLNK | 0o777, b"/tools/bin/busybox".as_slice())
    );
    let links: Vec<&str> = entries
        .iter()
        .filter(|e| e.mode & S_IFLNK == S_IFLNK)
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(links, BUSYBOX_LINKS.to_vec());
    // Every parent precedes its children.
    let mut seen = BTreeSet::new();
    for e in &entries {
        if let Some((parent, _)) = e.name.rsplit_once('/') {
            assert!(seen.contains(parent), "{} before its parent", e.name);
        }
        seen.insert(e.name.clone());
    }
    let tmp = TempDir::new("busybox");
    let list = cpio(&tmp.0, &["-it"], &archive);
    assert_eq!(list.lines().count(), entries.len());
}

#[test]
fn job_archive_contents_and_concatenation() {
    let argv = vec![
        "sh".to_string(),
        "-c".into(),
        "echo 'a b'".into(),
        "".into(),
    ];
    let env = vec![
        ("FOO".to_string(), "x=y".to_string()),
        ("E".into(), "".into()),
    ];
    let job = job_archive(&argv, &env).unwrap();
    assert_eq!(job.len() % 4, 0);
    let (entries, _) = parse(&job);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].name, "pinvm/argv");
    assert_eq!(entries[0].data, b"sh\0-c\0echo 'a b'\0\0");
    assert_eq!(entries[1].name, "pinvm/env");
    assert_eq!(entries[1].data, b"FOO=x=y\0E=\0");
    assert_eq!(entries[0].mode, S_IFREG | 0o644);

    let (entries, _) = parse(&job_archive(&["true".into()], &[]).unwrap());
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["pinvm/argv"]);

    // base ++ job parses as two archives back to back, with distinct inode numbers.
    let base = base_initramfs(b"agent", false).unwrap();
    let mut all = base.clone();
    all.extend_from_slice(&job);
    let (first, used) = parse(&all);
    assert_eq!(used, base.len());
    let (second, used2) = parse(&all[used..]);
    assert_eq!(used + used2, all.len());
    assert!(second.iter().all(|j| first.iter().all(|b| b.ino != j.ino)));

    let tmp = TempDir::new("job");
    assert_eq!(
        cpio(&tmp.0, &["-it"], &job).lines().collect::<Vec<_>>(),
        ["pinvm/argv", "pinvm/env"]
    );
}

#[test]
fn job_archive_rejects_bad_input() {
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(job_archive(&[], &[]).is_err());
    assert!(job_archive(&s(&[""]), &[]).is_err());
    let e = job_archive(&s(&["sh", "a\0b"]), &[]).unwrap_err();
    assert!(e.to_string().contains("NUL"), "{e}");
    let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    assert!(job_archive(&s(&["sh"]), &env("", "v")).is_err());
    assert!(job_archive(&s(&["sh"]), &env("A=B", "v")).is_err());
    assert!(job_archive(&s(&["sh"]), &env("A\0", "v")).is_err());
    assert!(job_archive(&s(&["sh"]), &env("A", "v\0")).is_err());
}

#[test]
fn cache_reuses_and_keys_on_contents() {
    let tmp = TempDir::new("cache");
    let cache = tmp.0.join("cache");
    let p1 = cached_base_initramfs(&cache, b"agent v1", false).unwrap();
    assert!(p1.starts_with(&cache));
    assert_eq!(
        std::fs::read(&p1).unwrap(),
        base_initramfs(b"agent v1", false).unwrap()
    );
    // Cached: the file is not rewritten.
    std::fs::write(&p1, b"sentinel").unwrap();
    assert_eq!(
        cached_base_initramfs(&cache, b"agent v1", false).unwrap(),
        p1
    );
    assert_eq!(std::fs::read(&p1).unwrap(), b"sentinel");
    // New agent bytes: new key.
    let p2 = cached_base_initramfs(&cache, b"agent v2", false).unwrap();
    assert_ne!(p1, p2);
    assert_eq!(
        std::fs::read(&p2).unwrap(),
        base_initramfs(b"agent v2", false).unwrap()
    );
    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names
        .iter()
        .all(|n| n.starts_with("initramfs-base-") && n.ends_with(".cpio")));

    assert_ne!(base_key(b"a", false), base_key(b"a", true));
    assert_ne!(base_key(b"ab", true), base_key(b"a", true));
}
