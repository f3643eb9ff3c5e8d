//! `--put`: host files and directories as one more newc archive appended to the initramfs.
//! Regular files keep their permission bits (setuid/setgid/sticky too), directories theirs,
//! symbolic links their target; owners become root. Missing parents of a guest path are
//! created as directories (0755), except those the base archive already has.

use super::spec::HostPath;
use crate::initramfs::CpioWriter;
use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Most bytes of file contents all `--put`s of a run may add to the initramfs: on kvm_pvm the
/// guest kernel unpacks ~0.5 MiB/s (64 MiB would add about two minutes there); under QEMU's
/// TCG it costs ~0.1 s per MiB (docs/boot-time.md). Larger trees go on a `--share`.
pub const MAX_PUT_BYTES: u64 = 64 << 20;
/// Most archive entries (files, directories, links) all `--put`s of a run may add.
pub const MAX_PUT_ENTRIES: usize = 10_000;

/// First inode number of the put archive: far from the base archive's (1...) and the job's
/// (0x4000_0000...).
const FIRST_INO: u32 = 0x2000_0000;

/// Directories the base initramfs has below `/` that user files may go into (they are not
/// created again: the kernel would re-chmod them).
const BASE_DIRS: [&str; 6] = ["/tmp", "/mnt", "/root", "/bin", "/usr", "/usr/bin"];

/// Budget left while walking.
struct Budget {
    bytes: u64,
    entries: usize,
}

impl Budget {
    fn take(&mut self, bytes: u64, what: &Path) -> Result<()> {
        if self.entries == 0 {
            bail!("--put: more than {MAX_PUT_ENTRIES} files and directories (at {}); use --share DIR for large trees", what.display());
        }
        self.entries -= 1;
        if bytes > self.bytes {
            bail!("--put: more than {} MiB in all (at {}); initramfs bytes slow every boot, so use --share DIR for large files or trees", MAX_PUT_BYTES >> 20, what.display());
        }
        self.bytes -= bytes;
        Ok(())
    }
}

/// The archive holding every put (empty when there is none). Errors name the host path that
/// is missing, unreadable, of an unsupported type (sockets, devices, FIFOs) or over a limit.
pub fn put_archive(puts: &[HostPath]) -> Result<Vec<u8>> {
    if puts.is_empty() {
        return Ok(Vec::new());
    }
    let mut w = CpioWriter::with_first_ino(FIRST_INO);
    let mut budget = Budget {
        bytes: MAX_PUT_BYTES,
        entries: MAX_PUT_ENTRIES,
    };
    for p in puts {
        parents(&mut w, &p.guest)?;
        if w.contains(&p.guest) {
            bail!(
                "--put: two puts write {}; give each its own guest path",
                p.guest
            );
        }
        add(&mut w, &p.host, &p.guest, &mut budget)?;
    }
    Ok(w.finish())
}

/// Adds the missing parent directories of `guest`.
fn parents(w: &mut CpioWriter, guest: &str) -> Result<()> {
    let mut at = 0;
    while let Some(i) = guest[at + 1..].find('/') {
        let dir = &guest[..at + 1 + i];
        at += 1 + i;
        if !BASE_DIRS.contains(&dir) && !w.contains(dir) {
            w.dir(dir, 0o755)?;
        }
    }
    Ok(())
}

/// Adds `host` as `guest`, recursively for directories (entries in name order).
fn add(w: &mut CpioWriter, host: &Path, guest: &str, budget: &mut Budget) -> Result<()> {
    let meta = std::fs::symlink_metadata(host)
        .with_context(|| format!("--put: reading {}", host.display()))?;
    let perm = meta.permissions().mode() & 0o7777;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(host)?;
        let target = target
            .to_str()
            .with_context(|| format!("--put: link {} has a non-UTF-8 target", host.display()))?;
        budget.take(target.len() as u64, host)?;
        w.symlink(guest, target)?;
    } else if ft.is_file() {
        budget.take(meta.len(), host)?;
        let data =
            std::fs::read(host).with_context(|| format!("--put: reading {}", host.display()))?;
        w.file(guest, perm, &data)?;
    } else if ft.is_dir() {
        budget.take(0, host)?;
        w.dir(guest, perm)?;
        let mut names: Vec<_> = std::fs::read_dir(host)
            .with_context(|| format!("--put: listing {}", host.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()?;
        names.sort();
        for name in names {
            let s = name
                .to_str()
                .with_context(|| format!("--put: {} holds a non-UTF-8 name", host.display()))?;
            if s.contains('\n') {
                bail!("--put: {} holds a name with a newline", host.display());
            }
            add(w, &host.join(&name), &format!("{guest}/{s}"), budget)?;
        }
    } else {
        bail!(
            "--put: {} is not a regular file, directory or symbolic link",
            host.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
