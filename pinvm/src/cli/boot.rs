//! `pinvm boot`: build or reuse what is missing, boot, run the command, exit with its verdict.

use super::hostfiles::HostFileArgs;
use super::kernel::KernelArgs;
use anyhow::{Context, Result};
use clap::Args;
use guest_images::initramfs::Job;
use harness::prepare::{check_initrd_fits, prepare_with, UserDisk};
use harness::record::{report_json, where_stopped};
use machine::{outcome, DmaSpec, Machine, RunReport, RunSpec};
use proto::agent::StepReport;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  pinvm boot -- uname -r\n  pinvm boot --kernel-version 6.1 \
--cpus 2 -- sh -c 'dmesg | tail'\n  pinvm boot --kernel ~/linux/out/vmlinux --timeout 60 -- true\n  \
pinvm boot --put ./repro -- /put/repro\n  pinvm boot --share ~/tests:/t -- /t/run.sh"
)]
pub struct BootArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    #[command(flatten)]
    pub files: HostFileArgs,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=32))]
    pub cpus: u8,
    /// Guest RAM in MiB.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(32..=65536))]
    pub mem: u64,
    /// Stop the guest and report a hang after this many seconds (counted from VM start).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
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

pub fn run(machine: &dyn Machine, a: BootArgs) -> Result<i32> {
    let files = a.files.files()?;
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
    let p = prepare_with(&a.kernel.choice().for_machine(machine), job, user, &files)?;
    check_initrd_fits(p.initrd.len(), a.mem)?;
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
    let report = match machine.run(&spec) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pinvm: could not boot {}: {e}", p.kernel.display());
            return Ok(outcome::EXIT_UNTESTABLE);
        }
    };
    let verdict = outcome::judge(&report, where_stopped(&report, p.system_map.as_deref()));
    if a.verbose {
        print_details(&report);
    } else if a.keep_disk.as_deref().is_some_and(|k| !k.is_file()) {
        // What the user asked for and did not get is never only in --verbose: the notes say
        // why the disk was not kept.
        for n in &report.notes {
            eprintln!("pinvm: note: {n}");
        }
    }
    for st in &report.steps {
        if a.verbose || matches!(st, StepReport::Failed { .. }) {
            eprintln!("pinvm: {st}");
        }
    }
    if !report.agent_started && verdict.code != 0 {
        // Stdout only carries the command's run; show how the boot ended.
        eprintln!("pinvm: last console lines:");
        for l in machine::crash::tail(&report.console, 25) {
            eprintln!("  {l}");
        }
    }
    if let Some(reason) = &verdict.reason {
        eprintln!("pinvm: {reason}");
    }
    if let Some(path) = &a.report {
        let write = || -> std::io::Result<()> {
            let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
            serde_json::to_writer_pretty(&mut out, &report_json(&report, &verdict))?;
            out.write_all(b"\n")?;
            out.flush()
        };
        write().with_context(|| format!("writing --report {}", path.display()))?;
    }
    Ok(verdict.code)
}

fn print_details(r: &RunReport) {
    let t = &r.timings;
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    eprintln!("pinvm: cmdline: {}", r.cmdline);
    eprintln!(
        "pinvm: machine {}: set-up to guest start {}, then to guest init {}, to command done {}, \
         total {}",
        r.machine,
        ms(t.setup),
        t.to_init.map(ms).unwrap_or_else(|| "-".into()),
        t.to_cmd_done.map(ms).unwrap_or_else(|| "-".into()),
        ms(t.total)
    );
    eprintln!("pinvm: VM end: {:?}; platform: {}", r.end, r.quirks);
    for n in &r.notes {
        eprintln!("pinvm: note: {n}");
    }
}
