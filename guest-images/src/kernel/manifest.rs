//! `manifest.json`: what a published kernel was built from, and when.

use super::patches::PatchGroup;
use super::source::SourceInfo;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// File name of the manifest inside a published kernel directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// A config fragment that went into the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentRecord {
    /// `pinvm:pinvm.config` for embedded fragments, else the path given.
    pub name: String,
    /// SHA-256 of the fragment's text, lowercase hex.
    pub sha256: String,
}

/// A patch that was applied, in application order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchRecord {
    /// `pinvm:<file>` for embedded patches, else the path given.
    pub name: String,
    /// Why it was applied: platform fix, pinvm's driver, or the patch under test.
    pub group: PatchGroup,
    /// SHA-256 of the patch's bytes, lowercase hex.
    pub sha256: String,
}

/// Whether the kvm_pvm platform fix was applied, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformFixRecord {
    /// Whether the platform fix patches are in the build.
    pub applied: bool,
    /// The decision's reason, e.g. `--platform-fix never` or `auto: this host's KVM is
    /// kvm_pvm (/sys/module/kvm_pvm exists)`.
    pub reason: String,
}

/// One published file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtefactRecord {
    /// File name inside the kernel directory (`vmlinux`, `bzImage`, …).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// How a build reused its build slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncrementalRecord {
    /// The slot (`<cache>/slots/<id>`).
    pub slot: String,
    /// Whether the slot held objects of an earlier build (so `make` rebuilt only what changed).
    pub incremental: bool,
    /// The cache key the slot built before this one, if any.
    pub previous_key: Option<String>,
    /// Source files written into the slot's tree (content changed or new).
    pub files_written: usize,
    /// Source files removed from it.
    pub files_removed: usize,
    /// The first of those paths.
    pub changed: Vec<String>,
    /// kbuild steps run (`CC`, `LD`, `AR`... lines).
    pub steps: u64,
    /// The first files compiled (`CC` lines).
    pub compiled: Vec<String>,
    /// Whether ccache was used.
    pub ccache: bool,
    /// Seconds staging and syncing the tree.
    pub tree_seconds: f64,
    /// Seconds in configuration.
    pub config_seconds: f64,
    /// Seconds in `make vmlinux bzImage`.
    pub make_seconds: f64,
}

/// Everything recorded about a published kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format of this file and of the build recipe (part of the cache key).
    pub format: u32,
    /// The cache key (the directory name under `<cache>/kernels/`).
    pub key: String,
    /// `make kernelrelease`, e.g. `6.12.117`.
    pub kernelrelease: String,
    /// VERSION.PATCHLEVEL, e.g. `6.12`.
    pub version: String,
    /// Where the source tree came from and what identifies its contents.
    pub source: SourceInfo,
    /// Config fragments in the order they were applied: pinvm's, then the user's.
    pub fragments: Vec<FragmentRecord>,
    /// Patches in application order.
    pub patches: Vec<PatchRecord>,
    /// Whether the kvm_pvm platform fix was applied, and why.
    pub platform_fix: PlatformFixRecord,
    /// `gcc --version`, first line.
    pub compiler: String,
    /// `make --version`, first line.
    pub make: String,
    /// `make -j` used.
    pub jobs: usize,
    /// RFC 3339 UTC.
    pub build_started: String,
    /// RFC 3339 UTC, when the build finished (before publishing).
    pub build_finished: String,
    /// Wall-clock duration of the build in seconds (millisecond resolution).
    pub build_seconds: f64,
    /// The build tree kept for incremental rebuilds (the build slot `<cache>/slots/<id>`;
    /// `<cache>/build/<key>` before format 2).
    pub build_dir: PathBuf,
    /// How the build used its slot (absent before format 2).
    #[serde(default)]
    pub incremental: Option<IncrementalRecord>,
    /// The files published next to this manifest (`vmlinux`, `bzImage`, `System.map`,
    /// `config`, `build.log`).
    pub artefacts: Vec<ArtefactRecord>,
}

impl Manifest {
    /// Read and parse `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Write `dir/manifest.json` (pretty-printed JSON with a final newline), replacing any.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        // Written beside it and renamed: a reader never sees half a manifest.
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }
}

/// `SystemTime` as RFC 3339 UTC with seconds (`2025-11-25T15:23:00Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        let at = |s| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_764_084_180), "2025-11-25T15:23:00Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn manifest_round_trips() {
        let m = Manifest {
            format: 1,
            key: "k".into(),
            kernelrelease: "6.12.117".into(),
            version: "6.12".into(),
            source: SourceInfo::GitTree {
                path: "/src".into(),
                commit: "c".into(),
                diff_sha256: "d".into(),
                untracked_sha256: "u".into(),
                dirty: false,
            },
            fragments: vec![FragmentRecord {
                name: "pinvm:pinvm.config".into(),
                sha256: "s".into(),
            }],
            patches: vec![PatchRecord {
                name: "p".into(),
                group: PatchGroup::UnderTest,
                sha256: "s".into(),
            }],
            platform_fix: PlatformFixRecord {
                applied: false,
                reason: "never".into(),
            },
            compiler: "gcc".into(),
            make: "make".into(),
            jobs: 2,
            build_started: "a".into(),
            build_finished: "b".into(),
            build_seconds: 1.5,
            build_dir: "/c/build/k".into(),
            incremental: None,
            artefacts: vec![ArtefactRecord {
                name: "vmlinux".into(),
                size: 3,
            }],
        };
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["source"]["kind"], "git-tree");
        assert_eq!(json["patches"][0]["group"], "under-test");
        let t = crate::cache::TestDir::new("manifest");
        m.write(t.path()).unwrap();
        assert_eq!(Manifest::read(t.path()).unwrap(), m);
    }
}
