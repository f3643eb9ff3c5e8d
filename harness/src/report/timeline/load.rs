//! Reading a case's results folder (the files `pinvm run` leaves) into [`CaseFiles`], bounded:
//! a run may leave logs far larger than a page can show, and what is cut is said in the notes.

use super::content::Request;
use anyhow::{Context, Result};
use proto::dma_log::{DmaLog, DmaRecord};
use proto::journal::Journal;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// At most this many journal records are read (the rest is counted in a note).
pub const MAX_REQUESTS: usize = 100_000;
/// At most this many DMA log records are read.
pub const MAX_DMA: usize = 200_000;
/// At most this many bytes of the console log are read.
pub const MAX_CONSOLE: u64 = 8 << 20;

/// The raw files of one case.
#[derive(Clone, Debug, Default)]
pub struct CaseFiles {
    /// The results folder.
    pub dir: PathBuf,
    /// `verdicts.json`.
    pub verdicts: Value,
    /// The workload's lines (`steps`), step 1 first.
    pub steps: Vec<String>,
    /// The block journal's requests, in journal order.
    pub requests: Vec<Request>,
    /// The DMA log's records.
    pub dma: Vec<DmaRecord>,
    /// The console log (lossy UTF-8).
    pub console: String,
    /// What could not be read, or was cut.
    pub notes: Vec<String>,
}

/// The names of the raw files a results folder may hold, in the order the header lists them.
pub const RAW_FILES: [&str; 6] = [
    "verdicts.json",
    "steps",
    "console.log",
    "journal",
    "dma.log",
    "disk.img",
];

/// Read the results folder `dir`.
pub fn load(dir: &Path) -> Result<CaseFiles> {
    let vpath = dir.join("verdicts.json");
    let text = std::fs::read_to_string(&vpath).with_context(|| {
        format!(
            "reading {}: not a case's results folder (give the folder `pinvm run` printed, or a \
             case folder inside a suite's)",
            vpath.display()
        )
    })?;
    let verdicts: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON; re-run the case", vpath.display()))?;
    let mut notes = Vec::new();
    let steps = std::fs::read_to_string(dir.join("steps"))
        .map(|s| s.lines().map(String::from).collect())
        .unwrap_or_default();
    let requests = read_journal(&dir.join("journal"), &mut notes);
    let dma = read_dma(&dir.join("dma.log"), &mut notes);
    let console = read_console(&dir.join("console.log"), &mut notes);
    Ok(CaseFiles {
        dir: dir.to_path_buf(),
        verdicts,
        steps,
        requests,
        dma,
        console,
        notes,
    })
}

fn read_journal(path: &Path, notes: &mut Vec<String>) -> Vec<Request> {
    let journal = match Journal::open(path) {
        Ok(j) => j,
        Err(e) => {
            notes.push(format!("no block journal ({}): {e}", path.display()));
            return vec![];
        }
    };
    let mut out = Vec::new();
    let mut more = 0u64;
    for r in journal.records() {
        match r {
            Ok(r) if out.len() < MAX_REQUESTS => out.push(Request::from_record(&r)),
            Ok(_) => more += 1,
            Err(e) => notes.push(format!("journal: {e}")),
        }
    }
    if more > 0 {
        notes.push(format!(
            "the journal has {more} more requests after the first {MAX_REQUESTS}; they are not shown"
        ));
    }
    out
}

fn read_dma(path: &Path, notes: &mut Vec<String>) -> Vec<DmaRecord> {
    let log = match DmaLog::open(path) {
        Ok(l) => l,
        Err(e) => {
            notes.push(format!("no DMA log ({}): {e}", path.display()));
            return vec![];
        }
    };
    let mut out = Vec::new();
    let mut more = 0u64;
    let mut records = log.records();
    for r in records.by_ref() {
        match r {
            Ok(r) if out.len() < MAX_DMA => out.push(r),
            Ok(_) => more += 1,
            Err(e) => {
                notes.push(format!("DMA log: {e}"));
                break;
            }
        }
    }
    if records.truncated() {
        notes.push("the DMA log ends inside a record (the run was cut short)".into());
    }
    if more > 0 {
        notes.push(format!(
            "the DMA log has {more} more writes after the first {MAX_DMA}; they are not shown"
        ));
    }
    out
}

fn read_console(path: &Path, notes: &mut Vec<String>) -> String {
    let mut bytes = Vec::new();
    match std::fs::File::open(path) {
        Ok(f) => {
            if let Err(e) = f.take(MAX_CONSOLE).read_to_end(&mut bytes) {
                notes.push(format!("console log {}: {e}", path.display()));
            }
            if bytes.len() as u64 == MAX_CONSOLE {
                notes.push(format!(
                    "only the first {} MiB of the console log are shown",
                    MAX_CONSOLE >> 20
                ));
            }
        }
        Err(e) => notes.push(format!("no console log ({}): {e}", path.display())),
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
