//! Locating (and if needed building) the guest agent and the busybox shipped in the initramfs.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// Target the agent is built for: a static binary the guest kernel can exec without a loader.
pub const AGENT_TARGET: &str = "x86_64-unknown-linux-musl";

/// The directories (relative to the workspace root) whose files the agent is built from: its
/// own crate and the `proto` crate it shares formats through.
pub const AGENT_SOURCES: [&str; 2] = ["guest-images/agent", "proto"];

fn workspace_root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_path_buf()
}

fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir), // join keeps absolute paths as they are
        _ => root.join("target"),
    }
}

/// The static guest agent binary.
///
/// `PINVM_AGENT` (if set) names it; it must exist. Otherwise it is
/// `<target dir>/x86_64-unknown-linux-musl/release/pinvm-agent` of this workspace (target dir:
/// `CARGO_TARGET_DIR` or `target`), built with
/// `cargo build --release -p pinvm-agent --target x86_64-unknown-linux-musl` (the workspace's
/// `[profile.release.package.pinvm-agent]` keeps it small and stripped) when missing or older
/// than any file under [`AGENT_SOURCES`].
pub fn agent_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("PINVM_AGENT") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "PINVM_AGENT={} does not exist or is not a file",
                path.display()
            );
        }
        return Ok(path);
    }
    let root = workspace_root();
    let binary = target_dir(&root)
        .join(AGENT_TARGET)
        .join("release")
        .join("pinvm-agent");
    let built = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
    let mut newest = None;
    for dir in AGENT_SOURCES {
        let sources = root.join(dir);
        let n = newest_mtime(&sources)
            .with_context(|| format!("scanning agent sources in {}", sources.display()))?;
        newest = newest.max(n);
    }
    let current = match (built, newest) {
        (Some(b), Some(n)) => b >= n,
        (Some(_), None) => true,
        (None, _) => false,
    };
    // A plain `cargo build --release` with the workspace profile leaves debug info in the
    // binary (megabytes); rebuild it stripped.
    if current && !has_debug_info(&binary)? {
        return Ok(binary);
    }
    build_agent(&root)?;
    if !binary.is_file() {
        bail!(
            "cargo built pinvm-agent but {} does not exist (unexpected target directory?)",
            binary.display()
        );
    }
    // Cargo leaves the binary untouched when a change did not affect it (e.g. a comment in
    // Cargo.toml); mark it current so the next call does not run cargo again.
    if let Ok(f) = std::fs::File::options().append(true).open(&binary) {
        let _ = f.set_modified(SystemTime::now());
    }
    Ok(binary)
}

fn build_agent(root: &Path) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root).args([
        "build",
        "--release",
        "-p",
        "pinvm-agent",
        "--target",
        AGENT_TARGET,
    ]);
    let out = cmd.output().with_context(|| {
        format!(
            "running {} to build the guest agent",
            Path::new(&cargo).display()
        )
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let hint = if stderr.contains("target may not be installed")
            || stderr.contains("can't find crate for `std`")
            || stderr.contains("can't find crate for `core`")
        {
            format!("\nthe musl target is missing: run `rustup target add {AGENT_TARGET}`")
        } else {
            String::new()
        };
        bail!(
            "building the guest agent failed ({}): cargo build --release -p pinvm-agent \
             --target {AGENT_TARGET} (in {}):\n{}{hint}",
            out.status,
            root.display(),
            stderr.trim_end()
        );
    }
    Ok(())
}

/// The newest modification time of the files under `dir` (skipping `target` directories).
fn newest_mtime(dir: &Path) -> std::io::Result<Option<SystemTime>> {
    let mut newest = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let ty = entry.file_type()?;
            if ty.is_dir() {
                if entry.file_name() != "target" {
                    stack.push(entry.path());
                }
            } else {
                let m = entry.metadata()?.modified()?;
                newest = newest.max(Some(m));
            }
        }
    }
    Ok(newest)
}

fn has_debug_info(path: &Path) -> Result<bool> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    elf_has_debug_info(&bytes)
        .with_context(|| format!("{} is not a 64-bit ELF file", path.display()))
}

/// Whether an ELF64 LE image has a symbol table or `.debug_*` sections (None if malformed).
fn elf_has_debug_info(b: &[u8]) -> Option<bool> {
    const SHT_SYMTAB: u32 = 2;
    if b.get(..4)? != b"\x7fELF" || *b.get(4)? != 2 || *b.get(5)? != 1 {
        return None;
    }
    let at = |o: usize, n: usize| b.get(o..o.checked_add(n)?);
    let u16_at = |o: usize| Some(u16::from_le_bytes(at(o, 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(at(o, 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(at(o, 8)?.try_into().ok()?));
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    let shstrndx = usize::from(u16_at(0x3e)?);
    if shnum == 0 {
        return Some(false);
    }
    if shentsize < 0x40 || shstrndx >= shnum {
        return None;
    }
    let section = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    let strtab = section(shstrndx)?;
    let str_off = usize::try_from(u64_at(strtab.checked_add(0x18)?)?).ok()?;
    for i in 0..shnum {
        let sh = section(i)?;
        if u32_at(sh.checked_add(4)?)? == SHT_SYMTAB {
            return Some(true);
        }
        let name_off = str_off.checked_add(usize::try_from(u32_at(sh)?).ok()?)?;
        let name = b.get(name_off..)?;
        if name.starts_with(b".debug_") {
            return Some(true);
        }
    }
    Some(false)
}

/// The busybox to put into the initramfs: `PINVM_BUSYBOX` if set (empty: none), else
/// `/bin/busybox` if it is a static binary (Debian's busybox-static; a dynamically linked one
/// would not run in the guest, which has no libc).
pub fn busybox_path() -> Option<PathBuf> {
    match std::env::var_os("PINVM_BUSYBOX") {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(PathBuf::from(p)),
        None => {
            let p = PathBuf::from("/bin/busybox");
            is_static_elf(&p).ok().filter(|&s| s).map(|_| p)
        }
    }
}

/// Whether `path` is a 64-bit little-endian ELF without a PT_INTERP program header.
pub fn is_static_elf(path: &Path) -> Result<bool> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    elf_is_static(&bytes).with_context(|| format!("{} is not a 64-bit ELF file", path.display()))
}

/// `Some(true)` for an ELF64 LE image without PT_INTERP, `Some(false)` with one, `None` if the
/// bytes are not a well-formed ELF64 LE image.
fn elf_is_static(b: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if b.get(..4)? != b"\x7fELF" || *b.get(4)? != 2 || *b.get(5)? != 1 {
        return None;
    }
    // Offsets here are small constants: no overflow.
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    if phentsize < 4 {
        return None;
    }
    for i in 0..phnum {
        let off = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let p_type = u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?);
        if p_type == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with the given program header types.
    fn elf(types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 * types.len()];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for (i, t) in types.iter().enumerate() {
            b[64 + 56 * i..68 + 56 * i].copy_from_slice(&t.to_le_bytes());
        }
        b
    }

    #[test]
    fn elf_interp_detection() {
        assert_eq!(elf_is_static(&elf(&[1, 1, 4])), Some(true));
        assert_eq!(elf_is_static(&elf(&[6, 3, 1])), Some(false));
        assert_eq!(elf_is_static(&elf(&[])), Some(true));
        assert_eq!(elf_is_static(b"#!/bin/sh\n"), None);
        assert_eq!(elf_is_static(b""), None);
        let mut truncated = elf(&[1, 3]);
        truncated.truncate(100);
        assert_eq!(elf_is_static(&truncated), None);
        let mut huge = elf(&[1]);
        huge[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(elf_is_static(&huge), None);
    }

    #[test]
    fn debug_info_detection() {
        // The test executable itself has a symbol table and debug info.
        let me = std::env::current_exe().unwrap();
        assert!(has_debug_info(&me).unwrap());
        // Debian's busybox is stripped.
        if Path::new("/bin/busybox").is_file() {
            assert!(!has_debug_info(Path::new("/bin/busybox")).unwrap());
        }
        assert_eq!(elf_has_debug_info(&elf(&[1])), Some(false)); // no sections
        assert_eq!(elf_has_debug_info(b"nope"), None);
        let mut bad = elf(&[1]);
        bad[0x3c] = 3; // three sections at offset 0: out of bounds / malformed
        bad[0x3a] = 0x40;
        bad[0x28..0x30].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
        assert_eq!(elf_has_debug_info(&bad), None);
    }

    #[test]
    fn host_binaries() {
        // This test executable is dynamically linked (gnu target): it has an interpreter.
        let me = std::env::current_exe().unwrap();
        assert!(!is_static_elf(&me).unwrap());
        if let Some(bb) = busybox_path() {
            if std::env::var_os("PINVM_BUSYBOX").is_none() {
                assert!(is_static_elf(&bb).unwrap());
            }
        }
    }

    #[test]
    fn newest_mtime_sees_agent_sources() {
        let dir = workspace_root().join("guest-images").join("agent");
        let newest = newest_mtime(&dir).unwrap().unwrap();
        let main = std::fs::metadata(dir.join("src/main.rs"))
            .unwrap()
            .modified()
            .unwrap();
        assert!(newest >= main);
    }

    /// Every workspace path crate the agent depends on is scanned for staleness.
    #[test]
    fn agent_sources_cover_its_path_dependencies() {
        let root = workspace_root();
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        let workspace = read("Cargo.toml");
        let agent = read("guest-images/agent/Cargo.toml");
        let deps: Vec<&str> = agent
            .lines()
            .filter_map(|l| l.strip_suffix(".workspace = true"))
            .collect();
        assert!(deps.contains(&"proto"), "{deps:?}");
        for dep in deps {
            let path = workspace
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{dep} = {{ path = \"")))
                .find_map(|rest| rest.split('"').next());
            if let Some(path) = path {
                assert!(AGENT_SOURCES.contains(&path), "{dep} at {path}");
            }
        }
    }

    /// Builds (or reuses) the real agent: needs the musl target, so it is opt-in.
    #[test]
    #[ignore = "builds the musl agent with cargo; run with --ignored"]
    fn builds_static_agent() {
        let path = agent_binary().unwrap();
        assert!(
            is_static_elf(&path).unwrap(),
            "{} is not static",
            path.display()
        );
    }
}
