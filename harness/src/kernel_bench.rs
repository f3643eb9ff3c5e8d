//! `pinvm bench kernel`: what the kernel loop costs, measured (never asserted): a cached
//! lookup, a rebuild after a one-line change to mm/gup.c (a patch under test, unique per
//! run so it is never a cache hit), and, with a git tree, a rebuild after moving to a
//! neighbouring commit. A cold build is measured on request (it takes minutes).

use crate::kernel::default_kernel;
use crate::KernelChoice;
use anyhow::{Context, Result};
use guest_images::kernel::{manifest::IncrementalRecord, BuiltKernel};
use std::path::Path;
use std::time::Instant;

/// One measured build.
#[derive(Debug, Clone)]
pub struct BuildFigure {
    /// What was built.
    pub what: String,
    /// Wall-clock seconds of the whole call (resolving the source included).
    pub seconds: f64,
    /// Found in the cache.
    pub cached: bool,
    /// How the build used its slot.
    pub incremental: Option<IncrementalRecord>,
}

fn measure(what: String, choice: &KernelChoice) -> Result<(BuildFigure, BuiltKernel)> {
    let t0 = Instant::now();
    let k = default_kernel(choice).with_context(|| format!("building {what}"))?;
    let f = BuildFigure {
        what,
        seconds: t0.elapsed().as_secs_f64(),
        cached: k.cached,
        incremental: if k.cached {
            None
        } else {
            k.manifest.incremental.clone()
        },
    };
    Ok((f, k))
}

/// A patch adding one comment line at the top of `file` (whose first lines are `head`),
/// with `tag` in it so that every run makes a new cache key.
pub fn one_line_patch(file: &str, head: &str, tag: &str) -> String {
    let lines: Vec<&str> = head.lines().take(3).collect();
    let mut p = format!(
        "--- a/{file}\n+++ b/{file}\n@@ -1,{n} +1,{m} @@\n+/* pinvm bench kernel {tag} */\n",
        n = lines.len(),
        m = lines.len() + 1
    );
    for l in lines {
        p.push(' ');
        p.push_str(l);
        p.push('\n');
    }
    p
}

/// Runs the benchmark on `choice`'s source; `scratch` holds the generated patch; `tree_rev`
/// is a git `TREE@REV` whose parent is built first, then it.
pub fn kernel(
    choice: &KernelChoice,
    scratch: &Path,
    tree_rev: Option<(&Path, &str)>,
    each: &mut dyn FnMut(&BuildFigure),
) -> Result<Vec<BuildFigure>> {
    let mut out = Vec::new();
    let mut push = |f: BuildFigure, out: &mut Vec<BuildFigure>| {
        each(&f);
        out.push(f);
    };
    let (first, k) = measure("first call (built or cached)".into(), choice)?;
    push(first, &mut out);
    let (f, _) = measure("cached lookup".into(), choice)?;
    push(f, &mut out);
    let _ = k;
    let head = source_head(choice, "mm/gup.c")?;
    let tag = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    std::fs::create_dir_all(scratch)?;
    let patch = scratch.join(format!("touch-gup-{tag}.patch"));
    std::fs::write(&patch, one_line_patch("mm/gup.c", &head, &tag))?;
    let mut touched = choice.clone();
    touched.patches.push(patch.clone());
    let (f, _) = measure(
        "rebuild after a one-line change to mm/gup.c".into(),
        &touched,
    )?;
    push(f, &mut out);
    let (f, _) = measure("back to the unchanged kernel (cached)".into(), choice)?;
    push(f, &mut out);
    let _ = std::fs::remove_file(&patch);
    if let Some((tree, rev)) = tree_rev {
        for (what, r) in [
            ("parent", format!("{rev}^")),
            ("neighbouring commit", rev.to_string()),
        ] {
            let c = KernelChoice {
                source: Some(format!("{}@{r}", tree.display())),
                ..choice.clone()
            };
            let (f, _) = measure(format!("{what} {r} of {}", tree.display()), &c)?;
            push(f, &mut out);
        }
    }
    Ok(out)
}

/// The first lines of `file` in the unpatched source of `choice`.
fn source_head(choice: &KernelChoice, file: &str) -> Result<String> {
    use guest_images::kernel::source::{self, KernelSource};
    let cache = guest_images::cache::cache_dir()?;
    let src: KernelSource = choice
        .source
        .as_deref()
        .unwrap_or(&choice.kernel_version)
        .parse()?;
    let resolved = source::resolve(&src, &cache)?;
    let text = match &src {
        KernelSource::Debian(_) => {
            let tree = source::ensure_debian_extracted(&cache, &resolved, &mut || {})?;
            std::fs::read_to_string(tree.join(file))?
        }
        KernelSource::Tree(t) => std::fs::read_to_string(t.join(file))?,
        KernelSource::GitRev { repo, rev } => {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(repo)
                .args(["show", &format!("{rev}:{file}")])
                .output()?;
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    Ok(text.lines().take(3).collect::<Vec<_>>().join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_line_patch_applies_where_the_file_starts() {
        let p = one_line_patch("mm/gup.c", "// SPDX\n#include <a>\n#include <b>", "7");
        assert_eq!(
            p,
            "--- a/mm/gup.c\n+++ b/mm/gup.c\n@@ -1,3 +1,4 @@\n+/* pinvm bench kernel 7 */\n \
             // SPDX\n #include <a>\n #include <b>\n"
        );
    }
}
