//! The guest initramfs: a newc ("070701") cpio writer, the cached base archive (agent as
//! `/init`, device nodes, optional busybox) and the tiny per-run job archive.
//!
//! The kernel unpacks concatenated archives in order, so a run's initramfs is
//! `base archive ++ job_archive(argv, env)`. Both are uncompressed: on kvm_pvm hosts guest
//! kernel code is emulated (a few million instructions per second), so decompressing would
//! cost seconds of boot time.
//! Every archive this module writes is deterministic (mtime 0, uid/gid 0, inode numbers in
//! order of insertion) and its length is a multiple of 4, so concatenation is always valid.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bump when the layout of the base archive changes: it is part of the cache key.
pub const BASE_FORMAT_VERSION: u32 = 3;

const NEWC_MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: usize = 110;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Why an entry cannot be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpioError {
    /// The path is empty, contains NUL, an empty, `.` or `..` component, or is the
    /// trailer's name.
    #[error("invalid archive path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The path (without its leading `/`) is already in the archive.
    #[error("duplicate archive path {0:?}")]
    Duplicate(String),
    /// A symlink target is empty or contains NUL.
    #[error("invalid symlink target {target:?} for {path:?}: {reason}")]
    InvalidTarget {
        /// The link's path.
        path: String,
        /// The target as given.
        target: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The entry's contents do not fit newc's 32-bit size field.
    #[error("{path:?} is too large for a newc archive ({len} bytes)")]
    TooLarge {
        /// The entry's path.
        path: String,
        /// The contents' length in bytes.
        len: usize,
    },
    /// The next inode number would not fit newc's 32-bit field.
    #[error("too many entries for a newc archive")]
    TooManyEntries,
}

/// Writes a newc cpio archive into memory. Paths may be given with or without a leading `/`;
/// they are stored relative (`dev/console`), the way the kernel and `cpio -i` expect them.
/// Parents must be added before their children (the kernel does not create missing parents).
pub struct CpioWriter {
    out: Vec<u8>,
    next_ino: u32,
    paths: BTreeSet<String>,
}

impl Default for CpioWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl CpioWriter {
    /// A new archive whose inode numbers start at 1.
    pub fn new() -> Self {
        Self::with_first_ino(1)
    }

    /// A new archive whose inode numbers start at `ino` (use distinct ranges for archives that
    /// are concatenated, so no two entries of one initramfs share an inode number).
    pub fn with_first_ino(ino: u32) -> Self {
        CpioWriter {
            out: Vec::new(),
            next_ino: ino,
            paths: BTreeSet::new(),
        }
    }

    /// Whether `path` has been added.
    pub fn contains(&self, path: &str) -> bool {
        self.paths.contains(path.trim_start_matches('/'))
    }

    /// A directory; `perm` holds the permission bits (e.g. 0o755).
    pub fn dir(&mut self, path: &str, perm: u32) -> Result<(), CpioError> {
        self.entry(path, S_IFDIR | (perm & 0o7777), 2, (0, 0), b"")
    }

    /// A regular file with the given contents.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> Result<(), CpioError> {
        self.entry(path, S_IFREG | (perm & 0o7777), 1, (0, 0), data)
    }

    /// A symbolic link to `target` (stored verbatim; absolute targets are fine).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), CpioError> {
        let reason = if target.is_empty() {
            Some("empty")
        } else if target.contains('\0') {
            Some("contains NUL")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(CpioError::InvalidTarget {
                path: path.to_string(),
                target: target.to_string(),
                reason,
            });
        }
        self.entry(path, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    /// A character device node `major:minor`.
    pub fn char_dev(
        &mut self,
        path: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        self.entry(path, S_IFCHR | (perm & 0o7777), 1, (major, minor), b"")
    }

    /// Appends the trailer and returns the archive (its length is a multiple of 4).
    pub fn finish(mut self) -> Vec<u8> {
        self.header(TRAILER, 0, 0, 1, 0, (0, 0));
        self.out.extend_from_slice(TRAILER.as_bytes());
        self.out.push(0);
        self.pad();
        self.out
    }

    fn entry(
        &mut self,
        path: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> Result<(), CpioError> {
        let name = validate_path(path)?;
        if self.paths.contains(name) {
            return Err(CpioError::Duplicate(name.to_string()));
        }
        let size = u32::try_from(data.len()).map_err(|_| CpioError::TooLarge {
            path: name.to_string(),
            len: data.len(),
        })?;
        let ino = self.next_ino;
        self.next_ino = ino.checked_add(1).ok_or(CpioError::TooManyEntries)?;
        self.paths.insert(name.to_string());
        self.header(name, ino, mode, nlink, size, rdev);
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
        Ok(())
    }

    fn header(&mut self, name: &str, ino: u32, mode: u32, nlink: u32, size: u32, rdev: (u32, u32)) {
        let namesize = name.len() as u32 + 1; // including the NUL
        let fields: [u32; 13] = [
            ino, mode, 0, // uid
            0, // gid
            nlink, 0, // mtime: fixed for reproducible archives
            size, 0,      // devmajor
            0,      // devminor
            rdev.0, // rdevmajor
            rdev.1, // rdevminor
            namesize, 0, // check (only used by the "070702" format)
        ];
        let start = self.out.len();
        self.out.extend_from_slice(NEWC_MAGIC.as_bytes());
        for f in fields {
            // Infallible: writing to a Vec.
            let _ = write!(self.out, "{f:08x}");
        }
        debug_assert_eq!(self.out.len() - start, HEADER_LEN);
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }
}

/// Checks an archive path and returns it without its leading `/`.
fn validate_path(path: &str) -> Result<&str, CpioError> {
    let err = |reason| CpioError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    if path.contains('\0') {
        return Err(err("contains NUL"));
    }
    let name = path.trim_start_matches('/');
    if name.is_empty() {
        return Err(err("empty"));
    }
    if name == TRAILER {
        return Err(err("reserved for the trailer"));
    }
    for component in name.split('/') {
        match component {
            "" => return Err(err("empty component (double or trailing slash)")),
            "." | ".." => return Err(err("'.' or '..' component")),
            _ => {}
        }
    }
    Ok(name)
}

/// Directories of the base archive, parents first.
const BASE_DIRS: [&str; 10] = [
    "dev", "proc", "sys", "tmp", "mnt", "root", "pinvm", "bin", "usr", "usr/bin",
];

/// Links to the tools disk's busybox (`guest_images::tools`, mounted at `/tools`): what `#!`
/// lines and the agent's applet fallback name. Busybox itself is not in the archive: on kvm_pvm
/// the guest kernel unpacks the initramfs in emulated code (measured ~2 s per MiB, and each
/// entry extra; busybox plus its 269 applet links cost ~9 s of boot). Other applets need no
/// link here: the agent runs `/bin/busybox` with the applet as argv[0] when a command is not
/// in PATH, and busybox's shell is built standalone.
const BUSYBOX_LINKS: [&str; 3] = ["bin/busybox", "bin/sh", "usr/bin/env"];
const TOOLS_BUSYBOX: &str = "/tools/bin/busybox";

/// The base initramfs: directories, `/dev/console`, `/dev/null`, `/dev/mem`, the agent as
/// `/init` and, with `tools`, the `/tools` mount point and the links to the tools disk's
/// busybox (`/bin/busybox`, `/bin/sh`, `/usr/bin/env`).
pub fn base_initramfs(agent: &[u8], tools: bool) -> Result<Vec<u8>> {
    if agent.is_empty() {
        bail!("the agent binary is empty");
    }
    let mut w = CpioWriter::new();
    for dir in BASE_DIRS {
        let perm = match dir {
            "tmp" => 0o1777,
            "root" => 0o700,
            _ => 0o755,
        };
        w.dir(dir, perm)?;
    }
    w.char_dev("dev/console", 0o600, 5, 1)?;
    w.char_dev("dev/null", 0o666, 1, 3)?;
    w.char_dev("dev/mem", 0o640, 1, 1)?;
    w.file("init", 0o755, agent)?;
    if tools {
        w.dir("tools", 0o755)?;
        for link in BUSYBOX_LINKS {
            w.symlink(link, TOOLS_BUSYBOX)?;
        }
    }
    Ok(w.finish())
}

/// The per-run job archive: `/pinvm/argv` (each argument followed by NUL) and, if `env` is not
/// empty, `/pinvm/env` (`KEY=VALUE` entries each followed by NUL). It relies on the base
/// archive for the `/pinvm` directory and is meant to be appended to it.
pub fn job_archive(argv: &[String], env: &[(String, String)]) -> Result<Vec<u8>> {
    Job {
        argv: argv.to_vec(),
        env: env.to_vec(),
        ..Job::default()
    }
    .archive()
}

/// A filesystem for the agent to mount before anything runs (`/pinvm/mounts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The block device, e.g. `/dev/vda` (one word).
    pub device: String,
    /// Absolute mount point; created with its parents if missing (one word).
    pub dir: String,
    /// Filesystem type as mount(2) takes it, e.g. `xfs` (one word).
    pub fstype: String,
    /// Comma-separated mount options, or empty.
    pub options: String,
}

/// What the guest agent is asked to do (docs/control-protocol.md, "The job").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Job {
    /// The command; may be empty when there are steps.
    pub argv: Vec<String>,
    /// Environment of the command, `(KEY, VALUE)` in order; keys are non-empty without `=`.
    pub env: Vec<(String, String)>,
    /// Filesystems to mount, in order, before the steps and the command run.
    pub mounts: Vec<Mount>,
    /// In-process workload steps, one per line (`write PATH SIZE PATTERN`, `fsync PATH`, ...).
    pub steps: Vec<String>,
    /// Echo each step's result on the console.
    pub verbose: bool,
    /// Run every step even after one failed (the first failure still sets the status).
    pub keep_going: bool,
}

fn one_line(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.contains(['\n', '\0']) {
        bail!("{what} {s:?} must be one non-empty line without NUL bytes");
    }
    Ok(())
}

impl Job {
    /// The per-run job archive: `/pinvm/argv` (each argument followed by NUL), and when not
    /// empty `/pinvm/env` (`KEY=VALUE` + NUL each), `/pinvm/mounts`, `/pinvm/steps` and
    /// `/pinvm/options`. It relies on the base archive for the `/pinvm` directory and is meant
    /// to be appended to it.
    pub fn archive(&self) -> Result<Vec<u8>> {
        if self.argv.is_empty() && self.steps.is_empty() {
            bail!("the command is empty");
        }
        if self.argv.first().is_some_and(|a| a.is_empty()) {
            bail!("the command is empty");
        }
        let mut argv_bytes = Vec::new();
        for arg in &self.argv {
            if arg.contains('\0') {
                bail!("command argument {arg:?} contains a NUL byte");
            }
            argv_bytes.extend_from_slice(arg.as_bytes());
            argv_bytes.push(0);
        }
        let mut env_bytes = Vec::new();
        for (key, value) in &self.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                bail!("invalid environment variable name {key:?}");
            }
            if value.contains('\0') {
                bail!("environment variable {key} contains a NUL byte");
            }
            env_bytes.extend_from_slice(key.as_bytes());
            env_bytes.push(b'=');
            env_bytes.extend_from_slice(value.as_bytes());
            env_bytes.push(0);
        }
        let mut mounts = String::new();
        for m in &self.mounts {
            for (what, v) in [
                ("device", &m.device),
                ("mount point", &m.dir),
                ("fstype", &m.fstype),
            ] {
                one_line(what, v)?;
                if v.contains(char::is_whitespace) {
                    bail!("{what} {v:?} contains whitespace");
                }
            }
            let opts = if m.options.is_empty() {
                "-"
            } else {
                &m.options
            };
            mounts.push_str(&format!("{} {} {} {opts}\n", m.device, m.dir, m.fstype));
        }
        let mut steps = String::new();
        for st in &self.steps {
            one_line("step", st)?;
            steps.push_str(st);
            steps.push('\n');
        }
        let options: String = [("verbose", self.verbose), ("keep_going", self.keep_going)]
            .iter()
            .filter(|(_, on)| *on)
            .map(|(w, _)| format!("{w}\n"))
            .collect();
        // Inode numbers far from the base archive's.
        let mut w = CpioWriter::with_first_ino(0x4000_0000);
        if !self.argv.is_empty() {
            w.file("pinvm/argv", 0o644, &argv_bytes)?;
        }
        for (name, bytes) in [
            ("pinvm/env", env_bytes.as_slice()),
            ("pinvm/mounts", mounts.as_bytes()),
            ("pinvm/steps", steps.as_bytes()),
            ("pinvm/options", options.as_bytes()),
        ] {
            if !bytes.is_empty() {
                w.file(name, 0o644, bytes)?;
            }
        }
        Ok(w.finish())
    }
}

/// Cache key of a base archive: sha256 over the format version, the agent and `tools`.
fn base_key(agent: &[u8], tools: bool) -> String {
    let mut h = Sha256::new();
    h.update(b"pinvm-initramfs-base\0");
    h.update(BASE_FORMAT_VERSION.to_le_bytes());
    h.update((agent.len() as u64).to_le_bytes());
    h.update(agent);
    h.update([u8::from(tools)]);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Returns the path of the base archive for the agent binary `agent` (+ `busybox`) in
/// `cache_dir`, building it if it is not cached yet. The file name holds a sha256 over the
/// agent's bytes, `tools` and [`BASE_FORMAT_VERSION`]; it is written to a temporary file and
/// renamed into place, so concurrent callers never see a partial archive.
pub fn cached_base_initramfs(cache_dir: &Path, agent: &[u8], tools: bool) -> Result<PathBuf> {
    let key = base_key(agent, tools);
    let path = cache_dir.join(format!("initramfs-base-{key}.cpio"));
    if path.is_file() {
        return Ok(path);
    }
    let archive = base_initramfs(agent, tools)?;
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("creating cache directory {}", cache_dir.display()))?;
    static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = cache_dir.join(format!(
        ".initramfs-base-{key}.{}.{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&archive)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(path)
}

#[cfg(test)]
mod tests;
