//! `pinvm selftest mm:gup_longterm [...]`: the kernel's own selftests, built from the tree of
//! the kernel it boots, run in the guest, KTAP out, exit 0/1/125.

use super::kernel::KernelArgs;
use anyhow::Result;
use clap::Args;
use devices::terminal::{visible, visible_line, Keep};
use guest_images::selftest::SelftestName;
use harness::selftest::ktap::{config_hint, skip_reasons};
use harness::selftest::{self, SelftestRun, WorkFs};
use machine::Machine;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  pinvm selftest mm:gup_longterm\n  \
pinvm selftest mm:gup_longterm mm:cow --fs xfs\n  \
pinvm selftest mm:gup_longterm --source ~/linux --fs tmpfs\n\n\
Exit: 0 every test passed (or skipped, one passing), 1 a test failed or the guest crashed or \
hung, 125 nothing could be tested (build or boot failed, every test skipped).")]
pub struct SelftestArgs {
    /// Selftests as SUITE:TEST, e.g. mm:gup_longterm (tools/testing/selftests/mm/gup_longterm.c
    /// of the booted kernel's tree), run in this order.
    #[arg(required = true, value_name = "SUITE:TEST")]
    pub tests: Vec<SelftestName>,
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Filesystem of the tests' working directory (/mnt): a fresh ext4, xfs or btrfs disk, or
    /// a tmpfs.
    #[arg(long, default_value = "ext4", value_name = "ext4|xfs|btrfs|tmpfs")]
    pub fs: WorkFs,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=32))]
    pub cpus: u8,
    /// Guest RAM in MiB.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(64..=65536))]
    pub mem: u64,
    /// Stop the guest and report a hang after this many seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
    /// Copy the guest console to stdout while it runs (the KTAP follows).
    #[arg(long, short)]
    pub verbose: bool,
    /// Also write everything the guest console printed to FILE.
    #[arg(long, value_name = "FILE")]
    pub console_log: Option<PathBuf>,
}

pub fn run(machine: &dyn Machine, a: SelftestArgs) -> Result<i32> {
    let r = selftest::run(
        machine,
        &SelftestRun {
            kernel: a.kernel.choice(),
            tests: a.tests,
            fs: a.fs,
            cpus: a.cpus,
            mem_mib: a.mem,
            timeout: Duration::from_secs(a.timeout),
            echo: a.verbose,
            console_log: a.console_log,
        },
    )?;
    for n in &r.notes {
        eprintln!("pinvm: note: {}", visible_line(n));
    }
    if !r.built.is_empty() {
        eprintln!("pinvm: built {} for {}", r.built.join(", "), r.release);
    }
    // The KTAP nests the guest's own output: its controls are made visible too.
    std::io::stdout().write_all(&visible(r.ktap.as_bytes(), Keep::Lines))?;
    for t in &r.results {
        if let Some(totals) = t.totals() {
            eprintln!("pinvm: {}: {totals}", t.name);
        }
        for (reason, n) in skip_reasons(t) {
            let hint = config_hint(&reason)
                .map(|h| format!(" (the guest kernel needs {h})"))
                .unwrap_or_default();
            eprintln!(
                "pinvm: {}: {n} case(s) skipped: {}{hint}",
                t.name,
                visible_line(&reason)
            );
        }
    }
    if let Some(why) = &r.why {
        eprintln!("pinvm: {}", visible_line(why));
    }
    Ok(r.code)
}
