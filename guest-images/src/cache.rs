//! The pinvm artefact cache: where it lives, how entries are keyed, and how they are
//! published so that a reader never sees a half-written entry.
//!
//! Layout (each user of the cache owns one top-level directory):
//! - `<cache>/src/`     extracted kernel sources (see `kernel::source`)
//! - `<cache>/slots/`   kernel build slots, kept for incremental rebuilds
//! - `<cache>/ccache/`  ccache's store for kernel builds
//! - `<cache>/kernels/` published kernel artefacts, one directory per cache key
//! - `<cache>/locks/`   lock files of keys being built
//! - `<cache>/build/`   per-key build trees of pinvm before build slots (only pruned)
//!
//! Entries are content-addressed: a key is a SHA-256 over every input (see [`KeyBuilder`]).
//! An entry is built in a temporary sibling directory and moved into place with a single
//! `rename(2)` ([`atomic_publish`]), so a directory under its final name is always complete.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The cache root: `$PINVM_CACHE`, else `$XDG_CACHE_HOME/pinvm`, else `~/.cache/pinvm`.
/// Empty variables count as unset (as the XDG spec asks). The directory is not created.
pub fn cache_dir() -> Result<PathBuf> {
    cache_dir_from(|name| std::env::var_os(name))
}

/// [`cache_dir`] with the environment passed in (for tests and for callers that
/// resolve variables themselves).
pub fn cache_dir_from(env: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("PINVM_CACHE") {
        return Ok(dir);
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return Ok(dir.join("pinvm"));
    }
    if let Some(home) = var("HOME") {
        return Ok(home.join(".cache").join("pinvm"));
    }
    bail!("cannot find a cache directory: set PINVM_CACHE, XDG_CACHE_HOME or HOME")
}

/// A temporary path beside `final_path` (same directory, so same file system, so
/// `rename` is atomic), unique within this host: `.tmp-<name>-<pid>-<nanos>-<n>`.
pub fn temp_sibling(final_path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "entry".to_string());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(".tmp-{name}-{}-{nanos}-{n}", std::process::id());
    match final_path.parent() {
        Some(parent) => parent.join(tmp),
        None => PathBuf::from(tmp),
    }
}

/// Removes the temporary siblings [`temp_sibling`] made for `final_path` (left behind
/// by interrupted processes). Call it only while holding the entry's lock, so that no
/// live process is still writing one of them.
pub fn remove_stale_temps(final_path: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (final_path.parent(), final_path.file_name()) else {
        return Ok(());
    };
    let prefix = format!(".tmp-{}-", name.to_string_lossy());
    let entries = match std::fs::read_dir(parent) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", parent.display())),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            remove_path(&entry.path())?;
        }
    }
    Ok(())
}

/// The lock file guarding a cache entry: `<entry>.lock` beside it (the entry's
/// name may contain dots, so this is not `Path::with_extension`).
pub fn lock_path(entry: &Path) -> PathBuf {
    let mut name = entry.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    entry.with_file_name(name)
}

/// Whether [`atomic_publish`] moved the entry into place or found one already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// `tmp` was renamed to `final`.
    Moved,
    /// `final` already existed (another process published the same key first);
    /// `tmp` was removed and the existing entry is kept.
    AlreadyPresent,
}

/// The file at `path` if it is there, else made now: `make` writes a temporary file beside
/// it, which is then renamed into place (and removed if `make` fails), so a reader never sees
/// a partial file and concurrent makers each publish a whole one.
pub fn cached_file(path: &Path, make: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let tmp = temp_sibling(path);
    if let Err(e) = make(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    atomic_publish(&tmp, path)?;
    Ok(path.to_path_buf())
}

/// Runs a tool that makes a file (mkfs and friends): an error names the tool (`what`), its
/// exit status and what it printed on stderr.
pub fn run_tool(cmd: &mut std::process::Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Moves a fully written file or directory `tmp` to `final_path` with one `rename(2)`.
///
/// If `final_path` already exists as a directory (content-addressed entries are
/// identical by construction, so whoever came first wins), `tmp` is deleted and
/// [`Published::AlreadyPresent`] is returned. A file `final_path` is replaced.
/// The parent of `final_path` is created if needed; `tmp` must be on the same file
/// system (use [`temp_sibling`]).
pub fn atomic_publish(tmp: &Path, final_path: &Path) -> Result<Published> {
    if let Some(parent) = final_path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    match std::fs::rename(tmp, final_path) {
        Ok(()) => Ok(Published::Moved),
        Err(e)
            if final_path.is_dir()
                && matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) =>
        {
            remove_path(tmp)?;
            Ok(Published::AlreadyPresent)
        }
        Err(e) => Err(e)
            .with_context(|| format!("publishing {} as {}", tmp.display(), final_path.display())),
    }
}

/// Removes a file or a directory tree; a missing path is not an error.
pub fn remove_path(path: &Path) -> Result<()> {
    let res = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    res.with_context(|| format!("removing {}", path.display()))
}

/// Builds a cache key: SHA-256 over a sequence of named fields.
///
/// Every field is framed as `len(name) name len(value) value` (64-bit little-endian
/// lengths), so no two different field sequences hash the same bytes: moving data from
/// one field to the next, or renaming a field, changes the key.
#[derive(Clone, Default)]
pub struct KeyBuilder {
    hasher: Sha256,
}

impl KeyBuilder {
    /// A builder whose first field names the kind of entry and its format version:
    /// bump `format_version` whenever the way entries are produced changes.
    pub fn new(kind: &str, format_version: u32) -> Self {
        let mut b = Self::default();
        b.field("kind", kind.as_bytes());
        b.field("format-version", &format_version.to_le_bytes());
        b
    }

    /// Adds one named field.
    pub fn field(&mut self, name: &str, value: &[u8]) -> &mut Self {
        for part in [name.as_bytes(), value] {
            self.hasher.update((part.len() as u64).to_le_bytes());
            self.hasher.update(part);
        }
        self
    }

    /// Adds a text field.
    pub fn str_field(&mut self, name: &str, value: &str) -> &mut Self {
        self.field(name, value.as_bytes())
    }

    /// The key as 64 lowercase hex digits.
    pub fn finish(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// SHA-256 of `bytes`, as hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SHA-256 of a file's contents, as hex, read in 1 MiB chunks.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// An exclusive advisory lock (`flock(2)`) on a lock file, released on drop (or when
/// the process dies, so a crashed holder never leaves a stale lock).
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// Takes the lock on `path` (created if missing), waiting for another holder.
    /// `on_wait` is called once if the lock is held by someone else, before blocking.
    pub fn acquire(path: &Path, on_wait: impl FnOnce()) -> Result<FileLock> {
        let file = open_lock_file(path)?;
        if !flock(&file, path, libc::LOCK_EX | libc::LOCK_NB)? {
            on_wait();
            flock(&file, path, libc::LOCK_EX)?;
        }
        Ok(FileLock {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Takes the lock on `path` if no one holds it (`None` when someone does).
    pub fn try_acquire(path: &Path) -> Result<Option<FileLock>> {
        let file = open_lock_file(path)?;
        Ok(
            flock(&file, path, libc::LOCK_EX | libc::LOCK_NB)?.then(|| FileLock {
                file,
                path: path.to_path_buf(),
            }),
        )
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock file at `path`, created (with its directory) if missing.
fn open_lock_file(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))
}

/// `flock(file, op)`, retried when a signal interrupts it: false when `op` has `LOCK_NB` and
/// another holder has the lock.
fn flock(file: &File, path: &Path, op: libc::c_int) -> Result<bool> {
    loop {
        // SAFETY: flock on a file descriptor `file` owns for the whole call.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) if op & libc::LOCK_NB != 0 => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(err).with_context(|| format!("locking {}", path.display())),
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: unlocking our own descriptor; closing it would release the lock anyway.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// A fresh, empty directory for tests, removed on drop.
#[cfg(test)]
pub(crate) struct TestDir(pub PathBuf);

#[cfg(test)]
impl TestDir {
    pub fn new(tag: &str) -> TestDir {
        let base = std::env::temp_dir().join("pinvm-guest-images-tests");
        std::fs::create_dir_all(&base).unwrap();
        let dir = temp_sibling(&base.join(tag));
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = remove_path(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn cache_dir_resolution_order() {
        let all = env_of(&[
            ("PINVM_CACHE", "/p"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(cache_dir_from(all).unwrap(), PathBuf::from("/p"));
        let xdg = env_of(&[
            ("PINVM_CACHE", ""),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(cache_dir_from(xdg).unwrap(), PathBuf::from("/x/pinvm"));
        let home = env_of(&[("HOME", "/h")]);
        assert_eq!(
            cache_dir_from(home).unwrap(),
            PathBuf::from("/h/.cache/pinvm")
        );
        assert!(cache_dir_from(env_of(&[])).is_err());
    }

    #[test]
    fn key_builder_is_framed_and_stable() {
        let key = |fields: &[(&str, &str)]| {
            let mut b = KeyBuilder::new("t", 1);
            for (n, v) in fields {
                b.str_field(n, v);
            }
            b.finish()
        };
        let k = key(&[("a", "bc")]);
        assert_eq!(k.len(), 64);
        assert_eq!(k, key(&[("a", "bc")]));
        assert_ne!(k, key(&[("a", "b"), ("", "c")]));
        assert_ne!(k, key(&[("ab", "c")]));
        assert_ne!(k, key(&[("a", "bd")]));
        assert_ne!(
            KeyBuilder::new("t", 1).finish(),
            KeyBuilder::new("t", 2).finish()
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn atomic_publish_moves_then_keeps_first() {
        let t = TestDir::new("publish");
        let final_dir = t.path().join("sub/entry");
        let tmp1 = temp_sibling(&t.path().join("entry"));
        std::fs::create_dir_all(&tmp1).unwrap();
        std::fs::write(tmp1.join("f"), "one").unwrap();
        assert_eq!(atomic_publish(&tmp1, &final_dir).unwrap(), Published::Moved);
        let tmp2 = temp_sibling(&final_dir);
        std::fs::create_dir_all(&tmp2).unwrap();
        std::fs::write(tmp2.join("f"), "two").unwrap();
        assert_eq!(
            atomic_publish(&tmp2, &final_dir).unwrap(),
            Published::AlreadyPresent
        );
        assert!(!tmp2.exists());
        assert_eq!(std::fs::read_to_string(final_dir.join("f")).unwrap(), "one");
    }

    #[test]
    fn stale_temps_of_one_entry_are_removed() {
        let t = TestDir::new("stale");
        let entry = t.path().join("abc");
        let other = t.path().join("abcd");
        let stale = [temp_sibling(&entry), temp_sibling(&entry)];
        let keep = temp_sibling(&other);
        for d in stale.iter().chain([&keep]) {
            std::fs::create_dir_all(d.join("x")).unwrap();
        }
        std::fs::create_dir_all(&entry).unwrap();
        remove_stale_temps(&entry).unwrap();
        assert!(stale.iter().all(|d| !d.exists()));
        assert!(keep.exists() && entry.exists());
        remove_stale_temps(&t.path().join("missing/dir")).unwrap();
    }

    #[test]
    fn sha256_file_matches_bytes() {
        let t = TestDir::new("sha");
        let p = t.path().join("f");
        std::fs::write(&p, vec![7u8; 3 << 20]).unwrap();
        assert_eq!(sha256_file(&p).unwrap(), sha256_hex(&vec![7u8; 3 << 20]));
    }

    #[test]
    fn file_lock_excludes_and_releases() {
        let t = TestDir::new("lock");
        let p = t.path().join("k.lock");
        let l = FileLock::acquire(&p, || panic!("first lock must not wait")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p2 = p.clone();
        let h = std::thread::spawn(move || {
            let _l2 = FileLock::acquire(&p2, || tx.send(()).unwrap()).unwrap();
        });
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("second locker should wait");
        drop(l);
        h.join().unwrap();
        assert_eq!(FileLock::acquire(&p, || {}).unwrap().path(), p.as_path());
    }
}
