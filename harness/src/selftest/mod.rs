//! `pinvm selftest`: the kernel's own selftests (`mm:gup_longterm`, ...) built from the tree
//! of the kernel being booted ([`guest_images::selftest`]), put into the guest's initramfs,
//! run one after another with their working directory on the chosen filesystem, their
//! output nested under pinvm's KTAP ([`ktap`]).

pub mod ktap;

use crate::kernel::{default_kernel, KernelChoice};
use crate::prepare::{check_initrd_fits, prepare_with, HostFiles, UserDisk};
use crate::record::where_stopped;
use anyhow::{bail, Result};
use guest_images::disk::Fs;
use guest_images::hostfs::HostPath;
use guest_images::initramfs::{Job, Mount};
use guest_images::kernel::PatchGroup;
use guest_images::selftest::{self, BuiltSelftest, SelftestName, TreeRef};
use ktap::{Status, TestResult};
use machine::outcome::{self, EXIT_FAIL, EXIT_UNTESTABLE};
use machine::{DmaSpec, Machine, RunSpec};
use std::path::PathBuf;
use std::time::Duration;

/// The filesystem the tests' working directory (`/mnt`) is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkFs {
    /// A fresh image of this filesystem on /dev/vda.
    Disk(Fs),
    /// A tmpfs.
    Tmpfs,
}

impl std::str::FromStr for WorkFs {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<WorkFs> {
        match s {
            "tmpfs" => Ok(WorkFs::Tmpfs),
            _ => s
                .parse::<Fs>()
                .map(WorkFs::Disk)
                .map_err(|_| anyhow::anyhow!("--fs {s}: expected ext4, xfs, btrfs or tmpfs")),
        }
    }
}

impl WorkFs {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            WorkFs::Disk(fs) => fs.name(),
            WorkFs::Tmpfs => "tmpfs",
        }
    }
}

/// What to run.
pub struct SelftestRun {
    /// The kernel: one pinvm builds (its tree gives the tests and headers).
    pub kernel: KernelChoice,
    /// The tests, run in this order.
    pub tests: Vec<SelftestName>,
    /// Where their working directory is.
    pub fs: WorkFs,
    /// vCPUs.
    pub cpus: u8,
    /// Guest memory (MiB).
    pub mem_mib: u64,
    /// Stop the guest after this long.
    pub timeout: Duration,
    /// Copy the console to stdout while it runs.
    pub echo: bool,
    /// Keep the whole console here.
    pub console_log: Option<PathBuf>,
}

/// What happened.
pub struct SelftestReport {
    /// The booted kernel's release.
    pub release: String,
    /// The machine that ran it.
    pub machine: String,
    /// The tests that were built now (the others came from the cache).
    pub built: Vec<String>,
    /// Each test's result.
    pub results: Vec<TestResult>,
    /// What the user should know about how the tests were made.
    pub notes: Vec<String>,
    /// Why the run stopped early (crash, hang, could not boot), if it did.
    pub why: Option<String>,
    /// pinvm's KTAP with every test's output nested.
    pub ktap: String,
    /// 0 every test passed or skipped and one passed, 1 a test failed, the guest crashed or
    /// hung, 125 nothing could be tested.
    pub code: i32,
}

/// The guest script: each test bracketed by markers, from the working directory.
fn script(tests: &[SelftestName]) -> String {
    let mut s =
        String::from("mount -t debugfs none /sys/kernel/debug 2>/dev/null; cd /mnt || exit 125\n");
    for t in tests {
        s.push_str(&format!(
            "echo PINVM-SELFTEST-BEGIN {t}; {}; echo PINVM-SELFTEST-END {t} $?\n",
            t.guest_path()
        ));
    }
    s
}

/// Builds the tests, boots the kernel with them and runs them.
pub fn run(machine: &dyn Machine, r: &SelftestRun) -> Result<SelftestReport> {
    if r.tests.is_empty() {
        bail!("name at least one selftest, e.g. mm:gup_longterm");
    }
    if r.kernel.kernel.is_some() {
        bail!("pinvm selftest builds the tests from the booted kernel's tree: use --kernel-version or --source, not --kernel");
    }
    let kernel = r.kernel.for_machine(machine);
    let built = default_kernel(&kernel)?;
    let cache = guest_images::cache::cache_dir()?;
    let m = &built.manifest;
    let pristine = guest_images::kernel::source::debian_tree_dir(&cache, &m.source)
        .filter(|d| d.join("Makefile").is_file())
        .filter(|_| m.patches.iter().all(|p| p.group != PatchGroup::UnderTest));
    let tree = match &pristine {
        Some(d) => TreeRef::Pristine(d),
        None => TreeRef::Slot {
            dir: &m.build_dir,
            kernel_key: &m.key,
        },
    };
    let build = selftest::build(tree, &r.tests, &cache)?;
    let bins = build.tests;
    let files = HostFiles {
        puts: bins
            .iter()
            .map(|b| HostPath {
                host: b.binary.clone(),
                guest: b.name.guest_path(),
            })
            .collect(),
        shares: Vec::new(),
    };
    let mut job = Job {
        argv: vec!["sh".into(), "-c".into(), script(&r.tests)],
        ..Job::default()
    };
    let mut user = UserDisk::default();
    match r.fs {
        WorkFs::Disk(fs) => {
            user.image = Some(guest_images::disk::create(&cache, fs, fs.default_size())?)
        }
        WorkFs::Tmpfs => job.mounts.push(Mount {
            device: "tmpfs".into(),
            dir: "/mnt".into(),
            fstype: "tmpfs".into(),
            options: String::new(),
        }),
    }
    let p = prepare_with(&kernel, job, user, &files)?;
    check_initrd_fits(p.initrd.len(), r.mem_mib)?;
    let spec = RunSpec {
        kernel: p.kernel.clone(),
        initrd: Some(p.initrd),
        append: Vec::new(),
        cpus: r.cpus,
        mem_mib: r.mem_mib,
        timeout: r.timeout,
        echo: r.echo,
        console_log: r.console_log.clone(),
        disks: p.disks,
        dma: Some(DmaSpec { log: None }),
    };
    let names: Vec<String> = r.tests.iter().map(|t| t.to_string()).collect();
    let release = built.manifest.kernelrelease.clone();
    let (results, why, code, machine_name) = match machine.run(&spec) {
        Err(e) => {
            let why = format!("could not boot {}: {e}", p.kernel.display());
            (
                ktap::parse("", &names),
                Some(why),
                EXIT_UNTESTABLE,
                machine.name().to_string(),
            )
        }
        Ok(report) => {
            let verdict = outcome::judge(&report, where_stopped(&report, p.system_map.as_deref()));
            let results = ktap::parse(&report.console, &names);
            let code = decide(&results, verdict.code);
            (results, verdict.reason, code, report.machine.clone())
        }
    };
    let note = format!(
        "pinvm selftest: {release} on {machine_name}, working directory on {}",
        r.fs.name()
    );
    let ktap = ktap::ktap(&results, &note, why.as_deref());
    Ok(SelftestReport {
        release,
        machine: machine_name,
        built: bins
            .iter()
            .filter(|b: &&BuiltSelftest| !b.cached)
            .map(|b| b.name.to_string())
            .collect(),
        results,
        notes: build.tree_note.into_iter().collect(),
        why,
        ktap,
        code,
    })
}

/// The exit code (`git bisect run`): the run's own verdict when it crashed, hung or did not
/// boot; else 1 when a test failed, 0 when one passed and the rest passed or skipped, 125
/// when every test skipped (nothing was tested).
fn decide(results: &[TestResult], verdict: i32) -> i32 {
    if results.iter().any(|r| matches!(r.status, Status::Fail(_))) {
        return EXIT_FAIL;
    }
    if verdict == EXIT_FAIL || verdict == EXIT_UNTESTABLE {
        return verdict;
    }
    if results
        .iter()
        .any(|r| matches!(r.status, Status::Unfinished | Status::NotRun))
    {
        return EXIT_UNTESTABLE;
    }
    if results.iter().any(|r| r.status == Status::Pass) {
        0
    } else {
        EXIT_UNTESTABLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: Status) -> TestResult {
        TestResult {
            name: "mm:x".into(),
            status,
            output: Vec::new(),
        }
    }

    #[test]
    fn exit_codes_follow_git_bisect_run() {
        let r = |s: &[Status], v| decide(&s.iter().map(|s| result(*s)).collect::<Vec<_>>(), v);
        assert_eq!(r(&[Status::Pass, Status::Skip], 0), 0);
        assert_eq!(r(&[Status::Pass, Status::Fail(1)], 0), 1);
        assert_eq!(r(&[Status::Skip, Status::Skip], 0), 125);
        assert_eq!(r(&[Status::Pass, Status::Unfinished], 1), 1, "a crash");
        assert_eq!(r(&[Status::NotRun], 125), 125, "no boot");
        assert_eq!(r(&[Status::Fail(1)], 125), 1);
    }

    #[test]
    fn script_brackets_every_test() {
        let t: Vec<SelftestName> = vec![
            "mm:gup_longterm".parse().unwrap(),
            "mm:cow".parse().unwrap(),
        ];
        let s = script(&t);
        assert!(s.contains("cd /mnt || exit 125\n"));
        assert!(s.contains("echo PINVM-SELFTEST-BEGIN mm:cow; /selftests/mm/cow; echo PINVM-SELFTEST-END mm:cow $?\n"), "{s}");
    }
}
