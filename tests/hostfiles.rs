//! Host files in the guest (`--put`, `--share`) on QEMU: a static binary built on the host
//! runs in the guest with its arguments and exit code, a shared directory is mounted
//! read-only, and a missing host path fails before anything boots.

use pinvm_tests::{pinvm, qemu_or_skip};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A boot on QEMU takes ~3 s here; a first run may also build the kernel.
const LIMIT: Duration = Duration::from_secs(1800);

/// A fresh temporary directory for this test.
fn temp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("pinvm-hostfiles-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Compiles `src` with `gcc -static` into `out`.
fn static_binary(src: &str, out: &Path) {
    let c = out.with_extension("c");
    std::fs::write(&c, src).unwrap();
    let st = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(out)
        .arg(&c)
        .status()
        .expect("running gcc (Debian package build-essential)");
    assert!(st.success(), "gcc -static failed");
}

const REPRO: &str = r#"
#include <stdio.h>
int main(int argc, char **argv) {
    printf("repro ran with %d args: %s %s\n", argc - 1, argv[1], argv[2]);
    return 42;
}
"#;

#[test]
fn put_runs_a_static_binary_built_on_the_host() {
    if !qemu_or_skip("--put a static binary on QEMU") {
        return;
    }
    let dir = temp("put");
    let repro = dir.join("repro");
    static_binary(REPRO, &repro);
    let r = pinvm(
        &[
            "boot",
            "--machine",
            "qemu",
            "--put",
            repro.to_str().unwrap(),
            "--",
            "/put/repro",
            "one",
            "two",
        ],
        LIMIT,
    );
    assert_eq!(r.code, 42, "{r}");
    assert!(r.stdout.contains("repro ran with 2 args: one two"), "{r}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn share_is_mounted_read_only_with_its_files() {
    if !qemu_or_skip("--share on QEMU") {
        return;
    }
    let dir = temp("share");
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    static_binary(REPRO, &tree.join("sub/repro"));
    std::fs::write(tree.join("data.txt"), "shared bytes\n").unwrap();
    let share = format!("{}:/data", tree.display());
    let script = "cat /data/data.txt; /data/sub/repro a b; echo status=$?; \
                  touch /data/new 2>/dev/null || echo read-only";
    let r = pinvm(
        &[
            "boot",
            "--machine",
            "qemu",
            "--share",
            &share,
            "--",
            "sh",
            "-c",
            script,
        ],
        LIMIT,
    );
    assert_eq!(r.code, 0, "{r}");
    for want in [
        "shared bytes",
        "repro ran with 2 args: a b",
        "status=42",
        "read-only",
    ] {
        assert!(r.stdout.contains(want), "no {want:?} in the output\n{r}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_host_path_fails_before_booting() {
    let r = pinvm(
        &["boot", "--put", "/nonexistent/pinvm-repro", "--", "true"],
        Duration::from_secs(600),
    );
    assert_eq!(r.code, 125, "{r}");
    assert!(
        r.stderr.contains("--put") && r.stderr.contains("No such file"),
        "{r}"
    );
    let r = pinvm(
        &["boot", "--put", "/etc/hostname:/pinvm/argv", "--", "true"],
        Duration::from_secs(600),
    );
    assert_eq!(r.code, 125, "{r}");
    assert!(r.stderr.contains("/pinvm"), "{r}");
}
