//! The page lanes: one per page of the file under test, the pages a verdict concerns first,
//! grouped into lanes of consecutive pages when there are more than [`MAX_LANES`].

use super::model::{DmaMark, Highlight, WriteMark, NAMED};
use serde::Serialize;

/// At most this many page lanes are drawn.
pub const MAX_LANES: usize = 48;
/// At most this many lanes show one page with a verdict each; further verdict pages are
/// grouped too.
pub const MAX_VERDICT_LANES: usize = 32;

/// One page of the file under test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PageInfo {
    /// Its file offset.
    pub file_offset: u64,
    /// (region, page) of the DMA device, when it wrote the page.
    pub id: Option<(u32, u32)>,
    /// Its disk sector, when known (from a verdict or the blocks that carried its stamps).
    pub sector: Option<u64>,
}

impl PageInfo {
    /// A page at `file_offset` (sector unknown yet).
    pub fn new(file_offset: u64, id: Option<(u32, u32)>) -> PageInfo {
        PageInfo {
            file_offset,
            id,
            sector: None,
        }
    }

    /// "page 3 · offset 12288 · region 1 page 3 · sector 17050".
    fn label(&self) -> String {
        let mut s = format!(
            "page {} · offset {}",
            self.file_offset / 4096,
            self.file_offset
        );
        if let Some((r, p)) = self.id {
            s.push_str(&format!(" · region {r} page {p}"));
        }
        if let Some(sec) = self.sector {
            s.push_str(&format!(" · sector {sec}"));
        }
        s
    }
}

/// One lane: a page, or a group of pages.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Lane {
    /// For people.
    pub label: String,
    /// Its pages (marks name them by index).
    pub pages: Vec<PageInfo>,
    /// The verdict kinds that concern its pages, sorted, no repeats.
    pub verdicts: Vec<String>,
    /// DMA writes into its pages, by time.
    pub dma: Vec<DmaMark>,
    /// Block writes that carried its pages, by submission.
    pub writes: Vec<WriteMark>,
    /// Verdict evidence on its pages.
    pub marks: Vec<Highlight>,
}

impl Lane {
    /// The lane of one page, empty.
    pub fn single(p: PageInfo) -> Lane {
        Lane {
            label: p.label(),
            pages: vec![p],
            verdicts: vec![],
            dma: vec![],
            writes: vec![],
            marks: vec![],
        }
    }

    /// Add verdict evidence; `req` is the index of the request it names, whose writes on
    /// this lane are then flagged [`NAMED`].
    pub fn mark(&mut self, h: Highlight, req: Option<u32>) {
        if !self.verdicts.contains(&h.kind) {
            self.verdicts.push(h.kind.clone());
            self.verdicts.sort();
        }
        for w in self.writes.iter_mut().filter(|w| Some(w.0) == req) {
            w.3 |= NAMED;
        }
        self.marks.push(h);
    }

    /// One lane holding every page of `lanes` (in order), marks merged by time.
    fn merge(lanes: Vec<Lane>) -> Lane {
        let first = lanes.first().map(|l| l.pages[0].file_offset).unwrap_or(0);
        let last = lanes.last().map(|l| l.pages[0].file_offset).unwrap_or(0);
        let mut out = Lane {
            label: format!("{} pages · offsets {first}-{}", lanes.len(), last + 4095),
            pages: vec![],
            verdicts: vec![],
            dma: vec![],
            writes: vec![],
            marks: vec![],
        };
        for l in lanes {
            let base = out.pages.len() as u32;
            out.pages.extend(l.pages);
            out.dma.extend(l.dma.into_iter().map(|mut d| {
                d.6 += base;
                d
            }));
            out.writes.extend(l.writes.into_iter().map(|mut w| {
                w.4 += base;
                w
            }));
            out.marks.extend(l.marks);
            out.verdicts.extend(l.verdicts);
        }
        out.verdicts.sort();
        out.verdicts.dedup();
        out.dma.sort_by_key(|d| d.0);
        out.writes.sort_by_key(|w| w.0);
        out
    }
}

/// `lanes` (one per page, by file offset) in drawing order: pages with a verdict first, the
/// others after; when there are more than [`MAX_LANES`], the pages past the first
/// [`MAX_VERDICT_LANES`] verdict pages are grouped, consecutive pages together, so that at
/// most [`MAX_LANES`] lanes remain (a note says so).
pub fn arrange(lanes: Vec<Lane>, notes: &mut Vec<String>) -> Vec<Lane> {
    let (mut flagged, others): (Vec<Lane>, Vec<Lane>) =
        lanes.into_iter().partition(|l| !l.verdicts.is_empty());
    if flagged.len() + others.len() <= MAX_LANES {
        flagged.extend(others);
        return flagged;
    }
    let total = flagged.len() + others.len();
    let rest_flagged = flagged.split_off(flagged.len().min(MAX_VERDICT_LANES));
    let budget = MAX_LANES - flagged.len();
    let rest = rest_flagged.len() + others.len();
    let size = rest.div_ceil(budget.max(1));
    for group in [rest_flagged, others] {
        let mut it = group.into_iter().peekable();
        while it.peek().is_some() {
            let chunk: Vec<Lane> = it.by_ref().take(size).collect();
            flagged.push(Lane::merge(chunk));
        }
    }
    notes.push(format!(
        "{total} pages: pages past the first {} with a verdict are drawn {size} to a lane",
        flagged.iter().filter(|l| l.pages.len() == 1).count()
    ));
    flagged
}
