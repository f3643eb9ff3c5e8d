//! One real case through the library API, no CLI: scenario S01 (the baseline) on 6.12 ext4
//! with our KVM machine. The kernel is built (and cached) on first use; without a usable
//! /dev/kvm the test prints a loud SKIP line and returns.

use harness::case::{run_case, Case};
use harness::scenario::{self, Scenario};
use harness::{KernelChoice, Outcome};
use std::path::Path;

fn kvm_or_skip(test: &str) -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => true,
        Err(e) => {
            eprintln!(
                "\n*** SKIP {test}: /dev/kvm is not usable ({e}); the VM test did not run ***\n"
            );
            false
        }
    }
}

#[test]
fn s01_on_ext4_runs_through_the_library() {
    if !kvm_or_skip("harness real case (S01 on 6.12 ext4)") {
        return;
    }
    let path = scenario::resolve(Path::new("S01")).unwrap();
    let s = Scenario::load(&path).unwrap();
    let dir = std::env::temp_dir().join(format!("pinvm-harness-s01-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let case = Case {
        scenario: &s,
        kernel: KernelChoice::version("6.12"),
        fs: "ext4".into(),
        run: 1,
        seed: 0,
        dir: dir.clone(),
        keep_disk: false,
        echo: false,
    };
    let r = run_case(&vmm::KvmMachine, &case).unwrap();
    assert_eq!(
        (r.outcome, r.code),
        (Outcome::Pass, 0),
        "{}\n{}",
        r.summary,
        r.evidence.join("\n")
    );
    assert!(r.analysis.verdicts.is_empty(), "{:?}", r.analysis.verdicts);
    // The oracle saw the device's DMA and the disk's writes.
    assert!(r.analysis.stats.dma_writes > 0, "{:?}", r.analysis.stats);
    assert!(
        r.analysis.stats.journal_writes > 0,
        "{:?}",
        r.analysis.stats
    );
    assert!(r
        .kernel_release
        .as_deref()
        .is_some_and(|k| k.starts_with("6.12.")));
    for f in [
        "steps",
        "console.log",
        "journal",
        "dma.log",
        "verdicts.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
    assert!(
        !dir.join("disk.img").exists(),
        "the disk is kept only when asked"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("verdicts.json")).unwrap()).unwrap();
    assert_eq!(v["outcome"], "pass");
    assert_eq!(v["vm"]["exit_code"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}
