//! Filesystem messages: the filesystems' (and the block layer's) own errors and warnings.

use serde::Serialize;

use super::lines::split_console;

/// How bad a filesystem message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FsSeverity {
    /// An error the filesystem reports and may survive (`EXT4-fs error`, `BTRFS error`, a
    /// checksum or I/O error, a journal failure).
    Error,
    /// A warning: something unexpected that the filesystem handled.
    Warning,
    /// The filesystem gave up or data is known lost: shutdown, aborted transaction, failed
    /// assertion, `data will be lost`.
    Critical,
}

/// One filesystem (or block layer) error or warning the guest kernel printed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FsMessage {
    /// "ext4", "jbd2", "xfs", "btrfs" or "block".
    pub fs: String,
    /// How bad the message is, from its prefix or, where the filesystem does not print its
    /// level (xfs, ext4_msg), its words.
    pub severity: FsSeverity,
    /// True for data/metadata checksum failures ("csum failed", "checksum", "Invalid
    /// checksum", CRC errors).
    pub checksum: bool,
    /// 0-based index of the message's console line.
    pub line: usize,
    /// printk timestamp of that line in seconds, when the console has one.
    pub time_s: Option<f64>,
    /// The line without its timestamp.
    pub text: String,
}

/// (fs, severity) of one console message, or `None` when it is not a filesystem problem.
fn classify_fs(t: &str) -> Option<(&'static str, FsSeverity)> {
    use FsSeverity::*;
    let lower = t.to_ascii_lowercase();
    let has = |w: &str| lower.contains(w);
    if t.starts_with("EXT4-fs error") {
        return Some(("ext4", Error));
    }
    if t.starts_with("EXT4-fs warning") {
        return Some(("ext4", Warning));
    }
    if t.starts_with("EXT4-fs critical") {
        return Some(("ext4", Critical));
    }
    if t.starts_with("EXT4-fs (") || t.starts_with("EXT4-fs: ") {
        // ext4_msg(): mostly mount chatter; these are its failures.
        if has("data will be lost") || has("delayed block allocation failed") {
            return Some(("ext4", Critical));
        }
        if has("remounting filesystem read-only")
            || has("i/o error")
            || has("checksum")
            || has("corrupt")
            || has("failed to convert unwritten")
            || has("error count since last fsck")
        {
            return Some(("ext4", Error));
        }
        return None;
    }
    if t.starts_with("JBD2: ") || t.starts_with("jbd2: ") || t.starts_with("jbd2_") {
        if has("invalid") || has("error") || has("fail") || has("corrupt") || has("checksum") {
            return Some(("jbd2", Error));
        }
        return Some(("jbd2", Warning));
    }
    if t.starts_with("Aborting journal on device") {
        return Some(("jbd2", Error));
    }
    if t.starts_with("BTRFS error") || t.starts_with("BTRFS: error") {
        return Some(("btrfs", Error));
    }
    if t.starts_with("BTRFS warning") || t.starts_with("BTRFS: warning") {
        return Some(("btrfs", Warning));
    }
    if t.starts_with("BTRFS critical")
        || t.starts_with("BTRFS alert")
        || t.starts_with("BTRFS emerg")
        || t.starts_with("BTRFS: Transaction aborted")
    {
        return Some(("btrfs", Critical));
    }
    if t.starts_with("XFS (") || t.starts_with("XFS: ") {
        // xfs_alert/xfs_crit/xfs_err/xfs_warn do not print their level: go by the words.
        if has("assertion failed")
            || has("corruption of in-memory data")
            || has("shutting down filesystem")
            || has("please unmount the filesystem")
            || has("please umount the filesystem")
            || has("log i/o error")
            || has("force_shutdown")
        {
            return Some(("xfs", Critical));
        }
        if has("corruption warning") {
            return Some(("xfs", Warning));
        }
        if has("corrupt")
            || has("crc error")
            || has("checksum")
            || has("i/o error")
            || has("internal error")
            || has("xfs_repair")
            || has("metadata") && (has("error") || has("corrupt") || has("verifier") || has("bad"))
        {
            return Some(("xfs", Error));
        }
        return None;
    }
    if t.starts_with("blk_update_request: ")
        || t.starts_with("Buffer I/O error on dev")
        || t.starts_with("I/O error, dev ")
        || t.starts_with("critical medium error, dev ")
        || t.starts_with("critical target error, dev ")
        || t.starts_with("critical space allocation error, dev ")
        || t.starts_with("protection error, dev ")
    {
        return Some(("block", Error));
    }
    // dio_warn_stale_pagecache(): a direct write could not invalidate the page cache over its
    // range (pr_crit); the kernel also records EIO on the file.
    if t.starts_with("Page cache invalidation failure on direct I/O") {
        return Some(("vfs", Critical));
    }
    None
}

fn is_checksum(t: &str) -> bool {
    let l = t.to_ascii_lowercase();
    l.contains("checksum")
        || l.contains("csum failed")
        || l.contains("csum mismatch")
        || l.contains("bad csum")
        || l.contains("crc error")
        || l.contains("crc mismatch")
        || l.contains("bad crc")
        || l.contains("csum 0x") && l.contains("expected csum")
}

/// Filesystem errors and warnings the guest kernel printed: "EXT4-fs error (device vda):
/// ...", "EXT4-fs warning (device vda): ...", "BTRFS error/warning/critical (device vda): ...",
/// "XFS (vda): Metadata corruption detected ...", "JBD2: Invalid checksum ...", and the block
/// layer's "I/O error, dev vda, sector N" (fs = "block"), and the VFS' "Page cache invalidation
/// failure on direct I/O" (fs = "vfs").
pub fn fs_messages(console: &str) -> Vec<FsMessage> {
    let lines = split_console(console);
    let stamped = lines.iter().any(|l| l.time.is_some());
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if stamped && l.time.is_none() {
            continue;
        }
        let t = l.text.trim_end();
        let Some((fs, severity)) = classify_fs(t) else {
            continue;
        };
        out.push(FsMessage {
            fs: fs.to_string(),
            severity,
            checksum: is_checksum(t),
            line: i,
            time_s: l.time,
            text: t.to_string(),
        });
    }
    out
}
