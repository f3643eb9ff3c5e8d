//! The run description: what to boot, with which devices, for how long.

use crate::MachineError;
use std::path::PathBuf;
use std::time::Duration;

/// Least guest RAM a run may have, MiB (as `pinvm boot --mem`).
pub const MIN_MEM_MIB: u64 = 32;
/// Most guest RAM a run may have, MiB: 64 GiB. More is a typo, and `mem_mib << 20` must not
/// wrap.
pub const MAX_MEM_MIB: u64 = 65_536;
/// Most vCPUs a run may have (as `pinvm boot --cpus`).
pub const MAX_CPUS: u8 = 32;
/// Longest run: a day. A longer one is a typo, and `Instant + timeout` must not overflow.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Everything a machine needs to run one guest: the kernel and initramfs, the command-line
/// words added to the machine's own, the vCPUs and memory, the wall-clock limit, where the
/// console goes, and the devices (disks, the DMA device) with the records they keep.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The guest kernel: an uncompressed vmlinux or a bzImage.
    pub kernel: PathBuf,
    /// The initramfs (the agent as /init plus the job), or none.
    pub initrd: Option<Vec<u8>>,
    /// Extra command-line words, after the machine's own (later words win).
    pub append: Vec<String>,
    /// Number of vCPUs (at least 1).
    pub cpus: u8,
    /// Guest RAM in MiB.
    pub mem_mib: u64,
    /// Stop the guest and report a hang after this long, counted from the start of the run.
    pub timeout: Duration,
    /// Copy the console to our stdout while the guest command runs.
    pub echo: bool,
    /// Also write the whole console to this file.
    pub console_log: Option<PathBuf>,
    /// virtio-blk disks, in order: /dev/vda, /dev/vdb, ...
    pub disks: Vec<DiskSpec>,
    /// Attach the dmapin DMA device (after the disks).
    pub dma: Option<DmaSpec>,
}

/// A virtio-blk disk: served copy-on-write over `image`, which is never modified.
#[derive(Debug, Clone)]
pub struct DiskSpec {
    /// The filesystem image the disk starts from.
    pub image: PathBuf,
    /// Record every write and flush here (docs/journal-format.md).
    pub journal: Option<PathBuf>,
    /// Also record the full data of every write in the journal.
    pub journal_data: bool,
    /// Save the disk as the guest left it here.
    pub keep: Option<PathBuf>,
    /// GET_ID answer (serial), at most 20 bytes.
    pub id: String,
}

/// The fake DMA device (`devices::dmapin`): it writes stamped data into pages the guest driver
/// pinned and posted; its writeback schedule hooks the first disk's copies.
#[derive(Debug, Clone, Default)]
pub struct DmaSpec {
    /// Log every DMA write here (docs/dma-log-format.md).
    pub log: Option<PathBuf>,
}

impl RunSpec {
    /// A run of `kernel` with nothing else: no initramfs, no devices, 2 vCPUs, 128 MiB, a
    /// 300 s timeout, no console copy; set the rest with struct update syntax.
    pub fn new(kernel: impl Into<PathBuf>) -> RunSpec {
        RunSpec {
            kernel: kernel.into(),
            initrd: None,
            append: vec![],
            cpus: 2,
            mem_mib: 128,
            timeout: Duration::from_secs(300),
            echo: false,
            console_log: None,
            disks: vec![],
            dma: None,
        }
    }

    /// Refuse vCPUs, memory or a timeout outside what any machine runs (1..=[`MAX_CPUS`],
    /// [`MIN_MEM_MIB`]..=[`MAX_MEM_MIB`] MiB, at most [`MAX_TIMEOUT`]), saying what to pass.
    pub fn check_bounds(&self) -> Result<(), MachineError> {
        if !(1..=MAX_CPUS).contains(&self.cpus) {
            return Err(MachineError::Invalid(format!(
                "{} vCPUs: a run has 1..={MAX_CPUS} (pass --cpus in that range)",
                self.cpus
            )));
        }
        if !(MIN_MEM_MIB..=MAX_MEM_MIB).contains(&self.mem_mib) {
            return Err(MachineError::Invalid(format!(
                "{} MiB of guest memory: a run has {MIN_MEM_MIB}..={MAX_MEM_MIB} MiB (pass \
                 --mem in that range)",
                self.mem_mib
            )));
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(MachineError::Invalid(format!(
                "a timeout of {:?}: a run lasts 1 s..={} s (pass --timeout in that range)",
                self.timeout,
                MAX_TIMEOUT.as_secs()
            )));
        }
        Ok(())
    }

    /// How many virtio devices the run attaches: the disks, then the DMA device if any.
    pub fn virtio_devices(&self) -> usize {
        self.disks.len() + usize::from(self.dma.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RunSpec {
        RunSpec::new("vmlinux")
    }

    #[test]
    fn absurd_resources_are_refused_with_what_to_pass() {
        spec().check_bounds().unwrap();
        let edges = [
            (1, MIN_MEM_MIB, Duration::from_secs(1)),
            (MAX_CPUS, MAX_MEM_MIB, MAX_TIMEOUT),
        ];
        for (cpus, mem_mib, timeout) in edges {
            let s = RunSpec {
                cpus,
                mem_mib,
                timeout,
                ..spec()
            };
            s.check_bounds().unwrap();
        }
        let bad = [
            (RunSpec { cpus: 0, ..spec() }, "--cpus"),
            (
                RunSpec {
                    cpus: 255,
                    ..spec()
                },
                "--cpus",
            ),
            (
                RunSpec {
                    mem_mib: 0,
                    ..spec()
                },
                "--mem",
            ),
            (
                RunSpec {
                    mem_mib: u64::MAX,
                    ..spec()
                },
                "--mem",
            ),
            (
                RunSpec {
                    mem_mib: 1 << 44,
                    ..spec()
                },
                "--mem",
            ),
            (
                RunSpec {
                    timeout: Duration::ZERO,
                    ..spec()
                },
                "--timeout",
            ),
            (
                RunSpec {
                    timeout: Duration::MAX,
                    ..spec()
                },
                "--timeout",
            ),
        ];
        for (s, want) in bad {
            match s.check_bounds() {
                Err(MachineError::Invalid(m)) => assert!(m.contains(want), "{m}"),
                r => panic!("{} cpus {} MiB {:?}: {r:?}", s.cpus, s.mem_mib, s.timeout),
            }
        }
    }
}
