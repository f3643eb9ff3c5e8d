//! Build slots: persistent build trees reused across cache keys, so a changed patch, a
//! neighbouring git revision or another config fragment rebuilds only what changed.
//!
//! One slot per source *origin* (a Debian package version, a user's repository or tree)
//! and toolchain (`gcc --version`, `make --version`): `<cache>/slots/<id>/` holds
//! - `stage/`: the tree this build wants (a hard-link farm of the origin plus the patch
//!   series), made anew for every build;
//! - `src/`: what `make` reads, brought to `stage/`'s content by [`super::sync`] with the
//!   fewest writes (changed files get new mtimes, unchanged ones keep theirs);
//! - `out/`: the kept `O=` directory;
//! - `base/` + `base.index`: for a git revision, the revision's files, updated by
//!   `git read-tree -u` with a private index (git rewrites only the files that differ
//!   between revisions); the user's checkout, index and refs are never touched;
//! - `sync.state`, `slot.json`: the sync record and what the slot last built.
//!
//! The published cache key is unchanged by all this: a slot only makes building a key
//! faster. A slot is locked (`<id>.lock`) while a build uses it.

use super::source::{ResolvedSource, SourceInfo};
use crate::cache::{self, FileLock, KeyBuilder};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `<cache>/slots`.
pub fn slots_dir(cache_root: &Path) -> PathBuf {
    cache_root.join("slots")
}

/// What a slot built last, kept in `slot.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRecord {
    /// The origin the slot is for (see [`origin`]).
    pub origin: String,
    /// The compiler and make the slot's objects were built with.
    pub toolchain: String,
    /// The cache key of the last successful build in this slot.
    pub last_key: Option<String>,
    /// A hash of the fragments `out/.config` was last made from (see
    /// [`Slot::config_is_current`]).
    #[serde(default)]
    pub config_inputs: Option<String>,
}

/// A locked build slot.
#[derive(Debug)]
pub struct Slot {
    /// `<cache>/slots/<id>`.
    pub dir: PathBuf,
    /// What it last built.
    pub record: SlotRecord,
    _lock: FileLock,
}

/// The origin a source's slot is keyed by: what stays the same between the builds that
/// should share objects.
pub fn origin(source: &ResolvedSource) -> String {
    match &source.info {
        SourceInfo::Debian {
            package,
            package_version,
            ..
        } => format!("debian:{package}:{package_version}"),
        SourceInfo::GitTree { path, .. } | SourceInfo::Tree { path, .. } => {
            format!("tree:{}", path.display())
        }
        SourceInfo::GitRev { repo, .. } => format!("git:{}", repo.display()),
    }
}

/// The slot id: a readable prefix and a hash of origin and toolchain.
pub fn slot_id(source: &ResolvedSource, toolchain: &str) -> String {
    let origin = origin(source);
    let mut k = KeyBuilder::new("pinvm-slot", 1);
    k.str_field("origin", &origin)
        .str_field("toolchain", toolchain);
    let prefix = match &source.info {
        SourceInfo::Debian { .. } => format!("debian-{}", source.major_minor_str()),
        SourceInfo::GitRev { .. } => "git".to_string(),
        _ => "tree".to_string(),
    };
    format!("{prefix}-{}", &k.finish()[..16])
}

impl Slot {
    /// Locks (waiting for another build using it; `on_wait` is called first) and opens
    /// the slot for `source` built with `toolchain`.
    pub fn open(
        cache_root: &Path,
        source: &ResolvedSource,
        toolchain: &str,
        on_wait: impl FnOnce(),
    ) -> Result<Slot> {
        let dir = slots_dir(cache_root).join(slot_id(source, toolchain));
        let lock = FileLock::acquire(&cache::lock_path(&dir), on_wait)?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut record = read_record(&dir).unwrap_or_default();
        record.origin = origin(source);
        record.toolchain = toolchain.to_string();
        Ok(Slot {
            dir,
            record,
            _lock: lock,
        })
    }

    /// `stage/`.
    pub fn stage(&self) -> PathBuf {
        self.dir.join("stage")
    }

    /// `src/`.
    pub fn src(&self) -> PathBuf {
        self.dir.join("src")
    }

    /// `out/` (the `O=` directory).
    pub fn out(&self) -> PathBuf {
        self.dir.join("out")
    }

    /// `base/` (a git revision's files).
    pub fn base(&self) -> PathBuf {
        self.dir.join("base")
    }

    /// `base.index` (the private git index of `base/`).
    pub fn base_index(&self) -> PathBuf {
        self.dir.join("base.index")
    }

    /// `sync.state`.
    pub fn sync_state(&self) -> PathBuf {
        self.dir.join("sync.state")
    }

    /// Whether `out/` holds objects of an earlier build (so this one is incremental).
    pub fn has_objects(&self) -> bool {
        self.out().join("vmlinux").is_file()
    }

    /// Whether `out/.config` was made from fragments hashing to `inputs` and no source file
    /// that takes part in configuring changed since (`config_sources_changed`).
    pub fn config_is_current(&self, inputs: &str, config_sources_changed: bool) -> bool {
        !config_sources_changed
            && self.record.config_inputs.as_deref() == Some(inputs)
            && self.out().join(".config").is_file()
    }

    /// Records that `out/.config` is now made from `inputs` (`None`: unknown).
    pub fn configured(&mut self, inputs: Option<&str>) -> Result<()> {
        self.record.config_inputs = inputs.map(String::from);
        self.save()
    }

    /// Records a successful build of `key`.
    pub fn built(&mut self, key: &str) -> Result<()> {
        self.record.last_key = Some(key.to_string());
        self.save()
    }

    fn save(&self) -> Result<()> {
        let path = self.dir.join("slot.json");
        let tmp = cache::temp_sibling(&path);
        std::fs::write(&tmp, serde_json::to_string_pretty(&self.record)? + "\n")
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }
}

fn read_record(dir: &Path) -> Option<SlotRecord> {
    let text = std::fs::read_to_string(dir.join("slot.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// A slot's record, read without locking (for `pinvm cache`).
pub fn peek_record(dir: &Path) -> Option<SlotRecord> {
    read_record(dir)
}
