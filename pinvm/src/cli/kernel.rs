//! `pinvm kernel ...` and the kernel choice shared by the commands that boot one.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use guest_images::kernel::{BuildRequest, KernelSource, PlatformFix};
use harness::kernel::{build_with_progress, KernelChoice};
use std::path::PathBuf;

/// Which kernel to boot: a file, or a Debian version built (once) with pinvm's config.
#[derive(Args, Debug, Clone)]
pub struct KernelArgs {
    /// Boot this kernel image: an uncompressed vmlinux (fast) or a bzImage.
    #[arg(long, value_name = "PATH", conflicts_with = "kernel_version")]
    pub kernel: Option<PathBuf>,
    /// Boot Debian's linux-source of this version, built with pinvm's config and the platform
    /// fix (built and cached on first use).
    /// With --source, the version whose scenario expectations apply.
    #[arg(long, value_name = "6.12|6.1", default_value = harness::kernel::DEFAULT_KERNEL_VERSION)]
    pub kernel_version: String,
    /// Build the kernel from this source instead: debian-6.12, debian-6.1, the path of a
    /// clean kernel tree, or TREE@REV, a revision of a git repository (trees are left
    /// untouched); cached by content like every pinvm build, rebuilt incrementally.
    #[arg(
        long,
        value_name = "debian-6.12|debian-6.1|TREE[@REV]",
        conflicts_with = "kernel"
    )]
    pub source: Option<String>,
    /// A patch under test, applied with -p1 after pinvm's own (repeatable, in order).
    #[arg(long = "patch", value_name = "FILE", conflicts_with = "kernel")]
    pub patches: Vec<PathBuf>,
    /// A config fragment applied after pinvm's (repeatable, in order).
    #[arg(long = "config", value_name = "FRAGMENT", conflicts_with = "kernel")]
    pub configs: Vec<PathBuf>,
}

impl KernelArgs {
    /// The harness's kernel choice.
    pub fn choice(&self) -> KernelChoice {
        KernelChoice {
            kernel: self.kernel.clone(),
            kernel_version: self.kernel_version.clone(),
            source: self.source.clone(),
            patches: self.patches.clone(),
            configs: self.configs.clone(),
            // Set from the machine (`for_machine`) where the kernel is booted.
            bzimage: false,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PlatformFixArg {
    /// Apply the kvm_pvm platform fix when this host's /dev/kvm is kvm_pvm.
    Auto,
    Always,
    Never,
}

impl From<PlatformFixArg> for PlatformFix {
    fn from(p: PlatformFixArg) -> Self {
        match p {
            PlatformFixArg::Auto => PlatformFix::Auto,
            PlatformFixArg::Always => PlatformFix::Always,
            PlatformFixArg::Never => PlatformFix::Never,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum KernelCommand {
    /// Build a guest kernel (tinyconfig + pinvm's fragment + yours, patches applied in order)
    /// and cache it under a hash of everything that went in. A second build is instant.
    Build(BuildArgs),
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// debian-6.12, debian-6.1, the path of a clean kernel tree, or TREE@REV (a revision
    /// of a git repository); trees are left untouched.
    #[arg(
        long,
        default_value = "debian-6.12",
        value_name = "debian-6.12|debian-6.1|TREE[@REV]"
    )]
    pub source: String,
    /// Extra config fragment applied after pinvm's (repeatable, in order). Every option it
    /// requests must survive olddefconfig, or the build fails listing the dropped ones.
    #[arg(long = "config", value_name = "FRAGMENT")]
    pub configs: Vec<PathBuf>,
    /// Patch under test, applied with -p1 after the platform fix (repeatable, in order).
    #[arg(long = "patch", value_name = "FILE")]
    pub patches: Vec<PathBuf>,
    /// When to apply the kvm_pvm platform fix (its own patch, never mixed with yours).
    #[arg(long, value_enum, default_value_t = PlatformFixArg::Auto)]
    pub platform_fix: PlatformFixArg,
    /// Leave out pinvm's guest driver (/dev/dmapin) and its config, e.g. for a tree the
    /// driver patch does not apply to.
    #[arg(long)]
    pub no_driver: bool,
    /// Parallel make jobs (default: number of CPUs).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Print only the path of the built vmlinux on stdout.
    #[arg(long)]
    pub print_path: bool,
    /// Build vmlinux only, as the kernel loop on pinvm's VMM does (QEMU boots a bzImage,
    /// which a later QEMU run then builds on demand).
    #[arg(long)]
    pub no_bzimage: bool,
}

pub fn run(cmd: KernelCommand) -> Result<i32> {
    match cmd {
        KernelCommand::Build(a) => {
            let req = BuildRequest {
                source: a.source.parse::<KernelSource>()?,
                fragments: a.configs,
                patches: a.patches,
                platform_fix: a.platform_fix.into(),
                jobs: a.jobs,
                without_driver: a.no_driver,
                bzimage: !a.no_bzimage,
            };
            let k = build_with_progress(&req)?;
            if a.print_path {
                println!("{}", k.vmlinux.display());
            } else {
                println!("kernel   {}", k.manifest.kernelrelease);
                println!("vmlinux  {}", k.vmlinux.display());
                match &k.bzimage {
                    Some(b) => println!("bzImage  {}", b.display()),
                    None => println!("bzImage  none (--no-bzimage; QEMU builds it on demand)"),
                }
                println!("manifest {}", k.dir.join("manifest.json").display());
                println!(
                    "cached   {}",
                    if k.cached { "yes" } else { "no (built now)" }
                );
                if k.bzimage_added {
                    println!(
                        "build    the bzImage only, now, in the build slot (vmlinux was cached)"
                    );
                } else if let (false, Some(inc)) = (k.cached, &k.manifest.incremental) {
                    println!(
                        "build    {:.1} s in slot {} ({}): tree {:.1} s ({} files written, {} \
                         removed), config {:.1} s, make {:.1} s ({} steps{})",
                        k.manifest.build_seconds,
                        inc.slot,
                        if inc.incremental {
                            "incremental"
                        } else {
                            "first build"
                        },
                        inc.tree_seconds,
                        inc.files_written,
                        inc.files_removed,
                        inc.config_seconds,
                        inc.make_seconds,
                        inc.steps,
                        if inc.ccache { ", ccache" } else { "" }
                    );
                }
            }
            Ok(0)
        }
    }
}
