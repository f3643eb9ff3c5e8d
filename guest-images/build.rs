//! Builds the guest agent (`pinvm-agent`, the guest's `/init`) as part of the normal build, so
//! an installed pinvm carries it (`guest_images::agent::agent_binary`) and needs no source
//! tree at run time.
//!
//! The agent is a static binary for x86_64-unknown-linux-musl, built with the workspace's
//! `[profile.release.package.pinvm-agent]` (small, stripped) by a nested cargo into its own
//! target directory under OUT_DIR, so it never waits for the lock of the outer build's target
//! directory. It is rebuilt only when its sources, `proto/`, the workspace manifest or the
//! lock file change.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "x86_64-unknown-linux-musl";
const PACKAGE: &str = "pinvm-agent";

/// Environment a build script gets from cargo that would change the nested build: a clippy
/// or other workspace wrapper, the outer build's flags and target directory.
const OUTER_ONLY_ENV: [&str; 5] = [
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("guest-images sits in the workspace");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    watch(&manifest_dir.join("agent"));
    // The formats the agent shares with the host.
    watch(&root.join("proto"));
    watch(&root.join("Cargo.toml"));
    watch(&root.join("Cargo.lock"));

    let target_dir = out.join("agent-target");
    build_agent(root, &target_dir);
    let built = target_dir.join(TARGET).join("release").join(PACKAGE);
    let dest = out.join(PACKAGE);
    if let Err(e) = std::fs::copy(&built, &dest) {
        panic!(
            "cargo built {PACKAGE} but {} cannot be copied to {}: {e}",
            built.display(),
            dest.display()
        );
    }
}

fn watch(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
}

/// `cargo build --release -p pinvm-agent --target x86_64-unknown-linux-musl`, in the
/// workspace, into `target_dir`; a failure stops the build with cargo's own message and, when
/// the musl target is the cause, the command that installs it.
fn build_agent(root: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "-p", PACKAGE, "--target", TARGET])
        .arg("--target-dir")
        .arg(target_dir);
    for var in OUTER_ONLY_ENV {
        cmd.env_remove(var);
    }
    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run {} to build the guest agent: {e}",
            Path::new(&cargo).display()
        ),
    };
    if output.status.success() {
        return;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let missing_target = stderr.contains("target may not be installed")
        || stderr.contains("can't find crate for `std`")
        || stderr.contains("can't find crate for `core`");
    let hint = if missing_target {
        format!(
            "\n\nThe musl target is missing. Install it with:\n    rustup target add {TARGET}\n"
        )
    } else {
        String::new()
    };
    panic!(
        "building the guest agent failed ({}): cargo build --release -p {PACKAGE} --target \
         {TARGET} (in {}):\n{}{hint}",
        output.status,
        root.display(),
        stderr.trim_end()
    );
}
