//! The job the host packed into the initramfs: /pinvm/argv and /pinvm/env (the command), and
//! the optional /pinvm/mounts, /pinvm/steps and /pinvm/options.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStringExt;

use crate::mounts::{parse_mounts, JobMount, MOUNTS_PATH};
use crate::steps::{self, Step, STEPS_PATH};

pub const ARGV_PATH: &str = "/pinvm/argv";
pub const ENV_PATH: &str = "/pinvm/env";
pub const OPTIONS_PATH: &str = "/pinvm/options";

/// The command to run.
#[derive(Debug, PartialEq, Eq)]
pub struct Job {
    pub argv: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
}

/// Reads a small file with as few syscalls as possible (open, read until EOF, close; no stat).
pub fn read_small(path: &str) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// Splits NUL-terminated entries. A missing NUL after the last entry is tolerated; empty entries
/// in the middle are kept (an empty argument is legal).
pub fn split_nul(data: &[u8]) -> Vec<Vec<u8>> {
    let data = data.strip_suffix(b"\0").unwrap_or(data);
    if data.is_empty() {
        return Vec::new();
    }
    data.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

/// Parses `KEY=VALUE\0` entries. Entries without `=` or with an empty key are returned as
/// errors (for a warning) and skipped.
pub fn parse_env(data: &[u8]) -> (Vec<(OsString, OsString)>, Vec<String>) {
    let mut vars = Vec::new();
    let mut bad = Vec::new();
    for entry in split_nul(data) {
        match entry.iter().position(|&b| b == b'=') {
            Some(i) if i > 0 => {
                let value = entry[i + 1..].to_vec();
                let mut key = entry;
                key.truncate(i);
                vars.push((OsString::from_vec(key), OsString::from_vec(value)));
            }
            _ => bad.push(String::from_utf8_lossy(&entry).into_owned()),
        }
    }
    (vars, bad)
}

/// Builds the job from the raw file contents (`env` is None when /pinvm/env is absent).
pub fn parse(argv: &[u8], env: Option<&[u8]>) -> Result<Job, String> {
    let argv: Vec<OsString> = split_nul(argv)
        .into_iter()
        .map(OsString::from_vec)
        .collect();
    if argv.is_empty() || argv[0].is_empty() {
        return Err(format!("{ARGV_PATH} is empty: no command to run"));
    }
    let (env, bad) = parse_env(env.unwrap_or_default());
    for b in bad {
        say!("ignoring malformed {ENV_PATH} entry {b:?}");
    }
    Ok(Job { argv, env })
}

/// Everything the agent is asked to do, in order: mounts, steps, command.
#[derive(Debug)]
pub struct Plan {
    pub mounts: Vec<JobMount>,
    pub steps: Vec<Step>,
    /// None when there are steps and /pinvm/argv is missing or empty.
    pub command: Option<Job>,
    /// `verbose` in /pinvm/options: print each step's line on the console.
    pub verbose: bool,
    /// `keep_going` in /pinvm/options: run every step even after one failed.
    pub keep_going: bool,
}

/// Why there is no plan.
#[derive(Debug, PartialEq, Eq)]
pub enum PlanError {
    /// No steps and no usable command (as before steps existed: AGENT_ERROR only).
    NoCommand(String),
    /// /pinvm/mounts, /pinvm/steps or /pinvm/options is unreadable or malformed (AGENT_ERROR,
    /// then CMD_DONE with status 125: nothing was tested).
    Invalid(String),
}

/// Reads the job files. The optional files are parsed completely before anything runs.
pub fn read_plan() -> Result<Plan, PlanError> {
    let optional = |path| read_optional(path).map_err(PlanError::Invalid);
    let steps = optional(STEPS_PATH)?;
    let mounts = optional(MOUNTS_PATH)?;
    let options = optional(OPTIONS_PATH)?;
    let argv = match read_small(ARGV_PATH) {
        Ok(v) => Ok(v),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("cannot read {ARGV_PATH}: {e}")),
    };
    let env = match read_small(ENV_PATH) {
        Ok(v) => Some(v),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            say!("cannot read {ENV_PATH}: {}", crate::describe(&e));
            None
        }
    };
    plan(
        steps.as_deref(),
        mounts.as_deref(),
        options.as_deref(),
        argv,
        env.as_deref(),
    )
}

/// Builds the plan from the raw job files (None: file absent; `argv` Err: unreadable).
pub fn plan(
    steps: Option<&[u8]>,
    mounts: Option<&[u8]>,
    options: Option<&[u8]>,
    argv: Result<Vec<u8>, String>,
    env: Option<&[u8]>,
) -> Result<Plan, PlanError> {
    let steps = steps::parse(text(STEPS_PATH, steps)?).map_err(PlanError::Invalid)?;
    let mounts = parse_mounts(text(MOUNTS_PATH, mounts)?).map_err(PlanError::Invalid)?;
    let (mut verbose, mut keep_going) = (false, false);
    for word in text(OPTIONS_PATH, options)?.split_ascii_whitespace() {
        match word {
            "verbose" => verbose = true,
            "keep_going" => keep_going = true,
            _ => say!("ignoring unknown option {word:?} in {OPTIONS_PATH}"),
        }
    }
    let command = match argv {
        Ok(a) if split_nul(&a).is_empty() && !steps.is_empty() => None,
        Ok(a) => Some(parse(&a, env).map_err(PlanError::NoCommand)?),
        Err(_) if !steps.is_empty() => None,
        Err(msg) => return Err(PlanError::NoCommand(msg)),
    };
    Ok(Plan {
        mounts,
        steps,
        command,
        verbose,
        keep_going,
    })
}

/// The contents of a text job file ("" when absent).
fn text<'a>(path: &str, data: Option<&'a [u8]>) -> Result<&'a str, PlanError> {
    match data {
        None => Ok(""),
        Some(d) => std::str::from_utf8(d)
            .map_err(|e| PlanError::Invalid(format!("{path} is not UTF-8 text: {e}"))),
    }
}

/// Reads an optional job file: None when it does not exist.
fn read_optional(path: &str) -> Result<Option<Vec<u8>>, String> {
    match read_small(path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {path}: {}", crate::describe(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> OsString {
        s.into()
    }

    #[test]
    fn nul_split() {
        assert_eq!(split_nul(b""), Vec::<Vec<u8>>::new());
        assert_eq!(split_nul(b"\0"), Vec::<Vec<u8>>::new());
        assert_eq!(split_nul(b"a\0"), vec![b"a".to_vec()]);
        assert_eq!(split_nul(b"a"), vec![b"a".to_vec()]);
        assert_eq!(
            split_nul(b"ls\0\0-l\0"),
            vec![b"ls".to_vec(), b"".to_vec(), b"-l".to_vec()]
        );
    }

    #[test]
    fn argv_and_env() {
        let job = parse(b"/bin/sh\0-c\0echo hi\0", Some(b"A=1\0B=x=y\0C=\0")).unwrap();
        assert_eq!(job.argv, vec![os("/bin/sh"), os("-c"), os("echo hi")]);
        assert_eq!(
            job.env,
            vec![(os("A"), os("1")), (os("B"), os("x=y")), (os("C"), os(""))]
        );
        let job = parse(b"true\0", None).unwrap();
        assert_eq!(job.argv, vec![os("true")]);
        assert!(job.env.is_empty());
    }

    #[test]
    fn bad_input() {
        assert!(parse(b"", None).is_err());
        assert!(parse(b"\0", None).is_err());
        assert!(parse(b"\0x\0", None).is_err());
        let (vars, bad) = parse_env(b"NOEQ\0=v\0K=v\0");
        assert_eq!(vars, vec![(os("K"), os("v"))]);
        assert_eq!(bad, vec!["NOEQ".to_string(), "=v".to_string()]);
    }

    #[test]
    fn non_utf8_kept() {
        let job = parse(b"a\xff\0", Some(b"K=\xfe\0")).unwrap();
        assert_eq!(job.argv[0].clone().into_vec(), b"a\xff");
        assert_eq!(job.env[0].1.clone().into_vec(), b"\xfe");
    }

    #[test]
    fn plans() {
        let steps = b"write /mnt/f 4K byte:0x5a\nfsync /mnt/f\n".as_slice();
        let argv = |a: &[u8]| Ok(a.to_vec());
        // Command only, as before.
        let p = plan(None, None, None, argv(b"true\0"), None).unwrap();
        assert_eq!(p.command.unwrap().argv, vec![os("true")]);
        assert!(p.steps.is_empty() && p.mounts.is_empty() && !p.verbose);
        // Steps make argv optional: missing, empty or just a NUL.
        for a in [
            Err("cannot read /pinvm/argv: gone".to_string()),
            argv(b""),
            argv(b"\0"),
        ] {
            let p = plan(Some(steps), None, None, a, None).unwrap();
            assert!(p.command.is_none());
            assert_eq!(p.steps.len(), 2);
        }
        // Steps, mounts, options and a command.
        let p = plan(
            Some(steps),
            Some(b"/dev/vda /mnt xfs\n"),
            Some(b" verbose\n"),
            argv(b"sh\0-c\0ls /mnt\0"),
            Some(b"A=1\0"),
        )
        .unwrap();
        assert_eq!(p.mounts.len(), 1);
        assert!(p.verbose && !p.keep_going);
        assert_eq!(p.steps[1].op, "fsync");
        assert_eq!(p.command.unwrap().env, vec![(os("A"), os("1"))]);
        let p = plan(
            Some(b"sync\n"),
            None,
            Some(b"keep_going verbose"),
            Ok(Vec::new()),
            None,
        )
        .unwrap();
        assert!(p.verbose && p.keep_going);
        // Neither steps nor command: the old error.
        assert_eq!(
            plan(None, None, None, argv(b""), None).unwrap_err(),
            PlanError::NoCommand("/pinvm/argv is empty: no command to run".into())
        );
        assert!(matches!(
            plan(Some(b"# nothing\n"), None, None, Err("cannot read".into()), None),
            Err(PlanError::NoCommand(m)) if m == "cannot read"
        ));
        // Malformed optional files.
        assert_eq!(
            plan(
                Some(b"sync\nfrobnicate x\n"),
                None,
                None,
                argv(b"true\0"),
                None
            )
            .unwrap_err(),
            PlanError::Invalid("/pinvm/steps line 2: unknown op \"frobnicate\"".into())
        );
        assert!(matches!(
            plan(None, Some(b"/dev/vda\n"), None, argv(b"true\0"), None),
            Err(PlanError::Invalid(m)) if m.starts_with("/pinvm/mounts line 1: ")
        ));
        assert!(matches!(
            plan(Some(b"sync \xff\n"), None, None, argv(b"true\0"), None),
            Err(PlanError::Invalid(m)) if m.starts_with("/pinvm/steps is not UTF-8 text")
        ));
    }

    #[test]
    fn read_small_reads_everything() {
        let p = std::env::temp_dir().join(format!("pinvm-agent-test-{}", std::process::id()));
        let data: Vec<u8> = (0..10000u32).map(|i| i as u8).collect();
        std::fs::write(&p, &data).unwrap();
        assert_eq!(read_small(p.to_str().unwrap()).unwrap(), data);
        std::fs::remove_file(&p).unwrap();
    }
}
