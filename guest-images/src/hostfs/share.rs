//! `--share`: a read-only ext4 image made from a host directory with `mkfs.ext4 -d`
//! (e2fsprogs), cached by content under `<cache>/images/share-<key>.img`, attached as one
//! more virtio-blk disk and mounted read-only in the guest.
//!
//! The key is a SHA-256 over every entry's relative path, type, permission bits, size and
//! contents (symbolic links: their target), so an unchanged directory boots from the cached
//! image after one pass of hashing, and a changed byte makes a new image. Owners and times are
//! not part of the key: the image keeps those of the tree it was first made from.

use crate::cache::{cached_file, run_tool, KeyBuilder};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bumped when the image layout changes.
const FORMAT_VERSION: u32 = 1;
/// Most bytes of file contents a share may hold (the image is made, and the tree hashed, on
/// every change; a disk this size still costs nothing at boot until read).
pub const MAX_SHARE_BYTES: u64 = 4 << 30;
/// Most entries a share may hold.
pub const MAX_SHARE_ENTRIES: u64 = 200_000;
/// Most shares of one run (each is a virtio device; our VMM has 19 slots for all of them).
pub const MAX_SHARES: usize = 8;

/// What walking the tree found.
#[derive(Default)]
struct Tree {
    key: KeyBuilder,
    bytes: u64,
    entries: u64,
}

impl Tree {
    fn walk(&mut self, root: &Path, rel: &str) -> Result<()> {
        let path = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("--share: reading {}", path.display()))?;
        self.entries += 1;
        if self.entries > MAX_SHARE_ENTRIES {
            bail!(
                "--share {}: more than {MAX_SHARE_ENTRIES} entries; share a smaller tree",
                root.display()
            );
        }
        let perm = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        self.key.str_field("path", rel);
        self.key.field("perm", &perm.to_le_bytes());
        if ft.is_symlink() {
            let target = std::fs::read_link(&path)?;
            self.key
                .field("symlink", target.as_os_str().as_encoded_bytes());
        } else if ft.is_file() {
            self.bytes += meta.len();
            if self.bytes > MAX_SHARE_BYTES {
                bail!(
                    "--share {}: more than {} GiB of files; share a smaller tree",
                    root.display(),
                    MAX_SHARE_BYTES >> 30
                );
            }
            self.key.field("file", &file_hash(&path)?);
        } else if ft.is_dir() {
            self.key.field("dir", b"");
            let mut names: Vec<_> = std::fs::read_dir(&path)
                .with_context(|| format!("--share: listing {}", path.display()))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<_>>()?;
            names.sort();
            for name in names {
                let name = name.to_str().with_context(|| {
                    format!("--share: {} holds a non-UTF-8 name", path.display())
                })?;
                let child = if rel.is_empty() {
                    name.to_string()
                } else {
                    format!("{rel}/{name}")
                };
                self.walk(root, &child)?;
            }
        } else {
            bail!(
                "--share: {} is not a regular file, directory or symbolic link",
                path.display()
            );
        }
        Ok(())
    }
}

/// SHA-256 of a file's contents, read in 1 MiB pieces.
fn file_hash(path: &Path) -> Result<[u8; 32]> {
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("--share: opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("--share: reading {}", path.display()))?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

/// Image size for a tree: its data in 4 KiB blocks plus a block per entry (directories,
/// inline-less small files' slack), inode tables (256 bytes an inode) and 25% + 8 MiB of
/// room for ext4's metadata; a multiple of 4 KiB.
fn image_size(bytes: u64, entries: u64) -> u64 {
    let data = bytes.div_ceil(4096) * 4096 + entries * (4096 + 256);
    (data + data / 4 + (8 << 20)).div_ceil(4096) * 4096
}

/// The share image of `dir`, from the cache or made now.
pub fn cached_share_image(cache: &Path, dir: &Path) -> Result<PathBuf> {
    let mut tree = Tree {
        key: KeyBuilder::new("share-image", FORMAT_VERSION),
        ..Tree::default()
    };
    tree.walk(dir, "")?;
    let key = tree.key.finish();
    let path = cache
        .join("images")
        .join(format!("share-{}.img", &key[..16]));
    cached_file(&path, |tmp| {
        let size = image_size(tree.bytes, tree.entries);
        std::fs::File::create(tmp)?.set_len(size)?;
        let inodes = (tree.entries + 64).to_string();
        let mut mkfs = Command::new("mkfs.ext4");
        mkfs.args([
            "-q", "-F", "-b", "4096", "-I", "256", "-N", &inodes, "-m", "0",
        ])
        .args([
            "-L",
            "pinvm-share",
            "-O",
            "^has_journal",
            "-E",
            "root_owner=0:0",
            "-d",
        ])
        .arg(dir)
        .arg(tmp);
        run_tool(&mut mkfs, "mkfs.ext4 -d (Debian package e2fsprogs)")
            .with_context(|| format!("--share {}", dir.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn temp(tag: &str) -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "pinvm-share-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn image_holds_the_tree_and_is_cached_by_content() {
        let cache = temp("cache");
        let dir = temp("dir");
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/data"), vec![7u8; 100_000]).unwrap();
        std::fs::write(dir.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(dir.join("run.sh"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        let img = cached_share_image(&cache, &dir).unwrap();
        assert_eq!(
            crate::disk::detect(&img).unwrap(),
            Some(crate::disk::Fs::Ext4)
        );
        assert_eq!(cached_share_image(&cache, &dir).unwrap(), img, "cache hit");
        let out = Command::new("debugfs")
            .args(["-R", "stat /run.sh"])
            .arg(&img)
            .output()
            .unwrap();
        let stat = String::from_utf8_lossy(&out.stdout);
        assert!(
            stat.contains("Mode:  0750") || stat.contains("Mode:  00750"),
            "{stat}"
        );
        let out = Command::new("debugfs")
            .args(["-R", "dump /sub/data /dev/stdout"])
            .arg(&img)
            .output()
            .unwrap();
        assert_eq!(out.stdout, vec![7u8; 100_000]);
        std::fs::write(dir.join("sub/data"), vec![8u8; 100_000]).unwrap();
        assert_ne!(
            cached_share_image(&cache, &dir).unwrap(),
            img,
            "a changed byte, a new image"
        );
        let _ = std::fs::remove_dir_all(&cache);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sizes_leave_room() {
        assert_eq!(image_size(0, 1) % 4096, 0);
        assert!(image_size(100 << 20, 10) > 100 << 20);
    }
}
