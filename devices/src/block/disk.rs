//! Copy-on-write disk backend.
//!
//! The base image is opened read-only and never written. Writes go to an overlay: an
//! anonymous (created, then immediately unlinked) sparse file of the base's size in the
//! temporary directory, plus an in-memory bitmap of the 4 KiB blocks that live in the overlay.
//! The first write to a block that does not cover the whole block fills the block from the
//! base first, so a block is always entirely in one file. Reads take each block from wherever
//! it currently lives. [`CowDisk::save_as`] writes the merged image to a new file (for
//! `--keep-disk`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Sector size of the virtio-blk interface.
pub const SECTOR_SIZE: u64 = 512;
/// Copy-on-write granularity.
pub const COW_BLOCK: u64 = 4096;

/// Why a [`CowDisk`] could not be opened, accessed or saved.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The base image could not be opened or its size read.
    #[error("cannot open base image {path}: {source}")]
    OpenBase {
        /// The base image asked for.
        path: PathBuf,
        /// The error from open(2) or fstat(2).
        source: io::Error,
    },
    /// The base image's size is not a whole number of 512-byte sectors, so virtio-blk could
    /// not describe it.
    #[error("base image {path} is {size} bytes, not a multiple of 512")]
    NotSectorMultiple {
        /// The base image.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// The anonymous overlay file could not be created, unlinked or sized.
    #[error("cannot create the overlay file in {dir}: {source}")]
    Overlay {
        /// The directory the overlay was to be created in.
        dir: PathBuf,
        /// The error from creating, unlinking or truncating it.
        source: io::Error,
    },
    /// A read or write reaches past the end of the disk (or its end overflows u64).
    #[error("access {offset:#x}+{len:#x} is outside the {size:#x}-byte disk")]
    OutOfRange {
        /// Start of the access, in bytes.
        offset: u64,
        /// Length of the access, in bytes.
        len: u64,
        /// Size of the disk, in bytes.
        size: u64,
    },
    /// [`CowDisk::save_as`] was given the base image itself: its path, a symbolic link to it
    /// or a hard link to it (the same file).
    #[error("refusing to overwrite the base image {0} (give --keep-disk a new file)")]
    SaveOverBase(PathBuf),
    /// A read, write or sync of the base, the overlay or the saved image failed.
    #[error("disk I/O error: {0}")]
    Io(#[from] io::Error),
}

/// A base image plus a private copy-on-write overlay.
#[derive(Debug)]
pub struct CowDisk {
    base_path: PathBuf,
    base: File,
    overlay: File,
    size: u64,
    /// One bit per COW_BLOCK: set when the block's current contents live in the overlay.
    written: Vec<u64>,
}

impl CowDisk {
    /// Open `base` read-only with an overlay in `std::env::temp_dir()`.
    pub fn open(base: &Path) -> Result<CowDisk, DiskError> {
        Self::open_in(base, &std::env::temp_dir())
    }

    /// Open `base` read-only with the (anonymous) overlay created in `overlay_dir`.
    pub fn open_in(base: &Path, overlay_dir: &Path) -> Result<CowDisk, DiskError> {
        let open_err = |source| DiskError::OpenBase {
            path: base.to_path_buf(),
            source,
        };
        let base_file = File::open(base).map_err(open_err)?;
        let size = base_file.metadata().map_err(open_err)?.len();
        if !size.is_multiple_of(SECTOR_SIZE) {
            return Err(DiskError::NotSectorMultiple {
                path: base.to_path_buf(),
                size,
            });
        }
        let overlay = anonymous_file(overlay_dir, size).map_err(|source| DiskError::Overlay {
            dir: overlay_dir.to_path_buf(),
            source,
        })?;
        let blocks = size.div_ceil(COW_BLOCK);
        Ok(CowDisk {
            base_path: base.to_path_buf(),
            base: base_file,
            overlay,
            size,
            written: vec![0; blocks.div_ceil(64) as usize],
        })
    }

    /// Size in bytes (= the base image's size).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Size in 512-byte sectors.
    pub fn capacity_sectors(&self) -> u64 {
        self.size / SECTOR_SIZE
    }

    /// Path of the base image.
    pub fn base_path(&self) -> &Path {
        &self.base_path
    }

    /// Number of 4 KiB blocks held in the overlay.
    pub fn blocks_written(&self) -> u64 {
        self.written.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    fn is_written(&self, block: u64) -> bool {
        self.written[(block / 64) as usize] & (1 << (block % 64)) != 0
    }

    fn mark_written(&mut self, block: u64) {
        self.written[(block / 64) as usize] |= 1 << (block % 64);
    }

    fn check(&self, offset: u64, len: usize) -> Result<(), DiskError> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(DiskError::OutOfRange {
                offset,
                len: len as u64,
                size: self.size,
            }),
        }
    }

    /// Iterate over the block pieces of `[offset, offset+len)`:
    /// (block index, offset in disk, offset in buffer, length).
    fn pieces(offset: u64, len: usize) -> impl Iterator<Item = (u64, u64, usize, usize)> {
        let mut pos = 0usize;
        std::iter::from_fn(move || {
            if pos >= len {
                return None;
            }
            let off = offset + pos as u64;
            let block = off / COW_BLOCK;
            let n = ((COW_BLOCK - off % COW_BLOCK) as usize).min(len - pos);
            let item = (block, off, pos, n);
            pos += n;
            Some(item)
        })
    }

    /// Read `buf.len()` bytes at `offset`.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), DiskError> {
        self.check(offset, buf.len())?;
        for (block, off, pos, n) in Self::pieces(offset, buf.len()) {
            let src = if self.is_written(block) {
                &self.overlay
            } else {
                &self.base
            };
            src.read_exact_at(&mut buf[pos..pos + n], off)?;
        }
        Ok(())
    }

    /// Write `buf` at `offset` (into the overlay).
    pub fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<(), DiskError> {
        self.check(offset, buf.len())?;
        for (block, off, pos, n) in Self::pieces(offset, buf.len()) {
            let block_start = block * COW_BLOCK;
            let block_len = COW_BLOCK.min(self.size - block_start) as usize;
            if !self.is_written(block) && n < block_len {
                let mut tmp = vec![0u8; block_len];
                self.base.read_exact_at(&mut tmp, block_start)?;
                let at = (off - block_start) as usize;
                tmp[at..at + n].copy_from_slice(&buf[pos..pos + n]);
                self.overlay.write_all_at(&tmp, block_start)?;
            } else {
                self.overlay.write_all_at(&buf[pos..pos + n], off)?;
            }
            self.mark_written(block);
        }
        Ok(())
    }

    /// Make written data durable in the overlay (fdatasync).
    pub fn flush(&self) -> Result<(), DiskError> {
        self.overlay.sync_data()?;
        Ok(())
    }

    /// Write the merged image (base + overlay) to `path`: into a temporary file beside it,
    /// fsynced, then renamed over `path`, so `path` is either what it was or the whole image,
    /// and no other name of the same file (a hard link) is ever written. Refuses the base
    /// image itself, by any name.
    pub fn save_as(&self, path: &Path) -> Result<(), DiskError> {
        use std::os::unix::fs::MetadataExt;
        let base = self.base.metadata()?;
        if let Ok(m) = std::fs::metadata(path) {
            if (m.dev(), m.ino()) == (base.dev(), base.ino()) {
                return Err(DiskError::SaveOverBase(self.base_path.clone()));
            }
        }
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
        let tmp = path.with_file_name(format!(
            ".{}.pinvm-{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let written = self.write_image(&tmp);
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return written;
        }
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        Ok(())
    }

    /// The merged image into a new file at `path` (which must not exist), fsynced.
    fn write_image(&self, path: &Path) -> Result<(), DiskError> {
        let out = OpenOptions::new().write(true).create_new(true).open(path)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut off = 0;
        while off < self.size {
            let n = (self.size - off).min(buf.len() as u64) as usize;
            self.read_at(&mut buf[..n], off)?;
            // Zero chunks stay holes: a saved 300 MiB xfs image costs only what was written.
            if buf[..n].iter().any(|&b| b != 0) {
                out.write_all_at(&buf[..n], off)?;
            }
            off += n as u64;
        }
        out.set_len(self.size)?;
        out.sync_all()?;
        Ok(())
    }
}

/// Create a file in `dir` that nobody else can open, unlink it and size it (sparse).
fn anonymous_file(dir: &Path, size: u64) -> io::Result<File> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let name = dir.join(format!(
            ".pinvm-cow-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&name)
        {
            Ok(f) => {
                std::fs::remove_file(&name)?;
                f.set_len(size)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::tempdir::TempDir;

    fn base_file(dir: &Path, size: usize) -> PathBuf {
        let p = dir.join("base.img");
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, data).unwrap();
        p
    }

    #[test]
    fn rejects_non_sector_multiple() {
        let dir = TempDir::new().unwrap();
        let p = dir.as_path().join("odd.img");
        std::fs::write(&p, [0u8; 1000]).unwrap();
        assert!(matches!(
            CowDisk::open(&p),
            Err(DiskError::NotSectorMultiple { size: 1000, .. })
        ));
        assert!(matches!(
            CowDisk::open(&dir.as_path().join("missing")),
            Err(DiskError::OpenBase { .. })
        ));
    }

    #[test]
    fn writes_go_to_overlay_base_untouched() {
        let dir = TempDir::new().unwrap();
        let size = 5 * 4096 + 1024; // last block is partial
        let p = base_file(dir.as_path(), size);
        let before = std::fs::read(&p).unwrap();
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));

        let mut d = CowDisk::open_in(&p, dir.as_path()).unwrap();
        assert_eq!(d.capacity_sectors(), size as u64 / 512);
        // Partial write in the middle of block 1: the rest of the block comes from the base.
        d.write_at(&[0xaa; 512], 4096 + 1024).unwrap();
        // Write spanning blocks 2..4, and one into the partial last block.
        d.write_at(&[0xbb; 8192 + 512], 2 * 4096 + 512).unwrap();
        d.write_at(&[0xcc; 512], 5 * 4096 + 512).unwrap();
        assert!(d.write_at(&[0; 512], size as u64).is_err());
        assert!(d.write_at(&[0; 1], u64::MAX).is_err());
        assert!(d.read_at(&mut [0; 2], size as u64 - 1).is_err());
        d.flush().unwrap();

        let mut expected = before.clone();
        expected[4096 + 1024..4096 + 1536].fill(0xaa);
        expected[2 * 4096 + 512..4 * 4096 + 1024].fill(0xbb);
        expected[5 * 4096 + 512..5 * 4096 + 1024].fill(0xcc);
        let mut got = vec![0; size];
        d.read_at(&mut got, 0).unwrap();
        assert_eq!(got, expected);
        // Unaligned read across a written/unwritten boundary.
        let mut part = vec![0; 4096];
        d.read_at(&mut part, 4096 + 3000).unwrap();
        assert_eq!(part, expected[4096 + 3000..4096 + 3000 + 4096]);
        assert_eq!(d.blocks_written(), 5);

        let out = dir.as_path().join("saved.img");
        d.save_as(&out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), expected);
        assert!(matches!(d.save_as(&p), Err(DiskError::SaveOverBase(_))));
        // A hard link is the base under another name: refused, and the base stays whole.
        let link = dir.as_path().join("base-link.img");
        std::fs::hard_link(&p, &link).unwrap();
        assert!(matches!(d.save_as(&link), Err(DiskError::SaveOverBase(_))));
        std::fs::remove_file(&link).unwrap();
        // Saving over an existing file replaces it whole.
        std::fs::write(&out, b"old").unwrap();
        d.save_as(&out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), expected);

        drop(d);
        assert_eq!(std::fs::read(&p).unwrap(), before);
        assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), mtime);
        // The overlay was anonymous: nothing left behind but our files.
        let mut names: Vec<_> = std::fs::read_dir(dir.as_path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["base.img", "saved.img"]);
    }
}
