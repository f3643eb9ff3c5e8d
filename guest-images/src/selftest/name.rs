//! `SUITE:TEST` names of kernel selftests.

use anyhow::{bail, Result};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A selftest: its suite (a directory under `tools/testing/selftests/`) and its program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelftestName {
    /// The suite, e.g. `mm`.
    pub suite: String,
    /// The test program, e.g. `gup_longterm` (built from `gup_longterm.c`).
    pub test: String,
}

/// Suites pinvm knows how to build (their support sources and libraries are listed in
/// `build`); others are refused with this list.
pub const SUITES: [&str; 1] = ["mm"];

fn word_ok(w: &str) -> bool {
    !w.is_empty()
        && w.len() <= 64
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl FromStr for SelftestName {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<SelftestName> {
        let Some((suite, test)) = s.split_once(':') else {
            bail!("selftest {s:?}: expected SUITE:TEST, e.g. mm:gup_longterm");
        };
        if !word_ok(suite) || !word_ok(test) {
            bail!("selftest {s:?}: SUITE and TEST are letters, digits, '_' or '-'");
        }
        if !SUITES.contains(&suite) {
            bail!("selftest {s:?}: suite {suite} is not supported (supported: {SUITES:?})");
        }
        Ok(SelftestName {
            suite: suite.to_string(),
            test: test.to_string(),
        })
    }
}

impl fmt::Display for SelftestName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.suite, self.test)
    }
}

impl SelftestName {
    /// The suite's directory in `tree`: `tools/testing/selftests/<suite>`, or for `mm` the
    /// `vm` directory of kernels before 6.3.
    pub fn suite_dir(&self, tree: &Path) -> Result<PathBuf> {
        let base = tree.join("tools/testing/selftests");
        let mut names = vec![self.suite.as_str()];
        if self.suite == "mm" {
            names.push("vm");
        }
        names
            .iter()
            .map(|n| base.join(n))
            .find(|d| d.is_dir())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: the kernel tree {} has no {}",
                    self,
                    tree.display(),
                    base.join(&self.suite).display()
                )
            })
    }

    /// The test's C source in `tree`; an error names what is missing.
    pub fn source(&self, tree: &Path) -> Result<PathBuf> {
        let c = self.suite_dir(tree)?.join(format!("{}.c", self.test));
        if !c.is_file() {
            bail!(
                "{self}: {} is not in the kernel tree this kernel was built from ({}); the test \
                 may be newer than this kernel",
                c.strip_prefix(tree).unwrap_or(&c).display(),
                tree.display()
            );
        }
        Ok(c)
    }

    /// Where the binary goes in the guest.
    pub fn guest_path(&self) -> String {
        format!("/selftests/{}/{}", self.suite, self.test)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let n: SelftestName = "mm:gup_longterm".parse().unwrap();
        assert_eq!((n.suite.as_str(), n.test.as_str()), ("mm", "gup_longterm"));
        assert_eq!(n.to_string(), "mm:gup_longterm");
        assert_eq!(n.guest_path(), "/selftests/mm/gup_longterm");
        for bad in ["gup_longterm", "mm:", ":x", "mm:../x", "mm:a/b", "net:foo"] {
            assert!(bad.parse::<SelftestName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_vm_before_mm_and_reports_missing_sources() {
        let t = std::env::temp_dir().join(format!("pinvm-selftest-name-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(t.join("tools/testing/selftests/vm")).unwrap();
        std::fs::write(t.join("tools/testing/selftests/vm/cow.c"), "").unwrap();
        let cow: SelftestName = "mm:cow".parse().unwrap();
        assert!(cow.source(&t).unwrap().ends_with("vm/cow.c"));
        let gl: SelftestName = "mm:gup_longterm".parse().unwrap();
        let e = gl.source(&t).unwrap_err().to_string();
        assert!(
            e.contains("vm/gup_longterm.c is not in the kernel tree"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&t);
    }
}
