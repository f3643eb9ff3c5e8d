use super::*;
use crate::cache::TestDir;
use crate::kernel::patches::{Patch, PatchGroup, PatchSeries};
use std::fs;
use std::path::{Path, PathBuf};

/// The new files end with a newline and have no carriage returns, so [`patch`] reproduces
/// them byte for byte.
#[test]
fn new_files_are_plain_lines() {
    for (path, text) in NEW_FILES {
        assert!(text.ends_with('\n'), "{path}");
        assert!(!text.contains('\r'), "{path}");
    }
}

#[test]
fn patch_touches_the_driver_files() {
    let p = Patch::new(PATCH_NAME.into(), PatchGroup::Driver, patch().into_bytes()).unwrap();
    let want: Vec<PathBuf> = [
        "drivers/virtio/Kconfig",
        "drivers/virtio/Makefile",
        "drivers/virtio/virtio_dmapin.c",
        "include/uapi/linux/virtio_dmapin.h",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(p.touched_files(), want);
    assert!(patch().starts_with(DESCRIPTION));
}

/// The hunk's context and removed lines: what the file must hold for the hunk to apply.
fn preimage(hunk: &str) -> String {
    hunk.lines()
        .skip_while(|l| !l.starts_with("@@"))
        .skip(1)
        .filter_map(|l| l.strip_prefix(' ').or_else(|| l.strip_prefix('-')))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Applied with `patch -p1` to a tree that holds only what the hunks need, the generated patch
/// creates the driver files exactly as they are in guest-images/driver/.
#[test]
fn patch_applies_and_recreates_the_files() {
    let t = TestDir::new("driver-patch");
    let tree = t.path().join("tree");
    fs::create_dir_all(tree.join("drivers/virtio")).unwrap();
    fs::write(tree.join("drivers/virtio/Kconfig"), preimage(KCONFIG_DIFF)).unwrap();
    fs::write(
        tree.join("drivers/virtio/Makefile"),
        preimage(MAKEFILE_DIFF),
    )
    .unwrap();
    let p = Patch::new(PATCH_NAME.into(), PatchGroup::Driver, patch().into_bytes()).unwrap();
    PatchSeries::new(vec![p]).apply(&tree, &mut |_| {}).unwrap();
    for (path, text) in NEW_FILES {
        assert_eq!(fs::read_to_string(tree.join(path)).unwrap(), text, "{path}");
    }
    let kconfig = fs::read_to_string(tree.join("drivers/virtio/Kconfig")).unwrap();
    assert!(kconfig.contains("config VIRTIO_DMAPIN\n"));
    assert!(kconfig.contains("config VIRTIO_DMAPIN_NODEV\n"));
    let makefile = fs::read_to_string(tree.join("drivers/virtio/Makefile")).unwrap();
    assert!(makefile.contains("obj-$(CONFIG_VIRTIO_DMAPIN) += virtio_dmapin.o\n"));
}

/// Every file in guest-images/driver/ is either a patch input (compiled in, current) or one of
/// the two documented extras.
#[test]
fn driver_directory_is_accounted_for() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("driver");
    let mut on_disk: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut known: Vec<String> = PATCH_INPUTS
        .iter()
        .chain(&["README.md", "dmapin-test.c"])
        .map(|s| s.to_string())
        .collect();
    known.sort();
    assert_eq!(on_disk, known);
    let embedded = [DESCRIPTION, KCONFIG_DIFF, MAKEFILE_DIFF, SOURCE, HEADER];
    for (name, text) in PATCH_INPUTS.iter().zip(embedded) {
        let current = fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(current, text, "{name} changed on disk: rebuild");
    }
}
