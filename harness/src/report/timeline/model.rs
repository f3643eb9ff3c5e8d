//! The timeline of one case, built from its raw files (pure: [`CaseFiles`] in, [`Timeline`]
//! out): one lane per page of the file under test with the device's DMA writes and the block
//! writes that carried the page, the disk's flushes and other writes, the agent's steps, the
//! console's kernel reports, and the verdicts' evidence placed on the lanes they concern. Times
//! are nanoseconds from the job's start ([`Timeline::t0_ns`]). The page's script
//! (`assets/timeline.js`) draws it; this module decides what is drawn.

use super::content::{Content, Request};
use super::lanes::{arrange, Lane, PageInfo};
use super::load::CaseFiles;
use proto::journal::RequestKind;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Bytes per page of the file under test.
const PAGE: u64 = 4096;
/// At most this many console reports are shown.
pub const MAX_CONSOLE_MARKS: usize = 256;
/// At most this many lines of a console report are kept for its tooltip.
const EXCERPT_LINES: usize = 16;
/// At most this many characters of any text from the guest or the records.
pub const MAX_TEXT: usize = 600;

/// One block request of the journal, times relative to the job's start:
/// `(seq, submit, complete, sector, sectors, status, kind)` with kind 0 OUT, 1 FLUSH, 2 other.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Req(pub u64, pub i64, pub i64, pub u64, pub u64, pub u8, pub u8);

/// A DMA write on a lane: `(time, generation, bytes, page_offset, trigger, block_seq, page)`,
/// `page` the index of the page in its lane's `pages`; trigger 1 burst, 2 rate, 3 writeback.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DmaMark(pub i64, pub u64, pub u32, pub u16, pub u8, pub u64, pub u32);

/// A block write carrying a lane's page: `(request index, block's first sector, content label
/// index in `strings`, flags, page)`; flags bit 0 torn, bit 1 named by a verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WriteMark(pub u32, pub u64, pub u32, pub u8, pub u32);

/// [`WriteMark`] flag: the block mixes generations.
pub const TORN: u8 = 1;
/// [`WriteMark`] flag: a verdict's evidence names this request for this page.
pub const NAMED: u8 = 2;

/// A verdict's evidence placed on the time axis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Highlight {
    /// The verdict kind (`torn_block`, `lost_write`, `unstable_write`, ...).
    pub kind: String,
    /// Start of the span it concerns.
    pub t0: i64,
    /// End of that span (equal to `t0` for an instant).
    pub t1: i64,
    /// The evidence line.
    pub text: String,
    /// The journal request it names, if any.
    pub seq: Option<u64>,
}

/// One agent step: from the previous report's arrival (or the job's start) to its own.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepMark {
    /// When the step began (the previous report arrived).
    pub t0: i64,
    /// When its report arrived.
    pub t1: i64,
    /// 1-based step number.
    pub index: u32,
    /// The op (`pin`, `msync`, `fsync`, ...).
    pub op: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// The workload line.
    pub line: String,
    /// Its result (`ok bytes=65536`, `EIO (5): ...`).
    pub result: String,
}

/// One kernel report on the console.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConsoleMark {
    /// When its first line arrived on the host.
    pub t: i64,
    /// Its syzkaller-style title (`WARNING in ext4_dirty_folio`).
    pub title: String,
    /// Its class (`warning`, `bug`, ...).
    pub kind: String,
    /// 0-based console line.
    pub line: usize,
    /// True when the time is the guest's printk clock placed from the first instruction (no
    /// host arrival time was recorded): approximate.
    pub approx: bool,
    /// Its first lines.
    pub excerpt: Vec<String>,
}

/// The disk lane: flushes and writes that carried no page of the file.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DiskLane {
    /// Indices into [`Timeline::reqs`] of FLUSH requests.
    pub flushes: Vec<u32>,
    /// Indices of writes that carried no lane's page.
    pub other: Vec<u32>,
}

/// Everything the page draws.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Timeline {
    /// CLOCK_MONOTONIC ns of time 0.
    pub t0_ns: u64,
    /// What time 0 is ("the agent's start", ...).
    pub origin: String,
    /// The last time on the axis.
    pub end: i64,
    /// Content labels, shared by the write marks.
    pub strings: Vec<String>,
    /// Every journal request.
    pub reqs: Vec<Req>,
    /// Page lanes: pages with a verdict first; grouped when there are many.
    pub lanes: Vec<Lane>,
    /// Flushes and other writes.
    pub disk: DiskLane,
    /// The agent's steps.
    pub steps: Vec<StepMark>,
    /// Kernel reports.
    pub console: Vec<ConsoleMark>,
    /// Verdict evidence tied to no page (kernel reports, failed steps).
    pub global: Vec<Highlight>,
    /// What the timeline leaves out or approximates.
    pub notes: Vec<String>,
}

/// At most `MAX_TEXT` characters of `s`.
fn bounded(s: &str) -> String {
    crate::report::truncate_chars(s, MAX_TEXT)
}

/// The job's start: the agent's start, else the guest's first instruction, else the first
/// record.
fn origin(f: &CaseFiles) -> (u64, String) {
    let clock = &f.verdicts["vm"]["clock"];
    if let Some(t) = clock["agent_start_ns"].as_u64() {
        return (t, "the agent's start (the job's first moment)".into());
    }
    if let Some(t) = clock["first_instruction_ns"].as_u64() {
        return (t, "the guest's first instruction".into());
    }
    let first = f
        .requests
        .iter()
        .map(|r| r.submit_ns)
        .chain(f.dma.iter().map(|d| d.time_ns))
        .chain(steps_json(f).iter().filter_map(|s| s["time_ns"].as_u64()))
        .min()
        .unwrap_or(0);
    (
        first,
        "the first record (the run kept no clock landmarks)".into(),
    )
}

fn steps_json(f: &CaseFiles) -> &[Value] {
    f.verdicts["vm"]["steps"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Page-aligned file offset.
fn page_of(off: u64) -> u64 {
    off - off % PAGE
}

/// The pages of the file under test: every page the device wrote, and every page a verdict
/// names, with the disk sector each is stored at when known.
fn pages(f: &CaseFiles, requests: &[Request]) -> BTreeMap<u64, PageInfo> {
    let mut pages: BTreeMap<u64, PageInfo> = BTreeMap::new();
    for d in &f.dma {
        pages
            .entry(page_of(d.file_offset))
            .or_insert_with(|| PageInfo::new(page_of(d.file_offset), Some((d.region, d.page))));
    }
    for e in evidence(f) {
        if let Some(off) = e["file_offset"].as_u64() {
            let id = e["region"].as_u64().zip(e["page"].as_u64());
            let p = pages.entry(page_of(off)).or_insert_with(|| {
                PageInfo::new(page_of(off), id.map(|(r, p)| (r as u32, p as u32)))
            });
            if p.sector.is_none() {
                p.sector = e["sector"]
                    .as_u64()
                    .filter(|_| e["sectors"].as_u64() == Some(8));
            }
        }
    }
    // Where each page's stamped generations were written most often is its home.
    let by_id: HashMap<(u32, u32), u64> = pages
        .values()
        .filter_map(|p| Some((p.id?, p.file_offset)))
        .collect();
    let mut seen: HashMap<(u64, u64), usize> = HashMap::new();
    for b in requests.iter().flat_map(|r| &r.blocks) {
        if let Content::Dma { region, page, .. } = b.content {
            if let Some(&off) = by_id.get(&(region, page)) {
                *seen.entry((off, b.sector)).or_default() += 1;
            }
        }
    }
    for p in pages.values_mut().filter(|p| p.sector.is_none()) {
        p.sector = seen
            .iter()
            .filter(|((off, _), _)| *off == p.file_offset)
            .max_by_key(|((_, s), n)| (**n, std::cmp::Reverse(*s)))
            .map(|((_, s), _)| *s);
    }
    pages
}

/// Every evidence object of every verdict, with its verdict's kind in `"kind"`.
fn evidence(f: &CaseFiles) -> Vec<Value> {
    let mut out = Vec::new();
    for v in f.verdicts["verdicts"].as_array().into_iter().flatten() {
        for e in v["evidence"].as_array().into_iter().flatten() {
            let mut e = e.clone();
            e["kind"] = v["kind"].clone();
            out.push(e);
        }
    }
    out
}

/// Build the timeline of the case in `f`.
pub fn build(f: &CaseFiles) -> Timeline {
    let (t0, origin) = origin(f);
    let rel = |t: u64| (t as i128 - t0 as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
    let pages = pages(f, &f.requests);
    let mut lanes: BTreeMap<u64, Lane> = pages
        .values()
        .map(|p| (p.file_offset, Lane::single(p.clone())))
        .collect();
    let by_id: HashMap<(u32, u32), u64> = pages
        .values()
        .filter_map(|p| Some((p.id?, p.file_offset)))
        .collect();
    let by_sector: HashMap<u64, u64> = pages
        .values()
        .filter_map(|p| Some((p.sector?, p.file_offset)))
        .collect();
    for d in &f.dma {
        if let Some(l) = lanes.get_mut(&page_of(d.file_offset)) {
            l.dma.push(DmaMark(
                rel(d.time_ns),
                d.generation,
                d.bytes,
                d.page_offset,
                d.trigger.code(),
                match d.trigger {
                    proto::dma_log::Trigger::Writeback { seq } => seq,
                    _ => 0,
                },
                0,
            ));
        }
    }
    let mut strings = Strings::default();
    let mut reqs = Vec::with_capacity(f.requests.len());
    let mut disk = DiskLane::default();
    let mut seq_index: HashMap<u64, u32> = HashMap::new();
    for (i, r) in f.requests.iter().enumerate() {
        let i = i as u32;
        let kind = match r.kind {
            RequestKind::Out => 0,
            RequestKind::Flush => 1,
            _ => 2,
        };
        reqs.push(Req(
            r.seq,
            rel(r.submit_ns),
            rel(r.complete_ns),
            r.sector,
            r.sectors,
            r.status,
            kind,
        ));
        seq_index.insert(r.seq, i);
        if r.kind == RequestKind::Flush {
            disk.flushes.push(i);
            continue;
        }
        let mut carried = false;
        for b in &r.blocks {
            let page = match &b.content {
                Content::Dma { region, page, .. } => by_id.get(&(*region, *page)),
                _ => by_sector.get(&b.sector),
            };
            if let Some(l) = page.and_then(|p| lanes.get_mut(p)) {
                let flags = if b.content.torn() { TORN } else { 0 };
                l.writes.push(WriteMark(
                    i,
                    b.sector,
                    strings.id(b.content.label()),
                    flags,
                    0,
                ));
                carried = true;
            }
        }
        if !carried && r.kind == RequestKind::Out {
            disk.other.push(i);
        }
    }
    let end = end_of(f, &reqs, rel);
    let mut global = Vec::new();
    for e in evidence(f) {
        let h = highlight(&e, &reqs, &seq_index, rel, end);
        let req = h.seq.and_then(|s| seq_index.get(&s).copied());
        match e["file_offset"]
            .as_u64()
            .and_then(|o| lanes.get_mut(&page_of(o)))
        {
            Some(l) => l.mark(h, req),
            None => global.push(h),
        }
    }
    let mut notes = f.notes.clone();
    let console = console_marks(f, t0, rel, &mut notes);
    Timeline {
        t0_ns: t0,
        origin,
        end,
        strings: strings.list,
        reqs,
        lanes: arrange(lanes.into_values().collect(), &mut notes),
        disk,
        steps: step_marks(f, rel),
        console,
        global,
        notes,
    }
}

/// The last moment on the axis: the latest record, step or evidence time (at least 1 ns).
fn end_of(f: &CaseFiles, reqs: &[Req], rel: impl Fn(u64) -> i64) -> i64 {
    let steps = steps_json(f).iter().filter_map(|s| s["time_ns"].as_u64());
    let dma = f.dma.iter().map(|d| d.time_ns);
    reqs.iter()
        .map(|r| r.2)
        .chain(steps.chain(dma).map(&rel))
        .max()
        .unwrap_or(0)
        .max(1)
}

/// A verdict's evidence `e` on the time axis: the request it names, its times; a lost write
/// runs from the device's last write to the end (the disk never got it).
fn highlight(
    e: &Value,
    reqs: &[Req],
    seq_index: &HashMap<u64, u32>,
    rel: impl Fn(u64) -> i64,
    end: i64,
) -> Highlight {
    let kind = e["kind"].as_str().unwrap_or("verdict").to_string();
    let seq = e["journal_seq"].as_u64();
    let mut times: Vec<i64> = e["times_ns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .map(&rel)
        .collect();
    if let Some(r) = seq
        .and_then(|s| seq_index.get(&s))
        .map(|&i| &reqs[i as usize])
    {
        times.extend([r.1, r.2]);
    }
    let t0 = times.iter().copied().min().unwrap_or(end);
    let mut t1 = times.iter().copied().max().unwrap_or(end);
    if kind == "lost_write" {
        t1 = end;
    }
    Highlight {
        kind,
        t0,
        t1,
        text: bounded(e["text"].as_str().unwrap_or("")),
        seq,
    }
}

/// The agent's steps from the run record.
fn step_marks(f: &CaseFiles, rel: impl Fn(u64) -> i64) -> Vec<StepMark> {
    let mut out: Vec<StepMark> = Vec::new();
    let mut prev = 0i64;
    let mut extents: Vec<String> = Vec::new();
    for s in steps_json(f) {
        let t = s["time_ns"].as_u64().map(&rel).unwrap_or(prev);
        let index = s["index"].as_u64().unwrap_or(0) as u32;
        let (ok, result) = match s["kind"].as_str() {
            Some("done") => (true, format!("ok {}", s["detail"].as_str().unwrap_or(""))),
            Some("failed") => (
                false,
                format!(
                    "failed: errno {} {}",
                    s["errno"],
                    s["message"].as_str().unwrap_or("")
                ),
            ),
            Some("extent") => {
                extents.push(format!(
                    "extent logical={} physical={} length={} flags={}",
                    s["logical"], s["physical"], s["length"], s["flags"]
                ));
                continue;
            }
            _ => continue,
        };
        let result = if extents.is_empty() {
            result
        } else {
            format!("{result}; {}", std::mem::take(&mut extents).join("; "))
        };
        let line = (index as usize)
            .checked_sub(1)
            .and_then(|i| f.steps.get(i))
            .cloned()
            .unwrap_or_default();
        out.push(StepMark {
            t0: prev.min(t),
            t1: t,
            index,
            op: bounded(s["op"].as_str().unwrap_or("?")),
            ok,
            line: bounded(&line),
            result: bounded(&result),
        });
        prev = t;
    }
    out
}

/// The console's kernel reports, placed at the host arrival time of their first line, or
/// (older runs) at their printk time from the guest's first instruction.
fn console_marks(
    f: &CaseFiles,
    t0: u64,
    rel: impl Fn(u64) -> i64,
    notes: &mut Vec<String>,
) -> Vec<ConsoleMark> {
    let line_ns: Vec<u64> = f.verdicts["vm"]["console_line_ns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect();
    let first = f.verdicts["vm"]["clock"]["first_instruction_ns"].as_u64();
    let reports = oracle::console::parse(&f.console);
    if reports.len() > MAX_CONSOLE_MARKS {
        notes.push(format!(
            "the console has {} kernel reports; the first {MAX_CONSOLE_MARKS} are shown",
            reports.len()
        ));
    }
    let mut approx_any = false;
    let out: Vec<ConsoleMark> = reports
        .into_iter()
        .take(MAX_CONSOLE_MARKS)
        .map(|r| {
            let (t, approx) = match line_ns.get(r.line) {
                Some(&ns) => (rel(ns), false),
                None => {
                    approx_any = true;
                    let guest = (r.time_s.unwrap_or(0.0).max(0.0) * 1e9) as u64;
                    (rel(first.unwrap_or(t0).saturating_add(guest)), true)
                }
            };
            ConsoleMark {
                t,
                title: bounded(&r.title),
                kind: format!("{:?}", r.kind).to_lowercase(),
                line: r.line,
                approx,
                excerpt: r
                    .excerpt
                    .iter()
                    .take(EXCERPT_LINES)
                    .map(|l| bounded(l))
                    .collect(),
            }
        })
        .collect();
    if approx_any {
        notes.push(
            "console reports without a recorded arrival time are placed by the guest's printk \
             clock from its first instruction: approximate (the guest clock drifts)"
                .into(),
        );
    }
    out
}

/// A table of distinct strings.
#[derive(Default)]
struct Strings {
    list: Vec<String>,
    index: HashMap<String, u32>,
}

impl Strings {
    fn id(&mut self, s: String) -> u32 {
        if let Some(&i) = self.index.get(&s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(s.clone());
        self.index.insert(s, i);
        i
    }
}
