//! Guest memory as a vhost-user frontend shares it: SET_MEM_TABLE sends one file descriptor per
//! RAM region (QEMU's `memory-backend-memfd,share=on`) with the region's guest-physical
//! address, size, the frontend's own virtual address of it and an offset into the file. We
//! map every region ourselves, so device threads (and the DMA engine) read and write guest RAM
//! directly, as they do under our KVM VMM. Vring addresses arrive as *frontend virtual*
//! addresses and are translated to guest-physical ones here.

use std::fs::File;

use vhost::vhost_user::message::VhostUserMemoryRegion;
use vm_memory::{
    FileOffset, GuestAddress, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap, MmapRegion,
};

/// Why a memory table was refused.
#[derive(Debug, thiserror::Error)]
pub enum MemTableError {
    /// The frontend sent a different number of regions and file descriptors.
    #[error("{regions} memory regions but {files} file descriptors")]
    FdCount {
        /// Regions in the message.
        regions: usize,
        /// File descriptors that came with it.
        files: usize,
    },
    /// A region's size or offsets do not fit the address space.
    #[error("memory region at guest address {0:#x} is empty or overflows")]
    BadRegion(u64),
    /// mmap of a region failed.
    #[error("cannot map memory region at guest address {gpa:#x}: {source}")]
    Map {
        /// The region's guest-physical address.
        gpa: u64,
        /// What mmap said.
        source: vm_memory::mmap::MmapRegionError,
    },
    /// Two regions overlap in guest-physical space.
    #[error("memory regions overlap: {0}")]
    Overlap(vm_memory::GuestRegionCollectionError),
}

/// One region's place in the frontend's address space.
#[derive(Clone, Copy, Debug)]
struct Window {
    gpa: u64,
    size: u64,
    user_addr: u64,
}

/// The frontend's memory table, mapped.
pub struct MemTable {
    /// Guest RAM for the devices.
    pub mem: GuestMemoryMmap,
    windows: Vec<Window>,
}

impl MemTable {
    /// Map every region of a SET_MEM_TABLE message.
    pub fn map(regions: &[VhostUserMemoryRegion], files: Vec<File>) -> Result<Self, MemTableError> {
        if regions.len() != files.len() {
            return Err(MemTableError::FdCount {
                regions: regions.len(),
                files: files.len(),
            });
        }
        let mut mapped = Vec::with_capacity(regions.len());
        let mut windows = Vec::with_capacity(regions.len());
        for (r, file) in regions.iter().zip(files) {
            let (gpa, size) = (r.guest_phys_addr, r.memory_size);
            let len = usize::try_from(size).map_err(|_| MemTableError::BadRegion(gpa))?;
            if size == 0
                || gpa.checked_add(size).is_none()
                || r.user_addr.checked_add(size).is_none()
            {
                return Err(MemTableError::BadRegion(gpa));
            }
            let mapping = MmapRegion::from_file(FileOffset::new(file, r.mmap_offset), len)
                .map_err(|source| MemTableError::Map { gpa, source })?;
            let region = GuestRegionMmap::new(mapping, GuestAddress(gpa))
                .ok_or(MemTableError::BadRegion(gpa))?;
            mapped.push(region);
            windows.push(Window {
                gpa,
                size,
                user_addr: r.user_addr,
            });
        }
        mapped.sort_by_key(|r| r.start_addr());
        let mem = GuestMemoryMmap::from_regions(mapped).map_err(MemTableError::Overlap)?;
        Ok(MemTable { mem, windows })
    }

    /// The guest-physical address of frontend virtual address `va`, if a region holds it.
    pub fn va_to_gpa(&self, va: u64) -> Option<u64> {
        self.windows.iter().find_map(|w| {
            let off = va.checked_sub(w.user_addr)?;
            (off < w.size).then(|| w.gpa + off)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memfd(size: u64) -> File {
        let f = vmm_sys_util::tempfile::TempFile::new().unwrap().into_file();
        f.set_len(size).unwrap();
        f
    }

    #[test]
    fn maps_regions_and_translates_frontend_addresses() {
        let regions = [
            VhostUserMemoryRegion::new(0, 0x10000, 0x7f00_0000_0000, 0),
            VhostUserMemoryRegion::new(0x100000, 0x10000, 0x7f00_1000_0000, 0),
        ];
        let t = MemTable::map(&regions, vec![memfd(0x10000), memfd(0x10000)]).unwrap();
        assert_eq!(t.va_to_gpa(0x7f00_0000_0010), Some(0x10));
        assert_eq!(t.va_to_gpa(0x7f00_1000_fff0), Some(0x10fff0));
        assert_eq!(t.va_to_gpa(0x7f00_1001_0000), None);
        assert_eq!(t.va_to_gpa(0x1000), None);
        use vm_memory::{Bytes, GuestMemoryBackend};
        t.mem.write_obj(0xabcdu32, GuestAddress(0x100004)).unwrap();
        assert_eq!(
            t.mem.read_obj::<u32>(GuestAddress(0x100004)).unwrap(),
            0xabcd
        );
        assert_eq!(t.mem.num_regions(), 2);
    }

    #[test]
    fn refuses_bad_tables() {
        let r = [VhostUserMemoryRegion::new(0, 0x1000, 0x1000, 0)];
        assert!(matches!(
            MemTable::map(&r, vec![]),
            Err(MemTableError::FdCount { .. })
        ));
        let r = [VhostUserMemoryRegion::new(u64::MAX - 10, 0x1000, 0x1000, 0)];
        assert!(matches!(
            MemTable::map(&r, vec![memfd(0x1000)]),
            Err(MemTableError::BadRegion(_))
        ));
        let r = [VhostUserMemoryRegion::new(0, 0, 0x1000, 0)];
        assert!(matches!(
            MemTable::map(&r, vec![memfd(0x1000)]),
            Err(MemTableError::BadRegion(_))
        ));
        let r = [
            VhostUserMemoryRegion::new(0, 0x2000, 0x1000, 0),
            VhostUserMemoryRegion::new(0x1000, 0x1000, 0x9000, 0),
        ];
        assert!(matches!(
            MemTable::map(&r, vec![memfd(0x2000), memfd(0x1000)]),
            Err(MemTableError::Overlap(_))
        ));
    }
}
