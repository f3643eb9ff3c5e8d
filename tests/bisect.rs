//! `pinvm bisect` on the synthetic history of `ci/bisect-history.py` (a Debian 6.12 base and
//! 16 commits, one of them a planted pin-handling bug tagged `planted-bug`), with the flaky
//! reproducer `ci/bisect/S3-flaky.toml`: the culprit must be named and verified four ways,
//! the user's repository left as it was, and a second run must resume from the saved runs.
//!
//! The history is made once per cache (`$PINVM_CACHE/bisect-history/<generator hash>`, about
//! 4 minutes); its first build in a new build slot is a full kernel build (minutes; ccache
//! hits from the Debian slot shorten it), later ones are incremental.

use pinvm_tests::{pinvm_bin, qemu_or_skip, workspace_root};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The synthetic history, made if the cache does not have it yet.
fn history() -> PathBuf {
    let root = workspace_root();
    let script = root.join("ci/bisect-history.py");
    let text = std::fs::read(&script).expect("reading ci/bisect-history.py");
    let hash = guest_images::cache::sha256_hex(&text);
    let cache = guest_images::cache::cache_dir().expect("cache dir");
    let dir = cache.join("bisect-history").join(&hash[..16]);
    if dir.join(".git").is_dir()
        && Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(["rev-parse", "-q", "--verify", "planted-bug"])
            .status()
            .is_ok_and(|s| s.success())
    {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let t0 = Instant::now();
    let st = Command::new("python3")
        .arg(&script)
        .arg(&dir)
        .status()
        .expect("running ci/bisect-history.py");
    assert!(st.success(), "ci/bisect-history.py failed");
    eprintln!(
        "synthetic history made in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    dir
}

fn bisect(tree: &Path, out: &Path) -> (i32, String) {
    let log = out.with_extension("log");
    let scenario = workspace_root().join("ci/bisect/S3-flaky.toml");
    let st = Command::new(pinvm_bin())
        .args(["bisect", "--tree"])
        .arg(tree)
        .args(["--good", "HEAD~16", "--bad", "HEAD", "--runs", "3", "--out"])
        .arg(out)
        .arg(&scenario)
        .args(["--fs", "ext4"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(std::fs::File::create(log.with_extension("err")).expect("log"))
        .status()
        .expect("running pinvm bisect");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    (st.code().expect("pinvm exits"), text)
}

#[test]
fn bisect_names_and_verifies_the_planted_bug_with_a_flaky_reproducer() {
    if !qemu_or_skip("bisect_names_and_verifies_the_planted_bug") {
        return;
    }
    if !Path::new(TARBALL).is_file() {
        eprintln!("\n*** SKIP bisect: {TARBALL} missing (apt-get install linux-source-6.12) ***\n");
        return;
    }
    let tree = history();
    let before = (
        git(&tree, &["rev-parse", "HEAD"]),
        git(&tree, &["status", "--porcelain"]),
    );
    let planted = git(&tree, &["rev-parse", "planted-bug"]);
    let scratch = std::env::temp_dir().join(format!("pinvm-bisect-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let out = scratch.join("results");

    let t0 = Instant::now();
    let (code, report) = bisect(&tree, &out);
    let first = t0.elapsed();
    assert_eq!(code, 0, "found and verified; report:\n{report}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("bisect.json")).unwrap()).unwrap();
    let c = &json["conclusion"];
    assert_eq!(c["result"], "culprit", "{c}");
    assert_eq!(c["commit"], planted.as_str(), "{report}");
    for check in [
        "culprit_reproduces",
        "parent_clean",
        "revert_clean",
        "vmlinux_differs",
    ] {
        assert_eq!(c["verification"][check], true, "{check}: {report}");
    }
    assert!(report.contains("verified"), "{report}");
    assert!(out.join("bisect.log").is_file());
    assert_eq!(
        (
            git(&tree, &["rev-parse", "HEAD"]),
            git(&tree, &["status", "--porcelain"])
        ),
        before,
        "the user's repository is untouched"
    );

    // Resuming: every revision's runs are saved, so nothing runs again.
    let t1 = Instant::now();
    let (code, again) = bisect(&tree, &out);
    assert_eq!(code, 0, "{again}");
    assert!(again.contains(&planted), "{again}");
    eprintln!(
        "bisect: {:.0} s, resumed in {:.1} s\n{report}",
        first.as_secs_f64(),
        t1.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&scratch);
}
