//! The Linux x86 boot protocol's `boot_params` ("zero page"): setup header and e820 map.

use super::layout::{ram_regions, CMDLINE, HIMEM, MPTABLE};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};

/// e820 type: usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type: reserved (not RAM).
pub const E820_RESERVED: u32 = 2;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448; // "HdrS"
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT: u32 = 0x0100_0000;
const LOADED_HIGH: u8 = 0x01;

/// A zero page that cannot describe the guest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootParamsError {
    /// Less than 16 MiB of RAM (bytes).
    #[error("guest RAM of {0} bytes is too small (need at least 16 MiB)")]
    TooLittleRam(u64),
}

/// The e820 map for `mem_size` bytes of RAM: low RAM up to the MP table, a reserved hole for
/// the MP table and legacy area, then RAM from 1 MiB (split around the MMIO gap).
pub fn e820_map(mem_size: u64) -> Result<Vec<boot_e820_entry>, BootParamsError> {
    if mem_size < 16 << 20 {
        return Err(BootParamsError::TooLittleRam(mem_size));
    }
    let e = |addr, size, r#type| boot_e820_entry { addr, size, r#type };
    let mut map = vec![
        e(0, MPTABLE, E820_RAM),
        e(MPTABLE, HIMEM - MPTABLE, E820_RESERVED),
    ];
    for (start, size) in ram_regions(mem_size) {
        let (start, size) = if start == 0 {
            (HIMEM, size - HIMEM)
        } else {
            (start, size)
        };
        map.push(e(start, size, E820_RAM));
    }
    Ok(map)
}

/// Everything the kernel reads from the zero page.
pub struct BootParamsSpec {
    /// Guest RAM in bytes (for the e820 map).
    pub mem_size: u64,
    /// The image's own setup header (bzImage), or `None` for an ELF vmlinux.
    pub header: Option<setup_header>,
    /// Length of the command line at `layout::CMDLINE`, including its NUL.
    pub cmdline_len_with_nul: u32,
    /// Where the initramfs is and its size.
    pub initrd: Option<(u64, u32)>,
}

/// The zero page for `spec`: the image's setup header (or a fresh one for an ELF vmlinux)
/// with pinvm's loader fields, the command line and initramfs, and the e820 map.
pub fn build(spec: &BootParamsSpec) -> Result<boot_params, BootParamsError> {
    let mut p = boot_params::default();
    if let Some(h) = spec.header {
        p.hdr = h;
    } else {
        // vmlinux carries no header: describe ourselves as a 2.15 loader.
        p.hdr.version = 0x020f;
        p.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT;
        p.hdr.loadflags = LOADED_HIGH;
    }
    p.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    p.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    p.hdr.header = KERNEL_HDR_MAGIC;
    p.hdr.cmd_line_ptr = CMDLINE as u32;
    p.hdr.cmdline_size = spec.cmdline_len_with_nul;
    if let Some((addr, size)) = spec.initrd {
        p.hdr.ramdisk_image = addr as u32;
        p.hdr.ramdisk_size = size;
    }
    let map = e820_map(spec.mem_size)?;
    for (i, e) in map.iter().enumerate() {
        p.e820_table[i] = *e;
    }
    p.e820_entries = map.len() as u8;
    Ok(p)
}

/// Where the initrd goes: page-aligned at the top of low RAM, below `addr_max` (the header's
/// `initrd_addr_max`, 2 GiB - 1 for kernels that do not say).
pub fn initrd_address(mem_size: u64, initrd_size: u64, addr_max: u64) -> Option<u64> {
    let low_end = ram_regions(mem_size)[0].1.min(addr_max.saturating_add(1));
    let addr = low_end.checked_sub(initrd_size)? & !0xfff;
    (addr >= HIMEM + (16 << 20)).then_some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e820_for_small_and_large_guests() {
        let m = e820_map(256 << 20).unwrap();
        let v: Vec<(u64, u64, u32)> = m.iter().map(|e| (e.addr, e.size, e.r#type)).collect();
        assert_eq!(
            v,
            vec![
                (0, 0x9fc00, 1),
                (0x9fc00, 0x100000 - 0x9fc00, 2),
                (0x100000, (256 << 20) - 0x100000, 1)
            ]
        );
        let m = e820_map(4 << 30).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!((m[2].addr, m[2].size), (0x100000, 0xc000_0000 - 0x100000));
        assert_eq!((m[3].addr, m[3].size), (1 << 32, (4 << 30) - 0xc000_0000));
        assert_eq!(
            e820_map(1 << 20),
            Err(BootParamsError::TooLittleRam(1 << 20))
        );
    }

    #[test]
    fn header_fields_for_vmlinux() {
        let p = build(&BootParamsSpec {
            mem_size: 128 << 20,
            header: None,
            cmdline_len_with_nul: 42,
            initrd: Some((0x700_0000, 4096)),
        })
        .unwrap();
        let h = p.hdr;
        assert_eq!({ h.type_of_loader }, 0xff);
        assert_eq!({ h.boot_flag }, 0xaa55);
        assert_eq!({ h.header }, 0x5372_6448);
        assert_eq!({ h.cmd_line_ptr }, 0x20000);
        assert_eq!({ h.cmdline_size }, 42);
        assert_eq!(
            ({ h.ramdisk_image }, { h.ramdisk_size }),
            (0x700_0000, 4096)
        );
        assert_eq!({ p.e820_entries }, 3);
    }

    #[test]
    fn bzimage_header_is_kept_and_overridden() {
        let h = setup_header {
            version: 0x020d,
            setup_sects: 30,
            ..Default::default()
        };
        let p = build(&BootParamsSpec {
            mem_size: 64 << 20,
            header: Some(h),
            cmdline_len_with_nul: 1,
            initrd: None,
        })
        .unwrap();
        assert_eq!(({ p.hdr.version }, { p.hdr.setup_sects }), (0x020d, 30));
        assert_eq!({ p.hdr.ramdisk_image }, 0);
    }

    #[test]
    fn initrd_placement() {
        assert_eq!(
            initrd_address(256 << 20, 5000, 0x7fff_ffff),
            Some(((256 << 20) - 5000) & !0xfff)
        );
        // Capped by initrd_addr_max and by the MMIO gap.
        assert_eq!(
            initrd_address(4 << 30, 4096, 0x7fff_ffff),
            Some(0x8000_0000 - 4096)
        );
        assert_eq!(
            initrd_address(4 << 30, 4096, u64::MAX),
            Some(0xc000_0000 - 4096)
        );
        // Does not fit above the kernel.
        assert_eq!(initrd_address(32 << 20, 30 << 20, 0x7fff_ffff), None);
    }
}
