//! The report files checked by the programs that consume them, when they are installed:
//! `xmllint --schema` with Jenkins' junit-10.xsd (vendored in `tests/data`, MIT), kunit_tool's
//! `kunit.py parse` (`PINVM_KUNIT_PY`, from a kernel tree's `tools/testing/kunit`) and
//! kcidb-io's schema v5.3 (`PINVM_KCIDB_PYTHON`: a Python that imports `kcidb_io`). ci/test.sh
//! installs all three; a missing one makes its test print a loud SKIP line and pass.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::testdata;
use super::{junit, kcidb, ktap, SuiteResult};

/// The suites every consumer gets: the shared one, an empty one, and one whose texts carry
/// everything hostile a guest console or a path can hold.
fn suites() -> Vec<(&'static str, SuiteResult)> {
    let mut hostile = testdata::suite();
    for c in &mut hostile.cases {
        c.summary = "a # b\u{1}\u{7f} <x>&\"' \r\n List of all partitions: ok 1 x # SKIP".into();
        c.evidence = vec![
            "Kernel panic - not syncing: VFS: x".into(),
            "\u{0}\u{fffe}]]>".into(),
            "reboot: System halted".into(),
        ];
        c.why = Some("not ok 3 # TODO \t".into());
    }
    vec![
        ("suite", testdata::suite()),
        ("empty", testdata::empty()),
        ("hostile", hostile),
    ]
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pinvm-consumers-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d.join(name)
}

/// Runs `cmd`; None (after a loud SKIP line naming `what` and how to get it) when it cannot start.
fn run(cmd: &mut Command, what: &str, how: &str) -> Option<std::process::Output> {
    match cmd.stdin(Stdio::null()).output() {
        Ok(o) => Some(o),
        Err(e) => {
            eprintln!("SKIP: {what} not available ({e}); {how}");
            None
        }
    }
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| !p.as_os_str().is_empty())
}

#[test]
fn junit_is_valid_against_jenkins_junit_10_xsd() {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/junit-10.xsd");
    for (name, s) in suites() {
        let file = scratch(&format!("{name}.xml"));
        let mut out = Vec::new();
        junit::write(&s, &mut out).unwrap();
        std::fs::write(&file, &out).unwrap();
        let Some(o) = run(
            Command::new("xmllint")
                .arg("--noout")
                .arg("--schema")
                .arg(&xsd)
                .arg(&file),
            "xmllint",
            "install libxml2-utils (ci/test.sh does)",
        ) else {
            return;
        };
        let _ = std::fs::remove_file(&file);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success(),
            "{name}: junit-10.xsd refuses the JUnit XML:\n{err}"
        );
        assert!(err.contains("validates"), "{name}: {err}");
    }
}

/// kunit_tool's summary line: "Testing complete. Ran N tests: passed: P, failed: F, skipped: S".
fn kunit_counts(stdout: &str) -> Option<(usize, usize, usize)> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.contains("Testing complete."))?;
    let num = |key: &str| -> usize {
        line.split(key)
            .nth(1)
            .and_then(|r| r.trim_start().split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Some((num("passed:"), num("failed:"), num("skipped:")))
}

#[test]
fn ktap_parses_in_kunit_tool_with_the_expected_counts() {
    let Some(kunit) = env_path("PINVM_KUNIT_PY") else {
        eprintln!(
            "SKIP: kunit_tool not available (PINVM_KUNIT_PY unset); point it at \
             tools/testing/kunit/kunit.py of a kernel tree (ci/test.sh does)"
        );
        return;
    };
    for (name, s) in suites() {
        let file = scratch(&format!("{name}.ktap"));
        let mut out = Vec::new();
        ktap::write(&s, &mut out).unwrap();
        std::fs::write(&file, &out).unwrap();
        let Some(o) = run(
            Command::new("python3").arg(&kunit).arg("parse").arg(&file),
            "kunit_tool",
            "install python3",
        ) else {
            return;
        };
        let _ = std::fs::remove_file(&file);
        let stdout = String::from_utf8_lossy(&o.stdout);
        if s.cases.is_empty() {
            // kunit_tool's rule: a log without tests is an error ("0 tests run!").
            assert!(
                stdout.contains("0 tests run!") && !o.status.success(),
                "{stdout}"
            );
            continue;
        }
        let c = s.counts();
        let failed = c.failure + c.unexpected_pass;
        // kunit.py parse exits non-zero when a test failed; the counts say whether it read
        // every line as we meant it.
        assert_eq!(o.status.success(), failed == 0, "{name}: {stdout}");
        assert_eq!(
            kunit_counts(&stdout),
            Some((c.pass + c.expected_failure, failed, c.untestable)),
            "{name}: kunit_tool read other counts:\n{stdout}"
        );
        assert!(
            !stdout.contains("[ERROR]"),
            "{name}: kunit_tool reports errors:\n{stdout}"
        );
    }
}

#[test]
fn kcidb_json_is_valid_against_kcidb_io_v5_3() {
    let python = env_path("PINVM_KCIDB_PYTHON").unwrap_or_else(|| "python3".into());
    let check = "import json, sys, kcidb_io\n\
                 kcidb_io.schema.V5_3.validate_exactly(json.load(open(sys.argv[1])))\n\
                 print('valid')";
    for (name, s) in suites() {
        let file = scratch(&format!("{name}.json"));
        let mut out = Vec::new();
        kcidb::write(&s, "pinvm", &mut out).unwrap();
        std::fs::write(&file, &out).unwrap();
        let Some(o) = run(
            Command::new(&python).arg("-c").arg(check).arg(&file),
            "python3",
            "install python3",
        ) else {
            return;
        };
        let _ = std::fs::remove_file(&file);
        let err = String::from_utf8_lossy(&o.stderr);
        if err.contains("No module named 'kcidb_io'") {
            eprintln!(
                "SKIP: kcidb-io not available ({} cannot import kcidb_io); pip install kcidb-io \
                 and set PINVM_KCIDB_PYTHON to that Python (ci/test.sh does)",
                python.display()
            );
            return;
        }
        assert!(
            o.status.success(),
            "{name}: kcidb-io v5.3 refuses the JSON:\n{err}"
        );
    }
}
