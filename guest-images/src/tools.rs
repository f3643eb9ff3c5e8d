//! The guest's tools disk: a small read-only ext4 image holding busybox and a link for each of
//! its applets, attached as a virtio-blk disk and mounted at `/tools`.
//!
//! Why a disk and not the initramfs: on kvm_pvm the guest kernel unpacks the initramfs in
//! emulated code at about 2 s per MiB, and every archive entry costs more (measured: busybox's
//! 2 MB plus 269 applet links added ~9 s to a boot). A disk costs nothing until read, and what
//! is read arrives by (host-side) DMA, page by page, only for the code that runs.

use crate::cache::{cached_file, run_tool, temp_sibling, KeyBuilder};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bumped when the image layout changes.
const FORMAT_VERSION: u32 = 1;
/// Where the agent mounts it, and the path `/bin/busybox` links to in the initramfs.
pub const MOUNT_POINT: &str = "/tools";

/// The applet names of a busybox binary (`busybox --list`), sorted, without "busybox".
fn applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .with_context(|| format!("running {} --list", busybox.display()))?;
    if !out.status.success() {
        bail!("{} --list failed ({})", busybox.display(), out.status);
    }
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .map(str::to_string)
        .collect();
    v.sort();
    v.dedup();
    Ok(v)
}

/// The tools image for `busybox`, from the cache or made now with `mkfs.ext4 -d`.
pub fn cached_tools_image(cache: &Path, busybox: &Path) -> Result<PathBuf> {
    let bytes = std::fs::read(busybox).with_context(|| format!("reading {}", busybox.display()))?;
    let key = KeyBuilder::new("tools-image", FORMAT_VERSION)
        .field("busybox", &bytes)
        .finish();
    let path = cache
        .join("images")
        .join(format!("tools-{}.img", &key[..16]));
    let staging = temp_sibling(&path.with_extension("d"));
    let made = cached_file(&path, |tmp| {
        let bin = staging.join("bin");
        std::fs::create_dir_all(&bin)?;
        std::fs::copy(busybox, bin.join("busybox"))?;
        for a in applets(busybox)? {
            std::os::unix::fs::symlink("busybox", bin.join(&a))?;
        }
        // Room for busybox plus metadata; ext4 without a journal (the disk is read-only).
        let size = ((bytes.len() as u64 * 2 + (4 << 20)) + 4095) & !4095;
        std::fs::File::create(tmp)?.set_len(size)?;
        run_tool(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-b", "4096", "-L", "pinvm-tools"])
                .args(["-O", "^has_journal", "-E", "root_owner=0:0", "-d"])
                .arg(&staging)
                .arg(tmp),
            "mkfs.ext4 -d (Debian package e2fsprogs)",
        )
    });
    let _ = std::fs::remove_dir_all(&staging);
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_image_holds_busybox_and_links() {
        let Some(bb) = crate::agent::busybox_path() else {
            eprintln!("SKIP: no static busybox on this host");
            return;
        };
        let dir = std::env::temp_dir().join(format!("pinvm-tools-test-{}", std::process::id()));
        let img = cached_tools_image(&dir, &bb).unwrap();
        assert_eq!(
            crate::disk::detect(&img).unwrap(),
            Some(crate::disk::Fs::Ext4)
        );
        assert_eq!(cached_tools_image(&dir, &bb).unwrap(), img, "cache hit");
        // debugfs (e2fsprogs) lists the image's /bin without mounting it.
        let out = Command::new("debugfs")
            .args(["-R", "ls -l /bin"])
            .arg(&img)
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            listing.contains("busybox") && listing.contains(" sh"),
            "{listing}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
