//! `pinvm selftest` on QEMU: the kernel's own mm:gup_longterm, built from the 6.12 tree pinvm
//! boots, runs in the guest with its working directory on the chosen filesystem, and pinvm's
//! KTAP and exit code agree with what the test reported.

use pinvm_tests::{pinvm, qemu_or_skip};
use std::time::Duration;

/// A first run builds the test (seconds) and may build the kernel.
const LIMIT: Duration = Duration::from_secs(1800);

/// `(pass, fail, skip)` from kselftest's `# Totals:` line.
fn totals(ktap: &str) -> (u32, u32, u32) {
    let line = ktap
        .lines()
        .find_map(|l| l.trim().strip_prefix("# Totals: "))
        .unwrap_or_else(|| panic!("no Totals line in\n{ktap}"));
    let get = |k: &str| -> u32 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {line}"))
    };
    (get("pass:"), get("fail:"), get("skip:"))
}

fn gup_longterm_on(fs: &str) {
    if !qemu_or_skip(&format!("pinvm selftest mm:gup_longterm on QEMU, {fs}")) {
        return;
    }
    let r = pinvm(
        &[
            "selftest",
            "--machine",
            "qemu",
            "mm:gup_longterm",
            "--fs",
            fs,
        ],
        LIMIT,
    );
    let k = &r.stdout;
    assert!(k.starts_with("KTAP version 1\n"), "{r}");
    assert!(k.contains(&format!("working directory on {fs}")), "{r}");
    assert!(
        k.contains("\n1..1\n    # Subtest: mm:gup_longterm\n"),
        "{r}"
    );
    // The nested plan and the nested result lines agree: the test ran to its end.
    let plan: usize = k
        .lines()
        .find_map(|l| l.strip_prefix("    1.."))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no nested plan\n{r}"));
    let cases = k
        .lines()
        .filter(|l| l.starts_with("    ok ") || l.starts_with("    not ok "))
        .count();
    assert_eq!(cases, plan, "{r}");
    // Its files in the working directory could be made ("local tmpfile" cases).
    assert!(!k.contains("mkstemp() failed"), "{r}");
    let (pass, fail, skip) = totals(k);
    assert_eq!((pass + fail + skip) as usize, plan, "{r}");
    // pinvm's guest config has CONFIG_GUP_TEST, so every case runs, and on 6.12 every one
    // agrees with the kernel's expectation (measured: 24 of 24 on ext4, xfs, btrfs and
    // tmpfs): R/W long-term pins of MAP_SHARED disk-filesystem files refused, the rest
    // granted, as S5 measures with pinvm's own driver.
    assert_eq!((fail, skip), (0, 0), "{r}");
    assert!(pass > 0, "{r}");
    assert_eq!(r.code, 0, "{r}");
    assert!(k.lines().any(|l| l == "ok 1 mm:gup_longterm"), "{r}");
}

#[test]
fn gup_longterm_on_ext4() {
    gup_longterm_on("ext4");
}

#[test]
fn gup_longterm_on_tmpfs() {
    gup_longterm_on("tmpfs");
}

#[test]
fn an_unknown_test_fails_before_booting() {
    let r = pinvm(&["selftest", "--machine", "qemu", "mm:no_such_test"], LIMIT);
    assert_eq!(r.code, 125, "{r}");
    assert!(
        r.stderr
            .contains("no_such_test.c is not in the kernel tree"),
        "{r}"
    );
    let r = pinvm(&["selftest", "net:foo"], Duration::from_secs(600));
    assert_eq!(r.code, 125, "{r}");
}

/// gup_longterm came with Linux 6.5: on 6.1 pinvm says so and exits 125 without booting.
#[test]
fn gup_longterm_is_not_in_6_1() {
    if !qemu_or_skip("pinvm selftest mm:gup_longterm on 6.1") {
        return;
    }
    let r = pinvm(
        &[
            "selftest",
            "--machine",
            "qemu",
            "--kernel-version",
            "6.1",
            "mm:gup_longterm",
        ],
        LIMIT,
    );
    assert_eq!(r.code, 125, "{r}");
    assert!(
        r.stderr
            .contains("selftests/vm/gup_longterm.c is not in the kernel tree"),
        "{r}"
    );
}
