//! The guest writes a stamped file on a virtio-blk disk, fsyncs it and reports its extents;
//! the host proves from the write journal and the kept image that the bytes landed where the
//! guest said, and that the base image did not change. For ext4, xfs and btrfs on 6.12 and 6.1.

use pinvm_tests::{device_offset, pinvm, vm_or_skip};
use proto::journal::{block_hash, Journal, RequestKind};
use proto::stamp::file::decode as decode_stamp;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(1800);
const FILE_SIZE: u64 = 1 << 20;

fn sha256(p: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(p).unwrap()).to_vec()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pinvm-disk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_sync_and_prove(kernel: &str, fs: &str) {
    if !vm_or_skip(&format!("disk {fs} on {kernel}")) {
        return;
    }
    let dir = scratch(&format!("{kernel}-{fs}"));
    let created = pinvm(&["image", "create", "--fs", fs], LIMIT);
    assert_eq!(created.code, 0, "{created}");
    let base = PathBuf::from(created.stdout.trim());
    let base_hash = sha256(&base);
    let (journal, kept, report) = (
        dir.join("journal"),
        dir.join("kept.img"),
        dir.join("r.json"),
    );
    let tag = format!("{fs}-{kernel}");
    let write = format!("write /mnt/pinvm-test {FILE_SIZE} stamp:{tag}");
    let r = pinvm(
        &[
            "boot",
            "--kernel-version",
            kernel,
            "--disk",
            base.to_str().unwrap(),
            "--journal",
            journal.to_str().unwrap(),
            "--keep-disk",
            kept.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--step",
            &write,
            "--step",
            "fsync /mnt/pinvm-test",
            "--step",
            "fiemap /mnt/pinvm-test",
        ],
        LIMIT,
    );
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(sha256(&base), base_hash, "the base image changed");

    // The guest's extents.
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let extents: Vec<(u64, u64, u64)> = rep["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "extent")
        .map(|s| {
            let n = |k: &str| s[k].as_u64().unwrap();
            (n("logical"), n("physical"), n("length"))
        })
        .collect();
    assert!(!extents.is_empty(), "no extents reported\n{r}");
    let covered: u64 = extents.iter().map(|e| e.2).sum();
    assert!(
        covered >= FILE_SIZE,
        "extents cover {covered} < {FILE_SIZE}"
    );

    // The last write the journal saw for each 4 KiB block, by disk sector.
    let mut last: HashMap<u64, [u8; 16]> = HashMap::new();
    for rec in Journal::open(&journal).unwrap().records() {
        let rec = rec.unwrap();
        if rec.kind == RequestKind::Out && rec.status == 0 {
            for h in &rec.hashes {
                last.insert(h.sector, h.hash);
            }
        }
    }

    let image = std::fs::read(&kept).unwrap();
    let mut checked = 0u64;
    for &(logical, physical, length) in &extents {
        let dev = device_offset(fs, &kept, physical);
        let len = length.min(FILE_SIZE.saturating_sub(logical));
        for off in (0..len).step_by(4096) {
            let at = (dev + off) as usize;
            let block = &image[at..at + 4096];
            for s in 0..8u64 {
                let sector = &block[(s * 512) as usize..((s + 1) * 512) as usize];
                assert_eq!(
                    decode_stamp(sector),
                    Some((tag.as_str(), logical + off + s * 512)),
                    "file offset {} is not at device offset {}",
                    logical + off + s * 512,
                    at as u64 + s * 512
                );
            }
            let h = last.get(&((dev + off) / 512)).unwrap_or_else(|| {
                panic!("no journaled write of device sector {}", (dev + off) / 512)
            });
            assert_eq!(
                h,
                &block_hash(block),
                "journal hash differs from the kept image"
            );
            checked += 4096;
        }
    }
    assert_eq!(checked, FILE_SIZE);
    let _ = std::fs::remove_dir_all(&dir);
}

macro_rules! disk_test {
    ($name:ident, $kernel:expr, $fs:expr) => {
        #[test]
        fn $name() {
            write_sync_and_prove($kernel, $fs);
        }
    };
}

disk_test!(ext4_on_6_12, "6.12", "ext4");
disk_test!(xfs_on_6_12, "6.12", "xfs");
disk_test!(btrfs_on_6_12, "6.12", "btrfs");
disk_test!(ext4_on_6_1, "6.1", "ext4");
disk_test!(xfs_on_6_1, "6.1", "xfs");
disk_test!(btrfs_on_6_1, "6.1", "btrfs");
