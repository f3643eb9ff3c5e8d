use super::*;
use crate::cache::TestDir;
use std::time::{Duration, SystemTime};

fn mtime(p: &Path) -> SystemTime {
    fs::symlink_metadata(p).unwrap().modified().unwrap()
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// A stage made as pinvm makes one: a hard-link farm of `pristine`.
fn farm(pristine: &Path, stage: &Path) {
    let _ = fs::remove_dir_all(stage);
    for rel in walk(pristine).unwrap() {
        let to = stage.join(&rel);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        let from = pristine.join(&rel);
        if fs::symlink_metadata(&from)
            .unwrap()
            .file_type()
            .is_symlink()
        {
            std::os::unix::fs::symlink(fs::read_link(&from).unwrap(), &to).unwrap();
        } else {
            fs::hard_link(&from, &to).unwrap();
        }
    }
}

/// Replaces a staged file (as a patch does after breaking its link).
fn patch(stage: &Path, rel: &str, text: &str) {
    let p = stage.join(rel);
    fs::remove_file(&p).unwrap();
    fs::write(p, text).unwrap();
}

struct Trees {
    _t: TestDir,
    pristine: PathBuf,
    stage: PathBuf,
    dst: PathBuf,
    state: PathBuf,
}

fn trees() -> Trees {
    let t = TestDir::new("sync");
    let root = t.path().to_path_buf();
    let pristine = root.join("pristine");
    write(&pristine, "Makefile", "VERSION = 6\n");
    write(&pristine, "mm/gup.c", "int gup;\n");
    write(&pristine, "mm/filemap.c", "int filemap;\n");
    write(&pristine, "scripts/x.sh", "#!/bin/sh\n");
    fs::set_permissions(
        pristine.join("scripts/x.sh"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("gup.c", pristine.join("mm/link")).unwrap();
    Trees {
        pristine,
        stage: root.join("stage"),
        dst: root.join("dst"),
        state: root.join("state"),
        _t: t,
    }
}

fn tick() {
    // Coarse-timestamp file systems: make a later write's mtime distinguishable.
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn first_sync_copies_everything_and_a_second_writes_nothing() {
    let t = trees();
    farm(&t.pristine, &t.stage);
    let s = sync_tree(&Layers::single(&t.stage), &t.dst, &t.state).unwrap();
    assert_eq!((s.files, s.written, s.removed), (5, 5, 0), "{s:?}");
    assert!(!s.trusted_state);
    assert_eq!(
        fs::read_to_string(t.dst.join("mm/gup.c")).unwrap(),
        "int gup;\n"
    );
    assert_eq!(
        fs::read_link(t.dst.join("mm/link")).unwrap(),
        Path::new("gup.c")
    );
    let mode = fs::metadata(t.dst.join("scripts/x.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111);
    let before = mtime(&t.dst.join("mm/gup.c"));

    tick();
    farm(&t.pristine, &t.stage);
    let s = sync_tree(&Layers::single(&t.stage), &t.dst, &t.state).unwrap();
    assert_eq!((s.written, s.removed, s.hashed_bytes), (0, 0, 0), "{s:?}");
    assert!(s.trusted_state);
    assert_eq!(mtime(&t.dst.join("mm/gup.c")), before);
}

#[test]
fn changed_files_get_new_mtimes_and_old_content_never_comes_back_with_an_old_one() {
    let t = trees();
    farm(&t.pristine, &t.stage);
    sync_tree(&Layers::single(&t.stage), &t.dst, &t.state).unwrap();
    let filemap = mtime(&t.dst.join("mm/filemap.c"));

    tick();
    farm(&t.pristine, &t.stage);
    patch(&t.stage, "mm/gup.c", "int gup_patched;\n");
    let s = sync_tree(&Layers::single(&t.stage), &t.dst, &t.state).unwrap();
    assert_eq!(s.written, 1, "{s:?}");
    assert_eq!(s.changed, vec![PathBuf::from("mm/gup.c")]);
    let patched = mtime(&t.dst.join("mm/gup.c"));
    assert!(patched > filemap);
    assert_eq!(mtime(&t.dst.join("mm/filemap.c")), filemap);

    // Back to the pristine file (an old mtime in the stage): written anew.
    tick();
    farm(&t.pristine, &t.stage);
    let s = sync_tree(&Layers::single(&t.stage), &t.dst, &t.state).unwrap();
    assert_eq!(s.written, 1, "{s:?}");
    assert_eq!(
        fs::read_to_string(t.dst.join("mm/gup.c")).unwrap(),
        "int gup;\n"
    );
    assert!(mtime(&t.dst.join("mm/gup.c")) > patched);
    assert!(mtime(&t.dst.join("mm/gup.c")) > mtime(&t.pristine.join("mm/gup.c")));
}

#[test]
fn same_content_under_a_new_identity_is_hashed_but_not_written() {
    let t = trees();
    farm(&t.pristine, &t.stage);
    sync_tree(&Layers::single(&t.stage), &t.dst, &t.state).unwrap();
    let before = mtime(&t.dst.join("mm/gup.c"));
    tick();
    farm(&t.pristine, &t.stage);
    patch(&t.stage, "mm/gup.c", "int gup;\n");
    let s = sync_tree(&Layers::single(&t.stage), &t.dst, &t.state).unwrap();
    assert_eq!(s.written, 0, "{s:?}");
    assert_eq!(s.hashed_bytes, 9);
    assert_eq!(mtime(&t.dst.join("mm/gup.c")), before);
}

#[test]
fn removed_files_go_and_new_ones_come() {
    let t = trees();
    farm(&t.pristine, &t.stage);
    sync_tree(&Layers::single(&t.stage), &t.dst, &t.state).unwrap();
    farm(&t.pristine, &t.stage);
    fs::remove_file(t.stage.join("mm/filemap.c")).unwrap();
    write(&t.stage, "drivers/virtio/virtio_dmapin.c", "new\n");
    let s = sync_tree(&Layers::single(&t.stage), &t.dst, &t.state).unwrap();
    assert_eq!((s.written, s.removed), (1, 1), "{s:?}");
    assert!(!t.dst.join("mm/filemap.c").exists());
    assert!(t.dst.join("drivers/virtio/virtio_dmapin.c").is_file());
}

#[test]
fn without_a_record_contents_are_compared_and_strays_removed() {
    let t = trees();
    farm(&t.pristine, &t.stage);
    sync_tree(&Layers::single(&t.stage), &t.dst, &t.state).unwrap();
    let kept = mtime(&t.dst.join("mm/filemap.c"));
    // An interrupted sync: no record, a half-updated tree.
    fs::remove_file(&t.state).unwrap();
    fs::write(t.dst.join("mm/gup.c"), "half\n").unwrap();
    write(&t.dst, "stray.c", "x\n");
    tick();
    farm(&t.pristine, &t.stage);
    let s = sync_tree(&Layers::single(&t.stage), &t.dst, &t.state).unwrap();
    assert!(!s.trusted_state);
    assert_eq!((s.written, s.removed), (1, 1), "{s:?}");
    assert_eq!(
        fs::read_to_string(t.dst.join("mm/gup.c")).unwrap(),
        "int gup;\n"
    );
    assert!(!t.dst.join("stray.c").exists());
    assert_eq!(mtime(&t.dst.join("mm/filemap.c")), kept);
}

#[test]
fn a_damaged_record_is_not_trusted() {
    let t = trees();
    farm(&t.pristine, &t.stage);
    sync_tree(&Layers::single(&t.stage), &t.dst, &t.state).unwrap();
    fs::write(&t.state, format!("{STATE_HEADER}\nF nonsense\n")).unwrap();
    farm(&t.pristine, &t.stage);
    let s = sync_tree(&Layers::single(&t.stage), &t.dst, &t.state).unwrap();
    assert!(!s.trusted_state);
    assert_eq!(s.written, 0);
}

#[test]
fn state_lines_round_trip_names_with_spaces() {
    let t = trees();
    let mut map = BTreeMap::new();
    let id = StageId {
        ino: 7,
        size: 3,
        mtime_ns: -5,
    };
    map.insert(
        PathBuf::from("a dir/f i.c"),
        Entry {
            stage: id,
            content: Content::File {
                sha256: "ab".into(),
                exec: true,
            },
        },
    );
    map.insert(
        PathBuf::from("l nk"),
        Entry {
            stage: id,
            content: Content::Link(PathBuf::from("t a")),
        },
    );
    save_state(&t.state, &map).unwrap();
    assert_eq!(load_state(&t.state).unwrap().unwrap(), map);
}

#[test]
fn an_overlay_replaces_adds_and_deletes() {
    let t = trees();
    sync_tree(&Layers::single(&t.pristine), &t.dst, &t.state).unwrap();
    let overlay = t.stage.clone();
    write(&overlay, "mm/gup.c", "patched\n");
    write(&overlay, "mm/new.c", "new\n");
    let deleted = [PathBuf::from("mm/filemap.c")];
    let layers = Layers {
        base: &t.pristine,
        overlay: Some(&overlay),
        deleted: &deleted,
    };
    let s = sync_tree(&layers, &t.dst, &t.state).unwrap();
    assert_eq!((s.written, s.removed), (2, 1), "{s:?}");
    assert_eq!(
        fs::read_to_string(t.dst.join("mm/gup.c")).unwrap(),
        "patched\n"
    );
    assert!(t.dst.join("mm/new.c").is_file() && !t.dst.join("mm/filemap.c").exists());
    // Without the overlay: the base again.
    let s = sync_tree(&Layers::single(&t.pristine), &t.dst, &t.state).unwrap();
    assert_eq!((s.written, s.removed), (2, 1), "{s:?}");
    assert_eq!(
        fs::read_to_string(t.dst.join("mm/gup.c")).unwrap(),
        "int gup;\n"
    );
}
