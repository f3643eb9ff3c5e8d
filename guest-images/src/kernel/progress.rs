//! Build progress events and a small terminal renderer for them.
//!
//! [`crate::kernel::build`] reports [`BuildProgress`] events through a callback. The CLI
//! can pass them to a [`ProgressRenderer`]:
//!
//! ```no_run
//! # use guest_images::kernel::{self, progress::ProgressRenderer};
//! # fn f(req: &kernel::BuildRequest, cache: &std::path::Path) -> anyhow::Result<()> {
//! let mut r = ProgressRenderer::stderr();
//! let built = kernel::build(req, cache, &mut |ev| r.event(ev));
//! r.finish();
//! # built.map(|_| ())
//! # }
//! ```
//!
//! On a terminal it keeps one updating status line (`\r` + clear-line), e.g.
//! `[1m23s] compiling 812 files  fs/ext4/inode.o`; otherwise (CI logs) it prints a plain
//! line per phase and a compile progress line at most every 15 s.

use super::patches::PatchGroup;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A build phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Computing the source identity and cache key.
    Resolving,
    /// Extracting the Debian tarball into the cache (first use only).
    Extracting,
    /// Making the work copy of the source.
    Copying,
    /// Applying the patch series.
    Patching,
    /// Bringing the build slot's tree to the staged one (only changed files written).
    Syncing,
    /// tinyconfig + fragments + olddefconfig + survival check.
    Configuring,
    /// Compiling vmlinux and bzImage.
    Compiling,
    /// Copying artefacts into the cache.
    Publishing,
}

impl Phase {
    /// What the build is doing in this phase, as shown on the status line
    /// (`compiling`, `patching`, ...).
    pub fn verb(self) -> &'static str {
        match self {
            Phase::Resolving => "resolving sources",
            Phase::Extracting => "extracting the kernel source tarball",
            Phase::Copying => "preparing the work tree",
            Phase::Patching => "patching",
            Phase::Syncing => "updating the build tree",
            Phase::Configuring => "configuring",
            Phase::Compiling => "compiling",
            Phase::Publishing => "publishing",
        }
    }
}

/// An event reported by a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildProgress {
    /// A new phase starts.
    Phase(Phase),
    /// Patch `index` (1-based) of `total` is being applied.
    Patch {
        /// Position in the series, from 1.
        index: usize,
        /// Patches in the series.
        total: usize,
        /// The patch's display name (path, or `pinvm:<file>`).
        name: String,
        /// The patch's group.
        group: PatchGroup,
    },
    /// kbuild produced one more file (`count` so far in this build).
    Compiled {
        /// Files produced so far in this build.
        count: u64,
        /// The file just produced, relative to the build directory when inside it.
        file: String,
    },
    /// Something worth a line of its own (waiting for a lock, the cache key, …).
    Note(String),
}

/// Renders [`BuildProgress`] events to a writer (normally stderr).
pub struct ProgressRenderer<W: Write> {
    out: W,
    tty: bool,
    width: usize,
    start: Instant,
    phase: Option<Phase>,
    count: u64,
    file: String,
    /// When the status line was last drawn (TTY) or the last plain line printed.
    last: Option<Instant>,
    line_shown: bool,
}

/// Minimum time between TTY redraws.
const TTY_INTERVAL: Duration = Duration::from_millis(100);
/// Time between plain compile progress lines.
const PLAIN_INTERVAL: Duration = Duration::from_secs(15);

impl ProgressRenderer<std::io::Stderr> {
    /// A renderer on stderr, in TTY mode when stderr is a terminal.
    pub fn stderr() -> Self {
        let err = std::io::stderr();
        let tty = err.is_terminal();
        let width = if tty {
            terminal_width().unwrap_or(80)
        } else {
            80
        };
        ProgressRenderer::new(err, tty, width)
    }
}

fn terminal_width() -> Option<usize> {
    // SAFETY: winsize is four u16 fields, for which all-zero bytes are a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`, which we own and which outlives the
    // call; on failure it writes nothing and `ws` stays zeroed.
    let r = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some(ws.ws_col as usize)
}

/// `1m23s` / `0m05s`.
pub fn format_elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

impl<W: Write> ProgressRenderer<W> {
    /// A renderer writing to `out`; `tty` selects the single updating line.
    pub fn new(out: W, tty: bool, width: usize) -> Self {
        ProgressRenderer {
            out,
            tty,
            width: width.max(20),
            start: Instant::now(),
            phase: None,
            count: 0,
            file: String::new(),
            last: None,
            line_shown: false,
        }
    }

    /// Handles an event now.
    pub fn event(&mut self, ev: BuildProgress) {
        self.event_at(ev, Instant::now());
    }

    /// Handles an event at time `now` (for tests).
    pub fn event_at(&mut self, ev: BuildProgress, now: Instant) {
        // Rendering is best effort: a closed stderr must not fail a build.
        let _ = self.render(ev, now);
    }

    fn stamp(&self, now: Instant) -> String {
        format!(
            "[{}]",
            format_elapsed(now.saturating_duration_since(self.start))
        )
    }

    fn status_line(&self, now: Instant) -> String {
        let phase = self.phase.map(Phase::verb).unwrap_or("starting");
        let mut s = if self.phase == Some(Phase::Compiling) {
            format!(
                "{} compiling {} files  {}",
                self.stamp(now),
                self.count,
                self.file
            )
        } else {
            format!("{} {phase}", self.stamp(now))
        };
        let max = self.width - 1;
        if s.chars().count() > max {
            s = s.chars().take(max).collect();
        }
        s
    }

    fn clear(&mut self) -> std::io::Result<()> {
        if self.tty && self.line_shown {
            write!(self.out, "\r\x1b[2K")?;
            self.line_shown = false;
        }
        Ok(())
    }

    fn draw(&mut self, now: Instant) -> std::io::Result<()> {
        let line = self.status_line(now);
        write!(self.out, "\r\x1b[2K{line}")?;
        self.out.flush()?;
        self.line_shown = true;
        self.last = Some(now);
        Ok(())
    }

    /// Prints a permanent line (above the status line on a TTY).
    fn println(&mut self, now: Instant, text: &str) -> std::io::Result<()> {
        self.clear()?;
        writeln!(self.out, "{} {text}", self.stamp(now))?;
        if self.tty && self.phase.is_some() {
            self.draw(now)?;
        }
        self.out.flush()
    }

    fn render(&mut self, ev: BuildProgress, now: Instant) -> std::io::Result<()> {
        match ev {
            BuildProgress::Phase(p) => {
                self.phase = Some(p);
                if self.tty {
                    self.draw(now)
                } else {
                    self.last = Some(now);
                    self.println(now, p.verb())
                }
            }
            BuildProgress::Patch {
                index,
                total,
                name,
                group,
            } => self.println(
                now,
                &format!("patch {index}/{total} [{}] {name}", group.as_str()),
            ),
            BuildProgress::Note(text) => self.println(now, &text),
            BuildProgress::Compiled { count, file } => {
                self.count = count;
                self.file = file;
                let due = |iv| {
                    self.last
                        .is_none_or(|t| now.saturating_duration_since(t) >= iv)
                };
                if self.tty {
                    if due(TTY_INTERVAL) {
                        self.draw(now)?;
                    }
                } else if due(PLAIN_INTERVAL) {
                    self.last = Some(now);
                    let text = format!("compiling: {} files ({})", self.count, self.file);
                    self.println(now, &text)?;
                }
                Ok(())
            }
        }
    }

    /// Clears the status line (TTY) so the caller's next output starts on a clean line.
    pub fn finish(&mut self) {
        let _ = self.clear().and_then(|_| self.out.flush());
    }

    /// The underlying writer (for tests).
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(n: u64, f: &str) -> BuildProgress {
        BuildProgress::Compiled {
            count: n,
            file: f.into(),
        }
    }

    #[test]
    fn elapsed_format() {
        assert_eq!(format_elapsed(Duration::from_secs(5)), "0m05s");
        assert_eq!(format_elapsed(Duration::from_secs(83)), "1m23s");
        assert_eq!(format_elapsed(Duration::from_secs(3723)), "1h02m03s");
    }

    #[test]
    fn tty_single_updating_line() {
        let mut r = ProgressRenderer::new(Vec::new(), true, 60);
        let t0 = r.start;
        r.event_at(BuildProgress::Phase(Phase::Compiling), t0);
        r.event_at(compiled(1, "a.o"), t0 + Duration::from_millis(10)); // throttled
        r.event_at(
            compiled(812, "fs/ext4/inode.o"),
            t0 + Duration::from_secs(83),
        );
        r.event_at(
            BuildProgress::Note("hello".into()),
            t0 + Duration::from_secs(84),
        );
        r.event_at(
            compiled(813, &format!("{}/x.o", "d".repeat(80))),
            t0 + Duration::from_secs(85),
        );
        r.finish();
        let s = String::from_utf8(r.into_inner()).unwrap();
        assert!(
            s.starts_with("\r\x1b[2K[0m00s] compiling 0 files  "),
            "{s:?}"
        );
        assert!(!s.contains(" 1 files"), "throttled: {s:?}");
        assert!(
            s.contains("\r\x1b[2K[1m23s] compiling 812 files  fs/ext4/inode.o"),
            "{s:?}"
        );
        assert!(
            s.contains("\r\x1b[2K[1m24s] hello\n\r\x1b[2K[1m24s] compiling 812"),
            "{s:?}"
        );
        assert!(s.ends_with("\r\x1b[2K"), "{s:?}");
        // Lines are cut to the terminal width.
        for line in s.split("\r\x1b[2K") {
            assert!(line.trim_end().chars().count() < 60, "{line:?}");
        }
    }

    #[test]
    fn plain_output_is_sparse() {
        let mut r = ProgressRenderer::new(Vec::new(), false, 80);
        let t0 = r.start;
        r.event_at(BuildProgress::Phase(Phase::Configuring), t0);
        r.event_at(
            BuildProgress::Patch {
                index: 1,
                total: 2,
                name: "pinvm:x.patch".into(),
                group: PatchGroup::Platform,
            },
            t0 + Duration::from_secs(1),
        );
        r.event_at(
            BuildProgress::Phase(Phase::Compiling),
            t0 + Duration::from_secs(2),
        );
        for i in 1..=300u64 {
            r.event_at(
                compiled(i, &format!("f{i}.o")),
                t0 + Duration::from_millis(2000 + i * 100),
            );
        }
        r.finish();
        let s = String::from_utf8(r.into_inner()).unwrap();
        assert!(!s.contains('\r') && !s.contains('\x1b'), "{s:?}");
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines,
            [
                "[0m00s] configuring",
                "[0m01s] patch 1/2 [platform] pinvm:x.patch",
                "[0m02s] compiling",
                "[0m17s] compiling: 150 files (f150.o)",
                "[0m32s] compiling: 300 files (f300.o)",
            ]
        );
    }
}
