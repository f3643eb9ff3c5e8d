//! Building guest kernels: source → work copy → patches → config → `make` → cache.
//!
//! # API (used by `pinvm kernel build`)
//!
//! ```no_run
//! use guest_images::kernel::{self, BuildRequest, KernelSource, PlatformFix};
//! use guest_images::kernel::progress::ProgressRenderer;
//! # fn main() -> anyhow::Result<()> {
//! let req = BuildRequest {
//!     source: "debian-6.12".parse::<KernelSource>()?,      // --source
//!     fragments: vec!["extra.config".into()],                  // --config (repeatable)
//!     patches: vec!["fix.patch".into()],                       // --patch (repeatable)
//!     platform_fix: "auto".parse::<PlatformFix>()?,            // --platform-fix
//!     jobs: None,                                              // default: all CPUs
//!     without_driver: false,                                   // --no-driver
//!     bzimage: true,                                           // QEMU boots one
//! };
//! let cache = guest_images::cache::cache_dir()?;
//! if let Some(k) = kernel::lookup(&req, &cache)? {              // never builds
//!     println!("cached: {}", k.vmlinux.display());
//! }
//! let mut r = ProgressRenderer::stderr();
//! let built = kernel::build(&req, &cache, &mut |ev| r.event(ev));
//! r.finish();
//! let k = built?;                                              // errors are human-readable
//! println!("{} ({})", k.vmlinux.display(), k.manifest.kernelrelease);
//! # Ok(()) }
//! ```
//!
//! # What a build does
//! 1. **Resolve** the source identity ([`source`]) and compute the cache key; if
//!    `<cache>/kernels/<key>/` exists, return it at once (`cached: true`, no `make`).
//! 2. Take `<cache>/locks/kernel-<key>.lock` (flock), so two processes never build one key
//!    at the same time; the second waits and then finds the published result.
//! 3. Open the source's **build slot** ([`slot`]): one per origin (Debian package version,
//!    user tree or repository) and toolchain, reused by every key built from that origin,
//!    and locked while in use.
//! 4. **Stage** `<slot>/stage`: a hard-link farm of the extracted Debian tree (extracted
//!    once into `<cache>/src/`), of the user's tree, or of a git revision's files (kept in
//!    `<slot>/base` by `git read-tree -u` with a private index).
//! 5. **Patches**, by group ([`PatchGroup`]), never interleaved: the platform fix when
//!    enabled (`kvm_pvm-syscall-fault-<version>.patch`, then the version-independent
//!    `kvm_pvm-*.patch`), pinvm's driver, then the `--patch` files in order. A patched
//!    file is replaced by a private copy first, so no origin file is ever written. The
//!    manifest records each patch's group and SHA-256.
//! 6. **Sync** `<slot>/src` to the stage ([`sync`]): only files whose content differs are
//!    written (with a new mtime); the others keep theirs, so `make` rebuilds only what the
//!    change reaches.
//! 7. **Config** in `<slot>/out` (the kept `O=` directory): `make tinyconfig`, append pinvm's
//!    fragment (`pinvm.config`, then `pinvm-<major.minor>.config` if there is one), then the
//!    `--config` fragments in order, `make olddefconfig`, then the **survival check**: every
//!    requested option must hold in the final `.config` (see [`config`]). kbuild notices
//!    which options changed and rebuilds only the objects that use them.
//! 8. **Compile** `make -j<N> vmlinux` (log: `<slot>/out/build.log`), plus `bzImage` only
//!    when the request asks for it ([`BuildRequest::bzimage`]: QEMU boots a bzImage, pinvm's
//!    VMM the vmlinux; a cached kernel without one gets it on demand), through ccache
//!    when it is installed (`<cache>/ccache`, 5 GB; `PINVM_CCACHE=0` turns it off), with
//!    `KBUILD_BUILD_TIMESTAMP/USER/HOST/VERSION` fixed so that the same inputs give the
//!    same vmlinux, and with the caller's kbuild variables removed ([`make::kbuild_environment`]).
//! 9. **Publish** `vmlinux`, `bzImage` (when built), `System.map`, `config`, `build.log` and
//!    `manifest.json` (with what the slot rebuilt: [`manifest::IncrementalRecord`]) into
//!    `<cache>/kernels/<key>/` (temp dir + rename).
//!
//! Slots may be deleted when no pinvm is running (`pinvm cache prune`); only
//! `<cache>/kernels/` is needed to boot.
//!
//! The cache key ([`cache_key`]) covers: the source identity, every fragment's bytes
//! (pinvm's embedded ones included), every patch's bytes and group, the platform-fix
//! decision, `gcc --version` and `make --version` (first lines), and
//! [`BUILD_FORMAT_VERSION`].

pub mod config;
pub mod driver;
pub mod embedded;
pub mod make;
pub mod manifest;
pub mod patches;
pub mod progress;
pub mod slot;
pub mod source;
pub mod sync;

pub use manifest::Manifest;
pub use patches::PatchGroup;
pub use progress::{BuildProgress, Phase};
pub use source::{DebianVersion, KernelSource};

use crate::cache::{self, FileLock, KeyBuilder};
use anyhow::{anyhow, bail, Context, Result};
use config::Fragment;
use manifest::{ArtefactRecord, FragmentRecord, IncrementalRecord, PatchRecord, PlatformFixRecord};
use patches::{Patch, PatchSeries};
use source::ResolvedSource;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Instant, SystemTime};

/// Version of the build recipe and manifest format; part of the cache key. Bump it when
/// a change here would make a kernel built before it differ from one built after it.
pub const BUILD_FORMAT_VERSION: u32 = 2;

/// Where the host tells that its KVM is kvm_pvm.
const KVM_PVM_MODULE: &str = "/sys/module/kvm_pvm";

/// Whether to apply the kvm_pvm platform fix (`--platform-fix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlatformFix {
    /// Apply it when the build host's `/dev/kvm` is kvm_pvm (`/sys/module/kvm_pvm` exists).
    #[default]
    Auto,
    /// Apply it whatever the host (to build on one host for a kvm_pvm host).
    Always,
    /// Never apply it (the guest's user space will not run on a kvm_pvm host).
    Never,
}

impl FromStr for PlatformFix {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(PlatformFix::Auto),
            "always" => Ok(PlatformFix::Always),
            "never" => Ok(PlatformFix::Never),
            _ => bail!("unknown --platform-fix {s:?}: expected auto, always or never"),
        }
    }
}

impl fmt::Display for PlatformFix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlatformFix::Auto => "auto",
            PlatformFix::Always => "always",
            PlatformFix::Never => "never",
        })
    }
}

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildRequest {
    /// The kernel source to build (`--source`).
    pub source: KernelSource,
    /// User config fragments, applied after pinvm's, in order.
    pub fragments: Vec<PathBuf>,
    /// User patches (group [`PatchGroup::UnderTest`]), applied after pinvm's, in order.
    pub patches: Vec<PathBuf>,
    /// Whether to apply the kvm_pvm platform fix (`--platform-fix`).
    pub platform_fix: PlatformFix,
    /// `make -j`; default: `std::thread::available_parallelism()`.
    pub jobs: Option<usize>,
    /// Leave out pinvm's guest driver (patch group Driver and its config fragment), e.g. for
    /// a tree it does not apply to.
    pub without_driver: bool,
    /// Also build the compressed boot image (`bzImage`), which QEMU boots. The kernel loop
    /// needs only vmlinux (what pinvm's VMM boots); a cached kernel published without a
    /// bzImage gets one on demand, from the same inputs in its build slot.
    pub bzimage: bool,
}

/// A published kernel in the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltKernel {
    /// `<cache>/kernels/<key>/`.
    pub dir: PathBuf,
    /// Uncompressed ELF (what pinvm boots).
    pub vmlinux: PathBuf,
    /// The compressed boot image (what QEMU boots), when it was built.
    pub bzimage: Option<PathBuf>,
    /// The kernel's symbol table, for naming where stopped vCPUs were.
    pub system_map: PathBuf,
    /// What it was built from (its `manifest.json`).
    pub manifest: Manifest,
    /// True when it was already in the cache (nothing was built).
    pub cached: bool,
    /// True when only the bzImage was built now, for a kernel cached without one.
    pub bzimage_added: bool,
}

/// The platform-fix decision for a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformDecision {
    /// Whether the platform fix patches go into the series.
    pub apply: bool,
    /// Why, for messages and the manifest (e.g. `auto: this host's KVM is not kvm_pvm`).
    pub reason: String,
}

/// Decides whether to apply the platform fix; `host_is_pvm` is whether the build host's
/// KVM is kvm_pvm.
pub fn decide_platform_fix(fix: PlatformFix, host_is_pvm: bool) -> PlatformDecision {
    let (apply, reason) = match (fix, host_is_pvm) {
        (PlatformFix::Always, _) => (true, "--platform-fix always".to_string()),
        (PlatformFix::Never, _) => (false, "--platform-fix never".to_string()),
        (PlatformFix::Auto, true) => (
            true,
            format!("auto: this host's KVM is kvm_pvm ({KVM_PVM_MODULE} exists)"),
        ),
        (PlatformFix::Auto, false) => (
            false,
            format!("auto: this host's KVM is not kvm_pvm (no {KVM_PVM_MODULE})"),
        ),
    };
    PlatformDecision { apply, reason }
}

/// Everything that determines a build, resolved without building anything.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The cache key ([`cache_key`]): the directory name under `<cache>/kernels/`.
    pub key: String,
    /// The source and its identity.
    pub source: ResolvedSource,
    /// pinvm's fragments, then the user's.
    pub fragments: Vec<Fragment>,
    /// The patches in application order: platform fix, driver, the user's.
    pub series: PatchSeries,
    /// Whether the platform fix is applied, and why.
    pub platform: PlatformDecision,
    /// `gcc --version`, first line.
    pub compiler: String,
    /// `make --version`, first line.
    pub make: String,
}

/// The cache key of a build (see the module docs for what it covers). Names of
/// fragments and patches are not part of it: the same bytes under another path hit.
pub fn cache_key(
    source: &source::SourceInfo,
    fragments: &[Fragment],
    series: &PatchSeries,
    platform_applied: bool,
    compiler: &str,
    make: &str,
) -> String {
    let mut k = KeyBuilder::new("pinvm-kernel", BUILD_FORMAT_VERSION);
    source.add_to_key(&mut k);
    k.field("fragments", &(fragments.len() as u64).to_le_bytes());
    for f in fragments {
        k.str_field("fragment", &f.text);
    }
    k.field("patches", &(series.patches().len() as u64).to_le_bytes());
    for p in series.patches() {
        k.str_field("patch-group", p.group.as_str());
        k.field("patch", &p.text);
    }
    k.field("platform-fix", &[u8::from(platform_applied)]);
    k.str_field("compiler", compiler);
    k.str_field("make", make);
    k.finish()
}

/// pinvm's fragments for a version: the base one, then `pinvm-<major.minor>.config`, then the
/// driver's (unless it is left out).
fn pinvm_fragments(major_minor: &str, driver: bool) -> Result<Vec<Fragment>> {
    let mut out = Vec::new();
    let (name, text) = embedded::BASE_FRAGMENT;
    out.push(config::parse_fragment(&format!("pinvm:{name}"), text)?);
    if let Some((name, text)) = embedded::version_fragment(major_minor) {
        out.push(config::parse_fragment(&format!("pinvm:{name}"), text)?);
    }
    if driver {
        let (name, text) = embedded::DRIVER_FRAGMENT;
        out.push(config::parse_fragment(&format!("pinvm:{name}"), text)?);
    }
    Ok(out)
}

/// The patch series: platform fix (if decided), pinvm's driver, then the user's patches.
fn patch_series(
    req: &BuildRequest,
    major_minor: &str,
    platform: &PlatformDecision,
) -> Result<PatchSeries> {
    let mut list = Vec::new();
    if platform.apply {
        let fix = embedded::platform_patches(major_minor).ok_or_else(|| {
            anyhow!(
                "the kvm_pvm platform fix ({}) is needed but pinvm has none for Linux {major_minor} \
                 (it has: {}); pass --platform-fix never to build without it \
                 (the guest's user space will not run on a kvm_pvm host)",
                platform.reason,
                embedded::platform_patch_versions().join(", ")
            )
        })?;
        for p in fix {
            list.push(Patch::new(
                format!("pinvm:{}", p.name),
                PatchGroup::Platform,
                p.text.as_bytes().to_vec(),
            )?);
        }
    }
    if !req.without_driver {
        list.push(Patch::new(
            format!("pinvm:{}", driver::PATCH_NAME),
            PatchGroup::Driver,
            driver::patch().into_bytes(),
        )?);
    }
    for p in &req.patches {
        list.push(Patch::from_file(p, PatchGroup::UnderTest)?);
    }
    Ok(PatchSeries::new(list))
}

/// Resolves a request into a [`Plan`] (source identity, fragments, patches, key).
/// `host_is_pvm` decides `PlatformFix::Auto`.
pub fn plan_with(req: &BuildRequest, cache_root: &Path, host_is_pvm: bool) -> Result<Plan> {
    let source = source::resolve(&req.source, cache_root)?;
    let mm = source.major_minor_str();
    let mut fragments = pinvm_fragments(&mm, !req.without_driver)?;
    for path in &req.fragments {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config fragment {}", path.display()))?;
        fragments.push(config::parse_fragment(&path.display().to_string(), &text)?);
    }
    let platform = decide_platform_fix(req.platform_fix, host_is_pvm);
    let series = patch_series(req, &mm, &platform)?;
    let compiler = make::tool_version("gcc")?;
    let make = make::tool_version("make")?;
    let key = cache_key(
        &source.info,
        &fragments,
        &series,
        platform.apply,
        &compiler,
        &make,
    );
    Ok(Plan {
        key,
        source,
        fragments,
        series,
        platform,
        compiler,
        make,
    })
}

/// [`plan_with`] for this host.
pub fn plan(req: &BuildRequest, cache_root: &Path) -> Result<Plan> {
    plan_with(req, cache_root, Path::new(KVM_PVM_MODULE).exists())
}

/// `<cache>/kernels/<key>`.
pub fn kernel_dir(cache_root: &Path, key: &str) -> PathBuf {
    cache_root.join("kernels").join(key)
}

/// A file in a published kernel's directory whose mtime says when it was last used (by
/// a build or a boot); `pinvm cache prune` removes the least recently used first.
pub const LAST_USED_FILE: &str = "last-used";

/// Marks a published kernel as used now (best effort: a read-only cache still boots).
fn mark_used(dir: &Path) {
    let _ = std::fs::write(dir.join(LAST_USED_FILE), b"");
}

/// The published kernel with this key, if there is one.
pub fn lookup_key(cache_root: &Path, key: &str) -> Result<Option<BuiltKernel>> {
    let dir = kernel_dir(cache_root, key);
    if !dir.join(manifest::MANIFEST_FILE).is_file() {
        return Ok(None);
    }
    let manifest = Manifest::read(&dir)?;
    let k = BuiltKernel {
        vmlinux: dir.join("vmlinux"),
        bzimage: Some(dir.join("bzImage")).filter(|b| b.is_file()),
        system_map: dir.join("System.map"),
        manifest,
        dir,
        cached: true,
        bzimage_added: false,
    };
    for f in [&k.vmlinux, &k.system_map] {
        if !f.is_file() {
            bail!(
                "cache entry {} is damaged ({} is missing): delete that directory",
                k.dir.display(),
                f.display()
            );
        }
    }
    mark_used(&k.dir);
    Ok(Some(k))
}

/// The published kernel for `req`, without building. [`build`] does the same lookup
/// first, so there is no need to call both; computing the key runs
/// `gcc --version`, `make --version` and `dpkg-query` (or git for a git tree; a
/// non-git tree is read in full, see [`source`]).
pub fn lookup(req: &BuildRequest, cache_root: &Path) -> Result<Option<BuiltKernel>> {
    let p = plan(req, cache_root)?;
    lookup_key(cache_root, &p.key)
}

/// Builds (or finds in the cache) the kernel described by `req`. See the module docs.
pub fn build(
    req: &BuildRequest,
    cache_root: &Path,
    progress: &mut dyn FnMut(BuildProgress),
) -> Result<BuiltKernel> {
    progress(BuildProgress::Phase(Phase::Resolving));
    let plan = plan(req, cache_root)?;
    build_plan(&plan, req.jobs, req.bzimage, cache_root, progress)
}

/// Builds a resolved [`Plan`] (or returns its cached result); `bzimage` as in
/// [`BuildRequest::bzimage`].
pub fn build_plan(
    plan: &Plan,
    jobs: Option<usize>,
    bzimage: bool,
    cache_root: &Path,
    progress: &mut dyn FnMut(BuildProgress),
) -> Result<BuiltKernel> {
    let complete = |k: &BuiltKernel| !bzimage || k.bzimage.is_some();
    if let Some(k) = lookup_key(cache_root, &plan.key)?.filter(complete) {
        return Ok(k);
    }
    let lock_path = cache_root
        .join("locks")
        .join(format!("kernel-{}.lock", plan.key));
    let _lock = FileLock::acquire(&lock_path, || {
        progress(BuildProgress::Note(format!(
            "another pinvm is building this kernel; waiting for {}",
            lock_path.display()
        )))
    })?;
    let published = lookup_key(cache_root, &plan.key)?;
    if let Some(k) = published.clone().filter(complete) {
        return Ok(k);
    }
    progress(BuildProgress::Note(format!(
        "kernel cache key {}",
        plan.key
    )));
    if published.is_some() {
        progress(BuildProgress::Note(
            "cached without a bzImage: building one from the same inputs in the build slot".into(),
        ));
    }
    let toolchain = format!("{}\n{}", plan.compiler, plan.make);
    let mut slot = slot::Slot::open(cache_root, &plan.source, &toolchain, || {
        progress(BuildProgress::Note(
            "another pinvm is building in this source's build slot; waiting".into(),
        ))
    })?;
    let jobs = jobs
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1);
    let started = SystemTime::now();
    let t0 = Instant::now();
    let incremental = slot.has_objects();
    let synced = stage_and_sync(plan, cache_root, &slot, progress)?;
    let tree_seconds = secs(t0);

    let out = slot.out();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let log = out.join("build.log");
    std::fs::write(&log, "").with_context(|| format!("creating {}", log.display()))?;
    let ccache = make::Ccache::detect(cache_root);
    let src = slot.src();
    let mk = make::Make {
        src: &src,
        out: &out,
        log: &log,
        ccache: ccache.as_ref(),
    };
    progress(BuildProgress::Phase(Phase::Configuring));
    let t1 = Instant::now();
    let inputs = config_inputs(plan);
    if slot.config_is_current(&inputs, synced.config_inputs_changed) {
        progress(BuildProgress::Note(
            "the configuration's inputs did not change: keeping the slot's .config".into(),
        ));
    } else {
        slot.configured(None)?;
        configure(plan, &mk)?;
        slot.configured(Some(&inputs))?;
    }
    let config_seconds = secs(t1);

    progress(BuildProgress::Phase(Phase::Compiling));
    let t2 = Instant::now();
    let compiled = compile(&mk, jobs, bzimage, progress)?;
    let make_seconds = secs(t2);
    let kernelrelease = mk.capture(&["kernelrelease".into()])?;

    progress(BuildProgress::Phase(Phase::Publishing));
    if let Some(k) = published {
        add_bzimage(&k, &out, progress)?;
        slot.built(&plan.key)?;
        let mut k = lookup_key(cache_root, &plan.key)?
            .ok_or_else(|| anyhow!("published kernel {} vanished", plan.key))?;
        k.cached = false;
        k.bzimage_added = true;
        return Ok(k);
    }
    let mut manifest = manifest_for(plan, kernelrelease, jobs, started, t0, &slot.dir);
    manifest.incremental = Some(IncrementalRecord {
        slot: slot
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        incremental,
        previous_key: slot.record.last_key.clone(),
        files_written: synced.written,
        files_removed: synced.removed,
        changed: synced
            .changed
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        steps: compiled.steps,
        compiled: compiled.files,
        ccache: ccache.is_some(),
        tree_seconds,
        config_seconds,
        make_seconds,
    });
    publish(cache_root, &out, bzimage, manifest)?;
    slot.built(&plan.key)?;
    if !incremental {
        // A new slot is what grows the cache; incremental builds add one small kernel.
        keep_under_cap(cache_root, &plan.key, &slot.dir, progress);
    }
    let mut k = lookup_key(cache_root, &plan.key)?
        .ok_or_else(|| anyhow!("published kernel {} vanished", plan.key))?;
    k.cached = false;
    Ok(k)
}

/// Prunes the cache to its cap ([`crate::usage`]) after a build, sparing what was just
/// built and its slot. A failure is a note, not a failed build.
fn keep_under_cap(
    cache_root: &Path,
    key: &str,
    slot_dir: &Path,
    progress: &mut dyn FnMut(BuildProgress),
) {
    let result = (|| -> Result<Vec<crate::usage::Entry>> {
        let Some(max) = crate::usage::cap_from_env()? else {
            return Ok(Vec::new());
        };
        let opts = crate::usage::PruneOptions {
            max_bytes: Some(max),
            keep: vec![kernel_dir(cache_root, key), slot_dir.to_path_buf()],
            ..Default::default()
        };
        crate::usage::prune(cache_root, &opts)
    })();
    match result {
        Ok(removed) => {
            for e in removed {
                progress(BuildProgress::Note(format!(
                    "cache over its cap (PINVM_CACHE_MAX): removed {}",
                    e.path.display()
                )));
            }
        }
        Err(e) => progress(BuildProgress::Note(format!(
            "could not prune the cache: {e:#}"
        ))),
    }
}

fn secs(t: Instant) -> f64 {
    (t.elapsed().as_millis() as f64) / 1000.0
}

/// A hash of the fragments, in order (the rest of configuring is the source's own files,
/// tracked by the sync).
fn config_inputs(plan: &Plan) -> String {
    let mut k = KeyBuilder::new("pinvm-config-inputs", BUILD_FORMAT_VERSION);
    for f in &plan.fragments {
        k.str_field("fragment", &f.text);
    }
    k.finish()
}

/// What `make` did: its kbuild step count and the first files it compiled.
struct Compiled {
    steps: u64,
    files: Vec<String>,
}

/// `make -j<jobs> vmlinux [bzImage]` with progress.
fn compile(
    mk: &make::Make<'_>,
    jobs: usize,
    bzimage: bool,
    progress: &mut dyn FnMut(BuildProgress),
) -> Result<Compiled> {
    let mut c = Compiled {
        steps: 0,
        files: Vec::new(),
    };
    // Tools built by their own makefiles (objtool) print absolute paths under `out`.
    let out_prefix = format!("{}/", mk.out.display());
    let mut args = vec![format!("-j{jobs}"), "vmlinux".to_string()];
    if bzimage {
        args.push("bzImage".into());
    }
    mk.run(&args, &mut |line| {
        if let Some((verb, target)) = make::parse_kbuild_line(line) {
            c.steps += 1;
            let file = target.strip_prefix(&out_prefix).unwrap_or(target);
            if verb == "CC" && c.files.len() < sync::LISTED_PATHS {
                c.files.push(file.to_string());
            }
            progress(BuildProgress::Compiled {
                count: c.steps,
                file: file.to_string(),
            });
        }
    })?;
    Ok(c)
}

fn manifest_for(
    plan: &Plan,
    kernelrelease: String,
    jobs: usize,
    started: SystemTime,
    t0: Instant,
    build_dir: &Path,
) -> Manifest {
    Manifest {
        format: BUILD_FORMAT_VERSION,
        key: plan.key.clone(),
        kernelrelease,
        version: plan.source.major_minor_str(),
        source: plan.source.info.clone(),
        fragments: plan
            .fragments
            .iter()
            .map(|f| FragmentRecord {
                name: f.name.clone(),
                sha256: cache::sha256_hex(f.text.as_bytes()),
            })
            .collect(),
        patches: plan
            .series
            .patches()
            .iter()
            .map(|p| PatchRecord {
                name: p.name.clone(),
                group: p.group,
                sha256: p.sha256(),
            })
            .collect(),
        platform_fix: PlatformFixRecord {
            applied: plan.platform.apply,
            reason: plan.platform.reason.clone(),
        },
        compiler: plan.compiler.clone(),
        make: plan.make.clone(),
        jobs,
        build_started: manifest::rfc3339(started),
        build_finished: manifest::rfc3339(SystemTime::now()),
        build_seconds: secs(t0),
        build_dir: build_dir.to_path_buf(),
        artefacts: Vec::new(),
        incremental: None,
    }
}

/// Brings `<slot>/src` to the tree this plan wants with the fewest writes: the base tree
/// (the pristine Debian tree, the git revision's files in `<slot>/base`, or a hard-link farm
/// of the user's tree in `<slot>/stage`) with the patch series applied to copies of the
/// files it touches in `<slot>/overlay`.
fn stage_and_sync(
    plan: &Plan,
    cache_root: &Path,
    slot: &slot::Slot,
    progress: &mut dyn FnMut(BuildProgress),
) -> Result<sync::SyncStats> {
    progress(BuildProgress::Phase(Phase::Copying));
    let base = base_tree(plan, cache_root, slot, progress)?;
    let kv = source::KernelVersion::of_tree(&base)?;
    if (kv.version, kv.patchlevel) != plan.source.major_minor {
        bail!(
            "the source tree {} is Linux {}, expected {}",
            base.display(),
            kv.major_minor(),
            plan.source.major_minor_str()
        );
    }
    let overlay = slot.dir.join("overlay");
    cache::remove_path(&overlay)?;
    std::fs::create_dir_all(&overlay)?;
    let deleted = patch_overlay(plan, &base, &overlay, progress)?;
    progress(BuildProgress::Phase(Phase::Syncing));
    let layers = sync::Layers {
        base: &base,
        overlay: Some(&overlay),
        deleted: &deleted,
    };
    sync::sync_tree(&layers, &slot.src(), &slot.sync_state())
}

/// The unpatched tree of the plan's source.
fn base_tree(
    plan: &Plan,
    cache_root: &Path,
    slot: &slot::Slot,
    progress: &mut dyn FnMut(BuildProgress),
) -> Result<PathBuf> {
    let mut extracting = || progress(BuildProgress::Phase(Phase::Extracting));
    match (&plan.source.source, &plan.source.info) {
        (KernelSource::Debian(_), _) => {
            source::ensure_debian_extracted(cache_root, &plan.source, &mut extracting)
        }
        (KernelSource::GitRev { .. }, source::SourceInfo::GitRev { repo, commit }) => {
            source::checkout_rev(repo, commit, &slot.base(), &slot.base_index())?;
            Ok(slot.base())
        }
        _ => {
            let stage = slot.stage();
            cache::remove_path(&stage)?;
            let base = source::GitBase {
                dir: &slot.base(),
                index: &slot.base_index(),
            };
            source::make_work_copy(cache_root, &plan.source, &stage, base, &mut extracting)?;
            Ok(stage)
        }
    }
}

/// Copies the files the series touches from `base` into `overlay` and applies the series
/// there; returns the base files the series deleted.
fn patch_overlay(
    plan: &Plan,
    base: &Path,
    overlay: &Path,
    progress: &mut dyn FnMut(BuildProgress),
) -> Result<Vec<PathBuf>> {
    let mut touched: Vec<PathBuf> = Vec::new();
    for p in plan.series.patches() {
        for rel in p.touched_files() {
            if !touched.contains(&rel) {
                touched.push(rel);
            }
        }
    }
    source::copy_files(base, overlay, &touched, source::CopyMode::Copy)?;
    if !plan.series.is_empty() {
        progress(BuildProgress::Phase(Phase::Patching));
        let total = plan.series.patches().len();
        let mut index = 0;
        plan.series.apply(overlay, &mut |p| {
            index += 1;
            progress(BuildProgress::Patch {
                index,
                total,
                name: p.name.clone(),
                group: p.group,
            })
        })?;
    }
    Ok(touched
        .into_iter()
        .filter(|rel| {
            std::fs::symlink_metadata(overlay.join(rel)).is_err()
                && std::fs::symlink_metadata(base.join(rel)).is_ok()
        })
        .collect())
}

/// tinyconfig, fragments, olddefconfig, survival check.
fn configure(plan: &Plan, mk: &make::Make<'_>) -> Result<()> {
    mk.run(&["tinyconfig".into()], &mut |_| {})?;
    let dot = mk.out.join(".config");
    let base =
        std::fs::read_to_string(&dot).with_context(|| format!("reading {}", dot.display()))?;
    std::fs::write(&dot, config::merge_onto(&base, &plan.fragments))
        .with_context(|| format!("writing {}", dot.display()))?;
    mk.run(&["olddefconfig".into()], &mut |_| {})?;
    let result =
        std::fs::read_to_string(&dot).with_context(|| format!("reading {}", dot.display()))?;
    config::check_survival(&plan.fragments, &result)
        .with_context(|| format!("configuring the kernel (final config: {})", dot.display()))
}

/// Copies the artefacts and the manifest into a temp dir, then renames it into place.
fn publish(cache_root: &Path, out: &Path, bzimage: bool, mut manifest: Manifest) -> Result<()> {
    let final_dir = kernel_dir(cache_root, &manifest.key);
    std::fs::create_dir_all(cache_root.join("kernels"))?;
    // We hold the key's build lock: temp dirs for this key are from dead processes.
    cache::remove_stale_temps(&final_dir)?;
    let tmp = cache::temp_sibling(&final_dir);
    std::fs::create_dir_all(&tmp)?;
    let result = (|| -> Result<()> {
        // The slot's bzImage may be an older key's: only one built now is published.
        let mut files: Vec<(&str, PathBuf)> = make::products(out)
            .into_iter()
            .filter(|(name, _)| bzimage || *name != "bzImage")
            .collect();
        files.push(("build.log", out.join("build.log")));
        for (name, from) in files {
            let to = tmp.join(name);
            std::fs::copy(&from, &to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
            manifest.artefacts.push(ArtefactRecord {
                name: name.to_string(),
                size: std::fs::metadata(&to)?.len(),
            });
        }
        manifest.write(&tmp)?;
        cache::atomic_publish(&tmp, &final_dir)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = cache::remove_path(&tmp);
    }
    result
}

/// Adds the bzImage just built in `out` to the published kernel `k` (built earlier without
/// one, from the same inputs): written beside it and renamed, then listed in its manifest.
/// The builds are reproducible, so the rebuilt vmlinux should be the published one; a note
/// says so when it is not.
fn add_bzimage(k: &BuiltKernel, out: &Path, progress: &mut dyn FnMut(BuildProgress)) -> Result<()> {
    if cache::sha256_file(&out.join("vmlinux"))? != cache::sha256_file(&k.vmlinux)? {
        progress(BuildProgress::Note(format!(
            "the rebuilt vmlinux differs from the one published in {} (the build is not \
             reproducible here): the bzImage comes from the rebuild",
            k.dir.display()
        )));
    }
    let from = out.join("arch/x86/boot/bzImage");
    let tmp = cache::temp_sibling(&k.dir.join("bzImage"));
    std::fs::copy(&from, &tmp)
        .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    let size = std::fs::metadata(&tmp)?.len();
    std::fs::rename(&tmp, k.dir.join("bzImage"))
        .with_context(|| format!("publishing {}", k.dir.join("bzImage").display()))?;
    let mut manifest = k.manifest.clone();
    manifest.artefacts.retain(|a| a.name != "bzImage");
    manifest.artefacts.push(ArtefactRecord {
        name: "bzImage".into(),
        size,
    });
    manifest.write(&k.dir)
}

#[cfg(test)]
mod tests;
