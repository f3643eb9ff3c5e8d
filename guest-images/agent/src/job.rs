//! The job the host packed into the initramfs: /pinvm/argv and /pinvm/env.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStringExt;

pub const ARGV_PATH: &str = "/pinvm/argv";
pub const ENV_PATH: &str = "/pinvm/env";

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

/// Reads and parses /pinvm/argv and /pinvm/env.
pub fn read() -> Result<Job, String> {
    let argv = read_small(ARGV_PATH).map_err(|e| format!("cannot read {ARGV_PATH}: {e}"))?;
    let env = match read_small(ENV_PATH) {
        Ok(v) => Some(v),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            say!("cannot read {ENV_PATH}: {}", crate::describe(&e));
            None
        }
    };
    parse(&argv, env.as_deref())
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
    fn read_small_reads_everything() {
        let p = std::env::temp_dir().join(format!("pinvm-agent-test-{}", std::process::id()));
        let data: Vec<u8> = (0..10000u32).map(|i| i as u8).collect();
        std::fs::write(&p, &data).unwrap();
        assert_eq!(read_small(p.to_str().unwrap()).unwrap(), data);
        std::fs::remove_file(&p).unwrap();
    }
}
