//! Pinning mapped file pages with the dmapin driver (`/dev/dmapin`, ABI in
//! [`proto::dmapin::ioctl`], calls in [`dmapin_ioctl`](super::dmapin_ioctl)): `pin`, `post`,
//! `dma_start`, `dma_stop`, `query`,
//! `release`. The device is opened by the first `pin` step and stays open for the rest of the
//! steps; regions are remembered in [`Ctx`] by name.

use super::args;
use super::{dmapin_ioctl, Action, Ctx, OpDef, Region, StepError};
use crate::sys::PAGE_SIZE;
use proto::dmapin::ioctl::{self as abi, DmapinCtl, DmapinPin, DmapinPost, DmapinQuery};
use proto::dmapin::schedule;
use std::io;

pub const OPS: &[OpDef] = &[
    OpDef {
        name: "pin",
        usage: "pin REGION NAME METHOD rw|ro [expect=ERRNO] (METHOD: gup, gup_fast, pin, \
                pin_fast, pin_longterm or pin_fast_longterm)",
        parse: parse_pin,
    },
    OpDef {
        name: "post",
        usage: "post REGION FILE_OFFSET",
        parse: |a| {
            let [region, offset] = args::count(a)?;
            Ok(Box::new(Post {
                region: args::name(region)?,
                file_offset: args::size(offset)?,
            }))
        },
    },
    OpDef {
        name: "dma_start",
        usage: "dma_start REGION burst|rate|writeback [P0 [P1 [P2 [P3]]]]",
        parse: parse_dma_start,
    },
    OpDef {
        name: "dma_stop",
        usage: "dma_stop REGION",
        parse: |a| {
            let [region] = args::count(a)?;
            Ok(Box::new(Dma {
                region: args::name(region)?,
                start: false,
                schedule: 0,
                params: [0; 4],
            }))
        },
    },
    OpDef {
        name: "query",
        usage: "query REGION",
        parse: |a| {
            let [region] = args::count(a)?;
            Ok(Box::new(Query {
                region: args::name(region)?,
            }))
        },
    },
    OpDef {
        name: "release",
        usage: "release REGION dirty_lock|dirty_nolock|no_dirty",
        parse: |a| {
            let [region, method] = args::count(a)?;
            let method = match method {
                "dirty_lock" => abi::DMAPIN_REL_DIRTY_LOCK,
                "dirty_nolock" => abi::DMAPIN_REL_DIRTY_NOLOCK,
                "no_dirty" => abi::DMAPIN_REL_NO_DIRTY,
                _ => {
                    return Err(format!(
                        "bad release method {method:?}: expected dirty_lock, dirty_nolock or \
                         no_dirty"
                    ))
                }
            };
            Ok(Box::new(Release {
                region: args::name(region)?,
                method,
            }))
        },
    },
];

/// Pin methods by name, in the driver's numbering.
const METHODS: [(&str, u32); 6] = [
    ("gup", abi::DMAPIN_GUP),
    ("gup_fast", abi::DMAPIN_GUP_FAST),
    ("pin", abi::DMAPIN_PIN),
    ("pin_fast", abi::DMAPIN_PIN_FAST),
    ("pin_longterm", abi::DMAPIN_PIN_LONGTERM),
    ("pin_fast_longterm", abi::DMAPIN_PIN_FAST_LONGTERM),
];

fn method_name(m: u32) -> String {
    match METHODS.iter().find(|(_, v)| *v == m) {
        Some((s, _)) => s.to_string(),
        None => m.to_string(),
    }
}

/// START schedules by name, in the device's numbering.
const SCHEDULES: [(&str, u32); 3] = [
    ("burst", schedule::BURST),
    ("rate", schedule::RATE),
    ("writeback", schedule::ON_WRITEBACK),
];

fn strerror(errno: i32) -> String {
    crate::describe(&io::Error::from_raw_os_error(errno))
}

fn parse_pin(a: &[&str]) -> Result<Box<dyn Action>, String> {
    let (a, expect) = match a.split_last() {
        Some((last, rest)) if last.starts_with("expect=") => {
            (rest, Some(args::errno(&last["expect=".len()..])?))
        }
        _ => (a, None),
    };
    let [region, map, method, rw] = args::count(a)?;
    let method = match METHODS.iter().find(|(s, _)| *s == method) {
        Some(&(_, m)) => m,
        None => {
            return Err(format!(
                "bad method {method:?}: expected gup, gup_fast, pin, pin_fast, pin_longterm or \
                 pin_fast_longterm"
            ))
        }
    };
    let write = match rw {
        "rw" => true,
        "ro" => false,
        _ => return Err(format!("bad access {rw:?}: expected rw or ro")),
    };
    Ok(Box::new(Pin {
        region: args::name(region)?,
        map: args::name(map)?,
        method,
        write,
        expect,
    }))
}

/// DMAPIN_IOC_PIN over a whole mapping.
#[derive(Debug)]
struct Pin {
    region: String,
    map: String,
    method: u32,
    write: bool,
    /// `expect=`: the outcome (errno, 0 = the API pinned) that makes the step succeed.
    expect: Option<i32>,
}

impl Action for Pin {
    fn run(&self, cx: &mut Ctx) -> Result<String, StepError> {
        let region = &self.region;
        let m = cx.map(&self.map)?;
        let (addr, len) = (m.addr() as u64, m.len() as u64);
        if cx.regions.contains_key(region) {
            return Err(StepError::new(
                libc::EEXIST,
                format!("region {region} exists already"),
            ));
        }
        let mut arg = DmapinPin {
            addr,
            len,
            method: self.method,
            flags: if self.write { abi::DMAPIN_WRITE } else { 0 },
            ..DmapinPin::default()
        };
        let r = dmapin_ioctl::pin(cx.dmapin()?, &mut arg);
        let ioctl_errno = r.err().map(|e| e.raw_os_error().unwrap_or(libc::EIO));
        if ioctl_errno.is_none() && arg.region_id != 0 {
            cx.regions.insert(
                region.clone(),
                Region {
                    id: arg.region_id,
                    npinned: arg.npinned,
                },
            );
        }
        let how = format!(
            "{} {} of {}",
            method_name(self.method),
            if self.write { "rw" } else { "ro" },
            self.map
        );
        pin_verdict(region, &how, ioctl_errno, &arg, self.expect)
    }
}

/// The `pin` step's result from the ioctl's errno (None: it returned 0) and the struct it
/// filled in. The outcome is the ioctl's errno, else the kernel API's (`-err`), else 0.
pub fn pin_verdict(
    region: &str,
    how: &str,
    ioctl_errno: Option<i32>,
    arg: &DmapinPin,
    expect: Option<i32>,
) -> Result<String, StepError> {
    let (got, detail) = match ioctl_errno {
        Some(e) => (
            e,
            format!("region=0 pinned=0 pages={}", arg.len / PAGE_SIZE as u64),
        ),
        None => (
            -arg.err,
            format!(
                "region={} pinned={} pages={}",
                arg.region_id, arg.npinned, arg.npages
            ),
        ),
    };
    let what = format!("pin {region}: {how}");
    if let Some(want) = expect {
        let got_word = format!("got={}", args::errno_name(got));
        if got == want {
            return Ok(format!("{detail} {got_word}"));
        }
        return Err(StepError::new(
            if got != 0 { got } else { libc::EIO },
            format!(
                "{what}: expected {}, {got_word} {detail}",
                args::errno_name(want)
            ),
        ));
    }
    if let Some(e) = ioctl_errno {
        return Err(StepError::new(
            e,
            format!("DMAPIN_IOC_PIN {region} ({how}): {}", strerror(e)),
        ));
    }
    if got != 0 {
        return Err(StepError::new(
            got,
            format!("{what}: {} ({detail})", strerror(got)),
        ));
    }
    if arg.npinned == 0 {
        return Err(StepError::new(
            libc::EIO,
            format!("{what}: the kernel pinned nothing ({detail})"),
        ));
    }
    Ok(detail)
}

/// DMAPIN_IOC_POST: all pinned pages of the region to the device.
#[derive(Debug)]
struct Post {
    region: String,
    file_offset: u64,
}

impl Action for Post {
    fn run(&self, cx: &mut Ctx) -> Result<String, StepError> {
        let (dev, reg) = cx.region(&self.region)?;
        let mut arg = DmapinPost {
            region_id: reg.id,
            file_offset: self.file_offset,
            ..DmapinPost::default()
        };
        dmapin_ioctl::post(dev, &mut arg)
            .map_err(|e| StepError::io(format_args!("DMAPIN_IOC_POST {}", self.region), &e))?;
        if arg.err != 0 {
            return Err(StepError::new(
                -arg.err,
                format!(
                    "post {}: posted {} of {} pages, then: {}",
                    self.region,
                    arg.posted,
                    reg.npinned,
                    strerror(-arg.err)
                ),
            ));
        }
        Ok(format!("posted={}", arg.posted))
    }
}

fn parse_dma_start(a: &[&str]) -> Result<Box<dyn Action>, String> {
    let [region, schedule, params @ ..] = a else {
        return Err(format!("expected 2 to 6 arguments, found {}", a.len()));
    };
    if params.len() > 4 {
        return Err(format!("expected 2 to 6 arguments, found {}", a.len()));
    }
    let schedule = match SCHEDULES.iter().find(|(s, _)| s == schedule) {
        Some(&(_, n)) => n,
        None => {
            return Err(format!(
                "bad schedule {schedule:?}: expected burst, rate or writeback"
            ))
        }
    };
    let mut p = [0u64; 4];
    for (i, w) in params.iter().enumerate() {
        p[i] = args::number(w, &format!("P{i}"))?;
    }
    Ok(Box::new(Dma {
        region: args::name(region)?,
        start: true,
        schedule,
        params: p,
    }))
}

/// DMAPIN_IOC_START / STOP.
#[derive(Debug)]
struct Dma {
    region: String,
    start: bool,
    schedule: u32,
    params: [u64; 4],
}

impl Action for Dma {
    fn run(&self, cx: &mut Ctx) -> Result<String, StepError> {
        let (dev, reg) = cx.region(&self.region)?;
        let (op, ioc) = if self.start {
            ("dma_start", "DMAPIN_IOC_START")
        } else {
            ("dma_stop", "DMAPIN_IOC_STOP")
        };
        let mut arg = DmapinCtl {
            region_id: reg.id,
            schedule: self.schedule,
            params: self.params,
            ..DmapinCtl::default()
        };
        dmapin_ioctl::ctl(dev, self.start, &mut arg)
            .map_err(|e| StepError::io(format_args!("{ioc} {}", self.region), &e))?;
        match -arg.status {
            0 => Ok(String::new()),
            libc::ETIMEDOUT => Err(StepError::new(
                libc::ETIMEDOUT,
                format!("{op} {}: no answer from the device", self.region),
            )),
            e => Err(StepError::new(
                e,
                format!("{op} {}: the device answered {}", self.region, strerror(e)),
            )),
        }
    }
}

/// DMAPIN_IOC_QUERY: the counters as the `ok` detail.
#[derive(Debug)]
struct Query {
    region: String,
}

/// `method=.. flags=0x.. npages=.. ...` in the order of struct dmapin_query.
pub fn query_detail(q: &DmapinQuery) -> String {
    format!(
        "method={} flags={:#x} npages={} npinned={} inflight={} addr={:#x} posted={} \
         completed={} dma_writes={} used_bytes={} nr_dirty={} nr_writeback={} nr_private={} \
         nr_no_mapping={} nr_maybe_pinned={}",
        method_name(q.method),
        q.flags,
        q.npages,
        q.npinned,
        q.inflight,
        q.addr,
        q.posted,
        q.completed,
        q.dma_writes,
        q.used_bytes,
        q.nr_dirty,
        q.nr_writeback,
        q.nr_private,
        q.nr_no_mapping,
        q.nr_maybe_pinned
    )
}

impl Action for Query {
    fn run(&self, cx: &mut Ctx) -> Result<String, StepError> {
        let (dev, reg) = cx.region(&self.region)?;
        let mut arg = DmapinQuery {
            region_id: reg.id,
            ..DmapinQuery::default()
        };
        dmapin_ioctl::query(dev, &mut arg)
            .map_err(|e| StepError::io(format_args!("DMAPIN_IOC_QUERY {}", self.region), &e))?;
        Ok(query_detail(&arg))
    }
}

/// DMAPIN_IOC_RELEASE; the region is forgotten once released (kept on failure, e.g.
/// ETIMEDOUT, so a later `release` can retry).
#[derive(Debug)]
struct Release {
    region: String,
    method: u32,
}

impl Action for Release {
    fn run(&self, cx: &mut Ctx) -> Result<String, StepError> {
        let (dev, reg) = cx.region(&self.region)?;
        let mut arg = abi::DmapinRelease {
            region_id: reg.id,
            method: self.method,
        };
        dmapin_ioctl::release(dev, &mut arg)
            .map_err(|e| StepError::io(format_args!("DMAPIN_IOC_RELEASE {}", self.region), &e))?;
        cx.regions.remove(&self.region);
        Ok(String::new())
    }
}
