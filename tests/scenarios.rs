//! The scenario suite on real kernels: a subset of scenarios/ that fits CI time, on both
//! kernels: ten scenarios on ext4, and on btrfs the three whose outcome differs between 6.1 and
//! 6.12 there. Every outcome must match its scenario's expectation (`pinvm suite` exits 0),
//! and the reports it writes must be well-formed.

use pinvm_tests::{kvm_or_skip, pinvm, vm_or_skip, workspace_root};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(3600);

/// The ext4 subset: the baseline, a pin spanning writeback, the FOLL_GET reclaim loss and its
/// FOLL_PIN control, the read-only pin loss, the long-term pin rules, torn writes, O_DIRECT
/// from a changing buffer, the expected-loss control and the unlocked dirtying warning.
/// (S4-hole, S8 and S9 run in the full suite.)
const EXT4_SUBSET: [&str; 10] = [
    "S01", "S02", "S03", "S03b", "S04", "S05", "S06", "S07", "S10", "S11",
];

/// On btrfs, where 6.1 and 6.12 differ: 6.12 refuses out-of-band dirtying with EUCLEAN (S2,
/// S4), 6.1 stores checksums that do not match an O_DIRECT write from a changing buffer (S7).
const BTRFS_SUBSET: [&str; 3] = ["S02", "S04", "S07"];

#[test]
fn ext4_subset_matches_every_expectation_on_both_kernels() {
    if vm_or_skip("scenario suite (CI subset, ext4)") {
        suite_matches_expectations(&EXT4_SUBSET, "ext4");
    }
}

#[test]
fn btrfs_subset_matches_every_expectation_on_both_kernels() {
    if vm_or_skip("scenario suite (CI subset, btrfs)") {
        suite_matches_expectations(&BTRFS_SUBSET, "btrfs");
    }
}

/// The 2019 debate on 6.12 ext4: the stock kernel and both variants of the page_try_gup_pin
/// port (patches the scenarios name, built incrementally on first use) match their
/// expectations: stock clean, A acked_not_persisted + hang, B hang.
#[test]
fn s12_seed_experiment_matches_on_6_12_ext4() {
    if !vm_or_skip("S12 seed experiment (6.12 ext4)") {
        return;
    }
    let out = std::env::temp_dir().join(format!("pinvm-s12-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let r = pinvm(
        &[
            "suite",
            "S12",
            "S12A",
            "S12B",
            "--kernel-version",
            "6.12",
            "--fs",
            "ext4",
            "--out",
            out.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(r.code, 0, "every S12 cell matches its expectation\n{r}");
    let _ = std::fs::remove_dir_all(&out);
}

/// Run `pinvm suite` over `ids` on both kernels and `fs`; check its exit code, KTAP, kcidb
/// JSON, JUnit and every case's results folder.
fn suite_matches_expectations(ids: &[&str], fs: &str) {
    let dir = std::env::temp_dir().join(format!("pinvm-suite-{fs}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (out, json, junit, ktap_file) = (
        dir.join("out"),
        dir.join("kcidb.json"),
        dir.join("junit.xml"),
        dir.join("out/suite.ktap"),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let scen = workspace_root().join("scenarios");
    let paths: Vec<String> = ids
        .iter()
        .map(|id| {
            let f = std::fs::read_dir(&scen)
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&format!("{id}-")))
                })
                .unwrap_or_else(|| panic!("no scenario {id}"));
            f.to_string_lossy().into_owned()
        })
        .collect();
    let mut args = vec![
        "suite",
        "--kernel-version",
        "6.1,6.12",
        "--fs",
        fs,
        "--ktap",
    ];
    let (o, j, u) = (
        out.to_string_lossy().into_owned(),
        json.to_string_lossy().into_owned(),
        junit.to_string_lossy().into_owned(),
    );
    args.extend(["--out", &o, "--json", &j, "--junit", &u]);
    args.extend(paths.iter().map(String::as_str));
    let r = pinvm(&args, LIMIT);
    assert_eq!(r.code, 0, "{r}");
    // KTAP: a plan over the scenarios, every scenario `ok`.
    let ktap = &r.stdout;
    assert!(ktap.starts_with("KTAP version 1\n"), "{ktap}");
    assert!(ktap.contains(&format!("\n1..{}\n", ids.len())), "{ktap}");
    let top: Vec<&str> = ktap
        .lines()
        .filter(|l| l.starts_with("ok ") || l.starts_with("not ok "))
        .collect();
    assert_eq!(top.len(), ids.len(), "{ktap}");
    assert!(top.iter().all(|l| l.starts_with("ok ")), "{ktap}");
    assert_eq!(std::fs::read_to_string(&ktap_file).unwrap(), *ktap);
    // The expected failures are reported as such, with their evidence.
    assert!(ktap.contains("# XFAIL"), "{ktap}");
    let kcidb: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let tests = kcidb["tests"].as_array().unwrap();
    // Each scenario on both kernels, on `fs`.
    assert_eq!(tests.len(), ids.len() * 2, "{kcidb:#}");
    assert!(
        tests
            .iter()
            .all(|t| t["path"].as_str().unwrap().ends_with(fs)),
        "{kcidb:#}"
    );
    assert!(tests.iter().all(|t| t["status"] == "PASS"), "{kcidb:#}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(!xml.contains("<failure"), "{xml}");
    // Every case left its records.
    for t in tests {
        let dir = t["misc"]["results_dir"].as_str().unwrap();
        for f in [
            "console.log",
            "journal",
            "dma.log",
            "steps",
            "verdicts.json",
        ] {
            assert!(
                std::path::Path::new(dir).join(f).is_file(),
                "{dir}/{f} missing"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `pinvm run` follows the `git bisect run` contract: 1 when it finds corruption (S3 on ext4:
/// the FOLL_GET page's data is lost), 0 for the clean control.
#[test]
fn run_exit_codes_follow_git_bisect() {
    if !vm_or_skip("pinvm run exit codes") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pinvm-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let lost = dir.join("s3");
    let r = pinvm(
        &[
            "run",
            "S03",
            "--fs",
            "ext4",
            "--out",
            lost.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains("verdict: lost_write"), "{r}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lost.join("verdicts.json")).unwrap())
            .unwrap();
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["outcome"], "expected_failure");
    let clean = dir.join("s3b");
    let r = pinvm(
        &[
            "run",
            "S03b",
            "--fs",
            "ext4",
            "--out",
            clean.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(r.code, 0, "{r}");
    // Bad input: a clear error, exit 125, and the existing results are not touched.
    let r = pinvm(&["run", "S03b", "--out", clean.to_str().unwrap()], LIMIT);
    assert_eq!(r.code, 125, "{r}");
    assert!(r.stderr.contains("not overwriting"), "{r}");
    assert!(clean.join("verdicts.json").is_file());
    let r = pinvm(&["run", "no-such-scenario"], LIMIT);
    assert_eq!(r.code, 125, "{r}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The KVM smoke set: our own VMM runs the baseline and the flagship loss (S1, S3 on 6.12
/// ext4) whatever machine the other tests ran on, and records that it did.
#[test]
fn kvm_smoke_s01_and_s03_on_our_vmm() {
    if !kvm_or_skip("KVM smoke set (S01, S03 on our VMM)") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pinvm-kvm-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let json = dir.join("kcidb.json");
    std::fs::create_dir_all(&dir).unwrap();
    let r = pinvm(
        &[
            "suite",
            "S01",
            "S03",
            "--machine",
            "kvm",
            "--kernel-version",
            "6.12",
            "--fs",
            "ext4",
            "--out",
            dir.join("out").to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(r.code, 0, "{r}");
    let kcidb: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let tests = kcidb["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 2, "{kcidb:#}");
    assert!(
        tests.iter().all(|t| t["misc"]["machine"] == "kvm"),
        "{kcidb:#}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
