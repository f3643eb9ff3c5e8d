//! Odds and ends: `drop_caches N`, `sleep MS`.

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

#[derive(Debug)]
struct Sleep(u64);

impl Action for Sleep {
    fn run(&self, _cx: &mut Ctx) -> Result<String, StepError> {
        std::thread::sleep(Duration::from_millis(self.0));
        Ok(String::new())
    }
}
