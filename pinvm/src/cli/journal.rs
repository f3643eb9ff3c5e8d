//! `pinvm journal show`: print a virtio-blk write journal readably, decoding what each written
//! 4 KiB block holds when the journal kept the data (`--journal-data`): a DMA generation
//! (`dma r1 p3 g7`), a torn block mixing generations, or a stamped file sector.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use proto::journal::{render, Journal, JournalError};
use proto::stamp::dma::{classify_block, BlockClass};
use proto::stamp::file::decode as decode_stamp;
use std::io::Write;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum JournalCommand {
    /// Print every record of a journal written by `pinvm boot --journal`.
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The journal file.
    pub file: PathBuf,
}

/// What a written 4 KiB block holds.
fn describe(block: &[u8]) -> String {
    let Ok(b) = <&[u8; 4096]>::try_from(block) else {
        return "short block".into();
    };
    match classify_block(b) {
        BlockClass::Uniform {
            region,
            page,
            generation,
        } => format!("dma r{region} p{page} g{generation}"),
        BlockClass::Mixed {
            region,
            page,
            generations,
        } => format!("TORN dma r{region} p{page} sector generations {generations:?}"),
        BlockClass::Foreign => match decode_stamp(&block[..512]) {
            Some((tag, off)) => format!("file stamp {tag} off={off}"),
            None => "other data".into(),
        },
    }
}

/// Exit 0, or 1 when the journal has damaged records (each is shown inline as `!! ...`,
/// and the records after it are still shown).
pub fn run(cmd: JournalCommand) -> Result<i32> {
    let JournalCommand::Show(a) = cmd;
    let ctx = || format!("reading journal {}", a.file.display());
    let j = Journal::open(&a.file).with_context(ctx)?;
    let damaged = show(j, &mut std::io::stdout().lock()).with_context(ctx)?;
    if damaged > 0 {
        eprintln!(
            "pinvm: {} has {damaged} damaged records (shown as `!!`); the others are intact",
            a.file.display()
        );
        return Ok(1);
    }
    Ok(0)
}

/// Print every record of `j`; a damaged one is a `!!` line and the next good one follows.
/// Returns the number of damaged records; fails only on a read error.
fn show(j: Journal, out: &mut impl Write) -> Result<u64> {
    let mut damaged = 0;
    for rec in j.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(JournalError::Io(e)) => return Err(e.into()),
            Err(e) => {
                damaged += 1;
                writeln!(out, "!! {e}")?;
                continue;
            }
        };
        render(&rec, out)?;
        if let Some(data) = &rec.data {
            for (i, b) in data.chunks(4096).enumerate() {
                writeln!(
                    out,
                    "  block sector={} {}",
                    rec.sector + i as u64 * 8,
                    describe(b)
                )?;
            }
        }
    }
    Ok(damaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_blocks() {
        assert_eq!(describe(&[0u8; 4096]), "other data");
        assert_eq!(describe(&[0u8; 100]), "short block");
        let mut b = vec![0u8; 4096];
        b[..512].copy_from_slice(&proto::stamp::file::stamp_sector("t", 8192));
        assert_eq!(describe(&b), "file stamp t off=8192");
    }

    /// `journal show` used to stop at the first damaged record (an error, exit 125) and hide
    /// every record after it.
    #[test]
    fn a_damaged_record_is_shown_and_the_next_ones_too() {
        use proto::journal::{JournalOptions, JournalRecord, JournalWriter, RequestKind};
        let dir = std::env::temp_dir().join(format!("pinvm-jshow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("j.bin");
        let mut w = JournalWriter::create(&path, JournalOptions::default()).unwrap();
        for seq in 1..=3 {
            w.write(&JournalRecord {
                seq,
                kind: RequestKind::Out,
                status: 0,
                submit_ns: 1,
                complete_ns: 2,
                sector: 8,
                sectors: 8,
                segments: vec![],
                hashes: vec![],
                data: None,
            })
            .unwrap();
        }
        drop(w);
        let mut b = std::fs::read(&path).unwrap();
        let second = 16 + 4 + u32::from_le_bytes(b[16..20].try_into().unwrap()) as usize;
        b[second..second + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, &b).unwrap();
        let mut out = Vec::new();
        let damaged = show(Journal::open(&path).unwrap(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(damaged, 1, "{text}");
        assert!(text.starts_with("#1 OUT OK"), "{text}");
        assert!(text.contains("\n!! corrupt record at offset"), "{text}");
        assert!(text.contains("\n#3 OUT OK"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
