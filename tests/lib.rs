//! Helpers for the integration tests: find (or build) the `pinvm` binary, skip loudly when a
//! machine is missing, run pinvm with a hard wall-clock limit.
//!
//! Tests that name no machine run on pinvm's default (`auto`: our VMM on hardware KVM, QEMU's
//! TCG where /dev/kvm is missing or emulated); the KVM smoke tests pass `--machine kvm` and
//! the QEMU ones `--machine qemu`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The pinvm binary under test: `$PINVM_BIN`, or a fresh `cargo build --release`.
pub fn pinvm_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("PINVM_BIN") {
            return PathBuf::from(p);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--release", "-p", "pinvm", "--bin", "pinvm"])
            .current_dir(workspace_root())
            .status()
            .expect("running cargo build");
        assert!(st.success(), "cargo build of pinvm failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"));
        target.join("release/pinvm")
    })
    .clone()
}

/// True when pinvm's default machine can run here (/dev/kvm or QEMU). Otherwise prints a
/// loud SKIP line (the test then returns).
pub fn vm_or_skip(test: &str) -> bool {
    if kvm_usable().is_ok() || qemu_installed() {
        return true;
    }
    eprintln!(
        "\n*** SKIP {test}: neither /dev/kvm nor qemu-system-x86_64 is usable; VM tests did not \
         run ***\n"
    );
    false
}

/// True when QEMU is installed. Otherwise prints a loud SKIP line.
pub fn qemu_or_skip(test: &str) -> bool {
    if qemu_installed() {
        return true;
    }
    eprintln!(
        "\n*** SKIP {test}: qemu-system-x86_64 is not installed; QEMU tests did not run ***\n"
    );
    false
}

fn qemu_installed() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join("qemu-system-x86_64").is_file())
}

fn kvm_usable() -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
}

/// True when our own VMM can run (/dev/kvm). Otherwise prints a loud SKIP line.
pub fn kvm_or_skip(test: &str) -> bool {
    match kvm_usable() {
        Ok(_) => true,
        Err(e) => {
            eprintln!(
                "\n*** SKIP {test}: /dev/kvm is not usable ({e}); VM tests did not run ***\n"
            );
            false
        }
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Run pinvm with `args`; fail the test if it runs longer than `limit` (then kill it).
pub fn pinvm(args: &[&str], limit: Duration) -> Run {
    let t0 = Instant::now();
    let mut child = Command::new(pinvm_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning pinvm");
    let out: Output = loop {
        if let Some(_st) = child.try_wait().expect("waiting for pinvm") {
            break child.wait_with_output().expect("collecting pinvm output");
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().expect("collecting pinvm output");
            panic!(
                "pinvm {args:?} ran longer than {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let code = out.status.code().unwrap_or_else(|| {
        panic!("pinvm was killed by a signal: {:?}", out.status);
    });
    Run {
        code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: t0.elapsed(),
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} after {:.1} s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

/// Where a FIEMAP "physical" address of a file on `image` is on the device
/// (`guest_images::disk::device_offset`).
pub fn device_offset(fs: &str, image: &Path, physical: u64) -> u64 {
    let fs: guest_images::disk::Fs = fs.parse().expect("ext4, xfs or btrfs");
    guest_images::disk::device_offset(fs, image, physical).unwrap()
}
