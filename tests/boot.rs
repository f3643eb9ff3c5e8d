//! Boot real guest kernels with the pinvm binary and check what comes back.
//! Kernels are built (and cached) on first use; `ci/test.sh` builds them before the tests.

use pinvm_tests::{kvm_or_skip, pinvm};
use std::time::Duration;

/// Generous wall-clock limit for a boot that should take ~10 s on emulating hosts; a first
/// run may also build the kernel.
const BOOT_LIMIT: Duration = Duration::from_secs(1800);

fn uname_is(version: &str) {
    if !kvm_or_skip(&format!("boot {version}: uname -r")) {
        return;
    }
    let r = pinvm(
        &["boot", "--kernel-version", version, "--", "uname", "-r"],
        BOOT_LIMIT,
    );
    assert_eq!(r.code, 0, "{r}");
    let release = r
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{version}.")))
        .unwrap_or_else(|| panic!("no {version}.x release line in the output\n{r}"));
    assert!(
        release.split('.').count() >= 3,
        "release {release:?} is not {version}.x"
    );
}

#[test]
fn boots_6_12_and_runs_uname() {
    uname_is("6.12");
}

#[test]
fn boots_6_1_and_runs_uname() {
    uname_is("6.1");
}

#[test]
fn command_status_is_the_exit_code() {
    if !kvm_or_skip("command status") {
        return;
    }
    let r = pinvm(
        &["boot", "--", "sh", "-c", "echo to-stdout; exit 3"],
        BOOT_LIMIT,
    );
    assert_eq!(r.code, 3, "{r}");
    assert!(r.stdout.contains("to-stdout"), "{r}");
    // Not found: 127 in the guest, which is outside 0..=124 and becomes 1.
    let r = pinvm(&["boot", "--", "no-such-command-xyz"], BOOT_LIMIT);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("127"), "{r}");
}

#[test]
fn hang_is_reported_within_the_timeout() {
    if !kvm_or_skip("hang") {
        return;
    }
    // Make sure the kernel is built, so the timing below is the VM's alone.
    let warm = pinvm(&["boot", "--", "true"], BOOT_LIMIT);
    assert_eq!(warm.code, 0, "{warm}");
    let r = pinvm(
        &["boot", "--timeout", "30", "--", "sleep", "1000"],
        Duration::from_secs(120),
    );
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("hang:"), "{r}");
    assert!(
        r.elapsed < Duration::from_secs(45),
        "hang took {:?} to report\n{r}",
        r.elapsed
    );
}

#[test]
fn bad_arguments_exit_125() {
    let r = pinvm(
        &["boot", "--cpus", "0", "--", "true"],
        Duration::from_secs(60),
    );
    assert_eq!(r.code, 125, "{r}");
    let r = pinvm(
        &["boot", "--kernel", "/nonexistent/vmlinux", "--", "true"],
        Duration::from_secs(60),
    );
    assert_eq!(r.code, 125, "{r}");
    assert!(r.stderr.contains("/nonexistent/vmlinux"), "{r}");
}
