//! `pinvm bench boot`: how long boots take, measured, never asserted.

use super::boot::{prepare, UserDisk};
use super::kernel::KernelChoice;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use guest_images::initramfs::Job;
use std::time::Duration;
use vmm::runner::{self, RunSpec};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Boot each kernel N times running `true`; print the median, min and max of: VMM set-up
    /// until the first KVM_RUN, first KVM_RUN to guest init (agent's first event), and first
    /// KVM_RUN to command done.
    Boot(BootBench),
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
    #[arg(long, default_value_t = 256)]
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
    let BenchCommand::Boot(b) = cmd;
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
