//! KernelCI-style JSON: the kcidb I/O schema v5.3 (`kernelci/kcidb-io`,
//! `kcidb_io/schema/v05_03.py`), the format CI systems submit to KCIDB with `kcidb-submit`.
//!
//! ```text
//! { "version": {"major": 5, "minor": 3},
//!   "checkouts": [ one per kernel version ],
//!   "builds":    [ one per kernel version (pinvm builds one guest kernel per version) ],
//!   "tests":     [ one per case: path "pinvm.<scenario>.<kernel>.<fs>", e.g.
//!                  "pinvm.S03-gup-reclaim.6_12.ext4" ] }
//! ```
//!
//! Ids are `<origin>:<suite start, UTC, µs>:…`, unique per suite run: the schema wants every id
//! to start with the submitting origin and a colon and to be unique among that origin's objects.
//! Path components keep only `[a-zA-Z0-9_-]` (the schema's path pattern; so "6.12" becomes
//! "6_12"); repeated runs share a path and differ in id and `misc.run`, which is how KCIDB
//! represents reruns. The schema forbids `null`, so absent values are left out, and `\0`,
//! which its text patterns forbid, is written as `\x00`.
//!
//! # Status mapping
//!
//! | outcome | `status` | why |
//! |---|---|---|
//! | pass | PASS | |
//! | expected failure | PASS | the test is the expectation check, and it held |
//! | unexpected pass | FAIL | the expectation check failed: the prediction is wrong or the test lost its power |
//! | failure | FAIL | wrong verdicts or a kernel crash: "reported the tested code as faulty" |
//! | untestable | MISS | "didn't run due to a failure in the test harness": build/boot/infra, exit 125 |
//!
//! An expected failure is PASS for the same reason it is `ok` in KTAP, and what kunit_tool's
//! own KernelCI JSON does with an `ok # XFAIL` line: the status answers "did this run match
//! the scenario's expectation". The kernel's misbehaviour is not hidden: `misc.outcome` is
//! `expected_failure` and `misc.found` lists the verdicts. Untestable is MISS rather than SKIP
//! (SKIP means "not applicable", which it is not) or ERROR (the test code did not fail): MISS
//! ranks above PASS in KCIDB's summary order, so a build whose cases could not all run does not
//! summarise as a clean PASS.
//!
//! A checkout/build is marked `valid: true` / `status: PASS` when at least one of its cases
//! ran (the kernel built and booted); when none did, those fields are left out, since pinvm
//! cannot tell a build failure from a boot or harness failure there.

use std::io::{self, Write};

use serde_json::{json, Map, Value};

use super::{compact_utc, rfc3339_utc, secs, truncate_chars, CaseResult, Outcome, SuiteResult};

/// kcidb I/O schema major version written.
pub const SCHEMA_MAJOR: u64 = 5;
/// kcidb I/O schema minor version written.
pub const SCHEMA_MINOR: u64 = 3;
/// kcidb's limit on `log_excerpt`, in characters.
pub const MAX_LOG_EXCERPT: usize = 16384;
/// Evidence lines kept in `misc.evidence` (`misc.evidence_lines` has the total).
pub const MAX_MISC_EVIDENCE: usize = 200;
/// Characters kept of one evidence line in `misc`.
pub const MAX_LINE: usize = 2000;

/// The kcidb test status of an outcome (see the module docs).
pub fn status(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass | Outcome::ExpectedFailure => "PASS",
        Outcome::UnexpectedPass | Outcome::Failure => "FAIL",
        Outcome::Untestable => "MISS",
    }
}

/// `origin` as the schema's origin pattern `[a-z0-9_]+` allows it ("pinvm" when nothing is
/// left).
pub fn origin_name(origin: &str) -> String {
    let o: String = origin
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if o.is_empty() {
        "pinvm".to_string()
    } else {
        o
    }
}

/// One component of a kcidb test path: `[a-zA-Z0-9_-]+`.
pub fn path_component(s: &str) -> String {
    let p: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if p.is_empty() {
        "_".to_string()
    } else {
        p
    }
}

/// `pinvm.<scenario>.<kernel>.<fs>`
pub fn test_path(c: &CaseResult) -> String {
    format!(
        "pinvm.{}.{}.{}",
        path_component(&c.scenario),
        path_component(&c.kernel),
        path_component(&c.fs)
    )
}

/// Text without NUL, which kcidb's string patterns forbid.
fn clean(s: &str) -> String {
    s.replace('\0', "\\x00")
}

/// `s` as kcidb JSON (schema v5.3), submitted as `origin`.
pub fn to_json(s: &SuiteResult, origin: &str) -> Value {
    let origin = origin_name(origin);
    let start = rfc3339_utc(s.started);
    let run_id = format!(
        "{}.{:06}Z",
        compact_utc(s.started).trim_end_matches('Z'),
        s.started
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_micros()
    );
    let prefix = format!("{origin}:{run_id}");

    // Kernel versions in order of first appearance.
    let mut kernels: Vec<&str> = Vec::new();
    for c in &s.cases {
        if !kernels.contains(&c.kernel.as_str()) {
            kernels.push(&c.kernel);
        }
    }
    let checkout_id = |k: &str| format!("{prefix}:linux-{}", clean(k));
    let build_id = |k: &str| format!("{prefix}:linux-{}:x86_64", clean(k));

    let mut checkouts = Vec::new();
    let mut builds = Vec::new();
    for k in &kernels {
        let cases: Vec<&CaseResult> = s.cases.iter().filter(|c| c.kernel == *k).collect();
        let release = cases.iter().find_map(|c| c.kernel_release.as_deref());
        let ran = cases.iter().any(|c| c.outcome != Outcome::Untestable);
        let mut kmisc = Map::new();
        kmisc.insert("kernel".into(), json!(clean(k)));
        if let Some(r) = release {
            kmisc.insert("kernel_release".into(), json!(clean(r)));
        }
        let comment = match release {
            Some(r) => format!("Linux {} ({})", clean(k), clean(r)),
            None => format!("Linux {}", clean(k)),
        };

        let mut co = Map::new();
        co.insert("id".into(), json!(checkout_id(k)));
        co.insert("origin".into(), json!(origin));
        co.insert("comment".into(), json!(comment));
        co.insert("start_time".into(), json!(start));
        if ran {
            co.insert("valid".into(), json!(true));
        }
        co.insert("misc".into(), Value::Object(kmisc.clone()));
        checkouts.push(Value::Object(co));

        let mut b = Map::new();
        b.insert("id".into(), json!(build_id(k)));
        b.insert("checkout_id".into(), json!(checkout_id(k)));
        b.insert("origin".into(), json!(origin));
        b.insert(
            "comment".into(),
            json!(format!("pinvm guest kernel, {comment}")),
        );
        b.insert("start_time".into(), json!(start));
        b.insert("architecture".into(), json!("x86_64"));
        b.insert("config_name".into(), json!("pinvm"));
        if ran {
            b.insert("status".into(), json!("PASS"));
        }
        b.insert("misc".into(), Value::Object(kmisc));
        builds.push(Value::Object(b));
    }

    let tests: Vec<Value> = s
        .cases
        .iter()
        .map(|c| {
            let id = format!(
                "{prefix}:{}:{}:{}:run{}",
                clean(&c.scenario),
                clean(&c.kernel),
                clean(&c.fs),
                c.run
            );
            let mut t = Map::new();
            t.insert("id".into(), json!(id));
            t.insert("build_id".into(), json!(build_id(&c.kernel)));
            t.insert("origin".into(), json!(origin));
            t.insert("path".into(), json!(test_path(c)));
            t.insert(
                "comment".into(),
                json!(clean(&format!(
                    "{} on {}: {} ({})",
                    c.scenario,
                    c.where_(),
                    c.description,
                    c.outcome.label()
                ))),
            );
            t.insert("status".into(), json!(status(c.outcome)));
            t.insert("start_time".into(), json!(start));
            t.insert("duration".into(), json!(secs(c.duration)));
            t.insert("log_excerpt".into(), json!(log_excerpt(c)));
            t.insert(
                "environment".into(),
                json!({
                    "comment": clean(&format!("pinvm KVM guest, {} on /dev/vda", c.fs)),
                    "misc": { "fs": clean(&c.fs) },
                }),
            );
            t.insert("misc".into(), Value::Object(test_misc(c)));
            Value::Object(t)
        })
        .collect();

    json!({
        "version": { "major": SCHEMA_MAJOR, "minor": SCHEMA_MINOR },
        "checkouts": checkouts,
        "builds": builds,
        "tests": tests,
    })
}

/// Pretty-printed [`to_json`] and a newline.
pub fn write(s: &SuiteResult, origin: &str, w: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, &to_json(s, origin))?;
    writeln!(w)
}

fn log_excerpt(c: &CaseResult) -> String {
    let mut lines = vec![c.expectation_line()];
    if !c.summary.is_empty() {
        lines.push(c.summary.clone());
    }
    lines.extend(c.evidence.iter().cloned());
    let all = clean(&lines.join("\n"));
    if all.chars().count() <= MAX_LOG_EXCERPT {
        return all;
    }
    let note = "\n... (cut; see misc.results_dir)";
    let mut cut: String = all
        .chars()
        .take(MAX_LOG_EXCERPT - note.chars().count())
        .collect();
    cut.push_str(note);
    cut
}

fn test_misc(c: &CaseResult) -> Map<String, Value> {
    let strings = |v: &[String]| Value::Array(v.iter().map(|s| json!(clean(s))).collect());
    let mut m = Map::new();
    m.insert("outcome".into(), json!(c.outcome.name()));
    m.insert("outcome_label".into(), json!(c.outcome.label()));
    m.insert(
        "matches_expectation".into(),
        json!(c.outcome.matches_expectation()),
    );
    m.insert("scenario".into(), json!(clean(&c.scenario)));
    m.insert("description".into(), json!(clean(&c.description)));
    m.insert("kernel".into(), json!(clean(&c.kernel)));
    if let Some(r) = &c.kernel_release {
        m.insert("kernel_release".into(), json!(clean(r)));
    }
    if !c.patches.is_empty() {
        m.insert("patches".into(), strings(&c.patches));
    }
    m.insert("fs".into(), json!(clean(&c.fs)));
    m.insert("machine".into(), json!(clean(&c.machine)));
    m.insert("run".into(), json!(c.run));
    m.insert("expected".into(), strings(&c.expected));
    m.insert("found".into(), strings(&c.found));
    m.insert("summary".into(), json!(clean(&c.summary)));
    let ev: Vec<String> = c
        .evidence
        .iter()
        .take(MAX_MISC_EVIDENCE)
        .map(|e| truncate_chars(e, MAX_LINE))
        .collect();
    m.insert("evidence".into(), strings(&ev));
    m.insert("evidence_lines".into(), json!(c.evidence.len()));
    if let Some(f) = &c.finding {
        m.insert("finding".into(), json!(clean(f)));
    }
    if let Some(d) = &c.results_dir {
        m.insert("results_dir".into(), json!(clean(&d.display().to_string())));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::super::testdata;
    use super::*;

    /// Checks what the v5.3 schema demands of the objects this writer emits: required fields,
    /// no unknown properties, no nulls, id/origin/path patterns, status enum, references.
    fn check_schema(v: &Value) {
        fn no_nulls(v: &Value, at: &str) {
            match v {
                Value::Null => panic!("null at {at}"),
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .for_each(|(i, x)| no_nulls(x, &format!("{at}[{i}]"))),
                Value::Object(o) => o
                    .iter()
                    .for_each(|(k, x)| no_nulls(x, &format!("{at}.{k}"))),
                Value::String(s) => assert!(!s.contains('\0'), "NUL at {at}"),
                _ => {}
            }
        }
        no_nulls(v, "");
        let top = v.as_object().unwrap();
        for k in top.keys() {
            assert!(
                ["version", "checkouts", "builds", "tests"].contains(&k.as_str()),
                "top-level {k}"
            );
        }
        assert_eq!(v["version"], json!({"major": 5, "minor": 3}));
        let origin_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        let id_ok = |id: &str, origin: &str| id.starts_with(&format!("{origin}:"));
        let keys_ok = |o: &Map<String, Value>, allowed: &[&str], required: &[&str]| {
            for k in o.keys() {
                assert!(allowed.contains(&k.as_str()), "unknown property {k}");
            }
            for r in required {
                assert!(o.contains_key(*r), "missing {r}");
            }
        };
        let mut checkout_ids = vec![];
        for c in v["checkouts"].as_array().unwrap() {
            let o = c.as_object().unwrap();
            keys_ok(
                o,
                &["id", "origin", "comment", "start_time", "valid", "misc"],
                &["id", "origin"],
            );
            let origin = o["origin"].as_str().unwrap();
            assert!(origin_ok(origin));
            assert!(id_ok(o["id"].as_str().unwrap(), origin));
            checkout_ids.push(o["id"].clone());
        }
        let mut build_ids = vec![];
        for b in v["builds"].as_array().unwrap() {
            let o = b.as_object().unwrap();
            keys_ok(
                o,
                &[
                    "id",
                    "checkout_id",
                    "origin",
                    "comment",
                    "start_time",
                    "architecture",
                    "config_name",
                    "status",
                    "misc",
                ],
                &["checkout_id", "id", "origin"],
            );
            let origin = o["origin"].as_str().unwrap();
            assert!(id_ok(o["id"].as_str().unwrap(), origin));
            assert!(checkout_ids.contains(&o["checkout_id"]));
            build_ids.push(o["id"].clone());
        }
        let mut test_ids = vec![];
        for t in v["tests"].as_array().unwrap() {
            let o = t.as_object().unwrap();
            keys_ok(
                o,
                &[
                    "id",
                    "build_id",
                    "origin",
                    "path",
                    "comment",
                    "status",
                    "start_time",
                    "duration",
                    "log_excerpt",
                    "environment",
                    "misc",
                ],
                &["build_id", "id", "origin"],
            );
            let origin = o["origin"].as_str().unwrap();
            assert!(id_ok(o["id"].as_str().unwrap(), origin));
            assert!(build_ids.contains(&o["build_id"]));
            let path = o["path"].as_str().unwrap();
            assert!(
                path.split('.').all(|p| !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')),
                "path {path}"
            );
            assert!(["FAIL", "ERROR", "MISS", "PASS", "DONE", "SKIP"]
                .contains(&o["status"].as_str().unwrap()));
            assert!(o["log_excerpt"].as_str().unwrap().chars().count() <= MAX_LOG_EXCERPT);
            assert!(o["duration"].is_number());
            keys_ok(
                o["environment"].as_object().unwrap(),
                &["comment", "misc", "compatible"],
                &[],
            );
            assert!(!test_ids.contains(&o["id"]), "duplicate id {}", o["id"]);
            test_ids.push(o["id"].clone());
        }
    }

    #[test]
    fn objects_ids_paths_and_statuses() {
        let s = testdata::suite();
        let v = to_json(&s, "pinvm");
        check_schema(&v);
        let checkouts = v["checkouts"].as_array().unwrap();
        assert_eq!(checkouts.len(), 2);
        assert_eq!(
            checkouts[0]["id"],
            "pinvm:20260101T000000.000000Z:linux-6.12"
        );
        assert_eq!(checkouts[0]["comment"], "Linux 6.12 (6.12.57)");
        assert_eq!(
            checkouts[0]["start_time"],
            "2026-01-01T00:00:00.000000+00:00"
        );
        assert_eq!(
            v["builds"][1]["id"],
            "pinvm:20260101T000000.000000Z:linux-6.1:x86_64"
        );
        let tests = v["tests"].as_array().unwrap();
        assert_eq!(tests.len(), 7);
        let t = &tests[1];
        assert_eq!(
            t["id"],
            "pinvm:20260101T000000.000000Z:S03-gup-reclaim:6.12:ext4:run1"
        );
        assert_eq!(
            t["build_id"],
            "pinvm:20260101T000000.000000Z:linux-6.12:x86_64"
        );
        assert_eq!(t["path"], "pinvm.S03-gup-reclaim.6_12.ext4");
        assert_eq!(t["status"], "PASS");
        assert_eq!(t["duration"], 12.345);
        assert_eq!(t["misc"]["outcome"], "expected_failure");
        assert_eq!(t["misc"]["outcome_label"], "xfail");
        assert_eq!(t["misc"]["matches_expectation"], true);
        assert_eq!(
            t["misc"]["expected"],
            json!(["kernel_warning", "lost_write"])
        );
        assert_eq!(t["misc"]["found"], json!(["lost_write", "kernel_warning"]));
        assert_eq!(t["misc"]["evidence_lines"], 8);
        assert_eq!(
            t["misc"]["results_dir"],
            "/tmp/results/S03-gup-reclaim/6.12-ext4-1"
        );
        assert!(t["misc"].get("finding").is_none());
        assert!(t["log_excerpt"].as_str().unwrap().starts_with(
            "expected kernel_warning, lost_write; found lost_write, kernel_warning\nlost_write: page 3"
        ));
        // Repeated run: same path, own id.
        assert_eq!(tests[3]["path"], t["path"]);
        assert_eq!(
            tests[3]["id"],
            "pinvm:20260101T000000.000000Z:S03-gup-reclaim:6.12:ext4:run2"
        );
        assert_eq!(tests[3]["misc"]["run"], 2);
        let statuses: Vec<_> = tests
            .iter()
            .map(|t| t["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            ["PASS", "PASS", "PASS", "PASS", "FAIL", "FAIL", "MISS"]
        );
        assert_eq!(tests[4]["misc"]["outcome"], "unexpected_pass");
        assert_eq!(tests[6]["misc"]["outcome"], "untestable");
        // Both kernels ran something, so both builds are known good.
        assert!(v["builds"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["status"] == "PASS"));
    }

    #[test]
    fn untestable_only_kernel_leaves_validity_unknown() {
        let mut s = testdata::empty();
        s.cases = vec![
            testdata::case("S1", "6.1", "ext4", 1, Outcome::Untestable),
            testdata::case("S1", "6.12", "ext4", 1, Outcome::Pass),
        ];
        s.cases[0].kernel_release = None;
        let v = to_json(&s, "pinvm");
        check_schema(&v);
        assert!(v["checkouts"][0].get("valid").is_none());
        assert!(v["builds"][0].get("status").is_none());
        assert_eq!(v["checkouts"][0]["comment"], "Linux 6.1");
        assert!(v["checkouts"][0]["misc"].get("kernel_release").is_none());
        assert_eq!(v["checkouts"][1]["valid"], true);
        assert_eq!(v["tests"][0]["status"], "MISS");
    }

    #[test]
    fn empty_suite() {
        let v = to_json(&testdata::empty(), "pinvm");
        check_schema(&v);
        assert_eq!(
            v,
            json!({"version": {"major": 5, "minor": 3}, "checkouts": [], "builds": [], "tests": []})
        );
    }

    #[test]
    fn origin_paths_and_text_are_sanitised() {
        assert_eq!(origin_name("PinVM-lab 2"), "pinvm_lab_2");
        assert_eq!(origin_name(""), "pinvm");
        let mut c = testdata::case("S9 weird.name", "6.12-rc1+", "ext4", 1, Outcome::Failure);
        c.summary = "nul\0here".into();
        c.finding = Some("6.12 refuses the pin; the research predicted it grants it".into());
        c.evidence = vec!["x".repeat(20_000)];
        let mut s = testdata::empty();
        s.cases = vec![c];
        let v = to_json(&s, "My Lab");
        check_schema(&v);
        let t = &v["tests"][0];
        assert_eq!(t["origin"], "my_lab");
        assert!(t["id"].as_str().unwrap().starts_with("my_lab:"));
        assert_eq!(t["path"], "pinvm.S9_weird_name.6_12-rc1_.ext4");
        assert_eq!(t["misc"]["summary"], "nul\\x00here");
        assert_eq!(
            t["misc"]["finding"],
            "6.12 refuses the pin; the research predicted it grants it"
        );
        assert_eq!(
            t["misc"]["evidence"][0].as_str().unwrap().chars().count(),
            MAX_LINE
        );
        let ex = t["log_excerpt"].as_str().unwrap();
        assert_eq!(ex.chars().count(), MAX_LOG_EXCERPT);
        assert!(ex.ends_with("(cut; see misc.results_dir)"));
    }

    #[test]
    fn write_is_pretty_json() {
        let mut out = Vec::new();
        write(&testdata::suite(), "pinvm", &mut out).unwrap();
        let back: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, to_json(&testdata::suite(), "pinvm"));
        assert!(out.ends_with(b"}\n"));
    }
}
