//! From a run report to the exit status `pinvm boot` returns, following `git bisect run`:
//! the command's own status when 0..=124 (any other status → 1), 1 for a guest crash before the
//! command ended or a hang, 125 when the kernel could not be booted. Never >= 128.

use crate::crash;
use crate::{RunReport, VmEnd};

/// Exit code: the guest crashed or hung, or the command failed beyond 124.
pub const EXIT_FAIL: i32 = 1;
/// Exit code: the kernel could not be built or booted (`git bisect run` skips the revision).
pub const EXIT_UNTESTABLE: i32 = 125;

/// A run's exit code and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// 0..=124 the command's status, [`EXIT_FAIL`] or [`EXIT_UNTESTABLE`].
    pub code: i32,
    /// One line for the user; None when the command's own status says it all.
    pub reason: Option<String>,
}

fn v(code: i32, reason: String) -> Verdict {
    Verdict {
        code,
        reason: Some(reason),
    }
}

/// The exit code of a run and its one-line reason. `where_` describes where the vCPUs were
/// (for hangs), already symbolized.
pub fn judge(r: &RunReport, where_: Option<String>) -> Verdict {
    let crash_before_done = match r.console_at_cmd_done {
        // Only what the guest printed before CMD_DONE counts against the command.
        Some(n) => crash::first_crash(&truncate_at(&r.console, n)),
        None => crash::first_crash(&r.console),
    };
    if let Some(c) = crash_before_done {
        return v(EXIT_FAIL, format!("guest kernel crashed: {c}"));
    }
    if let Some(status) = r.cmd_status {
        return match status {
            0..=124 => Verdict {
                code: status as i32,
                reason: None,
            },
            s if (129..=192).contains(&s) => v(
                EXIT_FAIL,
                format!("command killed by signal {} (status {s})", s - 128),
            ),
            s => v(EXIT_FAIL, format!("command exited with status {s} (> 124)")),
        };
    }
    let secs = |d: std::time::Duration| format!("{:.1} s", d.as_secs_f64());
    match &r.end {
        VmEnd::VcpuFailed(why) => v(EXIT_UNTESTABLE, format!("boot failure: {why}")),
        VmEnd::Timeout => {
            let phase = match r.timings.to_init {
                Some(t) => format!("guest init ran after {}", secs(t)),
                None => "guest init never ran".into(),
            };
            let at = where_.map(|w| format!("; {w}")).unwrap_or_default();
            v(
                EXIT_FAIL,
                format!(
                    "hang: the command did not finish within {} ({phase}{at})",
                    secs(r.timings.total)
                ),
            )
        }
        _ if !r.agent_errors.is_empty() => v(
            EXIT_UNTESTABLE,
            format!("guest agent error: {}", r.agent_errors.join("; ")),
        ),
        _ if !r.agent_started => v(
            EXIT_UNTESTABLE,
            format!(
                "the guest ended ({}) before its init ran; last console line: {}",
                end_name(&r.end),
                crash::tail(&r.console, 1)
                    .pop()
                    .unwrap_or_else(|| "(none)".into())
            ),
        ),
        end => v(
            EXIT_FAIL,
            format!(
                "the guest ended ({}) before the command finished",
                end_name(end)
            ),
        ),
    }
}

fn end_name(e: &VmEnd) -> String {
    match e {
        VmEnd::Reset => "reset".into(),
        VmEnd::Shutdown => "triple fault".into(),
        VmEnd::SystemEvent(k) => format!("system event {k}"),
        VmEnd::Timeout => "timeout".into(),
        VmEnd::NoRebootAfterCommand => "no reboot after the command".into(),
        VmEnd::Panicked => "kernel panic".into(),
        VmEnd::VcpuFailed(w) => w.clone(),
    }
}

fn truncate_at(s: &str, n: u64) -> String {
    let b = s.as_bytes();
    String::from_utf8_lossy(&b[..(n as usize).min(b.len())]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RecordPaths, Timings};
    use std::time::Duration;

    fn report(end: VmEnd, status: Option<u32>, console: &str) -> RunReport {
        RunReport {
            machine: "test".into(),
            end,
            cmd_status: status,
            agent_started: true,
            agent_errors: vec![],
            console: console.into(),
            console_line_ns: vec![],
            console_at_cmd_done: status.map(|_| console.len() as u64),
            timings: Timings {
                total: Duration::from_secs(30),
                to_init: Some(Duration::from_secs(9)),
                ..Default::default()
            },
            vcpu_rips: vec![],
            notes: vec![],
            quirks: String::new(),
            cmdline: String::new(),
            steps: vec![],
            step_times: vec![],
            step_ns: vec![],
            records: RecordPaths::default(),
        }
    }

    #[test]
    fn command_status_passes_through() {
        assert_eq!(judge(&report(VmEnd::Reset, Some(0), ""), None).code, 0);
        assert_eq!(judge(&report(VmEnd::Reset, Some(3), ""), None).code, 3);
        assert_eq!(judge(&report(VmEnd::Reset, Some(124), ""), None).code, 124);
        let k = judge(&report(VmEnd::Reset, Some(137), ""), None);
        assert_eq!(k.code, 1);
        assert!(k.reason.unwrap().contains("signal 9"));
        assert_eq!(judge(&report(VmEnd::Reset, Some(127), ""), None).code, 1);
        assert_eq!(judge(&report(VmEnd::Reset, Some(255), ""), None).code, 1);
    }

    #[test]
    fn crash_before_done_fails_even_with_status_0() {
        let r = report(
            VmEnd::Reset,
            Some(0),
            "[ 1.0] BUG: unable to handle page fault\n",
        );
        let v = judge(&r, None);
        assert_eq!(v.code, 1);
        assert!(v.reason.unwrap().contains("BUG: unable"));
        // A crash printed after CMD_DONE does not count against the command.
        let mut r = report(VmEnd::Reset, Some(0), "ok\n");
        r.console.push_str("Kernel panic - not syncing: late\n");
        assert_eq!(judge(&r, None).code, 0);
        // A panic with no status is a failure.
        let r = report(VmEnd::Reset, None, "Kernel panic - not syncing: VFS\n");
        assert_eq!(judge(&r, None).code, 1);
    }

    #[test]
    fn hang_and_boot_failures() {
        let h = judge(&report(VmEnd::Timeout, None, ""), Some("vCPU0 at x".into()));
        assert_eq!(h.code, 1);
        let reason = h.reason.unwrap();
        assert!(
            reason.starts_with("hang:") && reason.contains("vCPU0 at x"),
            "{reason}"
        );
        let f = judge(
            &report(VmEnd::VcpuFailed("KVM internal error".into()), None, ""),
            None,
        );
        assert_eq!(f.code, 125);
        let mut r = report(VmEnd::Reset, None, "last words\n");
        r.agent_started = false;
        let v = judge(&r, None);
        assert_eq!(v.code, 125);
        assert!(v.reason.unwrap().contains("last words"));
        let r = report(VmEnd::Reset, None, "");
        assert_eq!(judge(&r, None).code, 1, "rebooted mid-command");
    }

    #[test]
    fn never_128_or_more() {
        for s in [
            0u32,
            1,
            124,
            125,
            126,
            127,
            128,
            129,
            200,
            255,
            256,
            u32::MAX,
        ] {
            let c = judge(&report(VmEnd::Reset, Some(s), ""), None).code;
            assert!(c < 128, "status {s} gave {c}");
        }
    }
}
