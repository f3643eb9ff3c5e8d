//! Filesystem disk images for the guest's virtio-blk disk: `pinvm image create`.
//!
//! Images are made with the distribution's mkfs tools and cached under a key of everything
//! that shapes them (filesystem, size, options, the mkfs tool's version). Runs never modify
//! an image: the VMM serves it copy-on-write.

use crate::cache::{cached_file, run_tool, KeyBuilder};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bumped when the way images are made changes.
const FORMAT_VERSION: u32 = 1;

/// A filesystem pinvm can make images of (with the host's mkfs tools).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    /// ext4, made with `mkfs.ext4` (e2fsprogs).
    Ext4,
    /// XFS, made with `mkfs.xfs` (xfsprogs).
    Xfs,
    /// Btrfs, made with `mkfs.btrfs` (btrfs-progs).
    Btrfs,
}

impl Fs {
    /// The type as the kernel and mount(8) name it (`ext4`, `xfs`, `btrfs`); also part of the
    /// cache key and of the image's file name.
    pub fn name(self) -> &'static str {
        match self {
            Fs::Ext4 => "ext4",
            Fs::Xfs => "xfs",
            Fs::Btrfs => "btrfs",
        }
    }

    fn mkfs(self) -> &'static str {
        match self {
            Fs::Ext4 => "mkfs.ext4",
            Fs::Xfs => "mkfs.xfs",
            Fs::Btrfs => "mkfs.btrfs",
        }
    }

    /// Smallest image the mkfs tool accepts (xfsprogs 6.x refuses < 300 MiB; btrfs below
    /// 114 MiB needs mixed block groups, which we use for small images).
    pub fn min_size(self) -> u64 {
        match self {
            Fs::Ext4 => 4 << 20,
            Fs::Xfs => 300 << 20,
            Fs::Btrfs => 16 << 20,
        }
    }

    /// Default image size: small (a sparse file on the host; the guest only touches what it
    /// writes).
    pub fn default_size(self) -> u64 {
        self.min_size().max(64 << 20)
    }

    /// mkfs arguments before the image path. ext4: initialise inode tables and the journal
    /// now, so that no lazy-init writes show up in a test's block journal later.
    fn args(self, size: u64) -> Vec<&'static str> {
        match self {
            Fs::Ext4 => vec!["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"],
            Fs::Xfs => vec!["-q", "-f"],
            Fs::Btrfs if size < 1 << 30 => vec!["-q", "-f", "--mixed"],
            Fs::Btrfs => vec!["-q", "-f"],
        }
    }
}

impl std::str::FromStr for Fs {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Fs> {
        match s {
            "ext4" => Ok(Fs::Ext4),
            "xfs" => Ok(Fs::Xfs),
            "btrfs" => Ok(Fs::Btrfs),
            other => bail!("unknown filesystem {other:?}: expected ext4, xfs or btrfs"),
        }
    }
}

/// Parse `64M`, `1G`, `300m`, `4096` (bytes) into bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("bad size {s:?}: expected a number with optional K/M/G"))?;
    n.checked_mul(mult)
        .with_context(|| format!("size {s:?} is too large"))
}

/// The first line of `tool -V`, for the cache key.
fn tool_version(tool: &str) -> Result<String> {
    let out = Command::new(tool).arg("-V").output().with_context(|| {
        format!("running {tool}: is it installed? (Debian: e2fsprogs, xfsprogs, btrfs-progs)")
    })?;
    let text = String::from_utf8_lossy(if out.stdout.is_empty() {
        &out.stderr
    } else {
        &out.stdout
    })
    .into_owned();
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

/// A filesystem image of `size` bytes, from the cache or made now. Returns its path.
pub fn create(cache: &Path, fs: Fs, size: u64) -> Result<PathBuf> {
    if size < fs.min_size() {
        bail!(
            "{} images must be at least {} MiB ({} refuses smaller ones)",
            fs.name(),
            fs.min_size() >> 20,
            fs.mkfs()
        );
    }
    if !size.is_multiple_of(4096) {
        bail!("image size {size} is not a multiple of 4 KiB");
    }
    let version = tool_version(fs.mkfs())?;
    let key = KeyBuilder::new("disk-image", FORMAT_VERSION)
        .str_field("fs", fs.name())
        .str_field("size", &size.to_string())
        .str_field("args", &fs.args(size).join(" "))
        .str_field("mkfs", &version)
        .finish();
    let path = cache
        .join("images")
        .join(format!("{}-{}.img", fs.name(), &key[..16]));
    cached_file(&path, |tmp| {
        File::create(tmp)?.set_len(size)?;
        run_tool(
            Command::new(fs.mkfs()).args(fs.args(size)).arg(tmp),
            fs.mkfs(),
        )
    })
}

/// The filesystem in an image, from its superblock magic (None: not one of ours).
pub fn detect(path: &Path) -> Result<Option<Fs>> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut at = |off: u64, len: usize| -> Result<Vec<u8>> {
        let mut b = vec![0u8; len];
        f.seek(SeekFrom::Start(off))?;
        match f.read_exact(&mut b) {
            Ok(()) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    };
    if at(0, 4)? == b"XFSB" {
        return Ok(Some(Fs::Xfs));
    }
    if at(0x10040, 8)? == b"_BHRfS_M" {
        return Ok(Some(Fs::Btrfs));
    }
    if at(1080, 2)? == [0x53, 0xef] {
        return Ok(Some(Fs::Ext4));
    }
    Ok(None)
}

/// Where a FIEMAP "physical" address of a file on `image` is on the device: the same for ext4
/// and xfs; btrfs reports addresses in its own logical space, mapped to the device through its
/// chunk tree (`btrfs-map-logical`, from btrfs-progs).
pub fn device_offset(fs: Fs, image: &Path, physical: u64) -> Result<u64> {
    if fs != Fs::Btrfs {
        return Ok(physical);
    }
    let mut cmd = Command::new("btrfs-map-logical");
    cmd.args(["-l", &physical.to_string()]).arg(image);
    let out = output_within(cmd, MAP_LOGICAL_TIMEOUT)
        .context("running btrfs-map-logical: is btrfs-progs installed?")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "physical")
        .nth(1)
        .and_then(|f| f.parse().ok())
        .with_context(|| {
            format!(
                "btrfs-map-logical -l {physical} {}: no physical address in {:?} {}",
                image.display(),
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })
}

/// How long one `btrfs-map-logical` may take (it reads a few tree blocks; the image and the
/// address come from a guest, so a pathological one must not hold the analysis).
const MAP_LOGICAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `cmd`'s output, or an error if it runs longer than `limit` (it is killed then).
fn output_within(
    mut cmd: Command,
    limit: std::time::Duration,
) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    fn drain(p: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut v);
            }
            v
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("killed after {} s", limit.as_secs()),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Ok(std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_helper_that_hangs_is_killed() {
        let mut cmd = Command::new("sleep");
        cmd.arg("100");
        let t0 = std::time::Instant::now();
        let e = output_within(cmd, std::time::Duration::from_millis(200)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2"]);
        let o = output_within(cmd, std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(
            (o.stdout.as_slice(), o.stderr.as_slice()),
            (&b"out\n"[..], &b"err\n"[..])
        );
    }

    #[test]
    fn sizes_and_names() {
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999999G").is_err());
        assert_eq!("xfs".parse::<Fs>().unwrap(), Fs::Xfs);
        assert!("vfat".parse::<Fs>().is_err());
        assert_eq!(Fs::Xfs.default_size(), 300 << 20);
        assert_eq!(Fs::Ext4.default_size(), 64 << 20);
    }

    #[test]
    fn creates_detects_and_caches_each_fs() {
        let dir = std::env::temp_dir().join(format!("pinvm-disk-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for fs in [Fs::Ext4, Fs::Xfs, Fs::Btrfs] {
            if Command::new(fs.mkfs()).arg("-V").output().is_err() {
                eprintln!("SKIP {}: {} not installed", fs.name(), fs.mkfs());
                continue;
            }
            let p = create(&dir, fs, fs.default_size()).unwrap();
            assert_eq!(detect(&p).unwrap(), Some(fs));
            assert_eq!(std::fs::metadata(&p).unwrap().len(), fs.default_size());
            let again = create(&dir, fs, fs.default_size()).unwrap();
            assert_eq!(p, again, "second create is a cache hit");
        }
        let plain = dir.join("plain");
        std::fs::write(&plain, vec![0u8; 8192]).unwrap();
        assert_eq!(detect(&plain).unwrap(), None);
        assert!(
            create(&dir, Fs::Xfs, 64 << 20).is_err(),
            "xfs below 300 MiB"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
