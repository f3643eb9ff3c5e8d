//! Odds and ends: `drop_caches N`, `sleep MS`, `sysctl KEY VALUE`, `sysfs PATH VALUE`.

use super::args;
use super::{Action, Ctx, OpDef, StepError};
use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

pub const OPS: &[OpDef] = &[
    OpDef {
        name: "drop_caches",
        usage: "drop_caches N (1 page cache, 2 dentries and inodes, 3 both)",
        parse: |a| {
            let [n] = args::count(a)?;
            match args::number(n, "value")? {
                n @ 1..=3 => Ok(Box::new(DropCaches(n as u8))),
                _ => Err(format!("bad value {n:?}: expected 1, 2 or 3")),
            }
        },
    },
    OpDef {
        name: "sleep",
        usage: "sleep MS",
        parse: |a| {
            let [ms] = args::count(a)?;
            Ok(Box::new(Sleep(args::number(ms, "duration")?)))
        },
    },
    OpDef {
        name: "sysctl",
        usage: "sysctl KEY VALUE (KEY such as vm.dirty_writeback_centisecs)",
        parse: |a| {
            let [key, value] = args::count(a)?;
            let ok = !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.".contains(&b))
                && key.split('.').all(|part| !part.is_empty());
            if !ok {
                return Err(format!(
                    "bad key {key:?}: expected dot-separated words of a-z, 0-9 and '_'"
                ));
            }
            Ok(Box::new(WriteValue {
                path: format!("/proc/sys/{}", key.replace('.', "/")),
                value: value.to_string(),
            }))
        },
    },
    OpDef {
        name: "sysfs",
        usage: "sysfs PATH VALUE (PATH under /sys/)",
        parse: |a| {
            let [path, value] = args::count(a)?;
            if !path.starts_with("/sys/") || path.split('/').any(|c| c == "..") {
                return Err(format!(
                    "bad path {path:?}: expected a path under /sys/ (without ..)"
                ));
            }
            Ok(Box::new(WriteValue {
                path: path.to_string(),
                value: value.to_string(),
            }))
        },
    },
];

const DROP_CACHES: &str = "/proc/sys/vm/drop_caches";

#[derive(Debug)]
struct DropCaches(u8);

impl Action for DropCaches {
    fn run(&self, _cx: &mut Ctx) -> Result<String, StepError> {
        let mut f = OpenOptions::new()
            .write(true)
            .open(DROP_CACHES)
            .map_err(|e| StepError::io(format_args!("open {DROP_CACHES}"), &e))?;
        f.write_all(format!("{}\n", self.0).as_bytes())
            .map_err(|e| StepError::io(format_args!("write {DROP_CACHES}"), &e))?;
        Ok(String::new())
    }
}

/// Writes `VALUE\n` to a /proc/sys or /sys file in one write() (`sysctl`, `sysfs`).
#[derive(Debug)]
struct WriteValue {
    path: String,
    value: String,
}

impl Action for WriteValue {
    fn run(&self, _cx: &mut Ctx) -> Result<String, StepError> {
        let path = &self.path;
        let mut f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| StepError::io(format_args!("open {path}"), &e))?;
        f.write_all(format!("{}\n", self.value).as_bytes())
            .map_err(|e| StepError::io(format_args!("write {:?} to {path}", self.value), &e))?;
        Ok(String::new())
    }
}

#[derive(Debug)]
struct Sleep(u64);

impl Action for Sleep {
    fn run(&self, _cx: &mut Ctx) -> Result<String, StepError> {
        std::thread::sleep(Duration::from_millis(self.0));
        Ok(String::new())
    }
}
