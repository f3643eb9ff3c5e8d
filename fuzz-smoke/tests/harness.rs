//! Fuzz targets of the host file readers of `harness`: a results folder (`verdicts.json`,
//! `steps`, `console.log`, the journal, the DMA log) read back for the timeline report, and
//! scenario files. Every number in them is hostile: huge, negative, fractional, the wrong
//! type. Invariants: no panic; the page's size is bounded whatever the folder holds.

mod common;

use common::{dma_record, journal_record, scratch_file};
use fuzz_smoke::{bytes, fuzz, mutated};
use harness::report::timeline::{html, load, model};
use proptest::prelude::*;
use proto::dma_log::DmaLogWriter;
use proto::journal::{JournalOptions, JournalWriter};
use serde_json::{json, Value};

/// A JSON number or something that should have been one.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0u64..100_000).prop_map(Value::from),
        1 => Just(json!(u64::MAX)),
        1 => Just(json!(i64::MIN)),
        1 => Just(json!(-1)),
        1 => Just(json!(1e300)),
        1 => Just(json!(0.5)),
        1 => Just(json!("7")),
        1 => Just(Value::Null),
        1 => Just(json!([1, 2])),
    ]
}

fn text() -> impl Strategy<Value = Value> {
    prop_oneof![".{0,24}".prop_map(Value::from), number()]
}

fn evidence() -> impl Strategy<Value = Value> {
    (
        (text(), number(), number(), number()),
        (number(), number(), number()),
        proptest::collection::vec(number(), 0..4),
    )
        .prop_map(|((t, off, page, region), (sector, sectors, seq), times)| {
            json!({"text": t, "file_offset": off, "page": page, "region": region,
                   "sector": sector, "sectors": sectors, "journal_seq": seq,
                   "times_ns": times, "generations": [1]})
        })
}

fn verdicts_json() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        Just(json!("torn_block")),
        Just(json!("lost_write")),
        Just(json!("kernel_warning")),
        text()
    ];
    let verdict = (kind, number(), proptest::collection::vec(evidence(), 0..4))
        .prop_map(|(k, c, e)| json!({"kind": k, "count": c, "summary": "s", "evidence": e}));
    let step = (
        text(),
        number(),
        text(),
        number(),
        (number(), number(), number()),
    )
        .prop_map(|(kind, index, op, t, (l, p, n))| {
            json!({"kind": kind, "index": index, "op": op, "detail": "pinned=2", "errno": 5,
                   "message": "m", "time_ns": t, "logical": l, "physical": p, "length": n,
                   "flags": 1})
        });
    (
        proptest::collection::vec(verdict, 0..4),
        proptest::collection::vec(step, 0..6),
        (
            number(),
            number(),
            proptest::collection::vec(number(), 0..6),
        ),
        text(),
    )
        .prop_map(|(verdicts, steps, (first, agent, lines), scenario)| {
            json!({"scenario": scenario, "id": "S99", "title": "t", "kernel": "6.12", "fs": "ext4",
                   "outcome": "fail", "found": ["torn_block"], "run": 1, "seed": 7,
                   "expected": {"verdicts": ["torn_block"]}, "notes": ["n"],
                   "verdicts": verdicts,
                   "vm": {"clock": {"first_instruction_ns": first, "agent_start_ns": agent},
                          "console_line_ns": lines, "steps": steps}})
        })
}

/// A results folder's files.
#[derive(Debug, Clone)]
struct Folder {
    verdicts: Vec<u8>,
    steps: Vec<u8>,
    console: Vec<u8>,
    journal: Vec<u8>,
    dma: Vec<u8>,
}

fn journal_file() -> impl Strategy<Value = Vec<u8>> {
    mutated(
        proptest::collection::vec(journal_record(), 0..6).prop_map(|records| {
            let path = scratch_file("journal-valid");
            let options = JournalOptions {
                record_data: true,
                record_reads: false,
            };
            let mut w = JournalWriter::create(&path, options).expect("scratch journal");
            for r in &records {
                w.write(r).expect("scratch journal");
            }
            drop(w);
            std::fs::read(&path).expect("scratch journal")
        }),
    )
}

fn dma_file() -> impl Strategy<Value = Vec<u8>> {
    mutated(
        proptest::collection::vec(dma_record(), 0..8).prop_map(|records| {
            let path = scratch_file("dma-valid");
            let mut w = DmaLogWriter::create(&path).expect("scratch DMA log");
            for r in &records {
                w.write(r).expect("scratch DMA log");
            }
            drop(w);
            std::fs::read(&path).expect("scratch DMA log")
        }),
    )
}

fn folder() -> impl Strategy<Value = Folder> {
    (
        mutated(verdicts_json().prop_map(|v| v.to_string().into_bytes())),
        bytes(200),
        prop_oneof![bytes(300), ".{0,300}".prop_map(String::into_bytes)],
        journal_file(),
        dma_file(),
    )
        .prop_map(|(verdicts, steps, console, journal, dma)| Folder {
            verdicts,
            steps,
            console,
            journal,
            dma,
        })
}

#[test]
fn results_folder() {
    fuzz("results_folder", folder(), |f| {
        let dir = scratch_file("case");
        std::fs::create_dir_all(&dir).expect("scratch case folder");
        for (name, b) in [
            ("verdicts.json", &f.verdicts),
            ("steps", &f.steps),
            ("console.log", &f.console),
            ("journal", &f.journal),
            ("dma.log", &f.dma),
        ] {
            std::fs::write(dir.join(name), b).expect("scratch case folder");
        }
        let Ok(files) = load::load(&dir) else {
            return Ok(()); // verdicts.json is not JSON: refused with a message
        };
        let t = model::build(&files);
        let page = html::case_page(&files, &t, &dir);
        let input =
            f.verdicts.len() + f.steps.len() + f.console.len() + f.journal.len() + f.dma.len();
        prop_assert!(
            page.len() < (1 << 20) + 400 * input,
            "a page of {} bytes",
            page.len()
        );
        Ok(())
    });
}

/// A scenario file: the fields of `scenarios/*.toml` with hostile values.
fn scenario_toml() -> impl Strategy<Value = Vec<u8>> {
    let num = prop_oneof![
        Just("0".to_string()),
        Just("1".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551615".to_string()),
        Just("9223372036854775807".to_string()),
        Just("1e300".to_string()),
        (0u32..100_000).prop_map(|n| n.to_string()),
    ];
    let step = prop_oneof![
        Just("write {file} {size} stamp:f".to_string()),
        (0u64..u64::MAX, 0u64..u64::MAX).prop_map(|(a, b)| format!("sleep {{rand:{a}-{b}}}")),
        Just("sleep {rand:0-18446744073709551615}".to_string()),
        Just("dma_start r burst {rand:1-1048576}".to_string()),
        "[a-z_ {}:0-9/-]{0,30}",
    ];
    (
        num.clone(),
        num.clone(),
        num,
        proptest::collection::vec(step, 0..5),
    )
        .prop_map(|(t, m, c, steps)| scenario_text(&t, &m, &c, &steps).into_bytes())
}

fn scenario_text(timeout: &str, memory: &str, cpus: &str, steps: &[String]) -> String {
    let steps: Vec<String> = steps.iter().map(|s| format!("{s:?}")).collect();
    format!(
        "id = \"S99\"\ntitle = \"t\"\ndescription = \"d\"\nkernels = [\"6.12\"]\n\
         filesystems = [\"ext4\"]\ntimeout = {timeout}\nmemory = {memory}\ncpus = {cpus}\n\
         pin = \"gup\"\ndma = \"burst 2\"\nsteps = [{}]\n\n\
         [expect.default]\nverdicts = [\"lost_write\"]\n",
        steps.join(", ")
    )
}

/// The template the target mutates is a scenario that loads (else the target would only
/// test the TOML parser's refusals).
#[test]
fn the_scenario_template_loads() {
    let path = scratch_file("S99-template.toml");
    let steps = [
        "write {file} {size} stamp:f".to_string(),
        "sleep {rand:1-5}".to_string(),
    ];
    std::fs::write(&path, scenario_text("60", "128", "2", &steps)).expect("scratch scenario");
    let s = harness::scenario::Scenario::load(&path).expect("the template loads");
    let lines = harness::scenario::expand::expand(&s, "6.12", "qemu", 1).expect("it expands");
    assert!(lines.iter().any(|l| l.starts_with("sleep ")), "{lines:?}");
}

#[test]
fn scenario_files() {
    fuzz("scenario_files", mutated(scenario_toml()), |b| {
        let path = scratch_file("S99-fuzz.toml");
        std::fs::write(&path, &b).expect("scratch scenario");
        if let Ok(s) = harness::scenario::Scenario::load(&path) {
            for seed in [0, 1, u64::MAX] {
                let _ = harness::scenario::expand::expand(&s, "6.12", "qemu", seed);
            }
        }
        Ok(())
    });
}
