//! `pinvm boot`: build or reuse what is missing, boot, run the command, exit with its verdict.

use super::kernel::{default_kernel, KernelChoice};
use anyhow::{Context, Result};
use clap::Args;
use guest_images::initramfs::{Job, Mount};
use proto::agent::StepReport;
use std::path::PathBuf;
use std::time::Duration;
use vmm::outcome;
use vmm::runner::{self, DiskSpec, DmaSpec, RunReport, RunSpec};

#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  pinvm boot -- uname -r\n  pinvm boot --kernel-version 6.1 \
--cpus 2 -- sh -c 'dmesg | tail'\n  pinvm boot --kernel ~/linux/out/vmlinux --timeout 60 -- true"
)]
pub struct BootArgs {
    #[command(flatten)]
    pub kernel: KernelChoice,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=32))]
    pub cpus: u8,
    /// Guest RAM in MiB.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(32..=65536))]
    pub mem: u64,
    /// Stop the guest and report a hang after this many seconds (counted from VM start).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Extra kernel command-line arguments (appended after pinvm's own; may be repeated).
    #[arg(long, value_name = "ARGS")]
    pub append: Vec<String>,
    /// Also write everything the guest console printed to FILE.
    #[arg(long, value_name = "FILE")]
    pub console_log: Option<PathBuf>,
    /// Do not copy the guest console to stdout (the verdict is still printed on stderr).
    #[arg(long)]
    pub no_console: bool,
    /// Print boot timings, step results and run details on stderr.
    #[arg(long, short)]
    pub verbose: bool,
    /// Attach this filesystem image as /dev/vda (copy-on-write: the image never changes) and
    /// mount it at /mnt when it holds ext4, xfs or btrfs.
    #[arg(long, value_name = "IMAGE")]
    pub disk: Option<PathBuf>,
    /// Record every write and flush the guest sends to the disk in FILE (see `pinvm journal show`).
    #[arg(long, value_name = "FILE", requires = "disk")]
    pub journal: Option<PathBuf>,
    /// Also record the full data of every write in the journal (not only block hashes).
    #[arg(long, requires = "journal")]
    pub journal_data: bool,
    /// Save the disk as the guest left it to PATH (a new file).
    #[arg(long, value_name = "PATH", requires = "disk")]
    pub keep_disk: Option<PathBuf>,
    /// Log every write of the DMA device (dmapin) into guest pages to FILE
    /// (docs/dma-log-format.md).
    #[arg(long, value_name = "FILE")]
    pub dma_log: Option<PathBuf>,
    /// A workload step the agent runs in-process before CMD, e.g. 'write /mnt/f 1M stamp:t1',
    /// 'fsync /mnt/f', 'fiemap /mnt/f', 'sync' (repeatable; see docs/control-protocol.md).
    #[arg(long = "step", value_name = "STEP")]
    pub steps: Vec<String>,
    /// Write a JSON report of the run (verdict, timings, step results with FIEMAP extents,
    /// agent errors) to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// The command to run in the guest, after `--` (optional when --step is given).
    #[arg(last = true, required_unless_present = "steps", value_name = "CMD")]
    pub cmd: Vec<String>,
}

/// A kernel, initramfs and disks ready to boot.
pub struct Prepared {
    pub kernel: PathBuf,
    pub system_map: Option<PathBuf>,
    /// `make kernelrelease` of a kernel pinvm built (None for a --kernel file).
    pub release: Option<String>,
    pub initrd: Vec<u8>,
    pub disks: Vec<DiskSpec>,
}

/// The user's disk, if any.
#[derive(Default)]
pub struct UserDisk {
    pub image: Option<PathBuf>,
    pub journal: Option<PathBuf>,
    pub journal_data: bool,
    pub keep: Option<PathBuf>,
}

/// Resolve the kernel (building it if needed), the disks (the user's as /dev/vda, then the
/// busybox tools disk) and the initramfs for `job`.
pub fn prepare(choice: &KernelChoice, mut job: Job, user: UserDisk) -> Result<Prepared> {
    let (kernel, system_map, release) = match &choice.kernel {
        Some(p) => {
            if !p.is_file() {
                anyhow::bail!("--kernel {}: no such file", p.display());
            }
            let map = p.with_file_name("System.map");
            (p.clone(), map.is_file().then_some(map), None)
        }
        None => {
            let built = default_kernel(choice)?;
            let release = Some(built.manifest.kernelrelease.clone());
            (built.vmlinux, Some(built.system_map), release)
        }
    };
    let cache = guest_images::cache::cache_dir()?;
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
            device: format!("/dev/vd{}", (b'a' + disks.len() as u8) as char),
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
    let agent = guest_images::agent::agent_binary()?;
    let base = guest_images::initramfs::cached_base_initramfs(&cache, &agent, busybox.is_some())?;
    let mut initrd =
        std::fs::read(&base).with_context(|| format!("reading initramfs {}", base.display()))?;
    initrd.extend_from_slice(&job.archive()?);
    Ok(Prepared {
        kernel,
        system_map,
        release,
        initrd,
        disks,
    })
}

pub fn run(a: BootArgs) -> Result<i32> {
    let job = Job {
        argv: a.cmd.clone(),
        steps: a.steps.clone(),
        ..Job::default()
    };
    let user = UserDisk {
        image: a.disk.clone(),
        journal: a.journal.clone(),
        journal_data: a.journal_data,
        keep: a.keep_disk.clone(),
    };
    if let Some(k) = &a.keep_disk {
        if k.exists() {
            anyhow::bail!(
                "--keep-disk {}: the file exists; not overwriting it",
                k.display()
            );
        }
    }
    let p = prepare(&a.kernel, job, user)?;
    let spec = RunSpec {
        kernel: p.kernel.clone(),
        initrd: Some(p.initrd),
        append: a.append.clone(),
        cpus: a.cpus,
        mem_mib: a.mem,
        timeout: Duration::from_secs(a.timeout),
        echo: !a.no_console,
        console_log: a.console_log.clone(),
        disks: p.disks,
        dma: Some(DmaSpec {
            log: a.dma_log.clone(),
        }),
    };
    let report = match runner::run(&spec) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pinvm: could not boot {}: {e:#}", p.kernel.display());
            return Ok(outcome::EXIT_UNTESTABLE);
        }
    };
    let verdict = outcome::judge(&report, where_stopped(&report, p.system_map.as_deref()));
    if a.verbose {
        print_details(&report);
    }
    for st in &report.steps {
        if a.verbose || matches!(st, StepReport::Failed { .. }) {
            eprintln!("pinvm: {st}");
        }
    }
    if !report.agent_started && verdict.code != 0 {
        // Stdout only carries the command's run; show how the boot ended.
        eprintln!("pinvm: last console lines:");
        for l in vmm::crash::tail(&report.console, 25) {
            eprintln!("  {l}");
        }
    }
    if let Some(reason) = &verdict.reason {
        eprintln!("pinvm: {reason}");
    }
    if let Some(path) = &a.report {
        let json = serde_json::to_string_pretty(&report_json(&report, &verdict))?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("writing --report {}", path.display()))?;
    }
    Ok(verdict.code)
}

/// "vCPU0 at default_idle+0x12, vCPU1 at ..." for hang reports.
pub fn where_stopped(r: &RunReport, system_map: Option<&std::path::Path>) -> Option<String> {
    if r.vcpu_rips.is_empty() {
        return None;
    }
    // Read System.map once for all vCPUs.
    let map = system_map.and_then(|m| std::fs::read_to_string(m).ok());
    let names: Vec<String> = r
        .vcpu_rips
        .iter()
        .map(|(id, rip)| {
            let sym = map.as_deref().and_then(|m| vmm::symbols::lookup(m, *rip));
            match sym {
                Some(s) => format!("vCPU{id} at {s}"),
                None => format!("vCPU{id} at {rip:#x}"),
            }
        })
        .collect();
    Some(names.join(", "))
}

/// The machine-readable run report (`--report`).
pub fn report_json(r: &RunReport, v: &outcome::Verdict) -> serde_json::Value {
    use serde_json::json;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let steps: Vec<serde_json::Value> = r
        .steps
        .iter()
        .map(|s| match s {
            StepReport::Done { index, op, detail } => {
                json!({"kind": "done", "index": index, "op": op, "detail": detail})
            }
            StepReport::Failed {
                index,
                op,
                errno,
                message,
            } => json!({"kind": "failed", "index": index, "op": op, "errno": errno,
                        "message": message}),
            StepReport::Extent {
                index,
                logical,
                physical,
                length,
                flags,
            } => json!({"kind": "extent", "index": index, "logical": logical,
                        "physical": physical, "length": length, "flags": flags}),
        })
        .collect();
    let steps: Vec<serde_json::Value> = steps
        .into_iter()
        .zip(&r.step_ns)
        .map(|(mut s, t)| {
            s["time_ns"] = json!(t);
            s
        })
        .collect();
    json!({
        "exit_code": v.code,
        "reason": v.reason,
        "vm_end": format!("{:?}", r.end),
        "command_status": r.cmd_status,
        "agent_started": r.agent_started,
        "agent_errors": r.agent_errors,
        "timings_ms": {
            "setup": ms(r.timings.setup),
            "to_init": r.timings.to_init.map(ms),
            "to_cmd_done": r.timings.to_cmd_done.map(ms),
            "total": ms(r.timings.total),
        },
        "steps": steps,
        "cmdline": r.cmdline,
        "kvm_pvm_workarounds": r.quirks,
        "notes": r.notes,
    })
}

fn print_details(r: &RunReport) {
    let t = &r.timings;
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    eprintln!("pinvm: cmdline: {}", r.cmdline);
    eprintln!(
        "pinvm: set-up to first KVM_RUN {}, to guest init {}, to command done {}, total {}",
        ms(t.setup),
        t.to_init.map(ms).unwrap_or_else(|| "-".into()),
        t.to_cmd_done.map(ms).unwrap_or_else(|| "-".into()),
        ms(t.total)
    );
    eprintln!(
        "pinvm: VM end: {:?}; kvm_pvm work-arounds: {}",
        r.end, r.quirks
    );
    for n in &r.notes {
        eprintln!("pinvm: note: {n}");
    }
}
