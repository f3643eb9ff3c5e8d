//! `HOST[:GUEST]` arguments and the rules for guest paths.

use anyhow::{bail, Result};
use std::path::PathBuf;

/// Which option an argument came from: it sets the default guest path and the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// `--put HOST[:GUEST]`: default `/put/<basename of HOST>`.
    Put,
    /// `--share DIR[:GUEST]`: default `/share`.
    Share,
}

impl PathKind {
    /// The option's name with its dashes.
    pub fn option(self) -> &'static str {
        match self {
            PathKind::Put => "--put",
            PathKind::Share => "--share",
        }
    }
}

/// A host path and where it appears in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPath {
    /// The host file or directory.
    pub host: PathBuf,
    /// The guest path: absolute, normalised (no `.`, `..`, empty components or trailing `/`).
    pub guest: String,
}

/// Guest paths pinvm's own files live at (or that the kernel provides): nothing may be put
/// at or under them, and no share mounted there.
pub const RESERVED: [&str; 6] = ["/init", "/pinvm", "/tools", "/dev", "/proc", "/sys"];

/// Paths of the base initramfs that may hold user files below them but must not be replaced.
pub const BASE_ENTRIES: [&str; 9] = [
    "/tmp",
    "/mnt",
    "/root",
    "/bin",
    "/usr",
    "/usr/bin",
    "/bin/busybox",
    "/bin/sh",
    "/usr/bin/env",
];

/// Longest guest path accepted (the kernel's PATH_MAX is 4096; cpio names are bounded too).
const MAX_GUEST_PATH: usize = 1024;

impl HostPath {
    /// Parses `HOST[:GUEST]`. The argument is split at its last `:` when what follows starts
    /// with `/` (so a host path may contain colons when GUEST is given); otherwise it is all
    /// HOST. The host path must exist (checked now, before anything boots).
    pub fn parse(kind: PathKind, arg: &str) -> Result<HostPath> {
        let opt = kind.option();
        let (host, guest) = match arg.rsplit_once(':') {
            Some((h, g)) if g.starts_with('/') && !h.is_empty() => (h, Some(g)),
            _ => (arg, None),
        };
        if host.is_empty() {
            bail!("{opt} {arg:?}: the host path is empty");
        }
        let host = PathBuf::from(host);
        std::fs::symlink_metadata(&host)
            .map_err(|e| anyhow::anyhow!("{opt} {arg}: host path {}: {e}", host.display()))?;
        if kind == PathKind::Share && !std::fs::metadata(&host).is_ok_and(|m| m.is_dir()) {
            bail!("{opt} {arg}: {} is not a directory", host.display());
        }
        let guest = match guest {
            Some(g) => normalise(opt, g)?,
            None => match kind {
                PathKind::Share => "/share".to_string(),
                PathKind::Put => {
                    let name = std::fs::canonicalize(&host)
                        .ok()
                        .and_then(|p| p.file_name().map(|n| n.to_owned()))
                        .or_else(|| host.file_name().map(|n| n.to_owned()))
                        .ok_or_else(|| {
                            anyhow::anyhow!("{opt} {arg}: give a guest path (HOST:/GUEST)")
                        })?;
                    let name = name.to_str().ok_or_else(|| {
                        anyhow::anyhow!("{opt} {arg}: the name is not UTF-8; give HOST:/GUEST")
                    })?;
                    normalise(opt, &format!("/put/{name}"))?
                }
            },
        };
        check_not_reserved(opt, &guest)?;
        Ok(HostPath { host, guest })
    }
}

/// Checks that `guest` is absolute, one line, without `.`/`..`/empty components, and
/// returns it without a trailing `/`.
fn normalise(opt: &str, guest: &str) -> Result<String> {
    if !guest.starts_with('/') {
        bail!("{opt}: guest path {guest:?} must be absolute");
    }
    if guest.len() > MAX_GUEST_PATH {
        bail!("{opt}: guest path is longer than {MAX_GUEST_PATH} bytes");
    }
    if guest.contains(['\0', '\n']) || guest.contains(char::is_whitespace) {
        bail!("{opt}: guest path {guest:?} must not contain whitespace or NUL");
    }
    let trimmed = guest.trim_end_matches('/');
    if trimmed.is_empty() {
        bail!("{opt}: guest path {guest:?} is the root directory; name a path below it");
    }
    for c in trimmed[1..].split('/') {
        match c {
            "" => bail!("{opt}: guest path {guest:?} has an empty component"),
            "." | ".." => bail!("{opt}: guest path {guest:?} must not contain '.' or '..'"),
            _ => {}
        }
    }
    Ok(trimmed.to_string())
}

/// Whether `path` is `dir` or below it (both normalised).
pub fn is_within(path: &str, dir: &str) -> bool {
    path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

fn check_not_reserved(opt: &str, guest: &str) -> Result<()> {
    if let Some(r) = RESERVED.iter().find(|r| is_within(guest, r)) {
        bail!("{opt}: guest path {guest} is inside {r}, which pinvm or the kernel owns; choose another (e.g. /put/...)");
    }
    if BASE_ENTRIES.contains(&guest) {
        bail!("{opt}: guest path {guest} would replace pinvm's own {guest}; put files below it or elsewhere");
    }
    Ok(())
}

/// Checks a run's puts and shares together: no two shares at or inside each other, no put
/// at or below a share's mount point, and with a `--disk` nothing put below `/mnt` (where
/// the disk is mounted, hiding it) or a share mounted at `/mnt` itself.
pub fn check_together(puts: &[HostPath], shares: &[HostPath], disk_at_mnt: bool) -> Result<()> {
    for (i, s) in shares.iter().enumerate() {
        for t in &shares[i + 1..] {
            if is_within(&s.guest, &t.guest) || is_within(&t.guest, &s.guest) {
                bail!(
                    "--share: mount points {} and {} overlap; give each share its own directory",
                    s.guest,
                    t.guest
                );
            }
        }
        if let Some(p) = puts
            .iter()
            .find(|p| is_within(&p.guest, &s.guest) || is_within(&s.guest, &p.guest))
        {
            bail!("--put {} and --share at {} overlap (the mount would hide the file); use another guest path", p.guest, s.guest);
        }
    }
    if disk_at_mnt {
        if let Some(p) = puts.iter().find(|p| is_within(&p.guest, "/mnt")) {
            bail!("--put: {} is below /mnt, where --disk is mounted (it would be hidden); use another guest path", p.guest);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
