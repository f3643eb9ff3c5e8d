//! The guest pins pages of a file through /dev/dmapin, the host's DMA device writes stamped
//! generations into them, and the host checks what reached the disk: from the journal's write
//! data (every short-term pin method on ext4, torn blocks) and from the kept image through the
//! file's extents (xfs, and btrfs through its chunk tree). The same mechanisms judged by the
//! oracle, on ext4 and btrfs, and the long-term pin rules (S5) run in tests/scenarios.rs.

use pinvm_tests::{device_offset, pinvm, vm_or_skip, Run};
use proto::dma_log::DmaLog;
use proto::journal::{Journal, RequestKind};
use proto::stamp::dma::{classify_block, BlockClass};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(1800);
const PAGES: u64 = 16;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pinvm-dma-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Outcome {
    dir: PathBuf,
    run: Run,
    report: serde_json::Value,
    kept: PathBuf,
    journal: PathBuf,
    dma_log: PathBuf,
}

/// Boot `kernel` with an ext4 disk and run `steps` (after writing and mapping the file).
fn boot_with_steps(kernel: &str, name: &str, steps: &[&str]) -> Outcome {
    boot_with_steps_on(kernel, "ext4", name, steps)
}

/// The same on a `fs` disk.
fn boot_with_steps_on(kernel: &str, fs: &str, name: &str, steps: &[&str]) -> Outcome {
    let dir = scratch(&format!("{kernel}-{fs}-{name}"));
    let created = pinvm(&["image", "create", "--fs", fs], LIMIT);
    assert_eq!(created.code, 0, "{created}");
    let base = created.stdout.trim().to_string();
    let p = |n: &str| dir.join(n);
    let (kept, journal, dma_log, report) = (p("kept.img"), p("journal"), p("dma.log"), p("r.json"));
    let size = format!("{}K", PAGES * 4);
    let write = format!("write /mnt/f {size} stamp:file");
    let map = format!("mmap m /mnt/f {size}");
    let mut args: Vec<String> = [
        "boot",
        "--kernel-version",
        kernel,
        "--disk",
        &base,
        "--journal",
        journal.to_str().unwrap(),
        "--journal-data",
        "--keep-disk",
        kept.to_str().unwrap(),
        "--dma-log",
        dma_log.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--step",
        &write,
        "--step",
        "fsync /mnt/f",
        "--step",
        &map,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for s in steps {
        args.push("--step".into());
        args.push(s.to_string());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = pinvm(&argv, LIMIT);
    let report = std::fs::read_to_string(&report)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    Outcome {
        dir,
        run,
        report,
        kept,
        journal,
        dma_log,
    }
}

/// The scratch directory goes away with a passing test and stays for a failing one.
impl Drop for Outcome {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// (logical, device offset, length) of the file's extents from the report.
fn extents(report: &serde_json::Value) -> Vec<(u64, u64, u64)> {
    report["steps"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|s| s["kind"] == "extent")
                .map(|s| {
                    let n = |k: &str| s[k].as_u64().unwrap();
                    (n("logical"), n("physical"), n("length"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The last generation the device wrote into each (region, page), from the DMA log.
fn last_generations(log: &Path) -> HashMap<(u32, u32), u64> {
    let mut last = HashMap::new();
    for r in DmaLog::open(log).unwrap().records() {
        let r = r.unwrap();
        let g = last.entry((r.region, r.page)).or_insert(0);
        *g = (*g).max(r.generation);
    }
    last
}

fn pin_dirty_lock_persists_the_last_generation(kernel: &str, fs: &str) {
    if !vm_or_skip(&format!("dma pin+dirty_lock on {kernel} {fs}")) {
        return;
    }
    let o = boot_with_steps_on(
        kernel,
        fs,
        "dirty-lock",
        &[
            "touch m",
            "pin r m pin rw",
            "post r 0",
            "dma_start r burst 3",
            "sleep 300",
            "dma_stop r",
            "release r dirty_lock",
            "fsync /mnt/f",
            "fiemap /mnt/f",
        ],
    );
    assert_eq!(o.run.code, 0, "{}", o.run);
    let last = last_generations(&o.dma_log);
    assert_eq!(last.len() as u64, PAGES, "every page got DMA: {last:?}");
    let image = std::fs::read(&o.kept).unwrap();
    let mut pages = 0;
    for (logical, physical, length) in extents(&o.report) {
        let dev = device_offset(fs, &o.kept, physical);
        for off in (0..length.min(PAGES * 4096 - logical)).step_by(4096) {
            let at = (dev + off) as usize;
            let block: &[u8; 4096] = image[at..at + 4096].try_into().unwrap();
            match classify_block(block) {
                BlockClass::Uniform {
                    region,
                    page,
                    generation,
                } => {
                    assert_eq!(
                        u64::from(page) * 4096,
                        logical + off,
                        "page at the wrong place"
                    );
                    assert_eq!(
                        Some(&generation),
                        last.get(&(region, page)),
                        "page {page} on disk is not the last DMA generation"
                    );
                }
                other => panic!("file offset {}: {other:?} on disk", logical + off),
            }
            pages += 1;
        }
    }
    assert_eq!(pages, PAGES, "extents cover the file");
}

macro_rules! dirty_lock_test {
    ($name:ident, $kernel:expr, $fs:expr) => {
        #[test]
        fn $name() {
            pin_dirty_lock_persists_the_last_generation($kernel, $fs);
        }
    };
}

dirty_lock_test!(pin_dirty_lock_xfs_6_12, "6.12", "xfs");
dirty_lock_test!(pin_dirty_lock_btrfs_6_12, "6.12", "btrfs");
dirty_lock_test!(pin_dirty_lock_xfs_6_1, "6.1", "xfs");
dirty_lock_test!(pin_dirty_lock_btrfs_6_1, "6.1", "btrfs");

/// Every short-term method (get_user_pages, _fast, pin_user_pages, _fast), each released with
/// the correct dirtying call, gets the device's last generation of every page to the disk:
/// checked per method from the journal's write data, and for the last one on the kept image.
fn every_method_with_dirty_lock(kernel: &str) {
    if !vm_or_skip(&format!("dma: every pin method on {kernel}")) {
        return;
    }
    const METHODS: [&str; 4] = ["gup", "gup_fast", "pin", "pin_fast"];
    let mut steps = vec!["touch m".to_string()];
    for (i, m) in METHODS.iter().enumerate() {
        steps.extend([
            format!("pin r{i} m {m} rw"),
            format!("post r{i} 0"),
            format!("dma_start r{i} burst 2"),
            "sleep 100".into(),
            format!("dma_stop r{i}"),
            format!("release r{i} dirty_lock"),
            "fsync /mnt/f".into(),
        ]);
    }
    let refs: Vec<&str> = steps.iter().map(String::as_str).collect();
    let o = boot_with_steps(kernel, "methods", &refs);
    assert_eq!(o.run.code, 0, "{}", o.run);
    let last = last_generations(&o.dma_log);
    let regions: std::collections::BTreeSet<u32> = last.keys().map(|k| k.0).collect();
    assert_eq!(
        regions.len(),
        METHODS.len(),
        "one region per method: {regions:?}"
    );
    // Every (region, page)'s last generation was written to the disk by some request.
    let mut written = std::collections::HashSet::new();
    for rec in Journal::open(&o.journal).unwrap().records() {
        let rec = rec.unwrap();
        if rec.kind != RequestKind::Out {
            continue;
        }
        for b in rec.data.expect("--journal-data").chunks_exact(4096) {
            if let BlockClass::Uniform {
                region,
                page,
                generation,
            } = classify_block(b.try_into().unwrap())
            {
                written.insert((region, page, generation));
            }
        }
    }
    for ((region, page), g) in &last {
        assert!(
            written.contains(&(*region, *page, *g)),
            "region {region} (method {}) page {page}: generation {g} never reached the disk",
            METHODS[regions.iter().position(|r| r == region).unwrap()]
        );
    }
}

#[test]
fn every_method_with_dirty_lock_6_12() {
    every_method_with_dirty_lock("6.12");
}

#[test]
fn every_method_with_dirty_lock_6_1() {
    every_method_with_dirty_lock("6.1");
}

/// With the device writing a pinned page in the middle of the block layer's copy of it, a
/// block write mixing two DMA generations reaches the journal, in every one of 10 rounds.
fn writeback_race_tears_blocks(kernel: &str) {
    if !vm_or_skip(&format!("on-writeback race on {kernel}")) {
        return;
    }
    const ROUNDS: usize = 10;
    let mut steps: Vec<String> = vec![
        "pin r m pin rw".into(),
        "post r 0".into(),
        "dma_start r burst 1".into(),
        "sleep 100".into(),
    ];
    for _ in 0..ROUNDS {
        steps.push("dma_start r writeback 1".into());
        steps.push("touch m".into());
        steps.push("msync m".into());
    }
    steps.push("release r dirty_lock".into());
    let refs: Vec<&str> = steps.iter().map(String::as_str).collect();
    let o = boot_with_steps(kernel, "writeback", &refs);
    assert_eq!(o.run.code, 0, "{}", o.run);
    // Torn blocks in the journal: OUT requests whose data holds a Mixed block.
    let mut torn_requests = 0;
    for rec in Journal::open(&o.journal).unwrap().records() {
        let rec = rec.unwrap();
        if rec.kind != RequestKind::Out {
            continue;
        }
        let data = rec.data.expect("--journal-data");
        let mixed = data.chunks_exact(4096).any(|b| {
            matches!(
                classify_block(b.try_into().unwrap()),
                BlockClass::Mixed { .. }
            )
        });
        torn_requests += usize::from(mixed);
    }
    eprintln!("{kernel}: {torn_requests} torn block writes in {ROUNDS} rounds");
    assert!(
        torn_requests >= ROUNDS,
        "{torn_requests} torn block writes in {ROUNDS} rounds\n{}",
        o.run
    );
}

#[test]
fn writeback_race_tears_blocks_6_12() {
    writeback_race_tears_blocks("6.12");
}

#[test]
fn writeback_race_tears_blocks_6_1() {
    writeback_race_tears_blocks("6.1");
}
