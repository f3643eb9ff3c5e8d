//! pinvm-agent: `/init` of the pinvm guest initramfs.
//!
//! Sequence (docs/control-protocol.md): mount /proc, open the event channel (the control page
//! named by `pinvm.ctl=`, or the serial port named by `pinvm.serial=`) and report
//! AGENT_STARTED, mount /sys and /dev, read the job from /pinvm, mount the job's filesystems (/pinvm/mounts), run the job's steps in-process (/pinvm/steps,
//! one STEP event each), run the command while reaping orphans, report CMD_DONE with its
//! status, sync and reboot.
//!
//! PID 1 must never exit: every failure is printed to the console (`pinvm-agent: ...`) and,
//! when possible, reported as AGENT_ERROR; the agent always ends in reboot (or pause forever).
//! `main` is a plain C `main` (`no_main`): std's runtime start-up (stdio polling, SIGPIPE and
//! stack-guard set-up) costs syscalls, which are slow in the guest.
#![cfg_attr(not(test), no_main)]
// The host-side unit tests exercise the pure parts only; the sequence itself is unused there.
#![cfg_attr(test, allow(dead_code))]

/// Prints `pinvm-agent: <msg>` on the console with a single write (each console byte is slow
/// in the guest and eprintln! would issue one write per formatting fragment).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::console_line(&format!($($arg)*))
    };
}

mod channel;
mod ctl;
mod job;
mod mounts;
mod run;
mod steps;
mod sys;

use channel::Channel;
use job::PlanError;
use proto::control::ControlEventKind;
use std::cell::RefCell;
use std::io;

/// CMD_DONE status when a step failed (the STEP events say which).
const STATUS_STEP_FAILED: u32 = 1;
/// CMD_DONE status when the job could not be set up (bad job file, mount failed): the host
/// treats it as "could not test".
const STATUS_NOT_TESTED: u32 = 125;

#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    if sys::getpid() != 1 {
        say!("not PID 1: this is the guest's /init; refusing to mount or reboot");
        return 1;
    }
    // A panic must not kill PID 1 (the kernel would panic): whatever the panic strategy, the
    // hook runs first and never returns.
    std::panic::set_hook(Box::new(|info| {
        say!("internal error: {info}");
        shutdown()
    }));
    agent();
    shutdown()
}

/// The agent's event channel, if it could be opened; without it events are dropped.
struct Reporter(RefCell<Option<Channel>>);

impl Reporter {
    fn send(&self, event: ControlEventKind, status: u32, msg: &str) {
        if let Some(ch) = self.0.borrow_mut().as_mut() {
            ch.send(event, status, msg);
        }
    }

    /// Prints `pinvm-agent: msg` on the console and reports AGENT_ERROR.
    fn error(&self, errno: u32, msg: &str) {
        say!("{msg}");
        self.send(ControlEventKind::AgentError, errno, msg);
    }

    /// Lets the console drain, then reports CMD_DONE (always the last event).
    fn done(&self, status: u32) {
        sys::drain_console();
        self.send(ControlEventKind::CmdDone, status, "");
    }
}

fn agent() {
    mounts::mount_proc();
    let reporter = Reporter(RefCell::new(open_channel()));
    reporter.send(ControlEventKind::AgentStarted, 0, "");
    mounts::mount_rest();

    let plan = match job::read_plan() {
        Ok(plan) => plan,
        Err(PlanError::NoCommand(msg)) => return reporter.error(0, &msg),
        Err(PlanError::Invalid(msg)) => {
            reporter.error(0, &msg);
            return reporter.done(STATUS_NOT_TESTED);
        }
    };
    for m in &plan.mounts {
        if let Err((errno, msg)) = mounts::mount_job(m) {
            reporter.error(errno, &msg);
            return reporter.done(STATUS_NOT_TESTED);
        }
    }
    if !plan.steps.is_empty() {
        let mut sink =
            |status: u32, line: &str| reporter.send(ControlEventKind::Step, status, line);
        if steps::run(&plan.steps, plan.verbose, plan.keep_going, &mut sink).is_err() {
            return reporter.done(STATUS_STEP_FAILED);
        }
    }
    let status = match &plan.command {
        Some(job) => run_command(&reporter, job),
        None => 0,
    };
    reporter.done(status);
}

/// Runs the command and returns its shell-style status.
fn run_command(reporter: &Reporter, job: &job::Job) -> u32 {
    match run::spawn(job) {
        Ok(pid) => {
            reporter.send(ControlEventKind::CmdStarted, 0, "");
            match run::wait_for(pid) {
                Ok(raw) => run::status_code(raw),
                Err(e) => {
                    reporter.error(errno(&e), &format!("waitpid: {}", describe(&e)));
                    255
                }
            }
        }
        Err(e) => {
            let prog = job.argv[0].to_string_lossy();
            reporter.error(errno(&e), &format!("cannot run '{prog}': {}", describe(&e)));
            run::spawn_error_status(&e)
        }
    }
}

fn open_channel() -> Option<Channel> {
    match job::read_small("/proc/cmdline") {
        Ok(cmdline) => channel::open(&String::from_utf8_lossy(&cmdline)),
        Err(e) => {
            say!("cannot read /proc/cmdline: {}", describe(&e));
            channel::open("")
        }
    }
}

fn console_line(msg: &str) {
    use std::io::Write;
    let line = format!("pinvm-agent: {msg}\n");
    let _ = io::stderr().write_all(line.as_bytes());
}

fn errno(e: &io::Error) -> u32 {
    e.raw_os_error().unwrap_or(0) as u32
}

/// An io::Error without std's " (os error N)" suffix.
fn describe(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}

fn shutdown() -> ! {
    sys::sync();
    let e = sys::reboot();
    say!("reboot failed: {}", describe(&e));
    loop {
        sys::pause();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_strips_os_error() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(describe(&e), "No such file or directory");
        assert_eq!(errno(&e), 2);
        let e = io::Error::other("plain (message)");
        assert_eq!(describe(&e), "plain (message)");
        assert_eq!(errno(&e), 0);
    }
}
