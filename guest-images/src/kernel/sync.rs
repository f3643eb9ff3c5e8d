//! Bringing a build slot's source tree to the content of a freshly staged tree with the
//! fewest writes, so that `make` in a kept `O=` directory rebuilds only what changed.
//!
//! The rule kbuild needs: a file whose content changed gets a new mtime (it is written
//! anew, through a temporary file and a rename); a file whose content did not change is
//! not touched and keeps its mtime; a file is never given back older content with an old
//! mtime (restoring a pristine file by hard-linking it back would do exactly that, and
//! `make` would keep the object built from the patched version).
//!
//! The slot remembers, per path, what its copy holds (SHA-256 and executable bit, or a
//! symlink's target) and the identity (inode, size, mtime) of the staged file it came
//! from. Staged files are mostly hard links into a pristine tree or a git-managed base
//! tree whose unchanged files keep their inode and mtime, so most files are recognised
//! from one `lstat` and never read; only files whose identity changed are hashed.
//!
//! The state file is removed before the first write and written again (temp + rename)
//! after the last: after an interruption there is no state, and the next sync compares
//! contents of both trees instead of trusting a record the interruption made stale.

use crate::cache;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How many changed paths a [`SyncStats`] lists by name.
pub const LISTED_PATHS: usize = 64;

/// What a file in the tree holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    /// A regular file: SHA-256 (hex) of its bytes and whether it is executable.
    File { sha256: String, exec: bool },
    /// A symbolic link to this target.
    Link(PathBuf),
}

/// The identity of a staged file: if it is unchanged, so is its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StageId {
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl StageId {
    fn of(meta: &fs::Metadata) -> StageId {
        StageId {
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    stage: StageId,
    content: Content,
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Files (and symlinks) in the staged tree.
    pub files: usize,
    /// Files written because their content changed (or were new).
    pub written: usize,
    /// Files removed because the staged tree no longer has them.
    pub removed: usize,
    /// Bytes read to hash files whose identity changed.
    pub hashed_bytes: u64,
    /// Whether the slot's record was trusted (false: first sync, or after an interruption,
    /// when the slot's files were compared by content).
    pub trusted_state: bool,
    /// The first [`LISTED_PATHS`] written or removed paths, sorted.
    pub changed: Vec<PathBuf>,
    /// Whether a written or removed path can change the kernel configuration
    /// ([`affects_config`]).
    pub config_inputs_changed: bool,
}

/// Whether a source file takes part in configuring the kernel: a `Kconfig*` file, a
/// `*.config` fragment (tinyconfig's), the kconfig tool, or the top Makefile.
pub fn affects_config(rel: &Path) -> bool {
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.starts_with("Kconfig")
        || name.ends_with(".config")
        || rel.starts_with("scripts/kconfig")
        || rel == Path::new("Makefile")
}

/// The tree a build wants: a base tree (a pristine source, or a git revision's files) with
/// an overlay of the files the patch series changed or created, minus those it deleted.
#[derive(Debug, Clone, Copy)]
pub struct Layers<'a> {
    /// The base tree (never written).
    pub base: &'a Path,
    /// Files that replace or add to the base's.
    pub overlay: Option<&'a Path>,
    /// Base files that are not part of the tree.
    pub deleted: &'a [PathBuf],
}

impl<'a> Layers<'a> {
    /// One complete tree.
    pub fn single(tree: &'a Path) -> Layers<'a> {
        Layers {
            base: tree,
            overlay: None,
            deleted: &[],
        }
    }

    /// Every path of the layered tree, sorted.
    fn paths(&self) -> Result<Vec<PathBuf>> {
        let mut all: std::collections::BTreeSet<PathBuf> = walk(self.base)?.into_iter().collect();
        if let Some(o) = self.overlay {
            all.extend(walk(o)?);
        }
        for d in self.deleted {
            all.remove(d);
        }
        Ok(all.into_iter().collect())
    }

    /// Which layer's file `rel` is.
    fn root_of(&self, rel: &Path) -> &'a Path {
        match self.overlay {
            Some(o) if fs::symlink_metadata(o.join(rel)).is_ok() => o,
            _ => self.base,
        }
    }
}

/// Makes `dst` hold exactly the files and symlinks of the layered tree (directories are
/// created as needed; empty ones are left), writing only what differs. `state` is the
/// slot's record.
pub fn sync_tree(layers: &Layers<'_>, dst: &Path, state: &Path) -> Result<SyncStats> {
    let old = load_state(state)?;
    let trusted = old.is_some();
    let old = old.unwrap_or_default();
    cache::remove_path(state)?;
    fs::create_dir_all(dst).with_context(|| format!("creating {}", dst.display()))?;
    let mut stats = SyncStats {
        trusted_state: trusted,
        ..SyncStats::default()
    };
    let mut new = BTreeMap::new();
    for rel in layers.paths()? {
        let stage = layers.root_of(&rel);
        let entry = staged_entry(stage, &rel, old.get(&rel), &mut stats)?;
        let current = if trusted {
            old.get(&rel).map(|e| e.content.clone())
        } else {
            content_of(&dst.join(&rel), &mut stats)?
        };
        if current.as_ref() != Some(&entry.content) {
            install(&stage.join(&rel), &dst.join(&rel), &entry.content)?;
            stats.written += 1;
            note_changed(&mut stats, &rel);
        }
        new.insert(rel, entry);
    }
    stats.files = new.len();
    let stale: Vec<PathBuf> = if trusted {
        old.keys()
            .filter(|p| !new.contains_key(*p))
            .cloned()
            .collect()
    } else {
        walk(dst)?
            .into_iter()
            .filter(|p| !new.contains_key(p))
            .collect()
    };
    for rel in stale {
        cache::remove_path(&dst.join(&rel))?;
        stats.removed += 1;
        note_changed(&mut stats, &rel);
    }
    stats.changed.sort();
    save_state(state, &new)?;
    Ok(stats)
}

fn note_changed(stats: &mut SyncStats, rel: &Path) {
    stats.config_inputs_changed |= affects_config(rel);
    if stats.changed.len() < LISTED_PATHS {
        stats.changed.push(rel.to_path_buf());
    }
}

/// The entry of a staged path, reusing the old record's content when the identity matches.
fn staged_entry(
    stage: &Path,
    rel: &Path,
    old: Option<&Entry>,
    stats: &mut SyncStats,
) -> Result<Entry> {
    let path = stage.join(rel);
    let meta =
        fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
    let id = StageId::of(&meta);
    if let Some(e) = old.filter(|e| e.stage == id && !meta.file_type().is_symlink()) {
        let exec = meta.permissions().mode() & 0o111 != 0;
        if matches!(&e.content, Content::File { exec: x, .. } if *x == exec) {
            return Ok(e.clone());
        }
    }
    let content = content_of(&path, stats)?
        .with_context(|| format!("{} vanished while staging", path.display()))?;
    Ok(Entry { stage: id, content })
}

/// What `path` holds now (`None` if it does not exist or is not a file or symlink).
fn content_of(path: &Path, stats: &mut SyncStats) -> Result<Option<Content>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(Some(Content::Link(target)));
    }
    if !meta.is_file() {
        return Ok(None);
    }
    let (sha256, n) = hash_file(path)?;
    stats.hashed_bytes += n;
    Ok(Some(Content::File {
        sha256,
        exec: meta.permissions().mode() & 0o111 != 0,
    }))
}

fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            return Ok((cache::hex(&h.finalize()), total));
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
}

/// Writes `content` (taken from `from`) at `to` as a new file (temp + rename: a new mtime,
/// and never a write through a hard link).
fn install(from: &Path, to: &Path, content: &Content) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let tmp = cache::temp_sibling(to);
    match content {
        Content::Link(target) => std::os::unix::fs::symlink(target, &tmp)
            .with_context(|| format!("creating {}", tmp.display()))?,
        Content::File { exec, .. } => {
            fs::copy(from, &tmp)
                .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
            let mode = if *exec { 0o755 } else { 0o644 };
            fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
        }
    }
    if fs::symlink_metadata(to).is_ok_and(|m| m.is_dir()) {
        cache::remove_path(to)?;
    }
    fs::rename(&tmp, to).with_context(|| format!("replacing {}", to.display()))
}

/// Every file and symlink under `root`, relative, sorted.
fn walk(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && rel.as_os_str().is_empty() => {
                return Ok(out)
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        for entry in rd {
            let entry = entry?;
            let child = rel.join(entry.file_name());
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(child);
            } else if ft.is_file() || ft.is_symlink() {
                out.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// State file format, one line per path:
/// `F <sha256> <x|-> <ino> <size> <mtime_ns> <path>` or `L <ino> <size> <mtime_ns> <target>\0<path>`.
const STATE_HEADER: &str = "pinvm-slot-sync 1";

fn load_state(path: &Path) -> Result<Option<BTreeMap<PathBuf, Entry>>> {
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut lines = BufReader::new(f).lines();
    match lines.next() {
        Some(Ok(h)) if h == STATE_HEADER => {}
        // Another format, or an empty file: compare contents instead.
        _ => return Ok(None),
    }
    let mut map = BTreeMap::new();
    for line in lines {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let Some((rel, entry)) = parse_line(&line) else {
            return Ok(None);
        };
        map.insert(rel, entry);
    }
    Ok(Some(map))
}

fn parse_line(line: &str) -> Option<(PathBuf, Entry)> {
    let mut it = line.splitn(7, ' ');
    let kind = it.next()?;
    if kind == "F" {
        let sha256 = it.next()?.to_string();
        let exec = it.next()? == "x";
        let stage = parse_id(&mut it)?;
        let rel = PathBuf::from(it.next()?);
        return Some((
            rel,
            Entry {
                stage,
                content: Content::File { sha256, exec },
            },
        ));
    }
    if kind != "L" {
        return None;
    }
    let mut it = line.splitn(5, ' ').skip(1);
    let stage = parse_id(&mut it)?;
    let (target, rel) = it.next()?.split_once('\0')?;
    Some((
        PathBuf::from(rel),
        Entry {
            stage,
            content: Content::Link(PathBuf::from(target)),
        },
    ))
}

fn parse_id<'a>(it: &mut impl Iterator<Item = &'a str>) -> Option<StageId> {
    Some(StageId {
        ino: it.next()?.parse().ok()?,
        size: it.next()?.parse().ok()?,
        mtime_ns: it.next()?.parse().ok()?,
    })
}

fn save_state(path: &Path, map: &BTreeMap<PathBuf, Entry>) -> Result<()> {
    let tmp = cache::temp_sibling(path);
    let mut w = std::io::BufWriter::new(
        fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    writeln!(w, "{STATE_HEADER}")?;
    for (rel, e) in map {
        let rel_s = rel.to_str().filter(|s| !s.contains(['\n', '\0']));
        let Some(rel_s) = rel_s else {
            bail!(
                "{}: pinvm's build slots need file names in UTF-8 without newlines",
                rel.display()
            );
        };
        let StageId {
            ino,
            size,
            mtime_ns,
        } = e.stage;
        match &e.content {
            Content::File { sha256, exec } => {
                let x = if *exec { "x" } else { "-" };
                writeln!(w, "F {sha256} {x} {ino} {size} {mtime_ns} {rel_s}")?
            }
            Content::Link(t) => {
                let t = t.to_str().filter(|s| !s.contains(['\n', '\0']));
                let Some(t) = t else {
                    bail!("{}: symlink target not representable", rel.display());
                };
                writeln!(w, "L {ino} {size} {mtime_ns} {t}\0{rel_s}")?
            }
        }
    }
    w.into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", tmp.display()))?
        .sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests;
