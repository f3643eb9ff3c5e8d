//! A hostile guest always ends in a verdict, in time, with bounded host memory. Each test
//! runs a guest (on QEMU: seconds per run on emulating hosts) that floods what it can reach:
//! the console, the agent channel, the DMA device. pinvm must stop it at the deadline, report
//! the end of the run (exit 1, "hang") within the timeout plus a grace, and its peak resident
//! memory (VmHWM of the pinvm process, polled while it runs) must stay within a fixed margin
//! of a quiet run's. Every figure is printed.

use pinvm_tests::{pinvm, pinvm_bin, qemu_or_skip};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The guest's time limit in these tests.
const TIMEOUT: u64 = 25;
/// Start-up (a cached kernel and image) and stopping QEMU, on a busy emulating host.
const GRACE: Duration = Duration::from_secs(60);
/// Peak memory a flood may add to a quiet run's (the console record alone keeps 16 MiB).
const MARGIN_KIB: u64 = 96 << 10;

struct Hostile {
    code: i32,
    elapsed: Duration,
    peak_kib: u64,
    stdout_bytes: u64,
    stderr: String,
}

impl std::fmt::Display for Hostile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} after {:.1} s, peak RSS {} MiB, {} bytes on stdout\n--- stderr ---\n{}",
            self.code,
            self.elapsed.as_secs_f64(),
            self.peak_kib >> 10,
            self.stdout_bytes,
            self.stderr
        )
    }
}

/// The peak resident set of process `pid` (VmHWM), if it is still there.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Drain `r` on a thread: (bytes read, the last 64 KiB as text).
fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<(u64, String)> {
    std::thread::spawn(move || {
        let mut n = 0u64;
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(k) = r.read(&mut buf) {
            if k == 0 {
                break;
            }
            n += k as u64;
            tail.extend_from_slice(&buf[..k]);
            if tail.len() > 65536 {
                tail.drain(..tail.len() - 65536);
            }
        }
        (n, String::from_utf8_lossy(&tail).into_owned())
    })
}

/// Run `pinvm boot --machine qemu ARGS`, reading its output as it comes (a flooded console is
/// echoed to stdout) and polling its peak memory; fail after `limit`.
fn boot(args: &[&str], limit: Duration) -> Hostile {
    let t0 = Instant::now();
    let mut child = Command::new(pinvm_bin())
        .args(["boot", "--machine", "qemu"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning pinvm");
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let pid = child.id();
    let peak = Arc::new(Mutex::new(0u64));
    let status = loop {
        if let Some(k) = vm_hwm_kib(pid) {
            let mut p = peak.lock().unwrap();
            *p = (*p).max(k);
        }
        if let Some(st) = child.try_wait().expect("waiting for pinvm") {
            break st;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pinvm boot {args:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout_bytes, _) = out.join().expect("stdout reader");
    let (_, stderr) = err.join().expect("stderr reader");
    let peak_kib = *peak.lock().unwrap();
    Hostile {
        code: status.code().unwrap_or(-1),
        elapsed: t0.elapsed(),
        peak_kib,
        stdout_bytes,
        stderr,
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pinvm-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A quiet run's peak memory, the baseline of every flood (measured once per test binary).
fn quiet_peak_kib() -> u64 {
    static QUIET: Mutex<Option<u64>> = Mutex::new(None);
    let mut q = QUIET.lock().unwrap();
    *q.get_or_insert_with(|| {
        let r = boot(&["--", "true"], Duration::from_secs(1800));
        assert_eq!(r.code, 0, "{r}");
        eprintln!("hostile quiet: {r}");
        r.peak_kib
    })
}

/// The flood ended in the deadline's verdict, in time, within the memory margin.
fn check(name: &str, r: &Hostile) {
    eprintln!("hostile {name}: {r}");
    assert_eq!(r.code, 1, "{name}: the deadline's verdict is exit 1\n{r}");
    assert!(
        r.stderr.contains("hang"),
        "{name}: the run reports the deadline\n{r}"
    );
    let limit = Duration::from_secs(TIMEOUT) + GRACE;
    assert!(r.elapsed < limit, "{name}: over {limit:?}\n{r}");
    let quiet = quiet_peak_kib();
    assert!(
        r.peak_kib < quiet + MARGIN_KIB,
        "{name}: peak RSS {} MiB, a quiet run's {} MiB\n{r}",
        r.peak_kib >> 10,
        quiet >> 10
    );
}

/// Megabytes of console: a shell printing as fast as it can until the deadline.
#[test]
fn console_flood() {
    if !qemu_or_skip("hostile: console flood") {
        return;
    }
    let timeout = TIMEOUT.to_string();
    let dir = scratch("console");
    let log = dir.join("console.log");
    let line = "x".repeat(200);
    let script = format!("while :; do echo {line}; done");
    let r = boot(
        &[
            "--timeout",
            &timeout,
            "--console-log",
            log.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ],
        Duration::from_secs(TIMEOUT) + GRACE * 4,
    );
    let logged = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    eprintln!("hostile console flood: {logged} console bytes logged");
    check("console flood", &r);
    assert!(r.stdout_bytes > 1 << 20, "the flood reached stdout: {r}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The agent channel flooded with frames (errors, STEP reports, unreadable STEPs) and garbage
/// lines, from several guest processes at once.
#[test]
fn agent_event_flood() {
    if !qemu_or_skip("hostile: agent event flood") {
        return;
    }
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let timeout = TIMEOUT.to_string();
    let dir = scratch("agent");
    let report = dir.join("r.json");
    let script = format!(
        "yes 'PINVM1 4 5 {}' > /dev/ttyS1 & yes 'PINVM1 6 0 {}' > /dev/ttyS1 & \
         yes 'PINVM1 6 0 {}' > /dev/ttyS1 & yes 'garbage line' > /dev/ttyS1 & wait",
        hex("hostile agent error"),
        hex("step 1 sync ok"),
        hex("step x"),
    );
    let r = boot(
        &[
            "--timeout",
            &timeout,
            "--report",
            report.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ],
        Duration::from_secs(TIMEOUT) + GRACE * 4,
    );
    check("agent event flood", &r);
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("the run report"))
            .expect("JSON");
    let errors = rep["agent_errors"].as_array().map_or(0, Vec::len);
    let steps = rep["steps"].as_array().map_or(0, Vec::len);
    eprintln!("hostile agent event flood: {errors} agent errors and {steps} steps kept");
    assert!(errors <= 258, "{errors} agent errors kept");
    assert!(errors > 0, "the flood reached the host: {rep}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A DMA burst of 2^20 generations over 64 pinned pages, then the deadline: the burst must not
/// hold up the end of the run.
#[test]
fn giant_burst() {
    if !qemu_or_skip("hostile: giant burst") {
        return;
    }
    let created = pinvm(
        &["image", "create", "--fs", "ext4"],
        Duration::from_secs(1800),
    );
    assert_eq!(created.code, 0, "{created}");
    let image = created.stdout.trim().to_string();
    let timeout = TIMEOUT.to_string();
    let dir = scratch("burst");
    let report = dir.join("r.json");
    let report_arg = report.to_str().unwrap().to_string();
    let mut args = vec![
        "--timeout",
        &timeout,
        "--disk",
        &image,
        "--report",
        &report_arg,
    ];
    for s in [
        "write /mnt/f 256K stamp:f",
        "mmap m /mnt/f 256K",
        "touch m",
        "pin r m pin rw",
        "post r 0",
        "dma_start r burst 1048576",
        "sleep 600000",
    ] {
        args.extend(["--step", s]);
    }
    let r = boot(&args, Duration::from_secs(TIMEOUT) + GRACE * 4);
    check("giant burst", &r);
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("the run report"))
            .expect("JSON");
    let started = rep["steps"].as_array().is_some_and(|s| {
        s.iter()
            .any(|s| s["op"] == "dma_start" && s["kind"] == "done")
    });
    assert!(started, "the burst started before the deadline: {rep}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A kernel that is not one, and a kernel that panics before the agent runs: both end at
/// once (could not boot: 125; a crash: 1), long before the deadline, within the same memory.
#[test]
fn never_boots() {
    if !qemu_or_skip("hostile: never boots") {
        return;
    }
    let timeout = TIMEOUT.to_string();
    let dir = scratch("never");
    let junk = dir.join("junk");
    let bytes: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(&junk, bytes).unwrap();
    let quiet = quiet_peak_kib();
    let limit = Duration::from_secs(TIMEOUT) + GRACE * 4;
    let r = boot(
        &[
            "--kernel",
            junk.to_str().unwrap(),
            "--timeout",
            &timeout,
            "--",
            "true",
        ],
        limit,
    );
    eprintln!("hostile junk kernel: {r}");
    assert_eq!(r.code, 125, "{r}");
    let r2 = boot(
        &[
            "--timeout",
            &timeout,
            "--append",
            "rdinit=/nonexistent init=/nonexistent",
            "--",
            "true",
        ],
        limit,
    );
    eprintln!("hostile panicking kernel: {r2}");
    assert_eq!(r2.code, 1, "{r2}");
    assert!(r2.stderr.contains("kernel panic"), "{r2}");
    for r in [&r, &r2] {
        assert!(r.elapsed < Duration::from_secs(TIMEOUT), "{r}");
        assert!(r.peak_kib < quiet + MARGIN_KIB, "{r}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
