//! The run description: what to boot, with which devices, for how long.

use std::path::PathBuf;
use std::time::Duration;

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
    /// How many virtio devices the run attaches: the disks, then the DMA device if any.
    pub fn virtio_devices(&self) -> usize {
        self.disks.len() + usize::from(self.dma.is_some())
    }
}
