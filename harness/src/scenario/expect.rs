//! Expected outcomes and how a run's verdicts compare with them.

use super::{FILESYSTEMS, KERNELS};
use crate::report::Outcome;
use anyhow::{bail, Result};
use oracle::VerdictKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a cell of the matrix is expected to show.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// Verdict kinds that must all be found (empty: a clean run).
    pub verdicts: Vec<String>,
    /// Verdict kinds that may or may not be found (races, the device outrunning writeback).
    #[serde(default)]
    pub may: Vec<String>,
    /// Console report titles that must be found, e.g. "WARNING in ext4_dirty_folio".
    #[serde(default)]
    pub titles: Vec<String>,
    /// The research notes' prediction, when the measured truth (`verdicts`) differs.
    #[serde(default)]
    pub predicted: Option<Vec<String>>,
    /// What was measured instead of the prediction and why, with its evidence.
    #[serde(default)]
    pub finding: Option<String>,
}

impl Expectation {
    /// Check that every verdict name is known and that `predicted` comes with `finding`.
    pub fn validate(&self) -> Result<()> {
        let all = self
            .verdicts
            .iter()
            .chain(&self.may)
            .chain(self.predicted.iter().flatten());
        for v in all {
            if VerdictKind::from_name(v).is_none() {
                let names: Vec<&str> = VerdictKind::ALL.iter().map(|k| k.name()).collect();
                bail!("unknown verdict {v:?}: expected one of {names:?}");
            }
        }
        if self.predicted.is_some() != self.finding.is_some() {
            bail!("`predicted` and `finding` go together: a finding says why the measured verdicts differ from the prediction");
        }
        Ok(())
    }

    /// The verdict kinds that must be found.
    pub fn required(&self) -> Vec<VerdictKind> {
        kinds(&self.verdicts)
    }

    /// The verdict kinds that may be found.
    pub fn allowed(&self) -> Vec<VerdictKind> {
        kinds(&self.may)
    }
}

fn kinds(v: &[String]) -> Vec<VerdictKind> {
    v.iter().filter_map(|s| VerdictKind::from_name(s)).collect()
}

/// An expectation key: "default", a filesystem, a kernel version, or "<kernel>.<fs>".
pub fn check_key(key: &str) -> Result<()> {
    let ok = key == "default"
        || FILESYSTEMS.contains(&key)
        || KERNELS.contains(&key)
        || KERNELS.iter().any(|k| {
            key.strip_prefix(k)
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|f| FILESYSTEMS.contains(&f))
        });
    if !ok {
        bail!("expect.{key:?}: keys are \"default\", a filesystem ({FILESYSTEMS:?}), a kernel ({KERNELS:?}) or \"<kernel>.<fs>\"");
    }
    Ok(())
}

/// The most specific expectation for (kernel, fs).
pub fn lookup<'a>(
    m: &'a BTreeMap<String, Expectation>,
    kernel: &str,
    fs: &str,
) -> Option<&'a Expectation> {
    [
        format!("{kernel}.{fs}"),
        kernel.to_string(),
        fs.to_string(),
        "default".into(),
    ]
    .iter()
    .find_map(|k| m.get(k))
}

/// Compare what a run found with the expectation: the outcome and, unless it matched, why.
pub fn compare(
    e: &Expectation,
    found: &[VerdictKind],
    titles: &[String],
) -> (Outcome, Option<String>) {
    let required = e.required();
    let allowed = e.allowed();
    let missing: Vec<&str> = required
        .iter()
        .filter(|k| !found.contains(k))
        .map(|k| k.name())
        .collect();
    let extra: Vec<&str> = found
        .iter()
        .filter(|k| !required.contains(k) && !allowed.contains(k))
        .map(|k| k.name())
        .collect();
    let missing_titles: Vec<&String> = e.titles.iter().filter(|t| !titles.contains(t)).collect();
    if !extra.is_empty() {
        let mut why = format!(
            "found {} that the scenario does not expect",
            extra.join(", ")
        );
        if !missing.is_empty() {
            why += &format!("; missing {}", missing.join(", "));
        }
        return (Outcome::Failure, Some(why));
    }
    if required.is_empty() {
        return (Outcome::Pass, None);
    }
    if missing.len() == required.len() {
        return (
            Outcome::UnexpectedPass,
            Some(format!("expected {} but found none", missing.join(", "))),
        );
    }
    if !missing.is_empty() {
        return (
            Outcome::Failure,
            Some(format!("expected {} too", missing.join(", "))),
        );
    }
    if !missing_titles.is_empty() {
        return (
            Outcome::Failure,
            Some(format!(
                "expected console report {missing_titles:?}; found {titles:?}"
            )),
        );
    }
    (Outcome::ExpectedFailure, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use VerdictKind::*;

    fn e(v: &[&str], may: &[&str]) -> Expectation {
        Expectation {
            verdicts: v.iter().map(|s| s.to_string()).collect(),
            may: may.iter().map(|s| s.to_string()).collect(),
            ..Expectation::default()
        }
    }

    #[test]
    fn outcomes() {
        let clean = e(&[], &["unstable_write"]);
        assert_eq!(compare(&clean, &[], &[]).0, Outcome::Pass);
        assert_eq!(compare(&clean, &[UnstableWrite], &[]).0, Outcome::Pass);
        assert_eq!(compare(&clean, &[LostWrite], &[]).0, Outcome::Failure);
        let bad = e(&["lost_write", "kernel_warning"], &[]);
        assert_eq!(
            compare(&bad, &[KernelWarning, LostWrite], &[]).0,
            Outcome::ExpectedFailure
        );
        assert_eq!(compare(&bad, &[], &[]).0, Outcome::UnexpectedPass);
        let (o, why) = compare(&bad, &[LostWrite], &[]);
        assert_eq!(o, Outcome::Failure);
        assert!(why.unwrap().contains("kernel_warning"));
        assert_eq!(
            compare(&bad, &[LostWrite, KernelWarning, TornBlock], &[]).0,
            Outcome::Failure
        );
        let mut titled = e(&["kernel_warning"], &[]);
        titled.titles = vec!["WARNING in ext4_dirty_folio".into()];
        assert_eq!(
            compare(&titled, &[KernelWarning], &["WARNING in foo".into()]).0,
            Outcome::Failure
        );
        assert_eq!(
            compare(
                &titled,
                &[KernelWarning],
                &["WARNING in ext4_dirty_folio".into()]
            )
            .0,
            Outcome::ExpectedFailure
        );
    }

    #[test]
    fn keys_and_lookup() {
        for k in ["default", "ext4", "6.1", "6.12.btrfs"] {
            check_key(k).unwrap();
        }
        for k in ["6.2", "ext3", "6.12.ext3", "6.12btrfs"] {
            assert!(check_key(k).is_err(), "{k}");
        }
        let mut m = BTreeMap::new();
        m.insert("default".to_string(), e(&[], &[]));
        m.insert("btrfs".to_string(), e(&["fs_error"], &[]));
        m.insert("6.12.btrfs".to_string(), e(&["lost_write"], &[]));
        assert_eq!(
            lookup(&m, "6.12", "btrfs").unwrap().verdicts,
            ["lost_write"]
        );
        assert_eq!(lookup(&m, "6.1", "btrfs").unwrap().verdicts, ["fs_error"]);
        assert!(lookup(&m, "6.1", "ext4").unwrap().verdicts.is_empty());
    }

    #[test]
    fn unknown_verdicts_and_lonely_findings_are_errors() {
        assert!(e(&["torn"], &[]).validate().is_err());
        let mut x = e(&[], &[]);
        x.predicted = Some(vec!["lost_write".into()]);
        assert!(x.validate().is_err());
        x.finding = Some("measured clean: ...".into());
        x.validate().unwrap();
    }
}
