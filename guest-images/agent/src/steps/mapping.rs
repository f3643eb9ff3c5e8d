//! Shared file mappings: `mmap NAME PATH SIZE`, `touch NAME`, `msync NAME`,
//! `madvise NAME pageout|dontneed`, `munmap NAME`. The mappings live in [`Ctx`] by name.

use super::args;
use super::{Action, Ctx, OpDef, StepError};
use crate::sys::{Mapping, PAGE_SIZE};
use std::fs::OpenOptions;
use std::io;

pub const OPS: &[OpDef] = &[
    OpDef {
        name: "mmap",
        usage: "mmap NAME PATH SIZE (SIZE a non-zero multiple of 4K)",
        parse: |a| {
            let [name, path, size] = args::count(a)?;
            let size = args::size(size)?;
            if size == 0 || size % PAGE_SIZE as u64 != 0 || usize::try_from(size).is_err() {
                return Err(format!(
                    "bad size {}: expected a non-zero multiple of 4096",
                    a[2]
                ));
            }
            Ok(Box::new(Mmap {
                name: args::name(name)?,
                path: path.to_string(),
                size,
            }))
        },
    },
    OpDef {
        name: "munmap",
        usage: "munmap NAME",
        parse: |a| on_map(a, How::Munmap),
    },
    OpDef {
        name: "touch",
        usage: "touch NAME",
        parse: |a| on_map(a, How::Touch),
    },
    OpDef {
        name: "msync",
        usage: "msync NAME",
        parse: |a| on_map(a, How::Msync),
    },
    OpDef {
        name: "madvise",
        usage: "madvise NAME pageout|dontneed",
        parse: |a| {
            let [name, advice] = args::count(a)?;
            let how = match advice {
                "pageout" => How::Pageout,
                "dontneed" => How::Dontneed,
                _ => {
                    return Err(format!(
                        "bad advice {advice:?}: expected pageout or dontneed"
                    ))
                }
            };
            Ok(Box::new(OnMap {
                name: args::name(name)?,
                how,
            }))
        },
    },
];

/// MADV_PAGEOUT (Linux 5.4+): reclaim the pages now (written back first if dirty).
const MADV_PAGEOUT: libc::c_int = 21;

/// The kernel option that provides madvise(2) (and fadvise64).
pub const MADVISE_CONFIG: &str = "CONFIG_ADVISE_SYSCALLS";

/// Opens PATH read-write (it must exist), maps SIZE bytes MAP_SHARED and names the mapping.
#[derive(Debug)]
struct Mmap {
    name: String,
    path: String,
    size: u64,
}

impl Action for Mmap {
    fn run(&self, cx: &mut Ctx) -> Result<String, StepError> {
        let Mmap { name, path, size } = self;
        if cx.maps.contains_key(name) {
            return Err(StepError::new(
                libc::EEXIST,
                format!("mapping {name} exists already"),
            ));
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StepError::io(format_args!("open {path}"), &e))?;
        let len = f
            .metadata()
            .map_err(|e| StepError::io(format_args!("fstat {path}"), &e))?
            .len();
        if len < *size {
            return Err(StepError::new(
                libc::EINVAL,
                format!("{path}: file is {len} bytes, shorter than the mapping ({size} bytes)"),
            ));
        }
        let m = Mapping::new(f, *size as usize)
            .map_err(|e| StepError::io(format_args!("mmap {path}"), &e))?;
        cx.maps.insert(name.clone(), m);
        Ok(format!("bytes={size} pages={}", size / PAGE_SIZE as u64))
    }
}

#[derive(Clone, Copy, Debug)]
enum How {
    Munmap,
    Touch,
    Msync,
    Pageout,
    Dontneed,
}

fn on_map(a: &[&str], how: How) -> Result<Box<dyn Action>, String> {
    let [name] = args::count(a)?;
    Ok(Box::new(OnMap {
        name: args::name(name)?,
        how,
    }))
}

/// An op on a named mapping.
#[derive(Debug)]
struct OnMap {
    name: String,
    how: How,
}

impl Action for OnMap {
    fn run(&self, cx: &mut Ctx) -> Result<String, StepError> {
        let name = &self.name;
        let io = |what: &str, e: io::Error| StepError::io(format_args!("{what} {name}"), &e);
        if let How::Munmap = self.how {
            cx.map(name)?;
            let m = cx.maps.remove(name).expect("looked up above");
            m.unmap().map_err(|e| io("munmap", e))?;
            return Ok(String::new());
        }
        let m = cx.map(name)?;
        match self.how {
            How::Munmap => unreachable!("handled above"),
            How::Touch => {
                // A store beyond the end of the file would be SIGBUS (fatal for PID 1): the
                // file may have been truncated since the mmap step.
                let len = m
                    .file()
                    .metadata()
                    .map_err(|e| io("fstat file of", e))?
                    .len();
                if len < m.len() as u64 {
                    return Err(StepError::new(
                        libc::EINVAL,
                        format!(
                            "touch {name}: the file is now {len} bytes, shorter than the \
                             mapping ({} bytes)",
                            m.len()
                        ),
                    ));
                }
                return Ok(format!("pages={}", m.touch_pages()));
            }
            How::Msync => m.msync().map_err(|e| io("msync", e))?,
            How::Pageout => m
                .madvise(MADV_PAGEOUT)
                .map_err(|e| io("madvise(MADV_PAGEOUT)", e).enosys_needs(MADVISE_CONFIG))?,
            How::Dontneed => m
                .madvise(libc::MADV_DONTNEED)
                .map_err(|e| io("madvise(MADV_DONTNEED)", e).enosys_needs(MADVISE_CONFIG))?,
        }
        Ok(String::new())
    }
}
