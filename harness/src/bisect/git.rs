//! The bisection's private repository: a bare clone of the user's that shares its objects
//! (`git clone --bare --shared`), in which `git bisect --no-checkout` keeps its state. The
//! user's checkout, index, HEAD and refs are never touched; revisions are resolved in the
//! user's repository once and used by commit id from then on.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A private bare repository.
#[derive(Debug, Clone)]
pub struct Private {
    /// Its git directory.
    pub dir: PathBuf,
}

fn run(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .with_context(|| format!("running git {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "git {} (in {}) failed: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Private {
    /// Opens `dir`, or makes it: a bare clone of `user` sharing its objects.
    pub fn open_or_clone(user: &Path, dir: &Path) -> Result<Private> {
        if !dir.join("HEAD").is_file() {
            let gdir = guest_images::kernel::source::git_dir(user)?;
            let out = Command::new("git")
                .args(["clone", "--bare", "--shared", "--quiet"])
                .arg(&gdir)
                .arg(dir)
                .output()
                .context("running git clone")?;
            if !out.status.success() {
                bail!(
                    "making the private repository {}: {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Ok(Private {
            dir: dir.to_path_buf(),
        })
    }

    /// `git` in the private repository.
    pub fn git(&self, args: &[&str]) -> Result<String> {
        run(&self.dir, args)
    }

    /// The commit's one-line subject.
    pub fn subject(&self, commit: &str) -> String {
        self.git(&["log", "-1", "--format=%s", commit])
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    /// The commit's first parent.
    pub fn parent(&self, commit: &str) -> Result<String> {
        Ok(self
            .git(&["rev-parse", "--verify", &format!("{commit}^1")])?
            .trim()
            .to_string())
    }

    /// Whether `a` is an ancestor of `b`.
    pub fn is_ancestor(&self, a: &str, b: &str) -> bool {
        Command::new("git")
            .arg("--git-dir")
            .arg(&self.dir)
            .args(["merge-base", "--is-ancestor", a, b])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The patch that reverts `commit` (its diff, backwards), for applying on another
    /// revision as a patch under test.
    pub fn revert_patch(&self, commit: &str) -> Result<String> {
        let parent = self.parent(commit)?;
        self.git(&[
            "diff",
            "--binary",
            "--no-ext-diff",
            "--no-color",
            commit,
            &parent,
        ])
    }

    /// Starts (or restarts) a bisection between `bad` and `good` (commit ids).
    pub fn bisect_start(&self, bad: &str, good: &str) -> Result<()> {
        let _ = self.git(&["bisect", "reset"]);
        self.git(&["bisect", "start", "--no-checkout", bad, good])?;
        Ok(())
    }

    /// The revision git asks to test next, or `None` when the bisection is over.
    pub fn bisect_next(&self) -> Result<Option<String>> {
        if self.bisect_end()?.is_some() {
            return Ok(None);
        }
        Ok(Some(
            self.git(&["rev-parse", "BISECT_HEAD"])?.trim().to_string(),
        ))
    }

    /// Marks a revision `good`, `bad` or `skip`.
    pub fn bisect_mark(&self, term: &str, commit: &str) -> Result<()> {
        self.git(&["bisect", term, commit])?;
        Ok(())
    }

    /// `git bisect log`.
    pub fn bisect_log(&self) -> Result<String> {
        self.git(&["bisect", "log"])
    }

    /// How the bisection ended, read from its log: the first bad commit, or the commits
    /// only skipped revisions leave open.
    pub fn bisect_end(&self) -> Result<Option<End>> {
        Ok(parse_end(&self.bisect_log()?))
    }
}

/// How a bisection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// `# first bad commit: [sha]`.
    Culprit(String),
    /// Only skipped commits are left: the first bad commit is one of these.
    Range(Vec<String>),
}

/// Reads the end of a `git bisect log`.
pub fn parse_end(log: &str) -> Option<End> {
    let sha = |l: &str| {
        l.split_once('[')
            .and_then(|(_, r)| r.split_once(']'))
            .map(|(s, _)| s.to_string())
    };
    if let Some(l) = log.lines().find(|l| l.starts_with("# first bad commit:")) {
        return sha(l).map(End::Culprit);
    }
    if log.contains("# only skipped commits left to test") {
        let range: Vec<String> = log
            .lines()
            .filter(|l| l.starts_with("# possible first bad commit:"))
            .filter_map(sha)
            .collect();
        return Some(End::Range(range));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_are_read_from_the_log() {
        let found = "git bisect start '--no-checkout' 'a' 'b'\n# bad: [c4] c4\ngit bisect bad c4\n\
                     # first bad commit: [c4abc] c4\n";
        assert_eq!(parse_end(found), Some(End::Culprit("c4abc".into())));
        let skipped = "# only skipped commits left to test\n\
                       # possible first bad commit: [aaa] x\n# possible first bad commit: [bbb] y\n";
        assert_eq!(
            parse_end(skipped),
            Some(End::Range(vec!["aaa".into(), "bbb".into()]))
        );
        assert_eq!(parse_end("git bisect start\n# bad: [x] y\n"), None);
    }
}
