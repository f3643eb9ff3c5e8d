//! Spawning the command and waiting for it as PID 1 (which also reaps orphans).

use crate::job::Job;
use crate::sys;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Base environment of the command; /pinvm/env entries are added after (and override) these.
pub const BASE_ENV: [(&str, &str); 3] = [
    ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    ("HOME", "/root"),
    ("TERM", "linux"),
];

/// Starts the command with stdio inherited from init (the console) and cwd `/` (init's cwd).
/// Returns its pid.
///
/// The program is looked up in the command's PATH here rather than by std: with a changed PATH
/// std would fork+execvp, while an absolute path lets it use posix_spawn (a vfork-style clone
/// that copies no page tables; in the guest every page fault and syscall is expensive).
pub fn spawn(job: &Job) -> io::Result<u32> {
    let path = job
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_os_str())
        .unwrap_or(OsStr::new(BASE_ENV[0].1));
    let program = match resolve(&job.argv[0], path, probe) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => busybox_applet(&job.argv[0]).ok_or(e)?,
        found => found?,
    };
    let mut cmd = Command::new(program);
    cmd.arg0(&job.argv[0])
        .args(&job.argv[1..])
        .env_clear()
        .envs(BASE_ENV)
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    // The Child handle is dropped without waiting: we reap with waitpid(-1) ourselves.
    cmd.spawn().map(|child| child.id())
}

/// The initramfs links only a few busybox applets (each archive entry costs boot time); any
/// other bare command name runs as busybox with that name as argv[0], which is what a link
/// would do. Busybox itself reports an unknown applet ("applet not found", status 127).
pub const BUSYBOX: &str = "/bin/busybox";

fn busybox_applet(prog: &OsStr) -> Option<PathBuf> {
    let bare = !prog.is_empty() && !prog.as_bytes().contains(&b'/');
    (bare && probe(Path::new(BUSYBOX)) == Probe::Executable).then(|| PathBuf::from(BUSYBOX))
}

/// What a PATH candidate is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    Executable,
    /// Exists but cannot be executed (directory, no x bit): exec would fail with EACCES.
    NotExecutable,
    Missing,
}

fn probe(p: &Path) -> Probe {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Probe::Executable,
        Ok(_) => Probe::NotExecutable,
        Err(_) => Probe::Missing,
    }
}

/// Finds `prog` like execvp: names containing '/' are used as they are; otherwise the first
/// executable `dir/prog` of `path` (an empty entry means the current directory). A candidate
/// that exists but is not executable is returned when nothing better is found, so that the
/// exec fails with EACCES (126) rather than ENOENT (127).
pub fn resolve(prog: &OsStr, path: &OsStr, probe: impl Fn(&Path) -> Probe) -> io::Result<PathBuf> {
    let bytes = prog.as_bytes();
    if bytes.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    if bytes.contains(&b'/') {
        return Ok(PathBuf::from(prog));
    }
    let mut fallback = None;
    for dir in path.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() { b".".as_slice() } else { dir };
        let candidate = Path::new(OsStr::from_bytes(dir)).join(prog);
        match probe(&candidate) {
            Probe::Executable => return Ok(candidate),
            Probe::NotExecutable if fallback.is_none() => fallback = Some(candidate),
            _ => {}
        }
    }
    fallback.ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
}

/// Exit status of a spawn failure, as a shell reports it: 127 when the program was not
/// found, 126 when it could not be executed for another reason.
pub fn spawn_error_status(e: &io::Error) -> u32 {
    if e.kind() == io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

/// Maps a raw wait status to the shell convention: exit code, or 128+signal.
pub fn status_code(raw: i32) -> u32 {
    if libc::WIFEXITED(raw) {
        libc::WEXITSTATUS(raw) as u32
    } else if libc::WIFSIGNALED(raw) {
        128 + libc::WTERMSIG(raw) as u32
    } else {
        // Stopped/continued are not reported without WUNTRACED; keep something recognisable.
        255
    }
}

/// Waits until `pid` terminates, reaping every other child (orphans re-parented to init) on
/// the way. Returns the raw wait status of `pid`.
pub fn wait_for(pid: u32) -> io::Result<i32> {
    loop {
        match sys::wait_any() {
            Ok((p, status)) if p as u32 == pid => return Ok(status),
            Ok(_) => {} // an orphan: reaped, keep waiting
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Raw statuses as the kernel encodes them: exit code in bits 8..15, signal in bits 0..6.
    #[test]
    fn wait_status_mapping() {
        assert_eq!(status_code(0), 0);
        assert_eq!(status_code(1 << 8), 1);
        assert_eq!(status_code(255 << 8), 255);
        assert_eq!(status_code(libc::SIGKILL), 137);
        assert_eq!(status_code(libc::SIGSEGV | 0x80), 139); // core dumped
        assert_eq!(status_code(libc::SIGTERM), 143);
        assert_eq!(status_code(0x137f), 255); // stopped by SIGSTOP
    }

    #[test]
    fn path_lookup() {
        let fs = |p: &Path| match p.to_str().unwrap() {
            "/bin/sh" | "/usr/bin/sh" | "./local" => Probe::Executable,
            "/sbin/sh" | "/usr/bin/noexec" | "/bin/dir" => Probe::NotExecutable,
            _ => Probe::Missing,
        };
        let r = |prog: &str, path: &str| resolve(OsStr::new(prog), OsStr::new(path), fs);
        let path = "/usr/sbin:/usr/bin:/sbin:/bin";
        assert_eq!(r("sh", path).unwrap(), Path::new("/usr/bin/sh"));
        assert_eq!(r("sh", "/sbin:/bin").unwrap(), Path::new("/bin/sh"));
        assert_eq!(r("sh", "/sbin").unwrap(), Path::new("/sbin/sh"));
        assert_eq!(r("noexec", path).unwrap(), Path::new("/usr/bin/noexec"));
        assert_eq!(r("local", "/x::/y").unwrap(), Path::new("./local"));
        assert_eq!(r("/abs/prog", path).unwrap(), Path::new("/abs/prog"));
        assert_eq!(r("rel/prog", path).unwrap(), Path::new("rel/prog"));
        assert_eq!(
            r("missing", path).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
        assert_eq!(r("", path).unwrap_err().raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn spawn_errors() {
        let nf = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(spawn_error_status(&nf), 127);
        let perm = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(spawn_error_status(&perm), 126);
    }

    #[test]
    fn spawn_and_wait() {
        let job = Job {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "test \"$PINVM_T\" = ok && exit 7".into(),
            ],
            env: vec![("PINVM_T".into(), "ok".into())],
        };
        let pid = spawn(&job).unwrap();
        // In the test process other children may exist (other tests); wait_for only returns
        // for our pid, and tests in this module do not run other children concurrently.
        let raw = wait_for(pid).unwrap();
        assert_eq!(status_code(raw), 7);

        let job = Job {
            argv: vec!["/nonexistent/pinvm-x".into()],
            env: vec![],
        };
        let e = spawn(&job).unwrap_err();
        assert_eq!(spawn_error_status(&e), 127);
        let job = Job {
            argv: vec!["pinvm-no-such-program".into()],
            env: vec![],
        };
        // A bare name not in PATH falls back to busybox (when there is one), which reports
        // an unknown applet with 127 too.
        match spawn(&job) {
            Ok(pid) => {
                assert!(Path::new(BUSYBOX).exists());
                assert_eq!(status_code(wait_for(pid).unwrap()), 127);
            }
            Err(e) => assert_eq!(spawn_error_status(&e), 127),
        }
        let job = Job {
            argv: vec!["/".into()],
            env: vec![],
        };
        let e = spawn(&job).unwrap_err();
        assert_eq!(spawn_error_status(&e), 126);
    }
}
