//! Spotting a kernel crash on the console: the first line that says the kernel oopsed,
//! hit a BUG or panicked. (The full report parser with syzkaller-style titles belongs to the
//! oracle; this is what `pinvm boot` needs to tell a crash from a clean run.)

/// Console markers (at the start of a line, after the timestamp) of a kernel that can no
/// longer be trusted to have run the command.
const CRASH_MARKERS: &[&str] = &[
    "Kernel panic - not syncing",
    "kernel BUG at ",
    "Kernel BUG at ",
    "BUG: ",
    "Oops: ",
    "general protection fault",
    "Unable to handle kernel",
];

/// Lines that start like a crash but are not one: the scheduler's complaint about an
/// inconsistent CPU topology (kvm_pvm shows the guest the host's CPUID) is a pr_err.
const NOT_CRASHES: &[&str] = &["BUG: arch topology borken"];

/// Strip the `[    1.234567] ` printk time prefix, if any.
fn strip_time(line: &str) -> &str {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            if rest[..end]
                .trim()
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.')
            {
                return rest[end + 1..].trim_start();
            }
        }
    }
    t
}

/// The first crash line in `console`, without its timestamp.
pub fn first_crash(console: &str) -> Option<String> {
    console
        .lines()
        .map(|l| strip_time(l.trim_end_matches('\r')))
        .find(|l| {
            CRASH_MARKERS.iter().any(|m| l.starts_with(m))
                && !NOT_CRASHES.iter().any(|m| l.starts_with(m))
        })
        .map(|l| l.chars().take(200).collect())
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
                 [    2.1] Oops: 0002 [#1] SMP\n";
        assert_eq!(
            first_crash(c).unwrap(),
            "BUG: kernel NULL pointer dereference, address: 0000000000000008"
        );
        let p = "x\r\n[ 9.9] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\r\n";
        assert!(first_crash(p)
            .unwrap()
            .starts_with("Kernel panic - not syncing: Attempted"));
        assert_eq!(first_crash("Linux version 6.12\nall fine\n"), None);
        // A command printing something with "BUG" in a word is not a crash.
        assert_eq!(first_crash("DEBUG: value\n"), None);
        assert_eq!(first_crash("[ 0.1] BUG: arch topology borken\n"), None);
    }

    #[test]
    fn tail_skips_blank_lines() {
        assert_eq!(tail("a\n\nb\r\nc\n\n", 2), vec!["b", "c"]);
        assert_eq!(tail("", 3), Vec::<String>::new());
    }
}
