//! `pinvm boot`: build or reuse what is missing, boot, run the command, exit with its verdict.

use super::hostfiles::HostFileArgs;
use super::kernel::KernelArgs;
use anyhow::{Context, Result};
use clap::Args;
use devices::terminal::visible_line;
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
    let missing_disk = a.keep_disk.as_deref().is_some_and(|k| !k.is_file());
    for line in stderr_lines(&report, &verdict, a.verbose, missing_disk) {
        eprintln!("{line}");
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

/// What `pinvm boot` prints on stderr after the run, one line each. Every guest-derived
/// string (step results, console lines, the verdict's reason, notes) goes through
/// `devices::terminal::visible_line`: the guest cannot send escape sequences or forge lines.
fn stderr_lines(
    report: &RunReport,
    verdict: &outcome::Verdict,
    verbose: bool,
    missing_disk: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let notes = |out: &mut Vec<String>| {
        for n in &report.notes {
            out.push(format!("pinvm: note: {}", visible_line(n)));
        }
    };
    if verbose {
        details(report, &mut out);
        notes(&mut out);
    } else if missing_disk {
        // What the user asked for and did not get is never only in --verbose: the notes say
        // why the disk was not kept.
        notes(&mut out);
    }
    for st in &report.steps {
        if verbose || matches!(st, StepReport::Failed { .. }) {
            out.push(format!("pinvm: {}", visible_line(&st.to_string())));
        }
    }
    if !report.agent_started && verdict.code != 0 {
        // Stdout only carries the command's run; show how the boot ended.
        out.push("pinvm: last console lines:".into());
        for l in machine::crash::tail(&report.console, 25) {
            out.push(format!("  {}", visible_line(&l)));
        }
    }
    if let Some(reason) = &verdict.reason {
        out.push(format!("pinvm: {}", visible_line(reason)));
    }
    out
}

fn details(r: &RunReport, out: &mut Vec<String>) {
    let t = &r.timings;
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    out.push(format!("pinvm: cmdline: {}", visible_line(&r.cmdline)));
    out.push(format!(
        "pinvm: machine {}: set-up to guest start {}, then to guest init {}, to command done {}, \
         total {}",
        r.machine,
        ms(t.setup),
        t.to_init.map(ms).unwrap_or_else(|| "-".into()),
        t.to_cmd_done.map(ms).unwrap_or_else(|| "-".into()),
        ms(t.total)
    ));
    out.push(format!(
        "pinvm: VM end: {}; platform: {}",
        visible_line(&format!("{:?}", r.end)),
        r.quirks
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run record of a guest that puts terminal escapes (C0 and UTF-8 encoded C1) and line
    /// breaks into everything it controls.
    fn hostile_report() -> RunReport {
        let evil = "\u{1b}]0;owned\u{7}\u{9b}2J\u{1b}[31m\rpinvm: PASS\nsecond";
        RunReport {
            machine: "kvm".into(),
            end: machine::VmEnd::VcpuFailed(evil.into()),
            cmd_status: None,
            agent_started: false,
            agent_errors: vec![evil.into()],
            console: format!("booting\n{evil}\n\u{9b}?1049h tail\n"),
            console_line_ns: vec![],
            console_at_cmd_done: None,
            timings: machine::Timings::default(),
            vcpu_rips: vec![],
            notes: vec![evil.into()],
            quirks: String::new(),
            cmdline: "console=ttyS0".into(),
            steps: vec![StepReport::Failed {
                index: 1,
                op: "write".into(),
                errno: 5,
                message: evil.into(),
            }],
            step_times: vec![Duration::ZERO],
            step_ns: vec![1],
            records: machine::RecordPaths::default(),
        }
    }

    /// `pinvm boot` printed the console tail, step errors and the crash reason raw: a guest
    /// could retitle the terminal, clear it (U+009B is a one-character CSI) or forge a line.
    #[test]
    fn no_guest_control_reaches_the_terminal() {
        let report = hostile_report();
        let verdict = outcome::Verdict {
            code: outcome::EXIT_FAIL,
            reason: Some(format!("crash: {}", report.notes[0])),
        };
        for verbose in [false, true] {
            let lines = stderr_lines(&report, &verdict, verbose, true);
            assert!(lines.len() >= 5, "{lines:#?}");
            for l in &lines {
                assert!(
                    !l.chars()
                        .any(|c| c.is_control() || ('\u{80}'..='\u{9f}').contains(&c)),
                    "{l:?}"
                );
            }
            let all = lines.join("\n");
            assert!(
                all.contains("^[]0;owned^GM-^[2J^[[31m^Mpinvm: PASS^Jsecond"),
                "{all}"
            );
            assert!(all.contains("  M-^[?1049h tail"), "{all}");
        }
    }
}
