//! The console parser on real consoles of both guest kernels, captured with the kernel's own
//! crash-test driver (LKDTM) by ci/capture-console-fixtures.sh; `index.txt` next to the fixtures
//! records what `pinvm boot` exited with for each. `synthetic-*.txt` are not captured (their
//! first line says where their format comes from).

use oracle::console::{fs_messages, parse, CrashKind, CrashReport, MAX_EXCERPT};
use std::path::PathBuf;

use CrashKind::*;

/// Every fixture and the reports it must give, in order: exactly one per crash (the oops
/// after a BUG and the panic after an oops are folded; a hang reported again is one report).
const CASES: &[(&str, &[(CrashKind, &str)])] = &[
    // Clean boots: the default kernels, the crash-test kernels, and 4 vCPUs on this 2-CPU host
    // (kvm_pvm: "BUG: arch topology borken", a pr_err).
    ("6.12-clean.txt", &[]),
    ("6.12-clean-crashtest.txt", &[]),
    ("6.12-clean-cpus4.txt", &[]),
    ("6.1-clean.txt", &[]),
    ("6.1-clean-crashtest.txt", &[]),
    ("6.1-clean-cpus4.txt", &[]),
    // LKDTM WARNING: WARN_ON() in lkdtm_WARNING.
    ("6.12-warning.txt", &[(Warning, "WARNING in lkdtm_WARNING")]),
    ("6.1-warning.txt", &[(Warning, "WARNING in lkdtm_WARNING")]),
    // LKDTM BUG: BUG(), then "Oops: invalid opcode" (6.12) / "invalid opcode" (6.1).
    // Titled by the function that hit BUG(), as syzkaller does.
    ("6.12-bug.txt", &[(Bug, "kernel BUG in lkdtm_BUG")]),
    ("6.1-bug.txt", &[(Bug, "kernel BUG in lkdtm_BUG")]),
    // The same with panic_on_warn=1 / oops=panic: "Kernel panic - not syncing: kernel:
    // panic_on_warn set ..." in the middle of the WARN report, "... Fatal exception" after the
    // oops' second register dump. Folded: one report each.
    (
        "6.12-warning-panic_on_warn.txt",
        &[(Warning, "WARNING in lkdtm_WARNING")],
    ),
    (
        "6.1-warning-panic_on_warn.txt",
        &[(Warning, "WARNING in lkdtm_WARNING")],
    ),
    (
        "6.12-bug-panic_on_oops.txt",
        &[(Bug, "kernel BUG in lkdtm_BUG")],
    ),
    (
        "6.1-bug-panic_on_oops.txt",
        &[(Bug, "kernel BUG in lkdtm_BUG")],
    ),
    // LKDTM EXCEPTION: a write to NULL, then "Oops: Oops: 0002" (6.12) / "Oops: 0002" (6.1).
    (
        "6.12-exception.txt",
        &[(
            PageFault,
            "BUG: unable to handle kernel NULL pointer dereference in lkdtm_EXCEPTION",
        )],
    ),
    (
        "6.1-exception.txt",
        &[(
            PageFault,
            "BUG: unable to handle kernel NULL pointer dereference in lkdtm_EXCEPTION",
        )],
    ),
    // LKDTM PANIC: panic("dumptest").
    ("6.12-panic.txt", &[(Panic, "kernel panic: dumptest")]),
    ("6.1-panic.txt", &[(Panic, "kernel panic: dumptest")]),
    // echo c > /proc/sysrq-trigger
    (
        "6.12-sysrq_c.txt",
        &[(Panic, "kernel panic: sysrq triggered crash")],
    ),
    (
        "6.1-sysrq_c.txt",
        &[(Panic, "kernel panic: sysrq triggered crash")],
    ),
    // LKDTM ARRAY_BOUNDS with UBSAN_BOUNDS: titled by the function (as syzkaller does), which
    // these kernels' unwinder only gives as unsure ("? lkdtm_ARRAY_BOUNDS") frames.
    (
        "6.12-array_bounds.txt",
        &[(
            Ubsan,
            "UBSAN: array-index-out-of-bounds in lkdtm_ARRAY_BOUNDS",
        )],
    ),
    (
        "6.1-array_bounds.txt",
        &[(
            Ubsan,
            "UBSAN: array-index-out-of-bounds in lkdtm_ARRAY_BOUNDS",
        )],
    ),
    // LKDTM HUNG_TASK with hung_task_timeout_secs=5: reported every 5 s, one report. At
    // pinvm's loglevel=5 the task's stack (KERN_INFO) is not printed, so no function.
    ("6.12-hung_task.txt", &[(HungTask, "INFO: task hung")]),
    ("6.1-hung_task.txt", &[(HungTask, "INFO: task hung")]),
    (
        "6.12-hung_task-loglevel7.txt",
        &[(HungTask, "INFO: task hung in lkdtm_HUNG_TASK")],
    ),
    // 6.1's lkdtm_HUNG_TASK ends in a tail call to schedule(), so its frame is not on the
    // stack: the first frame that is not the scheduler is LKDTM's debugfs handler.
    (
        "6.1-hung_task-loglevel7.txt",
        &[(HungTask, "INFO: task hung in direct_entry")],
    ),
    // LKDTM SOFTLOCKUP: spins with preemption off; the soft-lockup detector (after 20 s) and
    // RCU's stall detector (21 s) both fire, and again later (folded).
    (
        "6.12-softlockup.txt",
        &[
            (SoftLockup, "BUG: soft lockup in lkdtm_SOFTLOCKUP"),
            (RcuStall, "INFO: rcu detected stall in lkdtm_SOFTLOCKUP"),
        ],
    ),
    // On 6.1 under kvm_pvm the RCU stall came first (32 s) and the first soft-lockup report
    // only at "stuck for 45s!".
    (
        "6.1-softlockup.txt",
        &[
            (RcuStall, "INFO: rcu detected stall in lkdtm_SOFTLOCKUP"),
            (SoftLockup, "BUG: soft lockup in lkdtm_SOFTLOCKUP"),
        ],
    ),
    (
        "synthetic-kasan.txt",
        &[(Kasan, "KASAN: slab-use-after-free Read in ext4_finish_bio")],
    ),
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/console")
}

fn fixture(name: &str) -> String {
    let p = dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn summary(r: &[CrashReport]) -> Vec<(CrashKind, String)> {
    r.iter().map(|r| (r.kind, r.title.clone())).collect()
}

#[test]
fn real_consoles_give_exact_kinds_and_titles() {
    for (name, want) in CASES {
        let got = summary(&parse(&fixture(name)));
        let want: Vec<(CrashKind, String)> =
            want.iter().map(|(k, t)| (*k, t.to_string())).collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn every_fixture_has_expectations() {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".txt") && n != "index.txt")
        .collect();
    names.sort();
    for n in &names {
        assert!(
            CASES.iter().any(|(c, _)| c == n),
            "{n} has no expectations in CASES"
        );
    }
    assert!(names.len() >= 20, "{names:?}");
}

#[test]
fn clean_consoles_have_no_reports_and_no_fs_messages() {
    for (name, want) in CASES.iter().filter(|(n, _)| n.contains("-clean")) {
        assert!(want.is_empty());
        let c = fixture(name);
        assert_eq!(parse(&c), vec![], "{name}");
        assert_eq!(fs_messages(&c), vec![], "{name}");
    }
    // The 4-vCPU consoles do carry the topology complaint this parser must not count.
    for v in ["6.12", "6.1"] {
        assert!(fixture(&format!("{v}-clean-cpus4.txt")).contains("BUG: arch topology borken"));
    }
}

/// Where the report starts, its time and its excerpt agree with the raw console.
#[test]
fn reports_point_at_their_console_lines() {
    for (name, _) in CASES {
        let c = fixture(name);
        let lines: Vec<&str> = c.split('\n').collect();
        for r in parse(&c) {
            let raw = lines[r.line].trim_end_matches('\r');
            assert!(
                raw.ends_with(r.excerpt[0].as_str()),
                "{name}: {raw:?} {r:#?}"
            );
            let stamp = raw
                .split(']')
                .next()
                .unwrap()
                .trim_start_matches('[')
                .trim();
            assert_eq!(r.time_s, Some(stamp.parse::<f64>().unwrap()), "{name}");
            assert!(
                !r.excerpt.is_empty() && r.excerpt.len() <= MAX_EXCERPT,
                "{name}"
            );
            assert!(
                r.excerpt
                    .iter()
                    .all(|l| !l.starts_with("[ ") && !l.contains('\r')),
                "{name}: timestamps stay out of the excerpt"
            );
            match r.kind {
                // 6.12's UBSAN ends like a WARN, 6.1's with a line of "=".
                Ubsan => {
                    let last = r.excerpt.last().unwrap();
                    assert!(last.starts_with("---[ end trace") || last.starts_with("====="))
                }
                // (A panic in the middle of a report ends it instead.)
                Warning | Bug | PageFault => assert!(
                    r.excerpt.last().unwrap().starts_with("---[ end trace")
                        || r.excerpt.iter().any(|l| l.starts_with("Kernel panic")),
                    "{name}: {:?}",
                    r.excerpt.last()
                ),
                Kasan => assert!(r.excerpt.last().unwrap().starts_with("=====")),
                _ => {}
            }
        }
    }
}

/// The excerpt reads like a kernel developer reads a report: its header, the call trace (with
/// every frame the kernel printed), then the registers.
#[test]
fn excerpts_lead_with_the_call_trace() {
    for v in ["6.12", "6.1"] {
        for (f, header) in [
            ("warning", "WARNING: CPU:"),
            ("bug", "kernel BUG at"),
            ("exception", "BUG: kernel NULL pointer dereference"),
        ] {
            let name = format!("{v}-{f}.txt");
            let c = fixture(&name);
            let r = &parse(&c)[0];
            let at = |p: &str| r.excerpt.iter().position(|l| l.starts_with(p));
            let h = at(header).unwrap_or_else(|| panic!("{name}: {:#?}", r.excerpt));
            assert_eq!(r.excerpt[h + 1], "Call Trace:", "{name}: {:#?}", r.excerpt);
            let rip = at("RIP: ").unwrap();
            assert!(
                r.excerpt[h + 2..rip]
                    .iter()
                    .any(|l| l.contains("direct_entry+")),
                "{name}: the trace's frames, unsure ones too"
            );
            // Only the console's own lines, once each.
            let mut seen = std::collections::HashSet::new();
            for l in &r.excerpt {
                assert!(c.contains(l.as_str()), "{name}: {l}");
                assert!(seen.insert(l) || l.trim().is_empty(), "{name}: {l} twice");
            }
        }
    }
}

/// The oops that follows BUG()/the NULL write is part of the report, not a second one.
#[test]
fn oops_lines_are_folded_into_their_report() {
    for v in ["6.12", "6.1"] {
        for (f, marker) in [("bug", "invalid opcode"), ("exception", "Oops: ")] {
            let name = format!("{v}-{f}.txt");
            let r = parse(&fixture(&name));
            assert_eq!(r.len(), 1, "{name}");
            assert!(
                r[0].excerpt.iter().any(|l| l.contains(marker)),
                "{name}: {:#?}",
                r[0].excerpt
            );
        }
    }
}

/// The panic that panic_on_warn / oops=panic add is part of the report it follows.
#[test]
fn panics_are_folded_into_the_report_they_follow() {
    for v in ["6.12", "6.1"] {
        for f in ["warning-panic_on_warn", "bug-panic_on_oops"] {
            let name = format!("{v}-{f}.txt");
            let c = fixture(&name);
            assert!(c.contains("Kernel panic - not syncing"), "{name}");
            assert_eq!(parse(&c).len(), 1, "{name}");
        }
    }
}

/// The serial console ends lines with "\r\n" (as the fixtures have it): the same reports with
/// "\n" only.
#[test]
fn crlf_and_lf_consoles_parse_the_same() {
    for (name, _) in CASES {
        let c = fixture(name);
        let lf = c.replace("\r\n", "\n");
        let crlf = lf.replace('\n', "\r\n");
        assert_eq!(parse(&lf), parse(&c), "{name}");
        assert_eq!(parse(&crlf), parse(&c), "{name}");
        assert_eq!(fs_messages(&lf), fs_messages(&c), "{name}");
    }
}

/// Another CPU's message in the middle of a real report does not cut it, and stays out of it.
#[test]
fn interleaved_lines_stay_out_of_the_report() {
    for v in ["6.12", "6.1"] {
        let name = format!("{v}-warning.txt");
        let c = fixture(&name);
        let plain = parse(&c);
        let mut lines: Vec<String> = c.split('\n').map(str::to_string).collect();
        let at = lines
            .iter()
            .position(|l| l.contains("Call Trace:"))
            .unwrap();
        lines.insert(
            at,
            "[   15.421000] virtio_blk virtio0: [vda] 8192 512-byte logical blocks".into(),
        );
        lines.insert(at + 2, "user output".into());
        let mixed = parse(&lines.join("\n"));
        assert_eq!(summary(&mixed), summary(&plain), "{name}");
        assert_eq!(mixed[0].excerpt, plain[0].excerpt, "{name}");
    }
}

proptest::proptest! {
    /// Whatever bytes a guest prints: the console parser and the filesystem-message reader
    /// never panic, and every report they find has a title.
    #[test]
    fn any_console_is_parsed_without_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4000)) {
        let text = String::from_utf8_lossy(&bytes);
        for r in oracle::console::parse(&text) {
            proptest::prop_assert!(!r.title.is_empty());
        }
        let _ = oracle::console::fs_messages(&text);
    }

    /// Console-like lines (kernel headers, registers, traces mixed with garbage) too.
    #[test]
    fn console_like_lines_are_parsed_without_panic(lines in proptest::collection::vec(
        proptest::prop_oneof![
            proptest::strategy::Just("------------[ cut here ]------------".to_string()),
            proptest::strategy::Just("WARNING: CPU: 0 PID: 1 at fs/ext4/inode.c:3587 ext4_dirty_folio+0x17/0x1e".to_string()),
            proptest::strategy::Just("BUG: unable to handle page fault for address: 0000".to_string()),
            proptest::strategy::Just("Call Trace:".to_string()),
            proptest::strategy::Just(" <TASK>".to_string()),
            proptest::strategy::Just("Kernel panic - not syncing: Fatal exception".to_string()),
            proptest::strategy::Just("[ BUG: held lock freed! ]".to_string()),
            proptest::strategy::Just("WARNING: fs/x.c:1 at 0x1d, CPU#0: sh/1".to_string()),
            proptest::strategy::Just("WARNING: possible circular locking dependency detected".to_string()),
            proptest::strategy::Just("ffff8880 (&lock){+.+.}-{3:3}, at: f+0x1/0x2".to_string()),
            proptest::strategy::Just("rcu: INFO: rcu_sched self-detected stall on CPU".to_string()),
            proptest::strategy::Just("INFO: task sh:1 blocked for more than 5 seconds.".to_string()),
            proptest::strategy::Just("BUG: KASAN: use-after-free in f+0x1/0x2".to_string()),
            proptest::strategy::Just("Read of size 8 at addr ffff888003a1b2c8".to_string()),
            proptest::strategy::Just(" asm_sysvec_apic_timer_interrupt+0x1a/0x20".to_string()),
            proptest::strategy::Just("RIP: 0010:lkdtm_BUG+0x1/0x2".to_string()),
            proptest::strategy::Just(" ? vfs_write+0x1/0x2".to_string()),
            proptest::strategy::Just(" [<ffffffff81234567>] _Z3fooi+0x1/0x2".to_string()),
            "[ 0-9.]{0,14}\\]? ?[ -~]{0,80}",
        ], 0..60)) {
        let text = lines.join("\n");
        for r in oracle::console::parse(&text) {
            proptest::prop_assert!(!r.title.is_empty() && r.title.len() <= 120);
        }
    }
}
