//! The pseudo filesystems /init mounts before anything else.

use crate::sys;
use std::ffi::{CStr, CString};
use std::io;

const MOUNTS: [(&CStr, &CStr, &CStr); 3] = [
    (c"proc", c"/proc", c"proc"),
    (c"sysfs", c"/sys", c"sysfs"),
    // The initramfs already holds /dev/console, /dev/null and /dev/mem; devtmpfs on top of them
    // is fine (its own nodes replace them). The kernel may have automounted it (EBUSY).
    (c"devtmpfs", c"/dev", c"devtmpfs"),
];

/// Mounts /proc (needed to read the command line), printing errors.
pub fn mount_proc() {
    mount(MOUNTS[0]);
}

/// Mounts /sys and /dev, printing errors.
pub fn mount_rest() {
    for m in &MOUNTS[1..] {
        mount(*m);
    }
}

fn mount((source, target, fstype): (&CStr, &CStr, &CStr)) {
    // devtmpfs holds device nodes, so no MS_NODEV/MS_NOEXEC there.
    let flags = if fstype == c"devtmpfs" {
        libc::MS_NOSUID
    } else {
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC
    };
    match sys::mount(source, target, fstype, flags, None) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
        Err(e) => report(target, e),
    }
}

fn report(target: &CStr, e: io::Error) {
    say!(
        "mount {}: {}",
        target.to_string_lossy(),
        crate::describe(&e)
    );
}

/// The job's mount table, `/pinvm/mounts` (docs/control-protocol.md "Mounts").
pub const MOUNTS_PATH: &str = "/pinvm/mounts";

/// One line of /pinvm/mounts: `DEVICE MOUNTPOINT FSTYPE [OPTIONS]`.
#[derive(Debug, PartialEq, Eq)]
pub struct JobMount {
    pub device: String,
    pub target: String,
    pub fstype: String,
    /// MS_* flags taken from OPTIONS (the words mount(8) also turns into flags).
    pub flags: libc::c_ulong,
    /// The other OPTIONS words, comma-separated: the filesystem's mount data.
    pub data: Option<String>,
}

/// OPTIONS words that are mount flags rather than filesystem data, as mount(8) treats them.
const FLAG_WORDS: [(&str, libc::c_ulong); 11] = [
    ("ro", libc::MS_RDONLY),
    ("rw", 0),
    ("nosuid", libc::MS_NOSUID),
    ("nodev", libc::MS_NODEV),
    ("noexec", libc::MS_NOEXEC),
    ("sync", libc::MS_SYNCHRONOUS),
    ("dirsync", libc::MS_DIRSYNC),
    ("noatime", libc::MS_NOATIME),
    ("nodiratime", libc::MS_NODIRATIME),
    ("relatime", libc::MS_RELATIME),
    ("lazytime", libc::MS_LAZYTIME),
];

/// Parses /pinvm/mounts. Blank lines and `#` comments (from a word starting with `#` to the
/// end of the line) are skipped. Errors name the line.
pub fn parse_mounts(text: &str) -> Result<Vec<JobMount>, String> {
    let mut mounts = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let words: Vec<&str> = line
            .split_ascii_whitespace()
            .take_while(|w| !w.starts_with('#'))
            .collect();
        let err = |what: &str| format!("{MOUNTS_PATH} line {}: {what}", n + 1);
        let (device, target, fstype, options) = match words[..] {
            [] => continue,
            [d, t, f] => (d, t, f, "-"),
            [d, t, f, o] => (d, t, f, o),
            _ => {
                return Err(err(&format!(
                    "expected DEVICE MOUNTPOINT FSTYPE [OPTIONS], found {} words",
                    words.len()
                )))
            }
        };
        if !target.starts_with('/') {
            return Err(err(&format!(
                "mount point {target:?} is not an absolute path"
            )));
        }
        let mut flags = 0;
        let mut data = Vec::new();
        if options != "-" {
            for o in options.split(',') {
                match FLAG_WORDS.iter().find(|(w, _)| *w == o) {
                    Some((_, f)) => flags |= f,
                    None if o.is_empty() => return Err(err("empty word in OPTIONS")),
                    None => data.push(o),
                }
            }
        }
        mounts.push(JobMount {
            device: device.to_string(),
            target: target.to_string(),
            fstype: fstype.to_string(),
            flags,
            data: (!data.is_empty()).then(|| data.join(",")),
        });
    }
    Ok(mounts)
}

/// Creates the mount point if missing and mounts `m`. On failure returns the errno and a
/// message such as `mount /dev/vda on /mnt (xfs): Invalid argument`.
pub fn mount_job(m: &JobMount) -> Result<(), (u32, String)> {
    let fail =
        |what: String, e: &io::Error| (crate::errno(e), format!("{what}: {}", crate::describe(e)));
    let what = || format!("mount {} on {} ({})", m.device, m.target, m.fstype);
    std::fs::create_dir_all(&m.target).map_err(|e| fail(format!("mkdir {}", m.target), &e))?;
    let cstr = |s: &str| {
        CString::new(s).map_err(|_| {
            (
                libc::EINVAL as u32,
                format!("{}: NUL byte in {s:?}", what()),
            )
        })
    };
    let data = m.data.as_deref().map(cstr).transpose()?;
    sys::mount(
        &cstr(&m.device)?,
        &cstr(&m.target)?,
        &cstr(&m.fstype)?,
        m.flags,
        data.as_deref(),
    )
    .map_err(|e| fail(what(), &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_lines() {
        let m = parse_mounts(
            "# disk under test\n\n/dev/vda /mnt xfs\n  /dev/vdb /mnt/b ext4 ro,noatime,data=ordered,discard # c\n/dev/vdc /c btrfs -\n",
        )
        .unwrap();
        assert_eq!(
            m,
            vec![
                JobMount {
                    device: "/dev/vda".into(),
                    target: "/mnt".into(),
                    fstype: "xfs".into(),
                    flags: 0,
                    data: None
                },
                JobMount {
                    device: "/dev/vdb".into(),
                    target: "/mnt/b".into(),
                    fstype: "ext4".into(),
                    flags: libc::MS_RDONLY | libc::MS_NOATIME,
                    data: Some("data=ordered,discard".into())
                },
                JobMount {
                    device: "/dev/vdc".into(),
                    target: "/c".into(),
                    fstype: "btrfs".into(),
                    flags: 0,
                    data: None
                },
            ]
        );
        assert_eq!(parse_mounts("").unwrap(), vec![]);
        assert_eq!(parse_mounts("/dev/vda /mnt ext4 rw").unwrap()[0].data, None);
    }

    #[test]
    fn bad_mount_lines() {
        let e = parse_mounts("/dev/vda /mnt xfs\n/dev/vdb /b\n").unwrap_err();
        assert_eq!(
            e,
            "/pinvm/mounts line 2: expected DEVICE MOUNTPOINT FSTYPE [OPTIONS], found 2 words"
        );
        let e = parse_mounts("/dev/vda /mnt xfs a b").unwrap_err();
        assert!(e.contains("line 1") && e.contains("found 5 words"), "{e}");
        let e = parse_mounts("\n\n/dev/vda mnt xfs").unwrap_err();
        assert_eq!(
            e,
            "/pinvm/mounts line 3: mount point \"mnt\" is not an absolute path"
        );
        let e = parse_mounts("/dev/vda /mnt xfs ro,,x").unwrap_err();
        assert_eq!(e, "/pinvm/mounts line 1: empty word in OPTIONS");
    }

    #[test]
    fn mount_failure_message() {
        // Not root or no such device: either way mount fails and the message says what.
        let dir = std::env::temp_dir().join(format!("pinvm-agent-mnt-{}", std::process::id()));
        let m = JobMount {
            device: "/nonexistent/pinvm-dev".into(),
            target: dir.to_str().unwrap().into(),
            fstype: "pinvm-nofs".into(),
            flags: 0,
            data: Some("x=1".into()),
        };
        let (errno, msg) = mount_job(&m).unwrap_err();
        assert!(errno != 0);
        assert!(
            msg.starts_with(&format!(
                "mount /nonexistent/pinvm-dev on {} (pinvm-nofs): ",
                dir.display()
            )),
            "{msg}"
        );
        assert!(dir.is_dir(), "the mount point was created");
        std::fs::remove_dir(&dir).unwrap();
    }
}
