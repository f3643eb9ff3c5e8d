use super::*;

fn parse(kind: PathKind, arg: &str) -> Result<HostPath> {
    HostPath::parse(kind, arg)
}

fn err(kind: PathKind, arg: &str) -> String {
    format!("{:#}", parse(kind, arg).unwrap_err())
}

#[test]
fn defaults_and_explicit_guest_paths() {
    let tmp = std::env::temp_dir();
    let t = tmp.to_str().unwrap();
    let p = parse(PathKind::Put, t).unwrap();
    assert_eq!(p.host, tmp);
    let base = std::fs::canonicalize(&tmp).unwrap();
    assert_eq!(
        p.guest,
        format!("/put/{}", base.file_name().unwrap().to_str().unwrap())
    );
    let p = parse(PathKind::Put, &format!("{t}:/opt/x/")).unwrap();
    assert_eq!(
        (p.host.as_path(), p.guest.as_str()),
        (tmp.as_path(), "/opt/x")
    );
    let s = parse(PathKind::Share, t).unwrap();
    assert_eq!(s.guest, "/share");
    let s = parse(PathKind::Share, &format!("{t}:/data")).unwrap();
    assert_eq!(s.guest, "/data");
    // "." resolves to the current directory's name.
    let dot = parse(PathKind::Put, ".").unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(
        dot.guest,
        format!("/put/{}", cwd.file_name().unwrap().to_str().unwrap())
    );
}

#[test]
fn a_colon_without_a_slash_after_it_is_part_of_the_host_path() {
    let e = err(PathKind::Put, "/nonexistent/a:b");
    assert!(
        e.contains("/nonexistent/a:b") && e.contains("No such file"),
        "{e}"
    );
}

#[test]
fn missing_host_paths_and_non_directories_are_errors() {
    let e = err(PathKind::Put, "/nonexistent-pinvm-test:/x");
    assert!(e.contains("--put") && e.contains("No such file"), "{e}");
    let e = err(PathKind::Share, "/etc/hostname");
    assert!(e.contains("not a directory"), "{e}");
}

#[test]
fn bad_guest_paths_are_refused() {
    for (guest, what) in [
        ("relative", "must be absolute"),
        ("/a/../b", "'..'"),
        ("/a/./b", "'.'"),
        ("/a//b", "empty component"),
        ("/", "root directory"),
        ("/init", "pinvm or the kernel owns"),
        ("/pinvm/argv", "pinvm or the kernel owns"),
        ("/tools/bin/x", "pinvm or the kernel owns"),
        ("/dev/x", "pinvm or the kernel owns"),
        ("/proc", "pinvm or the kernel owns"),
        ("/bin/sh", "would replace"),
        ("/tmp", "would replace"),
        ("/a b", "whitespace"),
    ] {
        let arg = format!("/etc:{guest}");
        let e = if guest.starts_with('/') {
            err(PathKind::Put, &arg)
        } else {
            // Without a leading slash the whole argument is the host path.
            assert!(parse(PathKind::Put, &arg).is_err());
            continue;
        };
        assert!(e.contains(what), "{guest}: {e}");
    }
    // Below a base directory is fine; a name that merely starts like a reserved one too.
    assert_eq!(
        parse(PathKind::Put, "/etc:/tmp/etc").unwrap().guest,
        "/tmp/etc"
    );
    assert_eq!(
        parse(PathKind::Put, "/etc:/initrd").unwrap().guest,
        "/initrd"
    );
}

#[test]
fn overlaps_are_refused() {
    let hp = |g: &str| HostPath {
        host: "/etc".into(),
        guest: g.into(),
    };
    assert!(check_together(&[hp("/put/a")], &[hp("/share")], true).is_ok());
    let e = check_together(&[hp("/share/a")], &[hp("/share")], false).unwrap_err();
    assert!(e.to_string().contains("overlap"), "{e}");
    let e = check_together(&[], &[hp("/s"), hp("/s/t")], false).unwrap_err();
    assert!(e.to_string().contains("overlap"), "{e}");
    let e = check_together(&[hp("/mnt/x")], &[], true).unwrap_err();
    assert!(e.to_string().contains("--disk"), "{e}");
    assert!(check_together(&[hp("/mnt/x")], &[], false).is_ok());
    assert!(is_within("/a/b", "/a") && is_within("/a", "/a") && !is_within("/ab", "/a"));
}
