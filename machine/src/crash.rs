//! Spotting a kernel crash on the console: the first report (from the oracle's console parser)
//! after which the kernel can no longer be trusted to have run the command: an Oops, a general
//! protection fault, a bad page fault, a `kernel BUG at`, a panic. Warnings, UBSAN/KASAN
//! reports and hang reports are verdicts of the oracle (`pinvm run`), not boot failures.

use oracle::console::{parse, CrashKind};

/// The first crash in `console`: its syzkaller-style title and first line.
pub fn first_crash(console: &str) -> Option<String> {
    parse(console)
        .into_iter()
        .find(|r| {
            matches!(
                r.kind,
                CrashKind::Bug
                    | CrashKind::Oops
                    | CrashKind::GeneralProtection
                    | CrashKind::PageFault
                    | CrashKind::Panic
            )
        })
        .map(|r| {
            let first: String = r
                .excerpt
                .iter()
                .find(|l| !l.trim().is_empty() && !l.contains("cut here"))
                .map(|l| l.chars().take(160).collect())
                .unwrap_or_default();
            if first.is_empty() || first == r.title {
                r.title
            } else {
                format!("{} ({first})", r.title)
            }
        })
}

/// The last `n` non-empty console lines, for failure reports.
pub fn tail(console: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = console
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_panics_and_oopses() {
        let c = "hello\n[    2.000001] BUG: kernel NULL pointer dereference, address: 0000000000000008\n\
                 [    2.1] #PF: supervisor write access in kernel mode\n\
                 [    2.1] Oops: 0002 [#1] SMP\n\
                 [    2.1] RIP: 0010:lkdtm_EXCEPTION+0x5/0x10\n";
        let got = first_crash(c).unwrap();
        assert!(
            got.starts_with(
                "BUG: unable to handle kernel NULL pointer dereference in lkdtm_EXCEPTION"
            ),
            "{got}"
        );
        assert!(got.contains("address: 0000000000000008"), "{got}");
        let p = "x\r\n[ 9.9] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\r\n";
        assert!(
            first_crash(p)
                .unwrap()
                .starts_with("kernel panic: Attempted to kill init"),
            "{:?}",
            first_crash(p)
        );
        assert_eq!(first_crash("Linux version 6.12\nall fine\n"), None);
        // A command printing something with "BUG" in a word is not a crash.
        assert_eq!(first_crash("DEBUG: value\n"), None);
        assert_eq!(first_crash("[ 0.1] BUG: arch topology borken\n"), None);
        // A warning is the oracle's business, not a crash.
        let w =
            "[ 5.1] WARNING: CPU: 1 PID: 57 at fs/ext4/inode.c:3587 ext4_dirty_folio+0x3a/0x40\n";
        assert_eq!(first_crash(w), None);
    }

    #[test]
    fn tail_skips_blank_lines() {
        assert_eq!(tail("a\n\nb\r\nc\n\n", 2), vec!["b", "c"]);
        assert_eq!(tail("", 3), Vec::<String>::new());
    }
}
