//! The guest agent (built with pinvm, see build.rs) and the busybox shipped in the initramfs.

use anyhow::{bail, Context, Result};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Target the agent is built for: a static binary the guest kernel can exec without a loader.
pub const AGENT_TARGET: &str = "x86_64-unknown-linux-musl";

/// The agent built with this pinvm (by build.rs, for [`AGENT_TARGET`], stripped).
const BUILT_AGENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pinvm-agent"));

/// The static guest agent binary: the file `PINVM_AGENT` names if set (it must exist), else
/// the agent built together with pinvm.
pub fn agent_binary() -> Result<Cow<'static, [u8]>> {
    let Some(path) = std::env::var_os("PINVM_AGENT") else {
        return Ok(Cow::Borrowed(BUILT_AGENT));
    };
    let path = PathBuf::from(path);
    if !path.is_file() {
        bail!(
            "PINVM_AGENT={} does not exist or is not a file",
            path.display()
        );
    }
    let bytes =
        std::fs::read(&path).with_context(|| format!("reading PINVM_AGENT={}", path.display()))?;
    Ok(Cow::Owned(bytes))
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

    /// Whether an ELF64 LE image has a symbol table or `.debug_*` sections (None if
    /// malformed).
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

    fn has_debug_info(path: &Path) -> bool {
        elf_has_debug_info(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn debug_info_detection() {
        // The test executable itself has a symbol table and debug info.
        let me = std::env::current_exe().unwrap();
        assert!(has_debug_info(&me));
        // Debian's busybox is stripped.
        if Path::new("/bin/busybox").is_file() {
            assert!(!has_debug_info(Path::new("/bin/busybox")));
        }
        assert_eq!(elf_has_debug_info(&elf(&[1])), Some(false)); // no sections
        assert_eq!(elf_has_debug_info(b"nope"), None);
        let mut bad = elf(&[1]);
        bad[0x3c] = 3; // three sections at offset 0: out of bounds / malformed
        bad[0x3a] = 0x40;
        bad[0x28..0x30].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
        assert_eq!(elf_has_debug_info(&bad), None);
    }

    /// The agent built with pinvm is static (it runs as /init without a loader) and
    /// stripped (every initramfs byte costs boot time).
    #[test]
    fn built_agent_is_static_and_stripped() {
        assert_eq!(elf_is_static(BUILT_AGENT), Some(true));
        assert_eq!(elf_has_debug_info(BUILT_AGENT), Some(false));
    }
}
