//! Getting a run ready: the kernel (built if needed), the disks (the user's image as
//! /dev/vda, then the busybox tools disk, then one read-only disk per `--share`) and the
//! initramfs (the cached base with the agent, the `--put` files, then the job).

use crate::kernel::{default_kernel, KernelChoice};
use anyhow::{Context, Result};
use guest_images::hostfs::{put, share, spec, HostPath};
use guest_images::initramfs::{Job, Mount};
use machine::DiskSpec;
use std::path::PathBuf;

/// A kernel, initramfs and disks ready to boot.
pub struct Prepared {
    /// The kernel image.
    pub kernel: PathBuf,
    /// Its System.map, if known (names where hung vCPUs were).
    pub system_map: Option<PathBuf>,
    /// `make kernelrelease` of a kernel pinvm built (None for a --kernel file).
    pub release: Option<String>,
    /// The pinvm kernel cache key of a kernel pinvm built (its directory under
    /// `<cache>/kernels/`; None for a --kernel file).
    pub cache_key: Option<String>,
    /// The initramfs: the base archive (agent, directories) followed by the job's archive.
    pub initrd: Vec<u8>,
    /// The disks, in guest order.
    pub disks: Vec<DiskSpec>,
}

/// The user's disk, if any.
#[derive(Default)]
pub struct UserDisk {
    /// The filesystem image (never modified).
    pub image: Option<PathBuf>,
    /// Record every write here.
    pub journal: Option<PathBuf>,
    /// Also record the data of every write.
    pub journal_data: bool,
    /// Save the disk as the guest left it here.
    pub keep: Option<PathBuf>,
}

/// Host files for the guest (docs/boot-time.md has what each costs).
#[derive(Debug, Clone, Default)]
pub struct HostFiles {
    /// `--put HOST[:GUEST]`: copied into the initramfs.
    pub puts: Vec<HostPath>,
    /// `--share DIR[:GUEST]`: a read-only ext4 image of DIR, mounted at GUEST.
    pub shares: Vec<HostPath>,
}

/// Resolve the kernel (building it if needed), the disks (the user's as /dev/vda, then the
/// busybox tools disk) and the initramfs for `job`.
pub fn prepare(choice: &KernelChoice, job: Job, user: UserDisk) -> Result<Prepared> {
    prepare_with(choice, job, user, &HostFiles::default())
}

/// [`prepare`] with host files: every `--put` and `--share` is checked and read before the
/// kernel is resolved, so a wrong path fails before anything is built or booted.
pub fn prepare_with(
    choice: &KernelChoice,
    mut job: Job,
    user: UserDisk,
    files: &HostFiles,
) -> Result<Prepared> {
    if files.shares.len() > share::MAX_SHARES {
        anyhow::bail!("--share: at most {} shares", share::MAX_SHARES);
    }
    spec::check_together(&files.puts, &files.shares, user.image.is_some())?;
    let puts = put::put_archive(&files.puts)?;
    let cache = guest_images::cache::cache_dir()?;
    let shares = files
        .shares
        .iter()
        .map(|s| share::cached_share_image(&cache, &s.host).map(|img| (img, &s.guest)))
        .collect::<Result<Vec<_>>>()?;
    let KernelFiles {
        kernel,
        system_map,
        release,
        cache_key,
    } = kernel_files(choice)?;
    let mut disks = Vec::new();
    if let Some(image) = user.image {
        if !image.is_file() {
            anyhow::bail!("--disk {}: no such file", image.display());
        }
        if let Some(fs) = guest_images::disk::detect(&image)? {
            job.mounts.push(Mount {
                device: "/dev/vda".into(),
                dir: "/mnt".into(),
                fstype: fs.name().into(),
                options: String::new(),
            });
        }
        disks.push(DiskSpec {
            image,
            journal: user.journal,
            journal_data: user.journal_data,
            keep: user.keep,
            id: "pinvm-disk".into(),
        });
    }
    let busybox = guest_images::agent::busybox_path();
    if let Some(bb) = &busybox {
        let tools = guest_images::tools::cached_tools_image(&cache, bb)?;
        job.mounts.push(Mount {
            device: next_device(&disks),
            dir: guest_images::tools::MOUNT_POINT.into(),
            fstype: "ext4".into(),
            options: "ro".into(),
        });
        disks.push(DiskSpec {
            image: tools,
            journal: None,
            journal_data: false,
            keep: None,
            id: "pinvm-tools".into(),
        });
    }
    for (i, (image, guest)) in shares.into_iter().enumerate() {
        job.mounts.push(Mount {
            device: next_device(&disks),
            dir: guest.clone(),
            fstype: "ext4".into(),
            options: "ro".into(),
        });
        disks.push(DiskSpec {
            image,
            journal: None,
            journal_data: false,
            keep: None,
            id: format!("pinvm-share{i}"),
        });
    }
    let agent = guest_images::agent::agent_binary()?;
    let base = guest_images::initramfs::cached_base_initramfs(&cache, &agent, busybox.is_some())?;
    let mut initrd =
        std::fs::read(&base).with_context(|| format!("reading initramfs {}", base.display()))?;
    initrd.extend_from_slice(&puts);
    initrd.extend_from_slice(&job.archive()?);
    Ok(Prepared {
        kernel,
        system_map,
        release,
        cache_key,
        initrd,
        disks,
    })
}

/// The least guest memory (MiB) that unpacks an initramfs of `initrd_len` bytes: the kernel
/// keeps the archive reserved while it unpacks it into the root tmpfs, which may grow to half
/// of the memory not reserved (~13 MiB of kernel, the archive), so the files need about
/// three times their size plus the kernel's share. Measured on 6.12 under QEMU: 32 MiB of
/// `--put` boots in 128 MiB, 40 MiB does not ("Initramfs unpacking failed: write error"),
/// 63 MiB needs 208 MiB.
pub fn min_mem_mib(initrd_len: usize) -> u64 {
    3 * (initrd_len as u64).div_ceil(1 << 20) + 24
}

/// Fails, saying which `--mem` is needed, when `mem_mib` cannot unpack the initramfs.
pub fn check_initrd_fits(initrd_len: usize, mem_mib: u64) -> Result<()> {
    let need = min_mem_mib(initrd_len);
    if mem_mib < need {
        anyhow::bail!(
            "the initramfs is {} MiB (with the --put files) and the guest unpacks it into a tmpfs \
             of at most half its free memory: give --mem {need} or more, or move large files to --share",
            (initrd_len as u64).div_ceil(1 << 20)
        );
    }
    Ok(())
}

/// The guest's name for the next disk: /dev/vda, /dev/vdb, ... in attachment order.
fn next_device(disks: &[DiskSpec]) -> String {
    format!("/dev/vd{}", (b'a' + disks.len() as u8) as char)
}

/// The kernel image and what is known about it.
struct KernelFiles {
    kernel: PathBuf,
    system_map: Option<PathBuf>,
    release: Option<String>,
    cache_key: Option<String>,
}

/// The kernel image, its System.map, its release and cache key: a `--kernel` file (System.map
/// next to it, if there; no release or key), or the built default kernel.
fn kernel_files(choice: &KernelChoice) -> Result<KernelFiles> {
    match &choice.kernel {
        Some(p) => {
            if !p.is_file() {
                anyhow::bail!("--kernel {}: no such file", p.display());
            }
            let map = p.with_file_name("System.map");
            Ok(KernelFiles {
                kernel: p.clone(),
                system_map: map.is_file().then_some(map),
                release: None,
                cache_key: None,
            })
        }
        None => {
            let built = default_kernel(choice)?;
            Ok(KernelFiles {
                release: Some(built.manifest.kernelrelease.clone()),
                cache_key: Some(built.manifest.key.clone()),
                kernel: built.vmlinux,
                system_map: Some(built.system_map),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_for_an_initramfs_follows_the_measurements() {
        let mib = 1 << 20;
        // The base archive alone fits the smallest guest.
        assert!(check_initrd_fits(mib, 32).is_ok());
        // 32 MiB of --put booted in 128 MiB; 40 MiB did not; 63 MiB needed 208 MiB.
        assert!(check_initrd_fits(33 * mib, 128).is_ok());
        assert!(check_initrd_fits(41 * mib, 128).is_err());
        let e = check_initrd_fits(64 * mib, 128).unwrap_err().to_string();
        assert!(e.contains("--mem 216"), "{e}");
        assert!(check_initrd_fits(64 * mib, 216).is_ok());
    }
}
