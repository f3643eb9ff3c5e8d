//! Command-line interface. Every failure to *test* (bad arguments, kernel build failure, no
//! /dev/kvm) exits 125 so that `git bisect run` skips rather than blames the commit.

mod bench;
mod bisect;
mod boot;
mod cache;
mod dma;
mod hostfiles;
mod image;
mod journal;
mod kernel;
mod report;
mod run;
mod selftest;
mod suite;

use crate::machines::{self, MachineChoice};
use clap::{Parser, Subcommand};
use machine::Machine;

#[derive(Parser, Debug)]
#[command(
    name = "pinvm",
    version,
    about = "Boot patched Linux guest kernels under KVM, run a command, report what happened",
    long_about = "pinvm boots a Linux kernel built from source (Debian's linux-source packages or \
your tree, with patches) in its own KVM VMM, runs a command in the guest and exits with the \
command's status. Exit codes follow `git bisect run`: the command's status when 0..=124 \
(others become 1), 1 for a guest crash, oops or hang, 125 when the kernel could not be built \
or booted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Which machine runs the guest: `kvm` (pinvm's own VMM), `qemu` (QEMU with TCG),
    /// `qemu-kvm` (QEMU with -accel kvm), or `auto`: our VMM on hardware KVM, QEMU's TCG
    /// where /dev/kvm is missing or emulated (kvm_pvm). Devices are the same on every machine.
    /// `bench boot` takes a list (e.g. kvm,qemu) and measures them side by side.
    #[arg(
        long,
        global = true,
        env = "PINVM_MACHINE",
        value_enum,
        value_delimiter = ',',
        default_value = "auto"
    )]
    pub machine: Vec<MachineChoice>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Boot a kernel and run a command in it.
    Boot(boot::BootArgs),
    /// Build and cache guest kernels.
    #[command(subcommand)]
    Kernel(kernel::KernelCommand),
    /// Find the commit that introduced what a scenario or command reproduces: flake-aware,
    /// verified four ways, resumable; the user's checkout is never touched.
    Bisect(bisect::BisectArgs),
    /// Show and prune pinvm's cache (kernels, build slots, ccache, images).
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Make filesystem images for the guest disk.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Inspect disk write journals.
    #[command(subcommand)]
    Journal(journal::JournalCommand),
    /// Inspect the DMA device's logs.
    #[command(subcommand)]
    Dma(dma::DmaCommand),
    /// Run a scenario on one kernel and filesystem and judge it (exit 0 clean, 1 found, 125
    /// could not test).
    Run(run::RunArgs),
    /// Build the kernel's own selftests (e.g. mm:gup_longterm) from the booted kernel's tree,
    /// run them in the guest on a chosen filesystem, print KTAP (exit 0 pass, 1 fail, 125
    /// could not test).
    Selftest(selftest::SelftestArgs),
    /// Run scenarios over kernels × filesystems, compare with their expectations, report
    /// (KTAP, KernelCI JSON, JUnit); exit 0 only when every outcome matches.
    Suite(suite::SuiteArgs),
    /// Write the timeline report of a results folder: one self-contained HTML page per case
    /// (per-page DMA writes against block writes, steps, kernel reports, verdicts), an index
    /// for a suite.
    Report(report::ReportArgs),
    /// Measure boot times (median over runs).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Run the command; the commands that boot a guest get the machine `--machine` names.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let choices = cli.machine;
    let one = || -> anyhow::Result<Box<dyn Machine>> {
        match choices.as_slice() {
            [c] => Ok(machines::resolve(*c)?),
            _ => anyhow::bail!("--machine: give one machine (a list is for `pinvm bench boot`)"),
        }
    };
    match cli.command {
        Command::Boot(a) => boot::run(&*one()?, a),
        Command::Run(r) => run::run(&*one()?, r),
        Command::Bisect(b) => bisect::run(&*one()?, b),
        Command::Suite(s) => suite::run(&*one()?, s),
        Command::Selftest(t) => selftest::run(&*one()?, t),
        Command::Kernel(k) => kernel::run(k),
        Command::Bench(b) => bench::run(&choices, b),
        Command::Cache(c) => cache::run(c),
        Command::Image(i) => image::run(i),
        Command::Journal(j) => journal::run(j),
        Command::Dma(d) => dma::run(d),
        Command::Report(r) => report::run(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pinvm").chain(args.iter().copied()))
    }

    /// Every number that becomes a run's timeout, memory or vCPUs is bounded on the command
    /// line as `pinvm boot` bounds it: `bisect --timeout` used to take any u64 (an
    /// `Instant + Duration` panic), `bench boot --mem` any u64 (`mem_mib << 20` wrapped).
    #[test]
    fn timeouts_memory_and_vcpus_are_bounded_on_every_command() {
        let bisect = |t: &str| {
            parse(&[
                "bisect",
                "--tree",
                "t",
                "--good",
                "a",
                "--bad",
                "b",
                "--timeout",
                t,
                "--",
                "true",
            ])
        };
        assert!(bisect("86400").is_ok());
        assert!(bisect("1").is_ok());
        for bad in ["0", "86401", "18446744073709551615"] {
            let e = bisect(bad).unwrap_err();
            assert!(e.to_string().contains("--timeout"), "{e}");
        }
        let bench = |m: &str| parse(&["bench", "boot", "--mem", m]);
        assert!(bench("32").is_ok());
        assert!(bench("65536").is_ok());
        for bad in ["0", "31", "65537", "17592186044416"] {
            let e = bench(bad).unwrap_err();
            assert!(e.to_string().contains("--mem"), "{e}");
        }
        for (cmd, flag, bad) in [
            (&["boot", "--kernel", "k"][..], "--timeout", "86401"),
            (&["boot", "--kernel", "k"][..], "--mem", "65537"),
            (&["boot", "--kernel", "k"][..], "--cpus", "33"),
            (&["bench", "boot"][..], "--cpus", "33"),
            (&["selftest", "mm:gup_longterm"][..], "--timeout", "86401"),
            (&["selftest", "mm:gup_longterm"][..], "--mem", "65537"),
        ] {
            let mut args = cmd.to_vec();
            args.extend([flag, bad]);
            let e = parse(&args).unwrap_err();
            assert!(e.to_string().contains(flag), "{args:?}: {e}");
        }
    }
}
