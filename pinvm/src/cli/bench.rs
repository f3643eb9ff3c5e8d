//! `pinvm bench boot`: how long boots take, measured, never asserted.

use crate::machines::{self, MachineChoice};
use anyhow::Result;
use clap::{Args, Subcommand};
use harness::bench::{self, BootBench as BootPlan, DiskBench as DiskPlan, Series};
use harness::KernelChoice;
use machine::Machine;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Boot each kernel N times running `true`; print the median, min and max of: VMM set-up
    /// until the first KVM_RUN, first KVM_RUN to guest init (agent's first event), and first
    /// KVM_RUN to command done.
    Boot(BootBench),
    /// Guest sequential write (+fsync) and read (after drop_caches) of N MiB on a virtio-blk
    /// ext4 disk, against the same on a host file.
    Disk(DiskBench),
    /// Run one scenario N times on each machine (`--machine kvm,qemu`): the wall time of a
    /// whole case (kernel from the cache, fresh disk image, boot, workload, judging).
    Scenario(ScenarioBench),
    /// The kernel loop: a cached lookup, a rebuild after a one-line change to mm/gup.c in
    /// the kept build slot, and with --tree a rebuild after moving to a neighbouring commit.
    Kernel(KernelBench),
}

#[derive(Args, Debug)]
pub struct KernelBench {
    /// Source to measure: debian-6.12, debian-6.1 or a kernel tree.
    #[arg(long, default_value = "debian-6.12")]
    pub source: String,
    /// Also measure a git tree: build REV's parent, then REV (TREE@REV).
    #[arg(long, value_name = "TREE@REV")]
    pub tree_rev: Option<String>,
}

#[derive(Args, Debug)]
pub struct ScenarioBench {
    /// Scenario id or file, e.g. S03.
    pub scenario: std::path::PathBuf,
    /// Kernel version (Debian, pinvm config).
    #[arg(long, default_value = harness::kernel::DEFAULT_KERNEL_VERSION)]
    pub kernel_version: String,
    /// Filesystem (default: the scenario's first).
    #[arg(long)]
    pub fs: Option<String>,
    /// Runs per machine.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
}

#[derive(Args, Debug)]
pub struct DiskBench {
    /// Kernel version (Debian, pinvm config).
    #[arg(long, default_value = harness::kernel::DEFAULT_KERNEL_VERSION)]
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
    /// vCPUs per guest.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=32))]
    pub cpus: u8,
    /// Guest RAM in MiB (as `pinvm boot --mem`).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(32..=65536))]
    pub mem: u64,
    /// Extra kernel command-line arguments.
    #[arg(long, value_name = "ARGS")]
    pub append: Vec<String>,
}

/// "median … ms  min …  max …", or "n/a" without measurements.
fn show(s: &Series) -> String {
    let Some((median, min, max)) = s.stats() else {
        return "n/a".into();
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "median {:8.1} ms  min {:8.1}  max {:8.1}",
        ms(median),
        ms(min),
        ms(max)
    )
}

/// Run a benchmark on each machine of `choices` (one for `disk`), side by side.
pub fn run(choices: &[MachineChoice], cmd: BenchCommand) -> Result<i32> {
    let mut list = Vec::new();
    for c in choices {
        list.push(machines::resolve(*c)?);
    }
    let b = match cmd {
        BenchCommand::Boot(b) => b,
        BenchCommand::Scenario(s) => return scenario(&list, s),
        BenchCommand::Kernel(k) => return kernel(k),
        BenchCommand::Disk(d) => match list.as_slice() {
            [m] => return disk(&**m, d),
            _ => anyhow::bail!("--machine: `bench disk` takes one machine"),
        },
    };
    let choices: Vec<KernelChoice> = match &b.kernel {
        Some(p) => vec![KernelChoice {
            kernel: Some(p.clone()),
            ..KernelChoice::default()
        }],
        None => b
            .kernel_version
            .iter()
            .map(|v| KernelChoice::version(v))
            .collect(),
    };
    for choice in choices {
        let name = choice
            .kernel
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| choice.kernel_version.clone());
        let plan = BootPlan {
            kernel: choice,
            runs: b.runs,
            cpus: b.cpus,
            mem_mib: b.mem,
            append: b.append.clone(),
        };
        println!(
            "kernel {name}: {} runs, {} vCPUs, {} MiB",
            b.runs, b.cpus, b.mem
        );
        for m in &list {
            let f = bench::boot(&**m, &plan, &mut || eprint!("."))?;
            eprintln!();
            println!("  {} (initramfs {} KiB)", m.name(), f.initrd_bytes / 1024);
            println!("    set-up to guest start         {}", show(&f.setup));
            println!("    guest start to guest init     {}", show(&f.to_init));
            println!("    guest start to command done   {}", show(&f.to_cmd_done));
            println!(
                "    run start to guest init       {}",
                show(&f.start_to_init)
            );
            println!(
                "    run start to command done     {}",
                show(&f.start_to_cmd_done)
            );
            println!("    whole run (teardown included) {}", show(&f.total));
        }
    }
    Ok(0)
}

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64().max(1e-9)
}

fn disk(machine: &dyn Machine, d: DiskBench) -> Result<i32> {
    let plan = DiskPlan {
        kernel_version: d.kernel_version.clone(),
        mib: d.mib,
        fs: d.fs,
    };
    let f = bench::disk(machine, &plan)?;
    println!(
        "disk {}: {} MiB, kernel {}, 2 vCPUs, {} MiB RAM",
        d.fs.name(),
        d.mib,
        d.kernel_version,
        f.mem_mib
    );
    println!(
        "  guest write+fsync {:8.1} MiB/s ({:.2} s)   host {:8.1} MiB/s",
        mb_s(f.bytes, f.guest_write),
        f.guest_write.as_secs_f64(),
        mb_s(f.bytes, f.host_write)
    );
    println!(
        "  guest read (cold) {:8.1} MiB/s ({:.2} s)   host {:8.1} MiB/s",
        mb_s(f.bytes, f.guest_read),
        f.guest_read.as_secs_f64(),
        mb_s(f.bytes, f.host_read)
    );
    Ok(0)
}

/// One scenario, `runs` times on each machine; the outcome of every run is printed too, so a
/// figure never hides a run that did not do what the scenario expects.
fn scenario(list: &[Box<dyn Machine>], b: ScenarioBench) -> Result<i32> {
    use harness::case::{run_case, Case};
    use harness::scenario::{self, Scenario};
    let s = Scenario::load(&scenario::resolve(&b.scenario)?)?;
    let fs = b.fs.clone().unwrap_or_else(|| s.filesystems[0].clone());
    s.expectation(&b.kernel_version, &fs)?;
    let out = std::env::temp_dir().join(format!("pinvm-bench-{}", std::process::id()));
    println!(
        "scenario {} on {} {fs}: {} runs per machine",
        s.name, b.kernel_version, b.runs
    );
    for m in list {
        let mut times = Series::default();
        let mut outcomes = Vec::new();
        for run in 1..=b.runs {
            let dir = out.join(format!("{}-{run}", m.name()));
            let case = Case {
                scenario: &s,
                kernel: KernelChoice::version(&b.kernel_version),
                fs: fs.clone(),
                run,
                seed: u64::from(run - 1),
                dir: dir.clone(),
                keep_disk: false,
                echo: false,
            };
            let t0 = std::time::Instant::now();
            let r = run_case(&**m, &case)?;
            times.0.push(t0.elapsed());
            outcomes.push(r.outcome.label().to_string());
            let _ = std::fs::remove_dir_all(&dir);
            eprint!(".");
        }
        eprintln!();
        println!(
            "  {:10} case wall time {}   outcomes: {}",
            m.name(),
            show(&times),
            outcomes.join(" ")
        );
    }
    let _ = std::fs::remove_dir_all(&out);
    Ok(0)
}

fn kernel(k: KernelBench) -> Result<i32> {
    let choice = KernelChoice {
        source: Some(k.source.clone()),
        ..KernelChoice::default()
    };
    let tree_rev = match &k.tree_rev {
        Some(s) => match s.rsplit_once('@') {
            Some((t, r)) => Some((std::path::PathBuf::from(t), r.to_string())),
            None => anyhow::bail!("--tree-rev {s}: expected TREE@REV"),
        },
        None => None,
    };
    let scratch = guest_images::cache::cache_dir()?.join("bench");
    println!("kernel loop on {}:", k.source);
    harness::kernel_bench::kernel(
        &choice,
        &scratch,
        tree_rev.as_ref().map(|(t, r)| (t.as_path(), r.as_str())),
        &mut |f| {
            let detail = match &f.incremental {
                Some(i) => format!(
                    "  [{}; tree {:.1} s, {} files written; config {:.1} s; make {:.1} s, {} steps{}]",
                    if i.incremental { "incremental" } else { "full" },
                    i.tree_seconds,
                    i.files_written,
                    i.config_seconds,
                    i.make_seconds,
                    i.steps,
                    if i.ccache { ", ccache" } else { "" }
                ),
                None if f.cached => "  [cached]".to_string(),
                None => String::new(),
            };
            println!("  {:<58} {:>8.1} s{detail}", f.what, f.seconds);
        },
    )?;
    Ok(0)
}
