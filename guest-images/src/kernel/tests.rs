//! Orchestration tests. A fake kernel tree whose Makefile imitates kbuild's targets
//! (tinyconfig, olddefconfig, vmlinux, bzImage, kernelrelease) exercises the whole
//! pipeline in milliseconds; the real build is the `#[ignore]`d test at the end.

use super::*;
use crate::cache::TestDir;
use config::parse_fragment;
use source::SourceInfo;
use std::fs;

/// A tree that looks like Linux 6.1 to pinvm. Its olddefconfig drops `CONFIG_DROPME`
/// and turns `CONFIG_FORCED` on, as unmet/select'ed dependencies would.
fn fake_kernel_tree(root: &Path) -> PathBuf {
    let tree = root.join("linux");
    fs::create_dir_all(tree.join("kernel")).unwrap();
    fs::write(tree.join("Kconfig"), "mainmenu \"fake\"\n").unwrap();
    fs::write(tree.join("kernel/fork.c"), "original\n").unwrap();
    fs::write(
        tree.join("Makefile"),
        "VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 5\nEXTRAVERSION =\n\
         tinyconfig:\n\t@echo '  HOSTCC  scripts/kconfig/conf.o'\n\t@echo CONFIG_BASE=y > $(O)/.config\n\
         olddefconfig:\n\t@grep -v -e DROPME -e FORCED $(O)/.config > $(O)/.config.tmp; \
         echo CONFIG_FORCED=y >> $(O)/.config.tmp; mv $(O)/.config.tmp $(O)/.config\n\
         vmlinux:\n\t@echo '  CC      $(O)/tools/objtool/check.o'\n\t@echo '  CC      kernel/fork.o'\n\t@echo '  LD      vmlinux'\n\
         \t@cat kernel/fork.c > $(O)/vmlinux\n\t@echo map > $(O)/System.map\n\
         bzImage: vmlinux\n\t@mkdir -p $(O)/arch/x86/boot\n\t@echo '  BUILD   arch/x86/boot/bzImage'\n\
         \t@echo bz > $(O)/arch/x86/boot/bzImage\n\
         kernelrelease:\n\t@echo 6.1.5-fake\n",
    )
    .unwrap();
    tree
}

fn patch_file(dir: &Path, name: &str, old: &str, new: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(
        &p,
        format!("--- a/kernel/fork.c\n+++ b/kernel/fork.c\n@@ -1 +1 @@\n-{old}\n+{new}\n"),
    )
    .unwrap();
    p
}

#[test]
fn platform_fix_parsing_and_decision() {
    assert_eq!("auto".parse::<PlatformFix>().unwrap(), PlatformFix::Auto);
    assert_eq!(
        "always".parse::<PlatformFix>().unwrap(),
        PlatformFix::Always
    );
    assert_eq!("never".parse::<PlatformFix>().unwrap(), PlatformFix::Never);
    assert!("yes".parse::<PlatformFix>().is_err());
    assert_eq!(PlatformFix::Auto.to_string(), "auto");
    assert!(decide_platform_fix(PlatformFix::Auto, true).apply);
    assert!(!decide_platform_fix(PlatformFix::Auto, false).apply);
    assert!(decide_platform_fix(PlatformFix::Always, false).apply);
    assert!(!decide_platform_fix(PlatformFix::Never, true).apply);
    assert!(decide_platform_fix(PlatformFix::Auto, true)
        .reason
        .contains("kvm_pvm"));
}

fn key_inputs() -> (SourceInfo, Vec<Fragment>, PatchSeries) {
    let src = SourceInfo::Debian {
        package: "linux-source-6.12".into(),
        package_version: "6.12.117-1~deb12u1".into(),
        tarball: "/usr/src/linux-source-6.12.tar.xz".into(),
        tarball_size: 1,
        tarball_sha256: "ab".repeat(32),
    };
    let frags = vec![
        parse_fragment("a", "CONFIG_A=y\n").unwrap(),
        parse_fragment("b", "CONFIG_B=y\n").unwrap(),
    ];
    let series = PatchSeries::new(vec![
        Patch::new(
            "p".into(),
            PatchGroup::Platform,
            b"--- a/x\n+++ b/x\n".to_vec(),
        )
        .unwrap(),
        Patch::new(
            "u".into(),
            PatchGroup::UnderTest,
            b"--- a/y\n+++ b/y\n".to_vec(),
        )
        .unwrap(),
    ]);
    (src, frags, series)
}

#[test]
fn cache_key_is_stable() {
    let (src, frags, series) = key_inputs();
    let k = cache_key(&src, &frags, &series, true, "gcc 12", "make 4.3");
    assert_eq!(
        k,
        cache_key(&src, &frags, &series, true, "gcc 12", "make 4.3")
    );
    // Golden value: if this changes, the recipe changed; bump BUILD_FORMAT_VERSION
    // when built kernels would differ, then update the value here.
    assert_eq!(
        k,
        "0451233be78d42b65af4736004bdd4dc6ab2805a7ee8c789cdb420a8b732508e"
    );
    // Names do not matter, bytes do.
    let renamed: Vec<Fragment> = frags
        .iter()
        .map(|f| Fragment {
            name: format!("elsewhere/{}", f.name),
            ..f.clone()
        })
        .collect();
    assert_eq!(
        k,
        cache_key(&src, &renamed, &series, true, "gcc 12", "make 4.3")
    );
}

#[test]
fn cache_key_changes_with_every_input() {
    let (src, frags, series) = key_inputs();
    let base = cache_key(&src, &frags, &series, true, "gcc 12", "make 4.3");
    let mut variants = Vec::new();
    // Source identity.
    for change in 0..3 {
        let mut s = src.clone();
        if let SourceInfo::Debian {
            package_version,
            tarball_sha256,
            tarball_size,
            ..
        } = &mut s
        {
            match change {
                0 => package_version.push('+'),
                1 => *tarball_sha256 = "cd".repeat(32),
                _ => *tarball_size += 1,
            }
        }
        variants.push(cache_key(&s, &frags, &series, true, "gcc 12", "make 4.3"));
    }
    let tree = SourceInfo::GitTree {
        path: "/l".into(),
        commit: "c".into(),
        diff_sha256: "d".into(),
        untracked_sha256: "u".into(),
        dirty: true,
    };
    variants.push(cache_key(
        &tree, &frags, &series, true, "gcc 12", "make 4.3",
    ));
    // Fragments: content, order, presence.
    let mut f2 = frags.clone();
    f2[1] = parse_fragment("b", "CONFIG_B=m\n").unwrap();
    variants.push(cache_key(&src, &f2, &series, true, "gcc 12", "make 4.3"));
    let reversed: Vec<Fragment> = frags.iter().rev().cloned().collect();
    variants.push(cache_key(
        &src, &reversed, &series, true, "gcc 12", "make 4.3",
    ));
    variants.push(cache_key(
        &src,
        &frags[..1],
        &series,
        true,
        "gcc 12",
        "make 4.3",
    ));
    // Fragments split differently but with the same concatenated text.
    let joined = vec![parse_fragment("ab", "CONFIG_A=y\nCONFIG_B=y\n").unwrap()];
    variants.push(cache_key(
        &src, &joined, &series, true, "gcc 12", "make 4.3",
    ));
    // Patches: content, group, presence.
    let mut p = series.patches().to_vec();
    p[1].text.extend_from_slice(b" ");
    variants.push(cache_key(
        &src,
        &frags,
        &PatchSeries::new(p),
        true,
        "gcc 12",
        "make 4.3",
    ));
    let mut p = series.patches().to_vec();
    p[1].group = PatchGroup::Driver;
    variants.push(cache_key(
        &src,
        &frags,
        &PatchSeries::new(p),
        true,
        "gcc 12",
        "make 4.3",
    ));
    let p = series.patches()[1..].to_vec();
    variants.push(cache_key(
        &src,
        &frags,
        &PatchSeries::new(p),
        true,
        "gcc 12",
        "make 4.3",
    ));
    // Platform decision, compiler, make.
    variants.push(cache_key(
        &src, &frags, &series, false, "gcc 12", "make 4.3",
    ));
    variants.push(cache_key(&src, &frags, &series, true, "gcc 13", "make 4.3"));
    variants.push(cache_key(&src, &frags, &series, true, "gcc 12", "make 4.4"));
    let mut all = variants.clone();
    all.push(base.clone());
    all.sort();
    all.dedup();
    assert_eq!(
        all.len(),
        variants.len() + 1,
        "every variant must give its own key"
    );
}

#[test]
fn pipeline_builds_publishes_and_then_hits_the_cache() {
    let t = TestDir::new("pipeline");
    let tree = fake_kernel_tree(t.path());
    let cache_root = t.path().join("cache");
    let user_frag = t.path().join("user.config");
    fs::write(
        &user_frag,
        "CONFIG_USER=y\n# CONFIG_FORCED_OFF is not set\n",
    )
    .unwrap();
    let req = BuildRequest {
        source: KernelSource::Tree(tree.clone()),
        fragments: vec![user_frag.clone()],
        patches: vec![
            patch_file(t.path(), "1.patch", "original", "patched once"),
            patch_file(t.path(), "2.patch", "patched once", "patched twice"),
        ],
        platform_fix: PlatformFix::Never,
        jobs: Some(1),
        without_driver: true,
        bzimage: true,
    };
    assert!(lookup(&req, &cache_root).unwrap().is_none());

    let mut events: Vec<BuildProgress> = Vec::new();
    let k = build(&req, &cache_root, &mut |e| events.push(e)).unwrap();
    assert!(!k.cached);
    assert_eq!(fs::read_to_string(&k.vmlinux).unwrap(), "patched twice\n");
    assert_eq!(
        fs::read_to_string(k.bzimage.as_ref().unwrap()).unwrap(),
        "bz\n"
    );
    assert_eq!(fs::read_to_string(&k.system_map).unwrap(), "map\n");
    assert_eq!(
        fs::read_to_string(tree.join("kernel/fork.c")).unwrap(),
        "original\n",
        "user tree untouched"
    );
    let cfg = fs::read_to_string(k.dir.join("config")).unwrap();
    assert!(
        cfg.contains("CONFIG_USER=y") && cfg.contains("CONFIG_64BIT=y"),
        "{cfg}"
    );
    assert!(fs::read_to_string(k.dir.join("build.log"))
        .unwrap()
        .contains("  CC      kernel/fork.o"));

    let phases: Vec<Phase> = events
        .iter()
        .filter_map(|e| match e {
            BuildProgress::Phase(p) => Some(*p),
            _ => None,
        })
        .collect();
    assert_eq!(
        phases,
        [
            Phase::Resolving,
            Phase::Copying,
            Phase::Patching,
            Phase::Syncing,
            Phase::Configuring,
            Phase::Compiling,
            Phase::Publishing
        ]
    );
    let compiled: Vec<(u64, String)> = events
        .iter()
        .filter_map(|e| match e {
            BuildProgress::Compiled { count, file } => Some((*count, file.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        compiled,
        [
            (1, "tools/objtool/check.o".to_string()),
            (2, "kernel/fork.o".to_string()),
            (3, "vmlinux".to_string()),
            (4, "arch/x86/boot/bzImage".to_string())
        ]
    );
    assert!(events.contains(&BuildProgress::Patch {
        index: 2,
        total: 2,
        name: req.patches[1].display().to_string(),
        group: PatchGroup::UnderTest
    }));

    // Manifest.
    let m = &k.manifest;
    assert_eq!(m.key, k.dir.file_name().unwrap().to_string_lossy());
    assert_eq!(m.kernelrelease, "6.1.5-fake");
    assert_eq!(m.version, "6.1");
    assert!(
        matches!(&m.source, SourceInfo::Tree { path, .. } if *path == tree.canonicalize().unwrap())
    );
    let frag_names: Vec<&str> = m.fragments.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        frag_names,
        [
            "pinvm:pinvm.config",
            "pinvm:pinvm-6.1.config",
            user_frag.to_str().unwrap()
        ]
    );
    assert_eq!(m.patches.len(), 2);
    assert!(m.patches.iter().all(|p| p.group == PatchGroup::UnderTest));
    assert!(!m.platform_fix.applied);
    assert_eq!(m.platform_fix.reason, "--platform-fix never");
    assert!(m.compiler.starts_with("gcc"), "{}", m.compiler);
    assert!(m.make.starts_with("GNU Make"), "{}", m.make);
    assert_eq!(m.jobs, 1);
    let names: Vec<&str> = m.artefacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["vmlinux", "bzImage", "System.map", "config", "build.log"]
    );
    assert_eq!(m.artefacts[0].size, "patched twice\n".len() as u64);
    assert!(m.build_started.ends_with('Z') && m.build_seconds >= 0.0);
    assert!(m.build_dir.join("out/.config").is_file(), "build tree kept");

    // Same inputs: instant, from the cache, no phase after resolving.
    let mut again: Vec<BuildProgress> = Vec::new();
    let t0 = Instant::now();
    let k2 = build(&req, &cache_root, &mut |e| again.push(e)).unwrap();
    assert!(k2.cached);
    assert_eq!(k2.dir, k.dir);
    assert_eq!(again, [BuildProgress::Phase(Phase::Resolving)]);
    assert!(t0.elapsed().as_secs() < 5);
    assert_eq!(lookup(&req, &cache_root).unwrap().unwrap().dir, k.dir);

    // Published dir removed: rebuilt in the kept build slot, whose tree needs no write.
    cache::remove_path(&k.dir).unwrap();
    let mut third: Vec<BuildProgress> = Vec::new();
    let k3 = build(&req, &cache_root, &mut |e| third.push(e)).unwrap();
    assert!(!k3.cached);
    let inc = k3.manifest.incremental.as_ref().unwrap();
    assert!(inc.incremental, "{inc:?}");
    assert_eq!((inc.files_written, inc.files_removed), (0, 0), "{inc:?}");
    assert_eq!(inc.previous_key.as_deref(), Some(k.manifest.key.as_str()));
    assert_eq!(fs::read_to_string(&k3.vmlinux).unwrap(), "patched twice\n");

    // A changed user tree is a different key.
    fs::write(tree.join("kernel/fork.c"), "original\n\n").unwrap();
    assert!(lookup(&req, &cache_root).unwrap().is_none());
}

/// The loop builds vmlinux only; a bzImage is built when a machine that boots one asks for
/// it, from the same inputs in the build slot, and added to the published kernel.
#[test]
fn a_bzimage_is_built_on_demand_only() {
    let t = TestDir::new("bzimage");
    let tree = fake_kernel_tree(t.path());
    let cache_root = t.path().join("cache");
    let mut req = BuildRequest {
        source: KernelSource::Tree(tree),
        platform_fix: PlatformFix::Never,
        jobs: Some(1),
        without_driver: true,
        ..Default::default()
    };
    let mut events: Vec<BuildProgress> = Vec::new();
    let k = build(&req, &cache_root, &mut |e| events.push(e)).unwrap();
    assert_eq!(k.bzimage, None);
    assert!(!k.dir.join("bzImage").exists());
    assert!(!events
        .iter()
        .any(|e| matches!(e, BuildProgress::Compiled { file, .. } if file.contains("bzImage"))));
    let names: Vec<&str> = k
        .manifest
        .artefacts
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(names, ["vmlinux", "System.map", "config", "build.log"]);

    // Asked for again without a bzImage: a cache hit.
    assert!(build(&req, &cache_root, &mut |_| {}).unwrap().cached);

    // Asked for with one: built in the slot and added to the same published kernel.
    req.bzimage = true;
    let mut events: Vec<BuildProgress> = Vec::new();
    let k2 = build(&req, &cache_root, &mut |e| events.push(e)).unwrap();
    assert_eq!(k2.dir, k.dir);
    assert!(!k2.cached && k2.bzimage_added);
    assert!(!k.bzimage_added);
    let bz = k2.bzimage.as_ref().expect("a bzImage now");
    assert_eq!(fs::read_to_string(bz).unwrap(), "bz\n");
    assert!(events
        .iter()
        .any(|e| matches!(e, BuildProgress::Compiled { file, .. } if file.contains("bzImage"))));
    assert!(!events
        .iter()
        .any(|e| matches!(e, BuildProgress::Note(n) if n.contains("differs"))));
    assert!(k2.manifest.artefacts.iter().any(|a| a.name == "bzImage"));
    assert_eq!(k2.manifest.key, k.manifest.key);
    // And from then on both requests are cache hits.
    assert!(build(&req, &cache_root, &mut |_| {}).unwrap().cached);
    req.bzimage = false;
    let k3 = build(&req, &cache_root, &mut |_| {}).unwrap();
    assert!(k3.cached && k3.bzimage.is_some());
}

#[test]
fn concurrent_builds_of_one_key_build_once() {
    let t = TestDir::new("concurrent");
    let tree = fake_kernel_tree(t.path());
    let cache_root = t.path().join("cache");
    let req = BuildRequest {
        source: KernelSource::Tree(tree),
        platform_fix: PlatformFix::Never,
        jobs: Some(1),
        without_driver: true,
        ..Default::default()
    };
    let results: Vec<BuiltKernel> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| s.spawn(|| build(&req, &cache_root, &mut |_| {}).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|k| !k.cached).count(), 1);
    assert!(results.iter().all(|k| k.dir == results[0].dir));
    assert_eq!(
        fs::read_to_string(&results[0].vmlinux).unwrap(),
        "original\n"
    );
    let leftovers: Vec<_> = fs::read_dir(cache_root.join("kernels"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp dirs left: {leftovers:?}");
}

#[test]
fn second_build_with_a_published_entry_never_runs_make() {
    // The "source" has no working Makefile targets at all: any make run would fail.
    let t = TestDir::new("instant");
    let tree = t.path().join("linux");
    fs::create_dir_all(&tree).unwrap();
    fs::write(
        tree.join("Makefile"),
        "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\nall:\n\tfalse\n",
    )
    .unwrap();
    fs::write(tree.join("Kconfig"), "").unwrap();
    let cache_root = t.path().join("cache");
    let req = BuildRequest {
        source: KernelSource::Tree(tree),
        platform_fix: PlatformFix::Never,
        without_driver: true,
        ..Default::default()
    };
    let p = plan(&req, &cache_root).unwrap();
    let dir = kernel_dir(&cache_root, &p.key);
    fs::create_dir_all(&dir).unwrap();
    for f in ["vmlinux", "bzImage", "System.map", "config", "build.log"] {
        fs::write(dir.join(f), f).unwrap();
    }
    let manifest = Manifest {
        format: BUILD_FORMAT_VERSION,
        key: p.key.clone(),
        kernelrelease: "6.12.0".into(),
        version: "6.12".into(),
        source: p.source.info.clone(),
        fragments: vec![],
        patches: vec![],
        platform_fix: manifest::PlatformFixRecord {
            applied: false,
            reason: "x".into(),
        },
        compiler: p.compiler.clone(),
        make: p.make.clone(),
        jobs: 1,
        build_started: String::new(),
        build_finished: String::new(),
        build_seconds: 0.0,
        build_dir: cache_root.join("slots/x"),
        artefacts: vec![],
        incremental: None,
    };
    manifest.write(&dir).unwrap();
    let mut events = Vec::new();
    let t0 = Instant::now();
    let k = build(&req, &cache_root, &mut |e| events.push(e)).unwrap();
    let took = t0.elapsed();
    assert!(k.cached);
    assert_eq!(k.manifest, manifest);
    assert_eq!(k.vmlinux, dir.join("vmlinux"));
    assert_eq!(events, [BuildProgress::Phase(Phase::Resolving)]);
    assert!(took.as_millis() < 2000, "{took:?}");
    assert!(!slot::slots_dir(&cache_root).exists(), "nothing was built");

    // A damaged entry is reported, not silently rebuilt over.
    fs::remove_file(dir.join("System.map")).unwrap();
    let err = lookup(&req, &cache_root).unwrap_err().to_string();
    assert!(err.contains("damaged"), "{err}");
}

#[test]
fn survival_failure_names_the_options() {
    let t = TestDir::new("survival");
    let tree = fake_kernel_tree(t.path());
    let frag = t.path().join("bad.config");
    fs::write(
        &frag,
        "CONFIG_DROPME=y\n# CONFIG_FORCED is not set\nCONFIG_OK=y\n",
    )
    .unwrap();
    let req = BuildRequest {
        source: KernelSource::Tree(tree),
        fragments: vec![frag.clone()],
        platform_fix: PlatformFix::Never,
        jobs: Some(1),
        without_driver: true,
        ..Default::default()
    };
    let err = format!(
        "{:#}",
        build(&req, &t.path().join("cache"), &mut |_| {}).unwrap_err()
    );
    let f = frag.display();
    assert!(
        err.contains(&format!(
            "CONFIG_DROPME: requested y, got <absent> (from {f}:1)"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("CONFIG_FORCED: requested n, got y (from {f}:2)")),
        "{err}"
    );
    assert!(!err.contains("CONFIG_OK"), "{err}");
    assert!(err.contains("2 requested config option(s)"), "{err}");
}

#[test]
fn request_errors_are_clear() {
    let t = TestDir::new("errors");
    let tree = fake_kernel_tree(t.path());
    let cache_root = t.path().join("cache");
    // Bad fragment: file and line.
    let frag = t.path().join("typo.config");
    fs::write(&frag, "CONFIG_A=y\nCONFIG_B=yes\n").unwrap();
    let req = BuildRequest {
        source: KernelSource::Tree(tree.clone()),
        fragments: vec![frag.clone()],
        platform_fix: PlatformFix::Never,
        without_driver: true,
        ..Default::default()
    };
    let err = format!("{:#}", lookup(&req, &cache_root).unwrap_err());
    assert!(
        err.contains(&format!("{}:2: bad value", frag.display())),
        "{err}"
    );
    // A patch that does not apply: named, with patch's output.
    let bad = patch_file(t.path(), "bad.patch", "not there", "x");
    let req = BuildRequest {
        source: KernelSource::Tree(tree.clone()),
        patches: vec![bad.clone()],
        platform_fix: PlatformFix::Never,
        without_driver: true,
        ..Default::default()
    };
    let err = format!("{:#}", build(&req, &cache_root, &mut |_| {}).unwrap_err());
    assert!(
        err.contains(&format!("{} does not apply", bad.display())),
        "{err}"
    );
    assert!(err.contains("FAILED"), "{err}");
    // Platform fix demanded for a version that has none.
    fs::write(tree.join("Makefile"), "VERSION = 5\nPATCHLEVEL = 10\n").unwrap();
    let req = BuildRequest {
        source: KernelSource::Tree(tree),
        platform_fix: PlatformFix::Always,
        ..Default::default()
    };
    let err = format!("{:#}", lookup(&req, &cache_root).unwrap_err());
    assert!(
        err.contains("no") && err.contains("Linux 5.10") && err.contains("--platform-fix never"),
        "{err}"
    );
}

/// The real thing: `cargo test -p guest-images --release -- --ignored real_debian_6_12 --nocapture`.
/// Uses `$PINVM_CACHE` (or the default cache) and the platform fix in `auto` mode.
#[test]
#[ignore = "builds a real kernel: minutes of CPU"]
fn real_debian_6_12_build() {
    let cache_root = cache::cache_dir().unwrap();
    let req = BuildRequest {
        source: KernelSource::Debian(DebianVersion::V6_12),
        platform_fix: PlatformFix::Auto,
        jobs: Some(2),
        ..Default::default()
    };
    let t0 = Instant::now();
    let mut r = progress::ProgressRenderer::stderr();
    let k = build(&req, &cache_root, &mut |e| r.event(e));
    r.finish();
    let k = k.unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("first call: {:?} (cached: {})", t0.elapsed(), k.cached);
    eprintln!(
        "{}",
        fs::read_to_string(k.dir.join("manifest.json")).unwrap()
    );
    let t1 = Instant::now();
    let k2 = build(&req, &cache_root, &mut |_| {}).unwrap();
    eprintln!("second call: {:?}", t1.elapsed());
    assert!(k2.cached && k2.dir == k.dir);
    assert!(t1.elapsed().as_secs() < 2);
    assert_eq!(k.manifest.version, "6.12");
    assert!(k.manifest.kernelrelease.starts_with("6.12."));
    let elf = fs::read(&k.vmlinux).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
}

/// Source, patches and config (no compile) for both Debian versions, platform fix on:
/// `cargo test -p guest-images --release -- --ignored real_debian_configure --nocapture`.
#[test]
#[ignore = "extracts and configures real kernels: about a minute"]
fn real_debian_configure_both_versions() {
    let cache_root = cache::cache_dir().unwrap();
    for v in DebianVersion::ALL {
        let req = BuildRequest {
            source: KernelSource::Debian(v),
            platform_fix: PlatformFix::Always,
            ..Default::default()
        };
        let t0 = Instant::now();
        let p = plan(&req, &cache_root).unwrap();
        let t = TestDir::new("configure");
        let slot = slot::Slot::open(t.path(), &p.source, "test", || {}).unwrap();
        let mut events = Vec::new();
        stage_and_sync(&p, &cache_root, &slot, &mut |e| events.push(e))
            .unwrap_or_else(|e| panic!("{v}: {e:#}"));
        let (src, out) = (slot.src(), slot.out());
        fs::create_dir_all(&out).unwrap();
        let log = out.join("build.log");
        let mk = make::Make {
            src: &src,
            out: &out,
            log: &log,
            ccache: None,
        };
        configure(&p, &mk).unwrap_or_else(|e| panic!("{v}: {e:#}"));
        let patches: Vec<&str> = p.series.patches().iter().map(|p| p.name.as_str()).collect();
        eprintln!(
            "{v}: patched {patches:?} and configured in {:?}",
            t0.elapsed()
        );
        assert!(patches[0].starts_with("pinvm:kvm_pvm-syscall-fault-"));
        assert!(p
            .series
            .patches()
            .iter()
            .all(|p| p.group == PatchGroup::Platform));
    }
}

#[test]
fn another_patch_rebuilds_in_the_same_slot_writing_only_what_changed() {
    let t = TestDir::new("slot");
    let tree = fake_kernel_tree(t.path());
    fs::write(tree.join("kernel/other.c"), "untouched\n").unwrap();
    let cache_root = t.path().join("cache");
    let req = |patches: Vec<PathBuf>| BuildRequest {
        source: KernelSource::Tree(tree.clone()),
        patches,
        platform_fix: PlatformFix::Never,
        jobs: Some(1),
        without_driver: true,
        ..Default::default()
    };
    let a = build(&req(vec![]), &cache_root, &mut |_| {}).unwrap();
    let first = a.manifest.incremental.clone().unwrap();
    assert!(!first.incremental);
    assert_eq!(first.files_written, 4, "{first:?}");
    let slot_src = a.manifest.build_dir.join("src");
    let other = fs::metadata(slot_src.join("kernel/other.c"))
        .unwrap()
        .modified()
        .unwrap();

    std::thread::sleep(std::time::Duration::from_millis(20));
    let fix = patch_file(t.path(), "fix.patch", "original", "fixed");
    let b = build(&req(vec![fix]), &cache_root, &mut |_| {}).unwrap();
    assert_ne!(a.manifest.key, b.manifest.key);
    assert_eq!(
        b.manifest.build_dir, a.manifest.build_dir,
        "one slot per origin"
    );
    let inc = b.manifest.incremental.clone().unwrap();
    assert!(inc.incremental);
    assert_eq!(inc.previous_key.as_deref(), Some(a.manifest.key.as_str()));
    assert_eq!(inc.changed, ["kernel/fork.c"]);
    assert_eq!(fs::read_to_string(&b.vmlinux).unwrap(), "fixed\n");
    let log = fs::read_to_string(b.dir.join("build.log")).unwrap();
    assert!(
        !log.contains("tinyconfig"),
        "same fragments: .config kept\n{log}"
    );
    let still = fs::metadata(slot_src.join("kernel/other.c"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(still, other, "unchanged files keep their mtime");

    // Back to no patch: a cache hit; with the entry gone, the pristine content is
    // written back (a new mtime), not linked back with its old one.
    cache::remove_path(&a.dir).unwrap();
    let c = build(&req(vec![]), &cache_root, &mut |_| {}).unwrap();
    assert_eq!(fs::read_to_string(&c.vmlinux).unwrap(), "original\n");
    assert_eq!(c.manifest.incremental.unwrap().changed, ["kernel/fork.c"]);
    let fork = fs::metadata(slot_src.join("kernel/fork.c"))
        .unwrap()
        .modified()
        .unwrap();
    let pristine = fs::metadata(tree.join("kernel/fork.c"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(fork > pristine);
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_git_revision_builds_without_touching_the_repository() {
    let t = TestDir::new("gitrev");
    let tree = fake_kernel_tree(t.path());
    git(&tree, &["init", "-q"]);
    git(&tree, &["add", "-A"]);
    git(&tree, &["commit", "-qm", "one"]);
    let one = git(&tree, &["rev-parse", "HEAD"]);
    fs::write(tree.join("kernel/fork.c"), "second\n").unwrap();
    git(&tree, &["commit", "-qam", "two"]);
    // The user's uncommitted work and index must survive.
    fs::write(tree.join("kernel/fork.c"), "work in progress\n").unwrap();
    let status = git(&tree, &["status", "--porcelain"]);
    let cache_root = t.path().join("cache");
    let req = |rev: &str| BuildRequest {
        source: format!("{}@{rev}", tree.display()).parse().unwrap(),
        platform_fix: PlatformFix::Never,
        jobs: Some(1),
        without_driver: true,
        ..Default::default()
    };
    let a = build(&req(&one), &cache_root, &mut |_| {}).unwrap();
    assert_eq!(fs::read_to_string(&a.vmlinux).unwrap(), "original\n");
    assert!(matches!(&a.manifest.source, SourceInfo::GitRev { commit, .. } if *commit == one));
    let b = build(&req("HEAD"), &cache_root, &mut |_| {}).unwrap();
    assert_eq!(fs::read_to_string(&b.vmlinux).unwrap(), "second\n");
    assert_eq!(b.manifest.incremental.unwrap().changed, ["kernel/fork.c"]);
    assert_eq!(git(&tree, &["status", "--porcelain"]), status);
    assert_eq!(
        fs::read_to_string(tree.join("kernel/fork.c")).unwrap(),
        "work in progress\n"
    );
    let err = build(&req("nosuchrev"), &cache_root, &mut |_| {}).unwrap_err();
    assert!(format!("{err:#}").contains("not a commit"), "{err:#}");
}
