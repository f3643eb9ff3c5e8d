use super::*;
use crate::hostfs::spec::PathKind;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

fn temp(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let p = std::env::temp_dir().join(format!(
        "pinvm-put-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Extracts `archive` with GNU cpio into `dir`; returns the listing.
fn extract(dir: &Path, archive: &[u8]) -> String {
    let mut child = Command::new("cpio")
        .args(["-idv", "--no-absolute-filenames", "--quiet"])
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
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn files_directories_and_links_keep_their_modes() {
    let src = temp("src");
    std::fs::write(src.join("repro"), b"\x7fELF-not-really").unwrap();
    std::fs::set_permissions(src.join("repro"), std::fs::Permissions::from_mode(0o751)).unwrap();
    std::fs::create_dir(src.join("tree")).unwrap();
    std::fs::set_permissions(src.join("tree"), std::fs::Permissions::from_mode(0o710)).unwrap();
    std::fs::write(src.join("tree/a"), b"a").unwrap();
    std::fs::set_permissions(src.join("tree/a"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("a", src.join("tree/link")).unwrap();
    let puts = [
        HostPath::parse(PathKind::Put, src.join("repro").to_str().unwrap()).unwrap(),
        HostPath::parse(
            PathKind::Put,
            &format!("{}:/opt/t", src.join("tree").display()),
        )
        .unwrap(),
        HostPath::parse(
            PathKind::Put,
            &format!("{}:/tmp/r", src.join("repro").display()),
        )
        .unwrap(),
    ];
    let archive = put_archive(&puts).unwrap();
    assert_eq!(archive.len() % 4, 0);
    let out = temp("out");
    let listing = extract(&out, &archive);
    let names: Vec<&str> = listing.lines().collect();
    // Parents first, base directories (/tmp) not repeated.
    assert_eq!(
        names,
        [
            "put",
            "put/repro",
            "opt",
            "opt/t",
            "opt/t/a",
            "opt/t/link",
            "tmp/r"
        ]
    );
    assert_eq!(
        std::fs::read(out.join("put/repro")).unwrap(),
        b"\x7fELF-not-really"
    );
    assert_eq!(mode(&out.join("put/repro")), 0o751);
    assert_eq!(mode(&out.join("opt/t")), 0o710);
    assert_eq!(mode(&out.join("opt/t/a")), 0o600);
    assert_eq!(mode(&out.join("opt")), 0o755);
    assert_eq!(
        std::fs::read_link(out.join("opt/t/link")).unwrap(),
        Path::new("a")
    );
    assert!(put_archive(&[]).unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&src);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn two_puts_at_one_path_and_the_size_limit_are_errors() {
    let src = temp("dup");
    std::fs::write(src.join("f"), b"x").unwrap();
    let p = HostPath::parse(PathKind::Put, &format!("{}:/x", src.join("f").display())).unwrap();
    let e = put_archive(&[p.clone(), p]).unwrap_err();
    assert!(e.to_string().contains("two puts write /x"), "{e}");
    let big = src.join("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(MAX_PUT_BYTES + 1)
        .unwrap();
    let p = HostPath::parse(PathKind::Put, big.to_str().unwrap()).unwrap();
    let e = put_archive(&[p]).unwrap_err();
    assert!(e.to_string().contains("--share"), "{e}");
    let _ = std::fs::remove_dir_all(&src);
}
