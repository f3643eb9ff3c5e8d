//! Patch series: grouped, ordered, hashed, applied with `patch -p1`.
//!
//! Patches belong to exactly one [`PatchGroup`] and are applied group by group:
//! first the platform fix (kvm_pvm SYSCALL quirk), then pinvm's own driver, then the
//! patches under test. The groups are never mixed, and the manifest records each
//! patch's group, so a result can always be traced to the patches under test.

use crate::cache;
use crate::kernel::source;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a patch is in the series. The order of the variants is the application order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatchGroup {
    /// Makes the guest work on the build host's hypervisor (kvm_pvm); dead code elsewhere.
    Platform,
    /// pinvm's guest driver.
    Driver,
    /// The user's patches: what is being tested.
    UnderTest,
}

impl PatchGroup {
    /// The group's word in the manifest, the cache key and messages (`platform`, `driver`,
    /// `under-test`).
    pub fn as_str(self) -> &'static str {
        match self {
            PatchGroup::Platform => "platform",
            PatchGroup::Driver => "driver",
            PatchGroup::UnderTest => "under-test",
        }
    }
}

/// One patch, with its bytes loaded (so the hash and the applied text are the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// Display name: the file path for user patches, `pinvm:<file>` for embedded ones.
    pub name: String,
    /// Why it is in the series (decides its place in the order).
    pub group: PatchGroup,
    /// The unified diff's bytes, exactly as hashed and applied (`patch -p1`).
    pub text: Vec<u8>,
}

impl Patch {
    /// Reads a patch file and checks that it looks like a unified diff.
    pub fn from_file(path: &Path, group: PatchGroup) -> Result<Patch> {
        let text =
            std::fs::read(path).with_context(|| format!("reading patch {}", path.display()))?;
        Patch::new(path.display().to_string(), group, text)
    }

    /// A patch from bytes; fails if no file is touched by it.
    pub fn new(name: String, group: PatchGroup, text: Vec<u8>) -> Result<Patch> {
        let p = Patch { name, group, text };
        if p.touched_files().is_empty() {
            bail!(
                "{} is not a unified diff (no `--- a/…` / `+++ b/…` file headers)",
                p.name
            );
        }
        Ok(p)
    }

    /// SHA-256 of [`text`](Self::text), lowercase hex (the manifest's record of it).
    pub fn sha256(&self) -> String {
        cache::sha256_hex(&self.text)
    }

    /// Files the patch creates, modifies, renames or deletes (relative, `-p1` stripped).
    pub fn touched_files(&self) -> Vec<PathBuf> {
        touched_files(&String::from_utf8_lossy(&self.text))
    }
}

/// Strips the first path component (`-p1`) and any trailing tab + timestamp.
fn strip_p1(header_path: &str) -> Option<PathBuf> {
    let p = header_path.split('\t').next()?.trim();
    let p = p.trim_matches('"');
    if p == "/dev/null" || p.is_empty() {
        return None;
    }
    let (_, rest) = p.split_once('/')?;
    (!rest.is_empty()).then(|| PathBuf::from(rest))
}

/// Parses a unified diff's file headers, skipping hunk bodies by their line counts (so a
/// removed line that starts with `-- ` is not taken for a header).
pub fn touched_files(text: &str) -> Vec<PathBuf> {
    fn count(spec: &str) -> Option<u64> {
        // "-12,7" or "+3" -> line count (default 1).
        let spec = &spec[1..];
        match spec.split_once(',') {
            Some((_, n)) => n.parse().ok(),
            None => spec.parse().ok().map(|_: u64| 1),
        }
    }
    let mut out: Vec<PathBuf> = Vec::new();
    let mut add = |p: Option<PathBuf>| {
        if let Some(p) = p {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    };
    let (mut old_left, mut new_left) = (0u64, 0u64);
    for line in text.lines() {
        if old_left > 0 || new_left > 0 {
            match line.as_bytes().first() {
                Some(b'-') => old_left = old_left.saturating_sub(1),
                Some(b'+') => new_left = new_left.saturating_sub(1),
                Some(b'\\') => {}
                _ => {
                    old_left = old_left.saturating_sub(1);
                    new_left = new_left.saturating_sub(1);
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("@@ ") {
            let mut parts = rest.split_whitespace();
            if let (Some(o), Some(n)) = (parts.next(), parts.next()) {
                if o.starts_with('-') && n.starts_with('+') {
                    old_left = count(o).unwrap_or(0);
                    new_left = count(n).unwrap_or(0);
                }
            }
        } else if let Some(p) = line
            .strip_prefix("--- ")
            .or_else(|| line.strip_prefix("+++ "))
        {
            add(strip_p1(p));
        } else if let Some(p) = line
            .strip_prefix("rename from ")
            .or_else(|| line.strip_prefix("rename to "))
            .or_else(|| line.strip_prefix("copy to "))
        {
            add(Some(PathBuf::from(p.trim())));
        }
    }
    out
}

/// An ordered patch series in which groups never interleave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchSeries {
    patches: Vec<Patch>,
}

impl PatchSeries {
    /// Orders `patches` by group, keeping the given order within each group.
    pub fn new(mut patches: Vec<Patch>) -> PatchSeries {
        patches.sort_by_key(|p| p.group);
        PatchSeries { patches }
    }

    /// The patches in application order.
    pub fn patches(&self) -> &[Patch] {
        &self.patches
    }

    /// Whether there is no patch to apply.
    pub fn is_empty(&self) -> bool {
        self.patches.is_empty()
    }

    /// Applies the series in `tree` (a work copy). Hard-linked files are replaced by
    /// private copies first. Each patch is dry-run before it is applied, so a failing
    /// patch leaves the tree as the previous patch left it.
    pub fn apply(&self, tree: &Path, on_patch: &mut dyn FnMut(&Patch)) -> Result<()> {
        for (i, p) in self.patches.iter().enumerate() {
            on_patch(p);
            source::break_links(tree, &p.touched_files())?;
            for dry in [true, false] {
                if let Err(out) = run_patch(tree, &p.text, dry)? {
                    bail!(
                        "patch {}/{} ({} group) {} does not apply{}:\n{}",
                        i + 1,
                        self.patches.len(),
                        p.group.as_str(),
                        p.name,
                        if i > 0 {
                            " on top of the patches before it"
                        } else {
                            ""
                        },
                        out.trim_end()
                    );
                }
            }
        }
        Ok(())
    }
}

/// Runs `patch -p1 --forward --batch` with the patch on stdin. `Ok(Err(output))` when
/// the patch does not apply.
fn run_patch(tree: &Path, text: &[u8], dry_run: bool) -> Result<std::result::Result<(), String>> {
    let mut cmd = Command::new("patch");
    cmd.current_dir(tree)
        .args([
            "-p1",
            "--forward",
            "--batch",
            "--no-backup-if-mismatch",
            "-s",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if dry_run {
        cmd.arg("--dry-run");
    }
    let mut child = cmd
        .spawn()
        .context("running patch (is GNU patch installed?)")?;
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        // A failing patch may exit before reading everything: ignore EPIPE here.
        let _ = stdin.write_all(text);
    }
    let out = child.wait_with_output().context("waiting for patch")?;
    if out.status.success() {
        return Ok(Ok(()));
    }
    let mut msg = String::from_utf8_lossy(&out.stdout).into_owned();
    msg.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(Err(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::TestDir;
    use std::fs;

    const DIFF: &str = "\
diff --git a/kernel/fork.c b/kernel/fork.c
index 111..222 100644
--- a/kernel/fork.c
+++ b/kernel/fork.c
@@ -1,3 +1,3 @@
 int a;
--- this removed line starts with two dashes
+++ and this added one with two pluses
 int c;
--- /dev/null
+++ b/kernel/new.c\t2024-01-01 00:00:00
@@ -0,0 +1 @@
+new
diff --git a/old.c b/renamed.c
similarity index 100%
rename from old.c
rename to renamed.c
";

    #[test]
    fn touched_files_skips_hunk_bodies() {
        let files = touched_files(DIFF);
        let want: Vec<PathBuf> = ["kernel/fork.c", "kernel/new.c", "old.c", "renamed.c"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(files, want);
        assert!(Patch::new("x".into(), PatchGroup::UnderTest, b"hello\n".to_vec()).is_err());
    }

    #[test]
    fn series_orders_groups_stably() {
        let mk = |n: &str, g| Patch {
            name: n.into(),
            group: g,
            text: vec![],
        };
        let s = PatchSeries::new(vec![
            mk("u1", PatchGroup::UnderTest),
            mk("d1", PatchGroup::Driver),
            mk("u2", PatchGroup::UnderTest),
            mk("p1", PatchGroup::Platform),
        ]);
        let names: Vec<&str> = s.patches().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["p1", "d1", "u1", "u2"]);
    }

    fn diff(path: &str, old: &str, new: &str) -> Vec<u8> {
        format!("--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-{old}\n+{new}\n").into_bytes()
    }

    #[test]
    fn apply_in_order_and_report_failures() {
        let t = TestDir::new("patch");
        let tree = t.path().join("tree");
        fs::create_dir_all(tree.join("d")).unwrap();
        fs::write(tree.join("d/f.c"), "one\n").unwrap();
        let p1 = Patch::new(
            "p1.patch".into(),
            PatchGroup::Platform,
            diff("d/f.c", "one", "two"),
        )
        .unwrap();
        let p2 = Patch::new(
            "p2.patch".into(),
            PatchGroup::UnderTest,
            diff("d/f.c", "two", "three"),
        )
        .unwrap();
        let mut seen = vec![];
        PatchSeries::new(vec![p2.clone(), p1.clone()])
            .apply(&tree, &mut |p| seen.push(p.name.clone()))
            .unwrap();
        assert_eq!(seen, ["p1.patch", "p2.patch"]);
        assert_eq!(fs::read_to_string(tree.join("d/f.c")).unwrap(), "three\n");

        // Does not apply (content differs): named, grouped, tool output included, tree unchanged.
        let bad = Patch::new(
            "bad.patch".into(),
            PatchGroup::UnderTest,
            diff("d/f.c", "zzz", "y"),
        )
        .unwrap();
        let err = PatchSeries::new(vec![bad])
            .apply(&tree, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("patch 1/1 (under-test group) bad.patch does not apply"),
            "{err}"
        );
        assert!(err.contains("FAILED"), "{err}");
        assert_eq!(fs::read_to_string(tree.join("d/f.c")).unwrap(), "three\n");
        assert!(!tree.join("d/f.c.rej").exists());

        // Already applied: --forward makes it a failure rather than a reversal.
        let again = Patch::new(
            "again".into(),
            PatchGroup::UnderTest,
            diff("d/f.c", "two", "three"),
        )
        .unwrap();
        assert!(PatchSeries::new(vec![again])
            .apply(&tree, &mut |_| {})
            .is_err());
        assert_eq!(fs::read_to_string(tree.join("d/f.c")).unwrap(), "three\n");
    }
}
