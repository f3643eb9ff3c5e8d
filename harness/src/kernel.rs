//! Which kernel a case boots: a file, or a Debian version pinvm builds (once, cached) with
//! its config, its driver and, on kvm_pvm hosts, the platform fix.

use crate::scenario::Scenario;
use anyhow::Result;
use guest_images::kernel::{self as gk, BuildRequest, BuiltKernel, KernelSource, PlatformFix};
use machine::Machine;
use std::path::PathBuf;

/// The kernel version booted when nothing else is asked for.
pub const DEFAULT_KERNEL_VERSION: &str = "6.12";

/// Which kernel to boot: a file, or a kernel pinvm builds (once, cached by content) from a
/// source with pinvm's config and driver plus the caller's patches and config fragments.
#[derive(Debug, Clone, Default)]
pub struct KernelChoice {
    /// Boot this kernel image: an uncompressed vmlinux (fast) or a bzImage.
    pub kernel: Option<PathBuf>,
    /// The Debian linux-source version to build when neither `kernel` nor `source` is given;
    /// otherwise the version whose scenario expectations apply.
    pub kernel_version: String,
    /// Build from this source instead: `debian-6.12`, `debian-6.1` or a kernel tree's path.
    pub source: Option<String>,
    /// Patches under test, applied after pinvm's, in order.
    pub patches: Vec<PathBuf>,
    /// Config fragments, applied after pinvm's, in order.
    pub configs: Vec<PathBuf>,
    /// The machine boots a compressed bzImage (QEMU), so a built kernel must have one; the
    /// loop on pinvm's VMM builds vmlinux only. Set by [`KernelChoice::for_machine`].
    pub bzimage: bool,
}

impl KernelChoice {
    /// The Debian kernel of `version`, built with pinvm's defaults.
    pub fn version(version: &str) -> KernelChoice {
        KernelChoice {
            kernel_version: version.to_string(),
            ..KernelChoice::default()
        }
    }

    /// This choice with scenario `s`'s patches and config fragments for its version appended
    /// (after the command line's). A kernel file is booted as it is: nothing is appended.
    pub fn for_scenario(&self, s: &Scenario) -> KernelChoice {
        let mut c = self.clone();
        if c.kernel.is_none() {
            c.patches.extend(s.kernel_patches(&c.kernel_version));
            c.configs.extend(s.kernel_configs(&c.kernel_version));
        }
        c
    }

    /// This choice for booting on `machine`: with a bzImage when the machine boots one.
    pub fn for_machine(&self, machine: &dyn Machine) -> KernelChoice {
        KernelChoice {
            bzimage: machine.boots_bzimage(),
            ..self.clone()
        }
    }

    /// The file names of the patches under test, in order (for reports).
    pub fn patch_names(&self) -> Vec<String> {
        self.patches
            .iter()
            .map(|p| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| p.display().to_string())
            })
            .collect()
    }
}

/// Build (or find in the cache) the kernel `req` describes, showing progress on stderr only
/// when a build really starts: a cache hit prints nothing.
pub fn build_with_progress(req: &BuildRequest) -> Result<BuiltKernel> {
    let cache = guest_images::cache::cache_dir()?;
    // A cache hit reports only resolving the sources and the key: hold those back until
    // the build really starts, so a cached kernel prints nothing.
    let mut renderer = gk::progress::ProgressRenderer::stderr();
    let mut held = Vec::new();
    let mut started = false;
    let built = gk::build(req, &cache, &mut |p| {
        if !started {
            let early = matches!(
                p,
                gk::BuildProgress::Phase(gk::Phase::Resolving) | gk::BuildProgress::Note(_)
            );
            if early {
                held.push(p);
                return;
            }
            started = true;
            for h in held.drain(..) {
                renderer.event(h);
            }
        }
        renderer.event(p)
    });
    if started {
        renderer.finish();
    }
    built
}

/// The kernel `choice` describes (its source, else the Debian `kernel_version`), with pinvm's
/// config and driver and the choice's patches and fragments: built once, then cached.
pub fn default_kernel(choice: &KernelChoice) -> Result<BuiltKernel> {
    let source = choice.source.as_deref().unwrap_or(&choice.kernel_version);
    let req = BuildRequest {
        source: source.parse::<KernelSource>()?,
        fragments: choice.configs.clone(),
        patches: choice.patches.clone(),
        platform_fix: PlatformFix::Auto,
        jobs: None,
        without_driver: false,
        bzimage: choice.bzimage,
    };
    build_with_progress(&req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn scenario_patches_follow_the_command_lines() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let s =
            crate::scenario::Scenario::load(&dir.join("S12A-page-try-gup-pin-all.toml")).unwrap();
        let cli = KernelChoice {
            patches: vec![PathBuf::from("/tmp/mine.patch")],
            ..KernelChoice::version("6.12")
        };
        let c = cli.for_scenario(&s);
        assert_eq!(
            c.patch_names(),
            ["mine.patch", "page_try_gup_pin-A-6.12.patch"]
        );
        let file = KernelChoice {
            kernel: Some(PathBuf::from("/tmp/vmlinux")),
            ..KernelChoice::version("6.12")
        };
        assert!(file.for_scenario(&s).patches.is_empty());
        assert_eq!(
            KernelChoice::version("6.1").for_scenario(&s).patch_names(),
            ["page_try_gup_pin-A-6.1.patch"]
        );
    }
}
