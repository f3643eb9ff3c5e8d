//! Two-thread stress ops on a named mapping (the agent is otherwise single-threaded):
//! `dio_read_race NAME SRC ROUNDS` (O_DIRECT reads into a shared file mapping racing with
//! writeback and reclaim of it) and `pvm_race NAME PATH MS` (process_vm_writev into a shared
//! file mapping racing with O_DIRECT writes to the same file).
//!
//! Each op runs one extra thread inside `std::thread::scope` (the mapping is borrowed from
//! [`Ctx`] for the whole race). Both threads stop at the first error either one sees; that
//! error (the earliest to be recorded) fails the step.

use super::args::{self, Pattern};
use super::mapping::MADVISE_CONFIG;
use super::{Action, AlignedBuf, Ctx, OpDef, StepError};
use crate::sys::{self, Mapping, PAGE_SIZE};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

pub const OPS: &[OpDef] = &[
    OpDef {
        name: "dio_read_race",
        usage: "dio_read_race NAME SRC ROUNDS (ROUNDS at least 1)",
        parse: |a| {
            let [name, src, rounds] = args::count(a)?;
            Ok(Box::new(DioReadRace {
                name: args::name(name)?,
                src: src.to_string(),
                rounds: rounds_arg(rounds)?,
            }))
        },
    },
    OpDef {
        name: "dio_write_from",
        usage: "dio_write_from NAME PATH ROUNDS (ROUNDS at least 1)",
        parse: |a| {
            let [name, path, rounds] = args::count(a)?;
            Ok(Box::new(DioWriteFrom {
                name: args::name(name)?,
                path: path.to_string(),
                rounds: rounds_arg(rounds)?,
            }))
        },
    },
    OpDef {
        name: "pvm_race",
        usage: "pvm_race NAME PATH MS",
        parse: |a| {
            let [name, path, ms] = args::count(a)?;
            Ok(Box::new(PvmRace {
                name: args::name(name)?,
                path: path.to_string(),
                ms: args::number(ms, "duration")?,
            }))
        },
    },
];

/// A ROUNDS argument: a decimal number, at least 1.
fn rounds_arg(s: &str) -> Result<u64, String> {
    match args::number(s, "rounds")? {
        0 => Err("bad rounds \"0\": expected at least 1".into()),
        n => Ok(n),
    }
}

/// Tag of the stamp pattern `pvm_race` writes through process_vm_writev.
pub const PVM_TAG: &str = "pvm";
/// Tag of the stamp pattern `pvm_race` writes with O_DIRECT pwrite().
pub const DIO_TAG: &str = "dio";

/// What the two threads of a race share: a stop flag and the first error.
struct Race {
    stop: AtomicBool,
    first: Mutex<Option<StepError>>,
}

impl Race {
    fn new() -> Race {
        Race {
            stop: AtomicBool::new(false),
            first: Mutex::new(None),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Tells both threads to stop.
    fn finish(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Records `e` unless an error was recorded already, and stops the race.
    fn fail(&self, e: StepError) {
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(e);
        self.finish();
    }

    fn result(self) -> Result<(), StepError> {
        match self.first.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Whether a failed call is simply retried (a signal or a transient shortage).
fn retry(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN))
}

/// Joins a race thread, passing its panic on (the panic hook reports it in the guest).
fn join<T>(h: thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// ROUNDS times, pwrite() the whole mapping NAME with O_DIRECT to PATH at offset 0: the
/// mapping is the direct write's user buffer (the research notes' S7, with the DMA device
/// rewriting the buffer while the write is in flight).
#[derive(Debug)]
struct DioWriteFrom {
    name: String,
    path: String,
    rounds: u64,
}

impl Action for DioWriteFrom {
    fn run(&self, cx: &mut Ctx) -> Result<String, StepError> {
        let DioWriteFrom { name, path, rounds } = self;
        let m = cx.map(name)?;
        let f = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .map_err(|e| StepError::io(format_args!("open {path} (O_DIRECT)"), &e))?;
        let mut bytes = 0u64;
        for round in 1..=*rounds {
            let n = m.pwrite_from(&f, 0).map_err(|e| {
                StepError::io(
                    format_args!("pwrite {path} (O_DIRECT) from {name} in round {round}"),
                    &e,
                )
            })?;
            bytes += n as u64;
        }
        Ok(format!("rounds={rounds} bytes={bytes}"))
    }
}

/// A second thread pread()s SRC (O_DIRECT) into the whole mapping ROUNDS times while the step's
/// thread loops sync() + madvise(MADV_PAGEOUT) over the mapping until it is done.
#[derive(Debug)]
struct DioReadRace {
    name: String,
    src: String,
    rounds: u64,
}

impl Action for DioReadRace {
    fn run(&self, cx: &mut Ctx) -> Result<String, StepError> {
        let DioReadRace { name, src, rounds } = self;
        let m = cx.map(name)?;
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(src)
            .map_err(|e| StepError::io(format_args!("open {src} (O_DIRECT)"), &e))?;
        let race = Race::new();
        let (done, pageouts) = thread::scope(|s| {
            let reader = s.spawn(|| dio_reader(&race, m, &f, name, src, *rounds));
            let mut pageouts = 0u64;
            loop {
                sys::sync();
                if let Err(e) = m.madvise(libc::MADV_PAGEOUT) {
                    let e = StepError::io(format_args!("madvise(MADV_PAGEOUT) {name}"), &e);
                    race.fail(e.enosys_needs(MADVISE_CONFIG));
                    break;
                }
                pageouts += 1;
                if race.stopped() {
                    break;
                }
            }
            (join(reader), pageouts)
        });
        race.result()?;
        Ok(format!("rounds={done} pageouts={pageouts}"))
    }
}

/// The reader thread of `dio_read_race`: returns the rounds completed.
fn dio_reader(race: &Race, m: &Mapping, f: &File, name: &str, src: &str, rounds: u64) -> u64 {
    let mut done = 0;
    while done < rounds && !race.stopped() {
        match m.pread_into(f, 0) {
            Ok(_) => done += 1,
            Err(e) if retry(&e) => {}
            Err(e) => {
                let what = format_args!("pread {src} (O_DIRECT) into {name} in round {}", done + 1);
                race.fail(StepError::io(what, &e));
                return done;
            }
        }
    }
    race.finish();
    done
}

/// For MS milliseconds a second thread process_vm_writev()s (to our own pid) the stamp pattern
/// `pvm` into each page of the mapping in turn, while the step's thread pwrite()s (O_DIRECT)
/// the stamp pattern `dio` to the same page offsets of PATH.
#[derive(Debug)]
struct PvmRace {
    name: String,
    path: String,
    ms: u64,
}

impl Action for PvmRace {
    fn run(&self, cx: &mut Ctx) -> Result<String, StepError> {
        let PvmRace { name, path, ms } = self;
        let m = cx.map(name)?;
        let f = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .map_err(|e| StepError::io(format_args!("open {path} (O_DIRECT)"), &e))?;
        let len = m.len();
        let mut pvm_data = vec![0u8; len];
        Pattern::Stamp(PVM_TAG.into()).fill(0, &mut pvm_data);
        let mut dio_data = AlignedBuf::new(len);
        Pattern::Stamp(DIO_TAG.into()).fill(0, dio_data.as_mut_slice());
        let dio_data = dio_data.as_slice();
        let deadline = Instant::now() + Duration::from_millis(*ms);
        let race = Race::new();
        let (pvm_writes, dio_writes) = thread::scope(|s| {
            let writer = s.spawn(|| pvm_writer(&race, m, &pvm_data, name, deadline));
            let n = dio_writer(&race, &f, dio_data, path, deadline);
            (join(writer), n)
        });
        race.result()?;
        Ok(format!("pvm_writes={pvm_writes} dio_writes={dio_writes}"))
    }
}

/// The O_DIRECT side of `pvm_race` (the step's own thread): returns the blocks written.
fn dio_writer(race: &Race, f: &File, data: &[u8], path: &str, deadline: Instant) -> u64 {
    let mut n = 0;
    let mut page = 0;
    while !race.stopped() && Instant::now() < deadline {
        let off = page * PAGE_SIZE;
        match f.write_at(&data[off..off + PAGE_SIZE], off as u64) {
            Ok(PAGE_SIZE) => n += 1,
            Ok(w) => race.fail(StepError::new(
                libc::EIO,
                format!(
                    "pwrite {path} (O_DIRECT) at offset {off}: wrote only {w} of {PAGE_SIZE} bytes"
                ),
            )),
            Err(e) if retry(&e) => continue,
            Err(e) => race.fail(StepError::io(
                format_args!("pwrite {path} (O_DIRECT) at offset {off}"),
                &e,
            )),
        }
        page = (page + 1) % (data.len() / PAGE_SIZE);
    }
    race.finish();
    n
}

/// The process_vm_writev thread of `pvm_race`: returns the pages written.
fn pvm_writer(race: &Race, m: &Mapping, data: &[u8], name: &str, deadline: Instant) -> u64 {
    let mut n = 0;
    let mut page = 0;
    while !race.stopped() && Instant::now() < deadline {
        let off = page * PAGE_SIZE;
        match m.process_vm_write(off, &data[off..off + PAGE_SIZE]) {
            Ok(PAGE_SIZE) => n += 1,
            Ok(w) => race.fail(StepError::new(
                libc::EIO,
                format!(
                    "process_vm_writev into {name} at offset {off}: wrote only {w} of \
                     {PAGE_SIZE} bytes"
                ),
            )),
            Err(e) if retry(&e) => continue,
            Err(e) => {
                let what = format_args!("process_vm_writev into {name} at offset {off}");
                race.fail(StepError::io(what, &e).enosys_needs("CONFIG_CROSS_MEMORY_ATTACH"))
            }
        }
        page = (page + 1) % (data.len() / PAGE_SIZE);
    }
    race.finish();
    n
}
