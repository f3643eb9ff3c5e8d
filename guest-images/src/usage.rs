//! What pinvm's cache holds, and pruning it to a size cap (`pinvm cache show|prune`).
//!
//! Parts ([`Part`]): published kernels (small, needed to boot), build slots (large: a
//! source tree and its objects, needed only to rebuild fast), extracted sources, ccache,
//! disk images, initramfs archives, and the per-key build trees of pinvm before slots.
//! Pruning removes, oldest use first, legacy build trees, then build slots, then published
//! kernels, until the cache fits; a slot or kernel in use (its lock held) is never removed.

use crate::cache::{self, FileLock};
use crate::kernel::{self, slot};
use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The default size cap: `PINVM_CACHE_MAX` overrides it (e.g. `40G`, `0` = no cap).
pub const DEFAULT_CAP: u64 = 30 << 30;

/// A part of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `kernels/`: published kernels.
    Kernels,
    /// `slots/`: build slots.
    Slots,
    /// `src/`: extracted Debian sources.
    Sources,
    /// `ccache/`.
    Ccache,
    /// `images/`: filesystem and tools images.
    Images,
    /// `initramfs-*.cpio`.
    Initramfs,
    /// `build/`: per-key build trees from before build slots.
    LegacyBuild,
}

impl Part {
    /// Every part, in display order.
    pub const ALL: [Part; 7] = [
        Part::Kernels,
        Part::Slots,
        Part::Sources,
        Part::Ccache,
        Part::Images,
        Part::Initramfs,
        Part::LegacyBuild,
    ];

    /// Its name in `pinvm cache show`.
    pub fn name(self) -> &'static str {
        match self {
            Part::Kernels => "kernels",
            Part::Slots => "build slots",
            Part::Sources => "sources",
            Part::Ccache => "ccache",
            Part::Images => "images",
            Part::Initramfs => "initramfs",
            Part::LegacyBuild => "old build trees",
        }
    }
}

/// One removable entry (a kernel, a slot, a legacy build tree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Which part it belongs to.
    pub part: Part,
    /// Its path.
    pub path: PathBuf,
    /// Bytes on disk (allocated blocks; hard links counted once per entry).
    pub bytes: u64,
    /// When it was last used (built or booted).
    pub used: SystemTime,
}

/// What the cache holds.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Bytes per part, in [`Part::ALL`] order.
    pub parts: Vec<(Part, u64, usize)>,
    /// The removable entries, oldest use first.
    pub entries: Vec<Entry>,
}

impl Usage {
    /// Bytes in all parts.
    pub fn total(&self) -> u64 {
        self.parts.iter().map(|(_, b, _)| b).sum()
    }
}

/// Measures the cache under `root`.
pub fn usage(root: &Path) -> Result<Usage> {
    let mut u = Usage::default();
    for part in Part::ALL {
        let (bytes, count, mut entries) = measure(root, part)?;
        u.parts.push((part, bytes, count));
        u.entries.append(&mut entries);
    }
    u.entries.sort_by_key(|e| (e.used, prune_rank(e.part)));
    Ok(u)
}

fn prune_rank(p: Part) -> u8 {
    match p {
        Part::LegacyBuild => 0,
        Part::Slots => 1,
        _ => 2,
    }
}

fn measure(root: &Path, part: Part) -> Result<(u64, usize, Vec<Entry>)> {
    let dir = match part {
        Part::Kernels => root.join("kernels"),
        Part::Slots => slot::slots_dir(root),
        Part::Sources => root.join("src"),
        Part::Ccache => root.join("ccache"),
        Part::Images => root.join("images"),
        Part::LegacyBuild => root.join("build"),
        Part::Initramfs => {
            let mut bytes = 0;
            let mut n = 0;
            for e in read_dir(root)? {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("initramfs-") {
                    bytes += e.metadata()?.blocks() * 512;
                    n += 1;
                }
            }
            return Ok((bytes, n, Vec::new()));
        }
    };
    let removable = matches!(part, Part::Kernels | Part::Slots | Part::LegacyBuild);
    if !removable {
        return Ok((disk_usage(&dir)?, 1, Vec::new()));
    }
    let mut entries = Vec::new();
    for e in read_dir(&dir)? {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".lock") || name.starts_with(".tmp-") || !e.file_type()?.is_dir() {
            continue;
        }
        let path = e.path();
        entries.push(Entry {
            part,
            bytes: disk_usage(&path)?,
            used: last_used(&path, part),
            path,
        });
    }
    let bytes = entries.iter().map(|e| e.bytes).sum();
    Ok((bytes, entries.len(), entries))
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .collect::<std::io::Result<Vec<_>>>()
            .with_context(|| format!("reading {}", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

/// When an entry was last used: a kernel's `last-used` mark, a slot's `slot.json`, else
/// the directory's own mtime.
fn last_used(path: &Path, part: Part) -> SystemTime {
    let marks: &[&str] = match part {
        Part::Kernels => &[kernel::LAST_USED_FILE, kernel::manifest::MANIFEST_FILE],
        Part::Slots => &["slot.json"],
        Part::LegacyBuild => &["out/build.log", "src.ready"],
        _ => &[],
    };
    marks
        .iter()
        .chain(std::iter::once(&"."))
        .find_map(|m| fs::metadata(path.join(m)).and_then(|m| m.modified()).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Allocated bytes under `path` (each inode counted once).
pub fn disk_usage(path: &Path) -> Result<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
        };
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total += meta.blocks() * 512;
        if meta.is_dir() {
            for e in read_dir(&p)? {
                stack.push(e.path());
            }
        }
    }
    Ok(total)
}

/// Parses a size: `123`, `10K`, `5M`, `30G`, `1T` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("size {s:?}: expected a number with K, M, G or T"))?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        u => bail!("size {s:?}: unknown unit {u:?} (K, M, G or T)"),
    };
    n.checked_mul(1 << shift)
        .with_context(|| format!("size {s:?} is too large"))
}

/// The cap from `PINVM_CACHE_MAX` (`0`: none), else [`DEFAULT_CAP`].
pub fn cap_from_env() -> Result<Option<u64>> {
    match std::env::var("PINVM_CACHE_MAX") {
        Ok(v) if !v.is_empty() => {
            let n = parse_size(&v).context("PINVM_CACHE_MAX")?;
            Ok((n > 0).then_some(n))
        }
        _ => Ok(Some(DEFAULT_CAP)),
    }
}

/// What to prune.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Remove entries, oldest use first, until the cache is at most this big.
    pub max_bytes: Option<u64>,
    /// Remove every build slot and legacy build tree (published kernels stay).
    pub all_slots: bool,
    /// Never remove these (e.g. the kernel just built).
    pub keep: Vec<PathBuf>,
    /// Only say what would be removed.
    pub dry_run: bool,
}

/// Removes entries per `opts`; returns the entries removed (or that would be).
pub fn prune(root: &Path, opts: &PruneOptions) -> Result<Vec<Entry>> {
    let u = usage(root)?;
    let mut total = u.total();
    let mut removed = Vec::new();
    for e in u.entries {
        let wanted = (opts.all_slots && e.part != Part::Kernels)
            || opts.max_bytes.is_some_and(|max| total > max);
        if !wanted || opts.keep.contains(&e.path) {
            continue;
        }
        if !opts.dry_run && !remove_unless_busy(&e)? {
            continue;
        }
        total = total.saturating_sub(e.bytes);
        removed.push(e);
    }
    Ok(removed)
}

/// Removes an entry under its lock; `false` when another pinvm holds it.
fn remove_unless_busy(e: &Entry) -> Result<bool> {
    let lock = match e.part {
        Part::Slots => cache::lock_path(&e.path),
        Part::Kernels => {
            let key = e.path.file_name().unwrap_or_default().to_string_lossy();
            let root = e
                .path
                .parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new("/"));
            root.join("locks").join(format!("kernel-{key}.lock"))
        }
        _ => cache::lock_path(&e.path),
    };
    let Some(_held) = FileLock::try_acquire(&lock)? else {
        return Ok(false);
    };
    // Move it aside first, so a reader never sees a half-deleted entry under its name.
    let aside = cache::temp_sibling(&e.path);
    fs::rename(&e.path, &aside).with_context(|| format!("removing {}", e.path.display()))?;
    cache::remove_path(&aside)?;
    Ok(true)
}

#[cfg(test)]
mod tests;
