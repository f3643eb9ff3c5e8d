//! Loading the guest kernel into memory: an uncompressed ELF `vmlinux` (the fast path: nothing
//! to decompress, which matters when guest kernel code is emulated) or a `bzImage`.

use crate::arch::x86_64::layout::HIMEM;
use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::{BzImage, Elf, KernelLoader};
use std::fs::File;
use std::io::Read;
use std::path::Path;
use vm_memory::{GuestAddress, GuestMemoryMmap};

/// The bzImage 64-bit entry point is 0x200 past the protected-mode payload.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;
const XLF_KERNEL_64: u16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    Elf,
    BzImage,
}

pub struct LoadedKernel {
    pub format: KernelFormat,
    pub entry: u64,
    pub end: u64,
    /// bzImage setup header (None for ELF).
    pub header: Option<setup_header>,
}

pub fn detect(path: &Path) -> anyhow::Result<KernelFormat> {
    let mut f = File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut head = [0u8; 0x206];
    let n = f.read(&mut head)?;
    if n >= 4 && head[..4] == *b"\x7fELF" {
        return Ok(KernelFormat::Elf);
    }
    if n >= 0x206 && head[0x202..0x206] == *b"HdrS" {
        return Ok(KernelFormat::BzImage);
    }
    anyhow::bail!(
        "{}: neither an ELF vmlinux nor a bzImage (no ELF magic, no HdrS header)",
        path.display()
    )
}

pub fn load(mem: &GuestMemoryMmap, path: &Path) -> anyhow::Result<LoadedKernel> {
    let format = detect(path)?;
    let mut f = File::open(path)?;
    let ctx = |e: linux_loader::loader::Error| anyhow::anyhow!("loading {}: {e}", path.display());
    match format {
        KernelFormat::Elf => {
            let r = Elf::load(mem, None, &mut f, Some(GuestAddress(HIMEM))).map_err(ctx)?;
            Ok(LoadedKernel {
                format,
                entry: r.kernel_load.0,
                end: r.kernel_end,
                header: None,
            })
        }
        KernelFormat::BzImage => {
            let r = BzImage::load(mem, None, &mut f, Some(GuestAddress(HIMEM))).map_err(ctx)?;
            let hdr = r.setup_header.ok_or_else(|| {
                anyhow::anyhow!("{}: bzImage without setup header", path.display())
            })?;
            let (version, xloadflags) = (hdr.version, hdr.xloadflags);
            if version < 0x020c || xloadflags & XLF_KERNEL_64 == 0 {
                anyhow::bail!(
                    "{}: bzImage boot protocol {version:#x} without a 64-bit entry point \
                     (need >= 2.12 with XLF_KERNEL_64)",
                    path.display()
                );
            }
            Ok(LoadedKernel {
                format,
                entry: r.kernel_load.0 + BZIMAGE_64BIT_ENTRY_OFFSET,
                end: r.kernel_end,
                header: Some(hdr),
            })
        }
    }
}
