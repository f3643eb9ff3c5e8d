use super::*;
use crate::cache::TestDir;
use std::time::Duration;

fn entry(root: &Path, rel: &str, bytes: usize, mark: Option<&str>, age_s: u64) -> PathBuf {
    let dir = root.join(rel);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("data"), vec![1u8; bytes]).unwrap();
    let t = SystemTime::now() - Duration::from_secs(age_s);
    let m = dir.join(mark.unwrap_or("data"));
    fs::write(&m, b"").unwrap();
    fs::File::options()
        .write(true)
        .open(&m)
        .unwrap()
        .set_modified(t)
        .unwrap();
    dir
}

#[test]
fn sizes_parse() {
    assert_eq!(parse_size("0").unwrap(), 0);
    assert_eq!(parse_size("10K").unwrap(), 10 << 10);
    assert_eq!(parse_size("5m").unwrap(), 5 << 20);
    assert_eq!(parse_size("30G").unwrap(), 30 << 30);
    assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
    assert!(parse_size("G").is_err());
    assert!(parse_size("3X").is_err());
    assert!(parse_size("99999999999T").is_err());
}

#[test]
fn usage_counts_parts_and_orders_entries_by_last_use() {
    let t = TestDir::new("usage");
    let root = t.path();
    let k_old = entry(root, "kernels/k1", 4096, Some(kernel::LAST_USED_FILE), 300);
    let k_new = entry(root, "kernels/k2", 4096, Some(kernel::LAST_USED_FILE), 10);
    let slot = entry(
        root,
        "slots/debian-6.12-x",
        64 << 10,
        Some("slot.json"),
        100,
    );
    let legacy = entry(root, "build/abc", 8192, Some("src.ready"), 200);
    fs::write(root.join("slots/debian-6.12-x.lock"), b"").unwrap();
    fs::write(root.join("initramfs-base-1.cpio"), vec![0u8; 4096]).unwrap();
    let u = usage(root).unwrap();
    let order: Vec<&Path> = u.entries.iter().map(|e| e.path.as_path()).collect();
    assert_eq!(order, [&k_old, &legacy, &slot, &k_new]);
    let slots = u.parts.iter().find(|p| p.0 == Part::Slots).unwrap();
    assert_eq!(slots.2, 1, "lock files are not slots");
    assert!(slots.1 >= 64 << 10);
    assert!(u.parts.iter().any(|p| p.0 == Part::Initramfs && p.2 == 1));
    assert!(u.total() >= (64 << 10) + 8192 + 8192 + 4096);
}

#[test]
fn prune_to_a_cap_removes_oldest_first_and_keeps_what_it_is_told() {
    let t = TestDir::new("prune");
    let root = t.path();
    let k_old = entry(
        root,
        "kernels/k1",
        64 << 10,
        Some(kernel::LAST_USED_FILE),
        300,
    );
    let k_new = entry(
        root,
        "kernels/k2",
        64 << 10,
        Some(kernel::LAST_USED_FILE),
        10,
    );
    let slot = entry(root, "slots/s", 256 << 10, Some("slot.json"), 100);
    let total = usage(root).unwrap().total();

    let dry = prune(
        root,
        &PruneOptions {
            max_bytes: Some(total - 1),
            dry_run: true,
            keep: vec![k_old.clone()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(dry.len(), 1);
    assert_eq!(dry[0].path, slot, "k_old is kept, the slot is next oldest");
    assert!(slot.exists(), "dry run removes nothing");

    let removed = prune(
        root,
        &PruneOptions {
            max_bytes: Some(100 << 10),
            ..Default::default()
        },
    )
    .unwrap();
    let paths: Vec<&Path> = removed.iter().map(|e| e.path.as_path()).collect();
    assert_eq!(paths, [&k_old, &slot]);
    assert!(!k_old.exists() && !slot.exists() && k_new.exists());
}

#[test]
fn a_busy_slot_is_not_removed_and_all_slots_spares_kernels() {
    let t = TestDir::new("busy");
    let root = t.path();
    let busy = entry(root, "slots/busy", 4096, Some("slot.json"), 50);
    let idle = entry(root, "slots/idle", 4096, Some("slot.json"), 40);
    let k = entry(root, "kernels/k", 4096, Some(kernel::LAST_USED_FILE), 500);
    let _held = FileLock::try_acquire(&cache::lock_path(&busy))
        .unwrap()
        .unwrap();
    let removed = prune(
        root,
        &PruneOptions {
            all_slots: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].path, idle);
    assert!(busy.exists() && k.exists());
}
