//! Boot real guest kernels with the pinvm binary and check what comes back, on both machines:
//! our VMM (`--machine kvm`, the KVM smoke set) and QEMU (`--machine qemu`).
//! Kernels are built (and cached) on first use; `ci/test.sh` builds them before the tests.

use pinvm_tests::{kvm_or_skip, pinvm, qemu_or_skip};
use std::time::Duration;

/// A machine under test and the check that it is there.
#[derive(Clone, Copy)]
struct On(&'static str);

impl On {
    fn available(self, test: &str) -> bool {
        match self.0 {
            "kvm" => kvm_or_skip(test),
            _ => qemu_or_skip(test),
        }
    }

    /// `pinvm boot --machine <m> ARGS...`
    fn boot(self, args: &[&str]) -> Vec<String> {
        ["boot", "--machine", self.0]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect()
    }
}

const KVM: On = On("kvm");
const QEMU: On = On("qemu");

fn run(args: Vec<String>, limit: Duration) -> pinvm_tests::Run {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    pinvm(&args, limit)
}

/// Generous wall-clock limit for a boot that should take ~10 s on emulating hosts; a first
/// run may also build the kernel.
const BOOT_LIMIT: Duration = Duration::from_secs(1800);

fn uname_is(on: On, version: &str) {
    if !on.available(&format!("boot {version} on {}: uname -r", on.0)) {
        return;
    }
    let r = run(
        on.boot(&["--kernel-version", version, "--", "uname", "-r"]),
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
fn kvm_boots_6_12_and_runs_uname() {
    uname_is(KVM, "6.12");
}

#[test]
fn kvm_boots_6_1_and_runs_uname() {
    uname_is(KVM, "6.1");
}

#[test]
fn qemu_boots_6_12_and_runs_uname() {
    uname_is(QEMU, "6.12");
}

#[test]
fn qemu_boots_6_1_and_runs_uname() {
    uname_is(QEMU, "6.1");
}

fn command_status_is_the_exit_code(on: On) {
    if !on.available(&format!("command status on {}", on.0)) {
        return;
    }
    let r = run(
        on.boot(&["--", "sh", "-c", "echo to-stdout; exit 3"]),
        BOOT_LIMIT,
    );
    assert_eq!(r.code, 3, "{r}");
    assert!(r.stdout.contains("to-stdout"), "{r}");
    // Not found: 127 in the guest, which is outside 0..=124 and becomes 1.
    let r = run(on.boot(&["--", "no-such-command-xyz"]), BOOT_LIMIT);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("127"), "{r}");
}

#[test]
fn kvm_command_status_is_the_exit_code() {
    command_status_is_the_exit_code(KVM);
}

#[test]
fn qemu_command_status_is_the_exit_code() {
    command_status_is_the_exit_code(QEMU);
}

/// A guest that never finishes ends in a `hang` verdict soon after the timeout, with where
/// its vCPUs were (our VMM stops the vCPU threads; QEMU is asked over QMP).
fn hang_is_reported_within_the_timeout(on: On) {
    if !on.available(&format!("hang on {}", on.0)) {
        return;
    }
    // Make sure the kernel is built, so the timing below is the VM's alone.
    let warm = run(on.boot(&["--", "true"]), BOOT_LIMIT);
    assert_eq!(warm.code, 0, "{warm}");
    let r = run(
        on.boot(&["--timeout", "30", "--", "sleep", "1000"]),
        Duration::from_secs(120),
    );
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("hang:"), "{r}");
    assert!(r.stderr.contains("vCPU0 at "), "where the vCPUs were: {r}");
    assert!(
        r.elapsed < Duration::from_secs(45),
        "hang took {:?} to report\n{r}",
        r.elapsed
    );
}

#[test]
fn kvm_hang_is_reported_within_the_timeout() {
    hang_is_reported_within_the_timeout(KVM);
}

#[test]
fn qemu_hang_is_reported_within_the_timeout() {
    hang_is_reported_within_the_timeout(QEMU);
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
