//! `pinvm bench boot`: how long boots take, measured, never asserted.

use super::boot::{prepare, UserDisk};
use super::kernel::KernelChoice;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use guest_images::initramfs::Job;
use proto::agent::StepReport;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use vmm::runner::{self, DmaSpec, RunSpec};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Boot each kernel N times running `true`; print the median, min and max of: VMM set-up
    /// until the first KVM_RUN, first KVM_RUN to guest init (agent's first event), and first
    /// KVM_RUN to command done.
    Boot(BootBench),
    /// Guest sequential write (+fsync) and read (after drop_caches) of N MiB on a virtio-blk
    /// ext4 disk, against the same on a host file.
    Disk(DiskBench),
}

#[derive(Args, Debug)]
pub struct DiskBench {
    /// Kernel version (Debian, pinvm config).
    #[arg(long, default_value = "6.12")]
    pub kernel_version: String,
    /// MiB to write and read.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub mib: u64,
    /// Filesystem of the guest disk.
    #[arg(long, default_value = "ext4")]
    pub fs: guest_images::disk::Fs,
}

#[derive(Args, Debug)]
pub struct BootBench {
    /// Kernel versions (Debian, pinvm config), comma separated.
    #[arg(long, default_value = "6.12,6.1", value_delimiter = ',')]
    pub kernel_version: Vec<String>,
    /// Or benchmark this kernel image instead.
    #[arg(long, value_name = "PATH", conflicts_with = "kernel_version")]
    pub kernel: Option<std::path::PathBuf>,
    /// Boots per kernel.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=32))]
    pub cpus: u8,
    #[arg(long, default_value_t = 128)]
    pub mem: u64,
    /// Extra kernel command-line arguments.
    #[arg(long, value_name = "ARGS")]
    pub append: Vec<String>,
}

#[derive(Default)]
struct Series(Vec<Duration>);

impl Series {
    fn show(&mut self) -> String {
        if self.0.is_empty() {
            return "n/a".into();
        }
        self.0.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "median {:8.1} ms  min {:8.1}  max {:8.1}",
            ms(self.0[self.0.len() / 2]),
            ms(self.0[0]),
            ms(self.0[self.0.len() - 1])
        )
    }
}

pub fn run(cmd: BenchCommand) -> Result<i32> {
    let b = match cmd {
        BenchCommand::Boot(b) => b,
        BenchCommand::Disk(d) => return disk(d),
    };
    let choices: Vec<KernelChoice> = match &b.kernel {
        Some(p) => vec![KernelChoice {
            kernel: Some(p.clone()),
            kernel_version: String::new(),
        }],
        None => b
            .kernel_version
            .iter()
            .map(|v| KernelChoice {
                kernel: None,
                kernel_version: v.clone(),
            })
            .collect(),
    };
    for choice in choices {
        let name = choice
            .kernel
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| choice.kernel_version.clone());
        let job = Job {
            argv: vec!["true".into()],
            ..Job::default()
        };
        let p = prepare(&choice, job, UserDisk::default())?;
        let (mut setup, mut init, mut done) =
            (Series::default(), Series::default(), Series::default());
        for i in 0..b.runs {
            let r = runner::run(&RunSpec {
                kernel: p.kernel.clone(),
                initrd: Some(p.initrd.clone()),
                append: b.append.clone(),
                cpus: b.cpus,
                mem_mib: b.mem,
                timeout: Duration::from_secs(300),
                echo: false,
                console_log: None,
                disks: p.disks.clone(),
                dma: Some(DmaSpec::default()),
            })?;
            if r.cmd_status != Some(0) {
                bail!(
                    "{name}: run {i} did not complete `true` ({:?}); last console lines:\n{}",
                    r.end,
                    vmm::crash::tail(&r.console, 10).join("\n")
                );
            }
            setup.0.push(r.timings.setup);
            init.0.extend(r.timings.to_init);
            done.0.extend(r.timings.to_cmd_done);
            eprint!(".");
        }
        eprintln!();
        println!(
            "kernel {name}: {} runs, {} vCPUs, {} MiB, initramfs {} KiB",
            b.runs,
            b.cpus,
            b.mem,
            p.initrd.len() / 1024
        );
        println!("  VMM set-up to first KVM_RUN  {}", setup.show());
        println!("  first KVM_RUN to guest init  {}", init.show());
        println!("  first KVM_RUN to CMD done    {}", done.show());
    }
    Ok(0)
}

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64().max(1e-9)
}

fn disk(d: DiskBench) -> Result<i32> {
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
    let choice = KernelChoice {
        kernel: None,
        kernel_version: d.kernel_version.clone(),
    };
    let user = UserDisk {
        image: Some(image),
        ..UserDisk::default()
    };
    let p = prepare(&choice, job, user)?;
    let r = runner::run(&RunSpec {
        kernel: p.kernel.clone(),
        initrd: Some(p.initrd.clone()),
        append: vec![],
        cpus: 2,
        mem_mib: 128 + 2 * d.mib,
        timeout: Duration::from_secs(1800),
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
    let guest_write = done[2].1 - done[0].1;
    let guest_read = done[4].1 - done[3].1;

    // The same on a host file next to the cache.
    let path = cache.join(format!("bench-{}.tmp", std::process::id()));
    let buf = vec![0x5au8; 1 << 16];
    let t = Instant::now();
    {
        let mut f = std::fs::File::create(&path)?;
        for _ in 0..bytes / buf.len() as u64 {
            f.write_all(&buf)?;
        }
        f.sync_all()?;
    }
    let host_write = t.elapsed();
    let f = std::fs::File::open(&path)?;
    // SAFETY: posix_fadvise only reads its integer arguments; the fd is open.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let t = Instant::now();
    let mut rd = std::io::BufReader::with_capacity(1 << 16, f);
    let mut sink = vec![0u8; 1 << 16];
    while rd.read(&mut sink)? > 0 {}
    let host_read = t.elapsed();
    let _ = std::fs::remove_file(&path);

    println!(
        "disk {}: {} MiB, kernel {}, 2 vCPUs, {} MiB RAM",
        d.fs.name(),
        d.mib,
        d.kernel_version,
        128 + 2 * d.mib
    );
    println!(
        "  guest write+fsync {:8.1} MiB/s ({:.2} s)   host {:8.1} MiB/s",
        mb_s(bytes, guest_write),
        guest_write.as_secs_f64(),
        mb_s(bytes, host_write)
    );
    println!(
        "  guest read (cold) {:8.1} MiB/s ({:.2} s)   host {:8.1} MiB/s",
        mb_s(bytes, guest_read),
        guest_read.as_secs_f64(),
        mb_s(bytes, host_read)
    );
    Ok(0)
}
