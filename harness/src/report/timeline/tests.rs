//! The timeline model and page on synthetic logs: every record lands on the lane it concerns,
//! verdicts are highlighted where their evidence points, guest text is escaped.

use super::content::Request;
use super::load::CaseFiles;
use super::model::{build, NAMED, TORN};
use proto::dma_log::{DmaRecord, Trigger};
use proto::journal::{BlockHash, JournalRecord, RequestKind};
use proto::stamp::dma::{encode, encode_page};
use serde_json::json;

fn dma(t: u64, page: u32, generation: u64, trigger: Trigger, half: u16) -> DmaRecord {
    DmaRecord {
        time_ns: t,
        region: 1,
        page,
        file_offset: u64::from(page) * 4096,
        generation,
        gpa: 0x10_0000 + u64::from(page) * 4096 + u64::from(half),
        bytes: if half == 0 && trigger == Trigger::Burst {
            4096
        } else {
            2048
        },
        page_offset: half,
        trigger,
    }
}

fn out(seq: u64, t: (u64, u64), sector: u64, blocks: &[Vec<u8>]) -> Request {
    let data: Vec<u8> = blocks.concat();
    let hashes = (0..blocks.len() as u64)
        .map(|k| BlockHash {
            sector: sector + 8 * k,
            len: 4096,
            hash: [0; 16],
        })
        .collect();
    Request::from_record(&JournalRecord {
        seq,
        kind: RequestKind::Out,
        status: 0,
        submit_ns: t.0,
        complete_ns: t.1,
        sector,
        sectors: 8 * blocks.len() as u64,
        segments: vec![],
        hashes,
        data: Some(data),
    })
}

fn flush(seq: u64, t: (u64, u64)) -> Request {
    Request::from_record(&JournalRecord {
        seq,
        kind: RequestKind::Flush,
        status: 0,
        submit_ns: t.0,
        complete_ns: t.1,
        sector: 0,
        sectors: 0,
        segments: vec![],
        hashes: vec![],
        data: None,
    })
}

fn torn_block() -> Vec<u8> {
    let mut b = encode_page(1, 0, 1, 0).to_vec();
    for s in 4..8 {
        b[s * 512..(s + 1) * 512].copy_from_slice(&encode(1, 0, s as u32, 2, 0));
    }
    b
}

fn file_block(off: u64) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    proto::stamp::file::fill("file", off, &mut b);
    b
}

/// Two pages: page 0 torn by a writeback injection (seq 2), page 1 lost (its last write, seq
/// 5, carried the file's old content), a flush, a metadata write, a kernel warning.
pub(super) fn case() -> CaseFiles {
    let console = "[    0.000000] booting\n[    1.000000] ------------[ cut here ]------------\n\
[    1.000000] WARNING: CPU: 0 PID: 1 at fs/ext4/inode.c:3587 ext4_dirty_folio+0x17/0x1e\n\
[    1.000000] RIP: 0010:ext4_dirty_folio+0x17/0x1e\n[    1.000000] ---[ end trace 0000000000000000 ]---\n";
    let verdicts = json!({
        "scenario": "S99-<b>synthetic</b>", "id": "S99", "title": "t", "kernel": "6.12",
        "fs": "ext4", "outcome": "expected_failure", "found": ["torn_block"],
        "expected": {"verdicts": ["torn_block"]},
        "verdicts": [
            {"kind": "torn_block", "count": 1, "summary": "s", "evidence": [
                {"text": "seq 2 torn", "file_offset": 0, "page": 0, "region": 1,
                 "sector": 1000, "sectors": 8, "journal_seq": 2, "times_ns": [1200]}]},
            {"kind": "lost_write", "count": 1, "summary": "s", "evidence": [
                {"text": "page 1 lost", "file_offset": 4096, "page": 1, "region": 1,
                 "sector": 1008, "sectors": 8, "generations": [2], "times_ns": [1300]}]},
            {"kind": "kernel_warning", "count": 1, "summary": "s", "evidence": [
                {"text": "WARNING in ext4_dirty_folio", "console": ["WARNING: ..."]}]}
        ],
        "vm": {
            "clock": {"first_instruction_ns": 10, "agent_start_ns": 50},
            "console_line_ns": [20, 1400, 1401, 1402, 1403],
            "steps": [
                {"kind": "done", "index": 1, "op": "pin", "detail": "pinned=2", "time_ns": 90},
                {"kind": "failed", "index": 2, "op": "fsync", "errno": 5, "message": "EIO",
                 "time_ns": 1500},
            ]
        }
    });
    CaseFiles {
        verdicts,
        steps: vec!["pin r m pin rw".into(), "fsync /mnt/f".into()],
        dma: vec![
            dma(100, 0, 1, Trigger::Burst, 0),
            dma(100, 1, 1, Trigger::Burst, 0),
            dma(1200, 0, 2, Trigger::Writeback { seq: 2 }, 2048),
            dma(1210, 0, 2, Trigger::Writeback { seq: 2 }, 0),
            dma(1300, 1, 2, Trigger::Burst, 0),
        ],
        requests: vec![
            out(
                1,
                (150, 160),
                1000,
                &[
                    encode_page(1, 0, 1, 0).to_vec(),
                    encode_page(1, 1, 1, 0).to_vec(),
                ],
            ),
            out(2, (1190, 1260), 1000, &[torn_block()]),
            flush(3, (1270, 1280)),
            out(4, (1290, 1295), 5000, &[vec![7u8; 4096]]),
            out(5, (1350, 1360), 1008, &[file_block(4096)]),
        ],
        console: console.into(),
        ..CaseFiles::default()
    }
}

#[test]
fn records_land_on_their_lanes() {
    let t = build(&case());
    assert_eq!(t.t0_ns, 50);
    assert_eq!(t.lanes.len(), 2);
    let (p0, p1) = (&t.lanes[0], &t.lanes[1]);
    assert_eq!(p0.pages[0].file_offset, 0);
    assert_eq!(p0.pages[0].sector, Some(1000));
    assert_eq!(p0.verdicts, ["torn_block"]);
    assert_eq!(p1.verdicts, ["lost_write"]);
    // DMA writes, relative to the agent's start.
    let times: Vec<i64> = p0.dma.iter().map(|d| d.0).collect();
    assert_eq!(times, [50, 1150, 1160]);
    assert_eq!(p0.dma[1].4, 3, "writeback trigger");
    // Page 0: seq 1 (generation 1) and seq 2 (torn, named by the verdict).
    let w: Vec<(u64, u8)> = p0
        .writes
        .iter()
        .map(|w| (t.reqs[w.0 as usize].0, w.3))
        .collect();
    assert_eq!(w, [(1, 0), (2, TORN | NAMED)]);
    assert_eq!(t.strings[p0.writes[0].2 as usize], "generation 1");
    assert!(t.strings[p0.writes[1].2 as usize].starts_with("TORN: sectors 0-3 generation 1"));
    // Page 1: its block of seq 1 (by stamp) and seq 5 (old file content, by its sector).
    let w: Vec<u64> = p1.writes.iter().map(|w| t.reqs[w.0 as usize].0).collect();
    assert_eq!(w, [1, 5]);
    assert!(t.strings[p1.writes[1].2 as usize].starts_with("file content 'file' of offset 4096"));
    // The flush and the metadata write go to the disk lane.
    assert_eq!(t.disk.flushes, [2]);
    assert_eq!(t.disk.other, [3]);
}

#[test]
fn verdicts_steps_and_console_are_placed() {
    let t = build(&case());
    let torn = &t.lanes[0].marks[0];
    assert_eq!(
        (torn.kind.as_str(), torn.t0, torn.t1),
        ("torn_block", 1140, 1210)
    );
    let lost = &t.lanes[1].marks[0];
    assert_eq!(
        (lost.t0, lost.t1),
        (1250, t.end),
        "a lost write runs to the end"
    );
    assert_eq!(t.end, 1450);
    assert_eq!(t.global.len(), 1);
    assert_eq!(t.global[0].kind, "kernel_warning");
    assert_eq!(t.console.len(), 1);
    let c = &t.console[0];
    assert_eq!(c.title, "WARNING in ext4_dirty_folio");
    assert_eq!((c.t, c.approx), (1400 - 50, false));
    let s: Vec<(i64, i64, bool)> = t.steps.iter().map(|s| (s.t0, s.t1, s.ok)).collect();
    assert_eq!(s, [(0, 40, true), (40, 1450, false)]);
    assert_eq!(t.steps[1].line, "fsync /mnt/f");
    assert!(t.steps[1].result.contains("EIO"));
}

#[test]
fn console_without_arrival_times_is_approximate() {
    let mut f = case();
    f.verdicts["vm"]["console_line_ns"] = json!(null);
    let t = build(&f);
    // printk 1.0 s after the first instruction (10 ns), from the agent's start (50 ns).
    assert_eq!(
        (t.console[0].t, t.console[0].approx),
        (1_000_000_000 + 10 - 50, true)
    );
    assert!(t.notes.iter().any(|n| n.contains("approximate")));
}

#[test]
fn many_pages_are_grouped_verdict_pages_first() {
    let mut f = case();
    for p in 2..200u32 {
        f.dma.push(dma(500, p, 1, Trigger::Rate, 0));
    }
    let t = build(&f);
    assert!(t.lanes.len() <= super::lanes::MAX_LANES);
    assert_eq!(t.lanes[0].verdicts, ["torn_block"]);
    assert_eq!(t.lanes[1].verdicts, ["lost_write"]);
    let pages: usize = t.lanes.iter().map(|l| l.pages.len()).sum();
    assert_eq!(pages, 200);
    assert!(t.lanes[2].pages.len() > 1);
    assert!(t.notes.iter().any(|n| n.contains("200 pages")));
}

#[test]
fn guest_text_is_escaped_in_the_page() {
    let mut f = case();
    f.console = f.console.replace(
        "ext4_dirty_folio+0x17",
        "x</script><img src=x onerror=alert(1)>+0x17",
    );
    let t = build(&f);
    let page = super::html::case_page(&f, &t, std::path::Path::new("."));
    assert!(!page.contains("<b>synthetic</b>"));
    assert!(page.contains("S99-&lt;b&gt;synthetic&lt;/b&gt;"));
    assert_eq!(
        page.matches("</script>").count(),
        2,
        "only the page's own scripts end"
    );
    assert!(!page.contains("<img"));
    assert!(
        !page.contains("src=\"http"),
        "nothing loads from the network"
    );
}
