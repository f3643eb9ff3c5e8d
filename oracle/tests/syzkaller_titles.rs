//! pinvm's crash titles measured against syzkaller's own report corpus
//! (`pkg/report/testdata/linux/report/*` in github.com/google/syzkaller): each file there is a
//! console with the title syzkaller gives it. Ignored by default (the corpus is not part of this
//! repository): `ci/syzkaller-titles.sh` fetches it at a pinned commit and runs
//!
//! ```text
//! PINVM_SYZKALLER_CORPUS=<dir> cargo test --release -p oracle --test syzkaller_titles -- --ignored --nocapture
//! ```
//!
//! The subset measured ("x86, non-corrupted kernel reports"): files whose header has a
//! non-empty `TITLE:`, no `CORRUPTED: Y` and no `SUPPRESSED: Y`, whose title is a kernel's (not
//! `SYZFAIL:`/`SYZFATAL:`/`go runtime error`/`trusty:` — the fuzzer's own or a trusted OS's
//! failures) and whose text carries none of the other architectures' register or trace markers
//! ([`OTHER_ARCH`]). Files with no `TITLE:` are consoles without a report: pinvm must find
//! none there (the test fails on any). `PINVM_SYZKALLER_FLOOR` (percent, default 90) is the exact-agreement floor the
//! test asserts; `PINVM_SYZKALLER_LIST=1` prints every disagreement.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Markers of a console from another architecture (arm, arm64, powerpc, riscv, s390): their
/// register names, trace formats and machine names.
const OTHER_ARCH: &[&str] = &[
    "pc : ",
    "lr : ",
    "PC is at ",
    "LR is at ",
    "NIP: ",
    "NIP [",
    "epc :",
    "Krnl PSW",
    "Internal error:",
    "Unhandled fault:",
    "el0_svc",
    "el1h_64",
    "el1_abort",
    "Hardware name: ARM",
    ") from [<",
    "--- interrupt: ",
    "(unreliable)",
];

/// Titles that are not the kernel's.
const NOT_KERNEL: &[&str] = &["SYZFAIL:", "SYZFATAL:", "go runtime error", "trusty:"];

/// One corpus file: its header fields and the console before `REPORT:`.
struct Case {
    name: String,
    title: String,
    corrupted: bool,
    suppressed: bool,
    console: String,
}

/// Headers up to the first empty line, then the console up to an empty line followed by
/// `REPORT:` (the part syzkaller's test compares against its own report extraction).
fn read_case(path: &Path) -> Case {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = String::from_utf8_lossy(&raw).replace('\r', "");
    // A file without headers starts with its empty line.
    let (head, body) = match text.strip_prefix('\n') {
        Some(body) => ("", body),
        None => text.split_once("\n\n").unwrap_or(("", &text)),
    };
    let console = match body.find("\n\nREPORT:\n") {
        Some(i) => &body[..i + 1],
        None => body,
    };
    let field = |k: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::to_string)
    };
    Case {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        title: field("TITLE: ").unwrap_or_default(),
        corrupted: field("CORRUPTED: ").as_deref() == Some("Y"),
        suppressed: field("SUPPRESSED: ").as_deref() == Some("Y"),
        console: console.to_string(),
    }
}

fn in_subset(c: &Case) -> bool {
    !c.title.is_empty()
        && !c.corrupted
        && !c.suppressed
        && !NOT_KERNEL.iter().any(|p| c.title.starts_with(p))
        && !OTHER_ARCH.iter().any(|m| c.console.contains(m))
}

/// A title's class: what is left without its function ("... in f") or file.
fn class(title: &str) -> String {
    let t = title.split(" in ").next().unwrap_or(title);
    match t.strip_prefix("kernel BUG at ") {
        Some(_) => "kernel BUG".to_string(),
        None => t.to_string(),
    }
}

/// What went wrong for one file.
fn category(want: &str, got: Option<&str>) -> String {
    match got {
        None => format!("no report [{}]", class(want)),
        Some(g) if class(g) == class(want) => format!("other function [{}]", class(want)),
        Some(g) => format!("other class [{}] -> [{}]", class(want), class(g)),
    }
}

fn percent(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * n as f64 / of as f64
    }
}

#[test]
#[ignore = "needs syzkaller's report corpus: PINVM_SYZKALLER_CORPUS=<dir>, see ci/syzkaller-titles.sh"]
fn titles_agree_with_syzkaller() {
    let Some(dir) = std::env::var_os("PINVM_SYZKALLER_CORPUS").map(PathBuf::from) else {
        eprintln!(
            "\n*** SKIP: PINVM_SYZKALLER_CORPUS is not set: nothing measured. Run \
             ci/syzkaller-titles.sh, or set it to syzkaller's pkg/report/testdata/linux/report. ***\n"
        );
        return;
    };
    let floor: f64 = std::env::var("PINVM_SYZKALLER_FLOOR")
        .ok()
        .map(|s| s.parse().expect("PINVM_SYZKALLER_FLOOR: a percentage"))
        .unwrap_or(90.0);
    let list = std::env::var_os("PINVM_SYZKALLER_LIST").is_some();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: set PINVM_SYZKALLER_CORPUS to the corpus",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 100,
        "{}: only {} files; is this syzkaller's pkg/report/testdata/linux/report?",
        dir.display(),
        paths.len()
    );

    let (mut subset, mut found, mut exact, mut same_class) = (0, 0, 0, 0);
    let (mut empty, mut false_reports) = (0, Vec::new());
    let mut misses: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for p in &paths {
        let c = read_case(p);
        let reports = oracle::console::parse(&c.console);
        let got = reports.first().map(|r| r.title.as_str());
        if c.title.is_empty() {
            empty += 1;
            if let Some(g) = got {
                false_reports.push(format!("{}: {g}", c.name));
            }
            continue;
        }
        if !in_subset(&c) {
            continue;
        }
        subset += 1;
        found += usize::from(got.is_some());
        if got == Some(c.title.as_str()) {
            exact += 1;
            same_class += 1;
            continue;
        }
        same_class += usize::from(got.is_some_and(|g| class(g) == class(&c.title)));
        misses.entry(category(&c.title, got)).or_default().push((
            c.name.clone(),
            c.title.clone(),
            got.unwrap_or("-").to_string(),
        ));
    }

    let agreement = percent(exact, subset);
    println!("syzkaller corpus {}: {} files", dir.display(), paths.len());
    println!("subset (x86, non-corrupted kernel reports): {subset}");
    println!(
        "  report found:     {found} ({:.1} %)",
        percent(found, subset)
    );
    println!("  exact title:      {exact} ({agreement:.1} %)");
    println!(
        "  same class:       {same_class} ({:.1} %)",
        percent(same_class, subset)
    );
    println!(
        "consoles without a report: {empty}, pinvm reported {} of them",
        false_reports.len()
    );
    for f in &false_reports {
        println!("  false report: {f}");
    }
    let mut cats: Vec<_> = misses.iter().collect();
    cats.sort_by_key(|(k, v)| (std::cmp::Reverse(v.len()), (*k).clone()));
    println!("disagreements by category:");
    for (cat, v) in &cats {
        println!("  {:3}  {cat}", v.len());
        let shown = if list { v.len() } else { 2 };
        for (name, want, got) in v.iter().take(shown) {
            println!("         {name}: want {want:?}, got {got:?}");
        }
    }
    assert!(
        false_reports.is_empty(),
        "pinvm found a report in {} of the {empty} consoles that hold none (syzkaller's \
         no-report files must stay report-free): {false_reports:#?}",
        false_reports.len()
    );
    assert!(
        agreement >= floor,
        "exact title agreement {agreement:.1} % is below the floor of {floor} %"
    );
}
