//! Benchmarks, measured and never asserted: boot times (machine set-up, guest init, command
//! done, over N boots) and guest disk throughput against the host's.

use crate::kernel::KernelChoice;
use crate::prepare::{prepare, UserDisk};
use anyhow::{bail, Result};
use guest_images::disk::Fs;
use guest_images::initramfs::Job;
use machine::{DmaSpec, Machine, RunSpec};
use proto::agent::StepReport;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// Limit of one benchmark boot.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// Limit of the guest disk benchmark.
const DISK_TIMEOUT: Duration = Duration::from_secs(1800);

/// Measurements of one quantity.
#[derive(Debug, Default, Clone)]
pub struct Series(pub Vec<Duration>);

impl Series {
    /// (median, min, max), or None without measurements.
    pub fn stats(&self) -> Option<(Duration, Duration, Duration)> {
        let mut v = self.0.clone();
        v.sort();
        let median = *v.get(v.len() / 2)?;
        Some((median, *v.first()?, *v.last()?))
    }
}

/// What to boot, how often.
pub struct BootBench {
    /// The kernel.
    pub kernel: KernelChoice,
    /// Boots.
    pub runs: u32,
    /// vCPUs.
    pub cpus: u8,
    /// Guest RAM in MiB.
    pub mem_mib: u64,
    /// Extra kernel command-line words.
    pub append: Vec<String>,
}

/// Boot times of one kernel.
pub struct BootFigures {
    /// Size of the initramfs booted.
    pub initrd_bytes: usize,
    /// Machine set-up to the guest's first instruction.
    pub setup: Series,
    /// First instruction to guest init (the agent's first event).
    pub to_init: Series,
    /// First instruction to command done.
    pub to_cmd_done: Series,
    /// Start of the run (machine set-up included) to guest init: what a user waits for.
    pub start_to_init: Series,
    /// Start of the run to command done.
    pub start_to_cmd_done: Series,
    /// The whole run, stopping the guest and collecting the devices included.
    pub total: Series,
}

/// Boot `b.kernel` `b.runs` times running `true`; `each` is called after every boot.
pub fn boot(machine: &dyn Machine, b: &BootBench, each: &mut dyn FnMut()) -> Result<BootFigures> {
    let name = b
        .kernel
        .kernel
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| b.kernel.kernel_version.clone());
    let job = Job {
        argv: vec!["true".into()],
        ..Job::default()
    };
    let p = prepare(&b.kernel, job, UserDisk::default())?;
    let mut f = BootFigures {
        initrd_bytes: p.initrd.len(),
        setup: Series::default(),
        to_init: Series::default(),
        to_cmd_done: Series::default(),
        start_to_init: Series::default(),
        start_to_cmd_done: Series::default(),
        total: Series::default(),
    };
    for i in 0..b.runs {
        let r = machine.run(&RunSpec {
            kernel: p.kernel.clone(),
            initrd: Some(p.initrd.clone()),
            append: b.append.clone(),
            cpus: b.cpus,
            mem_mib: b.mem_mib,
            timeout: BOOT_TIMEOUT,
            echo: false,
            console_log: None,
            disks: p.disks.clone(),
            dma: Some(DmaSpec::default()),
        })?;
        if r.cmd_status != Some(0) {
            bail!(
                "{name}: run {i} did not complete `true` ({:?}); last console lines:\n{}",
                r.end,
                machine::crash::tail(&r.console, 10).join("\n")
            );
        }
        let t = &r.timings;
        f.setup.0.push(t.setup);
        f.to_init.0.extend(t.to_init);
        f.to_cmd_done.0.extend(t.to_cmd_done);
        f.start_to_init.0.extend(t.to_init.map(|d| t.setup + d));
        f.start_to_cmd_done
            .0
            .extend(t.to_cmd_done.map(|d| t.setup + d));
        f.total.0.push(t.total);
        each();
    }
    Ok(f)
}

/// What the disk benchmark writes and reads.
pub struct DiskBench {
    /// Kernel version (Debian, pinvm config).
    pub kernel_version: String,
    /// MiB to write and read.
    pub mib: u64,
    /// Filesystem of the guest disk.
    pub fs: Fs,
}

/// Guest and host sequential throughput.
pub struct DiskFigures {
    /// Bytes written and read.
    pub bytes: u64,
    /// Guest RAM used, MiB.
    pub mem_mib: u64,
    /// Guest write + fsync.
    pub guest_write: Duration,
    /// Guest read after drop_caches.
    pub guest_read: Duration,
    /// Host write + fsync of the same amount.
    pub host_write: Duration,
    /// Host read after dropping the file's cache.
    pub host_read: Duration,
}

/// Write (+fsync) and read back (cold) `d.mib` MiB in the guest, then on a host file next to
/// the cache.
pub fn disk(machine: &dyn Machine, d: &DiskBench) -> Result<DiskFigures> {
    let bytes = d.mib << 20;
    let cache = guest_images::cache::cache_dir()?;
    let size = (bytes * 2 + (64 << 20)).max(d.fs.default_size());
    let image = guest_images::disk::create(&cache, d.fs, size)?;
    // Step 1 is a time mark; writes are timed from it to the end of fsync, reads from the end
    // of drop_caches to the end of verify (verify reads the whole file).
    let job = Job {
        steps: vec![
            "sleep 0".into(),
            format!("write /mnt/bench {bytes} byte:0x5a"),
            "fsync /mnt/bench".into(),
            "drop_caches 3".into(),
            format!("verify /mnt/bench {bytes} byte:0x5a"),
        ],
        ..Job::default()
    };
    let user = UserDisk {
        image: Some(image),
        ..UserDisk::default()
    };
    let p = prepare(&KernelChoice::version(&d.kernel_version), job, user)?;
    let mem_mib = 128 + 2 * d.mib;
    let r = machine.run(&RunSpec {
        kernel: p.kernel.clone(),
        initrd: Some(p.initrd.clone()),
        append: vec![],
        cpus: 2,
        mem_mib,
        timeout: DISK_TIMEOUT,
        echo: false,
        console_log: None,
        disks: p.disks.clone(),
        dma: Some(DmaSpec::default()),
    })?;
    let done: Vec<(u32, Duration)> = r
        .steps
        .iter()
        .zip(&r.step_times)
        .filter_map(|(s, t)| match s {
            StepReport::Done { index, .. } => Some((*index, *t)),
            _ => None,
        })
        .collect();
    if done.len() != 5 || r.cmd_status != Some(0) {
        bail!(
            "the guest benchmark did not complete ({:?}, steps {:?}, agent errors {:?})",
            r.end,
            r.steps,
            r.agent_errors
        );
    }
    let path = cache.join(format!("bench-{}.tmp", std::process::id()));
    let (host_write, host_read) = host_throughput(&path, bytes)?;
    Ok(DiskFigures {
        bytes,
        mem_mib,
        guest_write: done[2].1 - done[0].1,
        guest_read: done[4].1 - done[3].1,
        host_write,
        host_read,
    })
}

/// The same on a host file at `path` (removed afterwards): write + fsync, then a cold read.
fn host_throughput(path: &Path, bytes: u64) -> Result<(Duration, Duration)> {
    let buf = vec![0x5au8; 1 << 16];
    let t = Instant::now();
    {
        let mut f = std::fs::File::create(path)?;
        for _ in 0..bytes / buf.len() as u64 {
            f.write_all(&buf)?;
        }
        f.sync_all()?;
    }
    let write = t.elapsed();
    let f = std::fs::File::open(path)?;
    // SAFETY: posix_fadvise only reads its integer arguments; the fd is open.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let t = Instant::now();
    let mut rd = std::io::BufReader::with_capacity(1 << 16, f);
    let mut sink = vec![0u8; 1 << 16];
    while rd.read(&mut sink)? > 0 {}
    let read = t.elapsed();
    let _ = std::fs::remove_file(path);
    Ok((write, read))
}
