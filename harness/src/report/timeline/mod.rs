//! The per-case timeline report (`pinvm report`, `--html` on `pinvm run` and `pinvm suite`):
//! one self-contained HTML file per case that shows, page by page, when the device wrote each
//! generation, when block writes carrying the page were submitted and completed and what they
//! carried, the disk's flushes, the agent's steps and the kernel's reports, with the verdicts'
//! evidence on the lanes they concern; and for a suite an index with the outcome matrix.
//!
//! | module | does |
//! |---|---|
//! | [`load`] | reads a results folder (verdicts.json, steps, journal, DMA log, console), bounded |
//! | [`content`] | what each block of a journaled write carried (DMA generation, torn, file stamp) |
//! | [`model`] | the pure timeline: lanes, marks and highlights, times from the job's start |
//! | [`lanes`] | lane order (verdict pages first) and grouping when there are many pages |
//! | [`html`] | the page around it: escaped header, data, inlined `assets/` style and script |

pub mod content;
pub mod html;
pub mod lanes;
pub mod load;
pub mod model;

#[cfg(test)]
mod tests;

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// File name of a case page written into its results folder.
pub const CASE_PAGE: &str = "timeline.html";
/// File name of a suite index written into a suite's results folder.
pub const INDEX_PAGE: &str = "index.html";
/// How deep below a suite's folder case folders are looked for (scenario/kernel-fs/runN).
const MAX_DEPTH: usize = 4;
/// At most this many cases in one index.
const MAX_CASES: usize = 10_000;

/// What [`report`] wrote.
#[derive(Debug)]
pub struct Written {
    /// The page to open: the case page, or the suite's index.
    pub main: PathBuf,
    /// Every case page.
    pub cases: Vec<PathBuf>,
}

/// Write the page of the case in `dir` to `out`.
pub fn case_page(dir: &Path, out: &Path) -> Result<()> {
    let files = load::load(dir)?;
    let t = model::build(&files);
    let page_dir = parent(out);
    write(out, &html::case_page(&files, &t, &page_dir))
}

fn parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn write(out: &Path, page: &str) -> Result<()> {
    std::fs::write(out, page).with_context(|| format!("writing {}", out.display()))
}

/// The report of the results folder `dir`: a case folder (it has verdicts.json) gets its page
/// at `html` (default `dir/timeline.html`); a suite's or a repeated run's folder gets a page in
/// every case folder below it and the index at `html` (default `dir/index.html`).
pub fn report(dir: &Path, html: Option<&Path>) -> Result<Written> {
    if dir.join("verdicts.json").is_file() {
        let out = html.map_or_else(|| dir.join(CASE_PAGE), Path::to_path_buf);
        case_page(dir, &out)?;
        return Ok(Written {
            main: out.clone(),
            cases: vec![out],
        });
    }
    let mut dirs = Vec::new();
    case_dirs(dir, MAX_DEPTH, &mut dirs)?;
    if dirs.is_empty() {
        anyhow::bail!(
            "{}: no verdicts.json in it or in its subfolders; give a results folder that \
             `pinvm run` or `pinvm suite` printed",
            dir.display()
        );
    }
    dirs.sort();
    dirs.truncate(MAX_CASES);
    let mut entries = Vec::new();
    for d in &dirs {
        let page = d.join(CASE_PAGE);
        case_page(d, &page)?;
        let verdicts = std::fs::read_to_string(d.join("verdicts.json"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        entries.push(html::IndexEntry { verdicts, page });
    }
    let out = html.map_or_else(|| dir.join(INDEX_PAGE), Path::to_path_buf);
    write(&out, &html::index_page(&entries, &parent(&out)))?;
    Ok(Written {
        main: out,
        cases: entries.into_iter().map(|e| e.page).collect(),
    })
}

/// Folders below `dir` (at most `depth` levels) that hold a verdicts.json.
fn case_dirs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    if depth == 0 || out.len() >= MAX_CASES {
        return Ok(());
    }
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading folder {}", dir.display()))?;
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            if p.join("verdicts.json").is_file() {
                out.push(p);
            } else {
                case_dirs(&p, depth - 1, out)?;
            }
        }
    }
    Ok(())
}
