//! Loading the guest kernel into memory: an uncompressed ELF `vmlinux` (the fast path: nothing
//! to decompress, which matters when guest kernel code is emulated) or a `bzImage`.

use crate::arch::x86_64::layout::HIMEM;
use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::{BzImage, Elf, KernelLoader};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use vm_memory::{GuestAddress, GuestMemoryMmap};

/// The bzImage 64-bit entry point is 0x200 past the protected-mode payload.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;
/// `xloadflags` bit: the kernel has a 64-bit entry point.
const XLF_KERNEL_64: u16 = 1;
/// The first boot protocol version with `xloadflags` (2.12).
const BOOT_PROTOCOL_2_12: u16 = 0x020c;

/// The two kernel image formats pinvm boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    /// An uncompressed ELF vmlinux, entered at its ELF entry in 64-bit mode.
    Elf,
    /// A bzImage, entered at its 64-bit entry point (boot protocol >= 2.12).
    BzImage,
}

/// Where the kernel went in guest memory.
pub struct LoadedKernel {
    /// Which format it was.
    pub format: KernelFormat,
    /// Guest-physical 64-bit entry point.
    pub entry: u64,
    /// First guest-physical address after the kernel (the initramfs goes above it).
    pub end: u64,
    /// bzImage setup header (None for ELF).
    pub header: Option<setup_header>,
}

/// Why a kernel image could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be opened or read.
    #[error("{}: {source}", .path.display())]
    Read {
        /// The kernel image.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Neither format's magic is there.
    #[error(
        "{}: neither an ELF vmlinux nor a bzImage (no ELF magic, no HdrS header)",
        .0.display()
    )]
    UnknownFormat(PathBuf),
    /// linux-loader refused the image (does not fit, bad headers).
    #[error("loading {}: {source}", .path.display())]
    Load {
        /// The kernel image.
        path: PathBuf,
        /// linux-loader's error.
        source: linux_loader::loader::Error,
    },
    /// A bzImage whose loader returned no setup header.
    #[error("{}: bzImage without setup header", .0.display())]
    NoSetupHeader(PathBuf),
    /// A bzImage too old to be entered in 64-bit mode.
    #[error(
        "{}: bzImage boot protocol {version:#x} without a 64-bit entry point (need >= 2.12 with \
         XLF_KERNEL_64)",
        .path.display()
    )]
    No64BitEntry {
        /// The kernel image.
        path: PathBuf,
        /// Its boot protocol version.
        version: u16,
    },
}

/// The format of the kernel image at `path`, from its first bytes.
pub fn detect(path: &Path) -> Result<KernelFormat, LoadError> {
    let read = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(read)?;
    let mut head = [0u8; 0x206];
    let n = f.read(&mut head).map_err(read)?;
    if n >= 4 && head[..4] == *b"\x7fELF" {
        return Ok(KernelFormat::Elf);
    }
    if n >= 0x206 && head[0x202..0x206] == *b"HdrS" {
        return Ok(KernelFormat::BzImage);
    }
    Err(LoadError::UnknownFormat(path.to_path_buf()))
}

/// Load the kernel image at `path` into `mem` at [`HIMEM`] (1 MiB): an ELF vmlinux at its
/// physical addresses, a bzImage's protected-mode payload after its setup sectors. Returns
/// the 64-bit entry point and where the kernel ends.
pub fn load(mem: &GuestMemoryMmap, path: &Path) -> Result<LoadedKernel, LoadError> {
    let format = detect(path)?;
    let mut f = File::open(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let load_err = |source| LoadError::Load {
        path: path.to_path_buf(),
        source,
    };
    match format {
        KernelFormat::Elf => {
            let r = Elf::load(mem, None, &mut f, Some(GuestAddress(HIMEM))).map_err(load_err)?;
            Ok(LoadedKernel {
                format,
                entry: r.kernel_load.0,
                end: r.kernel_end,
                header: None,
            })
        }
        KernelFormat::BzImage => {
            let r =
                BzImage::load(mem, None, &mut f, Some(GuestAddress(HIMEM))).map_err(load_err)?;
            let hdr = r
                .setup_header
                .ok_or_else(|| LoadError::NoSetupHeader(path.to_path_buf()))?;
            let (version, xloadflags) = (hdr.version, hdr.xloadflags);
            if version < BOOT_PROTOCOL_2_12 || xloadflags & XLF_KERNEL_64 == 0 {
                return Err(LoadError::No64BitEntry {
                    path: path.to_path_buf(),
                    version,
                });
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
