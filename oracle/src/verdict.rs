//! What the oracle concludes: verdict kinds, the evidence behind each, and the whole analysis.

use serde::Serialize;

/// The kinds of verdict. The names are the words `verdicts.json`, the scenario files and the
/// suite reports use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    /// A disk block that mixes DMA generations of one page (in a write the host saw, or on the
    /// final image).
    TornBlock,
    /// The final on-disk generation of a page is older than the last one the device wrote
    /// before the final release and fsync.
    LostWrite,
    /// A write put an older generation of a page over a newer one already on disk.
    StaleBlock,
    /// The guest's fsync (or msync, sync) of the pinned file returned 0, and the disk FLUSH
    /// the host completed during it came after the device wrote a generation of a pinned page
    /// that had not reached the disk: data acknowledged as durable that was not.
    AckedNotPersisted,
    /// The device wrote into a page while a block write of that page was in flight.
    UnstableWrite,
    /// The guest saw EIO, EUCLEAN or EBADMSG, or the kernel reported a filesystem error or a
    /// checksum failure.
    FsError,
    /// The kernel reported a BUG (`kernel BUG at`, `BUG: ...`), KASAN or UBSAN.
    KernelBug,
    /// The kernel printed a WARNING (WARN_ON and friends, lockdep).
    KernelWarning,
    /// The kernel oopsed (general protection fault, page fault, other oops) or panicked.
    KernelOops,
    /// The guest stopped making progress (watchdog, hung task, RCU stall, soft lockup).
    Hang,
    /// A workload step failed for another reason than a filesystem error (for example a pin
    /// that a kernel version refuses, when the scenario expected it to succeed).
    StepFailed,
}

impl VerdictKind {
    /// Every kind, in declaration order (the order reports list them in).
    pub const ALL: [VerdictKind; 11] = [
        VerdictKind::TornBlock,
        VerdictKind::LostWrite,
        VerdictKind::StaleBlock,
        VerdictKind::AckedNotPersisted,
        VerdictKind::UnstableWrite,
        VerdictKind::FsError,
        VerdictKind::KernelBug,
        VerdictKind::KernelWarning,
        VerdictKind::KernelOops,
        VerdictKind::Hang,
        VerdictKind::StepFailed,
    ];

    /// The kind's word in `verdicts.json`, scenario files and reports (`torn_block`, ...).
    pub fn name(self) -> &'static str {
        match self {
            VerdictKind::TornBlock => "torn_block",
            VerdictKind::LostWrite => "lost_write",
            VerdictKind::StaleBlock => "stale_block",
            VerdictKind::AckedNotPersisted => "acked_not_persisted",
            VerdictKind::UnstableWrite => "unstable_write",
            VerdictKind::FsError => "fs_error",
            VerdictKind::KernelBug => "kernel_bug",
            VerdictKind::KernelWarning => "kernel_warning",
            VerdictKind::KernelOops => "kernel_oops",
            VerdictKind::Hang => "hang",
            VerdictKind::StepFailed => "step_failed",
        }
    }

    /// The kind whose [`name`](Self::name) is `s`; None for any other word.
    pub fn from_name(s: &str) -> Option<VerdictKind> {
        VerdictKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Data corruption or loss, as opposed to a kernel report or a failed step.
    pub fn is_data(self) -> bool {
        matches!(
            self,
            VerdictKind::TornBlock
                | VerdictKind::LostWrite
                | VerdictKind::StaleBlock
                | VerdictKind::AckedNotPersisted
                | VerdictKind::UnstableWrite
                | VerdictKind::FsError
        )
    }
}

impl std::fmt::Display for VerdictKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One piece of evidence: a line for people plus the facts it rests on, for tools.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// One line saying what was found, for people.
    pub text: String,
    /// dmapin region id of the page concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<u32>,
    /// Page index within that region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// Byte offset of the page in the target file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_offset: Option<u64>,
    /// First disk sector (512 bytes) concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sector: Option<u64>,
    /// Number of disk sectors concerned, from [`sector`](Self::sector).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sectors: Option<u64>,
    /// DMA generations the finding is about, in the order its text names them (a torn
    /// block's per-sector generations; the generation found, then the one it replaced or the
    /// one expected).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub generations: Vec<u64>,
    /// Block journal request sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_seq: Option<u64>,
    /// CLOCK_MONOTONIC ns (the clock of the journal and the DMA log).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub times_ns: Vec<u64>,
    /// Console lines behind the finding (a crash report's excerpt, a filesystem message).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub console: Vec<String>,
}

impl Evidence {
    /// Evidence that is only a line of text, with no facts attached.
    pub fn new(text: impl Into<String>) -> Evidence {
        Evidence {
            text: text.into(),
            ..Evidence::default()
        }
    }
}

/// At most this many evidence items are kept per verdict (the count says how many there were).
pub const MAX_EVIDENCE: usize = 32;

/// One verdict with its evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// What was found.
    pub kind: VerdictKind,
    /// One line: the first case and how many there were.
    pub summary: String,
    /// How many cases were found (evidence keeps the first [`MAX_EVIDENCE`]).
    pub count: usize,
    /// The first cases (at most [`MAX_EVIDENCE`]), in the order the check found them.
    pub evidence: Vec<Evidence>,
}

impl Verdict {
    /// A verdict from its cases (None when there are none). `what` names one case in the
    /// summary, e.g. "torn block write".
    pub fn from_cases(kind: VerdictKind, what: &str, cases: Vec<Evidence>) -> Option<Verdict> {
        let first = cases.first()?;
        let count = cases.len();
        let summary = if count == 1 {
            format!("{kind}: {}", first.text)
        } else {
            format!("{kind}: {count} × {what}; first: {}", first.text)
        };
        Some(Verdict {
            kind,
            summary,
            count,
            evidence: cases.into_iter().take(MAX_EVIDENCE).collect(),
        })
    }
}

/// Everything the oracle concluded about one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Analysis {
    /// The verdicts found, in the order the checks ran (each check yields at most one verdict
    /// per kind).
    pub verdicts: Vec<Verdict>,
    /// What could not be judged and why, where the guest's word disagrees with what the host
    /// saw, and losses the workload itself asked for (a punch, truncate or O_DIRECT write over
    /// a pinned range).
    pub notes: Vec<String>,
    /// How much there was to look at.
    pub stats: Stats,
}

/// What the oracle looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Records in the DMA log.
    pub dma_writes: usize,
    /// Distinct file pages (by file offset) the device wrote at least once.
    pub pages_with_dma: usize,
    /// OUT (write) requests in the block journal.
    pub journal_writes: usize,
    /// FLUSH requests in the block journal.
    pub journal_flushes: usize,
    /// Pages whose final generation was looked for on the final image (the lost_write check).
    pub pages_checked_on_disk: usize,
    /// Kernel crash reports found on the console.
    pub console_reports: usize,
}

impl Analysis {
    /// The kinds of verdict found, sorted and without repeats.
    pub fn kinds(&self) -> Vec<VerdictKind> {
        let mut k: Vec<VerdictKind> = self.verdicts.iter().map(|v| v.kind).collect();
        k.sort();
        k.dedup();
        k
    }

    /// Whether a verdict of `kind` was found.
    pub fn has(&self, kind: VerdictKind) -> bool {
        self.verdicts.iter().any(|v| v.kind == kind)
    }

    /// Add `v`, if a check returned one.
    pub fn push(&mut self, v: Option<Verdict>) {
        if let Some(v) = v {
            self.verdicts.push(v);
        }
    }
}
