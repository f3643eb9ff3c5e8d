//! Each verdict with a positive and a negative synthetic case (no VM).

use crate::inputs::{FileExtent, FileMap, Inputs, TimedStep, PAGE};
use crate::verdict::VerdictKind;
use crate::{analyze, Analysis};
use proto::agent::StepReport;
use proto::dma_log::{DmaRecord, Trigger};
use proto::journal::JournalRecord;
use proto::journal::{RequestKind, Segment};
use proto::stamp::dma::encode_page;

/// The target file: 4 pages at disk offset 1 MiB; page p of region 0 lives at gpa 0x10_0000 + p*4K.
const DEV: u64 = 1 << 20;
const GPA: u64 = 0x10_0000;

fn dma(page: u32, generation: u64, time_ns: u64) -> DmaRecord {
    DmaRecord {
        time_ns,
        region: 0,
        page,
        file_offset: u64::from(page) * PAGE,
        generation,
        gpa: GPA + u64::from(page) * PAGE,
        bytes: 4096,
        page_offset: 0,
        trigger: Trigger::Burst,
    }
}

fn out(seq: u64, page: u32, data: Vec<u8>, submit_ns: u64, complete_ns: u64) -> JournalRecord {
    JournalRecord {
        seq,
        kind: RequestKind::Out,
        status: 0,
        submit_ns,
        complete_ns,
        sector: (DEV + u64::from(page) * PAGE) / 512,
        sectors: data.len() as u64 / 512,
        segments: vec![Segment {
            addr: GPA + u64::from(page) * PAGE,
            len: data.len() as u32,
        }],
        hashes: vec![],
        data: Some(data),
    }
}

fn page(p: u32, g: u64) -> Vec<u8> {
    encode_page(0, p, g, 1).to_vec()
}

/// Sectors 0..4 of generation `a`, 4..8 of generation `b`.
fn torn_page(p: u32, a: u64, b: u64) -> Vec<u8> {
    let mut v = page(p, a);
    v[2048..].copy_from_slice(&page(p, b)[2048..]);
    v
}

fn image_with(pages: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut img = vec![0u8; (DEV + 4 * PAGE) as usize];
    for (p, d) in pages {
        let at = (DEV + u64::from(*p) * PAGE) as usize;
        img[at..at + 4096].copy_from_slice(d);
    }
    img
}

fn file() -> FileMap {
    FileMap {
        extents: vec![FileExtent {
            logical: 0,
            device: DEV,
            length: 4 * PAGE,
            flags: 0,
        }],
        unmapped: vec![],
    }
}

fn step(index: u32, line: &str, time_ns: u64) -> TimedStep {
    let op = line.split_whitespace().next().unwrap().to_string();
    TimedStep {
        line: line.into(),
        report: StepReport::Done {
            index,
            op,
            detail: String::new(),
        },
        time_ns,
    }
}

fn failed(index: u32, line: &str, errno: i32, time_ns: u64) -> TimedStep {
    let op = line.split_whitespace().next().unwrap().to_string();
    TimedStep {
        line: line.into(),
        report: StepReport::Failed {
            index,
            op,
            errno,
            message: "boom".into(),
        },
        time_ns,
    }
}

fn kinds(a: &Analysis) -> Vec<VerdictKind> {
    a.kinds()
}

#[test]
fn torn_block_in_a_journaled_write() {
    let img = image_with(&[(0, page(0, 2))]);
    let i = Inputs {
        dma: vec![dma(0, 1, 10), dma(0, 2, 20)],
        journal: vec![
            out(1, 0, torn_page(0, 1, 2), 15, 25),
            out(2, 0, page(0, 2), 30, 31),
        ],
        file: Some(file()),
        image: Some(&img),
        ..Inputs::default()
    };
    let a = analyze(&i);
    let v = a
        .verdicts
        .iter()
        .find(|v| v.kind == VerdictKind::TornBlock)
        .unwrap();
    assert_eq!(v.count, 1);
    let e = &v.evidence[0];
    assert_eq!(e.journal_seq, Some(1));
    assert_eq!(e.generations, vec![1, 1, 1, 1, 2, 2, 2, 2]);
    assert_eq!(e.sector, Some(DEV / 512));
    assert!(
        e.text.contains("the final image holds generation 2"),
        "{}",
        e.text
    );
    // Healed: the last generation is on disk, so no lost write.
    assert!(!a.has(VerdictKind::LostWrite), "{a:#?}");
}

#[test]
fn torn_block_on_the_final_image() {
    let img = image_with(&[(1, torn_page(1, 3, 4))]);
    let i = Inputs {
        dma: vec![dma(1, 3, 10), dma(1, 4, 20)],
        file: Some(file()),
        image: Some(&img),
        ..Inputs::default()
    };
    let a = analyze(&i);
    assert!(a.has(VerdictKind::TornBlock), "{a:#?}");
    // The mix is older than generation 4 in half the block: also a lost write.
    assert!(a.has(VerdictKind::LostWrite));
}

#[test]
fn clean_run_has_no_verdict() {
    let img = image_with(&[(0, page(0, 2)), (1, page(1, 2))]);
    let i = Inputs {
        dma: vec![dma(0, 1, 10), dma(1, 1, 11), dma(0, 2, 20), dma(1, 2, 21)],
        journal: vec![out(1, 0, page(0, 1), 12, 13), out(2, 0, page(0, 2), 30, 31)],
        file: Some(file()),
        image: Some(&img),
        steps: vec![
            step(1, "release r dirty_lock", 25),
            step(2, "fsync /mnt/f", 40),
        ],
        console: "[    1.000000] Linux version 6.12\n[    2.000000] BUG: arch topology borken\n",
        ..Inputs::default()
    };
    let a = analyze(&i);
    assert!(a.verdicts.is_empty(), "{a:#?}");
    assert_eq!(a.stats.pages_checked_on_disk, 2);
    assert_eq!(a.stats.pages_with_dma, 2);
}

#[test]
fn lost_write_when_the_disk_keeps_an_older_generation() {
    let img = image_with(&[(2, page(2, 1))]);
    let i = Inputs {
        dma: vec![dma(2, 1, 10), dma(2, 2, 20)],
        file: Some(file()),
        image: Some(&img),
        steps: vec![step(7, "release r dirty_lock", 30), step(8, "fsync /mnt/f", 40)],
        console: "[ 3.1] EXT4-fs warning (device vda): mpage_prepare_extent_to_map:2526: inode #12: comm kworker: page 2 does not have buffers attached\n",
        ..Inputs::default()
    };
    let a = analyze(&i);
    let v = a
        .verdicts
        .iter()
        .find(|v| v.kind == VerdictKind::LostWrite)
        .unwrap();
    let e = &v.evidence[0];
    assert_eq!((e.page, e.file_offset), (Some(2), Some(2 * PAGE)));
    assert_eq!(e.generations, vec![1, 2]);
    assert!(
        e.text.contains("`fsync /mnt/f` (step 8) reported success"),
        "{}",
        e.text
    );
    assert!(v
        .evidence
        .iter()
        .any(|e| e.text.contains("does not have buffers attached")));
}

#[test]
fn dma_after_the_final_release_is_not_expected_on_disk() {
    let img = image_with(&[(2, page(2, 1))]);
    let i = Inputs {
        dma: vec![dma(2, 1, 10), dma(2, 2, 50)],
        file: Some(file()),
        image: Some(&img),
        steps: vec![step(1, "release r dirty_lock", 30)],
        ..Inputs::default()
    };
    assert!(!analyze(&i).has(VerdictKind::LostWrite));
}

#[test]
fn lost_write_over_a_hole_and_expected_loss_after_a_punch() {
    let img = image_with(&[]);
    let holey = FileMap {
        extents: vec![FileExtent {
            logical: 0,
            device: DEV,
            length: PAGE,
            flags: 0,
        }],
        unmapped: vec![],
    };
    let mut i = Inputs {
        dma: vec![dma(0, 1, 10), dma(3, 1, 10)],
        file: Some(holey),
        image: Some(&img),
        ..Inputs::default()
    };
    // Page 0's block is zeros (not the device's data), page 3 is a hole: both lost.
    let a = analyze(&i);
    let v = a
        .verdicts
        .iter()
        .find(|v| v.kind == VerdictKind::LostWrite)
        .unwrap();
    assert_eq!(v.count, 2);
    assert!(
        v.evidence[1].text.contains("a hole"),
        "{}",
        v.evidence[1].text
    );
    // The workload punched page 3 after pinning: expected, noted, not a verdict; page 0 is
    // still lost.
    i.steps = vec![
        step(1, "pin r m pin rw", 5),
        step(2, "punch /mnt/f 12K 4K", 6),
    ];
    let a = analyze(&i);
    let v = a
        .verdicts
        .iter()
        .find(|v| v.kind == VerdictKind::LostWrite)
        .unwrap();
    assert_eq!(v.count, 1);
    assert!(
        a.notes.iter().any(|n| n.contains("punch /mnt/f 12K 4K")),
        "{:?}",
        a.notes
    );
}

#[test]
fn stale_block_when_an_older_generation_overwrites_a_newer_one() {
    let img = image_with(&[(0, page(0, 1))]);
    let journal = vec![out(1, 0, page(0, 2), 25, 26), out(2, 0, page(0, 1), 30, 31)];
    let mut i = Inputs {
        dma: vec![dma(0, 1, 10), dma(0, 2, 20)],
        journal,
        file: Some(file()),
        image: Some(&img),
        ..Inputs::default()
    };
    let a = analyze(&i);
    let v = a
        .verdicts
        .iter()
        .find(|v| v.kind == VerdictKind::StaleBlock)
        .unwrap();
    assert_eq!(v.evidence[0].journal_seq, Some(2));
    assert_eq!(v.evidence[0].generations, vec![1, 2]);
    // In order: no stale block.
    i.journal = vec![out(1, 0, page(0, 1), 12, 13), out(2, 0, page(0, 2), 30, 31)];
    assert!(!analyze(&i).has(VerdictKind::StaleBlock));
}

#[test]
fn unstable_write_when_dma_lands_during_a_block_write() {
    let mut d = dma(1, 5, 100);
    d.trigger = Trigger::Writeback { seq: 9 };
    d.bytes = 2048;
    d.gpa += 2048;
    let mut i = Inputs {
        dma: vec![d],
        journal: vec![out(9, 1, page(1, 4), 90, 110)],
        ..Inputs::default()
    };
    let a = analyze(&i);
    let v = a
        .verdicts
        .iter()
        .find(|v| v.kind == VerdictKind::UnstableWrite)
        .unwrap();
    assert_eq!(v.evidence[0].journal_seq, Some(9));
    assert_eq!(v.evidence[0].sector, Some((DEV + PAGE) / 512 + 4));
    // The same DMA after the write completed, or into another page: stable.
    i.journal = vec![out(9, 1, page(1, 4), 90, 99)];
    assert!(!analyze(&i).has(VerdictKind::UnstableWrite));
    i.journal = vec![out(9, 2, page(2, 4), 90, 110)];
    assert!(!analyze(&i).has(VerdictKind::UnstableWrite));
}

#[test]
fn fs_error_from_a_step_errno_or_the_console() {
    let i = Inputs {
        steps: vec![failed(4, "fsync /mnt/f", 117, 10)],
        ..Inputs::default()
    };
    let a = analyze(&i);
    assert_eq!(kinds(&a), vec![VerdictKind::FsError]);
    let i = Inputs {
        console: "[   12.5] BTRFS warning (device vda): csum failed root 5 ino 257 off 0 csum 0x8941f998 expected csum 0x1b6b2ec8 mirror 1\n",
        ..Inputs::default()
    };
    assert_eq!(kinds(&analyze(&i)), vec![VerdictKind::FsError]);
    // Other failures are step failures, not filesystem errors.
    let i = Inputs {
        steps: vec![failed(2, "pin r m pin_longterm rw", 14, 10)],
        ..Inputs::default()
    };
    assert_eq!(kinds(&analyze(&i)), vec![VerdictKind::StepFailed]);
    let i = Inputs {
        steps: vec![step(2, "fsync /mnt/f", 10)],
        console: "[ 1.0] EXT4-fs (vda): mounted filesystem with ordered data mode\n",
        ..Inputs::default()
    };
    assert!(analyze(&i).verdicts.is_empty());
}

#[test]
fn kernel_reports_and_hangs() {
    let warn = "[    5.100000] ------------[ cut here ]------------\n\
[    5.100001] WARNING: CPU: 1 PID: 57 at fs/ext4/inode.c:3587 ext4_dirty_folio+0x3a/0x40\n\
[    5.100002] Modules linked in:\n\
[    5.100003] RIP: 0010:ext4_dirty_folio+0x3a/0x40\n\
[    5.100004] ---[ end trace 0000000000000000 ]---\n";
    let i = Inputs {
        console: warn,
        ..Inputs::default()
    };
    let a = analyze(&i);
    assert_eq!(kinds(&a), vec![VerdictKind::KernelWarning]);
    assert!(
        a.verdicts[0]
            .summary
            .contains("WARNING in ext4_dirty_folio"),
        "{}",
        a.verdicts[0].summary
    );
    assert!(!a.verdicts[0].evidence[0].console.is_empty());
    let bug =
        "[    7.0] kernel BUG at fs/ext4/inode.c:2620!\n[    7.0] invalid opcode: 0000 [#1] SMP\n";
    let i = Inputs {
        console: bug,
        ..Inputs::default()
    };
    assert_eq!(kinds(&analyze(&i)), vec![VerdictKind::KernelBug]);
    let i = Inputs {
        watchdog: Some("the command did not finish within 60 s; vCPU0 at default_idle".into()),
        ..Inputs::default()
    };
    assert_eq!(kinds(&analyze(&i)), vec![VerdictKind::Hang]);
    assert!(analyze(&Inputs::default()).verdicts.is_empty());
}

#[test]
fn verdict_names_round_trip() {
    for k in VerdictKind::ALL {
        assert_eq!(VerdictKind::from_name(k.name()), Some(k));
        assert_eq!(serde_json::to_value(k).unwrap(), k.name());
    }
}

#[test]
fn a_guest_read_back_mismatch_is_a_lost_write_not_an_fs_error() {
    let mut t = failed(9, "verify /mnt/f 64K stamp:s", 5, 10);
    if let StepReport::Failed { message, .. } = &mut t.report {
        *message = "/mnt/f: mismatch at offset 4096: expected 0x41, found 0x42".into();
    }
    let i = Inputs {
        steps: vec![t],
        ..Inputs::default()
    };
    assert_eq!(kinds(&analyze(&i)), vec![VerdictKind::LostWrite]);
    // A read error in verify is a filesystem error.
    let i = Inputs {
        steps: vec![failed(9, "verify /mnt/f 64K stamp:s", 5, 10)],
        ..Inputs::default()
    };
    assert_eq!(kinds(&analyze(&i)), vec![VerdictKind::FsError]);
}

/// The guest reports the extents: absurd ones (a length of u64::MAX, offsets at the top of the
/// address space) must neither overflow nor make the oracle walk them page by page.
#[test]
fn hostile_extents_are_judged_quickly_and_without_overflow() {
    let img = image_with(&[(1, torn_page(1, 3, 4))]);
    let hostile = FileMap {
        extents: vec![
            FileExtent {
                logical: u64::MAX - PAGE,
                device: u64::MAX - 1,
                length: u64::MAX,
                flags: 0,
            },
            FileExtent {
                logical: 0,
                device: u64::MAX - 2 * PAGE,
                length: u64::MAX,
                flags: 0,
            },
        ],
        unmapped: vec![],
    };
    let i = Inputs {
        dma: vec![dma(1, 3, 10), dma(1, 4, 20)],
        file: Some(hostile),
        image: Some(&img),
        ..Inputs::default()
    };
    let t0 = std::time::Instant::now();
    let a = analyze(&i);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        t0.elapsed()
    );
    // The page maps past the end of the image: not on disk there, so lost; never a panic.
    assert!(a.has(VerdictKind::LostWrite), "{a:#?}");
    // The well-formed map still finds the torn block.
    let i = Inputs {
        file: Some(file()),
        ..i
    };
    assert!(analyze(&i).has(VerdictKind::TornBlock));
}

/// Pages in extents the analysis could not place on the disk (over its budget) are neither
/// lost writes (as holes would be) nor counted as checked: a note says how many.
#[test]
fn pages_in_unplaced_extents_are_noted_not_lost() {
    let img = image_with(&[(0, page(0, 1))]);
    let map = FileMap {
        extents: vec![FileExtent {
            logical: 0,
            device: DEV,
            length: PAGE,
            flags: 0,
        }],
        // Overlapping and out of order, as a hostile extent list may leave them.
        unmapped: vec![(3 * PAGE, PAGE), (PAGE, 2 * PAGE), (2 * PAGE, u64::MAX)],
    };
    let i = Inputs {
        dma: vec![dma(0, 1, 10), dma(1, 1, 10), dma(2, 1, 10), dma(3, 1, 10)],
        file: Some(map.clone()),
        image: Some(&img),
        ..Inputs::default()
    };
    let a = analyze(&i);
    assert!(!a.has(VerdictKind::LostWrite), "{a:#?}");
    assert_eq!(a.stats.pages_checked_on_disk, 1);
    assert!(
        a.notes
            .iter()
            .any(|n| n.contains("3 pages the device wrote are not judged")),
        "{:?}",
        a.notes
    );
    // Without the unplaced ranges the same pages are holes: lost.
    let i = Inputs {
        file: Some(FileMap {
            unmapped: vec![],
            ..map
        }),
        ..i
    };
    let a = analyze(&i);
    assert_eq!(
        a.verdicts
            .iter()
            .find(|v| v.kind == VerdictKind::LostWrite)
            .map(|v| v.count),
        Some(3)
    );
}

#[test]
fn ranges_merge_and_answer_by_binary_search() {
    use crate::inputs::Ranges;
    let r = Ranges::new(&[(10, 5), (0, 0), (12, 10), (100, 1), (u64::MAX - 1, 10)]);
    for (off, want) in [
        (9, false),
        (10, true),
        (21, true),
        (22, false),
        (100, true),
        (101, false),
        (u64::MAX - 1, true),
        (u64::MAX, false),
        (0, false),
    ] {
        assert_eq!(r.contains(off), want, "{off}");
    }
    assert!(Ranges::new(&[]).is_empty());
}

fn flush(seq: u64, submit_ns: u64, complete_ns: u64) -> JournalRecord {
    JournalRecord {
        seq,
        kind: RequestKind::Flush,
        status: 0,
        submit_ns,
        complete_ns,
        sector: 0,
        sectors: 0,
        segments: vec![],
        hashes: vec![],
        data: None,
    }
}

/// The S12 shape: map and pin the file, the device writes generation 2 of page 0, fsync.
fn fsync_after_dma(fsync: TimedStep) -> Vec<TimedStep> {
    vec![
        step(1, "mmap m /mnt/f 16K", 1),
        step(2, "pin r m pin rw", 2),
        step(3, "sleep 300", 50),
        fsync,
    ]
}

fn acked(a: &Analysis) -> Option<&crate::Verdict> {
    a.verdicts
        .iter()
        .find(|v| v.kind == VerdictKind::AckedNotPersisted)
}

#[test]
fn fsync_acked_after_a_flush_while_the_page_was_not_on_disk() {
    // The device wrote generation 2 at 30 ns; the fsync ran from 50 to 100 ns, its FLUSH
    // completed at 90 ns; no write of page 0 reached the disk before it.
    let i = Inputs {
        dma: vec![dma(0, 1, 20), dma(0, 2, 30)],
        journal: vec![flush(1, 85, 90)],
        steps: fsync_after_dma(step(4, "fsync /mnt/f", 100)),
        ..Inputs::default()
    };
    let a = analyze(&i);
    assert_eq!(kinds(&a), vec![VerdictKind::AckedNotPersisted]);
    let v = acked(&a).unwrap();
    let e = &v.evidence[0];
    assert_eq!((e.page, e.generations.clone()), (Some(0), vec![2]));
    assert_eq!(e.journal_seq, Some(1));
    assert_eq!(e.times_ns, vec![30, 90, 100]);
    assert!(
        e.text.contains("no write of it ever reached the disk"),
        "{}",
        e.text
    );
    // The same generation written after the fsync: still acknowledged too early, and the
    // evidence says when it arrived.
    let i = Inputs {
        journal: vec![flush(1, 85, 90), out(2, 0, page(0, 2), 150, 160)],
        ..i
    };
    let a = analyze(&i);
    let e = &acked(&a).unwrap().evidence[0];
    assert!(
        e.text.contains("only later (write seq 2 at 160 ns)"),
        "{}",
        e.text
    );
    // msync of the pinned mapping is a durability claim as well.
    let i = Inputs {
        steps: fsync_after_dma(step(4, "msync m", 100)),
        ..i
    };
    assert!(acked(&analyze(&i)).is_some());
}

#[test]
fn no_acked_not_persisted_when_the_claim_does_not_hold() {
    let base = || Inputs {
        dma: vec![dma(0, 2, 30)],
        journal: vec![flush(1, 85, 90)],
        steps: fsync_after_dma(step(4, "fsync /mnt/f", 100)),
        ..Inputs::default()
    };
    // The page's generation reached the disk before the FLUSH (a newer one counts too).
    for g in [2, 3] {
        let mut i = base();
        i.journal.insert(0, out(2, 0, page(0, g), 60, 70));
        assert!(acked(&analyze(&i)).is_none(), "generation {g} on disk");
    }
    // No FLUSH completed while the fsync ran (one before it does not count).
    let mut i = base();
    i.journal = vec![flush(1, 40, 45)];
    assert!(acked(&analyze(&i)).is_none());
    // The fsync failed.
    let mut i = base();
    i.steps = fsync_after_dma(failed(4, "fsync /mnt/f", 117, 100));
    assert!(acked(&analyze(&i)).is_none());
    // An fsync of another file claims nothing about the pinned one.
    let mut i = base();
    i.steps = fsync_after_dma(step(4, "fsync /mnt/g", 100));
    assert!(acked(&analyze(&i)).is_none());
    // The device wrote only after the fsync had started.
    let mut i = base();
    i.dma = vec![dma(0, 2, 60)];
    assert!(acked(&analyze(&i)).is_none());
    // A torn write carried generation 2 (half of it) before the FLUSH: torn_block's case.
    let mut i = base();
    i.journal.insert(0, out(2, 0, torn_page(0, 1, 2), 60, 70));
    let a = analyze(&i);
    assert!(acked(&a).is_none());
    assert!(a.has(VerdictKind::TornBlock));
    // The workload punched the page out after pinning it: an expected loss.
    let mut i = base();
    i.steps = fsync_after_dma(step(4, "fsync /mnt/f", 100));
    i.steps.insert(2, step(3, "punch /mnt/f 0 4K", 10));
    assert!(acked(&analyze(&i)).is_none());
    i.steps[2] = step(3, "punch /mnt/f 4096 4K", 10);
    assert!(acked(&analyze(&i)).is_some(), "another page was punched");
}

#[test]
fn hang_says_whether_the_kernel_reported_it_or_the_guest_stopped_answering() {
    let hung = "[   20.0] INFO: task pinvm-agent:1 blocked for more than 10 seconds.\n\
                [   20.0]       Not tainted 6.12.117 #1\n\
                [   20.0] \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.\n\
                [   20.0] task:pinvm-agent     state:D stack:0     pid:1     tgid:1     ppid:0      flags:0x00004000\n\
                [   20.0] Call Trace:\n\
                [   20.0]  <TASK>\n\
                [   20.0]  __schedule+0x1/0x2\n\
                [   20.0]  schedule+0x1/0x2\n\
                [   20.0]  balance_dirty_pages+0x1/0x2\n\
                [   20.0]  </TASK>\n";
    let hang = |a: &Analysis| {
        a.verdicts
            .iter()
            .find(|v| v.kind == VerdictKind::Hang)
            .unwrap()
            .clone()
    };
    let console_only = hang(&analyze(&Inputs {
        console: hung,
        ..Inputs::default()
    }));
    assert!(
        console_only
            .summary
            .contains("the kernel reported 1 blocked task")
            && console_only.summary.contains("the guest kept answering"),
        "{}",
        console_only.summary
    );
    assert!(console_only.evidence[0]
        .text
        .starts_with("the kernel reported: INFO: task hung in"));
    assert!(
        !console_only.evidence[0].console.is_empty(),
        "the stack is kept"
    );
    let w =
        "the command did not finish within 45 s; step 19 `write /mnt/g 2M stamp:g` never finished";
    let watchdog_only = hang(&analyze(&Inputs {
        watchdog: Some(w.into()),
        ..Inputs::default()
    }));
    assert!(
        watchdog_only
            .summary
            .contains("the guest stopped answering")
            && watchdog_only.summary.contains("no blocked task"),
        "{}",
        watchdog_only.summary
    );
    let both = hang(&analyze(&Inputs {
        console: hung,
        watchdog: Some(w.into()),
        ..Inputs::default()
    }));
    assert_eq!(both.count, 2);
    assert!(
        both.summary.contains("then the guest stopped answering"),
        "{}",
        both.summary
    );
    assert!(both.evidence[1]
        .text
        .starts_with("the guest stopped answering: watchdog: "));
}
